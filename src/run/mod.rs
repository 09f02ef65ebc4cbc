//! The composition root: a run config in, a trained network and a [`Report`] out.
//! [`run`] is the one place that dispatches on the strategy: it loads the data, checks
//! the model against the data and the strategy, decides the starting weights
//! ([`init`]), then either builds the strategy's objective and trains it on the engine
//! or hands over to the strategy's own runner (continual, multitask), and writes the
//! report as `summary.json`. Every command of the CLI builds a [`RunConfig`] and comes
//! here; the layers below never read a `RunConfig`.
//!
//! Layers, each importing only those below it: vocabulary (`data`, `models`, `kernels`,
//! `losses`) <- `engine` (and `report`, its observers) <- strategies (`transfer`,
//! `distill`, `continual`, `multitask`, `ssl`; never each other) <- `run` <- `cli`.

pub mod advise;
pub mod config;
pub mod init;
pub mod report;
pub mod restore;
pub mod strategy;

use std::path::PathBuf;

use burn::tensor::Device;

use crate::data::{DataError, PreparedData, RunData, Splits};
use crate::engine::progress::{LogFormat, Progress};
use crate::engine::run_dir::{Claim, RunDir};
use crate::engine::{
    CrossEntropy, EngineError, Objective, Ranks, RunSummary, StartWeights, TrainOptions,
    seeded_init, train_observed,
};
use crate::kernels::Denormals;
use crate::models::Network;
use crate::report::CurvePlots;

