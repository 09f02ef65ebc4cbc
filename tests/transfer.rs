//! Transfer learning end to end on the embedded digits set: pretrain on digits 0-4,
//! transfer to 5-9 with frozen, fine-tuned and retrained layers.

mod common;
use common::*;

use burn::tensor::Device;
use mentor::data::prepare_data;
use mentor::engine::groups::GroupRule;
use mentor::engine::{CrossEntropy, load_network};
use mentor::models::ImportReport;
use mentor::models::weights::safetensors_bytes;
use mentor::run::train;

fn pretrain(dir: &std::path::Path) -> std::path::PathBuf {
    let cfg = config(&["model.type=\"cnn\"", "epochs=3", "data.classes=[0,1,2,3,4]"]);
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let out = dir.join("source");
    train(&cfg, &data, &mut CrossEntropy, &quiet(&out)).unwrap();
    out.join("checkpoints/last.ckpt")
}

#[test]
fn frozen_pretrained_backbone_is_kept_exactly_and_the_head_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = pretrain(dir.path());
    let source = weights_by_name(&load_network(&ckpt, &Device::flex()).unwrap().network);

    let mut cfg = config(&[
        "model.type=\"cnn\"",
        "epochs=2",
        "data.classes=[5,6,7,8,9]",
        "data.per_class=20",
        "groups=[{pattern=\"backbone\", frozen=true}]",
    ]);
    cfg.init.pretrained = Some(ckpt.clone());
    cfg.validate().unwrap();
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let out = dir.path().join("target");
    let (_, net) = train(&cfg, &data, &mut CrossEntropy, &quiet(&out)).unwrap();
    for ((name, after), (_, before)) in weights_by_name(&net).iter().zip(&source) {
        if name.starts_with("backbone") {
            assert_eq!(
                after, before,
                "{name} should be the pretrained weights, untouched"
            );
        } else {
            assert_ne!(after, before, "{name} should be new");
        }
    }
    let report: ImportReport =
        serde_json::from_str(&std::fs::read_to_string(out.join("transfer.json")).unwrap()).unwrap();
    assert_eq!(report.copied.len(), 6);
    let fresh: Vec<&str> = report
        .reinitialized
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(fresh, ["head.weight", "head.bias"]);
}

#[test]
fn fine_tuned_layers_move_less_than_retrained_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = pretrain(dir.path());
    let source = weights_by_name(&load_network(&ckpt, &Device::flex()).unwrap().network);
    let mut cfg = config(&[
        "model.type=\"cnn\"",
        "epochs=2",
        "optim.type=\"sgd\"",
        "optim.momentum=0.0",
        "lr=0.05",
        "data.classes=[5,6,7,8,9]",
        "data.per_class=20",
    ]);
    cfg.init.pretrained = Some(ckpt);
    cfg.init.retrain = vec!["backbone.conv2".into()];
    cfg.groups = vec![GroupRule {
        pattern: "backbone.conv1".into(),
        lr_mult: 0.01,
        frozen: false,
        unfreeze_at: None,
        freeze_bn: true,
    }];
    cfg.validate().unwrap();
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let (_, net) = train(
        &cfg,
        &data,
        &mut CrossEntropy,
        &quiet(&dir.path().join("t")),
    )
    .unwrap();
    let dist = |name: &str| -> f32 {
        let a = &weights_by_name(&net)
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1;
        let b = &source.iter().find(|(n, _)| n == name).unwrap().1;
        a.iter()
            .zip(b)
            .map(|(x, y)| (f32::from_bits(*x) - f32::from_bits(*y)).powi(2))
            .sum::<f32>()
            .sqrt()
    };
    let conv1 = dist("backbone.conv1.weight");
    let conv2 = dist("backbone.conv2.weight");
    assert!(conv1 > 0.0, "fine-tuned conv1 must move");
    // conv2 was re-initialised, so it is far from the pretrained weights.
    assert!(conv2 > 10.0 * conv1, "conv1 moved {conv1}, conv2 {conv2}");
}

