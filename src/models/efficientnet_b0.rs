//! torchvision's EfficientNet-B0 (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling
//! for Convolutional Neural Networks"): a 3x3/2 stem, 16 MBConv blocks in 7 stages (1x1
//! expansion, kxk depthwise, squeeze-and-excitation (Hu et al. 2018) on the expanded
//! channels, 1x1 linear projection; SiLU activations; a residual where stride and width
//! allow, dropped per example with stochastic depth (Huang et al. 2016) while training),
//! a 1x1 convolution to 1280 channels, global average pooling, dropout 0.2 and the
//! classifier. PyTorch's padding `k / 2` and batch norm (epsilon 1e-5, momentum 0.1).
//!
//! mentor's names (`backbone.stem`, `backbone.blocks.<i>.{expand, depthwise, se,
//! project}`, `backbone.last`, `head`) map to torchvision's (`features.0`,
//! `features.<stage>.<block>.block.<j>`, `features.8`, `classifier.1`) through
//! [`native_name`].

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use super::conv_bn::{ConvBn, torch_index};
use super::mobilenet_v2::make_divisible;
use super::squeeze_excitation::SqueezeExcitation;
use crate::rules::{Interval, Violation};

/// The stages: `(expand ratio, kernel, first stride, input channels, output channels,
/// blocks)` at width 1, as torchvision's `_efficientnet_conf("efficientnet_b0")`.
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
];

/// EfficientNet-B0 hyperparameters (`model.type = "efficientnet-b0"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EfficientNetB0Config {
    /// torchvision's `width_mult`: channels scaled and rounded to multiples of 8.
    pub width: f64,
    /// torchvision's `depth_mult`: each stage repeats its block `ceil(n * depth)` times
    /// (1.0 is B0; the reduced fixture uses 0.5).
    pub depth: f64,
    /// Dropout before the classifier while training (0.2).
    pub dropout: f64,
    /// Stochastic depth: the last block's residual branch is dropped with this
    /// probability while training, earlier blocks' in proportion to their position
    /// (torchvision's `stochastic_depth_prob`, 0.2); off at inference.
    pub stochastic_depth: f64,
}

impl Default for EfficientNetB0Config {
    fn default() -> Self {
        Self {
            width: 1.0,
            depth: 1.0,
            dropout: 0.2,
            stochastic_depth: 0.2,
        }
    }
}

/// One block's shapes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BlockShape {
    /// Its 0-based stage and place in the stage (torchvision's `features.<stage + 1>.<index>`).
    stage: usize,
    index: usize,
    input: usize,
    expanded: usize,
    squeezed: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    /// Probability that training drops the residual branch.
    drop: f64,
}

impl EfficientNetB0Config {
    /// Checks the hyperparameters.
    pub fn validate(&self) -> Result<(), Violation> {
        Interval::open_closed(0.0, 8.0)
            .check(self.width)
            .map_err(|r| Violation::new("model.width", r))?;
        Interval::open_closed(0.0, 8.0)
            .check(self.depth)
            .map_err(|r| Violation::new("model.depth", r))?;
        Interval::UNIT_OPEN
            .check(self.dropout)
            .map_err(|r| Violation::new("model.dropout", r))?;
        Interval::UNIT_OPEN
            .check(self.stochastic_depth)
            .map_err(|r| Violation::new("model.stochastic_depth", r))?;
        Ok(())
    }

    fn channels(&self, c: usize) -> usize {
        make_divisible(c as f64 * self.width)
    }

    /// Channels of the features (4 x the last block's, 1280 at width 1).
    pub fn feature_width(&self) -> usize {
        4 * self.channels(STAGES[6].4)
    }

    /// Blocks in each of the seven stages (`backbone.blocks.<i>` in order).
    pub fn stage_blocks(&self) -> Vec<usize> {
        STAGES.iter().map(|s| self.repeats(s.5)).collect()
    }

    /// Blocks in each stage: `ceil(n * depth)`.
    fn repeats(&self, n: usize) -> usize {
        (n as f64 * self.depth).ceil() as usize
    }

    fn blocks(&self) -> Vec<BlockShape> {
        let total: usize = STAGES.iter().map(|s| self.repeats(s.5)).sum();
        let mut out = Vec::new();
        for (stage, &(expand, kernel, stride, input, output, n)) in STAGES.iter().enumerate() {
            let mut input = self.channels(input);
            let output = self.channels(output);
            for j in 0..self.repeats(n) {
                out.push(BlockShape {
                    stage,
                    index: j,
                    input,
                    expanded: input * expand,
                    // torchvision: max(1, input_channels // 4), of the block's input.
                    squeezed: (input / 4).max(1),
                    output,
                    kernel,
                    stride: if j == 0 { stride } else { 1 },
                    drop: self.stochastic_depth * out.len() as f64 / total as f64,
                });
                input = output;
            }
        }
        out
    }

