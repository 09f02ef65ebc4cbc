//! The training objective of one task of a continual run: cross-entropy on the output
//! units the setting trains, plus the method's loss terms (LwF's KD on old heads, EWC's
//! penalty, a replayed batch; see [`super::method::LossTerm`]).

use std::ops::Range;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor, TensorData};

use super::Setting;
use super::method::{LossTerm, StepContext};
use super::scenario::Task;
use crate::data::Batch;
use crate::engine::{Objective, StepOutput};
use crate::losses::MASKED_LOGIT;
use crate::models::Network;

/// The output units each example is trained and scored on, by the task it belongs to:
/// its own task's head (task-IL), every class seen so far (class-IL) or all units
/// (domain-IL).
#[derive(Debug, Clone)]
pub struct RowMasks {
    setting: Setting,
    tasks: Vec<Range<usize>>,
    current: usize,
}

impl RowMasks {
    /// The masks while task `current` (0-based) of `tasks` trains.
    pub fn new(setting: Setting, tasks: &[Task], current: usize) -> Self {
        Self {
            setting,
            tasks: tasks.iter().map(|t| t.outputs.clone()).collect(),
            current,
        }
    }

    /// The units of an example of task `task`; `None` for all of them.
    pub fn outputs_of(&self, task: usize) -> Option<Range<usize>> {
        match self.setting {
            Setting::TaskIl => Some(self.tasks[task].clone()),
            Setting::ClassIl => Some(0..self.tasks[self.current].end),
            Setting::DomainIl => None,
        }
    }

    /// `logits` with, per row, the units outside that example's outputs masked.
    pub fn mask(&self, logits: Tensor<2>, example_tasks: impl Iterator<Item = usize>) -> Tensor<2> {
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
}

/// Mean cross-entropy of `logits` against `labels`.
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits, labels)
}

/// What a step of one task minimises: cross-entropy on the output units the setting
/// trains, then the method's terms, each combined with its own rule.
pub struct ContinualObjective {
    masks: RowMasks,
    current: usize,
    example_task: Vec<usize>,
    terms: Vec<Box<dyn LossTerm>>,
}

impl ContinualObjective {
    /// Masked cross-entropy while task `current` (0-based) trains, plus `terms`;
    /// `example_task` gives the task of each training example (all `current`, except in
    /// joint training).
    pub fn new(
        setting: Setting,
        tasks: &[Task],
        current: usize,
        example_task: Vec<usize>,
        terms: Vec<Box<dyn LossTerm>>,
    ) -> Self {
        Self {
            masks: RowMasks::new(setting, tasks, current),
            current,
            example_task,
            terms,
        }
    }
}

impl Objective for ContinualObjective {
    fn step(&mut self, network: &Network, batch: &Batch, indices: &[usize]) -> StepOutput {
        let logits = network.forward(batch.images.clone());
        let masked = self.masks.mask(
            logits.clone(),
            indices.iter().map(|&i| self.example_task[i]),
        );
        let mut loss = cross_entropy(masked.clone(), batch.labels.clone());
        let cx = StepContext {
            network,
            logits: &logits,
            indices,
            current: self.current,
            masks: &self.masks,
        };
        for term in &self.terms {
            loss = term.combine(loss, &cx);
        }
        StepOutput {
            loss,
            logits: masked,
            targets: None,
        }
    }

    fn eval_outputs(&self) -> Option<Range<usize>> {
        match self.masks.setting {
            Setting::DomainIl => None,
            _ => self.masks.outputs_of(self.current),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::continual::{ScenarioKind, build_tasks};
    use crate::data::Dataset;
    use burn::tensor::Device;

    #[test]
    fn masked_cross_entropy_equals_cross_entropy_on_the_active_units() {
        let device = Device::flex();
        let images = vec![0.0; 10 * 4];
        let labels: Vec<usize> = (0..10).collect();
        let d = Dataset::new(images, labels, [1, 2, 2], 10).unwrap();
        let (tasks, _) = build_tasks(ScenarioKind::Split, Setting::TaskIl, 5, &d, &d, 1).unwrap();
        let masks = RowMasks::new(Setting::TaskIl, &tasks, 2);
        let logits = Tensor::<2>::from_data(
            TensorData::new(
                (0..20).map(|v| (v as f32 * 0.37).sin()).collect::<Vec<_>>(),
                [2, 10],
            ),
            &device,
        );
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![4i64, 5], [2]), &device);
        let masked = masks.mask(logits.clone(), [2usize, 2].into_iter());
        let got = cross_entropy(masked, labels).into_scalar::<f32>();
        let active = logits.slice([0..2, 4..6]);
        let local = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1], [2]), &device);
        let want = cross_entropy(active, local).into_scalar::<f32>();
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
}
