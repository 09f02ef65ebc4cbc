//! One network column per task, for multitask soft parameter sharing and cross-stitch
//! networks. Each column is a whole MLP or CNN with its own head (its task's classes);
//! the logits of all columns are concatenated, column after column.
//!
//! - **Soft sharing** (Duong et al. 2015; Yang & Hospedales 2017): the columns are
//!   independent networks tied only by the multitask loss's L2 "cross-talk" penalty
//!   `lambda * sum_layers ||W_A - W_B||^2` (see [`crate::multitask`]).
//! - **Cross-stitch units** (Misra et al. 2016): after every backbone stage (an MLP's
//!   hidden layer; a CNN's conv blocks and fully connected layer) the columns'
//!   activations are mixed, `x~_i = sum_j a_ij x_j`, by a learned `K x K` matrix per
//!   stage, initialised near identity (`a_ii = stitch_self`, the rest sharing
//!   `1 - stitch_self`).

use burn::module::{Module, Param};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::{Cnn, Mlp, ModelConfig};
use crate::kernels::{conv2d_max_pool2d, linear};
use crate::rules::{self, Interval, Rule, Violation};

/// Columns' hyperparameters (`model.type = "columns"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnsConfig {
    /// The network of each column (an MLP or the CNN).
    pub column: Box<ModelConfig>,
    /// Number of classes of each column's head; they add up to the network's outputs.
    pub classes: Vec<usize>,
    /// Mix the columns with cross-stitch units after every backbone stage.
    #[serde(default)]
    pub cross_stitch: bool,
    /// Initial weight of a column's own activation in a cross-stitch unit.
    #[serde(default = "nine_tenths")]
    pub stitch_self: f64,
}

fn nine_tenths() -> f64 {
    0.9
}

impl ColumnsConfig {
    /// Checks the rules; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self) -> Result<(), Violation> {
        if !matches!(*self.column, ModelConfig::Mlp(_) | ModelConfig::Cnn(_)) {
            return rules::fail(
                "model.column",
                Rule::NetworkKind {
                    role: "column",
                    allowed: "an MLP or a CNN",
                    got: self.column.kind().to_string(),
                },
            );
        }
        if self.classes.len() < 2 || self.classes.contains(&0) {
            return rules::fail(
                "model.classes",
                Rule::Columns {
                    got: self.classes.clone(),
                },
            );
        }
        Interval::PROBABILITY
            .check(self.stitch_self)
            .map_err(|r| Violation::new("model.stitch_self", r))?;
        self.column.validate()
    }

    /// Builds the columns (in order, so column 0 draws its initial weights first, as a
    /// single network with the same seed would).
    pub fn init(&self, input: [usize; 3], device: &Device) -> Columns {
        let k = self.classes.len();
        let mut mlp = Vec::new();
        let mut cnn = Vec::new();
        for &c in &self.classes {
            match &*self.column {
                ModelConfig::Mlp(m) => mlp.push(m.init(input, c, device)),
                ModelConfig::Cnn(m) => cnn.push(m.init(input, c, device)),
                ModelConfig::Resnet(_)
                | ModelConfig::EfficientNetLite0(_)
                | ModelConfig::Resnet18(_)
                | ModelConfig::Resnet34(_)
                | ModelConfig::Resnet50(_)
                | ModelConfig::MobileNetV2(_)
                | ModelConfig::EfficientNetB0(_)
                | ModelConfig::MobileNetV3Small(_)
                | ModelConfig::Columns(_)
                | ModelConfig::Projected(_)
                | ModelConfig::Vit(_)
                | ModelConfig::Cpc(_) => {}
            }
        }
        let stages = match &*self.column {
            ModelConfig::Mlp(m) => m.hidden.len(),
            _ => 3,
        };
        let off = if k > 1 {
            (1.0 - self.stitch_self) / (k - 1) as f64
        } else {
            0.0
        };
        let alpha: Vec<f32> = (0..k * k)
            .map(|i| if i / k == i % k { self.stitch_self } else { off } as f32)
            .collect();
        let stitch = if self.cross_stitch {
            (0..stages)
                .map(|_| CrossStitch {
                    alpha: Param::from_tensor(Tensor::from_data(
                        TensorData::new(alpha.clone(), [k, k]),
                        device,
                    )),
                })
                .collect()
        } else {
            Vec::new()
        };
        Columns { mlp, cnn, stitch }
    }
}

