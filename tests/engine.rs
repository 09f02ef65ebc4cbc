//! End-to-end engine properties on the embedded digits set: exact resume, frozen groups,
//! per-group rates, NaN handling and the run directory.

mod common;
use common::*;

use mentor::data::prepare_data;
use mentor::engine::checkpoint;
use mentor::engine::{CrossEntropy, EngineError, TrainOptions, seeded_init};
use mentor::models::param_infos;
use mentor::run::RunError;
use mentor::run::config::RunConfig;
use mentor::run::train;

/// Asserts bit equality, reporting how many tensors and values differ instead of
/// printing them.
fn assert_same_weights(a: &[Vec<u32>], b: &[Vec<u32>], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: parameter counts differ");
    let differing: Vec<(usize, usize)> = a
        .iter()
        .zip(b)
        .enumerate()
        .map(|(i, (x, y))| (i, x.iter().zip(y).filter(|(p, q)| p != q).count()))
        .filter(|&(_, n)| n > 0)
        .collect();
    assert!(
        differing.is_empty(),
        "{what}: weights differ in (tensor, values) {differing:?}"
    );
}

fn run_resume_case(sets: &[&str]) {
    let cfg = config(sets);
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let straight = dir.path().join("straight");
    let (_, a) = train(&cfg, &data, &mut CrossEntropy, &quiet(&straight)).unwrap();

    let split = dir.path().join("split");
    let first = TrainOptions {
        stop_after: Some(2),
        ..quiet(&split)
    };
    let (s, _) = train(&cfg, &data, &mut CrossEntropy, &first).unwrap();
    assert_eq!(s.epochs, 2);
    let second = TrainOptions {
        resume: true,
        ..quiet(&split)
    };
    let (s, b) = train(&cfg, &data, &mut CrossEntropy, &second).unwrap();
    assert_eq!(s.epochs, 4);
    assert_same_weights(&weights(&a), &weights(&b), &format!("{sets:?}"));

    // The final checkpoints hold the same weights too.
    let load = |p: &std::path::Path| {
        let ck = checkpoint::load(&p.join("checkpoints/last.ckpt")).unwrap();
        let fresh = seeded_init(
            &cfg.model,
            data.train.shape,
            10,
            &burn::tensor::Device::flex(),
            0,
        );
        weights(&ck.load_into(fresh, p).unwrap())
    };
    assert_same_weights(&load(&straight), &load(&split), "final checkpoints");
    // And the metric files agree apart from timings.
    let strip = |p: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(p.join("metrics.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(strip(&straight), strip(&split));
}

#[test]
fn resumed_mlp_with_dropout_and_adam_is_bit_identical() {
    run_resume_case(&[
        "epochs=4",
        "model.type=\"mlp\"",
        "model.dropout=0.3",
        "schedule.type=\"cosine\"",
    ]);
}

#[test]
fn resumed_cnn_with_sgd_momentum_is_bit_identical() {
    run_resume_case(&[
        "epochs=4",
        "model.type=\"cnn\"",
        "model.dropout=0.2",
        "optim.type=\"sgd\"",
        "optim.nesterov=true",
        "lr=0.05",
        "data.per_class=40",
    ]);
}

#[test]
fn frozen_groups_stay_bit_identical_and_others_move() {
    let cfg = config(&[
        "epochs=2",
        "model.type=\"cnn\"",
        "data.per_class=30",
        "groups=[{pattern=\"backbone.conv*\", frozen=true}, {pattern=\"backbone.fc\", lr_mult=0.1}]",
    ]);
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, trained) = train(&cfg, &data, &mut CrossEntropy, &quiet(dir.path())).unwrap();
    // The engine initialises from the config's seed alone: these are the starting weights.
    let device = burn::tensor::Device::flex().autodiff();
    let initial = seeded_init(&cfg.model, data.train.shape, 10, &device, cfg.seed);
    let names: Vec<String> = param_infos(&trained).into_iter().map(|p| p.name).collect();
    let (w0, w1) = (weights(&initial), weights(&trained));
    for ((name, a), b) in names.iter().zip(&w0).zip(&w1) {
        if name.starts_with("backbone.conv") {
            assert_eq!(a, b, "{name} is frozen but changed");
        } else {
            assert_ne!(a, b, "{name} should have trained");
        }
    }
}

#[test]
fn nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint() {
    let cfg = config(&[
        "epochs=3",
        "lr=1e30",
        "optim.type=\"sgd\"",
        "optim.momentum=0.0",
    ]);
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = train(&cfg, &data, &mut CrossEntropy, &quiet(dir.path())).unwrap_err();
    match &err {
        RunError::Engine(EngineError::NonFinite { .. }) => {}
        other => panic!("expected NonFinite, got {other}"),
    }
    assert!(err.to_string().contains("training stopped"), "{err}");
}

#[test]
fn run_directory_has_every_file() {
    let cfg = config(&["epochs=2", "data.per_class=20"]);
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = train(&cfg, &data, &mut CrossEntropy, &quiet(dir.path())).unwrap();
    for f in [
        "config.toml",
        "metrics.csv",
        "metrics.jsonl",
        "summary.json",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "plots/curves.png",
        "plots/curves.svg",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let saved = RunConfig::from_file(&dir.path().join("config.toml")).unwrap();
    assert_eq!(saved, cfg);
    let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 3); // header + 2 epochs x train/val/test
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    // One writer: the tagged report, never an untagged summary first.
    assert_eq!(json["kind"], "training", "{json}");
    for key in [
        "test_accuracy",
        "best_val_accuracy",
        "epochs",
        "wall_seconds",
        "train_samples_per_second",
        "seed",
        "mentor_version",
    ] {
        assert!(json.get(key).is_some(), "summary.json lacks {key}");
    }
    assert_eq!(
        json["test_accuracy"].as_f64().unwrap(),
        summary.test_accuracy
    );
    // Resuming with another config is refused.
    let other = config(&["epochs=2", "data.per_class=20", "lr=0.5"]);
    let opts = TrainOptions {
        resume: true,
        ..quiet(dir.path())
    };
    let err = train(&other, &data, &mut CrossEntropy, &opts).unwrap_err();
    assert!(err.to_string().contains("config differs"), "{err}");
    assert!(err.to_string().contains("key `lr`"), "{err}");
    // More epochs extend it.
    let more = config(&["epochs=3", "data.per_class=20"]);
    let (s, _) = train(&more, &data, &mut CrossEntropy, &opts).unwrap();
    assert_eq!(s.epochs, 3);
}

#[test]
fn group_lr_multiplier_scales_the_sgd_update() {
    use mentor::data::Batch;
    use mentor::engine::groups::GroupRule;
    use mentor::engine::groups::ParamGroups;
    use mentor::engine::train_step;

    let cfg = config(&["optim.type=\"sgd\"", "optim.momentum=0.0", "lr=0.1"]);
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let device = burn::tensor::Device::flex().autodiff();
    let idx: Vec<usize> = (0..32).collect();
    let batch = Batch::gather(&data.train, &idx, &device);
    // Update of every parameter after one step with the head at `mult` x the rate.
    let update = |mult: f64| -> Vec<Vec<f32>> {
        let net = seeded_init(&cfg.model, data.train.shape, 10, &device, 3);
        let before = weights(&net);
        let rules = [GroupRule {
            pattern: "head".into(),
            lr_mult: mult,
            frozen: false,
            unfreeze_at: None,
            freeze_bn: true,
        }];
        let groups = ParamGroups::resolve(&rules, &param_infos(&net)).unwrap();
        let mut optim = cfg.optim.init();
        let (after, _, _, _) = train_step(
            net,
            &mut optim,
            &groups,
            &mut CrossEntropy,
            &batch,
            &idx,
            cfg.lr,
        )
        .unwrap();
        weights(&after)
            .iter()
            .zip(&before)
            .map(|(a, b)| {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| f32::from_bits(*x) - f32::from_bits(*y))
                    .collect()
            })
            .collect()
    };
    let full = update(1.0);
    let tenth = update(0.1);
    let names: Vec<String> = {
        let net = seeded_init(&cfg.model, data.train.shape, 10, &device, 3);
        param_infos(&net).into_iter().map(|p| p.name).collect()
    };
    for ((name, f), t) in names.iter().zip(&full).zip(&tenth) {
        let norm = |v: &Vec<f32>| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let ratio = norm(t) / norm(f);
        let expected = if name.starts_with("head") { 0.1 } else { 1.0 };
        assert!(
            (ratio - expected).abs() < 1e-3,
            "{name}: update ratio {ratio}, expected {expected}"
        );
    }
}

