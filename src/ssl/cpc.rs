//! Contrastive Predictive Coding on images (van den Oord, Li & Vinyals 2018; Henaff et
//! al. 2019): the context state above a patch predicts the codes of the patches `k` rows
//! below it, and an InfoNCE loss scores each prediction against every patch code of the
//! batch: the true code is the positive; the codes of all other positions and images are
//! the negatives. The network is a [`crate::models::Cpc`] (patch grid, encoder, context
//! GRU, predictors `W_k`).
//!
//! `L = mean over k, images, positions of -log( e^{<W_k c_{r,c}, z_{r+k,c}>} /
//! sum_{z' in batch} e^{<W_k c_{r,c}, z'>} )`, the scores unnormalised dot products as in
//! the paper. Patches are encoded without augmentation (Henaff et al.'s patch-level
//! augmentations are left out).

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor, TensorData};

use crate::data::Batch;
use crate::engine::StepOutput;
use crate::models::Network;

use super::PretextLoss;

/// The InfoNCE loss of step `k`'s predictions `[B, cols, rows - k, F]` (the prediction
/// from context `(c, r)` at `[b, c, r]`) against all codes `[B, rows, cols, F]` of the
/// batch; also the logits `[N, B * rows * cols]` and targets `[N]` (for accuracy).
pub fn cpc_info_nce(
    codes: Tensor<4>,
    predictions: Tensor<4>,
    k: usize,
) -> (Tensor<1>, Tensor<2>, Tensor<1, Int>) {
    let [b, rows, cols, f] = codes.dims();
    let device = codes.device();
    let ahead = rows - k;
    let candidates = codes.reshape([b * rows * cols, f]);
    let queries = predictions.reshape([b * cols * ahead, f]);
    let logits = queries.matmul(candidates.transpose());
    // Prediction (i, c, r) -> code (i, r + k, c), in the candidates' row-major order.
    let mut targets = Vec::with_capacity(b * cols * ahead);
    for i in 0..b {
        for c in 0..cols {
            for r in 0..ahead {
                targets.push(((i * rows + r + k) * cols + c) as i64);
            }
        }
    }
    let n = targets.len();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &device);
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits.clone(), targets.clone());
    (loss, logits, targets)
}

/// The CPC objective.
#[derive(Debug, Default)]
pub struct ContrastivePredictiveCoding;

impl PretextLoss for ContrastivePredictiveCoding {
    fn step(
        &mut self,
        network: &Network,
        batch: &Batch,
        _indices: &[usize],
        _seed: u64,
    ) -> StepOutput {
        // Checked when the run was validated: CPC runs on a CPC network.
        let Network::Cpc(cpc) = network else {
            unreachable!("CPC runs on a CPC network")
        };
        let codes = cpc.codes(batch.images.clone());
        let states = cpc.context_states(codes.clone());
        let [b, cols, rows, width] = states.dims();
        let f = codes.dims()[3];
        // One InfoNCE term per step k: contexts of rows 0..rows-k predict the codes k rows
        // below.
        let mut terms = cpc.predictors.iter().enumerate().map(|(step, predictor)| {
            let k = step + 1;
            let context = states.clone().narrow(2, 0, rows - k);
            let predicted = predictor
                .forward(context.reshape([b * cols * (rows - k), width]))
                .reshape([b, cols, rows - k, f]);
            cpc_info_nce(codes.clone(), predicted, k)
        });
        let Some((first, logits, targets)) = terms.next() else {
            unreachable!("a CPC network predicts at least one step")
        };
        let total = terms.fold(first, |total, (loss, _, _)| total + loss);
        let steps = cpc.predictors.len();
        StepOutput {
            loss: total.div_scalar(steps as f32),
            // Training accuracy: the patch one row below is the best-scoring code.
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
    fn info_nce_golden_value() {
        // Python (math module): B = 2 images, a 3x1 grid, F = 2, k = 1:
        //   z[b][r][c] = [[[1, 0]], [[0, 1]], [[0.5, 0.5]]], [[[-1, 0.5]], [[0.2, -0.3]], [[0.9, 0.1]]]
        //   P[b][c][r] = [[[0.3, 0.9], [0.4, 0.2]]], [[[0.1, -0.8], [1, 0]]]
        //   mean over predictions of logsumexp(p . z_all) - p . z_target = 1.4282912512
        let device = Device::flex();
        let codes = Tensor::<4>::from_data(
            [
                [[[1.0, 0.0]], [[0.0, 1.0]], [[0.5, 0.5]]],
                [[[-1.0, 0.5]], [[0.2, -0.3]], [[0.9, 0.1]]],
            ],
            &device,
        );
        let predictions = Tensor::<4>::from_data(
            [[[[0.3, 0.9], [0.4, 0.2]]], [[[0.1, -0.8], [1.0, 0.0]]]],
            &device,
        );
        let (loss, logits, targets) = cpc_info_nce(codes, predictions, 1);
        let loss: f32 = loss.into_scalar();
        assert!((loss - 1.428_291_3).abs() < 1e-5, "{loss}");
        assert_eq!(logits.dims(), [4, 6]);
        let targets: Vec<i64> = targets.into_data().convert::<i64>().try_to_vec().unwrap();
        assert_eq!(targets, [1, 2, 4, 5]);
    }
}
