//! The multitask loss over a shared network whose head holds every task's output units
//! side by side (hard parameter sharing: one backbone, one linear head per task; a
//! linear head per task is exactly one linear layer over the concatenated outputs):
//! `L = sum_i w_i(t) CE_i`, each task's cross-entropy on its own units and labels.

use std::ops::Range;

use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::benchmark::NO_LABEL;
use super::weighting::{ScalarAdam, WeightingConfig, gradnorm_gradient, uncertainty_gradient};
use crate::data::Batch;
use crate::engine::{Objective, StepOutput};
use crate::losses::HeadLoss;
use crate::losses::head_loss;
use crate::losses::{MASKED_LOGIT, mask_outputs};
use crate::models::Network;

/// The epoch losses and task weights of a run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WeightHistory {
    /// Epoch-mean training loss of each task, one row per finished epoch.
    pub losses: Vec<Vec<f64>>,
    /// The weights each epoch used (learned weights: their mean over the epoch's steps),
    /// one row per finished epoch.
    pub weights: Vec<Vec<f64>>,
}

/// What the objective remembers across steps and epochs (checkpointed for an exact
/// resume).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct ObjectiveState {
    history: WeightHistory,
    /// Learned values: uncertainty's log-variances or GradNorm's weights.
    learned: Vec<f64>,
    adam: ScalarAdam,
    /// GradNorm's first-step task losses.
    initial: Vec<f64>,
}

/// `sum_i w_i(t) CE_i` over the trained tasks.
pub struct MultitaskObjective {
    outputs: Vec<Range<usize>>,
    labels: Vec<Vec<usize>>,
    weighting: WeightingConfig,
    primary: usize,
    current: Vec<f64>,
    losses: Vec<HeadLoss>,
    multi_input: bool,
    soft_lambda: f64,
    sums: Vec<f64>,
    counts: Vec<usize>,
    weight_sums: Vec<f64>,
    steps: usize,
    state: ObjectiveState,
}

impl MultitaskObjective {
    /// Tasks `i` own output units `outputs[i]` and have training labels `labels[i]` (by
    /// example index); `primary` is the task the engine's accuracy reports.
    pub fn new(
        outputs: Vec<Range<usize>>,
        labels: Vec<Vec<usize>>,
        weighting: WeightingConfig,
        primary: usize,
    ) -> Self {
        let k = outputs.len();
        let mut state = ObjectiveState::default();
        let current = match &weighting {
            WeightingConfig::Uncertainty { .. } => {
                state.learned = vec![0.0; k];
                vec![0.5; k]
            }
            WeightingConfig::Gradnorm { .. } => {
                state.learned = vec![1.0; k];
                vec![1.0; k]
            }
            other => other.weights(k, &[]),
        };
        let multi_input = labels.iter().any(|l: &Vec<usize>| l.contains(&NO_LABEL));
        Self {
            current,
            losses: vec![HeadLoss::CrossEntropy; k],
            multi_input,
            outputs,
            labels,
            weighting,
            primary,
            soft_lambda: 0.0,
            sums: vec![0.0; k],
            counts: vec![0; k],
            weight_sums: vec![0.0; k],
            steps: 0,
            state,
        }
    }

    /// The weights of the next step from the learned values.
    fn learned_weights(&self) -> Vec<f64> {
        match &self.weighting {
            WeightingConfig::Uncertainty { .. } => self
                .state
                .learned
                .iter()
                .map(|s| 0.5 * (-s).exp())
                .collect(),
            _ => self.state.learned.clone(),
        }
    }

