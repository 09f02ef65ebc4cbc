//! Loss and accuracy curves per epoch and split, as PNG and SVG, drawn with plotters and
//! an embedded font (an ASCII subset of DejaVu Sans, licence in `assets/`), so no system
//! font is needed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::engine::io::write_atomic;
use crate::engine::metrics::MetricRow;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-ascii.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is embedded and known to be valid; a failure would only lose labels.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// Draws a figure twice, as `<base>.png` and `<base>.svg`: registers the font, calls
/// `draw(area, args...)` once per backend into memory (the draw functions are generic
/// over the backend, which a closure cannot be), and writes each file atomically, so a
/// kill mid-plot never leaves a half-written figure.
macro_rules! png_and_svg {
    ($base:expr, $size:expr, $draw:ident $(, $arg:expr)*) => {{
        register_font();
        let base: &Path = $base;
        let (width, height): (u32, u32) = $size;
        let mut pixels = vec![0u8; width as usize * height as usize * 3];
        $draw(BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area() $(, $arg)*)?;
        let image = image::RgbImage::from_raw(width, height, pixels)
            .ok_or("plot buffer of the wrong size")?;
        let mut png = std::io::Cursor::new(Vec::new());
        image.write_to(&mut png, image::ImageFormat::Png)?;
        write_atomic(&base.with_extension("png"), png.get_ref())?;
        let mut svg = String::new();
        $draw(SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area() $(, $arg)*)?;
        write_atomic(&base.with_extension("svg"), svg.as_bytes())?;
        Ok(())
    }};
}

/// Writes `curves.png` and `curves.svg` into `dir`: loss (left) and accuracy (right)
/// against epoch, one line per split.
pub fn plot_curves(rows: &[MetricRow], dir: &Path) -> PlotResult {
    png_and_svg!(&dir.join("curves"), (1000, 400), draw, rows)
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    rows: &[MetricRow],
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let halves = root.split_evenly((1, 2));
    let splits = ["train", "val", "test"];
    let colors = [BLUE, GREEN, RED];
    let max_epoch = rows.iter().map(|r| r.epoch).max().unwrap_or(1).max(2);
    for (area, (title, metric)) in halves.iter().zip([
        ("loss", (|r: &MetricRow| r.loss) as fn(&MetricRow) -> f64),
        ("accuracy", |r: &MetricRow| r.accuracy),
    ]) {
        let values: Vec<f64> = rows.iter().map(metric).filter(|v| v.is_finite()).collect();
        let hi = values.iter().cloned().fold(f64::MIN, f64::max).max(1e-6);
        let lo = values
            .iter()
            .cloned()
            .fold(f64::MAX, f64::min)
            .min(hi - 1e-6);
        let pad = (hi - lo) * 0.05;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(1usize..max_epoch, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .label_style(("sans-serif", 13))
            .draw()?;
        for (split, color) in splits.iter().zip(colors) {
            let pts: Vec<(usize, f64)> = rows
                .iter()
                .filter(|r| r.split == *split)
                .map(|r| (r.epoch, metric(r)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
                .label(*split)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Writes `teacher-soft-targets.png` and `.svg` into `dir`: a teacher's class
/// probabilities for one example at each temperature in `panels` (`(T, probs)`), as bar
/// charts — the survey's near one-hot output at T=1 beside its softened version.
pub fn plot_soft_targets(panels: &[(f64, Vec<f32>)], dir: &Path) -> PlotResult {
    let width = 450 * panels.len().max(1) as u32;
    png_and_svg!(
        &dir.join("teacher-soft-targets"),
        (width, 350),
        draw_bars,
        panels
    )
}

fn draw_bars<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    panels: &[(f64, Vec<f32>)],
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, (t, probs)) in areas.iter().zip(panels) {
        let n = probs.len();
        let mut chart = ChartBuilder::on(area)
            .caption(format!("teacher softmax, T = {t}"), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d((0..n.saturating_sub(1)).into_segmented(), 0f32..1f32)?;
        chart
            .configure_mesh()
            .x_desc("class")
            .label_style(("sans-serif", 13))
            .draw()?;
        chart.draw_series(
            Histogram::vertical(&chart)
                .style(BLUE.mix(0.7).filled())
                .margin(4)
                .data(probs.iter().enumerate().map(|(i, &p)| (i, p))),
        )?;
    }
    root.present()?;
    Ok(())
}

/// Writes `<base>.png` and `<base>.svg`: test accuracy (y) against a swept value (x).
pub fn plot_sweep(points: &[(f64, f64)], x_label: &str, log_x: bool, base: &Path) -> PlotResult {
    png_and_svg!(base, (640, 420), draw_sweep, points, x_label, log_x)
}

fn draw_sweep<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    points: &[(f64, f64)],
    x_label: &str,
    log_x: bool,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let tx = |x: f64| if log_x { x.max(1e-12).log10() } else { x };
    let xs: Vec<f64> = points.iter().map(|p| tx(p.0)).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let (x0, x1) = (
        xs.iter().cloned().fold(f64::MAX, f64::min),
        xs.iter().cloned().fold(f64::MIN, f64::max),
    );
    let (y0, y1) = (
        ys.iter().cloned().fold(f64::MAX, f64::min),
        ys.iter().cloned().fold(f64::MIN, f64::max),
    );
    let (xpad, ypad) = (((x1 - x0) * 0.05).max(1e-3), ((y1 - y0) * 0.1).max(1e-3));
    let x_desc = if log_x {
        format!("{x_label} (log10)")
    } else {
        x_label.to_string()
    };
    let mut chart = ChartBuilder::on(&root)
        .caption("test accuracy", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 - xpad)..(x1 + xpad), (y0 - ypad)..(y1 + ypad))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("test accuracy")
        .label_style(("sans-serif", 13))
        .draw()?;
    let pts: Vec<(f64, f64)> = xs.iter().cloned().zip(ys.iter().cloned()).collect();
    chart.draw_series(LineSeries::new(pts.clone(), BLUE.stroke_width(2)))?;
    chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))?;
    root.present()?;
    Ok(())
}

/// Writes `<base>.png` and `<base>.svg`: a continual run's accuracy matrix as a heatmap
/// (row `i`: after training task `i + 1`; column `j`: task `j + 1`), each cell labelled
/// with its accuracy in percent.
pub fn plot_accuracy_matrix(rows: &[Vec<f64>], title: &str, base: &Path) -> PlotResult {
    png_and_svg!(base, (560, 520), draw_matrix, rows, title)
}

fn draw_matrix<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    rows: &[Vec<f64>],
    title: &str,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let n_rows = rows.len().max(1);
    let n_cols = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n_cols as f64, n_rows as f64..0.0)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(n_cols + 1)
        .y_labels(n_rows + 1)
        .x_label_formatter(&|x| format!("{:.0}", x + 0.5))
        .y_label_formatter(&|y| format!("{:.0}", y + 0.5))
        .x_desc("evaluated on task")
        .y_desc("after training task")
        .label_style(("sans-serif", 13))
        .draw()?;
    for (i, row) in rows.iter().enumerate() {
        for (j, &acc) in row.iter().enumerate() {
            // White (0) to dark blue (1); text flips to white on dark cells.
            let a = acc.clamp(0.0, 1.0);
            let shade = |c: f64| (255.0 - a * (255.0 - c)) as u8;
            let fill = RGBColor(shade(8.0), shade(48.0), shade(107.0));
            let (x, y) = (j as f64, i as f64);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x, y), (x + 1.0, y + 1.0)],
                fill.filled(),
            )))?;
            let colour = if a > 0.55 { WHITE } else { BLACK };
            chart.draw_series(std::iter::once(Text::new(
                format!("{:.1}", acc * 100.0),
                (x + 0.3, y + 0.4),
                ("sans-serif", 14).into_font().color(&colour),
            )))?;
        }
    }
    root.present()?;
    Ok(())
}

