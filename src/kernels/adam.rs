//! Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019) as one parallel pass
//! per parameter on the CPU. Burn's `Adam` runs a step as about a dozen single-threaded
//! tensor operations per parameter, each a full pass over memory (~13% of a Split-MNIST
//! fine-tuning run's CPU time); this runs the very same float operations in the same
//! order in one pass split across the cores, so its results are bitwise Burn's, and its
//! state is Burn's own [`AdamState`] (`momentum.time`, `momentum.moment_1`,
//! `momentum.moment_2`), so checkpoints move between the two. Other backends (GPU) and
//! other dtypes run Burn's own optimiser.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{
    AdamConfig, AdamState, AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, Optimizer,
};
use burn::tensor::{Device, Tensor};
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::autodiff::{f32_on_flex, tensor_on, values};
use super::gemm::{filled, unfilled};

/// Adam / AdamW hyperparameters, as mentor's `[optim]` gives them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusedAdam {
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator stabiliser.
    pub epsilon: f32,
    /// Adam: L2 penalty added to the gradient. AdamW: decoupled decay rate.
    pub weight_decay: f32,
    /// AdamW's decoupled weight decay (and its form of the bias correction) instead of
    /// Adam's.
    pub decoupled: bool,
}

/// Elements per parallel piece: large enough that a piece outweighs its scheduling.
const PIECE: usize = 1 << 14;

/// The per-step constants, computed once per parameter exactly as Burn computes them.
#[derive(Debug, Clone, Copy)]
struct Constants {
    beta1: f32,
    beta2: f32,
    /// `1 - beta1`, `1 - beta2`.
    factor1: f32,
    factor2: f32,
    /// Adam: `sqrt(1 - beta2^t) / (1 - beta1^t)` and `epsilon * sqrt(1 - beta2^t)`.
    combined: f32,
    epsilon_term: f32,
    /// AdamW: `1 - beta1^t`, `1 - beta2^t`, `epsilon`, and `1 - lr * decay` (as f32).
    correction1: f32,
    correction2: f32,
    epsilon: f32,
    keep: f32,
    /// The L2 penalty (Adam).
    decay: f32,
    lr: f32,
}

impl FusedAdam {
    /// Burn's `Adam` with these hyperparameters.
    pub fn adam_config(&self) -> AdamConfig {
        AdamConfig::new()
            .with_beta_1(self.beta1)
            .with_beta_2(self.beta2)
            .with_epsilon(self.epsilon)
            .with_weight_decay(
                (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay)),
            )
    }

    /// Burn's `AdamW` with these hyperparameters.
    pub fn adamw_config(&self) -> AdamWConfig {
        AdamWConfig::new()
            .with_beta_1(self.beta1)
            .with_beta_2(self.beta2)
            .with_epsilon(self.epsilon)
            .with_weight_decay(self.weight_decay)
    }

    /// The constants of step `time` (1 on the first step) at learning rate `lr`.
    fn constants(&self, lr: LearningRate, time: usize) -> Constants {
        let time = time as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let bias_correction2_sqrt = (1.0 - b2.powi(time)).sqrt();
        let decay_rate = lr * self.weight_decay as f64;
        Constants {
            beta1: b1,
            beta2: b2,
            factor1: 1.0 - b1,
            factor2: 1.0 - b2,
            combined: bias_correction2_sqrt / (1.0 - b1.powi(time)),
            epsilon_term: self.epsilon * bias_correction2_sqrt,
            correction1: 1f32 - b1.powi(time),
            correction2: 1f32 - b2.powi(time),
            epsilon: self.epsilon,
            keep: (1.0 - decay_rate) as f32,
            decay: self.weight_decay,
            lr: lr as f32,
        }
    }

    /// `(new parameter, new first moment, new second moment)` for flat `param`, `grad`
    /// and `moments` (`None` on the first step), each element as Burn computes it.
    fn update(
        &self,
        lr: LearningRate,
        time: usize,
        param: &[f32],
        grad: &[f32],
        moments: Option<(&[f32], &[f32])>,
    ) -> [Vec<f32>; 3] {
        assert_eq!(param.len(), grad.len(), "adam: gradient size");
        if let Some((m1, m2)) = moments {
            assert!(
                m1.len() == param.len() && m2.len() == param.len(),
                "adam: moment size"
            );
        }
        let constants = self.constants(lr, time);
        let simd = pulp::Arch::new();
        let [mut new_param, mut new_m1, mut new_m2] = [(); 3].map(|_| unfilled(param.len()));
        new_param
            .par_chunks_mut(PIECE)
            .zip(new_m1.par_chunks_mut(PIECE))
            .zip(new_m2.par_chunks_mut(PIECE))
            .enumerate()
            .for_each(|(k, ((new_param, new_m1), new_m2))| {
                let range = k * PIECE..((k + 1) * PIECE).min(param.len());
                simd.dispatch(Piece {
                    adam: *self,
                    constants,
                    param: &param[range.clone()],
                    grad: &grad[range.clone()],
                    moments: moments.map(|(m1, m2)| (&m1[range.clone()], &m2[range])),
                    new_param,
                    new_m1,
                    new_m2,
                });
            });
        // SAFETY: the pieces cover the three buffers and write every element of each.
        unsafe { [filled(new_param), filled(new_m1), filled(new_m2)] }
    }

    /// Burn's own step, for tensors the pass does not take (GPU, other dtypes).
    fn burns_step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, Option<AdamState<D>>) {
        if self.decoupled {
            let state = state.map(|s| AdamWState {
                momentum: s.momentum,
            });
            let (tensor, state) = self.adamw_config().build().step(lr, tensor, grad, state);
            (tensor, state.map(|s| AdamState::new(s.momentum)))
        } else {
            self.adam_config().build().step(lr, tensor, grad, state)
        }
    }
}

