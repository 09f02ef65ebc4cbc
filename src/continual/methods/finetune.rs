//! Fine-tuning: each new task trains the whole network from the previous task's weights,
//! with nothing to protect the old tasks (the lower bound every method is measured
//! against; van de Ven & Tolias 2019).

use crate::continual::method::ContinualMethod;

/// Plain fine-tuning, task after task.
pub struct Finetune;

impl ContinualMethod for Finetune {}
