//! The epoch loop: seeded batches, the objective's loss, one optimiser step per trained
//! parameter group at its own rate, evaluation per epoch, metrics, checkpoints (last and
//! best, atomically) and exact resume.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Bytes, Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, CheckpointError, TrainingState};
use super::groups::{GroupError, ParamGroups};
use super::metrics::{MetricRow, Running, write_history};
use super::objective::Objective;
use super::parallel::DataParallel;
use super::progress::{LogFormat, Progress};
use crate::config::RunConfig;
use crate::data::{Batch, BatchOrder, Dataset, PreparedData};
use crate::losses::mask_outputs;
use crate::models::{ModelConfig, Network, param_infos};

/// Why a run stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Reading or writing a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A parameter-group rule does not fit the network.
    #[error(transparent)]
    Groups(#[from] GroupError),
    /// The loss became NaN or infinite; the last good checkpoint is kept.
    #[error(
        "loss is {value} at epoch {epoch}, step {step}: training stopped; the last good checkpoint (epoch {last_good}) is kept in {dir}"
    )]
    NonFinite {
        /// The value (NaN or inf).
        value: f64,
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// Epochs in the last good checkpoint.
        last_good: usize,
        /// The checkpoint folder.
        dir: PathBuf,
    },
    /// `--resume` was asked for but the run directory has no checkpoint.
    #[error("cannot resume: {0} does not exist")]
    NothingToResume(PathBuf),
    /// The config given with `--resume` differs from the one the run started with.
    #[error(
        "cannot resume: the config differs from the one saved in {0}; resume with the same config (or start a new --out)"
    )]
    ConfigMismatch(PathBuf),
    /// Pretrained weights could not be imported.
    #[error(transparent)]
    Transfer(#[from] crate::transfer::TransferError),
    /// Data-parallel training could not start.
    #[error("data parallel: {0}")]
    DataParallel(String),
    /// A run directory file could not be written.
    #[error(transparent)]
    Io(#[from] super::io::IoError),
}

/// How to run (as opposed to what to train, which is the [`RunConfig`]).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The run directory.
    pub out: PathBuf,
    /// Continue from `out/checkpoints/last.ckpt`.
    pub resume: bool,
    /// Progress reporting.
    pub log: LogFormat,
    /// Stop after this many epochs even if the config asks for more (the run can be
    /// resumed later); `None` runs to the end.
    pub stop_after: Option<usize>,
    /// The device to train on (its autodiff version is used for training).
    pub device: Device,
    /// Data-parallel training on these devices (see [`super::parallel`]); empty trains
    /// on `device` alone. The first should be `device`. Supervised runs only: the other
    /// devices' replicas minimise cross-entropy.
    pub devices: Vec<Device>,
    /// Start from these weights instead of a fresh initialisation (continual learning's
    /// next task starts from the previous task's network); ignored when resuming.
    pub start_from: Option<Network>,
    /// Start from this optimiser state (as a checkpoint stores it) instead of a fresh one,
    /// so a continual run's next task keeps Adam's moments; ignored when resuming.
    pub start_optimizer: Option<Bytes>,
    /// Stop after this many optimiser steps in all (the last epoch is cut short), for
    /// budgets counted in iterations rather than epochs.
    pub max_steps: Option<usize>,
}

impl TrainOptions {
    /// Options for a fresh run on the CPU (flex) with human progress.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            resume: false,
            log: LogFormat::Human,
            stop_after: None,
            device: Device::flex(),
            devices: Vec::new(),
            start_from: None,
            start_optimizer: None,
            max_steps: None,
        }
    }
}

/// What a finished run reports (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Test accuracy of the final weights.
    pub test_accuracy: f64,
    /// Test loss of the final weights.
    pub test_loss: f64,
    /// Best validation accuracy (test accuracy when there is no validation split).
    pub best_val_accuracy: f64,
    /// The epoch that reached it.
    pub best_epoch: usize,
    /// Epochs trained.
    pub epochs: usize,
    /// Wall time of this invocation, seconds (a resumed run counts only its own part).
    pub wall_seconds: f64,
    /// Seconds in training steps over the whole run.
    pub train_seconds: f64,
    /// Training examples per second of training-step time.
    pub train_samples_per_second: f64,
    /// Number of trainable parameters (frozen ones included).
    pub parameters: usize,
    /// The run's seed.
    pub seed: u64,
    /// mentor's version.
    pub mentor_version: String,
    /// The model kind.
    pub model: String,
    /// The dataset.
    pub dataset: String,
    /// The strategy (`supervised`, `distill`, `linear-probe`); empty in summaries
    /// written before mentor recorded it.
    #[serde(default)]
    pub strategy: String,
}

