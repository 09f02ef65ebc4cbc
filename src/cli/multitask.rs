//! `mentor multitask`: `mentor train` with `[strategy] type = "multitask"`, several tasks
//! on the same inputs learnt by one shared network.

use clap::Args;
use mentor::run::config::RunConfig;
use mentor::run::strategy::StrategyConfig;

use super::args::{ConfigArgs, RunArgs, run_and_report};

/// Arguments of `mentor multitask`.
#[derive(Debug, Args)]
pub struct MultitaskArgs {
    /// multi-digits (MultiMNIST-style left/right digit) or coarse (classes + coarse groups).
    #[arg(long)]
    benchmark: Option<String>,
    /// Task weighting: fixed (equal unless strategy.weighting.weights is set), dwa,
    /// uncertainty or gradnorm.
    #[arg(long)]
    weighting: Option<String>,
    /// Parameter sharing: hard, soft (needs --set strategy.architecture.lambda=...) or
    /// cross-stitch.
    #[arg(long)]
    architecture: Option<String>,
    /// Train only these tasks (a single task: the single-task baseline), e.g. --task 0.
    #[arg(long = "task")]
    tasks: Vec<usize>,
    /// Single-task runs of the same benchmark, for Delta_m in summary.json.
    #[arg(long = "baseline")]
    baselines: Vec<std::path::PathBuf>,
    /// The run config (data, model, optimiser, epochs, seed).
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// Runs `mentor multitask`.
pub fn run(mut args: MultitaskArgs) -> anyhow::Result<()> {
    let base = args
        .run
        .base_config(&args.config.config, || Ok(RunConfig::default()))?;
    let mut sets = Vec::new();
    if !matches!(base.strategy, StrategyConfig::Multitask(_)) {
        sets.push("strategy.type=\"multitask\"".to_string());
    }
    if let Some(b) = &args.benchmark {
        sets.push(format!("strategy.benchmark={b:?}"));
    }
    if let Some(w) = &args.weighting {
        sets.push(format!("strategy.weighting={{type={w:?}}}"));
    }
    if let Some(a) = &args.architecture {
        sets.push(format!("strategy.architecture={{type={a:?}}}"));
    }
    if !args.tasks.is_empty() {
        sets.push(format!("strategy.train_tasks={:?}", args.tasks));
    }
    sets.append(&mut args.config.sets);
    args.config.sets = sets;
    let config = args.config.apply(base)?;
    run_and_report(&config, &args.run, &args.baselines)?;
    Ok(())
}
