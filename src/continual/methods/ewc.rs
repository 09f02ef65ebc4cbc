//! Elastic Weight Consolidation (Kirkpatrick et al. 2017, "Overcoming catastrophic
//! forgetting in neural networks"): after a task, the diagonal of the Fisher information
//! `F_k = E_x[(d log p(y_hat|x) / d theta_k)^2]` says how much each weight mattered, and
//! later tasks pay `lambda/2 * sum_k F_k (theta_k - theta*_k)^2` for moving it away from
//! its end-of-task value `theta*`. Online EWC (Schwarz et al. 2018) keeps one running
//! `F = gamma F_old + F_new` anchored at the latest `theta*` instead of one term per task.
//!
//! The Fisher is estimated as van de Ven & Tolias (2019) do: per example, the gradient
//! of the log-likelihood of the network's own most likely class (over the output units
//! the setting trains), squared, averaged over `fisher_samples` training examples.

use std::ops::Range;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Gradients, Int, Tensor, TensorData};
use rand::seq::SliceRandom;

use crate::data::split::rng;
use crate::data::{Batch, Dataset};
use crate::losses::mask_outputs;
use crate::models::Network;
use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::continual::ContinualError;
use crate::continual::method::{
    ContinualMethod, LossTerm, MethodState, StepContext, TaskContext, state_error,
};
use crate::continual::scenario::train_outputs;

/// A diagonal quadratic penalty: one `(fisher, anchor)` pair of flat vectors per
/// trainable parameter, in module order.
#[derive(Debug, Clone, PartialEq)]
pub struct EwcTerm {
    /// Diagonal Fisher per parameter.
    pub fisher: Vec<Vec<f32>>,
    /// Anchor weights `theta*` per parameter.
    pub anchor: Vec<Vec<f32>>,
}

/// The trainable parameters of `network`, flattened, in module order (batch-norm running
/// statistics are left out). On an autodiff network they stay in the graph.
pub fn flat_parameters(network: &Network) -> Vec<Tensor<1>> {
    let infos = crate::models::param_infos(network);
    crate::models::params::flat_parameters(network)
        .into_iter()
        .zip(infos)
        .filter(|(_, info)| info.trainable)
        .map(|(p, _)| p)
        .collect()
}

/// Per-trainable-parameter gradients of `network` in `grads` (zeros where a parameter got
/// none), flattened, in module order.
fn flat_gradients(network: &Network, grads: &Gradients) -> Vec<Tensor<1>> {
    let trainable: Vec<bool> = crate::models::param_infos(network)
        .iter()
        .map(|p| p.trainable)
        .collect();
    struct Grads<'a> {
        trainable: &'a [bool],
        grads: &'a Gradients,
        at: usize,
        out: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for Grads<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.trainable[self.at] {
                // The gradient belongs to the parameter's own leaf tensor, so look it up
                // before any reshaping.
                let value = param.val();
                let grad = value
                    .grad(self.grads)
                    .unwrap_or_else(|| value.inner().zeros_like());
                self.out.push(grad.flatten(0, D - 1));
            }
            self.at += 1;
        }
    }
    let mut visitor = Grads {
        trainable: &trainable,
        grads,
        at: 0,
        out: Vec::new(),
    };
    network.visit(&mut visitor);
    visitor.out
}

