//! Self-supervised learning: representations learnt from unlabeled images, then probed
//! with labels.
//!
//! - Losses ([`losses`]): InfoNCE, NT-Xent, triplet.
//! - Methods, each an engine [`Objective`] over a [`crate::models::Projected`] network
//!   (`[strategy] type = "self-supervised"`): SimCLR ([`simclr`]), MoCo ([`moco`]) and
//!   the relative-position pretext task ([`relative_position`]), DeepCluster
//!   ([`deep_cluster`], k-means pseudo-labels, [`clustering`]), AMDIM ([`amdim`]);
//!   CPC ([`cpc`]) runs over a [`crate::models::Cpc`] network instead. The rotation pretext
//!   task is a data transform (`data.pretext = "rotation"`) trained as plain supervised
//!   classification of the rotation.
//! - Probes: weighted kNN ([`knn`]), and a linear probe on cached features at a chosen
//!   fraction of the labels ([`probe`]); during pretraining the engine's per-epoch
//!   evaluation is a kNN probe ([`KnnMonitor`]).
//!
//! Training never reads a label: the labels of the training set are only read by the
//! kNN monitor, which scores the representation after each epoch.

pub mod amdim;
pub mod clustering;
pub mod cpc;
pub mod deep_cluster;
pub mod knn;
pub mod moco;
pub mod probe;
pub mod relative_position;
pub mod simclr;

use serde::{Deserialize, Serialize};

use crate::data::augment::AugmentConfig;
use crate::data::split::Normalization;
use crate::data::stream::ImageStream;
use crate::data::{DataError, Dataset, Examples};
use crate::engine::Objective;
use crate::engine::cache::{ExampleCache, labelled_backbone_features};
use crate::losses::l2_normalize;
use crate::models::Network;
use crate::rules::{self, Interval, Rule, Violation};

pub use amdim::Amdim;
pub use cpc::ContrastivePredictiveCoding;
pub use deep_cluster::DeepCluster;
pub use knn::{knn_accuracy, knn_evaluate};
pub use moco::Moco;
pub use relative_position::RelativePosition;
pub use simclr::Simclr;

/// A self-supervised method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMethod {
    /// SimCLR (Chen et al. 2020): NT-Xent between two augmented views of each image.
    #[default]
    Simclr,
    /// MoCo (He et al. 2020): InfoNCE against a momentum key encoder and a queue.
    Moco,
    /// Relative patch position (Doersch et al. 2015): which of the 8 neighbours of the
    /// centre patch a second patch is.
    RelativePosition,
    /// DeepCluster (Caron et al. 2018): predict the k-means cluster of the features.
    DeepCluster,
    /// AMDIM (Bachman et al. 2019): NCE between one view's global vector and the other
    /// view's local features, across scales.
    Amdim,
    /// Contrastive Predictive Coding (van den Oord et al. 2018): predict the codes of
    /// patches below from a context of the patches above (a CPC network).
    Cpc,
}

impl SslMethod {
    /// Whether the method compares embeddings of whole images (SimCLR, MoCo), which any
    /// network's outputs can be, rather than classifying a pretext label (relative
    /// position, DeepCluster: the class count fixes the outputs) or comparing across
    /// scales (AMDIM: a projected CNN with local heads).
    pub fn contrastive(self) -> bool {
        matches!(self, SslMethod::Simclr | SslMethod::Moco)
    }
}

/// `[strategy] type = "self-supervised"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelfSupervisedConfig {
    /// The method.
    pub method: SslMethod,
    /// Temperature `tau` of the contrastive losses (SimCLR, MoCo).
    pub temperature: f64,
    /// MoCo's momentum `m` of the key encoder: `key = m key + (1 - m) query`.
    pub momentum: f64,
    /// MoCo's queue length K (negatives).
    pub queue: usize,
    /// Relative position's patch side in pixels (a 3x3 grid of cells; the rest of a cell
    /// is the gap and jitter).
    pub patch: usize,
    /// DeepCluster's number of k-means clusters (the classifier's outputs).
    pub clusters: usize,
    /// DeepCluster's k-means (Lloyd) iterations per epoch, at most.
    pub kmeans_iterations: usize,
    /// The augmentations of SimCLR's, MoCo's and DeepCluster's views.
    pub augment: AugmentConfig,
    /// Training examples whose features form the kNN monitor's bank (at least 1).
    pub monitor_examples: usize,
    /// Neighbours of the kNN monitor.
    pub knn_k: usize,
    /// Temperature of the kNN monitor's votes.
    pub knn_temperature: f64,
}

