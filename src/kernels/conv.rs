//! 2-D convolution on f32 NCHW slices as im2col + one gemm per image, forward and
//! backward, with images spread over rayon's threads.
//!
//! Why not Burn's own: flex's weight gradient runs a convolution with batch and
//! channels swapped (a gemm with 9 output columns, 3-70 GFLOP/s here), and its first
//! layer (one input channel) runs at ~15 GFLOP/s; see shared/PERF-NOTES.md. Here every
//! pass is a gemm over the im2col matrix: forward `Y_n = W cols_n`, weight gradient
//! `dW = sum_n dY_n cols_n^T`, input gradient `dX_n = col2im(W^T dY_n)`.

use rayon::prelude::*;

use super::gemm::{MatRef, filled, gemm, gemm_into, par_gemm_into, unfilled};

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

    pub(super) fn out_hw(&self) -> [usize; 2] {
        self.output_size()
            .expect("ConvGeometry::output_size is checked before the kernels run")
    }

    /// Rows of the im2col matrix (`in_channels * kh * kw`).
    pub(super) fn patch(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    /// Columns of the im2col matrix (output positions of one image).
    pub(super) fn positions(&self) -> usize {
        let [oh, ow] = self.out_hw();
        oh * ow
    }

    pub(super) fn image(&self) -> usize {
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

/// The output `[N, Co, OH, OW]`: per image, `[W | b] x [cols; 1]` — the bias rides in
/// the product as a last column of the weights against a row of ones, so the output is
/// written once, by the multiply, into memory that was never zero-filled.
pub(crate) fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32> {
    let (k, p, co) = (g.patch(), g.positions(), g.out_channels);
    assert_eq!(x.len(), g.batch * g.image(), "conv input size");
    assert_eq!(w.len(), co * k, "conv weight size");
    let mut out = unfilled(g.batch * co * p);
    if out.is_empty() {
        return Vec::new();
    }
    let weight = match bias {
        Some(bias) => {
            assert_eq!(bias.len(), co, "conv bias size");
            with_bias_column(w, bias, k)
        }
        None => w.to_vec(),
    };
    let rows = k + usize::from(bias.is_some());
    let direct = g.is_pointwise() && bias.is_none();
    if g.batch < rayon::current_num_threads() {
        // Fewer images than cores (inference latency): each image's product is split
        // across the cores instead.
        let mut cols = ones_below(k, if direct { 0 } else { rows }, p);
        for (out_n, x_n) in out.chunks_mut(co * p).zip(x.chunks(g.image())) {
            let cols = if direct {
                x_n
            } else {
                unfold(x_n, g, &mut cols[..k * p]);
                &cols[..]
            };
            par_gemm_into(
                out_n,
                MatRef::row_major(&weight, co, rows),
                MatRef::row_major(cols, rows, p),
            );
        }
        // SAFETY: the chunks cover `out`, and `par_gemm_into` wrote every element.
        return unsafe { filled(out) };
    }
    out.par_chunks_mut(co * p)
        .zip(x.par_chunks(g.image()))
        .for_each_init(
            || ones_below(k, if direct { 0 } else { rows }, p),
            |cols, (out_n, x_n)| {
                let cols = if direct {
                    x_n
                } else {
                    unfold(x_n, g, &mut cols[..k * p]);
                    &cols[..]
                };
                gemm_into(
                    out_n,
                    MatRef::row_major(&weight, co, rows),
                    MatRef::row_major(cols, rows, p),
                );
            },
        );
    // SAFETY: the chunks cover `out`, and `gemm_into` wrote every element of each.
    unsafe { filled(out) }
}

/// `[W | b]`: each of the `co` weight rows (`k` long) followed by its bias.
pub(super) fn with_bias_column(w: &[f32], bias: &[f32], k: usize) -> Vec<f32> {
    w.chunks_exact(k)
        .zip(bias)
        .flat_map(|(row, b)| row.iter().chain(std::iter::once(b)))
        .copied()
        .collect()
}

/// A `rows x p` column buffer whose rows from `k` on are ones (the bias row); the rest
/// is overwritten by `unfold` before each use.
pub(super) fn ones_below(k: usize, rows: usize, p: usize) -> Vec<f32> {
    let mut cols = vec![0.0; rows * p];
    cols[(k * p).min(rows * p)..].fill(1.0);
    cols
}

/// `im2col`, or a copy for a pointwise convolution (whose columns are the image itself).
pub(super) fn unfold(image: &[f32], g: &ConvGeometry, cols: &mut [f32]) {
    if g.is_pointwise() {
        cols.copy_from_slice(image);
    } else {
        im2col(image, g, cols);
    }
}

/// `(dW, db)`: per image `[dW | db] += dY x [cols; 1]^T` (the row of ones sums `dY` into
/// the bias gradient inside the product), folded per thread, then summed.
pub(crate) fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> (Vec<f32>, Vec<f32>) {
    let (k, p, co) = (g.patch(), g.positions(), g.out_channels);
    assert_eq!(x.len(), g.batch * g.image(), "conv input size");
    assert_eq!(dy.len(), g.batch * co * p, "conv output gradient size");
    let rows = k + 1;
    let zeros = || vec![0.0; co * rows];
    let per_thread = g.batch.div_ceil(rayon::current_num_threads().max(1)).max(1);
    let sums = x
        .par_chunks(g.image())
        .zip(dy.par_chunks(co * p))
        .with_min_len(per_thread)
        .fold(
            || (zeros(), Vec::new()),
            |(mut sums, mut cols), (x_n, dy_n)| {
                add_weight_grad(&mut sums, &mut cols, x_n, dy_n, g);
                (sums, cols)
            },
        )
        .map(|(sums, _)| sums)
        .reduce(zeros, |mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            a
        });
    split_bias_column(&sums, k)
}

/// One image's share of the weight gradient: `sums += dY_n x [cols_n; 1]^T`, with
/// `sums` the `Co x (K + 1)` running `[dW | db]` and `cols` a scratch buffer (empty on
/// first use).
pub(super) fn add_weight_grad(
    sums: &mut [f32],
    cols: &mut Vec<f32>,
    x_n: &[f32],
    dy_n: &[f32],
    g: &ConvGeometry,
) {
    let (k, p, co) = (g.patch(), g.positions(), g.out_channels);
    if cols.len() != (k + 1) * p {
        *cols = ones_below(k, k + 1, p);
    }
    unfold(x_n, g, &mut cols[..k * p]);
    let grad = MatRef::row_major(dy_n, co, p);
    gemm(sums, true, grad, MatRef::row_major(cols, k + 1, p).t());
}

/// `[dW | db]` (`Co x (K + 1)`) split into `dW` and `db`.
pub(super) fn split_bias_column(sums: &[f32], k: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = sums.chunks_exact(k + 1);
    let dw = rows.clone().flat_map(|row| &row[..k]).copied().collect();
    let db = rows.map(|row| row[k]).collect();
    (dw, db)
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
    dx.par_chunks_mut(g.image())
        .zip(dy.par_chunks(co * p))
        .for_each_init(
            || vec![0.0; k * p],
            |cols, (dx_n, dy_n)| add_input_grad(dx_n, cols, w, dy_n, g),
        );
    dx
}

/// One image's input gradient added into `dx_n`: `dX_n += col2im(W^T dY_n)`, with
/// `cols` a scratch buffer of at least `K x P`.
pub(super) fn add_input_grad(
    dx_n: &mut [f32],
    cols: &mut [f32],
    w: &[f32],
    dy_n: &[f32],
    g: &ConvGeometry,
) {
    let (k, p, co) = (g.patch(), g.positions(), g.out_channels);
    let weight_t = MatRef::row_major(w, co, k).t();
    let dy_n = MatRef::row_major(dy_n, co, p);
    if g.is_pointwise() {
        gemm(dx_n, true, weight_t, dy_n);
    } else {
        let cols = &mut cols[..k * p];
        gemm(cols, false, weight_t, dy_n);
        col2im_add(cols, g, dx_n);
    }
}
