//! Squeeze-and-excitation (Hu et al. 2018, "Squeeze-and-Excitation Networks"): the
//! channels' global means through a 1x1 reduction (`fc1`) and expansion (`fc2`) give a
//! scale per channel. EfficientNet gates with SiLU and a sigmoid; MobileNetV3 with ReLU
//! and the hard sigmoid `relu6(x + 3) / 6` (`hard`).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::{relu, sigmoid, silu};
use burn::tensor::{Device, Tensor};

use crate::kernels::conv2d;

/// torchvision's `SqueezeExcitation` (`fc1`, `fc2`, both with biases).
#[derive(Module, Debug)]
pub struct SqueezeExcitation {
    fc1: Conv2d,
    fc2: Conv2d,
    /// MobileNetV3's ReLU and hard sigmoid instead of SiLU and sigmoid.
    hard: bool,
}

impl SqueezeExcitation {
    /// Over `channels`, through `squeezed` channels.
    pub fn new(channels: usize, squeezed: usize, hard: bool, device: &Device) -> Self {
        Self {
            fc1: Conv2dConfig::new([channels, squeezed], [1, 1]).init(device),
            fc2: Conv2dConfig::new([squeezed, channels], [1, 1]).init(device),
            hard,
        }
    }

    /// `x` scaled per channel.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let pooled = crate::kernels::mean_hw(x.clone());
        let scale = if self.hard {
            crate::kernels::hard_sigmoid(conv2d(&self.fc2, relu(conv2d(&self.fc1, pooled))))
        } else {
            sigmoid(conv2d(&self.fc2, silu(conv2d(&self.fc1, pooled))))
        };
        x * scale
    }
}
