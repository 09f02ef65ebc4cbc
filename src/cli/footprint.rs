//! `mentor footprint`: what deploying a trained network costs — parameters, weights on
//! disk, forward MFLOPs, CPU latency per example — beside its test accuracy, for
//! comparing a teacher with its distilled student; and the size of its ONNX export
//! (`mentor export --out F.onnx`), whose latency in ONNX Runtime `scripts/check-onnx.py
//! latency` measures.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use clap::Args;
use mentor::engine::load_network;
use mentor::models::param_infos;
use serde::Serialize;

/// Arguments of `mentor footprint`.
#[derive(Debug, Args)]
pub struct FootprintArgs {
    /// Checkpoints to compare.
    #[arg(required = true)]
    checkpoints: Vec<PathBuf>,
    /// Timed single-example forward passes per network (after 20 warm-up).
    #[arg(long, default_value_t = 200)]
    repeats: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Footprint {
    checkpoint: String,
    model: String,
    parameters: usize,
    weights_bytes: usize,
    /// The ONNX file's size (without the card's metadata).
    onnx_bytes: Option<usize>,
    /// Why the network does not export to ONNX.
    #[serde(skip_serializing_if = "Option::is_none")]
    onnx_refused: Option<String>,
    forward_mflops: f64,
    latency_ms_median: f64,
    test_accuracy: Option<f64>,
}

/// Runs `mentor footprint`.
pub fn run(args: FootprintArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.repeats >= 1, "--repeats must be >= 1");
    let device = Device::flex();
    let mut rows = Vec::new();
    for path in &args.checkpoints {
        let loaded = load_network(path, &device)?;
        let net = loaded.network.valid();
        let parameters = param_infos(&net)
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.numel())
            .sum();
        let weights_bytes = net
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("encoding {}: {e}", path.display()))?
            .len();
        let onnx = mentor::models::onnx::export_onnx(&net, loaded.input_shape, &[]);
        let (onnx_bytes, onnx_refused) = match onnx {
            Ok(bytes) => (Some(bytes.len()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let [c, h, w] = loaded.input_shape;
        let x = Tensor::<4>::zeros([1, c, h, w], &device);
        let mut times = Vec::with_capacity(args.repeats);
        for i in 0..20 + args.repeats {
            let t = Instant::now();
            let _ = net.forward(x.clone()).into_data();
            if i >= 20 {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        times.sort_by(f64::total_cmp);
        // The run's summary.json sits two folders up from checkpoints/<name>.ckpt.
        let test_accuracy = path
            .parent()
            .and_then(|p| p.parent())
            .and_then(|run| std::fs::read_to_string(run.join("summary.json")).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["test_accuracy"].as_f64());
        rows.push(Footprint {
            checkpoint: path.display().to_string(),
            model: format!("{:?}", loaded.model),
            parameters,
            weights_bytes,
            onnx_bytes,
            onnx_refused,
            forward_mflops: loaded
                .model
                .forward_flops(loaded.input_shape, loaded.num_classes)
                as f64
                / 1e6,
            latency_ms_median: times[times.len() / 2] * 1e3,
            test_accuracy,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "| checkpoint | parameters | weights KiB | ONNX KiB | forward MFLOPs | CPU latency ms (median, batch 1) | test accuracy |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {} | {:.3} | {:.3} | {} |",
            r.checkpoint,
            r.parameters,
            r.weights_bytes as f64 / 1024.0,
            r.onnx_bytes
                .map_or("-".into(), |b| format!("{:.0}", b as f64 / 1024.0)),
            r.forward_mflops,
            r.latency_ms_median,
            r.test_accuracy.map_or("-".into(), |a| format!("{a:.4}"))
        );
    }
    Ok(())
}
