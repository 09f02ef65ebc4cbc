//! EfficientNet-Lite (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for
//! Convolutional Neural Networks"; the Lite variants from TensorFlow's
//! `efficientnet/lite` builder): EfficientNet without squeeze-and-excitation, with ReLU6
//! instead of swish and with the stem and head left unscaled, so that it quantises well
//! on edge devices.
//!
//! Layout, as the PyTorch port in the `efficientnet_lite_pytorch` package builds it (whose
//! weights, e.g. `efficientnet-lite0-57934424.pth`, load without a key map): a 3x3/2 stem
//! convolution with batch norm and ReLU6; 16 MBConv blocks in 7 stages (1x1 expansion,
//! depthwise kxk, 1x1 projection, each with batch norm, ReLU6 after the first two, and an
//! identity shortcut where stride and width allow); a 1x1 head convolution to 1280
//! channels with batch norm and ReLU6; global average pooling; dropout; a linear
//! classifier. Every convolution pads as TensorFlow's "same" does: output size
//! `ceil(input / stride)`, the odd pixel of padding at the bottom and right. Batch norm
//! uses epsilon 1e-3 and momentum 0.01 (TensorFlow's decay 0.99).
//!
//! Names: `backbone.conv_stem`, `backbone.bn0`, `backbone.blocks.<i>.{expand_conv, bn0,
//! depthwise_conv, bn1, project_conv, bn2}`, `backbone.conv_head`, `backbone.bn1`,
//! `head`. The package's names are these with a leading underscore on every module
//! (`_blocks.1._depthwise_conv.weight`) and `_fc` for the head: see [`native_name`].

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::kernels::{Activation, batch_norm, conv2d};
use crate::rules::{Interval, Violation};

/// One stage of MBConv blocks: `(repeats, kernel, stride, expand ratio, input channels,
/// output channels)` at width 1, as TensorFlow's `efficientnet_lite_builder` lists them
/// (`r1_k3_s11_e1_i32_o16`, ...).
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// Channels of the stem and of the head convolution at width 1.
const STEM: usize = 32;
const HEAD: usize = 1280;

/// EfficientNet-Lite0 hyperparameters (`model.type = "efficientnet-lite0"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EfficientNetLiteConfig {
    /// Width multiplier of the blocks' channels (rounded to multiples of 8 as the
    /// reference does); 1.0 is Lite0.
    pub width: f64,
    /// Scale the stem and head with `width` too (the Lite models keep them at 32 and
    /// 1280: `false`); a reduced network for tests scales them.
    pub scale_stem_head: bool,
    /// Dropout before the classifier while training (Lite0: 0.2).
    pub dropout: f64,
    /// Weight of each batch's statistics in the batch norms' running statistics
    /// (PyTorch's convention; the reference's 0.01 is TF's decay 0.99). Training from
    /// scratch on a small set needs more, e.g. 0.1: at 0.01 the running statistics
    /// average over the last ~100 steps and lag weights that change fast (README).
    pub bn_momentum: f64,
}

impl Default for EfficientNetLiteConfig {
    fn default() -> Self {
        Self {
            width: 1.0,
            scale_stem_head: false,
            dropout: 0.2,
            bn_momentum: 0.01,
        }
    }
}

/// The shapes of one MBConv block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockShape {
    /// Input channels.
    pub input: usize,
    /// Channels after the 1x1 expansion (`input` when the expand ratio is 1).
    pub expanded: usize,
    /// Output channels.
    pub output: usize,
    /// Depthwise kernel side.
    pub kernel: usize,
    /// Depthwise stride.
    pub stride: usize,
    /// Whether it is the first block of its stage.
    pub first_of_stage: bool,
}

impl BlockShape {
    /// Whether the block adds its input to its output: stride 1, the same width, and not
    /// the first block of a stage. The last rule is the PyTorch port's (whose weights
    /// mentor reads): it keeps a first block's stride as a list, so its `stride == 1`
    /// test fails and such a block never skips, where TensorFlow's builder would. At
    /// Lite0's widths every first block changes width, so the two agree; at reduced
    /// widths (8-channel stages) they differ, and mentor follows the port (tested
    /// against it in `tests/pretrained.rs`).
    pub fn residual(&self) -> bool {
        !self.first_of_stage && self.stride == 1 && self.input == self.output
    }
}

