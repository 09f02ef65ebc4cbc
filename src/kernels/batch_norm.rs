//! Batch normalisation (Ioffe & Szegedy 2015, "Batch Normalization: Accelerating Deep
//! Network Training by Reducing Internal Covariate Shift") of `[N, C, H, W]` f32 maps, with
//! the ReLU or ReLU6 that follows it in the same pass. Burn 0.22.1 builds the training
//! batch norm from tensor operations (a channel-first transpose copied for each statistic,
//! then a subtraction, division, multiplication and addition, each a pass over the map,
//! and as many again in the backward): about a quarter of the EfficientNet-Lite0 training
//! step. Here the statistics take one pass over memory (each plane's sum and centred
//! squares while it is in cache, planes combined with Chan et al.'s formula in f64), the
//! output one pass, and the backward two (its channel sums, then the input gradient as
//! `dz * p + x * q + r` per channel). The arithmetic is Burn's (biased batch variance,
//! `1 / sqrt(var + eps)`), so only the order of the sums differs.

use std::marker::PhantomData;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::gemm::{filled, unfilled};

/// The activation applied to a batch norm's output in the same pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None: the batch norm alone.
    Identity,
    /// `max(z, 0)`.
    Relu,
    /// `min(max(z, 0), 6)` (MobileNetV2, EfficientNet-Lite).
    Relu6,
}

/// An activation as a type, so that each inner loop is compiled for one of them.
trait Act: Copy + Send + Sync {
    fn apply(z: f32) -> f32;
    /// Whether the gradient passes at the pre-activation value `z`: PyTorch's strict
    /// bounds (`threshold_backward` for ReLU, `hardtanh_backward` for ReLU6).
    fn passes(z: f32) -> bool;
}

#[derive(Clone, Copy)]
struct NoAct;
#[derive(Clone, Copy)]
struct ReluAct;
#[derive(Clone, Copy)]
struct Relu6Act;

impl Act for NoAct {
    #[inline(always)]
    fn apply(z: f32) -> f32 {
        z
    }
    #[inline(always)]
    fn passes(_: f32) -> bool {
        true
    }
}

impl Act for ReluAct {
    #[inline(always)]
    fn apply(z: f32) -> f32 {
        z.max(0.0)
    }
    #[inline(always)]
    fn passes(z: f32) -> bool {
        z > 0.0
    }
}

impl Act for Relu6Act {
    #[inline(always)]
    fn apply(z: f32) -> f32 {
        z.clamp(0.0, 6.0)
    }
    #[inline(always)]
    fn passes(z: f32) -> bool {
        z > 0.0 && z < 6.0
    }
}

/// Calls `$body` with `$a` bound to the activation's type.
macro_rules! with_act {
    ($activation:expr, $a:ident => $body:expr) => {
        match $activation {
            Activation::Identity => {
                type $a = NoAct;
                $body
            }
            Activation::Relu => {
                type $a = ReluAct;
                $body
            }
            Activation::Relu6 => {
                type $a = Relu6Act;
                $body
            }
        }
    };
}

/// The layout of the maps: `batch` images of `channels` planes of `plane` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Images in the batch (N).
    pub batch: usize,
    /// Channels (C).
    pub channels: usize,
    /// Values in one channel of one image (H x W).
    pub plane: usize,
}

impl Layout {
    fn len(&self) -> usize {
        self.batch * self.channels * self.plane
    }

    /// The plane of channel `c` in image `n`.
    fn plane_of<'a>(&self, x: &'a [f32], n: usize, c: usize) -> &'a [f32] {
        let start = (n * self.channels + c) * self.plane;
        &x[start..start + self.plane]
    }
}

/// Values a parallel task takes at least: large enough that its scheduling costs nothing.
const TASK: usize = 1 << 14;

/// Lanes of the partial sums: wide enough for AVX-512, written so that the compiler
/// keeps them in vector registers without reordering a float sum.
const LANES: usize = 16;

