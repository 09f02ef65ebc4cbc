//! The wgpu backend against the CPU (issue 21). Built only with `--features wgpu` and run
//! by scripts/wgpu-check.sh, on Mesa's lavapipe (a software Vulkan driver) where the
//! machine has no GPU: every model family's logits from one set of weights on both
//! devices, in inference (running statistics) and in training mode (batch statistics;
//! mentor's CPU kernels on one side, Burn's layers on wgpu on the other), and the input
//! gradient of one backward pass, which runs every layer's backward. One test thread
//! (`--test-threads 1`, as the script runs it): the seeded CPU generator that draws the
//! weights is shared by the threads, and two tests at once would draw each other's.
#![cfg(feature = "wgpu")]

mod common;
use common::{
    agrees_within_rounding_spread, loss_weights, relative_error, seeded_inputs, seeded_inputs_at,
    values,
};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use mentor::engine::device::parse_device;
use mentor::models::{ModelConfig, Network};

/// Images a batch: four, so that the batch statistics of the last stages (2x2 maps at
/// 64 px) are over 16 values, not 8, and their gradients not ill-conditioned.
const BATCH: usize = 4;

/// Logits in inference, then logits and the input gradient of `sum(logits * w)` in
/// training mode, of `model` built once on the CPU and copied to `device`.
fn outputs(model: &ModelConfig, input: [usize; 3], device: &Device) -> [Vec<f32>; 3] {
    let cpu = Device::flex();
    let shape = [BATCH, input[0], input[1], input[2]];
    let x = seeded_inputs(shape.iter().product(), 7);
    let network = seeded_network(model, input);
    // Batch norms' running statistics moved towards this batch's (300 training-mode
    // passes: MobileNetV3's momentum is 0.01), or inference outputs of a random network
    // would not depend on the input and the comparison would prove nothing.
    let on_cpu = Tensor::<4>::from_data(TensorData::new(x.clone(), shape), &cpu.autodiff());
    for _ in 0..300 {
        network.forward(on_cpu.clone());
    }
    let inference = network.valid().to_device(device);
    let logits = inference.forward(Tensor::<4>::from_data(TensorData::new(x, shape), device));
    let [train_logits, dx] = training_outputs(network, input, device, 0);
    [values(logits), train_logits, dx]
}

/// `model` with the same weights everywhere: built with a seeded CPU generator (to be
/// copied).
fn seeded_network(model: &ModelConfig, input: [usize; 3]) -> Network {
    let cpu = Device::flex();
    cpu.seed(3);
    model.init(input, 10, &cpu.autodiff())
}

/// Training-mode logits and the input gradient of `sum(logits * w)` of `network` copied
/// to `device`, at `point` (`seeded_inputs_at`).
fn training_outputs(
    network: Network,
    input: [usize; 3],
    device: &Device,
    point: usize,
) -> [Vec<f32>; 2] {
    let device = device.clone().autodiff();
    let shape = [BATCH, input[0], input[1], input[2]];
    let x = seeded_inputs_at(shape.iter().product(), 7, point);
    let training = network.to_device(&device);
    let images = Tensor::<4>::from_data(TensorData::new(x, shape), &device).require_grad();
    let logits = training.forward(images.clone());
    let weights = loss_weights(BATCH, 10, &device);
    let grads = (logits.clone() * weights).sum().backward();
    let dx = images.grad(&grads).expect("input gradient");
    [values(logits.inner()), values(dx)]
}

/// How the input gradients are compared.
#[derive(Clone, Copy, PartialEq)]
enum Gradient {
    /// At the seeded input, to 1e-4 of the largest value.
    AtOnePoint,
    /// Within the CPU's own spread a rounding error away (`agrees_within_rounding_spread`):
    /// for networks whose gradient is not continuous at rounding scale.
    WithinSpread,
}

fn same_on_wgpu_and_cpu(name: &str, sets: &[&str], input: [usize; 3]) {
    compare_with_cpu(name, sets, input, Gradient::AtOnePoint);
}

