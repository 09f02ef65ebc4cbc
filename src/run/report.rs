//! What a finished run reports: one tagged [`Report`], the run directory's
//! `summary.json`, so readers tell a continual run from a multitask run by its `kind`,
//! not by guessing from its fields.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::continual::ContinualSummary;
use crate::engine::RunSummary;
use crate::multitask::MultitaskSummary;

/// The summary of a finished run, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Report {
    /// One network trained on one objective (supervised, distillation, linear probe,
    /// self-supervised pre-training): the engine's summary.
    Training(RunSummary),
    /// A sequence of tasks (continual learning).
    Continual(ContinualSummary),
    /// Several tasks trained jointly (multitask learning).
    Multitask(MultitaskSummary),
}

/// The name of the report in a run directory.
pub const SUMMARY_FILE: &str = "summary.json";

/// A `summary.json` that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ReportError {
    /// The file.
    pub path: std::path::PathBuf,
    /// What is wrong.
    pub reason: String,
}

impl Report {
    /// Reads a `summary.json`: a tagged report, or one written before reports were
    /// tagged (told apart by the fields only its kind has).
    pub fn read(path: &Path) -> Result<Report, ReportError> {
        let err = |reason: String| ReportError {
            path: path.into(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| err(format!("not JSON: {e}")))?;
        let parsed = if value.get("kind").is_some() {
            serde_json::from_value(value)
        } else if value.get("task_accuracy").is_some() {
            serde_json::from_value(value).map(Report::Multitask)
        } else if value.get("average_accuracy").is_some() {
            serde_json::from_value(value).map(Report::Continual)
        } else {
            serde_json::from_value(value).map(Report::Training)
        };
        parsed.map_err(|e| err(format!("not a mentor run summary: {e}")))
    }

    /// Writes this report as `dir/summary.json`, atomically.
    pub fn write(&self, dir: &Path) -> Result<(), crate::engine::io::IoError> {
        crate::engine::io::write_json(&dir.join(SUMMARY_FILE), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn training() -> RunSummary {
        RunSummary {
            denormals: None,
            test_accuracy: 0.5,
            test_loss: 1.0,
            best_val_accuracy: 0.5,
            best_epoch: 1,
            epochs: 1,
            wall_seconds: 1.0,
            load_seconds: 0.0,
            peak_memory_mib: None,
            train_seconds: 1.0,
            train_samples_per_second: 10.0,
            data_wait_seconds: 0.0,
            skipped_files: Vec::new(),
            parameters: 3,
            seed: 1,
            mentor_version: "0".into(),
            model: "mlp".into(),
            dataset: "digits".into(),
            strategy: "supervised".into(),
        }
    }

    #[test]
    fn reports_round_trip_tagged_and_old_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let report = Report::Training(training());
        report.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(SUMMARY_FILE)).unwrap();
        assert!(text.contains("\"kind\": \"training\""), "{text}");
        assert_eq!(
            Report::read(&dir.path().join(SUMMARY_FILE)).unwrap(),
            report
        );
        let old = dir.path().join("old.json");
        std::fs::write(&old, serde_json::to_string(&training()).unwrap()).unwrap();
        assert_eq!(Report::read(&old).unwrap(), report);
        std::fs::write(&old, "{\"kind\": \"training\"}").unwrap();
        let e = Report::read(&old).unwrap_err().to_string();
        assert!(
            e.contains("old.json") && e.contains("not a mentor run summary"),
            "{e}"
        );
    }
}
