//! A run's starting weights, decided before the engine trains, for every strategy: the
//! seeded initialisation, then, when `[init] pretrained` names a file, the pretrained
//! weights imported into it by parameter name (transfer learning; see
//! [`crate::transfer`]), with the import report written as `transfer.json` in the run
//! directory.

use std::path::Path;

use burn::tensor::Device;

use crate::data::photo::PhotoTransform;
use crate::engine::progress::{LogFormat, Progress};
use crate::engine::{StartWeights, init::StartError};
use crate::models::{ModelConfig, Network};
use crate::transfer::{InitConfig, REPORT_FILE, import_pretrained};

/// How a photo becomes `model`'s input when it runs ImageNet-pretrained weights: the
/// preprocessing of its model card (TensorFlow's `(p - 127) / 128` for
/// EfficientNet-Lite, torchvision's ImageNet statistics for torchvision's families);
/// torchvision's ImageNet evaluation for a network without a card.
pub fn photo_transform(model: &ModelConfig) -> PhotoTransform {
    match model.card() {
        Some(card) => PhotoTransform {
            resize: card.resize,
            crop: card.crop(),
            mean: card.mean,
            std: card.std,
        },
        None => PhotoTransform::imagenet(),
    }
}

/// The `[init]` of a run as the engine's [`StartWeights`].
pub struct InitWeights {
    init: InitConfig,
    device: Device,
    log: LogFormat,
    /// Whether to leave `transfer.json` and say what was imported (not on the ranks of
    /// a job that do not write the run directory).
    records: bool,
}

impl InitWeights {
    /// `init` applied with pretrained files loaded on `device` (the training device
    /// without autodiff); `log` says whether to tell a person what was imported.
    pub fn new(init: &InitConfig, device: &Device, log: LogFormat) -> Self {
        Self {
            init: init.clone(),
            device: device.clone(),
            log,
            records: true,
        }
    }

    /// The same, leaving no record when `records` is false.
    pub fn recording(self, records: bool) -> Self {
        Self { records, ..self }
    }
}

impl StartWeights for InitWeights {
    fn start(&self, fresh: Network, run_dir: &Path) -> Result<Network, StartError> {
        let Some(path) = &self.init.pretrained else {
            return Ok(fresh);
        };
        let (network, report) = import_pretrained(fresh, &self.init, &self.device)?;
        if !self.records {
            return Ok(network);
        }
        crate::engine::io::write_json(&run_dir.join(REPORT_FILE), &report)?;
        let fresh: Vec<&str> = report
            .reinitialized
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        Progress::new(self.log, "transfer:").note(&format!(
            "pretrained {}: copied {} parameters, re-initialised {} ({})",
            path.display(),
            report.copied.len(),
            fresh.len(),
            fresh.join(", ")
        ));
        for (name, how) in &report.adapted {
            Progress::new(self.log, "transfer:").note(&format!("{name}: {how}"));
        }
        Ok(network)
    }
}
