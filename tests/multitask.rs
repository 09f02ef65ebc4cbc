//! Multitask learning end to end on the embedded digits: MultiMNIST-style pairs and a
//! coarse auxiliary task, per-task accuracy, Delta_m against single-task runs, and an
//! exact resume of DWA's task weights.

mod common;
use common::*;

use mentor::engine::TrainOptions;
use mentor::multitask::MultitaskConfig;
use mentor::run::config::RunConfig;
use mentor::run::strategy::StrategyConfig;

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
fn dynamic_weights_move_and_resume_exactly() {
    for weighting in [
        "{type=\"dwa\", temperature=0.5}",
        "{type=\"uncertainty\"}",
        "{type=\"gradnorm\", alpha=1.5}",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let set = format!("strategy.weighting={weighting}");
        let (c, mt) = multitask(&[&set]);
        let (a, net_a) = run_multitask(&c, &mt, &quiet(&dir.path().join("a")), &[]).unwrap();
        // By the fourth epoch the weights have left their start (equal weights; 0.5 for
        // uncertainty's 1 / (2 exp(0))).
        let start = a.weights.weights[0][0];
        assert!(
            a.weights.weights[3]
                .iter()
                .any(|w| (w - start).abs() > 1e-4),
            "{weighting}: {:?}",
            a.weights
        );
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
        assert_eq!(a.weights, b.weights, "{weighting}");
        assert_eq!(weights(&net_a), weights(&net_b), "{weighting}");
    }
}

#[test]
fn dwa_and_gradnorm_weights_sum_to_the_task_count() {
    for weighting in ["{type=\"dwa\"}", "{type=\"gradnorm\"}"] {
        let dir = tempfile::tempdir().unwrap();
        let set = format!("strategy.weighting={weighting}");
        let (c, mt) = multitask(&[&set]);
        let (s, _) = run_multitask(&c, &mt, &quiet(dir.path()), &[]).unwrap();
        for w in &s.weights.weights {
            assert!(
                (w.iter().sum::<f64>() - 2.0).abs() < 1e-6,
                "{weighting}: {w:?}"
            );
        }
    }
    // GradNorm on task columns takes each column's own representation.
    let dir = tempfile::tempdir().unwrap();
    let (c, mt) = multitask(&[
        "strategy.weighting={type=\"gradnorm\"}",
        "strategy.architecture={type=\"cross-stitch\"}",
    ]);
    let (s, _) = run_multitask(&c, &mt, &quiet(dir.path()), &[]).unwrap();
    assert!(
        s.weights.weights[3].iter().any(|w| (w - 1.0).abs() > 1e-4),
        "{:?}",
        s.weights
    );
    for w in &s.weights.weights {
        assert!((w.iter().sum::<f64>() - 2.0).abs() < 1e-6, "{w:?}");
    }
}

#[test]
fn soft_sharing_with_lambda_zero_trains_each_column_as_its_own_network() {
    let dir = tempfile::tempdir().unwrap();
    // The single-task network of task 0 ...
    let (c, mt) = multitask(&["strategy.train_tasks=[0]", "epochs=3"]);
    let (_, single) = run_multitask(&c, &mt, &quiet(&dir.path().join("single")), &[]).unwrap();
    // ... and the soft-shared pair without cross-talk: column 0 draws its initial weights
    // first from the same seed, sees the same batches and gets gradients from its own
    // task only, so it ends bit-identical.
    let (c, mt) = multitask(&[
        "strategy.architecture={type=\"soft\", lambda=0.0}",
        "epochs=3",
    ]);
    let (s, pair) = run_multitask(&c, &mt, &quiet(&dir.path().join("soft")), &[]).unwrap();
    assert_eq!(s.architecture, "soft");
    let single = weights_by_name(&single);
    let pair = weights_by_name(&pair);
    let column0: Vec<_> = pair
        .iter()
        .filter_map(|(n, w)| n.strip_prefix("mlp.0.").map(|n| (n.to_string(), w.clone())))
        .collect();
    assert_eq!(column0.len(), single.len());
    assert_eq!(column0, single);
    // With cross-talk the columns are pulled together: column 0 no longer matches.
    let (c, mt) = multitask(&[
        "strategy.architecture={type=\"soft\", lambda=0.01}",
        "epochs=3",
    ]);
    let (_, tied) = run_multitask(&c, &mt, &quiet(&dir.path().join("tied")), &[]).unwrap();
    let tied0: Vec<_> = weights_by_name(&tied)
        .into_iter()
        .filter_map(|(n, w)| n.strip_prefix("mlp.0.").map(|n| (n.to_string(), w)))
        .collect();
    assert_ne!(tied0, single);
}

