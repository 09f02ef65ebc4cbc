//! Optimisers (`[optim]`): SGD with momentum and Nesterov, Adam (Kingma & Ba 2015) and
//! AdamW (Loshchilov & Hutter 2019), each Burn's arithmetic run as one parallel pass
//! per parameter (mentor's `FusedSgd`, `FusedAdam`). The learning rate
//! is not here: it is the run's `lr`, shaped by the schedule and each group's multiplier.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{ModuleOptimizer, SgdConfig};
use serde::{Deserialize, Serialize};

use crate::kernels::{FusedAdam, FusedSgd};
use crate::rules::{self, Interval, Rule, Violation};

/// SGD hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdParams {
    /// Momentum factor (0 for plain SGD). Dampening is 0, as in PyTorch.
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
}

impl Default for SgdParams {
    fn default() -> Self {
        Self {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// Adam / AdamW hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamParams {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator stabiliser.
    pub epsilon: f64,
    /// Adam: L2 penalty added to the gradient. AdamW: decoupled decay rate.
    pub weight_decay: f64,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Which optimiser, with its hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Stochastic gradient descent.
    Sgd(SgdParams),
    /// Adam.
    Adam(AdamParams),
    /// Adam with decoupled weight decay.
    Adamw(AdamParams),
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Adam(AdamParams::default())
    }
}

impl OptimizerConfig {
    /// Checks the hyperparameters; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self) -> Result<(), Violation> {
        let at = |k: &'static str| move |r: Rule| Violation::new(format!("optim.{k}"), r);
        match self {
            OptimizerConfig::Sgd(p) => {
                Interval::UNIT_OPEN
                    .check(p.momentum)
                    .map_err(at("momentum"))?;
                if p.nesterov && p.momentum == 0.0 {
                    return Err(at("nesterov")(Rule::Needs {
                        condition: "optim.momentum > 0",
                    }));
                }
                rules::non_negative(p.weight_decay).map_err(at("weight_decay"))?;
            }
            OptimizerConfig::Adam(p) | OptimizerConfig::Adamw(p) => {
                Interval::UNIT_OPEN.check(p.beta1).map_err(at("beta1"))?;
                Interval::UNIT_OPEN.check(p.beta2).map_err(at("beta2"))?;
                rules::positive(p.epsilon).map_err(at("epsilon"))?;
                rules::non_negative(p.weight_decay).map_err(at("weight_decay"))?;
            }
        }
        Ok(())
    }

    /// Builds the optimiser: [`FusedSgd`] or [`FusedAdam`], or Burn's own when mentor's
    /// kernels are switched off.
    pub fn init(&self) -> ModuleOptimizer {
        match self {
            // Burn's SGD arithmetic (bitwise) in one parallel pass per parameter on the
            // CPU, with Burn's state layout (kernels::FusedSgd); Burn's own `Sgd` when
            // mentor's kernels are switched off (`mentor bench --kernels burn`).
            OptimizerConfig::Sgd(p) if crate::kernels::enabled() => {
                ModuleOptimizer::from(FusedSgd {
                    momentum: p.momentum,
                    nesterov: p.nesterov,
                    weight_decay: p.weight_decay as f32,
                })
            }
            OptimizerConfig::Sgd(p) => SgdConfig::new()
                .with_momentum((p.momentum > 0.0).then_some(MomentumConfig {
                    momentum: p.momentum,
                    dampening: 0.0,
                    nesterov: p.nesterov,
                }))
                .with_weight_decay(
                    (p.weight_decay > 0.0).then(|| WeightDecayConfig::new(p.weight_decay as f32)),
                )
                .init(),
            // Burn's Adam / AdamW arithmetic (bitwise) in one parallel pass per parameter
            // on the CPU, with Burn's state (kernels::FusedAdam); Burn's own optimisers
            // when mentor's kernels are switched off.
            OptimizerConfig::Adam(p) | OptimizerConfig::Adamw(p) => {
                let fused = FusedAdam {
                    beta1: p.beta1 as f32,
                    beta2: p.beta2 as f32,
                    epsilon: p.epsilon as f32,
                    weight_decay: p.weight_decay as f32,
                    decoupled: matches!(self, OptimizerConfig::Adamw(_)),
                };
                match (crate::kernels::enabled(), fused.decoupled) {
                    (true, _) => ModuleOptimizer::from(fused),
                    (false, false) => fused.adam_config().init(),
                    (false, true) => fused.adamw_config().init(),
                }
            }
        }
    }
}
