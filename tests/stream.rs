//! Photos of many sizes streamed from an image folder while a run trains: the same
//! weights for any number of loader workers, exact resume, and the corrupt-file
//! behaviours (an error naming the file, or skipped and counted).

mod common;

use std::path::Path;

use common::weights;
use mentor::data::transform::Step;
use mentor::engine::LogFormat;
use mentor::run::config::RunConfig;
use mentor::run::{Report, RunOptions, run};

/// `n` PNGs and JPEGs per class and split, 9-40 pixels a side; the class is the colour.
fn folder(root: &Path, n: usize) {
    for (split, count) in [("train", n), ("test", n / 2)] {
        for (class, rgb) in [("blue", [20u8, 40, 220]), ("red", [220, 30, 20])] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..count {
                let (w, h) = (9 + (i * 7) % 32, 9 + (i * 11) % 29);
                let img = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
                    let noise = ((x * 31 + y * 17 + i as u32 * 13) % 40) as u8;
                    image::Rgb(rgb.map(|v| v.saturating_add(noise)))
                });
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                img.save(dir.join(format!("{i:03}.{ext}"))).unwrap();
            }
        }
    }
}

fn config(root: &Path, extra: &str) -> RunConfig {
    let text = format!(
        r#"
seed = 3
epochs = 3
batch_size = 8
lr = 0.01
[data]
dataset = "image-folder"
data_dir = "{}"
val_fraction = 0.2
{extra}
[data.transform]
train = [
  {{ op = "random-resized-crop", size = 12, scale = [0.5, 1.0] }},
  {{ op = "horizontal-flip" }},
  {{ op = "color-jitter", brightness = 0.2 }},
  {{ op = "normalize", statistics = "imagenet" }},
]
eval = [
  {{ op = "resize", size = 14 }},
  {{ op = "center-crop", size = 12 }},
  {{ op = "normalize", statistics = "imagenet" }},
]
"#,
        root.display()
    );
    RunConfig::from_toml(&text, "test").unwrap()
}

fn options(out: &Path) -> RunOptions {
    RunOptions {
        log: LogFormat::Quiet,
        ..RunOptions::new(out)
    }
}

fn train(cfg: &RunConfig, options: &RunOptions) -> (Report, mentor::models::Network) {
    run(&cfg.clone().check().unwrap(), options).unwrap()
}

#[test]
fn streamed_runs_learn_the_same_weights_with_any_workers_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("photos");
    folder(&data, 24);
    let serial = config(&data, "[data.loader]\nworkers = 0");
    let pool = config(&data, "[data.loader]\nworkers = 2\nprefetch = 2");

    let (report, a) = train(&serial, &options(&dir.path().join("serial")));
    let Report::Training(summary) = report else {
        panic!("a supervised run reports training");
    };
    assert_eq!(summary.epochs, 3);
    assert!(summary.test_accuracy > 0.9, "{}", summary.test_accuracy);
    assert!(summary.data_wait_seconds <= summary.train_seconds);
    let (_, b) = train(&pool, &options(&dir.path().join("pool")));
    assert_eq!(weights(&a), weights(&b), "0 and 2 workers");

    // Stopped after one epoch, resumed with other loader settings: the same weights.
    let split = dir.path().join("split");
    train(
        &pool,
        &RunOptions {
            stop_after: Some(1),
            ..options(&split)
        },
    );
    let (_, c) = train(
        &serial,
        &RunOptions {
            resume: true,
            ..options(&split)
        },
    );
    assert_eq!(weights(&a), weights(&c), "resumed");
}

