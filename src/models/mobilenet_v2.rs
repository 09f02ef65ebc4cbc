//! torchvision's MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and
//! Linear Bottlenecks"): a 3x3/2 stem, 17 inverted residual blocks (1x1 expansion,
//! 3x3 depthwise, 1x1 linear projection; ReLU6 after the first two; a residual where
//! stride and width allow), a 1x1 convolution to 1280 channels, global average pooling,
//! dropout 0.2 and the classifier. PyTorch's padding (`k / 2` on every side) and batch
//! norm (epsilon 1e-5, momentum 0.1).
//!
//! mentor's names (`backbone.stem.conv`, `backbone.blocks.<i>.{expand, depthwise,
//! project}.{conv, bn}`, `backbone.last.conv`, `head`) map to torchvision's
//! (`features.0.0`, `features.<i+1>.conv.<j>`, `features.18.0`, `classifier.1`) through
//! [`native_name`], so its state dicts load with no key map.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::conv_bn::{ConvBn, torch_index};
use crate::kernels::Activation;
use crate::rules::{self, Interval, Violation};

/// The stages: `(expand ratio t, output channels c, repeats n, first stride s)`, as
/// torchvision's `inverted_residual_setting`.
const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// MobileNetV2 hyperparameters (`model.type = "mobilenet-v2"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MobileNetV2Config {
    /// torchvision's `width_mult`: every block's channels scaled and rounded to a
    /// multiple of 8 (the last convolution keeps 1280 below 1.0).
    pub width: f64,
    /// Dropout before the classifier while training (0.2).
    pub dropout: f64,
    /// Channels of the last 1x1 convolution instead of torchvision's 1280 (a reduced
    /// network for fixtures; absent: torchvision's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_channels: Option<usize>,
}

impl Default for MobileNetV2Config {
    fn default() -> Self {
        Self {
            width: 1.0,
            dropout: 0.2,
            last_channels: None,
        }
    }
}

/// torchvision's `_make_divisible(v, 8)`: `v` rounded to a multiple of 8, at least 8,
/// never down by more than 10% (the channel rounding of every MobileNet and
/// EfficientNet width multiplier).
pub(crate) fn make_divisible(v: f64) -> usize {
    let rounded = (((v + 4.0) as usize) / 8 * 8).max(8);
    if (rounded as f64) < 0.9 * v {
        rounded + 8
    } else {
        rounded
    }
}

/// One inverted residual block's shapes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BlockShape {
    input: usize,
    hidden: usize,
    output: usize,
    stride: usize,
}

impl MobileNetV2Config {
    /// Blocks in each of the seven stages (`backbone.blocks.<i>` in order).
    pub fn stage_blocks(&self) -> Vec<usize> {
        STAGES.iter().map(|s| s.2).collect()
    }

    /// Checks the hyperparameters.
    pub fn validate(&self) -> Result<(), Violation> {
        Interval::open_closed(0.0, 8.0)
            .check(self.width)
            .map_err(|r| Violation::new("model.width", r))?;
        Interval::UNIT_OPEN
            .check(self.dropout)
            .map_err(|r| Violation::new("model.dropout", r))?;
        if let Some(n) = self.last_channels {
            rules::at_least(n, 1).map_err(|r| Violation::new("model.last_channels", r))?;
        }
        Ok(())
    }

    fn stem(&self) -> usize {
        make_divisible(32.0 * self.width)
    }

    /// Channels of the features (the last convolution's).
    pub fn feature_width(&self) -> usize {
        self.last_channels
            .unwrap_or_else(|| make_divisible(1280.0 * self.width.max(1.0)))
    }

    fn blocks(&self) -> Vec<BlockShape> {
        let mut input = self.stem();
        let mut out = Vec::new();
        for &(t, c, n, s) in &STAGES {
            let output = make_divisible(c as f64 * self.width);
            for i in 0..n {
                out.push(BlockShape {
                    input,
                    hidden: input * t,
                    output,
                    stride: if i == 0 { s } else { 1 },
                });
                input = output;
            }
        }
        out
    }

