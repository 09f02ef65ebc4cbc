//! What the engine trains and evaluates on: a split of labelled examples that yields
//! host batches in a given order, whether it is held in memory ([`Dataset`]) or read from
//! disk while training runs ([`super::stream::ImageStream`]).

use std::convert::Infallible;
use std::ops::Range;

use burn::tensor::{Device, Tensor, TensorData};

use super::{Batch, BatchOrder, DataError, Dataset, PreparedData};

/// One batch in host memory: pixels `[B, C, H, W]` in NCHW order, a label and the
/// split position of each example (for objectives that look up per-example data).
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Pixel values, example after example.
    pub pixels: Vec<f32>,
    /// Class index of each example.
    pub labels: Vec<usize>,
    /// Position of each example in its split.
    pub indices: Vec<usize>,
    /// `[C, H, W]` of one example.
    pub shape: [usize; 3],
}

impl HostBatch {
    /// The examples of `data` at `indices`, in that order.
    pub fn gather(data: &Dataset, indices: &[usize]) -> Self {
        let mut pixels = Vec::with_capacity(indices.len() * data.image_len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(data.image(i));
            labels.push(data.labels[i]);
        }
        Self {
            pixels,
            labels,
            indices: indices.to_vec(),
            shape: data.shape,
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch holds no example.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The examples at positions `range` of the batch.
    pub fn slice(&self, range: Range<usize>) -> HostBatch {
        let per = self.shape.iter().product::<usize>();
        HostBatch {
            pixels: self.pixels[range.start * per..range.end * per].to_vec(),
            labels: self.labels[range.clone()].to_vec(),
            indices: self.indices[range].to_vec(),
            shape: self.shape,
        }
    }

    /// The batch as tensors on `device`.
    pub fn into_device(self, device: &Device) -> Batch {
        let [c, h, w] = self.shape;
        let n = self.len();
        let images = Tensor::from_data(TensorData::new(self.pixels, [n, c, h, w]), device);
        let labels: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        let labels = Tensor::from_data(TensorData::new(labels, [n]), device);
        Batch { images, labels }
    }
}

/// The host batches of one pass over a split, in order; an error names the example that
/// could not be read.
pub type HostBatches<'a> = Box<dyn Iterator<Item = Result<HostBatch, DataError>> + Send + 'a>;

/// A split of labelled images the engine can draw batches from.
pub trait Examples: Sync {
    /// Number of examples.
    fn len(&self) -> usize;

    /// Whether the split holds no example.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[C, H, W]` of every example.
    fn shape(&self) -> [usize; 3];

    /// Number of classes the labels range over.
    fn num_classes(&self) -> usize;

    /// Augmented views per example (1 but for the views of contrastive methods, see
    /// [`super::stream::ImageStream::with_views`]): host batches stack them along the
    /// channels, `[B, views * C, H, W]`, while [`Examples::shape`] stays one view's.
    fn views(&self) -> usize {
        1
    }

    /// The batches of `order`, in its order, for the 0-based `epoch` (which seeds any
    /// augmentation, so a batch depends on the run's seed, the epoch and its examples
    /// alone).
    fn batches(&self, order: BatchOrder, epoch: usize) -> HostBatches<'_>;

    /// The split as an in-memory dataset, when it is one (objectives with their own
    /// evaluation, such as a kNN probe, need it).
    fn in_memory(&self) -> Option<&Dataset> {
        None
    }

    /// How the split is held, in words, for the run's log.
    fn describe(&self) -> String;
}

impl Dataset {
    /// The batches of `order` gathered from memory (they cannot fail).
    pub fn host_batches(&self, order: BatchOrder) -> impl Iterator<Item = HostBatch> + '_ {
        let chunks: Vec<Vec<usize>> = order.batches().map(<[usize]>::to_vec).collect();
        chunks.into_iter().map(|idx| HostBatch::gather(self, &idx))
    }
}

impl Examples for Dataset {
    fn len(&self) -> usize {
        Dataset::len(self)
    }

    fn shape(&self) -> [usize; 3] {
        self.shape
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn batches(&self, order: BatchOrder, _epoch: usize) -> HostBatches<'_> {
        Box::new(self.host_batches(order).map(Ok))
    }

    fn in_memory(&self) -> Option<&Dataset> {
        Some(self)
    }

    fn describe(&self) -> String {
        let bytes = self.images.len() * std::mem::size_of::<f32>();
        format!(
            "{} images in memory ({:.1} MB as f32)",
            self.len(),
            bytes as f64 / 1e6
        )
    }
}

/// The splits of a run: what the engine trains on, selects checkpoints by, and tests.
pub trait Splits {
    /// Training examples.
    fn train(&self) -> &dyn Examples;
    /// Validation examples, if the run holds some out.
    fn val(&self) -> Option<&dyn Examples>;
    /// Test examples.
    fn test(&self) -> &dyn Examples;
    /// A name per class, in class-index order (empty when the data has none).
    fn class_names(&self) -> &[String] {
        &[]
    }
    /// The normalisation the examples went through, when it was fitted or fixed
    /// outside the network (in-memory data).
    fn normalization(&self) -> Option<&super::split::Normalization> {
        None
    }
}

impl Splits for PreparedData {
    fn train(&self) -> &dyn Examples {
        &self.train
    }

    fn val(&self) -> Option<&dyn Examples> {
        self.val.as_ref().map(|v| v as &dyn Examples)
    }

    fn test(&self) -> &dyn Examples {
        &self.test
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn normalization(&self) -> Option<&super::split::Normalization> {
        self.normalization.as_ref()
    }
}

/// The value of an iterator item that cannot be an error.
pub(crate) fn infallible<T>(item: Result<T, Infallible>) -> T {
    match item {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_batches_follow_the_order_and_slice_keeps_rows_together() {
        let d = Dataset::new(
            (0..12).map(|v| v as f32).collect(),
            vec![0, 1, 2],
            [1, 2, 2],
            3,
        )
        .unwrap();
        let order = BatchOrder::shuffled(3, 2, 9, 0);
        let want: Vec<Vec<usize>> = order.batches().map(<[usize]>::to_vec).collect();
        let got: Vec<HostBatch> = Examples::batches(&d, order, 0)
            .map(Result::unwrap)
            .collect();
        assert_eq!(got.len(), 2);
        for (b, idx) in got.iter().zip(&want) {
            assert_eq!(&b.indices, idx);
            assert_eq!(b.labels, *idx);
            assert_eq!(b.pixels[0], idx[0] as f32 * 4.0);
        }
        let s = got[0].slice(1..2);
        assert_eq!(s.pixels, d.image(want[0][1]).to_vec());
        assert_eq!(s.indices, vec![want[0][1]]);
        let t = got[0].clone().into_device(&Device::flex());
        assert_eq!(t.images.dims(), [2, 1, 2, 2]);
    }
}
