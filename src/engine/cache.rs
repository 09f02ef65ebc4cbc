//! Compute once, reuse: one output row per training example (a frozen teacher's logits,
//! a frozen backbone's features), computed in inference mode over the dataset once and
//! looked up by example index in every later step, instead of being recomputed.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use crate::data::{Batch, BatchOrder, DataError, Dataset, Examples};
use crate::models::Network;

/// `len x width` floats, one row per example, in dataset order.
#[derive(Debug, Clone)]
pub struct ExampleCache {
    values: Vec<f32>,
    width: usize,
}

impl ExampleCache {
    /// Runs `f` over `data` in batches of 1,000 on `device` and keeps its outputs.
    pub fn compute(data: &Dataset, device: &Device, f: impl Fn(Tensor<4>) -> Tensor<2>) -> Self {
        let mut values = Vec::new();
        let mut width = 0;
        for idx in BatchOrder::sequential(data.len(), 1000).batches() {
            width = append_rows(&mut values, f(Batch::gather(data, idx, device).images));
        }
        Self { values, width }
    }

    /// The rows at `indices` as a `[B, width]` tensor on `device`.
    pub fn rows(&self, indices: &[usize], device: &Device) -> Tensor<2> {
        let rows = self.select(indices);
        Tensor::from_data(
            TensorData::new(rows.values, [indices.len(), self.width]),
            device,
        )
    }

    /// A cache of `values`, `width` per row.
    pub fn from_values(values: Vec<f32>, width: usize) -> Self {
        Self { values, width }
    }

    /// The rows at `indices`, as a new cache.
    pub fn select(&self, indices: &[usize]) -> Self {
        let w = self.width;
        let mut values = Vec::with_capacity(indices.len() * w);
        for &i in indices {
            values.extend_from_slice(&self.values[i * w..(i + 1) * w]);
        }
        Self { values, width: w }
    }

    /// Row width.
    pub fn width(&self) -> usize {
        self.width
    }

    /// All values, row after row.
    pub fn values(&self) -> &[f32] {
        &self.values
    }
}
/// `network`'s backbone features (inference mode) for every example of `data`, in memory
/// or streamed, with the label of each (a streamed split may skip unreadable photos),
/// in batches of up to 1,000 examples and 64 MB as [`backbone_features`] runs them.
pub fn labelled_backbone_features(
    network: &Network,
    data: &dyn Examples,
) -> Result<(ExampleCache, Vec<usize>), DataError> {
    let model = network.valid();
    let device = super::module_device(&model);
    let image_bytes = data.views() * data.shape().iter().product::<usize>() * 4;
    let batch_size = (64_000_000 / image_bytes.max(1)).clamp(1, 1000);
    let (mut values, mut labels, mut width) = (Vec::new(), Vec::new(), 0);
    for host in data.batches(BatchOrder::sequential(data.len(), batch_size), 0) {
        let host = host?;
        if host.is_empty() {
            continue;
        }
        labels.extend_from_slice(&host.labels);
        width = append_rows(
            &mut values,
            model.features(host.into_device(&device).images),
        );
    }
    Ok((ExampleCache { values, width }, labels))
}

/// Appends the rows of `out` `[B, width]` to `values`; returns the width.
fn append_rows(values: &mut Vec<f32>, out: Tensor<2>) -> usize {
    let width = out.dims()[1];
    values.extend(
        out.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default(),
    );
    width
}

/// `network`'s backbone features (inference mode) for every example of `data`.
pub fn backbone_features(network: &Network, data: &Dataset) -> ExampleCache {
    let model = network.valid();
    let device = super::module_device(&model);
    ExampleCache::compute(data, &device, |x| model.features(x))
}
