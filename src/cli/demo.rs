//! `mentor demo`: the tour of the toolkit on the embedded digits set. Each strategy adds
//! its row; today: supervised MLP and CNN, and distillation of the CNN into a small MLP
//! beside the same MLP trained alone.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use mentor::config::RunConfig;
use mentor::engine::{LogFormat, TrainOptions, prepare_data, train};
use mentor::strategy::{StrategyConfig, build_objective};

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
    let teacher = args.out.join("supervised-cnn/checkpoints/best.ckpt");
    let teacher_set = format!("strategy.teacher={:?}", teacher.display().to_string());
    let small = "model.hidden=[32]";
    // Later rows may use earlier rows' checkpoints (the CNN teaches the small MLP).
    let runs = [
        ("supervised", "mlp", supervised("mlp", 20, 1e-3, &[])?),
        ("supervised", "cnn", supervised("cnn", 15, 1e-3, &[])?),
        (
            "supervised",
            "mlp-32",
            supervised("mlp", 20, 1e-3, &[small])?,
        ),
        (
            "distillation",
            "cnn -> mlp-32",
            supervised(
                "mlp",
                20,
                1e-3,
                &[
                    small,
                    "strategy.type=\"distill\"",
                    &teacher_set,
                    "strategy.temperature=4.0",
                    "strategy.lambda=0.5",
                ],
            )?,
        ),
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
            ..TrainOptions::new(
                args.out
                    .join(format!("{strategy}-{}", name.replace(" -> ", "-to-"))),
            )
        };
        let mut objective = build_objective(&config.strategy, &data, &options.device)?;
        let (summary, _) = train(&config, &data, objective.as_mut(), &options)?;
        let detail = match &config.strategy {
            StrategyConfig::Distill(d) => format!(", T={} lambda={}", d.temperature, d.lambda),
            StrategyConfig::Supervised => String::new(),
        };
        rows.push(Row {
            strategy,
            what: format!(
                "{name}, {} epochs, {} params{detail}",
                summary.epochs, summary.parameters
            ),
            accuracy: summary.test_accuracy,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    println!();
    println!("mentor demo: embedded UCI digits (8x8 pixels, {sizes})");
    println!(
        "| strategy     | run                                                      | test accuracy | seconds |"
    );
    println!(
        "|--------------|----------------------------------------------------------|---------------|---------|"
    );
    for r in &rows {
        println!(
            "| {:<12} | {:<56} | {:>13.4} | {:>7.1} |",
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
