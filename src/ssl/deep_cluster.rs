//! DeepCluster (Caron et al. 2018, "Deep Clustering for Unsupervised Learning of Visual
//! Features"): at the start of every epoch the backbone's features of all training
//! images are clustered with k-means ([`super::clustering`]); the cluster ids are the
//! epoch's pseudo-labels, and the network (backbone + classifier over `clusters`
//! outputs, a projected network) is trained to predict them from augmented views.
//!
//! As in the paper, the features are preprocessed before clustering (here each
//! dimension standardised, then every row L2-normalised; the paper PCA-whitens to 256
//! dimensions first, which a 128-wide feature does not need), and the loss weights
//! every example by the inverse size of its cluster, which in expectation is the paper's
//! uniform sampling over clusters: without it the network can predict one huge cluster
//! (the trivial solution the paper warns about).
//!
//! One deliberate change: the paper re-initialises the classifier every epoch, because
//! k-means numbers its clusters arbitrarily. Here the objective cannot touch the
//! network, so the clustering keeps the numbering instead: from the second epoch on,
//! k-means starts from the centroids of the previous epoch's clusters recomputed in the
//! new feature space, so cluster `c` stays the same group of images as far as the
//! features allow, and the classifier carries over.

use burn::tensor::{Int, Tensor, TensorData};

use crate::data::{Batch, Dataset};
use crate::engine::StepOutput;
use crate::engine::cache::backbone_features;
use crate::models::Network;

use super::clustering::{kmeans, kmeans_from};
use super::{PretextLoss, SelfSupervisedConfig, SslError, ViewSource, decode_f32, encode_f32};

/// The DeepCluster objective.
pub struct DeepCluster {
    /// The training images as the network takes them (clustered without augmentation).
    images: Dataset,
    views: ViewSource,
    clusters: usize,
    iterations: usize,
    /// The pseudo-label of every training image, and the views seed of the epoch they
    /// were computed for.
    labels: Vec<usize>,
    labels_seed: Option<u64>,
    /// Loss weight of each cluster: `n / (k * size)`, 0 for an empty cluster.
    weights: Vec<f32>,
}

impl DeepCluster {
    /// DeepCluster over the training images `train` (labels unused), trained on `views`;
    /// errors when there are fewer images than clusters.
    pub fn new(
        config: &SelfSupervisedConfig,
        train: &Dataset,
        views: ViewSource,
    ) -> Result<Self, SslError> {
        if train.len() < config.clusters {
            return Err(SslError::Data(format!(
                "DeepCluster with strategy.clusters = {} needs at least that many training images, got {}",
                config.clusters,
                train.len()
            )));
        }
        Ok(Self {
            images: train.clone(),
            views,
            clusters: config.clusters,
            iterations: config.kmeans_iterations,
            labels: Vec::new(),
            labels_seed: None,
            weights: Vec::new(),
        })
    }

    /// The current pseudo-labels, one per training image (empty before the first step).
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Clusters the features of `network` into new pseudo-labels, warm-started from the
    /// current ones if there are any.
    fn recluster(&mut self, network: &Network, seed: u64) {
        let features = backbone_features(network, &self.images);
        let dim = features.width();
        let points = cluster_features(features.values(), dim);
        let k = self.clusters;
        let result = if self.labels.len() == self.images.len() {
            let centroids = cluster_means(&points, dim, &self.labels, k);
            kmeans_from(&points, dim, centroids, self.iterations, seed)
        } else {
            kmeans(&points, dim, k, self.iterations, seed)
        };
        // The sizes were checked in `new`, so k-means cannot refuse them.
        let Ok(result) = result else {
            unreachable!("k-means sizes checked when the objective was built")
        };
        self.labels = result.assignments;
        self.labels_seed = Some(seed);
        self.weights = balancing_weights(&self.labels, k);
    }
}

