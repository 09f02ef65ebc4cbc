//! `mentor export`: a checkpoint's weights as safetensors with PyTorch names and layouts.

use std::path::PathBuf;

use anyhow::Context;
use burn::module::Module;
use burn::tensor::Device;
use clap::Args;
use mentor::data::prepare_data;
use mentor::data::{Batch, BatchOrder};
use mentor::transfer::exchange::export_safetensors;

/// Arguments of `mentor export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The checkpoint (from `mentor train`).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The safetensors file to write.
    #[arg(long)]
    out: PathBuf,
    /// Also write, as safetensors, the first 8 test images (`inputs`, normalised as the
    /// network sees them) and mentor's logits for them (`logits`), to check a PyTorch
    /// (or numpy) re-implementation against.
    #[arg(long)]
    reference: Option<PathBuf>,
}

/// Runs `mentor export`.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let device = Device::flex();
    let mentor::run::restore::LoadedRun {
        loaded,
        config: saved,
    } = mentor::run::restore::load_run(&args.checkpoint, &device)?;
    export_safetensors(&loaded.network, &args.out)?;
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
        mentor::engine::io::write_atomic(path, &safetensors::serialize(views, None)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
