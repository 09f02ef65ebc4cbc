//! SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
//! Representations"): two augmented views of every image in the batch go through the
//! encoder `f` and the projection head `g`; NT-Xent pulls each view's `z = g(f(x))`
//! towards the other view of its image and away from the other `2(N - 1)` views. The
//! representation kept for downstream tasks is `h = f(x)`, the backbone's features.
//!
//! Each epoch draws new views: view `v` of example `i` in epoch `e` is seeded by
//! `(seed, e, i, v)`, so a resumed run sees the same views as an uninterrupted one.

use crate::data::Batch;
use crate::engine::StepOutput;
use crate::models::Network;

use super::{PretextLoss, SelfSupervisedConfig, ViewSource, retrieval_logits};
use crate::losses::nt_xent;

/// The SimCLR objective.
pub struct Simclr {
    views: ViewSource,
    temperature: f64,
}

impl Simclr {
    /// SimCLR over the training images of `views` (labels unused).
    pub fn new(config: &SelfSupervisedConfig, views: ViewSource) -> Self {
        Self {
            views,
            temperature: config.temperature,
        }
    }
}

impl PretextLoss for Simclr {
    fn step(
        &mut self,
        network: &Network,
        batch: &Batch,
        indices: &[usize],
        seed: u64,
    ) -> StepOutput {
        let n = indices.len();
        let views = self.views.both(batch, indices, seed);
        // Both views in one forward pass.
        let z = network.forward(views);
        let z1 = z.clone().narrow(0, 0, n);
        let z2 = z.narrow(0, n, n);
        let (logits, targets) = retrieval_logits(z1.clone(), z2.clone());
        StepOutput {
            loss: nt_xent(z1, z2, self.temperature),
            logits,
            targets: Some(targets),
        }
    }
}
