//! mentor's own CPU kernels for the layers where Burn 0.22.1's flex backend is slow:
//! 2-D convolution ([`conv2d`]: im2col + gemm, forward and both gradients; depthwise
//! convolutions with direct per-plane loops) and
//! non-overlapping max pooling ([`max_pool2d`]), ReLU6 ([`relu6`]). shared/PERF-NOTES.md measured where
//! flex's CNN step loses its time (weight gradient, first layer, max-pool); these run
//! the same mathematics as Burn's layers and take part in Burn's autodiff graph with
//! their own backward (`burn-autodiff`'s `Backward` trait), without forking Burn.
//!
//! The fast path is taken for f32 tensors on the CPU (flex, with or without autodiff)
//! and for the layer options it covers (groups 1 or one per channel, dilation 1, any
//! padding;
//! pooling windows equal to their stride). Everything else (GPU backends, other
//! options) goes through Burn's own layer, so results never depend on the device
//! being served. [`set_enabled`] switches the kernels off for a comparison run
//! (`mentor bench --kernels burn`). A test compares both paths, forward and gradients.

mod adam;
mod autodiff;
mod batch_norm;
mod conv;
mod conv_pool;
pub mod denormals;
mod depthwise;
mod gemm;
mod linear;
#[cfg(test)]
mod optimiser_steps;
mod pool;
pub mod portable;
mod quadratic;
mod relu6;
mod sgd;

use std::sync::atomic::{AtomicBool, Ordering};

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::{DType, Tensor, TensorData};

pub use adam::FusedAdam;
pub use batch_norm::Activation;
pub(crate) use conv::ConvGeometry;
pub use denormals::Denormals;
pub(crate) use pool::PoolGeometry;
pub use sgd::{FusedSgd, SgdVelocity};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns mentor's kernels on (the default) or off (every layer runs Burn's own
/// implementation, and optimisers built afterwards use Burn's `Sgd`). Process-wide;
/// meant for benchmarks and comparisons.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether mentor's kernels are used where they apply.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// `conv.forward(input)`, through mentor's convolution where it applies.
pub fn conv2d(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    let weight = conv.weight.val();
    let bias = conv.bias.as_ref().map(|b| b.val());
    let fast = match covered_geometry(conv, &input) {
        Some((geometry, ConvKind::Dense)) => {
            autodiff::conv2d(&input, &weight, bias.as_ref(), geometry)
        }
        Some((geometry, ConvKind::Depthwise)) => {
            autodiff::depthwise_conv2d(&input, &weight, bias.as_ref(), geometry)
        }
        None => None,
    };
    fast.unwrap_or_else(|| conv.forward(input))
}

/// `sum_k f_k (p_k - a_k)^2` as a one-element tensor (EWC's merged penalty), through
/// mentor's kernel on f32 CPU tensors (one pass forward, one backward); Burn's tensor
/// operations elsewhere and with the kernels off.
pub fn weighted_squared_distance(p: Tensor<1>, f: &Tensor<1>, a: &Tensor<1>) -> Tensor<1> {
    let fast = enabled()
        .then(|| autodiff::weighted_squared_distance(&p, f, a))
        .flatten();
    fast.unwrap_or_else(|| {
        let d = p - a.clone();
        (f.clone() * d.clone() * d).sum()
    })
}

/// `pool.forward(input)`, through mentor's max pooling where it applies.
pub fn max_pool2d(pool: &MaxPool2d, input: Tensor<4>) -> Tensor<4> {
    match pool_geometry(pool, &input) {
        Some(geometry) => {
            autodiff::max_pool2d(&input, geometry).unwrap_or_else(|| pool.forward(input))
        }
        None => pool.forward(input),
    }
}

/// ReLU6, `min(max(x, 0), 6)`, through mentor's kernel on f32 CPU tensors (Burn's
/// `clamp` elsewhere).
pub fn relu6<const D: usize>(input: Tensor<D>) -> Tensor<D> {
    if portable::exporting() {
        return portable::clamp_zero_to(input, 6.0);
    }
    if !enabled() || input.dtype() != DType::F32 {
        return input.clamp(0.0, 6.0);
    }
    autodiff::relu6(&input).unwrap_or_else(|| input.clamp(0.0, 6.0))
}

/// `activation(bn.forward(input))` (Ioffe & Szegedy 2015), through mentor's batch-norm
/// kernel on f32 CPU tensors: in training (an autodiff device and the layer's training
/// flag on, as Burn decides) with the batch's statistics, updating the running ones as
/// Burn does; otherwise with the running statistics. Elsewhere, and while exporting,
/// Burn's layer then the activation.
pub fn batch_norm(bn: &BatchNorm, input: Tensor<4>, activation: Activation) -> Tensor<4> {
    let kernel = (!portable::exporting() && enabled())
        .then(|| batch_norm_kernel(bn, &input, activation))
        .flatten();
    kernel.unwrap_or_else(|| {
        let y = bn.forward(input);
        match activation {
            Activation::Identity => y,
            Activation::Relu => burn::tensor::activation::relu(y),
            Activation::Relu6 => relu6(y),
        }
    })
}