impl EfficientNetLiteConfig {
    /// Blocks in each of the seven stages (`backbone.blocks.<i>` in order).
    pub fn stage_blocks(&self) -> Vec<usize> {
        STAGES.iter().map(|s| s.0).collect()
    }

    /// Checks the hyperparameters.
    pub fn validate(&self) -> Result<(), Violation> {
        Interval::open_closed(0.0, 8.0)
            .check(self.width)
            .map_err(|r| Violation::new("model.width", r))?;
        Interval::open_closed(0.0, 1.0)
            .check(self.bn_momentum)
            .map_err(|r| Violation::new("model.bn_momentum", r))?;
        Interval::UNIT_OPEN
            .check(self.dropout)
            .map_err(|r| Violation::new("model.dropout", r))?;
        Ok(())
    }

    /// `filters` scaled by the width multiplier and rounded to a multiple of 8, never
    /// down by more than 10% (`round_filters` of the reference).
    fn round_filters(&self, filters: usize) -> usize {
        let scaled = filters as f64 * self.width;
        let rounded = ((scaled + 4.0) as usize / 8 * 8).max(8);
        if (rounded as f64) < 0.9 * scaled {
            rounded + 8
        } else {
            rounded
        }
    }

    fn stem_head(&self, filters: usize) -> usize {
        if self.scale_stem_head {
            self.round_filters(filters)
        } else {
            filters
        }
    }

    /// Channels of the stem convolution.
    pub fn stem_channels(&self) -> usize {
        self.stem_head(STEM)
    }

    /// Channels of the head convolution: the width of the features.
    pub fn head_channels(&self) -> usize {
        self.stem_head(HEAD)
    }

    /// The 16 blocks' shapes, in order.
    pub fn blocks(&self) -> Vec<BlockShape> {
        let mut out = Vec::new();
        for (stage, &(repeats, kernel, stride, expand, input, output)) in STAGES.iter().enumerate()
        {
            // The first stage reads the stem, which the Lite models leave unscaled.
            let mut input = if stage == 0 {
                self.stem_channels()
            } else {
                self.round_filters(input)
            };
            let output = self.round_filters(output);
            for r in 0..repeats {
                out.push(BlockShape {
                    input,
                    expanded: input * expand,
                    output,
                    kernel,
                    stride: if r == 0 { stride } else { 1 },
                    first_of_stage: r == 0,
                });
                input = output;
            }
        }
        out
    }

    /// Trainable parameters for `channels`-channel images and `num_classes` classes
    /// (batch-norm scales and shifts included, running statistics not).
    pub fn parameter_count(&self, channels: usize, num_classes: usize) -> u128 {
        let bn = |c: usize| 2 * c as u128;
        let conv = |i: usize, o: usize, k: usize| (i * o * k * k) as u128;
        let stem = self.stem_channels();
        let mut n = conv(channels, stem, 3) + bn(stem);
        for b in self.blocks() {
            if b.expanded != b.input {
                n += conv(b.input, b.expanded, 1) + bn(b.expanded);
            }
            n += (b.expanded * b.kernel * b.kernel) as u128 + bn(b.expanded);
            n += conv(b.expanded, b.output, 1) + bn(b.output);
        }
        let last = self.blocks().last().map_or(stem, |b| b.output);
        let head = self.head_channels();
        n + conv(last, head, 1) + bn(head) + (head * num_classes + num_classes) as u128
    }

    /// Multiply-adds of one forward pass on a `[C, H, W]` image, as 2 FLOPs each
    /// (convolutions and the classifier).
    pub fn forward_flops(&self, input: [usize; 3], num_classes: usize) -> u64 {
        let [c, mut h, mut w] = input;
        let mut flops = 0u64;
        let mut conv = |ci: usize, co: usize, k: usize, h: usize, w: usize| {
            flops += 2 * (ci * co * k * k * h * w) as u64;
        };
        (h, w) = (h.div_ceil(2), w.div_ceil(2));
        conv(c, self.stem_channels(), 3, h, w);
        let blocks = self.blocks();
        for b in &blocks {
            if b.expanded != b.input {
                conv(b.input, b.expanded, 1, h, w);
            }
            (h, w) = (h.div_ceil(b.stride), w.div_ceil(b.stride));
            // Depthwise: one input channel per output channel.
            conv(1, b.expanded, b.kernel, h, w);
            conv(b.expanded, b.output, 1, h, w);
        }
        let last = blocks.last().map_or(self.stem_channels(), |b| b.output);
        conv(last, self.head_channels(), 1, h, w);
        flops + 2 * (self.head_channels() * num_classes) as u64
    }

