//! Transfer learning: start from a network trained on a source task and reuse it on a
//! target task. Per layer, by parameter-name pattern, a run chooses to **freeze** (keep
//! the weights fixed: a frozen group), **fine-tune** (keep the weights, train at a reduced
//! rate: a group with `lr_mult` 0.1 or 0.01) or **retrain** (re-initialise and train at
//! the full rate: `init.retrain`). A head whose shape no longer fits (another class count)
//! is re-initialised, and the run says so. See Yosinski et al. (2014), "How transferable
//! are features in deep neural networks?".

pub mod linear_probe;

use std::path::PathBuf;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::engine::restore::RestoreError;
use crate::models::weights::{self, WeightsError};
use crate::models::{ImportError, ImportReport, Network};
use crate::rules::{self, Rule, Violation};

pub use linear_probe::{FeatureStats, LinearProbe, LinearProbeConfig};

/// Why pretrained weights cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The pretrained checkpoint could not be loaded.
    #[error("pretrained: {0}")]
    Restore(#[from] RestoreError),
    /// A weights file could not be read.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The tensors could not be copied.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// A network meant to run as it was pretrained lacks some of its weights in the file.
    #[error(
        "{path}: {missing} of the network's {total} tensors are not in the file as they must be, e.g. `{example}`: {reason} (is --model the file's architecture?)"
    )]
    Incomplete {
        /// The weights file.
        path: std::path::PathBuf,
        /// How many tensors are missing or mis-shaped.
        missing: usize,
        /// How many tensors the network has.
        total: usize,
        /// The first of them, by name.
        example: String,
        /// Why it could not be copied.
        reason: String,
    },
    /// of classes than the file's (a class-name list of the wrong length, say).
    #[error(
        "{path}: the classifier `{example}` does not fit ({reason}): the network was built for another number of classes than these weights have (one per class name given, e.g. --labels, or ImageNet's 1000)"
    )]
    ClassCount {
        /// The weights file.
        path: std::path::PathBuf,
        /// The classifier tensor.
        example: String,
        /// Its shapes here and in the file.
        reason: String,
    },
}

/// `[init]`: where a run's starting weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitConfig {
    /// A mentor checkpoint whose weights are copied by parameter name where shapes fit;
    /// `None` starts from random weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PathBuf>,
    /// Patterns (as in `[[groups]]`) of parameters to re-initialise instead of copying.
    pub retrain: Vec<String>,
    /// Copy only parameters matching these patterns (e.g. `["backbone"]` for a partial
    /// load); empty copies everything that fits.
    pub load_only: Vec<String>,
    /// For a `.safetensors`, `.pt` or `.pth` file: `from=to` prefix rewrites of its keys
    /// to mentor names.
    pub key_map: Vec<String>,
    /// Copy the pretrained head too when its shape fits. Off by default: a new task's
    /// classes are not the source's, even when there are as many of them.
    pub keep_head: bool,
    /// A colour network's first convolution on grey images (`data.rgb = false`, one
    /// input channel): its pretrained weights summed over their input channels (timm's
    /// `adapt_input_conv`; on by default). `false` re-initialises that layer instead.
    #[serde(skip_serializing_if = "is_true")]
    pub adapt_input_conv: bool,
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            pretrained: None,
            retrain: Vec::new(),
            load_only: Vec::new(),
            key_map: Vec::new(),
            keep_head: false,
            adapt_input_conv: true,
        }
    }
}

fn is_true(value: &bool) -> bool {
    *value
}

impl InitConfig {
    /// Checks the rules; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self) -> Result<(), Violation> {
        let needs_pretrained = |key: &str| {
            rules::fail(
                key,
                Rule::Needs {
                    condition: "init.pretrained (there is nothing to keep otherwise)",
                },
            )
        };
        if self.pretrained.is_none() {
            if !self.retrain.is_empty() {
                return needs_pretrained("init.retrain");
            }
            if self.keep_head {
                return needs_pretrained("init.keep_head");
            }
            if !self.load_only.is_empty() {
                return needs_pretrained("init.load_only");
            }
            if !self.key_map.is_empty() {
                return needs_pretrained("init.key_map");
            }
        }
        if let Some(e) = self.key_map.iter().find(|e| !e.contains('=')) {
            return rules::fail("init.key_map", Rule::KeyMapEntry { entry: e.clone() });
        }
        if let Some(i) = self.retrain.iter().position(|p| p.is_empty()) {
            return rules::fail(format!("init.retrain[{i}]"), Rule::NotEmpty);
        }
        Ok(())
    }
}

