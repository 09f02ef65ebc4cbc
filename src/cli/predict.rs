//! `mentor predict`: the top classes of a pretrained network, or of a mentor run's
//! network, for photos.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use mentor::data::photo::PhotoTransform;
use mentor::data::prepare_data;
use mentor::data::split::Normalization;
use mentor::engine::class_probabilities;
use mentor::models::Network;
use mentor::run::restore::{LoadedRun, load_run};
use mentor::run::{RunConfig, StrategyConfig};
use mentor::transfer::load_whole;

/// The 1000 ImageNet-1k class names in class-index order (from torchvision; see
/// assets/imagenet-classes-LICENSE.txt).
const IMAGENET_CLASSES: &str = include_str!("../../assets/imagenet-classes.txt");

/// Which network to load: pretrained weights of a family, or a mentor run's checkpoint
/// (shared by `mentor predict` and `mentor export --format onnx`).
#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// Weights of --model (.pth, .pt or .safetensors), with their PyTorch names.
    #[arg(long, required_unless_present = "checkpoint", requires = "model")]
    pretrained: Option<PathBuf>,
    /// The network the weights are for (efficientnet-lite0, ...).
    #[arg(long, conflicts_with = "checkpoint")]
    model: Option<String>,
    /// Instead: a checkpoint of a mentor run, with the run's input size, normalisation
    /// and class names.
    #[arg(long, conflicts_with = "pretrained")]
    pub(crate) checkpoint: Option<PathBuf>,
    /// With --checkpoint: read the run's data from this folder (its class names, and its
    /// training split's statistics when the run normalised with them).
    #[arg(long, requires = "checkpoint")]
    data_dir: Option<PathBuf>,
    /// Set a model key, e.g. --set model.width=0.5.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Class names, one per line in class-index order (default: ImageNet's 1000).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// `from=to` prefix rewrites of the file's keys to the model's names.
    #[arg(long = "key-map", value_name = "FROM=TO")]
    key_map: Vec<String>,
}

/// Arguments of `mentor predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    network: NetworkArgs,
    /// Photos (PNG or JPEG, any size).
    #[arg(long, required = true, num_args = 1..)]
    image: Vec<PathBuf>,
    /// How many top classes to print per photo.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Shorter side after resizing (default: the model's published preprocessing).
    #[arg(long)]
    resize: Option<usize>,
    /// Side of the centre crop fed to the network.
    #[arg(long)]
    crop: Option<usize>,
    /// Per-channel mean of pixels in [0, 1], as R,G,B (or three values apart).
    #[arg(long, value_delimiter = ',', num_args = 1..=3, allow_negative_numbers = true)]
    mean: Option<Vec<f32>>,
    /// Per-channel standard deviation, as R,G,B (or three values apart).
    #[arg(long, value_delimiter = ',', num_args = 1..=3)]
    std: Option<Vec<f32>>,
    /// Also write the preprocessed inputs (`inputs`, N x 3 x crop x crop) and the
    /// probabilities (`probabilities`, N x classes) as safetensors, to check a PyTorch
    /// implementation against on the same input (scripts/check-efficientnet.py).
    #[arg(long)]
    dump: Option<PathBuf>,
}

/// A network ready to predict, with how photos become its input and its class names.
pub(crate) struct Predictor {
    pub(crate) network: Network,
    /// Input `[C, H, W]`.
    pub(crate) shape: [usize; 3],
    pub(crate) transform: PhotoTransform,
    pub(crate) labels: Vec<String>,
    /// The family (`efficientnet-lite0`, `cnn`).
    pub(crate) family: &'static str,
}

impl NetworkArgs {
    /// The network with its preprocessing and class names; `crop` overrides the side of
    /// a pretrained family's input.
    pub(crate) fn load(&self, crop: Option<usize>, device: &Device) -> anyhow::Result<Predictor> {
        let labels = match &self.labels {
            Some(path) => Some(read_labels(path)?),
            None => None,
        };
        match (&self.pretrained, &self.checkpoint) {
            (Some(weights), None) => pretrained(self, weights, crop, labels, device),
            (None, Some(checkpoint)) => from_checkpoint(self, checkpoint, labels, device),
            _ => anyhow::bail!("give --pretrained FILE --model KIND, or --checkpoint FILE"),
        }
    }
}

