//! Transfer learning: start from a network trained on a source task and reuse it on a
//! target task. Per layer, by parameter-name pattern, a run chooses to **freeze** (keep
//! the weights fixed: a frozen group), **fine-tune** (keep the weights, train at a reduced
//! rate: a group with `lr_mult` 0.1 or 0.01) or **retrain** (re-initialise and train at
//! the full rate: `init.retrain`). A head whose shape no longer fits (another class count)
//! is re-initialised, and the run says so. See Yosinski et al. (2014), "How transferable
//! are features in deep neural networks?".

pub mod advisor;
pub mod import;
pub mod linear_probe;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use import::{ImportReport, TransferError, import_weights};
pub use linear_probe::{FeatureStats, HeadLoss, LinearProbe, LinearProbeConfig};

/// `[init]`: where a run's starting weights come from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitConfig {
    /// A mentor checkpoint whose weights are copied by parameter name where shapes fit;
    /// `None` starts from random weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PathBuf>,
    /// Patterns (as in `[[groups]]`) of parameters to re-initialise instead of copying.
    pub retrain: Vec<String>,
    /// Copy the pretrained head too when its shape fits. Off by default: a new task's
    /// classes are not the source's, even when there are as many of them.
    pub keep_head: bool,
}

impl InitConfig {
    /// Checks the rules; on error returns (key, rule).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !self.retrain.is_empty() && self.pretrained.is_none() {
            return Err((
                "init.retrain".into(),
                "needs init.pretrained (there is nothing to keep otherwise)".into(),
            ));
        }
        if self.keep_head && self.pretrained.is_none() {
            return Err(("init.keep_head".into(), "needs init.pretrained".into()));
        }
        if let Some(i) = self.retrain.iter().position(|p| p.is_empty()) {
            return Err((format!("init.retrain[{i}]"), "must not be empty".into()));
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

/// Where run directories keep the import report.
pub const REPORT_FILE: &str = "transfer.json";

/// The checkpoint path of a pretrained network, for messages.
pub fn describe(init: &InitConfig) -> String {
    init.pretrained
        .as_ref()
        .map_or_else(|| "random".into(), |p| p.display().to_string())
}
