//! 2-D convolution on f32 NCHW slices as im2col + one gemm per image, forward and
//! backward, with images spread over rayon's threads.
//!
//! Why not Burn's own: flex's weight gradient runs a convolution with batch and
//! channels swapped (a gemm with 9 output columns, 3-70 GFLOP/s here), and its first
//! layer (one input channel) runs at ~15 GFLOP/s; see shared/PERF-NOTES.md. Here every
//! pass is a gemm over the im2col matrix: forward `Y_n = W cols_n`, weight gradient
//! `dW = sum_n dY_n cols_n^T`, input gradient `dX_n = col2im(W^T dY_n)`.

use rayon::prelude::*;

use super::gemm::{MatRef, gemm};

/// Shapes of one convolution: NCHW input, `[out, in, kh, kw]` weight, groups 1,
/// dilation 1, padding `[(top, bottom), (left, right)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [(usize, usize); 2],
}

impl ConvGeometry {
    /// Output height and width; `None` when the kernel does not fit the padded input
    /// or a stride is zero.
    pub fn output_size(&self) -> Option<[usize; 2]> {
        let size = |len: usize, (lo, hi): (usize, usize), k: usize, s: usize| {
            let padded = len + lo + hi;
            (s > 0 && k > 0 && padded >= k).then(|| (padded - k) / s + 1)
        };
        Some([
            size(self.height, self.padding[0], self.kernel[0], self.stride[0])?,
            size(self.width, self.padding[1], self.kernel[1], self.stride[1])?,
        ])
    }

    fn out_hw(&self) -> [usize; 2] {
        self.output_size()
            .expect("ConvGeometry::output_size is checked before the kernels run")
    }

