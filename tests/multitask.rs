//! Multitask learning end to end on the embedded digits: MultiMNIST-style pairs and a
//! coarse auxiliary task, per-task accuracy, Delta_m against single-task runs, and an
//! exact resume of DWA's task weights.

mod common;
use common::*;

use mentor::config::RunConfig;
use mentor::engine::TrainOptions;
use mentor::multitask::{MultitaskConfig, run_multitask};
use mentor::strategy::StrategyConfig;

fn multitask(sets: &[&str]) -> (RunConfig, MultitaskConfig) {
    let mut all = vec!["strategy.type=\"multitask\"", "epochs=6"];
    all.extend_from_slice(sets);
    let c = config(&all);
    let StrategyConfig::Multitask(mt) = c.strategy.clone() else {
        unreachable!()
    };
    (c, mt)
}

#[test]
fn hard_sharing_learns_both_tasks_and_reports_delta_m() {
    let dir = tempfile::tempdir().unwrap();
    let mut singles = Vec::new();
    for t in 0..2 {
        let set = format!("strategy.train_tasks=[{t}]");
        let (c, mt) = multitask(&[&set]);
        let out = dir.path().join(format!("single-{t}"));
        let (s, _) = run_multitask(&c, &mt, &quiet(&out), &[]).unwrap();
        assert_eq!(s.task_accuracy.len(), 1);
        singles.push((out, s));
    }
    let (c, mt) = multitask(&[]);
    let out = dir.path().join("hard");
    let dirs: Vec<_> = singles.iter().map(|(d, _)| d.clone()).collect();
    let (s, _) = run_multitask(&c, &mt, &quiet(&out), &dirs).unwrap();
    assert_eq!(s.tasks, vec!["left", "right"]);
    // Both digits of the overlaid pair are recognised far above chance (0.1).
    for (name, acc) in s.tasks.iter().zip(&s.task_accuracy) {
        assert!(*acc > 0.5, "{name}: {acc}");
    }
    // One shared backbone: the two-task network has one extra 10-unit head, not a
    // second backbone.
    let single_params = singles[0].1.parameters;
    assert!(
        s.parameters < single_params + single_params / 10,
        "{} vs {single_params}",
        s.parameters
    );
    let base: Vec<f64> = singles.iter().map(|(_, s)| s.task_accuracy[0]).collect();
    let expected = mentor::multitask::delta_m(&s.task_accuracy, &base);
    assert_eq!(s.delta_m, Some(expected));
    assert!(out.join("task_weights.csv").is_file());
    assert_eq!(s.weights.weights.len(), 6);
}

#[test]
fn coarse_auxiliary_task_builds_from_any_grouping() {
    let dir = tempfile::tempdir().unwrap();
    let (c, mt) = multitask(&[
        "strategy.benchmark=\"coarse\"",
        "strategy.coarse_groups=[0,0,0,0,0,1,1,1,1,1]",
    ]);
    let (s, _) = run_multitask(&c, &mt, &quiet(dir.path()), &[]).unwrap();
    assert_eq!(s.tasks, vec!["classes", "coarse"]);
    assert!(
        s.task_accuracy[0] > 0.8 && s.task_accuracy[1] > 0.8,
        "{:?}",
        s.task_accuracy
    );
}

#[test]
fn dwa_weights_move_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (c, mt) = multitask(&["strategy.weighting={type=\"dwa\", temperature=0.5}"]);
    let (a, net_a) = run_multitask(&c, &mt, &quiet(&dir.path().join("a")), &[]).unwrap();
    // From epoch 3 on DWA departs from equal weights, and they always sum to K = 2.
    assert!(
        a.weights.weights[3].iter().any(|w| (w - 1.0).abs() > 1e-4),
        "{:?}",
        a.weights
    );
    for w in &a.weights.weights {
        assert!((w.iter().sum::<f64>() - 2.0).abs() < 1e-9);
    }
    let out = dir.path().join("b");
    let first = TrainOptions {
        stop_after: Some(3),
        ..quiet(&out)
    };
    run_multitask(&c, &mt, &first, &[]).unwrap();
    let second = TrainOptions {
        resume: true,
        ..quiet(&out)
    };
    let (b, net_b) = run_multitask(&c, &mt, &second, &[]).unwrap();
    assert_eq!(a.weights, b.weights);
    assert_eq!(weights(&net_a), weights(&net_b));
}
