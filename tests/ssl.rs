//! Self-supervised learning end to end: SimCLR and MoCo pretraining on the embedded
//! digits with the kNN monitor, exact resume (epoch-seeded views; MoCo's key encoder and
//! queue), the relative-position task on images large enough for its grid, and the
//! label-fraction probes.

mod common;
use common::*;

use mentor::data::Dataset;
use mentor::data::PreparedData;
use mentor::run::config::RunConfig;
use mentor::run::strategy::build_objective;
use mentor::run::train;
use mentor::ssl::probe::{ProbeConfig, probe};

/// A self-supervised run on digits: an MLP encoder (64 features), a 32-wide projection.
fn ssl_config(method: &str, epochs: usize) -> RunConfig {
    config(&[
        "strategy.type=\"self-supervised\"".to_string(),
        format!("strategy.method=\"{method}\""),
        "strategy.queue=256".into(),
        "strategy.monitor_examples=500".into(),
        "strategy.augment.flip=0.0".into(),
        "strategy.augment.crop_scale=[0.3,1.0]".into(),
        "model={type=\"projected\", hidden=[64], outputs=32, encoder={type=\"mlp\", hidden=[64]}}"
            .into(),
        format!("epochs={epochs}"),
        "batch_size=64".into(),
    ])
}

fn run(
    cfg: &RunConfig,
    out: &std::path::Path,
    stop_after: Option<usize>,
    resume: bool,
) -> Vec<Vec<u32>> {
    let data = mentor::data::prepare_data(&cfg.data, cfg.seed).unwrap();
    let mut objective = build_objective(cfg, &data, &burn::tensor::Device::flex()).unwrap();
    let options = mentor::engine::TrainOptions {
        stop_after,
        resume,
        ..quiet(out)
    };
    let (_, network) = train(cfg, &data, objective.as_mut(), &options).unwrap();
    weights(&network)
}

fn history(out: &std::path::Path, split: &str, column: usize) -> Vec<f64> {
    std::fs::read_to_string(out.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some(split))
        .map(|l| l.split(',').nth(column).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn simclr_lowers_its_loss_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ssl_config("simclr", 3);
    let straight = run(&cfg, &dir.path().join("a"), None, false);
    run(&cfg, &dir.path().join("b"), Some(1), false);
    let resumed = run(&cfg, &dir.path().join("b"), None, true);
    assert!(straight == resumed, "a resumed SimCLR run differs");
    // Epoch-seeded views, the same loss: the NT-Xent loss falls as the encoder learns.
    let loss = history(&dir.path().join("a"), "train", 2);
    assert!(loss[2] < loss[0] - 0.1, "train loss {loss:?}");
    // The test "accuracy" of a self-supervised run is the kNN monitor's, far above chance.
    let s = summary(&dir.path().join("a"));
    assert!(s["test_accuracy"].as_f64().unwrap() > 0.5, "{s}");
    assert_eq!(s["strategy"], "self-supervised");
}

#[test]
fn moco_resumes_with_its_key_encoder_and_queue() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ssl_config("moco", 2);
    let straight = run(&cfg, &dir.path().join("a"), None, false);
    run(&cfg, &dir.path().join("b"), Some(1), false);
    let resumed = run(&cfg, &dir.path().join("b"), None, true);
    assert!(straight == resumed, "a resumed MoCo run differs");
    let loss = history(&dir.path().join("a"), "train", 2);
    assert!(loss.iter().all(|l| l.is_finite()), "{loss:?}");
}

/// Images of smooth ramps whose direction and offset vary per image: a patch's values
/// tell where in the image it lies, so the relative position is learnable.
fn ramps(n: usize, side: usize) -> Dataset {
    let mut pixels = Vec::with_capacity(n * side * side);
    for i in 0..n {
        let (a, b) = (1.0 + (i % 3) as f32 * 0.5, 1.0 + (i % 5) as f32 * 0.25);
        for y in 0..side {
            for x in 0..side {
                pixels.push((a * y as f32 + b * x as f32) / side as f32 - 1.5);
            }
        }
    }
    Dataset::new(pixels, vec![0; n], [1, side, side], 1).unwrap()
}

