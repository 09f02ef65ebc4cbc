//! Label-efficiency evaluation of a frozen representation: the backbone's features are
//! computed once for the training and test sets, standardised with the training set's
//! per-dimension mean and deviation, and then, for each fraction of the labels (1%, 10%,
//! 100%: the same number of examples drawn from every class, seeded), probed two ways:
//!
//! - a weighted kNN classifier ([`super::knn_evaluate`]) whose bank is the labelled part;
//! - a linear softmax classifier (logistic regression) trained with Adam on the labelled
//!   part's cached features, the usual "linear evaluation protocol" (Zhang et al. 2016;
//!   Chen et al. 2020), for at least `min_steps` steps so small fractions also converge.
//!
//! Neither changes the backbone; the numbers measure the representation alone.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::data::split::per_class_label_indices;
use crate::data::{BatchOrder, Examples};
use crate::engine::cache::{ExampleCache, labelled_backbone_features};
use crate::models::Network;

use super::knn_accuracy;
use crate::rules::{self, Interval, Rule, Violation};

/// How to probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// Fractions of the training labels, each in (0, 1].
    pub fractions: Vec<f64>,
    /// Epochs of the linear classifier.
    pub epochs: usize,
    /// ... but at least this many steps.
    pub min_steps: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Examples per step.
    pub batch_size: usize,
    /// kNN neighbours.
    pub knn_k: usize,
    /// kNN vote temperature.
    pub knn_temperature: f64,
    /// Seed of the label subsets, the classifier's initialisation and its batches.
    pub seed: u64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            fractions: vec![0.01, 0.1, 1.0],
            epochs: 30,
            min_steps: 1000,
            lr: 1e-3,
            batch_size: 256,
            knn_k: 200,
            knn_temperature: 0.1,
            seed: 0,
        }
    }
}

impl ProbeConfig {
    /// Checks the rules; on error the setting and the rule it breaks.
    pub fn validate(&self) -> Result<(), Violation> {
        if self.fractions.is_empty() {
            return rules::fail("fractions", Rule::NotEmpty);
        }
        for f in &self.fractions {
            Interval::open_closed(0.0, 1.0)
                .check(*f)
                .map_err(|r| Violation::new("fractions", r))?;
        }
        for (key, v) in [
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("knn_k", self.knn_k),
        ] {
            rules::at_least(v, 1).map_err(|r| Violation::new(key, r))?;
        }
        rules::positive(self.lr).map_err(|r| Violation::new("lr", r))?;
        rules::positive(self.knn_temperature).map_err(|r| Violation::new("knn_temperature", r))?;
        Ok(())
    }
}

/// The probes at one label fraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRow {
    /// Fraction of the training labels.
    pub fraction: f64,
    /// Labelled examples used.
    pub labels: usize,
    /// Weighted kNN test accuracy.
    pub knn_accuracy: f64,
    /// Linear classifier test accuracy.
    pub linear_accuracy: f64,
    /// Seconds to train the linear classifier.
    pub linear_seconds: f64,
}

/// Standardises both caches with `fit`'s per-dimension mean and deviation.
fn standardize(fit: &ExampleCache, others: &[&ExampleCache]) -> Vec<ExampleCache> {
    let w = fit.width().max(1);
    let rows = fit.values().len() / w;
    let mut mean = vec![0.0f64; w];
    let mut sq = vec![0.0f64; w];
    for row in fit.values().chunks(w) {
        for (j, &v) in row.iter().enumerate() {
            mean[j] += v as f64;
            sq[j] += (v as f64) * (v as f64);
        }
    }
    let n = rows.max(1) as f64;
    let scale: Vec<(f32, f32)> = mean
        .iter()
        .zip(&sq)
        .map(|(&s, &q)| {
            let m = s / n;
            let sd = (q / n - m * m).max(0.0).sqrt();
            (m as f32, if sd > 1e-8 { 1.0 / sd as f32 } else { 1.0 })
        })
        .collect();
    let apply = |c: &ExampleCache| {
        let values: Vec<f32> = c
            .values()
            .chunks(w)
            .flat_map(|row| {
                row.iter()
                    .zip(&scale)
                    .map(|(&v, &(m, inv))| (v - m) * inv)
                    .collect::<Vec<_>>()
            })
            .collect();
        ExampleCache::from_values(values, w)
    };
    std::iter::once(fit)
        .chain(others.iter().copied())
        .map(apply)
        .collect()
}

