//! Learning without Forgetting (Li & Hoiem 2016, "Learning without Forgetting"): before
//! training task `n`, the network's outputs on task `n`'s training images are recorded
//! once (`Y_o`, the old heads' responses to the new data); while task `n` trains, each old
//! head's current outputs `Y_o_hat` are kept close to the recorded ones with the
//! temperature KD loss, `lambda_o * sum_heads T^2 CE(softmax(Y_o/T), softmax(Y_o_hat/T))`,
//! next to the new task's cross-entropy. No old data is stored.
//!
//! Which outputs are "old heads": under task-IL each earlier task's own units (one KD term
//! per head, as Li & Hoiem); under class-IL the units of all earlier classes together
//! (one softmax over them, as van de Ven & Tolias 2019); under domain-IL the shared head.

use std::ops::Range;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::continual::method::{ContinualMethod, LossTerm, StepContext, TaskContext};
use crate::continual::{ContinualError, LwfBalance, Setting};
use crate::data::Dataset;
use crate::engine::TrainSpec;
use crate::engine::cache::ExampleCache;
use crate::engine::groups::GroupRule;
use crate::losses::soft_distillation_loss;
use crate::models::Network;

/// The recorded old-head outputs and the KD term they define.
pub struct LwfTerm {
    /// Weigh the terms by the number of tasks seen (van de Ven & Tolias) rather than add
    /// them (Li & Hoiem).
    pub balance_by_tasks: bool,
    recorded: ExampleCache,
    old_heads: Vec<Range<usize>>,
    temperature: f64,
    lambda: f64,
}

impl LwfTerm {
    /// Records `previous`'s outputs on `train` (the new task's training set), once.
    pub fn record(
        previous: &Network,
        train: &Dataset,
        old_heads: Vec<Range<usize>>,
        temperature: f64,
        lambda: f64,
        device: &Device,
    ) -> Self {
        let model = previous.valid();
        let recorded = ExampleCache::compute(train, device, |x| model.forward(x));
        Self {
            balance_by_tasks: false,
            recorded,
            old_heads,
            temperature,
            lambda,
        }
    }

    /// `lambda_o * sum_heads KD_T(logits[:, head], recorded[:, head])` for the training
    /// examples `indices`; `logits` are the network's full outputs on them.
    pub fn loss(&self, logits: &Tensor<2>, indices: &[usize]) -> Option<Tensor<1>> {
        let device = logits.device();
        let old = self.recorded.rows(indices, &device);
        let b = indices.len();
        let mut total: Option<Tensor<1>> = None;
        for head in &self.old_heads {
            let s = logits.clone().slice([0..b, head.clone()]);
            let t = old.clone().slice([0..b, head.clone()]);
            let kd = soft_distillation_loss(s, t, self.temperature);
            total = Some(match total {
                None => kd,
                Some(x) => x + kd,
            });
        }
        total.map(|t| t.mul_scalar(self.lambda as f32))
    }

    /// The recorded outputs (one row per training example of the task).
    pub fn recorded(&self) -> &ExampleCache {
        &self.recorded
    }
}

/// Learning without Forgetting as a method: before each new task the previous network's
/// outputs on the new task's images are recorded once, and every step adds the KD term
/// on the old heads; an optional warm-up trains the head alone for the first epochs.
pub struct Lwf {
    lambda: f64,
    temperature: f64,
    warmup_epochs: usize,
    balance: LwfBalance,
}

impl Lwf {
    /// LwF with KD weight `lambda`, temperature `temperature`, `warmup_epochs` of head-only
    /// training per new task and the `balance` of the two terms.
    pub fn new(lambda: f64, temperature: f64, warmup_epochs: usize, balance: LwfBalance) -> Self {
        Self {
            lambda,
            temperature,
            warmup_epochs,
            balance,
        }
    }
}

impl ContinualMethod for Lwf {
    fn task_spec(&self, t: usize, mut spec: TrainSpec) -> TrainSpec {
        if t > 0 && self.warmup_epochs > 0 {
            spec.groups.push(GroupRule {
                pattern: "backbone".into(),
                lr_mult: 1.0,
                frozen: true,
                unfreeze_at: Some((self.warmup_epochs + 1).min(spec.epochs.max(2))),
                freeze_bn: true,
            });
            spec.epochs = spec.epochs.max(2);
        }
        spec
    }

    fn before_task(
        &mut self,
        cx: &TaskContext<'_>,
        network: &Network,
    ) -> Result<Vec<Box<dyn LossTerm>>, ContinualError> {
        if cx.t == 0 {
            return Ok(Vec::new());
        }
        let (tasks, t) = (cx.tasks, cx.t);
        let old_heads = match cx.setting {
            Setting::TaskIl => tasks[..t].iter().map(|k| k.outputs.clone()).collect(),
            Setting::ClassIl => std::iter::once(0..tasks[t - 1].outputs.end).collect(),
            Setting::DomainIl => vec![tasks[0].outputs.clone()],
        };
        let mut term = LwfTerm::record(
            network,
            cx.train_set,
            old_heads,
            self.temperature,
            self.lambda,
            cx.device,
        );
        term.balance_by_tasks = self.balance == LwfBalance::Tasks;
        Ok(vec![Box::new(term)])
    }
}

impl LossTerm for LwfTerm {
    fn combine(&self, loss: Tensor<1>, cx: &StepContext<'_>) -> Tensor<1> {
        let Some(kd) = self.loss(cx.logits, cx.indices) else {
            return loss;
        };
        if self.balance_by_tasks {
            let w_new = 1.0 / (cx.current + 1) as f32;
            loss.mul_scalar(w_new) + kd.mul_scalar(1.0 - w_new)
        } else {
            loss + kd
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{MlpConfig, ModelConfig};

    #[test]
    fn the_term_vanishes_for_the_recorded_network_only() {
        let device = Device::flex();
        let cfg = ModelConfig::Mlp(MlpConfig {
            hidden: vec![4],
            ..MlpConfig::default()
        });
        let net = crate::engine::seeded_init(&cfg, [1, 2, 2], 4, &device, 1);
        let other = crate::engine::seeded_init(&cfg, [1, 2, 2], 4, &device, 2);
        let images: Vec<f32> = (0..12).map(|v| v as f32 / 12.0 - 0.5).collect();
        let data = Dataset::new(images, vec![0, 1, 2], [1, 2, 2], 4).unwrap();
        let term = LwfTerm::record(&net, &data, vec![0..2, 2..4], 2.0, 1.0, &device);
        let idx = [0, 1, 2];
        let batch = crate::data::Batch::gather(&data, &idx, &device);
        // KD against itself is the entropy of the softened targets, its minimum; any other
        // network scores higher.
        let own = term.loss(&net.forward(batch.images.clone()), &idx).unwrap();
        let theirs = term.loss(&other.forward(batch.images), &idx).unwrap();
        let (own, theirs) = (own.into_scalar::<f32>(), theirs.into_scalar::<f32>());
        assert!(own < theirs, "{own} vs {theirs}");
        // Two 2-unit heads: entropy of each is at most ln 2, times T^2 = 4.
        assert!(own > 0.0 && own <= 2.0 * 4.0 * 2f32.ln() + 1e-5, "{own}");
    }
}
