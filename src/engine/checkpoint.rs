//! Checkpoints: the network's weights (a Burn `.bpk` record, parameter ids included so
//! the optimiser state maps back onto them), the optimiser state (another `.bpk` record)
//! and the run's progress (JSON), in one file written atomically: a temporary file in the
//! same folder, flushed and synced, then renamed over the old one. A crash at any moment
//! leaves either the old checkpoint or the new one, never a torn file.
//!
//! Layout: `MENTORCK` magic, a `u32` format version, then three length-prefixed (`u64`,
//! little-endian) sections: state JSON, model record, optimiser record; format 3 ends
//! with the CRC-32 (`u32`, little-endian) of every byte before it, so a flipped bit or a
//! truncated copy is refused on load instead of evaluated.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::metrics::MetricRow;
use crate::models::Network;

const MAGIC: &[u8; 8] = b"MENTORCK";

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Reads a best accuracy that JSON wrote as `null`: minus infinity, "nothing scored yet"
/// (a checkpoint written within the first epoch, before any scoring).
fn unscored_as_minus_infinity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NEG_INFINITY))
}
/// Format 2 adds the network's config and the seed to the state (format 1 kept them
/// only inside the config text); format 3 adds the trailing checksum. All are read;
/// formats 1 and 2 have no checksum to verify.
const VERSION: u32 = 3;
/// The first format with a trailing checksum.
const CHECKSUMMED: u32 = 3;

/// A checkpoint that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Writing failed.
    #[error("checkpoint {}: {}", .0.path.display(), .0.source)]
    Write(#[from] super::io::IoError),
    /// File system error.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a mentor checkpoint or is damaged.
    #[error("checkpoint {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Where a run stands: everything besides weights and optimiser state that resuming needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimiser steps taken.
    pub steps_done: u64,
    /// Best validation accuracy so far (test accuracy when there is no validation split).
    #[serde(deserialize_with = "unscored_as_minus_infinity")]
    pub best_val_accuracy: f64,
    /// The epoch (1-based) that reached it.
    pub best_epoch: usize,
    /// Seconds spent in training steps so far.
    pub train_seconds: f64,
    /// Of those, seconds spent waiting for the next batch (absent in checkpoints written
    /// before mentor recorded it).
    #[serde(default)]
    pub data_wait_seconds: f64,
    /// Training examples processed so far.
    pub train_samples: u64,
    /// Batches of epoch `epochs_done + 1` already trained on when the checkpoint was
    /// written within that epoch (`[checkpoint] every_steps`); 0 at an epoch's end.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch_batches: usize,
    /// That epoch's running training metrics so far; `None` at an epoch's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_running: Option<super::metrics::Running>,
    /// Every metric row written so far.
    pub history: Vec<MetricRow>,
    /// The objective's own state (e.g. dynamic task weights), restored on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective_state: Option<serde_json::Value>,
    /// The resolved run config, as TOML.
    pub config_toml: String,
    /// Input shape `[C, H, W]` the network was built for.
    pub input_shape: [usize; 3],
    /// Number of classes its head predicts.
    pub num_classes: usize,
    /// mentor's version that wrote it.
    pub mentor_version: String,
    /// The network's config (format 2; `None` in format 1, whose `config_toml` has it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<crate::models::ModelConfig>,
    /// The run's seed (format 2; `None` in format 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// A name per class of the data it trained on (empty in checkpoints written before
    /// mentor kept them), so that `predict` and `export` need not read the data again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_names: Vec<String>,
    /// The normalisation its inputs went through, when the data fitted or fixed one
    /// outside the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalization: Option<crate::data::split::Normalization>,
}

/// A checkpoint read back from disk.
pub struct Checkpoint {
    /// Progress and config.
    pub state: TrainingState,
    /// Weights.
    pub model: ModuleRecord,
    /// Optimiser state.
    pub optimizer: Bytes,
}

impl Checkpoint {
    /// Applies the weights to a freshly built network of the same architecture.
    pub fn load_into(&self, network: Network, path: &Path) -> Result<Network, CheckpointError> {
        network
            .try_load_record(self.model.clone())
            .map_err(|e| CheckpointError::Corrupt {
                path: path.into(),
                reason: format!("weights do not fit the network: {e}"),
            })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.into(),
        source,
    }
}

/// Writes a checkpoint atomically to `path`.
pub fn save(
    path: &Path,
    network: &Network,
    optimizer: &ModuleOptimizer,
    state: &TrainingState,
) -> Result<(), CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.into(),
        reason,
    };
    let state_json = serde_json::to_vec(state).map_err(|e| corrupt(e.to_string()))?;
    let model = network
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| corrupt(format!("cannot encode weights: {e}")))?;
    let optim = optimizer
        .into_bytes()
        .map_err(|e| corrupt(format!("cannot encode optimiser state: {e}")))?;
    let mut buf = Vec::with_capacity(32 + state_json.len() + model.len() + optim.len());
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&VERSION.to_le_bytes());
    for section in [&state_json[..], &model[..], &optim[..]] {
        buf.extend_from_slice(&(section.len() as u64).to_le_bytes());
        buf.extend_from_slice(section);
    }
    let checksum = crc32fast::hash(&buf);
    buf.extend_from_slice(&checksum.to_le_bytes());
    super::io::write_atomic(path, &buf).map_err(CheckpointError::from)
}

