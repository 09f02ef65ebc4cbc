//! A small vision transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words")
//! with DeiT's optional distillation token (Touvron et al. 2021, "Training data-efficient
//! image transformers & distillation through attention").
//!
//! The image is cut into non-overlapping `patch x patch` squares, each embedded linearly
//! (a convolution with kernel = stride = `patch`); a learned class token (and, with
//! `distillation_token`, a learned distillation token) is prepended, learned position
//! embeddings are added, and pre-norm transformer blocks (multi-head self-attention and a
//! GELU MLP) mix the tokens. The class token's final state, layer-normed, is the feature
//! vector read by `head`; the distillation token's is read by `head_dist`, which DeiT
//! trains against a teacher. At test time the network's logits are the mean of the two
//! heads' logits, as in DeiT.
//!
//! Names: `backbone.patch_embed`, `backbone.cls_token`, `backbone.dist_token`,
//! `backbone.position`, `backbone.blocks.layers.<i>`, `backbone.norm`, `head`,
//! `head_dist`.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::kernels::conv2d;
use crate::rules::{self, Interval, Rule, Violation};

/// Vision transformer hyperparameters (`model.type = "vit"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VitConfig {
    /// Side of the square patches in pixels; must divide the image's height and width.
    pub patch: usize,
    /// Token width (`d_model`).
    pub dim: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Attention heads per block; must divide `dim`.
    pub heads: usize,
    /// Hidden width of each block's MLP, as a multiple of `dim`.
    pub mlp_ratio: usize,
    /// Dropout inside the blocks.
    pub dropout: f64,
    /// DeiT's distillation token and its head (`head_dist`).
    pub distillation_token: bool,
}

impl Default for VitConfig {
    /// A ViT sized for 28x28 images on a CPU: 7x7 patches (16 tokens), width 64, 4 blocks
    /// of 4 heads, MLP ratio 2 (about 140 k parameters), no distillation token.
    fn default() -> Self {
        Self {
            patch: 7,
            dim: 64,
            depth: 4,
            heads: 4,
            mlp_ratio: 2,
            dropout: 0.0,
            distillation_token: false,
        }
    }
}

impl VitConfig {
    /// Checks the hyperparameters.
    pub fn validate(&self) -> Result<(), Violation> {
        for (key, v) in [
            ("model.patch", self.patch),
            ("model.dim", self.dim),
            ("model.depth", self.depth),
            ("model.mlp_ratio", self.mlp_ratio),
        ] {
            rules::at_least(v, 1).map_err(|r| Violation::new(key, r))?;
        }
        if self.heads == 0 || !self.dim.is_multiple_of(self.heads) {
            return rules::fail(
                "model.heads",
                Rule::Divides {
                    other: "model.dim",
                    value: self.dim,
                    got: self.heads,
                },
            );
        }
        Interval::UNIT_OPEN
            .check(self.dropout)
            .map_err(|r| Violation::new("model.dropout", r))?;
        Ok(())
    }

    /// Checks that the patches tile `[C, H, W]` images.
    pub fn check_input(&self, input: [usize; 3]) -> Result<(), String> {
        let [_, h, w] = input;
        if self.patch > h || !h.is_multiple_of(self.patch) || !w.is_multiple_of(self.patch) {
            return Err(format!(
                "a ViT with {p}x{p} patches needs images whose sides are multiples of {p}, got {h}x{w}",
                p = self.patch
            ));
        }
        Ok(())
    }

    /// Tokens per image: the patches plus the class (and distillation) token.
    pub fn tokens(&self, input: [usize; 3]) -> usize {
        let [_, h, w] = input;
        (h / self.patch) * (w / self.patch) + 1 + usize::from(self.distillation_token)
    }

    /// Builds the ViT for `[C, H, W]` inputs (whose sides `patch` divides).
    pub fn init(&self, input: [usize; 3], num_classes: usize, device: &Device) -> Vit {
        let [c, _, _] = input;
        // ViT and DeiT draw the tokens and position embeddings from N(0, 0.02).
        let token = |n: usize| {
            Param::from_tensor(Tensor::<3>::random(
                [1, n, self.dim],
                Distribution::Normal(0.0, 0.02),
                device,
            ))
        };
        let blocks = TransformerEncoderConfig::new(
            self.dim,
            self.dim * self.mlp_ratio,
            self.heads,
            self.depth,
        )
        .with_dropout(self.dropout)
        .with_norm_first(true)
        .init(device);
        Vit {
            backbone: VitBackbone {
                patch_embed: Conv2dConfig::new([c, self.dim], [self.patch, self.patch])
                    .with_stride([self.patch, self.patch])
                    .init(device),
                cls_token: token(1),
                dist_token: self.distillation_token.then(|| token(1)),
                position: token(self.tokens(input)),
                blocks,
                norm: LayerNormConfig::new(self.dim).init(device),
            },
            head: LinearConfig::new(self.dim, num_classes).init(device),
            head_dist: self
                .distillation_token
                .then(|| LinearConfig::new(self.dim, num_classes).init(device)),
        }
    }
}

/// The ViT's token mixer: patch embedding, tokens, position embeddings, blocks, norm.
#[derive(Module, Debug)]
pub struct VitBackbone {
    pub(crate) patch_embed: Conv2d,
    pub(crate) cls_token: Param<Tensor<3>>,
    pub(crate) dist_token: Option<Param<Tensor<3>>>,
    pub(crate) position: Param<Tensor<3>>,
    pub(crate) blocks: TransformerEncoder,
    pub(crate) norm: LayerNorm,
}