#[test]
fn gradual_unfreezing_holds_then_trains_and_resumes_exactly_across_the_switch() {
    let sets = [
        "epochs=4",
        "model.type=\"cnn\"",
        "data.per_class=30",
        "groups=[{pattern=\"backbone\", frozen=true, unfreeze_at=3, lr_mult=0.1}]",
    ];
    let cfg = config(&sets);
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let device = burn::tensor::Device::flex().autodiff();
    let initial = weights_by_name(&seeded_init(
        &cfg.model,
        data.train.shape,
        10,
        &device,
        cfg.seed,
    ));
    // Stopped after epoch 2: the backbone has not moved yet.
    let opts = TrainOptions {
        stop_after: Some(2),
        ..quiet(dir.path())
    };
    let (_, at2) = train(&cfg, &data, &mut CrossEntropy, &opts).unwrap();
    for ((name, a), (_, b)) in weights_by_name(&at2).iter().zip(&initial) {
        assert_eq!(a == b, name.starts_with("backbone"), "{name} after epoch 2");
    }
    // Resumed across the switch: the backbone trains, and the result equals a straight run.
    let resume = TrainOptions {
        resume: true,
        ..quiet(dir.path())
    };
    let (_, resumed) = train(&cfg, &data, &mut CrossEntropy, &resume).unwrap();
    let straight_dir = dir.path().join("straight");
    let (_, straight) = train(&cfg, &data, &mut CrossEntropy, &quiet(&straight_dir)).unwrap();
    assert_same_weights(&weights(&resumed), &weights(&straight), "unfreeze resume");
    let moved = weights_by_name(&resumed)
        .iter()
        .zip(&initial)
        .filter(|((n, a), (_, b))| n.starts_with("backbone") && a != b)
        .count();
    assert_eq!(moved, 6, "every backbone tensor trains after unfreezing");
}

