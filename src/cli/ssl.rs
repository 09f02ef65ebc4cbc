//! `mentor ssl pretrain`: self-supervised pretraining (SimCLR, MoCo, relative position,
//! rotation) without labels; `mentor ssl eval`: kNN and linear probes of a checkpoint's
//! frozen features at fractions of the labels.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::Device;
use clap::{Args, Subcommand};
use mentor::data::Examples;
use mentor::data::Pretext;
use mentor::data::prepare::RunData;
use mentor::engine::{LogFormat, seeded_init};
use mentor::models::{CpcConfig, ModelConfig, ProjectedConfig};
use mentor::run::config::RunConfig;
use mentor::run::strategy::StrategyConfig;
use mentor::ssl::SslMethod;
use mentor::ssl::probe::{ProbeConfig, probe};

use super::args::{ConfigArgs, RunArgs};

/// Arguments of `mentor ssl`.
#[derive(Debug, Args)]
pub struct SslArgs {
    #[command(subcommand)]
    command: SslCommand,
}

#[derive(Debug, Subcommand)]
enum SslCommand {
    /// Pretrain an encoder without labels.
    Pretrain(PretrainArgs),
    /// Probe a checkpoint's frozen features (kNN and linear) at fractions of the labels.
    Eval(EvalArgs),
}

