//! Multitask learning: several tasks on the same inputs trained jointly, so that what
//! one task learns helps the others (Caruana 1997; Ruder 2017's overview).
//!
//! Architectures ([`Architecture`]): **hard parameter sharing** (one shared backbone, one
//! head per task), **soft sharing** (a column per task tied by an L2 cross-talk penalty)
//! and **cross-stitch units** between task columns ([`crate::models::columns`]);
//! MultiMNIST (left and right digit, Sener & Koltun
//! 2018) or a dataset with a coarse auxiliary task ([`benchmark`]); per-task accuracy and
//! `Delta_m` against single-task networks; task weights fixed, DWA, uncertainty or
//! GradNorm ([`weighting`]).

pub mod architecture;
pub mod benchmark;
pub mod objective;
pub mod runner;
pub mod weighting;

use crate::rules::{self, Interval, Rule, Violation};
use serde::{Deserialize, Serialize};

pub use benchmark::{MultitaskSet, multi_digits, paired_datasets, with_coarse_task};
pub use objective::MultitaskObjective;
pub use runner::{MultitaskSummary, run_multitask};
pub use weighting::WeightingConfig;

/// Which multitask data a run builds from its `[data]` set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Benchmark {
    /// MultiMNIST-style pairs of overlaid images: tasks = left class, right class.
    MultiDigits,
    /// The dataset's classes plus a coarse grouping of them (`coarse_groups`).
    Coarse,
    /// Two datasets, one task each, on one input space (`second_dataset` is the second
    /// task's): multi-input multitask learning; batches mix both datasets' examples and
    /// each example trains its own task's head.
    Datasets,
}

/// How the tasks share parameters (`[strategy.architecture]`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Architecture {
    /// Hard parameter sharing: the run's model is the shared backbone, with one head per
    /// task.
    #[default]
    Hard,
    /// Soft sharing: one column (a copy of the run's model) per task, tied by
    /// `lambda * sum_layers ||W_A - W_B||^2` over corresponding backbone layers.
    Soft {
        /// Strength of the L2 cross-talk penalty.
        lambda: f64,
    },
    /// Cross-stitch units (Misra et al. 2016) between the task columns after every
    /// backbone stage.
    CrossStitch {
        /// Initial weight of a column's own activation (the rest is shared equally).
        #[serde(default = "stitch_self")]
        stitch_self: f64,
    },
}

fn stitch_self() -> f64 {
    0.9
}

impl Architecture {
    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::Hard => "hard",
            Architecture::Soft { .. } => "soft",
            Architecture::CrossStitch { .. } => "cross-stitch",
        }
    }
}

/// A multitask run (`[strategy] type = "multitask"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultitaskConfig {
    /// The tasks.
    #[serde(default = "multi_digits_benchmark")]
    pub benchmark: Benchmark,
    /// For `coarse`: the group of each class (default: Fashion-MNIST's tops, trousers and
    /// dresses, footwear, bags).
    #[serde(default = "fashion_groups")]
    pub coarse_groups: Vec<usize>,
    /// The second task's dataset for `benchmark = "datasets"` (same folder, same cuts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_dataset: Option<crate::data::DataSource>,
    /// The tasks to train (indices into the benchmark's tasks); empty: all. One task is
    /// the single-task baseline, with a head for that task only.
    #[serde(default)]
    pub train_tasks: Vec<usize>,
    /// Each trained task's loss (`cross-entropy` or `hinge`, a linear SVM head); empty:
    /// cross-entropy for every task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_losses: Vec<crate::losses::HeadLoss>,
    /// Task weights.
    #[serde(default)]
    pub weighting: WeightingConfig,
    /// How the tasks share parameters.
    #[serde(default)]
    pub architecture: Architecture,
}

fn multi_digits_benchmark() -> Benchmark {
    Benchmark::MultiDigits
}

fn fashion_groups() -> Vec<usize> {
    benchmark::FASHION_COARSE.to_vec()
}

impl Default for MultitaskConfig {
    fn default() -> Self {
        Self {
            benchmark: multi_digits_benchmark(),
            coarse_groups: fashion_groups(),
            second_dataset: None,
            train_tasks: Vec::new(),
            task_losses: Vec::new(),
            weighting: WeightingConfig::default(),
            architecture: Architecture::default(),
        }
    }
}

/// Number of tasks of every benchmark (both have two).
pub const BENCHMARK_TASKS: usize = 2;

