//! The network of Contrastive Predictive Coding on images (van den Oord, Li & Vinyals
//! 2018, "Representation Learning with Contrastive Predictive Coding"; Henaff et al.
//! 2019 for the patch grid): the image is cut into overlapping `patch x patch` squares
//! every `stride` pixels, a grid ordered top-left to bottom-right; an encoder (an MLP's
//! or the CNN's backbone, built for patch-sized inputs) maps every patch to a code
//! `z_{r,c}`; an autoregressive context network (a GRU) runs down each column of the
//! grid, so its state `c_{r,c}` has seen the codes of rows `0..=r` of that column and
//! nothing below; linear predictors `W_k` (one per step `k = 1..=steps`) map `c_{r,c}` to
//! a guess of `z_{r+k,c}`, the code `k` rows further down (see [`crate::ssl::cpc`] for
//! the loss).
//!
//! Downstream tasks read the patch codes average-pooled over a `pool x pool` split of
//! the grid, concatenated (features `[B, pool^2 F]`). The papers mean-pool the whole
//! grid (`pool = 1`) for ImageNet, whose classes do not depend on where an object lies;
//! a digit's class does, and on 28x28 images a whole-grid mean of even an untrained
//! encoder's codes is a poor representation, so the default keeps a 2x2 layout. The
//! network has no classifier: its outputs are those features.
//!
//! Names: `backbone.*` (the encoder's, as in the plain network), `context.*`,
//! `predictors.<k-1>`.

use burn::module::Module;
use burn::nn::gru::{Gru, GruConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::module::unfold4d;
use burn::tensor::ops::UnfoldOptions;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::projected::Backbone;
use super::{ModelConfig, Network};
use crate::rules::{self, Rule, Violation};

/// CPC network hyperparameters (`model.type = "cpc"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpcConfig {
    /// The network whose backbone encodes each patch (an MLP or the CNN; its head is not
    /// built).
    pub encoder: Box<ModelConfig>,
    /// Side of the square patches in pixels.
    #[serde(default = "default_patch")]
    pub patch: usize,
    /// Pixels between neighbouring patches (patches overlap when `stride < patch`).
    #[serde(default = "default_stride")]
    pub stride: usize,
    /// Width of the context network's state.
    #[serde(default = "default_context")]
    pub context: usize,
    /// Rows ahead that the context predicts (one predictor per step).
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// The features pool the codes over a `pool x pool` split of the grid.
    #[serde(default = "default_pool")]
    pub pool: usize,
}

fn default_pool() -> usize {
    2
}

fn default_patch() -> usize {
    8
}
fn default_stride() -> usize {
    4
}
fn default_context() -> usize {
    128
}
fn default_steps() -> usize {
    2
}

impl CpcConfig {
    /// CPC over `encoder` with 8x8 patches every 4 pixels (a 6x6 grid on 28x28 images,
    /// half-overlapping as in the paper), a 128-wide context and 2 steps.
    pub fn new(encoder: ModelConfig) -> Self {
        Self {
            encoder: Box::new(encoder),
            patch: default_patch(),
            stride: default_stride(),
            context: default_context(),
            steps: default_steps(),
            pool: default_pool(),
        }
    }

