//! `mentor data inspect`: what an image folder holds before a run trains on it.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use mentor::data::inspect::{FolderReport, SIZE_BUCKETS, inspect_folder};

/// Arguments of `mentor data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Classes and counts per split, image sizes, unreadable files, the memory an
    /// in-memory load would take, and the streaming pipeline's speed here.
    Inspect(InspectArgs),
}

/// Arguments of `mentor data inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The kind of data set (image folders only: the fixed-format sets are described in
    /// README's Data section).
    #[arg(long, default_value = "image-folder", value_parser = ["image-folder"])]
    dataset: String,
    /// The folder: `DIR/train/<class>/...` and `DIR/test/<class>/...`, or
    /// `DIR/<class>/...`.
    #[arg(long)]
    data_dir: PathBuf,
    /// The side of the training transform timed (RandomResizedCrop, flip, normalise), and
    /// of the in-memory estimate at the model's size.
    #[arg(long, default_value_t = 224, value_parser = clap::value_parser!(u32).range(1..=4096))]
    size: u32,
    /// Read only the first N images of each split (a quick look at a large folder).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// Runs `mentor data`.
pub fn run(args: DataArgs) -> anyhow::Result<()> {
    match args.command {
        DataCommand::Inspect(a) => inspect(a),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let report = inspect_folder(
        &args.data_dir,
        args.size as usize,
        args.limit.map(|n| n as usize),
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

/// The report for a person.
fn table(report: &FolderReport) -> String {
    let mut out = format!("{}\n", report.root.display());
    for split in &report.splits {
        let total: usize = split.classes.iter().map(|c| c.1).sum();
        out += &format!(
            "\n{}: {} images in {} classes ({} read)\n",
            split.name,
            total,
            split.classes.len(),
            split.inspected
        );
        let counts: Vec<String> = split
            .classes
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        out += &format!("  per class: {}\n", counts.join(", "));
        let buckets: Vec<String> = SIZE_BUCKETS
            .iter()
            .zip(split.shorter_side)
            .filter(|(_, n)| *n > 0)
            .map(|((lo, hi), n)| match *hi {
                usize::MAX => format!(">= {lo}: {n}"),
                hi => format!("{lo}-{}: {n}", hi - 1),
            })
            .collect();
        out += &format!("  shorter side (px): {}\n", buckets.join(", "));
        let sizes: Vec<String> = split
            .common_sizes
            .iter()
            .map(|((w, h), n)| format!("{w}x{h} ({n})"))
            .collect();
        out += &format!(
            "  sizes: {} distinct; most common {}\n",
            split.distinct_sizes,
            sizes.join(", ")
        );
        let [grey, rgb, rgba, other] = split.channels;
        out += &format!("  channels: grey {grey}, RGB {rgb}, RGBA {rgba}, other {other}\n");
        out += &format!(
            "  decoded whole as f32: {}\n",
            mib(split.f32_bytes_full_size)
        );
        if split.unreadable.is_empty() {
            out += "  unreadable: none\n";
        } else {
            out += &format!(
                "  unreadable: {} (train with data.skip_corrupt = true to leave them out)\n",
                split.unreadable.len()
            );
            for (path, why) in &split.unreadable {
                let name = path.display().to_string();
                // Read errors name the file already.
                match why.contains(&name) {
                    true => out += &format!("    {why}\n"),
                    false => out += &format!("    {name}: {why}\n"),
                }
            }
        }
    }
    out += &format!(
        "\nin memory at 3x{s}x{s} as f32: {}\n",
        mib(report.f32_bytes_at_size),
        s = report.size
    );
    out += &format!(
        "streaming pipeline here: {:.0} images/s on one thread (read, decode, RandomResizedCrop({}), flip, normalise)\n",
        report.images_per_second, report.size
    );
    out
}