#[test]
fn relative_position_learns_where_a_patch_lies() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[
        "strategy.type=\"self-supervised\"",
        "strategy.method=\"relative-position\"",
        "strategy.patch=7",
        "strategy.monitor_examples=50",
        "model={type=\"projected\", inputs=2, hidden=[64], outputs=8, encoder={type=\"mlp\", hidden=[64]}}",
        "epochs=8",
        "batch_size=32",
    ]);
    let train_set = ramps(256, 27);
    let data = PreparedData {
        test: ramps(50, 27),
        train: train_set,
        val: None,
        class_names: vec!["ramp".into()],
        normalization: None,
    };
    let mut objective = build_objective(&cfg, &data, &burn::tensor::Device::flex()).unwrap();
    train(&cfg, &data, objective.as_mut(), &quiet(dir.path())).unwrap();
    // The 8-way pretext accuracy (the training accuracy) climbs far above chance (1/8).
    let acc = history(dir.path(), "train", 3);
    assert!(acc.last().unwrap() > &0.5, "pretext accuracy {acc:?}");
}

#[test]
fn a_relative_position_run_needs_a_pair_projection() {
    let err = RunConfig::default()
        .with_overrides(&[
            "strategy.type=\"self-supervised\"".to_string(),
            "strategy.method=\"relative-position\"".into(),
        ])
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("inputs = 2"), "{err}");
}

#[test]
fn probes_report_each_label_fraction() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&["epochs=5"]);
    let data = mentor::data::prepare_data(&cfg.data, cfg.seed).unwrap();
    let mut objective = build_objective(&cfg, &data, &burn::tensor::Device::flex()).unwrap();
    let (_, network) = train(&cfg, &data, objective.as_mut(), &quiet(dir.path())).unwrap();
    let config = ProbeConfig {
        fractions: vec![0.05, 1.0],
        min_steps: 200,
        ..ProbeConfig::default()
    };
    let rows = probe(&network, &data.train, &data.test, &config).unwrap();
    assert_eq!(rows.len(), 2);
    // 5% of the labels: the same number from every class.
    let per_class = (0.05 * data.train.len() as f64 / 10.0).round() as usize;
    assert_eq!(rows[0].labels, 10 * per_class);
    assert_eq!(rows[1].labels, data.train.len());
    // Supervised features: both probes recognise digits from all the labels.
    assert!(rows[1].linear_accuracy > 0.85, "{rows:?}");
    assert!(rows[1].knn_accuracy > 0.85, "{rows:?}");
    assert!(rows[0].linear_accuracy > 0.3, "{rows:?}");
    let bad = ProbeConfig {
        fractions: vec![0.0],
        ..ProbeConfig::default()
    };
    assert!(probe(&network, &data.train, &data.test, &bad).is_err());
}

fn deep_cluster_config(epochs: usize) -> RunConfig {
    config(&[
        "strategy.type=\"self-supervised\"".to_string(),
        "strategy.method=\"deep-cluster\"".into(),
        "strategy.clusters=20".into(),
        "strategy.kmeans_iterations=10".into(),
        "strategy.monitor_examples=500".into(),
        "strategy.augment.flip=0.0".into(),
        "strategy.augment.crop_scale=[0.5,1.0]".into(),
        "model={type=\"projected\", hidden=[64], outputs=20, encoder={type=\"mlp\", hidden=[64]}}"
            .into(),
        format!("epochs={epochs}"),
        "batch_size=64".into(),
    ])
}

#[test]
fn deep_cluster_learns_its_pseudo_labels_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = deep_cluster_config(3);
    let straight = run(&cfg, &dir.path().join("a"), None, false);
    // Stopped after one epoch and resumed: the pseudo-labels come back from the
    // checkpoint and the next clusterings start from them, as in the straight run.
    run(&cfg, &dir.path().join("b"), Some(1), false);
    let resumed = run(&cfg, &dir.path().join("b"), None, true);
    assert!(straight == resumed, "a resumed DeepCluster run differs");
    // The training accuracy is the pseudo-label accuracy: it climbs every epoch, to
    // well above chance (1/20), as the network learns its clusters.
    let acc = history(&dir.path().join("a"), "train", 3);
    assert!(acc.windows(2).all(|w| w[1] > w[0]), "{acc:?}");
    assert!(acc.last().unwrap() > &0.25, "pseudo-label accuracy {acc:?}");
    let knn = history(&dir.path().join("a"), "test", 3);
    assert!(knn.iter().all(|a| (0.1..=1.0).contains(a)), "{knn:?}");
}

