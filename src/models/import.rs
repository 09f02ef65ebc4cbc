//! Copying a pretrained network's weights into a new network by parameter name.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::{ModulePath, Network, ParamInfo, param_infos, pattern_selects};

/// Why pretrained tensors cannot be copied into a network.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A retrain pattern names no parameter.
    #[error("init.retrain pattern `{0}` matches no parameter")]
    NoMatch(String),
    /// negative batch-norm variance), which would make every output NaN.
    #[error(
        "pretrained tensor `{name}` holds {value} at index {index}: the file is damaged or was saved from a diverged run"
    )]
    BadValue {
        /// The tensor, by this network's name.
        name: String,
        /// The offending value, in words.
        value: String,
        /// Its flat index.
        index: usize,
    },
    /// mentor's own invariant broke (a bug to report, never the user's input).
    #[error("internal error, please report: {0}")]
    Internal(String),
    /// Nothing could be copied (another architecture, say).
    #[error(
        "no parameter of the pretrained network fits this network by name and shape (pretrained names look like `{source_example}`, this network's like `{target_example}`)"
    )]
    NothingFits {
        /// A source parameter name.
        source_example: String,
        /// A target parameter name.
        target_example: String,
    },
}

/// What an import did, parameter by parameter (written as `transfer.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Parameters copied from the pretrained network.
    pub copied: Vec<String>,
    /// Parameters left at their fresh initialisation, with the reason.
    pub reinitialized: Vec<(String, String)>,
    /// Parameters copied after adapting them, with how (a colour network's first
    /// convolution summed over its input channels for grey images).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adapted: Vec<(String, String)>,
}

struct Copier<'a> {
    path: ModulePath,
    source: &'a HashMap<String, TensorData>,
    keep_fresh: &'a dyn Fn(&str) -> bool,
    /// Names of the tensors copied, to check against the report.
    copied: Vec<String>,
}

impl ModuleMapper for Copier<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.name();
        match self.source.get(&name) {
            Some(data) if !(self.keep_fresh)(&name) && *data.shape() == param.lazy_shape() => {
                self.copied.push(name);
                let id = param.id;
                let device = param.lazy_device();
                let tensor = Tensor::<D>::from_data(data.clone(), &device);
                param.transform_for_load(tensor, id)
            }
            _ => param,
        }
    }
}

fn reason(
    target: &ParamInfo,
    source: &HashMap<String, TensorData>,
    retrain: &[String],
) -> Option<String> {
    if let Some(p) = retrain.iter().find(|p| pattern_selects(p, &target.name)) {
        return Some(format!("retrain pattern `{p}`"));
    }
    match source.get(&target.name) {
        None => Some("not in the pretrained network".into()),
        Some(d) if d.shape().as_slice() != target.shape.as_slice() => Some(format!(
            "shape {:?} here, {:?} pretrained",
            target.shape,
            d.shape().as_slice()
        )),
        Some(_) => None,
    }
}

/// Adapts a pretrained first convolution to a network of another input width, as timm's
/// `adapt_input_conv` does: for a one-channel (grey) network, the pretrained weights
/// `[out, 3, k, k]` summed over their input channels (a grey image seen by the colour
/// filters as the same image in every channel). So a grey dataset runs a colour
/// network's features without copying each image to three channels: a third of the
/// first layer's input work. Returns the adapted tensor's name and what was done;
/// `None` when the first convolution fits as it is or cannot be adapted.
pub fn adapt_input_conv(
    target: &Network,
    data: &mut HashMap<String, TensorData>,
) -> Option<(String, String)> {
    let first = param_infos(target)
        .into_iter()
        .find(|p| p.shape.len() == 4)?;
    let source = data.get(&first.name)?;
    let from = source.shape().to_vec();
    let [o, c, kh, kw] = <[usize; 4]>::try_from(from.as_slice()).ok()?;
    if first.shape != [o, 1, kh, kw] || c <= 1 {
        return None;
    }
    let values = source.try_to_vec_as::<f32>().ok()?;
    let plane = kh * kw;
    let mut summed = vec![0f32; o * plane];
    for (oi, out) in summed.chunks_exact_mut(plane).enumerate() {
        for ci in 0..c {
            let at = (oi * c + ci) * plane;
            for (s, v) in out.iter_mut().zip(&values[at..at + plane]) {
                *s += v;
            }
        }
    }
    data.insert(
        first.name.clone(),
        TensorData::new(summed, first.shape.clone()),
    );
    Some((
        first.name,
        format!(
            "summed over its {c} input channels for 1-channel images (timm's adapt_input_conv)"
        ),
    ))
}

