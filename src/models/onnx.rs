//! ONNX export: one of mentor's networks as a self-contained `.onnx` file (opset 18,
//! weights embedded) that edge runtimes (ONNX Runtime, TensorRT, OpenVINO, tract)
//! run without mentor.
//!
//! The graph is recorded by Burn's own exporter (`burn-onnx`): it runs the forward pass
//! once per batch size on a capture device and lowers what it saw. Two captures (batch
//! 1 and 2) make the batch axis symbolic, so the file takes any batch. mentor's CPU
//! kernels step aside on the capture device (it is not flex), and the layers Burn
//! cannot lower yet (ReLU6, the hard sigmoid, the spatial mean) record their
//! graph-friendly forms ([`crate::kernels::portable`]). The input is named `images`
//! (`[batch, C, H, W]`, preprocessed as the metadata says) and the output `logits`
//! (`[batch, classes]`); the file's metadata carries what a user needs to feed it
//! (`mentor.*` keys: family, input shape, classes, class names, normalisation, resize
//! and crop).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, ExportError, InputSpec, OnnxExporter};
use onnx_ir::{Message, ModelProto};

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
            operation: kind,
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
