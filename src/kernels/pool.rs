//! Max pooling with non-overlapping windows (kernel = stride, no padding, floor mode)
//! on f32 NCHW slices. Flex's general max-pool costs ~100 cycles an output here
//! (shared/PERF-NOTES.md) and so did a first version of this one that tracked each
//! window's argmax: the forward now only takes maxima (2x2 windows, the CNN's, have a
//! straight-line loop), and the backward finds each window's first maximum again by
//! comparing the input with the pooled value, which is the same choice (first on
//! ties, as Burn and PyTorch) at a fraction of the cost.
//!
//! NaN: a window's maximum ignores a NaN that follows a number (training stops on a NaN
//! loss before this matters); Burn's own pooling propagates it.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::gemm::{filled, unfilled};

/// Shapes of one pooling: `planes = N * C` planes of `height x width`, `kernel` windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolGeometry {
    pub planes: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: [usize; 2],
}

impl PoolGeometry {
    /// Output height and width (floor mode); `None` when a window does not fit.
    pub fn output_size(&self) -> Option<[usize; 2]> {
        let [kh, kw] = self.kernel;
        (kh > 0 && kw > 0 && self.height >= kh && self.width >= kw)
            .then(|| [self.height / kh, self.width / kw])
    }

    pub(super) fn out_hw(&self) -> [usize; 2] {
        self.output_size()
            .expect("PoolGeometry::output_size is checked before the kernels run")
    }
}

/// The larger of two values, the first on ties.
#[inline(always)]
fn max2(a: f32, b: f32) -> f32 {
    if b > a { b } else { a }
}

/// Pools one plane into `out`.
fn pool_plane(plane: &[f32], g: &PoolGeometry, out: &mut [MaybeUninit<f32>]) {
    let [_, ow_n] = g.out_hw();
    let w = g.width;
    let [kh, kw] = g.kernel;
    for (oh, out_row) in out.chunks_exact_mut(ow_n).enumerate() {
        let top = &plane[oh * kh * w..][..ow_n * kw];
        if [kh, kw] == [2, 2] {
            let bottom = &plane[(oh * 2 + 1) * w..][..ow_n * 2];
            for ((o, t), b) in out_row
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                o.write(max2(max2(t[0], t[1]), max2(b[0], b[1])));
            }
            continue;
        }
        for (ow, o) in out_row.iter_mut().enumerate() {
            let mut best = f32::NEG_INFINITY;
            for i in 0..kh {
                let row = &plane[(oh * kh + i) * w + ow * kw..][..kw];
                best = row.iter().fold(best, |m, &v| max2(m, v));
            }
            o.write(best);
        }
    }
}

/// The pooled maxima `[planes, OH, OW]`.
pub(crate) fn forward(x: &[f32], g: &PoolGeometry) -> Vec<f32> {
    let [oh_n, ow_n] = g.out_hw();
    let plane = g.height * g.width;
    assert_eq!(x.len(), g.planes * plane, "pool input size");
    let mut out = unfilled(g.planes * oh_n * ow_n);
    if out.is_empty() {
        return Vec::new();
    }
    out.par_chunks_mut(oh_n * ow_n)
        .zip(x.par_chunks(plane))
        .for_each(|(out, plane)| pool_plane(plane, g, out));
    // SAFETY: the chunks cover `out`, and `pool_plane` writes every output of a plane.
    unsafe { filled(out) }
}

/// The input gradient `[planes, H, W]`: each output's gradient `dy` lands on the first
/// position of its window where the input `x` equals the pooled value `y`.
pub(crate) fn backward(x: &[f32], y: &[f32], dy: &[f32], g: &PoolGeometry) -> Vec<f32> {
    let [oh_n, ow_n] = g.out_hw();
    let (w, plane) = (g.width, g.height * g.width);
    let [kh, kw] = g.kernel;
    let out_plane = oh_n * ow_n;
    assert_eq!(x.len(), g.planes * plane, "pool input size");
    assert_eq!(y.len(), g.planes * out_plane, "pool output size");
    assert_eq!(dy.len(), y.len(), "pool output gradient size");
    if x.is_empty() {
        return Vec::new();
    }
    let mut dx = unfilled(x.len());
    let simd = pulp::Arch::new();
    dx.par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .zip(y.par_chunks(out_plane).zip(dy.par_chunks(out_plane)))
        .for_each(|((dx, x), (y, dy))| {
            if [kh, kw] == [2, 2] {
                simd.dispatch(Unpool2x2 {
                    x,
                    y,
                    dy,
                    w,
                    ow_n,
                    dx,
                });
                return;
            }
            dx.fill(MaybeUninit::new(0.0));
            for (o, (&max, &grad)) in y.iter().zip(dy).enumerate() {
                let (oh, ow) = (o / ow_n, o % ow_n);
                'window: for i in 0..kh {
                    let start = (oh * kh + i) * w + ow * kw;
                    for (j, &value) in x[start..start + kw].iter().enumerate() {
                        if value == max {
                            // Windows do not overlap: one gradient per position.
                            dx[start + j].write(grad);
                            break 'window;
                        }
                    }
                }
            }
        });
    // SAFETY: the chunks cover `dx`; each plane is either zero-filled first (general
    // windows) or written in full by `unpool_plane_2x2`.
    unsafe { filled(dx) }
}

/// [`unpool_plane_2x2`] as a `pulp` operation: `Arch::dispatch` runs it compiled for the
/// best instruction set the CPU has (a closure would not be inlined there).
struct Unpool2x2<'a> {
    x: &'a [f32],
    y: &'a [f32],
    dy: &'a [f32],
    w: usize,
    ow_n: usize,
    dx: &'a mut [MaybeUninit<f32>],
}

