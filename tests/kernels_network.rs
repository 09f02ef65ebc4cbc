//! mentor's CPU kernels against Burn's own layers on whole networks: each family's
//! training-mode logits (batch statistics) and the input gradient of one backward pass,
//! once with the kernels and once with `kernels::set_enabled(false)`, from the same
//! weights. The switch is process-wide: the ignored test runs alone (`--ignored`).

mod common;
use common::{loss_weights, relative_error, seeded_inputs, values};

use burn::tensor::{Device, Tensor, TensorData};
use mentor::kernels;

const BATCH: usize = 4;

/// Training-mode logits and the input gradient of `sum(logits * w)`.
fn outputs(sets: &[&str], input: [usize; 3], with_kernels: bool) -> [Vec<f32>; 2] {
    let device = Device::flex().autodiff();
    device.seed(3);
    let network = common::config(sets).model.init(input, 10, &device);
    let shape = [BATCH, input[0], input[1], input[2]];
    let x = seeded_inputs(shape.iter().product(), 7);
    kernels::set_enabled(with_kernels);
    let images = Tensor::<4>::from_data(TensorData::new(x, shape), &device).require_grad();
    let logits = network.forward(images.clone());
    let weights = loss_weights(BATCH, 10, &device);
    let grads = (logits.clone() * weights).sum().backward();
    let dx = images.grad(&grads).expect("input gradient");
    kernels::set_enabled(true);
    [values(logits.inner()), values(dx)]
}

/// Compares `families` at 64 px with and without the kernels, to `tolerance` of the
/// largest value.
fn compare(families: &[(&str, &[&str])], tolerance: f32) {
    for (name, sets) in families {
        let fast = outputs(sets, [3, 64, 64], true);
        let burn = outputs(sets, [3, 64, 64], false);
        for (what, (got, want)) in ["training logits", "input gradient"]
            .iter()
            .zip(fast.iter().zip(&burn))
        {
            let error = relative_error(got, want);
            println!("{name}: {what}: relative difference {error:.2e}");
            assert!(error <= tolerance, "{name}: {what} differ by {error:e}");
        }
    }
}

#[test]
fn networks_give_burns_outputs_and_gradients_with_mentors_kernels() {
    compare(
        &[
            (
                "mobilenet-v2",
                &[
                    "model.type=\"mobilenet-v2\"",
                    "model.width=0.25",
                    "model.dropout=0.0",
                ],
            ),
            ("resnet18", &["model.type=\"resnet18\"", "model.width=0.25"]),
        ],
        1e-4,
    );
}

/// Open (issue 39 note, 2026-12-06): on these two families the training-mode logits agree
/// to 1e-5 but the input gradients differ by 2e-4 (Lite0 at 64 px; 1.9e-2 at 128 px) and
/// 6e-2 (ResNet-50) of the largest value, spread over the whole image rather than its
/// border; Burn's layers on wgpu differ from the CPU by as much. Central finite
/// differences of the kernels' own forward side with Burn's gradient (Lite0, 128 px, the
/// worst pixel: -0.0742 vs Burn -0.0739 vs kernels -0.0550): a kernel's backward is wrong
/// for a case these networks have. Un-ignore once fixed.
#[test]
#[ignore = "open discrepancy under investigation: see the doc comment"]
fn input_gradients_of_lite0_and_resnet50_with_mentors_kernels() {
    compare(
        &[
            (
                "efficientnet-lite0",
                &[
                    "model.type=\"efficientnet-lite0\"",
                    "model.width=0.25",
                    "model.dropout=0.0",
                ],
            ),
            ("resnet50", &["model.type=\"resnet50\"", "model.width=0.25"]),
        ],
        1e-4,
    );
}