#[test]
fn transfer_cli_reports_bad_patterns_and_trains() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = pretrain(dir.path());
    let runs = std::cell::Cell::new(0);
    let run = |extra: &[&str]| {
        runs.set(runs.get() + 1);
        let out = dir.path().join(format!("cli-{}", runs.get()));
        let mut args = vec![
            "transfer",
            "--pretrained",
            ckpt.to_str().unwrap(),
            "--model",
            "cnn",
            "--set",
            "data.classes=[5,6,7,8,9]",
            "--epochs",
            "1",
            "--log-format",
            "quiet",
            "--out",
        ];
        let out_s = out.to_str().unwrap().to_string();
        args.push(&out_s);
        args.extend_from_slice(extra);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_mentor"))
            .args(&args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[
        "--freeze",
        "backbone.conv*",
        "--finetune",
        "backbone.fc=0.1",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(&[
        "--retrain",
        "backbone.nope",
        "--freeze",
        "x",
        "--finetune",
        "y=1",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("backbone.nope") || err.contains("`x`"),
        "{err}"
    );
    let (code, err) = run(&["--finetune", "backbone.fc"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("PATTERN=MULT"), "{err}");
    // `--set init.keep_head=true` is checked after --pretrained is applied (it was
    // refused as "needs init.pretrained") and keeps the head: nothing re-initialised.
    let (code, err) = run(&["--set", "init.keep_head=true"]);
    assert_eq!(code, Some(0), "{err}");
    let report: ImportReport = serde_json::from_str(
        &std::fs::read_to_string(
            dir.path()
                .join(format!("cli-{}", runs.get()))
                .join("transfer.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(
        report.reinitialized.is_empty(),
        "{:?}",
        report.reinitialized
    );
}

#[test]
fn linear_probe_on_cached_features_matches_a_frozen_backbone_run() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = pretrain(dir.path());
    let mut heads = Vec::new();
    for strategy in ["supervised", "linear-probe"] {
        let mut cfg = config(&[
            "model.type=\"cnn\"".to_string(),
            "epochs=3".into(),
            "lr=0.01".into(),
            "data.classes=[5,6,7,8,9]".into(),
            "data.per_class=20".into(),
            "groups=[{pattern=\"backbone\", frozen=true}]".into(),
            format!("strategy.type=\"{strategy}\""),
        ]);
        cfg.init.pretrained = Some(ckpt.clone());
        let data = prepare_data(&cfg.data, cfg.seed).unwrap();
        let mut objective =
            mentor::run::strategy::build_objective(&cfg, &data, &Device::flex()).unwrap();
        let out = dir.path().join(strategy);
        let (_, net) = train(&cfg, &data, objective.as_mut(), &quiet(&out)).unwrap();
        heads.push(weights_by_name(&net));
    }
    for ((name, a), (_, b)) in heads[0].iter().zip(&heads[1]) {
        let max_diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f32::from_bits(*x) - f32::from_bits(*y)).abs())
            .fold(0.0f32, f32::max);
        assert!(
            max_diff < 1e-4,
            "{name}: cached and per-batch features differ by {max_diff}"
        );
    }
}

#[test]
fn svm_head_trains_on_frozen_features() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = pretrain(dir.path());
    let mut cfg = config(&[
        "model.type=\"cnn\"",
        "epochs=5",
        "lr=0.01",
        "optim.weight_decay=1e-4",
        "data.classes=[5,6,7,8,9]",
        "data.per_class=20",
        "strategy.type=\"linear-probe\"",
        "strategy.loss=\"hinge\"",
    ]);
    cfg.init.pretrained = Some(ckpt.clone());
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let mut objective =
        mentor::run::strategy::build_objective(&cfg, &data, &Device::flex()).unwrap();
    let out = dir.path().join("svm");
    let (summary, net) = train(&cfg, &data, objective.as_mut(), &quiet(&out)).unwrap();
    assert!(summary.test_accuracy > 0.4, "{}", summary.test_accuracy);
    // The backbone received no gradient: it is still the pretrained one.
    let source = weights_by_name(&load_network(&ckpt, &Device::flex()).unwrap().network);
    for ((name, a), (_, b)) in weights_by_name(&net).iter().zip(&source) {
        if name.starts_with("backbone") {
            assert_eq!(a, b, "{name} moved");
        }
    }
}

#[test]
fn advisor_measures_size_and_similarity_and_writes_a_runnable_config() {
    use mentor::run::advise::{AdvisorConfig, Quadrant, advise};
    let dir = tempfile::tempdir().unwrap();
    let ckpt = pretrain(dir.path());
    let target = config(&[
        "model.type=\"cnn\"",
        "epochs=2",
        "data.classes=[5,6,7,8,9]",
        "data.per_class=30",
        "data.val_fraction=0.3",
    ]);
    let data = prepare_data(&target.data, target.seed).unwrap();
    let cfg = AdvisorConfig {
        probe_epochs: 3,
        ..AdvisorConfig::default()
    };
    let advice = advise(&ckpt, &target, &data, &cfg, &dir.path().join("probes")).unwrap();
    let e = &advice.evidence;
    assert!((e.examples_per_class - 21.0).abs() < 1.0, "{e:?}");
    assert!((0.0..=1.0).contains(&e.probe_pretrained) && (0.0..=1.0).contains(&e.probe_random));
    assert!(
        e.feature_distance
            .is_some_and(|d| d.is_finite() && d >= 0.0)
    );
    // 21 examples a class is small whatever the similarity.
    assert!(matches!(
        advice.quadrant,
        Quadrant::SmallSimilar | Quadrant::SmallDissimilar
    ));
    // The recommended run is a valid config that trains.
    advice.config.validate().unwrap();
    let mut objective =
        mentor::run::strategy::build_objective(&advice.config, &data, &Device::flex()).unwrap();
    let out = dir.path().join("advised");
    train(&advice.config, &data, objective.as_mut(), &quiet(&out)).unwrap();
    assert!(out.join("transfer.json").is_file());

    // The same weights as a file, as `transfer` reads them: advised on the probes
    // alone (a weights file names no source data for the distance).
    let file = dir.path().join("source.safetensors");
    let source = load_network(&ckpt, &Device::flex()).unwrap().network;
    std::fs::write(&file, safetensors_bytes(&source).unwrap()).unwrap();
    let from_file = advise(&file, &target, &data, &cfg, &dir.path().join("probes-file")).unwrap();
    assert_eq!(from_file.evidence.probe_pretrained, e.probe_pretrained);
    assert!(from_file.evidence.feature_distance.is_none());
}

#[test]
fn safetensors_export_seeds_a_transfer_with_a_partial_load() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = pretrain(dir.path());
    let source = load_network(&ckpt, &Device::flex()).unwrap().network;
    let file = dir.path().join("source.safetensors");
    std::fs::write(&file, safetensors_bytes(&source).unwrap()).unwrap();
    let mut cfg = config(&[
        "model.type=\"cnn\"",
        "epochs=1",
        "data.classes=[5,6,7,8,9]",
        "data.per_class=20",
        "groups=[{pattern=\"backbone\", frozen=true}]",
    ]);
    cfg.init.pretrained = Some(file);
    cfg.init.load_only = vec!["backbone.conv*".into()];
    cfg.validate().unwrap();
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let out = dir.path().join("t");
    let (_, net) = train(&cfg, &data, &mut CrossEntropy, &quiet(&out)).unwrap();
    let (got, want) = (weights_by_name(&net), weights_by_name(&source));
    for ((name, a), (_, b)) in got.iter().zip(&want) {
        // Convolutions came from the file (and stayed frozen); fc was not loaded.
        assert_eq!(a == b, name.starts_with("backbone.conv"), "{name}");
    }
    let report: ImportReport =
        serde_json::from_str(&std::fs::read_to_string(out.join("transfer.json")).unwrap()).unwrap();
    assert_eq!(report.copied.len(), 4);
}

/// The value `scripts/make_pt_fixture.py` wrote at flat (PyTorch, row-major) index `i`
/// of tensor `t`.
fn fixture_value(t: usize, i: usize) -> f32 {
    ((0.37 * i as f64 + t as f64).sin() / 4.0) as f32
}

#[test]
fn a_pytorch_state_dict_seeds_a_run_through_a_key_map() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-mlp.pt");
    let mut cfg = config(&["model.hidden=[16]", "epochs=1"]);
    cfg.init.pretrained = Some(fixture.clone());
    cfg.init.keep_head = true;
    cfg.init.key_map = vec!["model.0.=backbone.fc.0.".into(), "model.2.=head.".into()];
    cfg.validate().unwrap();
    let device = Device::flex();
    let fresh = mentor::engine::seeded_init(&cfg.model, [1, 8, 8], 10, &device, 1);
    let (net, report) = mentor::transfer::import_pretrained(fresh, &cfg.init, &device).unwrap();
    assert_eq!(report.copied.len(), 4, "{report:?}");
    let by_name: std::collections::HashMap<String, Vec<u32>> =
        weights_by_name(&net).into_iter().collect();
    let value = |name: &str, k: usize| f32::from_bits(by_name[name][k]);
    // torch's Linear weight is [out, in]; Burn's is [in, out]: element (i, o) of the
    // imported weight is PyTorch's (o, i).
    for (name, t, inputs, outputs) in [
        ("backbone.fc.0.weight", 0, 64, 16),
        ("head.weight", 2, 16, 10),
    ] {
        for i in 0..inputs {
            for o in 0..outputs {
                assert_eq!(
                    value(name, i * outputs + o),
                    fixture_value(t, o * inputs + i),
                    "{name}"
                );
            }
        }
    }
    for (name, t, n) in [("backbone.fc.0.bias", 1, 16), ("head.bias", 3, 10)] {
        for k in 0..n {
            assert_eq!(value(name, k), fixture_value(t, k), "{name}");
        }
    }
    // Without the key map nothing matches: an error, not a silently fresh network.
    cfg.init.key_map.clear();
    let fresh = mentor::engine::seeded_init(&cfg.model, [1, 8, 8], 10, &device, 1);
    let err = mentor::transfer::import_pretrained(fresh, &cfg.init, &device)
        .expect_err("no key matches without the map")
        .to_string();
    assert!(err.contains("backbone.fc.0.weight"), "{err}");
    // A file that is not a checkpoint is a clear error naming it.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pt");
    std::fs::write(&bad, b"not a zip").unwrap();
    cfg.init.pretrained = Some(bad);
    let fresh = mentor::engine::seeded_init(&cfg.model, [1, 8, 8], 10, &device, 1);
    let err = mentor::transfer::import_pretrained(fresh, &cfg.init, &device)
        .expect_err("not a checkpoint")
        .to_string();
    assert!(err.contains("bad.pt") && err.contains("PyTorch"), "{err}");
}

