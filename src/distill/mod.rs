//! Knowledge distillation (Hinton, Vinyals & Dean 2015): a frozen, heavier *teacher*
//! network's temperature-softened outputs train a lighter *student*. The teacher runs in
//! inference mode and never receives gradients; without input augmentation its logits
//! are computed once for the whole training set and reused every epoch
//! ([`ExampleCache`]), otherwise once per batch. An optional FitNets hint term
//! ([`hints`]) makes the student's features regress the teacher's.

pub mod hints;

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::data::{Batch, Dataset};
use crate::engine::cache::ExampleCache;
use crate::engine::restore::{RestoreError, load_network};
use crate::engine::{Objective, StepOutput};
use crate::losses::{TeacherTargets, deit_loss, soft_targets};
use crate::models::Network;

use crate::rules::{self, Interval, Rule, Violation};
use hints::{HintRegressor, HintState};

/// `[strategy] type = "distill"`: where the teacher is and how to distil.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// The teacher's checkpoint (written by `mentor train`).
    pub teacher: PathBuf,
    /// Softmax temperature `T > 0` of both networks' soft outputs.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Weight of the soft (teacher) term, in `[0, 1]`; `1 - lambda` weights the labels.
    #[serde(default = "default_lambda")]
    pub lambda: f64,
    /// Compute the teacher's logits once for the training set (valid while inputs are
    /// not augmented) instead of once per batch.
    #[serde(default = "yes")]
    pub cache_teacher: bool,
    /// Weight of the FitNets hint term (Romero et al. 2015): the student's backbone
    /// features regress the teacher's through a learned linear adapter; 0 turns it off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hint_weight: f64,
    /// Adam learning rate of the hint adapter.
    #[serde(default = "default_hint_lr")]
    pub hint_lr: f64,
    /// Soft (tempered distribution) or hard (top class) teacher targets. A student with
    /// a distillation token (a DeiT-style ViT) learns them with its distillation head
    /// and the labels with its class head ([`deit_loss`]).
    #[serde(default, skip_serializing_if = "is_soft")]
    pub targets: TeacherTargets,
}

fn is_soft(t: &TeacherTargets) -> bool {
    *t == TeacherTargets::Soft
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}
fn default_hint_lr() -> f64 {
    1e-3
}

fn default_temperature() -> f64 {
    4.0
}
fn default_lambda() -> f64 {
    0.9
}
fn yes() -> bool {
    true
}

impl DistillConfig {
    /// Checks the rules; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self) -> Result<(), Violation> {
        let at = |k: &'static str| move |r: Rule| Violation::new(format!("strategy.{k}"), r);
        rules::positive(self.temperature).map_err(at("temperature"))?;
        Interval::PROBABILITY
            .check(self.lambda)
            .map_err(at("lambda"))?;
        rules::non_negative(self.hint_weight).map_err(at("hint_weight"))?;
        rules::positive(self.hint_lr).map_err(at("hint_lr"))?;
        if self.teacher.as_os_str().is_empty() {
            return Err(at("teacher")(Rule::NotEmpty));
        }
        Ok(())
    }
}

/// A teacher that cannot serve this run.
#[derive(Debug, thiserror::Error)]
pub enum DistillError {
    /// The checkpoint could not be turned into a network.
    #[error("teacher: {0}")]
    Restore(#[from] RestoreError),
    /// The teacher was trained for other inputs or classes than the student's data.
    #[error(
        "teacher {path} takes {teacher_shape:?} images and predicts {teacher_classes} classes, but the student's data has {data_shape:?} images and {data_classes} classes"
    )]
    Mismatch {
        /// The checkpoint.
        path: PathBuf,
        /// Teacher input shape.
        teacher_shape: [usize; 3],
        /// Teacher classes.
        teacher_classes: usize,
        /// Data input shape.
        data_shape: [usize; 3],
        /// Data classes.
        data_classes: usize,
    },
    /// The teacher's outputs are not one score per class (a self-supervised encoder's
    /// projection, say).
    #[error(
        "teacher {path} outputs {outputs} values per image, not one score per class ({classes}): it is not a classifier (a self-supervised encoder? fine-tune or linear-probe it first)"
    )]
    NotAClassifier {
        /// The checkpoint.
        path: PathBuf,
        /// Its output width.
        outputs: usize,
        /// The student's classes.
        classes: usize,
    },
}

