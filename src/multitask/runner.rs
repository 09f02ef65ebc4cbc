//! A multitask run: builds the benchmark from the run's data, trains the shared network
//! with the engine on the weighted sum of the task losses, then scores every task on its
//! own test labels and, given single-task runs, reports `Delta_m`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::benchmark::NO_LABEL;
use super::objective::{MultitaskObjective, WeightHistory};
use super::{Benchmark, MultitaskConfig, MultitaskError, MultitaskSet, delta_m};
use crate::data::Dataset;
use crate::data::{DataConfig, PreparedData, prepare_data};
use crate::engine::io::write_atomic;
use crate::engine::{
    StartWeights, TrainOptions, TrainSpec, evaluate_outputs, seeded_init, train_observed,
};
use crate::models::Network;
use crate::report::CurvePlots;

/// What a finished multitask run reports (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultitaskSummary {
    /// The benchmark and dataset.
    pub benchmark: String,
    /// The names of the trained tasks.
    pub tasks: Vec<String>,
    /// Their indices in the benchmark.
    pub trained_tasks: Vec<usize>,
    /// `fixed` or `dwa`.
    pub weighting: String,
    /// `hard`, `soft` or `cross-stitch` (empty in summaries from before it was recorded).
    #[serde(default)]
    pub architecture: String,
    /// Test accuracy of each trained task.
    pub task_accuracy: Vec<f64>,
    /// `Delta_m` in percent against the single-task baselines given, if any.
    pub delta_m: Option<f64>,
    /// The single-task accuracies `Delta_m` was computed against.
    pub baseline_accuracy: Option<Vec<f64>>,
    /// Epoch losses and task weights.
    pub weights: WeightHistory,
    /// Parameters of the network.
    pub parameters: usize,
    /// Epochs trained.
    pub epochs: usize,
    /// Seconds in training steps.
    pub train_seconds: f64,
    /// Wall time of this invocation.
    pub wall_seconds: f64,
    /// The run's seed.
    pub seed: u64,
    /// mentor's version.
    pub mentor_version: String,
    /// The CPU's subnormal-float mode the run computed in (absent in summaries written
    /// before mentor recorded it, when subnormals were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denormals: Option<crate::kernels::Denormals>,
}

fn task_names(benchmark: Benchmark) -> [&'static str; 2] {
    match benchmark {
        Benchmark::MultiDigits => ["left", "right"],
        Benchmark::Coarse => ["classes", "coarse"],
        Benchmark::Datasets => ["first", "second"],
    }
}

fn build(
    set: &Dataset,
    second: Option<&Dataset>,
    mt: &MultitaskConfig,
    seed: u64,
) -> Result<MultitaskSet, MultitaskError> {
    Ok(match (mt.benchmark, second) {
        (Benchmark::MultiDigits, _) => super::multi_digits(set, seed)?,
        (Benchmark::Coarse, _) => super::with_coarse_task(set, &mt.coarse_groups)?,
        (Benchmark::Datasets, Some(second)) => super::paired_datasets(set, second)?,
        (Benchmark::Datasets, None) => {
            return Err(MultitaskError::Architecture(
                "benchmark \"datasets\" needs strategy.second_dataset".into(),
            ));
        }
    })
}

/// The examples labelled for task `task`, their labels shifted into its output units.
fn task_dataset(
    set: &MultitaskSet,
    task: usize,
    range: &Range<usize>,
    total: usize,
) -> Result<Dataset, MultitaskError> {
    let keep: Vec<usize> = (0..set.images.len())
        .filter(|&i| set.labels[task][i] != NO_LABEL)
        .collect();
    let part = set.images.select(&keep);
    let labels = keep
        .iter()
        .map(|&i| set.labels[task][i] + range.start)
        .collect();
    Ok(Dataset::new(part.images, labels, part.shape, total)?)
}

/// Every example, labelled with its own task's label (its first labelled trained task)
/// shifted into that task's output units: the engine's training set.
fn own_task_dataset(
    set: &MultitaskSet,
    trained: &[usize],
    outputs: &[Range<usize>],
    total: usize,
) -> Result<Dataset, MultitaskError> {
    let mut keep = Vec::new();
    let mut labels = Vec::new();
    for i in 0..set.images.len() {
        if let Some(k) = (0..trained.len()).find(|&k| set.labels[trained[k]][i] != NO_LABEL) {
            keep.push(i);
            labels.push(set.labels[trained[k]][i] + outputs[k].start);
        }
    }
    let part = set.images.select(&keep);
    Ok(Dataset::new(part.images, labels, part.shape, total)?)
}

