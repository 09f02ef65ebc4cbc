//! `mentor demo`: the tour of the toolkit on the embedded digits set. Each strategy adds
//! its rows; today: supervised MLP and CNN; distillation of the CNN into a small MLP
//! beside the same MLP trained alone; transfer of a CNN trained on digits 0-4 to digits
//! 5-9 with 20 examples a class, beside the same CNN trained from scratch; continual
//! learning of the digits as 5 class-incremental tasks, fine-tuned and with replay;
//! multitask learning of overlaid digit pairs (left and right digit) with hard sharing;
//! self-supervised SimCLR pretraining probed with 10% of the labels, beside the same
//! probe of the untrained encoder.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use mentor::data::prepare_data;
use mentor::engine::{LogFormat, seeded_init};
use mentor::losses::TeacherTargets;
use mentor::run::config::RunConfig;
use mentor::run::strategy::StrategyConfig;
use mentor::run::{Report, RunOptions};
use mentor::ssl::probe::{ProbeConfig, probe};

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
    let owned: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    supervised_owned(model, epochs, lr, &owned)
}

fn supervised_owned(
    model: &str,
    epochs: usize,
    lr: f64,
    extra: &[String],
) -> anyhow::Result<RunConfig> {
    let mut sets = vec![
        format!("model.type={model:?}"),
        format!("epochs={epochs}"),
        format!("lr={lr}"),
        "data.dataset=\"digits\"".to_string(),
    ];
    sets.extend(extra.iter().cloned());
    let c = RunConfig::default().with_overrides(&sets)?;
    c.validate()?;
    Ok(c)
}

/// `transfer`, `cnn 0-4 -> 5-9, frozen backbone` -> `transfer-cnn-0-4-to-5-9-frozen-backbone`.
fn dir_name(strategy: &str, name: &str) -> String {
    let slug: String = name
        .replace(" -> ", " to ")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let parts: Vec<&str> = slug.split('-').filter(|p| !p.is_empty()).collect();
    format!("{strategy}-{}", parts.join("-"))
}