    /// `||d CE_t / d h||` per task for the features `h` `[B, F]` under a linear head:
    /// `(softmax(z_t) - onehot(y_t)) W_t^T / B`, in closed form.
    fn representation_gradient_norms(
        &self,
        network: &Network,
        logits: &Tensor<2>,
        indices: &[usize],
    ) -> Option<Vec<f64>> {
        // Each task's head weights `[F, C_t]`: its units of the shared head, or its own
        // column's head (soft sharing, cross-stitch: the gradient is then taken on that
        // column's representation, the head's input).
        let heads: Vec<Tensor<2>> = match network {
            Network::Columns(columns) => columns.head_weights(),
            _ => {
                let weight = network.head_weight()?;
                let [f, _] = weight.dims();
                self.outputs
                    .iter()
                    .map(|r| weight.clone().slice([0..f, r.clone()]))
                    .collect()
            }
        };
        if heads.len() != self.outputs.len() {
            return None;
        }
        let device = logits.device();
        let b = indices.len();
        let mut norms = Vec::with_capacity(self.outputs.len());
        for (t, range) in self.outputs.iter().enumerate() {
            let c = range.len();
            let mut onehot = vec![0.0f32; b * c];
            for (row, &i) in indices.iter().enumerate() {
                // GradNorm needs every task on every row (the benchmarks with one image
                // per example and a label per task).
                let label = self.labels[t][i];
                if label == NO_LABEL {
                    return None;
                }
                onehot[row * c + label] = 1.0;
            }
            let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [b, c]), &device);
            let z = logits.clone().detach().slice([0..b, range.clone()]);
            let p = softmax(z, 1) - onehot;
            let w_t = heads[t].clone().detach();
            let grad = p.matmul(w_t.transpose()).div_scalar(b as f32);
            norms.push((grad.clone() * grad).sum().sqrt().into_scalar::<f32>() as f64);
        }
        Some(norms)
    }

    /// Each task's loss (cross-entropy by default); one per task.
    pub fn with_losses(mut self, losses: &[HeadLoss]) -> Self {
        if losses.len() == self.losses.len() {
            self.losses = losses.to_vec();
        }
        self
    }

    /// Adds soft sharing's cross-talk penalty `lambda * sum_{a<b} sum_layers ||W_a -
    /// W_b||^2` over corresponding backbone parameters of the network's columns.
    pub fn with_soft_sharing(mut self, lambda: f64) -> Self {
        self.soft_lambda = lambda;
        self
    }

    /// The epoch losses and weights so far.
    pub fn history(&self) -> &WeightHistory {
        &self.state.history
    }
}

