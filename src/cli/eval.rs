//! `mentor eval`.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use mentor::data::prepare_data;
use mentor::engine::evaluate;

/// Arguments of `mentor eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A checkpoint written by `mentor train` (checkpoints/last.ckpt or best.ckpt).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Read the data from this folder instead of the one in the checkpoint's config.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Runs `mentor eval`: prints one JSON object with loss and accuracy per split.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let mentor::run::restore::LoadedRun {
        loaded,
        config: saved,
    } = mentor::run::restore::load_run(&args.checkpoint, &Device::flex())?;
    let mut config = saved;
    if let Some(dir) = args.data_dir {
        config.data.data_dir = Some(dir);
    }
    if let mentor::run::StrategyConfig::SelfSupervised(_) = &config.strategy {
        anyhow::bail!(
            "{} is a self-supervised encoder: its outputs are a projection, not class scores, so it has no test accuracy; probe it with `mentor ssl eval --checkpoint {}`",
            args.checkpoint.display(),
            args.checkpoint.display()
        );
    }
    let data = prepare_data(&config.data, config.seed).context("loading data")?;
    if data.test.shape != loaded.input_shape || data.test.num_classes > loaded.num_classes {
        anyhow::bail!(
            "{} was trained on {:?} images with {} classes, but the data in {} has {:?} images with {} classes",
            args.checkpoint.display(),
            loaded.input_shape,
            loaded.num_classes,
            config
                .data
                .data_dir
                .as_ref()
                .map_or("the default data folder".to_string(), |d| d
                    .display()
                    .to_string()),
            data.test.shape,
            data.test.num_classes
        );
    }
    let (test_loss, test_accuracy) = evaluate(&loaded.network, &data.test, 1000);
    let mut out = serde_json::json!({
        "checkpoint": args.checkpoint.display().to_string(),
        "epochs": loaded.epochs,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
    });
    if let Some(val) = &data.val {
        let (l, a) = evaluate(&loaded.network, val, 1000);
        out["val_loss"] = l.into();
        out["val_accuracy"] = a.into();
    }
    println!("{out}");
    Ok(())
}