#[test]
fn a_corrupt_photo_stops_the_run_naming_it_or_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("photos");
    folder(&data, 8);
    let bad = data.join("train/red/003.jpg");
    std::fs::write(&bad, b"\xff\xd8 not really a jpeg").unwrap();

    let cfg = config(&data, "");
    let err = run(&cfg.check().unwrap(), &options(&dir.path().join("a")))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("train/red/003.jpg"), "{err}");

    let cfg = config(&data, "skip_corrupt = true");
    let (report, _) = train(&cfg, &options(&dir.path().join("b")));
    let Report::Training(summary) = report else {
        panic!("a supervised run reports training");
    };
    assert_eq!(summary.skipped_files, vec![bad]);
    let written = common::summary(&dir.path().join("b"));
    assert_eq!(written["skipped_files"].as_array().map(Vec::len), Some(1));
}

#[test]
fn stream_rules_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = |cfg: RunConfig| cfg.check().unwrap_err().to_string();
    let msg = key(config(dir.path(), "resize = 32"));
    assert!(msg.contains("data.resize"), "{msg}");
    let msg = key(config(dir.path(), "normalize = false"));
    assert!(msg.contains("data.transform.train"), "{msg}");
    let msg = key(config(dir.path(), "[data.loader]\nprefetch = 0"));
    assert!(msg.contains("data.loader.prefetch"), "{msg}");
    let mut digits = config(dir.path(), "");
    digits.data.dataset = mentor::data::DataSource::Digits;
    let msg = key(digits);
    assert!(
        msg.contains("data.transform") && msg.contains("image-folder"),
        "{msg}"
    );

    // A strategy that needs its data in memory says so, before anything is read.
    for strategy in ["continual", "multitask"] {
        let cfg = config(dir.path(), "")
            .with_overrides(&[format!("strategy.type={strategy:?}")])
            .unwrap();
        let msg = key(cfg);
        assert!(
            msg.contains("data.transform") && msg.contains("in memory"),
            "{strategy}: {msg}"
        );
    }
}