/// One cross-stitch unit: `x~_i = sum_j alpha[i][j] x_j`.
#[derive(Module, Debug)]
pub struct CrossStitch {
    /// The `K x K` mixing weights.
    pub alpha: Param<Tensor<2>>,
}

/// A column's activation between stages.
enum Activation {
    Map(Tensor<4>),
    Flat(Tensor<2>),
}

impl Activation {
    fn scaled_sum(parts: &[Activation], weights: Tensor<1>) -> Activation {
        let w = |j: usize| weights.clone().narrow(0, j, 1);
        match &parts[0] {
            Activation::Map(_) => {
                let mut acc: Option<Tensor<4>> = None;
                for (j, p) in parts.iter().enumerate() {
                    let Activation::Map(x) = p else {
                        unreachable!()
                    };
                    let term = x.clone() * w(j).reshape([1, 1, 1, 1]);
                    acc = Some(acc.map_or(term.clone(), |a| a + term));
                }
                Activation::Map(acc.expect("at least one column"))
            }
            Activation::Flat(_) => {
                let mut acc: Option<Tensor<2>> = None;
                for (j, p) in parts.iter().enumerate() {
                    let Activation::Flat(x) = p else {
                        unreachable!()
                    };
                    let term = x.clone() * w(j).reshape([1, 1]);
                    acc = Some(acc.map_or(term.clone(), |a| a + term));
                }
                Activation::Flat(acc.expect("at least one column"))
            }
        }
    }

    fn flat(self) -> Tensor<2> {
        match self {
            Activation::Map(x) => x.flatten(1, 3),
            Activation::Flat(x) => x,
        }
    }
}

fn mlp_stage(m: &Mlp, s: usize, x: Activation) -> Activation {
    let b = &m.backbone;
    Activation::Flat(b.dropout.forward(relu(linear(&b.fc[s], x.flat()))))
}

fn cnn_stage(m: &Cnn, s: usize, x: Activation) -> Activation {
    let b = &m.backbone;
    match (s, x) {
        (0, Activation::Map(x)) => Activation::Map(relu(conv2d_max_pool2d(&b.conv1, &b.pool, x))),
        (1, Activation::Map(x)) => Activation::Map(relu(conv2d_max_pool2d(&b.conv2, &b.pool, x))),
        (_, x) => Activation::Flat(b.dropout.forward(relu(linear(&b.fc, x.flat())))),
    }
}

/// Task columns (`mlp.<k>` or `cnn.<k>`) and their cross-stitch units (`stitch.<s>`).
#[derive(Module, Debug)]
pub struct Columns {
    /// MLP columns (empty for CNN columns).
    pub mlp: Vec<Mlp>,
    /// CNN columns (empty for MLP columns).
    pub cnn: Vec<Cnn>,
    /// One unit per backbone stage (empty: no cross-stitching).
    pub stitch: Vec<CrossStitch>,
}

impl Columns {
    /// Number of columns.
    pub fn len(&self) -> usize {
        self.mlp.len().max(self.cnn.len())
    }

