//! ONNX export: one of mentor's networks as a self-contained `.onnx` file (opset 18,
//! weights embedded) that edge runtimes (ONNX Runtime, TensorRT, OpenVINO, tract)
//! run without mentor.
//!
//! The graph is recorded by Burn's own exporter (`burn-onnx`): it runs the forward pass
//! once per batch size on a capture device and lowers what it saw. Two captures (batch
//! 1 and 2) make the batch axis symbolic, so the file takes any batch. mentor's CPU
//! kernels step aside on the capture device (it is not flex), and the layers Burn
//! cannot lower yet (ReLU6, the hard sigmoid, the spatial mean) record their
//! graph-friendly forms ([`crate::kernels::portable`]); each clamp chain is then
//! rewritten into one ONNX `Clip`. The input is named `images`
//! (`[batch, C, H, W]`, preprocessed as the metadata says) and the output `logits`
//! (`[batch, classes]`); the file's metadata carries what a user needs to feed it
//! (`mentor.*` keys: family, input shape, classes, class names, normalisation, resize
//! and crop).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, ExportError, InputSpec, OnnxExporter};
use onnx_ir::{GraphProto, Message, ModelProto, NodeProto, TensorProto};

use super::Network;

/// Why a network could not be written as ONNX.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The forward pass uses an operation the exporter cannot lower.
    #[error(
        "{family} cannot be exported to ONNX yet: its forward pass uses {operation}, which Burn 0.22's ONNX exporter does not lower"
    )]
    Unsupported {
        /// The network family.
        family: &'static str,
        /// The operation, as Burn names it.
        operation: String,
    },
    /// The exporter failed for another reason.
    #[error("ONNX export of {family}: {reason}")]
    Export {
        /// The network family.
        family: &'static str,
        /// The exporter's message.
        reason: String,
    },
}

/// The ONNX graph's input name.
pub const INPUT_NAME: &str = "images";
/// The ONNX graph's output name.
pub const OUTPUT_NAME: &str = "logits";

/// `network` (taking `[C, H, W]` images) as ONNX bytes with a symbolic batch axis,
/// with `metadata` (key, value) pairs in the model's metadata.
pub fn export_onnx(
    network: &Network,
    input: [usize; 3],
    metadata: &[(String, String)],
) -> Result<Vec<u8>, OnnxError> {
    let family = network.family();
    let network = network.valid();
    let device = Device::default();
    let images = |batch: usize| Tensor::<4>::zeros([batch, input[0], input[1], input[2]], &device);
    let specs = [InputSpec::new([
        AxisSpec::dynamic("batch"),
        AxisSpec::Static,
        AxisSpec::Static,
        AxisSpec::Static,
    ])];
    let failed = |e: ExportError| match e {
        ExportError::UnsupportedOperation { kind, .. } => OnnxError::Unsupported {
            family,
            operation: operation_name(&kind),
        },
        other => OnnxError::Export {
            family,
            reason: other.to_string(),
        },
    };
    let forward = |n: &Network, x: Tensor<4>| n.forward(x);
    let model = crate::kernels::portable::while_exporting(|| {
        // One static capture first: an operation the exporter cannot lower is named
        // here, before the two captures of the dynamic export compare their graphs.
        OnnxExporter::new()
            .export(&network, images(1), forward)
            .map_err(failed)?;
        OnnxExporter::new()
            .export_dynamic(&network, images(1), images(2), &specs, forward)
            .map_err(failed)
    })?;
    let mut proto =
        ModelProto::parse_from_bytes(model.as_bytes()).map_err(|e| OnnxError::Export {
            family,
            reason: format!("re-reading the exported model: {e}"),
        })?;
    name_boundaries(&mut proto);
    if let Some(graph) = proto.graph.as_mut() {
        clamps_to_clip(graph);
    }
    proto.producer_name = "mentor".into();
    proto.producer_version = env!("CARGO_PKG_VERSION").into();
    for (key, value) in metadata {
        proto.metadata_props.push(Default::default());
        let entry = proto.metadata_props.last_mut().expect("just pushed");
        entry.key = key.clone();
        entry.value = value.clone();
    }
    proto.write_to_bytes().map_err(|e| OnnxError::Export {
        family,
        reason: format!("writing the model: {e}"),
    })
}

