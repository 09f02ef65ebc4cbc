//! ONNX export checked by an independent runtime: each exported network runs in tract
//! (pure Rust, no Burn inside) and must give mentor's logits on the same inputs.

mod common;
use common::{max_abs_diff, tract_logits};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use mentor::models::onnx::{INPUT_NAME, OUTPUT_NAME, OnnxError, export_onnx, onnx_metadata};
use mentor::models::{ModelConfig, Network};
use rand::{Rng, SeedableRng};

/// Seeded inputs in [-2, 2): wide enough that ReLU6 and the hard sigmoid saturate.
fn inputs(shape: [usize; 4], seed: u64) -> Vec<f32> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..shape.iter().product::<usize>())
        .map(|_| r.random_range(-2.0f32..2.0))
        .collect()
}

fn mentor_logits(network: &Network, shape: [usize; 4], x: &[f32]) -> Vec<f32> {
    let device = Device::flex();
    let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), shape), &device);
    network
        .valid()
        .forward(x)
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap()
}

/// Exports `model` built for `input`, runs batches of 1 and 3 in tract, and compares
/// with mentor's own forward pass (its CPU kernels included) to 1e-4 of the largest
/// logit; the logits must depend on the input.
fn exports_and_runs_alike(name: &str, model: ModelConfig, input: [usize; 3]) {
    let device = Device::flex();
    let network = model.init(input, 10, &device);
    let onnx = export_onnx(&network, input, &[("mentor.model".into(), name.into())])
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    for batch in [1, 3] {
        let shape = [batch, input[0], input[1], input[2]];
        let x = inputs(shape, batch as u64);
        let want = mentor_logits(&network, shape, &x);
        let got = tract_logits(&onnx, shape, &x);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{name}: all logits zero");
        let worst = max_abs_diff(&got, &want);
        assert!(
            worst <= 1e-4 * scale.max(1.0),
            "{name}, batch {batch}: max |tract - mentor| = {worst:e}, largest logit {scale}"
        );
        if batch == 3 {
            let spread = max_abs_diff(&want[..10], &want[10..20]);
            assert!(
                spread > 1e-3 * scale,
                "{name}: logits barely depend on the input"
            );
        }
    }
    let meta = onnx_metadata(&onnx).unwrap();
    assert!(
        meta.contains(&("mentor.model".into(), name.into())),
        "{meta:?}"
    );
}

fn config(sets: &[&str]) -> ModelConfig {
    common::config(sets).model
}

#[test]
fn an_mlp_exports_and_runs_in_tract() {
    exports_and_runs_alike("mlp", config(&["model.type=\"mlp\""]), [1, 8, 8]);
}

#[test]
fn the_cnn_exports_and_runs_in_tract() {
    exports_and_runs_alike("cnn", config(&["model.type=\"cnn\""]), [1, 28, 28]);
}

#[test]
fn the_small_resnet_exports_and_runs_in_tract() {
    exports_and_runs_alike("resnet", config(&["model.type=\"resnet\""]), [3, 32, 32]);
}

// The ImageNet families (ReLU6, hard swish, squeeze-excitation, SiLU) are exported and
// run in tract in tests/pretrained.rs, with torchvision's weights and logits.

#[test]
fn the_file_names_its_input_and_output_and_keeps_a_symbolic_batch() {
    use onnx_ir::{Message, ModelProto};
    let network = config(&["model.type=\"mlp\""]).init([1, 8, 8], 10, &Device::flex());
    let onnx = export_onnx(&network, [1, 8, 8], &[]).unwrap();
    let proto = ModelProto::parse_from_bytes(&onnx).unwrap();
    let graph = proto.graph.as_ref().unwrap();
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.input[0].name, INPUT_NAME);
    assert_eq!(graph.output[0].name, OUTPUT_NAME);
    let dims = &graph.input[0].type_.tensor_type().shape.dim;
    assert_eq!(dims.len(), 4);
    assert!(
        dims[0].has_dim_param(),
        "batch axis is not symbolic: {dims:?}"
    );
    assert_eq!(dims[1].dim_value(), 1);
    assert_eq!(proto.producer_name, "mentor");
}

#[test]
fn a_vit_is_refused_naming_the_operation() {
    let network = config(&["model.type=\"vit\""]).init([1, 28, 28], 10, &Device::flex());
    match export_onnx(&network, [1, 28, 28], &[]) {
        Err(e @ OnnxError::Unsupported { .. }) => {
            let text = e.to_string();
            assert!(
                text.starts_with("vit cannot be exported to ONNX yet"),
                "{text}"
            );
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("the ViT exported; update this test and README's table"),
    }
}

#[test]
fn mentor_export_writes_a_trained_cnn_as_onnx_with_its_card() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let mentor = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mentor"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "mentor {args:?}: {err}");
        err
    };
    mentor(&[
        "train",
        "--dataset",
        "digits",
        "--model",
        "cnn",
        "--epochs",
        "1",
        "--out",
        "run",
    ]);
    let said = mentor(&[
        "export",
        "--checkpoint",
        "run/checkpoints/last.ckpt",
        "--out",
        "cnn.onnx",
    ]);
    assert!(said.contains("wrote cnn.onnx"), "{said}");
    let onnx = std::fs::read(dir.path().join("cnn.onnx")).unwrap();
    let meta: std::collections::HashMap<_, _> = onnx_metadata(&onnx).unwrap().into_iter().collect();
    assert_eq!(meta["mentor.model"], "cnn");
    assert_eq!(meta["mentor.classes"].lines().count(), 10);
    assert!(
        meta["mentor.input"].starts_with("images [batch, 1, 8, 8]"),
        "{meta:?}"
    );
    // The file gives the checkpoint's logits.
    let device = Device::flex();
    let run =
        mentor::run::restore::load_run(&dir.path().join("run/checkpoints/last.ckpt"), &device)
            .unwrap();
    let shape = [4, 1, 8, 8];
    let x = inputs(shape, 7);
    let worst = max_abs_diff(
        &tract_logits(&onnx, shape, &x),
        &mentor_logits(&run.loaded.network, shape, &x),
    );
    assert!(worst <= 1e-4, "max |tract - mentor| = {worst:e}");
    // `mentor footprint` gives the export's size beside the weights'.
    let out = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args([
            "footprint",
            "run/checkpoints/last.ckpt",
            "--repeats",
            "2",
            "--json",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let size = rows[0]["onnx_bytes"].as_u64().unwrap() as f64;
    let file = onnx.len() as f64;
    assert!(
        size > 0.9 * file && size <= file,
        "footprint {size} vs file {file}"
    );
    // Without --checkpoint the safetensors export says what it needs; --format picks.
    let out = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args([
            "export",
            "--pretrained",
            "w.pth",
            "--model",
            "cnn",
            "--out",
            "w.safetensors",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--checkpoint"),
        "{err}"
    );
}
