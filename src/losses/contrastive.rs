//! Contrastive and metric losses on embeddings, all with cosine similarity `s(a, b) =
//! a.b / (|a| |b|)` divided by a temperature `tau`, computed through log-softmax
//! (log-sum-exp) so that small temperatures stay finite.
//!
//! - InfoNCE / NCE with K negatives (Gutmann & Hyvarinen 2010; van den Oord et al. 2018):
//!   `-log exp(s+/tau) / (exp(s+/tau) + sum_k exp(s_k-/tau))`, batch mean.
//! - NT-Xent (SimCLR, Chen et al. 2020): for 2N views (`z1[i]` and `z2[i]` two views of
//!   image i) the positive of a view is the other view of its image, the other 2(N-1)
//!   views are its negatives, and the view itself is left out of the denominator; mean
//!   over all 2N views.
//! - Triplet loss with margin (Schroff et al. 2015; PyTorch's `TripletMarginLoss`):
//!   `max(|a - p| - |a - n| + margin, 0)` with Euclidean distances, batch mean.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor, TensorData};

use super::masked::MASKED_LOGIT;

/// Rows scaled to unit length (a tiny epsilon keeps zero rows finite).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = (x.clone() * x.clone()).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// InfoNCE for queries `q` `[N, D]`, their positives `p` `[N, D]` and negatives
/// `negatives` `[K, D]` shared by every query (a memory bank or MoCo queue).
pub fn info_nce(q: Tensor<2>, p: Tensor<2>, negatives: Tensor<2>, tau: f64) -> Tensor<1> {
    let device = q.device();
    let [n, _] = q.dims();
    let (q, p, k) = (l2_normalize(q), l2_normalize(p), l2_normalize(negatives));
    let positive = (q.clone() * p).sum_dim(1); // [N, 1]
    let negative = q.matmul(k.transpose()); // [N, K]
    let logits = Tensor::cat(vec![positive, negative], 1).div_scalar(tau as f32);
    let targets = Tensor::<1, Int>::zeros([n], &device);
    CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits, targets)
}

/// NT-Xent for two views `z1`, `z2` `[N, D]` of the same N images.
pub fn nt_xent(z1: Tensor<2>, z2: Tensor<2>, tau: f64) -> Tensor<1> {
    let device = z1.device();
    let [n, _] = z1.dims();
    let z = l2_normalize(Tensor::cat(vec![z1, z2], 0)); // [2N, D]
    let sim = z.clone().matmul(z.transpose()).div_scalar(tau as f32);
    // A view is never its own negative: its self-similarity is masked out.
    let mask: Vec<f32> = (0..4 * n * n)
        .map(|i| {
            if i / (2 * n) == i % (2 * n) {
                MASKED_LOGIT
            } else {
                0.0
            }
        })
        .collect();
    let sim = sim + Tensor::<2>::from_data(TensorData::new(mask, [2 * n, 2 * n]), &device);
    let targets: Vec<i64> = (0..2 * n).map(|i| ((i + n) % (2 * n)) as i64).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [2 * n]), &device);
    CrossEntropyLossConfig::new()
        .init(&device)
        .forward(sim, targets)
}

/// Triplet loss with `margin` for anchors, positives and negatives `[N, D]`.
pub fn triplet(
    anchor: Tensor<2>,
    positive: Tensor<2>,
    negative: Tensor<2>,
    margin: f64,
) -> Tensor<1> {
    let dist = |a: Tensor<2>, b: Tensor<2>| {
        let d = a - b;
        (d.clone() * d).sum_dim(1).clamp_min(1e-12).sqrt()
    };
    let gap = dist(anchor.clone(), positive) - dist(anchor, negative);
    gap.add_scalar(margin as f32).clamp_min(0.0).mean()
}

#[cfg(test)]
mod tests {
    //! Golden values from an independent pure-Python computation:
    //!
    //! ```python
    //! import math
    //! def norm(v): n = math.sqrt(sum(x*x for x in v)); return [x/n for x in v]
    //! def cos(a, b): return sum(x*y for x, y in zip(norm(a), norm(b)))
    //! def lse(xs): m = max(xs); return m + math.log(sum(math.exp(x-m) for x in xs))
    //! # InfoNCE, tau = 0.5
    //! q = [[1,0],[0.6,0.8]]; p = [[0.8,0.6],[0,1]]; neg = [[-1,0],[0,-1],[1,1]]
    //! L = sum(-(cos(a,b)/.5 - lse([cos(a,b)/.5] + [cos(a,n)/.5 for n in neg]))
    //!         for a, b in zip(q, p)) / 2                               # 0.8320007209
    //! # NT-Xent, N = 3
    //! z = [[1,0],[0,1],[1,1]] + [[0.9,0.1],[0.2,1],[1,0.8]]
    //! def ntx(tau): return sum(-(cos(z[i], z[(i+3)%6])/tau
    //!     - lse([cos(z[i], z[k])/tau for k in range(6) if k != i])) for i in range(6)) / 6
    //! ntx(0.2)   # 0.6236108683
    //! ntx(0.05)  # 0.0466148384
    //! # Triplet, margin 1: a = [[0,0],[1,1]], p = [[1,0],[1,2]], n = [[0,2],[1.5,1]]
    //! # per example max(1 - 2 + 1, 0) = 0 and max(1 - 0.5 + 1, 0) = 1.5 -> mean 0.75
    //! ```
    use super::*;
    use burn::tensor::Device;

    fn t(rows: &[[f32; 2]]) -> Tensor<2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), 2]), &Device::flex())
    }

    fn close(a: Tensor<1>, b: f64, tol: f64) {
        let a = a.into_scalar::<f32>() as f64;
        assert!((a - b).abs() < tol, "{a} vs {b}");
    }

    #[test]
    fn info_nce_matches_golden_value() {
        let l = info_nce(
            t(&[[1.0, 0.0], [0.6, 0.8]]),
            t(&[[0.8, 0.6], [0.0, 1.0]]),
            t(&[[-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]]),
            0.5,
        );
        close(l, 0.832_000_720_9, 1e-5);
    }

    #[test]
    fn nt_xent_matches_golden_values_and_stays_finite_for_small_tau() {
        let z1 = t(&[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]);
        let z2 = t(&[[0.9, 0.1], [0.2, 1.0], [1.0, 0.8]]);
        close(nt_xent(z1.clone(), z2.clone(), 0.2), 0.623_610_868_3, 1e-5);
        close(nt_xent(z1.clone(), z2.clone(), 0.05), 0.046_614_838_4, 1e-5);
        let tiny = nt_xent(z1, z2, 1e-3).into_scalar::<f32>();
        assert!(tiny.is_finite() && tiny >= 0.0, "{tiny}");
    }

    #[test]
    fn triplet_matches_golden_value() {
        let l = triplet(
            t(&[[0.0, 0.0], [1.0, 1.0]]),
            t(&[[1.0, 0.0], [1.0, 2.0]]),
            t(&[[0.0, 2.0], [1.5, 1.0]]),
            1.0,
        );
        close(l, 0.75, 1e-6);
    }
}