/// Trains `mt` on the data of `data_config` as `spec` says (its model is the shared
/// network, or each task's column) into `options.out`, starting from `start` applied to
/// the seeded initialisation of the network it trains; `baselines` are single-task runs
/// of the same benchmark (one task each) for `Delta_m`.
pub fn run_multitask(
    spec: &TrainSpec,
    data_config: &DataConfig,
    mt: &MultitaskConfig,
    options: &TrainOptions,
    start: &dyn StartWeights,
    baselines: &[PathBuf],
) -> Result<(MultitaskSummary, Network), MultitaskError> {
    let wall = std::time::Instant::now();
    let data = prepare_data(data_config, spec.seed)?;
    let second = match (mt.benchmark, mt.second_dataset) {
        (Benchmark::Datasets, Some(source)) => {
            let mut c = data_config.clone();
            c.dataset = source;
            Some(prepare_data(&c, spec.seed)?)
        }
        _ => None,
    };
    let train_set = build(
        &data.train,
        second.as_ref().map(|d| &d.train),
        mt,
        spec.seed ^ 0x7A11,
    )?;
    let test_set = build(
        &data.test,
        second.as_ref().map(|d| &d.test),
        mt,
        spec.seed ^ 0x7E57,
    )?;
    let val_set = match (&data.val, second.as_ref().map(|d| &d.val)) {
        (Some(v), Some(Some(v2))) => Some(build(v, Some(v2), mt, spec.seed ^ 0x7A1D)?),
        (Some(v), _) if mt.benchmark != Benchmark::Datasets => {
            Some(build(v, None, mt, spec.seed ^ 0x7A1D)?)
        }
        _ => None,
    };
    let trained = mt.trained();
    let mut outputs = Vec::new();
    let mut first = 0;
    for &t in &trained {
        outputs.push(first..first + train_set.classes[t]);
        first += train_set.classes[t];
    }
    let total = first;
    let primary = 0;
    let (pt, pr) = (trained[primary], &outputs[primary]);
    // Examples without a label for any trained task (the other dataset of a
    // single-task baseline) are left out.
    let keep: Vec<usize> = (0..train_set.images.len())
        .filter(|&i| trained.iter().any(|&t| train_set.labels[t][i] != NO_LABEL))
        .collect();
    let prepared = PreparedData {
        train: own_task_dataset(&train_set, &trained, &outputs, total)?,
        val: match &val_set {
            Some(v) => Some(task_dataset(v, pt, pr, total)?),
            None => None,
        },
        test: task_dataset(&test_set, pt, pr, total)?,
        class_names: Vec::new(),
        normalization: data.normalization.clone(),
    };
    let labels = trained
        .iter()
        .map(|&t| keep.iter().map(|&i| train_set.labels[t][i]).collect())
        .collect();
    let mut objective =
        MultitaskObjective::new(outputs.clone(), labels, mt.weighting.clone(), primary)
            .with_losses(&mt.task_losses);
    // Soft sharing and cross-stitch train one column of the run's model per task.
    let shared = mt.architecture.network(
        &spec.model,
        trained.iter().map(|&t| train_set.classes[t]).collect(),
    )?;
    if let Some(lambda) = shared.soft_sharing {
        objective = objective.with_soft_sharing(lambda);
    }
    let mut run_options = options.clone();
    if shared.model != spec.model
        && let Ok(model) = toml::Value::try_from(&shared.model)
    {
        run_options.fingerprint = options.fingerprint.with("model", model);
    }
    let run_spec = TrainSpec {
        model: shared.model,
        ..spec.clone()
    };
    run_spec
        .model
        .check_fits(
            prepared.train.shape,
            prepared.train.num_classes,
            crate::engine::device::host_memory_bytes(),
        )
        .map_err(MultitaskError::Architecture)?;
    // Starting weights unless a checkpoint is resumed (a run stopped before its first
    // checkpoint starts again from them).
    let resumes = options.resume
        && crate::engine::RunDir::new(&options.out)
            .last_checkpoint()
            .is_file();
    if !resumes {
        let device = options.device.clone().autodiff();
        let fresh = seeded_init(
            &run_spec.model,
            prepared.train.shape,
            prepared.train.num_classes,
            &device,
            spec.seed,
        );
        run_options.start_from = Some(
            start
                .start(fresh, &options.out)
                .map_err(MultitaskError::Start)?,
        );
    }
    let mut plots = CurvePlots::new(options.out.join("plots"));
    let (run, network) = train_observed(
        &run_spec,
        &prepared,
        &mut objective,
        &run_options,
        &mut [&mut plots],
    )?;

    let mut task_accuracy = Vec::new();
    for (k, &t) in trained.iter().enumerate() {
        let test = task_dataset(&test_set, t, &outputs[k], total)?;
        task_accuracy.push(evaluate_outputs(&network, &test, 1000, Some(outputs[k].clone())).1);
    }
    let baseline_accuracy = read_baselines(baselines, &trained)?;
    let names = task_names(mt.benchmark);
    let summary = MultitaskSummary {
        denormals: crate::kernels::denormals::on_this_thread(),
        benchmark: format!(
            "{} {}",
            match mt.benchmark {
                Benchmark::MultiDigits => "multi-digits",
                Benchmark::Coarse => "coarse",
                Benchmark::Datasets => "datasets",
            },
            data_config.dataset.name()
        ),
        tasks: trained.iter().map(|&t| names[t].to_string()).collect(),
        trained_tasks: trained.clone(),
        weighting: mt.weighting.name().into(),
        architecture: mt.architecture.name().into(),
        delta_m: baseline_accuracy
            .as_ref()
            .map(|b| delta_m(&task_accuracy, b)),
        baseline_accuracy,
        task_accuracy,
        weights: objective.history().clone(),
        parameters: crate::models::trainable_count(&network),
        epochs: run.epochs,
        train_seconds: run.train_seconds,
        wall_seconds: wall.elapsed().as_secs_f64(),
        seed: spec.seed,
        mentor_version: env!("CARGO_PKG_VERSION").into(),
    };
    let io = |path: &Path, e: crate::engine::io::IoError| MultitaskError::Baseline {
        path: path.into(),
        reason: e.to_string(),
    };
    let mut csv = String::from("epoch");
    for n in &summary.tasks {
        csv.push_str(&format!(",loss_{n},weight_{n}"));
    }
    csv.push('\n');
    for (e, (l, w)) in summary
        .weights
        .losses
        .iter()
        .zip(&summary.weights.weights)
        .enumerate()
    {
        csv.push_str(&(e + 1).to_string());
        for (l, w) in l.iter().zip(w) {
            csv.push_str(&format!(",{l:.6},{w:.6}"));
        }
        csv.push('\n');
    }
    let path = options.out.join("task_weights.csv");
    write_atomic(&path, csv.as_bytes()).map_err(|e| io(&path, e))?;
    if let Err(e) = crate::report::plot_task_weights(
        &summary.weights.weights,
        &summary.tasks,
        &options.out.join("plots").join("task_weights"),
    ) {
        crate::engine::progress::Progress::new(options.log, "[multitask]")
            .note(&format!("task-weight plot not written: {e}"));
    }
    Ok((summary, network))
}

/// Mean single-task accuracy of each trained task over the baseline runs; `None` when
/// no baselines are given.
fn read_baselines(dirs: &[PathBuf], trained: &[usize]) -> Result<Option<Vec<f64>>, MultitaskError> {
    if dirs.is_empty() {
        return Ok(None);
    }
    let mut by_task: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for dir in dirs {
        let path = dir.join("summary.json");
        let err = |reason: String| MultitaskError::Baseline {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
        let s: MultitaskSummary = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        let [t] = s.trained_tasks.as_slice() else {
            return Err(err(format!(
                "a baseline trains one task, this one trains {:?}",
                s.trained_tasks
            )));
        };
        by_task.entry(*t).or_default().push(s.task_accuracy[0]);
    }
    trained
        .iter()
        .map(|t| {
            by_task
                .get(t)
                .map(|v| v.iter().sum::<f64>() / v.len() as f64)
                .ok_or_else(|| MultitaskError::Baseline {
                    path: dirs[0].clone(),
                    reason: format!("no single-task baseline for task {t}"),
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
