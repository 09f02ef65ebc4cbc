//! An encoder's backbone followed by a small MLP instead of a linear classifier: the
//! projection head `g` of SimCLR (Chen et al. 2020, `z = g(f(x))`, with `h = f(x)` the
//! representation kept for downstream tasks) and MoCo, or the late-fusion classifier of
//! the relative-position pretext task (Doersch et al. 2015), which sees the backbone
//! features of `inputs` patches side by side.
//!
//! The backbone's parameters keep the names of the plain network (`backbone.conv1.weight`
//! ...), so a pretrained checkpoint's backbone loads into an MLP, CNN or ResNet of the
//! same shape by name; the projector is `projector.<i>` and its last layer `head`.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::cnn::CnnBackbone;
use super::mlp::MlpBackbone;
use super::resnet::ResNetBackbone;
use super::{ModelConfig, Network};
use crate::rules::{self, Rule, Violation};

/// Hyperparameters of a projected network (`model.type = "projected"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectedConfig {
    /// The network whose backbone is the encoder (an MLP, the CNN or a ResNet; its head
    /// is not built).
    pub encoder: Box<ModelConfig>,
    /// Widths of the projector's hidden layers (ReLU after each); empty for a linear
    /// projection.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Width of the output `z` (the network's outputs, whatever the dataset's classes).
    #[serde(default = "default_outputs")]
    pub outputs: usize,
    /// Feature vectors concatenated before the projector: 1 for one image, 2 for a
    /// pair of patches (relative position).
    #[serde(default = "one")]
    pub inputs: usize,
    /// AMDIM's local heads (a CNN encoder only): one linear map per position of each of
    /// the CNN's two pooled feature maps to `outputs`, named `local.0` and `local.1`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
}

fn default_hidden() -> Vec<usize> {
    vec![128]
}

fn default_outputs() -> usize {
    128
}

fn one() -> usize {
    1
}

impl ProjectedConfig {
    /// A projected `encoder` with SimCLR's shape: one hidden layer, `outputs` wide.
    pub fn new(encoder: ModelConfig, hidden: Vec<usize>, outputs: usize, inputs: usize) -> Self {
        Self {
            encoder: Box::new(encoder),
            hidden,
            outputs,
            inputs,
            local: false,
        }
    }

    /// Checks the rules; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self) -> Result<(), Violation> {
        if !matches!(
            *self.encoder,
            ModelConfig::Mlp(_) | ModelConfig::Cnn(_) | ModelConfig::Resnet(_)
        ) {
            return rules::fail(
                "model.encoder",
                Rule::NetworkKind {
                    role: "encoder",
                    allowed: "an MLP, the CNN or a ResNet",
                    got: self.encoder.kind().to_string(),
                },
            );
        }
        rules::at_least(self.outputs, 1).map_err(|r| Violation::new("model.outputs", r))?;
        rules::at_least(self.inputs, 1).map_err(|r| Violation::new("model.inputs", r))?;
        rules::every_at_least_one(&self.hidden).map_err(|r| Violation::new("model.hidden", r))?;
        if self.local && (!matches!(*self.encoder, ModelConfig::Cnn(_)) || self.inputs != 1) {
            return rules::fail("model.local", Rule::LocalHeads);
        }
        self.encoder.validate()
    }

    /// Builds the network for images of shape `input`: the encoder's backbone (its
    /// weights drawn as the plain network's would be), then the projector.
    pub fn init(&self, input: [usize; 3], device: &Device) -> Projected {
        // The encoder is built whole (one output) and its head dropped: the head's weight
        // `[F, 1]` tells the feature width F.
        let (backbone, width) = match self.encoder.init(input, 1, device) {
            Network::Mlp(m) => (Backbone::Mlp(m.backbone), m.head.weight.dims()[0]),
            Network::Cnn(m) => (Backbone::Cnn(m.backbone), m.head.weight.dims()[0]),
            Network::Resnet(m) => (Backbone::Resnet(m.backbone), m.head.weight.dims()[0]),
            Network::EfficientNetLite(_)
            | Network::ImageNetResNet(_)
            | Network::MobileNetV2(_)
            | Network::EfficientNetB0(_)
            | Network::MobileNetV3Small(_)
            | Network::Columns(_)
            | Network::Projected(_)
            | Network::Vit(_)
            | Network::Cpc(_) => {
                unreachable!("validate() admits MLP, CNN and ResNet encoders only")
            }
        };
        let mut projector = Vec::with_capacity(self.hidden.len());
        let mut from = width * self.inputs;
        for &h in &self.hidden {
            projector.push(LinearConfig::new(from, h).init(device));
            from = h;
        }
        let local = match (&*self.encoder, self.local) {
            (ModelConfig::Cnn(c), true) => c
                .channels
                .iter()
                .map(|&ch| LinearConfig::new(ch, self.outputs).init(device))
                .collect(),
            _ => Vec::new(),
        };
        Projected {
            backbone,
            projector,
            head: LinearConfig::new(from, self.outputs).init(device),
            local,
            inputs: self.inputs,
        }
    }
}

/// The encoder part of a [`Projected`] network.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Backbone {
    /// An MLP's hidden layers.
    Mlp(MlpBackbone),
    /// The CNN's convolutions and fully connected layer.
    Cnn(CnnBackbone),
    /// A ResNet's stem and stages.
    Resnet(ResNetBackbone),
}

impl Backbone {
    /// The representation `h = f(x)`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Backbone::Mlp(b) => b.forward(images),
            Backbone::Cnn(b) => b.forward(images),
            Backbone::Resnet(b) => b.forward(images),
        }
    }
}

