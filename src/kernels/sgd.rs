//! Stochastic gradient descent with momentum (Sutskever et al. 2013; PyTorch's form,
//! dampening 0) as one parallel pass per parameter on the CPU. Burn's `Sgd` runs the
//! same arithmetic as five single-threaded tensor operations (weight decay, two for the
//! velocity, two for the update), about a fifth of an MLP step here; this runs the very
//! same float operations in the same order, so its results are bitwise Burn's, and it
//! records its state under Burn's names (`momentum.velocity`), so checkpoints move
//! between the two. Other backends (GPU) get the same arithmetic as tensor operations.

use burn::optim::{LearningRate, Optimizer, RecordState, StateSink, StateSource};
use burn::tensor::{Device, Tensor};
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::autodiff::{f32_on_flex, tensor_on, values};
use super::gemm::{filled, unfilled};

/// SGD hyperparameters, as mentor's `[optim]` gives them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusedSgd {
    /// Momentum factor (0: plain SGD, no velocity kept).
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient (0: none).
    pub weight_decay: f32,
}

/// A parameter's velocity (`None` without momentum).
#[derive(Debug, Clone)]
pub struct SgdVelocity<const D: usize> {
    velocity: Option<Tensor<D>>,
}

impl<const D: usize> RecordState for SgdVelocity<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        if let Some(v) = &self.velocity {
            out.push_tensor(
                &burn::optim::join_path(prefix, "momentum"),
                "velocity",
                v.to_data(),
            );
        }
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let momentum = burn::optim::join_path(prefix, "momentum");
        let velocity = src
            .take_tensor(&momentum, "velocity")
            .map(|data| Tensor::from_data(data, device));
        Some(Self { velocity })
    }
}

/// Elements per parallel piece: large enough that a piece outweighs its scheduling.
const PIECE: usize = 1 << 14;

/// One piece of a parameter's update, as a `pulp` operation so that its loops compile
/// for the best instruction set the CPU has.
struct Piece<'a> {
    sgd: FusedSgd,
    lr: f32,
    param: &'a [f32],
    grad: &'a [f32],
    velocity: Option<&'a [f32]>,
    new_param: &'a mut [MaybeUninit<f32>],
    new_velocity: Option<&'a mut [MaybeUninit<f32>]>,
}

impl pulp::WithSimd for Piece<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        match (self.sgd.weight_decay > 0.0, self.sgd.nesterov) {
            (false, false) => self.run::<false, false>(),
            (false, true) => self.run::<false, true>(),
            (true, false) => self.run::<true, false>(),
            (true, true) => self.run::<true, true>(),
        }
    }
}

impl Piece<'_> {
    /// Burn's `Sgd` element by element: `g = p * decay + g`, then `v = g * 1 + v * m`
    /// (`v = g` on the first step), the update `v` or `v * m + g` (Nesterov), and
    /// `p - update * lr`. The choices are hoisted out of the loops.
    #[inline(always)]
    fn run<const DECAY: bool, const NESTEROV: bool>(self) {
        let (lr, m, decay) = (self.lr, self.sgd.momentum as f32, self.sgd.weight_decay);
        let decayed = |p: f32, g: f32| if DECAY { p * decay + g } else { g };
        let update = |v: f32, g: f32| if NESTEROV { v * m + g } else { v };
        let inputs = self.param.iter().zip(self.grad);
        match (self.new_velocity, self.velocity) {
            (None, _) => {
                for (out, (&p, &g)) in self.new_param.iter_mut().zip(inputs) {
                    out.write(p - decayed(p, g) * lr);
                }
            }
            (Some(v_out), None) => {
                let outs = self.new_param.iter_mut().zip(v_out.iter_mut());
                for ((out, v_new), (&p, &g)) in outs.zip(inputs) {
                    let g = decayed(p, g);
                    v_new.write(g);
                    out.write(p - update(g, g) * lr);
                }
            }
            (Some(v_out), Some(v_in)) => {
                let outs = self.new_param.iter_mut().zip(v_out.iter_mut());
                for (((out, v_new), (&p, &g)), &v) in outs.zip(inputs).zip(v_in) {
                    let g = decayed(p, g);
                    let v = g * 1.0 + v * m;
                    v_new.write(v);
                    out.write(p - update(v, g) * lr);
                }
            }
        }
    }
}

impl FusedSgd {
    /// `(new parameter, new velocity)` for flat `param`, `grad` and `velocity` (`None` on
    /// the first step), each element as Burn's `Sgd` computes it.
    fn update(
        &self,
        lr: f32,
        param: &[f32],
        grad: &[f32],
        velocity: Option<&[f32]>,
    ) -> (Vec<f32>, Option<Vec<f32>>) {
        assert_eq!(param.len(), grad.len(), "sgd: gradient size");
        if let Some(v) = velocity {
            assert_eq!(param.len(), v.len(), "sgd: velocity size");
        }
        let simd = pulp::Arch::new();
        let piece = |k: usize, new_param, new_velocity| {
            let range = k * PIECE..((k + 1) * PIECE).min(param.len());
            simd.dispatch(Piece {
                sgd: *self,
                lr,
                param: &param[range.clone()],
                grad: &grad[range.clone()],
                velocity: velocity.map(|v| &v[range]),
                new_param,
                new_velocity,
            });
        };
        let mut new_param = unfilled(param.len());
        if self.momentum > 0.0 {
            let mut new_velocity = unfilled(param.len());
            new_param
                .par_chunks_mut(PIECE)
                .zip(new_velocity.par_chunks_mut(PIECE))
                .enumerate()
                .for_each(|(k, (p, v))| piece(k, p, Some(v)));
            // SAFETY: the pieces cover both buffers and write every element of each.
            unsafe { (filled(new_param), Some(filled(new_velocity))) }
        } else {
            new_param
                .par_chunks_mut(PIECE)
                .enumerate()
                .for_each(|(k, p)| piece(k, p, None));
            // SAFETY: the pieces cover the buffer and write every element.
            (unsafe { filled(new_param) }, None)
        }
    }

