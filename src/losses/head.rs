//! Losses of a classification head: softmax cross-entropy (logistic regression) or the
//! multi-class hinge loss of a linear SVM (Weston & Watkins 1999, as PyTorch's
//! `MultiMarginLoss`: `sum_{i != y} max(0, margin - x_y + x_i) / C`).

use burn::nn::loss::{CrossEntropyLossConfig, MultiMarginLossConfig, Reduction};
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// The loss of a head trained on frozen features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadLoss {
    /// Softmax cross-entropy (logistic regression).
    #[default]
    CrossEntropy,
    /// Multi-class hinge loss with margin 1 (a linear SVM).
    Hinge,
}

/// The head loss of `logits` against `labels`.
pub fn head_loss(loss: HeadLoss, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    match loss {
        HeadLoss::CrossEntropy => CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, labels),
        HeadLoss::Hinge => {
            MultiMarginLossConfig::new()
                .init()
                .forward(logits, labels, Reduction::Mean)
        }
    }
}
