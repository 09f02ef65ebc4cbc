//! The knowledge-distillation loss of Hinton, Vinyals & Dean (2015), "Distilling the
//! Knowledge in a Neural Network":
//!
//! `L = T^2 * lambda * CE(q(t/T), p(s/T)) + (1 - lambda) * CE(y, p(s))`
//!
//! with `q_i = exp(z_i/T) / sum_j exp(z_j/T)` the teacher's softened distribution, `p`
//! the student's, `CE(a, b) = -sum_i a_i log b_i` averaged over the batch. `lambda`
//! weights the *soft* term; `T^2` keeps that term's gradient scale constant as `T` grows
//! (its gradient shrinks as `1/T^2` otherwise).
//!
//! Mapping to other libraries: torchdistill's `KDLoss(alpha=a)` weights the *hard* term
//! by `a` and the soft (KL) term by `1 - a`, so `lambda = 1 - alpha`; timm's distillation
//! trainers and DeiT weight the soft term like `lambda`. Those libraries use KL divergence
//! instead of cross-entropy for the soft term: `KL(q || p) = CE(q, p) - H(q)`, and the
//! teacher entropy `H(q)` is constant in the student's weights, so gradients (and trained
//! students) are identical; only the reported loss value differs by `T^2 lambda H(q)`.
//!
//! *Hard* teacher targets (DeiT, Touvron et al. 2021) replace the soft term by
//! `CE(argmax t, p(s))`, the teacher's top class as a label (no temperature, no `T^2`).
//! DeiT's distillation-token loss ([`deit_loss`]) splits the two terms between two heads
//! of the student: the class head learns the labels, the distillation head the teacher.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// What the student learns from the teacher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TeacherTargets {
    /// The teacher's temperature-softened distribution (Hinton et al. 2015).
    #[default]
    Soft,
    /// The teacher's top class as a label (DeiT's hard distillation).
    Hard,
}

/// Cross-entropy of soft `targets` (rows summing to 1) against `log_probs`, batch mean.
pub fn soft_cross_entropy(log_probs: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let [b, _] = log_probs.dims();
    (targets * log_probs).sum().neg().div_scalar(b as f32)
}

/// The KD loss above for student logits `[B, C]`, teacher logits `[B, C]` (treated as
/// constants) and labels `[B]`.
pub fn distillation_loss(
    student: Tensor<2>,
    teacher: Tensor<2>,
    labels: Tensor<1, Int>,
    temperature: f64,
    lambda: f64,
) -> Tensor<1> {
    distillation_loss_with(
        student,
        teacher,
        labels,
        TeacherTargets::Soft,
        temperature,
        lambda,
    )
}

/// The teacher term of `student` logits against `teacher` logits (constants): the soft
/// term `T^2 CE(q(t/T), p(s/T))` or the hard term `CE(argmax t, p(s))`.
pub fn teacher_term(
    student: Tensor<2>,
    teacher: Tensor<2>,
    targets: TeacherTargets,
    temperature: f64,
) -> Tensor<1> {
    match targets {
        TeacherTargets::Soft => soft_distillation_loss(student, teacher, temperature),
        TeacherTargets::Hard => {
            let top = teacher.detach().argmax(1).flatten::<1>(0, 1);
            CrossEntropyLossConfig::new()
                .init(&student.device())
                .forward(student, top)
        }
    }
}

/// The KD loss with either kind of teacher target:
/// `lambda * teacher_term(s, t) + (1 - lambda) * CE(y, p(s))`; with soft targets it is
/// [`distillation_loss`].
pub fn distillation_loss_with(
    student: Tensor<2>,
    teacher: Tensor<2>,
    labels: Tensor<1, Int>,
    targets: TeacherTargets,
    temperature: f64,
    lambda: f64,
) -> Tensor<1> {
    deit_loss(
        student.clone(),
        student,
        teacher,
        labels,
        targets,
        temperature,
        lambda,
    )
}

/// DeiT's loss (Touvron et al. 2021, eq. 2-3) for a student with a class head and a
/// distillation head: `(1 - lambda) CE(y, p(class)) + lambda * teacher_term(dist, t)`.
/// DeiT's hard distillation uses `lambda = 1/2`; its soft one `lambda = 0.1`, `T = 3`.
pub fn deit_loss(
    class_logits: Tensor<2>,
    distillation_logits: Tensor<2>,
    teacher: Tensor<2>,
    labels: Tensor<1, Int>,
    targets: TeacherTargets,
    temperature: f64,
    lambda: f64,
) -> Tensor<1> {
    let hard = CrossEntropyLossConfig::new()
        .init(&class_logits.device())
        .forward(class_logits, labels);
    if lambda == 0.0 {
        return hard;
    }
    teacher_term(distillation_logits, teacher, targets, temperature)
        .mul_scalar(lambda as f32)
        .add(hard.mul_scalar((1.0 - lambda) as f32))
}

/// The soft term alone, `T^2 * CE(q(t/T), p(s/T))`, batch mean; the teacher logits are
/// constants. Learning without Forgetting uses it on the old heads.
pub fn soft_distillation_loss(
    student: Tensor<2>,
    teacher: Tensor<2>,
    temperature: f64,
) -> Tensor<1> {
    let t = temperature as f32;
    let q = softmax(teacher.detach().div_scalar(t), 1);
    let log_p = log_softmax(student.div_scalar(t), 1);
    soft_cross_entropy(log_p, q).mul_scalar(t * t)
}

