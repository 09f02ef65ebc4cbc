//! The networks mentor trains. Every network is a *backbone* (the feature extractor that
//! strategies reuse, freeze or distil) followed by a *head* (a linear classifier), and its
//! parameters carry stable names such as `backbone.conv1.weight` and `head.weight`, which
//! parameter groups, transfer policies and checkpoints address.
//!
//! A model's input and output lives here too, beside the networks it describes:
//! [`weights`] (safetensors and PyTorch files with PyTorch's names and layouts),
//! [`import`] (copying named tensors into a network) and [`onnx`] (the whole network for
//! edge runtimes). Writers return bytes; the caller writes them atomically.

pub mod card;
pub mod cnn;
pub mod columns;
pub mod conv_bn;
pub mod cpc;
pub mod efficientnet;
pub mod efficientnet_b0;
pub mod imagenet_resnet;
pub mod import;
pub mod mlp;
pub mod mobilenet_v2;
pub mod mobilenet_v3;
pub mod onnx;
pub mod params;
pub mod projected;
pub mod resnet;
pub mod squeeze_excitation;
pub mod vit;
pub mod weights;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

pub use card::ModelCard;
pub use cnn::{Cnn, CnnConfig};
pub use columns::{Columns, ColumnsConfig};
pub use cpc::{Cpc, CpcConfig};
pub use efficientnet::{EfficientNetLite, EfficientNetLiteConfig};
pub use efficientnet_b0::{EfficientNetB0, EfficientNetB0Config};
pub use imagenet_resnet::{ImageNetResNet, ImageNetResNetConfig, ResNetDepth};
pub use import::{ImportError, ImportReport, import_tensors, import_weights, named_tensors};
pub use mlp::{Mlp, MlpConfig};
pub use mobilenet_v2::{MobileNetV2, MobileNetV2Config};
pub use mobilenet_v3::{MobileNetV3Small, MobileNetV3SmallConfig};
pub use params::{ModulePath, ParamInfo, param_infos, pattern_selects, trainable_count};
pub use projected::{Projected, ProjectedConfig};
pub use resnet::{ResNet, ResNetConfig};
pub use vit::{Vit, VitConfig};
pub use weights::WeightsError;

/// Global average pooling: the mean of each channel over the image, `[B, C, H, W]` to
/// `[B, C]` (PyTorch's `AdaptiveAvgPool2d(1)` then `flatten(1)`), the end of every
/// convolutional backbone here.
pub fn global_average_pool(x: Tensor<4>) -> Tensor<2> {
    let [n, c, _, _] = x.dims();
    crate::kernels::mean_hw(x).reshape([n, c])
}

/// Which network to build, with its hyperparameters (`[model]` in a run config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ModelConfig {
    /// A multilayer perceptron on the flattened image.
    Mlp(MlpConfig),
    /// The standard small CNN: conv32-conv64-fc128.
    Cnn(CnnConfig),
    /// A small ResNet for 28x28 / 32x32 inputs.
    Resnet(ResNetConfig),
    /// One MLP or CNN column per task, optionally cross-stitched (multitask learning).
    Columns(ColumnsConfig),
    /// An encoder's backbone with a projection MLP (self-supervised learning).
    Projected(ProjectedConfig),
    /// A small vision transformer, optionally with DeiT's distillation token.
    Vit(VitConfig),
    /// A patch encoder with an autoregressive context network (CPC).
    Cpc(CpcConfig),
    /// EfficientNet-Lite0, the ImageNet network for edge devices (its PyTorch weights load
    /// by their own names).
    #[serde(rename = "efficientnet-lite0")]
    EfficientNetLite0(EfficientNetLiteConfig),
    /// torchvision's ResNet-18 (its ImageNet state dicts load by their own names).
    #[serde(rename = "resnet18")]
    Resnet18(ImageNetResNetConfig),
    /// torchvision's ResNet-34.
    #[serde(rename = "resnet34")]
    Resnet34(ImageNetResNetConfig),
    /// torchvision's ResNet-50 (bottleneck blocks).
    #[serde(rename = "resnet50")]
    Resnet50(ImageNetResNetConfig),
    /// torchvision's MobileNetV2.
    #[serde(rename = "mobilenet-v2")]
    MobileNetV2(MobileNetV2Config),
    /// torchvision's EfficientNet-B0.
    #[serde(rename = "efficientnet-b0")]
    EfficientNetB0(EfficientNetB0Config),
    /// torchvision's MobileNetV3-Small.
    #[serde(rename = "mobilenet-v3-small")]
    MobileNetV3Small(MobileNetV3SmallConfig),
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Mlp(MlpConfig::default())
    }
}

