//! A faster CPU convolution for Burn's flex backend, built only from differentiable
//! tensor ops so that autodiff supplies the backward pass: zero-pad, gather every
//! receptive field of the whole batch with one `select` over `[C, N*Hp*Wp]` (im2col),
//! then one matrix product of the `[O, C*K*K]` weights with the `[C*K*K, N*P]` columns. flex's own `conv2d` falls back to
//! slow generic kernels for the weight gradient and for few input channels
//! (shared/PERF-NOTES.md); this path runs on the gemm that reaches ~330 GFLOP/s here.
//!
//! Numerically it equals `conv2d` up to float summation order (tested below on random
//! shapes with stride, padding and odd sizes, forward and gradients). Other backends
//! (GPU) keep their native convolution: see [`conv2d`].

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Int, Tensor, TensorData};

/// The receptive-field gather indices: for each kernel offset `(ky, kx)` and output
/// position `(oy, ox)`, the flat index into a padded `Hp x Wp` plane.
fn gather_indices(
    k: [usize; 2],
    stride: [usize; 2],
    out: [usize; 2],
    padded_width: usize,
) -> Vec<i64> {
    let mut idx = Vec::with_capacity(k[0] * k[1] * out[0] * out[1]);
    for ky in 0..k[0] {
        for kx in 0..k[1] {
            for oy in 0..out[0] {
                for ox in 0..out[1] {
                    let y = oy * stride[0] + ky;
                    let x = ox * stride[1] + kx;
                    idx.push((y * padded_width + x) as i64);
                }
            }
        }
    }
    idx
}

/// `conv2d(x, weight) + bias` by im2col + matmul. `x` is `[N, C, H, W]`, `weight`
/// `[O, C, Kh, Kw]`, `padding` `[top/bottom, left/right]` (symmetric), no dilation or
/// groups.
pub fn conv2d_im2col(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let [o, _, kh, kw] = weight.dims();
    let x = if padding != [0, 0] {
        x.pad(
            (padding[1], padding[1], padding[0], padding[0]),
            PadMode::Constant(0.0),
        )
    } else {
        x
    };
    let (hp, wp) = (h + 2 * padding[0], w + 2 * padding[1]);
    let out = [(hp - kh) / stride[0] + 1, (wp - kw) / stride[1] + 1];
    let positions = out[0] * out[1];
    let device = x.device();
    let idx = gather_indices_batched(n, [kh, kw], stride, out, [hp, wp], &device);
    // [C, N*Hp*Wp] -> gather -> [C, Kh*Kw*N*P] = [C*Kh*Kw, N*P] (no copy), so the
    // product with the [O, C*Kh*Kw] weights is one large gemm, which flex runs on all
    // cores, rather than N small ones.
    let cols = x
        .swap_dims(0, 1)
        .reshape([c, n * hp * wp])
        .select(1, idx)
        .reshape([c * kh * kw, n * positions]);
    let y = weight
        .reshape([o, c * kh * kw])
        .matmul(cols)
        .reshape([o, n, out[0], out[1]])
        .swap_dims(0, 1);
    match bias {
        Some(b) => y + b.reshape([1, o, 1, 1]),
        None => y,
    }
}

/// [`gather_indices`] for a whole batch laid out as `[N, Hp, Wp]` planes, ordered
/// `(ky, kx, n, oy, ox)`; cached per shape, since every step of a run asks for the same.
fn gather_indices_batched(
    n: usize,
    k: [usize; 2],
    stride: [usize; 2],
    out: [usize; 2],
    padded: [usize; 2],
    device: &Device,
) -> Tensor<1, Int> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    type Key = (usize, [usize; 2], [usize; 2], [usize; 2], [usize; 2]);
    thread_local! {
        static CACHE: RefCell<HashMap<Key, Vec<i64>>> = RefCell::new(HashMap::new());
    }
    let key = (n, k, stride, out, padded);
    let idx = CACHE.with(|cache| {
        cache
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| {
                let plane = (padded[0] * padded[1]) as i64;
                let single = gather_indices(k, stride, out, padded[1]);
                let positions = out[0] * out[1];
                let mut all = Vec::with_capacity(single.len() * n);
                for kk in single.chunks(positions) {
                    for b in 0..n as i64 {
                        all.extend(kk.iter().map(|i| i + b * plane));
                    }
                }
                all
            })
            .clone()
    });
    let len = idx.len();
    Tensor::from_data(TensorData::new(idx, [len]), device)
}

