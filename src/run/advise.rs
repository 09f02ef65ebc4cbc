//! The transfer quadrant advisor. Which layers to reuse depends on the target data's
//! **size** and its **similarity** to the source data (the four quadrants of the
//! transfer-learning survey this project follows; Yosinski et al. 2014 measure the same
//! trade-off layer by layer):
//!
//! 1. large and dissimilar: train the whole network (from the pretrained weights);
//! 2. large and similar: fine-tune the upper layers at lr/10, freeze the rest;
//! 3. small and dissimilar: train the upper layers, freeze the rest (watch overfitting);
//! 4. small and similar: freeze the backbone, train only the classifier.
//!
//! Size is measured as training examples per class. Similarity is measured, not asked:
//! a linear probe on the pretrained backbone's frozen features against the same probe on
//! a randomly initialised backbone (validation accuracy); pretrained features that beat
//! random ones by a clear margin come from a similar source. As further evidence the
//! advisor reports a feature-statistics distance between source and target images.

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::data::{PreparedData, prepare_data};
use crate::engine::groups::GroupRule;
use crate::engine::{LogFormat, TrainOptions};
use crate::models::{ModelConfig, Network};
use crate::run::config::RunConfig;
use crate::run::restore::load_run;
use crate::run::strategy::StrategyConfig;
use crate::run::{RunError, train};
use crate::transfer::{FeatureStats, LinearProbe, LinearProbeConfig, TransferError};

/// One of the four quadrants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quadrant {
    /// Quadrant 1: large target set, dissimilar to the source.
    LargeDissimilar,
    /// Quadrant 2: large target set, similar to the source.
    LargeSimilar,
    /// Quadrant 3: small target set, dissimilar to the source.
    SmallDissimilar,
    /// Quadrant 4: small target set, similar to the source.
    SmallSimilar,
}

impl Quadrant {
    /// The quadrant of a target set.
    pub fn of(large: bool, similar: bool) -> Self {
        match (large, similar) {
            (true, false) => Quadrant::LargeDissimilar,
            (true, true) => Quadrant::LargeSimilar,
            (false, false) => Quadrant::SmallDissimilar,
            (false, true) => Quadrant::SmallSimilar,
        }
    }

    /// The survey's number (1-4).
    pub fn number(self) -> u8 {
        match self {
            Quadrant::LargeDissimilar => 1,
            Quadrant::LargeSimilar => 2,
            Quadrant::SmallDissimilar => 3,
            Quadrant::SmallSimilar => 4,
        }
    }

    /// The recommended policy, in words.
    pub fn policy(self) -> &'static str {
        match self {
            Quadrant::LargeDissimilar => {
                "train the whole network, starting from the pretrained weights"
            }
            Quadrant::LargeSimilar => "fine-tune the upper layers at lr/10, freeze the lower ones",
            Quadrant::SmallDissimilar => {
                "train the upper layers, freeze the lower ones (watch the validation loss for overfitting)"
            }
            Quadrant::SmallSimilar => {
                "freeze the backbone, train only the classifier (linear probe)"
            }
        }
    }
}

/// Thresholds and probe settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvisorConfig {
    /// A target with fewer training examples per class than this is small.
    pub small_below: usize,
    /// Pretrained features are "similar" when their probe beats the random backbone's by
    /// at least this much validation accuracy.
    pub similar_margin: f64,
    /// Epochs of each linear probe.
    pub probe_epochs: usize,
    /// Learning rate of each linear probe.
    pub probe_lr: f64,
}

impl Default for AdvisorConfig {
    fn default() -> Self {
        Self {
            small_below: 100,
            similar_margin: 0.05,
            probe_epochs: 10,
            probe_lr: 1e-2,
        }
    }
}

/// What the advisor measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Training examples per class in the target set (mean over classes).
    pub examples_per_class: f64,
    /// Validation accuracy of a linear probe on the pretrained backbone's features.
    pub probe_pretrained: f64,
    /// The same probe on a randomly initialised backbone.
    pub probe_random: f64,
    /// Mean standardised difference of backbone-feature means between source and target
    /// images (0 = same statistics); `None` when the source data could not be read.
    pub feature_distance: Option<f64>,
}