/// The features k-means sees: every dimension standardised over the dataset (constant
/// ones left at zero), then every row scaled to unit length.
pub fn cluster_features(values: &[f32], dim: usize) -> Vec<f32> {
    let n = values.len() / dim.max(1);
    let mut mean = vec![0.0f64; dim];
    let mut sq = vec![0.0f64; dim];
    for row in values.chunks(dim) {
        for (j, &v) in row.iter().enumerate() {
            mean[j] += v as f64;
            sq[j] += (v as f64) * (v as f64);
        }
    }
    let scale: Vec<(f64, f64)> = (0..dim)
        .map(|j| {
            let m = mean[j] / n.max(1) as f64;
            let var = (sq[j] / n.max(1) as f64 - m * m).max(0.0);
            (m, if var > 1e-12 { 1.0 / var.sqrt() } else { 0.0 })
        })
        .collect();
    let mut out = Vec::with_capacity(values.len());
    for row in values.chunks(dim) {
        let z: Vec<f64> = row
            .iter()
            .zip(&scale)
            .map(|(&v, &(m, s))| (v as f64 - m) * s)
            .collect();
        let norm = z.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        out.extend(z.iter().map(|x| (x / norm) as f32));
    }
    out
}

/// The `k x dim` means of the points of each cluster in `labels`; an empty cluster takes
/// the point farthest from its own cluster's mean (so k-means can grow it back).
fn cluster_means(points: &[f32], dim: usize, labels: &[usize], k: usize) -> Vec<f32> {
    let mut sums = vec![0.0f64; k * dim];
    let mut counts = vec![0usize; k];
    for (row, &c) in points.chunks(dim).zip(labels) {
        counts[c] += 1;
        for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row) {
            *s += v as f64;
        }
    }
    let mut means: Vec<f32> = sums
        .chunks(dim)
        .zip(&counts)
        .flat_map(|(s, &n)| s.iter().map(move |v| (v / n.max(1) as f64) as f32))
        .collect();
    let distance = |i: usize| -> f32 {
        let c = labels[i];
        points[i * dim..(i + 1) * dim]
            .iter()
            .zip(&means[c * dim..(c + 1) * dim])
            .map(|(a, b)| (a - b) * (a - b))
            .sum()
    };
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| distance(b).total_cmp(&distance(a)));
    let mut far = order.into_iter();
    for c in 0..k {
        if counts[c] == 0
            && let Some(i) = far.next()
        {
            means[c * dim..(c + 1) * dim].copy_from_slice(&points[i * dim..(i + 1) * dim]);
        }
    }
    means
}

/// Per-cluster loss weights `n / (k * size)`: an example's weight is what uniform
/// sampling over clusters would give it, relative to uniform sampling over images.
pub fn balancing_weights(labels: &[usize], k: usize) -> Vec<f32> {
    let mut counts = vec![0usize; k];
    for &c in labels {
        counts[c] += 1;
    }
    let n = labels.len() as f32;
    counts
        .iter()
        .map(|&size| {
            if size == 0 {
                0.0
            } else {
                n / (k as f32 * size as f32)
            }
        })
        .collect()
}

/// Cross-entropy of `logits` `[B, K]` against `targets` `[B]`, each example weighted by
/// `weights` `[B]`: `mean_i w_i * CE_i`.
pub fn weighted_cross_entropy(
    logits: Tensor<2>,
    targets: Tensor<1, Int>,
    weights: Tensor<1>,
) -> Tensor<1> {
    let [b, _] = logits.dims();
    let log_p = burn::tensor::activation::log_softmax(logits, 1);
    let picked = log_p.gather(1, targets.reshape([b, 1])).reshape([b]);
    (picked * weights).mean().neg()
}

