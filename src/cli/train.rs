//! `mentor train`.

use clap::Args;
use mentor::run::RunConfig;

use super::args::{ConfigArgs, RunArgs, run_and_report};

/// Arguments of `mentor train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Runs `mentor train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let base = args
        .run
        .base_config(&args.config.config, || Ok(RunConfig::default()))?;
    let config = args.config.apply(base)?;
    run_and_report(&config, &args.run, &[])?;
    Ok(())
}
