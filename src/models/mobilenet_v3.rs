//! torchvision's MobileNetV3-Small (Howard et al. 2019, "Searching for MobileNetV3"): a
//! 3x3/2 stem with hard swish, 11 inverted residual blocks (1x1 expansion, kxk
//! depthwise, squeeze-and-excitation with a hard sigmoid where the search chose it, 1x1
//! projection; ReLU in the first three blocks, hard swish after), a 1x1 convolution to 6x
//! the last width with hard swish, global average pooling, a 1024-wide linear layer with
//! hard swish, dropout 0.2 and the classifier. Batch norm: epsilon 1e-3, momentum 0.01.
//!
//! mentor's names (`backbone.stem`, `backbone.blocks.<i>.{expand, depthwise, se,
//! project}`, `backbone.last`, `backbone.pre_logits`, `head`) map to torchvision's
//! (`features.0`, `features.<i+1>.block.<j>`, `features.12`, `classifier.0`,
//! `classifier.3`). The backbone ends after the 1024-wide layer, so a new head replaces
//! only `classifier.3`, as torchvision users do.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::conv_bn::{ConvBn, torch_index};
use super::mobilenet_v2::make_divisible;
use super::squeeze_excitation::SqueezeExcitation;
use crate::kernels::{Activation, hard_swish};
use crate::rules::{Interval, Violation};

/// The blocks: `(input, kernel, expanded, output, squeeze-excitation, hard swish,
/// stride)` at width 1, as torchvision's `_mobilenet_v3_conf("mobilenet_v3_small")`.
const BLOCKS: [(usize, usize, usize, usize, bool, bool, usize); 11] = [
    (16, 3, 16, 16, true, false, 2),
    (16, 3, 72, 24, false, false, 2),
    (24, 3, 88, 24, false, false, 1),
    (24, 5, 96, 40, true, true, 2),
    (40, 5, 240, 40, true, true, 1),
    (40, 5, 240, 40, true, true, 1),
    (40, 5, 120, 48, true, true, 1),
    (48, 5, 144, 48, true, true, 1),
    (48, 5, 288, 96, true, true, 2),
    (96, 5, 576, 96, true, true, 1),
    (96, 5, 576, 96, true, true, 1),
];

/// MobileNetV3's batch norm: epsilon 1e-3, momentum 0.01.
const NORM: (f64, f64) = (1e-3, 0.01);

/// MobileNetV3-Small hyperparameters (`model.type = "mobilenet-v3-small"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MobileNetV3SmallConfig {
    /// torchvision's `width_mult`: channels scaled and rounded to multiples of 8.
    pub width: f64,
    /// Dropout before the classifier while training (0.2).
    pub dropout: f64,
}

impl Default for MobileNetV3SmallConfig {
    fn default() -> Self {
        Self {
            width: 1.0,
            dropout: 0.2,
        }
    }
}

/// One block's shapes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BlockShape {
    input: usize,
    kernel: usize,
    expanded: usize,
    output: usize,
    /// Squeezed channels of its squeeze-and-excitation, if it has one.
    se: Option<usize>,
    hard_swish: bool,
    stride: usize,
}

impl MobileNetV3SmallConfig {
    /// Blocks in each stage (`backbone.blocks.<i>` in order): a stage is a run of blocks
    /// with the same output channels, as timm's feature stages (16, 24, 40, 48, 96).
    pub fn stage_blocks(&self) -> Vec<usize> {
        BLOCKS.chunk_by(|a, b| a.3 == b.3).map(<[_]>::len).collect()
    }

    /// Checks the hyperparameters.
    pub fn validate(&self) -> Result<(), Violation> {
        Interval::open_closed(0.0, 8.0)
            .check(self.width)
            .map_err(|r| Violation::new("model.width", r))?;
        Interval::UNIT_OPEN
            .check(self.dropout)
            .map_err(|r| Violation::new("model.dropout", r))?;
        Ok(())
    }

    fn channels(&self, c: usize) -> usize {
        make_divisible(c as f64 * self.width)
    }

    fn blocks(&self) -> Vec<BlockShape> {
        BLOCKS
            .iter()
            .map(
                |&(input, kernel, expanded, output, se, hard_swish, stride)| {
                    let expanded = self.channels(expanded);
                    BlockShape {
                        input: self.channels(input),
                        kernel,
                        expanded,
                        output: self.channels(output),
                        se: se.then(|| make_divisible((expanded / 4) as f64)),
                        hard_swish,
                        stride,
                    }
                },
            )
            .collect()
    }

    /// Channels of the last convolution: 6 x the last block's output (576 at width 1).
    fn last_channels(&self) -> usize {
        6 * self.channels(96)
    }