/// The sum of `values` in `LANES` partial sums.
#[inline(always)]
fn lane_sum(values: &[f32], term: impl Fn(usize, f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for (k, chunk) in chunks.enumerate() {
        for (lane, (a, &v)) in acc.iter_mut().zip(chunk).enumerate() {
            *a += term(k * LANES + lane, v);
        }
    }
    let start = values.len() - tail.len();
    let rest: f32 = tail
        .iter()
        .enumerate()
        .map(|(i, &v)| term(start + i, v))
        .sum();
    acc.iter().sum::<f32>() + rest
}

/// Each channel's mean and biased variance over the batch and the plane (what Burn's
/// `batch_norm_train` returns).
pub fn batch_statistics(x: &[f32], layout: Layout) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), layout.len(), "batch norm: input size");
    let simd = pulp::Arch::new();
    let per_channel: Vec<(f32, f32)> = (0..layout.channels)
        .into_par_iter()
        .map(|channel| simd.dispatch(ChannelStatistics { x, layout, channel }))
        .collect();
    per_channel.into_iter().unzip()
}

/// One channel's mean and biased variance, as a `pulp` operation: `with_simd` and the
/// loops it runs are inlined into functions compiled for each instruction set (a closure
/// handed to `dispatch` is one function, called from every instantiation and compiled
/// for none: the crate itself is built for baseline x86-64).
struct ChannelStatistics<'a> {
    x: &'a [f32],
    layout: Layout,
    channel: usize,
}

impl pulp::WithSimd for ChannelStatistics<'_> {
    type Output = (f32, f32);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> (f32, f32) {
        let Self { x, layout, channel } = self;
        let pixels = layout.plane as f64;
        // Chan, Golub & LeVeque's pairwise update: (count, mean, sum of squared
        // deviations) of the planes so far, merged with the next plane's.
        let (mut count, mut mean, mut m2) = (0f64, 0f64, 0f64);
        for n in 0..layout.batch {
            let plane = layout.plane_of(x, n, channel);
            let plane_mean = lane_sum(plane, |_, v| v) as f64 / pixels;
            let centre = plane_mean as f32;
            let plane_m2 = lane_sum(plane, |_, v| (v - centre) * (v - centre)) as f64;
            let total = count + pixels;
            let delta = plane_mean - mean;
            mean += delta * pixels / total;
            m2 += plane_m2 + delta * delta * count * pixels / total;
            count = total;
        }
        (mean as f32, (m2 / count) as f32)
    }
}

/// `1 / sqrt(variance + epsilon)` per channel, as Burn computes it in f32.
pub fn inverse_std(variance: &[f32], epsilon: f64) -> Vec<f32> {
    variance
        .iter()
        .map(|&v| 1.0 / (v + epsilon as f32).sqrt())
        .collect()
}

/// `activation((x - mean) * inverse_std * gamma + beta)` per channel: the batch norm's
/// output with the statistics in `kept`.
pub fn normalise(
    x: &[f32],
    layout: Layout,
    gamma: &[f32],
    beta: &[f32],
    kept: &Normalised,
    activation: Activation,
) -> Vec<f32> {
    assert_eq!(x.len(), layout.len(), "batch norm: input size");
    let mut out = unfilled(x.len());
    let affine = Affine { kept, gamma, beta };
    with_act!(activation, A => for_planes(&mut out, [x, x], layout, &Normalise::<A>(affine, PhantomData)));
    // SAFETY: `for_planes` hands every plane of `out` to `Normalise`, which writes each of
    // its values.
    unsafe { filled(out) }
}

/// The work on one plane of a [`for_planes`] pass: `out` from `inputs`, of `channel`.
/// A method inlined into the pass's `pulp` instantiations, never a closure (see
/// [`ChannelStatistics`]).
trait PlaneOp: Sync {
    fn plane(&self, channel: usize, out: &mut [MaybeUninit<f32>], inputs: [&[f32]; 2]);
}

/// A channel's statistics and affine parameters, as the passes read them.
#[derive(Clone, Copy)]
struct Affine<'a> {
    kept: &'a Normalised,
    gamma: &'a [f32],
    beta: &'a [f32],
}

impl Affine<'_> {
    #[inline(always)]
    fn channel(&self, c: usize) -> Channel {
        Channel::of(self.kept, self.gamma, self.beta, c)
    }
}

