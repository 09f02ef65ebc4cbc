//! Depthwise 2-D convolution (one `kh x kw` filter per channel: `groups = channels`,
//! weight `[C, 1, kh, kw]`; MobileNets, Howard et al. 2017) on f32 NCHW slices, forward
//! and both gradients. Burn 0.22.1's flex runs a grouped convolution as one small
//! convolution per group and its input gradient as a transposed 3-D convolution; these
//! loops instead work plane by plane (one image's channel), with the plane and its
//! filter in cache: for each filter tap, one pass of multiply-adds over an output row,
//! contiguous at any stride: a strided plane is first split into its column phases
//! ([`Phases`]). Planes (forward, input gradient) and channels (weight gradient) are
//! spread over rayon, and each task runs compiled for the best instruction set the CPU
//! has (`pulp` dispatch: the crate is built for baseline x86-64, whose 4-lane SSE loops
//! made these the slowest kernels of an EfficientNet).

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

/// An input plane's columns grouped by their phase modulo the stride: column `j` of row
/// `iy` at `((j % stride) * height + iy) * phase_width + j / stride`. The columns a filter
/// tap reads at a stride (`first`, `first + stride`, ...) are then contiguous, and the
/// loops over them vectorise as at stride 1. At stride 1 it is the plane itself.
#[derive(Debug, Clone, Copy)]
struct Phases {
    stride: usize,
    height: usize,
    width: usize,
    phase_width: usize,
}

impl Phases {
    fn of(g: &ConvGeometry) -> Self {
        let stride = g.stride[1];
        Self {
            stride,
            height: g.height,
            width: g.width,
            phase_width: g.width.div_ceil(stride),
        }
    }

    /// Values a split plane holds (a phase's last columns may be padding).
    fn len(&self) -> usize {
        self.stride * self.height * self.phase_width
    }

    /// Where the run of columns `first, first + stride, ...` of row `iy` starts.
    fn start(&self, iy: usize, first: usize) -> usize {
        if self.stride == 1 {
            return iy * self.width + first;
        }
        ((first % self.stride) * self.height + iy) * self.phase_width + first / self.stride
    }

    /// Each phase's rows: `(phase, row, its place in a split plane)`.
    #[inline(always)]
    fn rows(&self) -> impl Iterator<Item = (usize, usize, usize)> + use<> {
        let Self {
            stride,
            height,
            phase_width,
            ..
        } = *self;
        (0..stride)
            .flat_map(move |r| (0..height).map(move |iy| (r, iy, (r * height + iy) * phase_width)))
    }

    /// `plane` split into phases (borrowed as it is at stride 1).
    #[inline(always)]
    fn split<'a>(&self, plane: &'a [f32]) -> std::borrow::Cow<'a, [f32]> {
        if self.stride == 1 {
            return plane.into();
        }
        let mut split = vec![0f32; self.len()];
        for (r, iy, at) in self.rows() {
            let row = &plane[iy * self.width..(iy + 1) * self.width];
            let columns = row.iter().skip(r).step_by(self.stride);
            for (out, &v) in split[at..at + self.phase_width].iter_mut().zip(columns) {
                *out = v;
            }
        }
        split.into()
    }

    /// Writes a split plane back into `plane`, column by column (at stride > 1).
    #[inline(always)]
    fn merge(&self, split: &[f32], plane: &mut [f32]) {
        for (r, iy, at) in self.rows() {
            let row = &mut plane[iy * self.width..(iy + 1) * self.width];
            let columns = row.iter_mut().skip(r).step_by(self.stride);
            for (v, &out) in columns.zip(&split[at..at + self.phase_width]) {
                *v = out;
            }
        }
    }
}

/// One filter tap over one output row: `len` outputs from `output` (in the output plane)
/// read `len` inputs from `input` (in the plane split into [`Phases`]) with filter weight
/// `weight`. The same for every plane: listed once a call.
#[derive(Debug, Clone, Copy)]
struct Tap {
    output: usize,
    input: usize,
    len: usize,
    weight: usize,
}

