//! Run reports: plots of the training curves, a teacher's soft targets, sweeps and a
//! continual run's accuracy matrix.

mod plots;

pub use plots::{
    plot_accuracy_matrix, plot_curves, plot_soft_targets, plot_sweep, plot_task_weights,
};
