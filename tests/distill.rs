//! Distillation end to end on the embedded digits set: cached and per-batch teacher
//! logits train the same student, bad teachers and hyperparameters are clear errors.

mod common;
use common::*;

use burn::tensor::Device;
use mentor::config::RunConfig;
use mentor::data::Batch;
use mentor::distill::{DistillConfig, KnowledgeDistillation};
use mentor::engine::{Objective, load_network, prepare_data, seeded_init, train};
use mentor::strategy::build_objective;

/// Trains a small CNN teacher on digits and returns its checkpoint path.
fn teacher(dir: &std::path::Path, extra: &[&str]) -> std::path::PathBuf {
    let mut sets: Vec<String> = vec![
        "model.type=\"cnn\"".into(),
        "epochs=2".into(),
        "data.per_class=40".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    let cfg = config(&sets);
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let out = dir.join("teacher");
    train(&cfg, &data, &mut mentor::engine::CrossEntropy, &quiet(&out)).unwrap();
    out.join("checkpoints/last.ckpt")
}

fn student_sets(teacher: &std::path::Path, cache: bool) -> Vec<String> {
    vec![
        "model.hidden=[32]".into(),
        "epochs=2".into(),
        "data.per_class=40".into(),
        "strategy.type=\"distill\"".into(),
        format!("strategy.teacher={:?}", teacher.display().to_string()),
        "strategy.temperature=4.0".into(),
        "strategy.lambda=0.7".into(),
        format!("strategy.cache_teacher={cache}"),
    ]
}

#[test]
fn cached_and_per_batch_teacher_train_the_same_student() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = teacher(dir.path(), &[]);
    let mut students = Vec::new();
    for cache in [true, false] {
        let cfg = config(&student_sets(&ckpt, cache));
        let data = prepare_data(&cfg.data, cfg.seed).unwrap();
        let mut objective = build_objective(&cfg, &data, &Device::flex()).unwrap();
        let out = dir.path().join(format!("student-{cache}"));
        let (_, net) = train(&cfg, &data, objective.as_mut(), &quiet(&out)).unwrap();
        students.push(weights(&net).concat());
    }
    assert_eq!(students[0], students[1]);
}

#[test]
fn cached_and_per_batch_losses_agree_on_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = teacher(dir.path(), &[]);
    let cfg = config(&student_sets(&ckpt, true));
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let teacher_net = load_network(&ckpt, &Device::flex()).unwrap().network;
    let device = Device::flex().autodiff();
    let student = seeded_init(&cfg.model, data.train.shape, 10, &device, 5);
    let idx: Vec<usize> = vec![3, 1, 4, 15, 9, 2, 6];
    let batch = Batch::gather(&data.train, &idx, &device);
    let mut losses = Vec::new();
    for cache in [true, false] {
        let kd = DistillConfig {
            teacher: ckpt.clone(),
            temperature: 3.0,
            lambda: 0.6,
            cache_teacher: cache,
            hint_weight: 0.0,
            hint_lr: 1e-3,
        };
        let mut objective = KnowledgeDistillation::new(teacher_net.clone(), &kd, &data.train);
        assert_eq!(objective.is_cached(), cache);
        losses.push(
            objective
                .step(&student, &batch, &idx)
                .loss
                .into_scalar::<f32>(),
        );
    }
    assert!((losses[0] - losses[1]).abs() < 1e-5, "{losses:?}");
}

#[test]
fn a_teacher_for_other_classes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = teacher(dir.path(), &["data.classes=[0,1,2,3,4]"]);
    let cfg = config(&student_sets(&ckpt, true));
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let err = build_objective(&cfg, &data, &Device::flex())
        .err()
        .expect("a 5-class teacher cannot teach 10 classes")
        .to_string();
    assert!(
        err.contains("5 classes") && err.contains("10 classes"),
        "{err}"
    );
}

#[test]
fn temperature_and_lambda_are_validated() {
    let bad = |k: &str, v: &str| {
        let sets = vec![
            "strategy.type=\"distill\"".to_string(),
            "strategy.teacher=\"t.ckpt\"".to_string(),
            format!("strategy.{k}={v}"),
        ];
        RunConfig::default()
            .with_overrides(&sets)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        bad("temperature", "0.0"),
        "config key `strategy.temperature`: must be > 0, got 0"
    );
    assert_eq!(
        bad("lambda", "1.5"),
        "config key `strategy.lambda`: must be in [0, 1], got 1.5"
    );
}

#[test]
fn fitnets_hints_train_cached_or_not_alike_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = teacher(dir.path(), &[]);
    let run = |cache: bool, hint: f64, out: &str, stop: Option<usize>, resume: bool| {
        let mut sets = student_sets(&ckpt, cache);
        sets.push(format!("strategy.hint_weight={hint}"));
        sets.push("epochs=4".into());
        let cfg = config(&sets);
        let data = prepare_data(&cfg.data, cfg.seed).unwrap();
        let mut objective = build_objective(&cfg, &data, &Device::flex()).unwrap();
        let opts = mentor::engine::TrainOptions {
            stop_after: stop,
            resume,
            ..quiet(&dir.path().join(out))
        };
        let (_, net) = train(&cfg, &data, objective.as_mut(), &opts).unwrap();
        weights(&net).concat()
    };
    let hinted = run(true, 0.5, "hint-cached", None, false);
    // The teacher's features cached once or computed per batch: the same student.
    assert_eq!(hinted, run(false, 0.5, "hint-per-batch", None, false));
    // The hint term changes what the student learns.
    assert_ne!(hinted, run(true, 0.0, "no-hint", None, false));
    // The adapter (and its Adam state) is part of the checkpoint: exact resume.
    run(true, 0.5, "hint-resumed", Some(2), false);
    assert_eq!(hinted, run(true, 0.5, "hint-resumed", None, true));
}