/// A checkpoint of format 1 (before the network's config and seed were recorded in its
/// state) still loads: they are read from its config text.
#[test]
fn format_one_checkpoints_still_load() {
    let cfg = config(&[
        "epochs=1",
        "data.per_class=10",
        "model.hidden=[16]",
        "seed=9",
    ]);
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, trained) = train(&cfg, &data, &mut CrossEntropy, &quiet(dir.path())).unwrap();
    let path = dir.path().join("checkpoints/last.ckpt");
    let ckpt = checkpoint::load(&path).unwrap();
    assert_eq!(ckpt.state.seed, Some(9));
    // Rewrite it as format 1 wrote it: no model or seed in the state, version 1.
    let mut state = ckpt.state.clone();
    state.model = None;
    state.seed = None;
    let old = dir.path().join("old.ckpt");
    let net = ckpt.load_into(trained.clone(), &path).unwrap();
    let optimizer = cfg.optim.init();
    checkpoint::save(&old, &net, &optimizer, &state).unwrap();
    let mut bytes = std::fs::read(&old).unwrap();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    // Format 1 had no checksum after its sections (a format-3 file whose version field
    // reads 1 still has one, and is refused as damaged).
    bytes.truncate(bytes.len() - 4);
    std::fs::write(&old, &bytes).unwrap();
    let loaded = mentor::engine::load_network(&old, &burn::tensor::Device::flex()).unwrap();
    assert_eq!(loaded.seed, 9);
    assert_eq!(loaded.model, cfg.model);
    assert_same_weights(&weights(&loaded.network), &weights(&trained), "format 1");
    // A version this mentor does not know is refused with the file named.
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(&old, &bytes).unwrap();
    let e = mentor::engine::load_network(&old, &burn::tensor::Device::flex())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("old.ckpt") && e.contains("format version 7"),
        "{e}"
    );
}

