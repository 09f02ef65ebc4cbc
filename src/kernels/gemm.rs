//! A bounds-checked front to the `gemm` crate, the matrix multiply that Burn's flex
//! backend itself runs (AVX-512 here): the convolution kernels are im2col + this.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// A read-only strided matrix view: element `(r, c)` is `data[r * row_stride + c * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// Rows `start..start + rows` of this view (no copy).
    pub fn rows(self, start: usize, rows: usize) -> Self {
        assert!(start + rows <= self.rows, "gemm: rows out of range");
        let offset = (start * self.row_stride).min(self.data.len());
        Self {
            data: &self.data[offset..],
            rows,
            ..self
        }
    }

    /// The transpose of this view (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn check(&self, what: &str) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
            assert!(
                last < self.data.len(),
                "gemm: {what} view {}x{} (strides {}, {}) overruns {} elements",
                self.rows,
                self.cols,
                self.row_stride,
                self.col_stride,
                self.data.len()
            );
        }
    }
}

/// `dst = lhs * rhs`, or `dst += lhs * rhs` when `accumulate`, with `dst` a row-major
/// `lhs.rows x rhs.cols` matrix. Runs on the calling thread: callers parallelise over
/// images, which keeps both cores busy on the small matrices of a convolution.
pub(crate) fn gemm(dst: &mut [f32], accumulate: bool, lhs: MatRef<'_>, rhs: MatRef<'_>) {
    let (m, n) = check(dst.len(), lhs, rhs);
    if lhs.cols == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    // SAFETY: `check` proved every index the multiply touches in bounds; `dst` is
    // borrowed mutably, so it does not alias `lhs` or `rhs`.
    unsafe { multiply(dst.as_mut_ptr(), accumulate, m, n, lhs, rhs) }
}

/// [`gemm`] spread over rayon's threads: the rows of `dst` (and `lhs`) are cut into one
/// block per thread, each multiplied on its own. For the mid-sized products of a small
/// network this scales better than the `gemm` crate's own threading (measured here: a
/// 256x784x512 product at 1.37x one core's rate with the crate's threads on 2 cores).
pub(crate) fn par_gemm(dst: &mut [f32], accumulate: bool, lhs: MatRef<'_>, rhs: MatRef<'_>) {
    let (m, n) = check(dst.len(), lhs, rhs);
    by_row_blocks(dst, m, n, |dst, first, rows| {
        gemm(dst, accumulate, lhs.rows(first, rows), rhs);
    });
}

/// Splits an `m x n` row-major destination into one block of rows per core and runs
/// `product(block, first row, rows)` on each block at once.
fn by_row_blocks<T: Send>(
    dst: &mut [T],
    m: usize,
    n: usize,
    product: impl Fn(&mut [T], usize, usize) + Sync,
) {
    if m == 0 || n == 0 {
        return;
    }
    let block = m.div_ceil(rayon::current_num_threads().max(1));
    dst.par_chunks_mut(block * n)
        .enumerate()
        .for_each(|(i, dst)| {
            let rows = dst.len() / n;
            product(dst, i * block, rows);
        });
}

/// `dst = lhs * rhs` into memory that was never initialised: every element of `dst` is
/// written (the product does not read its destination), so the caller needs no zero fill.
pub(crate) fn gemm_into(dst: &mut [MaybeUninit<f32>], lhs: MatRef<'_>, rhs: MatRef<'_>) {
    let (m, n) = check(dst.len(), lhs, rhs);
    if lhs.cols == 0 {
        dst.fill(MaybeUninit::new(0.0));
        return;
    }
    // SAFETY: as in `gemm`; with `read_dst` false the product only writes `dst`, so its
    // uninitialised contents are never read. `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { multiply(dst.as_mut_ptr().cast(), false, m, n, lhs, rhs) }
}

/// [`gemm_into`] with the rows of `dst` (and of `lhs`) split across the cores, as
/// [`par_gemm`]: for one product too large for one core, such as a single image's
/// convolution.
pub(crate) fn par_gemm_into(dst: &mut [MaybeUninit<f32>], lhs: MatRef<'_>, rhs: MatRef<'_>) {
    let (m, n) = check(dst.len(), lhs, rhs);
    by_row_blocks(dst, m, n, |dst, first, rows| {
        gemm_into(dst, lhs.rows(first, rows), rhs);
    });
}

/// Checks the shapes and bounds of a product into `dst_len` elements; returns `(m, n)`.
fn check(dst_len: usize, lhs: MatRef<'_>, rhs: MatRef<'_>) -> (usize, usize) {
    assert_eq!(lhs.cols, rhs.rows, "gemm: inner dimensions differ");
    let (m, n) = (lhs.rows, rhs.cols);
    assert_eq!(dst_len, m * n, "gemm: destination is not {m}x{n}");
    lhs.check("left");
    rhs.check("right");
    (m, n)
}