/// [`batch_norm`] through the kernel, or `None` where it does not apply.
fn batch_norm_kernel(
    bn: &BatchNorm,
    input: &Tensor<4>,
    activation: Activation,
) -> Option<Tensor<4>> {
    let (gamma, beta) = (bn.gamma.val(), bn.beta.val());
    let all_f32 = [input.dtype(), gamma.dtype(), beta.dtype()] == [DType::F32; 3];
    let dims = input.dims();
    // On another device the running statistics are not read back (a sync per layer).
    if !all_f32 || gamma.dims() != [dims[1]] || !autodiff::served(input) {
        return None;
    }
    let device = input.device();
    let training = device.is_autodiff() && bn.training.is_enabled();
    let running = if training {
        None
    } else {
        let read = |t: Tensor<1>| t.into_data().try_into_vec::<f32>().ok();
        let mean = read(bn.running_mean.value())?;
        let variance = read(bn.running_var.value())?;
        Some(std::sync::Arc::new((mean, variance)))
    };
    let geometry = autodiff::BatchNormGeometry {
        dims,
        epsilon: bn.epsilon,
        activation,
        running,
    };
    let (out, kept) = autodiff::batch_norm(input, &gamma, &beta, geometry)?;
    if training {
        // Burn's update: running = running * (1 - momentum) + batch * momentum, with the
        // batch's biased variance.
        let m = bn.momentum;
        let update = |state: &burn::module::RunningState<Tensor<1>>, batch: &[f32]| {
            let batch = Tensor::<1>::from_data(TensorData::new(batch.to_vec(), [dims[1]]), &device);
            let running = state.value_sync().to_device(&device);
            state.update(
                running
                    .mul_scalar(1.0 - m)
                    .add(batch.mul_scalar(m))
                    .detach(),
            );
        };
        update(&bn.running_mean, &kept.mean);
        update(&bn.running_var, &kept.variance);
    }
    Some(out)
}

/// The hard sigmoid of MobileNetV3, `clamp(x / 6 + 1/2, 0, 1)` (Burn's `hard_sigmoid`
/// with alpha 1/6 and beta 1/2; torchvision's `Hardsigmoid`).
pub fn hard_sigmoid<const D: usize>(input: Tensor<D>) -> Tensor<D> {
    if portable::exporting() {
        return portable::clamp_zero_to(input.mul_scalar(1.0 / 6.0).add_scalar(0.5), 1.0);
    }
    burn::tensor::activation::hard_sigmoid(input, 1.0 / 6.0, 0.5)
}

/// The hard swish of MobileNetV3, `x * hard_sigmoid(x)` (torchvision's `Hardswish`).
pub fn hard_swish<const D: usize>(input: Tensor<D>) -> Tensor<D> {
    input.clone().mul(hard_sigmoid(input))
}

/// The mean of each channel over height and width, `[N, C, H, W]` to `[N, C, 1, 1]`.
pub fn mean_hw(input: Tensor<4>) -> Tensor<4> {
    if portable::exporting() {
        return portable::mean_hw(input);
    }
    input.mean_dim(3).mean_dim(2)
}

/// `max_pool2d(pool, conv2d(conv, input))`, fused where mentor's kernels cover both:
/// the convolution's full-resolution output is pooled image by image while in cache and
/// never stored (see `conv_pool`); otherwise the two layers one after the other.
pub fn conv2d_max_pool2d(conv: &Conv2d, pool: &MaxPool2d, input: Tensor<4>) -> Tensor<4> {
    let fused = conv_geometry(conv, &input).filter(|g| {
        let [oh, ow] = g.output_size().unwrap_or([0, 0]);
        pool_geometry_of(pool, input.dtype(), [g.batch, g.out_channels, oh, ow]).is_some()
            && conv_pool::covers(g, pool.kernel_size)
    });
    if let Some(geometry) = fused {
        let weight = conv.weight.val();
        let bias = conv.bias.as_ref().map(|b| b.val());
        let pooled =
            autodiff::conv2d_max_pool2d(&input, &weight, bias.as_ref(), geometry, pool.kernel_size);
        if let Some(pooled) = pooled {
            return pooled;
        }
    }
    max_pool2d(pool, conv2d(conv, input))
}

/// `layer.forward(input)` for a batch of feature rows, through mentor's fully connected
/// kernel where it applies (its products split across the cores by rows).
pub fn linear(layer: &Linear, input: Tensor<2>) -> Tensor<2> {
    let [batch, inputs] = input.dims();
    let [weight_in, outputs] = layer.weight.dims();
    let weight = layer.weight.val();
    let bias_f32 = layer
        .bias
        .as_ref()
        .is_none_or(|b| b.val().dtype() == DType::F32);
    if !enabled()
        || input.dtype() != DType::F32
        || weight.dtype() != DType::F32
        || !bias_f32
        || weight_in != inputs
    {
        return layer.forward(input);
    }
    let geometry = linear::LinearGeometry {
        batch,
        inputs,
        outputs,
    };
    let bias = layer.bias.as_ref().map(|b| b.val());
    autodiff::linear(&input, &weight, bias.as_ref(), geometry)
        .unwrap_or_else(|| layer.forward(input))
}

/// Which of mentor's convolution kernels runs a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvKind {
    /// `groups = 1`: im2col + gemm (`conv`).
    Dense,
    /// One filter per channel (`groups = channels`): `depthwise`.
    Depthwise,
}

