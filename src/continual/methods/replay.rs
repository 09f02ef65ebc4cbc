//! Experience replay: a fixed-size buffer of examples from earlier tasks, a batch of which
//! is mixed into every training step of later tasks (Chaudhry et al. 2019, "On Tiny
//! Episodic Memories in Continual Learning"; Rolnick et al. 2019).

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::continual::BufferSelection;
use crate::data::split::rng;
use std::path::Path;

use burn::tensor::Tensor;

use crate::continual::ContinualError;
use crate::continual::method::{
    ContinualMethod, LossTerm, MethodState, StepContext, TaskContext, state_error,
};
use crate::continual::objective::cross_entropy;
use crate::data::{Batch, Dataset};
use crate::models::Network;

/// The buffer's contents as `(task, example index in that task's training set)` pairs,
/// so that it is saved with a run as a few numbers and rebuilt from the data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReplayBuffer {
    /// `(task, index)` of each stored example.
    pub entries: Vec<(usize, usize)>,
    /// Examples offered to the buffer so far (reservoir sampling's stream position).
    pub seen: usize,
}

impl ReplayBuffer {
    /// Offers task `task`'s training examples (with labels `labels`) to the buffer of
    /// `capacity`, after that task has trained. Reservoir: each of the `seen` examples
    /// so far ends up in the buffer with probability `capacity / seen`. Class-balanced:
    /// the buffer keeps `capacity / classes seen` examples of every class (earlier
    /// classes give up their latest-chosen examples first).
    pub fn add_task(
        &mut self,
        task: usize,
        labels: &[usize],
        all_labels: &dyn Fn(usize, usize) -> usize,
        capacity: usize,
        selection: BufferSelection,
        seed: u64,
    ) {
        let mut r = rng(seed ^ 0xB0FF_E500 ^ (task as u64).wrapping_mul(0x9E37_79B9));
        match selection {
            BufferSelection::Reservoir => {
                let mut order: Vec<usize> = (0..labels.len()).collect();
                order.shuffle(&mut r);
                for i in order {
                    self.seen += 1;
                    if self.entries.len() < capacity {
                        self.entries.push((task, i));
                    } else {
                        let j = r.random_range(0..self.seen);
                        if j < capacity {
                            self.entries[j] = (task, i);
                        }
                    }
                }
            }
            BufferSelection::ClassBalanced => {
                self.seen += labels.len();
                let mut by_class: std::collections::BTreeMap<usize, Vec<(usize, usize)>> =
                    Default::default();
                for &(t, i) in &self.entries {
                    by_class.entry(all_labels(t, i)).or_default().push((t, i));
                }
                let mut fresh: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
                for (i, &l) in labels.iter().enumerate() {
                    fresh.entry(l).or_default().push(i);
                }
                for (l, mut idx) in fresh {
                    idx.shuffle(&mut r);
                    by_class
                        .entry(l)
                        .or_default()
                        .extend(idx.into_iter().map(|i| (task, i)));
                }
                let per = capacity / by_class.len().max(1);
                let mut extra = capacity - per * by_class.len();
                self.entries.clear();
                for (_, list) in by_class {
                    let take = per + usize::from(extra > 0 && list.len() > per);
                    if take > per {
                        extra -= 1;
                    }
                    self.entries.extend(list.into_iter().take(take));
                }
            }
        }
    }

    /// Number of stored examples.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `count` buffer positions drawn with replacement, seeded by the training batch's own
/// example indices, so the replayed batch is a function of `(seed, epoch, step)` and a
/// resumed run replays what an uninterrupted one would.
pub fn sample_positions(
    len: usize,
    count: usize,
    batch_indices: &[usize],
    seed: u64,
) -> Vec<usize> {
    let mut h = seed ^ 0x5851_F42D_4C95_7F2D;
    for &i in batch_indices {
        h = (h ^ i as u64).wrapping_mul(0x100_0000_01B3);
    }
    let mut r = rng(h);
    (0..count).map(|_| r.random_range(0..len)).collect()
}

/// Experience replay as a method: after each task its examples are offered to the
/// buffer; from the second task on, every step adds a replayed batch.
pub struct Replay {
    buffer: ReplayBuffer,
    capacity: usize,
    selection: BufferSelection,
}

impl Replay {
    /// An empty buffer of `capacity` examples filled by `selection`.
    pub fn new(capacity: usize, selection: BufferSelection) -> Self {
        Self {
            buffer: ReplayBuffer::default(),
            capacity,
            selection,
        }
    }
}

impl ContinualMethod for Replay {
    fn before_task(
        &mut self,
        cx: &TaskContext<'_>,
        _network: &Network,
    ) -> Result<Vec<Box<dyn LossTerm>>, ContinualError> {
        if cx.t == 0 {
            return Ok(Vec::new());
        }
        let first = &cx.tasks[0].train;
        let n = self.buffer.len();
        let mut images = Vec::with_capacity(n * first.image_len());
        let mut labels = Vec::with_capacity(n);
        let mut owner = Vec::with_capacity(n);
        for &(k, i) in &self.buffer.entries {
            images.extend_from_slice(cx.tasks[k].train.image(i));
            labels.push(cx.tasks[k].train.labels[i]);
            owner.push(k);
        }
        Ok(vec![Box::new(ReplayTerm {
            examples: Dataset::new(images, labels, first.shape, first.num_classes)?,
            tasks: owner,
            batch_size: cx.spec.batch_size,
            seed: cx.spec.seed ^ cx.t as u64,
        })])
    }