/// One piece of a parameter's update, as a `pulp` operation so that its loops compile
/// for the best instruction set the CPU has.
struct Piece<'a> {
    adam: FusedAdam,
    constants: Constants,
    param: &'a [f32],
    grad: &'a [f32],
    moments: Option<(&'a [f32], &'a [f32])>,
    new_param: &'a mut [MaybeUninit<f32>],
    new_m1: &'a mut [MaybeUninit<f32>],
    new_m2: &'a mut [MaybeUninit<f32>],
}

impl pulp::WithSimd for Piece<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let first = self.moments.is_none();
        let decay = self.adam.weight_decay > 0.0;
        match (first, self.adam.decoupled, decay) {
            (true, false, false) => self.run::<true, false, false>(),
            (true, false, true) => self.run::<true, false, true>(),
            (true, true, false) => self.run::<true, true, false>(),
            (true, true, true) => self.run::<true, true, true>(),
            (false, false, false) => self.run::<false, false, false>(),
            (false, false, true) => self.run::<false, false, true>(),
            (false, true, false) => self.run::<false, true, false>(),
            (false, true, true) => self.run::<false, true, true>(),
        }
    }
}

impl Piece<'_> {
    /// Burn's `Adam` / `AdamW` element by element, the choices hoisted out of the loop.
    /// Adam: `g = p * decay + g`; `m1 = m1 * b1 + g * (1 - b1)` (`g * (1 - b1)` on the
    /// first step), `m2` likewise with `g * g`; the step `(m1 * combined) / (sqrt(m2) +
    /// epsilon_term)`. AdamW: the same moments of the raw gradient, the step `(m1 / c1) /
    /// (sqrt(m2 / c2) + epsilon)`, the parameter first scaled by `keep`. Both then
    /// subtract `step * lr`.
    #[inline(always)]
    fn run<const FIRST: bool, const DECOUPLED: bool, const DECAY: bool>(self) {
        let c = self.constants;
        let (m1_in, m2_in) = self.moments.unwrap_or((&[], &[]));
        let outs = self.new_param.iter_mut().zip(self.new_m1.iter_mut());
        for (i, ((out, m1_out), m2_out)) in outs.zip(self.new_m2.iter_mut()).enumerate() {
            let p = self.param[i];
            let mut g = self.grad[i];
            if DECAY && !DECOUPLED {
                g += p * c.decay; // Burn: `p * decay + g` (addition commutes)
            }
            let (m1, m2) = if FIRST {
                (g * c.factor1, (g * g) * c.factor2)
            } else {
                (
                    m1_in[i] * c.beta1 + g * c.factor1,
                    m2_in[i] * c.beta2 + (g * g) * c.factor2,
                )
            };
            m1_out.write(m1);
            m2_out.write(m2);
            let (step, kept) = if DECOUPLED {
                let step = (m1 / c.correction1) / ((m2 / c.correction2).sqrt() + c.epsilon);
                (step, if DECAY { p * c.keep } else { p })
            } else {
                ((m1 * c.combined) / (m2.sqrt() + c.epsilon_term), p)
            };
            out.write(kept - step * c.lr);
        }
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let mut inputs = vec![&tensor, &grad];
        if let Some(m) = state.as_ref().map(|s| &s.momentum) {
            inputs.extend([&m.moment_1, &m.moment_2]);
        }
        // The pass reads f32 slices of CPU tensors; anything else takes Burn's step.
        let Some(flat) = f32_on_flex(&inputs) else {
            return self.burns_step(lr, tensor, grad, state);
        };
        let time = state.as_ref().map_or(1, |s| s.momentum.time + 1);
        let moments = (flat.len() == 4).then(|| (values(&flat[2]), values(&flat[3])));
        let [new_param, m1, m2] =
            self.update(lr, time, values(&flat[0]), values(&flat[1]), moments);
        let (shape, device) = (tensor.dims(), tensor.device());
        let to_tensor = |values| tensor_on(values, shape, &device);
        let mut momentum = AdaptiveMomentumState::new(time, to_tensor(m1), to_tensor(m2));
        // AMSGrad's maximum (never written by mentor's optimisers) passes through
        // unused, as in Burn's Adam without AMSGrad.
        momentum.max_moment_2 = state.and_then(|s| s.momentum.max_moment_2);
        (to_tensor(new_param), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::LinearConfig;
    use burn::optim::ModuleOptimizer;
    use burn::tensor::{DType, Distribution};

    use super::*;
    use crate::kernels::optimiser_steps::{train, weights};

    /// The learning rate of the tests' steps.
    const LR: f64 = 3e-3;

    /// How many elements of `got` differ from `want` in any bit.
    fn differing(got: &[f32], want: &[f32]) -> usize {
        assert_eq!(got.len(), want.len());
        got.iter()
            .zip(want)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count()
    }

    #[test]
    fn steps_are_bitwise_burns_adam_and_adamw_and_the_state_carries_over() {
        let device = Device::flex().autodiff();
        // Large enough to be cut into several parallel pieces.
        let start = LinearConfig::new(300, 70).init(&device);
        let x = Tensor::<2>::random([8, 300], Distribution::Default, &device);
        for (decoupled, weight_decay) in [(false, 0.0), (false, 1e-2), (true, 0.0), (true, 5e-2)] {
            let case = format!("decoupled {decoupled}, decay {weight_decay}");
            let fused = FusedAdam {
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
                weight_decay,
                decoupled,
            };
            let burns = || match decoupled {
                false => fused.adam_config().init(),
                true => fused.adamw_config().init(),
            };
            let want = train(start.clone(), &mut burns(), &x, 5, LR);
            let got = train(start.clone(), &mut ModuleOptimizer::from(fused), &x, 5, LR);
            assert_ne!(weights(&want), weights(&start), "{case}: the steps move");
            assert_eq!(differing(&weights(&got), &weights(&want)), 0, "{case}");
            // Two steps with Burn's, its state saved and loaded into ours, three more;
            // and the other way round.
            let mut first = burns();
            let half = train(start.clone(), &mut first, &x, 2, LR);
            let bytes = first.into_bytes().expect("encodes");
            let mut second = ModuleOptimizer::from(fused)
                .from_bytes(bytes)
                .expect("Burn's Adam state loads");
            let resumed = train(half, &mut second, &x, 3, LR);
            assert_eq!(
                differing(&weights(&resumed), &weights(&want)),
                0,
                "{case}: Burn's -> fused"
            );
            let mut first = ModuleOptimizer::from(fused);
            let half = train(start.clone(), &mut first, &x, 2, LR);
            let bytes = first.into_bytes().expect("encodes");
            let mut second = burns().from_bytes(bytes).expect("the fused state loads");
            let resumed = train(half, &mut second, &x, 3, LR);
            assert_eq!(
                differing(&weights(&resumed), &weights(&want)),
                0,
                "{case}: fused -> Burn's"
            );
        }
    }

    #[test]
    fn tensors_the_pass_does_not_take_get_burns_step() {
        // f64 parameters cannot run the f32 pass: they take Burn's own step.
        let device = Device::flex();
        let fused = FusedAdam {
            beta1: 0.9,
            beta2: 0.99,
            epsilon: 1e-8,
            weight_decay: 1e-2,
            decoupled: true,
        };
        let random = || Tensor::<1>::random([100], Distribution::Default, &device).cast(DType::F64);
        let (p, g) = (random(), random());
        let vec = |t: &Tensor<1>| {
            t.to_data()
                .convert::<f64>()
                .try_to_vec::<f64>()
                .expect("f64")
        };
        let (fused_p, fused_state) = fused.step(0.01, p.clone(), g.clone(), None);
        let (burn_p, _) = fused.adamw_config().build().step(0.01, p.clone(), g, None);
        assert_eq!(fused_p.dtype(), DType::F64);
        assert_eq!(vec(&fused_p), vec(&burn_p));
        assert_ne!(vec(&fused_p), vec(&p));
        assert_eq!(fused_state.expect("state").momentum.time, 1);
    }
}
