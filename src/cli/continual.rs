//! `mentor continual`: `mentor train` with `[strategy] type = "continual"`, a sequence of
//! tasks learnt one after the other. Without `--config` the defaults are van de Ven &
//! Tolias's Split-MNIST protocol: MLP 2x400, Adam lr 1e-3 (its state kept across tasks),
//! batch 128, 2000 iterations per task, pixels in [0, 1] (not normalised), no validation
//! split.

use clap::Args;
use mentor::run::config::RunConfig;
use mentor::run::strategy::StrategyConfig;

use super::args::{ConfigArgs, RunArgs, run_and_report};

/// Arguments of `mentor continual`.
#[derive(Debug, Args)]
pub struct ContinualArgs {
    /// How the dataset is cut into tasks: split (classes in order) or permuted (pixel
    /// permutations).
    #[arg(long)]
    scenario: Option<String>,
    /// What is known at test time: task-il, domain-il or class-il.
    #[arg(long)]
    setting: Option<String>,
    /// Number of tasks.
    #[arg(long)]
    tasks: Option<usize>,
    /// Optimiser steps per task.
    #[arg(long)]
    iterations: Option<usize>,
    /// Method: finetune, feature-extraction, joint, lwf, ewc, online-ewc, replay (its
    /// hyperparameters with --set strategy.method.KEY=VALUE; ewc needs
    /// strategy.method.lambda).
    #[arg(long)]
    method: Option<String>,
    /// The run config (data, model, optimiser, batch size, seed).
    #[command(flatten)]
    config: ConfigArgs,
    /// --stop-after counts tasks here: stop after that many (resume with --resume).
    #[command(flatten)]
    run: RunArgs,
}

/// The protocol of van de Ven & Tolias (2019) for Split-MNIST, the default base.
fn protocol_base() -> anyhow::Result<RunConfig> {
    Ok(RunConfig::default().with_overrides(&[
        "strategy.type=\"continual\"".into(),
        "data.val_fraction=0.0".into(),
        "model.type=\"mlp\"".into(),
        "model.hidden=[400,400]".into(),
        "optim.type=\"adam\"".into(),
        "lr=1e-3".into(),
        "batch_size=128".into(),
        "data.normalize=false".into(),
    ])?)
}

/// Runs `mentor continual`.
pub fn run(mut args: ContinualArgs) -> anyhow::Result<()> {
    let base = args.run.base_config(&args.config.config, protocol_base)?;
    let mut sets = Vec::new();
    if !matches!(base.strategy, StrategyConfig::Continual(_)) {
        sets.push("strategy.type=\"continual\"".to_string());
    }
    if let Some(s) = &args.scenario {
        sets.push(format!("strategy.scenario={s:?}"));
    }
    if let Some(s) = &args.setting {
        sets.push(format!("strategy.setting={s:?}"));
    }
    if let Some(t) = args.tasks {
        sets.push(format!("strategy.tasks={t}"));
    }
    if let Some(i) = args.iterations {
        sets.push(format!("strategy.iterations_per_task={i}"));
    }
    if let Some(m) = &args.method {
        sets.push(match m.as_str() {
            "online-ewc" => "strategy.method={type=\"ewc\", online=true}".to_string(),
            other => format!("strategy.method={{type={other:?}}}"),
        });
    }
    sets.append(&mut args.config.sets);
    args.config.sets = sets;
    let config = args.config.apply(base)?;
    run_and_report(&config, &args.run, &[])?;
    Ok(())
}
