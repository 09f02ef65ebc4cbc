//! Depthwise 2-D convolution (one `kh x kw` filter per channel: `groups = channels`,
//! weight `[C, 1, kh, kw]`; MobileNets, Howard et al. 2017) on f32 NCHW slices, forward
//! and both gradients. Burn 0.22.1's flex runs a grouped convolution as one small
//! convolution per group and its input gradient as a transposed 3-D convolution; these
//! loops instead work plane by plane (one image's channel), with the plane and its
//! filter in cache: for each filter tap, one pass of multiply-adds over an output row,
//! contiguous at stride 1. Planes (forward, input gradient) and channels (weight
//! gradient) are spread over rayon.

use rayon::prelude::*;

use super::conv::ConvGeometry;

/// For filter tap `k` along an axis of `len` input pixels, `before` padding, `stride`
/// and `out` outputs: the outputs whose input pixel `o * stride + k - before` lies in
/// the image, as a range.
fn valid_outputs(k: usize, len: usize, before: usize, stride: usize, out: usize) -> (usize, usize) {
    // First o with o * stride + k >= before.
    let first = before.saturating_sub(k).div_ceil(stride);
    // Last o with o * stride + k - before <= len - 1, plus one.
    let end = if len + before > k {
        ((len + before - k - 1) / stride + 1).min(out)
    } else {
        0
    };
    (first.min(end), end)
}

/// The output `[N, C, oh, ow]` of the convolution of `x` `[N, C, H, W]` with `w`
/// `[C, 1, kh, kw]`, plus `bias` `[C]`.
pub(super) fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32> {
    let [oh, ow] = g.out_hw();
    let (c, plane_in, plane_out) = (g.in_channels, g.height * g.width, oh * ow);
    let [kh, kw] = g.kernel;
    let columns = tap_columns(g);
    let mut y = vec![0f32; g.batch * c * plane_out];
    y.par_chunks_mut(plane_out)
        .zip(x.par_chunks(plane_in))
        .enumerate()
        .for_each(|(p, (y, x))| {
            let ch = p % c;
            let filter = &w[ch * kh * kw..(ch + 1) * kh * kw];
            if let Some(b) = bias {
                y.fill(b[ch]);
            }
            for_each_tap(g, &columns, |oy, iy, kx, ky, (o0, o1)| {
                let tap = filter[ky * kw + kx];
                let row = &mut y[oy * ow..(oy + 1) * ow];
                let input = &x[iy * g.width..(iy + 1) * g.width];
                let start = o0 * g.stride[1] + kx - g.padding[1].0;
                if g.stride[1] == 1 {
                    for (out, &v) in row[o0..o1].iter_mut().zip(&input[start..]) {
                        *out += tap * v;
                    }
                } else {
                    for (i, out) in row[o0..o1].iter_mut().enumerate() {
                        *out += tap * input[start + i * g.stride[1]];
                    }
                }
            });
        });
    y
}

/// The gradient of the input from the output gradient `dy` `[N, C, oh, ow]`.
pub(super) fn input_grad(w: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let [oh, ow] = g.out_hw();
    let (c, plane_in, plane_out) = (g.in_channels, g.height * g.width, oh * ow);
    let [kh, kw] = g.kernel;
    let columns = tap_columns(g);
    let mut dx = vec![0f32; g.batch * c * plane_in];
    dx.par_chunks_mut(plane_in)
        .zip(dy.par_chunks(plane_out))
        .enumerate()
        .for_each(|(p, (dx, dy))| {
            let ch = p % c;
            let filter = &w[ch * kh * kw..(ch + 1) * kh * kw];
            for_each_tap(g, &columns, |oy, iy, kx, ky, (o0, o1)| {
                let tap = filter[ky * kw + kx];
                let row = &dy[oy * ow..(oy + 1) * ow];
                let input = &mut dx[iy * g.width..(iy + 1) * g.width];
                let start = o0 * g.stride[1] + kx - g.padding[1].0;
                if g.stride[1] == 1 {
                    for (d, &v) in input[start..].iter_mut().zip(&row[o0..o1]) {
                        *d += tap * v;
                    }
                } else {
                    for (i, &v) in row[o0..o1].iter().enumerate() {
                        input[start + i * g.stride[1]] += tap * v;
                    }
                }
            });
        });
    dx
}