fn compare_with_cpu(name: &str, sets: &[&str], input: [usize; 3], gradient: Gradient) {
    let model = common::config(sets).model;
    let wgpu = parse_device("wgpu").expect("a usable wgpu adapter (scripts/wgpu-check.sh)");
    let cpu = outputs(&model, input, &Device::flex());
    let gpu = outputs(&model, input, &wgpu);
    let compared = match gradient {
        Gradient::AtOnePoint => 3,
        Gradient::WithinSpread => 2,
    };
    for (what, (got, want)) in ["inference logits", "training logits", "input gradient"]
        .iter()
        .zip(gpu.iter().zip(&cpu))
        .take(compared)
    {
        let error = relative_error(got, want);
        println!("{name}: {what}: relative difference {error:.2e}");
        assert!(
            error <= 1e-4,
            "{name}: {what} differ by {error:e} (relative)"
        );
        // Not a comparison of constants: the two images' outputs must differ.
        let (first, second) = want.split_at(want.len() / BATCH);
        let spread = first
            .iter()
            .zip(second)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(spread > 1e-6, "{name}: {what} do not depend on the input");
    }
    if gradient == Gradient::WithinSpread {
        let on = |device: Device| {
            let model = model.clone();
            move |point| {
                let network = seeded_network(&model, input);
                let [_, dx] = training_outputs(network, input, &device, point);
                dx
            }
        };
        agrees_within_rounding_spread(name, on(wgpu.clone()), on(Device::flex()));
    }
}

/// Dropout and stochastic depth draw their masks from each device's own generator, so
/// training-mode outputs compare only without them.
const NO_DROPOUT: &str = "model.dropout=0.0";

#[test]
fn mlp() {
    same_on_wgpu_and_cpu("mlp", &["model.type=\"mlp\""], [1, 8, 8]);
}

#[test]
fn cnn() {
    same_on_wgpu_and_cpu("cnn", &["model.type=\"cnn\""], [1, 28, 28]);
}

#[test]
fn small_resnet() {
    same_on_wgpu_and_cpu("resnet", &["model.type=\"resnet\""], [3, 32, 32]);
}

#[test]
fn vit() {
    same_on_wgpu_and_cpu("vit", &["model.type=\"vit\"", NO_DROPOUT], [1, 28, 28]);
}

#[test]
fn efficientnet_lite0() {
    let sets = [
        "model.type=\"efficientnet-lite0\"",
        "model.width=0.25",
        NO_DROPOUT,
    ];
    compare_with_cpu(
        "efficientnet-lite0",
        &sets,
        [3, 64, 64],
        Gradient::WithinSpread,
    );
}

#[test]
fn efficientnet_b0() {
    let sets = [
        "model.type=\"efficientnet-b0\"",
        "model.width=0.25",
        NO_DROPOUT,
        "model.stochastic_depth=0.0",
    ];
    same_on_wgpu_and_cpu("efficientnet-b0", &sets, [3, 64, 64]);
}

#[test]
fn mobilenet_v2() {
    let sets = [
        "model.type=\"mobilenet-v2\"",
        "model.width=0.25",
        NO_DROPOUT,
    ];
    same_on_wgpu_and_cpu("mobilenet-v2", &sets, [3, 64, 64]);
}

#[test]
fn mobilenet_v3_small() {
    let sets = [
        "model.type=\"mobilenet-v3-small\"",
        "model.width=0.25",
        NO_DROPOUT,
    ];
    same_on_wgpu_and_cpu("mobilenet-v3-small", &sets, [3, 64, 64]);
}

#[test]
fn resnet18() {
    let sets = ["model.type=\"resnet18\"", "model.width=0.25"];
    same_on_wgpu_and_cpu("resnet18", &sets, [3, 64, 64]);
}

#[test]
fn resnet50() {
    let sets = ["model.type=\"resnet50\"", "model.width=0.25"];
    compare_with_cpu("resnet50", &sets, [3, 64, 64], Gradient::WithinSpread);
}