/// `[init] pretrained` is decided before the engine runs, for every strategy: a continual
/// run's first task and a multitask network start from the pretrained backbone. With a
/// learning rate far below the weights' precision (Adam's step is about `lr`), training
/// leaves the weights bit-identical, so the trained backbone *is* the starting one.
#[test]
fn pretrained_weights_start_continual_and_multitask_runs() {
    let dir = tempfile::tempdir().unwrap();
    let source_cfg = config(&["epochs=1", "data.per_class=20", "model.hidden=[32]"]);
    let source_out = dir.path().join("source");
    mentor::run::run(
        &source_cfg.check().unwrap(),
        &mentor::run::RunOptions {
            log: mentor::engine::LogFormat::Quiet,
            ..mentor::run::RunOptions::new(&source_out)
        },
    )
    .unwrap();
    let ckpt = source_out.join("checkpoints/last.ckpt");
    let source = weights_by_name(&load_network(&ckpt, &Device::flex()).unwrap().network);
    for (name, sets) in [
        (
            "continual",
            vec![
                "strategy.type=\"continual\"",
                "strategy.tasks=2",
                "strategy.iterations_per_task=3",
                "data.val_fraction=0.0",
            ],
        ),
        ("multitask", vec!["strategy.type=\"multitask\"", "epochs=1"]),
    ] {
        let mut all = vec!["model.hidden=[32]", "data.per_class=20", "lr=1e-30"];
        all.extend(sets);
        let mut cfg = config(&all);
        cfg.init.pretrained = Some(ckpt.clone());
        let out = dir.path().join(name);
        let (_, net) = mentor::run::run(
            &cfg.check().unwrap(),
            &mentor::run::RunOptions {
                log: mentor::engine::LogFormat::Quiet,
                ..mentor::run::RunOptions::new(&out)
            },
        )
        .unwrap();
        assert!(
            out.join("transfer.json").is_file(),
            "{name}: no transfer.json"
        );
        let trained = weights_by_name(&net);
        let backbone: Vec<_> = trained
            .iter()
            .filter(|(n, _)| n.starts_with("backbone"))
            .collect();
        assert!(!backbone.is_empty(), "{name}: {trained:?}");
        for (n, w) in backbone {
            let (_, before) = source.iter().find(|(s, _)| s == n).unwrap();
            assert_eq!(w, before, "{name}: {n} is not the pretrained weight");
        }
    }
}