    /// Width of the features (the 1024-wide layer's).
    pub fn feature_width(&self) -> usize {
        self.channels(1024)
    }

    /// Trainable parameters, as torchvision counts them.
    pub fn parameter_count(&self, channels: usize, num_classes: usize) -> u128 {
        let conv = |i: usize, o: usize, k: usize| (i * o * k * k) as u128;
        let bn = |c: usize| 2 * c as u128;
        let stem = self.channels(16);
        let mut n = conv(channels, stem, 3) + bn(stem);
        for b in self.blocks() {
            if b.expanded != b.input {
                n += conv(b.input, b.expanded, 1) + bn(b.expanded);
            }
            n += (b.expanded * b.kernel * b.kernel) as u128 + bn(b.expanded);
            if let Some(s) = b.se {
                n += 2 * conv(b.expanded, s, 1) + (s + b.expanded) as u128;
            }
            n += conv(b.expanded, b.output, 1) + bn(b.output);
        }
        let (last, f) = (self.last_channels(), self.feature_width());
        n + conv(self.channels(96), last, 1)
            + bn(last)
            + (last * f + f) as u128
            + (f * num_classes + num_classes) as u128
    }

    /// Multiply-adds of one forward pass on a `[C, H, W]` image, as 2 FLOPs each.
    pub fn forward_flops(&self, input: [usize; 3], num_classes: usize) -> u64 {
        let [c, h, w] = input;
        let conv = |ci: usize, co: usize, k: usize, h: usize, w: usize| {
            2 * (ci * co * k * k * h * w) as u64
        };
        let (mut h, mut w) = (h.div_ceil(2), w.div_ceil(2));
        let mut flops = conv(c, self.channels(16), 3, h, w);
        for b in self.blocks() {
            if b.expanded != b.input {
                flops += conv(b.input, b.expanded, 1, h, w);
            }
            (h, w) = (h.div_ceil(b.stride), w.div_ceil(b.stride));
            flops += conv(1, b.expanded, b.kernel, h, w) + conv(b.expanded, b.output, 1, h, w);
        }
        let (last, f) = (self.last_channels(), self.feature_width());
        flops + conv(self.channels(96), last, 1, h, w) + 2 * (last * f + f * num_classes) as u64
    }

    /// Builds the network for `[C, H, W]` images.
    pub fn init(&self, input: [usize; 3], num_classes: usize, device: &Device) -> MobileNetV3Small {
        let (last, f) = (self.last_channels(), self.feature_width());
        MobileNetV3Small {
            backbone: MobileNetV3SmallBackbone {
                stem: ConvBn::with_norm(input[0], self.channels(16), 3, 2, 1, NORM, device),
                blocks: self
                    .blocks()
                    .into_iter()
                    .map(|b| InvertedResidualSe::new(b, device))
                    .collect(),
                last: ConvBn::with_norm(self.channels(96), last, 1, 1, 1, NORM, device),
                pre_logits: LinearConfig::new(last, f).init(device),
            },
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(f, num_classes).init(device),
        }
    }
}

/// An inverted residual block with optional squeeze-and-excitation.
#[derive(Module, Debug)]
pub struct InvertedResidualSe {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    se: Option<SqueezeExcitation>,
    project: ConvBn,
    hard_swish: bool,
    residual: bool,
}

impl InvertedResidualSe {
    fn new(b: BlockShape, device: &Device) -> Self {
        Self {
            expand: (b.expanded != b.input)
                .then(|| ConvBn::with_norm(b.input, b.expanded, 1, 1, 1, NORM, device)),
            depthwise: ConvBn::with_norm(
                b.expanded, b.expanded, b.kernel, b.stride, b.expanded, NORM, device,
            ),
            se: b
                .se
                .map(|s| SqueezeExcitation::new(b.expanded, s, true, device)),
            project: ConvBn::with_norm(b.expanded, b.output, 1, 1, 1, NORM, device),
            hard_swish: b.hard_swish,
            residual: b.stride == 1 && b.input == b.output,
        }
    }

    /// `unit` then the block's activation (ReLU in the same pass as the batch norm).
    fn conv_bn_act(&self, unit: &ConvBn, x: Tensor<4>) -> Tensor<4> {
        if self.hard_swish {
            hard_swish(unit.forward(x))
        } else {
            unit.forward_then(x, Activation::Relu)
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let Some(expand) = &self.expand {
            x = self.conv_bn_act(expand, x);
        }
        x = self.conv_bn_act(&self.depthwise, x);
        if let Some(se) = &self.se {
            x = se.forward(x);
        }
        x = self.project.forward(x);
        if self.residual { x + input } else { x }
    }
}

/// The feature extractor: stem, blocks, last convolution, global average pooling and
/// the 1024-wide layer (torchvision's `classifier.0`).
#[derive(Module, Debug)]
pub struct MobileNetV3SmallBackbone {
    stem: ConvBn,
    blocks: Vec<InvertedResidualSe>,
    last: ConvBn,
    pre_logits: Linear,
}

impl MobileNetV3SmallBackbone {
    /// Features `[B, 1024]` (at width 1), after the hard swish of the 1024-wide layer.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = hard_swish(self.stem.forward(images));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = hard_swish(self.last.forward(x));
        let pooled = super::global_average_pool(x);
        hard_swish(crate::kernels::linear(&self.pre_logits, pooled))
    }
}

