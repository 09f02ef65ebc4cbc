//! How the epoch loop executes one training step, whatever the objective: on one device
//! ([`OneDevice`]), on several devices of this process through Burn's own data parallel
//! ([`super::parallel::DataParallel`]), or on the ranks of a job ([`RankParallel`]: MPI
//! processes on one machine or many). The loop itself (batches, schedule, evaluation,
//! checkpoints) is the same for all three, as burn-train's `fit` is the same for each of
//! its execution strategies.

use std::collections::HashSet;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};

use super::collective::{CollectiveError, Ranks};
use super::freeze::FrozenSet;
use super::groups::ParamGroups;
use super::objective::Objective;
use super::step::{loss_and_gradients, train_step};
use crate::data::{BatchOrder, HostBatch};
use crate::models::Network;

/// What one step did: its (global) batch's mean loss, correct predictions, predictions
/// made and examples seen, over every device or rank that took part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StepStats {
    pub loss: f64,
    pub correct: u64,
    pub predictions: u64,
    pub examples: usize,
}

/// Why a step made no update.
#[derive(Debug)]
pub(crate) enum StepError {
    /// The loss (on some device or rank) is NaN or infinite.
    NonFinite(f64),
    /// The ranks could not exchange their gradients.
    Collective(CollectiveError),
}

/// How a step is executed.
pub(crate) trait Execution {
    /// The part of an epoch's batch order this process loads (a rank's shard of every
    /// batch); all of it by default.
    fn order(&self, order: BatchOrder) -> BatchOrder {
        order
    }

    /// Seeds the dropout streams of every device this execution trains on.
    fn seed(&self, seed: u64);

    /// Holds `frozen` fixed on every device besides the caller's network.
    fn freeze(&mut self, _frozen: &FrozenSet) {}

    /// Whether a loaded batch of `len` examples can be stepped on (every device of an
    /// in-process data parallel step needs one).
    fn takes(&self, len: usize) -> bool {
        len > 0
    }

    /// One optimiser step of `network` on `batch` (as [`Execution::order`] cut it).
    fn step(
        &mut self,
        network: Network,
        optimizer: &mut ModuleOptimizer,
        groups: &ParamGroups,
        objective: &mut dyn Objective,
        batch: HostBatch,
        lr: f64,
    ) -> Result<(Network, StepStats), StepError>;
}

/// Training on one device.
pub(crate) struct OneDevice {
    /// The training (autodiff) device.
    pub device: Device,
}

impl Execution for OneDevice {
    fn seed(&self, seed: u64) {
        self.device.seed(seed);
    }

    fn step(
        &mut self,
        network: Network,
        optimizer: &mut ModuleOptimizer,
        groups: &ParamGroups,
        objective: &mut dyn Objective,
        batch: HostBatch,
        lr: f64,
    ) -> Result<(Network, StepStats), StepError> {
        let examples = batch.len();
        let indices = batch.indices.clone();
        let batch = batch.into_device(&self.device);
        let (network, loss, correct, predictions) =
            train_step(network, optimizer, groups, objective, &batch, &indices, lr)
                .map_err(StepError::NonFinite)?;
        Ok((
            network,
            StepStats {
                loss,
                correct,
                predictions,
                examples,
            },
        ))
    }
}

/// Values each rank sends before its gradients: examples, mean loss, correct
/// predictions, predictions.
const HEADER: usize = 4;

/// Data parallel across the ranks of a job: every rank holds the whole network, loads
/// its contiguous shard of each batch of the seeded order, and computes the objective
/// and its gradients on it; the ranks all-gather their gradients and each sums them in
/// rank order, weighted by its shard's share of the batch, so every rank takes the same
/// optimiser step from the same bits, and the step equals one process's on the whole
/// batch up to float summation order (for a loss that is a mean over the batch).
///
/// As PyTorch's DistributedDataParallel without SyncBatchNorm, batch norm normalises with
/// each rank's shard statistics and keeps each rank's running statistics (rank 0's are
/// the ones saved); a contrastive objective's negatives are the other examples of the
/// rank's own shard (not gathered across ranks).
pub(crate) struct RankParallel {
    ranks: Ranks,
    /// The training (autodiff) device.
    device: Device,
    /// Its inner device, where gradients live.
    inner: Device,
}

impl RankParallel {
    /// Data parallel over `ranks`, each training on `device` (without autodiff).
    pub fn new(ranks: Ranks, device: &Device) -> Self {
        Self {
            ranks,
            device: device.clone().autodiff(),
            inner: device.clone(),
        }
    }
}

impl Execution for RankParallel {
    fn order(&self, order: BatchOrder) -> BatchOrder {
        order.sharded(self.ranks.rank(), self.ranks.size())
    }

