//! `mentor predict`: a pretrained network's top classes for photos.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use mentor::engine::class_probabilities;
use mentor::run::RunConfig;
use mentor::transfer::load_whole;

/// The 1000 ImageNet-1k class names in class-index order (from torchvision; see
/// assets/imagenet-classes-LICENSE.txt).
const IMAGENET_CLASSES: &str = include_str!("../../assets/imagenet-classes.txt");

/// Arguments of `mentor predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Weights of --model (.pth, .pt or .safetensors), with their PyTorch names.
    #[arg(long)]
    pretrained: PathBuf,
    /// The network the weights are for (efficientnet-lite0, ...).
    #[arg(long)]
    model: String,
    /// Set a model key, e.g. --set model.width=0.5.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Photos (PNG or JPEG, any size).
    #[arg(long, required = true, num_args = 1..)]
    image: Vec<PathBuf>,
    /// Class names, one per line in class-index order (default: ImageNet's 1000).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// How many top classes to print per photo.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Shorter side after resizing (default: the model's published preprocessing).
    #[arg(long)]
    resize: Option<usize>,
    /// Side of the centre crop fed to the network.
    #[arg(long)]
    crop: Option<usize>,
    /// Per-channel mean of pixels in [0, 1], as R,G,B.
    #[arg(long, value_delimiter = ',', num_args = 3)]
    mean: Option<Vec<f32>>,
    /// Per-channel standard deviation, as R,G,B.
    #[arg(long, value_delimiter = ',', num_args = 3)]
    std: Option<Vec<f32>>,
    /// `from=to` prefix rewrites of the file's keys to the model's names.
    #[arg(long = "key-map", value_name = "FROM=TO")]
    key_map: Vec<String>,
    /// Also write the preprocessed inputs (`inputs`, N x 3 x crop x crop) and the
    /// probabilities (`probabilities`, N x classes) as safetensors, to check a PyTorch
    /// implementation against on the same input (scripts/check-efficientnet.py).
    #[arg(long)]
    dump: Option<PathBuf>,
}

/// Runs `mentor predict`: for each photo, its top classes with their probabilities.
pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let mut sets = vec![format!("model.type={:?}", args.model)];
    sets.extend(args.sets.iter().cloned());
    let config = RunConfig::default().with_overrides(&sets)?;
    config.validate()?;
    let model = config.model;
    let mut transform = model.photo_transform();
    if let Some(r) = args.resize {
        transform.resize = r;
    }
    if let Some(c) = args.crop {
        transform.crop = c;
    }
    if let Some(m) = &args.mean {
        transform.mean = [m[0], m[1], m[2]];
    }
    if let Some(s) = &args.std {
        transform.std = [s[0], s[1], s[2]];
    }
    if let Err((key, rule)) = transform.validate() {
        anyhow::bail!("--{key}: {rule}");
    }
    let labels: Vec<String> = match &args.labels {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .map(str::to_string)
            .collect(),
        None => IMAGENET_CLASSES.lines().map(str::to_string).collect(),
    };
    if labels.is_empty() {
        anyhow::bail!(
            "{}: no class names",
            args.labels.unwrap_or_default().display()
        );
    }
    let device = Device::flex();
    let shape = [3, transform.crop, transform.crop];
    let network = model.init(shape, labels.len(), &device);
    let network = load_whole(network, &args.pretrained, &args.key_map, &device)?;
    let mut inputs = Vec::new();
    for path in &args.image {
        inputs.extend(transform.load(path)?);
    }
    let probabilities = class_probabilities(&network, &inputs, shape, 16);
    for (path, p) in args.image.iter().zip(&probabilities) {
        println!("{}", path.display());
        for (class, prob) in top_k(p, args.top) {
            println!("  {prob:>8.5}  {class:>4}  {}", labels[class]);
        }
    }
    if let Some(path) = &args.dump {
        let rows = probabilities.len();
        let flat: Vec<f32> = probabilities.concat();
        write_f32s(
            path,
            &[
                ("inputs", vec![rows, 3, shape[1], shape[2]], &inputs),
                ("probabilities", vec![rows, labels.len()], &flat),
            ],
        )?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The `k` largest entries of `p` as (index, value), largest first.
fn top_k(p: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut order: Vec<(usize, f32)> = p.iter().copied().enumerate().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    order.truncate(k);
    order
}

/// Writes named f32 tensors as one safetensors file.
fn write_f32s(
    path: &std::path::Path,
    tensors: &[(&str, Vec<usize>, &[f32])],
) -> anyhow::Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| Ok((*name, TensorView::new(Dtype::F32, shape.clone(), b)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    mentor::engine::io::write_atomic(path, &safetensors::serialize(views, None)?)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_probability_then_index() {
        assert_eq!(
            top_k(&[0.1, 0.5, 0.1, 0.3], 3),
            vec![(1, 0.5), (3, 0.3), (0, 0.1)]
        );
        assert_eq!(top_k(&[1.0], 5), vec![(0, 1.0)]);
    }

    #[test]
    fn the_class_table_has_imagenets_1000_names() {
        let names: Vec<&str> = IMAGENET_CLASSES.lines().collect();
        assert_eq!(names.len(), 1000);
        assert_eq!(names[0], "tench");
        assert_eq!(names[285], "Egyptian cat");
        assert_eq!(names[967], "espresso");
    }
}
