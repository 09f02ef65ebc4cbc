//! A trained network read back with the run config it was trained with: the engine
//! rebuilds the network from the checkpoint alone, and this layer parses the config the
//! checkpoint keeps (for `mentor eval`, `knn`, `export` and the advisor, which reuse its
//! data settings).

use std::path::Path;

use burn::tensor::Device;

use super::config::RunConfig;
use crate::engine::restore::{LoadedNetwork, RestoreError, load_network};

/// A trained network and its run config.
pub struct LoadedRun {
    /// The network and what it was built from.
    pub loaded: LoadedNetwork,
    /// Its run config.
    pub config: RunConfig,
}

/// Loads a mentor checkpoint on `device` with its run config.
pub fn load_run(path: &Path, device: &Device) -> Result<LoadedRun, RestoreError> {
    let loaded = load_network(path, device)?;
    let config = RunConfig::from_toml(&loaded.config_toml, "checkpoint").map_err(|e| {
        RestoreError::Config {
            path: path.into(),
            message: e.to_string(),
        }
    })?;
    Ok(LoadedRun { loaded, config })
}
