//! Weights in and out as safetensors, with PyTorch's conventions, so that mentor models
//! load into an equivalent `torch.nn.Module` and PyTorch-trained weights seed mentor runs.
//!
//! Names stay mentor's dotted module paths (`backbone.conv1.weight`, `head.bias`), which
//! are also the `state_dict` keys of a torch module with the same attribute names (see
//! README for one). Layouts follow PyTorch: linear weights are `[out, in]` (Burn stores
//! `[in, out]`, so they are transposed), convolution weights `[out, in, kh, kw]` (same
//! in both), batch norm's `gamma`/`beta` are `weight`/`bias`, and each batch norm also
//! gets the `num_batches_tracked` counter torch expects. A network ported from a
//! published implementation (EfficientNet-Lite) uses that implementation's names
//! instead ([`Network::native_name`]), so its files load there with `strict=True` and
//! the published checkpoints load here as they are. On import a `key_map` of `from=to`
//! prefix rewrites adapts other naming schemes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::TensorData;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::import::named_tensors;
use super::{Network, ParamInfo, param_infos};

/// A weights file that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid safetensors, or holds an unsupported tensor.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The network's tensors could not be encoded (a bug to report).
    #[error("cannot encode the weights as safetensors: {0}")]
    Encode(String),
    /// A key map entry is not `from=to`.
    #[error("key map entry {0:?}: expected FROM=TO (or the preset timm:tf_efficientnet_lite0)")]
    KeyMap(String),
}

fn bn_torch_name(name: &str) -> Option<String> {
    name.strip_suffix(".gamma")
        .map(|p| format!("{p}.weight"))
        .or_else(|| name.strip_suffix(".beta").map(|p| format!("{p}.bias")))
}

fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

