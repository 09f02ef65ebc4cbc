//! The epoch loop: seeded batches, the objective's loss, one optimiser step per trained
//! parameter group at its own rate, evaluation per epoch, metrics, checkpoints (last and
//! best, atomically) and exact resume.

use std::path::PathBuf;
use std::time::Instant;

use burn::optim::ModuleOptimizer;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, CheckpointError, TrainingState};
use super::collective::{CollectiveError, Ranks};
use super::eval::evaluate_with;
use super::events::{Event, Observer};
use super::execution::{Execution, OneDevice, RankParallel, StepError};
use super::freeze::FrozenSet;
use super::groups::{GroupError, ParamGroups};
use super::init::{epoch_seed, lock_backend_rng, within_epoch_seed};
use super::metrics::{MetricRow, MetricsFiles};
use super::objective::Objective;
use super::parallel::DataParallel;
use super::progress::{LogFormat, Progress};
use super::run_dir::{Fingerprint, RunDir, RunDirError};
use super::spec::TrainSpec;
use crate::data::{BatchOrder, DataError, Splits};
use crate::models::{Network, param_infos};

/// Why a run stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Reading or writing a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A parameter-group rule does not fit the network.
    #[error(transparent)]
    Groups(#[from] GroupError),
    /// The loss became NaN or infinite; the last good checkpoint, if any, is kept.
    #[error(
        "loss is {value} at epoch {epoch}, step {step}: training stopped; {}",
        kept_in_words(*.last_good, .dir)
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
    /// The run directory cannot be started or resumed as asked (nothing to resume, or
    /// another config than the run's own).
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// An observer (metrics files, say) failed during training.
    #[error("{name}: {source}")]
    Observer {
        /// The observer.
        name: String,
        /// What went wrong.
        source: super::events::ObserverError,
    },
    /// Data-parallel training could not start.
    #[error("data parallel: {0}")]
    DataParallel(String),
    /// The ranks of a data-parallel job could not exchange their gradients.
    #[error("data parallel across ranks: {0}")]
    Collective(#[from] CollectiveError),
    /// A run directory file could not be written.
    #[error(transparent)]
    Io(#[from] super::io::IoError),
    /// An example could not be read (a photo streamed from disk).
    #[error("reading data: {0}")]
    Data(#[from] DataError),
}

fn kept_in_words(last_good: usize, dir: &std::path::Path) -> String {
    if last_good == 0 {
        "no checkpoint was written yet, so there is nothing to resume (a lower learning rate may help)"
            .into()
    } else {
        format!(
            "the last good checkpoint (epoch {last_good}) is kept in {}",
            dir.display()
        )
    }
}

/// How to run (as opposed to what to train, which is the [`TrainSpec`]).
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
    /// Data parallel across the ranks of a job (MPI processes; see
    /// [`super::execution::RankParallel`]): each rank trains its shard of every batch on
    /// `device`, and rank 0 alone writes the run directory. `None` trains alone.
    pub ranks: Option<Ranks>,
    /// Start from these weights instead of a fresh initialisation (continual learning's
    /// next task starts from the previous task's network); ignored when resuming.
    pub start_from: Option<Network>,
    /// Start from this optimiser state (as a checkpoint stores it) instead of a fresh one,
    /// so a continual run's next task keeps Adam's moments; ignored when resuming.
    pub start_optimizer: Option<Bytes>,
    /// Stop after this many optimiser steps in all (the last epoch is cut short), for
    /// budgets counted in iterations rather than epochs.
    pub max_steps: Option<usize>,
    /// What a resumed run must share with the run it continues (the resolved config);
    /// written as the run directory's `config.toml` when the run starts.
    pub fingerprint: Fingerprint,
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
            ranks: None,
            start_from: None,
            start_optimizer: None,
            max_steps: None,
            fingerprint: Fingerprint::default(),
        }
    }
}

