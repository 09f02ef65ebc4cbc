//! `mentor bench`: throughput of standard training workloads. Each workload runs in a
//! child process of its own so that its peak memory (VmHWM) is its own. Numbers are
//! medians over timed steps after warm-up; compare ratios measured in the same session,
//! never absolute times across machines or runs.

use std::time::Instant;

use anyhow::{Context, bail};
use burn::tensor::{Device, Distribution, Int, Tensor};
use clap::Args;
use mentor::config::RunConfig;
use mentor::data::Batch;
use mentor::engine::groups::ParamGroups;
use mentor::engine::{CrossEntropy, seeded_init, train_step};
use mentor::models::param_infos;
use serde::Serialize;

/// The workloads `mentor bench` knows.
const WORKLOADS: [&str; 2] = ["cnn-step", "mlp-step"];

/// Arguments of `mentor bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Workloads to run (default: all): cnn-step, mlp-step.
    workloads: Vec<String>,
    /// Timed steps per workload (after warm-up).
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Internal: run one workload in this process and print its JSON result.
    #[arg(long, hide = true)]
    worker: bool,
}

#[derive(Debug, Serialize, serde::Deserialize)]
struct BenchResult {
    workload: String,
    batch_size: usize,
    steps: usize,
    median_step_ms: f64,
    samples_per_second: f64,
    steps_per_second: f64,
    peak_memory_mib: f64,
    threads: usize,
}

/// `(config, input shape, batch)` of a workload: the CNN step is conv32-conv64-fc128-fc10
/// on 1x28x28 at batch 128 with SGD momentum 0.9; the MLP step is 784-512-512-10 at batch
/// 256 with SGD momentum 0.9 (the PyTorch peer in shared/bench uses the same).
fn workload(name: &str) -> anyhow::Result<(RunConfig, [usize; 3], usize)> {
    let base = ["optim.type=\"sgd\"", "optim.momentum=0.9", "lr=0.01"];
    let (extra, batch): (&[&str], usize) = match name {
        "cnn-step" => (&["model.type=\"cnn\""], 128),
        "mlp-step" => (&["model.type=\"mlp\"", "model.hidden=[512,512]"], 256),
        other => bail!(
            "unknown workload {other:?}; known: {}",
            WORKLOADS.join(", ")
        ),
    };
    let sets: Vec<String> = base.iter().chain(extra).map(|s| s.to_string()).collect();
    Ok((
        RunConfig::default().with_overrides(&sets)?,
        [1, 28, 28],
        batch,
    ))
}

fn peak_memory_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn run_worker(name: &str, steps: usize, warmup: usize) -> anyhow::Result<BenchResult> {
    let (config, shape, batch_size) = workload(name)?;
    let device = Device::flex().autodiff();
    let mut network = seeded_init(&config.model, shape, 10, &device, 1);
    let mut optimizer = config.optim.init();
    let groups = ParamGroups::resolve(&[], &param_infos(&network))?;
    let [c, h, w] = shape;
    let batch = Batch {
        images: Tensor::random([batch_size, c, h, w], Distribution::Default, &device),
        labels: Tensor::<1, Int>::random([batch_size], Distribution::Uniform(0.0, 10.0), &device),
    };
    let indices: Vec<usize> = (0..batch_size).collect();
    let mut times = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        let t = Instant::now();
        let (n, _, _) = train_step(
            network,
            &mut optimizer,
            &groups,
            &mut CrossEntropy,
            &batch,
            &indices,
            config.lr,
        )
        .map_err(|v| anyhow::anyhow!("loss became {v}"))?;
        network = n;
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Ok(BenchResult {
        workload: name.into(),
        batch_size,
        steps,
        median_step_ms: median * 1e3,
        samples_per_second: batch_size as f64 / median,
        steps_per_second: 1.0 / median,
        peak_memory_mib: peak_memory_mib(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

/// Runs `mentor bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.steps == 0 {
        bail!("--steps must be >= 1");
    }
    let names: Vec<String> = if args.workloads.is_empty() {
        WORKLOADS.iter().map(|s| s.to_string()).collect()
    } else {
        args.workloads.clone()
    };
    if args.worker {
        let [name] = names.as_slice() else {
            bail!("--worker takes exactly one workload");
        };
        let r = run_worker(name, args.steps, args.warmup)?;
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    for n in &names {
        workload(n)?;
    }
    let exe = std::env::current_exe().context("locating the mentor binary")?;
    let mut results = Vec::new();
    for name in &names {
        let out = std::process::Command::new(&exe)
            .args(["bench", name, "--worker", "--steps"])
            .arg(args.steps.to_string())
            .arg("--warmup")
            .arg(args.warmup.to_string())
            .output()
            .with_context(|| format!("running the {name} worker"))?;
        if !out.status.success() {
            bail!(
                "{name} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let r: BenchResult = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("reading the {name} worker's result"))?;
        results.push(r);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        println!("| workload | batch | median step ms | samples/s | steps/s | peak MiB |");
        println!("|---|---|---|---|---|---|");
        for r in &results {
            println!(
                "| {} | {} | {:.2} | {:.0} | {:.1} | {:.0} |",
                r.workload,
                r.batch_size,
                r.median_step_ms,
                r.samples_per_second,
                r.steps_per_second,
                r.peak_memory_mib
            );
        }
    }
    Ok(())
}
