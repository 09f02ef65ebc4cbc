//! A small ResNet (He et al. 2016, "Deep Residual Learning for Image Recognition") for
//! 28x28 and 32x32 inputs: a 3x3 stem, three stages of basic blocks at widths `w`, `2w`,
//! `4w` (the second and third halve the resolution), global average pooling, linear head.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::kernels::{Activation, batch_norm, conv2d};
use crate::rules::{self, Violation};

/// ResNet hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNetConfig {
    /// Channels of the first stage (then doubled twice).
    pub width: usize,
    /// Basic blocks in each of the three stages.
    pub blocks: [usize; 3],
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self {
            width: 16,
            blocks: [1, 1, 1],
        }
    }
}

fn conv3x3(i: usize, o: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([i, o], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

impl ResNetConfig {
    /// Checks the hyperparameters.
    pub fn validate(&self) -> Result<(), Violation> {
        rules::at_least(self.width, 1).map_err(|r| Violation::new("model.width", r))?;
        rules::every_at_least_one(&self.blocks).map_err(|r| Violation::new("model.blocks", r))?;
        Ok(())
    }

    /// Builds the ResNet for `[C, H, W]` inputs.
    pub fn init(&self, input: [usize; 3], num_classes: usize, device: &Device) -> ResNet {
        let w = self.width;
        let mut blocks = Vec::new();
        let mut channels = w;
        for (stage, &n) in self.blocks.iter().enumerate() {
            let out = w << stage;
            for k in 0..n {
                let stride = if stage > 0 && k == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(channels, out, stride, device));
                channels = out;
            }
        }
        ResNet {
            backbone: ResNetBackbone {
                stem: conv3x3(input[0], w, 1, device),
                stem_bn: BatchNormConfig::new(w).init(device),
                blocks,
            },
            head: LinearConfig::new(channels, num_classes).init(device),
        }
    }
}

/// Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    shortcut: Option<Shortcut>,
}

/// The 1x1 projection used when a block changes width or resolution.
#[derive(Module, Debug)]
pub struct Shortcut {
    conv: Conv2d,
    bn: BatchNorm,
}

impl BasicBlock {
    fn new(i: usize, o: usize, stride: usize, device: &Device) -> Self {
        let shortcut = (stride != 1 || i != o).then(|| Shortcut {
            conv: Conv2dConfig::new([i, o], [1, 1])
                .with_stride([stride, stride])
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(o).init(device),
        });
        Self {
            conv1: conv3x3(i, o, stride, device),
            bn1: BatchNormConfig::new(o).init(device),
            conv2: conv3x3(o, o, 1, device),
            bn2: BatchNormConfig::new(o).init(device),
            shortcut,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = batch_norm(&self.bn1, conv2d(&self.conv1, x.clone()), Activation::Relu);
        let y = batch_norm(&self.bn2, conv2d(&self.conv2, y), Activation::Identity);
        let s = match &self.shortcut {
            Some(sc) => batch_norm(&sc.bn, conv2d(&sc.conv, x), Activation::Identity),
            None => x,
        };
        relu(y + s)
    }
}

/// The ResNet's feature extractor (`backbone.stem`, `backbone.blocks.<i>`).
#[derive(Module, Debug)]
pub struct ResNetBackbone {
    stem: Conv2d,
    stem_bn: BatchNorm,
    blocks: Vec<BasicBlock>,
}

/// A small ResNet classifier.
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem and residual stages.
    pub backbone: ResNetBackbone,
    /// Final linear classifier.
    pub head: Linear,
}

impl ResNetBackbone {
    /// Globally average-pooled features (`4 * width` of them).
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = batch_norm(&self.stem_bn, conv2d(&self.stem, images), Activation::Relu);
        for block in &self.blocks {
            x = block.forward(x);
        }
        super::global_average_pool(x)
    }
}

impl ResNet {
    /// Globally average-pooled features (`4 * width` of them).
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.backbone.forward(images)
    }

    /// Class logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.features(images))
    }
}