/// Makes `best` hold the best epoch's weights when `last` (whose state is `state`) is
/// that epoch and `best` is missing, damaged or older: a run written by a mentor that
/// saved `last.ckpt` first and was stopped between the two writes. Any other `best` is
/// left as it is (with best written first it is never behind `last`'s record).
fn repair_best(
    last: &std::path::Path,
    best: &std::path::Path,
    state: &TrainingState,
) -> Result<(), CheckpointError> {
    if state.best_epoch == 0 || state.best_epoch != state.epochs_done {
        return Ok(());
    }
    let current = checkpoint::load(best).is_ok_and(|b| b.state.epochs_done == state.best_epoch);
    if !current {
        let bytes = std::fs::read(last).map_err(|source| CheckpointError::Io {
            path: last.into(),
            source,
        })?;
        super::io::write_atomic(best, &bytes)?;
    }
    Ok(())
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
    /// Wall time of this invocation, seconds, reading the data included when the run
    /// went through `run::run` (a resumed run counts only its own part).
    pub wall_seconds: f64,
    /// Seconds spent reading and preparing the data before training (part of
    /// `wall_seconds`); 0 in summaries written before mentor recorded it, and when the
    /// caller handed the engine its data.
    #[serde(default)]
    pub load_seconds: f64,
    /// Seconds in training steps over the whole run.
    pub train_seconds: f64,
    /// Training examples per second of training-step time.
    pub train_samples_per_second: f64,
    /// Seconds of the training-step time spent waiting for the next batch (reading and
    /// transforming photos the loader had not prepared yet); 0 in summaries written
    /// before mentor recorded it.
    #[serde(default)]
    pub data_wait_seconds: f64,
    /// The most memory the process held at once by the end of the run (resident set,
    /// MiB); absent where the system does not say, and in summaries written before
    /// mentor recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_mib: Option<f64>,
    /// Photos left out as unreadable (`data.skip_corrupt`); absent when none were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_files: Vec<PathBuf>,
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
    /// The CPU's subnormal-float mode the run computed in (absent in summaries written
    /// before mentor recorded it, when subnormals were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denormals: Option<crate::kernels::Denormals>,
}

/// Trains a network as `spec` says, on `data`, minimising `objective`, writing the run
/// directory `options.out` (see [`train_observed`]).
pub fn train(
    spec: &TrainSpec,
    data: &dyn Splits,
    objective: &mut dyn Objective,
    options: &TrainOptions,
) -> Result<(RunSummary, Network), EngineError> {
    train_observed(spec, data, objective, options, &mut [])
}