/// # Safety
/// `dst` points to `m * n` writable floats (readable too when `read_dst`) that alias
/// neither operand, and both operand views were bounds-checked.
unsafe fn multiply(
    dst: *mut f32,
    read_dst: bool,
    m: usize,
    n: usize,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the caller's contract; strides are non-negative and in bounds.
    unsafe {
        gemm::gemm(
            m,
            n,
            lhs.cols,
            dst,
            1,
            n as isize,
            read_dst,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `len` floats that a kernel will write in full before anything reads them: the
/// allocation skips the zero fill that `vec![0.0; len]` pays (tens of MB per step).
pub(crate) fn unfilled(len: usize) -> Box<[MaybeUninit<f32>]> {
    Box::new_uninit_slice(len)
}

/// The buffer of [`unfilled`] once every element was written.
///
/// # Safety
/// Every element of `buffer` must have been written.
pub(crate) unsafe fn filled(buffer: Box<[MaybeUninit<f32>]>) -> Vec<f32> {
    // SAFETY: the caller's contract.
    unsafe { buffer.assume_init() }.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for r in 0..a.rows {
            for c in 0..b.cols {
                out[r * b.cols + c] = (0..a.cols)
                    .map(|i| {
                        a.data[r * a.row_stride + i * a.col_stride]
                            * b.data[i * b.row_stride + c * b.col_stride]
                    })
                    .sum();
            }
        }
        out
    }

    #[test]
    fn matches_a_naive_product_with_transposed_views_and_accumulation() {
        let a: Vec<f32> = (0..15).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..20).map(|i| (i as f32 * 0.11).cos()).collect();
        let lhs = MatRef::row_major(&a, 5, 3).t(); // 3x5
        let rhs = MatRef::row_major(&b, 4, 5).t(); // 5x4
        let mut dst = vec![1.0; 12];
        gemm(&mut dst, true, lhs, rhs);
        let want = naive(lhs, rhs);
        for (got, want) in dst.iter().zip(&want) {
            assert!((got - (want + 1.0)).abs() < 1e-5, "{got} vs {}", want + 1.0);
        }
        gemm(&mut dst, false, lhs, rhs);
        for (got, want) in dst.iter().zip(&want) {
            assert!((got - want).abs() < 1e-5);
        }
    }

    #[test]
    fn writes_every_element_of_an_unfilled_destination() {
        let a: Vec<f32> = (0..6).map(|i| i as f32 - 2.5).collect();
        let lhs = MatRef::row_major(&a, 2, 3);
        let rhs = MatRef::row_major(&a, 3, 2);
        let mut dst = unfilled(4);
        gemm_into(&mut dst, lhs, rhs);
        // SAFETY: gemm_into wrote all four elements.
        let dst = unsafe { filled(dst) };
        assert_eq!(dst, naive(lhs, rhs));
        let mut empty_inner = unfilled(4);
        gemm_into(
            &mut empty_inner,
            MatRef::row_major(&[], 2, 0),
            MatRef::row_major(&[], 0, 2),
        );
        // SAFETY: as above (a product over no terms is zero).
        assert_eq!(unsafe { filled(empty_inner) }, vec![0.0; 4]);
    }

    #[test]
    fn splits_rows_across_threads_with_the_same_result() {
        let a: Vec<f32> = (0..7 * 5).map(|i| (i as f32 * 0.3).sin()).collect();
        let b: Vec<f32> = (0..5 * 4).map(|i| (i as f32 * 0.7).cos()).collect();
        // A transposed left operand, as a weight gradient's x^T.
        let lhs = MatRef::row_major(&a, 5, 7).t();
        let rhs = MatRef::row_major(&b, 5, 4);
        let mut dst = vec![0.5; 7 * 4];
        par_gemm(&mut dst, true, lhs, rhs);
        let want = naive(lhs, rhs);
        for (got, want) in dst.iter().zip(&want) {
            assert!((got - (want + 0.5)).abs() < 1e-5, "{got} vs {}", want + 0.5);
        }
        let mut fresh = unfilled(7 * 4);
        par_gemm_into(&mut fresh, lhs, rhs);
        // SAFETY: the product wrote every element.
        let fresh = unsafe { filled(fresh) };
        for (got, want) in fresh.iter().zip(&want) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        assert_eq!(naive(lhs.rows(2, 3), rhs), want[2 * 4..5 * 4].to_vec());
    }

    #[test]
    #[should_panic(expected = "overruns")]
    fn refuses_a_view_larger_than_its_slice() {
        let a = vec![0.0; 5];
        let mut dst = vec![0.0; 4];
        gemm(
            &mut dst,
            false,
            MatRef::row_major(&a, 2, 3),
            MatRef::row_major(&a, 3, 2),
        );
    }
}
