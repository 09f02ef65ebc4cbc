//! torchvision's ImageNet ResNets (He et al. 2016, "Deep Residual Learning for Image
//! Recognition"; the "v1.5" layout torchvision uses, stride on the 3x3 convolution of a
//! bottleneck): ResNet-18 and ResNet-34 of basic blocks, ResNet-50 of bottlenecks.
//!
//! Layout and names, as `torchvision.models.resnet` builds them (so that its state dicts
//! load with no key map and mentor's exports load there with `strict=True`): a 7x7/2
//! convolution `conv1` with batch norm `bn1` and ReLU, a 3x3/2 max pool, four stages
//! `layer1`..`layer4` of blocks at 64, 128, 256 and 512 planes (the last three halve the
//! resolution in their first block, whose shortcut is then `downsample.0` (1x1
//! convolution) and `downsample.1` (batch norm)), global average pooling and the
//! classifier `fc`. Batch norm: epsilon 1e-5, momentum 0.1 (PyTorch's defaults).
//!
//! mentor's names put the feature extractor under `backbone.` and the classifier under
//! `head` (`backbone.layer1.0.conv1.weight`, `backbone.layer2.0.downsample.conv.weight`,
//! `head.weight`); [`native_name`] gives torchvision's.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::kernels::{Activation, batch_norm, conv2d, max_pool2d};
use crate::rules::{Interval, Violation};

/// Planes of the four stages at width 1.
const PLANES: [usize; 4] = [64, 128, 256, 512];

/// Which ResNet: its blocks per stage and block kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResNetDepth {
    /// ResNet-18: basic blocks, `[2, 2, 2, 2]`.
    R18,
    /// ResNet-34: basic blocks, `[3, 4, 6, 3]`.
    R34,
    /// ResNet-50: bottlenecks, `[3, 4, 6, 3]`.
    R50,
}

impl ResNetDepth {
    /// Blocks in each stage.
    pub fn layers(self) -> [usize; 4] {
        match self {
            ResNetDepth::R18 => [2, 2, 2, 2],
            ResNetDepth::R34 | ResNetDepth::R50 => [3, 4, 6, 3],
        }
    }

    /// Whether the blocks are bottlenecks (1x1, 3x3, 1x1 with 4x expansion).
    pub fn bottleneck(self) -> bool {
        self == ResNetDepth::R50
    }

    /// Output channels per plane of a block.
    fn expansion(self) -> usize {
        if self.bottleneck() { 4 } else { 1 }
    }
}

/// Hyperparameters of torchvision's ResNets (`model.type = "resnet18"`, `"resnet34"`,
/// `"resnet50"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageNetResNetConfig {
    /// Multiplier of every stage's channels (1.0 is torchvision's network; a reduced
    /// width serves small fixtures and quick experiments).
    pub width: f64,
}

impl Default for ImageNetResNetConfig {
    fn default() -> Self {
        Self { width: 1.0 }
    }
}

/// The shapes of one residual block.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BlockShape {
    input: usize,
    planes: usize,
    output: usize,
    stride: usize,
}

impl BlockShape {
    fn downsamples(&self) -> bool {
        self.stride != 1 || self.input != self.output
    }
}

impl ImageNetResNetConfig {
    /// Checks the hyperparameters.
    pub fn validate(&self) -> Result<(), Violation> {
        Interval::open_closed(0.0, 8.0)
            .check(self.width)
            .map_err(|r| Violation::new("model.width", r))?;
        Ok(())
    }

    fn channels(&self, c: usize) -> usize {
        ((c as f64 * self.width).round() as usize).max(1)
    }

    /// Channels of the stem.
    fn stem(&self) -> usize {
        self.channels(64)
    }