/// The operation's name from the exporter's debug text of it:
/// `BaseFloat(SwapDims(SwapDimsOpIr { .. }))` is `SwapDims`.
fn operation_name(kind: &str) -> String {
    let head = kind.split(['{', ' ']).next().unwrap_or(kind);
    let names: Vec<&str> = head.split('(').filter(|n| !n.is_empty()).collect();
    names
        .get(1)
        .or(names.first())
        .map_or_else(|| kind.to_string(), |n| n.to_string())
}

/// ONNX's FLOAT element type.
const ONNX_FLOAT: i32 = 1;

/// The value of a one-element float initializer.
fn scalar_value(t: &TensorProto) -> Option<f32> {
    if t.data_type != ONNX_FLOAT || t.dims.iter().product::<i64>() != 1 {
        return None;
    }
    if let [v] = t.float_data.as_slice() {
        return Some(*v);
    }
    let raw: &[u8] = &t.raw_data;
    <[u8; 4]>::try_from(raw).ok().map(f32::from_le_bytes)
}

/// A 0-d float initializer.
fn scalar_tensor(name: String, value: f32) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name;
    t.data_type = ONNX_FLOAT;
    t.float_data = vec![value];
    t
}

/// Replaces each chain `hi - relu(hi - relu(x))` that [`crate::kernels::portable`]
/// records for a clamp (Relu, Neg, Add hi, Relu, Neg, Add hi, each intermediate read
/// once) with one `Clip(x, 0, hi)`, and drops the constants no node reads any more.
/// ONNX Runtime ran MobileNetV2 1.45x and EfficientNet-Lite0 1.37x slower with the
/// chains than with `Clip` (`scripts/check-onnx.py clip` + `latency`). Returns how many
/// chains it replaced.
fn clamps_to_clip(graph: &mut GraphProto) -> usize {
    use std::collections::{HashMap, HashSet};
    let scalars: HashMap<String, f32> = graph
        .initializer
        .iter()
        .filter_map(|t| scalar_value(t).map(|v| (t.name.clone(), v)))
        .collect();
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut reads: HashMap<&str, usize> = HashMap::new();
    for name in graph.node.iter().flat_map(|n| n.input.iter()) {
        *reads.entry(name.as_str()).or_default() += 1;
    }
    let graph_outputs: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    // Walks back from a final `Add hi`: the chain's node indices (last first), `x`, `hi`.
    let chain = |last: usize| -> Option<(Vec<usize>, String, f32)> {
        let add = &graph.node[last];
        if add.op_type != "Add" || add.input.len() != 2 {
            return None;
        }
        let hi = *scalars.get(&add.input[1])?;
        let mut nodes = vec![last];
        for kind in ["Neg", "Relu", "Add", "Neg", "Relu"] {
            let input = graph.node[*nodes.last()?].input.first()?;
            let i = *producer.get(input.as_str())?;
            let node = &graph.node[i];
            let output = node.output.first()?.as_str();
            if node.op_type != kind
                || reads.get(output) != Some(&1)
                || graph_outputs.contains(output)
            {
                return None;
            }
            nodes.push(i);
        }
        let inner_add = &graph.node[nodes[3]];
        if inner_add.input.len() != 2 || scalars.get(&inner_add.input[1]) != Some(&hi) {
            return None;
        }
        let x = graph.node[nodes[5]].input.first()?.clone();
        Some((nodes, x, hi))
    };
    let chains: Vec<_> = (0..graph.node.len()).filter_map(chain).collect();
    let mut clips: HashMap<usize, NodeProto> = HashMap::new();
    let mut removed = HashSet::new();
    for (k, (nodes, x, hi)) in chains.iter().enumerate() {
        let (lo_name, hi_name) = (format!("clip_{k}_min"), format!("clip_{k}_max"));
        graph.initializer.push(scalar_tensor(lo_name.clone(), 0.0));
        graph.initializer.push(scalar_tensor(hi_name.clone(), *hi));
        let mut clip = NodeProto::new();
        clip.name = format!("clip_{k}");
        clip.op_type = "Clip".into();
        clip.input = vec![x.clone(), lo_name, hi_name];
        clip.output = graph.node[nodes[0]].output.clone();
        // The Clip takes the place of the chain's first node, so the order stays
        // topological.
        clips.insert(nodes[5], clip);
        removed.extend(nodes.iter().copied().filter(|&i| i != nodes[5]));
    }
    let old = std::mem::take(&mut graph.node);
    graph.node = old
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !removed.contains(i))
        .map(|(i, n)| clips.remove(&i).unwrap_or(n))
        .collect();
    let read: HashSet<String> = graph.node.iter().flat_map(|n| n.input.clone()).collect();
    graph.initializer.retain(|t| read.contains(&t.name));
    chains.len()
}

