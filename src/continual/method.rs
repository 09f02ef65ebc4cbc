//! A continual-learning method as one unit: a few hooks that the task loop calls, each
//! given its context explicitly and returning what it contributes (Avalanche's plugin
//! unit, without its shared mutable strategy object). The runner names no method;
//! [`super::MethodConfig::build`] is the one place that picks the implementation.

use std::path::Path;

use burn::tensor::{Device, Tensor};

use super::objective::RowMasks;
use super::scenario::Task;
use super::{ContinualError, Setting};
use crate::data::Dataset;
use crate::engine::TrainSpec;
use crate::models::Network;

/// What a method sees when a task starts or ends.
pub struct TaskContext<'a> {
    /// Every task of the run.
    pub tasks: &'a [Task],
    /// The task (0-based).
    pub t: usize,
    /// What is known at test time.
    pub setting: Setting,
    /// The task's training set (as [`ContinualMethod::training_set`] made it).
    pub train_set: &'a Dataset,
    /// The run's training spec (batch size, seed).
    pub spec: &'a TrainSpec,
    /// The training device, without autodiff.
    pub device: &'a Device,
}

/// What a loss term sees at each step.
pub struct StepContext<'a> {
    /// The network being trained.
    pub network: &'a Network,
    /// Its full (unmasked) outputs on the batch.
    pub logits: &'a Tensor<2>,
    /// The batch's example indices in the task's training set.
    pub indices: &'a [usize],
    /// The task being trained (0-based).
    pub current: usize,
    /// The setting's output masks.
    pub masks: &'a RowMasks,
}

/// One addition to a step's loss, with its own weighting rule.
pub trait LossTerm {
    /// The step's loss after this term, given the loss so far.
    fn combine(&self, loss: Tensor<1>, cx: &StepContext<'_>) -> Tensor<1>;
}

/// A continual-learning method: what changes from plain fine-tuning, task by task.
pub trait ContinualMethod {
    /// The training examples of task `t` and each one's task (default: task `t`'s own).
    fn training_set(
        &self,
        tasks: &[Task],
        t: usize,
    ) -> Result<(Dataset, Vec<usize>), ContinualError> {
        Ok((tasks[t].train.clone(), vec![t; tasks[t].train.len()]))
    }

    /// How task `t` trains: `spec` is the run's, with the epochs that cover the
    /// iteration budget; a method may add parameter groups (default: unchanged).
    fn task_spec(&self, _t: usize, spec: TrainSpec) -> TrainSpec {
        spec
    }

    /// Called before task `cx.t` trains, with the network it starts from; returns the
    /// terms added to each step's loss (default: none).
    fn before_task(
        &mut self,
        _cx: &TaskContext<'_>,
        _network: &Network,
    ) -> Result<Vec<Box<dyn LossTerm>>, ContinualError> {
        Ok(Vec::new())
    }

    /// Called after task `cx.t` trained, with the trained network (default: nothing).
    fn after_task(
        &mut self,
        _cx: &TaskContext<'_>,
        _network: &Network,
    ) -> Result<(), ContinualError> {
        Ok(())
    }

    /// The method's state after a task, for resuming: small values go into the
    /// returned map, saved in `continual-state.json` atomically with the run's progress;
    /// tensors may go to a side file in the run directory `dir`, written first
    /// (default: nothing).
    fn save(&self, _dir: &Path) -> Result<MethodState, ContinualError> {
        Ok(MethodState::new())
    }

    /// Restores what [`ContinualMethod::save`] returned (and wrote into `dir`) when a
    /// run resumes after its last finished task.
    fn load(&mut self, _dir: &Path, _saved: &MethodState) -> Result<(), ContinualError> {
        Ok(())
    }
}

/// A method's saved state: named JSON values.
pub type MethodState = serde_json::Map<String, serde_json::Value>;

/// `path: reason` as a state error.
pub(crate) fn state_error(path: &Path, reason: impl ToString) -> ContinualError {
    ContinualError::State {
        path: path.into(),
        reason: reason.to_string(),
    }
}
