//! `mentor export`: a checkpoint's weights as safetensors with PyTorch names and layouts,
//! or a network (a checkpoint's, or a family's PyTorch weights) as ONNX for edge runtimes.

use std::path::PathBuf;

use anyhow::Context;
use burn::module::Module;
use burn::tensor::Device;
use clap::Args;
use mentor::data::prepare_data;
use mentor::data::{Batch, BatchOrder};
use mentor::engine::io::write_atomic;
use mentor::models::weights::safetensors_bytes;

/// The file formats `mentor export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// The weights with PyTorch's names and layouts (`load_state_dict(strict=True)`).
    Safetensors,
    /// The whole network, opset 18, weights embedded, any batch size.
    Onnx,
}

/// Arguments of `mentor export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The network: --checkpoint FILE, or (ONNX) --pretrained FILE --model KIND.
    #[command(flatten)]
    network: super::predict::NetworkArgs,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
    /// What to write (default: onnx for an --out ending in .onnx, else safetensors).
    #[arg(long, value_enum)]
    format: Option<ExportFormat>,
    /// ONNX: the side of a pretrained family's square input (default: its model card's).
    #[arg(long)]
    crop: Option<usize>,
    /// Also write, as safetensors, the first 8 test images (`inputs`, normalised as the
    /// network sees them) and mentor's logits for them (`logits`), to check a PyTorch
    /// (or numpy) re-implementation against.
    #[arg(long)]
    reference: Option<PathBuf>,
}

/// Runs `mentor export`.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let onnx = args.out.extension().is_some_and(|e| e == "onnx");
    match args.format {
        Some(ExportFormat::Onnx) => return export_onnx(&args),
        None if onnx => return export_onnx(&args),
        _ => {}
    }
    let device = Device::flex();
    let Some(checkpoint) = &args.network.checkpoint else {
        anyhow::bail!("--format safetensors exports a checkpoint: give --checkpoint FILE");
    };
    let mentor::run::restore::LoadedRun {
        loaded,
        config: saved,
    } = mentor::run::restore::load_run(checkpoint, &device)?;
    write_atomic(&args.out, &safetensors_bytes(&loaded.network)?)?;
    eprintln!("wrote {}", args.out.display());
    if let Some(path) = &args.reference {
        let data = prepare_data(&saved.data, saved.seed).context("loading data")?;
        let idx: Vec<usize> = BatchOrder::sequential(data.test.len().min(8), 8)
            .batches()
            .next()
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let batch = Batch::gather(&data.test, &idx, &device);
        let logits = loaded.network.valid().forward(batch.images.clone());
        let as_bytes = |t: burn::tensor::TensorData| -> (Vec<usize>, Vec<u8>) {
            let shape = t.shape().as_slice().to_vec();
            let v: Vec<f32> = t.convert::<f32>().try_into_vec().unwrap_or_default();
            (shape, v.iter().flat_map(|x| x.to_le_bytes()).collect())
        };
        let (in_shape, in_bytes) = as_bytes(batch.images.into_data());
        let (out_shape, out_bytes) = as_bytes(logits.into_data());
        use safetensors::tensor::{Dtype, TensorView};
        let views = vec![
            ("inputs", TensorView::new(Dtype::F32, in_shape, &in_bytes)?),
            (
                "logits",
                TensorView::new(Dtype::F32, out_shape, &out_bytes)?,
            ),
        ];
        write_atomic(path, &safetensors::serialize(views, None)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `--format onnx`: the network with a symbolic batch axis, its input named `images`
/// and its output `logits`, and what feeding it needs in the file's metadata.
fn export_onnx(args: &ExportArgs) -> anyhow::Result<()> {
    if args.reference.is_some() {
        anyhow::bail!("--reference goes with --format safetensors");
    }
    let device = Device::flex();
    let p = args.network.load(args.crop, &device)?;
    let t = &p.transform;
    let join = |v: &[f32]| {
        v[..p.shape[0]]
            .iter()
            .map(f32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let metadata = vec![
        ("mentor.model".to_string(), p.family.to_string()),
        (
            "mentor.input".to_string(),
            format!(
                "{} [batch, {}, {}, {}] float32",
                mentor::models::onnx::INPUT_NAME,
                p.shape[0],
                p.shape[1],
                p.shape[2]
            ),
        ),
        (
            "mentor.output".to_string(),
            format!(
                "{} [batch, {}]",
                mentor::models::onnx::OUTPUT_NAME,
                p.labels.len()
            ),
        ),
        (
            "mentor.preprocess".to_string(),
            format!(
                "resize the shorter side to {} (bilinear), centre-crop {}x{}, scale to [0, 1], subtract mean, divide by std",
                t.resize, t.crop, t.crop
            ),
        ),
        ("mentor.mean".to_string(), join(&t.mean)),
        ("mentor.std".to_string(), join(&t.std)),
        ("mentor.classes".to_string(), p.labels.join("\n")),
    ];
    let bytes = mentor::models::onnx::export_onnx(&p.network, p.shape, &metadata)?;
    write_atomic(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote {} ({:.1} MB, {} input {:?}, opset 18)",
        args.out.display(),
        bytes.len() as f64 / 1e6,
        p.family,
        p.shape
    );
    Ok(())
}