/// The forward pass: `A((x - mean) * inv_std * gamma + beta)`.
struct Normalise<'a, A>(Affine<'a>, PhantomData<A>);

impl<A: Act> PlaneOp for Normalise<'_, A> {
    #[inline(always)]
    fn plane(&self, c: usize, y: &mut [MaybeUninit<f32>], [x, _]: [&[f32]; 2]) {
        let ch = self.0.channel(c);
        for (y, &x) in y.iter_mut().zip(x) {
            y.write(A::apply(ch.z(x)));
        }
    }
}

/// The input gradient, `dz * p + x * q + r` with the channel's `[p, q, r]`.
struct InputGradient<'a, A> {
    affine: Affine<'a>,
    terms: &'a [[f32; 3]],
    act: PhantomData<A>,
}

impl<A: Act> PlaneOp for InputGradient<'_, A> {
    #[inline(always)]
    fn plane(&self, c: usize, dx: &mut [MaybeUninit<f32>], [x, dy]: [&[f32]; 2]) {
        let ([p, q, r], ch) = (self.terms[c], self.affine.channel(c));
        for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
            let (dz, _) = ch.dz::<A>(x, dy);
            dx.write(dz * p + x * q + r);
        }
    }
}

/// Runs `op` over every plane, whole planes to a task, each task compiled for the best
/// instruction set the CPU has.
fn for_planes(
    out: &mut [MaybeUninit<f32>],
    [x, y]: [&[f32]; 2],
    layout: Layout,
    op: &impl PlaneOp,
) {
    let plane = layout.plane.max(1);
    let planes_per_task = (TASK / plane).max(1);
    let task = planes_per_task * plane;
    let simd = pulp::Arch::new();
    out.par_chunks_mut(task)
        .zip(x.par_chunks(task).zip(y.par_chunks(task)))
        .enumerate()
        .for_each(|(t, (out, (x, y)))| {
            simd.dispatch(Task {
                op,
                first: t * planes_per_task,
                channels: layout.channels,
                plane,
                out,
                inputs: [x, y],
            })
        });
}

/// A task of [`for_planes`]: consecutive planes from the `first`.
struct Task<'a, O> {
    op: &'a O,
    first: usize,
    channels: usize,
    plane: usize,
    out: &'a mut [MaybeUninit<f32>],
    inputs: [&'a [f32]; 2],
}

impl<O: PlaneOp> pulp::WithSimd for Task<'_, O> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let [x, y] = self.inputs;
        let planes = self
            .out
            .chunks_mut(self.plane)
            .zip(x.chunks(self.plane).zip(y.chunks(self.plane)));
        for (k, (out, (x, y))) in planes.enumerate() {
            self.op.plane((self.first + k) % self.channels, out, [x, y]);
        }
    }
}

/// One channel's sums of `dz` and `dz * x_hat` over the batch (see [`ChannelStatistics`]).
struct ChannelSums<'a, A> {
    x: &'a [f32],
    dy: &'a [f32],
    layout: Layout,
    channel: usize,
    affine: Affine<'a>,
    act: PhantomData<A>,
}

impl<A: Act> pulp::WithSimd for ChannelSums<'_, A> {
    type Output = (f64, f64);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> (f64, f64) {
        let (layout, c) = (self.layout, self.channel);
        let (mut sum_dz, mut sum_dzx) = (0f64, 0f64);
        for n in 0..layout.batch {
            let (x, dy) = (
                layout.plane_of(self.x, n, c),
                layout.plane_of(self.dy, n, c),
            );
            let (dz, dzx) = plane_sums::<A>(x, dy, self.affine.channel(c));
            sum_dz += dz as f64;
            sum_dzx += dzx as f64;
        }
        (sum_dz, sum_dzx)
    }
}

/// What the backward of a batch norm needs besides the input and the output gradient.
#[derive(Debug, Clone)]
pub struct Normalised {
    /// The mean it subtracted (the batch's in training, the running one otherwise).
    pub mean: Vec<f32>,
    /// `1 / sqrt(var + eps)` it multiplied by.
    pub inverse_std: Vec<f32>,
    /// The variance behind `inverse_std` (biased, in training: what Burn returns).
    pub variance: Vec<f32>,
    /// Whether the statistics were the batch's own (their gradient flows back).
    pub batch_statistics: bool,
}

