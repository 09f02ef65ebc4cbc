//! Joint training: task `t` trains on the union of tasks `1..=t`, the upper bound of
//! what a method that may keep all data reaches.

use crate::continual::ContinualError;
use crate::continual::method::ContinualMethod;
use crate::continual::scenario::Task;
use crate::data::Dataset;

/// Every task so far, trained together.
pub struct Joint;

impl ContinualMethod for Joint {
    fn training_set(
        &self,
        tasks: &[Task],
        t: usize,
    ) -> Result<(Dataset, Vec<usize>), ContinualError> {
        let parts: Vec<&Dataset> = tasks[..=t].iter().map(|k| &k.train).collect();
        let owner = tasks[..=t]
            .iter()
            .enumerate()
            .flat_map(|(k, task)| std::iter::repeat_n(k, task.train.len()))
            .collect();
        Ok((Dataset::concat(&parts)?, owner))
    }
}