    /// Builds the network for `[C, H, W]` images.
    pub fn init(&self, input: [usize; 3], num_classes: usize, device: &Device) -> EfficientNetLite {
        let stem = self.stem_channels();
        let head = self.head_channels();
        let blocks: Vec<MbConv> = self
            .blocks()
            .into_iter()
            .map(|shape| MbConv::new(shape, self.bn_momentum, device))
            .collect();
        let last = self.blocks().last().map_or(stem, |b| b.output);
        EfficientNetLite {
            backbone: EfficientNetLiteBackbone {
                conv_stem: conv(input[0], stem, 3, 2, 1, device),
                bn0: new_batch_norm(stem, self.bn_momentum, device),
                blocks,
                conv_head: conv(last, head, 1, 1, 1, device),
                bn1: new_batch_norm(head, self.bn_momentum, device),
            },
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(head, num_classes).init(device),
        }
    }
}

/// A bias-free convolution with TensorFlow's "same" padding.
fn conv(
    i: usize,
    o: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([i, o], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Same)
        .with_groups(groups)
        .with_bias(false)
        .init(device)
}

fn new_batch_norm(channels: usize, momentum: f64, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(1e-3)
        .with_momentum(momentum)
        .init(device)
}

/// ReLU6, `min(max(x, 0), 6)` (Howard et al. 2017, "MobileNets").
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    crate::kernels::relu6(x)
}

/// Mobile inverted bottleneck (Sandler et al. 2018, "MobileNetV2"): 1x1 expansion,
/// depthwise convolution, 1x1 linear projection.
#[derive(Module, Debug)]
pub struct MbConv {
    /// The 1x1 expansion, absent when the expand ratio is 1.
    expand_conv: Option<Conv2d>,
    bn0: Option<BatchNorm>,
    depthwise_conv: Conv2d,
    bn1: BatchNorm,
    project_conv: Conv2d,
    bn2: BatchNorm,
    residual: bool,
}

impl MbConv {
    fn new(shape: BlockShape, bn_momentum: f64, device: &Device) -> Self {
        let expand = shape.expanded != shape.input;
        let e = shape.expanded;
        Self {
            expand_conv: expand.then(|| conv(shape.input, e, 1, 1, 1, device)),
            bn0: expand.then(|| new_batch_norm(e, bn_momentum, device)),
            depthwise_conv: conv(e, e, shape.kernel, shape.stride, e, device),
            bn1: new_batch_norm(e, bn_momentum, device),
            project_conv: conv(e, shape.output, 1, 1, 1, device),
            bn2: new_batch_norm(shape.output, bn_momentum, device),
            residual: shape.residual(),
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let (Some(c), Some(bn)) = (&self.expand_conv, &self.bn0) {
            x = batch_norm(bn, conv2d(c, x), Activation::Relu6);
        }
        x = batch_norm(
            &self.bn1,
            conv2d(&self.depthwise_conv, x),
            Activation::Relu6,
        );
        x = batch_norm(
            &self.bn2,
            conv2d(&self.project_conv, x),
            Activation::Identity,
        );
        if self.residual { x + input } else { x }
    }
}

/// The feature extractor: stem, blocks, head convolution, global average pooling.
#[derive(Module, Debug)]
pub struct EfficientNetLiteBackbone {
    conv_stem: Conv2d,
    bn0: BatchNorm,
    blocks: Vec<MbConv>,
    conv_head: Conv2d,
    bn1: BatchNorm,
}

impl EfficientNetLiteBackbone {
    /// Globally average-pooled features `[B, head channels]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = batch_norm(
            &self.bn0,
            conv2d(&self.conv_stem, images),
            Activation::Relu6,
        );
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = batch_norm(&self.bn1, conv2d(&self.conv_head, x), Activation::Relu6);
        super::global_average_pool(x)
    }
}

/// An EfficientNet-Lite classifier.
#[derive(Module, Debug)]
pub struct EfficientNetLite {
    /// Stem, blocks and head convolution.
    pub backbone: EfficientNetLiteBackbone,
    dropout: Dropout,
    /// Final linear classifier.
    pub head: Linear,
}

impl EfficientNetLite {
    /// Globally average-pooled features.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.backbone.forward(images)
    }

    /// The classifier on features (dropout first, while training).
    pub fn head_forward(&self, features: Tensor<2>) -> Tensor<2> {
        self.head.forward(self.dropout.forward(features))
    }

    /// Class logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head_forward(self.features(images))
    }
}

