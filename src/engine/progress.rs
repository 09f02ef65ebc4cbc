//! Progress reporting that fits its reader: a bar on a terminal, one plain line per epoch
//! when stderr is piped, and JSON lines on stdout with `--log-format jsonl`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

/// How a run reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// A bar on a terminal, plain lines otherwise.
    #[default]
    Human,
    /// One JSON object per line on stdout, nothing on stderr.
    Jsonl,
    /// Nothing.
    Quiet,
}

/// The live reporter of one run.
pub struct Progress {
    format: LogFormat,
    bar: Option<ProgressBar>,
    label: String,
}

impl Progress {
    /// A reporter for a run called `label` (shown before each line).
    pub fn new(format: LogFormat, label: &str) -> Self {
        Self {
            format,
            bar: None,
            label: label.to_string(),
        }
    }

    /// Starts an epoch of `steps` steps.
    pub fn start_epoch(&mut self, epoch: usize, epochs: usize, steps: usize) {
        if self.format == LogFormat::Human && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(steps as u64);
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(format!("{} epoch {epoch}/{epochs}", self.label));
            self.bar = Some(bar);
        }
    }

    /// Reports a finished step with its loss.
    pub fn step(&self, loss: f64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!("loss {loss:.4}"));
        }
    }

    /// Reports a finished epoch with its metrics as `(name, value)` pairs.
    pub fn end_epoch(&mut self, epoch: usize, epochs: usize, values: &[(&str, f64)]) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        match self.format {
            LogFormat::Human => {
                let text: Vec<String> = values.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                eprintln!("{} epoch {epoch}/{epochs}: {}", self.label, text.join("  "));
            }
            LogFormat::Jsonl => {
                let mut obj = serde_json::Map::new();
                obj.insert("event".into(), "epoch".into());
                obj.insert("run".into(), self.label.clone().into());
                obj.insert("epoch".into(), epoch.into());
                for (k, v) in values {
                    obj.insert((*k).into(), (*v).into());
                }
                println!("{}", serde_json::Value::Object(obj));
            }
            LogFormat::Quiet => {}
        }
    }

    /// A free-form message (human format only).
    pub fn note(&self, text: &str) {
        if self.format == LogFormat::Human {
            eprintln!("{} {text}", self.label);
        }
    }
}

impl super::events::Observer for Progress {
    fn name(&self) -> &str {
        "progress"
    }

    fn on_event(
        &mut self,
        event: &super::events::Event<'_>,
    ) -> Result<(), super::events::ObserverError> {
        use super::events::Event;
        match event {
            Event::EpochStart {
                epoch,
                epochs,
                steps,
            } => self.start_epoch(*epoch, *epochs, *steps),
            Event::Step { loss } => self.step(*loss),
            Event::EpochEnd {
                epoch,
                epochs,
                rows,
                ..
            } => {
                let mut values = Vec::new();
                for r in rows.iter() {
                    let (loss, acc) = match r.split.as_str() {
                        "train" => ("train_loss", "train_acc"),
                        "val" => ("val_loss", "val_acc"),
                        _ => ("test_loss", "test_acc"),
                    };
                    values.push((loss, r.loss));
                    values.push((acc, r.accuracy));
                }
                self.end_epoch(*epoch, *epochs, &values);
            }
            Event::Note(text) => self.note(text),
            Event::Finished { .. } => {}
        }
        Ok(())
    }
}
