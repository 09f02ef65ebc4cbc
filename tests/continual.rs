//! Continual learning end to end on the embedded digits cut into tasks: the run
//! directory, forgetting under class-IL fine-tuning, what each method changes, and exact
//! resume of a run killed in the middle of a task.

mod common;
use common::*;

use common::run_continual;
use mentor::continual::{ContinualConfig, StopPoint};
use mentor::models::param_infos;
use mentor::run::config::RunConfig;
use mentor::run::strategy::StrategyConfig;

fn continual(sets: &[&str]) -> (RunConfig, ContinualConfig) {
    let mut all = vec![
        "data.val_fraction=0.0",
        "strategy.type=\"continual\"",
        "strategy.iterations_per_task=60",
        "model.hidden=[64]",
    ];
    all.extend_from_slice(sets);
    let c = config(&all);
    let StrategyConfig::Continual(cc) = c.strategy.clone() else {
        unreachable!()
    };
    (c, cc)
}

#[test]
fn class_incremental_finetuning_forgets_and_replay_remembers() {
    let dir = tempfile::tempdir().unwrap();
    let (c, cc) = continual(&["strategy.setting=\"class-il\""]);
    let out = dir.path().join("finetune");
    let (ft, _) = run_continual(&c, &cc, &quiet(&out), None).unwrap();
    // The run directory: one engine run per task, the matrix as CSV and heatmap.
    for f in [
        "config.toml",
        "summary.json",
        "accuracy_matrix.csv",
        "plots/accuracy_matrix.png",
        "plots/accuracy_matrix.svg",
        "task-1/checkpoints/last.ckpt",
        "task-5/metrics.csv",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // summary.json has one writer, the run's tagged report; a task has none of its own.
    assert_eq!(summary(&out)["kind"], "continual");
    for t in 1..=5 {
        assert!(!out.join(format!("task-{t}/summary.json")).exists());
    }
    let csv = std::fs::read_to_string(out.join("accuracy_matrix.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 5 + 1, "{csv}");
    assert_eq!(ft.matrix.rows.len(), 5);
    // Each task is learnt when it is trained...
    for (i, row) in ft.matrix.rows.iter().enumerate() {
        assert!(row[i] > 0.9, "task {} after training it: {}", i + 1, row[i]);
    }
    // ...and fine-tuning on the next classes wipes it out (van de Ven & Tolias: ~20%).
    assert!(
        ft.mean_forgetting > 0.7,
        "forgetting {}",
        ft.mean_forgetting
    );
    assert!(ft.average_accuracy < 0.4, "ACC {}", ft.average_accuracy);

    let (c, cc) = continual(&[
        "strategy.setting=\"class-il\"",
        "strategy.method={type=\"replay\", buffer_size=200}",
    ]);
    let (replay, _) = run_continual(&c, &cc, &quiet(&dir.path().join("replay")), None).unwrap();
    assert!(
        replay.average_accuracy > ft.average_accuracy + 0.3,
        "replay {} vs fine-tune {}",
        replay.average_accuracy,
        ft.average_accuracy
    );
}

#[test]
fn feature_extraction_keeps_the_backbone_of_the_first_task() {
    let dir = tempfile::tempdir().unwrap();
    let (c, cc) = continual(&[
        "strategy.tasks=2",
        "strategy.method.type=\"feature-extraction\"",
    ]);
    let out = dir.path().join("fx");
    let (_, last) = run_continual(&c, &cc, &quiet(&out), None).unwrap();
    let first = mentor::engine::load_network(
        &out.join("task-1/checkpoints/last.ckpt"),
        &burn::tensor::Device::flex(),
    )
    .unwrap()
    .network;
    let (a, b) = (weights_by_name(&first), weights_by_name(&last));
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        if name.starts_with("backbone") {
            assert_eq!(x, y, "{name} moved");
        }
    }
    assert!(
        a.iter()
            .zip(&b)
            .any(|((n, x), (_, y))| n.starts_with("head") && x != y),
        "the head did not train"
    );
}

#[test]
fn ewc_and_lwf_reduce_task_incremental_forgetting_against_finetuning() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, method: &str| {
        let set = format!("strategy.method={method}");
        let (c, cc) = continual(&["strategy.iterations_per_task=100", &set]);
        run_continual(&c, &cc, &quiet(&dir.path().join(name)), None)
            .unwrap()
            .0
    };
    let ft = run("ft", "{type=\"finetune\"}");
    let ewc = run("ewc", "{type=\"ewc\", lambda=1e7}");
    let lwf = run("lwf", "{type=\"lwf\", lambda=1.0}");
    // EWC's strong pull keeps old tasks (its own reason to exist); LwF at least does not
    // forget more than plain fine-tuning.
    assert!(
        ewc.mean_forgetting < ft.mean_forgetting,
        "ewc {} vs ft {}",
        ewc.mean_forgetting,
        ft.mean_forgetting
    );
    assert!(
        lwf.mean_forgetting <= ft.mean_forgetting + 0.01,
        "lwf {} vs ft {}",
        lwf.mean_forgetting,
        ft.mean_forgetting
    );
}

#[test]
fn a_run_killed_inside_a_task_resumes_to_the_same_weights_and_matrix() {
    for method in [
        "{type=\"ewc\", lambda=1e5, online=true}",
        "{type=\"replay\", buffer_size=50}",
        "{type=\"lwf\"}",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let set = format!("strategy.method={method}");
        let (c, cc) = continual(&["strategy.setting=\"class-il\"", &set]);
        let (whole, a) = run_continual(&c, &cc, &quiet(&dir.path().join("a")), None).unwrap();

        let out = dir.path().join("b");
        let stop = StopPoint {
            tasks: 2,
            epochs: 2,
        };
        let (partial, _) = run_continual(&c, &cc, &quiet(&out), Some(stop)).unwrap();
        assert_eq!(partial.matrix.rows.len(), 2, "{method}");
        assert!(out.join("task-3/checkpoints/last.ckpt").is_file());
        let resume = mentor::engine::TrainOptions {
            resume: true,
            ..quiet(&out)
        };
        let (resumed, b) = run_continual(&c, &cc, &resume, None).unwrap();
        assert_eq!(whole.matrix, resumed.matrix, "{method}");
        assert_eq!(weights(&a), weights(&b), "{method}: final weights differ");
        assert_eq!(param_infos(&a).len(), param_infos(&b).len());
    }
}

#[test]
fn bad_continual_configs_are_refused_with_the_key() {
    let base = RunConfig::default();
    for (set, key) in [
        ("strategy={type=\"continual\", tasks=1}", "strategy.tasks"),
        (
            "strategy={type=\"continual\", method={type=\"lwf\", temperature=0.0}}",
            "strategy.method.temperature",
        ),
        (
            "strategy={type=\"continual\", method={type=\"replay\", buffer_size=0}}",
            "strategy.method.buffer_size",
        ),
    ] {
        let err = base
            .with_overrides(&[set.to_string()])
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{set}: {err}");
    }
    // The val split would be held out and never used: refused.
    let (mut c, cc) = continual(&[]);
    c.data.val_fraction = 0.1;
    let dir = tempfile::tempdir().unwrap();
    let err = run_continual(&c, &cc, &quiet(dir.path()), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("val_fraction"), "{err}");
}

/// A run killed after it saved its progress but before `accuracy_matrix.csv` was
/// rewritten loses no row: resuming it (nothing left to train) writes the file again.
#[test]
fn a_kill_before_the_last_matrix_row_was_written_loses_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let (c, cc) = continual(&["strategy.tasks=2", "strategy.iterations_per_task=20"]);
    let out = dir.path().join("r");
    run_continual(&c, &cc, &quiet(&out), None).unwrap();
    let csv = out.join("accuracy_matrix.csv");
    let whole = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = whole.lines().collect();
    std::fs::write(&csv, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let resume = mentor::engine::TrainOptions {
        resume: true,
        ..quiet(&out)
    };
    run_continual(&c, &cc, &resume, None).unwrap();
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), whole);
}
