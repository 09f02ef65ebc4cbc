//! The flags every run command shares: the run config (`--config`, common keys as
//! flags, `--set`), how to run it (`--out`, `--resume`, device) and how its report is
//! printed.

use std::path::PathBuf;

use clap::Args;
use mentor::engine::{LogFormat, parse_device, parse_devices};
use mentor::kernels::Denormals;
use mentor::run::{Report, RunConfig, RunOptions};

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
    /// Network: mlp, cnn, resnet, vit, projected, cpc, columns, efficientnet-lite0 (see examples/).
    #[arg(long)]
    pub model: Option<String>,
    /// Epochs (with --resume: more than the run has done extends it).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Base learning rate.
    #[arg(long, allow_negative_numbers = true)]
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
        let config = self.resolve_unchecked()?;
        config.validate()?;
        Ok(config)
    }

    /// [`resolve`](Self::resolve) without the validation, for a command that adds its
    /// own flags to the config first (a rule such as `init.keep_head` needing
    /// `init.pretrained` is checked once, on the whole).
    pub fn resolve_unchecked(&self) -> anyhow::Result<RunConfig> {
        let base = match &self.config {
            Some(path) => RunConfig::from_file(path)?,
            None => RunConfig::default(),
        };
        Ok(base.with_overrides(&self.overrides())?)
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
    /// Start afresh in --out even though it holds a run, replacing that run's config,
    /// checkpoints, metrics and summary (other files in it stay).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
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
    /// Subnormal floats: flush them to zero (fast; PyTorch's `set_flush_denormal`) or
    /// keep them (IEEE gradual underflow, slower as weights decay). Resume with the mode
    /// the run started with to get bit-identical weights.
    #[arg(long, value_enum, default_value_t = Denormals::Flush)]
    pub denormals: Denormals,
}

impl RunArgs {
    /// The library's run options for these flags (`baselines` for a multitask run).
    pub fn options(&self, baselines: &[PathBuf]) -> anyhow::Result<RunOptions> {
        let devices = match &self.devices {
            Some(list) => parse_devices(list)?,
            None => Vec::new(),
        };
        if self.stop_after == Some(0) {
            anyhow::bail!("--stop-after 0 trains nothing: give at least 1 (or leave it out)");
        }
        let ranks = super::job::ranks();
        if ranks.is_some() && !devices.is_empty() {
            anyhow::bail!(
                "--devices cannot be combined with MPI ranks: each rank trains on one device (--device)"
            );
        }
        // Rank 0 reports for the job; the other ranks work quietly.
        let leads = ranks.as_ref().is_none_or(|r| r.leads());
        Ok(RunOptions {
            resume: self.resume,
            overwrite: self.overwrite,
            log: if leads {
                self.log_format
            } else {
                LogFormat::Quiet
            },
            ranks,
            stop_after: self.stop_after,
            device: match devices.first() {
                Some(first) => first.clone(),
                None => parse_device(&self.device)?,
            },
            devices,
            baselines: baselines.to_vec(),
            denormals: self.denormals,
            ..RunOptions::new(&self.out)
        })
    }

    /// The base config of a run: `--config`'s file, else (when resuming) the run's own
    /// `config.toml`, else `default`.
    pub fn base_config(
        &self,
        config: &Option<PathBuf>,
        default: impl FnOnce() -> anyhow::Result<RunConfig>,
    ) -> anyhow::Result<RunConfig> {
        Ok(match (config, self.resume) {
            (Some(path), _) => RunConfig::from_file(path)?,
            // A run stopped before its first write has no config.toml: the command's
            // own flags start it.
            (None, true) if self.out.join("config.toml").exists() => {
                RunConfig::from_file(&self.out.join("config.toml"))?
            }
            (None, _) => default()?,
        })
    }
}

/// Runs `config` through the library's one entry point and prints its report.
pub fn run_and_report(
    config: &RunConfig,
    args: &RunArgs,
    baselines: &[PathBuf],
) -> anyhow::Result<Report> {
    let config = config.clone().check()?;
    let options = args.options(baselines)?;
    super::interrupt::set_run_dir(&args.out);
    let (report, _) = mentor::run::run(&config, &options)?;
    // A job's other ranks run with their progress off, and say nothing at the end either.
    print_report(&report, options.log, &args.out);
    Ok(report)
}

/// Prints a finished run's report as `log` asks: one line for a person, one JSON
/// object for a program, or nothing.
pub fn print_report(report: &Report, log: LogFormat, out: &std::path::Path) {
    match log {
        LogFormat::Jsonl => println!(
            "{}",
            serde_json::json!({"event": "summary", "summary": report})
        ),
        LogFormat::Human => eprintln!("{}; run in {}", report_line(report), out.display()),
        LogFormat::Quiet => {}
    }
}

fn report_line(report: &Report) -> String {
    match report {
        Report::Training(s) => format!(
            "test accuracy {:.4} (best val {:.4} at epoch {}), {:.0} samples/s",
            s.test_accuracy, s.best_val_accuracy, s.best_epoch, s.train_samples_per_second
        ),
        Report::Continual(s) => format!(
            "{} {} {}: average accuracy {:.4} over {} tasks, backward transfer {:+.4}, forgetting {:.4}",
            s.scenario,
            s.setting,
            s.method,
            s.average_accuracy,
            s.matrix.rows.len(),
            s.backward_transfer,
            s.mean_forgetting
        ),
        Report::Multitask(s) => {
            let per: Vec<String> = s
                .tasks
                .iter()
                .zip(&s.task_accuracy)
                .map(|(n, a)| format!("{n} {a:.4}"))
                .collect();
            let dm = s
                .delta_m
                .map_or(String::new(), |d| format!(", Delta_m {d:+.2}%"));
            format!(
                "{} ({} sharing, {} weights): test accuracy {}{dm}, {} params",
                s.benchmark,
                s.architecture,
                s.weighting,
                per.join(", "),
                s.parameters
            )
        }
    }
}
