//! Test helpers shared by the fused optimisers' tests: a few steps on a linear layer,
//! and its weights as one flat list.

use burn::nn::Linear;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

/// `steps` steps of `optimizer` at learning rate `lr` on a linear layer and a fixed
/// quadratic loss.
pub fn train(
    mut layer: Linear,
    optimizer: &mut ModuleOptimizer,
    x: &Tensor<2>,
    steps: usize,
    lr: f64,
) -> Linear {
    for _ in 0..steps {
        let loss = layer.forward(x.clone()).powf_scalar(2.0).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &layer);
        layer = optimizer.step(lr, layer, grads);
    }
    layer
}

/// The layer's weight, then its bias.
pub fn weights(layer: &Linear) -> Vec<f32> {
    let mut all = layer
        .weight
        .val()
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32");
    if let Some(b) = &layer.bias {
        all.extend(b.val().into_data().try_into_vec::<f32>().expect("f32"));
    }
    all
}