impl ModelConfig {
    /// The depth and config of a torchvision ResNet (`None` for other networks).
    pub fn imagenet_resnet(&self) -> Option<(ResNetDepth, &ImageNetResNetConfig)> {
        match self {
            ModelConfig::Resnet18(c) => Some((ResNetDepth::R18, c)),
            ModelConfig::Resnet34(c) => Some((ResNetDepth::R34, c)),
            ModelConfig::Resnet50(c) => Some((ResNetDepth::R50, c)),
            _ => None,
        }
    }

    /// The model's short name (`mlp`, `cnn`, `resnet`).
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Mlp(_) => "mlp",
            ModelConfig::Cnn(_) => "cnn",
            ModelConfig::Resnet(_) => "resnet",
            ModelConfig::Columns(_) => "columns",
            ModelConfig::Projected(_) => "projected",
            ModelConfig::Vit(_) => "vit",
            ModelConfig::Cpc(_) => "cpc",
            ModelConfig::EfficientNetLite0(_) => "efficientnet-lite0",
            ModelConfig::Resnet18(_) => "resnet18",
            ModelConfig::Resnet34(_) => "resnet34",
            ModelConfig::Resnet50(_) => "resnet50",
            ModelConfig::MobileNetV2(_) => "mobilenet-v2",
            ModelConfig::EfficientNetB0(_) => "efficientnet-b0",
            ModelConfig::MobileNetV3Small(_) => "mobilenet-v3-small",
        }
    }

    /// Checks the hyperparameters, naming the first one that breaks a rule.
    pub fn validate(&self) -> Result<(), crate::rules::Violation> {
        match self {
            ModelConfig::Mlp(c) => c.validate(),
            ModelConfig::Cnn(c) => c.validate(),
            ModelConfig::Resnet(c) => c.validate(),
            ModelConfig::Columns(c) => c.validate(),
            ModelConfig::Projected(c) => c.validate(),
            ModelConfig::Vit(c) => c.validate(),
            ModelConfig::Cpc(c) => c.validate(),
            ModelConfig::EfficientNetLite0(c) => c.validate(),
            ModelConfig::Resnet18(c) | ModelConfig::Resnet34(c) | ModelConfig::Resnet50(c) => {
                c.validate()
            }
            ModelConfig::MobileNetV2(c) => c.validate(),
            ModelConfig::EfficientNetB0(c) => c.validate(),
            ModelConfig::MobileNetV3Small(c) => c.validate(),
        }
    }

    /// Checks that the network can take `[C, H, W]` images (a ViT's patches must tile
    /// them); other networks take any size their layers allow.
    pub fn check_input(&self, input: [usize; 3]) -> Result<(), String> {
        match self {
            ModelConfig::Vit(c) => c.check_input(input),
            ModelConfig::Cpc(c) => c.check_input(input),
            ModelConfig::Cnn(_) if input[1] < 4 || input[2] < 4 => Err(format!(
                "the cnn pools twice by 2, so images must be at least 4x4; these are {}x{}",
                input[1], input[2]
            )),
            ModelConfig::Projected(c) => c.encoder.check_input(input),
            ModelConfig::Columns(c) => c.column.check_input(input),
            _ => Ok(()),
        }
    }

    /// Parameters of the network for `input` images and `num_classes` classes, counted
    /// from the config alone (nothing allocated); `None` for kinds not counted here
    /// (vit, cpc). Convolution and linear weights and biases; normalisation left out.
    pub fn parameter_estimate(&self, input: [usize; 3], num_classes: usize) -> Option<u128> {
        let linear = |i: usize, o: usize| i as u128 * o as u128 + o as u128;
        let conv = |i: usize, o: usize| 9 * i as u128 * o as u128 + o as u128;
        match self {
            ModelConfig::Mlp(c) => {
                let mut width = input.iter().product::<usize>();
                let mut n = 0;
                for &h in &c.hidden {
                    n += linear(width, h);
                    width = h;
                }
                Some(n + linear(width, num_classes))
            }
            ModelConfig::Cnn(c) => {
                let [ch, h, w] = input;
                let [c1, c2] = c.channels;
                let flat = c2 * (h / 4).max(1) * (w / 4).max(1);
                Some(
                    conv(ch, c1)
                        + conv(c1, c2)
                        + linear(flat, c.hidden)
                        + linear(c.hidden, num_classes),
                )
            }
            ModelConfig::Resnet(c) => {
                let widths = [c.width, 2 * c.width, 4 * c.width];
                let mut n = conv(input[0], c.width);
                let mut prev = c.width;
                for (w, &blocks) in widths.iter().zip(&c.blocks) {
                    n += conv(prev, *w) + conv(*w, *w) * (2 * blocks as u128 - 1);
                    prev = *w;
                }
                Some(n + linear(prev, num_classes))
            }
            ModelConfig::Projected(c) => c.encoder.parameter_estimate(input, num_classes),
            ModelConfig::Columns(c) => c
                .column
                .parameter_estimate(input, num_classes)
                .map(|n| n * c.classes.len() as u128),
            ModelConfig::EfficientNetLite0(c) => Some(c.parameter_count(input[0], num_classes)),
            ModelConfig::Resnet18(c) | ModelConfig::Resnet34(c) | ModelConfig::Resnet50(c) => {
                let (depth, _) = self.imagenet_resnet()?;
                Some(c.parameter_count(depth, input[0], num_classes))
            }
            ModelConfig::MobileNetV2(c) => Some(c.parameter_count(input[0], num_classes)),
            ModelConfig::EfficientNetB0(c) => Some(c.parameter_count(input[0], num_classes)),
            ModelConfig::MobileNetV3Small(c) => Some(c.parameter_count(input[0], num_classes)),
            ModelConfig::Vit(_) | ModelConfig::Cpc(_) => None,
        }
    }

    /// Checks that the network can be built for `input` images and `num_classes`
    /// classes on a machine with `memory_bytes` of memory: the input fits
    /// ([`ModelConfig::check_input`]) and its weights, gradients and two optimiser
    /// moments (16 bytes a parameter) take at most half the memory. Run before the
    /// network is allocated, so an absurd size is an error instead of an abort.
    pub fn check_fits(
        &self,
        input: [usize; 3],
        num_classes: usize,
        memory_bytes: Option<u64>,
    ) -> Result<(), String> {
        self.check_input(input)?;
        if let (Some(params), Some(memory)) =
            (self.parameter_estimate(input, num_classes), memory_bytes)
        {
            let need = params.saturating_mul(16);
            if need > u128::from(memory / 2) {
                return Err(format!(
                    "this {} has about {params} parameters for {}x{}x{} images: training needs about {:.1} GB (weights, gradients, optimiser state), more than half of this machine's {:.1} GB; make the model smaller",
                    self.kind(),
                    input[0],
                    input[1],
                    input[2],
                    need as f64 / 1e9,
                    memory as f64 / 1e9
                ));
            }
        }
        Ok(())
    }

    /// Multiply-adds of one forward pass for one `[C, H, W]` image, counted as 2 FLOPs
    /// each, for the layers that dominate (convolutions and linear layers; activations,
    /// pooling and normalisation are left out).
    pub fn forward_flops(&self, input: [usize; 3], num_classes: usize) -> u64 {
        let linear = |i: usize, o: usize| 2 * (i * o) as u64;
        let conv = |ci: usize, co: usize, k: usize, h: usize, w: usize| {
            2 * (ci * co * k * k * h * w) as u64
        };
        match self {
            ModelConfig::Mlp(c) => {
                let mut width = input.iter().product::<usize>();
                let mut flops = 0;
                for &h in &c.hidden {
                    flops += linear(width, h);
                    width = h;
                }
                flops + linear(width, num_classes)
            }
            ModelConfig::Cnn(c) => {
                let [ch, h, w] = input;
                let [c1, c2] = c.channels;
                conv(ch, c1, 3, h, w)
                    + conv(c1, c2, 3, h / 2, w / 2)
                    + linear(c2 * (h / 4) * (w / 4), c.hidden)
                    + linear(c.hidden, num_classes)
            }
            ModelConfig::Resnet(c) => {
                let [ch, mut h, mut w] = input;
                let mut flops = conv(ch, c.width, 3, h, w);
                let mut channels = c.width;
                for (stage, &n) in c.blocks.iter().enumerate() {
                    let out = c.width << stage;
                    for k in 0..n {
                        if stage > 0 && k == 0 {
                            h = h.div_ceil(2);
                            w = w.div_ceil(2);
                        }
                        flops += conv(channels, out, 3, h, w) + conv(out, out, 3, h, w);
                        if channels != out || (stage > 0 && k == 0) {
                            flops += conv(channels, out, 1, h, w);
                        }
                        channels = out;
                    }
                }
                flops + linear(channels, num_classes)
            }
            ModelConfig::Columns(c) => c
                .classes
                .iter()
                .map(|&k| c.column.forward_flops(input, k))
                .sum(),
            ModelConfig::Projected(c) => {
                // The encoder without its head, then the projector.
                let mut flops = c.encoder.forward_flops(input, 0);
                let mut width = c.inputs * self.feature_width(input);
                for &h in &c.hidden {
                    flops += linear(width, h);
                    width = h;
                }
                flops + linear(width, c.outputs)
            }
            ModelConfig::Vit(c) => {
                let [ch, h, w] = input;
                let patches = (h / c.patch) * (w / c.patch);
                let (t, d) = (c.tokens(input) as u64, c.dim);
                let per_token = linear(d, 3 * d) + linear(d, d) + 2 * linear(d, d * c.mlp_ratio);
                // Scores QK^T and their product with V: 2 T^2 d multiply-adds per block.
                let attention = 2 * 2 * t * t * d as u64;
                let heads = 1 + u64::from(c.distillation_token);
                linear(ch * c.patch * c.patch, d) * patches as u64
                    + c.depth as u64 * (t * per_token + attention)
                    + heads * linear(d, num_classes)
            }
            ModelConfig::Cpc(c) => {
                let patch = [input[0], c.patch, c.patch];
                let (rows, cols) = c.grid(input);
                let cells = (rows * cols) as u64;
                let f = c.encoder.feature_width(patch);
                // (The pooled features are pool^2 codes wide; the predictors see one.)
                // The encoder on every patch, the GRU's three gates, the predictors.
                cells
                    * (c.encoder.forward_flops(patch, 0)
                        + 3 * (linear(f, c.context) + linear(c.context, c.context))
                        + c.steps as u64 * linear(c.context, f))
            }
            ModelConfig::EfficientNetLite0(c) => c.forward_flops(input, num_classes),
            ModelConfig::Resnet18(c) | ModelConfig::Resnet34(c) | ModelConfig::Resnet50(c) => {
                let depth = self.imagenet_resnet().map_or(ResNetDepth::R18, |(d, _)| d);
                c.forward_flops(depth, input, num_classes)
            }
            ModelConfig::MobileNetV2(c) => c.forward_flops(input, num_classes),
            ModelConfig::EfficientNetB0(c) => c.forward_flops(input, num_classes),
            ModelConfig::MobileNetV3Small(c) => c.forward_flops(input, num_classes),
        }
    }

    /// Width of the backbone's features (a projected network's: its encoder's; task
    /// columns': all columns' together).
    pub fn feature_width(&self, input: [usize; 3]) -> usize {
        match self {
            ModelConfig::Mlp(c) => c.hidden.last().copied().unwrap_or(input.iter().product()),
            ModelConfig::Cnn(c) => c.hidden,
            ModelConfig::Resnet(c) => c.width << c.blocks.len().saturating_sub(1),
            ModelConfig::Columns(c) => c.classes.len() * c.column.feature_width(input),
            ModelConfig::Projected(c) => c.encoder.feature_width(input),
            ModelConfig::Vit(c) => c.dim,
            ModelConfig::Cpc(c) => {
                c.pool * c.pool * c.encoder.feature_width([input[0], c.patch, c.patch])
            }
            ModelConfig::EfficientNetLite0(c) => c.head_channels(),
            ModelConfig::Resnet18(c) | ModelConfig::Resnet34(c) | ModelConfig::Resnet50(c) => {
                let depth = self.imagenet_resnet().map_or(ResNetDepth::R18, |(d, _)| d);
                c.feature_width(depth)
            }
            ModelConfig::MobileNetV2(c) => c.feature_width(),
            ModelConfig::EfficientNetB0(c) => c.feature_width(),
            ModelConfig::MobileNetV3Small(c) => c.feature_width(),
        }
    }

    /// Builds the network for images of `input` = `[C, H, W]` and `num_classes` classes.
    /// Initial weights come from Burn's backend RNG, which is one per process: to get the
    /// same weights for the same seed while other runs may train in the same process, use
    /// [`crate::engine::seeded_init`], which seeds and draws under the engine's RNG lock.
    ///
    /// Burn initialises parameters lazily, on first use; this forces every one at once so
    /// that the weights depend only on the RNG state at this call, not on whatever drew
    /// from the RNG before the first forward pass.
    pub fn init(&self, input: [usize; 3], num_classes: usize, device: &Device) -> Network {
        let network = match self {
            ModelConfig::Mlp(c) => Network::Mlp(c.init(input, num_classes, device)),
            ModelConfig::Cnn(c) => Network::Cnn(c.init(input, num_classes, device)),
            ModelConfig::Resnet(c) => Network::Resnet(c.init(input, num_classes, device)),
            // The columns' classes fix the outputs; `num_classes` is their sum.
            ModelConfig::Columns(c) => Network::Columns(c.init(input, device)),
            // The projector's outputs fix the network's outputs.
            ModelConfig::Projected(c) => Network::Projected(c.init(input, device)),
            ModelConfig::Vit(c) => Network::Vit(c.init(input, num_classes, device)),
            // A CPC network has no classifier: its outputs are its features.
            ModelConfig::Cpc(c) => Network::Cpc(c.init(input, device)),
            ModelConfig::EfficientNetLite0(c) => {
                Network::EfficientNetLite(c.init(input, num_classes, device))
            }
            ModelConfig::Resnet18(c) | ModelConfig::Resnet34(c) | ModelConfig::Resnet50(c) => {
                let depth = self.imagenet_resnet().map_or(ResNetDepth::R18, |(d, _)| d);
                Network::ImageNetResNet(c.init(depth, input, num_classes, device))
            }
            ModelConfig::MobileNetV2(c) => Network::MobileNetV2(c.init(input, num_classes, device)),
            ModelConfig::EfficientNetB0(c) => {
                Network::EfficientNetB0(c.init(input, num_classes, device))
            }
            ModelConfig::MobileNetV3Small(c) => {
                Network::MobileNetV3Small(c.init(input, num_classes, device))
            }
        };
        // Listing the parameters reads each one, which initialises it.
        let _ = param_infos(&network);
        network
    }
}