impl Default for SelfSupervisedConfig {
    /// tau 0.2 and MoCo's m 0.99 with a 4096 queue (solo-learn's CIFAR settings, the
    /// nearest published setup to 28x28 images); 7-pixel patches in 9-pixel cells of a
    /// 28x28 image; 100 DeepCluster clusters (10x over-clustering of 10 classes; the
    /// paper found over-clustering helps) with 20 k-means iterations; SimCLR's
    /// augmentations; a 10 000-example kNN monitor (k 200, T 0.1).
    fn default() -> Self {
        Self {
            method: SslMethod::Simclr,
            temperature: 0.2,
            momentum: 0.99,
            queue: 4096,
            patch: 7,
            clusters: 100,
            kmeans_iterations: 20,
            augment: AugmentConfig::default(),
            monitor_examples: 10_000,
            knn_k: 200,
            knn_temperature: 0.1,
        }
    }
}

impl SelfSupervisedConfig {
    /// Checks the rules; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self) -> Result<(), Violation> {
        let at = |k: &'static str| move |r: Rule| Violation::new(format!("strategy.{k}"), r);
        rules::positive(self.temperature).map_err(at("temperature"))?;
        rules::positive(self.knn_temperature).map_err(at("knn_temperature"))?;
        Interval::UNIT_OPEN
            .check(self.momentum)
            .map_err(at("momentum"))?;
        if self.method == SslMethod::Moco {
            rules::at_least(self.queue, 1).map_err(at("queue"))?;
        }
        rules::at_least(self.clusters, 2).map_err(at("clusters"))?;
        rules::at_least(self.kmeans_iterations, 1).map_err(at("kmeans_iterations"))?;
        rules::at_least(self.patch, 1).map_err(at("patch"))?;
        rules::at_least(self.knn_k, 1).map_err(at("knn_k"))?;
        rules::at_least(self.monitor_examples, 1).map_err(at("monitor_examples"))?;
        self.augment.validate().map_err(|v| v.under("strategy."))
    }

    /// The projection outputs and inputs the method's network needs, (outputs, inputs),
    /// given the width `outputs` asked for (used by the contrastive methods; the
    /// classification pretexts fix their own).
    pub fn projection(&self, outputs: usize) -> (usize, usize) {
        match self.method {
            SslMethod::Simclr | SslMethod::Moco => (outputs, 1),
            SslMethod::RelativePosition => (relative_position::NEIGHBOURS, 2),
            SslMethod::DeepCluster => (self.clusters, 1),
            SslMethod::Amdim | SslMethod::Cpc => (outputs, 1),
        }
    }
}

/// A self-supervised objective that cannot run on the given data or network.
#[derive(Debug, thiserror::Error)]
pub enum SslError {
    /// The images do not suit the method.
    #[error("{0}")]
    Data(String),
}

/// Builds the objective of `config` over the unlabeled training images `train`
/// (normalised with `normalization`, if any), with views seeded from the run's `seed`.
pub fn build_objective(
    config: &SelfSupervisedConfig,
    train: &Dataset,
    normalization: Option<&Normalization>,
    seed: u64,
) -> Result<Box<dyn Objective>, SslError> {
    let monitor = KnnMonitor::new(config, train);
    let views = || ViewSource::new(train, &config.augment, normalization);
    Ok(match config.method {
        SslMethod::Simclr => Box::new(Pretraining::new(
            Simclr::new(config, views()),
            seed,
            monitor,
        )),
        SslMethod::Moco => Box::new(Pretraining::new(
            Moco::new(config, views(), seed),
            seed,
            monitor,
        )),
        SslMethod::RelativePosition => Box::new(Pretraining::new(
            RelativePosition::new(config, train)?,
            seed,
            monitor,
        )),
        SslMethod::Amdim => Box::new(Pretraining::new(Amdim::new(views()), seed, monitor)),
        SslMethod::Cpc => Box::new(Pretraining::new(ContrastivePredictiveCoding, seed, monitor)),
        SslMethod::DeepCluster => Box::new(Pretraining::new(
            DeepCluster::new(config, train, views())?,
            seed,
            monitor,
        )),
    })
}

