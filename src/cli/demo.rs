//! `mentor demo`: the tour of the toolkit on the embedded digits set. Its runs are the
//! TOML files in `examples/demo/` (embedded in the binary, in file-name order): each is a
//! run config with a `[demo]` table that says which row of the table it is. To change
//! the tour, edit those files; `--runs DIR` runs another folder of such files.
//!
//! The `[demo]` table: `row` (the strategy column), `name` (the run column), `probe`
//! (label fractions of a linear probe of the trained network's frozen features, for
//! self-supervised rows), `untrained = true` (no run: probe the seeded initial
//! weights). `{out}` in any string of the file is the demo's `--out` folder, so a run can
//! use an earlier run's checkpoint; each run's directory is the file's name without its
//! order number and extension (`02-supervised-cnn.toml` -> `{out}/supervised-cnn`).
//!
//! The demo owns its `--out` folder: it marks it with [`DEMO_MARK`] and, run again,
//! replaces the runs it wrote there before (the tour is seeded, so the table comes out
//! the same), rather than refusing the second time or piling up dated folders. A folder
//! that holds anything else and no mark is refused, so a user's own runs are never
//! replaced.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use mentor::data::prepare_data;
use mentor::engine::{LogFormat, seeded_init};
use mentor::losses::TeacherTargets;
use mentor::run::config::RunConfig;
use mentor::run::strategy::StrategyConfig;
use mentor::run::{Report, RunOptions, ValidRunConfig};
use mentor::ssl::probe::{ProbeConfig, probe};
use serde::Deserialize;

/// The file that marks a folder as the demo's own output.
pub const DEMO_MARK: &str = ".mentor-demo";

/// Claims `out` for the demo: creates it with its mark, or accepts it when it is empty
/// or already marked. Returns whether earlier demo runs there are to be replaced.
fn claim_demo_folder(out: &Path) -> anyhow::Result<bool> {
    let mark = out.join(DEMO_MARK);
    if mark.is_file() {
        return Ok(true);
    }
    if out.exists() {
        let entries =
            std::fs::read_dir(out).with_context(|| format!("demo: reading {}", out.display()))?;
        if entries.count() > 0 {
            anyhow::bail!(
                "demo: {} holds files that no earlier `mentor demo` wrote (no {DEMO_MARK} in it); give the demo its own --out folder",
                out.display()
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("demo: creating {}", out.display()))?;
    mentor::engine::io::write_atomic(
        &mark,
        b"written by `mentor demo`, which replaces its own runs here when run again\n",
    )?;
    Ok(false)
}

/// `(file name, text)` of one file of `examples/demo/`.
macro_rules! embed {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/demo/",
                $file
            )),
        )
    };
}

/// The tour's run files, embedded so that `mentor demo` works from any folder.
const TOUR: [(&str, &str); 19] = [
    embed!("01-supervised-mlp.toml"),
    embed!("02-supervised-cnn.toml"),
    embed!("03-supervised-mlp-32.toml"),
    embed!("04-distillation-cnn-to-mlp-32.toml"),
    embed!("05-supervised-vit.toml"),
    embed!("06-distillation-cnn-to-vit-deit.toml"),
    embed!("07-supervised-cnn-0-4.toml"),
    embed!("08-supervised-cnn-5-9-few.toml"),
    embed!("09-transfer-linear-probe.toml"),
    embed!("10-transfer-fine-tune.toml"),
    embed!("11-continual-fine-tune.toml"),
    embed!("12-continual-replay.toml"),
    embed!("13-multitask-digit-pairs.toml"),
    embed!("14-ssl-simclr.toml"),
    embed!("15-ssl-deep-cluster.toml"),
    embed!("16-ssl-amdim.toml"),
    embed!("17-ssl-cpc.toml"),
    embed!("18-untrained-mlp.toml"),
    embed!("19-untrained-cnn.toml"),
];

/// Arguments of `mentor demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo's run directories go (one sub-folder per row).
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// A folder of tour files to run instead of the embedded ones (`*.toml`, in name
    /// order; see `examples/demo/`).
    #[arg(long)]
    runs: Option<PathBuf>,
    /// Progress format of the individual runs.
    #[arg(long, value_enum, default_value_t = LogFormat::Quiet)]
    log_format: LogFormat,
}

/// The `[demo]` table of a tour file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RowSpec {
    /// The strategy column.
    row: String,
    /// The run column.
    name: String,
    /// Label fractions of a linear probe of the network's frozen features.
    #[serde(default)]
    probe: Vec<f64>,
    /// Probe the seeded initial weights instead of running.
    #[serde(default)]
    untrained: bool,
}

