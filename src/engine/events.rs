//! What a run tells the world while it trains: the engine emits [`Event`]s and every
//! [`Observer`] (progress, metrics files, plots) reacts to them, so the epoch loop knows
//! nothing of terminals, files or charts (burn-train's `LearnerEvent` and
//! `EventProcessorTraining` are the same split).

use super::metrics::MetricRow;
use super::trainer::RunSummary;

/// One thing that happened in a run.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// An epoch of `steps` steps starts (1-based `epoch` of `epochs`).
    EpochStart {
        /// 1-based epoch.
        epoch: usize,
        /// Epochs the run asks for.
        epochs: usize,
        /// Steps in this epoch.
        steps: usize,
    },
    /// A training step finished with this loss.
    Step {
        /// The step's loss.
        loss: f64,
    },
    /// An epoch finished and was evaluated and checkpointed.
    EpochEnd {
        /// 1-based epoch.
        epoch: usize,
        /// Epochs the run asks for.
        epochs: usize,
        /// This epoch's rows (train, val when there is a validation split, test).
        rows: &'a [MetricRow],
        /// Every row of the run so far, this epoch's included.
        history: &'a [MetricRow],
    },
    /// A free-form message worth showing a person.
    Note(&'a str),
    /// The run finished (its weights and summary are saved).
    Finished {
        /// The run's summary.
        summary: &'a RunSummary,
        /// Every metric row of the run.
        history: &'a [MetricRow],
    },
}

/// Why an observer failed, in words (the engine names the observer).
pub type ObserverError = Box<dyn std::error::Error + Send + Sync>;

/// Something that reacts to a run's events. An observer that fails during training stops
/// the run (its files would go stale); one that fails on [`Event::Finished`] is reported
/// and the run still succeeds, its weights and summary being saved already.
pub trait Observer {
    /// A short name for messages (`metrics files`, `plots`).
    fn name(&self) -> &str;
    /// Reacts to `event`.
    fn on_event(&mut self, event: &Event<'_>) -> Result<(), ObserverError>;
}