/// Builds the objective of `config` over training photos streamed from disk: `train`
/// makes two views of each photo (its transform, [`ImageStream::with_views`]) and the kNN
/// monitor's bank reads training photos through `eval`'s transform. SimCLR, MoCo and
/// AMDIM, which only compare views, stream; the methods that need every image at once
/// (relative position's patches, DeepCluster's k-means, CPC) need them in memory.
pub fn build_streamed_objective(
    config: &SelfSupervisedConfig,
    train: &ImageStream,
    eval: &ImageStream,
    seed: u64,
) -> Result<Box<dyn Objective>, SslError> {
    let views = Examples::views(train);
    if views < 2 {
        return Err(SslError::Data(format!(
            "the training stream makes {views} view of each photo; {:?} compares two",
            config.method
        )));
    }
    let monitor = KnnMonitor::streamed(config, train, eval, seed);
    let in_batch = || ViewSource::InBatch { views };
    Ok(match config.method {
        SslMethod::Simclr => Box::new(Pretraining::new(
            Simclr::new(config, in_batch()),
            seed,
            monitor,
        )),
        SslMethod::Moco => Box::new(Pretraining::new(
            Moco::new(config, in_batch(), seed),
            seed,
            monitor,
        )),
        SslMethod::Amdim => Box::new(Pretraining::new(Amdim::new(in_batch()), seed, monitor)),
        other => {
            return Err(SslError::Data(format!(
                "strategy.method {other:?} needs its images in memory (remove data.transform); photos streamed from disk train simclr, moco and amdim"
            )));
        }
    })
}

impl SslMethod {
    /// Whether the method can train on photos streamed from disk: it only compares
    /// views of each image, which the pipeline makes (SimCLR, MoCo, AMDIM).
    pub fn streams(self) -> bool {
        matches!(self, SslMethod::Simclr | SslMethod::Moco | SslMethod::Amdim)
    }
}

/// The seed of epoch `epoch`'s views (each epoch draws new augmentations).
pub(crate) fn epoch_views_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// The per-epoch evaluation of a self-supervised run: weighted kNN accuracy (and the
/// vote loss, [`knn_evaluate`]) of the backbone features, with a labelled bank of
/// training examples: the first `monitor_examples` of a split in memory, or a spread
/// subset of streamed photos through the evaluation transform.
pub struct KnnMonitor {
    bank: Box<dyn Examples>,
    k: usize,
    temperature: f64,
    /// The bank's features and labels and the epoch they were computed after: the
    /// network only changes between epochs, so the validation and test evaluations of
    /// one epoch share them.
    cached: std::cell::RefCell<Option<(usize, ExampleCache, Vec<usize>)>>,
}

impl KnnMonitor {
    /// A monitor over the first `config.monitor_examples` examples of `train`.
    pub fn new(config: &SelfSupervisedConfig, train: &Dataset) -> Self {
        let n = config.monitor_examples.clamp(1, train.len().max(1));
        let bank = train.select(&(0..n.min(train.len())).collect::<Vec<_>>());
        Self::over(config, Box::new(bank))
    }

    /// A monitor whose bank is `bank` (labelled examples without augmentation).
    pub fn over(config: &SelfSupervisedConfig, bank: Box<dyn Examples>) -> Self {
        Self {
            bank,
            k: config.knn_k,
            temperature: config.knn_temperature,
            cached: std::cell::RefCell::new(None),
        }
    }