/// The distillation objective: the KD loss of the student's logits against the
/// teacher's (cached or computed per batch) and the labels.
pub struct KnowledgeDistillation {
    teacher: Network,
    cache: Option<ExampleCache>,
    temperature: f64,
    lambda: f64,
    targets: TeacherTargets,
    hint_weight: f64,
    hint_lr: f64,
    feature_cache: Option<ExampleCache>,
    hint: Option<HintRegressor>,
}

impl KnowledgeDistillation {
    /// Prepares distillation from `teacher` on the training set `train`; with
    /// `config.cache_teacher` the teacher's logits are computed here, once.
    pub fn new(teacher: Network, config: &DistillConfig, train: &Dataset) -> Self {
        let teacher = teacher.valid();
        let device = crate::engine::module_device(&teacher);
        let cache = config
            .cache_teacher
            .then(|| ExampleCache::compute(train, &device, |x| teacher.forward(x)));
        let feature_cache = (config.cache_teacher && config.hint_weight > 0.0)
            .then(|| ExampleCache::compute(train, &device, |x| teacher.features(x)));
        Self::with_caches(teacher, config, cache, feature_cache)
    }

    fn with_caches(
        teacher: Network,
        config: &DistillConfig,
        cache: Option<ExampleCache>,
        feature_cache: Option<ExampleCache>,
    ) -> Self {
        Self {
            teacher,
            cache,
            temperature: config.temperature,
            lambda: config.lambda,
            targets: config.targets,
            hint_weight: config.hint_weight,
            hint_lr: config.hint_lr,
            feature_cache,
            hint: None,
        }
    }

    /// The teacher's backbone features for a batch: cached or computed now.
    fn teacher_features(&self, batch: &Batch, indices: &[usize]) -> Tensor<2> {
        self.teacher_output(&self.feature_cache, batch, indices, Network::features)
    }

    /// Rows of `cache` for the batch, or `f` of the teacher on it when not cached; a
    /// constant in the student's graph either way.
    fn teacher_output(
        &self,
        cache: &Option<ExampleCache>,
        batch: &Batch,
        indices: &[usize],
        f: fn(&Network, Tensor<4>) -> Tensor<2>,
    ) -> Tensor<2> {
        let device = batch.images.device();
        match cache {
            Some(cache) => cache.rows(indices, &device),
            None => f(&self.teacher, batch.images.clone().inner()).autodiff(),
        }
    }

    /// Loads the teacher named in `config` onto `device` (the training device without
    /// autodiff) and checks it fits `train`.
    pub fn from_checkpoint(
        config: &DistillConfig,
        train: &Dataset,
        device: &Device,
    ) -> Result<Self, DistillError> {
        let teacher = load_teacher(config, train.shape, train.num_classes, device)?;
        Ok(Self::new(teacher, config, train))
    }

    /// Distillation from the teacher named in `config` on examples read as the run trains
    /// (photos streamed from disk): `shape` and `classes` are the stream's. The teacher
    /// runs on every batch whatever `config.cache_teacher` says, since each epoch draws
    /// new augmentations of the same photo and a cached output would belong to another view.
    pub fn streamed(
        config: &DistillConfig,
        shape: [usize; 3],
        classes: usize,
        device: &Device,
    ) -> Result<Self, DistillError> {
        let teacher = load_teacher(config, shape, classes, device)?.valid();
        Ok(Self::with_caches(teacher, config, None, None))
    }

    /// The teacher's logits for a batch: from the cache, or by running the teacher.
    fn teacher_logits(&self, batch: &Batch, indices: &[usize]) -> Tensor<2> {
        self.teacher_output(&self.cache, batch, indices, Network::forward)
    }

