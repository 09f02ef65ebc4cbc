//! Per-epoch metrics: loss and top-1 accuracy per split, written as CSV and JSONL.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::io::{IoError, write_atomic};

/// One epoch's numbers on one split (`train`, `val` or `test`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// 1-based epoch.
    pub epoch: usize,
    /// `train`, `val` or `test`.
    pub split: String,
    /// Mean cross-entropy (train: the running mean over the epoch's steps).
    pub loss: f64,
    /// Top-1 accuracy in `[0, 1]`.
    pub accuracy: f64,
    /// Learning rate at the epoch's last step (base group).
    pub lr: f64,
    /// Seconds since the run started (training time, excluding evaluation).
    pub train_seconds: f64,
}

/// Rewrites `metrics.csv` and `metrics.jsonl` in `dir` from the whole history, so a
/// resumed run's files equal an uninterrupted run's.
pub fn write_history(dir: &Path, rows: &[MetricRow]) -> Result<(), IoError> {
    let mut csv = String::from("epoch,split,loss,accuracy,lr,train_seconds\n");
    let mut jsonl = String::new();
    for r in rows {
        csv.push_str(&format!(
            "{},{},{:.6},{:.6},{:.6e},{:.3}\n",
            r.epoch, r.split, r.loss, r.accuracy, r.lr, r.train_seconds
        ));
        jsonl.push_str(&serde_json::to_string(r).unwrap_or_default());
        jsonl.push('\n');
    }
    write_atomic(&dir.join("metrics.csv"), csv.as_bytes())?;
    write_atomic(&dir.join("metrics.jsonl"), jsonl.as_bytes())
}

/// The observer that keeps `metrics.csv` and `metrics.jsonl` of a run directory equal to
/// its history after every epoch.
pub struct MetricsFiles {
    dir: std::path::PathBuf,
}

impl MetricsFiles {
    /// Metrics files in the run directory `dir`.
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.into() }
    }
}

impl super::events::Observer for MetricsFiles {
    fn name(&self) -> &str {
        "metrics files"
    }

    fn on_event(
        &mut self,
        event: &super::events::Event<'_>,
    ) -> Result<(), super::events::ObserverError> {
        // At every epoch's end, and once more at the finish: a run killed between its last
        // checkpoint and this write gets its rows back when resumed (the history is in
        // the checkpoint), even when no epoch is left to run.
        match event {
            super::events::Event::EpochEnd { history, .. }
            | super::events::Event::Finished { history, .. } => write_history(&self.dir, history)?,
            _ => {}
        }
        Ok(())
    }
}

/// Top-1 accuracy and mean loss accumulated over batches (kept in a checkpoint written
/// within an epoch, so the resumed epoch's row counts every batch once).
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Running {
    loss_sum: f64,
    correct: u64,
    predictions: u64,
    count: u64,
}

impl Running {
    /// Adds a batch of `n` examples with mean loss `loss` and `correct` right answers.
    pub fn add(&mut self, loss: f64, correct: u64, n: usize) {
        self.add_predictions(loss, correct, n as u64, n);
    }

    /// Adds a batch of `n` examples with mean loss `loss` whose `predictions` outputs
    /// (more than `n` when an objective makes several per example) had `correct` right.
    pub fn add_predictions(&mut self, loss: f64, correct: u64, predictions: u64, n: usize) {
        self.loss_sum += loss * n as f64;
        self.correct += correct;
        self.predictions += predictions;
        self.count += n as u64;
    }

    /// Mean loss.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }

    /// Examples added.
    pub fn examples(&self) -> u64 {
        self.count
    }

    /// Accuracy: the share of right predictions.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.predictions.max(1) as f64
    }
}
