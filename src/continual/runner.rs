//! The outer loop over tasks: each task is one engine run (its own directory under the
//! continual run's, with checkpoints and exact resume), then every task's test set is
//! scored to fill a row of the accuracy matrix, and the method's state is updated (EWC's
//! Fisher, the replay buffer) and saved. A run killed during task `k` resumes at task `k`
//! (from that task's last epoch checkpoint) and ends with the weights of an
//! uninterrupted run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::ewc::{EwcPenalty, EwcTerm, anchor_weights, consolidate, estimate_fisher};
use super::lwf::LwfTerm;
use super::objective::{ContinualObjective, ReplayTerm};
use super::replay::ReplayBuffer;
use super::scenario::{Task, build_tasks, eval_outputs, train_outputs};
use super::{AccuracyMatrix, ContinualConfig, ContinualError, MethodConfig, Setting};
use crate::data::Dataset;
use crate::data::{DataConfig, PreparedData, prepare_data};
use crate::engine::groups::GroupRule;
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
}

/// Progress between tasks (`continual-state.json`): what is done and the method state
/// that is not tensors.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct ContinualState {
    completed: usize,
    matrix: AccuracyMatrix,
    task_seconds: Vec<f64>,
    task_wall_seconds: Vec<f64>,
    buffer: ReplayBuffer,
    ewc_terms: usize,
}

const STATE_FILE: &str = "continual-state.json";
const EWC_FILE: &str = "ewc.safetensors";