/// Every tap of a plane whose inputs are inside the image, row by row.
fn taps(g: &ConvGeometry, phases: &Phases) -> Vec<Tap> {
    let [_, ow] = g.out_hw();
    let columns = tap_columns(g);
    let mut taps = Vec::new();
    for_each_tap(g, &columns, |oy, iy, kx, ky, (o0, o1)| {
        taps.push(Tap {
            output: oy * ow + o0,
            input: phases.start(iy, o0 * g.stride[1] + kx - g.padding[1].0),
            len: o1 - o0,
            weight: ky * g.kernel[1] + kx,
        })
    });
    taps
}

/// One plane of the forward pass, as a `pulp` operation: `with_simd` and the loops it runs
/// are inlined into a function compiled for the CPU's instruction set (a closure would be
/// called from every instantiation and compiled for none).
struct ForwardPlane<'a> {
    x: &'a [f32],
    filter: &'a [f32],
    bias: Option<f32>,
    y: &'a mut [f32],
    taps: &'a [Tap],
    phases: Phases,
}

impl pulp::WithSimd for ForwardPlane<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        if let Some(b) = self.bias {
            self.y.fill(b);
        }
        let x = self.phases.split(self.x);
        for t in self.taps {
            let tap = self.filter[t.weight];
            let out = &mut self.y[t.output..t.output + t.len];
            for (out, &v) in out.iter_mut().zip(&x[t.input..t.input + t.len]) {
                *out += tap * v;
            }
        }
    }
}

/// One plane of the input gradient (see [`ForwardPlane`]).
struct InputGradPlane<'a> {
    dy: &'a [f32],
    filter: &'a [f32],
    dx: &'a mut [f32],
    taps: &'a [Tap],
    phases: Phases,
}

impl pulp::WithSimd for InputGradPlane<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let strided = self.phases.stride > 1;
        let mut split = if strided {
            vec![0f32; self.phases.len()]
        } else {
            Vec::new()
        };
        let target: &mut [f32] = if strided { &mut split } else { self.dx };
        for t in self.taps {
            let tap = self.filter[t.weight];
            let dy = &self.dy[t.output..t.output + t.len];
            for (d, &v) in target[t.input..t.input + t.len].iter_mut().zip(dy) {
                *d += tap * v;
            }
        }
        if strided {
            self.phases.merge(&split, self.dx);
        }
    }
}

/// One channel of the weight and bias gradients, over the batch (see [`ForwardPlane`]).
struct WeightGradChannel<'a> {
    /// The channel's input planes and output-gradient planes, image by image.
    planes: Vec<(&'a [f32], &'a [f32])>,
    taps: &'a [Tap],
    phases: Phases,
    filter_len: usize,
}

impl pulp::WithSimd for WeightGradChannel<'_> {
    type Output = (Vec<f32>, f32);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> (Vec<f32>, f32) {
        let mut dw = vec![0f32; self.filter_len];
        let mut db = 0f32;
        for (x, dy) in self.planes {
            let x = self.phases.split(x);
            db += dot(dy, None);
            for t in self.taps {
                let dy = &dy[t.output..t.output + t.len];
                dw[t.weight] += dot(dy, Some(&x[t.input..t.input + t.len]));
            }
        }
        (dw, db)
    }
}

/// The output `[N, C, oh, ow]` of the convolution of `x` `[N, C, H, W]` with `w`
/// `[C, 1, kh, kw]`, plus `bias` `[C]`.
pub(super) fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32> {
    let [oh, ow] = g.out_hw();
    let (c, plane_in, plane_out) = (g.in_channels, g.height * g.width, oh * ow);
    let filter_len = g.kernel[0] * g.kernel[1];
    let phases = Phases::of(g);
    let taps = taps(g, &phases);
    let simd = pulp::Arch::new();
    let mut y = vec![0f32; g.batch * c * plane_out];
    y.par_chunks_mut(plane_out)
        .zip(x.par_chunks(plane_in))
        .enumerate()
        .for_each(|(p, (y, x))| {
            let ch = p % c;
            simd.dispatch(ForwardPlane {
                x,
                filter: &w[ch * filter_len..(ch + 1) * filter_len],
                bias: bias.map(|b| b[ch]),
                y,
                taps: &taps,
                phases,
            })
        });
    y
}