/// Trains a linear softmax classifier on `features` (rows of the labelled examples)
/// and returns its accuracy on `test`.
fn linear_classifier(
    features: &ExampleCache,
    labels: &[usize],
    test: &ExampleCache,
    test_labels: &[usize],
    classes: usize,
    config: &ProbeConfig,
) -> f64 {
    let device = Device::flex().autodiff();
    device.seed(config.seed);
    let mut head: Linear = LinearConfig::new(features.width(), classes).init(&device);
    let mut optim = AdamConfig::new().init();
    let n = labels.len();
    let per_epoch = n.div_ceil(config.batch_size).max(1);
    let epochs = config.epochs.max(config.min_steps.div_ceil(per_epoch));
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    for epoch in 0..epochs {
        let order = BatchOrder::shuffled(n, config.batch_size, config.seed, epoch);
        for idx in order.batches() {
            let x = features.rows(idx, &device);
            let y: Vec<i64> = idx.iter().map(|&i| labels[i] as i64).collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(y, [idx.len()]), &device);
            let loss = loss_fn.forward(head.forward(x), y);
            let grads = GradientsParams::from_grads(loss.backward(), &head);
            head = optim.step(config.lr, head, grads);
        }
    }
    let head = head.valid();
    let inner = crate::engine::module_device(&head);
    let all: Vec<usize> = (0..test_labels.len()).collect();
    let mut correct = 0usize;
    for idx in all.chunks(1000) {
        let pred: Vec<i64> = head
            .forward(test.rows(idx, &inner))
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_into_vec()
            .unwrap_or_default();
        correct += idx
            .iter()
            .zip(&pred)
            .filter(|&(&i, &p)| test_labels[i] as i64 == p)
            .count();
    }
    correct as f64 / test_labels.len().max(1) as f64
}

/// Probes `network`'s backbone features on `train` and `test` (in memory, or photos
/// streamed through an evaluation transform): one [`ProbeRow`] per label fraction. The
/// error says which setting or photo failed.
pub fn probe(
    network: &Network,
    train: &dyn Examples,
    test: &dyn Examples,
    config: &ProbeConfig,
) -> Result<Vec<ProbeRow>, String> {
    config.validate().map_err(|v| v.to_string())?;
    let (train_raw, train_labels) =
        labelled_backbone_features(network, train).map_err(|e| e.to_string())?;
    let (test_raw, test_labels) =
        labelled_backbone_features(network, test).map_err(|e| e.to_string())?;
    let mut caches = standardize(&train_raw, &[&test_raw]);
    let test_f = caches.pop().unwrap_or_else(|| test_raw.clone());
    let train_f = caches.pop().unwrap_or_else(|| train_raw.clone());
    let classes = train.num_classes().max(test.num_classes());
    let mut rows = Vec::new();
    for &fraction in &config.fractions {
        let n = train_labels.len();
        let per_class = ((fraction * n as f64) / classes as f64).round().max(1.0) as usize;
        let subset: Vec<usize> = if fraction >= 1.0 {
            (0..n).collect()
        } else {
            per_class_label_indices(&train_labels, train.num_classes(), per_class, config.seed)
        };
        let features = train_f.select(&subset);
        let labels: Vec<usize> = subset.iter().map(|&i| train_labels[i]).collect();
        let knn = knn_accuracy(
            &features,
            &labels,
            &test_f,
            &test_labels,
            classes,
            config.knn_k,
            config.knn_temperature,
        );
        let started = Instant::now();
        let linear = linear_classifier(&features, &labels, &test_f, &test_labels, classes, config);
        rows.push(ProbeRow {
            fraction,
            labels: subset.len(),
            knn_accuracy: knn,
            linear_accuracy: linear,
            linear_seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(rows)
}
