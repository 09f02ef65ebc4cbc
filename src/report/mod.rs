//! Run reports: plots of the training curves.

mod plots;

pub use plots::plot_curves;