impl Normalised {
    /// The batch's own statistics of `x`.
    pub fn of_batch(x: &[f32], layout: Layout, epsilon: f64) -> Self {
        let (mean, variance) = batch_statistics(x, layout);
        Self {
            inverse_std: inverse_std(&variance, epsilon),
            mean,
            variance,
            batch_statistics: true,
        }
    }

    /// Running statistics.
    pub fn of_running(mean: Vec<f32>, variance: Vec<f32>, epsilon: f64) -> Self {
        Self {
            inverse_std: inverse_std(&variance, epsilon),
            mean,
            variance,
            batch_statistics: false,
        }
    }
}

/// The gradients of a batch norm: the input's, and `(d gamma, d beta)`, each when asked.
pub struct Gradients {
    /// The input gradient.
    pub input: Option<Vec<f32>>,
    /// `(d gamma, d beta)`.
    pub affine: Option<(Vec<f32>, Vec<f32>)>,
}

/// One channel's affine parameters and statistics.
#[derive(Clone, Copy)]
struct Channel {
    mean: f32,
    inv_std: f32,
    gamma: f32,
    beta: f32,
}

impl Channel {
    #[inline(always)]
    fn of(kept: &Normalised, gamma: &[f32], beta: &[f32], c: usize) -> Self {
        Self {
            mean: kept.mean[c],
            inv_std: kept.inverse_std[c],
            gamma: gamma[c],
            beta: beta[c],
        }
    }

    /// The value before the activation.
    #[inline(always)]
    fn z(self, x: f32) -> f32 {
        (x - self.mean) * self.inv_std * self.gamma + self.beta
    }

    /// The gradient before the activation, and the normalised input, at `x`.
    #[inline(always)]
    fn dz<A: Act>(self, x: f32, dy: f32) -> (f32, f32) {
        let xhat = (x - self.mean) * self.inv_std;
        let z = xhat * self.gamma + self.beta;
        (if A::passes(z) { dy } else { 0.0 }, xhat)
    }
}

/// The plane's sums of `dz` and `dz * x_hat`, in `LANES` partial sums each.
#[inline(always)]
fn plane_sums<A: Act>(x: &[f32], dy: &[f32], ch: Channel) -> (f32, f32) {
    let (mut acc_dz, mut acc_dzx) = ([0f32; LANES], [0f32; LANES]);
    let blocks = x.chunks_exact(LANES).zip(dy.chunks_exact(LANES));
    for (x, dy) in blocks {
        for lane in 0..LANES {
            let (dz, xhat) = ch.dz::<A>(x[lane], dy[lane]);
            acc_dz[lane] += dz;
            acc_dzx[lane] += dz * xhat;
        }
    }
    let start = x.len() - x.len() % LANES;
    let (mut sum_dz, mut sum_dzx) = (acc_dz.iter().sum::<f32>(), acc_dzx.iter().sum::<f32>());
    for (&x, &dy) in x[start..].iter().zip(&dy[start..]) {
        let (dz, xhat) = ch.dz::<A>(x, dy);
        sum_dz += dz;
        sum_dzx += dz * xhat;
    }
    (sum_dz, sum_dzx)
}

