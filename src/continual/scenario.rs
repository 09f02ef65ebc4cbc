//! Cutting one dataset into a sequence of tasks, and which output units each setting
//! trains and scores (van de Ven & Tolias 2019, "Three scenarios for continual learning").

use std::ops::Range;

use super::{ContinualError, ScenarioKind, Setting};
use crate::data::Dataset;
use crate::data::split::{permute_pixels, pixel_permutation};

/// One task: its training and test examples (labels already in the setting's output
/// space) and the output units that belong to it.
#[derive(Debug, Clone)]
pub struct Task {
    /// Training examples.
    pub train: Dataset,
    /// Test examples.
    pub test: Dataset,
    /// The task's own output units (its "head"); under domain-IL every task shares them.
    pub outputs: Range<usize>,
    /// The original class labels the task covers (for the log).
    pub classes: Vec<usize>,
}

/// Cuts `train` / `test` into `tasks` tasks of scenario `kind` in `setting`. Returns the
/// tasks and the number of output units the network needs.
///
/// - Split: classes in label order, `num_classes / tasks` per task; task-IL and class-IL
///   keep the labels (one head of `num_classes` units, task `t` owning its classes'
///   units), domain-IL relabels each task's classes `0..per_task` (one shared head).
/// - Permuted: task `t` is the whole dataset under pixel permutation `t` (task 0 is the
///   original images, as in van de Ven & Tolias); domain-IL keeps the labels (one shared
///   head), task-IL and class-IL shift task `t`'s labels by `t * num_classes`.
pub fn build_tasks(
    kind: ScenarioKind,
    setting: Setting,
    tasks: usize,
    train: &Dataset,
    test: &Dataset,
    seed: u64,
) -> Result<(Vec<Task>, usize), ContinualError> {
    let classes = train.num_classes;
    match kind {
        ScenarioKind::Split => {
            if tasks < 2 || !classes.is_multiple_of(tasks) {
                return Err(ContinualError::Scenario(format!(
                    "split needs the {classes} classes to divide into {tasks} equal tasks"
                )));
            }
            let per = classes / tasks;
            let total = if setting == Setting::DomainIl {
                per
            } else {
                classes
            };
            let mut out = Vec::with_capacity(tasks);
            for t in 0..tasks {
                let own = t * per..(t + 1) * per;
                let offset = if setting == Setting::DomainIl {
                    own.start
                } else {
                    0
                };
                let cut = |d: &Dataset| -> Result<Dataset, ContinualError> {
                    let idx: Vec<usize> = (0..d.len())
                        .filter(|&i| own.contains(&d.labels[i]))
                        .collect();
                    let part = d.select(&idx);
                    let labels = part.labels.iter().map(|l| l - offset).collect();
                    Ok(Dataset::new(part.images, labels, part.shape, total)?)
                };
                let task_train = cut(train)?;
                if task_train.is_empty() {
                    return Err(ContinualError::Scenario(format!(
                        "task {} (classes {own:?}) has no training examples",
                        t + 1
                    )));
                }
                out.push(Task {
                    train: task_train,
                    test: cut(test)?,
                    outputs: if setting == Setting::DomainIl {
                        0..per
                    } else {
                        own.clone()
                    },
                    classes: own.collect(),
                });
            }
            Ok((out, total))
        }
        ScenarioKind::Permuted => {
            let shifted = setting != Setting::DomainIl;
            let total = if shifted { classes * tasks } else { classes };
            let mut out = Vec::with_capacity(tasks);
            for t in 0..tasks {
                let offset = if shifted { t * classes } else { 0 };
                let perm = if t == 0 {
                    (0..train.image_len()).collect()
                } else {
                    pixel_permutation(train.image_len(), permutation_seed(seed, t))
                };
                let cut = |d: &Dataset| -> Result<Dataset, ContinualError> {
                    let p = permute_pixels(d, &perm)?;
                    let labels = p.labels.iter().map(|l| l + offset).collect();
                    Ok(Dataset::new(p.images, labels, p.shape, total)?)
                };
                out.push(Task {
                    train: cut(train)?,
                    test: cut(test)?,
                    outputs: offset..offset + classes,
                    classes: (0..classes).collect(),
                });
            }
            Ok((out, total))
        }
    }
}