    /// Trainable parameters for `channels`-channel images and `num_classes` classes, as
    /// torchvision counts them (batch-norm scales and shifts included).
    pub fn parameter_count(&self, channels: usize, num_classes: usize) -> u128 {
        let conv = |i: usize, o: usize, k: usize| (i * o * k * k) as u128;
        let bn = |c: usize| 2 * c as u128;
        let stem = self.stem();
        let mut n = conv(channels, stem, 3) + bn(stem);
        let blocks = self.blocks();
        for b in &blocks {
            if b.hidden != b.input {
                n += conv(b.input, b.hidden, 1) + bn(b.hidden);
            }
            n += (b.hidden * 9) as u128 + bn(b.hidden);
            n += conv(b.hidden, b.output, 1) + bn(b.output);
        }
        let last_in = blocks.last().map_or(stem, |b| b.output);
        let f = self.feature_width();
        n + conv(last_in, f, 1) + bn(f) + (f * num_classes + num_classes) as u128
    }

    /// Multiply-adds of one forward pass on a `[C, H, W]` image, as 2 FLOPs each.
    pub fn forward_flops(&self, input: [usize; 3], num_classes: usize) -> u64 {
        let [c, h, w] = input;
        let half = |x: usize| x.div_ceil(2);
        let (mut h, mut w) = (half(h), half(w));
        let conv = |ci: usize, co: usize, k: usize, h: usize, w: usize| {
            2 * (ci * co * k * k * h * w) as u64
        };
        let mut flops = conv(c, self.stem(), 3, h, w);
        let blocks = self.blocks();
        for b in &blocks {
            if b.hidden != b.input {
                flops += conv(b.input, b.hidden, 1, h, w);
            }
            if b.stride == 2 {
                (h, w) = (half(h), half(w));
            }
            flops += conv(1, b.hidden, 3, h, w) + conv(b.hidden, b.output, 1, h, w);
        }
        let last_in = blocks.last().map_or(self.stem(), |b| b.output);
        flops
            + conv(last_in, self.feature_width(), 1, h, w)
            + 2 * (self.feature_width() * num_classes) as u64
    }

    /// Builds the network for `[C, H, W]` images.
    pub fn init(&self, input: [usize; 3], num_classes: usize, device: &Device) -> MobileNetV2 {
        let blocks = self.blocks();
        let last_in = blocks.last().map_or(self.stem(), |b| b.output);
        MobileNetV2 {
            backbone: MobileNetV2Backbone {
                stem: ConvBn::new(input[0], self.stem(), 3, 2, 1, device),
                blocks: blocks
                    .into_iter()
                    .map(|b| InvertedResidual::new(b, device))
                    .collect(),
                last: ConvBn::new(last_in, self.feature_width(), 1, 1, 1, device),
            },
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(self.feature_width(), num_classes).init(device),
        }
    }
}

/// Inverted residual block: 1x1 expansion (absent at ratio 1), 3x3 depthwise, 1x1
/// linear projection.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

impl InvertedResidual {
    fn new(b: BlockShape, device: &Device) -> Self {
        Self {
            expand: (b.hidden != b.input).then(|| ConvBn::new(b.input, b.hidden, 1, 1, 1, device)),
            depthwise: ConvBn::new(b.hidden, b.hidden, 3, b.stride, b.hidden, device),
            project: ConvBn::new(b.hidden, b.output, 1, 1, 1, device),
            residual: b.stride == 1 && b.input == b.output,
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let Some(expand) = &self.expand {
            x = expand.forward_then(x, Activation::Relu6);
        }
        x = self.depthwise.forward_then(x, Activation::Relu6);
        x = self.project.forward(x);
        if self.residual { x + input } else { x }
    }
}

/// The feature extractor: stem, blocks, last convolution, global average pooling.
#[derive(Module, Debug)]
pub struct MobileNetV2Backbone {
    stem: ConvBn,
    blocks: Vec<InvertedResidual>,
    last: ConvBn,
}

impl MobileNetV2Backbone {
    /// Globally average-pooled features `[B, C]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem.forward_then(images, Activation::Relu6);
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = self.last.forward_then(x, Activation::Relu6);
        super::global_average_pool(x)
    }
}

