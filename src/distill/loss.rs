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

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Int, Tensor};

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
    let hard = CrossEntropyLossConfig::new()
        .init(&student.device())
        .forward(student.clone(), labels);
    if lambda == 0.0 {
        return hard;
    }
    soft_distillation_loss(student, teacher, temperature)
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