pub use config::{ConfigError, RunConfig, ValidRunConfig};
pub use init::InitWeights;
pub use report::Report;
pub use strategy::{StrategyConfig, StrategyError, build_objective};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config breaks a rule.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data could not be loaded.
    #[error("loading data: {0}")]
    Data(#[from] DataError),
    /// The strategy could not be set up.
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    /// The starting weights could not be made.
    #[error("starting weights: {0}")]
    Start(crate::engine::init::StartError),
    /// Training failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A continual run failed.
    #[error("continual run: {0}")]
    Continual(#[from] crate::continual::ContinualError),
    /// A multitask run failed.
    #[error("multitask run: {0}")]
    Multitask(#[from] crate::multitask::MultitaskError),
    /// The report could not be written.
    #[error(transparent)]
    Io(#[from] crate::engine::io::IoError),
    /// The run directory cannot be used as asked (locked, or holding a run).
    #[error(transparent)]
    RunDir(#[from] crate::engine::run_dir::RunDirError),
    /// The options do not fit the strategy.
    #[error("{0}")]
    Options(String),
}

/// How to run (as opposed to what to train, which is the [`RunConfig`]).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run directory.
    pub out: PathBuf,
    /// Continue the run in `out` from its last checkpoint.
    pub resume: bool,
    /// Replace the run `out` holds (without it, a fresh run into a directory that holds
    /// one is refused).
    pub overwrite: bool,
    /// Progress reporting.
    pub log: LogFormat,
    /// Stop early, to resume later: after this many epochs (a continual run: tasks).
    pub stop_after: Option<usize>,
    /// The training device.
    pub device: Device,
    /// Data-parallel devices (supervised runs only; see [`TrainOptions::devices`]).
    pub devices: Vec<Device>,
    /// Data parallel across the ranks of a job (see [`TrainOptions::ranks`]): every rank
    /// calls [`run`] with the same config; rank 0 alone claims and writes `out`.
    pub ranks: Option<Ranks>,
    /// Single-task runs of the same benchmark, for a multitask run's `Delta_m`.
    pub baselines: Vec<PathBuf>,
    /// What the CPU does with subnormal floats during the run (set on every compute
    /// thread; recorded in `summary.json`).
    pub denormals: Denormals,
}

impl RunOptions {
    /// Options for a fresh run in `out` on the CPU with human progress.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            resume: false,
            overwrite: false,
            log: LogFormat::Human,
            stop_after: None,
            device: Device::flex(),
            devices: Vec::new(),
            ranks: None,
            baselines: Vec::new(),
            denormals: Denormals::default(),
        }
    }

    fn train_options(&self) -> TrainOptions {
        TrainOptions {
            resume: self.resume,
            log: self.log,
            stop_after: self.stop_after,
            device: self.device.clone(),
            devices: self.devices.clone(),
            ranks: self.ranks.clone(),
            ..TrainOptions::new(&self.out)
        }
    }
}

/// Runs `config` as `options` say: the one dispatch over strategies. The config was
/// checked when it became a [`ValidRunConfig`]; this claims the run directory (locked
/// for the whole run; a fresh run over one it holds needs `options.overwrite`), sets the
/// subnormal-float mode,
/// trains, writes `summary.json` (the returned [`Report`]) and returns it with the
/// trained network.
pub fn run(config: &ValidRunConfig, options: &RunOptions) -> Result<(Report, Network), RunError> {
    let started = std::time::Instant::now();
    crate::kernels::denormals::set_everywhere(options.denormals);
    if !options.devices.is_empty() && !matches!(config.strategy, StrategyConfig::Supervised {}) {
        return Err(RunError::Options(format!(
            "--devices trains supervised runs only; strategy {:?} keeps per-step state that data parallel would split",
            config.strategy.kind()
        )));
    }
    if options.ranks.is_some()
        && matches!(
            config.strategy,
            StrategyConfig::Continual(_) | StrategyConfig::Multitask(_)
        )
    {
        return Err(RunError::Options(format!(
            "strategy {:?} does not run data parallel across ranks yet (its runner writes its own files per task); run it as one process",
            config.strategy.kind()
        )));
    }
    // Rank 0 of a job (or a process training alone) owns the run directory.
    let leads = options.ranks.as_ref().is_none_or(Ranks::leads);
    let claim = match (options.resume, options.overwrite) {
        (true, _) => Claim::Resume,
        (false, true) => Claim::Overwrite,
        (false, false) => Claim::Fresh,
    };
    let _lock = if leads {
        Some(RunDir::new(&options.out).claim(claim)?)
    } else {
        None
    };
    let start = InitWeights::new(&config.init, &options.device, options.log).recording(leads);
    let mut train_options = options.train_options();
    train_options.fingerprint = config.fingerprint();
    let (report, network) = match &config.strategy {
        StrategyConfig::Continual(c) => {
            let stop = options
                .stop_after
                .map(|tasks| crate::continual::StopPoint { tasks, epochs: 0 });
            train_options.stop_after = None;
            let (summary, network) = crate::continual::run_continual(
                &config.spec(),
                &config.data,
                c,
                &train_options,
                &start,
                stop,
            )?;
            (Report::Continual(summary), network)
        }
        StrategyConfig::Multitask(m) => {
            let (summary, network) = crate::multitask::run_multitask(
                &config.spec(),
                &config.data,
                m,
                &train_options,
                &start,
                &options.baselines,
            )?;
            (Report::Multitask(summary), network)
        }
        _ => {
            let mut data = RunData::load(&config.data, config.seed)?;
            if let (RunData::Streamed(s), StrategyConfig::SelfSupervised(_)) =
                (&mut data, &config.strategy)
            {
                // The contrastive methods compare two views of each photo: the pipeline
                // makes both from one read of the file.
                s.train = s.train.with_views(2);
            }
            let load_seconds = started.elapsed().as_secs_f64();
            let mut objective: Box<dyn Objective> = match (&data, &config.strategy) {
                (RunData::Memory(data), StrategyConfig::Distill(c)) => {
                    config
                        .model
                        .check_fits(
                            data.train.shape,
                            data.train.num_classes,
                            crate::engine::device::host_memory_bytes(),
                        )
                        .map_err(StrategyError::Model)?;
                    let kd = crate::distill::KnowledgeDistillation::from_checkpoint(
                        c,
                        &data.train,
                        &train_options.device,
                    )
                    .map_err(StrategyError::from)?;
                    let plotted = match leads {
                        true => kd.plot_soft_targets(&data.test, &options.out.join("plots")),
                        false => Ok(()),
                    };
                    if let Err(e) = plotted {
                        Progress::new(options.log, "distill:")
                            .note(&format!("soft-target plot not written: {e}"));
                    }
                    Box::new(kd)
                }
                (RunData::Memory(data), _) => build_objective(config, data, &train_options.device)?,
                (RunData::Streamed(streamed), strategy) => {
                    let train = streamed.train();
                    if !matches!(
                        strategy,
                        StrategyConfig::Supervised {}
                            | StrategyConfig::Distill(_)
                            | StrategyConfig::LinearProbe(_)
                            | StrategyConfig::SelfSupervised(_)
                    ) {
                        return Err(RunError::Options(format!(
                            "data.transform: photos streamed from disk train strategies \"supervised\" (fine-tuning from [init] included), \"distill\", \"linear-probe\" and \"self-supervised\"; strategy {:?} needs its data in memory: remove data.transform and give the folder's images one size",
                            strategy.kind()
                        )));
                    }
                    config
                        .model
                        .check_fits(
                            train.shape(),
                            train.num_classes(),
                            crate::engine::device::host_memory_bytes(),
                        )
                        .map_err(StrategyError::Model)?;
                    match strategy {
                        StrategyConfig::Distill(c) => {
                            let kd = crate::distill::KnowledgeDistillation::streamed(
                                c,
                                train.shape(),
                                train.num_classes(),
                                &train_options.device,
                            )
                            .map_err(StrategyError::from)?;
                            Progress::new(options.log, "distill:").note(
                                "the teacher runs on every batch: streamed photos are augmented anew each epoch, so its outputs are not cached",
                            );
                            Box::new(kd)
                        }
                        StrategyConfig::LinearProbe(c) => {
                            Box::new(crate::transfer::LinearProbe::streamed(c))
                        }
                        StrategyConfig::SelfSupervised(c) => {
                            let objective = crate::ssl::build_streamed_objective(
                                c,
                                &streamed.train,
                                &streamed.test,
                                config.seed,
                            )
                            .map_err(StrategyError::from)?;
                            Progress::new(options.log, "self-supervised:").note(
                                "two views of each photo by data.transform.train; the kNN monitor reads training photos through data.transform.eval",
                            );
                            objective
                        }
                        _ => Box::new(CrossEntropy),
                    }
                }
            };
            let splits = data.splits();
            if let RunData::Streamed(_) = &data {
                Progress::new(options.log, "data:")
                    .note(&format!("train: {}", splits.train().describe()));
            }
            let (mut summary, network) =
                train_with(config, splits, objective.as_mut(), &train_options, &start)?;
            // The whole invocation: reading the data and building the objective too.
            summary.load_seconds = load_seconds;
            summary.wall_seconds = started.elapsed().as_secs_f64();
            if let RunData::Streamed(streamed) = &data {
                summary.skipped_files = streamed.skipped();
                if !summary.skipped_files.is_empty() {
                    let names: Vec<String> = summary
                        .skipped_files
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect();
                    Progress::new(options.log, "data:").note(&format!(
                        "{} unreadable photo(s) skipped (data.skip_corrupt): {}",
                        names.len(),
                        names.join(", ")
                    ));
                }
            }
            (Report::Training(summary), network)
        }
    };
    if leads {
        report.write(&options.out)?;
    }
    Ok((report, network))
}

/// Trains `config` with a caller-built `objective` on `data`: the starting weights as
/// `config.init` says, then the engine, with the curves plotted at the end. `options`'
/// fingerprint is replaced by the config's. This is [`run`]'s path for one objective,
/// for callers (tests, the advisor) that build the objective themselves.
pub fn train(
    config: &RunConfig,
    data: &PreparedData,
    objective: &mut dyn Objective,
    options: &TrainOptions,
) -> Result<(RunSummary, Network), RunError> {
    let start = InitWeights::new(&config.init, &options.device, options.log);
    let options = TrainOptions {
        fingerprint: config.fingerprint(),
        ..options.clone()
    };
    let (summary, network) = train_with(config, data, objective, &options, &start)?;
    Report::Training(summary.clone()).write(&options.out)?;
    Ok((summary, network))
}

fn train_with(
    config: &RunConfig,
    data: &dyn Splits,
    objective: &mut dyn Objective,
    options: &TrainOptions,
    start: &dyn StartWeights,
) -> Result<(RunSummary, Network), RunError> {
    let mut options = options.clone();
    let resumes = options.resume && RunDir::new(&options.out).last_checkpoint().is_file();
    if !resumes && options.start_from.is_none() {
        let device = options
            .devices
            .first()
            .unwrap_or(&options.device)
            .clone()
            .autodiff();
        let fresh = seeded_init(
            &config.model,
            data.train().shape(),
            data.train().num_classes(),
            &device,
            config.seed,
        );
        options.start_from = Some(start.start(fresh, &options.out).map_err(RunError::Start)?);
    }
    let mut plots = CurvePlots::new(options.out.join("plots"));
    Ok(train_observed(
        &config.spec(),
        data,
        objective,
        &options,
        &mut [&mut plots],
    )?)
}