    /// Every block's shapes, stage by stage.
    fn blocks(&self, depth: ResNetDepth) -> [Vec<BlockShape>; 4] {
        let mut input = self.stem();
        let mut stages: [Vec<BlockShape>; 4] = Default::default();
        for (s, (&planes, &n)) in PLANES.iter().zip(&depth.layers()).enumerate() {
            let planes = self.channels(planes);
            let output = planes * depth.expansion();
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                stages[s].push(BlockShape {
                    input,
                    planes,
                    output,
                    stride,
                });
                input = output;
            }
        }
        stages
    }

    /// Width of the pooled features (512 x expansion at width 1).
    pub fn feature_width(&self, depth: ResNetDepth) -> usize {
        self.channels(PLANES[3]) * depth.expansion()
    }

    /// Trainable parameters for `channels`-channel images and `num_classes` classes
    /// (batch-norm scales and shifts included, running statistics not), as torchvision
    /// counts them.
    pub fn parameter_count(&self, depth: ResNetDepth, channels: usize, num_classes: usize) -> u128 {
        let conv = |i: usize, o: usize, k: usize| (i * o * k * k) as u128;
        let bn = |c: usize| 2 * c as u128;
        let stem = self.stem();
        let mut n = conv(channels, stem, 7) + bn(stem);
        for b in self.blocks(depth).iter().flatten() {
            n += if depth.bottleneck() {
                conv(b.input, b.planes, 1)
                    + bn(b.planes)
                    + conv(b.planes, b.planes, 3)
                    + bn(b.planes)
                    + conv(b.planes, b.output, 1)
                    + bn(b.output)
            } else {
                conv(b.input, b.planes, 3)
                    + bn(b.planes)
                    + conv(b.planes, b.output, 3)
                    + bn(b.output)
            };
            if b.downsamples() {
                n += conv(b.input, b.output, 1) + bn(b.output);
            }
        }
        let features = self.feature_width(depth);
        n + (features * num_classes + num_classes) as u128
    }

    /// Multiply-adds of one forward pass on a `[C, H, W]` image, as 2 FLOPs each
    /// (convolutions and the classifier).
    pub fn forward_flops(&self, depth: ResNetDepth, input: [usize; 3], num_classes: usize) -> u64 {
        let [c, h, w] = input;
        let out = |x: usize, k: usize, s: usize, p: usize| (x + 2 * p).saturating_sub(k) / s + 1;
        let conv = |ci: usize, co: usize, k: usize, h: usize, w: usize| {
            2 * (ci * co * k * k * h * w) as u64
        };
        let (mut h, mut w) = (out(h, 7, 2, 3), out(w, 7, 2, 3));
        let mut flops = conv(c, self.stem(), 7, h, w);
        (h, w) = (out(h, 3, 2, 1), out(w, 3, 2, 1));
        for b in self.blocks(depth).iter().flatten() {
            let (oh, ow) = (out(h, 3, b.stride, 1), out(w, 3, b.stride, 1));
            flops += if depth.bottleneck() {
                conv(b.input, b.planes, 1, h, w)
                    + conv(b.planes, b.planes, 3, oh, ow)
                    + conv(b.planes, b.output, 1, oh, ow)
            } else {
                conv(b.input, b.planes, 3, oh, ow) + conv(b.planes, b.output, 3, oh, ow)
            };
            if b.downsamples() {
                flops += conv(b.input, b.output, 1, oh, ow);
            }
            (h, w) = (oh, ow);
        }
        flops + 2 * (self.feature_width(depth) * num_classes) as u64
    }

    /// Builds the network for `[C, H, W]` images.
    pub fn init(
        &self,
        depth: ResNetDepth,
        input: [usize; 3],
        num_classes: usize,
        device: &Device,
    ) -> ImageNetResNet {
        let stem = self.stem();
        let [layer1, layer2, layer3, layer4] = self.blocks(depth).map(|stage| {
            stage
                .into_iter()
                .map(|b| Block::new(depth, b, device))
                .collect()
        });
        ImageNetResNet {
            backbone: ImageNetResNetBackbone {
                conv1: conv(input[0], stem, 7, 2, device),
                bn1: BatchNormConfig::new(stem).init(device),
                maxpool: MaxPool2dConfig::new([3, 3])
                    .with_strides([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(),
                layer1,
                layer2,
                layer3,
                layer4,
            },
            head: LinearConfig::new(self.feature_width(depth), num_classes).init(device),
        }
    }
}

/// A bias-free `k x k` convolution with stride `s` and PyTorch's padding `k / 2`.
fn conv(i: usize, o: usize, k: usize, s: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([i, o], [k, k])
        .with_stride([s, s])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(false)
        .init(device)
}

/// A block's shortcut when it changes resolution or width: 1x1 convolution (torchvision's
/// `downsample.0`) and batch norm (`downsample.1`).
#[derive(Module, Debug)]
pub struct Downsample {
    conv: Conv2d,
    bn: BatchNorm,
}

impl Downsample {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        batch_norm(&self.bn, conv2d(&self.conv, x), Activation::Identity)
    }
}

