//! Feature extraction: the first task trains the whole network, every later task only
//! the head, on the backbone's frozen features (Li & Hoiem 2016's baseline).

use crate::continual::method::ContinualMethod;
use crate::engine::TrainSpec;
use crate::engine::groups::GroupRule;

/// The backbone frozen after the first task.
pub struct FeatureExtraction;

impl ContinualMethod for FeatureExtraction {
    fn task_spec(&self, t: usize, mut spec: TrainSpec) -> TrainSpec {
        if t > 0 {
            spec.groups.push(GroupRule {
                pattern: "backbone".into(),
                lr_mult: 1.0,
                frozen: true,
                unfreeze_at: None,
                freeze_bn: true,
            });
        }
        spec
    }
}
