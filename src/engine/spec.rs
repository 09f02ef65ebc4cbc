//! What the engine reads of a run: the part of a run config that says how to train one
//! network, and nothing of data sources, strategies or starting weights. A run config is
//! projected onto a `TrainSpec` by the layer above; a strategy that trains task after
//! task makes one per task (its own epochs and parameter groups).

use serde::{Deserialize, Serialize};

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
    /// When the test split is scored.
    pub eval: EvalConfig,
    /// When `last.ckpt` is written besides each epoch's end.
    pub checkpoint: CheckpointConfig,
}

/// When a run writes its resume point (`[checkpoint]` in a run config). `last.ckpt` is
/// written after every epoch; on a long epoch (a folder of photos) a killed run would
/// lose up to a whole epoch, so `every_steps = N` writes it after every N steps within
/// the epoch too, and `--resume` continues from that step with the same batches, the
/// same augmentations and the same running epoch metrics. The device's random stream
/// (dropout) is re-seeded from (seed, epoch, step) at each such step, so that a resumed
/// run draws what the uninterrupted one drew: a network with dropout trains to other
/// (equally random) weights than with `every_steps = 0`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Write `last.ckpt` after every this many steps of an epoch as well as at its end;
    /// 0 (the default): at the end of each epoch only.
    pub every_steps: usize,
}

impl CheckpointConfig {
    /// Whether this is the default: a checkpoint at each epoch's end only.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Whether a checkpoint is written after `steps` steps (1-based, `< steps_per_epoch`:
    /// the epoch's end writes its own) of an epoch.
    pub fn within_epoch_after(&self, steps: usize, steps_per_epoch: usize) -> bool {
        self.every_steps > 0
            && steps > 0
            && steps < steps_per_epoch
            && steps.is_multiple_of(self.every_steps)
    }
}

/// When a run scores its test split (`[eval]` in a run config). Checkpoints are
/// selected on the validation split, so scoring the test split every epoch only draws
/// curves: a frozen-backbone probe on EfficientNet-Lite0 spent 81 of its 85 s there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Score the test split every this many epochs, and after the last; 0: after the
    /// last only. A run without a validation split selects on the test split, so it
    /// needs 1.
    pub test_every: usize,
    /// Score the validation split (which selects checkpoints) on its first this many
    /// examples only; `None` (the default) scores all of it. The split is a seeded random
    /// cut of the training set, so its first examples are a random sample of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_examples: Option<usize>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            test_every: 1,
            val_examples: None,
        }
    }
}

impl EvalConfig {
    /// Whether this is the default: the test split scored after every epoch, the whole
    /// validation split scored.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Whether the test split is scored after epoch `epoch` (1-based) of `epochs`.
    pub fn tests_after(&self, epoch: usize, epochs: usize) -> bool {
        epoch == epochs || (self.test_every > 0 && epoch.is_multiple_of(self.test_every))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_split_is_scored_every_n_epochs_and_after_the_last() {
        let every = |n: usize| {
            (1..=5)
                .filter(|&e| {
                    EvalConfig {
                        test_every: n,
                        val_examples: None,
                    }
                    .tests_after(e, 5)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(every(1), [1, 2, 3, 4, 5]);
        assert_eq!(every(2), [2, 4, 5]);
        assert_eq!(every(0), [5]);
    }

    #[test]
    fn checkpoints_within_an_epoch_fall_every_n_steps_before_its_end() {
        let after = |n: usize| {
            (0..=7)
                .filter(|&s| CheckpointConfig { every_steps: n }.within_epoch_after(s, 7))
                .collect::<Vec<_>>()
        };
        assert_eq!(after(0), Vec::<usize>::new());
        assert_eq!(after(2), [2, 4, 6]);
        assert_eq!(after(7), Vec::<usize>::new());
        assert_eq!(after(1), [1, 2, 3, 4, 5, 6]);
    }
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
