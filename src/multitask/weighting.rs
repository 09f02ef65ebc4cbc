//! Task weights `w_i(t)` of the multitask loss `L = sum_i w_i(t) L_i`.
//!
//! - Fixed weights (equal by default).
//! - Dynamic Weight Average (Liu, Johns & Davison 2019, "End-to-End Multi-Task Learning
//!   with Attention"): `w_i(t) = K exp(r_i(t-1)/T) / sum_j exp(r_j(t-1)/T)` with the
//!   descent rate `r_i(t-1) = L_i(t-1) / L_i(t-2)` of task `i`'s epoch-mean loss and `K`
//!   the number of tasks, so the weights sum to `K`; a task whose loss falls slowly gets
//!   more weight. The first two epochs use `w_i = 1`.
//! - Uncertainty weighting (Kendall, Gal & Cipolla 2018, "Multi-Task Learning Using
//!   Uncertainty to Weigh Losses"): a learned log-variance `s_i` per task and
//!   `L = sum_i L_i / (2 exp(s_i)) + s_i / 2` (the form LibMTL implements), so `w_i =
//!   1 / (2 exp(s_i))`. The `s_i` train with Adam on their exact gradient
//!   `dL/ds_i = (1 - exp(-s_i) L_i) / 2`, computed from the step's task losses.
//! - GradNorm (Chen et al. 2018): the weights train so that each task's weighted gradient
//!   norm `G_i = w_i ||grad L_i||` approaches `mean_j G_j * r_i^alpha`, with `r_i` task
//!   `i`'s loss ratio `L_i(t)/L_i(0)` relative to the mean ratio; the weights are then
//!   renormalised to sum to `K`. The gradient is taken with respect to the shared
//!   representation (the head's input), in closed form for the linear heads, rather than
//!   the last shared layer's weights (LibMTL's `rep_grad` option); with task columns
//!   (soft sharing, cross-stitch) on each column's own representation.

use crate::rules::{self, Rule, Violation};
use serde::{Deserialize, Serialize};

/// How the task losses are weighted (`[strategy.weighting]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum WeightingConfig {
    /// Constant weights; `weights` empty means 1 for every task.
    Fixed {
        /// One weight per trained task.
        #[serde(default)]
        weights: Vec<f64>,
    },
    /// Dynamic Weight Average (Liu et al. 2019).
    Dwa {
        /// Softmax temperature `T` (Liu et al. use 2).
        #[serde(default = "two")]
        temperature: f64,
    },
    /// Uncertainty weighting (Kendall et al. 2018).
    Uncertainty {
        /// Adam learning rate of the log-variances.
        #[serde(default = "weight_lr")]
        lr: f64,
    },
    /// GradNorm (Chen et al. 2018).
    Gradnorm {
        /// Restoring-force strength `alpha` (Chen et al. use 0.12 to 1.5).
        #[serde(default = "alpha")]
        alpha: f64,
        /// Adam learning rate of the weights (Chen et al. use 0.025).
        #[serde(default = "gradnorm_lr")]
        lr: f64,
    },
}

fn weight_lr() -> f64 {
    1e-2
}

fn alpha() -> f64 {
    1.5
}

fn gradnorm_lr() -> f64 {
    0.025
}

fn two() -> f64 {
    2.0
}

impl Default for WeightingConfig {
    fn default() -> Self {
        WeightingConfig::Fixed {
            weights: Vec::new(),
        }
    }
}

