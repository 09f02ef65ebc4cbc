//! `mentor knn`: weighted kNN accuracy of a checkpoint's frozen backbone features.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use mentor::data::prepare_data;
use mentor::engine::cache::backbone_features;
use mentor::ssl::knn_accuracy;

/// Arguments of `mentor knn`.
#[derive(Debug, Args)]
pub struct KnnArgs {
    /// A checkpoint whose backbone features are probed.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Neighbours that vote.
    #[arg(long, default_value_t = 200)]
    k: usize,
    /// Temperature of the vote weights exp(s / T).
    #[arg(long, default_value_t = 0.1)]
    temperature: f64,
    /// Read the data from this folder instead of the one in the checkpoint's config.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Change the data the features are probed on, e.g. --set data.per_class=60 (labelled
    /// examples per class) or --set data.dataset="fashion-mnist".
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

/// Runs `mentor knn`: prints one JSON object.
pub fn run(args: KnnArgs) -> anyhow::Result<()> {
    if args.k == 0 || !(args.temperature.is_finite() && args.temperature > 0.0) {
        anyhow::bail!("--k must be >= 1 and --temperature > 0");
    }
    let mentor::run::restore::LoadedRun {
        loaded,
        config: saved,
    } = mentor::run::restore::load_run(&args.checkpoint, &Device::flex())?;
    let mut sets = args.sets.clone();
    if let Some(dir) = &args.data_dir {
        sets.insert(0, format!("data.data_dir={:?}", dir.display().to_string()));
    }
    let config = saved.with_overrides(&sets)?;
    config.validate()?;
    let data = prepare_data(&config.data, config.seed).context("loading data")?;
    let train = backbone_features(&loaded.network, &data.train);
    let test = backbone_features(&loaded.network, &data.test);
    let acc = knn_accuracy(
        &train,
        &data.train.labels,
        &test,
        &data.test.labels,
        data.train.num_classes,
        args.k,
        args.temperature,
    );
    let out = serde_json::json!({
        "checkpoint": args.checkpoint.display().to_string(),
        "knn_accuracy": acc,
        "k": args.k,
        "temperature": args.temperature,
        "train_examples": data.train.len(),
        "test_examples": data.test.len(),
    });
    println!("{out}");
    Ok(())
}
