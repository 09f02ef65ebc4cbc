//! Learning-rate schedules (`[schedule]`), as pure functions of training progress so that
//! a resumed run needs no scheduler state: constant, step decay, cosine annealing
//! (Loshchilov & Hutter 2017, without restarts), each with an optional linear warm-up.

use crate::rules::{self, Interval, Violation};
use serde::{Deserialize, Serialize};

/// A learning-rate schedule; `warmup_epochs` ramps linearly from 0 to the base rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// The base rate throughout.
    Constant {
        /// Warm-up length in epochs (may be fractional).
        #[serde(default)]
        warmup_epochs: f64,
    },
    /// Multiply by `gamma` every `step_epochs` epochs.
    Step {
        /// Epochs between decays.
        step_epochs: usize,
        /// Decay factor.
        gamma: f64,
        /// Warm-up length in epochs.
        #[serde(default)]
        warmup_epochs: f64,
    },
    /// Half a cosine from the base rate to `min_factor` times it at the last epoch.
    Cosine {
        /// Final rate as a fraction of the base rate.
        #[serde(default)]
        min_factor: f64,
        /// Warm-up length in epochs.
        #[serde(default)]
        warmup_epochs: f64,
    },
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig::Constant { warmup_epochs: 0.0 }
    }
}

impl ScheduleConfig {
    fn warmup(&self) -> f64 {
        match self {
            ScheduleConfig::Constant { warmup_epochs }
            | ScheduleConfig::Step { warmup_epochs, .. }
            | ScheduleConfig::Cosine { warmup_epochs, .. } => *warmup_epochs,
        }
    }

    /// Checks the parameters against the run length; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self, epochs: usize) -> Result<(), Violation> {
        Interval::closed_open(0.0, epochs as f64)
            .check(self.warmup())
            .map_err(|r| Violation::new("schedule.warmup_epochs", r))?;
        match self {
            ScheduleConfig::Step {
                step_epochs, gamma, ..
            } => {
                rules::at_least(*step_epochs, 1)
                    .map_err(|r| Violation::new("schedule.step_epochs", r))?;
                Interval::open_closed(0.0, 1.0)
                    .check(*gamma)
                    .map_err(|r| Violation::new("schedule.gamma", r))?;
            }
            ScheduleConfig::Cosine { min_factor, .. } => {
                Interval::PROBABILITY
                    .check(*min_factor)
                    .map_err(|r| Violation::new("schedule.min_factor", r))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The rate for the step that starts at `progress` epochs into a run of `epochs`
    /// (`progress = epoch + step / steps_per_epoch`).
    pub fn lr(&self, base: f64, progress: f64, epochs: usize, steps_per_epoch: usize) -> f64 {
        let warm = self.warmup();
        if progress < warm {
            // Linear ramp that reaches `base` on the first step after warm-up.
            let step = 1.0 / steps_per_epoch.max(1) as f64;
            return base * ((progress + step) / warm).min(1.0);
        }
        match self {
            ScheduleConfig::Constant { .. } => base,
            ScheduleConfig::Step {
                step_epochs, gamma, ..
            } => base * gamma.powi((progress.floor() as usize / step_epochs) as i32),
            ScheduleConfig::Cosine { min_factor, .. } => {
                let span = (epochs as f64 - warm).max(f64::EPSILON);
                let t = ((progress - warm) / span).clamp(0.0, 1.0);
                let min = base * min_factor;
                min + 0.5 * (base - min) * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_decays_at_boundaries() {
        let s = ScheduleConfig::Step {
            step_epochs: 2,
            gamma: 0.1,
            warmup_epochs: 0.0,
        };
        assert_eq!(s.lr(1.0, 1.9, 6, 10), 1.0);
        assert!((s.lr(1.0, 2.0, 6, 10) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0, 4.5, 6, 10) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn cosine_goes_from_base_to_min() {
        let s = ScheduleConfig::Cosine {
            min_factor: 0.1,
            warmup_epochs: 0.0,
        };
        assert!((s.lr(2.0, 0.0, 10, 5) - 2.0).abs() < 1e-12);
        assert!((s.lr(2.0, 5.0, 10, 5) - 1.1).abs() < 1e-12);
        assert!((s.lr(2.0, 10.0, 10, 5) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn warmup_ramps_linearly() {
        let s = ScheduleConfig::Constant { warmup_epochs: 1.0 };
        assert!((s.lr(1.0, 0.0, 5, 4) - 0.25).abs() < 1e-12);
        assert!((s.lr(1.0, 0.75, 5, 4) - 1.0).abs() < 1e-12);
        assert_eq!(s.lr(1.0, 3.0, 5, 4), 1.0);
        assert!(s.validate(1).is_err());
    }
}