fn is_flex(device: &Device) -> bool {
    device.clone().inner() == Device::flex()
}

/// A `Conv2d` layer's forward pass: the im2col path on flex (CPU), Burn's native
/// convolution elsewhere or for layouts the im2col path does not cover (dilation,
/// groups, asymmetric padding).
pub fn conv2d(layer: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match &layer.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(t, l, b, r) if t == b && l == r => Some([*t, *l]),
        _ => None,
    };
    let simple = layer.dilation == [1, 1] && layer.groups == 1;
    match padding {
        Some(p) if simple && is_flex(&x.device()) => conv2d_im2col(
            x,
            layer.weight.val(),
            layer.bias.as_ref().map(|b| b.val()),
            layer.stride,
            p,
        ),
        _ => layer.forward(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    fn max_rel(a: Tensor<4>, b: Tensor<4>) -> f32 {
        let a: Vec<f32> = a.into_data().convert::<f32>().try_to_vec().unwrap();
        let b: Vec<f32> = b.into_data().convert::<f32>().try_to_vec().unwrap();
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    #[test]
    fn flex_devices_take_the_im2col_path() {
        assert!(is_flex(&Device::flex()));
        assert!(is_flex(&Device::flex().autodiff()));
    }

    /// Forward and gradients (input, weight, bias) of the im2col path against Burn's
    /// `conv2d`, on shapes with strides, padding, odd sizes and rectangular kernels.
    #[test]
    fn matches_burn_conv2d_forward_and_gradients() {
        let device = Device::flex().autodiff();
        device.seed(11);
        // (batch, in, out, h, w, kernel, stride, padding)
        let cases = [
            (2, 1, 4, 8, 8, [3, 3], [1, 1], [1, 1]),
            (3, 5, 7, 9, 7, [3, 3], [2, 2], [1, 1]),
            (1, 3, 2, 11, 6, [1, 1], [2, 1], [0, 0]),
            (2, 4, 3, 7, 10, [5, 3], [1, 2], [2, 1]),
            (2, 2, 6, 5, 5, [3, 3], [1, 1], [0, 0]),
        ];
        for (n, c, o, h, w, k, s, p) in cases {
            let layer = Conv2dConfig::new([c, o], k)
                .with_stride(s)
                .with_padding(PaddingConfig2d::Explicit(p[0], p[1], p[0], p[1]))
                .init(&device);
            let x = Tensor::<4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            let reference = layer.forward(x.clone());
            let fast = conv2d_im2col(
                x.clone(),
                layer.weight.val(),
                layer.bias.as_ref().map(|b| b.val()),
                s,
                p,
            );
            assert_eq!(fast.dims(), reference.dims());
            let err = max_rel(fast.clone().inner(), reference.clone().inner());
            assert!(err < 1e-4, "forward {:?}: {err}", (n, c, o, h, w, k, s, p));
            // Gradients of the same scalar through both paths.
            let probe = Tensor::<4>::random(reference.dims(), Distribution::Default, &device);
            let g_ref = (reference * probe.clone()).sum().backward();
            let g_fast = (fast * probe).sum().backward();
            let dx = max_rel(
                x.grad(&g_fast).unwrap(),
                x.grad(&g_ref).unwrap(),
            );
            let dw = max_rel(
                layer.weight.val().grad(&g_fast).unwrap(),
                layer.weight.val().grad(&g_ref).unwrap(),
            );
            let bias = layer.bias.as_ref().unwrap().val();
            let db: Tensor<1> = bias.grad(&g_fast).unwrap();
            let db_ref: Tensor<1> = bias.grad(&g_ref).unwrap();
            let db = max_rel(db.reshape([1, 1, 1, o]), db_ref.reshape([1, 1, 1, o]));
            assert!(
                dx < 1e-4 && dw < 1e-4 && db < 1e-4,
                "gradients {:?}: dx {dx} dw {dw} db {db}",
                (n, c, o, h, w, k, s, p)
            );
        }
    }
}