fn f32s(data: &TensorData) -> Vec<f32> {
    data.clone()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

/// The PyTorch name and shape of `network`'s parameter `info`: batch norm's `weight`
/// and `bias` for Burn's `gamma` and `beta`, a linear weight `[out, in]` (Burn keeps
/// `[in, out]`), and the family's own name where it has one
/// ([`Network::native_name`]).
pub fn pytorch_name(network: &Network, info: &ParamInfo) -> (String, Vec<usize>) {
    let (name, shape) = if let Some(torch) = bn_torch_name(&info.name) {
        (torch, info.shape.clone())
    } else if is_linear_weight(info) {
        (info.name.clone(), vec![info.shape[1], info.shape[0]])
    } else {
        (info.name.clone(), info.shape.clone())
    };
    (network.native_name(&name).unwrap_or(name), shape)
}

/// Whether `info` is a linear layer's weight (stored transposed in PyTorch files).
fn is_linear_weight(info: &ParamInfo) -> bool {
    info.name.ends_with(".weight") && info.shape.len() == 2
}

/// `network`'s tensors under PyTorch names and layouts, in name order.
pub fn torch_state(network: &Network) -> Vec<(String, Vec<usize>, Vec<u8>, Dtype)> {
    let tensors = named_tensors(network);
    let mut out = Vec::new();
    for info in param_infos(network) {
        let values = f32s(&tensors[&info.name]);
        let (name, shape) = pytorch_name(network, &info);
        let values = if is_linear_weight(&info) {
            transpose(&values, info.shape[0], info.shape[1])
        } else {
            values
        };
        if let Some(prefix) = name.strip_suffix(".running_var") {
            out.push((
                format!("{prefix}.num_batches_tracked"),
                Vec::new(),
                0i64.to_le_bytes().to_vec(),
                Dtype::I64,
            ));
        }
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        out.push((name, shape, bytes, Dtype::F32));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `network` as the bytes of a safetensors file with PyTorch names and layouts (the
/// caller writes them, atomically).
pub fn safetensors_bytes(network: &Network) -> Result<Vec<u8>, WeightsError> {
    let state = torch_state(network);
    let views: Vec<(String, TensorView<'_>)> = state
        .iter()
        .map(|(n, shape, bytes, dtype)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (n.clone(), v))
                .map_err(|e| WeightsError::Encode(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert(
        "producer".to_string(),
        format!("mentor {}", env!("CARGO_PKG_VERSION")),
    );
    safetensors::serialize(views, Some(meta))
        .map_err(|e| e.to_string())
        .and_then(canonical_header)
        .map_err(WeightsError::Encode)
}

/// `bytes` (a safetensors file) with its JSON header's keys sorted at every level, so
/// one network always exports to the same bytes: safetensors writes its metadata from a
/// `HashMap`, whose order changes from process to process. The tensor data and every
/// offset stay as they are; the header is padded with spaces to a multiple of 8 bytes,
/// as safetensors pads it.
fn canonical_header(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or("safetensors output shorter than its header length")?;
    let len = usize::try_from(u64::from_le_bytes(len_bytes)).map_err(|e| e.to_string())?;
    let header = bytes
        .get(8..8 + len)
        .ok_or("safetensors header longer than its output")?;
    // serde_json's map is ordered by key (no `preserve_order`).
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    let mut text = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - len);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + len..]);
    Ok(out)
}

/// The named key map that reads timm's `tf_efficientnet_lite0` state dicts (timm's port
/// of the TensorFlow weights: "same" padding and batch-norm epsilon 1e-3, as mentor's
/// EfficientNet-Lite0) into the names mentor's Lite0 reads: one prefix rewrite per module
/// (`blocks.1.0.conv_pw.` is `_blocks.1._expand_conv.`, ...). timm's own
/// `efficientnet_lite0` pads as PyTorch does and uses epsilon 1e-5, another network: its
/// weights would load but compute something else, so no preset is offered for it.
pub const TIMM_LITE0: &str = "timm:tf_efficientnet_lite0";

fn timm_lite0_rules() -> Vec<(String, String)> {
    let mut rules: Vec<(String, String)> = [
        ("conv_stem.", "_conv_stem."),
        ("bn1.", "_bn0."),
        ("conv_head.", "_conv_head."),
        ("bn2.", "_bn1."),
        ("classifier.", "_fc."),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let repeats = [1, 2, 2, 3, 3, 4, 1];
    let mut block = 0;
    for (stage, &n) in repeats.iter().enumerate() {
        for j in 0..n {
            // The first stage's blocks are depthwise-separable (no expansion).
            let layers: &[(&str, &str)] = if stage == 0 {
                &[
                    ("conv_dw", "_depthwise_conv"),
                    ("bn1", "_bn1"),
                    ("conv_pw", "_project_conv"),
                    ("bn2", "_bn2"),
                ]
            } else {
                &[
                    ("conv_pw", "_expand_conv"),
                    ("bn1", "_bn0"),
                    ("conv_dw", "_depthwise_conv"),
                    ("bn2", "_bn1"),
                    ("conv_pwl", "_project_conv"),
                    ("bn3", "_bn2"),
                ]
            };
            for (timm, native) in layers {
                rules.push((
                    format!("blocks.{stage}.{j}.{timm}."),
                    format!("_blocks.{block}.{native}."),
                ));
            }
            block += 1;
        }
    }
    rules
}

/// Parses `from=to` prefix rewrites; the entry [`TIMM_LITE0`] stands for the rules that
/// read timm's `tf_efficientnet_lite0` names.
pub fn parse_key_map(entries: &[String]) -> Result<Vec<(String, String)>, WeightsError> {
    let mut rules = Vec::new();
    for e in entries {
        if e.trim() == TIMM_LITE0 {
            rules.extend(timm_lite0_rules());
            continue;
        }
        let (a, b) = e
            .split_once('=')
            .ok_or_else(|| WeightsError::KeyMap(e.clone()))?;
        rules.push((a.trim().to_string(), b.trim().to_string()));
    }
    Ok(rules)
}

/// One tensor of a weights file: shape, and its values as f32 or the name of the dtype
/// it holds instead.
struct FileTensor {
    shape: Vec<usize>,
    values: Result<Vec<f32>, String>,
}

fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Reads a safetensors file into tensors named and laid out for `target`: keys are
/// rewritten by `key_map` (first matching prefix), then matched to `target`'s parameters
/// under mentor or PyTorch names; linear weights stored `[out, in]` are transposed back.
/// Tensors that match nothing are left out (the import report names what stays fresh).
pub fn read_safetensors(
    path: &Path,
    key_map: &[(String, String)],
    target: &Network,
) -> Result<HashMap<String, TensorData>, WeightsError> {
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.into(),
        source,
    })?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| WeightsError::Format {
        path: path.into(),
        reason: format!("not a safetensors file ({e})"),
    })?;
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(key, view): (String, TensorView<'_>)| {
            let values = match view.dtype() {
                Dtype::F32 => Ok(f32_values(view.data())),
                other => Err(format!("{other:?}")),
            };
            let shape = view.shape().to_vec();
            (key, FileTensor { shape, values })
        })
        .collect();
    match_to_target(path, tensors, key_map, target)
}

/// Reads a PyTorch checkpoint (`torch.save` of a `state_dict`, zip or legacy format;
/// nested dicts give dotted keys) like [`read_safetensors`], through Burn's
/// `pytorch-reader`.
pub fn read_pytorch(
    path: &Path,
    key_map: &[(String, String)],
    target: &Network,
) -> Result<HashMap<String, TensorData>, WeightsError> {
    let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| WeightsError::Format {
        path: path.into(),
        reason: format!("not a PyTorch checkpoint ({e})"),
    })?;
    let mut tensors = HashMap::new();
    for (key, tensor) in reader.into_tensors() {
        let shape = tensor.shape().to_vec();
        let values = match tensor.dtype() {
            pytorch_reader::DType::F32 => {
                let bytes = tensor.read().map_err(|e| WeightsError::Format {
                    path: path.into(),
                    reason: format!("tensor {key}: {e}"),
                })?;
                Ok(f32_values(&bytes))
            }
            other => Err(format!("{other:?}")),
        };
        tensors.insert(key, FileTensor { shape, values });
    }
    match_to_target(path, tensors, key_map, target)
}

