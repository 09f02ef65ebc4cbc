//! `mentor eval`.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use mentor::config::RunConfig;
use mentor::engine::checkpoint;
use mentor::engine::{evaluate, prepare_data, seeded_init};

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
    let ckpt = checkpoint::load(&args.checkpoint)?;
    let mut config = RunConfig::from_toml(&ckpt.state.config_toml, "checkpoint config")?;
    if let Some(dir) = args.data_dir {
        config.data.data_dir = Some(dir);
    }
    let data = prepare_data(&config.data, config.seed).context("loading data")?;
    let device = Device::flex();
    let network = seeded_init(
        &config.model,
        data.train.shape,
        data.train.num_classes,
        &device,
        config.seed,
    );
    let network = ckpt.load_into(network, &args.checkpoint)?;
    let (test_loss, test_accuracy) = evaluate(&network, &data.test, 1000);
    let mut out = serde_json::json!({
        "checkpoint": args.checkpoint.display().to_string(),
        "epochs": ckpt.state.epochs_done,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
    });
    if let Some(val) = &data.val {
        let (l, a) = evaluate(&network, val, 1000);
        out["val_loss"] = l.into();
        out["val_accuracy"] = a.into();
    }
    println!("{out}");
    Ok(())
}