    /// Trainable parameters, as torchvision counts them.
    pub fn parameter_count(&self, channels: usize, num_classes: usize) -> u128 {
        let conv = |i: usize, o: usize, k: usize| (i * o * k * k) as u128;
        let bn = |c: usize| 2 * c as u128;
        let stem = self.channels(32);
        let mut n = conv(channels, stem, 3) + bn(stem);
        for b in self.blocks() {
            if b.expanded != b.input {
                n += conv(b.input, b.expanded, 1) + bn(b.expanded);
            }
            n += (b.expanded * b.kernel * b.kernel) as u128 + bn(b.expanded);
            n += 2 * conv(b.expanded, b.squeezed, 1) + (b.squeezed + b.expanded) as u128;
            n += conv(b.expanded, b.output, 1) + bn(b.output);
        }
        let f = self.feature_width();
        n + conv(self.channels(320), f, 1) + bn(f) + (f * num_classes + num_classes) as u128
    }

    /// Multiply-adds of one forward pass on a `[C, H, W]` image, as 2 FLOPs each.
    pub fn forward_flops(&self, input: [usize; 3], num_classes: usize) -> u64 {
        let [c, h, w] = input;
        let conv = |ci: usize, co: usize, k: usize, h: usize, w: usize| {
            2 * (ci * co * k * k * h * w) as u64
        };
        let (mut h, mut w) = (h.div_ceil(2), w.div_ceil(2));
        let mut flops = conv(c, self.channels(32), 3, h, w);
        for b in self.blocks() {
            if b.expanded != b.input {
                flops += conv(b.input, b.expanded, 1, h, w);
            }
            (h, w) = (h.div_ceil(b.stride), w.div_ceil(b.stride));
            flops += conv(1, b.expanded, b.kernel, h, w) + conv(b.expanded, b.output, 1, h, w);
        }
        flops
            + conv(self.channels(320), self.feature_width(), 1, h, w)
            + 2 * (self.feature_width() * num_classes) as u64
    }

    /// Builds the network for `[C, H, W]` images.
    pub fn init(&self, input: [usize; 3], num_classes: usize, device: &Device) -> EfficientNetB0 {
        let f = self.feature_width();
        EfficientNetB0 {
            backbone: EfficientNetB0Backbone {
                stem: ConvBn::new(input[0], self.channels(32), 3, 2, 1, device),
                blocks: self
                    .blocks()
                    .into_iter()
                    .map(|b| MbConvSe::new(b, device))
                    .collect(),
                last: ConvBn::new(self.channels(320), f, 1, 1, 1, device),
            },
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(f, num_classes).init(device),
        }
    }
}

/// An MBConv block with squeeze-and-excitation and stochastic depth.
#[derive(Module, Debug)]
pub struct MbConvSe {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    se: SqueezeExcitation,
    project: ConvBn,
    residual: bool,
    drop: f64,
    stage: usize,
    index: usize,
}

impl MbConvSe {
    fn new(b: BlockShape, device: &Device) -> Self {
        Self {
            expand: (b.expanded != b.input)
                .then(|| ConvBn::new(b.input, b.expanded, 1, 1, 1, device)),
            depthwise: ConvBn::new(
                b.expanded, b.expanded, b.kernel, b.stride, b.expanded, device,
            ),
            se: SqueezeExcitation::new(b.expanded, b.squeezed, false, device),
            project: ConvBn::new(b.expanded, b.output, 1, 1, 1, device),
            residual: b.stride == 1 && b.input == b.output,
            drop: b.drop,
            stage: b.stage,
            index: b.index,
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let Some(expand) = &self.expand {
            x = silu(expand.forward(x));
        }
        x = silu(self.depthwise.forward(x));
        x = self.project.forward(self.se.forward(x));
        if !self.residual {
            return x;
        }
        // Stochastic depth while training (torchvision's mode "row"): each example's
        // branch kept with probability 1 - drop and scaled by 1 / (1 - drop).
        if self.drop > 0.0 && x.device().is_autodiff() {
            let keep = 1.0 - self.drop;
            let n = x.dims()[0];
            let mask =
                Tensor::<4>::random([n, 1, 1, 1], Distribution::Bernoulli(keep), &x.device());
            x = x * mask.div_scalar(keep);
        }
        x + input
    }
}

/// The feature extractor: stem, blocks, last convolution, global average pooling.
#[derive(Module, Debug)]
pub struct EfficientNetB0Backbone {
    stem: ConvBn,
    blocks: Vec<MbConvSe>,
    last: ConvBn,
}

impl EfficientNetB0Backbone {
    /// Globally average-pooled features `[B, C]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = silu(self.stem.forward(images));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = silu(self.last.forward(x));
        super::global_average_pool(x)
    }
}

