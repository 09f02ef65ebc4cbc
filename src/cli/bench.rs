//! `mentor bench`: throughput of standard training workloads. Each workload runs in a
//! child process of its own so that its peak memory (VmHWM) is its own. Step workloads
//! report the median over timed steps after warm-up; epoch workloads time whole epochs
//! and compare a compute-once path with per-step recomputation. Compare ratios measured
//! in the same session, never absolute times across machines or runs.

use std::time::Instant;

use anyhow::{Context, bail};
use burn::tensor::{Device, Distribution, Int, Tensor};
use clap::Args;
use mentor::data::{Batch, BatchOrder, Dataset};
use mentor::distill::{DistillConfig, KnowledgeDistillation};
use mentor::engine::freeze::FrozenSet;
use mentor::engine::groups::ParamGroups;
use mentor::engine::{CrossEntropy, Objective, parse_device, seeded_init, train_step};
use mentor::models::{Network, param_infos};
use mentor::run::config::RunConfig;
use mentor::transfer::{LinearProbe, LinearProbeConfig};
use serde::{Deserialize, Serialize};

/// The workloads `mentor bench` knows.
const WORKLOADS: [&str; 12] = [
    "cnn-step",
    "mlp-step",
    "resnet-step",
    "kd-epoch",
    "linear-probe",
    "lwf-task",
    "simclr-step",
    "efficientnet-lite0-step",
    "efficientnet-lite0-infer",
    "efficientnet-lite0-96-full",
    "efficientnet-lite0-96-head",
    "loader",
];

/// The workloads a plain `mentor bench` runs: the toy-scale ones (the ImageNet-sized
/// ones take minutes on 2 cores; name them to run them).
const DEFAULT_WORKLOADS: usize = 7;

/// Arguments of `mentor bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Workloads to run (default: all but the ImageNet-sized ones): cnn-step, mlp-step,
    /// resnet-step, kd-epoch, linear-probe, lwf-task, simclr-step, and
    /// efficientnet-lite0-step (batch 32, 3x224x224), efficientnet-lite0-infer (forward
    /// only: batch 1 latency and batch 32 throughput), efficientnet-lite0-96-full and
    /// efficientnet-lite0-96-head (transfer at 3x96x96, 10 classes: every layer trained,
    /// or the head on a frozen backbone), loader (an image folder, `--data-dir`, read,
    /// decoded and put through torchvision's ImageNet training transform at 224 px by 1
    /// and 2 worker threads, batches of 64; compare with `scripts/bench-loader.py`).
    workloads: Vec<String>,
    /// The image folder of the `loader` workload (`DIR/train/<class>/...` or
    /// `DIR/<class>/...`).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Timed steps per step workload (after warm-up).
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Examples in the epoch workloads' synthetic training set (MNIST has 60,000).
    #[arg(long, default_value_t = 60_000)]
    samples: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Device for the step workloads: cpu, or cuda[:N] / wgpu in a build with that feature.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Which convolution and max-pool kernels the CPU runs: mentor's own (im2col + gemm,
    /// src/kernels) or Burn's flex built-ins, for a side-by-side comparison.
    #[arg(long, value_enum, default_value_t = Kernels::Mentor)]
    kernels: Kernels,
    /// Internal: run one workload in this process and print its JSON results.
    #[arg(long, hide = true)]
    worker: bool,
}

/// The CPU kernels a benchmark runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kernels {
    /// mentor's convolution and max-pool kernels (the default for every command).
    Mentor,
    /// Burn's own flex implementations.
    Burn,
}

/// One measurement.
#[derive(Debug, Serialize, Deserialize)]
struct BenchResult {
    /// Workload and, for epoch workloads, the mode (`kd-epoch/cached`).
    workload: String,
    batch_size: usize,
    /// Timed steps (step workloads) or epochs (epoch workloads).
    repeats: usize,
    /// Median seconds per step, or seconds per epoch.
    seconds: f64,
    samples_per_second: f64,
    /// One-time preparation seconds (building a cache), not in `seconds`.
    setup_seconds: f64,
    peak_memory_mib: f64,
    threads: usize,
    /// The convolution kernels the run used (`mentor` or `burn`).
    #[serde(default = "default_kernels")]
    kernels: Kernels,
}