impl InitConfig {
    /// The patterns to re-initialise: `retrain`, plus the head unless `keep_head`.
    pub fn fresh_patterns(&self) -> Vec<String> {
        let mut p = self.retrain.clone();
        if !self.keep_head && !p.iter().any(|x| x == "head") {
            p.push("head".into());
        }
        p
    }
}

/// Whether `path` names a weights file (`.safetensors`, or PyTorch's `.pt`/`.pth`)
/// rather than a mentor checkpoint: weights alone, without the run (its data, its
/// config) that made them.
pub fn is_weights_file(path: &std::path::Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("safetensors" | "pt" | "pth")
    )
}

/// Imports `config.pretrained` (a mentor checkpoint, or a `.safetensors`, `.pt` or
/// `.pth` file with PyTorch conventions) into `network` as the config says; a mentor
/// checkpoint is loaded on `device`.
pub fn import_pretrained(
    network: Network,
    config: &InitConfig,
    device: &Device,
) -> Result<(Network, ImportReport), TransferError> {
    let Some(path) = &config.pretrained else {
        return Ok((network, ImportReport::default()));
    };
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let mut tensors = if extension == "safetensors" {
        let map = weights::parse_key_map(&config.key_map)?;
        weights::read_safetensors(path, &map, &network)?
    } else if extension == "pt" || extension == "pth" {
        let map = weights::parse_key_map(&config.key_map)?;
        weights::read_pytorch(path, &map, &network)?
    } else {
        let source = crate::engine::restore::load_network(path, device)?;
        crate::models::named_tensors(&source.network)
    };
    let mut fresh = config.fresh_patterns();
    if !config.load_only.is_empty() {
        // Everything outside `load_only` stays fresh.
        let outside: Vec<String> = crate::models::param_infos(&network)
            .into_iter()
            .map(|p| p.name)
            .filter(|n| {
                !config
                    .load_only
                    .iter()
                    .any(|p| crate::models::pattern_selects(p, n))
            })
            .collect();
        fresh.extend(outside);
    }
    let adapted = if config.adapt_input_conv {
        crate::models::import::adapt_input_conv(&network, &mut tensors)
    } else {
        None
    };
    let (network, mut report) = crate::models::import_tensors(network, &tensors, &fresh)?;
    if let Some(adapted) = adapted.filter(|(name, _)| report.copied.contains(name)) {
        report.adapted.push(adapted);
    }
    Ok((network, report))
}

/// `network` with every one of its tensors, head and batch-norm statistics included,
/// read from the weights file `path` (as [`import_pretrained`] reads it, `key_map`
/// entries `from=to`): for running a pretrained network as it is (`mentor predict`).
/// A tensor the file lacks, or holds in another shape, is an error naming it.
pub fn load_whole(
    network: Network,
    path: &std::path::Path,
    key_map: &[String],
    device: &Device,
) -> Result<Network, TransferError> {
    let config = InitConfig {
        pretrained: Some(path.to_path_buf()),
        key_map: key_map.to_vec(),
        keep_head: true,
        ..InitConfig::default()
    };
    let (network, report) = import_pretrained(network, &config, device)?;
    let head_only = !report.reinitialized.is_empty()
        && report
            .reinitialized
            .iter()
            .all(|(name, why)| name.starts_with("head.") && why.starts_with("shape"));
    if head_only {
        let (example, reason) = &report.reinitialized[0];
        return Err(TransferError::ClassCount {
            path: path.to_path_buf(),
            example: example.clone(),
            reason: reason.clone(),
        });
    }
    match report.reinitialized.first() {
        None => Ok(network),
        Some((example, reason)) => Err(TransferError::Incomplete {
            path: path.to_path_buf(),
            missing: report.reinitialized.len(),
            total: report.reinitialized.len() + report.copied.len(),
            example: example.clone(),
            reason: reason.clone(),
        }),
    }
}

/// Where run directories keep the import report.
pub const REPORT_FILE: &str = "transfer.json";
