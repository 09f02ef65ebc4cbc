//! `mentor plot-sweep`: test accuracy of runs against one config key (a hyperparameter
//! sweep), as a PNG + SVG line plot and a table.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Arguments of `mentor plot-sweep`.
#[derive(Debug, Args)]
pub struct PlotSweepArgs {
    /// The swept config key, dotted (e.g. strategy.temperature).
    #[arg(long)]
    key: String,
    /// Output path without extension (.png and .svg are written).
    #[arg(long)]
    out: PathBuf,
    /// Logarithmic x axis.
    #[arg(long)]
    log_x: bool,
    /// Run directories (each with config.toml and summary.json).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
}

fn lookup(value: &toml::Value, key: &str) -> Option<f64> {
    let mut v = value;
    for part in key.split('.') {
        v = v.get(part)?;
    }
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

/// Runs `mentor plot-sweep`.
pub fn run(args: PlotSweepArgs) -> anyhow::Result<()> {
    let mut points = Vec::new();
    for dir in &args.runs {
        let cfg_path = dir.join("config.toml");
        let text = std::fs::read_to_string(&cfg_path)
            .with_context(|| format!("reading {}", cfg_path.display()))?;
        let cfg: toml::Value =
            toml::from_str(&text).with_context(|| format!("parsing {}", cfg_path.display()))?;
        let x = lookup(&cfg, &args.key)
            .with_context(|| format!("{} has no numeric key {}", cfg_path.display(), args.key))?;
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("summary.json"))
                .with_context(|| format!("reading {}/summary.json", dir.display()))?,
        )?;
        let y = summary["test_accuracy"]
            .as_f64()
            .with_context(|| format!("{}/summary.json has no test_accuracy", dir.display()))?;
        points.push((x, y));
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!("| {} | test accuracy |", args.key);
    println!("|---|---|");
    for (x, y) in &points {
        println!("| {x} | {y:.4} |");
    }
    mentor::report::plot_sweep(&points, &args.key, args.log_x, &args.out)
        .map_err(|e| anyhow::anyhow!("plotting {}: {e}", args.out.display()))?;
    Ok(())
}