fn default_kernels() -> Kernels {
    Kernels::Mentor
}

fn run_config(sets: &[&str]) -> anyhow::Result<RunConfig> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Ok(RunConfig::default().with_overrides(&sets)?)
}

/// A step workload: the run config, batch size, input shape and class count.
struct StepWorkload {
    config: RunConfig,
    batch: usize,
    input: [usize; 3],
    classes: usize,
}

/// The CNN step is conv32-conv64-fc128-fc10 on 1x28x28 at batch 128 with SGD momentum
/// 0.9; the MLP step is 784-512-512-10 at batch 256 (the PyTorch peer in shared/bench
/// uses the same); the ResNet step is mentor's default ResNet (widths 16-32-64, one
/// basic block a stage, batch norm) on 1x28x28 at batch 128; the EfficientNet-Lite0
/// step is the full network on 3x224x224 with 1000 classes at batch 32
/// (scripts/bench-efficientnet.py is its PyTorch peer).
fn step_workload(name: &str) -> anyhow::Result<StepWorkload> {
    let base = ["optim.type=\"sgd\"", "optim.momentum=0.9", "lr=0.01"];
    let mnist = ([1, 28, 28], 10);
    let (extra, batch, (input, classes)): (&[&str], usize, ([usize; 3], usize)) = match name {
        "cnn-step" => (&["model.type=\"cnn\""], 128, mnist),
        "resnet-step" => (&["model.type=\"resnet\""], 128, mnist),
        "mlp-step" => (
            &["model.type=\"mlp\"", "model.hidden=[512,512]"],
            256,
            mnist,
        ),
        "efficientnet-lite0-step" | "efficientnet-lite0-infer" => (
            &["model.type=\"efficientnet-lite0\""],
            32,
            ([3, 224, 224], 1000),
        ),
        // Transfer to a 10-class task at 96 px: every layer fine-tuned, or the head
        // alone on a frozen backbone (no backward below the head, batch norms fixed).
        "efficientnet-lite0-96-full" => (
            &["model.type=\"efficientnet-lite0\""],
            32,
            ([3, 96, 96], 10),
        ),
        "efficientnet-lite0-96-head" => (
            &[
                "model.type=\"efficientnet-lite0\"",
                "groups=[{pattern=\"backbone\", frozen=true}]",
            ],
            32,
            ([3, 96, 96], 10),
        ),
        other => bail!("{other} is not a step workload"),
    };
    let sets: Vec<&str> = base.iter().chain(extra).copied().collect();
    Ok(StepWorkload {
        config: run_config(&sets)?,
        batch,
        input,
        classes,
    })
}