/// Loss and top-1 accuracy of `network` on `data`, in inference mode, batch by batch.
pub fn evaluate(network: &Network, data: &Dataset, batch_size: usize) -> (f64, f64) {
    evaluate_outputs(network, data, batch_size, None)
}

/// [`evaluate`] over the output units `outputs` only (the others are masked out of the
/// softmax and the argmax), as a task-incremental learner is scored on one task's head;
/// `None` uses every output.
pub fn evaluate_outputs(
    network: &Network,
    data: &Dataset,
    batch_size: usize,
    outputs: Option<Range<usize>>,
) -> (f64, f64) {
    let model = network.valid();
    let mut run = Running::default();
    let device = super::module_device(&model);
    for idx in BatchOrder::sequential(data.len(), batch_size).batches() {
        let batch = Batch::gather(data, idx, &device);
        let mut logits = model.forward(batch.images);
        if let Some(active) = &outputs {
            logits = mask_outputs(logits, active.clone());
        }
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits.clone(), batch.labels.clone());
        run.add(
            loss.into_scalar::<f32>() as f64,
            correct(logits, batch.labels),
            idx.len(),
        );
    }
    (run.loss(), run.accuracy())
}

/// The objective's own evaluation of `network` on `data` if it has one, else the
/// classification loss and accuracy on its scored outputs.
fn evaluate_with(objective: &dyn Objective, network: &Network, data: &Dataset) -> (f64, f64) {
    objective
        .evaluate(network, data)
        .unwrap_or_else(|| evaluate_outputs(network, data, 1000, objective.eval_outputs()))
}

fn correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> u64 {
    let pred: Tensor<1, Int> = logits.argmax(1).flatten(0, 1);
    pred.equal(labels).int().sum().into_scalar::<i64>() as u64
}

/// One optimiser step: the objective's loss on `batch`, its gradients, then one update
/// per trained group at `lr` times the group's multiplier (frozen groups get none).
/// Returns the updated network, the loss, the number of correct predictions and the
/// number of predictions (the targets: one per example unless the objective scores
/// several per example, as CPC does), or the loss value when it is not finite (no update
/// is made).
pub fn train_step(
    network: Network,
    optimizer: &mut ModuleOptimizer,
    groups: &ParamGroups,
    objective: &mut dyn Objective,
    batch: &Batch,
    indices: &[usize],
    lr: f64,
) -> Result<(Network, f64, u64, u64), f64> {
    let output = objective.step(&network, batch, indices);
    let loss_value = output.loss.clone().into_scalar::<f32>() as f64;
    if !loss_value.is_finite() {
        return Err(loss_value);
    }
    let targets = output.targets.unwrap_or_else(|| batch.labels.clone());
    let predictions = targets.dims()[0] as u64;
    let right = correct(output.logits.detach(), targets);
    let mut grads = output.loss.backward();
    let mut network = network;
    for group in groups.trained() {
        let group_grads = GradientsParams::from_params(&mut grads, &network, &group.ids);
        network = optimizer.step(lr * group.lr_mult, network, group_grads);
    }
    Ok((network, loss_value, right, predictions))
}

/// The dropout / initialisation seed of epoch `epoch` (and of init, epoch `usize::MAX`).
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ (epoch as u64).wrapping_add(0xA5A5)
}

fn write_file(path: &Path, text: &str) -> Result<(), EngineError> {
    Ok(super::io::write_atomic(path, text.as_bytes())?)
}

/// Burn's backend RNG (initial weights, dropout masks) is one per process, so two runs
/// training at once in one process would draw from each other's stream. Runs hold this
/// lock for their whole length: reproducibility first; within one process they take turns
/// (each already uses every core).
static BACKEND_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock_backend_rng() -> std::sync::MutexGuard<'static, ()> {
    BACKEND_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds `model` with initial weights drawn from the backend RNG seeded with `seed`,
/// holding the RNG lock so that no concurrent run disturbs the draw. The same `seed`
/// gives the same weights as the engine's initialisation for a run with that seed.
pub fn seeded_init(
    model: &ModelConfig,
    input: [usize; 3],
    num_classes: usize,
    device: &Device,
    seed: u64,
) -> Network {
    let _guard = lock_backend_rng();
    init_unlocked(model, input, num_classes, device, seed)
}

pub(crate) fn init_unlocked(
    model: &ModelConfig,
    input: [usize; 3],
    num_classes: usize,
    device: &Device,
    seed: u64,
) -> Network {
    device.seed(epoch_seed(seed, usize::MAX));
    model.init(input, num_classes, device)
}

