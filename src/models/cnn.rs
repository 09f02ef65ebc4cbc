//! The standard small CNN of the benchmarks: `conv3x3(32) -> ReLU -> maxpool2 ->
//! conv3x3(64) -> ReLU -> maxpool2 -> fc(128) -> ReLU -> dropout`, then a linear head.
//! Convolutions are padded, so a 28x28 input gives 64x7x7 = 3136 features before `fc`.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::kernels::{conv2d_max_pool2d, linear};
use crate::rules::{self, Interval, Violation};

/// CNN hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CnnConfig {
    /// Output channels of the two convolutions.
    pub channels: [usize; 2],
    /// Width of the fully connected layer before the head.
    pub hidden: usize,
    /// Dropout probability after the fully connected layer.
    pub dropout: f64,
}

impl Default for CnnConfig {
    fn default() -> Self {
        Self {
            channels: [32, 64],
            hidden: 128,
            dropout: 0.0,
        }
    }
}

impl CnnConfig {
    /// Checks the hyperparameters.
    pub fn validate(&self) -> Result<(), Violation> {
        rules::every_at_least_one(&self.channels)
            .map_err(|r| Violation::new("model.channels", r))?;
        rules::at_least(self.hidden, 1).map_err(|r| Violation::new("model.hidden", r))?;
        Interval::UNIT_OPEN
            .check(self.dropout)
            .map_err(|r| Violation::new("model.dropout", r))?;
        Ok(())
    }

    /// Builds the CNN for `[C, H, W]` inputs.
    pub fn init(&self, input: [usize; 3], num_classes: usize, device: &Device) -> Cnn {
        let [c, h, w] = input;
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let flat = self.channels[1] * (h / 4) * (w / 4);
        Cnn {
            backbone: CnnBackbone {
                conv1: conv(c, self.channels[0]),
                conv2: conv(self.channels[0], self.channels[1]),
                pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
                fc: LinearConfig::new(flat, self.hidden).init(device),
                dropout: DropoutConfig::new(self.dropout).init(),
            },
            head: LinearConfig::new(self.hidden, num_classes).init(device),
        }
    }
}

/// The CNN's feature extractor (`backbone.conv1`, `backbone.conv2`, `backbone.fc`).
#[derive(Module, Debug)]
pub struct CnnBackbone {
    pub(crate) conv1: Conv2d,
    pub(crate) conv2: Conv2d,
    pub(crate) pool: MaxPool2d,
    pub(crate) fc: Linear,
    pub(crate) dropout: Dropout,
}

/// The standard small CNN classifier.
#[derive(Module, Debug)]
pub struct Cnn {
    /// Convolutions and the fully connected layer.
    pub backbone: CnnBackbone,
    /// Final linear classifier.
    pub head: Linear,
}

impl CnnBackbone {
    /// The `hidden`-wide features.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.feature_maps(images).2
    }

    /// The two pooled convolution maps (`[B, c1, H/2, W/2]`, `[B, c2, H/4, W/4]`) and
    /// the `hidden`-wide features computed from them: AMDIM compares features across
    /// these scales.
    pub fn feature_maps(&self, images: Tensor<4>) -> (Tensor<4>, Tensor<4>, Tensor<2>) {
        // Pool, then ReLU: the same values and gradients as ReLU then pool (max commutes
        // with a non-decreasing function, and both send a window's gradient to its first
        // maximum or nowhere), with a quarter of the ReLU work.
        let first = relu(conv2d_max_pool2d(&self.conv1, &self.pool, images));
        let second = relu(conv2d_max_pool2d(&self.conv2, &self.pool, first.clone()));
        let features = self
            .dropout
            .forward(relu(linear(&self.fc, second.clone().flatten(1, 3))));
        (first, second, features)
    }
}

impl Cnn {
    /// The `hidden`-wide features.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.backbone.forward(images)
    }

    /// Class logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        linear(&self.head, self.features(images))
    }
}