/// A run stopped between writing `best.ckpt` and `last.ckpt` (best is one epoch ahead),
/// or left by the old write order without `best.ckpt`, resumes to the uninterrupted
/// run's weights, and `best.ckpt` ends holding the best epoch's weights.
#[test]
fn a_stop_between_the_two_checkpoint_writes_loses_neither() {
    let cfg = config(&["epochs=3", "model.type=\"mlp\"", "optim.type=\"adam\""]);
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let net_of = |path: &std::path::Path| {
        let ck = checkpoint::load(path).unwrap();
        let fresh = seeded_init(
            &cfg.model,
            data.train.shape,
            10,
            &burn::tensor::Device::flex(),
            0,
        );
        (
            ck.state.epochs_done,
            ck.state.best_epoch,
            weights(&ck.load_into(fresh, path).unwrap()),
        )
    };
    let run = |options: TrainOptions| train(&cfg, &data, &mut CrossEntropy, &options).unwrap();
    let straight = dir.path().join("straight");
    let (_, a) = run(quiet(&straight));
    let (_, best_epoch, best) = net_of(&straight.join("checkpoints/best.ckpt"));

    // Between the writes of epoch 2: best.ckpt (if epoch 2 improved) is written, last.ckpt
    // still holds epoch 1.
    let split = dir.path().join("split");
    let ckpts = split.join("checkpoints");
    let stop = |n| TrainOptions {
        stop_after: Some(n),
        ..quiet(&split)
    };
    run(stop(1));
    let epoch_one = std::fs::read(ckpts.join("last.ckpt")).unwrap();
    run(TrainOptions {
        resume: true,
        ..stop(2)
    });
    std::fs::write(ckpts.join("last.ckpt"), &epoch_one).unwrap();
    let (_, b) = run(TrainOptions {
        resume: true,
        ..quiet(&split)
    });
    assert_same_weights(
        &weights(&a),
        &weights(&b),
        "resumed from between the writes",
    );
    let (_, e, w) = net_of(&ckpts.join("best.ckpt"));
    assert_eq!(e, best_epoch);
    assert_same_weights(&w, &best, "best.ckpt");

    // The old order, stopped after last.ckpt of a best epoch: best.ckpt missing. Resume
    // rebuilds it from last.ckpt.
    let old = dir.path().join("old");
    let once = TrainOptions {
        stop_after: Some(1),
        ..quiet(&old)
    };
    let (s, _) = run(once.clone());
    assert_eq!(s.best_epoch, 1);
    let (_, _, epoch_one_weights) = net_of(&old.join("checkpoints/last.ckpt"));
    std::fs::remove_file(old.join("checkpoints/best.ckpt")).unwrap();
    run(TrainOptions {
        resume: true,
        ..once
    });
    let (e, _, w) = net_of(&old.join("checkpoints/best.ckpt"));
    assert_eq!(e, 1);
    assert_same_weights(&w, &epoch_one_weights, "rebuilt best.ckpt");
}

/// A run killed after its last checkpoint but before its metrics files took that epoch's
/// rows loses no row: resuming the finished run writes them from the checkpoint.
#[test]
fn a_kill_before_the_last_metric_rows_were_written_loses_no_row() {
    let cfg = config(&["epochs=2", "data.per_class=10"]);
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    train(&cfg, &data, &mut CrossEntropy, &quiet(dir.path())).unwrap();
    let csv = dir.path().join("metrics.csv");
    let whole = std::fs::read_to_string(&csv).unwrap();
    let first_epoch: Vec<&str> = whole.lines().filter(|l| !l.starts_with("2,")).collect();
    assert!(first_epoch.len() < whole.lines().count());
    std::fs::write(&csv, first_epoch.join("\n") + "\n").unwrap();
    let resume = mentor::engine::TrainOptions {
        resume: true,
        ..quiet(dir.path())
    };
    train(&cfg, &data, &mut CrossEntropy, &resume).unwrap();
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), whole);
}