/// Runs the demo and prints its table.
/// The demo's ViT on 8x8 digits: 4x4 patches (4 tokens), width 32, 2 blocks.
const VIT_DIGITS: [&str; 3] = ["model.patch=4", "model.dim=32", "model.depth=2"];

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let teacher = args
        .out
        .join(dir_name("supervised", "cnn"))
        .join("checkpoints/best.ckpt");
    let teacher_set = format!("strategy.teacher={:?}", teacher.display().to_string());
    let small = "model.hidden=[32]";
    // Later rows may use earlier rows' checkpoints (the CNN teaches the small MLP).
    let source = args
        .out
        .join(dir_name("supervised", "cnn 0-4"))
        .join("checkpoints/best.ckpt");
    let source_set = format!("init.pretrained={:?}", source.display().to_string());
    let few = [
        "data.classes=[5,6,7,8,9]",
        "data.per_class=20",
        "batch_size=16",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        few.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    // Later rows use earlier rows' checkpoints: the CNN teaches the small MLP, and the
    // CNN trained on digits 0-4 is transferred to 5-9 with 20 examples a class.
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
        (
            "supervised",
            "vit",
            supervised(
                "vit",
                40,
                1e-3,
                &[VIT_DIGITS[0], VIT_DIGITS[1], VIT_DIGITS[2]],
            )?,
        ),
        (
            "distillation",
            "cnn -> vit, DeiT token",
            supervised(
                "vit",
                40,
                1e-3,
                &[
                    VIT_DIGITS[0],
                    VIT_DIGITS[1],
                    VIT_DIGITS[2],
                    "model.distillation_token=true",
                    "strategy.type=\"distill\"",
                    &teacher_set,
                    "strategy.targets=\"hard\"",
                    "strategy.lambda=0.5",
                ],
            )?,
        ),
        (
            "supervised",
            "cnn 0-4",
            supervised("cnn", 15, 1e-3, &["data.classes=[0,1,2,3,4]"])?,
        ),
        (
            "supervised",
            "cnn 5-9 (20/class)",
            supervised_owned("cnn", 20, 1e-3, &with(&[]))?,
        ),
        (
            "transfer",
            "cnn 0-4 -> 5-9, linear probe",
            supervised_owned(
                "cnn",
                20,
                1e-2,
                &with(&[&source_set, "strategy.type=\"linear-probe\""]),
            )?,
        ),
        (
            "transfer",
            "cnn 0-4 -> 5-9, fine-tune all",
            supervised_owned("cnn", 20, 1e-3, &with(&[&source_set]))?,
        ),
    ];
    let mut rows = Vec::new();
    let mut sizes = String::new();
    let total = Instant::now();
    for (strategy, name, config) in runs {
        eprintln!("demo: {strategy} {name} on digits ...");
        let started = Instant::now();
        let data = prepare_data(&config.data, config.seed)?;
        if sizes.is_empty() {
            sizes = format!(
                "{} train / {} validation / {} test images",
                data.train.len(),
                data.val.as_ref().map_or(0, |v| v.len()),
                data.test.len()
            );
        }
        let options = RunOptions {
            log: args.log_format,
            ..RunOptions::new(args.out.join(dir_name(strategy, name)))
        };
        let (Report::Training(summary), _) = mentor::run::run(&config, &options)? else {
            anyhow::bail!("internal: the demo's {strategy} run is not a training run");
        };
        let detail = match &config.strategy {
            StrategyConfig::Distill(d) if d.targets == TeacherTargets::Hard => {
                format!(", hard targets lambda={}", d.lambda)
            }
            StrategyConfig::Distill(d) => format!(", T={} lambda={}", d.temperature, d.lambda),
            StrategyConfig::LinearProbe(_)
            | StrategyConfig::Supervised
            | StrategyConfig::Continual(_)
            | StrategyConfig::Multitask(_)
            | StrategyConfig::SelfSupervised(_) => String::new(),
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
    // Continual learning: the digits cut into 5 tasks of 2 classes, class-incremental
    // (one growing head, no task id); fine-tuning forgets, replay remembers.
    for (name, method) in [
        ("fine-tune", "{type=\"finetune\"}"),
        ("replay 200", "{type=\"replay\", buffer_size=200}"),
    ] {
        eprintln!("demo: continual {name} on digits ...");
        let started = Instant::now();
        let config = supervised_owned(
            "mlp",
            1,
            1e-3,
            &[
                "data.val_fraction=0.0".into(),
                "strategy.type=\"continual\"".into(),
                "strategy.setting=\"class-il\"".into(),
                "strategy.iterations_per_task=150".into(),
                format!("strategy.method={method}"),
            ],
        )?;
        let options = RunOptions {
            log: args.log_format,
            ..RunOptions::new(args.out.join(dir_name("continual", name)))
        };
        let (Report::Continual(summary), _) = mentor::run::run(&config, &options)? else {
            anyhow::bail!("internal: the demo's continual config is not continual");
        };
        rows.push(Row {
            strategy: "continual",
            what: format!(
                "split 5x2 class-IL, {name}: ACC, forgetting {:.2}",
                summary.mean_forgetting
            ),
            accuracy: summary.average_accuracy,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    // Multitask: digit pairs overlaid MultiMNIST-style, one shared MLP with a head per
    // digit (hard sharing), equal weights.
    {
        eprintln!("demo: multitask multi-digits on digits ...");
        let started = Instant::now();
        let config = supervised_owned("mlp", 20, 1e-3, &["strategy.type=\"multitask\"".into()])?;
        let options = RunOptions {
            log: args.log_format,
            ..RunOptions::new(args.out.join(dir_name("multitask", "multi-digits")))
        };
        let (Report::Multitask(summary), _) = mentor::run::run(&config, &options)? else {
            anyhow::bail!("internal: the demo's multitask config is not multitask");
        };
        let mean = summary.task_accuracy.iter().sum::<f64>() / summary.task_accuracy.len() as f64;
        rows.push(Row {
            strategy: "multitask",
            what: format!(
                "digit pairs, hard sharing: mean of left {:.2} / right {:.2}",
                summary.task_accuracy[0], summary.task_accuracy[1]
            ),
            accuracy: mean,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    // Self-supervised: each method pretrains an encoder without labels; a linear probe
    // on its frozen features with 10% of the labels, beside the same probe of the
    // untrained MLP encoder.
    let probe_config = ProbeConfig {
        fractions: vec![0.1],
        ..ProbeConfig::default()
    };
    let views = [
        "strategy.augment.flip=0.0".to_string(),
        "strategy.augment.crop_scale=[0.3,1.0]".into(),
    ];
    let mlp_encoder = "encoder={type=\"mlp\", hidden=[128]}";
    let cnn_encoder = "encoder={type=\"cnn\", channels=[16,32], hidden=128}";
    let ssl_runs: [(&str, &str, usize, Vec<String>); 4] = [
        (
            "simclr",
            "mlp",
            30,
            vec![format!(
                "model={{type=\"projected\", hidden=[128], outputs=64, {mlp_encoder}}}"
            )],
        ),
        (
            "deep-cluster",
            "mlp",
            30,
            vec![
                "strategy.method=\"deep-cluster\"".into(),
                "strategy.clusters=50".into(),
                format!("model={{type=\"projected\", hidden=[128], outputs=50, {mlp_encoder}}}"),
            ],
        ),
        (
            "amdim",
            "cnn",
            10,
            vec![
                "strategy.method=\"amdim\"".into(),
                format!(
                    "model={{type=\"projected\", hidden=[128], outputs=64, local=true, {cnn_encoder}}}"
                ),
            ],
        ),
        (
            "cpc",
            "mlp",
            20,
            vec![
                "strategy.method=\"cpc\"".into(),
                format!("model={{type=\"cpc\", patch=4, stride=2, steps=1, {mlp_encoder}}}"),
            ],
        ),
    ];
    for (method, encoder, epochs, sets) in ssl_runs {
        eprintln!("demo: self-supervised {method} on digits ...");
        let started = Instant::now();
        let mut all = vec!["strategy.type=\"self-supervised\"".to_string()];
        all.extend(views.iter().cloned());
        all.extend(sets);
        let config = supervised_owned("mlp", epochs, 1e-3, &all)?;
        let data = prepare_data(&config.data, config.seed)?;
        let options = RunOptions {
            log: args.log_format,
            ..RunOptions::new(args.out.join(dir_name("self-supervised", method)))
        };
        let (_, network) = mentor::run::run(&config, &options)?;
        let probes = probe(&network, &data.train, &data.test, &probe_config)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for r in probes {
            rows.push(Row {
                strategy: "self-superv.",
                what: format!(
                    "{method} {encoder} encoder, linear probe, {:.0}% labels ({})",
                    100.0 * r.fraction,
                    r.labels
                ),
                accuracy: r.linear_accuracy,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }
    // The untrained encoders have the shapes of the pretrained ones.
    for (encoder, shape) in [
        ("mlp", "model.hidden=[128]"),
        ("cnn", "model.channels=[16,32]"),
    ] {
        let started = Instant::now();
        let config = supervised_owned(encoder, 1, 1e-3, &[shape.to_string()])?;
        let data = prepare_data(&config.data, config.seed)?;
        let random = seeded_init(
            &config.model,
            data.train.shape,
            data.train.num_classes,
            &burn::tensor::Device::flex(),
            config.seed,
        );
        for r in probe(&random, &data.train, &data.test, &probe_config)
            .map_err(|e| anyhow::anyhow!("{e}"))?
        {
            rows.push(Row {
                strategy: "self-superv.",
                what: format!(
                    "untrained {encoder} encoder, linear probe, {:.0}% labels ({})",
                    100.0 * r.fraction,
                    r.labels
                ),
                accuracy: r.linear_accuracy,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }
    println!();
    println!("mentor demo: embedded UCI digits (8x8 pixels; all classes: {sizes})");
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