    /// The same step as tensor operations, for tensors that are not on the CPU.
    fn step_with_tensor_ops<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        mut grad: Tensor<D>,
        velocity: Option<Tensor<D>>,
    ) -> (Tensor<D>, SgdVelocity<D>) {
        if self.weight_decay > 0.0 {
            grad = tensor.clone().mul_scalar(self.weight_decay).add(grad);
        }
        let mut state = SgdVelocity { velocity: None };
        if self.momentum > 0.0 {
            let v = match velocity {
                Some(v) => grad
                    .clone()
                    .mul_scalar(1.0)
                    .add(v.mul_scalar(self.momentum)),
                None => grad.clone(),
            };
            grad = match self.nesterov {
                true => v.clone().mul_scalar(self.momentum).add(grad),
                false => v.clone(),
            };
            state.velocity = Some(v);
        }
        (tensor - grad.mul_scalar(lr), state)
    }
}

impl Optimizer for FusedSgd {
    type State<const D: usize> = SgdVelocity<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let velocity = state
            .and_then(|s| s.velocity)
            .filter(|_| self.momentum > 0.0);
        // The pass reads f32 slices of CPU tensors; anything else takes the tensor ops.
        let inputs: Vec<_> = [Some(&tensor), Some(&grad), velocity.as_ref()]
            .into_iter()
            .flatten()
            .collect();
        let Some(flat) = f32_on_flex(&inputs) else {
            let (tensor, state) = self.step_with_tensor_ops(lr, tensor, grad, velocity);
            return (tensor, Some(state));
        };
        let (new_param, new_velocity) = self.update(
            lr as f32,
            values(&flat[0]),
            values(&flat[1]),
            flat.get(2).map(values),
        );
        let (shape, device) = (tensor.dims(), tensor.device());
        let to_tensor = |values| tensor_on(values, shape, &device);
        let state = SgdVelocity {
            velocity: new_velocity.map(to_tensor),
        };
        (to_tensor(new_param), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        SgdVelocity {
            velocity: state.velocity.map(|v| v.to_device(device)),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::LinearConfig;
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::momentum::MomentumConfig;
    use burn::optim::{ModuleOptimizer, SgdConfig};
    use burn::tensor::Distribution;

    use super::*;
    use crate::kernels::optimiser_steps::{train, weights};

    fn burns(momentum: f64, nesterov: bool, weight_decay: f32) -> ModuleOptimizer {
        SgdConfig::new()
            .with_momentum((momentum > 0.0).then_some(MomentumConfig {
                momentum,
                dampening: 0.0,
                nesterov,
            }))
            .with_weight_decay((weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay)))
            .init()
    }

    /// The learning rate of the tests' steps.
    const LR: f64 = 0.05;

    #[test]
    fn steps_are_bitwise_burns_sgd_and_its_state_carries_over() {
        let device = Device::flex().autodiff();
        // Large enough to be cut into several parallel pieces.
        let start = LinearConfig::new(300, 70).init(&device);
        let x = Tensor::<2>::random([8, 300], Distribution::Default, &device);
        for (momentum, nesterov, decay) in
            [(0.9, false, 0.0), (0.9, true, 1e-3), (0.0, false, 5e-4)]
        {
            let case = format!("momentum {momentum}, nesterov {nesterov}, decay {decay}");
            let fused = || {
                ModuleOptimizer::from(FusedSgd {
                    momentum,
                    nesterov,
                    weight_decay: decay,
                })
            };
            let want = train(
                start.clone(),
                &mut burns(momentum, nesterov, decay),
                &x,
                4,
                LR,
            );
            let got = train(start.clone(), &mut fused(), &x, 4, LR);
            assert_eq!(weights(&got), weights(&want), "{case}");
            // Two steps with Burn's, its state saved and loaded into ours, two more.
            let mut first = burns(momentum, nesterov, decay);
            let half = train(start.clone(), &mut first, &x, 2, LR);
            let bytes = first.into_bytes().expect("encodes");
            let mut second = fused().from_bytes(bytes).expect("Burn's SGD state loads");
            let resumed = train(half, &mut second, &x, 2, LR);
            assert_eq!(weights(&resumed), weights(&want), "{case}: resumed");
        }
    }

    #[test]
    fn the_tensor_operation_path_computes_the_same_step() {
        let device = Device::flex();
        let sgd = FusedSgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-2,
        };
        let random = || Tensor::<1>::random([40_000], Distribution::Default, &device);
        let (p, g, v) = (random(), random(), random());
        let vec = |t: &Tensor<1>| t.to_data().try_into_vec::<f32>().expect("f32");
        let (fused_p, fused_v) = sgd.update(0.1, &vec(&p), &vec(&g), Some(&vec(&v)));
        let (ops_p, ops_state) = sgd.step_with_tensor_ops(0.1, p, g, Some(v));
        assert_eq!(fused_p, vec(&ops_p));
        assert_eq!(fused_v, ops_state.velocity.as_ref().map(vec));
    }
}
