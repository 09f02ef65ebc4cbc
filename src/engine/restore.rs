//! Rebuilding a trained network from a checkpoint alone: the checkpoint carries the run
//! config, input shape and class count, so no data is needed.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::checkpoint::{self, CheckpointError};
use super::trainer::{init_unlocked, seeded_init};
use crate::config::RunConfig;
use crate::models::{ModelConfig, Network};

/// A checkpoint that cannot be turned back into a network.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The checkpoint could not be read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint's config is unreadable.
    #[error("checkpoint {path}: {message}")]
    Config {
        /// The checkpoint.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A trained network read back from a checkpoint, with the config it was trained with.
pub struct LoadedNetwork {
    /// The network, on the device it was loaded to.
    pub network: Network,
    /// Its run config.
    pub config: RunConfig,
    /// Input shape `[C, H, W]`.
    pub input_shape: [usize; 3],
    /// Number of classes.
    pub num_classes: usize,
    /// Epochs it was trained for.
    pub epochs: usize,
}

/// Loads any mentor checkpoint as a network on `device`.
pub fn load_network(path: &Path, device: &Device) -> Result<LoadedNetwork, RestoreError> {
    load_with(path, |model, shape, classes, seed| {
        seeded_init(model, shape, classes, device, seed)
    })
}

/// [`load_network`] for a caller that already holds the engine's RNG lock (a run that
/// imports pretrained weights): taking the lock again would deadlock.
pub(crate) fn load_network_in_run(
    path: &Path,
    device: &Device,
) -> Result<LoadedNetwork, RestoreError> {
    load_with(path, |model, shape, classes, seed| {
        init_unlocked(model, shape, classes, device, seed)
    })
}

fn load_with(
    path: &Path,
    init: impl FnOnce(&ModelConfig, [usize; 3], usize, u64) -> Network,
) -> Result<LoadedNetwork, RestoreError> {
    let ckpt = checkpoint::load(path)?;
    let config = RunConfig::from_toml(&ckpt.state.config_toml, "checkpoint").map_err(|e| {
        RestoreError::Config {
            path: path.into(),
            message: e.to_string(),
        }
    })?;
    let (input_shape, num_classes) = (ckpt.state.input_shape, ckpt.state.num_classes);
    let fresh = init(&config.model, input_shape, num_classes, config.seed);
    let network = ckpt.load_into(fresh, path)?;
    Ok(LoadedNetwork {
        network,
        config,
        input_shape,
        num_classes,
        epochs: ckpt.state.epochs_done,
    })
}