impl pulp::WithSimd for Unpool2x2<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        unpool_plane_2x2(self.x, self.y, self.dy, self.w, self.ow_n, self.dx);
    }
}

/// [`backward`] for one plane with 2x2 windows, without branches: every window's four
/// gradients are written (windows do not overlap), all but the first maximum's zero.
/// Inlined into a `pulp` dispatch, so that the loop is compiled for AVX-512 too.
#[inline(always)]
fn unpool_plane_2x2(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    w: usize,
    ow_n: usize,
    dx: &mut [MaybeUninit<f32>],
) {
    let zero = MaybeUninit::new(0.0);
    let covered = 2 * (y.len() / ow_n.max(1)) * w;
    for ((y_row, dy_row), oh) in y.chunks_exact(ow_n).zip(dy.chunks_exact(ow_n)).zip(0..) {
        let (top, bottom) = (2 * oh * w, (2 * oh + 1) * w);
        let (dx_top, dx_bottom) = dx[top..].split_at_mut(w);
        let dx_bottom = &mut dx_bottom[..w];
        // An odd width leaves a last column outside every window.
        dx_top[2 * ow_n..].fill(zero);
        dx_bottom[2 * ow_n..].fill(zero);
        unpool_rows_2x2(
            [&x[top..top + w], &x[bottom..bottom + w]],
            y_row,
            dy_row,
            [dx_top, dx_bottom],
        );
    }
    // An odd height leaves a last row outside every window.
    dx[covered..].fill(zero);
}

/// One row of 2x2 windows. Plain indexing over exact-length slices and non-short-circuit
/// `&` keep the loop free of bounds checks and branches, so that it vectorises.
#[inline(always)]
fn unpool_rows_2x2(x: [&[f32]; 2], y: &[f32], dy: &[f32], dx: [&mut [MaybeUninit<f32>]; 2]) {
    let n = y.len();
    let (dy, xt, xb) = (&dy[..n], &x[0][..2 * n], &x[1][..2 * n]);
    let [dt, db] = dx;
    let (dt, db) = (&mut dt[..2 * n], &mut db[..2 * n]);
    for o in 0..n {
        let (max, grad) = (y[o], dy[o]);
        let (a, b) = (xt[2 * o] == max, xt[2 * o + 1] == max);
        let (c, d) = (xb[2 * o] == max, xb[2 * o + 1] == max);
        let pick = |hit: bool| MaybeUninit::new(if hit { grad } else { 0.0 });
        dt[2 * o] = pick(a);
        dt[2 * o + 1] = pick(b & !a);
        db[2 * o] = pick(c & !(a | b));
        db[2 * o + 1] = pick(d & !(a | b | c));
    }
}

/// Pools the planes of `x` into `out` as [`forward`] does, also writing each pooled
/// value's position in its window (`i * kw + j`, the first maximum) into `argmax`.
pub(crate) fn forward_with_argmax(
    x: &[f32],
    g: &PoolGeometry,
    out: &mut [MaybeUninit<f32>],
    argmax: &mut [u8],
) {
    let [oh_n, ow_n] = g.out_hw();
    let (w, plane) = (g.width, g.height * g.width);
    let [kh, kw] = g.kernel;
    let windows = out
        .chunks_exact_mut(ow_n)
        .zip(argmax.chunks_exact_mut(ow_n));
    for ((out_row, arg_row), row) in windows.zip(0..g.planes * oh_n) {
        let (c, oh) = (row / oh_n, row % oh_n);
        let top = c * plane + oh * kh * w;
        if [kh, kw] == [2, 2] {
            let (t, b) = (&x[top..top + 2 * ow_n], &x[top + w..top + w + 2 * ow_n]);
            for (ow, (o, a)) in out_row.iter_mut().zip(arg_row.iter_mut()).enumerate() {
                let mut best = (t[2 * ow], 0);
                for (value, at) in [(t[2 * ow + 1], 1), (b[2 * ow], 2), (b[2 * ow + 1], 3)] {
                    if value > best.0 {
                        best = (value, at);
                    }
                }
                o.write(best.0);
                *a = best.1;
            }
            continue;
        }
        for (ow, (o, a)) in out_row.iter_mut().zip(arg_row.iter_mut()).enumerate() {
            let mut best = (f32::NEG_INFINITY, 0u8);
            let mut first = true;
            for i in 0..kh {
                let start = top + i * w + ow * kw;
                for (j, &value) in x[start..start + kw].iter().enumerate() {
                    if first || value > best.0 {
                        best = (value, (i * kw + j) as u8);
                        first = false;
                    }
                }
            }
            o.write(best.0);
            *a = best.1;
        }
    }
}

/// The gradient of [`forward_with_argmax`]'s input: zero, but for each pooled value's
/// gradient `dy` at its argmax position.
pub(crate) fn unpool_argmax(dy: &[f32], argmax: &[u8], g: &PoolGeometry, dx: &mut [f32]) {
    let [oh_n, ow_n] = g.out_hw();
    let (w, plane) = (g.width, g.height * g.width);
    let [kh, kw] = g.kernel;
    dx.fill(0.0);
    let rows = dy.chunks_exact(ow_n).zip(argmax.chunks_exact(ow_n));
    for ((dy_row, arg_row), row) in rows.zip(0..g.planes * oh_n) {
        let top = (row / oh_n) * plane + (row % oh_n) * kh * w;
        let window_row = &mut dx[top..top + kh * w];
        for (ow, (&grad, &at)) in dy_row.iter().zip(arg_row).enumerate() {
            let at = usize::from(at);
            let (i, j) = if kw == 2 {
                (at >> 1, at & 1)
            } else {
                (at / kw, at % kw)
            };
            window_row[i * w + ow * kw + j] = grad;
        }
    }
}