/// A torchvision MobileNetV2 classifier.
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// Stem, blocks and last convolution.
    pub backbone: MobileNetV2Backbone,
    dropout: Dropout,
    /// The classifier (torchvision's `classifier.1`).
    pub head: Linear,
}

impl MobileNetV2 {
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

/// torchvision's name of mentor's parameter `name` (PyTorch's batch-norm names already
/// applied): `backbone.stem.conv.weight` is `features.0.0.weight`,
/// `backbone.blocks.3.depthwise.bn.bias` is `features.4.conv.1.1.bias` (the first block,
/// without expansion, numbers its layers from 0), `backbone.last.conv.weight` is
/// `features.18.0.weight`, `head.weight` is `classifier.1.weight`.
pub fn native_name(name: &str) -> String {
    let layer = torch_index;
    let blocks: usize = STAGES.iter().map(|s| s.2).sum();
    if let Some(rest) = name.strip_prefix("head.") {
        return format!("classifier.1.{rest}");
    }
    let Some(rest) = name.strip_prefix("backbone.") else {
        return name.to_string();
    };
    let parts: Vec<&str> = rest.split('.').collect();
    match parts.as_slice() {
        ["stem", which, tensor] => format!("features.0.{}.{tensor}", layer(which)),
        ["last", which, tensor] => format!("features.{}.{}.{tensor}", blocks + 1, layer(which)),
        ["blocks", i, unit, which, tensor] => {
            let Ok(i) = i.parse::<usize>() else {
                return name.to_string();
            };
            // torchvision's block 0 (expand ratio 1) has no expansion layer.
            let d = usize::from(i != 0);
            let at = match (*unit, *which) {
                ("expand", w) => format!("0.{}", layer(w)),
                ("depthwise", w) => format!("{d}.{}", layer(w)),
                ("project", "conv") => format!("{}", d + 1),
                ("project", _) => format!("{}", d + 2),
                _ => return name.to_string(),
            };
            format!("features.{}.conv.{at}.{tensor}", i + 1)
        }
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameter_count_is_torchvisions() {
        // torchvision.models.mobilenet_v2(): sum(p.numel() for p in m.parameters()).
        assert_eq!(
            MobileNetV2Config::default().parameter_count(3, 1000),
            3_504_872
        );
    }

    #[test]
    fn names_map_to_torchvisions() {
        for (ours, theirs) in [
            ("backbone.stem.conv.weight", "features.0.0.weight"),
            ("backbone.stem.bn.running_var", "features.0.1.running_var"),
            (
                "backbone.blocks.0.depthwise.conv.weight",
                "features.1.conv.0.0.weight",
            ),
            (
                "backbone.blocks.0.project.conv.weight",
                "features.1.conv.1.weight",
            ),
            (
                "backbone.blocks.0.project.bn.bias",
                "features.1.conv.2.bias",
            ),
            (
                "backbone.blocks.1.expand.conv.weight",
                "features.2.conv.0.0.weight",
            ),
            (
                "backbone.blocks.1.depthwise.bn.weight",
                "features.2.conv.1.1.weight",
            ),
            (
                "backbone.blocks.16.project.bn.running_mean",
                "features.17.conv.3.running_mean",
            ),
            ("backbone.last.conv.weight", "features.18.0.weight"),
            ("head.weight", "classifier.1.weight"),
        ] {
            assert_eq!(native_name(ours), theirs);
        }
    }
}
