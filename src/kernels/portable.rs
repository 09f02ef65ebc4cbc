//! Graph-friendly forms of the layers an ONNX exporter cannot lower as mentor runs them.
//!
//! Burn 0.22's ONNX exporter (`burn-onnx`) records the forward pass and lowers each
//! operation; it has no lowering for `clamp` (ReLU6, the hard sigmoid) or `mean_dim`
//! (global average pooling). While [`while_exporting`] runs, the layers here record
//! equivalent operations it can lower instead:
//!
//! - `clamp(x, 0, hi)` as `hi - relu(hi - relu(x))`: six elementwise nodes (Relu, Neg,
//!   Add twice each) in place of one `Clip`. Exact for `x <= 0` and `x >= hi`; inside,
//!   `hi - (hi - x)` rounds once, so it differs from `x` by at most half an ulp of `hi`
//!   (2.4e-7 for ReLU6), far below any tolerance a runtime comparison uses.
//! - the mean over height and width as an adaptive average pool to 1x1
//!   (`GlobalAveragePool`-like `AveragePool` in ONNX).
//!
//! Outside an export nothing changes: training and inference run the usual forms.

use std::cell::Cell;

use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::module::adaptive_avg_pool2d;

thread_local! {
    static EXPORTING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the graph-friendly forms switched on for this thread (the exporter
/// records the forward pass on the calling thread), and off again afterwards, even if
/// `f` panics.
pub fn while_exporting<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            EXPORTING.with(|e| e.set(self.0));
        }
    }
    let _reset = Reset(EXPORTING.with(|e| e.replace(true)));
    f()
}

/// Whether this thread is recording a forward pass for export.
pub fn exporting() -> bool {
    EXPORTING.with(|e| e.get())
}

/// `clamp(x, 0, hi)` from Relu and affine nodes: `hi - relu(hi - relu(x))`.
pub(crate) fn clamp_zero_to<const D: usize>(x: Tensor<D>, hi: f64) -> Tensor<D> {
    let below = relu(relu(x).neg().add_scalar(hi));
    below.neg().add_scalar(hi)
}

/// The mean over the last two axes, `[N, C, H, W]` to `[N, C, 1, 1]`, as an adaptive
/// average pool.
pub(crate) fn mean_hw(x: Tensor<4>) -> Tensor<4> {
    adaptive_avg_pool2d(x, [1, 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn the_graph_forms_equal_clamp_and_mean() {
        let device = Device::flex();
        let values = vec![-3.0f32, 0.0, 1e-9, 0.7, 5.999, 6.0, 6.5, 1e6];
        let x = Tensor::<1>::from_data(TensorData::new(values.clone(), [8]), &device);
        let got: Vec<f32> = clamp_zero_to(x, 6.0)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (v, g) in values.iter().zip(&got) {
            let want = v.clamp(0.0, 6.0);
            assert!((g - want).abs() <= 2.4e-7, "{v}: {g} vs {want}");
        }
        let x = Tensor::<4>::from_data(
            TensorData::new((0..24).map(|v| v as f32).collect::<Vec<_>>(), [1, 2, 3, 4]),
            &device,
        );
        let pooled: Vec<f32> = mean_hw(x.clone()).into_data().try_to_vec::<f32>().unwrap();
        let mean: Vec<f32> = x
            .mean_dim(3)
            .mean_dim(2)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(pooled, mean);
        assert!(!exporting());
        assert!(while_exporting(exporting));
        assert!(!exporting());
    }
}
