//! Data parallel across MPI ranks, end to end: `mpirun -np 2 mentor ...` from a
//! `--features mpi` build against the same command as one process. Needs Open MPI's
//! `mpirun` on the PATH (`scripts/mpi-check.sh` installs it and runs these tests):
//! `cargo test --release --features mpi --test mpi`.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use mentor::engine::load_network;
use mentor::models::Network;

const MENTOR: &str = env!("CARGO_BIN_EXE_mentor");

/// `mentor args` as one process.
fn alone(args: &[&str]) -> Output {
    let out = Command::new(MENTOR).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `mpirun -np ranks mentor args`, with `extra` mpirun options before the program.
fn mpirun_command(ranks: usize, extra: &[&str], args: &[&str]) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "-np", &ranks.to_string()])
        .args(extra)
        .arg(MENTOR)
        .args(args)
        // Open MPI refuses to start as root (CI containers) without these.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    cmd
}

fn mpirun(ranks: usize, args: &[&str]) -> Output {
    let out = mpirun_command(ranks, &[], args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn accuracy(dir: &Path) -> f64 {
    summary(dir)["test_accuracy"].as_f64().unwrap()
}

fn network(dir: &Path) -> Network {
    load_network(&dir.join("checkpoints/last.ckpt"), &Device::flex())
        .unwrap()
        .network
}

/// The largest difference between two networks' parameters.
fn max_difference(a: &Network, b: &Network) -> f32 {
    let (a, b) = (common::weights(a), common::weights(b));
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (f32::from_bits(*x) - f32::from_bits(*y)).abs())
        .fold(0.0, f32::max)
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// The MLP (no batch norm, no dropout) on two ranks takes the steps one process takes
/// on the whole batch: after 3 epochs (84 steps of 32) the weights differ by float
/// summation order only, and the two runs write the same kind of run directory, once.
#[test]
fn two_ranks_train_the_mlp_as_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (path(dir.path(), "one"), path(dir.path(), "two"));
    let args = |out: &Path| {
        [
            "train",
            "--dataset",
            "digits",
            "--model",
            "mlp",
            "--epochs",
            "3",
            "--batch-size",
            "32",
            "--log-format",
            "quiet",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect::<Vec<_>>()
    };
    let a = args(&one);
    alone(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let b = args(&two);
    mpirun(2, &b.iter().map(String::as_str).collect::<Vec<_>>());
    let off = max_difference(&network(&one), &network(&two));
    eprintln!("mlp: 2 ranks vs 1 process, largest weight difference {off:e}");
    assert!(off < 1e-5, "2 ranks differ from 1 process by {off}");
    assert_eq!(files(&one), files(&two));
    let (s1, s2) = (summary(&one), summary(&two));
    assert_eq!(s1["epochs"], s2["epochs"]);
    assert!(
        (accuracy(&one) - accuracy(&two)).abs() <= 0.003,
        "{s1} {s2}"
    );
    // No rank but 0 wrote anything: the metrics have one row per split and epoch.
    let rows = std::fs::read_to_string(two.join("metrics.csv")).unwrap();
    let once = std::fs::read_to_string(one.join("metrics.csv")).unwrap();
    assert_eq!(rows.lines().count(), once.lines().count());
}

/// Batch norm normalises with each rank's shard (as DDP without SyncBatchNorm), so a
/// ResNet on two ranks is another run than on one: its test accuracy stays within 0.03
/// of the one-process run's.
#[test]
fn batch_norm_networks_on_two_ranks_stay_within_a_band() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (path(dir.path(), "one"), path(dir.path(), "two"));
    let args = |out: &Path| -> Vec<String> {
        [
            "train",
            "--dataset",
            "digits",
            "--model",
            "resnet",
            "--epochs",
            "3",
            "--log-format",
            "quiet",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let a = args(&one);
    alone(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let b = args(&two);
    mpirun(2, &b.iter().map(String::as_str).collect::<Vec<_>>());
    let (a1, a2) = (accuracy(&one), accuracy(&two));
    eprintln!("resnet: test accuracy 1 process {a1}, 2 ranks {a2}");
    assert!(a1 > 0.9 && a2 > 0.9, "{a1} {a2}");
    assert!((a1 - a2).abs() <= 0.03, "1 process {a1}, 2 ranks {a2}");
}

/// Distillation (cached teacher logits, looked up by each rank's example indices) and
/// SimCLR (negatives from the rank's own shard) train on two ranks.
#[test]
fn distillation_and_simclr_train_on_two_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    alone(&[
        "train",
        "--dataset",
        "digits",
        "--model",
        "cnn",
        "--epochs",
        "3",
        "--log-format",
        "quiet",
        "--out",
        &format!("{d}/teacher"),
    ]);
    let teacher = format!("{d}/teacher/checkpoints/last.ckpt");
    let distill = |out: &str| {
        [
            "distill",
            "--teacher",
            &teacher,
            "--dataset",
            "digits",
            "--model",
            "mlp",
            "--epochs",
            "3",
            "--log-format",
            "quiet",
            "--out",
            out,
        ]
        .map(String::from)
    };
    let one = format!("{d}/distill-1");
    let two = format!("{d}/distill-2");
    alone(&distill(&one).each_ref().map(String::as_str));
    mpirun(2, &distill(&two).each_ref().map(String::as_str));
    // The MLP student has no batch norm: the same steps as one process.
    let off = max_difference(&network(Path::new(&one)), &network(Path::new(&two)));
    eprintln!("distill: 2 ranks vs 1 process, largest weight difference {off:e}");
    assert!(off < 1e-5, "distillation on 2 ranks differs by {off}");

    let simclr = format!("{d}/simclr");
    mpirun(
        2,
        &[
            "ssl",
            "pretrain",
            "--method",
            "simclr",
            "--dataset",
            "digits",
            "--model",
            "cnn",
            "--epochs",
            "2",
            "--log-format",
            "quiet",
            "--out",
            &simclr,
        ],
    );
    // The kNN monitor's accuracy of the pretrained encoder, far above chance (0.1).
    let knn = accuracy(Path::new(&simclr));
    eprintln!("simclr: kNN accuracy on 2 ranks {knn}");
    assert!(knn > 0.5, "SimCLR on 2 ranks: kNN accuracy {knn}");
}

/// An objective that keeps state per process (MoCo's queue) and the strategies whose
/// runners write their own files (continual) are refused with one line on each rank,
/// before anything is written.
#[test]
fn what_ranks_cannot_share_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for (args, said) in [
        (
            vec![
                "ssl",
                "pretrain",
                "--method",
                "moco",
                "--dataset",
                "digits",
                "--model",
                "cnn",
            ],
            "queue of past keys",
        ),
        (vec!["continual", "--dataset", "digits"], "one process"),
    ] {
        let out = dir.path().join(args[0]);
        let mut args: Vec<&str> = args;
        let out_text = out.display().to_string();
        args.extend(["--out", &out_text]);
        let run = mpirun_command(2, &[], &args).output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success());
        assert!(
            stderr.contains(said) && stderr.contains("error (rank"),
            "{stderr}"
        );
        assert!(!out.join("config.toml").exists(), "{stderr}");
    }
}

/// The pid of the rank `rank` of the job whose ranks carry `marker` in their environment.
fn rank_pid(marker: &str, rank: usize) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = env.split(|b| *b == 0).collect();
        let has = |s: &str| vars.contains(&s.as_bytes());
        if has(marker) && has(&want) {
            return Some(pid);
        }
    }
    None
}

