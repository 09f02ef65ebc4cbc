//! Rebuilding a trained network from a checkpoint alone: the checkpoint carries the
//! network's config, seed, input shape and class count, so no data and no run config is
//! needed. Format-1 checkpoints keep the network's config and seed only inside their
//! config text; they are read from its `[model]` table and `seed` key.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::checkpoint::{self, CheckpointError, TrainingState};
use super::init::seeded_init;
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

/// A trained network read back from a checkpoint, with what it was built from.
pub struct LoadedNetwork {
    /// The network, on the device it was loaded to.
    pub network: Network,
    /// Its config.
    pub model: ModelConfig,
    /// The seed of its run.
    pub seed: u64,
    /// The resolved config of its run, as the checkpoint keeps it (TOML).
    pub config_toml: String,
    /// Input shape `[C, H, W]`.
    pub input_shape: [usize; 3],
    /// Number of classes.
    pub num_classes: usize,
    /// Epochs it was trained for.
    pub epochs: usize,
    /// A name per class (empty when the checkpoint predates mentor keeping them).
    pub class_names: Vec<String>,
    /// The normalisation its inputs went through, when the checkpoint records one.
    pub normalization: Option<crate::data::split::Normalization>,
}

/// Loads any mentor checkpoint as a network on `device`.
pub fn load_network(path: &Path, device: &Device) -> Result<LoadedNetwork, RestoreError> {
    let ckpt = checkpoint::load(path)?;
    let (model, seed) = model_and_seed(&ckpt.state).map_err(|message| RestoreError::Config {
        path: path.into(),
        message,
    })?;
    let (input_shape, num_classes) = (ckpt.state.input_shape, ckpt.state.num_classes);
    check_shape(input_shape, num_classes, &model).map_err(|message| RestoreError::Config {
        path: path.into(),
        message,
    })?;
    let fresh = seeded_init(&model, input_shape, num_classes, device, seed);
    let network = ckpt.load_into(fresh, path)?;
    Ok(LoadedNetwork {
        network,
        model,
        seed,
        config_toml: ckpt.state.config_toml,
        input_shape,
        num_classes,
        epochs: ckpt.state.epochs_done,
        class_names: ckpt.state.class_names,
        normalization: ckpt.state.normalization,
    })
}

/// Checks a checkpoint's recorded input shape and class count before a network is built
/// from them: no zero size, a network that fits this machine, and one image that fits
/// the memory limit (a valid checksum says the file is whole, not that it is sensible).
fn check_shape(input: [usize; 3], num_classes: usize, model: &ModelConfig) -> Result<(), String> {
    if input.contains(&0) || num_classes == 0 {
        return Err(format!(
            "input shape {input:?} with {num_classes} classes: every size must be at least 1"
        ));
    }
    let image = input.iter().map(|&d| d as u128).product::<u128>() * 4;
    crate::data::limits::check_allocation(&format!("one {input:?} input image"), image)
        .map_err(|e| e.to_string())?;
    model
        .check_fits(input, num_classes, super::device::host_memory_bytes())
        .map_err(|rule| format!("input shape {input:?}: {rule}"))
}

/// The network's config and seed of a checkpoint's state (format 2 records them; format 1
/// has them in its config text).
fn model_and_seed(state: &TrainingState) -> Result<(ModelConfig, u64), String> {
    if let (Some(model), Some(seed)) = (&state.model, state.seed) {
        return Ok((model.clone(), seed));
    }
    let table: toml::Table = state
        .config_toml
        .parse()
        .map_err(|e: toml::de::Error| format!("config: {}", e.message()))?;
    let model = match table.get("model") {
        Some(value) => value
            .clone()
            .try_into::<ModelConfig>()
            .map_err(|e| format!("config key `model`: {}", e.message()))?,
        None => ModelConfig::default(),
    };
    let seed = match table.get("seed") {
        Some(toml::Value::Integer(s)) if *s >= 0 => *s as u64,
        Some(other) => return Err(format!("config key `seed`: not a seed: {other}")),
        None => 42,
    };
    Ok((model, seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(config_toml: &str) -> TrainingState {
        TrainingState {
            epochs_done: 0,
            steps_done: 0,
            epoch_batches: 0,
            epoch_running: None,
            best_val_accuracy: 0.0,
            best_epoch: 0,
            train_seconds: 0.0,
            data_wait_seconds: 0.0,
            train_samples: 0,
            history: Vec::new(),
            objective_state: None,
            config_toml: config_toml.into(),
            input_shape: [1, 8, 8],
            num_classes: 10,
            mentor_version: "0".into(),
            model: None,
            seed: None,
            class_names: Vec::new(),
            normalization: None,
        }
    }

    #[test]
    fn format_one_states_give_model_and_seed_from_the_config_text() {
        let s = state("seed = 7\n[model]\ntype = \"cnn\"\nhidden = 16\n");
        let (model, seed) = model_and_seed(&s).unwrap();
        assert_eq!(seed, 7);
        assert_eq!(model.kind(), "cnn");
        let e = model_and_seed(&state("seed = 7\n[model]\ntype = \"nope\"\n")).unwrap_err();
        assert!(e.contains("model"), "{e}");
    }

    #[test]
    fn format_two_states_need_no_config_text() {
        let mut s = state("not toml at all [");
        s.model = Some(ModelConfig::default());
        s.seed = Some(3);
        assert_eq!(model_and_seed(&s).unwrap(), (ModelConfig::default(), 3));
    }
}