fn to_vec(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

/// The diagonal Fisher of `network` (an autodiff network) on up to `samples` examples of
/// `data` (a seeded choice), each scored on the output units `outputs` (`None`: all).
pub fn estimate_fisher(
    network: &Network,
    data: &Dataset,
    outputs: Option<Range<usize>>,
    samples: usize,
    seed: u64,
) -> Vec<Vec<f32>> {
    let device = crate::engine::module_device(network);
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut rng(seed ^ 0xF15E_4E12));
    order.truncate(samples.min(data.len()));
    let mut sums: Option<Vec<Tensor<1>>> = None;
    for &i in &order {
        let batch = Batch::gather(data, &[i], &device);
        let mut logits = network.forward(batch.images);
        if let Some(active) = &outputs {
            logits = mask_outputs(logits, active.clone());
        }
        let predicted: Tensor<1, Int> = logits.clone().detach().argmax(1).flatten(0, 1);
        let loss = CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits, predicted);
        let grads = loss.backward();
        let squares: Vec<Tensor<1>> = flat_gradients(network, &grads)
            .into_iter()
            .map(|g| g.clone() * g)
            .collect();
        sums = Some(match sums {
            None => squares,
            Some(acc) => acc.into_iter().zip(squares).map(|(a, s)| a + s).collect(),
        });
    }
    let n = order.len().max(1) as f32;
    sums.unwrap_or_default()
        .into_iter()
        .map(|s| to_vec(s.div_scalar(n)))
        .collect()
}

/// The current trainable weights of `network`, flattened, in module order.
pub fn anchor_weights(network: &Network) -> Vec<Vec<f32>> {
    flat_parameters(&network.valid())
        .into_iter()
        .map(to_vec)
        .collect()
}

/// The EWC penalty over a set of terms, merged into one quadratic and held on the training
/// device once, so each step pays for one term however many tasks came before. Per
/// weight, `sum_t F_t (w - a_t)^2 = F (w - a)^2 + C` exactly, with `F = sum_t F_t`, the
/// Fisher-weighted mean anchor `a = sum_t F_t a_t / F` and the constant `C = sum_t F_t
/// (a_t - a)^2`: the same value and the same gradient, where summing term by term cost
/// each step one pass per old task (EWC's fourth task took 2.9x fine-tuning's time).
pub struct EwcPenalty {
    lambda: f64,
    /// Per parameter: (summed Fisher, mean anchor); empty without terms.
    merged: Vec<(Tensor<1>, Tensor<1>)>,
    /// `sum C` over all weights, in f64.
    constant: f64,
}

/// `(F, a, C)` of one parameter's terms (each `(fisher, anchor)`), as [`EwcPenalty`]
/// defines them; a weight no term cares about (`F = 0`) gets anchor 0.
fn merge_terms(terms: &[(&[f32], &[f32])]) -> (Vec<f32>, Vec<f32>, f64) {
    let len = terms.first().map_or(0, |(f, _)| f.len());
    let (mut fisher, mut anchor, mut constant) = (vec![0f32; len], vec![0f32; len], 0f64);
    for k in 0..len {
        let total: f64 = terms.iter().map(|(f, _)| f[k] as f64).sum();
        if total <= 0.0 {
            continue;
        }
        let mean = terms
            .iter()
            .map(|(f, a)| f[k] as f64 * a[k] as f64)
            .sum::<f64>()
            / total;
        constant += terms
            .iter()
            .map(|(f, a)| f[k] as f64 * (a[k] as f64 - mean).powi(2))
            .sum::<f64>();
        (fisher[k], anchor[k]) = (total as f32, mean as f32);
    }
    (fisher, anchor, constant)
}

impl EwcPenalty {
    /// Merges `terms` and moves them onto `device`.
    pub fn new(lambda: f64, terms: &[EwcTerm], device: &Device) -> Self {
        let on = |v: Vec<f32>| {
            let len = v.len();
            Tensor::<1>::from_data(TensorData::new(v, [len]), device)
        };
        let parameters = terms.first().map_or(0, |t| t.fisher.len());
        let mut constant = 0.0;
        let merged = (0..parameters)
            .map(|p| {
                let of_p: Vec<(&[f32], &[f32])> = terms
                    .iter()
                    .map(|t| (t.fisher[p].as_slice(), t.anchor[p].as_slice()))
                    .collect();
                let (fisher, anchor, c) = merge_terms(&of_p);
                constant += c;
                (on(fisher), on(anchor))
            })
            .collect();
        Self {
            lambda,
            merged,
            constant,
        }
    }