#[test]
fn contrastive_pretraining_streams_two_views_of_each_photo() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("photos");
    folder(&data, 24);
    // SimCLR's recipe in data.transform.train: both views come from the pipeline.
    let ssl = |method: &str, extra: &str| {
        let mut cfg = config(&data, extra).with_overrides(&[
            "strategy.type=\"self-supervised\"".into(),
            format!("strategy.method={method:?}"),
            "strategy.queue=16".into(),
            "strategy.monitor_examples=20".into(),
            "strategy.knn_k=5".into(),
            "model={type=\"projected\", hidden=[32], outputs=16, encoder={type=\"mlp\", hidden=[32]}}"
                .into(),
            "epochs=2".into(),
        ]).unwrap();
        let t = cfg.data.transform.as_mut().unwrap();
        t.train.steps.insert(
            3,
            toml::from_str::<Step>("op = \"random-grayscale\"\np = 0.2").unwrap(),
        );
        t.train.steps.insert(
            4,
            toml::from_str::<Step>("op = \"gaussian-blur\"\nkernel_size = 3\np = 0.5").unwrap(),
        );
        cfg
    };
    for method in ["simclr", "moco"] {
        let out = dir.path().join(method);
        let (report, a) = train(&ssl(method, "[data.loader]\nworkers = 0"), &options(&out));
        let Report::Training(summary) = report else {
            panic!("a self-supervised run reports training");
        };
        // The monitor is a kNN vote over the eval-transformed bank: the colours make it
        // easy, where the 16 projection outputs read as class scores would not be.
        assert!(
            summary.test_accuracy > 0.9,
            "{method}: {}",
            summary.test_accuracy
        );
        let (_, b) = train(
            &ssl(method, "[data.loader]\nworkers = 2\nprefetch = 2"),
            &options(&dir.path().join(format!("{method}-pool"))),
        );
        assert!(weights(&a) == weights(&b), "{method}: 0 and 2 workers");
        let log = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        assert!(log.lines().count() > 2, "{log}");
    }

    // `ssl eval` probes a streamed run's features: the training photos (not the test
    // photos) through the evaluation transform, at each fraction of their labels.
    let checkpoint = dir.path().join("simclr/checkpoints/last.ckpt");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(["ssl", "eval", "--checkpoint"])
        .arg(&checkpoint)
        .args(["--fractions", "0.5,1", "--epochs", "5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let train_photos = 2 * (24 - 5); // val_fraction 0.2 holds out round(4.8) of each class
    assert_eq!(
        rows[1]["labels"].as_u64(),
        Some(train_photos as u64),
        "{json}"
    );
    assert!(rows[1]["knn_accuracy"].as_f64().unwrap() > 0.9, "{json}");

    // Methods that need every image at once, and in-memory augmentations, are refused.
    let msg = ssl("deep-cluster", "").check().unwrap_err().to_string();
    assert!(
        msg.contains("strategy.method") && msg.contains("in memory"),
        "{msg}"
    );
    let cfg = ssl("simclr", "")
        .with_overrides(&["strategy.augment.flip=0.0".into()])
        .unwrap();
    let msg = cfg.check().unwrap_err().to_string();
    assert!(msg.contains("strategy.augment"), "{msg}");
}

#[test]
fn a_student_distils_from_a_teacher_on_streamed_photos() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("photos");
    folder(&data, 24);
    let teacher_run = dir.path().join("teacher");
    train(&config(&data, ""), &options(&teacher_run));
    let teacher = teacher_run.join("checkpoints/last.ckpt");

    // lambda = 1: the labels weigh nothing, so the student learns the colours from the
    // teacher's outputs on each augmented batch alone.
    let distill = |data: &Path, out: &str| {
        let cfg = config(data, "").with_overrides(&[
            "strategy.type=\"distill\"".into(),
            format!("strategy.teacher={:?}", teacher.display().to_string()),
            "strategy.lambda=1.0".into(),
            "strategy.temperature=2.0".into(),
        ]);
        run(
            &cfg.unwrap().check().unwrap(),
            &options(&dir.path().join(out)),
        )
    };
    let (report, _) = distill(&data, "student").unwrap();
    let Report::Training(summary) = report else {
        panic!("distillation reports training");
    };
    assert!(summary.test_accuracy > 0.9, "{}", summary.test_accuracy);

    // A teacher for other inputs is refused with one line naming both shapes.
    let wide = dir.path().join("wide");
    folder(&wide, 4);
    let small = r#"[{ op = "resize", size = 10 }, { op = "center-crop", size = 10 }, { op = "normalize", statistics = "imagenet" }]"#;
    let cfg = config(&wide, "")
        .with_overrides(&[
            "strategy.type=\"distill\"".into(),
            format!("strategy.teacher={:?}", teacher.display().to_string()),
            format!("data.transform.train={small}"),
            format!("data.transform.eval={small}"),
        ])
        .unwrap();
    let msg = run(&cfg.check().unwrap(), &options(&dir.path().join("w")))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("[3, 12, 12]") && msg.contains("[3, 10, 10]"),
        "{msg}"
    );
}

/// The epoch-1 training row's loss and accuracy in `run`'s `metrics.csv`.
fn first_train_row(run: &Path) -> String {
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let row: Vec<&str> = csv
        .lines()
        .find(|l| l.starts_with("1,train,"))
        .unwrap()
        .split(',')
        .collect();
    format!("{} {}", row[col("loss")], row[col("accuracy")])
}