/// The tensors of a file (`path`, for errors) named and laid out for `target`, after
/// the `key_map` rewrites; see [`read_safetensors`].
fn match_to_target(
    path: &Path,
    tensors: HashMap<String, FileTensor>,
    key_map: &[(String, String)],
    target: &Network,
) -> Result<HashMap<String, TensorData>, WeightsError> {
    let mut by_key: HashMap<String, FileTensor> = HashMap::new();
    for (key, tensor) in tensors {
        let key = key_map
            .iter()
            .find_map(|(from, to)| {
                key.strip_prefix(from.as_str())
                    .map(|rest| format!("{to}{rest}"))
            })
            .unwrap_or(key);
        by_key.insert(key, tensor);
    }
    let mut out = HashMap::new();
    for info in param_infos(target) {
        let torch = bn_torch_name(&info.name);
        let native = target.native_name(torch.as_deref().unwrap_or(&info.name));
        let candidates = [Some(info.name.clone()), torch, native];
        let Some(tensor) = candidates.iter().flatten().find_map(|k| by_key.get(k)) else {
            continue;
        };
        let values = match &tensor.values {
            Ok(values) => values.clone(),
            Err(dtype) => {
                return Err(WeightsError::Format {
                    path: path.into(),
                    reason: format!("tensor for {} is {dtype}; only F32 is supported", info.name),
                });
            }
        };
        let shape = tensor.shape.clone();
        // Files follow PyTorch: a linear weight is [out, in], the transpose of Burn's.
        let linear = info.shape.len() == 2 && info.name.ends_with(".weight");
        let data = if linear && shape == [info.shape[1], info.shape[0]] {
            TensorData::new(transpose(&values, shape[0], shape[1]), info.shape.clone())
        } else {
            TensorData::new(values, shape)
        };
        out.insert(info.name.clone(), data);
    }
    if out.is_empty() {
        return Err(WeightsError::Format {
            path: path.into(),
            reason: names_hint(&by_key, target),
        });
    }
    Ok(out)
}