/// Runs `mentor predict`: for each photo, its top classes with their probabilities.
pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let device = Device::flex();
    let mut p = args.network.load(args.crop, &device)?;
    let t = &mut p.transform;
    if let Some(r) = args.resize {
        t.resize = r;
    }
    if let Some(c) = args.crop {
        t.crop = c;
    }
    let three = |flag: &str, v: &[f32]| -> anyhow::Result<[f32; 3]> {
        <[f32; 3]>::try_from(v)
            .map_err(|_| anyhow::anyhow!("--{flag}: needs three values (R,G,B), got {}", v.len()))
    };
    if let Some(m) = &args.mean {
        t.mean = three("mean", m)?;
    }
    if let Some(s) = &args.std {
        t.std = three("std", s)?;
    }
    if let Err(v) = t.validate() {
        anyhow::bail!("--{}: {}", v.key, v.rule);
    }
    if [t.crop, t.crop] != [p.shape[1], p.shape[2]] {
        anyhow::bail!(
            "--crop {}: the network takes {}x{} inputs",
            t.crop,
            p.shape[1],
            p.shape[2]
        );
    }
    let shape = [p.shape[0], t.crop, t.crop];
    let mut inputs = Vec::new();
    for path in &args.image {
        inputs.extend(t.load(path, shape[0])?);
    }
    let probabilities = class_probabilities(&p.network, &inputs, shape, 16);
    for (path, probs) in args.image.iter().zip(&probabilities) {
        println!("{}", path.display());
        for (class, prob) in top_k(probs, args.top) {
            let name = p.labels.get(class).map_or("", String::as_str);
            println!("  {prob:>8.5}  {class:>4}  {name}");
        }
    }
    if let Some(path) = &args.dump {
        let rows = probabilities.len();
        let classes = probabilities.first().map_or(0, Vec::len);
        let flat: Vec<f32> = probabilities.concat();
        write_f32s(
            path,
            &[
                ("inputs", vec![rows, shape[0], shape[1], shape[2]], &inputs),
                ("probabilities", vec![rows, classes], &flat),
            ],
        )?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Class names, one per line.
fn read_labels(path: &Path) -> anyhow::Result<Vec<String>> {
    let labels: Vec<String> = std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .map(str::to_string)
        .collect();
    if labels.is_empty() {
        anyhow::bail!("{}: no class names", path.display());
    }
    Ok(labels)
}

/// `--pretrained FILE --model KIND`: the network built for the file's classes (ImageNet's
/// 1000 unless `--labels`), every tensor read from the file, the model's published
/// preprocessing.
fn pretrained(
    args: &NetworkArgs,
    weights: &Path,
    crop: Option<usize>,
    labels: Option<Vec<String>>,
    device: &Device,
) -> anyhow::Result<Predictor> {
    let model = args.model.as_deref().unwrap_or_default();
    let mut sets = vec![format!("model.type={model:?}")];
    sets.extend(args.sets.iter().cloned());
    let config = RunConfig::default().with_overrides(&sets)?;
    config.validate()?;
    let transform = mentor::run::init::photo_transform(&config.model);
    let crop = crop.unwrap_or(transform.crop);
    if crop == 0 {
        anyhow::bail!("--crop: must be >= 1, got 0");
    }
    // The forward pass holds a few activations of the network's width at a fraction of
    // the input's pixels: 32 floats per input value bounds the largest of them for every
    // family (EfficientNet's 96-channel expansion at half resolution is 24x per value),
    // for the two images the ONNX capture runs.
    mentor::data::limits::check_allocation(
        &format!("a {crop}x{crop} input to {model}"),
        2 * 3 * 32 * 4 * (crop as u128).pow(2),
    )?;
    let labels = labels.unwrap_or_else(|| IMAGENET_CLASSES.lines().map(str::to_string).collect());
    let shape = [3, crop, crop];
    let network = config.model.init(shape, labels.len(), device);
    let network = load_whole(network, weights, &args.key_map, device)?;
    Ok(Predictor {
        network,
        shape,
        transform,
        labels,
        family: config.model.kind(),
    })
}

/// `--checkpoint FILE`: the run's network; photos resized and cropped to its input and
/// normalised as its data was (fixed `data.mean`/`data.std`, or its training split's
/// statistics, which needs its data); class names from `--labels` or its data.
fn from_checkpoint(
    args: &NetworkArgs,
    checkpoint: &Path,
    labels: Option<Vec<String>>,
    device: &Device,
) -> anyhow::Result<Predictor> {
    let LoadedRun { loaded, config } = load_run(checkpoint, device)?;
    if let StrategyConfig::SelfSupervised(_) = &config.strategy {
        anyhow::bail!(
            "{} is a self-supervised encoder: its outputs are a projection, not class scores",
            checkpoint.display()
        );
    }
    let [c, h, w] = loaded.input_shape;
    if h != w {
        anyhow::bail!(
            "{}: the network takes {h}x{w} inputs; predict crops photos square",
            checkpoint.display()
        );
    }
    let mut data = config.data.clone();
    if let Some(dir) = &args.data_dir {
        data.data_dir = Some(dir.clone());
    }
    let fixed = match (&data.mean, &data.std) {
        (Some(m), Some(s)) if data.normalize => Some(Normalization {
            mean: m.clone(),
            std: s.clone(),
        }),
        _ if !data.normalize => Some(Normalization {
            mean: vec![0.0; c],
            std: vec![1.0; c],
        }),
        // The statistics fitted on the training split, as the checkpoint kept them.
        _ => loaded.normalization.clone(),
    };
    let labels =
        labels.or_else(|| (!loaded.class_names.is_empty()).then(|| loaded.class_names.clone()));
    // The run's data is read only when the statistics or the names are not at hand.
    let prepared = if fixed.is_none() || labels.is_none() {
        Some(prepare_data(&data, config.seed).with_context(|| {
            format!(
                "reading the data of {} (its class names and statistics; --labels and --data-dir help)",
                checkpoint.display()
            )
        })?)
    } else {
        None
    };
    // Statistics fixed in the config, else the ones fitted on the training split.
    let Normalization { mean, std } = fixed
        .or_else(|| prepared.as_ref().and_then(|p| p.normalization.clone()))
        .unwrap_or(Normalization {
            mean: vec![0.0; c],
            std: vec![1.0; c],
        });
    let per_channel = |v: &[f32]| [0, 1, 2].map(|i| v.get(i).or(v.first()).copied().unwrap_or(0.0));
    let transform = PhotoTransform {
        resize: h,
        crop: h,
        mean: per_channel(&mean),
        std: per_channel(&std),
    };
    let labels = match (labels, &prepared) {
        (Some(l), _) => l,
        (None, Some(p)) => p.class_names.clone(),
        (None, None) => Vec::new(),
    };
    if labels.len() < loaded.num_classes {
        anyhow::bail!(
            "{} class names for a network of {} classes",
            labels.len(),
            loaded.num_classes
        );
    }
    Ok(Predictor {
        family: loaded.model.kind(),
        network: loaded.network,
        shape: loaded.input_shape,
        transform,
        labels,
    })
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
