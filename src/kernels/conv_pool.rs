//! A convolution followed by non-overlapping max pooling, fused: each image's
//! convolution output is pooled while it is still in cache, so the full-resolution map
//! (12.8 MB for the CNN's first layer at batch 128) is never written to memory, and the
//! backward pass keeps only each window's argmax (one byte per pooled value). Backward,
//! per image: scatter the pooled gradient to the argmax positions of a cached buffer,
//! then the convolution's weight and input gradients from it ([`super::conv`]).

use rayon::prelude::*;

use super::conv::{
    self, ConvGeometry, add_input_grad, add_weight_grad, ones_below, split_bias_column,
    with_bias_column,
};
use super::gemm::{MatRef, filled, gemm, unfilled};
use super::pool::PoolGeometry;

/// The pooling of one image's convolution output: `planes` is the output channels.
fn pool_of(g: &ConvGeometry, kernel: [usize; 2]) -> PoolGeometry {
    let [height, width] = g.out_hw();
    PoolGeometry {
        planes: g.out_channels,
        height,
        width,
        kernel,
    }
}

/// Whether the fused kernel covers a pooling window of `kernel` on `g`'s output: the
/// window fits, and its argmax fits in a byte.
pub(crate) fn covers(g: &ConvGeometry, kernel: [usize; 2]) -> bool {
    kernel[0] * kernel[1] <= 256 && pool_of(g, kernel).output_size().is_some()
}

/// The pooled output `[N, Co, OH / kh, OW / kw]` and each pooled value's position in its
/// window (`i * kw + j`, the first maximum in row-major order, as Burn's max-pool picks).
pub(crate) fn forward(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeometry,
    kernel: [usize; 2],
) -> (Vec<f32>, Vec<u8>) {
    let (k, p, co) = (g.patch(), g.positions(), g.out_channels);
    let pg = pool_of(g, kernel);
    let [ph, pw] = pg.out_hw();
    let pooled_image = co * ph * pw;
    assert_eq!(x.len(), g.batch * g.image(), "conv input size");
    assert_eq!(w.len(), co * k, "conv weight size");
    let mut out = unfilled(g.batch * pooled_image);
    let mut argmax = vec![0u8; g.batch * pooled_image];
    if out.is_empty() {
        return (Vec::new(), argmax);
    }
    let weight = match bias {
        Some(bias) => with_bias_column(w, bias, k),
        None => w.to_vec(),
    };
    let rows = k + usize::from(bias.is_some());
    out.par_chunks_mut(pooled_image)
        .zip(argmax.par_chunks_mut(pooled_image))
        .zip(x.par_chunks(g.image()))
        .for_each_init(
            || (ones_below(k, rows, p), vec![0.0; co * p]),
            |(cols, conv_n), ((out_n, arg_n), x_n)| {
                conv::unfold(x_n, g, &mut cols[..k * p]);
                gemm(
                    conv_n,
                    false,
                    MatRef::row_major(&weight, co, rows),
                    MatRef::row_major(cols, rows, p),
                );
                super::pool::forward_with_argmax(conv_n, &pg, out_n, arg_n);
            },
        );
    // SAFETY: the chunks cover `out`, and `forward_with_argmax` writes every pooled value.
    (unsafe { filled(out) }, argmax)
}

/// What the fused backward computes: the input gradient and/or `(dW, db)`.
pub(crate) struct Gradients {
    pub input: Option<Vec<f32>>,
    pub weight_bias: Option<(Vec<f32>, Vec<f32>)>,
}

/// Gradients from the pooled output's gradient `d_pooled` and the forward's `argmax`.
pub(crate) fn backward(
    x: &[f32],
    w: &[f32],
    d_pooled: &[f32],
    argmax: &[u8],
    g: &ConvGeometry,
    kernel: [usize; 2],
    [want_input, want_weight]: [bool; 2],
) -> Gradients {
    let (k, p, co) = (g.patch(), g.positions(), g.out_channels);
    let pg = pool_of(g, kernel);
    let [ph, pw] = pg.out_hw();
    let pooled_image = co * ph * pw;
    assert_eq!(
        d_pooled.len(),
        g.batch * pooled_image,
        "pooled gradient size"
    );
    assert_eq!(argmax.len(), d_pooled.len(), "argmax size");
    let rows = k + 1;
    let zeros = || vec![0.0; if want_weight { co * rows } else { 0 }];
    // Per thread: the running [dW | db], the unpooled gradient, a column buffer.
    let scratch = || (zeros(), vec![0.0; co * p], Vec::new());
    let image_step = |(sums, dy_n, cols): &mut (Vec<f32>, Vec<f32>, Vec<f32>),
                      x_n: &[f32],
                      dp_n: &[f32],
                      arg_n: &[u8],
                      dx_n: Option<&mut [f32]>| {
        super::pool::unpool_argmax(dp_n, arg_n, &pg, dy_n);
        if want_weight {
            add_weight_grad(sums, cols, x_n, dy_n, g);
        }
        if let Some(dx_n) = dx_n {
            if cols.len() < k * p {
                *cols = ones_below(k, rows, p);
            }
            add_input_grad(dx_n, cols, w, dy_n, g);
        }
    };
    let per_thread = g.batch.div_ceil(rayon::current_num_threads().max(1)).max(1);
    let sum_up = |a: Vec<f32>, b: Vec<f32>| {
        let mut a = a;
        a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
        a
    };
    let images = x
        .par_chunks(g.image().max(1))
        .zip(d_pooled.par_chunks(pooled_image.max(1)))
        .zip(argmax.par_chunks(pooled_image.max(1)));
    let (input, sums) = if want_input {
        let mut dx = vec![0.0; g.batch * g.image()];
        let sums = dx
            .par_chunks_mut(g.image().max(1))
            .zip(images)
            .with_min_len(per_thread)
            .fold(scratch, |mut state, (dx_n, ((x_n, dp_n), arg_n))| {
                image_step(&mut state, x_n, dp_n, arg_n, Some(dx_n));
                state
            })
            .map(|(sums, _, _)| sums)
            .reduce(zeros, sum_up);
        (Some(dx), sums)
    } else {
        let sums = images
            .with_min_len(per_thread)
            .fold(scratch, |mut state, ((x_n, dp_n), arg_n)| {
                image_step(&mut state, x_n, dp_n, arg_n, None);
                state
            })
            .map(|(sums, _, _)| sums)
            .reduce(zeros, sum_up);
        (None, sums)
    };
    Gradients {
        input,
        weight_bias: want_weight.then(|| split_bias_column(&sums, k)),
    }
}