fn state_error(path: &Path, reason: impl ToString) -> ContinualError {
    ContinualError::State {
        path: path.into(),
        reason: reason.to_string(),
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ContinualError> {
    write_atomic(path, bytes).map_err(|e| state_error(path, e))
}

fn task_dir(out: &Path, t: usize) -> PathBuf {
    out.join(format!("task-{}", t + 1))
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
    let setting = continual.setting;
    let train_device = options.device.clone().autodiff();
    let run_dir = RunDir::new(out);
    let state_path = out.join(STATE_FILE);
    let mut state = ContinualState::default();
    let mut ewc_terms: Vec<EwcTerm> = Vec::new();
    if options.resume {
        let saved = run_dir.saved_fingerprint()?;
        RunDir::check_resume(
            &run_dir.join(crate::engine::run_dir::CONFIG_FILE),
            &saved,
            &options.fingerprint,
        )?;
        if state_path.is_file() {
            let text =
                std::fs::read_to_string(&state_path).map_err(|e| state_error(&state_path, e))?;
            state = serde_json::from_str(&text).map_err(|e| state_error(&state_path, e))?;
            ewc_terms = read_ewc(&out.join(EWC_FILE), state.ewc_terms)?;
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
        let first_resumes =
            options.resume && run_dir.task(0).join("checkpoints/last.ckpt").is_file();
        if first_resumes {
            fresh // the first task's checkpoint holds its weights
        } else {
            start.start(fresh, out).map_err(ContinualError::Start)?
        }
    } else {
        let path = task_dir(out, state.completed - 1).join("checkpoints/last.ckpt");
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
        done => previous_optimizer(continual, &task_dir(out, done - 1))?,
    };
    let progress = Progress::new(options.log, "[continual]");
    for t in state.completed..tasks.len() {
        let partial = match stop {
            Some(s) if t > s.tasks || (t == s.tasks && s.epochs == 0) => break,
            Some(s) if t == s.tasks => Some(s.epochs),
            _ => None,
        };
        let started = Instant::now();
        let (train_set, example_task) = training_set(continual, &tasks, t)?;
        let mut objective = ContinualObjective::new(setting, &tasks, t, example_task);
        if t > 0 {
            add_method_terms(
                &mut objective,
                continual,
                &tasks,
                t,
                &network,
                &train_set,
                &ewc_terms,
                &state.buffer,
                spec,
                options,
            )?;
        }
        let task_spec = task_spec(spec, continual, t, train_set.len());
        let dir = task_dir(out, t);
        let task_options = TrainOptions {
            fingerprint: task_fingerprint(&options.fingerprint, &task_spec),
            out: dir.clone(),
            resume: options.resume && dir.join("checkpoints/last.ckpt").is_file(),
            log: options.log,
            stop_after: partial,
            device: options.device.clone(),
            devices: Vec::new(),
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

        // Method state for the tasks to come.
        match &continual.method {
            MethodConfig::Ewc {
                online,
                gamma,
                fisher_samples,
                ..
            } => {
                let fisher = estimate_fisher(
                    &network,
                    &tasks[t].train,
                    train_outputs(setting, &tasks, t, t),
                    *fisher_samples,
                    spec.seed ^ t as u64,
                );
                let term = EwcTerm {
                    fisher,
                    anchor: anchor_weights(&network),
                };
                consolidate(&mut ewc_terms, term, *online, *gamma);
                write_ewc(&out.join(EWC_FILE), &ewc_terms)?;
                state.ewc_terms = ewc_terms.len();
            }
            MethodConfig::Replay {
                buffer_size,
                selection,
            } => {
                let label_of = |task: usize, i: usize| tasks[task].train.labels[i];
                state.buffer.add_task(
                    t,
                    &tasks[t].train.labels,
                    &label_of,
                    *buffer_size,
                    *selection,
                    spec.seed,
                );
            }
            _ => {}
        }
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

    let m = &state.matrix;
    let summary = ContinualSummary {
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
    let json = serde_json::to_string_pretty(&summary).unwrap_or_default();
    write(&out.join("summary.json"), json.as_bytes())?;
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
    dir: &Path,
) -> Result<Option<burn::tensor::Bytes>, ContinualError> {
    if continual.reset_optimizer {
        return Ok(None);
    }
    let path = dir.join("checkpoints/last.ckpt");
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

/// The training examples of task `t` (joint: of tasks `0..=t`) and each one's task.
fn training_set(
    continual: &ContinualConfig,
    tasks: &[Task],
    t: usize,
) -> Result<(Dataset, Vec<usize>), ContinualError> {
    if continual.method == MethodConfig::Joint {
        let parts: Vec<&Dataset> = tasks[..=t].iter().map(|k| &k.train).collect();
        let owner = tasks[..=t]
            .iter()
            .enumerate()
            .flat_map(|(k, task)| std::iter::repeat_n(k, task.train.len()))
            .collect();
        Ok((Dataset::concat(&parts)?, owner))
    } else {
        Ok((tasks[t].train.clone(), vec![t; tasks[t].train.len()]))
    }
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

/// The training spec of task `t`: the continual run's, with enough epochs to cover the
/// iteration budget and the method's parameter groups (feature extraction freezes the
/// backbone after the first task; LwF's warm-up freezes it for its first epochs).
fn task_spec(
    spec: &TrainSpec,
    continual: &ContinualConfig,
    t: usize,
    train_len: usize,
) -> TrainSpec {
    let mut c = spec.clone();
    let steps_per_epoch = train_len.div_ceil(spec.batch_size).max(1);
    c.epochs = continual.iterations_per_task.div_ceil(steps_per_epoch);
    if t > 0 {
        match &continual.method {
            MethodConfig::FeatureExtraction => c.groups.push(GroupRule {
                pattern: "backbone".into(),
                lr_mult: 1.0,
                frozen: true,
                unfreeze_at: None,
            }),
            MethodConfig::Lwf { warmup_epochs, .. } if *warmup_epochs > 0 => {
                c.groups.push(GroupRule {
                    pattern: "backbone".into(),
                    lr_mult: 1.0,
                    frozen: true,
                    unfreeze_at: Some((warmup_epochs + 1).min(c.epochs.max(2))),
                });
                c.epochs = c.epochs.max(2);
            }
            _ => {}
        }
    }
    c
}

/// Adds the method's terms for task `t > 0` to `objective`.
#[allow(clippy::too_many_arguments)]
fn add_method_terms(
    objective: &mut ContinualObjective,
    continual: &ContinualConfig,
    tasks: &[Task],
    t: usize,
    network: &Network,
    train_set: &Dataset,
    ewc_terms: &[EwcTerm],
    buffer: &ReplayBuffer,
    spec: &TrainSpec,
    options: &TrainOptions,
) -> Result<(), ContinualError> {
    let setting = continual.setting;
    match &continual.method {
        MethodConfig::Lwf {
            lambda,
            temperature,
            balance,
            ..
        } => {
            let old_heads = match setting {
                Setting::TaskIl => tasks[..t].iter().map(|k| k.outputs.clone()).collect(),
                Setting::ClassIl => std::iter::once(0..tasks[t - 1].outputs.end).collect(),
                Setting::DomainIl => vec![tasks[0].outputs.clone()],
            };
            let mut term = LwfTerm::record(
                network,
                train_set,
                old_heads,
                *temperature,
                *lambda,
                &options.device,
            );
            term.balance_by_tasks = *balance == super::LwfBalance::Tasks;
            objective.lwf = Some(term);
        }
        MethodConfig::Ewc { lambda, .. } => {
            objective.ewc = Some(EwcPenalty::new(
                *lambda,
                ewc_terms,
                &options.device.clone().autodiff(),
            ));
        }
        MethodConfig::Replay { .. } => {
            let first = &tasks[0].train;
            let mut images = Vec::with_capacity(buffer.len() * first.image_len());
            let mut labels = Vec::with_capacity(buffer.len());
            let mut owner = Vec::with_capacity(buffer.len());
            for &(k, i) in &buffer.entries {
                images.extend_from_slice(tasks[k].train.image(i));
                labels.push(tasks[k].train.labels[i]);
                owner.push(k);
            }
            objective.replay = Some(ReplayTerm {
                examples: Dataset::new(images, labels, first.shape, first.num_classes)?,
                tasks: owner,
                batch_size: spec.batch_size,
                seed: spec.seed ^ t as u64,
            });
        }
        _ => {}
    }
    Ok(())
}

fn write_ewc(path: &Path, terms: &[EwcTerm]) -> Result<(), ContinualError> {
    let mut named: Vec<(String, Vec<u8>, usize)> = Vec::new();
    for (k, term) in terms.iter().enumerate() {
        for (p, (f, a)) in term.fisher.iter().zip(&term.anchor).enumerate() {
            for (kind, v) in [("fisher", f), ("anchor", a)] {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                named.push((format!("term{k}.{kind}.{p}"), bytes, v.len()));
            }
        }
    }
    let views: Vec<(String, TensorView<'_>)> = named
        .iter()
        .map(|(n, b, len)| {
            TensorView::new(Dtype::F32, vec![*len], b)
                .map(|v| (n.clone(), v))
                .map_err(|e| state_error(path, e))
        })
        .collect::<Result<_, _>>()?;
    let bytes = safetensors::serialize(views, None).map_err(|e| state_error(path, e))?;
    write(path, &bytes)
}

fn read_ewc(path: &Path, count: usize) -> Result<Vec<EwcTerm>, ContinualError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let bytes = std::fs::read(path).map_err(|e| state_error(path, e))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| state_error(path, e))?;
    let mut by_name: HashMap<String, Vec<f32>> = HashMap::new();
    for (name, view) in file.tensors() {
        let v = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        by_name.insert(name, v);
    }
    let mut terms = Vec::with_capacity(count);
    for k in 0..count {
        let mut term = EwcTerm {
            fisher: Vec::new(),
            anchor: Vec::new(),
        };
        let mut p = 0;
        while let Some(f) = by_name.remove(&format!("term{k}.fisher.{p}")) {
            let a = by_name
                .remove(&format!("term{k}.anchor.{p}"))
                .ok_or_else(|| {
                    state_error(path, format!("term {k} parameter {p} has no anchor"))
                })?;
            term.fisher.push(f);
            term.anchor.push(a);
            p += 1;
        }
        if p == 0 {
            return Err(state_error(path, format!("EWC term {k} is missing")));
        }
        terms.push(term);
    }
    Ok(terms)
}
