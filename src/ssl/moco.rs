//! MoCo (He et al. 2020, "Momentum Contrast for Unsupervised Visual Representation
//! Learning"): the query encoder (the trained network) embeds one view of each image,
//! a *key* encoder embeds the other; the key encoder receives no gradient and follows the
//! query encoder as an exponential moving average, `key = m key + (1 - m) query`. The
//! negatives are a FIFO queue of the last K keys, so their number is independent of the
//! batch size. Loss: InfoNCE, `-log exp(q.k+/tau) / (exp(q.k+/tau) + sum_K exp(q.k-/tau))`.
//!
//! Order of updates: the key encoder starts as a copy of the query encoder, and its
//! momentum update with the query weights of step t is made at the start of step t + 1,
//! the same sequence as MoCo's "update the query, then the key" at the end of step t.
//! The queue starts with random unit vectors (MoCo's `randn` then normalise), seeded by
//! the run's seed. The key encoder, queue and epoch are objective state, saved in each
//! checkpoint, so a resumed run continues exactly. (MoCo's shuffled batch norm needs
//! several devices; the CNN and MLP encoders have no batch norm.)

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;

use crate::data::Batch;
use crate::data::split::rng;
use crate::engine::StepOutput;
use crate::losses::info_nce;
use crate::models::Network;
use crate::models::params::flat_parameters;

use super::{
    PretextLoss, SelfSupervisedConfig, ViewSource, decode_f32 as decode, encode_f32 as encode,
    retrieval_logits,
};

/// The MoCo objective.
pub struct Moco {
    views: ViewSource,
    temperature: f64,
    momentum: f64,
    capacity: usize,
    seed: u64,
    /// The key encoder (no autodiff); `None` before the first step.
    key: Option<Network>,
    /// Key weights restored from a checkpoint, applied at the next step.
    saved_key: Option<Vec<f32>>,
    /// `capacity x dim` unit rows, oldest overwritten first; empty before the first step.
    queue: Vec<f32>,
    /// The row the next key is written to.
    next: usize,
}

impl Moco {
    /// MoCo over the training images of `views` (labels unused).
    pub fn new(config: &SelfSupervisedConfig, views: ViewSource, seed: u64) -> Self {
        Self {
            views,
            temperature: config.temperature,
            momentum: config.momentum,
            capacity: config.queue,
            seed,
            key: None,
            saved_key: None,
            queue: Vec::new(),
            next: 0,
        }
    }

    /// The queue as `[K, dim]` rows (oldest row order does not matter to the loss).
    pub fn queue(&self) -> &[f32] {
        &self.queue
    }

    /// The key encoder, once the first step has made it.
    pub fn key_encoder(&self) -> Option<&Network> {
        self.key.as_ref()
    }

    fn fill_queue(&mut self, dim: usize) {
        let mut r = rng(self.seed ^ 0x4D6F_436F_5175_6575);
        let mut queue = Vec::with_capacity(self.capacity * dim);
        for _ in 0..self.capacity {
            // Box-Muller normal draws, then unit length.
            let row: Vec<f64> = (0..dim)
                .map(|_| {
                    let u1: f64 = r.random_range(f64::MIN_POSITIVE..1.0);
                    let u2: f64 = r.random();
                    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
                })
                .collect();
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            queue.extend(row.iter().map(|v| (v / norm) as f32));
        }
        self.queue = queue;
        self.next = 0;
    }

    fn enqueue(&mut self, keys: &[f32], dim: usize) {
        for row in keys.chunks(dim) {
            let at = self.next * dim;
            self.queue[at..at + dim].copy_from_slice(row);
            self.next = (self.next + 1) % self.capacity;
        }
    }

    /// The key encoder for this step: a copy of the query encoder at the first step (or
    /// the saved key weights after a resume), else its momentum update.
    fn advance_key(&mut self, query: Network) -> Network {
        if let Some(saved) = self.saved_key.take() {
            // The key of the last step before the checkpoint, then this step's update.
            let sizes = flat_sizes(&query);
            if saved.len() == sizes.iter().sum::<usize>() {
                self.key = Some(blend(query.clone(), &split_like(&saved, &sizes), 0.0));
            } else {
                // Only a damaged checkpoint gets here (its config matched the run's).
                eprintln!(
                    "warning: the checkpoint's MoCo key encoder has {} values, the network {}; the key restarts as a copy of the query encoder",
                    saved.len(),
                    sizes.iter().sum::<usize>()
                );
            }
        }
        match self.key.take() {
            None => query,
            Some(key) => {
                let query_params = flat_parameters(&query);
                blend(key, &query_params, self.momentum)
            }
        }
    }
}

fn flat_sizes(network: &Network) -> Vec<usize> {
    flat_parameters(network)
        .iter()
        .map(|t| t.dims()[0])
        .collect()
}

/// `values` cut into consecutive flat tensors of `sizes`.
fn split_like(values: &[f32], sizes: &[usize]) -> Vec<Tensor<1>> {
    let device = Device::flex();
    let mut at = 0;
    sizes
        .iter()
        .map(|&n| {
            let t = Tensor::from_data(TensorData::new(values[at..at + n].to_vec(), [n]), &device);
            at += n;
            t
        })
        .collect()
}

