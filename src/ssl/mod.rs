//! Self-supervised learning: representations learnt from unlabeled images, then probed
//! with labels. Today: the contrastive and metric losses ([`losses`]), the weighted kNN
//! probe ([`knn`]); the augmentations are in [`crate::data::augment`], the linear probe
//! is [`crate::transfer::LinearProbe`]. Pretext tasks, SimCLR and MoCo training are the
//! next steps of the self-supervised issue.

pub mod knn;
pub mod losses;

pub use knn::knn_accuracy;
pub use losses::{info_nce, l2_normalize, nt_xent, triplet};