    /// Whether there is no column.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn stages(&self) -> usize {
        match self.mlp.first() {
            Some(m) => m.backbone.fc.len(),
            None => 3,
        }
    }

    /// Each column's backbone features `[B, F]`, after the last stage (and stitch).
    pub fn column_features(&self, images: Tensor<4>) -> Vec<Tensor<2>> {
        let k = self.len();
        let mut xs: Vec<Activation> = (0..k).map(|_| Activation::Map(images.clone())).collect();
        for s in 0..self.stages() {
            xs = xs
                .into_iter()
                .enumerate()
                .map(|(c, x)| match self.mlp.get(c) {
                    Some(m) => mlp_stage(m, s, x),
                    None => cnn_stage(&self.cnn[c], s, x),
                })
                .collect();
            if let Some(unit) = self.stitch.get(s) {
                let alpha = unit.alpha.val();
                xs = (0..k)
                    .map(|i| {
                        let row = alpha.clone().slice([i..i + 1, 0..k]).flatten(0, 1);
                        Activation::scaled_sum(&xs, row)
                    })
                    .collect();
            }
        }
        xs.into_iter().map(Activation::flat).collect()
    }

    /// The columns' logits side by side `[B, sum classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let feats = self.column_features(images);
        self.head_forward_each(feats)
    }

    fn head_forward_each(&self, feats: Vec<Tensor<2>>) -> Tensor<2> {
        let logits: Vec<Tensor<2>> = feats
            .into_iter()
            .enumerate()
            .map(|(c, f)| match self.mlp.get(c) {
                Some(m) => linear(&m.head, f),
                None => linear(&self.cnn[c].head, f),
            })
            .collect();
        Tensor::cat(logits, 1)
    }

    /// All columns' features side by side.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        Tensor::cat(self.column_features(images), 1)
    }

    /// The heads' logits for side-by-side column features.
    pub fn head_forward(&self, features: Tensor<2>) -> Tensor<2> {
        let [b, total] = features.dims();
        let width = total / self.len().max(1);
        let parts = (0..self.len())
            .map(|c| features.clone().slice([0..b, c * width..(c + 1) * width]))
            .collect();
        self.head_forward_each(parts)
    }

    /// Each column's head weight `[F, classes]` (Burn's `Linear` layout).
    pub fn head_weights(&self) -> Vec<Tensor<2>> {
        match self.mlp.is_empty() {
            false => self.mlp.iter().map(|m| m.head.weight.val()).collect(),
            true => self.cnn.iter().map(|m| m.head.weight.val()).collect(),
        }
    }

    /// Column `c`'s backbone parameters, flattened, in module order (for the soft-sharing
    /// penalty between corresponding layers).
    pub fn backbone_parameters(&self, c: usize) -> Vec<Tensor<1>> {
        match self.mlp.get(c) {
            Some(m) => super::params::flat_parameters(&m.backbone),
            None => super::params::flat_parameters(&self.cnn[c].backbone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{CnnConfig, MlpConfig};

    fn columns(column: ModelConfig, stitch_self: f64) -> ColumnsConfig {
        ColumnsConfig {
            column: Box::new(column),
            classes: vec![3, 4],
            cross_stitch: true,
            stitch_self,
        }
    }

    #[test]
    fn identity_cross_stitch_equals_independent_columns() {
        let device = Device::flex();
        for (column, input) in [
            (ModelConfig::Mlp(MlpConfig::default()), [1, 8, 8]),
            (ModelConfig::Cnn(CnnConfig::default()), [1, 8, 8]),
        ] {
            let net = columns(column, 1.0).init(input, &device);
            let x = Tensor::<4>::random([2, 1, 8, 8], burn::tensor::Distribution::Default, &device);
            let all = net.forward(x.clone());
            assert_eq!(all.dims(), [2, 7]);
            let alone: Vec<Tensor<2>> = match net.mlp.is_empty() {
                false => net.mlp.iter().map(|m| m.forward(x.clone())).collect(),
                true => net.cnn.iter().map(|m| m.forward(x.clone())).collect(),
            };
            let alone = Tensor::cat(alone, 1);
            let diff = (all - alone).abs().max().into_scalar::<f32>();
            assert_eq!(diff, 0.0);
        }
    }

    #[test]
    fn stitching_mixes_the_columns() {
        let device = Device::flex();
        let net = columns(ModelConfig::Mlp(MlpConfig::default()), 0.5).init([1, 8, 8], &device);
        let x = Tensor::<4>::random([2, 1, 8, 8], burn::tensor::Distribution::Default, &device);
        let mixed = net.forward(x.clone()).slice([0..2, 0..3]);
        let alone = net.mlp[0].forward(x);
        assert!((mixed - alone).abs().max().into_scalar::<f32>() > 1e-4);
        let alpha: Vec<f32> = net.stitch[0].alpha.val().into_data().try_to_vec().unwrap();
        assert_eq!(alpha, vec![0.5, 0.5, 0.5, 0.5]);
    }
}
