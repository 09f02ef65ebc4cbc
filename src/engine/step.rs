//! One training step: the objective's loss on a batch, its gradients, and one optimiser
//! update per trained parameter group at that group's rate.

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Gradients;

use super::eval::correct;
use super::groups::ParamGroups;
use super::objective::Objective;
use crate::data::Batch;
use crate::models::Network;

/// The objective's loss on `batch` and its gradients: the loss value, the number of
/// correct predictions and of predictions made (the targets: one per example unless the
/// objective scores several per example, as CPC does), and the gradients. The loss is
/// not checked: a caller decides what a non-finite one means.
pub(crate) fn loss_and_gradients(
    network: &Network,
    objective: &mut dyn Objective,
    batch: &Batch,
    indices: &[usize],
) -> (f64, u64, u64, Gradients) {
    let output = objective.step(network, batch, indices);
    let loss_value = output.loss.clone().into_scalar::<f32>() as f64;
    let targets = output.targets.unwrap_or_else(|| batch.labels.clone());
    let predictions = targets.dims()[0] as u64;
    let right = correct(output.logits.detach(), targets);
    (loss_value, right, predictions, output.loss.backward())
}

/// One optimiser step: the objective's loss on `batch`, its gradients, then one update
/// per trained group at `lr` times the group's multiplier (frozen groups get none).
/// Returns the updated network, the loss, the number of correct predictions and the
/// number of predictions (see [`loss_and_gradients`]), or the loss value when it is not
/// finite (no update is made).
pub fn train_step(
    network: Network,
    optimizer: &mut ModuleOptimizer,
    groups: &ParamGroups,
    objective: &mut dyn Objective,
    batch: &Batch,
    indices: &[usize],
    lr: f64,
) -> Result<(Network, f64, u64, u64), f64> {
    let (loss_value, right, predictions, mut grads) =
        loss_and_gradients(&network, objective, batch, indices);
    if !loss_value.is_finite() {
        return Err(loss_value);
    }
    let mut network = network;
    for group in groups.trained() {
        let group_grads = GradientsParams::from_params(&mut grads, &network, &group.ids);
        network = optimizer.step(lr * group.lr_mult, network, group_grads);
    }
    Ok((network, loss_value, right, predictions))
}