/// The gradient of the input from the output gradient `dy` `[N, C, oh, ow]`.
pub(super) fn input_grad(w: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let [oh, ow] = g.out_hw();
    let (c, plane_in, plane_out) = (g.in_channels, g.height * g.width, oh * ow);
    let filter_len = g.kernel[0] * g.kernel[1];
    let phases = Phases::of(g);
    let taps = taps(g, &phases);
    let simd = pulp::Arch::new();
    let mut dx = vec![0f32; g.batch * c * plane_in];
    dx.par_chunks_mut(plane_in)
        .zip(dy.par_chunks(plane_out))
        .enumerate()
        .for_each(|(p, (dx, dy))| {
            let ch = p % c;
            simd.dispatch(InputGradPlane {
                dy,
                filter: &w[ch * filter_len..(ch + 1) * filter_len],
                dx,
                taps: &taps,
                phases,
            })
        });
    dx
}

/// The gradients of the weight `[C, 1, kh, kw]` and of the bias `[C]`.
pub(super) fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> (Vec<f32>, Vec<f32>) {
    let [oh, ow] = g.out_hw();
    let (c, plane_in, plane_out) = (g.in_channels, g.height * g.width, oh * ow);
    let filter_len = g.kernel[0] * g.kernel[1];
    let phases = Phases::of(g);
    let taps = taps(g, &phases);
    let simd = pulp::Arch::new();
    let per_channel: Vec<(Vec<f32>, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = (0..g.batch)
                .map(|n| {
                    let p = n * c + ch;
                    (
                        &x[p * plane_in..(p + 1) * plane_in],
                        &dy[p * plane_out..(p + 1) * plane_out],
                    )
                })
                .collect();
            simd.dispatch(WeightGradChannel {
                planes,
                taps: &taps,
                phases,
                filter_len,
            })
        })
        .collect();
    let db = per_channel.iter().map(|(_, b)| *b).collect();
    let dw = per_channel.into_iter().flat_map(|(w, _)| w).collect();
    (dw, db)
}

/// `sum(a[i] * b[i])` (or `sum(a[i])` without `b`) in 16 independent lanes, which the
/// compiler vectorises; a plain iterator sum is one sequential chain of additions.
#[inline(always)]
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
    fn phases_put_each_strided_run_together_and_merge_back() {
        // 3 rows of 7 columns at stride 3: phases of columns {0,3,6}, {1,4}, {2,5}.
        let plain = ConvGeometry {
            batch: 1,
            in_channels: 1,
            height: 3,
            width: 7,
            out_channels: 1,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [(0, 0); 2],
        };
        let geometry = ConvGeometry {
            stride: [2, 3],
            ..plain
        };
        let phases = Phases::of(&geometry);
        let plane: Vec<f32> = (0..21).map(|v| v as f32).collect();
        let split = phases.split(&plane);
        // Row 1's columns 1 and 4, then row 2's columns 0, 3, 6: each run contiguous.
        let at = phases.start(1, 1);
        assert_eq!(&split[at..at + 2], &[8.0, 11.0]);
        let at = phases.start(2, 0);
        assert_eq!(&split[at..at + 3], &[14.0, 17.0, 20.0]);
        let mut merged = vec![0f32; 21];
        phases.merge(&split, &mut merged);
        assert_eq!(merged, plane);
        // At stride 1 the split plane is the plane.
        let phases = Phases::of(&plain);
        assert_eq!(phases.start(2, 5), 19);
        assert!(matches!(
            phases.split(&plane),
            std::borrow::Cow::Borrowed(_)
        ));
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
