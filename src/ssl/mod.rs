//! Self-supervised learning: representations learnt from unlabeled images, then probed
//! with labels. Today: the contrastive and metric losses ([`losses`]); the augmentations
//! are in [`crate::data::augment`]. Pretext tasks (rotation, relative position), SimCLR,
//! MoCo and the probes (linear, kNN) are the next steps of the self-supervised issue.

pub mod losses;

pub use losses::{info_nce, l2_normalize, nt_xent, triplet};