/// Reads a checkpoint, checking its magic, version and section lengths.
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let corrupt = |reason: &str| CheckpointError::Corrupt {
        path: path.into(),
        reason: reason.into(),
    };
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(corrupt("not a mentor checkpoint (bad magic)"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if !(1..=VERSION).contains(&version) {
        return Err(corrupt(&format!(
            "format version {version}, this mentor reads 1 to {VERSION}"
        )));
    }
    let bytes = if version >= CHECKSUMMED {
        let Some(body_len) = bytes.len().checked_sub(4).filter(|&n| n >= 12) else {
            return Err(corrupt("truncated"));
        };
        let (body, tail) = bytes.split_at(body_len);
        let stored = u32::from_le_bytes(tail.try_into().unwrap_or_default());
        if crc32fast::hash(body) != stored {
            return Err(corrupt(
                "checksum mismatch: the file is damaged or truncated (it was written whole; a copy or the disk changed it)",
            ));
        }
        body
    } else {
        &bytes[..]
    };
    let mut at = 12;
    let mut sections = Vec::new();
    for _ in 0..3 {
        let len_bytes: [u8; 8] = bytes
            .get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| corrupt("truncated"))?;
        let len = u64::from_le_bytes(len_bytes) as usize;
        at += 8;
        let section = bytes
            .get(at..at.saturating_add(len))
            .ok_or_else(|| corrupt("truncated"))?;
        sections.push(section);
        at += len;
    }
    if at != bytes.len() {
        // Earlier formats were written exactly too; so a checksummed file whose version
        // field was damaged into an earlier one is refused here, by its checksum's bytes.
        return Err(corrupt("trailing bytes after the last section"));
    }
    let state: TrainingState = serde_json::from_slice(sections[0])
        .map_err(|e| corrupt(&format!("bad state section: {e}")))?;
    let model = ModuleRecord::from_bytes(Bytes::from_bytes_vec(sections[1].to_vec()))
        .map_err(|e| corrupt(&format!("bad weights section: {e}")))?;
    Ok(Checkpoint {
        state,
        model,
        optimizer: Bytes::from_bytes_vec(sections[2].to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn written(dir: &Path) -> PathBuf {
        let device = Device::flex().autodiff();
        let model = crate::models::ModelConfig::default();
        let network = model.init([1, 8, 8], 10, &device);
        let optimizer = super::super::optim::OptimizerConfig::default().init();
        let state = TrainingState {
            epochs_done: 1,
            steps_done: 3,
            epoch_batches: 0,
            epoch_running: None,
            best_val_accuracy: 0.5,
            best_epoch: 1,
            train_seconds: 0.1,
            data_wait_seconds: 0.0,
            train_samples: 30,
            history: Vec::new(),
            objective_state: None,
            config_toml: "seed = 1\n".into(),
            input_shape: [1, 8, 8],
            num_classes: 10,
            mentor_version: "test".into(),
            model: Some(model),
            seed: Some(1),
            class_names: vec!["zero".into(); 10],
            normalization: None,
        };
        let path = dir.join("a.ckpt");
        save(&path, &network, &optimizer, &state).unwrap();
        path
    }

    #[test]
    fn any_flipped_bit_or_cut_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path());
        assert_eq!(load(&path).unwrap().state.epochs_done, 1);
        let good = std::fs::read(&path).unwrap();
        let damaged = dir.path().join("damaged.ckpt");
        // One bit in each of many places: magic, lengths, state, weights, checksum.
        for at in (0..good.len())
            .step_by(good.len() / 97 + 1)
            .chain([good.len() - 1])
        {
            let mut bytes = good.clone();
            bytes[at] ^= 1 << (at % 8);
            std::fs::write(&damaged, &bytes).unwrap();
            let e = load(&damaged)
                .err()
                .unwrap_or_else(|| panic!("bit at {at} loaded"));
            assert!(e.to_string().contains("damaged.ckpt"), "{e}");
        }
        // Every bit of the version field (3 -> 2 or 1 is an earlier, unchecksummed format).
        for bit in 0..32 {
            let mut bytes = good.clone();
            bytes[8 + bit / 8] ^= 1 << (bit % 8);
            std::fs::write(&damaged, &bytes).unwrap();
            assert!(load(&damaged).is_err(), "version bit {bit} flipped loaded");
        }
        for len in [0, 5, 12, 20, good.len() / 2, good.len() - 4, good.len() - 1] {
            std::fs::write(&damaged, &good[..len]).unwrap();
            assert!(load(&damaged).is_err(), "cut to {len} bytes loaded");
        }
        let mut longer = good.clone();
        longer.push(0);
        std::fs::write(&damaged, &longer).unwrap();
        assert!(load(&damaged).is_err(), "a trailing byte loaded");
    }
}