/// The name the `efficientnet_lite_pytorch` package gives mentor's parameter `name`
/// (PyTorch's batch-norm names already applied): every module gets a leading underscore
/// and the head is `_fc` (`backbone.blocks.1.depthwise_conv.weight` is
/// `_blocks.1._depthwise_conv.weight`).
pub fn native_name(name: &str) -> String {
    let path = name
        .strip_prefix("backbone.")
        .map(str::to_string)
        .or_else(|| name.strip_prefix("head.").map(|rest| format!("fc.{rest}")))
        .unwrap_or_else(|| name.to_string());
    let parts: Vec<&str> = path.split('.').collect();
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            if i == last || part.chars().all(|c| c.is_ascii_digit()) {
                part.to_string()
            } else {
                format!("_{part}")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ModelConfig, param_infos, trainable_count};

    #[test]
    fn lite0_has_the_reference_shapes_and_parameter_count() {
        let config = EfficientNetLiteConfig::default();
        let blocks = config.blocks();
        assert_eq!(blocks.len(), 16);
        assert_eq!(blocks[0].expanded, 32);
        assert_eq!(blocks.last().map(|b| b.output), Some(320));
        assert_eq!(blocks.iter().filter(|b| b.residual()).count(), 9);
        // torchvision-style count of the package's Lite0 (its `.pth` holds 4,652,008
        // trainable scalars: 3,400,680 + 1280 * 1000 + 1000 for the classifier).
        assert_eq!(config.parameter_count(3, 1000), 4_652_008);
    }

    #[test]
    fn the_batch_norm_momentum_is_configurable_and_checked() {
        let config = EfficientNetLiteConfig {
            width: 0.1,
            bn_momentum: 0.1,
            ..EfficientNetLiteConfig::default()
        };
        let net = config.init([3, 16, 16], 2, &Device::flex());
        assert_eq!(net.backbone.bn0.momentum, 0.1);
        assert_eq!(net.backbone.blocks[3].bn1.momentum, 0.1);
        assert_eq!(EfficientNetLiteConfig::default().bn_momentum, 0.01);
        let zero = EfficientNetLiteConfig {
            bn_momentum: 0.0,
            ..config
        };
        assert_eq!(zero.validate().unwrap_err().key, "model.bn_momentum");
    }

    #[test]
    fn a_reduced_network_builds_runs_and_counts_its_parameters() {
        let config = EfficientNetLiteConfig {
            width: 0.25,
            scale_stem_head: true,
            dropout: 0.0,
            bn_momentum: 0.01,
        };
        let device = Device::flex();
        let net = crate::models::Network::EfficientNetLite(config.init([3, 33, 30], 5, &device));
        assert_eq!(trainable_count(&net) as u128, config.parameter_count(3, 5));
        let x = Tensor::<4>::ones([2, 3, 33, 30], &device);
        assert_eq!(net.forward(x).dims(), [2, 5]);
        let model = ModelConfig::EfficientNetLite0(config);
        assert_eq!(model.feature_width([3, 33, 30]), 320);
    }

    #[test]
    fn names_map_to_the_packages_names() {
        assert_eq!(
            native_name("backbone.conv_stem.weight"),
            "_conv_stem.weight"
        );
        assert_eq!(
            native_name("backbone.blocks.1.depthwise_conv.weight"),
            "_blocks.1._depthwise_conv.weight"
        );
        assert_eq!(native_name("backbone.bn1.running_var"), "_bn1.running_var");
        assert_eq!(native_name("head.weight"), "_fc.weight");
        let device = Device::flex();
        let net = ModelConfig::EfficientNetLite0(EfficientNetLiteConfig {
            width: 0.25,
            scale_stem_head: true,
            dropout: 0.2,
            bn_momentum: 0.01,
        })
        .init([3, 16, 16], 3, &device);
        let names: Vec<String> = param_infos(&net).into_iter().map(|p| p.name).collect();
        assert_eq!(names[0], "backbone.conv_stem.weight");
        assert!(names.contains(&"backbone.blocks.0.depthwise_conv.weight".to_string()));
        assert!(!names.iter().any(|n| n.contains("blocks.0.expand_conv")));
        assert!(names.contains(&"backbone.blocks.1.expand_conv.weight".to_string()));
    }
}