impl WeightingConfig {
    /// Short name (`fixed`, `dwa`).
    pub fn name(&self) -> &'static str {
        match self {
            WeightingConfig::Fixed { .. } => "fixed",
            WeightingConfig::Dwa { .. } => "dwa",
            WeightingConfig::Uncertainty { .. } => "uncertainty",
            WeightingConfig::Gradnorm { .. } => "gradnorm",
        }
    }

    /// Checks the rules for `tasks` trained tasks; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self, tasks: usize) -> Result<(), Violation> {
        let at =
            |k: &'static str| move |r: Rule| Violation::new(format!("strategy.weighting.{k}"), r);
        match self {
            WeightingConfig::Fixed { weights } => {
                if !weights.is_empty() && weights.len() != tasks {
                    return Err(at("weights")(Rule::OnePer {
                        per: "trained task",
                        expected: tasks,
                        got: weights.len(),
                    }));
                }
                for w in weights {
                    rules::non_negative(*w).map_err(at("weights"))?;
                }
            }
            WeightingConfig::Dwa { temperature } => {
                rules::positive(*temperature).map_err(at("temperature"))?;
            }
            WeightingConfig::Uncertainty { lr } | WeightingConfig::Gradnorm { lr, .. } => {
                rules::positive(*lr).map_err(at("lr"))?;
            }
        }
        Ok(())
    }

    /// The weights for the coming epoch, given the epoch-mean loss of each task in every
    /// finished epoch (`history[e][i]`).
    pub fn weights(&self, tasks: usize, history: &[Vec<f64>]) -> Vec<f64> {
        match self {
            WeightingConfig::Fixed { weights } if weights.is_empty() => vec![1.0; tasks],
            WeightingConfig::Fixed { weights } => weights.clone(),
            WeightingConfig::Dwa { temperature } => dwa_weights(history, tasks, *temperature),
            // Learned weights start equal; the objective trains them step by step.
            WeightingConfig::Uncertainty { .. } | WeightingConfig::Gradnorm { .. } => {
                vec![1.0; tasks]
            }
        }
    }

    /// Whether the weights are learned step by step (uncertainty, GradNorm) rather than
    /// set per epoch.
    pub fn is_learned(&self) -> bool {
        matches!(
            self,
            WeightingConfig::Uncertainty { .. } | WeightingConfig::Gradnorm { .. }
        )
    }
}

/// Adam (Kingma & Ba 2015) over a handful of scalars: the learned task weights.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScalarAdam {
    /// First moments.
    pub m: Vec<f64>,
    /// Second moments.
    pub v: Vec<f64>,
    /// Steps taken.
    pub t: u64,
}

impl ScalarAdam {
    /// One Adam step of `values` along `grads` at rate `lr` (betas 0.9, 0.999).
    pub fn step(&mut self, values: &mut [f64], grads: &[f64], lr: f64) {
        let (b1, b2, eps): (f64, f64, f64) = (0.9, 0.999, 1e-8);
        if self.m.len() != values.len() {
            self.m = vec![0.0; values.len()];
            self.v = vec![0.0; values.len()];
        }
        self.t += 1;
        let (c1, c2) = (1.0 - b1.powi(self.t as i32), 1.0 - b2.powi(self.t as i32));
        for i in 0..values.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * grads[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * grads[i] * grads[i];
            values[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + eps);
        }
    }
}

/// Uncertainty weighting's gradient of `sum_i L_i / (2 exp(s_i)) + s_i / 2` with respect
/// to each log-variance `s_i`, and its task weights `1 / (2 exp(s_i))`.
pub fn uncertainty_gradient(log_vars: &[f64], losses: &[f64]) -> Vec<f64> {
    log_vars
        .iter()
        .zip(losses)
        .map(|(s, l)| 0.5 * (1.0 - (-s).exp() * l))
        .collect()
}

/// GradNorm's gradient of `sum_i |w_i g_i - target_i|` with respect to each weight, for
/// unweighted gradient norms `g_i`, current losses `losses` and first-step losses
/// `initial`; the targets `mean_j(w_j g_j) * r_i^alpha` are constants (Chen et al.).
pub fn gradnorm_gradient(
    weights: &[f64],
    norms: &[f64],
    losses: &[f64],
    initial: &[f64],
    alpha: f64,
) -> Vec<f64> {
    let k = weights.len() as f64;
    let ratios: Vec<f64> = losses
        .iter()
        .zip(initial)
        .map(|(l, l0)| l / l0.max(1e-12))
        .collect();
    let mean_ratio = ratios.iter().sum::<f64>() / k;
    let g: Vec<f64> = weights.iter().zip(norms).map(|(w, n)| w * n).collect();
    let mean_g = g.iter().sum::<f64>() / k;
    (0..weights.len())
        .map(|i| {
            let target = mean_g * (ratios[i] / mean_ratio).powf(alpha);
            (g[i] - target).signum() * norms[i]
        })
        .collect()
}

