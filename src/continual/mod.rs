//! Continual learning: one network learns a sequence of tasks and should not forget the
//! earlier ones. A *scenario* cuts a dataset into tasks (Split-MNIST, Permuted-MNIST), a
//! *setting* says what the learner is told at test time (van de Ven & Tolias 2019,
//! "Three scenarios for continual learning"), and a *method* says how each task trains:
//!
//! - fine-tuning: plain training on each new task (the naive baseline);
//! - feature extraction: after the first task the backbone (theta_s) is frozen and only
//!   the head trains;
//! - joint: task `t` trains on the data of tasks `1..=t` together (the upper bound);
//! - Learning without Forgetting (Li & Hoiem 2016): the old heads' outputs on the new
//!   data, recorded once before the task, are kept by a temperature KD term;
//! - EWC (Kirkpatrick et al. 2017), offline or online (Schwarz et al. 2018): a
//!   Fisher-weighted L2 pull towards the weights each old task ended with;
//! - experience replay: a fixed-size buffer of old examples mixed into every step.
//!
//! The continual runner is an outer loop over tasks around the one engine
//! ([`crate::engine::train_observed`]); each task is an ordinary run directory, and the results
//! fill one accuracy matrix ([`AccuracyMatrix`]).

pub mod method;
pub mod methods;
pub mod metrics;
pub mod objective;
pub mod runner;
pub mod scenario;

use crate::rules::{self, Interval, Rule, Violation};
use serde::{Deserialize, Serialize};

pub use metrics::AccuracyMatrix;
pub use objective::ContinualObjective;
pub use runner::{ContinualSummary, StopPoint, run_continual};
pub use scenario::{Task, build_tasks};

/// How a dataset is cut into tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// Split: the classes in label order, cut into `tasks` equal groups (Split-MNIST:
    /// 0/1, 2/3, ..., 8/9).
    Split,
    /// Permuted: every task is the whole dataset under its own fixed pixel permutation;
    /// the first task keeps the original images (Permuted-MNIST).
    Permuted,
}

/// What the learner is told at test time (van de Ven & Tolias 2019).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Setting {
    /// Task-incremental: the task id is given; each task is scored on its own output
    /// units (a head per task, as masked outputs of one layer).
    TaskIl,
    /// Domain-incremental: no task id, and every task has the same label space (one
    /// shared head of `classes per task` units: for Split-MNIST, "first or second digit").
    DomainIl,
    /// Class-incremental: no task id; one head grows with every task and the learner
    /// must tell all classes seen so far apart.
    ClassIl,
}

impl Setting {
    /// Short name (`task-il`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Setting::TaskIl => "task-il",
            Setting::DomainIl => "domain-il",
            Setting::ClassIl => "class-il",
        }
    }
}

/// Replay buffer policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BufferSelection {
    /// Reservoir sampling over the stream of all examples seen (Vitter 1985): every
    /// example seen so far is in the buffer with the same probability.
    Reservoir,
    /// The same number of examples of every class seen so far.
    ClassBalanced,
}

/// How Learning without Forgetting weighs the new task against the old heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LwfBalance {
    /// Li & Hoiem (2016): `CE_new + lambda * KD_old`.
    #[default]
    Sum,
    /// van de Ven & Tolias (2019): when task `t` (1-based) trains,
    /// `1/t * CE_new + (1 - 1/t) * lambda * KD_old`, so every task seen counts alike.
    Tasks,
}

/// The continual-learning method (`[strategy.method]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MethodConfig {
    /// Fine-tune everything on each new task.
    Finetune,
    /// Train everything on the first task, then only the head (backbone frozen).
    FeatureExtraction,
    /// Task `t` trains on the union of tasks `1..=t`.
    Joint,
    /// Learning without Forgetting (Li & Hoiem 2016).
    Lwf {
        /// Weight `lambda_o` of the KD term of each old head.
        #[serde(default = "one")]
        lambda: f64,
        /// KD temperature (Li & Hoiem use 2).
        #[serde(default = "two")]
        temperature: f64,
        /// Epochs at the start of each new task that train the head alone (backbone
        /// frozen), Li & Hoiem's warm-up; 0 for none.
        #[serde(default)]
        warmup_epochs: usize,
        /// How the new task's loss and the KD term add up.
        #[serde(default)]
        balance: LwfBalance,
    },
    /// Elastic Weight Consolidation (Kirkpatrick et al. 2017).
    Ewc {
        /// Strength `lambda` of `lambda/2 * sum_k F_k (theta_k - theta*_k)^2`.
        lambda: f64,
        /// Online EWC (Schwarz et al. 2018): one running Fisher `F = gamma F_old + F_new`
        /// anchored at the latest weights, instead of one penalty per old task.
        #[serde(default)]
        online: bool,
        /// Decay of the old Fisher in online EWC.
        #[serde(default = "one")]
        gamma: f64,
        /// Training examples (the first ones of a seeded shuffle) whose per-example
        /// squared gradients estimate the diagonal Fisher.
        #[serde(default = "fisher_samples")]
        fisher_samples: usize,
    },
    /// Experience replay from a fixed-size buffer.
    Replay {
        /// Buffer capacity (examples).
        #[serde(default = "buffer_size")]
        buffer_size: usize,
        /// How the buffer is filled.
        #[serde(default = "reservoir")]
        selection: BufferSelection,
    },
}