/// The backward of a batch norm (`gamma`, `beta`, then `activation`) whose forward
/// [`normalise`]d `x` with `kept`; `dy` is the gradient of its output. Computes the input
/// gradient when `want_input` and `(d gamma, d beta)` when `want_affine`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    dy: &[f32],
    layout: Layout,
    gamma: &[f32],
    beta: &[f32],
    kept: &Normalised,
    activation: Activation,
    [want_input, want_affine]: [bool; 2],
) -> Gradients {
    assert_eq!(x.len(), layout.len(), "batch norm: input size");
    assert_eq!(dy.len(), layout.len(), "batch norm: gradient size");
    let affine = Affine { kept, gamma, beta };
    // The channel sums of dz and dz * x_hat (dz: the gradient before the activation):
    // the affine gradients, and in training the input gradient's terms.
    let needs_sums = want_affine || (want_input && kept.batch_statistics);
    let sums: Vec<(f64, f64)> = if needs_sums {
        let simd = pulp::Arch::new();
        (0..layout.channels)
            .into_par_iter()
            .map(|channel| {
                with_act!(activation, A => simd.dispatch(ChannelSums::<A> {
                    x,
                    dy,
                    layout,
                    channel,
                    affine,
                    act: PhantomData,
                }))
            })
            .collect()
    } else {
        Vec::new()
    };
    let input = want_input.then(|| {
        // dx = gamma * inv_std * (dz - mean(dz) - x_hat * mean(dz * x_hat)) in training,
        // gamma * inv_std * dz otherwise: dz * p + x * q + r per channel.
        let count = (layout.batch * layout.plane) as f64;
        let terms: Vec<[f32; 3]> = (0..layout.channels)
            .map(|c| {
                let p = gamma[c] * kept.inverse_std[c];
                if !kept.batch_statistics {
                    return [p, 0.0, 0.0];
                }
                let mean_dz = (sums[c].0 / count) as f32;
                let mean_dzx = (sums[c].1 / count) as f32;
                let k = p * mean_dzx * kept.inverse_std[c];
                [p, -k, k * kept.mean[c] - p * mean_dz]
            })
            .collect();
        let mut dx = unfilled(x.len());
        with_act!(activation, A => for_planes(&mut dx, [x, dy], layout, &InputGradient::<A> {
            affine,
            terms: &terms,
            act: PhantomData,
        }));
        // SAFETY: `for_planes` hands every plane of `dx` to `InputGradient`, which writes
        // each of its values.
        unsafe { filled(dx) }
    });
    let affine = want_affine.then(|| {
        sums.iter()
            .map(|&(dz, dzx)| (dzx as f32, dz as f32))
            .unzip()
    });
    Gradients { input, affine }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random value in [-2, 2) plus a per-channel offset, so that
    /// means are far from zero (where a one-pass variance would lose digits).
    fn sample(i: usize, channel: usize) -> f32 {
        let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        (h as f32 / (1u64 << 24) as f32) * 4.0 - 2.0 + channel as f32 * 10.0
    }

    fn input(layout: Layout) -> Vec<f32> {
        (0..layout.len())
            .map(|i| sample(i, (i / layout.plane) % layout.channels))
            .collect()
    }

    /// Mean and biased variance in f64, two passes, the textbook way.
    fn reference_statistics(x: &[f32], layout: Layout) -> (Vec<f64>, Vec<f64>) {
        (0..layout.channels)
            .map(|c| {
                let values: Vec<f64> = (0..layout.batch)
                    .flat_map(|n| layout.plane_of(x, n, c).iter().map(|&v| v as f64))
                    .collect();
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>()
                    / values.len() as f64;
                (mean, var)
            })
            .unzip()
    }

    #[test]
    fn statistics_match_a_two_pass_reference_in_f64() {
        // Planes of one value, odd sizes, and planes larger than a lane block.
        for layout in [
            Layout {
                batch: 3,
                channels: 5,
                plane: 1,
            },
            Layout {
                batch: 2,
                channels: 3,
                plane: 37,
            },
            Layout {
                batch: 7,
                channels: 4,
                plane: 1000,
            },
        ] {
            let x = input(layout);
            let (mean, var) = batch_statistics(&x, layout);
            let (want_mean, want_var) = reference_statistics(&x, layout);
            for c in 0..layout.channels {
                assert!((mean[c] as f64 - want_mean[c]).abs() < 1e-5 * want_mean[c].abs().max(1.0));
                assert!(
                    (var[c] as f64 - want_var[c]).abs() < 1e-5 * want_var[c].max(1e-3),
                    "{layout:?} channel {c}: {} vs {}",
                    var[c],
                    want_var[c]
                );
            }
        }
    }

    #[test]
    fn the_output_is_the_normalised_affine_map_then_the_activation_plane_by_plane() {
        let layout = Layout {
            batch: 2,
            channels: 3,
            plane: 5,
        };
        let x: Vec<f32> = (0..30).map(|i| i as f32 - 12.0).collect();
        let kept = Normalised::of_running(vec![1.0, -2.0, 0.5], vec![4.0, 0.25, 9.0], 1e-5);
        let (gamma, beta) = ([0.5, -1.0, 2.0], [1.0, 0.0, -3.0]);
        for activation in [Activation::Identity, Activation::Relu, Activation::Relu6] {
            let y = normalise(&x, layout, &gamma, &beta, &kept, activation);
            for (i, (&y, &x)) in y.iter().zip(&x).enumerate() {
                let c = (i / 5) % 3;
                let z = (x - kept.mean[c]) / (kept.variance[c] + 1e-5).sqrt() * gamma[c] + beta[c];
                let want = with_act!(activation, A => A::apply(z));
                assert!(
                    (y - want).abs() < 1e-5,
                    "{activation:?} at {i}: {y} vs {want}"
                );
            }
        }
    }

    /// The training batch norm's loss `sum(w * act(bn(x)))` in f64, for finite differences.
    fn loss(
        x: &[f32],
        w: &[f32],
        layout: Layout,
        gamma: &[f32],
        beta: &[f32],
        act: Activation,
    ) -> f64 {
        let (mean, var) = reference_statistics(x, layout);
        let mut total = 0f64;
        for (i, (&x, &w)) in x.iter().zip(w).enumerate() {
            let c = (i / layout.plane) % layout.channels;
            let z =
                (x as f64 - mean[c]) / (var[c] + 1e-5).sqrt() * gamma[c] as f64 + beta[c] as f64;
            let y = match act {
                Activation::Identity => z,
                Activation::Relu => z.max(0.0),
                Activation::Relu6 => z.clamp(0.0, 6.0),
            };
            total += y * w as f64;
        }
        total
    }

    #[test]
    fn training_gradients_match_finite_differences() {
        let layout = Layout {
            batch: 2,
            channels: 2,
            plane: 9,
        };
        let x: Vec<f32> = (0..36)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) * 0.3)
            .collect();
        let w: Vec<f32> = (0..36)
            .map(|i| ((i * 11 % 7) as f32 - 3.0) * 0.25)
            .collect();
        let (gamma, beta) = ([1.5f32, 2.5], [0.5f32, 1.0]);
        for act in [Activation::Identity, Activation::Relu, Activation::Relu6] {
            let kept = Normalised::of_batch(&x, layout, 1e-5);
            let grads = backward(&x, &w, layout, &gamma, &beta, &kept, act, [true, true]);
            let dx = grads.input.expect("input gradient");
            let (dgamma, dbeta) = grads.affine.expect("affine gradients");
            let h = 1e-3f32;
            for i in [0, 5, 17, 30] {
                let (mut up, mut down) = (x.clone(), x.clone());
                up[i] += h;
                down[i] -= h;
                let numeric = (loss(&up, &w, layout, &gamma, &beta, act)
                    - loss(&down, &w, layout, &gamma, &beta, act))
                    / (2.0 * h as f64);
                assert!(
                    (dx[i] as f64 - numeric).abs() < 2e-2,
                    "{act:?} dx[{i}]: {} vs {numeric}",
                    dx[i]
                );
            }
            // d gamma[c] and d beta[c]: the loss with one parameter moved by +-h.
            let bumped = |which: usize, c: usize, by: f32| {
                let (mut g, mut b) = (gamma, beta);
                [&mut g, &mut b][which][c] += by;
                loss(&x, &w, layout, &g, &b, act)
            };
            for c in 0..2 {
                for (which, (name, got)) in [("dgamma", &dgamma), ("dbeta", &dbeta)]
                    .into_iter()
                    .enumerate()
                {
                    let numeric = (bumped(which, c, h) - bumped(which, c, -h)) / (2.0 * h as f64);
                    assert!(
                        (got[c] as f64 - numeric).abs() < 2e-2,
                        "{act:?} {name}[{c}]: {} vs {numeric}",
                        got[c]
                    );
                }
            }
        }
    }
}
