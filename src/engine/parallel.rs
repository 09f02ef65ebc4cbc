//! Data-parallel training over several devices through Burn's own distributed data
//! parallel (the mechanism of burn-train's `ExecutionStrategy::DistributedDataParallel`,
//! used here inside mentor's engine): one replica of the network per device, every
//! parameter marked with `Tensor::set_distributed`, a `DistributedContext` running Burn's
//! gradient-sync server, and each step's batch split across the devices. During each
//! replica's backward pass Burn all-reduces (averages) every parameter's gradient across
//! the devices, so every replica takes the same optimiser step and the replicas stay
//! identical; mentor adds no all-reduce of its own.
//!
//! Burn 0.22.1 implements the collective operations on CUDA only (NCCL through cubecl);
//! [`super::device::parse_devices`] refuses other backends. As with PyTorch's DDP without
//! SyncBatchNorm, batch-norm statistics are per device, and the averaged gradient is the
//! mean of per-device means (equal to the full batch's when the shards are equal).

use std::ops::Range;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::ModuleOptimizer;
use burn::tensor::distributed::{DistributedConfig, DistributedContext, ReduceOperation};
use burn::tensor::{Device, Tensor};

use super::execution::{Execution, StepError, StepStats};
use super::freeze::FrozenSet;
use super::groups::ParamGroups;
use super::objective::{CrossEntropy, Objective};
use super::step::train_step;
use crate::data::HostBatch;
use crate::data::batch::shard;
use crate::models::Network;

/// Marks every parameter for gradient synchronisation (what burn-train's `ModuleSharder`
/// does to a `Learner`'s model).
struct MarkDistributed;

impl ModuleMapper for MarkDistributed {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.set_distributed(id), mapper)
    }
}

/// One device's copy of the network and its optimiser.
struct Replica {
    device: Device,
    network: Option<Network>,
    optimizer: ModuleOptimizer,
}

/// Replicas of a network on the devices after the first, which the caller's own network
/// (on the first device) trains beside. Holding it keeps Burn's sync server running.
pub(crate) struct DataParallel {
    /// The caller's device (the first).
    device: Device,
    replicas: Vec<Replica>,
    // Dropped last: the server must outlive every replica's backward pass.
    _context: DistributedContext,
}

impl DataParallel {
    /// Starts Burn's gradient-sync server for `devices` (autodiff devices, the first being
    /// `network`'s), marks `network`'s parameters for synchronisation and copies it, with
    /// `optimizer`'s state, to the other devices.
    pub fn start(
        devices: &[Device],
        network: Network,
        optimizer: &ModuleOptimizer,
        fresh_optimizer: impl Fn() -> ModuleOptimizer,
    ) -> Result<(Self, Network), String> {
        let context = DistributedContext::init(
            devices.to_vec(),
            DistributedConfig {
                all_reduce_op: ReduceOperation::Mean,
            },
        );
        let network = network.map(&mut MarkDistributed);
        let state = optimizer
            .into_bytes()
            .map_err(|e| format!("cannot copy the optimiser state: {e}"))?;
        let replicas = devices[1..]
            .iter()
            .map(|device| {
                let optimizer = fresh_optimizer()
                    .from_bytes(state.clone())
                    .map_err(|e| format!("cannot copy the optimiser state: {e}"))?;
                Ok(Replica {
                    device: device.clone(),
                    network: Some(network.clone().fork(device)),
                    optimizer,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok((
            Self {
                device: devices[0].clone(),
                replicas,
                _context: context,
            },
            network,
        ))
    }

    /// One step on all devices at once: the batch split into one contiguous shard per
    /// device; the first shard trains `network` with `objective`, the others their
    /// replicas with cross-entropy (data parallel is for supervised runs). `Err` carries
    /// a non-finite loss, as `train_step`'s does.
    fn step_all(
        &mut self,
        network: Network,
        optimizer: &mut ModuleOptimizer,
        groups: &ParamGroups,
        objective: &mut dyn Objective,
        batch: HostBatch,
        lr: f64,
    ) -> Result<(Network, StepStats), f64> {
        let shards = shards(batch.len(), self.replicas.len() + 1);
        let first = batch.slice(shards[0].clone());
        let (mine, others) = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .replicas
                .iter_mut()
                .zip(&shards[1..])
                .map(|(replica, range)| {
                    let shard = batch.slice(range.clone());
                    scope.spawn(move || replica.step(groups, shard, lr))
                })
                .collect();
            let indices = first.indices.clone();
            let on_device = first.into_device(&network.devices()[0]);
            let mine = train_step(
                network, optimizer, groups, objective, &on_device, &indices, lr,
            );
            let others: Vec<_> = handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect();
            (mine, others)
        });
        let (network, loss, correct, predictions) = mine?;
        let mut total = StepStats {
            loss: loss * shards[0].len() as f64,
            correct,
            predictions,
            examples: batch.len(),
        };
        for (result, range) in others.into_iter().zip(&shards[1..]) {
            let (loss, correct, predictions) = result?;
            total.loss += loss * range.len() as f64;
            total.correct += correct;
            total.predictions += predictions;
        }
        total.loss /= batch.len().max(1) as f64;
        Ok((network, total))
    }
}

impl Execution for DataParallel {
    fn seed(&self, seed: u64) {
        self.device.seed(seed);
        for replica in &self.replicas {
            replica.device.seed(seed);
        }
    }

    /// Holds `frozen` fixed in every replica, as the caller does in its own network (every
    /// device must differentiate the same parameters for the all-reduce).
    fn freeze(&mut self, frozen: &FrozenSet) {
        for replica in &mut self.replicas {
            replica.network = replica.network.take().map(|n| frozen.apply(n));
        }
    }

    /// Every device must take part in each step's gradient all-reduce.
    fn takes(&self, len: usize) -> bool {
        len > self.replicas.len()
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
        self.step_all(network, optimizer, groups, objective, batch, lr)
            .map_err(StepError::NonFinite)
    }
}

impl Replica {
    fn step(
        &mut self,
        groups: &ParamGroups,
        shard: HostBatch,
        lr: f64,
    ) -> Result<(f64, u64, u64), f64> {
        let network = self
            .network
            .take()
            .expect("a replica's network is put back after every step");
        let indices = shard.indices.clone();
        let batch = shard.into_device(&self.device);
        // A non-finite loss ends the run, so the replica is not needed after an error.
        let (network, loss, correct, predictions) = train_step(
            network,
            &mut self.optimizer,
            groups,
            &mut CrossEntropy,
            &batch,
            &indices,
            lr,
        )?;
        self.network = Some(network);
        Ok((loss, correct, predictions))
    }
}

/// `len` items in `parts` contiguous shards whose sizes differ by at most one.
fn shards(len: usize, parts: usize) -> Vec<Range<usize>> {
    (0..parts.max(1)).map(|p| shard(len, parts, p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_near_equal_contiguous_parts() {
        assert_eq!(shards(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(shards(4, 4), vec![0..1, 1..2, 2..3, 3..4]);
        assert_eq!(shards(2, 3), vec![0..1, 1..2, 2..2]);
        assert_eq!(shards(7, 1), vec![0..7]);
    }
}