#[test]
fn a_run_stopped_within_an_epoch_resumes_from_that_step_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("photos");
    folder(&data, 24);
    // A slow learning rate: the colours are learnt within the run, not in its first
    // steps, so every step still moves the weights.
    let slow = |extra: &str| {
        config(&data, extra)
            .with_overrides(&["lr=2e-4".into()])
            .unwrap()
    };
    let cfg = slow("[checkpoint]\nevery_steps = 1");
    let (_, straight) = train(&cfg, &options(&dir.path().join("straight")));

    // A photo that cannot be read stops the run where it is needed: within epoch 1 (a
    // training batch after the first) or at its end (a validation or test photo), after
    // the checkpoints of the steps before. Put back, `--resume` goes on from that step.
    let files: Vec<_> = ["train/red", "train/blue"]
        .iter()
        .flat_map(|c| std::fs::read_dir(data.join(c)).unwrap().flatten())
        .map(|e| e.path())
        .collect();
    let mut resumed_within = 0;
    for (i, file) in files.iter().take(6).enumerate() {
        let out = dir.path().join(format!("stopped-{i}"));
        let good = std::fs::read(file).unwrap();
        std::fs::write(file, b"\xff\xd8 cut").unwrap();
        let err = run(&cfg.clone().check().unwrap(), &options(&out));
        std::fs::write(file, &good).unwrap();
        assert!(err.is_err(), "{} is read", file.display());
        let last = out.join("checkpoints/last.ckpt");
        let Ok(saved) = mentor::engine::checkpoint::load(&last) else {
            continue; // stopped by the first batch: nothing written yet
        };
        if saved.state.epoch_batches == 0 {
            continue;
        }
        assert_eq!(saved.state.epochs_done, 0);
        assert!(saved.state.epoch_running.is_some());
        resumed_within += 1;
        let (_, resumed) = train(
            &cfg,
            &RunOptions {
                resume: true,
                ..options(&out)
            },
        );
        assert!(
            weights(&straight) == weights(&resumed),
            "other weights when resumed after {} batches",
            saved.state.epoch_batches
        );
        assert_eq!(
            first_train_row(&dir.path().join("straight")),
            first_train_row(&out)
        );
    }
    assert!(
        resumed_within >= 2,
        "only {resumed_within} stops within an epoch"
    );

    // Checkpoints within epochs change nothing for a network that draws no random numbers.
    let (_, plain) = train(&slow(""), &options(&dir.path().join("plain")));
    assert!(
        weights(&straight) == weights(&plain),
        "every_steps changed the weights"
    );
}

#[test]
fn a_linear_probe_trains_the_head_on_streamed_photos_and_leaves_the_backbone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("photos");
    folder(&data, 24);
    // A slow rate: at the usual 0.01 this tiny source ends where fine-tuning from it
    // leaves the backbone's bits unchanged too, and the test could not tell the two apart.
    let slow = || {
        config(&data, "")
            .with_overrides(&["lr=2e-4".into()])
            .unwrap()
    };
    let (_, source) = train(&slow(), &options(&dir.path().join("source")));
    let ckpt = dir.path().join("source/checkpoints/last.ckpt");
    let from_source = |strategy: &str, out: &str| {
        let cfg = slow()
            .with_overrides(&[
                format!("strategy.type={strategy:?}"),
                format!("init.pretrained={:?}", ckpt.display().to_string()),
            ])
            .unwrap();
        train(&cfg, &options(&dir.path().join(out)))
    };
    let (report, probe) = from_source("linear-probe", "probe");
    let Report::Training(summary) = report else {
        panic!("a probe reports training");
    };
    assert!(summary.test_accuracy > 0.9, "{}", summary.test_accuracy);
    // Fine-tuning from the same weights moves the backbone; the probe leaves every bit.
    let (_, tuned) = from_source("supervised", "tuned");
    let part = |n: &mentor::models::Network, prefix: &str| -> Vec<Vec<u32>> {
        common::weights_by_name(n)
            .into_iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, w)| w)
            .collect()
    };
    assert!(!part(&source, "backbone").is_empty());
    assert!(
        part(&tuned, "backbone") != part(&source, "backbone"),
        "fine-tuning moves it"
    );
    assert!(
        part(&probe, "backbone") == part(&source, "backbone"),
        "the probe's backbone moved"
    );
    assert!(
        part(&probe, "head") != part(&source, "head"),
        "the head was re-initialised"
    );
}
