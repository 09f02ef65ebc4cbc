//! `mentor advise`: measure a target set's size and similarity to a pretrained
//! network's source, name the transfer quadrant and recommend (and write) a policy.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use mentor::data::prepare_data;
use mentor::run::advise::{AdvisorConfig, advise};

use super::args::ConfigArgs;

/// Arguments of `mentor advise`.
#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// The pretrained checkpoint.
    #[arg(long)]
    pretrained: PathBuf,
    /// A target with fewer training examples per class than this is "small".
    #[arg(long, default_value_t = 100)]
    small_below: usize,
    /// Minimum gain in probe validation accuracy over a random backbone for "similar".
    #[arg(long, default_value_t = 0.05)]
    similar_margin: f64,
    /// Epochs of each linear probe.
    #[arg(long, default_value_t = 10)]
    probe_epochs: usize,
    /// Write the recommended run config here (run it with `mentor train --config`).
    #[arg(long)]
    write_config: Option<PathBuf>,
    /// Folder for the probe runs.
    #[arg(long, default_value = "runs/advise")]
    out: PathBuf,
    /// Print JSON instead of a report.
    #[arg(long)]
    json: bool,
    /// The target's run config (data, model); the model must match the pretrained one.
    #[command(flatten)]
    config: ConfigArgs,
}

/// Runs `mentor advise`.
pub fn run(args: AdviseArgs) -> anyhow::Result<()> {
    let target = args.config.resolve()?;
    anyhow::ensure!(args.probe_epochs >= 1, "--probe-epochs must be >= 1");
    let data = prepare_data(&target.data, target.seed).context("loading data")?;
    let cfg = AdvisorConfig {
        small_below: args.small_below,
        similar_margin: args.similar_margin,
        probe_epochs: args.probe_epochs,
        ..AdvisorConfig::default()
    };
    let advice = advise(&args.pretrained, &target, &data, &cfg, &args.out)?;
    if let Some(path) = &args.write_config {
        mentor::engine::io::write_atomic(path, advice.config.to_toml().as_bytes())?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&advice)?);
        return Ok(());
    }
    let e = &advice.evidence;
    println!(
        "target: {} examples per class (small below {})",
        e.examples_per_class.round(),
        cfg.small_below
    );
    println!(
        "linear probe, validation accuracy: pretrained features {:.4}, random backbone {:.4} (gain {:+.4}; similar from {:+.4})",
        e.probe_pretrained,
        e.probe_random,
        e.probe_pretrained - e.probe_random,
        cfg.similar_margin
    );
    match e.feature_distance {
        Some(d) => println!(
            "feature statistics distance, source vs target images: {d:.3} (mean |Cohen's d| over features)"
        ),
        None => println!(
            "feature statistics distance: skipped (a weights file names no source data, or it is not readable)"
        ),
    }
    println!(
        "quadrant {}: {:?}; recommended: {}",
        advice.quadrant.number(),
        advice.quadrant,
        advice.quadrant.policy()
    );
    if let Some(path) = &args.write_config {
        println!(
            "wrote {}; run it with: mentor train --config {} --out DIR",
            path.display(),
            path.display()
        );
    }
    Ok(())
}