/// Refuses a tensor with a NaN or infinite value, or a batch-norm running variance below
/// zero.
fn check_values(name: &str, tensor: &TensorData) -> Result<(), ImportError> {
    let values = tensor.try_to_vec_as::<f32>().unwrap_or_default();
    let variance = name.ends_with("running_var");
    let bad = values
        .iter()
        .position(|v| !v.is_finite() || (variance && *v < 0.0));
    match bad {
        Some(index) => Err(ImportError::BadValue {
            name: name.to_string(),
            value: if values[index].is_finite() {
                format!("the negative variance {}", values[index])
            } else {
                values[index].to_string()
            },
            index,
        }),
        None => Ok(()),
    }
}

/// Every float tensor of `network` (parameters and buffers) by stable name.
pub fn named_tensors(network: &Network) -> HashMap<String, TensorData> {
    let names: Vec<String> = param_infos(network).into_iter().map(|p| p.name).collect();
    struct Grab<'a> {
        names: &'a [String],
        at: usize,
        out: HashMap<String, TensorData>,
    }
    impl burn::module::ModuleVisitor for Grab<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out
                .insert(self.names[self.at].clone(), param.val().into_data());
            self.at += 1;
        }
    }
    let mut grab = Grab {
        names: &names,
        at: 0,
        out: HashMap::new(),
    };
    network.visit(&mut grab);
    grab.out
}

/// Copies every parameter of `source` into `target` whose name and shape match, except
/// those selected by a `retrain` pattern, which keep `target`'s fresh initialisation.
/// Parameter ids stay `target`'s.
pub fn import_weights(
    target: Network,
    source: &Network,
    retrain: &[String],
) -> Result<(Network, ImportReport), ImportError> {
    import_tensors(target, &named_tensors(source), retrain)
}

