//! One training step: the objective's loss on a batch, its gradients, and one optimiser
//! update per trained parameter group at that group's rate.

use burn::optim::{GradientsParams, ModuleOptimizer};

use super::eval::correct;
use super::groups::ParamGroups;
use super::objective::Objective;
use crate::data::Batch;
use crate::models::Network;

/// One optimiser step: the objective's loss on `batch`, its gradients, then one update
/// per trained group at `lr` times the group's multiplier (frozen groups get none).
/// Returns the updated network, the loss, the number of correct predictions and the
/// number of predictions (the targets: one per example unless the objective scores
/// several per example, as CPC does), or the loss value when it is not finite (no update
/// is made).
pub fn train_step(
    network: Network,
    optimizer: &mut ModuleOptimizer,
    groups: &ParamGroups,
    objective: &mut dyn Objective,
    batch: &Batch,
    indices: &[usize],
    lr: f64,
) -> Result<(Network, f64, u64, u64), f64> {
    let output = objective.step(&network, batch, indices);
    let loss_value = output.loss.clone().into_scalar::<f32>() as f64;
    if !loss_value.is_finite() {
        return Err(loss_value);
    }
    let targets = output.targets.unwrap_or_else(|| batch.labels.clone());
    let predictions = targets.dims()[0] as u64;
    let right = correct(output.logits.detach(), targets);
    let mut grads = output.loss.backward();
    let mut network = network;
    for group in groups.trained() {
        let group_grads = GradientsParams::from_params(&mut grads, &network, &group.ids);
        network = optimizer.step(lr * group.lr_mult, network, group_grads);
    }
    Ok((network, loss_value, right, predictions))
}