/// The advisor's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advice {
    /// The quadrant.
    pub quadrant: Quadrant,
    /// The measurements behind it.
    pub evidence: Evidence,
    /// The recommended run: the target config with `[init]`, `[[groups]]` and
    /// `[strategy]` set (write it with `to_toml` and run it with `mentor train`).
    pub config: RunConfig,
}

/// `(lower, upper)` backbone patterns of a model: the layers a policy freezes and the
/// ones it fine-tunes or trains.
pub fn lower_and_upper(model: &ModelConfig) -> (Vec<String>, Vec<String>) {
    match model {
        ModelConfig::Cnn(_) => (vec!["backbone.conv*".into()], vec!["backbone.fc".into()]),
        ModelConfig::Mlp(m) => {
            let n = m.hidden.len();
            let lower = (0..n.saturating_sub(1))
                .map(|i| format!("backbone.fc.{i}"))
                .collect();
            (lower, vec![format!("backbone.fc.{}", n.saturating_sub(1))])
        }
        ModelConfig::Resnet(r) => {
            let blocks: usize = r.blocks.iter().sum();
            let mut lower = vec!["backbone.stem*".to_string()];
            lower.extend((0..blocks - 1).map(|i| format!("backbone.blocks.{i}")));
            (lower, vec![format!("backbone.blocks.{}", blocks - 1)])
        }
        // EfficientNet-Lite: the stem and all MBConv blocks but the last, then the last
        // block and the 1x1 head convolution with its batch norm.
        ModelConfig::EfficientNetLite0(e) => {
            let blocks = e.blocks().len();
            let mut lower = vec!["backbone.conv_stem".to_string(), "backbone.bn0".into()];
            lower.extend((0..blocks - 1).map(|i| format!("backbone.blocks.{i}")));
            let upper = vec![
                format!("backbone.blocks.{}", blocks - 1),
                "backbone.conv_head".into(),
                "backbone.bn1".into(),
            ];
            (lower, upper)
        }
        // torchvision's ResNets: the stem and the first three stages, then the last.
        ModelConfig::Resnet18(_) | ModelConfig::Resnet34(_) | ModelConfig::Resnet50(_) => (
            ["conv1", "bn1", "layer1", "layer2", "layer3"]
                .map(|m| format!("backbone.{m}"))
                .to_vec(),
            vec!["backbone.layer4".into()],
        ),
        // MobileNetV2, EfficientNet-B0 and MobileNetV3-Small: the stem and all blocks but
        // the last, then the last block, the last convolution (and V3's 1024-wide layer).
        ModelConfig::MobileNetV2(_)
        | ModelConfig::EfficientNetB0(_)
        | ModelConfig::MobileNetV3Small(_) => {
            let blocks = match model {
                ModelConfig::MobileNetV2(_) => 17,
                ModelConfig::EfficientNetB0(_) => 16,
                _ => 11,
            };
            let mut lower = vec!["backbone.stem".to_string()];
            lower.extend((0..blocks - 1).map(|i| format!("backbone.blocks.{i}")));
            let mut upper = vec![
                format!("backbone.blocks.{}", blocks - 1),
                "backbone.last".into(),
            ];
            if matches!(model, ModelConfig::MobileNetV3Small(_)) {
                upper.push("backbone.pre_logits".into());
            }
            (lower, upper)
        }
        // The backbone of a projected network has its encoder's names.
        ModelConfig::Projected(p) => lower_and_upper(&p.encoder),
        ModelConfig::Cpc(c) => lower_and_upper(&c.encoder),
        // A ViT: the embeddings and all blocks but the last, then the last block and norm.
        ModelConfig::Vit(v) => {
            let mut lower: Vec<String> = ["patch_embed", "cls_token", "dist_token", "position"]
                .iter()
                .filter(|n| v.distillation_token || **n != "dist_token")
                .map(|n| format!("backbone.{n}*"))
                .collect();
            lower.extend((0..v.depth - 1).map(|i| format!("backbone.blocks.layers.{i}")));
            let last = format!("backbone.blocks.layers.{}", v.depth - 1);
            (lower, vec![last, "backbone.norm".into()])
        }
        // Multitask columns are not a transfer source; nothing to split.
        ModelConfig::Columns(_) => (Vec::new(), Vec::new()),
    }
}