/// The gradients of the weight `[C, 1, kh, kw]` and of the bias `[C]`.
pub(super) fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> (Vec<f32>, Vec<f32>) {
    let [oh, ow] = g.out_hw();
    let (c, plane_in, plane_out) = (g.in_channels, g.height * g.width, oh * ow);
    let [kh, kw] = g.kernel;
    let columns = tap_columns(g);
    let per_channel: Vec<(Vec<f32>, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut dw = vec![0f32; kh * kw];
            let mut db = 0f32;
            for n in 0..g.batch {
                let p = n * c + ch;
                let x = &x[p * plane_in..(p + 1) * plane_in];
                let dy = &dy[p * plane_out..(p + 1) * plane_out];
                db += dot(dy, None);
                for_each_tap(g, &columns, |oy, iy, kx, ky, (o0, o1)| {
                    let row = &dy[oy * ow..(oy + 1) * ow];
                    let input = &x[iy * g.width..(iy + 1) * g.width];
                    let start = o0 * g.stride[1] + kx - g.padding[1].0;
                    let sum: f32 = if g.stride[1] == 1 {
                        dot(&row[o0..o1], Some(&input[start..start + (o1 - o0)]))
                    } else {
                        row[o0..o1]
                            .iter()
                            .enumerate()
                            .map(|(i, a)| a * input[start + i * g.stride[1]])
                            .sum()
                    };
                    dw[ky * kw + kx] += sum;
                });
            }
            (dw, db)
        })
        .collect();
    let db = per_channel.iter().map(|(_, b)| *b).collect();
    let dw = per_channel.into_iter().flat_map(|(w, _)| w).collect();
    (dw, db)
}

/// `sum(a[i] * b[i])` (or `sum(a[i])` without `b`) in 16 independent lanes, which the
/// compiler vectorises; a plain iterator sum is one sequential chain of additions.
fn dot(a: &[f32], b: Option<&[f32]>) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let whole = a.len() / LANES * LANES;
    match b {
        Some(b) => {
            for (ca, cb) in a[..whole]
                .chunks_exact(LANES)
                .zip(b[..whole].chunks_exact(LANES))
            {
                for l in 0..LANES {
                    acc[l] += ca[l] * cb[l];
                }
            }
            let tail: f32 = a[whole..].iter().zip(&b[whole..]).map(|(x, y)| x * y).sum();
            acc.iter().sum::<f32>() + tail
        }
        None => {
            for ca in a[..whole].chunks_exact(LANES) {
                for l in 0..LANES {
                    acc[l] += ca[l];
                }
            }
            acc.iter().sum::<f32>() + a[whole..].iter().sum::<f32>()
        }
    }
}

/// For each filter column `kx`, the output columns whose input column is inside the
/// image (the same for every plane: computed once a call, not once a plane).
fn tap_columns(g: &ConvGeometry) -> Vec<(usize, usize)> {
    let [_, ow] = g.out_hw();
    (0..g.kernel[1])
        .map(|kx| valid_outputs(kx, g.width, g.padding[1].0, g.stride[1], ow))
        .collect()
}

/// Calls `f(oy, iy, kx, ky, (o0, o1))` for every output row `oy`, filter tap `(ky, kx)`
/// whose input row `iy` is inside the image, and the output columns `o0..o1` of
/// `columns[kx]` ([`tap_columns`]) when not empty.
fn for_each_tap(
    g: &ConvGeometry,
    columns: &[(usize, usize)],
    mut f: impl FnMut(usize, usize, usize, usize, (usize, usize)),
) {
    let [oh, _] = g.out_hw();
    let kh = g.kernel[0];
    for oy in 0..oh {
        for ky in 0..kh {
            let Some(iy) = (oy * g.stride[0] + ky).checked_sub(g.padding[0].0) else {
                continue;
            };
            if iy >= g.height {
                continue;
            }
            for (kx, &(o0, o1)) in columns.iter().enumerate() {
                if o0 < o1 {
                    f(oy, iy, kx, ky, (o0, o1));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sums_equal_plain_sums() {
        // Integers times 0.5: every partial sum is exact, in any order.
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| (i % 5) as f32).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(&a, Some(&b)), plain);
        assert_eq!(dot(&a, None), a.iter().sum::<f32>());
        assert_eq!(dot(&[], None), 0.0);
    }

    #[test]
    fn valid_outputs_keep_the_input_inside_the_image() {
        // Width 5, padding 1 before, stride 1, 5 outputs: tap 0 reads o - 1.
        assert_eq!(valid_outputs(0, 5, 1, 1, 5), (1, 5));
        assert_eq!(valid_outputs(2, 5, 1, 1, 5), (0, 4));
        // Stride 2, width 8, TF "same" for k3 (0 before, 1 after): output o reads 2o + k,
        // so tap 2 of output 3 reads the padding.
        assert_eq!(valid_outputs(2, 8, 0, 2, 4), (0, 3));
        assert_eq!(valid_outputs(0, 8, 0, 2, 4), (0, 4));
        // A tap entirely in the padding: an empty range.
        let (first, end) = valid_outputs(0, 1, 2, 1, 1);
        assert!(first >= end);
    }
}