/// The shapes of a dense convolution when mentor's kernel covers it.
fn conv_geometry(conv: &Conv2d, input: &Tensor<4>) -> Option<ConvGeometry> {
    covered_geometry(conv, input).and_then(|(g, kind)| (kind == ConvKind::Dense).then_some(g))
}

/// The convolution's shapes and kernel when one of mentor's kernels covers it.
fn covered_geometry(conv: &Conv2d, input: &Tensor<4>) -> Option<(ConvGeometry, ConvKind)> {
    // The kernels read f32 slices: every operand must be f32 (Burn's layer serves the rest).
    let all_f32 = input.dtype() == DType::F32
        && conv.weight.val().dtype() == DType::F32
        && conv
            .bias
            .as_ref()
            .is_none_or(|b| b.val().dtype() == DType::F32);
    if !enabled() || !all_f32 || conv.dilation != [1, 1] {
        return None;
    }
    let [batch, in_channels, height, width] = input.dims();
    let [out_channels, weight_in, kh, kw] = conv.weight.dims();
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0); 2],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Same => [
            same_padding(height, kh, conv.stride[0]),
            same_padding(width, kw, conv.stride[1]),
        ],
    };
    // Dense (groups 1), or depthwise: one filter per channel (groups = channels).
    let kind = if conv.groups == 1 && weight_in == in_channels {
        ConvKind::Dense
    } else if conv.groups == in_channels && weight_in == 1 && out_channels == in_channels {
        ConvKind::Depthwise
    } else {
        return None; // other groupings go to Burn, which also reports any mismatch
    };
    if [kh, kw] != conv.kernel_size {
        return None;
    }
    let geometry = ConvGeometry {
        batch,
        in_channels,
        height,
        width,
        out_channels,
        kernel: [kh, kw],
        stride: conv.stride,
        padding,
    };
    geometry.output_size().map(|_| (geometry, kind))
}

/// TensorFlow's "same" padding of one axis (what Burn's `PaddingConfig2d::Same` does):
/// `ceil(len / stride)` outputs, the padding they need split with the odd pixel at the
/// end, as `(before, after)`.
fn same_padding(len: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = len.div_ceil(stride.max(1));
    let total = ((out.max(1) - 1) * stride + kernel).saturating_sub(len);
    (total / 2, total - total / 2)
}

/// The pooling's shapes when mentor's kernel covers it.
fn pool_geometry(pool: &MaxPool2d, input: &Tensor<4>) -> Option<PoolGeometry> {
    pool_geometry_of(pool, input.dtype(), input.dims())
}