/// The recommended run for `quadrant`, starting from `target`.
pub fn recommended_config(target: &RunConfig, pretrained: &Path, quadrant: Quadrant) -> RunConfig {
    let mut c = target.clone();
    c.init.pretrained = Some(pretrained.to_path_buf());
    c.init.retrain.clear();
    c.strategy = StrategyConfig::Supervised {};
    let (lower, upper) = lower_and_upper(&c.model);
    let rule = |pattern: &String, lr_mult: f64, frozen: bool| GroupRule {
        pattern: pattern.clone(),
        lr_mult,
        frozen,
        unfreeze_at: None,
        freeze_bn: true,
    };
    c.groups = match quadrant {
        Quadrant::LargeDissimilar => Vec::new(),
        Quadrant::LargeSimilar => lower
            .iter()
            .map(|p| rule(p, 1.0, true))
            .chain(upper.iter().map(|p| rule(p, 0.1, false)))
            .collect(),
        Quadrant::SmallDissimilar => lower.iter().map(|p| rule(p, 1.0, true)).collect(),
        Quadrant::SmallSimilar => {
            c.strategy = StrategyConfig::LinearProbe(LinearProbeConfig::default());
            vec![rule(&"backbone".to_string(), 1.0, true)]
        }
    };
    c
}

fn probe(
    target: &RunConfig,
    data: &PreparedData,
    pretrained: Option<&Path>,
    cfg: &AdvisorConfig,
    out: &Path,
) -> Result<f64, RunError> {
    let mut c = target.clone();
    c.init.pretrained = pretrained.map(Path::to_path_buf);
    c.init.retrain.clear();
    c.init.keep_head = false;
    c.groups.clear();
    c.epochs = cfg.probe_epochs;
    c.lr = cfg.probe_lr;
    c.schedule = Default::default();
    c.strategy = StrategyConfig::LinearProbe(LinearProbeConfig::default());
    let mut objective = LinearProbe::new(&LinearProbeConfig::default(), &data.train);
    let options = TrainOptions {
        log: LogFormat::Quiet,
        ..TrainOptions::new(out)
    };
    let (summary, _) = train(&c, data, &mut objective, &options)?;
    Ok(summary.best_val_accuracy)
}

/// Why the advisor could not answer.
#[derive(Debug, thiserror::Error)]
pub enum AdviceError {
    /// A probe run failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The pretrained network could not be loaded.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// The target has no validation split to measure the probes on.
    #[error("the advisor needs a validation split: set data.val_fraction > 0")]
    NoValidation,
}

fn feature_distance(net: &Network, source: &Dataset, target: &Dataset) -> f64 {
    let cap = |d: &Dataset| d.select(&(0..d.len().min(2000)).collect::<Vec<_>>());
    let s = FeatureStats::measure(net, &cap(source));
    let t = FeatureStats::measure(net, &cap(target));
    s.standardized_mean_difference(&t)
}