    /// A monitor over up to `config.monitor_examples` of the streamed training photos
    /// `train`, drawn evenly (seeded by `seed`; the files are in class order) and read
    /// through `eval`'s transform, one view each.
    pub fn streamed(
        config: &SelfSupervisedConfig,
        train: &ImageStream,
        eval: &ImageStream,
        seed: u64,
    ) -> Self {
        let n = train.files().len();
        let mut chosen: Vec<usize> = (0..n).collect();
        if config.monitor_examples < n {
            use rand::seq::SliceRandom;
            chosen.shuffle(&mut crate::data::split::rng(seed ^ 0x5EED_0003));
            chosen.truncate(config.monitor_examples.max(1));
            chosen.sort_unstable();
        }
        let bank = eval.over(train.files().select(&chosen), 1);
        Self::over(config, Box::new(bank))
    }

    /// (kNN vote loss, kNN accuracy) of `network`'s features on `data`, after `epoch`
    /// epochs (the bank's features are computed once per epoch).
    pub fn evaluate(
        &self,
        network: &Network,
        data: &dyn Examples,
        epoch: usize,
    ) -> Result<(f64, f64), DataError> {
        let mut cached = self.cached.borrow_mut();
        if cached.as_ref().is_none_or(|(e, _, _)| *e != epoch) {
            let (features, labels) = labelled_backbone_features(network, self.bank.as_ref())?;
            *cached = Some((epoch, features, labels));
        }
        let Some((_, train, train_labels)) = cached.as_ref() else {
            unreachable!("filled above")
        };
        let (test, test_labels) = labelled_backbone_features(network, data)?;
        Ok(knn_evaluate(
            train,
            train_labels,
            &test,
            &test_labels,
            data.num_classes().max(self.bank.num_classes()),
            self.k,
            self.temperature,
        ))
    }
}

/// The loss of one self-supervised method for one step, given the seed of the epoch's
/// views; [`Pretraining`] makes it an engine objective.
pub trait PretextLoss {
    /// Forward pass and loss; the step's views are seeded by `views_seed`.
    fn step(
        &mut self,
        network: &Network,
        batch: &crate::data::Batch,
        indices: &[usize],
        views_seed: u64,
    ) -> crate::engine::StepOutput;

    /// What the method keeps per process from its own batches (see
    /// [`Objective::per_process_state`]); `None` for nothing.
    fn per_process_state(&self) -> Option<&'static str> {
        None
    }

    /// State of the method's own that an exact resume needs (MoCo's key encoder and
    /// queue); `Null` for none.
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restores what [`PretextLoss::state`] returned.
    fn restore(&mut self, _state: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }
}

/// A self-supervised method as an engine objective: it counts epochs (each epoch draws
/// new views, seeded by the run's seed and the epoch, so a resumed run sees the same
/// views), evaluates with the kNN monitor, and saves the epoch with the method's state.
pub struct Pretraining<M> {
    method: M,
    seed: u64,
    epoch: usize,
    monitor: KnnMonitor,
}

impl<M: PretextLoss> Pretraining<M> {
    /// `method` in a run seeded `seed`, scored by `monitor`.
    pub fn new(method: M, seed: u64, monitor: KnnMonitor) -> Self {
        Self {
            method,
            seed,
            epoch: 0,
            monitor,
        }
    }

    /// The method.
    pub fn method(&self) -> &M {
        &self.method
    }
}

impl<M: PretextLoss> Objective for Pretraining<M> {
    fn step(
        &mut self,
        network: &Network,
        batch: &crate::data::Batch,
        indices: &[usize],
    ) -> crate::engine::StepOutput {
        let seed = epoch_views_seed(self.seed, self.epoch);
        self.method.step(network, batch, indices, seed)
    }

    fn evaluate(
        &self,
        network: &Network,
        data: &dyn Examples,
    ) -> Option<Result<(f64, f64), DataError>> {
        Some(self.monitor.evaluate(network, data, self.epoch))
    }

    fn end_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
    }

    fn per_process_state(&self) -> Option<&'static str> {
        self.method.per_process_state()
    }

    fn state(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "epoch": self.epoch, "method": self.method.state() }))
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        self.epoch = state
            .get("epoch")
            .and_then(|e| e.as_u64())
            .ok_or("no epoch counter")? as usize;
        self.method
            .restore(state.get("method").unwrap_or(&serde_json::Value::Null))
    }
}

