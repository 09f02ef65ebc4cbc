//! Loss functions: small pure functions over tensors, one family per file, shared by the
//! strategies (distillation's soft targets are LwF's too; the head losses serve the linear
//! probe and multitask heads; masking serves continual, multitask and contrastive losses).
//! They import nothing of mentor's but each other.

pub mod contrastive;
pub mod head;
pub mod kd;
pub mod masked;

pub use contrastive::{info_nce, l2_normalize, nt_xent, triplet};
pub use head::{HeadLoss, head_loss};
pub use kd::{
    TeacherTargets, deit_loss, distillation_loss, distillation_loss_with, soft_cross_entropy,
    soft_distillation_loss, soft_targets, teacher_term,
};
pub use masked::{MASKED_LOGIT, mask_outputs};