    /// `lambda/2 * sum_terms sum_k F_k (theta_k - theta*_k)^2` for `network`'s weights;
    /// `None` when there is no term yet.
    pub fn penalty(&self, network: &Network) -> Option<Tensor<1>> {
        if self.merged.is_empty() {
            return None;
        }
        let params = flat_parameters(network);
        let mut total: Option<Tensor<1>> = None;
        for (p, (f, a)) in params.iter().zip(&self.merged) {
            let s = crate::kernels::weighted_squared_distance(p.clone(), f, a);
            total = Some(match total {
                None => s,
                Some(t) => t + s,
            });
        }
        total.map(|t| {
            t.add_scalar(self.constant as f32)
                .mul_scalar((self.lambda / 2.0) as f32)
        })
    }
}

/// Adds the end-of-task Fisher and weights to the terms: a new term (offline EWC), or
/// folded into the single running term (online EWC: `F = gamma F_old + F_new`, anchored
/// at the new weights).
pub fn consolidate(terms: &mut Vec<EwcTerm>, new: EwcTerm, online: bool, gamma: f64) {
    match (online, terms.pop()) {
        (true, Some(old)) => {
            let fisher = old
                .fisher
                .iter()
                .zip(&new.fisher)
                .map(|(o, n)| o.iter().zip(n).map(|(o, n)| gamma as f32 * o + n).collect())
                .collect();
            terms.push(EwcTerm {
                fisher,
                anchor: new.anchor,
            });
        }
        (_, old) => {
            terms.extend(old);
            terms.push(new);
        }
    }
}

/// Elastic Weight Consolidation as a method: after each task the diagonal Fisher and the
/// weights are kept (one term per task, or one running term for online EWC), and from
/// the second task on every step adds the quadratic penalty.
pub struct Ewc {
    lambda: f64,
    online: bool,
    gamma: f64,
    fisher_samples: usize,
    terms: Vec<EwcTerm>,
}

/// Where EWC keeps its Fisher and anchors in the continual run directory.
pub const EWC_FILE: &str = "ewc.safetensors";

impl Ewc {
    /// EWC of strength `lambda`, online with decay `gamma` or one term per task, the
    /// Fisher estimated on `fisher_samples` examples.
    pub fn new(lambda: f64, online: bool, gamma: f64, fisher_samples: usize) -> Self {
        Self {
            lambda,
            online,
            gamma,
            fisher_samples,
            terms: Vec::new(),
        }
    }
}

impl ContinualMethod for Ewc {
    fn before_task(
        &mut self,
        cx: &TaskContext<'_>,
        _network: &Network,
    ) -> Result<Vec<Box<dyn LossTerm>>, ContinualError> {
        if cx.t == 0 || self.terms.is_empty() {
            return Ok(Vec::new());
        }
        let device = cx.device.clone().autodiff();
        Ok(vec![Box::new(EwcPenalty::new(
            self.lambda,
            &self.terms,
            &device,
        ))])
    }

    fn after_task(
        &mut self,
        cx: &TaskContext<'_>,
        network: &Network,
    ) -> Result<(), ContinualError> {
        let t = cx.t;
        let fisher = estimate_fisher(
            network,
            &cx.tasks[t].train,
            train_outputs(cx.setting, cx.tasks, t, t),
            self.fisher_samples,
            cx.spec.seed ^ t as u64,
        );
        let term = EwcTerm {
            fisher,
            anchor: anchor_weights(network),
        };
        consolidate(&mut self.terms, term, self.online, self.gamma);
        Ok(())
    }

    fn save(&self, dir: &Path) -> Result<MethodState, ContinualError> {
        write_terms(&dir.join(EWC_FILE), &self.terms)?;
        let mut state = MethodState::new();
        state.insert("ewc_terms".into(), self.terms.len().into());
        Ok(state)
    }

    fn load(&mut self, dir: &Path, saved: &MethodState) -> Result<(), ContinualError> {
        let count = saved.get("ewc_terms").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
        self.terms = read_terms(&dir.join(EWC_FILE), count)?;
        Ok(())
    }
}