impl Objective for MultitaskObjective {
    fn step(&mut self, network: &Network, batch: &Batch, indices: &[usize]) -> StepOutput {
        let device = batch.images.device();
        let logits = network.forward(batch.images.clone());
        let b = indices.len();
        let mut loss: Option<Tensor<1>> = None;
        let mut step_losses = Vec::with_capacity(self.outputs.len());
        let mut complete = true;
        for (t, range) in self.outputs.iter().enumerate() {
            // Rows with a label for task t (all of them, unless tasks come from
            // different datasets).
            let rows: Vec<usize> = (0..b)
                .filter(|&r| self.labels[t][indices[r]] != NO_LABEL)
                .collect();
            if rows.is_empty() {
                complete = false;
                step_losses.push(0.0);
                continue;
            }
            let labels: Vec<i64> = rows
                .iter()
                .map(|&r| self.labels[t][indices[r]] as i64)
                .collect();
            let n = rows.len();
            let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &device);
            let mut task_logits = logits.clone().slice([0..b, range.clone()]);
            if n < b {
                let at: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
                let at = Tensor::<1, Int>::from_data(TensorData::new(at, [n]), &device);
                task_logits = task_logits.select(0, at);
            }
            let ce = head_loss(self.losses[t], task_logits, labels);
            let value = ce.clone().into_scalar::<f32>() as f64;
            step_losses.push(value);
            self.sums[t] += value * n as f64;
            self.counts[t] += n;
            let weighted = ce.mul_scalar(self.current[t] as f32);
            loss = Some(match loss {
                None => weighted,
                Some(l) => l + weighted,
            });
        }
        for (t, w) in self.weight_sums.iter_mut().enumerate() {
            *w += self.current[t];
        }
        self.steps += 1;
        // Learned weights update on steps where every task has examples.
        match self.weighting.clone() {
            _ if !complete => {}
            WeightingConfig::Uncertainty { lr } => {
                // The regulariser sum_i s_i / 2 is constant for the network's gradients;
                // it is in the loss so the reported value is Kendall et al.'s objective.
                let reg: f64 = self.state.learned.iter().sum::<f64>() / 2.0;
                loss = loss.map(|l| l.add_scalar(reg as f32));
                let grad = uncertainty_gradient(&self.state.learned, &step_losses);
                self.state.adam.step(&mut self.state.learned, &grad, lr);
                self.current = self.learned_weights();
            }
            WeightingConfig::Gradnorm { alpha, lr } => {
                if self.state.initial.is_empty() {
                    self.state.initial = step_losses.clone();
                }
                if let Some(norms) = self.representation_gradient_norms(network, &logits, indices) {
                    let grad = gradnorm_gradient(
                        &self.state.learned,
                        &norms,
                        &step_losses,
                        &self.state.initial,
                        alpha,
                    );
                    self.state.adam.step(&mut self.state.learned, &grad, lr);
                    // Weights stay positive and sum to K (Chen et al.'s renormalisation).
                    let k = self.state.learned.len() as f64;
                    self.state.learned.iter_mut().for_each(|w| *w = w.max(1e-3));
                    let sum: f64 = self.state.learned.iter().sum();
                    self.state.learned.iter_mut().for_each(|w| *w *= k / sum);
                    self.current = self.learned_weights();
                }
            }
            _ => {}
        }
        if self.soft_lambda > 0.0
            && let Network::Columns(columns) = network
        {
            let params: Vec<Vec<Tensor<1>>> = (0..columns.len())
                .map(|c| columns.backbone_parameters(c))
                .collect();
            for a in 0..params.len() {
                for c in a + 1..params.len() {
                    for (x, y) in params[a].iter().zip(&params[c]) {
                        let d = x.clone() - y.clone();
                        let term = (d.clone() * d).sum().mul_scalar(self.soft_lambda as f32);
                        loss = Some(match loss {
                            None => term,
                            Some(l) => l + term,
                        });
                    }
                }
            }
        }
        let logits = if self.multi_input {
            // Each row is scored on its own task's units (its first labelled task).
            let [_, total] = logits.dims();
            let mut mask = Vec::with_capacity(b * total);
            for &i in indices {
                let own = (0..self.outputs.len())
                    .find(|&t| self.labels[t][i] != NO_LABEL)
                    .map_or(0..total, |t| self.outputs[t].clone());
                mask.extend((0..total).map(|j| if own.contains(&j) { 0.0 } else { MASKED_LOGIT }));
            }
            logits + Tensor::<2>::from_data(TensorData::new(mask, [b, total]), &device)
        } else {
            mask_outputs(logits, self.outputs[self.primary].clone())
        };
        StepOutput {
            loss: loss.unwrap_or_else(|| Tensor::zeros([1], &device)),
            logits,
            targets: None,
        }
    }

    fn eval_outputs(&self) -> Option<Range<usize>> {
        Some(self.outputs[self.primary].clone())
    }

    fn end_epoch(&mut self, _epoch: usize) {
        let steps = self.steps.max(1) as f64;
        let history = &mut self.state.history;
        history.losses.push(
            self.sums
                .iter()
                .zip(&self.counts)
                .map(|(s, &n)| s / n.max(1) as f64)
                .collect(),
        );
        history
            .weights
            .push(self.weight_sums.iter().map(|w| w / steps).collect());
        self.sums.iter_mut().for_each(|s| *s = 0.0);
        self.counts.iter_mut().for_each(|n| *n = 0);
        self.weight_sums.iter_mut().for_each(|s| *s = 0.0);
        self.steps = 0;
        if !self.weighting.is_learned() {
            self.current = self
                .weighting
                .weights(self.outputs.len(), &self.state.history.losses);
        }
    }

    fn state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.state).ok()
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        self.state = serde_json::from_value(state.clone()).map_err(|e| e.to_string())?;
        self.current = if self.weighting.is_learned() {
            self.learned_weights()
        } else {
            self.weighting
                .weights(self.outputs.len(), &self.state.history.losses)
        };
        Ok(())
    }
}