/// Where SimCLR's, MoCo's and AMDIM's views come from: made here from training images
/// held in memory, or made by the data pipeline as it streams photos.
pub enum ViewSource {
    /// Augmented here from images in memory ([`MemoryViews`]).
    Memory(Box<MemoryViews>),
    /// Made by the pipeline: every batch holds `views` views of each example stacked
    /// along the channels (see [`crate::data::stream::ImageStream::with_views`]).
    InBatch {
        /// Views per example in a batch.
        views: usize,
    },
}

impl ViewSource {
    /// Views made from `train` (normalised with `normalization`, if any) under `augment`.
    pub fn new(
        train: &Dataset,
        augment: &AugmentConfig,
        normalization: Option<&Normalization>,
    ) -> Self {
        ViewSource::Memory(Box::new(MemoryViews::new(train, augment, normalization)))
    }

    /// View `view` of the examples of `batch` (at training positions `indices`), seeded
    /// by `seed`, as images on `device` (the batch's, or its inner device for a network
    /// outside the graph).
    pub fn view(
        &self,
        batch: &crate::data::Batch,
        indices: &[usize],
        view: usize,
        seed: u64,
        device: &burn::tensor::Device,
    ) -> burn::tensor::Tensor<4> {
        match self {
            ViewSource::Memory(m) => m.images(indices, view, seed, device),
            ViewSource::InBatch { views } => {
                let channels = batch.images.dims()[1] / views;
                let images = batch.images.clone().narrow(1, view * channels, channels);
                match device.is_autodiff() {
                    true => images.autodiff(),
                    false => images.inner(),
                }
            }
        }
    }

    /// Views 0 and 1 of the examples of `batch` stacked in one batch `[2B, C, H, W]`
    /// (view 0 first), for one forward pass over both.
    pub fn both(
        &self,
        batch: &crate::data::Batch,
        indices: &[usize],
        seed: u64,
    ) -> burn::tensor::Tensor<4> {
        let device = batch.images.device();
        burn::tensor::Tensor::cat(
            (0..2)
                .map(|v| self.view(batch, indices, v, seed, &device))
                .collect(),
            0,
        )
    }
}

/// Views of training images held in memory: the images in pixel units (the run's
/// normalisation undone, since colour jitter works on, and clamps to, [0, 1]), augmented,
/// then normalised again as the network expects.
pub struct MemoryViews {
    raw: Dataset,
    augment: AugmentConfig,
    normalization: Option<Normalization>,
}

impl MemoryViews {
    /// Views of `train` (normalised with `normalization`, if any) under `augment`.
    pub fn new(
        train: &Dataset,
        augment: &AugmentConfig,
        normalization: Option<&Normalization>,
    ) -> Self {
        let mut raw = train.clone();
        if let Some(n) = normalization {
            n.invert(&mut raw);
        }
        Self {
            raw,
            augment: augment.clone(),
            normalization: normalization.cloned(),
        }
    }

    /// View `view` of the training examples at `indices`, seeded by `seed`, as a batch
    /// of images on `device`.
    pub fn images(
        &self,
        indices: &[usize],
        view: usize,
        seed: u64,
        device: &burn::tensor::Device,
    ) -> burn::tensor::Tensor<4> {
        let mut views = self.augment.views(&self.raw, indices, view, seed);
        if let Some(n) = &self.normalization {
            n.apply(&mut views);
        }
        let all: Vec<usize> = (0..views.len()).collect();
        crate::data::Batch::gather(&views, &all, device).images
    }
}

