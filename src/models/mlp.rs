//! A multilayer perceptron: flatten, then `Linear -> ReLU -> Dropout` per hidden width.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::kernels::linear;
use crate::rules::{self, Interval, Violation};

/// MLP hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpConfig {
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
    /// Dropout probability after each hidden layer.
    pub dropout: f64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: vec![256, 128],
            dropout: 0.0,
        }
    }
}

impl MlpConfig {
    /// Checks the hyperparameters.
    pub fn validate(&self) -> Result<(), Violation> {
        rules::every_at_least_one(&self.hidden).map_err(|r| Violation::new("model.hidden", r))?;
        Interval::UNIT_OPEN
            .check(self.dropout)
            .map_err(|r| Violation::new("model.dropout", r))?;
        Ok(())
    }

    /// Builds the MLP.
    pub fn init(&self, input: [usize; 3], num_classes: usize, device: &Device) -> Mlp {
        let mut width = input.iter().product::<usize>();
        let mut fc = Vec::new();
        for &h in &self.hidden {
            fc.push(LinearConfig::new(width, h).init(device));
            width = h;
        }
        Mlp {
            backbone: MlpBackbone {
                fc,
                dropout: DropoutConfig::new(self.dropout).init(),
            },
            head: LinearConfig::new(width, num_classes).init(device),
        }
    }
}

/// The MLP's hidden layers (`backbone.fc.<i>`).
#[derive(Module, Debug)]
pub struct MlpBackbone {
    pub(crate) fc: Vec<Linear>,
    pub(crate) dropout: Dropout,
}

/// A multilayer perceptron classifier.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Hidden layers.
    pub backbone: MlpBackbone,
    /// Final linear classifier.
    pub head: Linear,
}

impl MlpBackbone {
    /// Features of the last hidden layer.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x: Tensor<2> = images.flatten(1, 3);
        for layer in &self.fc {
            x = self.dropout.forward(relu(linear(layer, x)));
        }
        x
    }
}

impl Mlp {
    /// Features of the last hidden layer.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.backbone.forward(images)
    }

    /// Class logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        linear(&self.head, self.features(images))
    }
}