/// Writes `<base>.png` and `<base>.svg`: each task's weight `w_i(t)` against the epoch,
/// one line per task (multitask runs).
pub fn plot_task_weights(weights: &[Vec<f64>], names: &[String], base: &Path) -> PlotResult {
    png_and_svg!(base, (640, 420), draw_task_weights, weights, names)
}

fn draw_task_weights<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    weights: &[Vec<f64>],
    names: &[String],
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let epochs = weights.len().max(1);
    let top = weights
        .iter()
        .flatten()
        .cloned()
        .fold(0.0f64, f64::max)
        .max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .caption("task weights", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(1.0..epochs as f64 + 1e-9, 0.0..top * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("w_i(t)")
        .label_style(("sans-serif", 13))
        .draw()?;
    for (t, name) in names.iter().enumerate() {
        let colour = Palette99::pick(t).to_rgba();
        let points: Vec<(f64, f64)> = weights
            .iter()
            .enumerate()
            .filter_map(|(e, w)| w.get(t).map(|v| ((e + 1) as f64, *v)))
            .collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_png_and_svg() {
        let rows: Vec<MetricRow> = (1..=3)
            .flat_map(|e| {
                ["train", "test"].map(|s| MetricRow {
                    epoch: e,
                    split: s.into(),
                    loss: 1.0 / e as f64,
                    accuracy: 0.5 + 0.1 * e as f64,
                    lr: 0.1,
                    train_seconds: e as f64,
                })
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        plot_curves(&rows, dir.path()).unwrap();
        let png = std::fs::read(dir.path().join("curves.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(dir.path().join("curves.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("accuracy"));
    }

    #[test]
    fn accuracy_matrix_heatmap_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("matrix");
        let rows = vec![vec![0.99, 0.1], vec![0.5, 0.98]];
        plot_accuracy_matrix(&rows, "split task-il", &base).unwrap();
        let svg = std::fs::read_to_string(base.with_extension("svg")).unwrap();
        assert!(svg.contains("99.0") && svg.contains("50.0"));
        assert!(base.with_extension("png").is_file());
    }

    #[test]
    fn task_weight_plot_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("w");
        let weights = vec![vec![1.0, 1.0], vec![0.9, 1.1], vec![0.8, 1.2]];
        plot_task_weights(&weights, &["left".into(), "right".into()], &base).unwrap();
        let svg = std::fs::read_to_string(base.with_extension("svg")).unwrap();
        assert!(svg.contains("left") && svg.contains("right"));
    }

    #[test]
    fn sweep_plot_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("sweep");
        plot_sweep(&[(1.0, 0.9), (4.0, 0.95), (40.0, 0.93)], "T", true, &base).unwrap();
        assert!(base.with_extension("png").is_file() && base.with_extension("svg").is_file());
    }

    #[test]
    fn soft_target_bars_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let panels = vec![(1.0, vec![0.9, 0.05, 0.05]), (40.0, vec![0.34, 0.33, 0.33])];
        plot_soft_targets(&panels, dir.path()).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("teacher-soft-targets.svg")).unwrap();
        assert!(svg.contains("T = 40"));
        assert!(dir.path().join("teacher-soft-targets.png").is_file());
    }
}