/// The teacher's softened distribution `q(z/T)`, for plots and inspection.
pub fn soft_targets(logits: Tensor<2>, temperature: f64) -> Tensor<2> {
    softmax(logits.div_scalar(temperature as f32), 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn logits(v: [[f32; 3]; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::from(v), &Device::flex())
    }

    fn labels(v: [i64; 2]) -> Tensor<1, Int> {
        Tensor::from_data(TensorData::from(v), &Device::flex())
    }

    fn value(t: Tensor<1>) -> f64 {
        t.into_scalar::<f32>() as f64
    }

    // Golden values, computed independently with Python's math module:
    //
    //   import math
    //   def lsm(z, T):
    //       m = max(x / T for x in z); s = sum(math.exp(x / T - m) for x in z)
    //       return [x / T - m - math.log(s) for x in z]
    //   S = [[1.0, 2.0, 0.5], [0.2, -1.0, 3.0]]; R = [[3.0, 1.0, 0.0], [0.0, 0.5, 4.0]]
    //   y = [1, 2]
    //   def kd(T, lam):
    //       soft = -sum(sum(math.exp(q) * p for q, p in zip(lsm(r, T), lsm(s, T)))
    //                   for r, s in zip(R, S)) / 2
    //       hard = -sum(lsm(s, 1)[c] for s, c in zip(S, y)) / 2
    //       return T * T * lam * soft + (1 - lam) * hard
    //   kd(1, 0) = 0.2702599809   kd(1, 1) = 0.8057207802
    //   kd(4, 0.5) = 8.5708449500  kd(20, 0.9) = 394.9409457884
    const S: [[f32; 3]; 2] = [[1.0, 2.0, 0.5], [0.2, -1.0, 3.0]];
    const R: [[f32; 3]; 2] = [[3.0, 1.0, 0.0], [0.0, 0.5, 4.0]];

    #[test]
    fn golden_values() {
        for (t, lam, expected) in [
            (1.0, 0.0, 0.270_259_980_9),
            (1.0, 1.0, 0.805_720_780_2),
            (4.0, 0.5, 8.570_844_950_0),
            (20.0, 0.9, 394.940_945_788_4),
        ] {
            let got = value(distillation_loss(
                logits(S),
                logits(R),
                labels([1, 2]),
                t,
                lam,
            ));
            assert!(
                (got - expected).abs() < 1e-4 * expected.max(1.0),
                "T={t} lambda={lam}: {got} vs {expected}"
            );
        }
    }

    // Hard targets and DeiT's two heads, with the same helpers and
    //   D = [[0.5, -0.5, 1.5], [2.0, 0.0, -1.0]]  (distillation head), argmax R = [0, 2]
    //   ce = lambda Z, c: -sum(lsm(s, 1)[k] for s, k in zip(Z, c)) / 2
    //   soft = lambda Z, T: -sum(sum(math.exp(q) * p for q, p in
    //                                 zip(lsm(r, T), lsm(s, T))) for r, s in zip(R, Z)) / 2
    //   plain hard, lambda 0.5: 0.5 ce(S, y) + 0.5 ce(S, [0, 2])   = 0.5202599809
    //   DeiT hard, lambda 0.5:  0.5 ce(S, y) + 0.5 ce(D, [0, 2])   = 1.2794929864
    //   DeiT soft, T 3, l 0.1:  0.9 ce(S, y) + 0.1 * 9 * soft(D, 3) = 1.3951399811
    const D: [[f32; 3]; 2] = [[0.5, -0.5, 1.5], [2.0, 0.0, -1.0]];

    #[test]
    fn hard_targets_and_deit_golden_values() {
        let plain = distillation_loss_with(
            logits(S),
            logits(R),
            labels([1, 2]),
            TeacherTargets::Hard,
            1.0,
            0.5,
        );
        assert!((value(plain) - 0.520_259_980_9).abs() < 1e-5);
        let deit = |targets, t, lam| {
            value(deit_loss(
                logits(S),
                logits(D),
                logits(R),
                labels([1, 2]),
                targets,
                t,
                lam,
            ))
        };
        let hard = deit(TeacherTargets::Hard, 1.0, 0.5);
        assert!((hard - 1.279_492_986_4).abs() < 1e-5, "{hard}");
        let soft = deit(TeacherTargets::Soft, 3.0, 0.1);
        assert!((soft - 1.395_139_981_1).abs() < 1e-5, "{soft}");
        // Soft targets through the generic entry point are the classic KD loss.
        let classic = distillation_loss(logits(S), logits(R), labels([1, 2]), 4.0, 0.5);
        let generic = distillation_loss_with(
            logits(S),
            logits(R),
            labels([1, 2]),
            TeacherTargets::Soft,
            4.0,
            0.5,
        );
        assert!((value(classic) - value(generic)).abs() < 1e-6);
    }

    #[test]
    fn lambda_zero_is_plain_cross_entropy() {
        let ce = CrossEntropyLossConfig::new()
            .init(&Device::flex())
            .forward(logits(S), labels([1, 2]));
        let kd = distillation_loss(logits(S), logits(R), labels([1, 2]), 7.0, 0.0);
        assert!((value(ce) - value(kd)).abs() < 1e-6);
    }

    #[test]
    fn soft_targets_flatten_with_temperature() {
        let sharp: Vec<f32> = soft_targets(logits(R), 1.0)
            .into_data()
            .try_to_vec()
            .unwrap();
        let soft: Vec<f32> = soft_targets(logits(R), 40.0)
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!(sharp[0] > 0.8 && soft[0] < 0.36 && soft[0] > 0.33);
        let row: f32 = soft[..3].iter().sum();
        assert!((row - 1.0).abs() < 1e-6);
    }
}