/// [`pool_geometry`] for an input of `dtype` and `dims`.
fn pool_geometry_of(pool: &MaxPool2d, dtype: DType, dims: [usize; 4]) -> Option<PoolGeometry> {
    let no_padding = matches!(
        pool.padding,
        PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
    );
    if !enabled()
        || dtype != DType::F32
        || !no_padding
        || pool.kernel_size != pool.stride
        || pool.dilation != [1, 1]
        || pool.ceil_mode
    {
        return None;
    }
    let [batch, channels, height, width] = dims;
    let geometry = PoolGeometry {
        planes: batch * channels,
        height,
        width,
        kernel: pool.kernel_size,
    };
    geometry.output_size().map(|_| geometry)
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution, TensorData};

    use super::*;

    /// Largest absolute difference over the largest reference magnitude.
    fn relative_error<const D: usize>(got: Tensor<D>, want: Tensor<D>) -> f32 {
        let got = got.into_data().try_into_vec::<f32>().expect("f32 data");
        let want = want.into_data().try_into_vec::<f32>().expect("f32 data");
        assert_eq!(got.len(), want.len(), "sizes differ");
        let scale = want.iter().fold(1e-6_f32, |m, v| m.max(v.abs()));
        let diff = got
            .iter()
            .zip(&want)
            .fold(0.0_f32, |m, (a, b)| m.max((a - b).abs()));
        diff / scale
    }

    fn random_data(shape: [usize; 4], device: &Device) -> TensorData {
        Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device).into_data()
    }

    /// Runs `layer` through mentor's kernel and through Burn's, each followed by a sum
    /// against the same random weights, and compares outputs and every gradient.
    fn compare_conv(
        shape: [usize; 4],
        out: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
        bias: bool,
    ) {
        let [top, left, bottom, right] = padding;
        let padding = PaddingConfig2d::Explicit(top, left, bottom, right);
        compare_padded_conv(shape, out, kernel, stride, padding, bias, 1);
    }

    /// [`compare_conv`] with any padding rule, dense (`groups` 1) or depthwise (`groups`
    /// = channels = `out`, against Burn's grouped convolution).
    fn compare_padded_conv(
        shape: [usize; 4],
        out: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: PaddingConfig2d,
        bias: bool,
        groups: usize,
    ) {
        let device = Device::flex().autodiff();
        let conv = Conv2dConfig::new([shape[1], out], kernel)
            .with_groups(groups)
            .with_stride(stride)
            .with_padding(padding.clone())
            .with_bias(bias)
            .init(&device);
        let data = random_data(shape, &device);
        let (geometry, _) = covered_geometry(&conv, &Tensor::<4>::from_data(data.clone(), &device))
            .expect("the kernel covers this convolution");
        let run = |fast: bool| {
            let x = Tensor::<4>::from_data(data.clone(), &device).require_grad();
            let y = if fast {
                let bias = conv.bias.as_ref().map(|b| b.val());
                let w = conv.weight.val();
                if groups == 1 {
                    autodiff::conv2d(&x, &w, bias.as_ref(), geometry)
                } else {
                    autodiff::depthwise_conv2d(&x, &w, bias.as_ref(), geometry)
                }
                .expect("all tensors are on autodiff flex")
            } else {
                conv.forward(x.clone())
            };
            let weights = Tensor::<4>::from_data(
                TensorData::new(
                    (0..y.shape().num_elements())
                        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
                        .collect::<Vec<_>>(),
                    y.dims(),
                ),
                &device,
            );
            let grads = (y.clone() * weights).sum().backward();
            let dx = x.grad(&grads).expect("input gradient");
            let dw = conv.weight.grad(&grads).expect("weight gradient");
            let db = conv
                .bias
                .as_ref()
                .map(|b| b.grad(&grads).expect("bias gradient"));
            (y.inner(), dx, dw, db)
        };
        let (y, dx, dw, db) = run(true);
        let (y_ref, dx_ref, dw_ref, db_ref) = run(false);
        let case = format!(
            "{shape:?} -> {out}, kernel {kernel:?}, stride {stride:?}, padding {padding:?}"
        );
        assert_eq!(y.dims(), y_ref.dims(), "{case}: output shape");
        for (what, error) in [
            ("output", relative_error(y, y_ref)),
            ("input gradient", relative_error(dx, dx_ref)),
            ("weight gradient", relative_error(dw, dw_ref)),
        ] {
            assert!(
                error < 1e-4,
                "{case}: {what} differs by {error:e} (relative)"
            );
        }
        if let (Some(db), Some(db_ref)) = (db, db_ref) {
            let error = relative_error(db, db_ref);
            assert!(error < 1e-4, "{case}: bias gradient differs by {error:e}");
        }
    }

    #[test]
    fn convolution_matches_burns_forward_and_gradients() {
        // The CNN's two layers, then strides, asymmetric padding, odd sizes, 1x1 and
        // rectangular kernels, no bias, no padding.
        compare_conv([4, 1, 28, 28], 8, [3, 3], [1, 1], [1, 1, 1, 1], true);
        compare_conv([3, 8, 14, 14], 16, [3, 3], [1, 1], [1, 1, 1, 1], true);
        compare_conv([2, 3, 11, 9], 5, [3, 3], [2, 2], [1, 1, 1, 1], true);
        compare_conv([2, 3, 10, 13], 4, [3, 5], [1, 2], [2, 0, 1, 3], false);
        compare_conv([3, 6, 7, 5], 7, [1, 1], [1, 1], [0, 0, 0, 0], true);
        compare_conv([2, 4, 9, 9], 3, [1, 1], [2, 2], [0, 0, 0, 0], false);
        compare_conv([1, 2, 5, 6], 3, [5, 4], [1, 1], [0, 0, 0, 0], true);
        compare_conv([2, 1, 28, 28], 4, [7, 7], [7, 7], [0, 0, 0, 0], true);
    }

    #[test]
    fn same_padding_matches_burns_including_the_odd_pixel_at_the_end() {
        // EfficientNet's stride-2 3x3 stem on an even side (padding 0 before, 1 after),
        // stride 2 on odd sides, a 5x5 depthwise-sized kernel at stride 1, and 1x1.
        assert_eq!(same_padding(224, 3, 2), (0, 1));
        assert_eq!(same_padding(7, 5, 2), (2, 2));
        assert_eq!(same_padding(9, 1, 1), (0, 0));
        let same = PaddingConfig2d::Same;
        compare_padded_conv([2, 3, 16, 16], 4, [3, 3], [2, 2], same.clone(), false, 1);
        compare_padded_conv([2, 3, 9, 7], 4, [3, 3], [2, 2], same.clone(), true, 1);
        compare_padded_conv([1, 4, 10, 11], 3, [5, 5], [1, 1], same.clone(), false, 1);
        compare_padded_conv([2, 4, 8, 5], 6, [5, 3], [2, 1], same.clone(), false, 1);
        compare_padded_conv([3, 6, 7, 5], 7, [1, 1], [1, 1], same, false, 1);
    }

    /// A depthwise convolution through mentor's kernel against Burn's grouped one.
    fn compare_depthwise(
        shape: [usize; 4],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: PaddingConfig2d,
        bias: bool,
    ) {
        compare_padded_conv(shape, shape[1], kernel, stride, padding, bias, shape[1]);
    }

    #[test]
    fn depthwise_convolution_matches_burns_grouped_convolution() {
        let same = PaddingConfig2d::Same;
        // EfficientNet's: 3x3 and 5x5, stride 1 and 2 with TF "same" padding (odd pixel
        // at the end), on even and odd sides; then explicit asymmetric padding,
        // rectangular kernels and strides, no padding, a kernel as large as the input,
        // a single channel, and a stride larger than the kernel.
        compare_depthwise([2, 6, 16, 16], [3, 3], [1, 1], same.clone(), false);
        compare_depthwise([2, 5, 16, 16], [3, 3], [2, 2], same.clone(), false);
        compare_depthwise([3, 4, 15, 13], [5, 5], [2, 2], same.clone(), true);
        compare_depthwise([1, 7, 9, 11], [5, 5], [1, 1], same, false);
        let explicit = PaddingConfig2d::Explicit(2, 0, 1, 3);
        compare_depthwise([2, 3, 10, 7], [3, 5], [1, 2], explicit, true);
        compare_depthwise([2, 4, 8, 9], [2, 3], [3, 1], PaddingConfig2d::Valid, true);
        compare_depthwise([1, 3, 5, 5], [5, 5], [1, 1], PaddingConfig2d::Valid, false);
        compare_depthwise(
            [4, 1, 12, 12],
            [3, 3],
            [1, 1],
            PaddingConfig2d::Explicit(1, 1, 1, 1),
            true,
        );
        compare_depthwise(
            [2, 2, 11, 11],
            [2, 2],
            [4, 4],
            PaddingConfig2d::Explicit(1, 1, 1, 1),
            false,
        );
    }

    #[test]
    fn convolution_matches_burns_on_random_shapes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut checked = 0;
        while checked < 16 {
            let shape = [
                rng.random_range(1..4),
                rng.random_range(1..5),
                rng.random_range(3..13),
                rng.random_range(3..13),
            ];
            let kernel = [rng.random_range(1..5), rng.random_range(1..5)];
            let stride = [rng.random_range(1..4), rng.random_range(1..4)];
            let padding = [0; 4].map(|_| rng.random_range(0..3));
            // A kernel must fit the padded input.
            if shape[2] + padding[0] + padding[2] < kernel[0]
                || shape[3] + padding[1] + padding[3] < kernel[1]
            {
                continue;
            }
            compare_conv(
                shape,
                rng.random_range(1..6),
                kernel,
                stride,
                padding,
                rng.random(),
            );
            checked += 1;
        }
    }

    /// The fused convolution + max-pool against Burn's two layers, each followed by a
    /// sum against the same random weights: output and every gradient (the input's only
    /// when `input_grad`, as for a network's first layer).
    fn compare_conv_pool(
        shape: [usize; 4],
        out: usize,
        padding: usize,
        window: [usize; 2],
        bias: bool,
        input_grad: bool,
    ) {
        let device = Device::flex().autodiff();
        let conv = Conv2dConfig::new([shape[1], out], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(
                padding, padding, padding, padding,
            ))
            .with_bias(bias)
            .init(&device);
        let pool = MaxPool2dConfig::new(window).with_strides(window).init();
        let data = random_data(shape, &device);
        let probe = Tensor::<4>::from_data(data.clone(), &device);
        let geometry = conv_geometry(&conv, &probe).expect("covered");
        assert!(conv_pool::covers(&geometry, window));
        let run = |fast: bool| {
            let mut x = Tensor::<4>::from_data(data.clone(), &device);
            if input_grad {
                x = x.require_grad();
            }
            let y = if fast {
                let bias = conv.bias.as_ref().map(|b| b.val());
                autodiff::conv2d_max_pool2d(&x, &conv.weight.val(), bias.as_ref(), geometry, window)
                    .expect("all tensors are on autodiff flex")
            } else {
                pool.forward(conv.forward(x.clone()))
            };
            let weights = Tensor::<4>::random(y.dims(), Distribution::Default, &device);
            (y, weights, x)
        };
        // The same sum weights for both paths.
        let (y_fast, weights, x_fast) = run(true);
        let (y_ref, _, x_ref) = run(false);
        let case = format!("{shape:?} -> {out}, pad {padding}, window {window:?}, bias {bias}");
        assert_eq!(y_fast.dims(), y_ref.dims(), "{case}: output shape");
        let grads = (y_fast.clone() * weights.clone()).sum().backward();
        let grads_ref = (y_ref.clone() * weights).sum().backward();
        let mut errors = vec![
            ("output", relative_error(y_fast.inner(), y_ref.inner())),
            (
                "weight gradient",
                relative_error(
                    conv.weight.grad(&grads).expect("dW"),
                    conv.weight.grad(&grads_ref).expect("dW"),
                ),
            ),
        ];
        if let Some(b) = &conv.bias {
            let (db, db_ref) = (b.grad(&grads), b.grad(&grads_ref));
            errors.push((
                "bias gradient",
                relative_error(db.expect("db"), db_ref.expect("db")),
            ));
        }
        if input_grad {
            let (dx, dx_ref) = (x_fast.grad(&grads), x_ref.grad(&grads_ref));
            errors.push((
                "input gradient",
                relative_error(dx.expect("dx"), dx_ref.expect("dx")),
            ));
        } else {
            assert!(
                x_fast.grad(&grads).is_none(),
                "{case}: an untracked input got a gradient"
            );
        }
        for (what, error) in errors {
            assert!(
                error < 1e-4,
                "{case}: {what} differs by {error:e} (relative)"
            );
        }
    }

    #[test]
    fn fused_convolution_and_pooling_match_burns_layers() {
        // The CNN's two stages (the first without an input gradient), then odd output
        // sizes (the last row and column are outside every window), no bias, a 3x3
        // window, a rectangular one, and ties after a zero-padded border.
        compare_conv_pool([3, 1, 28, 28], 8, 1, [2, 2], true, false);
        compare_conv_pool([2, 6, 14, 14], 8, 1, [2, 2], true, true);
        compare_conv_pool([2, 3, 9, 11], 5, 1, [2, 2], false, true);
        compare_conv_pool([2, 2, 12, 12], 4, 0, [3, 3], true, true);
        compare_conv_pool([1, 3, 10, 9], 3, 2, [2, 3], true, true);
    }

    #[test]
    fn fully_connected_layer_matches_burns_forward_and_gradients() {
        use burn::nn::LinearConfig;
        let device = Device::flex().autodiff();
        for (batch, inputs, outputs, bias, input_grad) in [
            (7, 13, 5, true, true),
            (256, 64, 10, true, false),
            (3, 4, 9, false, true),
        ] {
            let layer = LinearConfig::new(inputs, outputs)
                .with_bias(bias)
                .init(&device);
            let data = Tensor::<2>::random([batch, inputs], Distribution::Default, &device);
            let weights = Tensor::<2>::random([batch, outputs], Distribution::Default, &device);
            let run = |fast: bool| {
                let mut x = Tensor::<2>::from_data(data.to_data(), &device);
                if input_grad {
                    x = x.require_grad();
                }
                let y = if fast {
                    let geometry = linear::LinearGeometry {
                        batch,
                        inputs,
                        outputs,
                    };
                    let bias = layer.bias.as_ref().map(|b| b.val());
                    autodiff::linear(&x, &layer.weight.val(), bias.as_ref(), geometry)
                        .expect("all tensors are on autodiff flex")
                } else {
                    layer.forward(x.clone())
                };
                let grads = (y.clone() * weights.clone()).sum().backward();
                let dw = layer.weight.grad(&grads).expect("dW");
                let db = layer.bias.as_ref().map(|b| b.grad(&grads).expect("db"));
                (y.inner(), x.grad(&grads), dw, db)
            };
            let (y, dx, dw, db) = run(true);
            let (y_ref, dx_ref, dw_ref, db_ref) = run(false);
            let case = format!("{batch}x{inputs} -> {outputs}, bias {bias}");
            assert!(relative_error(y, y_ref) < 1e-5, "{case}: output");
            assert!(relative_error(dw, dw_ref) < 1e-5, "{case}: weight gradient");
            if let (Some(db), Some(db_ref)) = (db, db_ref) {
                assert!(relative_error(db, db_ref) < 1e-5, "{case}: bias gradient");
            }
            match (dx, dx_ref) {
                (Some(dx), Some(dx_ref)) => {
                    assert!(relative_error(dx, dx_ref) < 1e-5, "{case}: input gradient")
                }
                (None, None) => assert!(!input_grad),
                _ => panic!("{case}: only one path gave an input gradient"),
            }
        }
    }

    #[test]
    fn convolution_without_autodiff_and_with_a_frozen_weight() {
        let device = Device::flex();
        let conv = Conv2dConfig::new([3, 4], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let x = Tensor::<4>::from_data(random_data([2, 3, 9, 8], &device), &device);
        let geometry = conv_geometry(&conv, &x).expect("covered");
        let bias = conv.bias.as_ref().map(|b| b.val());
        let fast =
            autodiff::conv2d(&x, &conv.weight.val(), bias.as_ref(), geometry).expect("on flex");
        assert!(relative_error(fast, conv.forward(x)) < 1e-5);

        // A frozen (untracked) weight on an autodiff device: only the input gets a gradient.
        let device = Device::flex().autodiff();
        let conv = Conv2dConfig::new([3, 4], [3, 3]).init(&device).freeze();
        let x = Tensor::<4>::from_data(random_data([2, 3, 6, 6], &device), &device).require_grad();
        let geometry = conv_geometry(&conv, &x).expect("covered");
        let bias = conv.bias.as_ref().map(|b| b.val());
        let y =
            autodiff::conv2d(&x, &conv.weight.val(), bias.as_ref(), geometry).expect("on autodiff");
        let grads = y.sum().backward();
        assert!(x.grad(&grads).is_some());
        assert!(conv.weight.grad(&grads).is_none());
    }

    #[test]
    fn relu6_matches_burns_clamp_and_pytorchs_gradient_at_the_bounds() {
        let device = Device::flex().autodiff();
        // Values on both sides of both bounds (normal * 4 reaches past 6), more than one
        // rayon chunk, in a shape whose size is not a multiple of the SIMD width.
        let shape = [3, 5, 67, 71];
        let data = Tensor::<4>::random(shape, Distribution::Normal(2.0, 4.0), &device).into_data();
        let weights = Tensor::<4>::random(shape, Distribution::Default, &device);
        let run = |fast: bool| {
            let x = Tensor::<4>::from_data(data.clone(), &device).require_grad();
            let y = if fast {
                autodiff::relu6(&x).expect("on autodiff flex")
            } else {
                x.clone().clamp(0.0, 6.0)
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            (y.inner(), x.grad(&grads).expect("dx"))
        };
        let ((y, dx), (y_ref, dx_ref)) = (run(true), run(false));
        assert_eq!(relative_error(y, y_ref), 0.0);
        assert_eq!(relative_error(dx, dx_ref), 0.0);
        // Exactly at a bound the gradient is 0, as PyTorch's ReLU6 (hardtanh) has it.
        let x = Tensor::<1>::from_floats([-1.0, 0.0, 3.0, 6.0, 7.0], &device).require_grad();
        let grads = autodiff::relu6(&x).expect("on autodiff").sum().backward();
        let dx = x
            .grad(&grads)
            .expect("dx")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        assert_eq!(dx, vec![0.0, 0.0, 1.0, 0.0, 0.0]);
        // Without autodiff too.
        let plain = Tensor::<1>::from_floats([-2.0, 0.5, 9.0], &Device::flex());
        let y = relu6(plain).into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(y, vec![0.0, 0.5, 6.0]);
    }

    /// Runs a batch norm (random gamma, beta and running statistics; training flag
    /// `training`) through the kernel and through Burn's layer then the activation, and
    /// compares outputs, every gradient and the updated running statistics.
    fn compare_batch_norm(shape: [usize; 4], activation: Activation, training: bool) {
        use burn::module::{Param, RunningState};
        use burn::nn::BatchNormConfig;
        let device = Device::flex().autodiff();
        let channels = shape[1];
        let layer = || {
            let mut bn = BatchNormConfig::new(channels)
                .with_momentum(0.3)
                .init(&device);
            let seeded = |offset: f32, spread: f32| {
                let values: Vec<f32> = (0..channels)
                    .map(|c| offset + spread * (((c * 7919) % 17) as f32 / 17.0))
                    .collect();
                Tensor::<1>::from_data(TensorData::new(values, [channels]), &device)
            };
            bn.gamma = Param::from_tensor(seeded(0.5, 1.5));
            bn.beta = Param::from_tensor(seeded(-0.5, 1.0));
            bn.running_mean = RunningState::new(seeded(-0.2, 0.4));
            bn.running_var = RunningState::new(seeded(0.5, 2.0));
            if !training {
                bn.training = Param::from_bool(false);
            }
            bn
        };
        // Channel means away from zero and past ReLU6's bounds after scaling.
        let data = Tensor::<4>::random(shape, Distribution::Normal(1.5, 3.0), &device).into_data();
        let weights = Tensor::<4>::random(shape, Distribution::Default, &device);
        let run = |fast: bool| {
            let bn = layer();
            let x = Tensor::<4>::from_data(data.clone(), &device).require_grad();
            let y = if fast {
                batch_norm_kernel(&bn, &x, activation).expect("the kernel covers it")
            } else {
                let y = bn.forward(x.clone());
                match activation {
                    Activation::Identity => y,
                    Activation::Relu => burn::tensor::activation::relu(y),
                    Activation::Relu6 => y.clamp(0.0, 6.0),
                }
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            (
                y.inner(),
                x.grad(&grads).expect("dx"),
                bn.gamma.grad(&grads).expect("d gamma"),
                bn.beta.grad(&grads).expect("d beta"),
                bn.running_mean.value_sync().inner(),
                bn.running_var.value_sync().inner(),
            )
        };
        let (y, dx, dg, db, rm, rv) = run(true);
        let (y0, dx0, dg0, db0, rm0, rv0) = run(false);
        let case = format!("{shape:?} {activation:?} training {training}");
        for (what, error) in [
            ("output", relative_error(y, y0)),
            ("input gradient", relative_error(dx, dx0)),
            ("gamma gradient", relative_error(dg, dg0)),
            ("beta gradient", relative_error(db, db0)),
            ("running mean", relative_error(rm, rm0)),
            ("running variance", relative_error(rv, rv0)),
        ] {
            assert!(
                error < 1e-4,
                "{case}: {what} differs by {error:e} (relative)"
            );
        }
    }

    #[test]
    fn batch_norm_matches_burns_layer_and_activation_in_training_and_inference() {
        for activation in [Activation::Identity, Activation::Relu, Activation::Relu6] {
            for training in [true, false] {
                // Odd planes, 1x1 planes (the squeeze of a network's end), one image.
                compare_batch_norm([4, 3, 9, 7], activation, training);
                compare_batch_norm([6, 5, 1, 1], activation, training);
                compare_batch_norm([1, 2, 40, 33], activation, training);
            }
        }
        // Plain flex (no autodiff) runs the running statistics, as Burn's layer does.
        let device = Device::flex();
        let bn = burn::nn::BatchNormConfig::new(3).init(&device);
        let x = Tensor::<4>::random([2, 3, 5, 5], Distribution::Default, &device);
        let fast = batch_norm(&bn, x.clone(), Activation::Relu6);
        assert!(relative_error(fast, bn.forward(x).clamp(0.0, 6.0)) < 1e-5);
    }

    #[test]
    fn layers_outside_the_kernels_go_to_burn() {
        let device = Device::flex();
        let x = Tensor::<4>::zeros([1, 4, 8, 8], &device);
        // Two groups of two channels: neither dense nor depthwise.
        let grouped = Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(2)
            .init(&device);
        let dilated = Conv2dConfig::new([4, 4], [3, 3])
            .with_dilation([2, 2])
            .init(&device);
        for conv in [&grouped, &dilated] {
            assert!(covered_geometry(conv, &x).is_none());
            assert_eq!(
                conv2d(conv, x.clone()).dims(),
                conv.forward(x.clone()).dims()
            );
        }
        // A depthwise convolution is not dense: the fused convolution + pool never gets it.
        let depthwise = Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(4)
            .init(&device);
        let kind = covered_geometry(&depthwise, &x).map(|(_, kind)| kind);
        assert_eq!(kind, Some(ConvKind::Depthwise));
        assert!(conv_geometry(&depthwise, &x).is_none());
        let overlapping = MaxPool2dConfig::new([3, 3]).with_strides([1, 1]).init();
        assert!(pool_geometry(&overlapping, &x).is_none());
        assert_eq!(max_pool2d(&overlapping, x.clone()).dims(), [1, 4, 6, 6]);
    }

    /// `rectified`: zero the negative inputs, so that windows hold ties (as after a ReLU).
    fn compare_pool(shape: [usize; 4], kernel: [usize; 2], rectified: bool) {
        let device = Device::flex().autodiff();
        let pool = MaxPool2dConfig::new(kernel).with_strides(kernel).init();
        let mut data = random_data(shape, &device);
        if rectified {
            let values: Vec<f32> = data
                .try_to_vec::<f32>()
                .expect("f32")
                .iter()
                .map(|v| v.max(0.0))
                .collect();
            data = TensorData::new(values, shape);
        }
        let geometry = pool_geometry(&pool, &Tensor::<4>::from_data(data.clone(), &device))
            .expect("the kernel covers this pooling");
        let run = |fast: bool| {
            let x = Tensor::<4>::from_data(data.clone(), &device).require_grad();
            let y = if fast {
                autodiff::max_pool2d(&x, geometry).expect("on autodiff flex")
            } else {
                pool.forward(x.clone())
            };
            let weights = y.clone().inner().detach();
            let weights = Tensor::<4>::from_data(weights.into_data(), &device);
            let grads = (y.clone() * weights).sum().backward();
            (y.inner(), x.grad(&grads).expect("input gradient"))
        };
        let (y, dx) = run(true);
        let (y_ref, dx_ref) = run(false);
        assert_eq!(y.dims(), y_ref.dims(), "{shape:?} {kernel:?}: output shape");
        assert!(
            relative_error(y, y_ref) < 1e-6,
            "{shape:?} {kernel:?}: output"
        );
        assert!(
            relative_error(dx, dx_ref) < 1e-6,
            "{shape:?} {kernel:?}: gradient"
        );
    }

    #[test]
    fn max_pooling_matches_burns_forward_and_gradient() {
        compare_pool([2, 3, 28, 28], [2, 2], false);
        compare_pool([2, 3, 28, 28], [2, 2], true);
        compare_pool([2, 3, 7, 9], [2, 2], false); // odd sizes drop the last row and column
        compare_pool([1, 2, 9, 12], [3, 4], true);
    }

    /// The CNN pools before its ReLU (a quarter of the ReLU work); that must give exactly
    /// the values and input gradients of ReLU then pool, on Burn's layers and on ours,
    /// including windows that are all negative or that hold ties at zero.
    #[test]
    fn pooling_then_relu_equals_relu_then_pooling() {
        use burn::tensor::activation::relu;
        let device = Device::flex().autodiff();
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        let mut values = random_data([2, 3, 10, 10], &device)
            .try_into_vec::<f32>()
            .expect("f32");
        values[..8].fill(0.0); // ties at zero
        values[20..24].fill(-1.0);
        let data = TensorData::new(values, [2, 3, 10, 10]);
        let weights = Tensor::<4>::from_data(random_data([2, 3, 5, 5], &device), &device);
        let geometry = pool_geometry(&pool, &Tensor::<4>::from_data(data.clone(), &device))
            .expect("the kernel covers this pooling");
        // Burn's layer or ours, called directly: the process-wide switch is not touched
        // while other tests run.
        let max_pool = |fast: bool, x: Tensor<4>| {
            if fast {
                autodiff::max_pool2d(&x, geometry).expect("on autodiff flex")
            } else {
                pool.forward(x)
            }
        };
        for fast in [true, false] {
            let run = |pool_first: bool| {
                let x = Tensor::<4>::from_data(data.clone(), &device).require_grad();
                let y = if pool_first {
                    relu(max_pool(fast, x.clone()))
                } else {
                    max_pool(fast, relu(x.clone()))
                };
                let grads = (y.clone() * weights.clone()).sum().backward();
                let dx = x.grad(&grads).expect("input gradient");
                let vec = |t: Tensor<4>| t.into_data().try_into_vec::<f32>().expect("f32");
                (vec(y.inner()), vec(dx))
            };
            assert_eq!(run(true), run(false), "mentor's pooling: {fast}");
        }
    }

    #[test]
    fn max_pooling_picks_the_first_maximum_and_routes_the_gradient_there() {
        let g = PoolGeometry {
            planes: 1,
            height: 2,
            width: 4,
            kernel: [2, 2],
        };
        // Ties (as after a ReLU): the first position in the window wins.
        let x = [1.0, 5.0, 0.0, 0.0, 5.0, 2.0, 0.0, 0.0];
        let y = pool::forward(&x, &g);
        assert_eq!(y, vec![5.0, 0.0]);
        assert_eq!(
            pool::backward(&x, &y, &[10.0, 20.0], &g),
            vec![0.0, 10.0, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
        // A 3x2 window takes the general path.
        let g = PoolGeometry {
            kernel: [2, 3],
            width: 3,
            ..g
        };
        let x = [0.0, 2.0, 2.0, -1.0, 1.0, 2.0];
        let y = pool::forward(&x, &g);
        assert_eq!(y, vec![2.0]);
        assert_eq!(
            pool::backward(&x, &y, &[1.0], &g),
            vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
        );
    }
}