/// One tour file, read: its row, its run directory's name and its run config.
#[derive(Debug)]
struct TourRun {
    spec: RowSpec,
    dir: String,
    config: ValidRunConfig,
}

struct Row {
    strategy: String,
    what: String,
    accuracy: f64,
    seconds: f64,
}

/// `02-supervised-cnn.toml` -> `supervised-cnn`.
fn dir_name(file: &str) -> String {
    let stem = file.strip_suffix(".toml").unwrap_or(file);
    match stem.split_once('-') {
        Some((order, rest)) if order.chars().all(|c| c.is_ascii_digit()) => rest.into(),
        _ => stem.into(),
    }
}

/// Replaces `{out}` in every string of `value`.
fn substitute_out(value: &mut toml::Value, out: &str) {
    match value {
        toml::Value::String(s) => *s = s.replace("{out}", out),
        toml::Value::Array(items) => items.iter_mut().for_each(|v| substitute_out(v, out)),
        toml::Value::Table(table) => table.iter_mut().for_each(|(_, v)| substitute_out(v, out)),
        _ => {}
    }
}

/// Reads one tour file: its `[demo]` table and the run config that is the rest of it,
/// validated.
fn read_tour_file(file: &str, text: &str, out: &Path) -> anyhow::Result<TourRun> {
    let mut table: toml::Table =
        toml::from_str(text).with_context(|| format!("demo file {file}"))?;
    let demo = table
        .remove("demo")
        .with_context(|| format!("demo file {file}: has no [demo] table (row, name)"))?;
    let spec: RowSpec = demo
        .try_into()
        .with_context(|| format!("demo file {file}: [demo]"))?;
    let mut rest = toml::Value::Table(table);
    substitute_out(&mut rest, &out.display().to_string());
    let config = RunConfig::from_toml(&toml::to_string(&rest)?, file)?
        .check()
        .with_context(|| format!("demo file {file}"))?;
    if spec.untrained && spec.probe.is_empty() {
        anyhow::bail!("demo file {file}: [demo] untrained = true needs a probe (probe = [0.1])");
    }
    Ok(TourRun {
        spec,
        dir: dir_name(file),
        config,
    })
}

/// The tour: the embedded files, or the `*.toml` files of `runs` in name order.
fn read_tour(runs: Option<&Path>, out: &Path) -> anyhow::Result<Vec<TourRun>> {
    let Some(folder) = runs else {
        return TOUR
            .iter()
            .map(|(file, text)| read_tour_file(file, text, out))
            .collect();
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("--runs {}", folder.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("--runs {}: no .toml files", folder.display());
    }
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            read_tour_file(&name, &text, out)
        })
        .collect()
}

/// The run column of a training run: its name, length, size and strategy knobs.
fn training_row(name: &str, config: &RunConfig, epochs: usize, parameters: usize) -> String {
    let detail = match &config.strategy {
        StrategyConfig::Distill(d) if d.targets == TeacherTargets::Hard => {
            format!(", hard targets lambda={}", d.lambda)
        }
        StrategyConfig::Distill(d) => format!(", T={} lambda={}", d.temperature, d.lambda),
        StrategyConfig::LinearProbe(_)
        | StrategyConfig::Supervised {}
        | StrategyConfig::Continual(_)
        | StrategyConfig::Multitask(_)
        | StrategyConfig::SelfSupervised(_) => String::new(),
    };
    format!("{name}, {epochs} epochs, {parameters} params{detail}")
}