/// DWA's weights after the epochs in `history` (see the module docs).
pub fn dwa_weights(history: &[Vec<f64>], tasks: usize, temperature: f64) -> Vec<f64> {
    let n = history.len();
    if n < 2 {
        return vec![1.0; tasks];
    }
    let (last, before) = (&history[n - 1], &history[n - 2]);
    let rates: Vec<f64> = last
        .iter()
        .zip(before)
        .map(|(l, b)| l / b.max(1e-12))
        .collect();
    // Softmax with the maximum subtracted, for stability.
    let top = rates.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = rates
        .iter()
        .map(|r| ((r - top) / temperature).exp())
        .collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| tasks as f64 * e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand computation: losses (1.0, 2.0) then (0.5, 1.8): r = (0.5, 0.9); with T = 2,
    /// exp(0.25) = 1.284025, exp(0.45) = 1.568312, sum 2.852337;
    /// w = 2 * (0.450166, 0.549834) = (0.900332, 1.099668).
    #[test]
    fn dwa_matches_a_hand_computed_history() {
        let h = vec![vec![1.0, 2.0], vec![0.5, 1.8]];
        let w = dwa_weights(&h, 2, 2.0);
        assert!((w[0] - 0.900332).abs() < 1e-6, "{w:?}");
        assert!((w[1] - 1.099668).abs() < 1e-6, "{w:?}");
        assert!((w.iter().sum::<f64>() - 2.0).abs() < 1e-12);
        // Before two epochs: equal weights.
        assert_eq!(dwa_weights(&h[..1], 2, 2.0), vec![1.0, 1.0]);
        // Equal descent rates: equal weights whatever T.
        let same = dwa_weights(&[vec![1.0, 4.0], vec![0.5, 2.0]], 2, 0.1);
        assert!((same[0] - 1.0).abs() < 1e-12 && (same[1] - 1.0).abs() < 1e-12);
    }

    /// At `s = 0` with losses (2, 0.5): d/ds = 0.5 (1 - L) = (-0.5, 0.25); the optimum is
    /// `exp(s) = L`, where the gradient vanishes.
    #[test]
    fn uncertainty_gradient_matches_hand_values() {
        let g = uncertainty_gradient(&[0.0, 0.0], &[2.0, 0.5]);
        assert_eq!(g, vec![-0.5, 0.25]);
        let at_optimum = uncertainty_gradient(&[2f64.ln()], &[2.0]);
        assert!(at_optimum[0].abs() < 1e-12);
    }

    /// Weights (1, 1), norms (2, 1), losses (0.5, 1.0) from (1, 1): ratios (0.5, 1.0),
    /// mean 0.75, relative (2/3, 4/3); G = (2, 1), mean 1.5; with alpha = 1 the targets
    /// are (1.0, 2.0): task 0 is above its target (gradient +2), task 1 below (-1).
    #[test]
    fn gradnorm_gradient_matches_hand_values() {
        let g = gradnorm_gradient(&[1.0, 1.0], &[2.0, 1.0], &[0.5, 1.0], &[1.0, 1.0], 1.0);
        assert_eq!(g, vec![2.0, -1.0]);
    }

    #[test]
    fn scalar_adam_first_step_moves_by_lr() {
        let mut adam = ScalarAdam::default();
        let mut v = vec![1.0, 1.0];
        adam.step(&mut v, &[3.0, -0.1], 0.1);
        assert!(
            (v[0] - 0.9).abs() < 1e-6 && (v[1] - 1.1).abs() < 1e-6,
            "{v:?}"
        );
    }

    #[test]
    fn fixed_weights_are_validated() {
        let w = WeightingConfig::Fixed { weights: vec![1.0] };
        assert_eq!(
            w.validate(2).unwrap_err().rule,
            Rule::OnePer {
                per: "trained task",
                expected: 2,
                got: 1
            }
        );
        assert_eq!(WeightingConfig::default().weights(3, &[]), vec![1.0; 3]);
        let t = WeightingConfig::Dwa { temperature: 0.0 };
        assert!(t.validate(2).is_err());
    }
}
