//! Max pooling with non-overlapping windows (kernel = stride, no padding, floor mode)
//! on f32 NCHW slices: the forward keeps each window's argmax, the backward routes the
//! gradient to it. Flex's general max-pool costs ~100 cycles an output here
//! (shared/PERF-NOTES.md); this is a plain loop over planes on rayon's threads.

use rayon::prelude::*;

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

    fn out_hw(&self) -> [usize; 2] {
        self.output_size()
            .expect("PoolGeometry::output_size is checked before the kernels run")
    }
}

/// The pooled maxima (`[planes, OH, OW]`) and, for each, the index of the maximum
/// within its input plane (the first one on ties, as PyTorch).
pub(crate) fn forward(x: &[f32], g: &PoolGeometry) -> (Vec<f32>, Vec<u32>) {
    let [oh_n, ow_n] = g.out_hw();
    let (h, w) = (g.height, g.width);
    let [kh, kw] = g.kernel;
    assert_eq!(x.len(), g.planes * h * w, "pool input size");
    assert!(h * w <= u32::MAX as usize, "pool plane too large");
    let out_plane = oh_n * ow_n;
    let mut out = vec![0.0; g.planes * out_plane];
    let mut argmax = vec![0u32; g.planes * out_plane];
    if out.is_empty() {
        return (out, argmax);
    }
    out.par_chunks_mut(out_plane)
        .zip(argmax.par_chunks_mut(out_plane))
        .zip(x.par_chunks(h * w))
        .for_each(|((out, argmax), plane)| {
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let (mut best, mut at) = (f32::NEG_INFINITY, oh * kh * w + ow * kw);
                    for i in 0..kh {
                        let row = (oh * kh + i) * w + ow * kw;
                        for (j, &value) in plane[row..row + kw].iter().enumerate() {
                            // A NaN wins the window, so that it propagates.
                            if value > best || (value.is_nan() && !best.is_nan()) {
                                best = value;
                                at = row + j;
                            }
                        }
                    }
                    out[oh * ow_n + ow] = best;
                    argmax[oh * ow_n + ow] = at as u32;
                }
            }
        });
    (out, argmax)
}

/// The input gradient `[planes, H, W]`: each output's gradient lands on its argmax.
pub(crate) fn backward(dy: &[f32], argmax: &[u32], g: &PoolGeometry) -> Vec<f32> {
    let [oh_n, ow_n] = g.out_hw();
    let plane = g.height * g.width;
    let out_plane = oh_n * ow_n;
    assert_eq!(dy.len(), g.planes * out_plane, "pool output gradient size");
    assert_eq!(argmax.len(), dy.len(), "pool argmax size");
    let mut dx = vec![0.0; g.planes * plane];
    if dx.is_empty() || dy.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(plane)
        .zip(dy.par_chunks(out_plane).zip(argmax.par_chunks(out_plane)))
        .for_each(|(dx, (dy, argmax))| {
            for (&d, &at) in dy.iter().zip(argmax) {
                dx[at as usize] += d;
            }
        });
    dx
}