    fn seed(&self, seed: u64) {
        // Each rank draws its own dropout masks for its own examples.
        let rank = self.ranks.rank() as u64;
        self.device
            .seed(seed ^ rank.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }

    fn step(
        &mut self,
        network: Network,
        optimizer: &mut ModuleOptimizer,
        groups: &ParamGroups,
        objective: &mut dyn Objective,
        batch: HostBatch,
        lr: f64,
    ) -> Result<(Network, StepStats), StepError> {
        let examples = batch.len();
        let indices = batch.indices.clone();
        let batch = batch.into_device(&self.device);
        let (loss, right, predictions, mut grads) =
            loss_and_gradients(&network, objective, &batch, &indices);

        let trained: Vec<HashSet<ParamId>> = groups
            .trained()
            .map(|g| g.ids.iter().copied().collect())
            .collect();
        let mut mine = vec![
            examples as f32,
            loss as f32,
            right as f32,
            predictions as f32,
        ];
        for ids in &trained {
            let mut group_grads = GradientsParams::from_params(
                &mut grads,
                &network,
                &ids.iter().copied().collect::<Vec<_>>(),
            );
            network.visit(&mut Flatten {
                ids,
                grads: &mut group_grads,
                out: &mut mine,
            });
        }
        let all = self
            .ranks
            .0
            .all_gather(&mine)
            .map_err(StepError::Collective)?;
        let per_rank: Vec<&[f32]> = all.chunks_exact(mine.len()).collect();
        if per_rank.len() != self.ranks.size() {
            return Err(StepError::Collective(CollectiveError(format!(
                "the all-gather returned {} values, not {} ranks of {}",
                all.len(),
                self.ranks.size(),
                mine.len()
            ))));
        }
        if let Some(bad) = per_rank
            .iter()
            .map(|r| r[1] as f64)
            .find(|l| !l.is_finite())
        {
            return Err(StepError::NonFinite(bad));
        }
        let total: f64 = per_rank.iter().map(|r| r[0] as f64).sum();
        let mut stats = StepStats {
            loss: 0.0,
            correct: 0,
            predictions: 0,
            examples: total as usize,
        };
        // The same sum in the same order on every rank: the same bits everywhere.
        let mut averaged = vec![0f32; mine.len() - HEADER];
        for rank in &per_rank {
            let share = (rank[0] as f64 / total) as f32;
            stats.loss += rank[0] as f64 * rank[1] as f64 / total;
            stats.correct += rank[2] as u64;
            stats.predictions += rank[3] as u64;
            for (sum, value) in averaged.iter_mut().zip(&rank[HEADER..]) {
                *sum += share * value;
            }
        }
        let mut network = network;
        let mut at = 0;
        for (group, ids) in groups.trained().zip(&trained) {
            let mut unflatten = Unflatten {
                ids,
                values: &averaged,
                at,
                device: &self.inner,
                grads: GradientsParams::new(),
            };
            network.visit(&mut unflatten);
            at = unflatten.at;
            network = optimizer.step(lr * group.lr_mult, network, unflatten.grads);
        }
        Ok((network, stats))
    }
}

/// Appends, for each parameter of `ids` in visiting order, whether it has a gradient
/// (1 or 0) and the gradient's values (zeros without one).
struct Flatten<'a> {
    ids: &'a HashSet<ParamId>,
    grads: &'a mut GradientsParams,
    out: &'a mut Vec<f32>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !self.ids.contains(&param.id) {
            return;
        }
        match self.grads.remove::<D>(param.id) {
            Some(grad) => {
                self.out.push(1.0);
                let data = grad.into_data().convert::<f32>();
                self.out
                    .extend_from_slice(data.as_slice::<f32>().unwrap_or_default());
            }
            None => {
                self.out.push(0.0);
                let n = param.lazy_shape().num_elements();
                self.out.extend(std::iter::repeat_n(0.0, n));
            }
        }
    }
}

/// Reads back what [`Flatten`] wrote (averaged over the ranks) as gradients: a parameter
/// gets one where any rank had one.
struct Unflatten<'a> {
    ids: &'a HashSet<ParamId>,
    values: &'a [f32],
    at: usize,
    device: &'a Device,
    grads: GradientsParams,
}

