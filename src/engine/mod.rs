//! The one training engine that every strategy reuses: epochs over seeded batches, an
//! [`Objective`] that says what each step minimises, parameter groups by name (frozen or
//! with their own learning-rate multiplier), schedules, metrics per epoch and split,
//! atomic checkpoints (last and best) and exact resume.
//!
//! mentor runs its own loop rather than Burn's `Learner`: exact resume needs the batch
//! order and dropout stream to be functions of `(seed, epoch)`, per-group rates and
//! freezing must be addressed by parameter name, and later strategies (continual
//! learning's outer loop over tasks, cached teacher logits) need the step in their hands.

pub mod cache;
pub mod checkpoint;
pub mod collective;
pub mod device;
pub mod eval;
pub mod events;
pub(crate) mod execution;
pub mod freeze;
pub mod groups;
pub mod init;
pub mod io;
pub mod metrics;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod objective;
pub mod optim;
pub mod parallel;
pub mod progress;
pub mod restore;
pub mod run_dir;
pub mod schedule;
pub mod spec;
pub mod step;
pub mod trainer;

pub use collective::{Collective, CollectiveError, Ranks};
pub use device::{module_device, parse_device, parse_devices};
pub use eval::{class_probabilities, evaluate, evaluate_examples, evaluate_outputs};
pub use events::{Event, Observer};
pub use init::{FreshWeights, StartWeights, seeded_init};
pub use objective::{CrossEntropy, Objective, StepOutput};
pub use progress::LogFormat;
pub use restore::{LoadedNetwork, load_network};
pub use run_dir::{Fingerprint, RunDir};
pub use spec::{CheckpointConfig, EvalConfig, RunLabel, TrainSpec};
pub use step::train_step;
pub use trainer::{EngineError, RunSummary, TrainOptions, train, train_observed};