/// Renames the graph's one input to [`INPUT_NAME`] and its one output to
/// [`OUTPUT_NAME`], in every node that reads or writes them.
fn name_boundaries(model: &mut ModelProto) {
    let Some(graph) = model.graph.as_mut() else {
        return;
    };
    let mut renames = Vec::new();
    if let [input] = graph.input.as_mut_slice() {
        renames.push((
            std::mem::replace(&mut input.name, INPUT_NAME.into()),
            INPUT_NAME,
        ));
    }
    if let [output] = graph.output.as_mut_slice() {
        renames.push((
            std::mem::replace(&mut output.name, OUTPUT_NAME.into()),
            OUTPUT_NAME,
        ));
    }
    for node in graph.node.iter_mut() {
        for name in node.input.iter_mut().chain(node.output.iter_mut()) {
            if let Some((_, new)) = renames.iter().find(|(old, _)| old == name) {
                *name = (*new).into();
            }
        }
    }
}

/// The metadata entries of an ONNX file (for tests and `mentor footprint`).
pub fn onnx_metadata(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let proto = ModelProto::parse_from_bytes(bytes).map_err(|e| e.to_string())?;
    Ok(proto
        .metadata_props
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect())
}

impl Network {
    /// The family's short name, as `mentor models` and `--model` spell it.
    pub fn family(&self) -> &'static str {
        match self {
            Network::Mlp(_) => "mlp",
            Network::Cnn(_) => "cnn",
            Network::Resnet(_) => "resnet",
            Network::Columns(_) => "columns",
            Network::Projected(_) => "projected",
            Network::Vit(_) => "vit",
            Network::Cpc(_) => "cpc",
            Network::EfficientNetLite(_) => "efficientnet-lite0",
            Network::ImageNetResNet(_) => "resnet (torchvision)",
            Network::MobileNetV2(_) => "mobilenet-v2",
            Network::EfficientNetB0(_) => "efficientnet-b0",
            Network::MobileNetV3Small(_) => "mobilenet-v3-small",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu6_chains_become_one_clip_and_the_graph_keeps_its_order() {
        use crate::models::{ModelConfig, mobilenet_v2::MobileNetV2Config};
        let config = ModelConfig::MobileNetV2(MobileNetV2Config {
            width: 0.1,
            dropout: 0.0,
            last_channels: Some(16),
        });
        let network = config.init([3, 32, 32], 4, &Device::flex());
        let bytes = export_onnx(&network, [3, 32, 32], &[]).unwrap();
        let model = ModelProto::parse_from_bytes(&bytes).unwrap();
        let graph = model.graph.as_ref().unwrap();
        let count = |kind: &str| graph.node.iter().filter(|n| n.op_type == kind).count();
        // MobileNetV2 has 35 ReLU6: each is one Clip, and nothing of a chain is left.
        assert_eq!(count("Clip"), 35);
        assert_eq!((count("Neg"), count("Relu")), (0, 0));
        // Every node reads only the input, initializers or earlier nodes' outputs.
        let mut known: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        known.insert(INPUT_NAME);
        for node in &graph.node {
            for input in &node.input {
                assert!(
                    known.contains(input.as_str()),
                    "{} reads {input} before it exists",
                    node.name
                );
            }
            known.extend(node.output.iter().map(String::as_str));
        }
        // No constant is left unread.
        let read: std::collections::HashSet<&str> = graph
            .node
            .iter()
            .flat_map(|n| n.input.iter().map(String::as_str))
            .collect();
        assert!(
            graph
                .initializer
                .iter()
                .all(|t| read.contains(t.name.as_str()))
        );
    }

    #[test]
    fn an_operation_is_named_without_its_tensors() {
        let kind = "BaseFloat(SwapDims(SwapDimsOpIr { input: TensorIr { id: 74 } }))";
        assert_eq!(operation_name(kind), "SwapDims");
        assert_eq!(operation_name("Erf"), "Erf");
    }
}