fn permutation_seed(seed: u64, task: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (task as u64).wrapping_mul(0xC2B2_AE3D)
}

/// The output units a training example of task `example_task` is scored on while the
/// learner trains task `current`: its own task's head under task-IL, every class seen so
/// far under class-IL, all (`None`) under domain-IL.
pub fn train_outputs(
    setting: Setting,
    tasks: &[Task],
    example_task: usize,
    current: usize,
) -> Option<Range<usize>> {
    match setting {
        Setting::TaskIl => Some(tasks[example_task].outputs.clone()),
        Setting::ClassIl => Some(0..tasks[current].outputs.end),
        Setting::DomainIl => None,
    }
}

/// The output units on which task `task` is scored after training task `current`: its
/// own head (task-IL), every class seen so far (class-IL), all (domain-IL).
pub fn eval_outputs(
    setting: Setting,
    tasks: &[Task],
    task: usize,
    current: usize,
) -> Option<Range<usize>> {
    match setting {
        Setting::TaskIl => Some(tasks[task].outputs.clone()),
        Setting::ClassIl => Some(0..tasks[current.max(task)].outputs.end),
        Setting::DomainIl => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n_per_class: usize, classes: usize) -> Dataset {
        let n = n_per_class * classes;
        let labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
        let images: Vec<f32> = (0..n * 4).map(|v| v as f32).collect();
        Dataset::new(images, labels, [1, 2, 2], classes).unwrap()
    }

    #[test]
    fn split_cuts_classes_in_order_and_keeps_or_relabels() {
        let d = toy(3, 10);
        let (tasks, total) =
            build_tasks(ScenarioKind::Split, Setting::ClassIl, 5, &d, &d, 1).unwrap();
        assert_eq!(total, 10);
        assert_eq!(tasks.len(), 5);
        assert_eq!(tasks[2].outputs, 4..6);
        assert!(tasks[2].train.labels.iter().all(|l| (4..6).contains(l)));
        assert_eq!(tasks[2].train.len(), 6);
        let (tasks, total) =
            build_tasks(ScenarioKind::Split, Setting::DomainIl, 5, &d, &d, 1).unwrap();
        assert_eq!(total, 2);
        assert_eq!(tasks[4].classes, vec![8, 9]);
        assert!(tasks[4].train.labels.iter().all(|&l| l < 2));
        assert!(build_tasks(ScenarioKind::Split, Setting::TaskIl, 3, &d, &d, 1).is_err());
    }

    #[test]
    fn permuted_first_task_is_the_original_and_labels_shift_per_setting() {
        let d = toy(2, 3);
        let (tasks, total) =
            build_tasks(ScenarioKind::Permuted, Setting::TaskIl, 3, &d, &d, 7).unwrap();
        assert_eq!(total, 9);
        assert_eq!(tasks[0].train.images, d.images);
        assert_ne!(tasks[1].train.images, d.images);
        assert_eq!(tasks[2].outputs, 6..9);
        assert!(tasks[2].train.labels.iter().all(|l| (6..9).contains(l)));
        let (tasks, total) =
            build_tasks(ScenarioKind::Permuted, Setting::DomainIl, 3, &d, &d, 7).unwrap();
        assert_eq!(total, 3);
        assert_eq!(tasks[2].train.labels, d.labels);
    }

    #[test]
    fn outputs_follow_the_setting() {
        let d = toy(1, 10);
        let (tasks, _) = build_tasks(ScenarioKind::Split, Setting::TaskIl, 5, &d, &d, 1).unwrap();
        assert_eq!(train_outputs(Setting::TaskIl, &tasks, 1, 3), Some(2..4));
        assert_eq!(train_outputs(Setting::ClassIl, &tasks, 1, 3), Some(0..8));
        assert_eq!(train_outputs(Setting::DomainIl, &tasks, 1, 3), None);
        assert_eq!(eval_outputs(Setting::ClassIl, &tasks, 0, 1), Some(0..4));
        assert_eq!(eval_outputs(Setting::TaskIl, &tasks, 0, 4), Some(0..2));
    }
}