/// `eval.test_every` changes when the test split is scored, never what is trained: the
/// weights equal an every-epoch run's bit for bit, the test rows appear only on the
/// scored epochs, the summary's test accuracy is the last epoch's, and the config
/// round-trips through `config.toml`.
#[test]
fn scoring_the_test_split_less_often_changes_no_weight() {
    let dir = tempfile::tempdir().unwrap();
    let every = config(&["epochs=3", "data.per_class=20"]);
    let data = prepare_data(&every.data, every.seed).unwrap();
    let (s1, a) = train(
        &every,
        &data,
        &mut CrossEntropy,
        &quiet(&dir.path().join("a")),
    )
    .unwrap();
    let at_end = config(&["epochs=3", "data.per_class=20", "eval.test_every=0"]);
    let out = dir.path().join("b");
    let (s2, b) = train(&at_end, &data, &mut CrossEntropy, &quiet(&out)).unwrap();
    assert_same_weights(&weights(&a), &weights(&b), "test_every = 0");
    assert_eq!(s1.test_accuracy, s2.test_accuracy);
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let test_epochs: Vec<&str> = csv
        .lines()
        .filter(|l| l.contains(",test,"))
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(test_epochs, ["3"], "{csv}");
    let saved = RunConfig::from_file(&out.join("config.toml")).unwrap();
    assert_eq!(saved.eval.test_every, 0);
    // Without a validation split the test split selects checkpoints: refused.
    let e = RunConfig::default()
        .with_overrides(&["eval.test_every=2".into(), "data.val_fraction=0".into()])
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("config key `eval.test_every`: needs a validation split"),
        "{e}"
    );
}

/// `eval.val_examples = N` scores the validation split on its first N examples: the
/// weights are those of a run that scores all of it, and each validation row is the
/// score of those N examples.
#[test]
fn the_validation_split_can_be_scored_on_its_first_examples() {
    let dir = tempfile::tempdir().unwrap();
    let whole = config(&["epochs=2", "data.per_class=30"]);
    let data = prepare_data(&whole.data, whole.seed).unwrap();
    let val = data.val.as_ref().unwrap();
    let n = 7;
    assert!(val.len() > n);
    let (_, a) = train(
        &whole,
        &data,
        &mut CrossEntropy,
        &quiet(&dir.path().join("a")),
    )
    .unwrap();
    let capped = config(&["epochs=2", "data.per_class=30", "eval.val_examples=7"]);
    let out = dir.path().join("b");
    let (_, b) = train(&capped, &data, &mut CrossEntropy, &quiet(&out)).unwrap();
    assert_same_weights(&weights(&a), &weights(&b), "val_examples = 7");
    let rows = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let last_val: serde_json::Value = rows
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .rfind(|r| r["split"] == "val")
        .unwrap();
    let first: Vec<usize> = (0..n).collect();
    let (loss, accuracy) = mentor::engine::evaluate(&b, &val.select(&first), 100);
    assert!(
        (last_val["loss"].as_f64().unwrap() - loss).abs() < 1e-6,
        "{last_val}"
    );
    assert_eq!(last_val["accuracy"].as_f64().unwrap(), accuracy);
    let (whole_loss, _) = mentor::engine::evaluate(&b, val, 100);
    assert_ne!(loss, whole_loss, "the cap changed nothing to check");
    let saved = RunConfig::from_file(&out.join("config.toml")).unwrap();
    assert_eq!(saved.eval.val_examples, Some(7));
    for (sets, said) in [
        (&["eval.val_examples=0"][..], "eval.val_examples"),
        (
            &["eval.val_examples=5", "data.val_fraction=0"][..],
            "needs a validation split",
        ),
    ] {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let e = RunConfig::default()
            .with_overrides(&sets)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains(said), "{e}");
    }
}