/// Runs the demo and prints its table.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let tour = read_tour(args.runs.as_deref(), &args.out)?;
    let replace = claim_demo_folder(&args.out)?;
    let mut rows = Vec::new();
    let mut sizes = String::new();
    let total = Instant::now();
    for TourRun { spec, dir, config } in tour {
        eprintln!(
            "demo: {} {} on {} ...",
            spec.row, spec.name, config.data.dataset
        );
        let started = Instant::now();
        let data = prepare_data(&config.data, config.seed)?;
        if sizes.is_empty() {
            sizes = format!(
                "{} train / {} validation / {} test images",
                data.train.len(),
                data.val.as_ref().map_or(0, |v| v.len()),
                data.test.len()
            );
        }
        let network = if spec.untrained {
            seeded_init(
                &config.model,
                data.train.shape,
                data.train.num_classes,
                &burn::tensor::Device::flex(),
                config.seed,
            )
        } else {
            let options = RunOptions {
                log: args.log_format,
                overwrite: replace,
                ..RunOptions::new(args.out.join(&dir))
            };
            let (report, network) = mentor::run::run(&config, &options)?;
            if spec.probe.is_empty() {
                let (what, accuracy) = match report {
                    Report::Training(s) => (
                        training_row(&spec.name, &config, s.epochs, s.parameters),
                        s.test_accuracy,
                    ),
                    Report::Continual(s) => (
                        format!("{}: ACC, forgetting {:.2}", spec.name, s.mean_forgetting),
                        s.average_accuracy,
                    ),
                    Report::Multitask(s) => {
                        let tasks: Vec<String> = (s.tasks.iter().zip(&s.task_accuracy))
                            .map(|(t, a)| format!("{t} {a:.2}"))
                            .collect();
                        let mean = s.task_accuracy.iter().sum::<f64>()
                            / s.task_accuracy.len().max(1) as f64;
                        (
                            format!("{}: mean of {}", spec.name, tasks.join(" / ")),
                            mean,
                        )
                    }
                };
                rows.push(Row {
                    strategy: spec.row,
                    what,
                    accuracy,
                    seconds: started.elapsed().as_secs_f64(),
                });
                continue;
            }
            network
        };
        let probe_config = ProbeConfig {
            fractions: spec.probe.clone(),
            ..ProbeConfig::default()
        };
        for r in probe(&network, &data.train, &data.test, &probe_config)
            .map_err(|e| anyhow::anyhow!("demo run {dir}: probe: {e}"))?
        {
            rows.push(Row {
                strategy: spec.row.clone(),
                what: format!(
                    "{}, linear probe, {:.0}% labels ({})",
                    spec.name,
                    100.0 * r.fraction,
                    r.labels
                ),
                accuracy: r.linear_accuracy,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }
    println!();
    println!("mentor demo: embedded UCI digits (8x8 pixels; all classes: {sizes})");
    println!(
        "| strategy     | run                                                      | test accuracy | seconds |"
    );
    println!(
        "|--------------|----------------------------------------------------------|---------------|---------|"
    );
    for r in &rows {
        let strategy = if r.strategy == "self-supervised" {
            "self-superv."
        } else {
            &r.strategy
        };
        println!(
            "| {:<12} | {:<56} | {:>13.4} | {:>7.1} |",
            strategy, r.what, r.accuracy, r.seconds
        );
    }
    println!(
        "total {:.1} s; run directories in {}",
        total.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_tour_file_is_a_valid_run() {
        let out = Path::new("/tmp/out");
        let tour = read_tour(None, out).unwrap();
        assert_eq!(tour.len(), TOUR.len());
        let teacher = tour.iter().find(|t| t.dir == "distillation-cnn-to-mlp-32");
        let StrategyConfig::Distill(d) = &teacher.unwrap().config.strategy else {
            panic!("04 is not a distillation run");
        };
        assert_eq!(
            d.teacher,
            Path::new("/tmp/out/supervised-cnn/checkpoints/best.ckpt")
        );
        // A file's checkpoint reference names an earlier file's run directory.
        for (i, t) in tour.iter().enumerate() {
            let text = t.config.to_toml();
            for later in &tour[i..] {
                let used = format!("/tmp/out/{}/", later.dir);
                assert!(
                    !text.contains(&used),
                    "{} uses a later run {}",
                    t.dir,
                    later.dir
                );
            }
        }
    }

    #[test]
    fn a_tour_file_without_a_demo_table_or_with_a_bad_key_is_refused() {
        for (text, names) in [
            ("epochs = 2\n", "no [demo] table"),
            ("[demo]\nrow = \"a\"\nname = \"b\"\ncolour = 1\n", "colour"),
            ("epochs = 0\n[demo]\nrow = \"a\"\nname = \"b\"\n", "epochs"),
        ] {
            let e = read_tour_file("x.toml", text, Path::new("/tmp/out")).unwrap_err();
            assert!(format!("{e:#}").contains(names), "{text:?}: {e:#}");
        }
    }

    #[test]
    fn run_directories_are_the_file_names_without_order() {
        assert_eq!(dir_name("02-supervised-cnn.toml"), "supervised-cnn");
        assert_eq!(dir_name("mine.toml"), "mine");
        assert_eq!(dir_name("v2-run.toml"), "v2-run");
    }
}