    fn after_task(
        &mut self,
        cx: &TaskContext<'_>,
        _network: &Network,
    ) -> Result<(), ContinualError> {
        let label_of = |task: usize, i: usize| cx.tasks[task].train.labels[i];
        self.buffer.add_task(
            cx.t,
            &cx.tasks[cx.t].train.labels,
            &label_of,
            self.capacity,
            self.selection,
            cx.spec.seed,
        );
        Ok(())
    }

    fn save(&self, dir: &Path) -> Result<MethodState, ContinualError> {
        let mut state = MethodState::new();
        let value = serde_json::to_value(&self.buffer).map_err(|e| state_error(dir, e))?;
        state.insert("buffer".into(), value);
        Ok(state)
    }

    fn load(&mut self, dir: &Path, saved: &MethodState) -> Result<(), ContinualError> {
        if let Some(value) = saved.get("buffer") {
            self.buffer = serde_json::from_value(value.clone())
                .map_err(|e| state_error(dir, format!("replay buffer: {e}")))?;
        }
        Ok(())
    }
}

/// Replayed examples: the buffer's images and, per example, its task. Replay follows van
/// de Ven & Tolias (2019): the current batch's loss weighs `1/t` and the replayed batch's
/// `1 - 1/t` when task `t` (1-based) trains, so every task seen so far counts alike.
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

impl LossTerm for ReplayTerm {
    fn combine(&self, loss: Tensor<1>, cx: &StepContext<'_>) -> Tensor<1> {
        if self.tasks.is_empty() {
            return loss;
        }
        let device = cx.logits.device();
        let positions = sample_positions(self.tasks.len(), self.batch_size, cx.indices, self.seed);
        let old = Batch::gather(&self.examples, &positions, &device);
        let old_logits = cx.network.forward(old.images);
        let old_masked = cx
            .masks
            .mask(old_logits, positions.iter().map(|&p| self.tasks[p]));
        let old_loss = cross_entropy(old_masked, old.labels);
        let w_new = 1.0 / (cx.current + 1) as f32;
        loss.mul_scalar(w_new) + old_loss.mul_scalar(1.0 - w_new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels_of(task: usize, n: usize) -> Vec<usize> {
        (0..n).map(|i| 2 * task + i % 2).collect()
    }

    #[test]
    fn reservoir_holds_at_most_capacity_and_is_deterministic() {
        let lab = |t: usize, i: usize| 2 * t + i % 2;
        let mut a = ReplayBuffer::default();
        let mut b = ReplayBuffer::default();
        for t in 0..3 {
            let l = labels_of(t, 100);
            a.add_task(t, &l, &lab, 50, BufferSelection::Reservoir, 9);
            b.add_task(t, &l, &lab, 50, BufferSelection::Reservoir, 9);
        }
        assert_eq!(a, b);
        assert_eq!(a.len(), 50);
        assert_eq!(a.seen, 300);
        // Every task is represented (each has ~1/3 of the stream).
        for t in 0..3 {
            let n = a.entries.iter().filter(|e| e.0 == t).count();
            assert!((5..=30).contains(&n), "task {t}: {n}");
        }
    }

    #[test]
    fn class_balanced_keeps_equal_counts_per_class() {
        let lab = |t: usize, i: usize| 2 * t + i % 2;
        let mut buf = ReplayBuffer::default();
        buf.add_task(
            0,
            &labels_of(0, 100),
            &lab,
            40,
            BufferSelection::ClassBalanced,
            1,
        );
        assert_eq!(buf.len(), 40);
        buf.add_task(
            1,
            &labels_of(1, 100),
            &lab,
            40,
            BufferSelection::ClassBalanced,
            1,
        );
        let mut counts = [0usize; 4];
        for &(t, i) in &buf.entries {
            counts[lab(t, i)] += 1;
        }
        assert_eq!(counts, [10, 10, 10, 10]);
    }

    #[test]
    fn replay_positions_depend_on_the_batch() {
        let a = sample_positions(100, 8, &[1, 2, 3], 5);
        assert_eq!(a, sample_positions(100, 8, &[1, 2, 3], 5));
        assert_ne!(a, sample_positions(100, 8, &[1, 2, 4], 5));
        assert!(a.iter().all(|&p| p < 100));
    }
}