/// [`import_weights`] from tensors by name (from a network, or a safetensors file).
pub fn import_tensors(
    target: Network,
    data: &HashMap<String, TensorData>,
    retrain: &[String],
) -> Result<(Network, ImportReport), ImportError> {
    let target_infos = param_infos(&target);
    for p in retrain {
        if !target_infos.iter().any(|t| pattern_selects(p, &t.name)) {
            return Err(ImportError::NoMatch(p.clone()));
        }
    }
    let mut report = ImportReport::default();
    for t in &target_infos {
        match reason(t, data, retrain) {
            Some(why) => report.reinitialized.push((t.name.clone(), why)),
            None => report.copied.push(t.name.clone()),
        }
    }
    if report.copied.is_empty() {
        let mut source_names: Vec<&String> = data.keys().collect();
        source_names.sort();
        return Err(ImportError::NothingFits {
            source_example: source_names
                .first()
                .map(|n| n.to_string())
                .unwrap_or_default(),
            target_example: target_infos
                .first()
                .map(|p| p.name.clone())
                .unwrap_or_default(),
        });
    }
    for name in &report.copied {
        if let Some(tensor) = data.get(name) {
            check_values(name, tensor)?;
        }
    }
    let keep_fresh = |name: &str| retrain.iter().any(|p| pattern_selects(p, name));
    let mut copier = Copier {
        path: ModulePath::default(),
        source: data,
        keep_fresh: &keep_fresh,
        copied: Vec::new(),
    };
    let network = target.map(&mut copier);
    // The report is made from the parameters' names, the copy from a walk of the
    // modules: they must agree, or the report would claim weights that were not copied.
    if copier.copied != report.copied {
        return Err(ImportError::Internal(format!(
            "the import copied {} tensors but its report lists {}",
            copier.copied.len(),
            report.copied.len()
        )));
    }
    Ok((network, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{CnnConfig, ModelConfig};
    use burn::tensor::Device;

    fn values(n: &Network, name: &str) -> Vec<f32> {
        let infos = param_infos(n);
        let at = infos.iter().position(|p| p.name == name).unwrap();
        struct Nth(usize, usize, Vec<f32>);
        impl burn::module::ModuleVisitor for Nth {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                if self.0 == self.1 {
                    self.2 = p.val().into_data().convert::<f32>().try_to_vec().unwrap();
                }
                self.1 += 1;
            }
        }
        let mut v = Nth(at, 0, Vec::new());
        n.visit(&mut v);
        v.2
    }

    #[test]
    fn copies_matching_weights_and_reinitialises_the_rest() {
        let device = Device::flex();
        let cnn = ModelConfig::Cnn(CnnConfig::default());
        let source = cnn.init([1, 8, 8], 5, &device);
        let target = cnn.init([1, 8, 8], 10, &device);
        let fresh_conv2 = values(&target, "backbone.conv2.weight");
        let (out, report) =
            import_weights(target, &source, &["backbone.conv2".to_string()]).unwrap();
        assert_eq!(
            values(&out, "backbone.conv1.weight"),
            values(&source, "backbone.conv1.weight")
        );
        assert_eq!(values(&out, "backbone.conv2.weight"), fresh_conv2);
        let why: HashMap<_, _> = report.reinitialized.iter().cloned().collect();
        assert!(why["head.weight"].contains("shape"), "{why:?}");
        assert!(why["backbone.conv2.weight"].contains("retrain"), "{why:?}");
        assert!(report.copied.contains(&"backbone.fc.weight".to_string()));
        assert_eq!(report.copied.len() + report.reinitialized.len(), 8);
    }

    #[test]
    fn nan_infinite_or_negative_variance_weights_are_refused_naming_the_tensor() {
        let device = Device::flex();
        let resnet = ModelConfig::Resnet(crate::models::ResNetConfig::default());
        let source = resnet.init([1, 8, 8], 10, &device);
        let good = named_tensors(&source);
        for (name, value, said) in [
            ("backbone.stem.weight", f32::NAN, "NaN"),
            ("head.bias", f32::INFINITY, "inf"),
            ("backbone.stem_bn.running_var", -0.5, "negative variance"),
        ] {
            let mut data = good.clone();
            let tensor = &data[name];
            let mut values = tensor.try_to_vec_as::<f32>().unwrap();
            values[1] = value;
            let shape = tensor.shape().to_vec();
            data.insert(name.to_string(), TensorData::new(values, shape));
            let target = resnet.init([1, 8, 8], 10, &device);
            let e = import_tensors(target, &data, &[])
                .err()
                .unwrap()
                .to_string();
            assert!(
                e.contains(name) && e.contains(said) && e.contains("index 1"),
                "{e}"
            );
        }
        let target = resnet.init([1, 8, 8], 10, &device);
        assert!(import_tensors(target, &good, &[]).is_ok());
    }

    #[test]
    fn unknown_patterns_and_foreign_networks_are_errors() {
        let device = Device::flex();
        let cnn = ModelConfig::Cnn(CnnConfig::default()).init([1, 8, 8], 10, &device);
        let mlp = ModelConfig::default().init([1, 8, 8], 10, &device);
        let other = ModelConfig::Cnn(CnnConfig::default()).init([1, 8, 8], 10, &device);
        assert!(matches!(
            import_weights(other, &cnn, &["tail".into()]),
            Err(ImportError::NoMatch(_))
        ));
        let err = import_weights(mlp, &cnn, &["head".into()])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no parameter"), "{err}");
    }
}
