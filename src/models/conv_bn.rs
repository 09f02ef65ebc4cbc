//! A bias-free convolution followed by batch norm, as torchvision's
//! `Conv2dNormActivation` without its activation (which the caller applies): the unit of
//! MobileNet and EfficientNet. PyTorch's padding `k / 2` on every side; batch norm with
//! PyTorch's epsilon 1e-5 and momentum 0.1.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use crate::kernels::{Activation, batch_norm, conv2d};

/// Convolution (`conv`, torchvision's `.0`) and batch norm (`bn`, torchvision's `.1`).
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    /// A `k x k` convolution from `i` to `o` channels with `stride` and `groups`.
    pub fn new(
        i: usize,
        o: usize,
        k: usize,
        stride: usize,
        groups: usize,
        device: &Device,
    ) -> Self {
        Self::with_norm(i, o, k, stride, groups, (1e-5, 0.1), device)
    }

    /// [`ConvBn::new`] with the batch norm's `(epsilon, momentum)` (MobileNetV3's
    /// `(1e-3, 0.01)`).
    pub fn with_norm(
        i: usize,
        o: usize,
        k: usize,
        stride: usize,
        groups: usize,
        (epsilon, momentum): (f64, f64),
        device: &Device,
    ) -> Self {
        let p = k / 2;
        Self {
            conv: Conv2dConfig::new([i, o], [k, k])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_groups(groups)
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(o)
                .with_epsilon(epsilon)
                .with_momentum(momentum)
                .init(device),
        }
    }

    /// Batch norm of the convolution (no activation).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_then(x, Activation::Identity)
    }

    /// Batch norm of the convolution, then `activation` in the same pass.
    pub fn forward_then(&self, x: Tensor<4>, activation: Activation) -> Tensor<4> {
        batch_norm(&self.bn, conv2d(&self.conv, x), activation)
    }
}

/// The torchvision index of a `ConvBn` part: `conv` is `0`, `bn` is `1`.
pub fn torch_index(part: &str) -> &'static str {
    if part == "conv" { "0" } else { "1" }
}
