//! The weighted squared distance `sum_k f_k (p_k - a_k)^2` of a parameter `p` from an
//! anchor `a` with weights `f` (EWC's penalty, Kirkpatrick et al. 2017, after its terms
//! are merged) as one pass over the three vectors, and its gradient `2 f (p - a)` as one
//! more, split across the cores; Burn's tensor operations take five passes and keep
//! three temporaries. The sum is accumulated in f64.

use rayon::prelude::*;

/// Elements per rayon task: large enough that the split costs nothing beside the work.
const CHUNK: usize = 1 << 14;

/// `sum_k f_k (p_k - a_k)^2`, in f64.
pub(super) fn value(p: &[f32], f: &[f32], a: &[f32]) -> f64 {
    p.par_chunks(CHUNK)
        .zip(f.par_chunks(CHUNK))
        .zip(a.par_chunks(CHUNK))
        .map(|((p, f), a)| {
            p.iter()
                .zip(f)
                .zip(a)
                .map(|((&p, &f), &a)| {
                    let d = f64::from(p) - f64::from(a);
                    f64::from(f) * d * d
                })
                .sum::<f64>()
        })
        .sum()
}

/// `scale * 2 f (p - a)`: the gradient of [`value`] times the upstream gradient `scale`.
pub(super) fn gradient(p: &[f32], f: &[f32], a: &[f32], scale: f32) -> Vec<f32> {
    let mut out = vec![0f32; p.len()];
    out.par_chunks_mut(CHUNK)
        .zip(p.par_chunks(CHUNK))
        .zip(f.par_chunks(CHUNK).zip(a.par_chunks(CHUNK)))
        .for_each(|((out, p), (f, a))| {
            for (((o, &p), &f), &a) in out.iter_mut().zip(p).zip(f).zip(a) {
                *o = scale * 2.0 * f * (p - a);
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    /// The kernel's value and gradient against Burn's tensor operations, over more than
    /// one rayon chunk and with an untracked parameter too.
    #[test]
    fn the_kernel_gives_the_tensor_operations_value_and_gradient() {
        let n = 3 * super::CHUNK + 17;
        let wave = |k: usize, s: f32| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * k % 97) as f32 / 97.0 - 0.5) * s)
                .collect()
        };
        let device = Device::flex().autodiff();
        let on = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [n]), &device);
        let (f, a) = (
            on(wave(13, 4.0).iter().map(|v| v.abs()).collect()),
            on(wave(7, 1.0)),
        );
        let p = on(wave(29, 2.0)).require_grad();

        let fused = super::super::autodiff::weighted_squared_distance(&p, &f, &a).unwrap();
        let d = p.clone() - a.clone();
        let reference = (f.clone() * d.clone() * d).sum();
        let (x, y) = (
            fused.clone().into_scalar::<f32>(),
            reference.clone().into_scalar::<f32>(),
        );
        assert!((x - y).abs() <= 1e-5 * y.abs(), "{x} vs {y}");

        let grad = |loss: Tensor<1>| -> Vec<f32> {
            let grads = loss.mul_scalar(3.0).backward();
            p.grad(&grads)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let (gx, gy) = (grad(fused), grad(reference));
        let worst = gx
            .iter()
            .zip(&gy)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst <= 1e-5, "gradient off by {worst}");

        // Untracked, on flex alone: the same value.
        let flex = Device::flex();
        let plain = |t: &Tensor<1>| Tensor::<1>::from_data(t.to_data(), &flex);
        let z =
            super::super::autodiff::weighted_squared_distance(&plain(&p), &plain(&f), &plain(&a))
                .unwrap()
                .into_scalar::<f32>();
        assert_eq!(z, x);
    }
}
