//! The outer loop over tasks: each task is one engine run (its own directory under the
//! continual run's, with checkpoints and exact resume), then every task's test set is
//! scored to fill a row of the accuracy matrix, and the method's state is updated (EWC's
//! Fisher, the replay buffer) and saved. A run killed during task `k` resumes at task `k`
//! (from that task's last epoch checkpoint) and ends with the weights of an
//! uninterrupted run.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::method::{MethodState, TaskContext, state_error};
use super::objective::ContinualObjective;
use super::scenario::{Task, build_tasks, eval_outputs, train_outputs};
use super::{AccuracyMatrix, ContinualConfig, ContinualError, Setting};
use crate::data::{DataConfig, PreparedData, prepare_data};
use crate::engine::io::write_atomic;
use crate::engine::progress::Progress;
use crate::engine::{
    Fingerprint, RunDir, StartWeights, TrainOptions, TrainSpec, evaluate_outputs, load_network,
    seeded_init, train_observed,
};
use crate::models::Network;
use crate::report::CurvePlots;

/// What a finished continual run reports (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContinualSummary {
    /// `split` or `permuted`, with the dataset.
    pub scenario: String,
    /// `task-il`, `domain-il` or `class-il`.
    pub setting: String,
    /// The method's name.
    pub method: String,
    /// Number of tasks.
    pub tasks: usize,
    /// Optimiser steps per task.
    pub iterations_per_task: usize,
    /// The accuracy matrix and the untrained baseline.
    pub matrix: AccuracyMatrix,
    /// Average accuracy over all tasks after the last.
    pub average_accuracy: f64,
    /// Backward transfer.
    pub backward_transfer: f64,
    /// Mean forgetting of the tasks before the last.
    pub mean_forgetting: f64,
    /// Forward transfer.
    pub forward_transfer: f64,
    /// Training seconds of each task (steps only).
    pub task_seconds: Vec<f64>,
    /// Wall time of the whole run, seconds (a resumed run counts each task's last part).
    pub wall_seconds: f64,
    /// Parameters of the network.
    pub parameters: usize,
    /// The run's seed.
    pub seed: u64,
    /// mentor's version.
    pub mentor_version: String,
    /// The CPU's subnormal-float mode the run computed in (absent in summaries written
    /// before mentor recorded it, when subnormals were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denormals: Option<crate::kernels::Denormals>,
}

/// Progress between tasks (`continual-state.json`): what is done, and the method's own
/// state beside it (its fields at the top level, as earlier versions wrote them), so
/// both are saved in one atomic write.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct ContinualState {
    completed: usize,
    matrix: AccuracyMatrix,
    task_seconds: Vec<f64>,
    task_wall_seconds: Vec<f64>,
    #[serde(flatten)]
    method: MethodState,
}

const STATE_FILE: &str = "continual-state.json";

fn write(path: &Path, bytes: &[u8]) -> Result<(), ContinualError> {
    write_atomic(path, bytes).map_err(|e| state_error(path, e))
}

/// Where to stop a continual run early (to resume it later, or to test that resuming
/// works): after `tasks` whole tasks and `epochs` epochs of the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopPoint {
    /// Whole tasks to finish.
    pub tasks: usize,
    /// Epochs of the next task to train before stopping (0: none).
    pub epochs: usize,
}

