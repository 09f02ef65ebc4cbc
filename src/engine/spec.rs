//! What the engine reads of a run: the part of a run config that says how to train one
//! network, and nothing of data sources, strategies or starting weights. A run config is
//! projected onto a `TrainSpec` by the layer above; a strategy that trains task after
//! task makes one per task (its own epochs and parameter groups).

use super::groups::GroupRule;
use super::optim::OptimizerConfig;
use super::schedule::ScheduleConfig;
use crate::models::ModelConfig;

/// How to train one network.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSpec {
    /// Seed of initial weights, batch order and dropout.
    pub seed: u64,
    /// Passes over the training set.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Base learning rate (groups multiply it).
    pub lr: f64,
    /// Optimiser.
    pub optim: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Parameter groups by name pattern.
    pub groups: Vec<GroupRule>,
    /// The network (built by the engine when the caller gives no starting network).
    pub model: ModelConfig,
    /// Names for progress lines and `summary.json`.
    pub label: RunLabel,
}

/// What a run is called in progress lines and its summary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunLabel {
    /// The model kind (`mlp`, `cnn`).
    pub model: String,
    /// The dataset's name.
    pub dataset: String,
    /// The strategy's name (`supervised`, `distill`).
    pub strategy: String,
}
