//! Heads on frozen features: the backbone's features are computed once for the training
//! set (inference mode) and only the head trains on them, instead of running the frozen
//! backbone forward on every batch of every epoch. The head is a linear softmax
//! classifier (cross-entropy) or a linear multi-class SVM (hinge loss, Weston & Watkins
//! 1999, as PyTorch's `MultiMarginLoss`: `sum_{i != y} max(0, margin - x_y + x_i) / C`),
//! the survey's "SVM on a frozen feature extractor"; use `optim.weight_decay` for the
//! SVM's L2 term.
//!
//! The features are exact for the whole run: they are constants in the step's graph, so
//! the backbone receives no gradient and never changes.

use serde::{Deserialize, Serialize};

use crate::data::{Batch, Dataset};
use crate::engine::cache::{ExampleCache, backbone_features};
use crate::engine::{Objective, StepOutput};
use crate::losses::{HeadLoss, head_loss};
use crate::models::Network;

/// `[strategy] type = "linear-probe"`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearProbeConfig {
    /// The head's loss.
    pub loss: HeadLoss,
}

/// The linear-probe objective: the head's loss on cached backbone features. The cache
/// is filled on the first step from the network being trained (after any pretrained
/// weights were imported), so it always matches the frozen backbone. The probe keeps a
/// copy of the training images only until then.
pub struct LinearProbe {
    train: Option<Dataset>,
    loss: HeadLoss,
    cache: Option<ExampleCache>,
}

impl LinearProbe {
    /// A probe over the training set `train`.
    pub fn new(config: &LinearProbeConfig, train: &Dataset) -> Self {
        Self {
            train: Some(train.clone()),
            loss: config.loss,
            cache: None,
        }
    }
}

impl Objective for LinearProbe {
    fn step(&mut self, network: &Network, batch: &Batch, indices: &[usize]) -> StepOutput {
        if self.cache.is_none()
            && let Some(train) = self.train.take()
        {
            self.cache = Some(backbone_features(network, &train));
        }
        let Some(cache) = &self.cache else {
            unreachable!("the cache is filled on the first step")
        };
        let features = cache.rows(indices, &batch.images.device());
        let logits = network.head_forward(features);
        let loss = head_loss(self.loss, logits.clone(), batch.labels.clone());
        StepOutput {
            loss,
            logits,
            targets: None,
        }
    }
}

/// Per-dimension mean and standard deviation of a backbone's features on a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    /// Mean of each feature.
    pub mean: Vec<f64>,
    /// Standard deviation of each feature.
    pub std: Vec<f64>,
}

impl FeatureStats {
    /// Measures `network`'s backbone features (inference mode) over `data`.
    pub fn measure(network: &Network, data: &Dataset) -> Self {
        let cache = backbone_features(network, data);
        let (w, n) = (cache.width(), data.len().max(1) as f64);
        let mut mean = vec![0f64; w];
        let mut sq = vec![0f64; w];
        for row in cache.values().chunks_exact(w.max(1)) {
            for (j, &v) in row.iter().enumerate() {
                mean[j] += f64::from(v);
                sq[j] += f64::from(v) * f64::from(v);
            }
        }
        let mean: Vec<f64> = mean.iter().map(|m| m / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| (s / n - m * m).max(0.0).sqrt())
            .collect();
        Self { mean, std }
    }

    /// Mean over features of `|mean_a - mean_b| / sqrt((var_a + var_b) / 2)` (Cohen's d
    /// per feature), skipping features that are constant in both sets.
    pub fn standardized_mean_difference(&self, other: &FeatureStats) -> f64 {
        let mut total = 0.0;
        let mut used = 0usize;
        for j in 0..self.mean.len().min(other.mean.len()) {
            let pooled = ((self.std[j].powi(2) + other.std[j].powi(2)) / 2.0).sqrt();
            if pooled > 1e-9 {
                total += (self.mean[j] - other.mean[j]).abs() / pooled;
                used += 1;
            }
        }
        if used == 0 { 0.0 } else { total / used as f64 }
    }
}