/// A rank killed mid-run ends the job (every rank stops, with a line saying why), the
/// checkpoint rank 0 last wrote is whole, and the same command with `--resume` finishes
/// with weights bit-identical to an uninterrupted two-rank run.
#[test]
fn a_killed_rank_ends_the_job_and_the_run_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &Path| -> Vec<String> {
        [
            "train",
            "--dataset",
            "digits",
            "--model",
            "cnn",
            "--epochs",
            "30",
            "--batch-size",
            "8",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let whole = dir.path().join("whole");
    let a = args(&whole);
    mpirun(2, &a.iter().map(String::as_str).collect::<Vec<_>>());

    let killed = dir.path().join("killed");
    let marker = format!("MENTOR_TEST_JOB={}", std::process::id());
    let b = args(&killed);
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let child = mpirun_command(2, &["-x", "MENTOR_TEST_JOB"], &b)
        .env("MENTOR_TEST_JOB", std::process::id().to_string())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let last = killed.join("checkpoints/last.ckpt");
    let started = Instant::now();
    while !last.is_file() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = rank_pid(&marker, 1).expect("rank 1 is running");
    // SAFETY: sending a signal to a process is safe.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        !killed.join("summary.json").exists(),
        "the run finished before the kill: nothing was tested"
    );
    // Rank 0's checkpoint is whole: it loads (its checksum holds).
    load_network(&last, &Device::flex()).unwrap();
    let mut resumed = args(&killed);
    resumed.push("--resume".into());
    mpirun(2, &resumed.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        common::weights(&network(&killed)),
        common::weights(&network(&whole)),
        "the resumed run's weights differ"
    );
}
