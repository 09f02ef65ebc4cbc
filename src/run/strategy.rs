//! The strategy of a run (`[strategy]`): what each training step minimises. One tagged
//! enum, so one TOML file reproduces any run and the dispatch lives here alone.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::continual::ContinualConfig;
use crate::data::PreparedData;
use crate::distill::{DistillConfig, DistillError, KnowledgeDistillation};
use crate::engine::{CrossEntropy, Objective};
use crate::multitask::MultitaskConfig;
use crate::run::config::RunConfig;
use crate::ssl::SelfSupervisedConfig;
use crate::transfer::{LinearProbe, LinearProbeConfig};

/// Which strategy a run uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StrategyConfig {
    /// Cross-entropy against the labels (a struct variant with no keys, so that any key
    /// given under it is refused as unknown, as in every other table).
    Supervised {},
    /// Knowledge distillation from a teacher checkpoint (Hinton et al. 2015).
    Distill(DistillConfig),
    /// Train only the head, on backbone features computed once (frozen backbone).
    LinearProbe(LinearProbeConfig),
    /// A sequence of tasks learnt one after the other (continual learning); runs through
    /// [`crate::continual::run_continual`], an outer loop around the engine.
    Continual(ContinualConfig),
    /// Several tasks on the same inputs, trained jointly (multitask learning); runs
    /// through [`crate::multitask::run_multitask`].
    Multitask(MultitaskConfig),
    /// Representation learning without labels: SimCLR, MoCo or relative patch position
    /// (see [`crate::ssl`]).
    SelfSupervised(SelfSupervisedConfig),
}

impl Default for StrategyConfig {
    fn default() -> Self {
        StrategyConfig::Supervised {}
    }
}

impl StrategyConfig {
    /// Checks the strategy's own rules; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self) -> Result<(), crate::rules::Violation> {
        match self {
            StrategyConfig::Supervised {} => Ok(()),
            StrategyConfig::Distill(c) => c.validate(),
            StrategyConfig::LinearProbe(_) => Ok(()),
            StrategyConfig::Continual(c) => c.validate(),
            StrategyConfig::Multitask(c) => c.validate(),
            StrategyConfig::SelfSupervised(c) => c.validate(),
        }
    }

    /// The short name (`supervised`, `distill`).
    pub fn kind(&self) -> &'static str {
        match self {
            StrategyConfig::Supervised {} => "supervised",
            StrategyConfig::Distill(_) => "distill",
            StrategyConfig::LinearProbe(_) => "linear-probe",
            StrategyConfig::Continual(_) => "continual",
            StrategyConfig::Multitask(_) => "multitask",
            StrategyConfig::SelfSupervised(_) => "self-supervised",
        }
    }
}

/// A strategy that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    /// Distillation's teacher could not be loaded or does not fit.
    #[error(transparent)]
    Distill(#[from] DistillError),
    /// A continual run has one objective per task, built by its own runner.
    #[error(
        "a continual strategy trains task after task: run it with `mentor continual` or `mentor train` (continual::run_continual)"
    )]
    Continual,
    /// A multitask run scores several tasks, which its own runner does.
    #[error(
        "a multitask strategy trains several tasks: run it with `mentor multitask` or `mentor train` (multitask::run_multitask)"
    )]
    Multitask,
    /// A self-supervised objective does not fit the data.
    #[error(transparent)]
    SelfSupervised(#[from] crate::ssl::SslError),
    /// The config breaks a rule, or the network cannot take the data's images.
    #[error("{0}")]
    Model(String),
}

/// Builds the objective of `config`'s strategy for a run on `data`; `device` is the
/// training device (networks that do not train, such as a teacher, live on it without
/// autodiff).
pub fn build_objective(
    config: &RunConfig,
    data: &PreparedData,
    device: &Device,
) -> Result<Box<dyn Objective>, StrategyError> {
    // The objectives rely on the config's rules (a DeepCluster network has one output
    // per cluster, AMDIM's has local heads, CPC's is a CPC network): check them here too
    // for callers that built the config by hand.
    config
        .validate()
        .map_err(|e| StrategyError::Model(e.to_string()))?;
    config
        .model
        .check_fits(
            data.train.shape,
            data.train.num_classes,
            crate::engine::device::host_memory_bytes(),
        )
        .map_err(StrategyError::Model)?;
    Ok(match &config.strategy {
        StrategyConfig::Supervised {} => Box::new(CrossEntropy),
        StrategyConfig::Distill(c) => Box::new(KnowledgeDistillation::from_checkpoint(
            c,
            &data.train,
            device,
        )?),
        StrategyConfig::LinearProbe(c) => Box::new(LinearProbe::new(c, &data.train)),
        StrategyConfig::SelfSupervised(c) => {
            crate::ssl::build_objective(c, &data.train, data.normalization.as_ref(), config.seed)?
        }
        StrategyConfig::Continual(_) => return Err(StrategyError::Continual),
        StrategyConfig::Multitask(_) => return Err(StrategyError::Multitask),
    })
}