fn one() -> f64 {
    1.0
}
fn two() -> f64 {
    2.0
}
fn fisher_samples() -> usize {
    1000
}
fn buffer_size() -> usize {
    2000
}
fn reservoir() -> BufferSelection {
    BufferSelection::Reservoir
}

impl MethodConfig {
    /// Short name (`finetune`, `lwf`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            MethodConfig::Finetune => "finetune",
            MethodConfig::FeatureExtraction => "feature-extraction",
            MethodConfig::Joint => "joint",
            MethodConfig::Lwf { .. } => "lwf",
            MethodConfig::Ewc { online: false, .. } => "ewc",
            MethodConfig::Ewc { online: true, .. } => "online-ewc",
            MethodConfig::Replay { .. } => "replay",
        }
    }
}

/// A continual-learning run (`[strategy] type = "continual"`): the run config's data,
/// model, optimiser and batch size, trained task after task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinualConfig {
    /// How the dataset is cut into tasks.
    #[serde(default = "split")]
    pub scenario: ScenarioKind,
    /// What is known at test time.
    #[serde(default = "task_il")]
    pub setting: Setting,
    /// Number of tasks.
    #[serde(default = "five")]
    pub tasks: usize,
    /// Optimiser steps per task (van de Ven & Tolias: 2000 of batch 128).
    #[serde(default = "iterations")]
    pub iterations_per_task: usize,
    /// The method.
    #[serde(default = "finetune")]
    pub method: MethodConfig,
    /// Start every task with a fresh optimiser state; by default the optimiser's state
    /// (Adam's moments) carries over from task to task, as in van de Ven & Tolias's code
    /// (their `adam` rather than `adam_reset`).
    #[serde(default)]
    pub reset_optimizer: bool,
}

fn split() -> ScenarioKind {
    ScenarioKind::Split
}
fn task_il() -> Setting {
    Setting::TaskIl
}
fn five() -> usize {
    5
}
fn iterations() -> usize {
    2000
}
fn finetune() -> MethodConfig {
    MethodConfig::Finetune
}

impl Default for ContinualConfig {
    fn default() -> Self {
        Self {
            scenario: split(),
            setting: task_il(),
            tasks: five(),
            iterations_per_task: iterations(),
            method: finetune(),
            reset_optimizer: false,
        }
    }
}

impl ContinualConfig {
    /// Checks every rule; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self) -> Result<(), Violation> {
        let at = |k: &'static str| move |r: Rule| Violation::new(format!("strategy.{k}"), r);
        rules::at_least(self.tasks, 2).map_err(at("tasks"))?;
        rules::at_least(self.iterations_per_task, 1).map_err(at("iterations_per_task"))?;
        match &self.method {
            MethodConfig::Lwf {
                lambda,
                temperature,
                ..
            } => {
                rules::non_negative(*lambda).map_err(at("method.lambda"))?;
                rules::positive(*temperature).map_err(at("method.temperature"))?;
            }
            MethodConfig::Ewc {
                lambda,
                gamma,
                fisher_samples,
                ..
            } => {
                rules::non_negative(*lambda).map_err(at("method.lambda"))?;
                Interval::PROBABILITY
                    .check(*gamma)
                    .map_err(at("method.gamma"))?;
                rules::at_least(*fisher_samples, 1).map_err(at("method.fisher_samples"))?;
            }
            MethodConfig::Replay { buffer_size, .. } => {
                rules::at_least(*buffer_size, 1).map_err(at("method.buffer_size"))?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Why a continual run could not run.
#[derive(Debug, thiserror::Error)]
pub enum ContinualError {
    /// The dataset cannot be cut as the scenario asks.
    #[error("continual scenario: {0}")]
    Scenario(String),
    /// The data could not be loaded.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A task's training run failed.
    #[error("task {task}: {source}")]
    Task {
        /// 1-based task number.
        task: usize,
        /// The engine's error.
        source: crate::engine::EngineError,
    },
    /// The starting weights could not be made (a pretrained file that does not load).
    #[error("starting weights: {0}")]
    Start(crate::engine::init::StartError),
    /// The run directory cannot be started or resumed as asked.
    #[error(transparent)]
    RunDir(#[from] crate::engine::run_dir::RunDirError),
    /// The saved state of a finished task could not be read or written.
    #[error("{path}: {reason}")]
    State {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}