/// Any of mentor's networks, behind one type so that engines, checkpoints and strategies
/// handle them alike.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Network {
    /// See [`Mlp`].
    Mlp(Mlp),
    /// See [`Cnn`].
    Cnn(Cnn),
    /// See [`ResNet`].
    Resnet(ResNet),
    /// See [`Columns`].
    Columns(Columns),
    /// See [`Projected`].
    Projected(Projected),
    /// See [`Vit`].
    Vit(Vit),
    /// See [`Cpc`].
    Cpc(Cpc),
    /// See [`EfficientNetLite`].
    EfficientNetLite(EfficientNetLite),
    /// See [`ImageNetResNet`].
    ImageNetResNet(ImageNetResNet),
    /// See [`MobileNetV2`].
    MobileNetV2(MobileNetV2),
    /// See [`EfficientNetB0`].
    EfficientNetB0(EfficientNetB0),
    /// See [`MobileNetV3Small`].
    MobileNetV3Small(MobileNetV3Small),
}

impl Network {
    /// Class logits `[B, classes]` for images `[B, C, H, W]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Network::Mlp(m) => m.forward(images),
            Network::Cnn(m) => m.forward(images),
            Network::Resnet(m) => m.forward(images),
            Network::Columns(m) => m.forward(images),
            Network::Projected(m) => m.forward(images),
            Network::Vit(m) => m.forward(images),
            Network::Cpc(m) => m.features(images),
            Network::EfficientNetLite(m) => m.forward(images),
            Network::ImageNetResNet(m) => m.forward(images),
            Network::MobileNetV2(m) => m.forward(images),
            Network::EfficientNetB0(m) => m.forward(images),
            Network::MobileNetV3Small(m) => m.forward(images),
        }
    }

    /// The class logits `[B, classes]` and, for a network with a second, distillation
    /// head (a ViT with DeiT's token), that head's logits; [`Network::forward`] is their
    /// mean.
    pub fn heads(&self, images: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>) {
        match self {
            Network::Vit(m) => m.heads(images),
            _ => (self.forward(images), None),
        }
    }

    /// The head's logits for backbone features `[B, F]`.
    pub fn head_forward(&self, features: Tensor<2>) -> Tensor<2> {
        match self {
            Network::Mlp(m) => crate::kernels::linear(&m.head, features),
            Network::Cnn(m) => crate::kernels::linear(&m.head, features),
            Network::Resnet(m) => m.head.forward(features),
            Network::Columns(m) => m.head_forward(features),
            Network::Projected(m) => m.head_forward(features),
            Network::Vit(m) => m.head.forward(features),
            Network::Cpc(_) => features,
            Network::EfficientNetLite(m) => m.head_forward(features),
            Network::ImageNetResNet(m) => m.head.forward(features),
            Network::MobileNetV2(m) => m.head_forward(features),
            Network::EfficientNetB0(m) => m.head_forward(features),
            Network::MobileNetV3Small(m) => m.head_forward(features),
        }
    }

    /// The head's weight `[F, classes]` (Burn's `Linear` layout), for closed-form
    /// gradients with respect to the features; `None` for task columns.
    pub fn head_weight(&self) -> Option<Tensor<2>> {
        match self {
            Network::Mlp(m) => Some(m.head.weight.val()),
            Network::Cnn(m) => Some(m.head.weight.val()),
            Network::Resnet(m) => Some(m.head.weight.val()),
            Network::EfficientNetLite(m) => Some(m.head.weight.val()),
            Network::ImageNetResNet(m) => Some(m.head.weight.val()),
            Network::MobileNetV2(m) => Some(m.head.weight.val()),
            Network::EfficientNetB0(m) => Some(m.head.weight.val()),
            Network::MobileNetV3Small(m) => Some(m.head.weight.val()),
            Network::Vit(m) if m.head_dist.is_none() => Some(m.head.weight.val()),
            Network::Columns(_) | Network::Projected(_) | Network::Vit(_) | Network::Cpc(_) => None,
        }
    }

    /// The backbone's features `[B, F]`, the input of the head.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Network::Mlp(m) => m.features(images),
            Network::Cnn(m) => m.features(images),
            Network::Resnet(m) => m.features(images),
            Network::Columns(m) => m.features(images),
            Network::Projected(m) => m.features(images),
            Network::Vit(m) => m.features(images),
            Network::Cpc(m) => m.features(images),
            Network::EfficientNetLite(m) => m.features(images),
            Network::ImageNetResNet(m) => m.features(images),
            Network::MobileNetV2(m) => m.features(images),
            Network::EfficientNetB0(m) => m.features(images),
            Network::MobileNetV3Small(m) => m.features(images),
        }
    }

    /// The name the network's own PyTorch implementation gives parameter `name`, where
    /// that differs from mentor's name with PyTorch's conventions (`None` for mentor's
    /// own networks, whose PyTorch names are their mentor names). Import and export use
    /// it, so such weights load with no key map.
    pub fn native_name(&self, name: &str) -> Option<String> {
        match self {
            Network::EfficientNetLite(_) => Some(efficientnet::native_name(name)),
            Network::ImageNetResNet(_) => Some(imagenet_resnet::native_name(name)),
            Network::MobileNetV2(_) => Some(mobilenet_v2::native_name(name)),
            Network::EfficientNetB0(m) => Some(m.native_name(name)),
            Network::MobileNetV3Small(m) => Some(m.native_name(name)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_maps_images_to_logits_and_features() {
        let device = Device::flex();
        for (kind, input) in [
            ("mlp", [1, 8, 8]),
            ("cnn", [1, 28, 28]),
            ("cnn", [3, 32, 32]),
            ("resnet", [1, 8, 8]),
            ("resnet", [3, 32, 32]),
        ] {
            let cfg: ModelConfig = toml::from_str(&format!("type = \"{kind}\"")).unwrap();
            let net = cfg.init(input, 7, &device);
            let x = Tensor::<4>::zeros([2, input[0], input[1], input[2]], &device);
            assert_eq!(net.forward(x.clone()).dims(), [2, 7], "{kind} {input:?}");
            assert_eq!(net.features(x).dims()[0], 2);
        }
    }

    #[test]
    fn forward_flops_match_hand_counts() {
        // MLP 64-256-128-10: 2 * (64*256 + 256*128 + 128*10).
        let mlp = ModelConfig::Mlp(MlpConfig::default());
        assert_eq!(
            mlp.forward_flops([1, 8, 8], 10),
            2 * (16_384 + 32_768 + 1_280)
        );
        // The benchmark CNN on 1x28x28: the PyTorch peer's count (shared/bench).
        let cnn = ModelConfig::Cnn(CnnConfig::default());
        let expected =
            2 * 28 * 28 * 32 * 9 + 2 * 14 * 14 * 64 * 32 * 9 + 2 * 3136 * 128 + 2 * 128 * 10;
        assert_eq!(cnn.forward_flops([1, 28, 28], 10), expected as u64);
    }

    #[test]
    fn parameter_names_are_stable() {
        let device = Device::flex();
        let net = ModelConfig::Cnn(CnnConfig::default()).init([1, 28, 28], 10, &device);
        let names: Vec<String> = param_infos(&net).into_iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "backbone.conv1.weight",
                "backbone.conv1.bias",
                "backbone.conv2.weight",
                "backbone.conv2.bias",
                "backbone.fc.weight",
                "backbone.fc.bias",
                "head.weight",
                "head.bias"
            ]
        );
        let net = ModelConfig::Mlp(MlpConfig::default()).init([1, 8, 8], 10, &device);
        let names: Vec<String> = param_infos(&net).into_iter().map(|p| p.name).collect();
        assert_eq!(names[0], "backbone.fc.0.weight");
        assert_eq!(names.last().unwrap(), "head.bias");
    }

    #[test]
    fn sizes_are_checked_before_anything_is_allocated() {
        let device = Device::flex();
        let cnn = ModelConfig::Cnn(CnnConfig::default());
        // The estimate is the built network's count.
        let built = trainable_count(&cnn.init([1, 28, 28], 10, &device)) as u128;
        assert_eq!(cnn.parameter_estimate([1, 28, 28], 10), Some(built));
        let mlp = ModelConfig::Mlp(MlpConfig::default());
        let built = trainable_count(&mlp.init([1, 8, 8], 10, &device)) as u128;
        assert_eq!(mlp.parameter_estimate([1, 8, 8], 10), Some(built));
        let e = cnn.check_fits([1, 3, 3], 10, None).unwrap_err();
        assert!(e.contains("at least 4x4") && e.contains("3x3"), "{e}");
        let huge = ModelConfig::Mlp(MlpConfig {
            hidden: vec![100_000_000],
            ..MlpConfig::default()
        });
        let e = huge.check_fits([1, 8, 8], 10, Some(8 << 30)).unwrap_err();
        assert!(e.contains("GB") && e.contains("smaller"), "{e}");
        assert!(cnn.check_fits([1, 28, 28], 10, Some(8 << 30)).is_ok());
    }
}