impl VitBackbone {
    /// The final, layer-normed states of all tokens `[B, T, dim]`: the class token first,
    /// then the distillation token (if any), then the patches.
    pub fn tokens(&self, images: Tensor<4>) -> Tensor<3> {
        let [b, _, _, _] = images.dims();
        // [B, dim, H/p, W/p] -> [B, patches, dim]
        let patches = conv2d(&self.patch_embed, images)
            .flatten::<3>(2, 3)
            .swap_dims(1, 2);
        let [_, _, dim] = patches.dims();
        let mut tokens = vec![self.cls_token.val().expand([b, 1, dim])];
        if let Some(dist) = &self.dist_token {
            tokens.push(dist.val().expand([b, 1, dim]));
        }
        tokens.push(patches);
        let x = Tensor::cat(tokens, 1) + self.position.val();
        self.norm
            .forward(self.blocks.forward(TransformerEncoderInput::new(x)))
    }

    /// The class token's final state `[B, dim]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        token(self.tokens(images), 0)
    }
}

/// Row `index` of every sequence: `[B, T, D]` -> `[B, D]`.
fn token(tokens: Tensor<3>, index: usize) -> Tensor<2> {
    let [b, _, d] = tokens.dims();
    tokens.narrow(1, index, 1).reshape([b, d])
}

/// A vision transformer classifier, optionally with DeiT's distillation head.
#[derive(Module, Debug)]
pub struct Vit {
    /// Patch embedding, tokens and transformer blocks.
    pub backbone: VitBackbone,
    /// The class token's classifier.
    pub head: Linear,
    /// The distillation token's classifier (DeiT), trained against a teacher.
    pub head_dist: Option<Linear>,
}

impl Vit {
    /// The class token's features `[B, dim]`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.backbone.forward(images)
    }

    /// The class head's and the distillation head's logits `[B, classes]` (the second
    /// `None` without a distillation token).
    pub fn heads(&self, images: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>) {
        let tokens = self.backbone.tokens(images);
        let cls = self.head.forward(token(tokens.clone(), 0));
        let dist = self
            .head_dist
            .as_ref()
            .map(|head| head.forward(token(tokens, 1)));
        (cls, dist)
    }

    /// Class logits: the class head's, averaged with the distillation head's if there is
    /// one (DeiT's inference rule).
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self.heads(images) {
            (cls, Some(dist)) => (cls + dist).div_scalar(2.0),
            (cls, None) => cls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::param_infos;

    #[test]
    fn shapes_names_and_the_averaged_heads() {
        let device = Device::flex();
        let config = VitConfig {
            distillation_token: true,
            ..VitConfig::default()
        };
        let vit = config.init([1, 28, 28], 10, &device);
        let x = Tensor::<4>::random([3, 1, 28, 28], Distribution::Default, &device);
        assert_eq!(vit.backbone.tokens(x.clone()).dims(), [3, 18, 64]);
        let (cls, dist) = vit.heads(x.clone());
        let dist = dist.expect("a distillation head");
        let mean: Vec<f32> = ((cls + dist) / 2.0).into_data().try_to_vec().unwrap();
        let forward: Vec<f32> = vit.forward(x).into_data().try_to_vec().unwrap();
        assert_eq!(mean, forward);
        let names: Vec<String> = param_infos(&crate::models::Network::Vit(vit))
            .into_iter()
            .map(|p| p.name)
            .collect();
        for name in [
            "backbone.patch_embed.weight",
            "backbone.cls_token",
            "backbone.dist_token",
            "backbone.position",
            "backbone.norm.gamma",
            "head.weight",
            "head_dist.weight",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        // Default size: about 140 k parameters (the README quotes it).
        let plain = VitConfig::default().init([1, 28, 28], 10, &device);
        let count: usize = param_infos(&crate::models::Network::Vit(plain))
            .iter()
            .map(|p| p.numel())
            .sum();
        assert!((100_000..200_000).contains(&count), "{count}");
    }

    #[test]
    fn the_class_token_sees_every_patch() {
        // Attention mixes tokens: changing one corner patch changes the class feature.
        let device = Device::flex();
        let vit = VitConfig::default().init([1, 28, 28], 10, &device);
        let mut pixels = vec![0.0f32; 28 * 28];
        let a = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(pixels.clone(), [1, 1, 28, 28]),
            &device,
        );
        pixels[27 * 28 + 27] = 1.0;
        let b = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(pixels, [1, 1, 28, 28]),
            &device,
        );
        let diff: f32 = (vit.features(a) - vit.features(b))
            .abs()
            .sum()
            .into_scalar();
        assert!(diff > 1e-4, "{diff}");
    }

    #[test]
    fn rejects_bad_shapes() {
        let config = VitConfig::default();
        assert!(config.check_input([1, 28, 28]).is_ok());
        assert!(
            config
                .check_input([1, 8, 8])
                .unwrap_err()
                .contains("multiples of 7")
        );
        let bad = VitConfig {
            heads: 3,
            ..VitConfig::default()
        };
        let v = bad.validate().unwrap_err();
        assert_eq!(v.key, "model.heads");
        assert_eq!(
            v.rule,
            crate::rules::Rule::Divides {
                other: "model.dim",
                value: VitConfig::default().dim,
                got: 3
            }
        );
    }
}
