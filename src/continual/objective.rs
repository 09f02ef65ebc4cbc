//! The training objective of one task of a continual run: cross-entropy on the output
//! units the setting trains, plus the method's term (LwF's KD on old heads, EWC's
//! penalty, a replayed batch).

use std::ops::Range;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::Setting;
use super::ewc::EwcPenalty;
use super::lwf::LwfTerm;
use super::replay::sample_positions;
use super::scenario::Task;
use crate::data::{Batch, Dataset};
use crate::engine::{Objective, StepOutput};
use crate::losses::MASKED_LOGIT;
use crate::models::Network;

/// Replayed examples: the buffer's images and, per example, its task.
pub struct ReplayTerm {
    /// The buffered examples.
    pub examples: Dataset,
    /// The task of each buffered example.
    pub tasks: Vec<usize>,
    /// Replayed examples per step.
    pub batch_size: usize,
    /// Seed of the draws.
    pub seed: u64,
}

/// What a step of task `current` minimises. Replay follows van de Ven & Tolias (2019):
/// the current batch's loss weighs `1/t` and the replayed batch's `1 - 1/t` when task `t`
/// (1-based) trains, so every task seen so far counts alike.
pub struct ContinualObjective {
    setting: Setting,
    tasks: Vec<Range<usize>>,
    current: usize,
    example_task: Vec<usize>,
    /// LwF's recorded outputs, from the second task on.
    pub lwf: Option<LwfTerm>,
    /// EWC's penalty, from the second task on.
    pub ewc: Option<EwcPenalty>,
    /// Experience replay, from the second task on.
    pub replay: Option<ReplayTerm>,
}

impl ContinualObjective {
    /// Plain masked cross-entropy while task `current` (0-based) trains; `example_task`
    /// gives the task of each training example (all `current`, except in joint training).
    pub fn new(setting: Setting, tasks: &[Task], current: usize, example_task: Vec<usize>) -> Self {
        Self {
            setting,
            tasks: tasks.iter().map(|t| t.outputs.clone()).collect(),
            current,
            example_task,
            lwf: None,
            ewc: None,
            replay: None,
        }
    }

    fn outputs_of(&self, task: usize) -> Option<Range<usize>> {
        match self.setting {
            Setting::TaskIl => Some(self.tasks[task].clone()),
            Setting::ClassIl => Some(0..self.tasks[self.current].end),
            Setting::DomainIl => None,
        }
    }

    /// `logits` with, per row, the units outside that example's trained outputs masked.
    fn mask_rows(
        &self,
        logits: Tensor<2>,
        example_tasks: impl Iterator<Item = usize>,
    ) -> Tensor<2> {
        if self.setting == Setting::DomainIl {
            return logits;
        }
        let [b, c] = logits.dims();
        let mut mask = Vec::with_capacity(b * c);
        for t in example_tasks {
            let active = self.outputs_of(t).unwrap_or(0..c);
            mask.extend((0..c).map(|j| {
                if active.contains(&j) {
                    0.0
                } else {
                    MASKED_LOGIT
                }
            }));
        }
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [b, c]), &logits.device());
        logits + mask
    }

    fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>, device: &Device) -> Tensor<1> {
        CrossEntropyLossConfig::new()
            .init(device)
            .forward(logits, labels)
    }
}

impl Objective for ContinualObjective {
    fn step(&mut self, network: &Network, batch: &Batch, indices: &[usize]) -> StepOutput {
        let device = batch.images.device();
        let logits = network.forward(batch.images.clone());
        let masked = self.mask_rows(
            logits.clone(),
            indices.iter().map(|&i| self.example_task[i]),
        );
        let mut loss = Self::cross_entropy(masked.clone(), batch.labels.clone(), &device);
        if let Some(lwf) = &self.lwf
            && let Some(kd) = lwf.loss(&logits, indices)
        {
            loss = if lwf.balance_by_tasks {
                let w_new = 1.0 / (self.current + 1) as f32;
                loss.mul_scalar(w_new) + kd.mul_scalar(1.0 - w_new)
            } else {
                loss + kd
            };
        }
        if let Some(replay) = &self.replay
            && !replay.tasks.is_empty()
        {
            let positions =
                sample_positions(replay.tasks.len(), replay.batch_size, indices, replay.seed);
            let old = Batch::gather(&replay.examples, &positions, &device);
            let old_logits = network.forward(old.images);
            let old_masked = self.mask_rows(old_logits, positions.iter().map(|&p| replay.tasks[p]));
            let old_loss = Self::cross_entropy(old_masked, old.labels, &device);
            let w_new = 1.0 / (self.current + 1) as f32;
            loss = loss.mul_scalar(w_new) + old_loss.mul_scalar(1.0 - w_new);
        }
        if let Some(ewc) = &self.ewc
            && let Some(p) = ewc.penalty(network)
        {
            loss = loss + p;
        }
        StepOutput {
            loss,
            logits: masked,
            targets: None,
        }
    }

    fn eval_outputs(&self) -> Option<Range<usize>> {
        match self.setting {
            Setting::DomainIl => None,
            _ => self.outputs_of(self.current),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::continual::{ScenarioKind, build_tasks};

    #[test]
    fn masked_cross_entropy_equals_cross_entropy_on_the_active_units() {
        let device = Device::flex();
        let images = vec![0.0; 10 * 4];
        let labels: Vec<usize> = (0..10).collect();
        let d = Dataset::new(images, labels, [1, 2, 2], 10).unwrap();
        let (tasks, _) = build_tasks(ScenarioKind::Split, Setting::TaskIl, 5, &d, &d, 1).unwrap();
        let obj = ContinualObjective::new(Setting::TaskIl, &tasks, 2, vec![2; 2]);
        let logits = Tensor::<2>::from_data(
            TensorData::new(
                (0..20).map(|v| (v as f32 * 0.37).sin()).collect::<Vec<_>>(),
                [2, 10],
            ),
            &device,
        );
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![4i64, 5], [2]), &device);
        let masked = obj.mask_rows(logits.clone(), [2usize, 2].into_iter());
        let got = ContinualObjective::cross_entropy(masked, labels, &device).into_scalar::<f32>();
        let active = logits.slice([0..2, 4..6]);
        let local = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1], [2]), &device);
        let want = ContinualObjective::cross_entropy(active, local, &device).into_scalar::<f32>();
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
}
