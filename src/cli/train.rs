//! `mentor train`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use mentor::config::RunConfig;
use mentor::data::prepare_data;
use mentor::distill::KnowledgeDistillation;
use mentor::engine::Objective;
use mentor::engine::{LogFormat, TrainOptions, parse_device, parse_devices, train};
use mentor::strategy::{StrategyConfig, build_objective};

/// The run-config flags shared by commands that build a run: a config file, common keys
/// as flags, and `--set key=value` for any key (applied last, in order).
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// A TOML run config (see examples/); flags and --set override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Dataset: digits (embedded), mnist, fashion-mnist, cifar10, cifar100, image-folder.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Folder with the dataset files (default $MENTOR_DATA, else ./data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Network: mlp, cnn, resnet.
    #[arg(long)]
    pub model: Option<String>,
    /// Epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Base learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Batch size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Set any config key, e.g. --set optim.type=sgd --set model.hidden=[512,512].
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

impl ConfigArgs {
    /// The resolved, validated config.
    pub fn resolve(&self) -> anyhow::Result<RunConfig> {
        let base = match &self.config {
            Some(path) => RunConfig::from_file(path)?,
            None => RunConfig::default(),
        };
        self.apply(base)
    }

    /// Applies the flags and `--set`s to `base`, then validates.
    pub fn apply(&self, base: RunConfig) -> anyhow::Result<RunConfig> {
        let config = base.with_overrides(&self.overrides())?;
        config.validate()?;
        Ok(config)
    }

    /// The flags and `--set`s as `key=value` overrides, flags first.
    pub fn overrides(&self) -> Vec<String> {
        let mut sets = Vec::new();
        if let Some(d) = &self.dataset {
            sets.push(format!("data.dataset={d:?}"));
        }
        if let Some(d) = &self.data_dir {
            sets.push(format!("data.data_dir={:?}", d.display().to_string()));
        }
        if let Some(m) = &self.model {
            sets.push(format!("model.type={m:?}"));
        }
        if let Some(e) = self.epochs {
            sets.push(format!("epochs={e}"));
        }
        if let Some(lr) = self.lr {
            sets.push(format!("lr={lr:e}"));
        }
        if let Some(b) = self.batch_size {
            sets.push(format!("batch_size={b}"));
        }
        if let Some(s) = self.seed {
            sets.push(format!("seed={s}"));
        }
        sets.extend(self.sets.iter().cloned());
        sets
    }
}

/// Arguments of `mentor train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// How to run: the run directory, resuming, progress and device.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The run directory (config.toml, metrics, checkpoints, summary.json, plots).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint. Without --config, the run's
    /// own config.toml is the base; the resolved config must equal the saved one.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many epochs (resume later with --resume).
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Progress format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Device: cpu, or cuda[:N] / wgpu in a build with that feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Train data-parallel on these devices through Burn's distributed data parallel,
    /// e.g. `cuda:0,cuda:1` (one device works too). Each step's batch is split across
    /// them and gradients are all-reduced by Burn; CUDA only (Burn 0.22.1), supervised
    /// runs only. Replaces --device.
    #[arg(long, value_name = "LIST")]
    pub devices: Option<String>,
}

/// Runs `mentor train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let config = if args.run.resume && args.config.config.is_none() {
        args.config
            .apply(RunConfig::from_file(&args.run.out.join("config.toml"))?)?
    } else {
        args.config.resolve()?
    };
    run_config(config, args.run)
}

/// Trains `config` as `args` say and reports the summary.
pub fn run_config(config: RunConfig, args: RunArgs) -> anyhow::Result<()> {
    let devices = match &args.devices {
        Some(list) => parse_devices(list)?,
        None => Vec::new(),
    };
    if !devices.is_empty() && !matches!(config.strategy, StrategyConfig::Supervised) {
        bail!(
            "--devices trains supervised runs only; strategy {:?} keeps per-step state that data parallel would split",
            config.strategy.kind()
        );
    }
    if let StrategyConfig::Continual(c) = &config.strategy {
        return super::continual::run_config(&config, c, args);
    }
    if let StrategyConfig::Multitask(m) = &config.strategy {
        return super::multitask::run_config(&config, m, &[], args);
    }
    let data = prepare_data(&config.data, config.seed).context("loading data")?;
    let options = TrainOptions {
        out: args.out.clone(),
        resume: args.resume,
        log: args.log_format,
        stop_after: args.stop_after,
        device: match devices.first() {
            Some(first) => first.clone(),
            None => parse_device(&args.device)?,
        },
        devices,
        ..TrainOptions::new(&args.out)
    };
    let mut objective: Box<dyn Objective> = match &config.strategy {
        StrategyConfig::Distill(c) => {
            let kd = KnowledgeDistillation::from_checkpoint(c, &data.train, &options.device)?;
            if let Err(e) = kd.plot_soft_targets(&data.test, &args.out.join("plots")) {
                eprintln!("warning: soft-target plot not written: {e}");
            }
            Box::new(kd)
        }
        _ => build_objective(&config, &data, &options.device)?,
    };
    let (summary, _) = train(&config, &data, objective.as_mut(), &options)?;
    match args.log_format {
        LogFormat::Jsonl => println!(
            "{}",
            serde_json::json!({"event": "summary", "summary": summary})
        ),
        LogFormat::Human => eprintln!(
            "test accuracy {:.4} (best val {:.4} at epoch {}), {:.0} samples/s; run in {}",
            summary.test_accuracy,
            summary.best_val_accuracy,
            summary.best_epoch,
            summary.train_samples_per_second,
            args.out.display()
        ),
        LogFormat::Quiet => {}
    }
    Ok(())
}