/// Trains a network as `config` says, on `data`, minimising `objective`, writing the run
/// directory `options.out`. Returns the summary (also written as `summary.json`).
pub fn train(
    config: &RunConfig,
    data: &PreparedData,
    objective: &mut dyn Objective,
    options: &TrainOptions,
) -> Result<(RunSummary, Network), EngineError> {
    let _rng_guard = lock_backend_rng();
    let wall = Instant::now();
    let out = &options.out;
    let ckpt_dir = out.join("checkpoints");
    let last_path = ckpt_dir.join("last.ckpt");
    let config_toml = config.to_toml();
    let device = options
        .devices
        .first()
        .unwrap_or(&options.device)
        .clone()
        .autodiff();

    let mut network = match &options.start_from {
        Some(start) => start.clone(),
        None => init_unlocked(
            &config.model,
            data.train.shape,
            data.train.num_classes,
            &device,
            config.seed,
        ),
    };
    let mut optimizer: ModuleOptimizer = config.optim.init();
    let mut state = TrainingState {
        epochs_done: 0,
        steps_done: 0,
        best_val_accuracy: f64::NEG_INFINITY,
        best_epoch: 0,
        train_seconds: 0.0,
        train_samples: 0,
        history: Vec::new(),
        objective_state: None,
        config_toml: config_toml.clone(),
        input_shape: data.train.shape,
        num_classes: data.train.num_classes,
        mentor_version: env!("CARGO_PKG_VERSION").into(),
    };
    if options.resume {
        if !last_path.is_file() {
            return Err(EngineError::NothingToResume(last_path));
        }
        let ckpt = checkpoint::load(&last_path)?;
        if ckpt.state.config_toml != config_toml {
            return Err(EngineError::ConfigMismatch(last_path));
        }
        network = ckpt.load_into(network, &last_path)?;
        optimizer = optimizer
            .from_bytes(ckpt.optimizer)
            .map_err(|e| CheckpointError::Corrupt {
                path: last_path.clone(),
                reason: format!("bad optimiser state: {e}"),
            })?;
        state = ckpt.state;
        if let Some(saved) = &state.objective_state {
            objective
                .restore(saved)
                .map_err(|reason| CheckpointError::Corrupt {
                    path: last_path.clone(),
                    reason: format!("objective state: {reason}"),
                })?;
        }
    } else {
        if let Some(bytes) = &options.start_optimizer {
            optimizer =
                optimizer
                    .from_bytes(bytes.clone())
                    .map_err(|e| CheckpointError::Corrupt {
                        path: out.clone(),
                        reason: format!("bad starting optimiser state: {e}"),
                    })?;
        }
        std::fs::create_dir_all(out).map_err(|source| super::io::IoError {
            path: out.clone(),
            source,
        })?;
        write_file(&out.join("config.toml"), &config_toml)?;
        if let (Some(path), None) = (&config.init.pretrained, &options.start_from) {
            let (imported, report) =
                crate::transfer::import_pretrained(network, &config.init, &options.device, true)?;
            network = imported;
            let json = serde_json::to_string_pretty(&report).unwrap_or_default();
            write_file(&out.join(crate::transfer::REPORT_FILE), &json)?;
            let fresh: Vec<&str> = report
                .reinitialized
                .iter()
                .map(|(n, _)| n.as_str())
                .collect();
            Progress::new(options.log, "transfer:").note(&format!(
                "pretrained {}: copied {} parameters, re-initialised {} ({})",
                path.display(),
                report.copied.len(),
                fresh.len(),
                fresh.join(", ")
            ));
        }
    }
    let groups = ParamGroups::resolve(&config.groups, &param_infos(&network))?;
    let mut parallel = None;
    if !options.devices.is_empty() {
        let devices: Vec<Device> = options
            .devices
            .iter()
            .map(|d| d.clone().autodiff())
            .collect();
        let (replicas, marked) =
            DataParallel::start(&devices, network, &optimizer, || config.optim.init())
                .map_err(EngineError::DataParallel)?;
        network = marked;
        parallel = Some(replicas);
    }
    let shards = options.devices.len().max(1);

    let label = format!("[{} {}]", config.model.kind(), config.data.dataset);
    let mut progress = Progress::new(options.log, &label);
    let steps_per_epoch = data.train.len().div_ceil(config.batch_size);
    let last_epoch = options
        .stop_after
        .map_or(config.epochs, |s| s.min(config.epochs));

    for epoch in state.epochs_done..last_epoch {
        if options
            .max_steps
            .is_some_and(|m| state.steps_done >= m as u64)
        {
            break;
        }
        device.seed(epoch_seed(config.seed, epoch));
        if let Some(replicas) = &parallel {
            replicas.seed(epoch_seed(config.seed, epoch));
        }
        let order = BatchOrder::shuffled(data.train.len(), config.batch_size, config.seed, epoch);
        progress.start_epoch(epoch + 1, config.epochs, steps_per_epoch);
        let epoch_groups = groups.at_epoch(epoch + 1);
        let started = Instant::now();
        let mut running = Running::default();
        let mut lr = config.lr;
        for (step, idx) in order.batches().enumerate() {
            if options
                .max_steps
                .is_some_and(|m| state.steps_done >= m as u64)
            {
                break;
            }
            let progress_epochs = epoch as f64 + step as f64 / steps_per_epoch as f64;
            lr = config
                .schedule
                .lr(config.lr, progress_epochs, config.epochs, steps_per_epoch);
            if idx.len() < shards {
                // Every device must take part in each step's gradient all-reduce.
                continue;
            }
            let step_result = match &mut parallel {
                Some(replicas) => replicas
                    .step(
                        network,
                        &mut optimizer,
                        &epoch_groups,
                        objective,
                        &data.train,
                        idx,
                        lr,
                    )
                    .map(|(n, s)| (n, s.loss, s.correct, s.predictions)),
                None => {
                    let batch = Batch::gather(&data.train, idx, &device);
                    train_step(
                        network,
                        &mut optimizer,
                        &epoch_groups,
                        objective,
                        &batch,
                        idx,
                        lr,
                    )
                }
            };
            let loss_value;
            (network, loss_value) = match step_result {
                Ok((n, l, c, p)) => {
                    running.add_predictions(l, c, p, idx.len());
                    (n, l)
                }
                Err(value) => {
                    return Err(EngineError::NonFinite {
                        value,
                        epoch: epoch + 1,
                        step: step + 1,
                        last_good: state.epochs_done,
                        dir: ckpt_dir,
                    });
                }
            };
            state.steps_done += 1;
            progress.step(loss_value);
        }
        objective.end_epoch(epoch + 1);
        state.objective_state = objective.state();
        state.train_seconds += started.elapsed().as_secs_f64();
        state.train_samples += running.examples();
        state.epochs_done = epoch + 1;

        let row = |split: &str, loss: f64, accuracy: f64| MetricRow {
            epoch: epoch + 1,
            split: split.into(),
            loss,
            accuracy,
            lr,
            train_seconds: state.train_seconds,
        };
        let mut rows = vec![row("train", running.loss(), running.accuracy())];
        let mut values = vec![
            ("train_loss", running.loss()),
            ("train_acc", running.accuracy()),
        ];
        let val_acc = if let Some(val) = &data.val {
            let (l, a) = evaluate_with(objective, &network, val);
            rows.push(row("val", l, a));
            values.extend([("val_loss", l), ("val_acc", a)]);
            Some(a)
        } else {
            None
        };
        let (test_loss, test_acc) = evaluate_with(objective, &network, &data.test);
        rows.push(row("test", test_loss, test_acc));
        values.extend([("test_loss", test_loss), ("test_acc", test_acc)]);
        state.history.extend(rows);

        let selection = val_acc.unwrap_or(test_acc);
        let improved = selection > state.best_val_accuracy;
        if improved {
            state.best_val_accuracy = selection;
            state.best_epoch = epoch + 1;
        }
        write_history(out, &state.history)?;
        checkpoint::save(&last_path, &network, &optimizer, &state)?;
        if improved {
            checkpoint::save(&ckpt_dir.join("best.ckpt"), &network, &optimizer, &state)?;
        }
        progress.end_epoch(epoch + 1, config.epochs, &values);
    }

    let (test_loss, test_accuracy) = evaluate_with(objective, &network, &data.test);
    let summary = RunSummary {
        test_accuracy,
        test_loss,
        best_val_accuracy: state.best_val_accuracy.max(0.0),
        best_epoch: state.best_epoch,
        epochs: state.epochs_done,
        wall_seconds: wall.elapsed().as_secs_f64(),
        train_seconds: state.train_seconds,
        train_samples_per_second: state.train_samples as f64 / state.train_seconds.max(1e-9),
        parameters: crate::models::trainable_count(&network),
        seed: config.seed,
        mentor_version: env!("CARGO_PKG_VERSION").into(),
        model: config.model.kind().into(),
        dataset: config.data.dataset.to_string(),
        strategy: config.strategy.kind().into(),
    };
    let json = serde_json::to_string_pretty(&summary).unwrap_or_default();
    write_file(&out.join("summary.json"), &json)?;
    if let Err(e) = crate::report::plot_curves(&state.history, &out.join("plots")) {
        progress.note(&format!("plots not written: {e}"));
    }
    Ok((summary, network))
}