/// Arguments of `mentor ssl pretrain`.
#[derive(Debug, Args)]
pub struct PretrainArgs {
    /// simclr, moco, relative-position, deep-cluster, amdim, cpc or rotation.
    #[arg(long, default_value = "simclr")]
    method: String,
    /// Width of the projection z (SimCLR, MoCo).
    #[arg(long, default_value_t = 128)]
    projection: usize,
    /// Widths of the projector's hidden layers.
    #[arg(long, value_delimiter = ',', default_value = "128")]
    projector_hidden: Vec<usize>,
    /// The run config: data, the encoder (--model), optimiser, epochs, seed; --set
    /// strategy.temperature=... and the other [strategy] keys of the method.
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// Arguments of `mentor ssl eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The checkpoint whose backbone is probed (pretrained or supervised).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Probe the checkpoint's architecture with freshly initialised weights instead
    /// (the random-encoder baseline), seeded by --seed.
    #[arg(long)]
    random_init: bool,
    /// Fractions of the training labels.
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.1,1")]
    fractions: Vec<f64>,
    /// Epochs of the linear classifier (at least 1000 steps).
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Seed of the label subsets and the classifier.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Read the data from this folder instead of the one in the checkpoint's config.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Change the probed data, e.g. --set data.dataset="fashion-mnist".
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Also write the results here (JSON).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `mentor ssl ...`.
pub fn run(args: SslArgs) -> anyhow::Result<()> {
    match args.command {
        SslCommand::Pretrain(a) => pretrain(a),
        SslCommand::Eval(a) => eval(a),
    }
}

fn parse_method(name: &str) -> anyhow::Result<Option<SslMethod>> {
    Ok(match name {
        "simclr" => Some(SslMethod::Simclr),
        "moco" => Some(SslMethod::Moco),
        "relative-position" => Some(SslMethod::RelativePosition),
        "deep-cluster" => Some(SslMethod::DeepCluster),
        "amdim" => Some(SslMethod::Amdim),
        "cpc" => Some(SslMethod::Cpc),
        "rotation" => None,
        other => {
            anyhow::bail!(
                "unknown --method {other:?}: simclr, moco, relative-position, deep-cluster, amdim, cpc or rotation"
            )
        }
    })
}

/// The pretraining config: `base` (the encoder as --model built it) with the method's
/// strategy and projected network, or the rotation pretext on the plain encoder.
fn pretrain_config(args: &PretrainArgs) -> anyhow::Result<RunConfig> {
    let method = parse_method(&args.method)?;
    // Resuming, the run's own config is the base (it already has the projection); the
    // command's flags then apply as they did when it started, so the starting command
    // plus --resume resolves to the saved config (--model names the encoder again and
    // is wrapped again below).
    let base = args
        .run
        .base_config(&args.config.config, || Ok(RunConfig::default()))?;
    let mut sets = vec![];
    match method {
        Some(m) => {
            sets.push("strategy.type=\"self-supervised\"".to_string());
            sets.push(format!("strategy.method={}", serde_json::to_value(m)?));
        }
        None => sets.push("data.pretext=\"rotation\"".into()),
    }
    // The flags (--model: the encoder) and --sets come after, so they win.
    sets.extend(args.config.overrides());
    let mut config = base.with_overrides(&sets)?;
    if let StrategyConfig::SelfSupervised(ssl) = &config.strategy
        && ssl.method == SslMethod::Cpc
        && !matches!(config.model, ModelConfig::Cpc(_))
    {
        // CPC encodes patches: the encoder (--model) inside a CPC network.
        config.model = ModelConfig::Cpc(CpcConfig::new(config.model.clone()));
    } else if let StrategyConfig::SelfSupervised(ssl) = &config.strategy
        && !matches!(config.model, ModelConfig::Projected(_))
    {
        let (outputs, inputs) = ssl.projection(args.projection);
        let mut projected = ProjectedConfig::new(
            config.model.clone(),
            args.projector_hidden.clone(),
            outputs,
            inputs,
        );
        projected.local = ssl.method == SslMethod::Amdim;
        config.model = ModelConfig::Projected(projected);
    }
    config.validate()?;
    Ok(config)
}

fn pretrain(args: PretrainArgs) -> anyhow::Result<()> {
    let config = pretrain_config(&args)?;
    let log = args.run.log_format;
    let out = args.run.out.clone();
    super::args::run_and_report(&config, &args.run, &[])?;
    if log == LogFormat::Human {
        let what = match &config.strategy {
            StrategyConfig::SelfSupervised(_) => "the test accuracy above is the kNN monitor's",
            _ => "the test accuracy above is the rotation pretext task's",
        };
        eprintln!(
            "{what}; probe the representation with: mentor ssl eval --checkpoint {}",
            out.join("checkpoints/last.ckpt").display()
        );
    }
    Ok(())
}

fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let device = Device::flex();
    let mentor::run::restore::LoadedRun {
        loaded,
        config: saved,
    } = mentor::run::restore::load_run(&args.checkpoint, &device)?;
    let mut sets = vec!["data.pretext=\"none\"".to_string()];
    if let Some(dir) = &args.data_dir {
        sets.push(format!("data.data_dir={:?}", dir.display().to_string()));
    }
    sets.extend(args.sets.iter().cloned());
    // The probed data is the pretraining data with its own labels (no pretext task).
    let mut config = saved.with_overrides(&sets)?;
    config.data.pretext = Pretext::None;
    config.validate()?;
    let data = RunData::load(&config.data, config.seed).context("loading data")?;
    // The probes read the training photos without augmentation: streamed photos go
    // through the evaluation transform, as the test photos do.
    let (train, test): (Box<dyn Examples>, Box<dyn Examples>) = match data {
        RunData::Memory(d) => (Box::new(d.train), Box::new(d.test)),
        RunData::Streamed(s) => (
            Box::new(s.test.over(s.train.files().clone(), 1)),
            Box::new(s.test),
        ),
    };
    let network = if args.random_init {
        seeded_init(
            &saved.model,
            train.shape(),
            train.num_classes(),
            &device,
            args.seed,
        )
    } else {
        loaded.network
    };
    let probe_config = ProbeConfig {
        fractions: args.fractions.clone(),
        epochs: args.epochs,
        seed: args.seed,
        ..ProbeConfig::default()
    };
    let rows = probe(&network, train.as_ref(), test.as_ref(), &probe_config)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for r in &rows {
        eprintln!(
            "labels {:>5.1}% ({:>5}): kNN {:.4}  linear {:.4}",
            100.0 * r.fraction,
            r.labels,
            r.knn_accuracy,
            r.linear_accuracy
        );
    }
    let json = serde_json::json!({
        "checkpoint": args.checkpoint.display().to_string(),
        "random_init": args.random_init,
        "dataset": config.data.dataset.to_string(),
        "model": saved.model.kind(),
        "probe": probe_config,
        "rows": rows,
    });
    if let Some(path) = &args.out {
        mentor::engine::io::write_json(path, &json)?;
    }
    println!("{json}");
    Ok(())
}
