//! The continual-learning methods, one unit each (see [`super::method`]), and the one
//! place that picks the implementation of a [`MethodConfig`].

pub mod ewc;
pub mod feature_extraction;
pub mod finetune;
pub mod joint;
pub mod lwf;
pub mod replay;

use super::MethodConfig;
use super::method::ContinualMethod;

impl MethodConfig {
    /// The method this config describes, with empty state.
    pub fn build(&self) -> Box<dyn ContinualMethod> {
        match self {
            MethodConfig::Finetune => Box::new(finetune::Finetune),
            MethodConfig::FeatureExtraction => Box::new(feature_extraction::FeatureExtraction),
            MethodConfig::Joint => Box::new(joint::Joint),
            MethodConfig::Lwf {
                lambda,
                temperature,
                warmup_epochs,
                balance,
            } => Box::new(lwf::Lwf::new(
                *lambda,
                *temperature,
                *warmup_epochs,
                *balance,
            )),
            MethodConfig::Ewc {
                lambda,
                online,
                gamma,
                fisher_samples,
            } => Box::new(ewc::Ewc::new(*lambda, *online, *gamma, *fisher_samples)),
            MethodConfig::Replay {
                buffer_size,
                selection,
            } => Box::new(replay::Replay::new(*buffer_size, *selection)),
        }
    }
}