impl MultitaskConfig {
    /// The trained task indices.
    pub fn trained(&self) -> Vec<usize> {
        if self.train_tasks.is_empty() {
            (0..BENCHMARK_TASKS).collect()
        } else {
            self.train_tasks.clone()
        }
    }

    /// Checks the rules; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self) -> Result<(), Violation> {
        let at = |k: &'static str| move |r: Rule| Violation::new(format!("strategy.{k}"), r);
        if (self.benchmark == Benchmark::Datasets) != self.second_dataset.is_some() {
            return Err(at("second_dataset")(Rule::OnlyWith {
                condition: "benchmark = \"datasets\"",
            }));
        }
        let mut seen = Vec::new();
        for &t in &self.train_tasks {
            if t >= BENCHMARK_TASKS || seen.contains(&t) {
                return Err(at("train_tasks")(Rule::DistinctTasks {
                    tasks: BENCHMARK_TASKS,
                    got: self.train_tasks.clone(),
                }));
            }
            seen.push(t);
        }
        if !self.task_losses.is_empty() && self.task_losses.len() != self.trained().len() {
            return Err(at("task_losses")(Rule::OnePer {
                per: "trained task",
                expected: self.trained().len(),
                got: self.task_losses.len(),
            }));
        }
        if matches!(self.weighting, WeightingConfig::Gradnorm { .. })
            && self
                .task_losses
                .iter()
                .any(|l| *l != crate::losses::HeadLoss::CrossEntropy)
        {
            return Err(at("weighting")(Rule::GradnormLosses));
        }
        match &self.architecture {
            Architecture::Hard => {}
            _ if self.trained().len() < 2 => {
                return Err(at("architecture")(Rule::SharingTasks {
                    architecture: self.architecture.name(),
                }));
            }
            Architecture::Soft { lambda } => {
                rules::non_negative(*lambda).map_err(at("architecture.lambda"))?;
            }
            Architecture::CrossStitch { stitch_self } => {
                Interval::PROBABILITY
                    .check(*stitch_self)
                    .map_err(at("architecture.stitch_self"))?;
            }
        }
        self.weighting.validate(self.trained().len())
    }
}

/// `Delta_m` (Maninis et al. 2019; Vandenhende et al. 2021): the mean relative change of
/// each task's metric against its single-task network, in percent, with the sign flipped
/// for metrics where lower is better (all of mentor's are accuracies: higher is better):
/// `Delta_m = 100/T * sum_i (M_i - B_i) / B_i`.
pub fn delta_m(multitask: &[f64], single_task: &[f64]) -> f64 {
    let t = multitask.len().min(single_task.len());
    if t == 0 {
        return 0.0;
    }
    100.0
        * multitask
            .iter()
            .zip(single_task)
            .map(|(m, b)| (m - b) / b)
            .sum::<f64>()
        / t as f64
}

/// Why a multitask run could not run.
#[derive(Debug, thiserror::Error)]
pub enum MultitaskError {
    /// The data cannot be turned into the benchmark.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// Training failed.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// The starting weights could not be made (a pretrained file that does not load).
    #[error("starting weights: {0}")]
    Start(crate::engine::init::StartError),
    /// The run's model cannot be made into task columns.
    #[error("multitask architecture: {0}")]
    Architecture(String),
    /// A single-task baseline run could not be read.
    #[error("baseline {path}: {reason}")]
    Baseline {
        /// The run directory.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_m_is_the_mean_relative_change_in_percent() {
        // (0.99 - 0.98)/0.98 = +1.0204%, (0.90 - 0.92)/0.92 = -2.1739%; mean -0.5768%.
        let d = delta_m(&[0.99, 0.90], &[0.98, 0.92]);
        assert!((d - (-0.576752)).abs() < 1e-5, "{d}");
        assert_eq!(delta_m(&[0.5], &[0.5]), 0.0);
    }

    #[test]
    fn train_tasks_are_checked() {
        let c = MultitaskConfig {
            train_tasks: vec![0, 0],
            ..MultitaskConfig::default()
        };
        assert!(c.validate().is_err());
        let c = MultitaskConfig {
            train_tasks: vec![2],
            ..MultitaskConfig::default()
        };
        assert!(c.validate().is_err());
        assert_eq!(MultitaskConfig::default().trained(), vec![0, 1]);
    }
}