/// Runs `continual` on the data of `data_config`, training each task as `spec` says
/// (its model, optimiser, batch size and seed; the epochs come from the iteration budget),
/// into `options.out`; the first task starts from `start` applied to the seeded
/// initialisation. `options.fingerprint` is the run's resolved config; each task's run
/// directory gets it with that task's epochs and parameter groups. `stop` ends the run
/// early (resume later with `options.resume`). Returns the summary (of the tasks finished
/// so far) and the network.
pub fn run_continual(
    spec: &TrainSpec,
    data_config: &DataConfig,
    continual: &ContinualConfig,
    options: &TrainOptions,
    start: &dyn StartWeights,
    stop: Option<StopPoint>,
) -> Result<(ContinualSummary, Network), ContinualError> {
    let wall = Instant::now();
    let out = &options.out;
    if data_config.val_fraction > 0.0 {
        return Err(ContinualError::Scenario(format!(
            "continual runs score every task on its test split; set data.val_fraction = 0 (got {})",
            data_config.val_fraction
        )));
    }
    let data = prepare_data(data_config, spec.seed)?;
    let (tasks, outputs) = build_tasks(
        continual.scenario,
        continual.setting,
        continual.tasks,
        &data.train,
        &data.test,
        spec.seed,
    )?;
    spec.model
        .check_fits(
            data.train.shape,
            outputs,
            crate::engine::device::host_memory_bytes(),
        )
        .map_err(|e| ContinualError::Scenario(format!("model: {e}")))?;
    let setting = continual.setting;
    let train_device = options.device.clone().autodiff();
    let run_dir = RunDir::new(out);
    let state_path = out.join(STATE_FILE);
    let mut state = ContinualState::default();
    let mut method = continual.method.build();
    // A run stopped before its first write has no config.toml yet: --resume starts it.
    let saved = match options.resume {
        true => run_dir.saved_fingerprint_if_any()?,
        false => None,
    };
    if let Some(saved) = saved {
        RunDir::check_resume(
            &run_dir.join(crate::engine::run_dir::CONFIG_FILE),
            &saved,
            &options.fingerprint,
        )?;
        if state_path.is_file() {
            let text =
                std::fs::read_to_string(&state_path).map_err(|e| state_error(&state_path, e))?;
            state = serde_json::from_str(&text).map_err(|e| state_error(&state_path, e))?;
            method.load(out, &state.method)?;
        }
    } else {
        run_dir.start(&options.fingerprint)?;
    }

    let mut network = if state.completed == 0 {
        let fresh = seeded_init(
            &spec.model,
            data.train.shape,
            outputs,
            &train_device,
            spec.seed,
        );
        let first_resumes = options.resume && run_dir.task(0).last_checkpoint().is_file();
        if first_resumes {
            fresh // the first task's checkpoint holds its weights
        } else {
            start.start(fresh, out).map_err(ContinualError::Start)?
        }
    } else {
        let path = run_dir.task(state.completed - 1).last_checkpoint();
        load_network(&path, &train_device)
            .map_err(|e| state_error(&path, e))?
            .network
    };
    if state.matrix.baseline.is_empty() {
        state.matrix.baseline = (0..tasks.len())
            .map(|j| score(&network, &tasks, setting, j, j))
            .collect();
    }
    // The optimiser state the next task starts from: the last finished task's.
    let mut optimizer_state = match state.completed {
        0 => None,
        done => previous_optimizer(continual, &run_dir.task(done - 1))?,
    };
    let progress = Progress::new(options.log, "[continual]");
    for t in state.completed..tasks.len() {
        let partial = match stop {
            Some(s) if t > s.tasks || (t == s.tasks && s.epochs == 0) => break,
            Some(s) if t == s.tasks => Some(s.epochs),
            _ => None,
        };
        let started = Instant::now();
        let (train_set, example_task) = method.training_set(&tasks, t)?;
        let cx = TaskContext {
            tasks: &tasks,
            t,
            setting,
            train_set: &train_set,
            spec,
            device: &options.device,
        };
        let terms = method.before_task(&cx, &network)?;
        let mut objective = ContinualObjective::new(setting, &tasks, t, example_task, terms);
        let task_spec = method.task_spec(t, budget_spec(spec, continual, train_set.len()));
        let dir = run_dir.task(t);
        let task_options = TrainOptions {
            fingerprint: task_fingerprint(&options.fingerprint, &task_spec),
            out: dir.path().to_path_buf(),
            resume: options.resume && dir.last_checkpoint().is_file(),
            log: options.log,
            stop_after: partial,
            device: options.device.clone(),
            devices: Vec::new(),
            ranks: None,
            start_from: Some(network.clone()),
            start_optimizer: optimizer_state.clone(),
            max_steps: Some(continual.iterations_per_task),
        };
        progress.note(&format!(
            "task {}/{}: classes {:?}, {} training examples, outputs {:?}",
            t + 1,
            tasks.len(),
            tasks[t].classes,
            train_set.len(),
            train_outputs(setting, &tasks, t, t).unwrap_or(0..outputs)
        ));
        let prepared = PreparedData {
            train: train_set,
            val: None,
            test: tasks[t].test.clone(),
            class_names: Vec::new(),
            normalization: None,
        };
        let mut plots = CurvePlots::new(dir.join("plots"));
        let (summary, trained) = train_observed(
            &task_spec,
            &prepared,
            &mut objective,
            &task_options,
            &mut [&mut plots],
        )
        .map_err(|source| ContinualError::Task {
            task: t + 1,
            source,
        })?;
        network = trained;
        optimizer_state = previous_optimizer(continual, &dir)?;
        if partial.is_some_and(|e| e < task_spec.epochs) {
            break;
        }
        let row: Vec<f64> = (0..tasks.len())
            .map(|j| score(&network, &tasks, setting, j, t))
            .collect();
        progress.note(&format!(
            "after task {}: accuracy per task {}",
            t + 1,
            row.iter()
                .map(|a| format!("{:.4}", a))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        state.matrix.rows.push(row);
        state.task_seconds.push(summary.train_seconds);

        // Method state for the tasks to come, saved with the progress.
        let cx = TaskContext {
            tasks: &tasks,
            t,
            setting,
            train_set: &tasks[t].train,
            spec,
            device: &options.device,
        };
        method.after_task(&cx, &network)?;
        state.method = method.save(out)?;
        state.completed = t + 1;
        state
            .task_wall_seconds
            .push(started.elapsed().as_secs_f64());
        let json = serde_json::to_string_pretty(&state).unwrap_or_default();
        write(&state_path, json.as_bytes())?;
        write(
            &out.join("accuracy_matrix.csv"),
            state.matrix.to_csv().as_bytes(),
        )?;
    }

    // Written again from the saved progress: a run killed between its state and this
    // file gets the last row back when resumed, even with no task left to train.
    write(
        &out.join("accuracy_matrix.csv"),
        state.matrix.to_csv().as_bytes(),
    )?;
    let m = &state.matrix;
    let summary = ContinualSummary {
        denormals: crate::kernels::denormals::on_this_thread(),
        scenario: format!(
            "{} {}",
            match continual.scenario {
                super::ScenarioKind::Split => "split",
                super::ScenarioKind::Permuted => "permuted",
            },
            data_config.dataset.name()
        ),
        setting: setting.name().into(),
        method: continual.method.name().into(),
        tasks: continual.tasks,
        iterations_per_task: continual.iterations_per_task,
        matrix: m.clone(),
        average_accuracy: m.average_accuracy(),
        backward_transfer: m.backward_transfer(),
        mean_forgetting: m.mean_forgetting(),
        forward_transfer: m.forward_transfer(),
        task_seconds: state.task_seconds.clone(),
        wall_seconds: state
            .task_wall_seconds
            .iter()
            .sum::<f64>()
            .max(wall.elapsed().as_secs_f64()),
        parameters: crate::models::trainable_count(&network),
        seed: spec.seed,
        mentor_version: env!("CARGO_PKG_VERSION").into(),
    };
    let title = format!(
        "{} {} {}",
        summary.scenario, summary.setting, summary.method
    );
    if let Err(e) = crate::report::plot_accuracy_matrix(
        &m.rows,
        &title,
        &out.join("plots").join("accuracy_matrix"),
    ) {
        progress.note(&format!("accuracy-matrix plot not written: {e}"));
    }
    Ok((summary, network))
}

/// The optimiser state at the end of the task in `dir`, unless every task starts fresh.
fn previous_optimizer(
    continual: &ContinualConfig,
    dir: &RunDir,
) -> Result<Option<burn::tensor::Bytes>, ContinualError> {
    if continual.reset_optimizer {
        return Ok(None);
    }
    let path = dir.last_checkpoint();
    let ckpt = crate::engine::checkpoint::load(&path).map_err(|e| state_error(&path, e))?;
    Ok(Some(ckpt.optimizer))
}

/// Accuracy on task `j`'s test set after training task `after`, on the setting's outputs.
fn score(network: &Network, tasks: &[Task], setting: Setting, j: usize, after: usize) -> f64 {
    evaluate_outputs(
        network,
        &tasks[j].test,
        1000,
        eval_outputs(setting, tasks, j, after),
    )
    .1
}

/// The fingerprint of a task's run: the continual run's, with the task's epochs and
/// parameter groups (as the run config of the task would state them).
fn task_fingerprint(run: &Fingerprint, task: &TrainSpec) -> Fingerprint {
    let groups = task
        .groups
        .iter()
        .filter_map(|g| toml::Value::try_from(g).ok())
        .collect();
    run.with("epochs", toml::Value::Integer(task.epochs as i64))
        .with("groups", toml::Value::Array(groups))
}

/// The run's training spec with enough epochs to cover one task's iteration budget.
fn budget_spec(spec: &TrainSpec, continual: &ContinualConfig, train_len: usize) -> TrainSpec {
    let mut c = spec.clone();
    let steps_per_epoch = train_len.div_ceil(spec.batch_size).max(1);
    c.epochs = continual.iterations_per_task.div_ceil(steps_per_epoch);
    c
}