impl PretextLoss for DeepCluster {
    fn step(
        &mut self,
        network: &Network,
        batch: &Batch,
        indices: &[usize],
        seed: u64,
    ) -> StepOutput {
        if self.labels_seed != Some(seed) {
            self.recluster(network, seed);
        }
        let device = batch.images.device();
        let n = indices.len();
        let labels: Vec<i64> = indices.iter().map(|&i| self.labels[i] as i64).collect();
        let weights: Vec<f32> = indices
            .iter()
            .map(|&i| self.weights[self.labels[i]])
            .collect();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &device);
        let weights = Tensor::<1>::from_data(TensorData::new(weights, [n]), &device);
        let logits = network.forward(self.views.view(batch, indices, 0, seed, &device));
        StepOutput {
            loss: weighted_cross_entropy(logits.clone(), targets.clone(), weights),
            logits,
            targets: Some(targets),
        }
    }

    fn state(&self) -> serde_json::Value {
        let labels: Vec<f32> = self.labels.iter().map(|&c| c as f32).collect();
        serde_json::json!({
            "labels": encode_f32(&labels),
            "labels_seed": self.labels_seed,
        })
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        let labels = state
            .get("labels")
            .and_then(|v| v.as_str())
            .ok_or("no pseudo-labels")?;
        let labels: Vec<usize> = decode_f32(labels)?.iter().map(|&c| c as usize).collect();
        if !labels.is_empty() && labels.len() != self.images.len() {
            return Err(format!(
                "{} pseudo-labels saved for {} training images",
                labels.len(),
                self.images.len()
            ));
        }
        if labels.iter().any(|&c| c >= self.clusters) {
            return Err(format!("a pseudo-label is >= {} clusters", self.clusters));
        }
        self.labels_seed = state.get("labels_seed").and_then(|v| v.as_u64());
        self.weights = balancing_weights(&labels, self.clusters);
        self.labels = labels;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn weighted_cross_entropy_golden_values() {
        // Python: lsm = log-softmax; logits [[1, 2, 0.5], [0.2, -1, 3]], targets [1, 2],
        // weights [2, 0.5]: -(2 * lsm(row0)[1] + 0.5 * lsm(row1)[2]) / 2 = 0.4834065785
        let device = Device::flex();
        let logits = Tensor::<2>::from_data([[1.0, 2.0, 0.5], [0.2, -1.0, 3.0]], &device);
        let targets = Tensor::<1, Int>::from_data([1, 2], &device);
        let weights = Tensor::<1>::from_data([2.0, 0.5], &device);
        let loss: f32 = weighted_cross_entropy(logits, targets, weights).into_scalar();
        assert!((loss - 0.483_406_6).abs() < 1e-5, "{loss}");
    }

    #[test]
    fn balancing_weights_equalise_the_clusters() {
        // Clusters of 6, 3 and 1 points: each cluster's weights sum to n / k.
        let labels = [0, 0, 0, 0, 0, 0, 1, 1, 1, 2];
        let w = balancing_weights(&labels, 4);
        assert_eq!(w[3], 0.0);
        for (c, size) in [(0, 6.0), (1, 3.0), (2, 1.0)] {
            assert!((w[c] * size - 10.0 / 4.0).abs() < 1e-6);
        }
    }

    #[test]
    fn cluster_features_are_standardised_unit_rows() {
        let values = [1.0, 10.0, 7.0, 3.0, 50.0, 7.0, 8.0, 20.0, 7.0];
        let out = cluster_features(&values, 3);
        for row in out.chunks(3) {
            let norm: f32 = row.iter().map(|v| v * v).sum();
            assert!((norm - 1.0).abs() < 1e-5, "{row:?}");
            // The constant third dimension carries nothing.
            assert_eq!(row[2], 0.0);
        }
        // Standardising removes each dimension's scale and offset.
        let rescaled: Vec<f32> = values
            .chunks(3)
            .flat_map(|r| [r[0] * 100.0 - 3.0, r[1], r[2]])
            .collect();
        let again = cluster_features(&rescaled, 3);
        for (a, b) in out.iter().zip(&again) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn warm_started_clusters_keep_their_ids() {
        // Two blobs; the features shift a little between "epochs": clustering from the
        // previous clusters' means keeps every point's id, whatever k-means++ would pick.
        let blob =
            |x: f32, y: f32, i: usize| [x + (i % 5) as f32 * 0.01, y + (i / 5) as f32 * 0.01];
        let mut points = Vec::new();
        for i in 0..20 {
            points.extend(blob(0.0, 1.0, i));
            points.extend(blob(1.0, 0.0, i));
        }
        let first = kmeans(&points, 2, 2, 20, 7).unwrap().assignments;
        let shifted: Vec<f32> = points.iter().map(|v| v * 1.1 + 0.05).collect();
        let centroids = cluster_means(&shifted, 2, &first, 2);
        let next = kmeans_from(&shifted, 2, centroids, 20, 8)
            .unwrap()
            .assignments;
        assert_eq!(first, next);
        assert_ne!(first[0], first[1]);
    }
}
