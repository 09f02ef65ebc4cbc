//! The multitask loss over a shared network whose head holds every task's output units
//! side by side (hard parameter sharing: one backbone, one linear head per task; a
//! linear head per task is exactly one linear layer over the concatenated outputs):
//! `L = sum_i w_i(t) CE_i`, each task's cross-entropy on its own units and labels.

use std::ops::Range;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::weighting::WeightingConfig;
use crate::data::Batch;
use crate::engine::{Objective, StepOutput, mask_outputs};
use crate::models::Network;

/// What the objective remembers across epochs (checkpointed for an exact resume).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WeightHistory {
    /// Epoch-mean training loss of each task, one row per finished epoch.
    pub losses: Vec<Vec<f64>>,
    /// The weights each epoch used, one row per finished epoch.
    pub weights: Vec<Vec<f64>>,
}

/// `sum_i w_i(t) CE_i` over the trained tasks.
pub struct MultitaskObjective {
    outputs: Vec<Range<usize>>,
    labels: Vec<Vec<usize>>,
    weighting: WeightingConfig,
    primary: usize,
    current: Vec<f64>,
    soft_lambda: f64,
    sums: Vec<f64>,
    count: usize,
    history: WeightHistory,
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
        Self {
            current: weighting.weights(k, &[]),
            outputs,
            labels,
            weighting,
            primary,
            soft_lambda: 0.0,
            sums: vec![0.0; k],
            count: 0,
            history: WeightHistory::default(),
        }
    }

    /// Adds soft sharing's cross-talk penalty `lambda * sum_{a<b} sum_layers ||W_a -
    /// W_b||^2` over corresponding backbone parameters of the network's columns.
    pub fn with_soft_sharing(mut self, lambda: f64) -> Self {
        self.soft_lambda = lambda;
        self
    }

    /// The epoch losses and weights so far.
    pub fn history(&self) -> &WeightHistory {
        &self.history
    }
}

impl Objective for MultitaskObjective {
    fn step(&mut self, network: &Network, batch: &Batch, indices: &[usize]) -> StepOutput {
        let device = batch.images.device();
        let logits = network.forward(batch.images.clone());
        let b = indices.len();
        let mut loss: Option<Tensor<1>> = None;
        for (t, range) in self.outputs.iter().enumerate() {
            let labels: Vec<i64> = indices.iter().map(|&i| self.labels[t][i] as i64).collect();
            let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), &device);
            let task_logits = logits.clone().slice([0..b, range.clone()]);
            let ce = CrossEntropyLossConfig::new()
                .init(&device)
                .forward(task_logits, labels);
            self.sums[t] += ce.clone().into_scalar::<f32>() as f64 * b as f64;
            let weighted = ce.mul_scalar(self.current[t] as f32);
            loss = Some(match loss {
                None => weighted,
                Some(l) => l + weighted,
            });
        }
        self.count += b;
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
        let primary = self.outputs[self.primary].clone();
        StepOutput {
            loss: loss.unwrap_or_else(|| Tensor::zeros([1], &device)),
            logits: mask_outputs(logits, primary),
        }
    }

    fn eval_outputs(&self) -> Option<Range<usize>> {
        Some(self.outputs[self.primary].clone())
    }

    fn end_epoch(&mut self, _epoch: usize) {
        let n = self.count.max(1) as f64;
        self.history
            .losses
            .push(self.sums.iter().map(|s| s / n).collect());
        self.history.weights.push(self.current.clone());
        self.sums.iter_mut().for_each(|s| *s = 0.0);
        self.count = 0;
        self.current = self
            .weighting
            .weights(self.outputs.len(), &self.history.losses);
    }

    fn state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.history).ok()
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        self.history = serde_json::from_value(state.clone()).map_err(|e| e.to_string())?;
        self.current = self
            .weighting
            .weights(self.outputs.len(), &self.history.losses);
        Ok(())
    }
}
