//! `mentor distill`: `mentor train` with `[strategy] type = "distill"`.

use std::path::PathBuf;

use clap::Args;
use mentor::run::config::RunConfig;
use mentor::run::strategy::StrategyConfig;

use super::args::{ConfigArgs, RunArgs, run_and_report};

/// Arguments of `mentor distill`.
#[derive(Debug, Args)]
pub struct DistillArgs {
    /// The teacher's checkpoint (from `mentor train`).
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Softmax temperature T > 0 of the soft targets.
    #[arg(long)]
    temperature: Option<f64>,
    /// Weight of the soft (teacher) term in [0, 1] (torchdistill's alpha is 1 - lambda).
    #[arg(long)]
    lambda: Option<f64>,
    /// Soft (tempered distribution, Hinton et al.) or hard (top class, DeiT) teacher
    /// targets.
    #[arg(long, value_parser = ["soft", "hard"])]
    targets: Option<String>,
    /// Run the teacher on every batch instead of caching its logits once.
    #[arg(long)]
    no_cache: bool,
    /// Weight of the FitNets hint term (student features regress the teacher's through a
    /// learned adapter); 0 (default) leaves it out.
    #[arg(long)]
    hint_weight: Option<f64>,
    /// The student's run config (its model is the student).
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// Runs `mentor distill`.
pub fn run(mut args: DistillArgs) -> anyhow::Result<()> {
    let base = match &args.config.config {
        Some(path) => RunConfig::from_file(path)?,
        None => RunConfig::default(),
    };
    // The flags become `--set`s placed before the user's own, so `--set` still wins.
    // Setting the type resets the table, so only do it when the base is not distilling.
    let mut sets = Vec::new();
    if !matches!(base.strategy, StrategyConfig::Distill(_)) {
        sets.push("strategy.type=\"distill\"".to_string());
    }
    if let Some(t) = &args.teacher {
        sets.push(format!("strategy.teacher={:?}", t.display().to_string()));
    }
    if let Some(t) = args.temperature {
        sets.push(format!("strategy.temperature={t:e}"));
    }
    if let Some(l) = args.lambda {
        sets.push(format!("strategy.lambda={l:e}"));
    }
    if let Some(h) = args.hint_weight {
        sets.push(format!("strategy.hint_weight={h:e}"));
    }
    if let Some(t) = &args.targets {
        sets.push(format!("strategy.targets={t:?}"));
    }
    if args.no_cache {
        sets.push("strategy.cache_teacher=false".into());
    }
    sets.append(&mut args.config.sets);
    args.config.sets = sets;
    let config = args.config.apply(base)?;
    run_and_report(&config, &args.run, &[])?;
    Ok(())
}