/// A torchvision EfficientNet-B0 classifier.
#[derive(Module, Debug)]
pub struct EfficientNetB0 {
    /// Stem, blocks and last convolution.
    pub backbone: EfficientNetB0Backbone,
    dropout: Dropout,
    /// The classifier (torchvision's `classifier.1`).
    pub head: Linear,
}

impl EfficientNetB0 {
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

impl EfficientNetB0 {
    /// torchvision's name of mentor's parameter `name` (PyTorch's batch-norm names
    /// already applied): `backbone.stem.conv.weight` is `features.0.0.weight`,
    /// `backbone.blocks.2.se.fc1.bias` is `features.2.1.block.2.fc1.bias` at B0's depth
    /// (block 2 is the second of stage 2; a block without expansion numbers its layers
    /// from 0), `backbone.last.bn.bias` is `features.8.1.bias`, `head.weight` is
    /// `classifier.1.weight`.
    pub fn native_name(&self, name: &str) -> String {
        if let Some(rest) = name.strip_prefix("head.") {
            return format!("classifier.1.{rest}");
        }
        let Some(rest) = name.strip_prefix("backbone.") else {
            return name.to_string();
        };
        let parts: Vec<&str> = rest.split('.').collect();
        match parts.as_slice() {
            ["stem", part, tensor] => format!("features.0.{}.{tensor}", torch_index(part)),
            ["last", part, tensor] => format!("features.8.{}.{tensor}", torch_index(part)),
            ["blocks", i, unit, part, tensor] => {
                let Some(block) = i
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| self.backbone.blocks.get(i))
                else {
                    return name.to_string();
                };
                let d = usize::from(block.expand.is_some());
                let at = match *unit {
                    "expand" => format!("0.{}", torch_index(part)),
                    "depthwise" => format!("{d}.{}", torch_index(part)),
                    "se" => format!("{}.{part}", d + 1),
                    "project" => format!("{}.{}", d + 2, torch_index(part)),
                    _ => return name.to_string(),
                };
                format!(
                    "features.{}.{}.block.{at}.{tensor}",
                    block.stage + 1,
                    block.index
                )
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
        // torchvision.models.efficientnet_b0(): sum(p.numel() for p in m.parameters()).
        assert_eq!(
            EfficientNetB0Config::default().parameter_count(3, 1000),
            5_288_548
        );
    }

    #[test]
    fn stochastic_depth_drops_residual_branches_while_training_only() {
        use burn::module::Module;
        let config = EfficientNetB0Config {
            width: 0.1,
            depth: 0.5,
            stochastic_depth: 0.5,
            ..EfficientNetB0Config::default()
        };
        let device = Device::flex().autodiff();
        let net = config.init([3, 32, 32], 2, &device);
        let x = Tensor::<4>::random([4, 3, 32, 32], Distribution::Default, &device);
        let values = |t: Tensor<2>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let (a, b) = (
            values(net.features(x.clone())),
            values(net.features(x.clone())),
        );
        assert_ne!(a, b, "training draws a new mask per pass");
        let valid = net.valid();
        let x = x.inner();
        assert_eq!(
            values(valid.features(x.clone())),
            values(valid.features(x)),
            "inference keeps every branch"
        );
    }

    #[test]
    fn names_map_to_torchvisions() {
        let net = EfficientNetB0Config {
            width: 0.1,
            ..EfficientNetB0Config::default()
        }
        .init([3, 16, 16], 2, &Device::flex());
        let native_name = |name: &str| net.native_name(name);
        for (ours, theirs) in [
            ("backbone.stem.conv.weight", "features.0.0.weight"),
            (
                "backbone.blocks.0.depthwise.conv.weight",
                "features.1.0.block.0.0.weight",
            ),
            (
                "backbone.blocks.0.se.fc1.weight",
                "features.1.0.block.1.fc1.weight",
            ),
            (
                "backbone.blocks.0.project.bn.bias",
                "features.1.0.block.2.1.bias",
            ),
            (
                "backbone.blocks.1.expand.conv.weight",
                "features.2.0.block.0.0.weight",
            ),
            (
                "backbone.blocks.2.se.fc2.bias",
                "features.2.1.block.2.fc2.bias",
            ),
            (
                "backbone.blocks.15.project.bn.running_var",
                "features.7.0.block.3.1.running_var",
            ),
            ("backbone.last.conv.weight", "features.8.0.weight"),
            ("head.bias", "classifier.1.bias"),
        ] {
            assert_eq!(native_name(ours), theirs);
        }
    }
}