impl LossTerm for EwcPenalty {
    fn combine(&self, loss: Tensor<1>, cx: &StepContext<'_>) -> Tensor<1> {
        match self.penalty(cx.network) {
            Some(p) => loss + p,
            None => loss,
        }
    }
}

fn write_terms(path: &Path, terms: &[EwcTerm]) -> Result<(), ContinualError> {
    let mut named: Vec<(String, Vec<u8>, usize)> = Vec::new();
    for (k, term) in terms.iter().enumerate() {
        for (p, (f, a)) in term.fisher.iter().zip(&term.anchor).enumerate() {
            for (kind, v) in [("fisher", f), ("anchor", a)] {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                named.push((format!("term{k}.{kind}.{p}"), bytes, v.len()));
            }
        }
    }
    let views: Vec<(String, TensorView<'_>)> = named
        .iter()
        .map(|(n, b, len)| {
            TensorView::new(Dtype::F32, vec![*len], b)
                .map(|v| (n.clone(), v))
                .map_err(|e| state_error(path, e))
        })
        .collect::<Result<_, _>>()?;
    let bytes = safetensors::serialize(views, None).map_err(|e| state_error(path, e))?;
    crate::engine::io::write_atomic(path, &bytes).map_err(|e| state_error(path, e))
}

fn read_terms(path: &Path, count: usize) -> Result<Vec<EwcTerm>, ContinualError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let bytes = std::fs::read(path).map_err(|e| state_error(path, e))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| state_error(path, e))?;
    let mut by_name: HashMap<String, Vec<f32>> = HashMap::new();
    for (name, view) in file.tensors() {
        let v = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        by_name.insert(name, v);
    }
    let mut terms = Vec::with_capacity(count);
    for k in 0..count {
        let mut term = EwcTerm {
            fisher: Vec::new(),
            anchor: Vec::new(),
        };
        let mut p = 0;
        while let Some(f) = by_name.remove(&format!("term{k}.fisher.{p}")) {
            let a = by_name
                .remove(&format!("term{k}.anchor.{p}"))
                .ok_or_else(|| {
                    state_error(path, format!("term {k} parameter {p} has no anchor"))
                })?;
            term.fisher.push(f);
            term.anchor.push(a);
            p += 1;
        }
        if p == 0 {
            return Err(state_error(path, format!("EWC term {k} is missing")));
        }
        terms.push(term);
    }
    Ok(terms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{MlpConfig, ModelConfig};

    fn tiny() -> Network {
        let cfg = ModelConfig::Mlp(MlpConfig {
            hidden: vec![3],
            ..MlpConfig::default()
        });
        crate::engine::seeded_init(&cfg, [1, 2, 2], 2, &Device::flex().autodiff(), 3)
    }

    #[test]
    fn penalty_is_zero_at_the_anchor_and_matches_a_hand_sum_elsewhere() {
        let device = Device::flex().autodiff();
        let net = tiny();
        let anchor = anchor_weights(&net);
        let fisher: Vec<Vec<f32>> = anchor.iter().map(|a| vec![2.0; a.len()]).collect();
        let at_anchor = EwcPenalty::new(
            10.0,
            &[EwcTerm {
                fisher: fisher.clone(),
                anchor: anchor.clone(),
            }],
            &device,
        );
        let zero = at_anchor.penalty(&net).unwrap().into_scalar::<f32>();
        assert_eq!(zero, 0.0);
        // Anchors shifted by 0.5 everywhere: lambda/2 * sum F * 0.25 = 5 * 2 * 0.25 * n.
        let n: usize = anchor.iter().map(Vec::len).sum();
        let shifted: Vec<Vec<f32>> = anchor
            .iter()
            .map(|a| a.iter().map(|v| v + 0.5).collect())
            .collect();
        let p = EwcPenalty::new(
            10.0,
            &[EwcTerm {
                fisher,
                anchor: shifted,
            }],
            &device,
        );
        let value = p.penalty(&net).unwrap().into_scalar::<f32>() as f64;
        let expected = 5.0 * 2.0 * 0.25 * n as f64;
        assert!(
            (value - expected).abs() < 1e-3 * expected,
            "{value} vs {expected}"
        );
    }

    #[test]
    fn merged_terms_give_the_term_by_term_value_and_gradient() {
        let device = Device::flex().autodiff();
        let net = tiny();
        let weights = anchor_weights(&net);
        // Three tasks' terms with different Fisher and anchors, some weights unused by
        // some tasks (Fisher 0) and one by all.
        let term = |t: usize| EwcTerm {
            fisher: weights
                .iter()
                .map(|w| {
                    (0..w.len())
                        .map(|k| [0.0, 0.5 + t as f32, 3.0 / (1 + t) as f32][(k + t) % 3])
                        .collect()
                })
                .collect(),
            anchor: weights
                .iter()
                .map(|w| w.iter().map(|v| v + 0.3 * (t as f32 - 1.0) - 0.1).collect())
                .collect(),
        };
        let terms = [term(0), term(1), term(2)];
        let merged = EwcPenalty::new(7.0, &terms, &device);
        let value_and_grads = |penalty: Tensor<1>| {
            let value = penalty.clone().into_scalar::<f32>() as f64;
            let grads = penalty.backward();
            let flat: Vec<f32> = flat_gradients(&net, &grads)
                .into_iter()
                .flat_map(to_vec)
                .collect();
            (value, flat)
        };
        let (got, got_grad) = value_and_grads(merged.penalty(&net).expect("terms"));
        // Term by term: one penalty per task, added.
        let mut want = 0.0;
        let mut want_grad = vec![0f32; got_grad.len()];
        for t in &terms {
            let one = EwcPenalty::new(7.0, std::slice::from_ref(t), &device);
            let (v, g) = value_and_grads(one.penalty(&net).expect("term"));
            want += v;
            want_grad.iter_mut().zip(g).for_each(|(w, g)| *w += g);
        }
        assert!((got - want).abs() < 1e-5 * want, "{got} vs {want}");
        let scale = want_grad.iter().fold(0f32, |m, g| m.max(g.abs()));
        assert!(scale > 0.0);
        for (g, w) in got_grad.iter().zip(&want_grad) {
            assert!((g - w).abs() < 1e-5 * scale, "gradient {g} vs {w}");
        }
    }

    #[test]
    fn fisher_has_one_nonnegative_vector_per_parameter_and_masked_units_get_none() {
        let net = tiny();
        let images: Vec<f32> = (0..16).map(|v| v as f32 / 16.0).collect();
        let data = Dataset::new(images, vec![0, 1, 0, 1], [1, 2, 2], 2).unwrap();
        let fisher = estimate_fisher(&net, &data, Some(0..1), 4, 1);
        let anchor = anchor_weights(&net);
        assert_eq!(fisher.len(), anchor.len());
        for (f, a) in fisher.iter().zip(&anchor) {
            assert_eq!(f.len(), a.len());
            assert!(f.iter().all(|v| *v >= 0.0));
        }
        // With only unit 0 active its softmax is 1 and every gradient is 0.
        assert!(fisher.iter().flatten().all(|v| *v == 0.0));
        let full = estimate_fisher(&net, &data, None, 4, 1);
        assert!(full.iter().flatten().any(|v| *v > 0.0));
    }

    #[test]
    fn online_consolidation_decays_and_sums_offline_appends() {
        let t = |f: f32, a: f32| EwcTerm {
            fisher: vec![vec![f]],
            anchor: vec![vec![a]],
        };
        let mut online = vec![t(2.0, 1.0)];
        consolidate(&mut online, t(1.0, 5.0), true, 0.5);
        assert_eq!(online, vec![t(2.0, 5.0)]);
        let mut offline = vec![t(2.0, 1.0)];
        consolidate(&mut offline, t(1.0, 5.0), false, 0.5);
        assert_eq!(offline.len(), 2);
    }
}
