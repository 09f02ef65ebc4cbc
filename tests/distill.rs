//! Distillation end to end on the embedded digits set: cached and per-batch teacher
//! logits train the same student, bad teachers and hyperparameters are clear errors.

mod common;
use common::*;

use burn::tensor::Device;
use mentor::data::Batch;
use mentor::data::prepare_data;
use mentor::distill::{DistillConfig, KnowledgeDistillation};
use mentor::engine::{Objective, load_network, seeded_init};
use mentor::run::config::RunConfig;
use mentor::run::strategy::build_objective;
use mentor::run::train;

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
            targets: Default::default(),
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

/// The error of building a student's objective on `teacher` (`why` it must fail).
fn refusal(teacher: &std::path::Path, why: &str) -> String {
    let cfg = config(&student_sets(teacher, true));
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    build_objective(&cfg, &data, &Device::flex())
        .err()
        .expect(why)
        .to_string()
}

#[test]
fn a_teacher_for_other_classes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = teacher(dir.path(), &["data.classes=[0,1,2,3,4]"]);
    let err = refusal(&ckpt, "a 5-class teacher cannot teach 10 classes");
    assert!(
        err.contains("5 classes") && err.contains("10 classes"),
        "{err}"
    );
}

#[test]
fn a_teacher_that_is_not_a_classifier_is_refused() {
    // A projection network (a self-supervised encoder's shape): 16 outputs, 10 classes.
    let dir = tempfile::tempdir().unwrap();
    let ckpt = teacher(
        dir.path(),
        &[
            "model.type=\"projected\"",
            "model.encoder.type=\"mlp\"",
            "model.outputs=16",
        ],
    );
    let err = refusal(&ckpt, "a 16-output projection cannot teach 10 classes");
    assert!(
        err.contains("outputs 16 values") && err.contains("not a classifier"),
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
        "config key `strategy.temperature`: must be finite and > 0, got 0"
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

#[test]
fn a_vit_student_learns_the_teacher_through_its_distillation_token() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = teacher(dir.path(), &[]);
    let mut sets = student_sets(&ckpt, true);
    sets[0] = "model.type=\"vit\"".into();
    sets.extend([
        "model.patch=4".into(),
        "model.dim=16".into(),
        "model.depth=1".into(),
        "model.heads=2".into(),
        "model.distillation_token=true".into(),
        "strategy.targets=\"hard\"".into(),
        "strategy.lambda=0.5".into(),
    ]);
    let cfg = config(&sets);
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let device = Device::flex().autodiff();
    let student = seeded_init(&cfg.model, data.train.shape, 10, &device, 5);
    let teacher_net = load_network(&ckpt, &Device::flex()).unwrap().network;
    let idx: Vec<usize> = (0..16).collect();
    let batch = Batch::gather(&data.train, &idx, &device);
    let mut objective = build_objective(&cfg, &data, &Device::flex()).unwrap();
    let out = objective.step(&student, &batch, &idx);

    // The loss is DeiT's: labels on the class head, the teacher's top class on the
    // distillation head, each weighted 1/2; the logits are the heads' mean.
    let mentor::models::Network::Vit(vit) = &student else {
        panic!("a ViT")
    };
    let (class, dist) = vit.heads(batch.images.clone());
    let dist = dist.expect("a distillation head");
    let teacher_logits = teacher_net.forward(batch.images.clone().inner()).autodiff();
    let expected = mentor::losses::deit_loss(
        class.clone(),
        dist.clone(),
        teacher_logits.clone(),
        batch.labels.clone(),
        mentor::losses::TeacherTargets::Hard,
        4.0,
        0.5,
    );
    let got = out.loss.into_scalar::<f32>();
    assert!((got - expected.into_scalar::<f32>()).abs() < 1e-5, "{got}");
    let mean: Vec<f32> = ((class + dist) / 2.0).into_data().try_to_vec().unwrap();
    let logits: Vec<f32> = out.logits.into_data().try_to_vec().unwrap();
    assert_eq!(mean, logits);

    // Only the distillation head sees the teacher: with lambda = 1 the class head's
    // weights get a zero gradient.
    let mut only_teacher = cfg.clone();
    if let mentor::run::strategy::StrategyConfig::Distill(d) = &mut only_teacher.strategy {
        d.lambda = 1.0;
    }
    let mut objective = build_objective(&only_teacher, &data, &Device::flex()).unwrap();
    let loss = objective.step(&student, &batch, &idx).loss;
    let grads = loss.backward();
    let magnitude = |w: &burn::tensor::Tensor<2>| -> f32 {
        w.grad(&grads)
            .map_or(0.0, |g| g.abs().sum().into_scalar::<f32>())
    };
    let dist_head = vit.head_dist.as_ref().expect("a distillation head");
    assert_eq!(magnitude(&vit.head.weight.val()), 0.0);
    assert!(magnitude(&dist_head.weight.val()) > 0.0);

    // And it trains end to end (10 classes: chance is 0.1).
    let mut cfg = cfg;
    cfg.epochs = 8;
    let mut objective = build_objective(&cfg, &data, &Device::flex()).unwrap();
    let (summary, _) = train(
        &cfg,
        &data,
        objective.as_mut(),
        &quiet(&dir.path().join("vit")),
    )
    .unwrap();
    assert!(summary.test_accuracy > 0.3, "{}", summary.test_accuracy);
}

#[test]
fn a_vit_needs_patches_that_tile_the_image() {
    let cfg = config(&["model.type=\"vit\"", "model.patch=3"]);
    let data = prepare_data(&cfg.data, cfg.seed).unwrap();
    let err = build_objective(&cfg, &data, &Device::flex())
        .err()
        .expect("8x8 digits do not split into 3x3 patches")
        .to_string();
    assert!(err.contains("multiples of 3"), "{err}");
}
