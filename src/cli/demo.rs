//! `mentor demo`: the tour of the toolkit on the embedded digits set. Each strategy adds
//! its row; today: supervised MLP and CNN.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use mentor::config::RunConfig;
use mentor::engine::{CrossEntropy, LogFormat, TrainOptions, prepare_data, train};

/// Arguments of `mentor demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo's run directories go (one sub-folder per row).
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Progress format of the individual runs.
    #[arg(long, value_enum, default_value_t = LogFormat::Quiet)]
    log_format: LogFormat,
}

struct Row {
    strategy: &'static str,
    what: String,
    accuracy: f64,
    seconds: f64,
}

fn supervised(model: &str, epochs: usize, lr: f64, extra: &[&str]) -> anyhow::Result<RunConfig> {
    let mut sets = vec![
        format!("model.type={model:?}"),
        format!("epochs={epochs}"),
        format!("lr={lr}"),
        "data.dataset=\"digits\"".to_string(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    let c = RunConfig::default().with_overrides(&sets)?;
    c.validate()?;
    Ok(c)
}

/// Runs the demo and prints its table.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let runs = [
        ("supervised", "mlp", supervised("mlp", 20, 1e-3, &[])?),
        ("supervised", "cnn", supervised("cnn", 15, 1e-3, &[])?),
    ];
    let mut rows = Vec::new();
    let mut sizes = String::new();
    let total = Instant::now();
    for (strategy, name, config) in runs {
        eprintln!("demo: {strategy} {name} on digits ...");
        let started = Instant::now();
        let data = prepare_data(&config.data, config.seed)?;
        sizes = format!(
            "{} train / {} validation / {} test images",
            data.train.len(),
            data.val.as_ref().map_or(0, |v| v.len()),
            data.test.len()
        );
        let options = TrainOptions {
            log: args.log_format,
            ..TrainOptions::new(args.out.join(format!("{strategy}-{name}")))
        };
        let (summary, _) = train(&config, &data, &mut CrossEntropy, &options)?;
        rows.push(Row {
            strategy,
            what: format!(
                "{name}, {} epochs, {} params",
                summary.epochs, summary.parameters
            ),
            accuracy: summary.test_accuracy,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    println!();
    println!("mentor demo: embedded UCI digits (8x8 pixels, {sizes})");
    println!("| strategy     | run                                 | test accuracy | seconds |");
    println!("|--------------|-------------------------------------|---------------|---------|");
    for r in &rows {
        println!(
            "| {:<12} | {:<35} | {:>13.4} | {:>7.1} |",
            r.strategy, r.what, r.accuracy, r.seconds
        );
    }
    println!(
        "total {:.1} s; run directories in {}",
        total.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