/// A backbone with a projection MLP on top.
#[derive(Module, Debug)]
pub struct Projected {
    /// The encoder `f`.
    pub backbone: Backbone,
    /// The projector's hidden layers.
    pub projector: Vec<Linear>,
    /// The projector's output layer.
    pub head: Linear,
    /// AMDIM's local heads, one per feature map (empty without them).
    pub local: Vec<Linear>,
    /// Feature vectors concatenated before the projector.
    inputs: usize,
}

impl Projected {
    /// The representation `h = f(x)` `[B, F]`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.backbone.forward(images)
    }

    /// The projection `g` of concatenated features `[B, inputs * F]`.
    pub fn head_forward(&self, features: Tensor<2>) -> Tensor<2> {
        let mut x = features;
        for layer in &self.projector {
            x = relu(layer.forward(x));
        }
        self.head.forward(x)
    }

    /// Feature vectors the projector takes side by side.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// AMDIM's multiscale outputs: the global `z = g(f(x))` `[B, D]` and, for each of
    /// the CNN encoder's feature maps, its local features `[B, positions, D]` (each
    /// position's channels through its local head); `None` without local heads.
    pub fn multiscale(&self, images: Tensor<4>) -> Option<(Tensor<2>, Vec<Tensor<3>>)> {
        let Backbone::Cnn(cnn) = &self.backbone else {
            return None;
        };
        if self.local.is_empty() {
            return None;
        }
        let (first, second, features) = cnn.feature_maps(images);
        let locals = [first, second]
            .into_iter()
            .zip(&self.local)
            .map(|(map, head)| {
                // [B, C, H, W] -> [B, H*W, C] -> [B, H*W, D]
                head.forward(map.flatten::<3>(2, 3).swap_dims(1, 2))
            })
            .collect();
        Some((self.head_forward(features), locals))
    }

    /// `z = g(f(x))` for images `[B, C, H, W]`. A projector over several inputs sees each
    /// image's features repeated, so that any image batch has outputs of the right shape
    /// (the pair objective itself calls [`Projected::features`] and
    /// [`Projected::head_forward`]).
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let h = self.features(images);
        let k = self.inputs();
        let h = if k > 1 { h.repeat_dim(1, k) } else { h };
        self.head_forward(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::param_infos;

    fn config(encoder: &str, inputs: usize) -> ModelConfig {
        toml::from_str(&format!(
            "type = \"projected\"\ninputs = {inputs}\nhidden = [32]\noutputs = 16\n[encoder]\ntype = \"{encoder}\""
        ))
        .unwrap()
    }

    #[test]
    fn projects_every_encoder_and_keeps_backbone_names() {
        let device = Device::flex();
        for (kind, input) in [
            ("mlp", [1, 8, 8]),
            ("cnn", [1, 28, 28]),
            ("resnet", [1, 8, 8]),
        ] {
            for inputs in [1, 2] {
                let cfg = config(kind, inputs);
                let net = cfg.init(input, 10, &device);
                let x = Tensor::<4>::zeros([3, input[0], input[1], input[2]], &device);
                assert_eq!(net.forward(x.clone()).dims(), [3, 16], "{kind} x{inputs}");
                let Network::Projected(p) = &net else {
                    panic!("not projected")
                };
                assert_eq!(p.inputs(), inputs, "{kind}");
                let plain: ModelConfig = toml::from_str(&format!("type = \"{kind}\"")).unwrap();
                let plain = plain.init(input, 10, &device);
                let backbone = |n: &Network| -> Vec<(String, Vec<usize>)> {
                    param_infos(n)
                        .into_iter()
                        .filter(|p| p.name.starts_with("backbone."))
                        .map(|p| (p.name, p.shape))
                        .collect()
                };
                assert_eq!(backbone(&net), backbone(&plain), "{kind}");
                assert!(
                    param_infos(&net)
                        .iter()
                        .any(|p| p.name == "projector.0.weight")
                );
            }
        }
    }

    #[test]
    fn local_heads_map_each_feature_map_position() {
        let device = Device::flex();
        let mut cfg = ProjectedConfig::new(
            toml::from_str("type = \"cnn\"\nchannels = [4, 8]").unwrap(),
            vec![16],
            12,
            1,
        );
        cfg.local = true;
        let net = cfg.init([1, 28, 28], &device);
        let x = Tensor::<4>::random([3, 1, 28, 28], burn::tensor::Distribution::Default, &device);
        let (global, locals) = net.multiscale(x.clone()).expect("local heads");
        assert_eq!(global.dims(), [3, 12]);
        assert_eq!(locals[0].dims(), [3, 14 * 14, 12]);
        assert_eq!(locals[1].dims(), [3, 7 * 7, 12]);
        let plain: Vec<f32> = net.forward(x).into_data().try_to_vec().unwrap();
        let global: Vec<f32> = global.into_data().try_to_vec().unwrap();
        assert_eq!(plain, global);
        let names: Vec<String> = param_infos(&Network::Projected(net))
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert!(names.contains(&"local.1.weight".to_string()), "{names:?}");
        // A CNN encoder only.
        *cfg.encoder = ModelConfig::default();
        assert_eq!(cfg.validate().unwrap_err().key, "model.local");
    }

    #[test]
    fn rejects_a_nested_projection_and_zero_widths() {
        let mut cfg = ProjectedConfig::new(config("mlp", 1), vec![8], 4, 1);
        let v = cfg.validate().unwrap_err();
        assert_eq!(v.key, "model.encoder");
        assert!(
            matches!(&v.rule, crate::rules::Rule::NetworkKind { got, .. } if got == "projected"),
            "{v}"
        );
        *cfg.encoder = ModelConfig::default();
        cfg.outputs = 0;
        assert_eq!(cfg.validate().unwrap_err().key, "model.outputs");
    }
}