/// `values` as base64 of their little-endian bytes: a method's state (MoCo's queue,
/// DeepCluster's pseudo-labels) saved exactly and compactly in a checkpoint.
pub(crate) fn encode_f32(values: &[f32]) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The values [`encode_f32`] wrote.
pub(crate) fn decode_f32(text: &str) -> Result<Vec<f32>, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| e.to_string())?;
    if bytes.len() % 4 != 0 {
        return Err("not a whole number of f32 values".into());
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Retrieval "accuracy" of a contrastive step: for each query row of `q` `[N, D]`, the
/// cosine-similarity scores against every key row of `k` `[N, D]` (detached), with the
/// query's own key as its target, so the engine's training accuracy reads as "the other
/// view of the image is its nearest key in the batch".
pub(crate) fn retrieval_logits(
    q: burn::tensor::Tensor<2>,
    k: burn::tensor::Tensor<2>,
) -> (
    burn::tensor::Tensor<2>,
    burn::tensor::Tensor<1, burn::tensor::Int>,
) {
    let [n, _] = q.dims();
    let device = q.device();
    let scores = l2_normalize(q.detach()).matmul(l2_normalize(k.detach()).transpose());
    (scores, burn::tensor::Tensor::arange(0..n as i64, &device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::split::Normalization;

    #[test]
    fn views_made_by_the_pipeline_are_split_off_the_channels() {
        // Two examples of two views of a 1x1x2 image: example e, view v holds 10e + v.
        let pixels: Vec<f32> = [0.0, 0.0, 1.0, 1.0, 10.0, 10.0, 11.0, 11.0].to_vec();
        let device = burn::tensor::Device::flex();
        let batch = crate::data::HostBatch {
            pixels,
            labels: vec![0, 1],
            indices: vec![4, 9],
            shape: [2, 1, 2],
        }
        .into_device(&device);
        let source = ViewSource::InBatch { views: 2 };
        let both = source.both(&batch, &[4, 9], 0);
        assert_eq!(both.dims(), [4, 1, 1, 2]);
        let got: Vec<f32> = both.into_data().convert::<f32>().try_into_vec().unwrap();
        // View 0 of both examples, then view 1.
        assert_eq!(got, [0.0, 0.0, 10.0, 10.0, 1.0, 1.0, 11.0, 11.0]);
        let one: Vec<f32> = source
            .view(&batch, &[4, 9], 1, 0, &device)
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        assert_eq!(one, [1.0, 1.0, 11.0, 11.0]);
    }

    #[test]
    fn views_are_made_in_pixel_units_and_normalised_again() {
        let pixels: Vec<f32> = (0..4 * 16).map(|i| (i % 7) as f32 / 6.0).collect();
        let raw = Dataset::new(pixels, vec![0, 1, 0, 1], [1, 4, 4], 2).unwrap();
        let norm = Normalization::fit(&raw);
        let mut normalized = raw.clone();
        norm.apply(&mut normalized);
        let device = burn::tensor::Device::flex();
        let values = |t: burn::tensor::Tensor<4>| -> Vec<f32> {
            t.into_data().convert::<f32>().try_into_vec().unwrap()
        };
        // The identity augmentation gives back the normalised images.
        let identity = AugmentConfig {
            crop_scale: [1.0, 1.0],
            crop_ratio: [1.0, 1.0],
            flip: 0.0,
            jitter_p: 0.0,
            grayscale: 0.0,
            blur: 0.0,
            ..AugmentConfig::default()
        };
        let source = MemoryViews::new(&normalized, &identity, Some(&norm));
        let got = values(source.images(&[0, 1, 2, 3], 0, 1, &device));
        for (a, b) in got.iter().zip(&normalized.images) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // Strong jitter clamps to [0, 1] in pixel units, not in normalised units: undoing
        // the normalisation lands every view pixel in [0, 1].
        let jitter = AugmentConfig {
            jitter_p: 1.0,
            jitter: [0.9, 0.9, 0.0, 0.0],
            ..identity
        };
        let source = MemoryViews::new(&normalized, &jitter, Some(&norm));
        let got = values(source.images(&[0, 1, 2, 3], 1, 2, &device));
        let (m, s) = (norm.mean[0], norm.std[0]);
        assert!(
            got.iter()
                .all(|v| (-1e-5..=1.0 + 1e-5).contains(&(v * s + m)))
        );
        assert!(
            got.iter().any(|v| (v * s + m) < 0.5),
            "not all clamped to 1"
        );
    }
}