#[test]
fn cross_stitch_learns_its_mixing_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (c, mt) = multitask(&["strategy.architecture={type=\"cross-stitch\", stitch_self=0.9}"]);
    let (s, net) = run_multitask(&c, &mt, &quiet(dir.path()), &[]).unwrap();
    assert!(
        s.task_accuracy.iter().all(|a| *a > 0.5),
        "{:?}",
        s.task_accuracy
    );
    let alphas: Vec<(String, Vec<u32>)> = weights_by_name(&net)
        .into_iter()
        .filter(|(n, _)| n.starts_with("stitch."))
        .collect();
    // One 2x2 unit per hidden layer of the default MLP (two), trained away from init.
    assert_eq!(alphas.len(), 2);
    let init: Vec<u32> = [0.9f32, 0.1, 0.1, 0.9]
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert!(alphas.iter().all(|(_, a)| *a != init));
}

#[test]
fn tasks_from_two_datasets_train_each_head_on_its_own_examples() {
    let dir = tempfile::tempdir().unwrap();
    // Digits twice stand in for two datasets with the same image shape (MNIST and
    // Fashion-MNIST in the experiments): every example is labelled for one task only.
    let (c, mt) = multitask(&[
        "strategy.benchmark=\"datasets\"",
        "strategy.second_dataset=\"digits\"",
    ]);
    let (s, _) = run_multitask(&c, &mt, &quiet(&dir.path().join("both")), &[]).unwrap();
    assert_eq!(s.tasks, vec!["first", "second"]);
    assert!(
        s.task_accuracy.iter().all(|a| *a > 0.8),
        "{:?}",
        s.task_accuracy
    );
    // The engine's training set holds each example once, scored on its own task.
    let metrics = std::fs::read_to_string(dir.path().join("both/metrics.csv")).unwrap();
    let last_train = metrics.lines().rfind(|l| l.contains(",train,")).unwrap();
    let train_acc: f64 = last_train.split(',').nth(3).unwrap().parse().unwrap();
    assert!(train_acc > 0.8, "{last_train}");
    // Without the second dataset the benchmark is refused with the key.
    let sets: Vec<String> = [
        "strategy.type=\"multitask\"",
        "strategy.benchmark=\"datasets\"",
    ]
    .map(String::from)
    .to_vec();
    let err = RunConfig::default()
        .with_overrides(&sets)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("strategy.second_dataset"), "{err}");
}

#[test]
fn tasks_can_have_different_losses() {
    let dir = tempfile::tempdir().unwrap();
    // The left digit with softmax cross-entropy, the right one with a linear SVM head.
    let (c, mt) = multitask(&["strategy.task_losses=[\"cross-entropy\", \"hinge\"]"]);
    let (s, _) = run_multitask(&c, &mt, &quiet(&dir.path().join("mixed")), &[]).unwrap();
    assert!(
        s.task_accuracy.iter().all(|a| *a > 0.5),
        "{:?}",
        s.task_accuracy
    );
    // The hinge task's loss is a margin loss, not a cross-entropy: its values differ from
    // the all-cross-entropy run's on the same data and seed.
    let (c2, mt2) = multitask(&[]);
    let (ce, _) = run_multitask(&c2, &mt2, &quiet(&dir.path().join("ce")), &[]).unwrap();
    assert_ne!(s.weights.losses[0][1], ce.weights.losses[0][1]);
    // One loss per trained task, and GradNorm needs cross-entropy.
    for (sets, key) in [
        (
            vec!["strategy.task_losses=[\"hinge\"]"],
            "strategy.task_losses",
        ),
        (
            vec![
                "strategy.task_losses=[\"hinge\", \"hinge\"]",
                "strategy.weighting={type=\"gradnorm\"}",
            ],
            "strategy.weighting",
        ),
    ] {
        let mut all = vec!["strategy.type=\"multitask\"".to_string()];
        all.extend(sets.iter().map(|s| s.to_string()));
        let err = RunConfig::default()
            .with_overrides(&all)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{err}");
    }
}