    /// The teacher's softened class distribution for one `[C, H, W]` image at each
    /// temperature, for the soft-target plot.
    pub fn soft_targets_of(
        &self,
        image: &[f32],
        shape: [usize; 3],
        temperatures: &[f64],
    ) -> Vec<Vec<f32>> {
        let device = crate::engine::module_device(&self.teacher);
        let [c, h, w] = shape;
        let x = Tensor::<4>::from_data(TensorData::new(image.to_vec(), [1, c, h, w]), &device);
        let logits = self.teacher.forward(x);
        temperatures
            .iter()
            .map(|&t| {
                soft_targets(logits.clone(), t)
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec()
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Writes the survey's figure into `dir`: the teacher's softmax on the first image of
    /// `data` at T = 1 and T = 40 (`teacher-soft-targets.png` / `.svg`).
    pub fn plot_soft_targets(
        &self,
        data: &Dataset,
        dir: &std::path::Path,
    ) -> Result<(), Box<dyn std::error::Error>> {
        if data.is_empty() {
            return Ok(());
        }
        let temps = [1.0, 40.0];
        let probs = self.soft_targets_of(data.image(0), data.shape, &temps);
        let panels: Vec<(f64, Vec<f32>)> = temps.into_iter().zip(probs).collect();
        crate::report::plot_soft_targets(&panels, dir)
    }

    /// Whether the teacher's logits are cached.
    pub fn is_cached(&self) -> bool {
        self.cache.is_some()
    }
}

/// Loads the teacher named in `config` onto `device` and checks that it takes `shape`
/// images and gives one score per class of the student's `classes`.
fn load_teacher(
    config: &DistillConfig,
    shape: [usize; 3],
    classes: usize,
    device: &Device,
) -> Result<Network, DistillError> {
    let loaded = load_network(&config.teacher, device)?;
    if loaded.input_shape != shape || loaded.num_classes != classes {
        return Err(DistillError::Mismatch {
            path: config.teacher.clone(),
            teacher_shape: loaded.input_shape,
            teacher_classes: loaded.num_classes,
            data_shape: shape,
            data_classes: classes,
        });
    }
    // The output width does not depend on the pixels: one blank image tells it.
    let [c, h, w] = shape;
    let blank = Tensor::<4>::zeros([1, c, h, w], device);
    let outputs = loaded.network.forward(blank).dims()[1];
    if outputs != classes {
        return Err(DistillError::NotAClassifier {
            path: config.teacher.clone(),
            outputs,
            classes,
        });
    }
    Ok(loaded.network)
}

impl Objective for KnowledgeDistillation {
    fn step(&mut self, network: &Network, batch: &Batch, indices: &[usize]) -> StepOutput {
        let teacher = self.teacher_logits(batch, indices);
        // With hints the student's features are needed too: the same forward pass, split
        // at the head. A student with a distillation token (DeiT; never with hints, the
        // config forbids it) has a second head that learns the teacher while the class
        // head learns the labels.
        let (logits, distillation, features) = if self.hint_weight == 0.0 {
            let (class, distillation) = network.heads(batch.images.clone());
            (class, distillation, None)
        } else {
            let features = network.features(batch.images.clone());
            (network.head_forward(features.clone()), None, Some(features))
        };
        let teacher_head = distillation.clone().unwrap_or_else(|| logits.clone());
        let mut loss = deit_loss(
            logits.clone(),
            teacher_head,
            teacher,
            batch.labels.clone(),
            self.targets,
            self.temperature,
            self.lambda,
        );
        if let Some(features) = features {
            let target = self.teacher_features(batch, indices);
            let (fs, ft) = (features.dims()[1], target.dims()[1]);
            let (weight, lr) = (self.hint_weight, self.hint_lr);
            let hint = self
                .hint
                .get_or_insert_with(|| HintRegressor::new(HintState::new(fs, ft, 0), weight, lr));
            loss = loss + hint.loss_and_update(features, target);
        }
        // DeiT's test-time rule: the two heads' mean.
        let logits = match distillation {
            Some(d) => (logits + d).div_scalar(2.0),
            None => logits,
        };
        StepOutput {
            loss,
            logits,
            targets: None,
        }
    }

    fn per_process_state(&self) -> Option<&'static str> {
        self.hint
            .as_ref()
            .map(|_| "a FitNets hint regressor it trains itself")
    }

    fn state(&self) -> Option<serde_json::Value> {
        self.hint
            .as_ref()
            .and_then(|h| serde_json::to_value(&h.state).ok())
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        let saved: HintState = serde_json::from_value(state.clone()).map_err(|e| e.to_string())?;
        self.hint = Some(HintRegressor::new(saved, self.hint_weight, self.hint_lr));
        Ok(())
    }
}
