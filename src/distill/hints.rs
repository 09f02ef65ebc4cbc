//! FitNets hints (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets"): an
//! intermediate student representation `s` (here the student's backbone features, the
//! input of its head) regresses the teacher's corresponding representation `t` (the
//! teacher's backbone features) through a learned linear adapter `r = s W + b`, adding
//! `weight * mean_batch ||r - t||^2 / 2` to the distillation loss.
//!
//! The adapter is trained alongside the student: its gradient is exact and in closed
//! form, `dL/dW = weight/B * s^T (r - t)`, `dL/db = weight/B * sum_batch (r - t)`, and it
//! takes an Adam step with each student step (the simultaneous update of joint gradient
//! descent), while the student's gradient flows through `r` with the adapter held fixed.

use burn::tensor::{Tensor, TensorData};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::data::split::rng;

/// The adapter and its Adam state, as saved in checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HintState {
    /// Student and teacher feature widths.
    pub dims: [usize; 2],
    /// `W` `[F_s, F_t]`, row-major.
    pub weight: Vec<f32>,
    /// `b` `[F_t]`.
    pub bias: Vec<f32>,
    /// Adam's moments of `W` and `b`.
    pub moments: [Vec<f32>; 4],
    /// Adam steps taken.
    pub steps: u64,
}

impl HintState {
    /// A fresh adapter with `W ~ U(-1/sqrt(F_s), 1/sqrt(F_s))` drawn with `seed`, `b = 0`.
    pub fn new(student: usize, teacher: usize, seed: u64) -> Self {
        let mut r = rng(seed ^ 0xF17_4E75);
        let bound = 1.0 / (student as f32).sqrt();
        let weight = (0..student * teacher)
            .map(|_| r.random_range(-bound..bound))
            .collect();
        Self {
            dims: [student, teacher],
            weight,
            bias: vec![0.0; teacher],
            moments: [
                vec![0.0; student * teacher],
                vec![0.0; student * teacher],
                vec![0.0; teacher],
                vec![0.0; teacher],
            ],
            steps: 0,
        }
    }
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

/// The hint term and its adapter.
pub struct HintRegressor {
    /// The adapter's state.
    pub state: HintState,
    weight: f64,
    lr: f64,
}

impl HintRegressor {
    /// A hint of strength `weight` whose adapter learns at Adam rate `lr`.
    pub fn new(state: HintState, weight: f64, lr: f64) -> Self {
        Self { state, weight, lr }
    }

    /// The hint loss for student features `s` `[B, F_s]` (in the autodiff graph) and
    /// teacher features `t` `[B, F_t]` (constants); updates the adapter by one Adam step.
    pub fn loss_and_update(&mut self, s: Tensor<2>, t: Tensor<2>) -> Tensor<1> {
        let device = s.device();
        let [fs, ft] = self.state.dims;
        let [b, _] = s.dims();
        let w = Tensor::<2>::from_data(
            TensorData::new(self.state.weight.clone(), [fs, ft]),
            &device,
        );
        let bias = Tensor::<1>::from_data(TensorData::new(self.state.bias.clone(), [ft]), &device);
        let t = t.detach();
        let r = s.clone().matmul(w) + bias.unsqueeze_dim(0);
        let diff = r - t;
        let loss = (diff.clone() * diff.clone())
            .sum()
            .mul_scalar((self.weight / (2.0 * b as f64)) as f32);
        // The adapter's exact gradient, with the student's features as constants.
        let scale = (self.weight / b as f64) as f32;
        let d = diff.detach();
        let grad_w = to_vec(s.detach().transpose().matmul(d.clone()).mul_scalar(scale));
        let grad_b = to_vec(d.sum_dim(0).flatten::<1>(0, 1).mul_scalar(scale));
        self.adam(grad_w, grad_b);
        loss
    }

    fn adam(&mut self, grad_w: Vec<f32>, grad_b: Vec<f32>) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let st = &mut self.state;
        st.steps += 1;
        let c1 = 1.0 - b1.powi(st.steps as i32);
        let c2 = 1.0 - b2.powi(st.steps as i32);
        let lr = self.lr as f32;
        let [mw, vw, mb, vb] = &mut st.moments;
        for (values, grads, m, v) in [
            (&mut st.weight, &grad_w, mw, vw),
            (&mut st.bias, &grad_b, mb, vb),
        ] {
            for i in 0..values.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * grads[i];
                v[i] = b2 * v[i] + (1.0 - b2) * grads[i] * grads[i];
                values[i] -= lr * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// The closed-form adapter gradient against a finite difference of the loss.
    #[test]
    fn adapter_gradient_matches_finite_differences() {
        let device = Device::flex();
        let s = Tensor::<2>::from_data(
            TensorData::new(vec![0.5f32, -1.0, 2.0, 0.3], [2, 2]),
            &device,
        );
        let t = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, -0.5, 0.25, 0.0, 1.0], [2, 3]),
            &device,
        );
        let state = HintState::new(2, 3, 4);
        let loss_at = |w: &[f32]| -> f64 {
            let mut st = state.clone();
            st.weight = w.to_vec();
            let mut h = HintRegressor::new(st, 0.7, 0.0);
            h.loss_and_update(s.clone(), t.clone()).into_scalar::<f32>() as f64
        };
        // Gradient as the regressor computes it: run one step with lr 0 and read the
        // first moment, m = (1 - b1) g.
        let mut h = HintRegressor::new(state.clone(), 0.7, 0.0);
        h.loss_and_update(s.clone(), t.clone());
        let eps = 1e-3;
        for i in 0..6 {
            let analytic = h.state.moments[0][i] as f64 / 0.1;
            let mut plus = state.weight.clone();
            plus[i] += eps;
            let mut minus = state.weight.clone();
            minus[i] -= eps;
            let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * eps as f64);
            assert!(
                (analytic - numeric).abs() < 2e-3,
                "w[{i}]: {analytic} vs {numeric}"
            );
        }
    }

    #[test]
    fn the_adapter_learns_a_linear_map() {
        let device = Device::flex();
        // t = 2 s: the adapter should approach W = 2 I, driving the loss towards 0.
        let s = Tensor::<2>::from_data(
            TensorData::new(
                (0..16).map(|v| (v as f32 * 0.7).sin()).collect::<Vec<_>>(),
                [8, 2],
            ),
            &device,
        );
        let t = s.clone().mul_scalar(2.0);
        let mut h = HintRegressor::new(HintState::new(2, 2, 1), 1.0, 0.05);
        let first = h.loss_and_update(s.clone(), t.clone()).into_scalar::<f32>();
        let mut last = first;
        for _ in 0..400 {
            last = h.loss_and_update(s.clone(), t.clone()).into_scalar::<f32>();
        }
        assert!(last < first * 0.01, "{first} -> {last}");
    }
}