/// Measures the target against the pretrained network and recommends a policy; the
/// probe runs go into `workdir`.
pub fn advise(
    pretrained: &Path,
    target: &RunConfig,
    data: &PreparedData,
    cfg: &AdvisorConfig,
    workdir: &Path,
) -> Result<Advice, AdviceError> {
    if data.val.is_none() {
        return Err(AdviceError::NoValidation);
    }
    let counts = data.train.class_counts();
    let examples_per_class =
        data.train.len() as f64 / counts.iter().filter(|&&c| c > 0).count().max(1) as f64;
    let probe_pretrained = probe(
        target,
        data,
        Some(pretrained),
        cfg,
        &workdir.join("probe-pretrained"),
    )?;
    let probe_random = probe(target, data, None, cfg, &workdir.join("probe-random"))?;
    // The distance needs the source's own data, which only a mentor checkpoint names; a
    // weights file (.pth, .safetensors) is advised on the probes alone.
    let feature_distance = if crate::transfer::is_weights_file(pretrained) {
        None
    } else {
        let source = load_run(pretrained, &Device::flex()).map_err(TransferError::from)?;
        prepare_data(&source.config.data, source.config.seed)
            .ok()
            .map(|src| feature_distance(&source.loaded.network, &src.test, &data.train))
    };
    let large = examples_per_class >= cfg.small_below as f64;
    let similar = probe_pretrained - probe_random >= cfg.similar_margin;
    let quadrant = Quadrant::of(large, similar);
    Ok(Advice {
        quadrant,
        evidence: Evidence {
            examples_per_class,
            probe_pretrained,
            probe_random,
            feature_distance,
        },
        config: recommended_config(target, pretrained, quadrant),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadrants_follow_size_and_similarity() {
        assert_eq!(Quadrant::of(true, false).number(), 1);
        assert_eq!(Quadrant::of(true, true).number(), 2);
        assert_eq!(Quadrant::of(false, false).number(), 3);
        assert_eq!(Quadrant::of(false, true).number(), 4);
    }

    #[test]
    fn recommended_configs_validate_and_cover_the_backbone() {
        let target = RunConfig {
            model: ModelConfig::Cnn(Default::default()),
            ..Default::default()
        };
        for q in [
            Quadrant::LargeDissimilar,
            Quadrant::LargeSimilar,
            Quadrant::SmallDissimilar,
            Quadrant::SmallSimilar,
        ] {
            let c = recommended_config(&target, Path::new("p.ckpt"), q);
            c.validate().unwrap();
            let back = RunConfig::from_toml(&c.to_toml(), "advice").unwrap();
            assert_eq!(back, c);
        }
        let c = recommended_config(&target, Path::new("p.ckpt"), Quadrant::LargeSimilar);
        assert_eq!(c.groups.len(), 2);
        assert!(c.groups[0].frozen && !c.groups[1].frozen && c.groups[1].lr_mult == 0.1);
        let c = recommended_config(&target, Path::new("p.ckpt"), Quadrant::SmallSimilar);
        assert!(matches!(c.strategy, StrategyConfig::LinearProbe(_)));
    }

    #[test]
    fn lower_and_upper_split_every_backbone_exactly_once() {
        use crate::models::param_infos;
        use crate::models::pattern_selects;
        let device = burn::tensor::Device::flex();
        for (kind, input) in [
            ("mlp", [1, 8, 8]),
            ("cnn", [1, 8, 8]),
            ("resnet", [1, 8, 8]),
            ("vit", [1, 8, 8]),
            ("efficientnet-lite0", [3, 32, 32]),
            ("resnet18", [3, 32, 32]),
            ("resnet50", [3, 32, 32]),
            ("mobilenet-v2", [3, 32, 32]),
            ("efficientnet-b0", [3, 32, 32]),
            ("mobilenet-v3-small", [3, 32, 32]),
        ] {
            let model: ModelConfig = toml::from_str(&format!("type = \"{kind}\"")).unwrap();
            let (lower, upper) = lower_and_upper(&model);
            let names: Vec<String> = param_infos(&model.init(input, 3, &device))
                .into_iter()
                .map(|p| p.name)
                .filter(|n| n.starts_with("backbone."))
                .collect();
            for p in lower.iter().chain(&upper) {
                assert!(names.iter().any(|n| pattern_selects(p, n)), "{kind}: {p}");
            }
            for n in &names {
                let hits = lower.iter().chain(&upper).filter(|p| pattern_selects(p, n));
                assert_eq!(hits.count(), 1, "{kind}: {n}");
            }
        }
    }
}