/// Two 3x3 convolutions (ResNet-18 and -34).
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<Downsample>,
}

/// 1x1, 3x3 (with the stride) and 1x1 convolutions, 4x wider out (ResNet-50).
#[derive(Module, Debug)]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    downsample: Option<Downsample>,
}

/// One residual block of either kind (at most 16 a network: the variants' sizes do not
/// matter).
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Block {
    /// See [`BasicBlock`].
    Basic(BasicBlock),
    /// See [`Bottleneck`].
    Bottleneck(Bottleneck),
}

impl Block {
    fn new(depth: ResNetDepth, b: BlockShape, device: &Device) -> Self {
        let bn = |c: usize| BatchNormConfig::new(c).init(device);
        let downsample = b.downsamples().then(|| Downsample {
            conv: conv(b.input, b.output, 1, b.stride, device),
            bn: bn(b.output),
        });
        if depth.bottleneck() {
            Block::Bottleneck(Bottleneck {
                conv1: conv(b.input, b.planes, 1, 1, device),
                bn1: bn(b.planes),
                conv2: conv(b.planes, b.planes, 3, b.stride, device),
                bn2: bn(b.planes),
                conv3: conv(b.planes, b.output, 1, 1, device),
                bn3: bn(b.output),
                downsample,
            })
        } else {
            Block::Basic(BasicBlock {
                conv1: conv(b.input, b.planes, 3, b.stride, device),
                bn1: bn(b.planes),
                conv2: conv(b.planes, b.output, 3, 1, device),
                bn2: bn(b.output),
                downsample,
            })
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (out, downsample) = match self {
            Block::Basic(b) => {
                let out = batch_norm(&b.bn1, conv2d(&b.conv1, x.clone()), Activation::Relu);
                let out = batch_norm(&b.bn2, conv2d(&b.conv2, out), Activation::Identity);
                (out, &b.downsample)
            }
            Block::Bottleneck(b) => {
                let out = batch_norm(&b.bn1, conv2d(&b.conv1, x.clone()), Activation::Relu);
                let out = batch_norm(&b.bn2, conv2d(&b.conv2, out), Activation::Relu);
                let out = batch_norm(&b.bn3, conv2d(&b.conv3, out), Activation::Identity);
                (out, &b.downsample)
            }
        };
        let identity = match downsample {
            Some(d) => d.forward(x),
            None => x,
        };
        relu(out + identity)
    }
}

/// The feature extractor: stem, max pool, four stages, global average pooling.
#[derive(Module, Debug)]
pub struct ImageNetResNetBackbone {
    conv1: Conv2d,
    bn1: BatchNorm,
    maxpool: MaxPool2d,
    layer1: Vec<Block>,
    layer2: Vec<Block>,
    layer3: Vec<Block>,
    layer4: Vec<Block>,
}

impl ImageNetResNetBackbone {
    /// Globally average-pooled features `[B, C]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = batch_norm(&self.bn1, conv2d(&self.conv1, images), Activation::Relu);
        let mut x = max_pool2d(&self.maxpool, x);
        for stage in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
            for block in stage {
                x = block.forward(x);
            }
        }
        super::global_average_pool(x)
    }
}

