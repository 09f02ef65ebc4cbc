//! `mentor summarize`: test accuracy (for continual runs average accuracy, backward
//! transfer and forgetting; for multitask runs per-task accuracy and Delta_m; for
//! directories with a `probe.json` from `mentor ssl eval`, kNN and linear-probe accuracy
//! per label fraction) of run directories, grouped by name with the seed suffix
//! (`-s<N>`) removed, as mean ± sample standard deviation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use mentor::continual::ContinualSummary;
use mentor::engine::RunSummary;
use mentor::multitask::MultitaskSummary;
use mentor::run::Report;
use mentor::ssl::probe::ProbeRow;

/// Arguments of `mentor summarize`.
#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// Run directories (each with a summary.json, a probe.json, or both).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
}

/// `name-s3` -> `name`.
fn group_name(dir: &std::path::Path) -> String {
    let name = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    match name.rsplit_once("-s") {
        Some((head, seed)) if !seed.is_empty() && seed.chars().all(|c| c.is_ascii_digit()) => {
            head.to_string()
        }
        _ => name,
    }
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Runs `mentor summarize`: one Markdown row per group; continual runs (whose summary
/// has an accuracy matrix) get their own table of average accuracy, backward transfer
/// and forgetting.
pub fn run(args: SummarizeArgs) -> anyhow::Result<()> {
    let mut groups: BTreeMap<String, Vec<RunSummary>> = BTreeMap::new();
    let mut continual: BTreeMap<String, Vec<ContinualSummary>> = BTreeMap::new();
    let mut multitask: BTreeMap<String, Vec<MultitaskSummary>> = BTreeMap::new();
    let mut probes: BTreeMap<String, Vec<Vec<ProbeRow>>> = BTreeMap::new();
    for dir in &args.runs {
        let probe = dir.join("probe.json");
        if probe.is_file() {
            let text = std::fs::read_to_string(&probe)
                .with_context(|| format!("reading {}", probe.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", probe.display()))?;
            let rows: Vec<ProbeRow> = serde_json::from_value(v["rows"].clone())
                .with_context(|| format!("reading the rows of {}", probe.display()))?;
            probes.entry(group_name(dir)).or_default().push(rows);
            if !dir.join("summary.json").is_file() {
                continue;
            }
        }
        match Report::read(&dir.join("summary.json"))? {
            Report::Multitask(s) => multitask.entry(group_name(dir)).or_default().push(s),
            Report::Continual(s) => continual.entry(group_name(dir)).or_default().push(s),
            Report::Training(s) => groups.entry(group_name(dir)).or_default().push(s),
        }
    }
    if !groups.is_empty() {
        println!(
            "| run | seeds | test accuracy (mean ± std) | test error % | train s (mean) | parameters |"
        );
        println!("|---|---|---|---|---|---|");
    }
    for (name, runs) in &groups {
        let acc: Vec<f64> = runs.iter().map(|r| r.test_accuracy).collect();
        let (m, s) = mean_std(&acc);
        let secs = runs.iter().map(|r| r.train_seconds).sum::<f64>() / runs.len() as f64;
        println!(
            "| {name} | {} | {:.4} ± {:.4} | {:.2} | {:.0} | {} |",
            runs.len(),
            m,
            s,
            (1.0 - m) * 100.0,
            secs,
            runs[0].parameters
        );
    }
    if !continual.is_empty() {
        println!(
            "| run | seeds | average accuracy % (mean ± std) | backward transfer % | forgetting % | wall s (mean) |"
        );
        println!("|---|---|---|---|---|---|");
    }
    for (name, runs) in &continual {
        let col = |f: &dyn Fn(&ContinualSummary) -> f64| {
            mean_std(&runs.iter().map(|r| 100.0 * f(r)).collect::<Vec<_>>())
        };
        let (acc, acc_sd) = col(&|r| r.average_accuracy);
        let (bwt, bwt_sd) = col(&|r| r.backward_transfer);
        let (fgt, fgt_sd) = col(&|r| r.mean_forgetting);
        let secs = runs.iter().map(|r| r.wall_seconds).sum::<f64>() / runs.len() as f64;
        println!(
            "| {name} | {} | {acc:.2} ± {acc_sd:.2} | {bwt:+.2} ± {bwt_sd:.2} | {fgt:.2} ± {fgt_sd:.2} | {secs:.0} |",
            runs.len()
        );
    }
    if !multitask.is_empty() {
        println!(
            "| run | seeds | tasks | test accuracy % per task (mean ± std) | Delta_m % | parameters | train s (mean) |"
        );
        println!("|---|---|---|---|---|---|---|");
    }
    for (name, runs) in &multitask {
        let per_task: Vec<String> = (0..runs[0].task_accuracy.len())
            .map(|t| {
                let accs: Vec<f64> = runs.iter().map(|r| 100.0 * r.task_accuracy[t]).collect();
                let (m, s) = mean_std(&accs);
                format!("{m:.2} ± {s:.2}")
            })
            .collect();
        let deltas: Vec<f64> = runs.iter().filter_map(|r| r.delta_m).collect();
        let dm = if deltas.len() == runs.len() {
            let (m, s) = mean_std(&deltas);
            format!("{m:+.2} ± {s:.2}")
        } else {
            "-".into()
        };
        let secs = runs.iter().map(|r| r.train_seconds).sum::<f64>() / runs.len() as f64;
        println!(
            "| {name} | {} | {} | {} | {dm} | {} | {secs:.0} |",
            runs.len(),
            runs[0].tasks.join(" / "),
            per_task.join(" / "),
            runs[0].parameters
        );
    }
    print_probes(&probes);
    Ok(())
}

/// One row per encoder: kNN and linear-probe accuracy (%) at each label fraction.
fn print_probes(probes: &BTreeMap<String, Vec<Vec<ProbeRow>>>) {
    let Some(first) = probes.values().next().and_then(|runs| runs.first()) else {
        return;
    };
    let fractions: Vec<f64> = first.iter().map(|r| r.fraction).collect();
    let heads: Vec<String> = ["kNN", "linear"]
        .iter()
        .flat_map(|p| fractions.iter().map(move |f| format!("{p} {}%", 100.0 * f)))
        .collect();
    println!("| encoder | seeds | {} |", heads.join(" | "));
    println!("|---|---|{}", "---|".repeat(heads.len()));
    for (name, runs) in probes {
        let cell = |f: f64, pick: &dyn Fn(&ProbeRow) -> f64| {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|rows| {
                    rows.iter()
                        .find(|r| r.fraction == f)
                        .map(|r| 100.0 * pick(r))
                })
                .collect();
            if v.len() == runs.len() {
                let (m, s) = mean_std(&v);
                format!("{m:.2} ± {s:.2}")
            } else {
                "-".into()
            }
        };
        let cells: Vec<String> = fractions
            .iter()
            .map(|&f| cell(f, &|r| r.knn_accuracy))
            .chain(fractions.iter().map(|&f| cell(f, &|r| r.linear_accuracy)))
            .collect();
        println!("| {name} | {} | {} |", runs.len(), cells.join(" | "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_strip_the_seed_suffix() {
        assert_eq!(group_name(std::path::Path::new("runs/alone-s12")), "alone");
        assert_eq!(
            group_name(std::path::Path::new("runs/distilled-T20-l0.9-s1")),
            "distilled-T20-l0.9"
        );
        assert_eq!(group_name(std::path::Path::new("runs/teacher")), "teacher");
    }

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[0.5]), (0.5, 0.0));
    }
}