    /// Rows of the im2col matrix (`in_channels * kh * kw`).
    fn patch(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    /// Columns of the im2col matrix (output positions of one image).
    fn positions(&self) -> usize {
        let [oh, ow] = self.out_hw();
        oh * ow
    }

    fn image(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    /// A 1x1 kernel with stride 1 and no padding: the image itself is the im2col matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [(0, 0); 2]
    }
}

/// The valid output columns `lo..hi` of a stride-1 row for kernel column `j`: those
/// whose input column `ow + j - left` lies in `0..width`.
fn stride1_span(j: usize, left: usize, width: usize, out_width: usize) -> (usize, usize) {
    let lo = left.saturating_sub(j).min(out_width);
    let hi = (width + left).saturating_sub(j).min(out_width).max(lo);
    (lo, hi)
}

/// Input row of output row `oh` for kernel row `i`, if it is inside the image.
fn input_row(oh: usize, i: usize, g: &ConvGeometry) -> Option<usize> {
    (oh * g.stride[0] + i)
        .checked_sub(g.padding[0].0)
        .filter(|&ih| ih < g.height)
}

/// Input column of output column `ow` for kernel column `j`, if inside the image.
fn input_col(ow: usize, j: usize, g: &ConvGeometry) -> Option<usize> {
    (ow * g.stride[1] + j)
        .checked_sub(g.padding[1].0)
        .filter(|&iw| iw < g.width)
}

/// Writes one image's `[C*kh*kw, OH*OW]` im2col matrix into `cols`.
fn im2col(image: &[f32], g: &ConvGeometry, cols: &mut [f32]) {
    let [oh_n, ow_n] = g.out_hw();
    let [kh, kw] = g.kernel;
    let (h, w) = (g.height, g.width);
    let left = g.padding[1].0;
    for (row_index, row) in cols.chunks_exact_mut(oh_n * ow_n).enumerate() {
        let (c, i, j) = (row_index / (kh * kw), row_index / kw % kh, row_index % kw);
        let plane = &image[c * h * w..(c + 1) * h * w];
        for (oh, segment) in row.chunks_exact_mut(ow_n).enumerate() {
            let Some(ih) = input_row(oh, i, g) else {
                segment.fill(0.0);
                continue;
            };
            let source = &plane[ih * w..(ih + 1) * w];
            if g.stride[1] == 1 {
                let (lo, hi) = stride1_span(j, left, w, ow_n);
                segment[..lo].fill(0.0);
                segment[hi..].fill(0.0);
                segment[lo..hi].copy_from_slice(&source[lo + j - left..hi + j - left]);
            } else {
                for (ow, value) in segment.iter_mut().enumerate() {
                    *value = input_col(ow, j, g).map_or(0.0, |iw| source[iw]);
                }
            }
        }
    }
}

/// Adds one image's im2col-shaped gradient `cols` back onto its input gradient `image`.
fn col2im_add(cols: &[f32], g: &ConvGeometry, image: &mut [f32]) {
    let [oh_n, ow_n] = g.out_hw();
    let [kh, kw] = g.kernel;
    let (h, w) = (g.height, g.width);
    let left = g.padding[1].0;
    for (row_index, row) in cols.chunks_exact(oh_n * ow_n).enumerate() {
        let (c, i, j) = (row_index / (kh * kw), row_index / kw % kh, row_index % kw);
        let plane = &mut image[c * h * w..(c + 1) * h * w];
        for (oh, segment) in row.chunks_exact(ow_n).enumerate() {
            let Some(ih) = input_row(oh, i, g) else {
                continue;
            };
            let target = &mut plane[ih * w..(ih + 1) * w];
            if g.stride[1] == 1 {
                let (lo, hi) = stride1_span(j, left, w, ow_n);
                for (t, s) in target[lo + j - left..hi + j - left]
                    .iter_mut()
                    .zip(&segment[lo..hi])
                {
                    *t += s;
                }
            } else {
                for (ow, value) in segment.iter().enumerate() {
                    if let Some(iw) = input_col(ow, j, g) {
                        target[iw] += value;
                    }
                }
            }
        }
    }
}

/// The convolution's output `[N, out, OH, OW]` (row-major) for input `x` and weight `w`.
pub(crate) fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32> {
    let (k, p, co) = (g.patch(), g.positions(), g.out_channels);
    assert_eq!(x.len(), g.batch * g.image(), "conv input size");
    assert_eq!(w.len(), co * k, "conv weight size");
    let mut out = vec![0.0; g.batch * co * p];
    if out.is_empty() {
        return out;
    }
    let weight = MatRef::row_major(w, co, k);
    out.par_chunks_mut(co * p)
        .zip(x.par_chunks(g.image()))
        .for_each_init(
            || vec![0.0; if g.is_pointwise() { 0 } else { k * p }],
            |cols, (out_n, x_n)| {
                let cols = if g.is_pointwise() {
                    x_n
                } else {
                    im2col(x_n, g, cols);
                    &cols[..]
                };
                if let Some(bias) = bias {
                    for (row, b) in out_n.chunks_exact_mut(p).zip(bias) {
                        row.fill(*b);
                    }
                }
                gemm(out_n, bias.is_some(), weight, MatRef::row_major(cols, k, p));
            },
        );
    out
}

/// Gradients of the weight (`[out, in, kh, kw]`) and of the bias (`[out]`) for output
/// gradient `dy`: `dW = sum_n dY_n cols_n^T`, `db = sum_n,p dY`.
pub(crate) fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> (Vec<f32>, Vec<f32>) {
    let (k, p, co) = (g.patch(), g.positions(), g.out_channels);
    assert_eq!(x.len(), g.batch * g.image(), "conv input size");
    assert_eq!(dy.len(), g.batch * co * p, "conv output gradient size");
    let zeros = || (vec![0.0; co * k], vec![0.0; co]);
    let per_thread = g.batch.div_ceil(rayon::current_num_threads().max(1)).max(1);
    x.par_chunks(g.image())
        .zip(dy.par_chunks(co * p))
        .with_min_len(per_thread)
        .fold(
            || (zeros(), Vec::new()),
            |((mut dw, mut db), mut cols), (x_n, dy_n)| {
                let cols_n = if g.is_pointwise() {
                    x_n
                } else {
                    cols.resize(k * p, 0.0);
                    im2col(x_n, g, &mut cols);
                    &cols[..]
                };
                let grad = MatRef::row_major(dy_n, co, p);
                gemm(&mut dw, true, grad, MatRef::row_major(cols_n, k, p).t());
                for (b, row) in db.iter_mut().zip(dy_n.chunks_exact(p)) {
                    *b += row.iter().sum::<f32>();
                }
                ((dw, db), cols)
            },
        )
        .map(|(sums, _)| sums)
        .reduce(zeros, |(mut dw, mut db), (dw2, db2)| {
            dw.iter_mut().zip(&dw2).for_each(|(a, b)| *a += b);
            db.iter_mut().zip(&db2).for_each(|(a, b)| *a += b);
            (dw, db)
        })
}

/// Gradient of the input `[N, C, H, W]`: `dX_n = col2im(W^T dY_n)`.
pub(crate) fn input_grad(w: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (k, p, co) = (g.patch(), g.positions(), g.out_channels);
    assert_eq!(w.len(), co * k, "conv weight size");
    assert_eq!(dy.len(), g.batch * co * p, "conv output gradient size");
    let mut dx = vec![0.0; g.batch * g.image()];
    if dx.is_empty() {
        return dx;
    }
    let weight_t = MatRef::row_major(w, co, k).t();
    dx.par_chunks_mut(g.image())
        .zip(dy.par_chunks(co * p))
        .for_each_init(
            || vec![0.0; k * p],
            |cols, (dx_n, dy_n)| {
                if g.is_pointwise() {
                    gemm(dx_n, false, weight_t, MatRef::row_major(dy_n, co, p));
                } else {
                    gemm(cols, false, weight_t, MatRef::row_major(dy_n, co, p));
                    col2im_add(cols, g, dx_n);
                }
            },
        );
    dx
}
