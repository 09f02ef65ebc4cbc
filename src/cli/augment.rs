//! `mentor augment`: a grid of augmented views, so a person can check the augmentations
//! before pretraining on them. Row `r` is training image `r` (from `--first`): the
//! original, then `--views` augmented views; pixels are scaled up for visibility.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use mentor::data::augment::{AugmentConfig, Image, view_rng};
use mentor::data::prepare_data;

use super::args::ConfigArgs;

/// Arguments of `mentor augment`.
#[derive(Debug, Args)]
pub struct AugmentArgs {
    /// The PNG to write.
    #[arg(long)]
    out: PathBuf,
    /// Images (rows).
    #[arg(long, default_value_t = 4)]
    images: usize,
    /// Augmented views per image (columns after the original).
    #[arg(long, default_value_t = 8)]
    views: usize,
    /// Index of the first training image.
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// An augmentation setting, e.g. --aug crop_scale=[0.2,1.0] --aug flip=0.0 (default:
    /// SimCLR's).
    #[arg(long = "aug", value_name = "KEY=VALUE")]
    aug: Vec<String>,
    /// Data and seed (normalisation is turned off: augmentations work on [0, 1] pixels).
    #[command(flatten)]
    config: ConfigArgs,
}

/// Runs `mentor augment`.
pub fn run(args: AugmentArgs) -> anyhow::Result<()> {
    let mut config = args.config.resolve()?;
    config.data.normalize = false;
    config.data.val_fraction = 0.0;
    let mut table = toml::Table::new();
    for kv in &args.aug {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--aug {kv:?}: expected KEY=VALUE"))?;
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {v}"))
            .ok()
            .and_then(|t| t.get("v").cloned())
            .unwrap_or_else(|| toml::Value::String(v.to_string()));
        table.insert(k.trim().to_string(), value);
    }
    let aug: AugmentConfig = toml::Value::Table(table)
        .try_into()
        .context("--aug: not an augmentation setting")?;
    aug.validate()
        .map_err(|v| anyhow::anyhow!("{}: {}", v.key, v.rule))?;
    let data = prepare_data(&config.data, config.seed)?.train;
    if args.images == 0 || args.first + args.images > data.len() {
        anyhow::bail!(
            "--first {} --images {} does not fit {} training images",
            args.first,
            args.images,
            data.len()
        );
    }
    let [c, h, w] = data.shape;
    let zoom = (112 / h.max(w)).max(1);
    let (tile_h, tile_w, pad) = (h * zoom, w * zoom, 4);
    let cols = args.views + 1;
    let width = cols * (tile_w + pad) + pad;
    let height = args.images * (tile_h + pad) + pad;
    let mut canvas =
        image::RgbImage::from_pixel(width as u32, height as u32, image::Rgb([255, 255, 255]));
    for row in 0..args.images {
        let i = args.first + row;
        let original = Image::of(&data, i);
        let mut tiles = vec![original.clone()];
        for v in 0..args.views {
            tiles.push(aug.apply(&original, &mut view_rng(config.seed, i, v)));
        }
        for (col, tile) in tiles.iter().enumerate() {
            let (x0, y0) = (pad + col * (tile_w + pad), pad + row * (tile_h + pad));
            for y in 0..tile_h {
                for x in 0..tile_w {
                    let at = |ch: usize| {
                        let v = tile.pixels[(ch * h + y / zoom) * w + x / zoom];
                        (v.clamp(0.0, 1.0) * 255.0).round() as u8
                    };
                    let rgb = if c >= 3 {
                        [at(0), at(1), at(2)]
                    } else {
                        [at(0); 3]
                    };
                    canvas.put_pixel((x0 + x) as u32, (y0 + y) as u32, image::Rgb(rgb));
                }
            }
        }
    }
    let format = image::ImageFormat::from_path(&args.out)
        .with_context(|| format!("{}: name it .png or .jpg", args.out.display()))?;
    let mut encoded = std::io::Cursor::new(Vec::new());
    canvas
        .write_to(&mut encoded, format)
        .with_context(|| format!("encoding {}", args.out.display()))?;
    mentor::engine::io::write_atomic(&args.out, encoded.get_ref())?;
    eprintln!(
        "{} images x (original + {} views) written to {}",
        args.images,
        args.views,
        args.out.display()
    );
    Ok(())
}