    /// Checks the rules; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self) -> Result<(), Violation> {
        if !matches!(*self.encoder, ModelConfig::Mlp(_) | ModelConfig::Cnn(_)) {
            return rules::fail(
                "model.encoder",
                Rule::NetworkKind {
                    role: "patch encoder",
                    allowed: "an MLP or the CNN",
                    got: self.encoder.kind().to_string(),
                },
            );
        }
        for (key, v) in [
            ("model.patch", self.patch),
            ("model.stride", self.stride),
            ("model.context", self.context),
            ("model.steps", self.steps),
            ("model.pool", self.pool),
        ] {
            rules::at_least(v, 1).map_err(|r| Violation::new(key, r))?;
        }
        self.encoder.validate()
    }

    /// The patch grid's (rows, columns) on `[C, H, W]` images.
    pub fn grid(&self, input: [usize; 3]) -> (usize, usize) {
        let [_, h, w] = input;
        let cells = |side: usize| {
            if side < self.patch {
                0
            } else {
                (side - self.patch) / self.stride + 1
            }
        };
        (cells(h), cells(w))
    }

    /// Checks that the grid has more rows than prediction steps.
    pub fn check_input(&self, input: [usize; 3]) -> Result<(), String> {
        let (rows, cols) = self.grid(input);
        if rows <= self.steps || cols < self.pool || rows < self.pool {
            return Err(format!(
                "CPC with {p}x{p} patches every {s} pixels makes a {rows}x{cols} grid on {h}x{w} images; predicting {k} rows ahead needs more than {k} rows, and pooling {q}x{q} at least {q} rows and columns",
                p = self.patch,
                s = self.stride,
                h = input[1],
                w = input[2],
                k = self.steps,
                q = self.pool
            ));
        }
        Ok(())
    }

    /// Builds the network for `[C, H, W]` images.
    pub fn init(&self, input: [usize; 3], device: &Device) -> Cpc {
        let patch = [input[0], self.patch, self.patch];
        let (backbone, width) = match self.encoder.init(patch, 1, device) {
            Network::Mlp(m) => (Backbone::Mlp(m.backbone), m.head.weight.dims()[0]),
            Network::Cnn(m) => (Backbone::Cnn(m.backbone), m.head.weight.dims()[0]),
            _ => unreachable!("validate() admits MLP and CNN encoders only"),
        };
        Cpc {
            backbone,
            context: GruConfig::new(width, self.context, true).init(device),
            predictors: (0..self.steps)
                .map(|_| LinearConfig::new(self.context, width).init(device))
                .collect(),
            patch: self.patch,
            stride: self.stride,
            pool: self.pool,
        }
    }
}

/// The CPC network: patch encoder, context GRU and step predictors.
#[derive(Module, Debug)]
pub struct Cpc {
    /// The patch encoder.
    pub backbone: Backbone,
    /// The autoregressive context network, run down each column of the grid.
    pub context: Gru,
    /// `W_k` for `k = 1..=steps`: context state -> predicted code `k` rows below.
    pub predictors: Vec<Linear>,
    patch: usize,
    stride: usize,
    pool: usize,
}

impl Cpc {
    /// The patches of `[B, C, H, W]` images as `[B * rows * cols, C, patch, patch]`, row
    /// after row, and the grid's (rows, cols).
    pub fn patches(&self, images: Tensor<4>) -> (Tensor<4>, usize, usize) {
        let [b, c, h, w] = images.dims();
        let cells = |side: usize| (side - self.patch) / self.stride + 1;
        let (rows, cols) = (cells(h), cells(w));
        let options = UnfoldOptions::new([self.stride, self.stride], [0, 0], [1, 1]);
        // [B, C*p*p, rows*cols] -> [B, rows*cols, C*p*p] -> [B*rows*cols, C, p, p]
        let unfolded = unfold4d(images, [self.patch, self.patch], options).swap_dims(1, 2);
        let patches = unfolded.reshape([b * rows * cols, c, self.patch, self.patch]);
        (patches, rows, cols)
    }

    /// The patch codes `[B, rows, cols, F]`.
    pub fn codes(&self, images: Tensor<4>) -> Tensor<4> {
        let b = images.dims()[0];
        let (patches, rows, cols) = self.patches(images);
        let z = self.backbone.forward(patches);
        let f = z.dims()[1];
        z.reshape([b, rows, cols, f])
    }

    /// The context states `[B, cols, rows, context]` of codes `[B, rows, cols, F]`: the
    /// GRU runs down each column, so state `(c, r)` has seen rows `0..=r` only.
    pub fn context_states(&self, codes: Tensor<4>) -> Tensor<4> {
        let [b, rows, cols, f] = codes.dims();
        let columns = codes.swap_dims(1, 2).reshape([b * cols, rows, f]);
        let states = self.context.forward(columns, None);
        let width = states.dims()[2];
        states.reshape([b, cols, rows, width])
    }

