//! Seeded initial weights, and the lock on Burn's backend RNG that makes them (and
//! dropout) reproducible. Burn's backend RNG is one per process, so two runs training at
//! once in one process would draw from each other's stream. Every section that draws
//! (building a network, training) holds the lock and seeds the backend first, so taking
//! the lock once per section is as reproducible as holding it for a whole run; within one
//! process runs take turns (each already uses every core).

use std::sync::{Mutex, MutexGuard};

use burn::tensor::Device;

use crate::models::{ModelConfig, Network};

static BACKEND_RNG: Mutex<()> = Mutex::new(());

/// Holds the backend-RNG lock until dropped.
pub(crate) fn lock_backend_rng() -> MutexGuard<'static, ()> {
    BACKEND_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// The dropout / initialisation seed of epoch `epoch` (and of init, epoch `usize::MAX`).
pub(crate) fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ (epoch as u64).wrapping_add(0xA5A5)
}

/// The device RNG seed from step `step` (> 0) of epoch `epoch` on, in a run that writes
/// checkpoints within its epochs: a resumed run seeds the same at the step it resumes.
pub(crate) fn within_epoch_seed(seed: u64, epoch: usize, step: usize) -> u64 {
    epoch_seed(seed, epoch) ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Builds `model` with initial weights drawn from the backend RNG seeded with `seed`,
/// holding the RNG lock so that no concurrent run disturbs the draw. The same `seed`
/// gives the same weights as the engine's own initialisation of a run with that seed.
pub fn seeded_init(
    model: &ModelConfig,
    input: [usize; 3],
    num_classes: usize,
    device: &Device,
    seed: u64,
) -> Network {
    let _guard = lock_backend_rng();
    device.seed(epoch_seed(seed, usize::MAX));
    model.init(input, num_classes, device)
}

/// Why a run's starting weights could not be made.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// What turns a freshly initialised network into a run's starting network: importing
/// pretrained weights (transfer learning), or nothing. The layer that composes a run
/// supplies it; a strategy that builds its own network (continual learning's first
/// task, a multitask network with one column per task) calls it on the network it built,
/// so the starting weights are decided before the engine trains, for every strategy.
pub trait StartWeights {
    /// The starting network made from `fresh`, the seeded initialisation; `run_dir` is
    /// where to leave a record of what was done (transfer learning's `transfer.json`).
    fn start(&self, fresh: Network, run_dir: &std::path::Path) -> Result<Network, StartError>;
}

/// The seeded initialisation itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct FreshWeights;

impl StartWeights for FreshWeights {
    fn start(&self, fresh: Network, _run_dir: &std::path::Path) -> Result<Network, StartError> {
        Ok(fresh)
    }
}
