//! The `mentor` binary: bad input gives a one-line error and exit code 1, never a panic;
//! the main commands run on the embedded data.

mod common;

use std::process::Command;

fn mentor(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(args)
        .env_remove("MENTOR_DATA")
        .output()
        .expect("the mentor binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `mentor train` of the default MLP on digits for `epochs`, quietly, into `out`.
fn train_digits_mlp(out: &std::path::Path, epochs: &str) {
    let (code, _, err) = mentor(&[
        "train",
        "--dataset",
        "digits",
        "--model",
        "mlp",
        "--epochs",
        epochs,
        "--log-format",
        "quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
}

fn assert_one_line_error(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got {stderr:?}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "{stderr:?} lacks {needle:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn negative_lr_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let (code, _, err) = mentor(&["train", "--set", "lr=-1", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "`lr`");
    assert!(!out.exists(), "nothing is written for an invalid config");
}

#[test]
fn unknown_config_key_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, "epochs = 2\nlearning_rate = 0.1\n").unwrap();
    let out = dir.path().join("r");
    let (code, _, err) = mentor(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "learning_rate");
}

#[test]
fn data_parallel_devices_are_refused_where_burn_cannot_all_reduce() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let run = |extra: &[&str]| {
        let mut args = vec!["train", "--out", out.to_str().unwrap(), "--set", "epochs=1"];
        args.extend_from_slice(extra);
        mentor(&args)
    };
    // Burn 0.22.1's CPU backend has no collective operations: refused before training.
    let (code, _, err) = run(&["--devices", "cpu"]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "only on CUDA");
    assert!(!out.join("checkpoints").exists());
    let (code, _, err) = run(&["--devices", "cuda:0,cuda:0"]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "listed twice");
}

#[test]
fn truncated_idx_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut images = vec![0u8, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 2];
    images.extend([7u8; 10]); // 4 images of 2x2 need 16 bytes
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        [0u8, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4],
    )
    .unwrap();
    let out = dir.path().join("r");
    let (code, _, err) = mentor(&[
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "train-images-idx3-ubyte");
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn train_then_eval_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    train_digits_mlp(&out, "3");
    let ckpt = out.join("checkpoints/last.ckpt");
    let (code, stdout, err) = mentor(&["eval", "--checkpoint", ckpt.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let summary = common::summary(&out);
    assert_eq!(v["test_accuracy"], summary["test_accuracy"]);
    // A file that is not a checkpoint is an error naming it.
    let (code, _, err) = mentor(&[
        "eval",
        "--checkpoint",
        out.join("summary.json").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "summary.json");
}

#[test]
fn jsonl_progress_is_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let (code, stdout, err) = mentor(&[
        "train",
        "--epochs",
        "2",
        "--log-format",
        "jsonl",
        "--set",
        "data.per_class=20",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["event"], "epoch");
    assert_eq!(events[2]["event"], "summary");
}

#[test]
fn digits_mlp_reaches_the_issue_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    train_digits_mlp(&out, "20");
    let summary = common::summary(&out);
    let acc = summary["test_accuracy"].as_f64().unwrap();
    assert!(acc >= 0.95, "test accuracy {acc} < 0.95");
}

#[test]
fn demo_runs_on_the_embedded_data_and_prints_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, err) = mentor(&["demo", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("| supervised   | mlp"), "{stdout}");
    assert!(stdout.contains("| supervised   | cnn"), "{stdout}");
    assert!(
        stdout.contains("| distillation | cnn -> mlp-32"),
        "{stdout}"
    );
    for method in ["simclr", "deep-cluster", "amdim", "cpc", "untrained cnn"] {
        assert!(
            stdout.contains(&format!("| self-superv. | {method}")),
            "{method}: {stdout}"
        );
    }
    assert!(
        stdout.contains("| distillation | cnn -> vit, DeiT token"),
        "{stdout}"
    );
    // Every row's accuracy is a real number well above chance (0.1).
    let rows = stdout.lines().filter(|l| {
        ["| supervised", "| distillation", "| transfer"]
            .iter()
            .any(|p| l.starts_with(p))
    });
    for line in rows {
        let acc: f64 = line.split('|').nth(3).unwrap().trim().parse().unwrap();
        assert!((0.0..=1.0).contains(&acc) && acc > 0.5, "{line}");
    }
}

#[test]
fn demo_runs_a_folder_of_tour_files_and_names_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("tour");
    std::fs::create_dir(&runs).unwrap();
    std::fs::write(
        runs.join("01-teacher.toml"),
        "epochs = 2\n[demo]\nrow = \"supervised\"\nname = \"my mlp\"\n[data]\ndataset = \"digits\"\n",
    )
    .unwrap();
    // The second run is taught by the first, through `{out}`.
    std::fs::write(
        runs.join("02-student.toml"),
        "epochs = 1\n[demo]\nrow = \"distillation\"\nname = \"my student\"\n[data]\ndataset = \"digits\"\n\
         [model]\ntype = \"mlp\"\nhidden = [16]\n\
         [strategy]\ntype = \"distill\"\nteacher = \"{out}/teacher/checkpoints/best.ckpt\"\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let args = [
        "demo",
        "--runs",
        runs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let (code, stdout, err) = mentor(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("| supervised   | my mlp, 2 epochs"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| distillation | my student, 1 epochs"),
        "{stdout}"
    );
    assert!(out.join("student/summary.json").is_file());
    // Run again in the same folder: the demo replaces its own runs, and the seeded tour
    // gives the same table (accuracy column; the seconds differ).
    let accuracies = |table: &str| -> Vec<String> {
        table
            .lines()
            .filter(|l| l.starts_with("| supervised") || l.starts_with("| distillation"))
            .map(|l| l.split('|').take(4).collect::<Vec<_>>().join("|"))
            .collect()
    };
    let (code, again, err) = mentor(&args);
    assert_eq!(code, 0, "the second demo run failed: {err}");
    assert_eq!(accuracies(&again), accuracies(&stdout));
    assert_eq!(accuracies(&again).len(), 2, "{again}");
    // A folder the demo did not write is refused, and left as it was.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("notes.txt"), "mine").unwrap();
    let (code, _, err) = mentor(&[
        "demo",
        "--runs",
        runs.to_str().unwrap(),
        "--out",
        theirs.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "no earlier `mentor demo`");
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 1);
    std::fs::write(runs.join("03-bad.toml"), "[demo]\nrow = \"x\"\n").unwrap();
    let (code, _, err) = mentor(&args);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "03-bad.toml");
}

#[test]
fn bench_reports_samples_per_second_as_json() {
    let (code, stdout, err) = mentor(&[
        "bench", "mlp-step", "--steps", "2", "--warmup", "1", "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v[0]["workload"], "mlp-step");
    assert!(v[0]["samples_per_second"].as_f64().unwrap() > 0.0);
    let (code, _, err) = mentor(&["bench", "gpu-magic"]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "gpu-magic");
}

/// The issue's MNIST check: the CNN reaches >= 0.98 test accuracy after one epoch.
/// Needs ../shared/datasets and about a minute: `cargo test --release -- --ignored`.
#[test]
#[ignore]
fn mnist_cnn_one_epoch_reaches_98_percent() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let (code, _, err) = mentor(&[
        "train",
        "--config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mnist-cnn.toml"),
        "--data-dir",
        data.to_str().unwrap(),
        "--log-format",
        "quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let summary = common::summary(&out);
    let acc = summary["test_accuracy"].as_f64().unwrap();
    assert!(acc >= 0.98, "test accuracy {acc} < 0.98");
}

#[test]
fn resume_from_the_command_line_uses_the_saved_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let out_s = out.to_str().unwrap();
    let (code, _, err) = mentor(&[
        "train",
        "--epochs",
        "3",
        "--stop-after",
        "1",
        "--log-format",
        "quiet",
        "--out",
        out_s,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = mentor(&["train", "--resume", "--log-format", "quiet", "--out", out_s]);
    assert_eq!(code, 0, "{err}");
    let summary = common::summary(&out);
    assert_eq!(summary["epochs"], 3);
    // Changing the config on resume is refused with one line naming both values.
    let (code, _, err) = mentor(&["train", "--resume", "--lr", "0.5", "--out", out_s]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "`lr` (saved 0.001, given 0.5)");
    // More epochs extend the finished run; its config says so afterwards.
    let (code, _, err) = mentor(&[
        "train",
        "--resume",
        "--epochs",
        "4",
        "--log-format",
        "quiet",
        "--out",
        out_s,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(common::summary(&out)["epochs"], 4);
    let (code, _, err) = mentor(&["train", "--resume", "--log-format", "quiet", "--out", out_s]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn continual_runs_stops_and_resumes_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cl");
    let out_s = out.to_str().unwrap();
    let base = [
        "continual",
        "--dataset",
        "digits",
        "--iterations",
        "20",
        "--setting",
        "class-il",
        "--method",
        "replay",
        "--set",
        "strategy.method.buffer_size=100",
        "--log-format",
        "quiet",
        "--out",
        out_s,
    ];
    let mut first = base.to_vec();
    first.extend(["--stop-after", "2"]);
    let (code, _, err) = mentor(&first);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        common::summary(&out)["matrix"]["rows"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (code, _, err) = mentor(&[
        "continual",
        "--resume",
        "--log-format",
        "quiet",
        "--out",
        out_s,
    ]);
    assert_eq!(code, 0, "{err}");
    let summary = common::summary(&out);
    assert_eq!(summary["matrix"]["rows"].as_array().unwrap().len(), 5);
    assert_eq!(summary["method"], "replay");
    let csv = std::fs::read_to_string(out.join("accuracy_matrix.csv")).unwrap();
    assert!(csv.starts_with("after_task,task_1,"), "{csv}");

    // Bad input: an unknown setting and a method without its required lambda.
    let (code, _, err) = mentor(&["continual", "--setting", "sometimes-il", "--out", out_s]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "sometimes-il");
    let (code, _, err) = mentor(&["continual", "--method", "ewc", "--out", out_s]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "lambda");
}

#[test]
fn augment_writes_a_grid_and_refuses_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("grid.png");
    let out_s = out.to_str().unwrap();
    let (code, _, err) = mentor(&[
        "augment",
        "--dataset",
        "digits",
        "--images",
        "2",
        "--views",
        "3",
        "--out",
        out_s,
    ]);
    assert_eq!(code, 0, "{err}");
    let img = image::open(&out).unwrap();
    // 8x8 digits are zoomed 14x: 4 tiles of 112 pixels plus 4-pixel gaps, 2 rows.
    assert_eq!((img.width(), img.height()), (4 * 116 + 4, 2 * 116 + 4));
    let (code, _, err) = mentor(&[
        "augment",
        "--dataset",
        "digits",
        "--aug",
        "flip=1.5",
        "--out",
        out_s,
    ]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "augment.flip");
}

#[test]
fn rotation_pretext_trains_and_knn_probes_its_features() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rot");
    let out_s = out.to_str().unwrap();
    let (code, _, err) = mentor(&[
        "train",
        "--dataset",
        "digits",
        "--epochs",
        "3",
        "--set",
        "data.pretext=\"rotation\"",
        "--log-format",
        "quiet",
        "--out",
        out_s,
    ]);
    assert_eq!(code, 0, "{err}");
    // Four rotations to tell apart: the pretext is learnt well above chance (0.25).
    let acc = common::summary(&out)["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.5, "rotation accuracy {acc}");
    let ckpt = out.join("checkpoints/best.ckpt");
    let (code, stdout, err) = mentor(&[
        "knn",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--set",
        "data.pretext=\"none\"",
        "--k",
        "20",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let knn = v["knn_accuracy"].as_f64().unwrap();
    assert!(knn > 0.3, "kNN on the digits' own labels: {knn}");
    assert_eq!(v["train_examples"], 1293);
}

#[test]
fn ssl_pretrain_then_probe_at_label_fractions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("moco");
    let out_s = out.to_str().unwrap();
    let (code, _, err) = mentor(&[
        "ssl",
        "pretrain",
        "--method",
        "moco",
        "--dataset",
        "digits",
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--set",
        "strategy.queue=128",
        "--log-format",
        "quiet",
        "--out",
        out_s,
    ]);
    assert_eq!(code, 0, "{err}");
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("type = \"projected\""), "{config}");
    let probe = dir.path().join("probe.json");
    let (code, stdout, err) = mentor(&[
        "ssl",
        "eval",
        "--checkpoint",
        out.join("checkpoints/last.ckpt").to_str().unwrap(),
        "--fractions",
        "0.1,1",
        "--epochs",
        "2",
        "--out",
        probe.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["labels"], 1293);
    assert!(rows[1]["linear_accuracy"].as_f64().unwrap() > 0.5, "{v}");
    assert!(probe.is_file());
    // `mentor summarize` reads probe.json files (no summary.json needed).
    let enc = dir.path().join("enc-s1");
    std::fs::create_dir_all(&enc).unwrap();
    std::fs::copy(&probe, enc.join("probe.json")).unwrap();
    let (code, stdout, err) = mentor(&["summarize", enc.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("| encoder | seeds | kNN 10% | kNN 100% | linear 10% | linear 100% |"),
        "{stdout}"
    );
    assert!(stdout.contains("| enc | 1 |"), "{stdout}");
    // The relative-position grid does not fit 8x8 digits: a one-line error.
    let (code, _, err) = mentor(&[
        "ssl",
        "pretrain",
        "--method",
        "relative-position",
        "--dataset",
        "digits",
        "--out",
        dir.path().join("relpos").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("does not fit a 3x3 grid"), "{err}");
    let (code, _, err) = mentor(&["ssl", "pretrain", "--method", "byol", "--out", out_s]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown --method"), "{err}");
}

#[test]
fn every_example_config_parses_and_validates() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = mentor::run::config::RunConfig::from_file(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if let Err(e) = config.validate() {
                panic!("{}: {e}", path.display());
            }
            seen += 1;
        }
    }
    assert!(seen >= 10, "{seen} examples");
}

/// Every file under `dir` with a hash of its bytes, for "untouched" checks (the lock
/// file, which names the last process that held the directory, aside).
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.ends_with(".lock") {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::fs::read(&p).unwrap().hash(&mut h);
                out.push((p.clone(), h.finish()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_run_directory_is_not_overwritten_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let out_s = out.to_str().unwrap();
    train_digits_mlp(&out, "1");
    let before = snapshot(&out);
    // Another model into the finished run: refused, nothing touched.
    let again = [
        "train",
        "--dataset",
        "digits",
        "--model",
        "cnn",
        "--epochs",
        "1",
    ];
    let (code, _, err) = mentor(&[&again[..], &["--log-format", "quiet", "--out", out_s]].concat());
    assert_eq!(code, 1);
    assert_one_line_error(&err, "already holds a run");
    assert_eq!(
        snapshot(&out),
        before,
        "the refused run changed the directory"
    );
    // A bad config into it: refused before anything is written.
    let (code, _, err) = mentor(&["train", "--set", "lr=-1", "--out", out_s]);
    assert_eq!(code, 1);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        snapshot(&out),
        before,
        "a failed validation changed the directory"
    );
    // --overwrite replaces it.
    let (code, _, err) = mentor(
        &[
            &again[..],
            &["--log-format", "quiet", "--overwrite", "--out", out_s],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("type = \"cnn\""), "{config}");
}

#[test]
fn resume_of_a_run_stopped_before_its_first_checkpoint_starts_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    train_digits_mlp(&out, "2");
    std::fs::remove_dir_all(out.join("checkpoints")).unwrap();
    std::fs::remove_file(out.join("summary.json")).unwrap();
    let out_s = out.to_str().unwrap();
    let (code, _, err) = mentor(&["train", "--resume", "--log-format", "quiet", "--out", out_s]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(common::summary(&out)["epochs"], 2);
    assert!(out.join("checkpoints/best.ckpt").is_file());
}

/// Bad inputs, one per row: each exits 1 with one line naming the thing, panics
/// nowhere, and leaves the run directories as they were.
#[test]
fn bad_inputs_give_one_line_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_digits_mlp(&run, "1");
    let before = snapshot(&run);
    // A copy of its checkpoint with one flipped bit.
    let flipped = dir.path().join("flipped.ckpt");
    let mut bytes = std::fs::read(run.join("checkpoints/last.ckpt")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&flipped, &bytes).unwrap();
    // MNIST-format files whose second label is 200.
    let mnist = dir.path().join("mnist");
    std::fs::create_dir(&mnist).unwrap();
    for prefix in ["train", "t10k"] {
        let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 8, 0, 0, 0, 8];
        img.extend((0..128).map(|i| i as u8));
        std::fs::write(mnist.join(format!("{prefix}-images-idx3-ubyte")), &img).unwrap();
        let labels = [0, 0, 8, 1, 0, 0, 0, 2, 7, 200];
        std::fs::write(mnist.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }
    // Copies of its checkpoint whose input shape is absurd, with a valid checksum.
    let shaped = |shape: &str| {
        let path = dir
            .path()
            .join(format!("shape-{}.ckpt", shape.replace(',', "x")));
        let good = std::fs::read(run.join("checkpoints/last.ckpt")).unwrap();
        std::fs::write(&path, with_input_shape(&good, shape)).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (zero_s, huge_s) = (shaped("0,8,8"), shaped("1,100000,100000"));
    let fresh = dir.path().join("fresh");
    let (run_s, fresh_s) = (run.to_str().unwrap(), fresh.to_str().unwrap());
    let (flipped_s, mnist_s) = (flipped.to_str().unwrap(), mnist.to_str().unwrap());
    let cases: &[(&[&str], &str)] = &[
        (
            &["train", "--model", "mlp", "--out", run_s],
            "already holds a run",
        ),
        (
            &["train", "--resume", "--lr", "0.5", "--out", run_s],
            "`lr` (saved",
        ),
        (
            &["train", "--resume", "--epochs", "0", "--out", run_s],
            "`epochs`",
        ),
        (
            &[
                "train",
                "--set",
                "model.hidden=[100000000]",
                "--out",
                fresh_s,
            ],
            "smaller",
        ),
        (
            &[
                "train",
                "--model",
                "cnn",
                "--set",
                "model.channels=[100000,100000]",
                "--out",
                fresh_s,
            ],
            "smaller",
        ),
        (
            &[
                "train",
                "--set",
                "groups=[{pattern=\"*\",frozen=true}]",
                "--out",
                fresh_s,
            ],
            "nothing to train",
        ),
        (
            &["train", "--stop-after", "0", "--out", fresh_s],
            "--stop-after 0",
        ),
        (&["train", "--lr", "-1", "--out", fresh_s], "`lr`"),
        (
            &["train", "--set", "optim.weight_decay=inf", "--out", fresh_s],
            "weight_decay",
        ),
        (
            &["train", "--set", "data.resize=100000", "--out", fresh_s],
            "MENTOR_MEMORY_LIMIT",
        ),
        (&["eval", "--checkpoint", flipped_s], "checksum"),
        (&["eval", "--checkpoint", &zero_s], "at least 1"),
        (&["eval", "--checkpoint", &huge_s], "MENTOR_MEMORY_LIMIT"),
        (
            &["export", "--checkpoint", &huge_s, "--out", "x.onnx"],
            "MENTOR_MEMORY_LIMIT",
        ),
        (
            &[
                "export",
                "--pretrained",
                "w.pth",
                "--model",
                "resnet18",
                "--crop",
                "0",
                "--out",
                "x.onnx",
            ],
            "--crop: must be >= 1",
        ),
        (
            &[
                "export",
                "--pretrained",
                "w.pth",
                "--model",
                "resnet18",
                "--crop",
                "100000",
                "--out",
                "x.onnx",
            ],
            "MENTOR_MEMORY_LIMIT",
        ),
        (
            &[
                "export",
                "--checkpoint",
                &zero_s,
                "--out",
                "x.onnx",
                "--reference",
                "r.st",
            ],
            "--reference goes with --format safetensors",
        ),
        (
            &[
                "train",
                "--dataset",
                "mnist",
                "--data-dir",
                mnist_s,
                "--out",
                fresh_s,
            ],
            "label 200",
        ),
    ];
    for (args, needle) in cases {
        let (code, _, err) = mentor(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_one_line_error(&err, needle);
        assert_eq!(snapshot(&run), before, "{args:?} changed the run directory");
        assert!(
            !fresh.join("config.toml").exists(),
            "{args:?} wrote a config"
        );
    }
}

/// A checkpoint's bytes with the `input_shape` of its state replaced by `shape`
/// (`"C,H,W"`), its section length and checksum rewritten to match: a file that is whole
/// but not sensible.
fn with_input_shape(checkpoint: &[u8], shape: &str) -> Vec<u8> {
    let body = &checkpoint[..checkpoint.len() - 4];
    let len = u64::from_le_bytes(body[12..20].try_into().unwrap()) as usize;
    let state = std::str::from_utf8(&body[20..20 + len]).unwrap();
    let at = state.find("\"input_shape\":[").unwrap() + "\"input_shape\":[".len();
    let end = at + state[at..].find(']').unwrap();
    let state = format!("{}{shape}{}", &state[..at], &state[end..]);
    let mut out = body[..12].to_vec();
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    out.extend_from_slice(state.as_bytes());
    out.extend_from_slice(&body[20 + len..]);
    let checksum = crc32fast::hash(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// Fault injection: a CNN run killed (SIGKILL) again and again at growing delays, each
/// time restarted with the same command (plus `--resume` once it has a config), ends
/// with the weights of an uninterrupted run, byte for byte, in `last.ckpt` and `best.ckpt`.
#[test]
fn a_run_killed_at_many_moments_resumes_to_the_uninterrupted_weights() {
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &std::path::Path| -> Vec<String> {
        [
            "train",
            "--model",
            "cnn",
            "--epochs",
            "10",
            "--log-format",
            "quiet",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let export = |ckpt: std::path::PathBuf, name: &str| {
        let file = dir.path().join(name);
        let (code, _, err) = mentor(&[
            "export",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        std::fs::read(file).unwrap()
    };
    let straight = dir.path().join("straight");
    let a: Vec<String> = args(&straight);
    let (code, _, err) = mentor(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");

    let killed = dir.path().join("killed");
    let mut kills = 0;
    for attempt in 0.. {
        assert!(attempt < 200, "the run never finished");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mentor"));
        cmd.args(args(&killed)).env_remove("MENTOR_DATA");
        if killed.join("config.toml").is_file() {
            cmd.arg("--resume");
        }
        let mut child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30 + 23 * attempt));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
            continue;
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        break;
    }
    assert!(
        kills >= 3,
        "only {kills} kills: the run is too short to test"
    );
    for name in ["last.ckpt", "best.ckpt"] {
        assert!(
            export(straight.join("checkpoints").join(name), "a.safetensors")
                == export(killed.join("checkpoints").join(name), "b.safetensors"),
            "{name} differs after {kills} kills"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(killed.join("checkpoints"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// The CNN training command of the interrupt tests, into `out`.
fn long_cnn_run(out: &str) -> Vec<String> {
    [
        "train",
        "--model",
        "cnn",
        "--epochs",
        "40",
        "--log-format",
        "quiet",
        "--out",
        out,
    ]
    .map(String::from)
    .to_vec()
}

/// Starts [`long_cnn_run`] into `out`, sends `signal` once its first checkpoint is
/// written, and returns its exit code and standard error (`None`: it finished first).
fn interrupted(out: &std::path::Path, signal: &str) -> Option<(i32, String)> {
    let child = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(long_cnn_run(out.to_str().unwrap()))
        .env_remove("MENTOR_DATA")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ckpt = out.join("checkpoints/last.ckpt");
    for _ in 0..500 {
        if ckpt.is_file() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr).into_owned();
    (!done.status.success()).then(|| (done.status.code().unwrap_or(-1), err))
}

/// Ctrl-C (SIGINT) stops a run with exit code 130 and a line naming the checkpoint to
/// resume from; the same command with --resume finishes it.
#[test]
fn ctrl_c_says_where_to_resume_from() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let Some((code, err)) = interrupted(&out, "INT") else {
        return; // it finished before the signal came: nothing to check
    };
    assert_eq!(code, 130, "{err}");
    assert!(
        err.contains("last.ckpt") && err.contains("--resume"),
        "{err}"
    );
    let args = [long_cnn_run(out.to_str().unwrap()), vec!["--resume".into()]].concat();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = mentor(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(common::summary(&out)["epochs"], 40);
}

/// SIGTERM (a scheduler's stop) and SIGHUP (a closed terminal) say the same as Ctrl-C
/// instead of ending the run silently (exit 130 for each: the handler cannot tell
/// which signal came).
#[test]
fn sigterm_and_sighup_say_where_to_resume_from() {
    for signal in ["TERM", "HUP"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r");
        let Some((code, err)) = interrupted(&out, signal) else {
            continue;
        };
        assert_eq!(code, 130, "SIG{signal}: {err}");
        assert!(
            err.contains("last.ckpt") && err.contains("--resume"),
            "SIG{signal}: {err}"
        );
    }
}

#[test]
fn predict_names_a_runs_classes_for_a_photo_and_refuses_a_bad_crop() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mlp");
    train_digits_mlp(&out, "2");
    let checkpoint = out.join("checkpoints/last.ckpt");
    // A grey photo larger than the network's 8x8 input, in RGB: it is made grey,
    // resized, and normalised with the run's training statistics (read from digits).
    let photo = dir.path().join("stroke.png");
    image::RgbImage::from_fn(40, 32, |x, _| {
        let v = if (14..26).contains(&x) { 255 } else { 0 };
        image::Rgb([v, v, v])
    })
    .save(&photo)
    .unwrap();
    let ckpt = checkpoint.to_str().unwrap();
    let (code, stdout, err) = mentor(&[
        "predict",
        "--checkpoint",
        ckpt,
        "--image",
        photo.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    let probs: Vec<f32> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{stdout}");
    // The digits' class names are the digits: each line ends with its class index.
    for l in &lines[1..] {
        let fields: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "{l}");
        assert_eq!(fields[1], fields[2], "{l}");
    }
    let (code, _, err) = mentor(&[
        "predict",
        "--checkpoint",
        ckpt,
        "--crop",
        "6",
        "--image",
        photo.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "--crop 6: the network takes 8x8 inputs");
    let (code, _, err) = mentor(&[
        "predict",
        "--checkpoint",
        ckpt,
        "--model",
        "cnn",
        "--image",
        "x.png",
    ]);
    assert_eq!(code, 2, "clap refuses --model with --checkpoint: {err}");
}

/// `mentor params ... | head -1`: the reader closes the pipe before mentor writes; mentor
/// ends by SIGPIPE, as command-line tools do, instead of panicking in `println!`.
#[cfg(unix)]
#[test]
fn output_into_a_closed_pipe_ends_the_command_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args([
            "params",
            "--model",
            "efficientnet-lite0",
            "--dataset",
            "cifar10",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the mentor binary runs");
    drop(child.stdout.take()); // close the read end before mentor writes its lines
    let out = child.wait_with_output().expect("mentor ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Ended by the signal: the write did hit the closed pipe (the test is not vacuous).
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?} {stderr}",
        out.status
    );
}

/// A run killed at its first write (its folder holds only the lock and a half-written
/// config.toml's temporary) is started by the starting command plus --resume.
#[test]
fn a_run_killed_at_its_first_write_starts_with_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join(".lock"), "pid 999999999").unwrap();
    // A temporary of a process above Linux's pid limit: its writer is gone.
    let half = out.join(".config.toml.tmp-999999999");
    std::fs::write(&half, "seed = ").unwrap();
    let out_s = out.to_str().unwrap();
    let (code, _, err) = mentor(&[
        "train",
        "--epochs",
        "1",
        "--log-format",
        "quiet",
        "--out",
        out_s,
        "--resume",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(common::summary(&out)["epochs"], 1);
    assert!(!half.exists(), "the dead writer's temporary stayed");
}

/// `mentor models` lists the families from their cards; `mentor params` of a family
/// gives torchvision's count for 1000 classes and PyTorch's names and layouts.
#[test]
fn models_and_params_show_the_families_as_pytorch_has_them() {
    let (code, out, err) = mentor(&["models"]);
    assert_eq!(code, 0, "{err}");
    for (family, count) in [
        ("resnet18", "11689512"),
        ("resnet50", "25557032"),
        ("mobilenet-v2", "3504872"),
        ("efficientnet-lite0", "4652008"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("| {family} | {count} |"))),
            "{family}: {out}"
        );
    }
    let (code, out, err) = mentor(&["params", "--model", "resnet18"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("resnet18 for 3x224x224 inputs and 1000 classes"),
        "{out}"
    );
    assert!(out.ends_with("11689512 trainable parameters\n"), "{out}");
    let head: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("head.weight"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(head, ["head.weight", "fc.weight", "[1000,", "512]"]);
    let (code, out, _) = mentor(&["params", "--model", "resnet18", "--classes", "10"]);
    assert_eq!(code, 0);
    assert!(out.contains("fc.bias") && out.contains("[10]"), "{out}");
    // --input C,H,W as documented (a grey input makes conv1 take one channel).
    let (code, out, err) = mentor(&["params", "--model", "resnet18", "--input", "1,64,64"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[64, 1, 7, 7]"), "{out}");
    let (code, _, err) = mentor(&["params", "--model", "resnet18", "--input", "0,64,64"]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "--input: needs C,H,W");
}

/// A run keeps its class names and fitted statistics in its checkpoints: `predict` and
/// `export` work from the checkpoint alone after the data are gone.
#[test]
fn predict_and_export_need_no_data_once_a_run_is_trained() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("photos");
    for split in ["train", "test"] {
        for (class, v) in [("cat", 40u8), ("dog", 200)] {
            let folder = data.join(split).join(class);
            std::fs::create_dir_all(&folder).unwrap();
            for i in 0..6u8 {
                image::GrayImage::from_fn(8, 8, |x, _| {
                    image::Luma([v.wrapping_add(i * 3 + x as u8)])
                })
                .save(folder.join(format!("{i}.png")))
                .unwrap();
            }
        }
    }
    let out = dir.path().join("run");
    let (code, _, err) = mentor(&[
        "train",
        "--dataset",
        "image-folder",
        "--data-dir",
        data.to_str().unwrap(),
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    std::fs::rename(&data, dir.path().join("gone")).unwrap();
    let photo = dir.path().join("x.png");
    image::GrayImage::from_pixel(16, 16, image::Luma([210]))
        .save(&photo)
        .unwrap();
    let ckpt = out.join("checkpoints/last.ckpt");
    let (code, stdout, err) = mentor(&[
        "predict",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--image",
        photo.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("cat") && stdout.contains("dog"), "{stdout}");
    let onnx = dir.path().join("m.onnx");
    let (code, _, err) = mentor(&[
        "export",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--out",
        onnx.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let meta: std::collections::HashMap<String, String> =
        mentor::models::onnx::onnx_metadata(&std::fs::read(&onnx).unwrap())
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(meta["mentor.classes"], "cat\ndog");
    // The training split's statistics, not the identity.
    let mean: f32 = meta["mentor.mean"].parse().unwrap();
    assert!(mean > 0.1 && mean < 0.9, "{meta:?}");
}

/// `summary.json`'s wall time is the whole run, reading the data included, and says how
/// long the reading took.
#[test]
fn the_wall_time_counts_loading_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    train_digits_mlp(&out, "1");
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let s: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (wall, load, train) = (
        s["wall_seconds"].as_f64().unwrap(),
        s["load_seconds"].as_f64().unwrap(),
        s["train_seconds"].as_f64().unwrap(),
    );
    assert!(load > 0.0, "{text}");
    assert!(wall >= load + train, "{text}");
}

/// `mentor data inspect` on a generated folder: counts per class and split, the sizes,
/// the unreadable file named once, and the same facts as JSON.
#[test]
fn data_inspect_describes_an_image_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (split, class, name, w, h) in [
        ("train", "a", "1.png", 50, 40),
        ("train", "a", "2.png", 50, 40),
        ("train", "b", "3.png", 300, 90),
        ("test", "a", "4.png", 50, 40),
        ("test", "b", "5.png", 50, 40),
    ] {
        let path = root.join(split).join(class).join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(w, h, image::Rgb([9, 99, 199]))
            .save(&path)
            .unwrap();
    }
    std::fs::write(root.join("train/b/cut.png"), b"\x89PNG\r\n").unwrap();
    let dir_arg = root.to_str().unwrap();
    let (code, out, err) = mentor(&["data", "inspect", "--data-dir", dir_arg, "--size", "32"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("train: 4 images in 2 classes"), "{out}");
    assert!(out.contains("per class: a 2, b 2"), "{out}");
    assert!(
        out.contains("sizes: 2 distinct; most common 50x40 (2)"),
        "{out}"
    );
    assert!(out.contains("unreadable: 1"), "{out}");
    assert_eq!(out.matches("cut.png").count(), 1, "{out}");
    assert!(out.contains("test: 2 images in 2 classes"), "{out}");
    let (code, json, err) = mentor(&["data", "inspect", "--data-dir", dir_arg, "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["splits"][0]["inspected"], 4);
    assert_eq!(report["splits"][1]["distinct_sizes"], 1);
    let (code, _, err) = mentor(&["data", "inspect", "--data-dir", "/nonexistent/photos"]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "/nonexistent/photos");
}

/// `mentor bench loader` times the image loader with 1 and 2 workers on a folder, and
/// without a folder says which option it needs.
#[test]
fn bench_loader_reads_an_image_folder() {
    let dir = tempfile::tempdir().unwrap();
    for (class, name) in [("a", "1.png"), ("a", "2.png"), ("b", "3.png")] {
        let path = dir.path().join("train").join(class).join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(40, 30, image::Rgb([1, 2, 3]))
            .save(&path)
            .unwrap();
    }
    let folder = dir.path().to_str().unwrap();
    let (code, out, err) = mentor(&[
        "bench",
        "loader",
        "--data-dir",
        folder,
        "--steps",
        "2",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["workload"], "loader/workers-1");
    assert_eq!(rows[1]["workload"], "loader/workers-2");
    // Two batches of the 3-image folder: 6 images.
    assert_eq!(rows[0]["repeats"], 2);
    assert!(rows[1]["samples_per_second"].as_f64().unwrap() > 0.0);
    let (code, _, err) = mentor(&["bench", "loader"]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "--data-dir");
}

/// A streamed image folder's peak memory follows the loader's queue, not the folder:
/// four times the photos (whose f32 copies would take 550 MB) peak within a quarter of
/// the smaller folder's run, and far below an in-memory load.
#[test]
fn a_streamed_folder_trains_in_memory_independent_of_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let folder = |name: &str, per_class: u32| {
        let root = dir.path().join(name);
        for (split, count) in [("train", per_class), ("test", 2)] {
            for class in ["a", "b"] {
                let d = root.join(split).join(class);
                std::fs::create_dir_all(&d).unwrap();
                for i in 0..count {
                    let img = image::RgbImage::from_fn(800, 600, |x, y| {
                        image::Rgb([(x / 4) as u8, (y / 3) as u8, (i * 9) as u8])
                    });
                    img.save(d.join(format!("{i}.jpg"))).unwrap();
                }
            }
        }
        root
    };
    let peak = |root: &std::path::Path| {
        let config = root.join("run.toml");
        std::fs::write(
            &config,
            format!(
                "epochs = 1\nbatch_size = 8\n[model]\ntype = \"cnn\"\n[data]\ndataset = \"image-folder\"\ndata_dir = {:?}\n[data.transform]\ntrain = [{{ op = \"random-resized-crop\", size = 32 }}, {{ op = \"horizontal-flip\" }}, {{ op = \"normalize\", statistics = \"imagenet\" }}]\neval = [{{ op = \"resize\", size = 36 }}, {{ op = \"center-crop\", size = 32 }}, {{ op = \"normalize\", statistics = \"imagenet\" }}]\n",
                root.display().to_string()
            ),
        )
        .unwrap();
        let out = root.join("run");
        let (code, _, err) = mentor(&[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--log-format",
            "quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
        let s: serde_json::Value = serde_json::from_str(&text).unwrap();
        let peak = s["peak_memory_mib"].as_f64().unwrap();
        eprintln!("{}: peak {peak:.0} MiB", root.display());
        peak
    };
    let small = peak(&folder("small", 12));
    let large = peak(&folder("large", 48));
    // 96 photos of 800x600x3 as f32: 553 MB in memory.
    let in_memory = 96.0 * 800.0 * 600.0 * 3.0 * 4.0 / 1048576.0;
    assert!(
        large < small * 1.25 + 16.0,
        "{small} MiB for 24 photos, {large} for 96"
    );
    assert!(
        large < in_memory / 2.0,
        "{large} MiB streamed, {in_memory} in memory"
    );
}
