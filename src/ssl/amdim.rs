//! AMDIM (Bachman, Hjelm & Buchwalter 2019, "Learning Representations by Maximizing
//! Mutual Information Across Views"): two augmented views of each image go through one
//! encoder, and an NCE loss makes the *global* vector of one view identify the *local*
//! features of the other view among those of every other image in the batch, so the
//! comparison spans views and spatial scales.
//!
//! Here the encoder is the CNN with AMDIM's local heads (a projected network with
//! `local = true`): the global vector is the projection `g(f(x))`; the local features are
//! the CNN's two pooled feature maps (14x14 and 7x7 positions on 28x28 images) mapped
//! per position to the same width. For each image `i`, position `p` of a local map of
//! the other view, the positive score is `s(g_i, l_ip)`, the negatives are
//! `s(g_i, l_jq)` for every other image `j` and every position `q`:
//!
//! `L = mean_{i,p} -log( e^{s_iip} / (e^{s_iip} + sum_{j != i, q} e^{s_ijq}) )`
//!
//! with AMDIM's score handling: `s = <g, l> / sqrt(D)`, soft-clipped as `10 tanh(s / 10)`,
//! and a penalty `0.05 * mean(s^2)` on the unclipped scores. Both directions (view 1's
//! global against view 2's maps and the reverse) and both maps are averaged: the paper's
//! 1-to-7 and 1-to-5 comparisons. Its local-to-local (5-to-5) term is left out.

use burn::tensor::{Tensor, TensorData};

use crate::data::Batch;
use crate::engine::StepOutput;
use crate::models::Network;

use super::{PretextLoss, ViewSource, retrieval_logits};

/// AMDIM's soft clip of the scores.
pub const SCORE_CLIP: f32 = 10.0;
/// AMDIM's weight of the squared-score penalty.
pub const SCORE_PENALTY: f32 = 0.05;

/// The global-to-local NCE loss and the squared-score penalty (unweighted) for global
/// vectors `[B, D]` against local features `[B, P, D]` of the same images.
pub fn global_local_nce(global: Tensor<2>, local: Tensor<3>) -> (Tensor<1>, Tensor<1>) {
    let [b, p, d] = local.dims();
    let device = global.device();
    // raw[i, j*P + q] = <g_i, l_jq> / sqrt(D)
    let raw = global
        .matmul(local.reshape([b * p, d]).transpose())
        .div_scalar((d as f32).sqrt());
    let penalty = raw.clone().powi_scalar(2).mean();
    let scores = raw
        .div_scalar(SCORE_CLIP)
        .tanh()
        .mul_scalar(SCORE_CLIP)
        .reshape([b, b, p]);
    // same[i, j, 0] = 1 where j == i.
    let eye: Vec<f32> = (0..b * b)
        .map(|k| if k / b == k % b { 1.0 } else { 0.0 })
        .collect();
    let same = Tensor::<3>::from_data(TensorData::new(eye, [b, b, 1]), &device);
    // Positive scores [B, P]; the negatives' log-sum-exp per image [B, 1] (the image's
    // own positions masked out).
    let positive = (scores.clone() * same.clone()).sum_dim(1).reshape([b, p]);
    let masked = (scores - same.mul_scalar(1e4)).reshape([b, b * p]);
    let negatives = log_sum_exp(masked);
    // -s + log(e^s + e^n), computed stably.
    let top = positive.clone().max_pair(negatives.clone().expand([b, p]));
    let total =
        (positive.clone() - top.clone()).exp() + (negatives.expand([b, p]) - top.clone()).exp();
    let loss = (top + total.log() - positive).mean();
    (loss, penalty)
}

/// Row-wise `log sum exp` of `[B, N]`, as `[B, 1]`.
fn log_sum_exp(x: Tensor<2>) -> Tensor<2> {
    let m = x.clone().max_dim(1).detach();
    (x - m.clone()).exp().sum_dim(1).log() + m
}

/// The AMDIM objective.
pub struct Amdim {
    views: ViewSource,
}

impl Amdim {
    /// AMDIM over the training images of `views` (labels unused).
    pub fn new(views: ViewSource) -> Self {
        Self { views }
    }
}

impl PretextLoss for Amdim {
    fn step(
        &mut self,
        network: &Network,
        batch: &Batch,
        indices: &[usize],
        seed: u64,
    ) -> StepOutput {
        let device = batch.images.device();
        let n = indices.len();
        let views = self.views.both(batch, indices, seed);
        // Checked when the run was validated: AMDIM needs a projected network with local
        // heads.
        let Network::Projected(projected) = network else {
            unreachable!("AMDIM runs on a projected network")
        };
        let Some((global, locals)) = projected.multiscale(views) else {
            unreachable!("AMDIM's network has local heads")
        };
        let g = [global.clone().narrow(0, 0, n), global.narrow(0, n, n)];
        let mut loss = Tensor::<1>::zeros([1], &device);
        let mut penalty = Tensor::<1>::zeros([1], &device);
        let mut terms = 0;
        for local in &locals {
            let l = [local.clone().narrow(0, 0, n), local.clone().narrow(0, n, n)];
            for (a, b) in [(0, 1), (1, 0)] {
                let (nce, reg) = global_local_nce(g[a].clone(), l[b].clone());
                loss = loss + nce;
                penalty = penalty + reg;
                terms += 1;
            }
        }
        let loss = (loss + penalty.mul_scalar(SCORE_PENALTY)).div_scalar(terms as f32);
        let [g1, g2] = g;
        let (logits, targets) = retrieval_logits(g1, g2);
        StepOutput {
            loss,
            logits,
            targets: Some(targets),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn global_local_nce_golden_values() {
        // Python (math module), s = <g, l> / sqrt(2) clipped as 10 tanh(s / 10):
        //   G = [[1, -0.5], [0.3, 0.8]]
        //   L = [[[0.5, 1], [-1, 0.2]], [[0.7, 0.1], [0, -0.6]]]   # L[j][q]
        //   nce = mean_{i,p} -s_iip + log(e^s_iip + sum_{j != i, q} e^s_ijq) = 1.5300268349
        //   penalty = mean of the 8 unclipped s^2 = 0.18494375
        let device = Device::flex();
        let g = Tensor::<2>::from_data([[1.0, -0.5], [0.3, 0.8]], &device);
        let l = Tensor::<3>::from_data(
            [[[0.5, 1.0], [-1.0, 0.2]], [[0.7, 0.1], [0.0, -0.6]]],
            &device,
        );
        let (nce, penalty) = global_local_nce(g, l);
        let (nce, penalty): (f32, f32) = (nce.into_scalar(), penalty.into_scalar());
        assert!((nce - 1.530_026_8).abs() < 1e-5, "{nce}");
        assert!((penalty - 0.184_943_75).abs() < 1e-6, "{penalty}");
    }

    #[test]
    fn matching_local_features_lower_the_loss() {
        // Local features that copy each image's global vector identify it: low loss;
        // the same features shuffled across images: high loss.
        let device = Device::flex();
        let g =
            Tensor::<2>::from_data([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]], &device);
        let matched = g.clone().reshape([3, 1, 3]).repeat_dim(1, 4);
        let shuffled = Tensor::cat(
            vec![
                matched.clone().narrow(0, 1, 2),
                matched.clone().narrow(0, 0, 1),
            ],
            0,
        );
        let low: f32 = global_local_nce(g.clone(), matched).0.into_scalar();
        let high: f32 = global_local_nce(g, shuffled).0.into_scalar();
        assert!(low < 0.5 && high > 3.0, "{low} {high}");
    }
}