/// Every float tensor of `network` set to `m * itself + (1 - m) * source` (`source` in
/// module order, flattened); `m = 0` copies `source`.
fn blend(network: Network, source: &[Tensor<1>], m: f64) -> Network {
    struct Blend<'a> {
        source: &'a [Tensor<1>],
        at: usize,
        m: f64,
    }
    impl ModuleMapper for Blend<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let src = self.source[self.at].clone();
            self.at += 1;
            let m = self.m;
            param.map(|t| {
                let src: Tensor<D> = src.to_device(&t.device()).reshape(t.dims());
                if m == 0.0 {
                    src
                } else {
                    t.mul_scalar(m as f32) + src.mul_scalar((1.0 - m) as f32)
                }
            })
        }
    }
    network.map(&mut Blend { source, at: 0, m })
}

fn tensor_values(t: Tensor<2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap_or_default()
}

impl PretextLoss for Moco {
    fn step(
        &mut self,
        network: &Network,
        batch: &Batch,
        indices: &[usize],
        seed: u64,
    ) -> StepOutput {
        let device = batch.images.device();
        let query_inner = network.valid();
        let inner_device = crate::engine::module_device(&query_inner);
        let key = self.advance_key(query_inner);
        let q = network.forward(self.views.view(batch, indices, 0, seed, &device));
        let k_inner = key.forward(self.views.view(batch, indices, 1, seed, &inner_device));
        self.key = Some(key);
        let k_inner = crate::losses::l2_normalize(k_inner);
        let [n, dim] = k_inner.dims();
        let keys = tensor_values(k_inner);
        if self.queue.len() != self.capacity * dim {
            self.fill_queue(dim);
        }
        let k = Tensor::<2>::from_data(TensorData::new(keys.clone(), [n, dim]), &device);
        let negatives = Tensor::<2>::from_data(
            TensorData::new(self.queue.clone(), [self.capacity, dim]),
            &device,
        );
        let loss = info_nce(q.clone(), k.clone(), negatives, self.temperature);
        self.enqueue(&keys, dim);
        let (logits, targets) = retrieval_logits(q, k);
        StepOutput {
            loss,
            logits,
            targets: Some(targets),
        }
    }

    fn per_process_state(&self) -> Option<&'static str> {
        Some("a queue of past keys (MoCo; its keys are not gathered across ranks yet)")
    }

    fn state(&self) -> serde_json::Value {
        let key = self.key.as_ref().map(|k| {
            let values: Vec<f32> = flat_parameters(k)
                .into_iter()
                .flat_map(|t| {
                    t.into_data()
                        .convert::<f32>()
                        .try_into_vec::<f32>()
                        .unwrap_or_default()
                })
                .collect();
            encode(&values)
        });
        serde_json::json!({
            "next": self.next,
            "queue": encode(&self.queue),
            "key": key,
        })
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        self.next = state
            .get("next")
            .and_then(|v| v.as_u64())
            .ok_or("no queue position")? as usize;
        let queue = state
            .get("queue")
            .and_then(|v| v.as_str())
            .ok_or("no queue")?;
        self.queue = decode(queue)?;
        if !self.queue.is_empty() && !self.queue.len().is_multiple_of(self.capacity) {
            return Err(format!(
                "the queue holds {} values, not a multiple of its length {}",
                self.queue.len(),
                self.capacity
            ));
        }
        self.key = None;
        self.saved_key = match state.get("key").and_then(|v| v.as_str()) {
            Some(text) => Some(decode(text)?),
            None => None,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::models::{MlpConfig, ModelConfig};

    fn net(seed: u64) -> Network {
        let cfg = ModelConfig::Mlp(MlpConfig {
            hidden: vec![4],
            ..MlpConfig::default()
        });
        crate::engine::seeded_init(&cfg, [1, 2, 2], 3, &Device::flex(), seed)
    }

    fn values(n: &Network) -> Vec<f32> {
        flat_parameters(n)
            .into_iter()
            .flat_map(|t| {
                t.into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn the_key_encoder_is_an_exponential_moving_average() {
        let (a, b) = (net(1), net(2));
        let (va, vb) = (values(&a), values(&b));
        let mixed = blend(a, &flat_parameters(&b), 0.9);
        for ((m, x), y) in values(&mixed).iter().zip(&va).zip(&vb) {
            assert!((m - (0.9 * x + 0.1 * y)).abs() < 1e-6, "{m} {x} {y}");
        }
        let copied = blend(mixed, &flat_parameters(&b), 0.0);
        assert_eq!(values(&copied), vb);
    }

    #[test]
    fn the_queue_is_first_in_first_out_and_wraps() {
        let cfg = SelfSupervisedConfig {
            queue: 3,
            ..SelfSupervisedConfig::default()
        };
        let data = Dataset::new(vec![0.0; 4], vec![0], [1, 2, 2], 1).unwrap();
        let views = || ViewSource::new(&data, &cfg.augment, None);
        let mut moco = Moco::new(&cfg, views(), 7);
        moco.fill_queue(2);
        assert_eq!(moco.queue().len(), 6);
        for row in moco.queue().chunks(2) {
            let norm: f32 = row.iter().map(|v| v * v).sum();
            assert!((norm - 1.0).abs() < 1e-5);
        }
        moco.enqueue(&[1.0, 0.0, 0.0, 1.0], 2);
        moco.enqueue(&[0.6, 0.8, 0.8, 0.6], 2);
        // Rows 0, 1 were written first, then 2 and (wrapping) 0 again.
        assert_eq!(moco.queue(), &[0.8, 0.6, 0.0, 1.0, 0.6, 0.8]);
        assert_eq!(moco.next, 1);
        // The state round-trips exactly.
        let state = moco.state();
        let mut other = Moco::new(&cfg, views(), 7);
        other.restore(&state).unwrap();
        assert_eq!(other.queue(), moco.queue());
        assert_eq!(other.next, 1);
    }
}
