//! Run reports: plots of the training curves, a teacher's soft targets, sweeps and a
//! continual run's accuracy matrix.

mod plots;

pub use plots::{
    plot_accuracy_matrix, plot_curves, plot_soft_targets, plot_sweep, plot_task_weights,
};

/// The observer that draws a run's training curves (`plots/curves.{png,svg}`) when it
/// finishes.
pub struct CurvePlots {
    dir: std::path::PathBuf,
}

impl CurvePlots {
    /// Curves into the folder `dir` (a run directory's `plots/`).
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl crate::engine::Observer for CurvePlots {
    fn name(&self) -> &str {
        "plots"
    }

    fn on_event(
        &mut self,
        event: &crate::engine::Event<'_>,
    ) -> Result<(), crate::engine::events::ObserverError> {
        if let crate::engine::Event::Finished { history, .. } = event {
            plot_curves(history, &self.dir).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