    /// The features downstream tasks read: the mean patch code of each region of a
    /// `pool x pool` split of the grid, region after region (row-major), `[B, pool^2 F]`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        let z = self.codes(images);
        let [b, rows, cols, f] = z.dims();
        let q = self.pool;
        let span = |i: usize, n: usize| (i * n / q, (i + 1) * n / q);
        let mut regions = Vec::with_capacity(q * q);
        for i in 0..q {
            let (r0, r1) = span(i, rows);
            for j in 0..q {
                let (c0, c1) = span(j, cols);
                let region = z.clone().narrow(1, r0, r1 - r0).narrow(2, c0, c1 - c0);
                regions.push(region.reshape([b, (r1 - r0) * (c1 - c0), f]).mean_dim(1));
            }
        }
        Tensor::cat(regions, 2).reshape([b, q * q * f])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn config() -> CpcConfig {
        let mut c = CpcConfig::new(toml::from_str("type = \"mlp\"\nhidden = [16]").unwrap());
        c.context = 8;
        c
    }

    #[test]
    fn patches_are_the_crops_in_grid_order() {
        let device = Device::flex();
        let cpc = config().init([2, 28, 28], &device);
        // Pixel value encodes (channel, y, x).
        let pixels: Vec<f32> = (0..2 * 28 * 28).map(|i| i as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [1, 2, 28, 28]), &device);
        let (patches, rows, cols) = cpc.patches(x);
        assert_eq!((rows, cols), (6, 6));
        assert_eq!(patches.dims(), [36, 2, 8, 8]);
        let values: Vec<f32> = patches.into_data().try_to_vec().unwrap();
        // Patch (row 2, col 3), channel 1, pixel (5, 6) is image pixel (1, 8 + 5, 12 + 6).
        let index = (2 * 6 + 3) * 128 + 64 + 5 * 8 + 6;
        assert_eq!(values[index], (28 * 28 + (8 + 5) * 28 + 12 + 6) as f32);
    }

    #[test]
    fn context_states_never_see_rows_below() {
        // Changing the codes of the last row changes no state above it.
        let device = Device::flex();
        let cpc = config().init([1, 28, 28], &device);
        let codes =
            Tensor::<4>::random([2, 6, 6, 16], burn::tensor::Distribution::Default, &device);
        let mut below = codes.clone();
        below = below.slice_assign(
            [0..2, 5..6, 0..6, 0..16],
            Tensor::ones([2, 1, 6, 16], &device),
        );
        let a = cpc.context_states(codes).narrow(2, 0, 5);
        let b = cpc.context_states(below.clone()).narrow(2, 0, 5);
        let diff: f32 = (a - b).abs().max().into_scalar();
        assert_eq!(diff, 0.0);
        assert_eq!(cpc.context_states(below).dims(), [2, 6, 6, 8]);
    }

    #[test]
    fn features_pool_the_codes_per_region() {
        let device = Device::flex();
        let cpc = config().init([1, 28, 28], &device);
        let x = Tensor::<4>::random([2, 1, 28, 28], burn::tensor::Distribution::Default, &device);
        let features = cpc.features(x.clone());
        assert_eq!(features.dims(), [2, 4 * 16]);
        // Region (1, 0): rows 3..6, columns 0..3 of the 6x6 grid.
        let codes = cpc.codes(x);
        let expected = codes
            .narrow(1, 3, 3)
            .narrow(2, 0, 3)
            .reshape([2, 9, 16])
            .mean_dim(1)
            .reshape([2, 16]);
        let got = features.narrow(1, 2 * 16, 16);
        let diff: f32 = (got - expected).abs().max().into_scalar();
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn checks_the_grid() {
        let c = config();
        assert!(c.check_input([1, 28, 28]).is_ok());
        assert!(c.check_input([1, 8, 8]).unwrap_err().contains("1x1 grid"));
        let mut bad = config();
        *bad.encoder = ModelConfig::Resnet(Default::default());
        assert_eq!(bad.validate().unwrap_err().key, "model.encoder");
    }
}
