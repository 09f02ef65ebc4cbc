//! Loss and accuracy curves per epoch and split, as PNG and SVG, drawn with plotters and
//! an embedded font (an ASCII subset of DejaVu Sans, licence in `assets/`), so no system
//! font is needed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

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

/// Writes `curves.png` and `curves.svg` into `dir`: loss (left) and accuracy (right)
/// against epoch, one line per split.
pub fn plot_curves(rows: &[MetricRow], dir: &Path) -> PlotResult {
    register_font();
    std::fs::create_dir_all(dir)?;
    let png = dir.join("curves.png");
    let svg = dir.join("curves.svg");
    draw(
        BitMapBackend::new(&png, (1000, 400)).into_drawing_area(),
        rows,
    )?;
    draw(SVGBackend::new(&svg, (1000, 400)).into_drawing_area(), rows)?;
    Ok(())
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
}