/// Trains a network as `spec` says, on `data`, minimising `objective`, writing the run
/// directory `options.out`: `config.toml` (the fingerprint), the metrics files and the
/// checkpoints after every epoch, `summary.json` at the end. Starts from
/// `options.start_from`, else from the seeded initialisation of `spec.model`. Every event
/// goes to the progress reporter, the metrics files and then `observers`. Returns the
/// summary and the trained network.
pub fn train_observed(
    spec: &TrainSpec,
    data: &dyn Splits,
    objective: &mut dyn Objective,
    options: &TrainOptions,
    observers: &mut [&mut dyn Observer],
) -> Result<(RunSummary, Network), EngineError> {
    let _rng_guard = lock_backend_rng();
    let wall = Instant::now();
    // Rank 0 of a job (or a process training alone) writes the run directory; the other
    // ranks read its checkpoints, train, and write nothing.
    let leads = options.ranks.as_ref().is_none_or(Ranks::leads);
    if options.ranks.is_some() {
        if !options.devices.is_empty() {
            return Err(EngineError::DataParallel(
                "--devices cannot be combined with ranks of a job: each rank trains on one device"
                    .into(),
            ));
        }
        if let Some(what) = objective.per_process_state() {
            return Err(EngineError::DataParallel(format!(
                "this objective keeps {what} in each process, which the ranks would not share: train it as one process"
            )));
        }
    }
    let run_dir = RunDir::new(&options.out);
    let ckpt_dir = run_dir.join("checkpoints");
    let last_path = run_dir.last_checkpoint();
    let best_path = ckpt_dir.join("best.ckpt");
    let device = options
        .devices
        .first()
        .unwrap_or(&options.device)
        .clone()
        .autodiff();

    let mut network = match &options.start_from {
        Some(start) => start.clone(),
        None => {
            device.seed(epoch_seed(spec.seed, usize::MAX));
            spec.model
                .init(data.train().shape(), data.train().num_classes(), &device)
        }
    };
    let mut optimizer: ModuleOptimizer = spec.optim.init();
    let mut state = TrainingState {
        epochs_done: 0,
        steps_done: 0,
        epoch_batches: 0,
        epoch_running: None,
        best_val_accuracy: f64::NEG_INFINITY,
        best_epoch: 0,
        train_seconds: 0.0,
        data_wait_seconds: 0.0,
        train_samples: 0,
        history: Vec::new(),
        objective_state: None,
        config_toml: options.fingerprint.text().to_string(),
        input_shape: data.train().shape(),
        num_classes: data.train().num_classes(),
        mentor_version: env!("CARGO_PKG_VERSION").into(),
        model: Some(spec.model.clone()),
        seed: Some(spec.seed),
        class_names: data.class_names().to_vec(),
        normalization: data.normalization().cloned(),
    };
    // The group rules are checked before anything is written (resolved again below,
    // once a resumed network's parameters carry the checkpoint's ids).
    ParamGroups::resolve(&spec.groups, &param_infos(&network))?;
    let resumes_checkpoint = options.resume && last_path.is_file();
    if options.resume && !resumes_checkpoint {
        // Stopped before its first checkpoint: nothing to continue, but the run is
        // started as its own config.toml says (and only if the configs agree), or as
        // given when it was stopped before even that was written.
        if let Some(saved) = run_dir.saved_fingerprint_if_any()? {
            RunDir::check_resume(
                &run_dir.join(super::run_dir::CONFIG_FILE),
                &saved,
                &options.fingerprint,
            )?;
        }
    }
    if resumes_checkpoint {
        let ckpt = checkpoint::load(&last_path)?;
        let extended = RunDir::check_resume_or_extend(
            &last_path,
            &Fingerprint::from_text(ckpt.state.config_toml.clone()),
            &options.fingerprint,
            ckpt.state.epochs_done,
        )?;
        network = ckpt.load_into(network, &last_path)?;
        optimizer = optimizer
            .from_bytes(ckpt.optimizer)
            .map_err(|e| CheckpointError::Corrupt {
                path: last_path.clone(),
                reason: format!("bad optimiser state: {e}"),
            })?;
        state = TrainingState {
            // Checkpoints from before mentor kept them take the data's (the fingerprint
            // says the data are the same).
            class_names: state.class_names,
            normalization: state.normalization,
            ..ckpt.state
        };
        if extended {
            // More epochs than the run was started with: the config now says so.
            state.config_toml = options.fingerprint.text().to_string();
            if leads {
                run_dir.write(super::run_dir::CONFIG_FILE, state.config_toml.as_bytes())?;
            }
        }
        if leads {
            repair_best(&last_path, &best_path, &state)?;
        }
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
                        path: options.out.clone(),
                        reason: format!("bad starting optimiser state: {e}"),
                    })?;
        }
        if leads {
            run_dir.start(&options.fingerprint)?;
        }
    }
    let groups = ParamGroups::resolve(&spec.groups, &param_infos(&network))?;
    let mut execution: Box<dyn Execution> = if let Some(ranks) = &options.ranks {
        Box::new(RankParallel::new(ranks.clone(), &options.device))
    } else if !options.devices.is_empty() {
        let devices: Vec<Device> = options
            .devices
            .iter()
            .map(|d| d.clone().autodiff())
            .collect();
        let (replicas, marked) =
            DataParallel::start(&devices, network, &optimizer, || spec.optim.init())
                .map_err(EngineError::DataParallel)?;
        network = marked;
        Box::new(replicas)
    } else {
        Box::new(OneDevice {
            device: device.clone(),
        })
    };

    let label = format!("[{} {}]", spec.label.model, spec.label.dataset);
    let mut progress = Progress::new(options.log, &label);
    let mut metrics_files = MetricsFiles::new(&options.out);
    let mut emit = |event: Event<'_>| -> Result<(), EngineError> {
        if !leads {
            return Ok(());
        }
        let finished = matches!(event, Event::Finished { .. });
        let own: [&mut dyn Observer; 2] = [&mut progress, &mut metrics_files];
        for observer in own
            .into_iter()
            .chain(observers.iter_mut().map(|o| &mut **o))
        {
            if let Err(source) = observer.on_event(&event) {
                if finished {
                    let note = format!("{} not written: {source}", observer.name());
                    Progress::new(options.log, &label).note(&note);
                } else {
                    return Err(EngineError::Observer {
                        name: observer.name().into(),
                        source,
                    });
                }
            }
        }
        Ok(())
    };
    let steps_per_epoch = data.train().len().div_ceil(spec.batch_size);
    let last_epoch = options
        .stop_after
        .map_or(spec.epochs, |s| s.min(spec.epochs));

    // (epoch, loss, accuracy) of the latest test scoring in this process.
    let mut last_test: Option<(usize, f64, f64)> = None;
    for epoch in state.epochs_done..last_epoch {
        if options
            .max_steps
            .is_some_and(|m| state.steps_done >= m as u64)
        {
            break;
        }
        execution.seed(epoch_seed(spec.seed, epoch));
        // A checkpoint written within this epoch: go on after the batches it had seen,
        // with its running metrics.
        let first_batch = std::mem::take(&mut state.epoch_batches);
        let mut running = state.epoch_running.take().unwrap_or_default();
        let order = execution.order(
            BatchOrder::shuffled(data.train().len(), spec.batch_size, spec.seed, epoch)
                .after_batches(first_batch),
        );
        emit(Event::EpochStart {
            epoch: epoch + 1,
            epochs: spec.epochs,
            steps: steps_per_epoch,
        })?;
        let epoch_groups = groups.at_epoch(epoch + 1);
        let frozen = FrozenSet::of(&epoch_groups, &param_infos(&network));
        network = frozen.apply(network);
        execution.freeze(&frozen);
        let mut started = Instant::now();
        let mut lr = spec.lr;
        let mut batches = data.train().batches(order, epoch);
        for step in first_batch..steps_per_epoch {
            if options
                .max_steps
                .is_some_and(|m| state.steps_done >= m as u64)
            {
                break;
            }
            if spec.checkpoint.within_epoch_after(step, steps_per_epoch) {
                if step > first_batch {
                    state.train_seconds += started.elapsed().as_secs_f64();
                    started = Instant::now();
                    if leads {
                        let within = TrainingState {
                            epoch_batches: step,
                            epoch_running: Some(running),
                            objective_state: objective.state(),
                            ..state.clone()
                        };
                        checkpoint::save(&last_path, &network, &optimizer, &within)?;
                    }
                }
                // Where a resumed run starts drawing dropout masks again.
                execution.seed(within_epoch_seed(spec.seed, epoch, step));
            }
            let waited = Instant::now();
            let Some(host) = batches.next().transpose()? else {
                break;
            };
            state.data_wait_seconds += waited.elapsed().as_secs_f64();
            let progress_epochs = epoch as f64 + step as f64 / steps_per_epoch as f64;
            lr = spec
                .schedule
                .lr(spec.lr, progress_epochs, spec.epochs, steps_per_epoch);
            if !execution.takes(host.len()) {
                continue;
            }
            let step_result =
                execution.step(network, &mut optimizer, &epoch_groups, objective, host, lr);
            let loss_value;
            (network, loss_value) = match step_result {
                Ok((n, stats)) => {
                    running.add_predictions(
                        stats.loss,
                        stats.correct,
                        stats.predictions,
                        stats.examples,
                    );
                    (n, stats.loss)
                }
                Err(StepError::NonFinite(value)) => {
                    return Err(EngineError::NonFinite {
                        value,
                        epoch: epoch + 1,
                        step: step + 1,
                        last_good: state.epochs_done,
                        dir: ckpt_dir,
                    });
                }
                Err(StepError::Collective(e)) => return Err(e.into()),
            };
            state.steps_done += 1;
            emit(Event::Step { loss: loss_value })?;
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
        drop(batches);
        // Only the run directory's writer scores and keeps checkpoints: no decision of
        // the loop depends on the scores, so the other ranks go on training.
        if leads {
            let val_acc = if let Some(val) = data.val() {
                let (l, a) = evaluate_with(objective, &network, val, spec.eval.val_examples)?;
                rows.push(row("val", l, a));
                Some(a)
            } else {
                None
            };
            // Without a validation split the test split selects checkpoints: scored
            // always.
            let test_now = val_acc.is_none() || spec.eval.tests_after(epoch + 1, spec.epochs);
            let mut test_acc = f64::NEG_INFINITY;
            if test_now {
                let (loss, accuracy) = evaluate_with(objective, &network, data.test(), None)?;
                rows.push(row("test", loss, accuracy));
                test_acc = accuracy;
                last_test = Some((epoch + 1, loss, accuracy));
            }
            state.history.extend(rows.iter().cloned());

            let selection = val_acc.unwrap_or(test_acc);
            let improved = selection > state.best_val_accuracy;
            if improved {
                state.best_val_accuracy = selection;
                state.best_epoch = epoch + 1;
            }
            // best.ckpt first: once last.ckpt records a new best, its weights are on
            // disk. A crash between the two leaves best.ckpt one epoch ahead of
            // last.ckpt, and the resumed run repeats that epoch bit for bit and rewrites
            // both.
            if improved {
                checkpoint::save(&best_path, &network, &optimizer, &state)?;
            }
            checkpoint::save(&last_path, &network, &optimizer, &state)?;
        }
        emit(Event::EpochEnd {
            epoch: epoch + 1,
            epochs: spec.epochs,
            rows: &rows,
            history: &state.history,
        })?;
    }

    // The last epoch scored the final network already, unless it ran before a resume.
    let (test_loss, test_accuracy) = match last_test {
        Some((epoch, loss, accuracy)) if epoch == state.epochs_done => (loss, accuracy),
        _ if !leads => (f64::NAN, f64::NAN),
        _ => evaluate_with(objective, &network, data.test(), None)?,
    };
    let summary = RunSummary {
        denormals: crate::kernels::denormals::on_this_thread(),
        test_accuracy,
        test_loss,
        best_val_accuracy: state.best_val_accuracy.max(0.0),
        best_epoch: state.best_epoch,
        epochs: state.epochs_done,
        wall_seconds: wall.elapsed().as_secs_f64(),
        load_seconds: 0.0,
        train_seconds: state.train_seconds,
        train_samples_per_second: state.train_samples as f64 / state.train_seconds.max(1e-9),
        data_wait_seconds: state.data_wait_seconds,
        peak_memory_mib: crate::data::limits::peak_resident_bytes().map(|b| b as f64 / 1048576.0),
        skipped_files: Vec::new(),
        parameters: crate::models::trainable_count(&network),
        seed: spec.seed,
        mentor_version: env!("CARGO_PKG_VERSION").into(),
        model: spec.label.model.clone(),
        dataset: spec.label.dataset.clone(),
        strategy: spec.label.strategy.clone(),
    };
    // `summary.json` is the caller's to write (run::run writes the tagged report once;
    // a continual task's summary is part of its run's).
    emit(Event::Finished {
        summary: &summary,
        history: &state.history,
    })?;
    Ok((summary, network))
}