/// A torchvision ResNet classifier.
#[derive(Module, Debug)]
pub struct ImageNetResNet {
    /// Stem and the four stages.
    pub backbone: ImageNetResNetBackbone,
    /// The classifier (torchvision's `fc`).
    pub head: Linear,
}

impl ImageNetResNet {
    /// Globally average-pooled features.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.backbone.forward(images)
    }

    /// Class logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.features(images))
    }
}

/// torchvision's name of mentor's parameter `name` (PyTorch's batch-norm names already
/// applied): no `backbone.` prefix, the classifier `fc`, a shortcut's layers `0` and `1`
/// (`backbone.layer2.0.downsample.conv.weight` is `layer2.0.downsample.0.weight`).
pub fn native_name(name: &str) -> String {
    let path = name
        .strip_prefix("backbone.")
        .map(str::to_string)
        .or_else(|| name.strip_prefix("head.").map(|rest| format!("fc.{rest}")))
        .unwrap_or_else(|| name.to_string());
    path.replace(".downsample.conv.", ".downsample.0.")
        .replace(".downsample.bn.", ".downsample.1.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ModelConfig, Network, param_infos, trainable_count};

    #[test]
    fn parameter_counts_are_torchvisions() {
        let c = ImageNetResNetConfig::default();
        // torchvision.models.resnet18/34/50(): sum(p.numel() for p in m.parameters()).
        assert_eq!(c.parameter_count(ResNetDepth::R18, 3, 1000), 11_689_512);
        assert_eq!(c.parameter_count(ResNetDepth::R34, 3, 1000), 21_797_672);
        assert_eq!(c.parameter_count(ResNetDepth::R50, 3, 1000), 25_557_032);
    }

    #[test]
    fn reduced_networks_build_run_and_count_their_parameters() {
        let device = Device::flex();
        for model in [
            ModelConfig::Resnet18(ImageNetResNetConfig { width: 0.0625 }),
            ModelConfig::Resnet50(ImageNetResNetConfig { width: 0.0625 }),
        ] {
            let net = model.init([3, 35, 29], 5, &device);
            assert_eq!(
                Some(trainable_count(&net) as u128),
                model.parameter_estimate([3, 35, 29], 5)
            );
            let x = Tensor::<4>::ones([2, 3, 35, 29], &device);
            assert_eq!(net.forward(x.clone()).dims(), [2, 5]);
            assert_eq!(net.features(x).dims()[1], model.feature_width([3, 35, 29]));
        }
    }

    #[test]
    fn names_map_to_torchvisions() {
        assert_eq!(native_name("backbone.conv1.weight"), "conv1.weight");
        assert_eq!(
            native_name("backbone.layer2.0.downsample.conv.weight"),
            "layer2.0.downsample.0.weight"
        );
        assert_eq!(
            native_name("backbone.layer2.0.downsample.bn.running_var"),
            "layer2.0.downsample.1.running_var"
        );
        assert_eq!(native_name("head.bias"), "fc.bias");
        let net = ModelConfig::Resnet18(ImageNetResNetConfig { width: 0.0625 }).init(
            [3, 16, 16],
            3,
            &Device::flex(),
        );
        assert!(matches!(net, Network::ImageNetResNet(_)));
        let names: Vec<String> = param_infos(&net).into_iter().map(|p| p.name).collect();
        assert_eq!(names[0], "backbone.conv1.weight");
        assert!(names.contains(&"backbone.layer1.1.conv2.weight".to_string()));
        assert!(names.contains(&"backbone.layer4.0.downsample.bn.gamma".to_string()));
        assert!(!names.iter().any(|n| n.contains("layer1.0.downsample")));
    }
}
