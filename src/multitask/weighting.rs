//! Task weights `w_i(t)` of the multitask loss `L = sum_i w_i(t) L_i`.
//!
//! - Fixed weights (equal by default).
//! - Dynamic Weight Average (Liu, Johns & Davison 2019, "End-to-End Multi-Task Learning
//!   with Attention"): `w_i(t) = K exp(r_i(t-1)/T) / sum_j exp(r_j(t-1)/T)` with the
//!   descent rate `r_i(t-1) = L_i(t-1) / L_i(t-2)` of task `i`'s epoch-mean loss and `K`
//!   the number of tasks, so the weights sum to `K`; a task whose loss falls slowly gets
//!   more weight. The first two epochs use `w_i = 1`.

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
        }
    }

    /// Checks the rules for `tasks` trained tasks; on error (key, rule).
    pub fn validate(&self, tasks: usize) -> Result<(), (String, String)> {
        match self {
            WeightingConfig::Fixed { weights } => {
                if !weights.is_empty() && weights.len() != tasks {
                    return Err((
                        "strategy.weighting.weights".into(),
                        format!(
                            "needs one weight per trained task ({tasks}), got {}",
                            weights.len()
                        ),
                    ));
                }
                if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
                    return Err((
                        "strategy.weighting.weights".into(),
                        format!("weights must be >= 0, got {w}"),
                    ));
                }
            }
            WeightingConfig::Dwa { temperature } => {
                if !(temperature.is_finite() && *temperature > 0.0) {
                    return Err((
                        "strategy.weighting.temperature".into(),
                        format!("must be > 0, got {temperature}"),
                    ));
                }
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
        }
    }
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

    #[test]
    fn fixed_weights_are_validated() {
        let w = WeightingConfig::Fixed { weights: vec![1.0] };
        assert!(w.validate(2).unwrap_err().1.contains("one weight per"));
        assert_eq!(WeightingConfig::default().weights(3, &[]), vec![1.0; 3]);
        let t = WeightingConfig::Dwa { temperature: 0.0 };
        assert!(t.validate(2).is_err());
    }
}