/// A torchvision MobileNetV3-Small classifier.
#[derive(Module, Debug)]
pub struct MobileNetV3Small {
    /// Stem, blocks, last convolution and the 1024-wide layer.
    pub backbone: MobileNetV3SmallBackbone,
    dropout: Dropout,
    /// The classifier (torchvision's `classifier.3`).
    pub head: Linear,
}

impl MobileNetV3Small {
    /// The features before the classifier.
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

    /// torchvision's name of mentor's parameter `name` (PyTorch's batch-norm names
    /// already applied): `backbone.stem.conv.weight` is `features.0.0.weight`,
    /// `backbone.blocks.3.se.fc1.weight` is `features.4.block.2.fc1.weight` (a block
    /// without expansion numbers its layers from 0, one without squeeze-and-excitation
    /// has its projection one place earlier), `backbone.last.bn.bias` is
    /// `features.12.1.bias`, `backbone.pre_logits.weight` is `classifier.0.weight`,
    /// `head.weight` is `classifier.3.weight`.
    pub fn native_name(&self, name: &str) -> String {
        if let Some(rest) = name.strip_prefix("head.") {
            return format!("classifier.3.{rest}");
        }
        let Some(rest) = name.strip_prefix("backbone.") else {
            return name.to_string();
        };
        let parts: Vec<&str> = rest.split('.').collect();
        let blocks = self.backbone.blocks.len();
        match parts.as_slice() {
            ["stem", part, tensor] => format!("features.0.{}.{tensor}", torch_index(part)),
            ["last", part, tensor] => {
                format!("features.{}.{}.{tensor}", blocks + 1, torch_index(part))
            }
            ["pre_logits", tensor] => format!("classifier.0.{tensor}"),
            ["blocks", i, unit, part, tensor] => {
                let Some((i, block)) = i
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| Some((i, self.backbone.blocks.get(i)?)))
                else {
                    return name.to_string();
                };
                let d = usize::from(block.expand.is_some());
                let se = usize::from(block.se.is_some());
                let at = match *unit {
                    "expand" => format!("0.{}", torch_index(part)),
                    "depthwise" => format!("{d}.{}", torch_index(part)),
                    "se" => format!("{}.{part}", d + 1),
                    "project" => format!("{}.{}", d + 1 + se, torch_index(part)),
                    _ => return name.to_string(),
                };
                format!("features.{}.block.{at}.{tensor}", i + 1)
            }
            _ => name.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameter_count_is_torchvisions() {
        // torchvision.models.mobilenet_v3_small(): sum(p.numel() for p in m.parameters()).
        assert_eq!(
            MobileNetV3SmallConfig::default().parameter_count(3, 1000),
            2_542_856
        );
    }

    #[test]
    fn names_map_to_torchvisions() {
        let net = MobileNetV3SmallConfig::default().init([3, 32, 32], 2, &Device::flex());
        for (ours, theirs) in [
            ("backbone.stem.conv.weight", "features.0.0.weight"),
            (
                "backbone.blocks.0.depthwise.conv.weight",
                "features.1.block.0.0.weight",
            ),
            (
                "backbone.blocks.0.se.fc1.weight",
                "features.1.block.1.fc1.weight",
            ),
            (
                "backbone.blocks.0.project.bn.bias",
                "features.1.block.2.1.bias",
            ),
            (
                "backbone.blocks.1.expand.conv.weight",
                "features.2.block.0.0.weight",
            ),
            (
                "backbone.blocks.1.project.conv.weight",
                "features.2.block.2.0.weight",
            ),
            (
                "backbone.blocks.3.se.fc2.bias",
                "features.4.block.2.fc2.bias",
            ),
            (
                "backbone.blocks.3.project.bn.running_var",
                "features.4.block.3.1.running_var",
            ),
            ("backbone.last.conv.weight", "features.12.0.weight"),
            ("backbone.pre_logits.weight", "classifier.0.weight"),
            ("head.bias", "classifier.3.bias"),
        ] {
            assert_eq!(net.native_name(ours), theirs);
        }
    }
}
