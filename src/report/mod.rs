//! Run reports: plots of the training curves and of a teacher's soft targets.

mod plots;

pub use plots::{plot_curves, plot_soft_targets, plot_sweep};