/// Every tensor of a network by name, as raw bits.
type Tensors = Vec<(String, Vec<u32>)>;

/// A ResNet pretrained on digits 0-4, transferred to 5-9 with its backbone frozen:
/// `freeze_bn` as given. The pretrained tensors and the transferred ones.
fn frozen_resnet_transfer(dir: &std::path::Path, freeze_bn: bool) -> (Tensors, Tensors) {
    let source_cfg = config(&[
        "model.type=\"resnet\"",
        "model.width=4",
        "epochs=1",
        "data.classes=[0,1,2,3,4]",
        "data.per_class=20",
    ]);
    let data = prepare_data(&source_cfg.data, source_cfg.seed).unwrap();
    let source_out = dir.join("source");
    train(&source_cfg, &data, &mut CrossEntropy, &quiet(&source_out)).unwrap();
    let ckpt = source_out.join("checkpoints/last.ckpt");
    let before = weights_by_name(&load_network(&ckpt, &Device::flex()).unwrap().network);

    let mut cfg = config(&[
        "model.type=\"resnet\"",
        "model.width=4",
        "epochs=2",
        "data.classes=[5,6,7,8,9]",
        "data.per_class=20",
        &format!("groups=[{{pattern=\"backbone\", frozen=true, freeze_bn={freeze_bn}}}]"),
    ]);
    cfg.init.pretrained = Some(ckpt);
    cfg.validate().unwrap();
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let (_, net) = train(&cfg, &data, &mut CrossEntropy, &quiet(&dir.join("target"))).unwrap();
    (before, weights_by_name(&net))
}

#[test]
fn a_frozen_backbone_keeps_every_tensor_and_batch_norm_statistic_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = frozen_resnet_transfer(dir.path(), true);
    assert_eq!(before.len(), after.len());
    let mut statistics = 0;
    for ((name, a), (_, b)) in after.iter().zip(&before) {
        if name.starts_with("backbone") {
            statistics += name.contains("running_") as usize;
            assert_eq!(a, b, "{name} is in a frozen group but changed");
        } else {
            assert_ne!(a, b, "{name} should have trained");
        }
    }
    assert!(
        statistics >= 10,
        "the resnet has batch norms ({statistics} statistics seen)"
    );
}

#[test]
fn freeze_bn_false_keeps_updating_the_frozen_batch_norm_statistics_only() {
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = frozen_resnet_transfer(dir.path(), false);
    let mut moved = 0;
    for ((name, a), (_, b)) in after.iter().zip(&before) {
        if name.contains("running_") {
            moved += (a != b) as usize;
        } else if name.starts_with("backbone") {
            assert_eq!(a, b, "{name} is a frozen weight but changed");
        }
    }
    assert!(
        moved > 0,
        "with freeze_bn = false the statistics follow the new data"
    );
}
