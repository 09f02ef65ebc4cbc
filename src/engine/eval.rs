//! Scoring a network: loss and top-1 accuracy on a dataset, in inference mode, over all
//! output units or a task's units only; and class probabilities for new inputs.

use std::ops::Range;

use burn::module::Module;
use burn::tensor::{Int, Tensor};

use super::metrics::Running;
use super::objective::Objective;
use crate::data::examples::infallible;
use crate::data::{BatchOrder, DataError, Dataset, Examples, HostBatch};
use crate::losses::mask_outputs;
use crate::models::Network;

/// Loss and top-1 accuracy of `network` on `data`, in inference mode, batch by batch.
pub fn evaluate(network: &Network, data: &Dataset, batch_size: usize) -> (f64, f64) {
    evaluate_outputs(network, data, batch_size, None)
}

/// [`evaluate`] over the output units `outputs` only (the others are masked out of the
/// softmax and the argmax), as a task-incremental learner is scored on one task's head;
/// `None` uses every output.
pub fn evaluate_outputs(
    network: &Network,
    data: &Dataset,
    batch_size: usize,
    outputs: Option<Range<usize>>,
) -> (f64, f64) {
    let order = BatchOrder::sequential(data.len(), batch_size);
    infallible(score(network, data.host_batches(order).map(Ok), outputs))
}

/// [`evaluate_outputs`] on any split, in memory or streamed (whose photos may fail to
/// read), `batch_size` examples at a time.
pub fn evaluate_examples(
    network: &Network,
    data: &dyn Examples,
    batch_size: usize,
    outputs: Option<Range<usize>>,
) -> Result<(f64, f64), DataError> {
    evaluate_first(network, data, data.len(), batch_size, outputs)
}

/// [`evaluate_examples`] on the first `count` examples of `data`.
fn evaluate_first(
    network: &Network,
    data: &dyn Examples,
    count: usize,
    batch_size: usize,
    outputs: Option<Range<usize>>,
) -> Result<(f64, f64), DataError> {
    let order = BatchOrder::sequential(count.min(data.len()), batch_size);
    score(network, data.batches(order, 0), outputs)
}

/// Loss and accuracy over `batches`, in inference mode; the first error ends it.
fn score<E>(
    network: &Network,
    batches: impl Iterator<Item = Result<HostBatch, E>>,
    outputs: Option<Range<usize>>,
) -> Result<(f64, f64), E> {
    let model = network.valid();
    let mut run = Running::default();
    let device = super::module_device(&model);
    for host in batches {
        let host = host?;
        if host.is_empty() {
            continue;
        }
        let n = host.len();
        let batch = host.into_device(&device);
        let mut logits = model.forward(batch.images);
        if let Some(active) = &outputs {
            logits = mask_outputs(logits, active.clone());
        }
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits.clone(), batch.labels.clone());
        run.add(
            loss.into_scalar::<f32>() as f64,
            correct(logits, batch.labels),
            n,
        );
    }
    Ok((run.loss(), run.accuracy()))
}

/// Softmax class probabilities of `network`, in inference mode, for `images`: a whole
/// number of `shape` (C, H, W) inputs in CHW order, run `batch_size` at a time. One row
/// of probabilities per input.
pub fn class_probabilities(
    network: &Network,
    images: &[f32],
    shape: [usize; 3],
    batch_size: usize,
) -> Vec<Vec<f32>> {
    let model = network.valid();
    let device = super::module_device(&model);
    let per = shape.iter().product::<usize>();
    let mut out = Vec::new();
    for chunk in images.chunks(per * batch_size.max(1)) {
        let n = chunk.len() / per;
        if n == 0 {
            break; // a partial input at the end (not a whole number of inputs) is left out
        }
        let chunk = &chunk[..n * per];
        let x = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(chunk.to_vec(), [n, shape[0], shape[1], shape[2]]),
            &device,
        );
        let p = burn::tensor::activation::softmax(model.forward(x), 1).into_data();
        let p: Vec<f32> = p.convert::<f32>().try_into_vec().unwrap_or_default();
        out.extend(p.chunks((p.len() / n).max(1)).map(<[f32]>::to_vec));
    }
    out
}

/// The objective's own evaluation of `network` on the first `limit` examples of `data`
/// (all of them with `None`) if it has one (for data in memory), else the classification
/// loss and accuracy on its scored outputs, in batches of up to 1000 examples and 64 MB.
pub(crate) fn evaluate_with(
    objective: &dyn Objective,
    network: &Network,
    data: &dyn Examples,
    limit: Option<usize>,
) -> Result<(f64, f64), DataError> {
    let count = limit.map_or(data.len(), |n| n.min(data.len()));
    let own = match data.in_memory() {
        Some(d) if count < d.len() => {
            let first: Vec<usize> = (0..count).collect();
            objective.evaluate(network, &d.select(&first))
        }
        Some(d) => objective.evaluate(network, d),
        None if count < data.len() => objective.evaluate(network, &First { data, count }),
        None => objective.evaluate(network, data),
    };
    if let Some(own) = own {
        return own;
    }
    let image_bytes = data.shape().iter().product::<usize>() * std::mem::size_of::<f32>();
    let batch_size = (64_000_000 / image_bytes.max(1)).clamp(1, 1000);
    evaluate_first(network, data, count, batch_size, objective.eval_outputs())
}

/// The first `count` examples of a split.
struct First<'a> {
    data: &'a dyn Examples,
    count: usize,
}

impl Examples for First<'_> {
    fn len(&self) -> usize {
        self.count.min(self.data.len())
    }

    fn shape(&self) -> [usize; 3] {
        self.data.shape()
    }

    fn num_classes(&self) -> usize {
        self.data.num_classes()
    }

    fn views(&self) -> usize {
        self.data.views()
    }

    /// `order` ranges over the first examples only, so the split's own batches serve.
    fn batches(&self, order: BatchOrder, epoch: usize) -> crate::data::examples::HostBatches<'_> {
        self.data.batches(order, epoch)
    }

    fn describe(&self) -> String {
        format!("the first {} of {}", self.len(), self.data.describe())
    }
}

pub(crate) fn correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> u64 {
    let pred: Tensor<1, Int> = logits.argmax(1).flatten(0, 1);
    pred.equal(labels).int().sum().into_scalar::<i64>() as u64
}
