//! Masking output units out of a softmax: a task-incremental learner is trained and
//! scored on one task's head, and a contrastive loss leaves a view out of its own
//! denominator, by adding a large negative value to the logits of the units left out.

use std::ops::Range;

use burn::tensor::{Tensor, TensorData};

/// Value added to the logits of masked-out output units: far enough below any real logit
/// that its softmax weight is exactly 0 in `f32`, finite so that `0 * mask` stays 0.
pub const MASKED_LOGIT: f32 = -1e9;

/// `logits` `[B, C]` with every output unit outside `active` set to [`MASKED_LOGIT`] below
/// its value, so softmax, cross-entropy and argmax only see the active units.
pub fn mask_outputs(logits: Tensor<2>, active: Range<usize>) -> Tensor<2> {
    let [_, c] = logits.dims();
    let row: Vec<f32> = (0..c)
        .map(|j| {
            if active.contains(&j) {
                0.0
            } else {
                MASKED_LOGIT
            }
        })
        .collect();
    let mask = Tensor::<1>::from_data(TensorData::new(row, [c]), &logits.device());
    logits + mask.unsqueeze_dim(0)
}