/// Why no tensor of a file fits `target`, with a few of the file's names and this
/// network's, and the `--key-map` that strips a prefix every name of the file shares
/// (`module.` of `DataParallel`, `model.` of Lightning).
fn names_hint(by_key: &HashMap<String, FileTensor>, target: &Network) -> String {
    let mut keys: Vec<&str> = by_key.keys().map(String::as_str).collect();
    keys.sort_unstable();
    if keys.is_empty() {
        return "the file holds no tensor".into();
    }
    let shown: Vec<String> = keys.iter().take(3).map(|k| format!("`{k}`")).collect();
    let ours: Vec<String> = param_infos(target)
        .iter()
        .take(3)
        .map(|p| format!("`{}`", p.name))
        .collect();
    let mut text = format!(
        "none of its {} tensors matches this network by name (the file's names look like {}; this network's like {})",
        keys.len(),
        shown.join(", "),
        ours.join(", ")
    );
    let prefix = keys[0].split_once('.').map(|(p, _)| format!("{p}."));
    if let Some(prefix) = prefix.filter(|p| keys.iter().all(|k| k.starts_with(p.as_str()))) {
        text.push_str(&format!(
            "; every name starts with `{prefix}`: add --key-map {prefix}= to strip it"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::import_tensors;
    use crate::models::{ModelConfig, ResNetConfig};

    fn export(network: &Network, path: &Path) {
        std::fs::write(path, safetensors_bytes(network).unwrap()).unwrap();
    }
    use burn::tensor::Device;

    #[test]
    fn export_then_import_restores_every_tensor() {
        let device = Device::flex();
        for model in [
            ModelConfig::default(),
            ModelConfig::Cnn(Default::default()),
            ModelConfig::Resnet(ResNetConfig::default()),
        ] {
            let source = model.init([1, 8, 8], 10, &device);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("m.safetensors");
            export(&source, &path);
            let target = model.init([1, 8, 8], 10, &device);
            let tensors = read_safetensors(&path, &[], &target).unwrap();
            let (loaded, report) = import_tensors(target, &tensors, &[]).unwrap();
            assert!(
                report.reinitialized.is_empty(),
                "{:?}",
                report.reinitialized
            );
            let (a, b) = (named_tensors(&source), named_tensors(&loaded));
            for (name, data) in &a {
                assert_eq!(f32s(data), f32s(&b[name]), "{name}");
            }
        }
    }

    #[test]
    fn one_network_always_exports_to_the_same_bytes() {
        let net = ModelConfig::default().init([1, 8, 8], 10, &Device::flex());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let mut files = Vec::new();
        // Each export's metadata map hashes with a fresh seed: without the canonical
        // header, two keys come out in either order.
        for _ in 0..8 {
            export(&net, &path);
            files.push(std::fs::read(&path).unwrap());
        }
        assert!(files.windows(2).all(|w| w[0] == w[1]), "exports differ");
        let header_len = u64::from_le_bytes(files[0][..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0);
        let header = std::str::from_utf8(&files[0][8..8 + header_len]).unwrap();
        assert!(
            header.find("\"format\"") < header.find("\"producer\""),
            "{header}"
        );
    }

    /// Seeded cuts, byte changes and random bytes of an exported file: errors, never
    /// panics.
    #[test]
    fn damaged_safetensors_never_panic() {
        let net = ModelConfig::default().init([1, 8, 8], 10, &Device::flex());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        export(&net, &path);
        let good = std::fs::read(&path).unwrap();
        // The first changed byte of each flip lands in the header, where lengths and
        // offsets live.
        for bytes in crate::damage::damaged_copies(&good, 300, 300, 0x1234_5678) {
            std::fs::write(&path, &bytes).unwrap();
            let _ = read_safetensors(&path, &[], &net);
        }
    }

    #[test]
    fn files_use_pytorch_names_and_layouts() {
        let device = Device::flex();
        let net = ModelConfig::Resnet(ResNetConfig::default()).init([3, 32, 32], 10, &device);
        let state = torch_state(&net);
        let find = |n: &str| state.iter().find(|s| s.0 == n).unwrap();
        assert_eq!(find("head.weight").1, vec![10, 64]); // [out, in]
        assert!(state.iter().any(|s| s.0 == "backbone.stem_bn.weight"));
        assert!(!state.iter().any(|s| s.0.ends_with(".gamma")));
        assert_eq!(find("backbone.stem_bn.num_batches_tracked").3, Dtype::I64);
        assert_eq!(find("backbone.stem.weight").1, vec![16, 3, 3, 3]);
    }

    #[test]
    fn the_timm_preset_maps_timms_lite0_names_to_the_packages() {
        let rules = parse_key_map(&[TIMM_LITE0.to_string()]).unwrap();
        // One rule per module: 5 outside the blocks, 4 in the first block, 6 in the 15
        // others.
        assert_eq!(rules.len(), 5 + 4 + 15 * 6);
        let map = |key: &str| {
            rules
                .iter()
                .find_map(|(from, to)| key.strip_prefix(from.as_str()).map(|r| format!("{to}{r}")))
                .unwrap_or_else(|| key.to_string())
        };
        for (timm, native) in [
            ("conv_stem.weight", "_conv_stem.weight"),
            ("bn1.running_var", "_bn0.running_var"),
            (
                "blocks.0.0.conv_dw.weight",
                "_blocks.0._depthwise_conv.weight",
            ),
            (
                "blocks.0.0.conv_pw.weight",
                "_blocks.0._project_conv.weight",
            ),
            ("blocks.1.0.conv_pw.weight", "_blocks.1._expand_conv.weight"),
            ("blocks.1.1.bn3.bias", "_blocks.2._bn2.bias"),
            (
                "blocks.6.0.conv_pwl.weight",
                "_blocks.15._project_conv.weight",
            ),
            ("conv_head.weight", "_conv_head.weight"),
            ("bn2.weight", "_bn1.weight"),
            ("classifier.bias", "_fc.bias"),
        ] {
            assert_eq!(map(timm), native);
        }
    }

    #[test]
    fn key_maps_rename_prefixes_and_bad_files_are_errors() {
        let device = Device::flex();
        let net = ModelConfig::Cnn(Default::default()).init([1, 8, 8], 10, &device);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        export(&net, &path);
        // Pretend the file came from a model whose backbone was called `features`:
        // mapping `backbone` away means nothing of the backbone is found.
        let map = parse_key_map(&["backbone=features".into()]).unwrap();
        let got = read_safetensors(&path, &map, &net).unwrap();
        assert!(
            got.keys().all(|k| k.starts_with("head")),
            "{:?}",
            got.keys()
        );
        // Every name behind a `module.` prefix (a DataParallel state dict): the error
        // shows the names and the key map that strips it.
        let map =
            parse_key_map(&["backbone=module.backbone".into(), "head=module.head".into()]).unwrap();
        let err = read_safetensors(&path, &map, &net).unwrap_err().to_string();
        assert!(
            err.contains("`module.backbone.conv1.bias`") && err.contains("--key-map module.="),
            "{err}"
        );
        assert!(parse_key_map(&["nonsense".into()]).is_err());
        std::fs::write(&path, b"not safetensors").unwrap();
        let err = read_safetensors(&path, &[], &net).unwrap_err().to_string();
        assert!(
            err.contains("m.safetensors") && err.contains("not a safetensors"),
            "{err}"
        );
    }
}