fn peak_memory_mib() -> f64 {
    mentor::data::limits::peak_resident_bytes().map_or(f64::NAN, |b| b as f64 / 1048576.0)
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn run_step_workload(
    name: &str,
    steps: usize,
    warmup: usize,
    device: &str,
) -> anyhow::Result<BenchResult> {
    let StepWorkload {
        config,
        batch: batch_size,
        input: [c, h, w],
        classes,
    } = step_workload(name)?;
    let device = parse_device(device)?.autodiff();
    let mut network = seeded_init(&config.model, [c, h, w], classes, &device, 1);
    let mut optimizer = config.optim.init();
    let groups = ParamGroups::resolve(&config.groups, &param_infos(&network))?;
    network = FrozenSet::of(&groups, &param_infos(&network)).apply(network);
    let batch = Batch {
        images: Tensor::random([batch_size, c, h, w], Distribution::Default, &device),
        labels: Tensor::<1, Int>::random(
            [batch_size],
            Distribution::Uniform(0.0, classes as f64),
            &device,
        ),
    };
    let indices: Vec<usize> = (0..batch_size).collect();
    let mut times = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        let t = Instant::now();
        let (n, _, _, _) = train_step(
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
        // The loss was read back, so the step's work is done even on an async device.
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(step_result(name, batch_size, times))
}

/// The result of a step workload from its step times: the median, with this process's
/// peak memory so far.
fn step_result(workload: &str, batch_size: usize, mut times: Vec<f64>) -> BenchResult {
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    BenchResult {
        workload: workload.into(),
        batch_size,
        repeats: times.len(),
        seconds: median,
        samples_per_second: batch_size as f64 / median,
        setup_seconds: 0.0,
        peak_memory_mib: peak_memory_mib(),
        threads: threads(),
        kernels: Kernels::Mentor,
    }
}

/// Forward-only inference of a step workload's network (no autodiff, batch norm with
/// its running statistics): the median latency of one image and the median time of a
/// batch of the workload's size.
fn run_inference_workload(
    name: &str,
    steps: usize,
    warmup: usize,
    device: &str,
) -> anyhow::Result<Vec<BenchResult>> {
    let StepWorkload {
        config,
        batch,
        input: [c, h, w],
        classes,
    } = step_workload(name)?;
    let device = parse_device(device)?;
    let network = seeded_init(&config.model, [c, h, w], classes, &device, 1);
    let mut results = Vec::new();
    for batch_size in [1, batch] {
        let images = Tensor::<4>::random([batch_size, c, h, w], Distribution::Default, &device);
        let mut times = Vec::with_capacity(steps);
        for i in 0..warmup + steps {
            let t = Instant::now();
            // Reading the logits back makes the work done even on an async device.
            let logits = network.forward(images.clone()).into_data();
            std::hint::black_box(logits);
            if i >= warmup {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        results.push(step_result(
            &format!("{name}/batch-{batch_size}"),
            batch_size,
            times,
        ));
    }
    Ok(results)
}

/// A synthetic MNIST-shaped training set (uniform pixels, balanced labels).
fn synthetic(samples: usize) -> anyhow::Result<Dataset> {
    let mut rng = mentor::data::split::rng(7);
    use rand::Rng;
    let images = (0..samples * 784).map(|_| rng.random::<f32>()).collect();
    let labels = (0..samples).map(|i| i % 10).collect();
    Ok(Dataset::new(images, labels, [1, 28, 28], 10)?)
}

/// Times `epochs` epochs of `objective` training `network` on `data`; returns seconds
/// per epoch.
fn time_epochs(
    mut network: Network,
    objective: &mut dyn Objective,
    config: &RunConfig,
    data: &Dataset,
    epochs: usize,
) -> anyhow::Result<f64> {
    let device = Device::flex().autodiff();
    let groups = ParamGroups::resolve(&config.groups, &param_infos(&network))?;
    let mut optimizer = config.optim.init();
    let started = Instant::now();
    for epoch in 0..epochs {
        for idx in BatchOrder::shuffled(data.len(), config.batch_size, 1, epoch).batches() {
            let batch = Batch::gather(data, idx, &device);
            let (n, _, _, _) = train_step(
                network,
                &mut optimizer,
                &groups,
                objective,
                &batch,
                idx,
                config.lr,
            )
            .map_err(|v| anyhow::anyhow!("loss became {v}"))?;
            network = n;
        }
    }
    Ok(started.elapsed().as_secs_f64() / epochs as f64)
}

/// kd-epoch: a CNN teacher distilled into an MLP 784-800-800-10 for one epoch, with the
/// teacher's logits cached (computed once, timed as setup) and computed per batch.
fn run_kd_epoch(samples: usize) -> anyhow::Result<Vec<BenchResult>> {
    let data = synthetic(samples)?;
    let teacher_cfg = run_config(&["model.type=\"cnn\""])?;
    let student = run_config(&["model.hidden=[800,800]", "batch_size=128"])?;
    let device = Device::flex();
    let teacher = seeded_init(&teacher_cfg.model, [1, 28, 28], 10, &device, 2);
    let mut out = Vec::new();
    for cache in [true, false] {
        let kd = DistillConfig {
            teacher: "bench".into(),
            temperature: 4.0,
            lambda: 0.9,
            cache_teacher: cache,
            hint_weight: 0.0,
            hint_lr: 1e-3,
            targets: Default::default(),
        };
        let setup = Instant::now();
        let mut objective = KnowledgeDistillation::new(teacher.clone(), &kd, &data);
        let setup_seconds = setup.elapsed().as_secs_f64();
        let net = seeded_init(
            &student.model,
            [1, 28, 28],
            10,
            &device.clone().autodiff(),
            3,
        );
        let seconds = time_epochs(net, &mut objective, &student, &data, 1)?;
        out.push(BenchResult {
            workload: format!("kd-epoch/{}", if cache { "cached" } else { "per-step" }),
            batch_size: student.batch_size,
            repeats: 1,
            seconds,
            samples_per_second: samples as f64 / seconds,
            setup_seconds,
            peak_memory_mib: peak_memory_mib(),
            threads: threads(),
            kernels: Kernels::Mentor,
        });
    }
    Ok(out)
}

/// linear-probe: 10 epochs of a linear head on a frozen CNN backbone, on features cached
/// once (the first step computes them, so they count in the time) and with the frozen
/// backbone run on every batch.
fn run_linear_probe(samples: usize) -> anyhow::Result<Vec<BenchResult>> {
    let data = synthetic(samples)?;
    let mut out = Vec::new();
    for cached in [true, false] {
        let config = run_config(&[
            "model.type=\"cnn\"",
            "batch_size=128",
            "lr=0.01",
            "groups=[{pattern=\"backbone\", frozen=true}]",
        ])?;
        let net = seeded_init(
            &config.model,
            [1, 28, 28],
            10,
            &Device::flex().autodiff(),
            4,
        );
        let mut probe = LinearProbe::new(&LinearProbeConfig::default(), &data);
        let objective: &mut dyn Objective = if cached {
            &mut probe
        } else {
            &mut CrossEntropy
        };
        let epochs = 10;
        let seconds = time_epochs(net, objective, &config, &data, epochs)?;
        out.push(BenchResult {
            workload: format!(
                "linear-probe/{}",
                if cached { "cached" } else { "per-step" }
            ),
            batch_size: config.batch_size,
            repeats: epochs,
            seconds,
            samples_per_second: samples as f64 / seconds,
            setup_seconds: 0.0,
            peak_memory_mib: peak_memory_mib(),
            threads: threads(),
            kernels: Kernels::Mentor,
        });
    }
    Ok(out)
}

/// lwf-task: one epoch of the second Split-MNIST task (a fifth of the synthetic set) for
/// the van de Ven & Tolias MLP 2x400 at batch 128, with Learning without Forgetting (the
/// old head's outputs recorded once, timed as setup) beside plain fine-tuning.
fn run_lwf_task(samples: usize) -> anyhow::Result<Vec<BenchResult>> {
    use mentor::continual::methods::lwf::LwfTerm;
    use mentor::continual::{ContinualObjective, ScenarioKind, Setting, build_tasks};
    let data = synthetic(samples)?;
    let (tasks, outputs) = build_tasks(ScenarioKind::Split, Setting::TaskIl, 5, &data, &data, 1)?;
    let task = &tasks[1];
    let config = run_config(&[
        "model.hidden=[400,400]",
        "batch_size=128",
        "optim.type=\"adam\"",
    ])?;
    let device = Device::flex();
    let previous = seeded_init(
        &config.model,
        [1, 28, 28],
        outputs,
        &device.clone().autodiff(),
        5,
    );
    let mut out = Vec::new();
    for lwf in [true, false] {
        let setup = Instant::now();
        let mut terms: Vec<Box<dyn mentor::continual::method::LossTerm>> = Vec::new();
        if lwf {
            terms.push(Box::new(LwfTerm::record(
                &previous,
                &task.train,
                vec![tasks[0].outputs.clone()],
                2.0,
                1.0,
                &device,
            )));
        }
        let mut objective =
            ContinualObjective::new(Setting::TaskIl, &tasks, 1, vec![1; task.train.len()], terms);
        let setup_seconds = setup.elapsed().as_secs_f64();
        let seconds = time_epochs(previous.clone(), &mut objective, &config, &task.train, 1)?;
        out.push(BenchResult {
            workload: format!("lwf-task/{}", if lwf { "lwf" } else { "finetune" }),
            batch_size: config.batch_size,
            repeats: 1,
            seconds,
            samples_per_second: task.train.len() as f64 / seconds,
            setup_seconds,
            peak_memory_mib: peak_memory_mib(),
            threads: threads(),
            kernels: Kernels::Mentor,
        });
    }
    Ok(out)
}

/// simclr-step: one SimCLR step of the projected CNN (conv32-conv64-fc128, projector
/// 128-128) at batch 256 on 28x28 images: two augmented views per image (SimCLR's
/// augmentations, made on the CPU), one forward pass of the 512 views, NT-Xent, backward,
/// Adam. A second row times making the views alone, the part the network does not see.
fn run_simclr_step(steps: usize, warmup: usize) -> anyhow::Result<Vec<BenchResult>> {
    let batch = 256;
    let data = synthetic(batch * (steps + warmup))?;
    let config = run_config(&[
        "strategy.type=\"self-supervised\"",
        "model={type=\"projected\", encoder={type=\"cnn\"}}",
        "batch_size=256",
    ])?;
    config.validate()?;
    let mentor::run::strategy::StrategyConfig::SelfSupervised(ssl) = &config.strategy else {
        bail!("internal: not a self-supervised config");
    };
    let mut objective = mentor::ssl::build_objective(ssl, &data, None, 1)?;
    let device = Device::flex().autodiff();
    let mut network = seeded_init(&config.model, [1, 28, 28], 10, &device, 5);
    let groups = ParamGroups::resolve(&config.groups, &param_infos(&network))?;
    let mut optimizer = config.optim.init();
    let mut step_times = Vec::new();
    let mut view_times = Vec::new();
    let order = BatchOrder::sequential(data.len(), batch);
    for (i, idx) in order.batches().enumerate() {
        let started = Instant::now();
        for view in 0..2 {
            let _ = ssl.augment.views(&data, idx, view, i as u64);
        }
        let views = started.elapsed().as_secs_f64();
        let b = Batch::gather(&data, idx, &device);
        let started = Instant::now();
        let (n, _, _, _) = train_step(
            network,
            &mut optimizer,
            &groups,
            objective.as_mut(),
            &b,
            idx,
            config.lr,
        )
        .map_err(|v| anyhow::anyhow!("loss became {v}"))?;
        network = n;
        if i >= warmup {
            step_times.push(started.elapsed().as_secs_f64());
            view_times.push(views);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let result = |workload: &str, seconds: f64| BenchResult {
        workload: workload.into(),
        batch_size: batch,
        repeats: steps,
        seconds,
        samples_per_second: batch as f64 / seconds,
        setup_seconds: 0.0,
        peak_memory_mib: peak_memory_mib(),
        threads: threads(),
        kernels: Kernels::Mentor,
    };
    Ok(vec![
        result("simclr-step", median(step_times)),
        result("simclr-step/views-only", median(view_times)),
    ])
}

/// The `loader` workload: `args.steps` batches of 64 photos of the folder's training
/// split (its first pass untimed, to warm the page cache), read, decoded and transformed
/// (RandomResizedCrop 224, flip, normalise) by 1 and then 2 worker threads while this
/// thread only takes the batches.
fn run_loader(args: &BenchArgs) -> anyhow::Result<Vec<BenchResult>> {
    use mentor::data::Examples;
    use mentor::data::stream::{ImageFiles, ImageStream, LoaderConfig};
    use mentor::data::transform::Transform;
    let dir = args.data_dir.as_deref().context("--data-dir")?;
    let train = dir.join("train");
    let root = if train.is_dir() {
        train
    } else {
        dir.to_path_buf()
    };
    let files = ImageFiles::scan(&root)?;
    let classes = files.class_names.len();
    let transform = Transform::imagenet_train(224);
    let shape = transform.check()?.shape;
    let batch = 64;
    let mut results = Vec::new();
    for workers in [1, 2] {
        let stream = ImageStream::new(
            files.clone(),
            classes,
            transform.clone(),
            shape,
            1,
            LoaderConfig {
                workers,
                prefetch: 4,
            },
            false,
        );
        let take = |epoch: usize, count: usize| -> anyhow::Result<usize> {
            let order = BatchOrder::shuffled(files.len(), batch, 1, epoch);
            let mut images = 0;
            for b in stream.batches(order, epoch).take(count) {
                images += b?.len();
            }
            Ok(images)
        };
        take(0, files.len().div_ceil(batch))?;
        let started = Instant::now();
        let (mut images, mut batches, mut epoch) = (0, 0, 1);
        while batches < args.steps {
            let left = args.steps - batches;
            let count = left.min(files.len().div_ceil(batch));
            images += take(epoch, count)?;
            batches += count;
            epoch += 1;
        }
        let seconds = started.elapsed().as_secs_f64();
        results.push(BenchResult {
            workload: format!("loader/workers-{workers}"),
            batch_size: batch,
            repeats: batches,
            seconds: seconds / batches as f64,
            samples_per_second: images as f64 / seconds,
            setup_seconds: 0.0,
            peak_memory_mib: peak_memory_mib(),
            threads: workers,
            kernels: Kernels::Mentor,
        });
    }
    Ok(results)
}

fn run_worker(name: &str, args: &BenchArgs) -> anyhow::Result<Vec<BenchResult>> {
    mentor::kernels::set_enabled(args.kernels == Kernels::Mentor);
    let mut results = match name {
        "cnn-step"
        | "mlp-step"
        | "resnet-step"
        | "efficientnet-lite0-step"
        | "efficientnet-lite0-96-full"
        | "efficientnet-lite0-96-head" => Ok(vec![run_step_workload(
            name,
            args.steps,
            args.warmup,
            &args.device,
        )?]),
        "kd-epoch" => run_kd_epoch(args.samples),
        "linear-probe" => run_linear_probe(args.samples),
        "lwf-task" => run_lwf_task(args.samples),
        "simclr-step" => run_simclr_step(args.steps, args.warmup),
        "loader" => run_loader(args),
        "efficientnet-lite0-infer" => {
            run_inference_workload(name, args.steps, args.warmup, &args.device)
        }
        other => bail!(
            "unknown workload {other:?}; known: {}",
            WORKLOADS.join(", ")
        ),
    }?;
    for result in &mut results {
        result.kernels = args.kernels;
    }
    Ok(results)
}

fn kernels_name(kernels: Kernels) -> &'static str {
    match kernels {
        Kernels::Mentor => "mentor",
        Kernels::Burn => "burn",
    }
}

/// Runs `mentor bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.steps == 0 || args.samples == 0 {
        bail!("--steps and --samples must be >= 1");
    }
    let names: Vec<String> = if args.workloads.is_empty() {
        WORKLOADS[..DEFAULT_WORKLOADS]
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        args.workloads.clone()
    };
    if let Some(bad) = names.iter().find(|n| !WORKLOADS.contains(&n.as_str())) {
        bail!("unknown workload {bad:?}; known: {}", WORKLOADS.join(", "));
    }
    if args.worker {
        let [name] = names.as_slice() else {
            bail!("--worker takes exactly one workload");
        };
        println!("{}", serde_json::to_string(&run_worker(name, &args)?)?);
        return Ok(());
    }
    if names.iter().any(|n| n == "loader") && args.data_dir.is_none() {
        bail!("the loader workload reads an image folder: give it with --data-dir");
    }
    let exe = std::env::current_exe().context("locating the mentor binary")?;
    let mut results: Vec<BenchResult> = Vec::new();
    for name in &names {
        let out = std::process::Command::new(&exe)
            .args(["bench", name, "--worker"])
            .args(["--steps", &args.steps.to_string()])
            .args(["--warmup", &args.warmup.to_string()])
            .args(["--samples", &args.samples.to_string()])
            .args(["--device", &args.device])
            .args(["--kernels", kernels_name(args.kernels)])
            .args(
                args.data_dir
                    .iter()
                    .flat_map(|d| [std::ffi::OsStr::new("--data-dir"), d.as_os_str()]),
            )
            .output()
            .with_context(|| format!("running the {name} worker"))?;
        if !out.status.success() {
            bail!(
                "{name} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let r: Vec<BenchResult> = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("reading the {name} worker's result"))?;
        results.extend(r);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        println!(
            "| workload | kernels | batch | seconds (median step / per epoch) | samples/s | setup s | peak MiB |"
        );
        println!("|---|---|---|---|---|---|---|");
        for r in &results {
            println!(
                "| {} | {} | {} | {:.4} | {:.0} | {:.2} | {:.0} |",
                r.workload,
                kernels_name(r.kernels),
                r.batch_size,
                r.seconds,
                r.samples_per_second,
                r.setup_seconds,
                r.peak_memory_mib
            );
        }
    }
    Ok(())
}
