//! Heads on frozen features: the backbone's features are computed once for the training
//! set (inference mode) and only the head trains on them, instead of running the frozen
//! backbone forward on every batch of every epoch. The head is a linear softmax
//! classifier (cross-entropy) or a linear multi-class SVM (hinge loss, Weston & Watkins
//! 1999, as PyTorch's `MultiMarginLoss`: `sum_{i != y} max(0, margin - x_y + x_i) / C`),
//! the survey's "SVM on a frozen feature extractor"; use `optim.weight_decay` for the
//! SVM's L2 term.
//!
//! The features are exact for the whole run: they are constants in the step's graph, so
//! the backbone receives no gradient and never changes. For the same reason the
//! validation and test splits are scored on their features computed once too: after the
//! first epoch only the head runs (a probe on EfficientNet-Lite0 spent 81 of its 85 s
//! running the frozen backbone over the test split every epoch).
//!
//! On photos streamed from disk ([`LinearProbe::streamed`]) each epoch draws new
//! augmentations, so the frozen backbone runs on every batch (inference mode, outside
//! the graph: no backward pass through it) and only the head trains.

use std::cell::RefCell;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::data::{Batch, DataError, Dataset, Examples};
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
    /// Backbone features of the splits scored so far, by content (at most two: the
    /// validation and the test split).
    scored: RefCell<Vec<(u64, ExampleCache)>>,
}

/// A 64-bit digest of `data`'s pixels, labels and shape (FNV-1a over the bits): which
/// split an evaluation scores, whatever copy of it the caller holds.
fn digest(data: &Dataset) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: u64| {
        h ^= v;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    data.shape.iter().for_each(|&d| eat(d as u64));
    data.labels.iter().for_each(|&l| eat(l as u64));
    data.images.iter().for_each(|v| eat(u64::from(v.to_bits())));
    h
}

impl LinearProbe {
    /// A probe over the training set `train`.
    pub fn new(config: &LinearProbeConfig, train: &Dataset) -> Self {
        Self {
            train: Some(train.clone()),
            loss: config.loss,
            cache: None,
            scored: RefCell::new(Vec::new()),
        }
    }

    /// A probe on examples read as the run trains (augmented photos): the backbone's
    /// features are computed for every batch instead of once.
    pub fn streamed(config: &LinearProbeConfig) -> Self {
        Self {
            train: None,
            loss: config.loss,
            cache: None,
            scored: RefCell::new(Vec::new()),
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
        let features = match &self.cache {
            Some(cache) => cache.rows(indices, &batch.images.device()),
            // Streamed: the frozen backbone in inference mode on this batch, a constant
            // in the head's graph.
            None => network
                .valid()
                .features(batch.images.clone().inner())
                .autodiff(),
        };
        let logits = network.head_forward(features);
        let loss = head_loss(self.loss, logits.clone(), batch.labels.clone());
        StepOutput {
            loss,
            logits,
            targets: None,
        }
    }

    /// Cross-entropy and accuracy of the head (inference mode) on `data`'s backbone
    /// features, computed on the first evaluation of that split and kept (data in
    /// memory; streamed photos are augmented anew, so the engine scores them whole).
    fn evaluate(
        &self,
        network: &Network,
        data: &dyn Examples,
    ) -> Option<Result<(f64, f64), DataError>> {
        let data = data.in_memory()?;
        let key = digest(data);
        let mut scored = self.scored.borrow_mut();
        if !scored.iter().any(|(k, _)| *k == key) {
            if scored.len() == 2 {
                scored.remove(0);
            }
            scored.push((key, backbone_features(network, data)));
        }
        let (_, features) = scored.iter().find(|(k, _)| *k == key)?;
        let model = network.valid();
        let device = crate::engine::module_device(&model);
        let (mut loss, mut right) = (0f64, 0u64);
        for idx in crate::data::BatchOrder::sequential(data.len(), 1000).batches() {
            let logits = model.head_forward(features.rows(idx, &device));
            let labels: Vec<i64> = idx.iter().map(|&i| data.labels[i] as i64).collect();
            let labels: Tensor<1, Int> =
                Tensor::from_data(TensorData::new(labels, [idx.len()]), &device);
            let ce = CrossEntropyLossConfig::new()
                .init(&device)
                .forward(logits.clone(), labels.clone());
            loss += ce.into_scalar::<f32>() as f64 * idx.len() as f64;
            let predicted = logits.argmax(1).flatten::<1>(0, 1);
            right += predicted.equal(labels).int().sum().into_scalar::<i64>() as u64;
        }
        let n = data.len().max(1) as f64;
        Some(Ok((loss / n, right as f64 / n)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{CnnConfig, ModelConfig};
    use burn::tensor::Device;

    fn toy(n: usize, seed: usize) -> Dataset {
        let labels: Vec<usize> = (0..n).map(|i| (i * 7 + seed) % 4).collect();
        let images = (0..n * 64)
            .map(|i| ((i * 31 + seed * 17) % 29) as f32 / 29.0 + labels[i / 64] as f32 * 0.2)
            .collect();
        Dataset::new(images, labels, [1, 8, 8], 4).unwrap()
    }

    /// The probe scores a split on its cached features as the engine scores the whole
    /// network, and computes each split's features once (two splits kept).
    #[test]
    fn splits_are_scored_on_features_computed_once() {
        let device = Device::flex();
        let network = ModelConfig::Cnn(CnnConfig::default()).init([1, 8, 8], 4, &device);
        let probe = LinearProbe::new(&LinearProbeConfig::default(), &toy(20, 0));
        let (val, test) = (toy(30, 1), toy(50, 2));
        for data in [&val, &test, &val.clone(), &test] {
            let (loss, accuracy) = probe.evaluate(&network, data).unwrap().unwrap();
            let (want_loss, want_accuracy) = crate::engine::evaluate(&network, data, 100);
            assert!((loss - want_loss).abs() < 1e-5, "{loss} vs {want_loss}");
            assert_eq!(accuracy, want_accuracy);
        }
        assert_eq!(
            probe.scored.borrow().len(),
            2,
            "a copy of a split is the split"
        );
        probe.evaluate(&network, &toy(10, 3)).unwrap().unwrap();
        let kept: Vec<u64> = probe.scored.borrow().iter().map(|(k, _)| *k).collect();
        assert_eq!(kept, [digest(&test), digest(&toy(10, 3))]);
    }
}