impl ModuleVisitor for Unflatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !self.ids.contains(&param.id) {
            return;
        }
        let shape = param.lazy_shape();
        let n = shape.num_elements();
        let present = self.values[self.at] > 0.0;
        let values = &self.values[self.at + 1..self.at + 1 + n];
        self.at += 1 + n;
        if present {
            let data = TensorData::new(values.to_vec(), shape);
            self.grads
                .register::<D>(param.id, Tensor::from_data(data, self.device));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::engine::collective::{Collective, threads};
    use crate::engine::groups::{GroupRule, ParamGroups};
    use crate::engine::objective::CrossEntropy;
    use crate::engine::optim::OptimizerConfig;
    use crate::models::{ModelConfig, param_infos};

    /// `n` 4x4 grey images whose class (of `classes`) shows in their pixels.
    fn toy(n: usize, classes: usize) -> Dataset {
        let labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
        let images = (0..n * 16)
            .map(|i| ((i * 7919) % 23) as f32 / 23.0 + labels[i / 16] as f32 * 0.3)
            .collect();
        Dataset::new(images, labels, [1, 4, 4], classes).unwrap()
    }

    fn sgd() -> OptimizerConfig {
        OptimizerConfig::Sgd(crate::engine::optim::SgdParams::default())
    }

    fn weights(network: &Network) -> Vec<f32> {
        crate::models::named_tensors(network)
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_values()
            .flat_map(|d| d.convert::<f32>().try_to_vec::<f32>().unwrap())
            .collect()
    }

    /// Two ranks (threads), each on its half of a batch, take the step one process takes
    /// on the whole batch: weights equal up to float summation order, the same bits on
    /// both ranks, and the same loss and counts.
    #[test]
    fn two_ranks_step_as_one_process_on_the_whole_batch() {
        let data = toy(12, 3);
        let device = Device::flex();
        let network = ModelConfig::default().init([1, 4, 4], 3, &device.clone().autodiff());
        // Two groups at two rates: the gradients of each go to their own update.
        let rules = vec![GroupRule {
            pattern: "head".into(),
            lr_mult: 0.5,
            frozen: false,
            unfreeze_at: None,
            freeze_bn: true,
        }];
        let groups = ParamGroups::resolve(&rules, &param_infos(&network)).unwrap();
        let optim = sgd();
        let order = BatchOrder::sequential(data.len(), data.len());

        let batch = HostBatch::gather(&data, order.batches().next().unwrap());
        let (alone, alone_stats) = OneDevice {
            device: device.clone().autodiff(),
        }
        .step(
            network.clone(),
            &mut optim.init(),
            &groups,
            &mut CrossEntropy,
            batch,
            0.1,
        )
        .unwrap();

        let results: Vec<(Network, StepStats)> = std::thread::scope(|scope| {
            let handles: Vec<_> = threads::ranks(2)
                .into_iter()
                .map(|rank| {
                    let (network, groups, data, device) = (&network, &groups, &data, &device);
                    let optim = &optim;
                    scope.spawn(move || {
                        let ranks = Ranks(std::rc::Rc::new(rank));
                        let mut exec = RankParallel::new(ranks, device);
                        let order = exec.order(BatchOrder::sequential(data.len(), data.len()));
                        let shard = HostBatch::gather(data, order.batches().next().unwrap());
                        exec.step(
                            network.clone(),
                            &mut optim.init(),
                            groups,
                            &mut CrossEntropy,
                            shard,
                            0.1,
                        )
                        .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let (first, second) = (weights(&results[0].0), weights(&results[1].0));
        assert_eq!(first, second, "the ranks' weights differ");
        let reference = weights(&alone);
        let before = weights(&network);
        let moved = reference
            .iter()
            .zip(&before)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let off = reference
            .iter()
            .zip(&first)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(moved > 1e-3, "the step changed nothing ({moved})");
        assert!(off < 1e-6, "2 ranks differ from 1 process by {off}");
        let stats = results[0].1;
        assert_eq!(stats.examples, alone_stats.examples);
        assert_eq!(stats.correct, alone_stats.correct);
        assert!((stats.loss - alone_stats.loss).abs() < 1e-6);
    }

    /// A non-finite loss on one rank stops every rank, with no update anywhere.
    #[test]
    fn a_non_finite_loss_on_one_rank_stops_both() {
        struct NanOnRankOne(usize);
        impl Objective for NanOnRankOne {
            fn step(
                &mut self,
                network: &Network,
                batch: &crate::data::Batch,
                indices: &[usize],
            ) -> crate::engine::StepOutput {
                let mut out = CrossEntropy.step(network, batch, indices);
                if self.0 == 1 {
                    out.loss = out.loss * f32::NAN;
                }
                out
            }
        }
        let data = toy(8, 2);
        let device = Device::flex();
        let network = ModelConfig::default().init([1, 4, 4], 2, &device.clone().autodiff());
        let groups = ParamGroups::resolve(&[], &param_infos(&network)).unwrap();
        let outcomes: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = threads::ranks(2)
                .into_iter()
                .map(|rank| {
                    let (network, groups, data, device) = (&network, &groups, &data, &device);
                    scope.spawn(move || {
                        let which = Collective::rank(&rank);
                        let mut exec = RankParallel::new(Ranks(std::rc::Rc::new(rank)), device);
                        let order = exec.order(BatchOrder::sequential(data.len(), data.len()));
                        let shard = HostBatch::gather(data, order.batches().next().unwrap());
                        let optim = sgd();
                        matches!(
                            exec.step(
                                network.clone(),
                                &mut optim.init(),
                                groups,
                                &mut NanOnRankOne(which),
                                shard,
                                0.1,
                            ),
                            Err(StepError::NonFinite(v)) if v.is_nan()
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(outcomes, vec![true, true]);
    }
}
