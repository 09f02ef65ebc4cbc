//! Seeded shuffling and batching of an in-memory [`Dataset`] into Burn tensors.

use burn::tensor::{Device, Int, Tensor};
use rand::seq::SliceRandom;

use super::{Dataset, split::rng};

/// A batch on a device: images `[B, C, H, W]` and class indices `[B]`.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Images, NCHW.
    pub images: Tensor<4>,
    /// Class index of each image.
    pub labels: Tensor<1, Int>,
}

impl Batch {
    /// Gathers the images at `indices` into a batch on `device`.
    pub fn gather(data: &Dataset, indices: &[usize], device: &Device) -> Self {
        super::HostBatch::gather(data, indices).into_device(device)
    }

    /// Number of examples in the batch.
    pub fn len(&self) -> usize {
        self.labels.dims()[0]
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The order in which one epoch visits a dataset: a permutation drawn from ChaCha8 seeded
/// by `(seed, epoch)` alone, so epoch `k` has the same batches whether or not the run was
/// interrupted and resumed before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOrder {
    indices: Vec<usize>,
    batch_size: usize,
    /// `(rank, ranks)`: only that rank's shard of every batch.
    shard: Option<(usize, usize)>,
}

/// Part `part` of `parts` contiguous shards of `len` items whose sizes differ by at most
/// one (the first `len % parts` shards are one longer).
pub fn shard(len: usize, parts: usize, part: usize) -> std::ops::Range<usize> {
    let parts = parts.max(1);
    let (base, extra) = (len / parts, len % parts);
    let start = part * base + part.min(extra);
    start..start + base + usize::from(part < extra)
}

impl BatchOrder {
    /// A shuffled order for `epoch` of a run with `seed`.
    pub fn shuffled(len: usize, batch_size: usize, seed: u64, epoch: usize) -> Self {
        let mut indices: Vec<usize> = (0..len).collect();
        let stream = seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        indices.shuffle(&mut rng(stream));
        Self {
            indices,
            batch_size: batch_size.max(1),
            shard: None,
        }
    }

    /// The dataset in its stored order (for evaluation).
    pub fn sequential(len: usize, batch_size: usize) -> Self {
        Self {
            indices: (0..len).collect(),
            batch_size: batch_size.max(1),
            shard: None,
        }
    }

    /// This order as rank `rank` of `ranks` sees it in data-parallel training: its
    /// contiguous [`shard`] of every batch. A batch with fewer examples than ranks is left
    /// out for every rank, since each rank must take part in every step.
    pub fn sharded(self, rank: usize, ranks: usize) -> Self {
        Self {
            shard: Some((rank, ranks.max(1))),
            ..self
        }
    }

    /// The rest of this order after its first `done` batches (a run resumed from a
    /// checkpoint written within an epoch): the same batches that would have followed.
    pub fn after_batches(mut self, done: usize) -> Self {
        let cut = done.saturating_mul(self.batch_size).min(self.indices.len());
        self.indices.drain(..cut);
        self
    }

    /// The index slices of consecutive batches; the last one may be smaller.
    pub fn batches(&self) -> impl Iterator<Item = &[usize]> {
        let cut = self.shard;
        self.indices
            .chunks(self.batch_size)
            .filter_map(move |batch| match cut {
                None => Some(batch),
                Some((rank, ranks)) => {
                    (batch.len() >= ranks).then(|| &batch[shard(batch.len(), ranks, rank)])
                }
            })
    }

    /// Number of batches.
    pub fn num_batches(&self) -> usize {
        self.batches().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_depends_on_seed_and_epoch_only() {
        let a = BatchOrder::shuffled(100, 32, 5, 3);
        assert_eq!(a, BatchOrder::shuffled(100, 32, 5, 3));
        assert_ne!(a, BatchOrder::shuffled(100, 32, 5, 4));
        assert_ne!(a, BatchOrder::shuffled(100, 32, 6, 3));
        assert_eq!(a.num_batches(), 4);
        let mut all: Vec<usize> = a.batches().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn the_rest_of_an_order_is_its_remaining_batches() {
        let whole = BatchOrder::shuffled(21, 8, 1, 0);
        let all: Vec<Vec<usize>> = whole.batches().map(<[usize]>::to_vec).collect();
        for done in 0..=4 {
            let rest: Vec<Vec<usize>> = whole
                .clone()
                .after_batches(done)
                .batches()
                .map(<[usize]>::to_vec)
                .collect();
            assert_eq!(rest, all[done.min(3)..], "after {done}");
        }
    }

    #[test]
    fn shards_split_every_batch_among_the_ranks() {
        assert_eq!(
            (0..3).map(|p| shard(10, 3, p)).collect::<Vec<_>>(),
            vec![0..4, 4..7, 7..10]
        );
        assert_eq!(shard(2, 3, 2), 2..2);
        let whole = BatchOrder::shuffled(21, 8, 1, 0);
        let parts: Vec<BatchOrder> = (0..3).map(|r| whole.clone().sharded(r, 3)).collect();
        // Batches of 8, 8 and 5: every rank has three shards, together the whole batch.
        for (b, batch) in whole.batches().enumerate() {
            let joined: Vec<usize> = parts
                .iter()
                .flat_map(|p| p.batches().nth(b).unwrap().to_vec())
                .collect();
            assert_eq!(joined, batch);
        }
        assert!(parts.iter().all(|p| p.num_batches() == 3));
        // A last batch of 1 with 2 ranks is left out for both.
        let odd = BatchOrder::shuffled(9, 4, 1, 0);
        assert_eq!(odd.num_batches(), 3);
        assert_eq!(odd.clone().sharded(0, 2).num_batches(), 2);
        assert_eq!(odd.sharded(1, 2).num_batches(), 2);
    }

    #[test]
    fn gather_builds_tensors_of_the_right_shape() {
        let d = Dataset::new((0..8).map(|v| v as f32).collect(), vec![0, 1], [1, 2, 2], 2).unwrap();
        let b = Batch::gather(&d, &[1, 0], &Device::flex());
        assert_eq!(b.images.dims(), [2, 1, 2, 2]);
        let px: Vec<f32> = b.images.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(px[0], 4.0);
        let lb: Vec<i64> = b
            .labels
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        assert_eq!(lb, vec![1, 0]);
    }
}
