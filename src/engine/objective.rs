//! What a training step minimises. Each strategy supplies its own [`Objective`]; the
//! engine owns everything else (batching, groups, optimiser, metrics, checkpoints).

use std::ops::Range;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor};

use crate::data::{Batch, DataError, Examples};
use crate::models::Network;

/// The result of one step's forward pass.
pub struct StepOutput {
    /// The scalar loss to minimise (`[1]`).
    pub loss: Tensor<1>,
    /// Class logits `[B, classes]`, for the training accuracy.
    pub logits: Tensor<2>,
    /// What the training accuracy compares the logits' argmax with: `None` for the
    /// batch's labels; a self-supervised objective gives its own (each view's positive).
    pub targets: Option<Tensor<1, Int>>,
}

/// A training objective: the loss of `network` on `batch`. `indices` are the batch's
/// positions in the training set, for objectives that look up per-example data (cached
/// teacher logits, recorded old-head outputs).
pub trait Objective {
    /// Forward pass and loss.
    fn step(&mut self, network: &Network, batch: &Batch, indices: &[usize]) -> StepOutput;

    /// The output units that evaluation scores (a task-incremental learner's current
    /// head); `None`, the default, scores every output.
    fn eval_outputs(&self) -> Option<Range<usize>> {
        None
    }

    /// Called after each epoch's last step with the 1-based epoch (dynamic task weights
    /// update here).
    fn end_epoch(&mut self, _epoch: usize) {}

    /// Loss and accuracy of `network` on `data` (in memory or streamed) when the
    /// engine's classification evaluation does not apply (a self-supervised network has
    /// no class outputs: its objective scores it with a kNN probe); `None`, the default,
    /// keeps the engine's. An error names an example that could not be read.
    fn evaluate(
        &self,
        _network: &Network,
        _data: &dyn Examples,
    ) -> Option<Result<(f64, f64), DataError>> {
        None
    }

    /// What this objective keeps and updates in each process from that process's own
    /// batches (a queue of past keys, a regressor it trains itself), in words; `None`, the
    /// default, when it keeps nothing of the kind. The ranks of a data-parallel job would
    /// each keep their own, so such an objective trains as one process.
    fn per_process_state(&self) -> Option<&'static str> {
        None
    }

    /// State of the objective's own that a checkpoint must keep for an exact resume
    /// (e.g. a loss history); `None` for stateless objectives.
    fn state(&self) -> Option<serde_json::Value> {
        None
    }

    /// Restores what [`Objective::state`] returned; the error says what does not fit.
    fn restore(&mut self, _state: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }
}

/// Plain supervised training: mean cross-entropy of the logits against the labels.
#[derive(Debug, Default, Clone, Copy)]
pub struct CrossEntropy;

impl Objective for CrossEntropy {
    fn step(&mut self, network: &Network, batch: &Batch, _indices: &[usize]) -> StepOutput {
        let logits = network.forward(batch.images.clone());
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.labels.clone());
        StepOutput {
            loss,
            logits,
            targets: None,
        }
    }
}