#[test]
fn deep_cluster_needs_one_output_per_cluster() {
    let mut sets: Vec<String> = vec![
        "strategy.type=\"self-supervised\"".into(),
        "strategy.method=\"deep-cluster\"".into(),
        "strategy.clusters=20".into(),
        "model={type=\"projected\", outputs=32, encoder={type=\"mlp\"}}".into(),
    ];
    let err = RunConfig::default()
        .with_overrides(&sets)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("outputs = 20"), "{err}");
    // A config built by hand, never validated, is refused when the objective is built.
    let unchecked = RunConfig::default().with_overrides(&sets).unwrap();
    let data = mentor::data::prepare_data(&unchecked.data, unchecked.seed).unwrap();
    let err = build_objective(&unchecked, &data, &burn::tensor::Device::flex())
        .err()
        .expect("a mismatched DeepCluster network")
        .to_string();
    assert!(err.contains("outputs = 20"), "{err}");
    sets[3] = "model.type=\"mlp\"".into();
    assert!(
        RunConfig::default()
            .with_overrides(&sets)
            .unwrap()
            .validate()
            .is_err()
    );
}

#[test]
fn amdim_lowers_its_loss_across_scales_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[
        "strategy.type=\"self-supervised\"",
        "strategy.method=\"amdim\"",
        "strategy.monitor_examples=500",
        "strategy.augment.flip=0.0",
        "strategy.augment.crop_scale=[0.5,1.0]",
        "model={type=\"projected\", hidden=[32], outputs=32, local=true, encoder={type=\"cnn\", channels=[8,16], hidden=32}}",
        "epochs=3",
        "batch_size=64",
    ]);
    let straight = run(&cfg, &dir.path().join("a"), None, false);
    run(&cfg, &dir.path().join("b"), Some(1), false);
    let resumed = run(&cfg, &dir.path().join("b"), None, true);
    assert!(straight == resumed, "a resumed AMDIM run differs");
    let loss = history(&dir.path().join("a"), "train", 2);
    assert!(loss.windows(2).all(|w| w[1] < w[0]), "{loss:?}");
    // Without local heads the run is refused before it starts.
    let err = RunConfig::default()
        .with_overrides(&[
            "strategy.type=\"self-supervised\"".to_string(),
            "strategy.method=\"amdim\"".into(),
            "model={type=\"projected\", encoder={type=\"cnn\"}}".into(),
        ])
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("local = true"), "{err}");
}

#[test]
fn cpc_predicts_the_patches_below_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[
        "strategy.type=\"self-supervised\"",
        "strategy.method=\"cpc\"",
        "strategy.monitor_examples=500",
        // 4x4 patches every 2 pixels: a 3x3 grid on 8x8 digits, one row ahead.
        "model={type=\"cpc\", patch=4, stride=2, steps=1, pool=1, context=16, encoder={type=\"mlp\", hidden=[32]}}",
        "epochs=3",
        "batch_size=64",
    ]);
    let straight = run(&cfg, &dir.path().join("a"), None, false);
    run(&cfg, &dir.path().join("b"), Some(1), false);
    let resumed = run(&cfg, &dir.path().join("b"), None, true);
    assert!(straight == resumed, "a resumed CPC run differs");
    let loss = history(&dir.path().join("a"), "train", 2);
    assert!(loss.windows(2).all(|w| w[1] < w[0]), "{loss:?}");
    // Training accuracy: the true patch below is the best of the batch's 64 x 9 codes
    // (chance 1/576) for a share of the predictions that grows every epoch, to several
    // times chance.
    let acc = history(&dir.path().join("a"), "train", 3);
    // (The share of predictions, not a count per image: at most 1.)
    assert!(acc.iter().all(|a| *a <= 1.0), "{acc:?}");
    assert!(acc.windows(2).all(|w| w[1] > w[0]), "{acc:?}");
    assert!(acc.last().unwrap() > &0.01, "{acc:?}");
    // CPC and its network go together.
    let err = RunConfig::default()
        .with_overrides(&[
            "strategy.type=\"self-supervised\"".to_string(),
            "strategy.method=\"cpc\"".into(),
        ])
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.type = \"cpc\""), "{err}");
}
