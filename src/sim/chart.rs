//! The `--chart` SVG: min/median/max connections per node and mean pool size over
//! virtual time.

use super::Sample;
use plotters::prelude::*;
use std::path::Path;

/// Draws `samples` to an SVG file at `path`; `lo`/`hi` are the range bounds drawn as
/// dashed lines.
pub fn write_chart(
    path: &Path,
    samples: &[Sample],
    lo: usize,
    hi: usize,
    title: &str,
) -> Result<(), String> {
    write_charts(path, &[("", samples)], lo, hi, title)
}

/// The colours of one run's min, median and max lines and of its pool line: the first
/// run in strong colours, the second in lighter ones of other hues.
const PALETTES: [[RGBColor; 4]; 2] = [
    [RED, BLUE, GREEN, MAGENTA],
    [
        RGBColor(255, 160, 0),
        RGBColor(0, 170, 200),
        RGBColor(140, 90, 40),
        RGBColor(120, 120, 120),
    ],
];

/// Draws several runs (`(label, samples)`: `--compare` gives two, each policy's) to one
/// SVG file at `path`, each run's lines named in the legend by its label; the range
/// bounds `lo` and `hi` are drawn as grey lines and labelled (`min_threshold = lo`,
/// `max_threshold = hi`). At most two runs.
pub fn write_charts(
    path: &Path,
    runs: &[(&str, &[Sample])],
    lo: usize,
    hi: usize,
    title: &str,
) -> Result<(), String> {
    if runs.is_empty() || runs.len() > PALETTES.len() {
        return Err(format!("one or two runs to draw, not {}", runs.len()));
    }
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (upper, lower) = root.split_vertically(420);
    let all = || runs.iter().flat_map(|(_, s)| s.iter());
    let t_max = all().map(|s| s.t_ms as f64 / 1000.0).fold(1.0, f64::max);
    let c_max = all()
        .map(|s| s.connections.max)
        .max()
        .unwrap_or(1)
        .max(hi + 1) as f64;
    let mut chart = ChartBuilder::on(&upper)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..t_max, 0.0..c_max * 1.1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("virtual time (s)")
        .y_desc("connections per node")
        .draw()
        .map_err(|e| e.to_string())?;
    let named = |label: &str, what: &str| {
        if label.is_empty() {
            what.to_string()
        } else {
            format!("{label} {what}")
        }
    };
    for ((label, samples), palette) in runs.iter().zip(PALETTES) {
        let series = |f: fn(&Sample) -> usize| -> Vec<(f64, f64)> {
            samples
                .iter()
                .map(|s| (s.t_ms as f64 / 1000.0, f(s) as f64))
                .collect()
        };
        for (data, color, what) in [
            (series(|s| s.connections.min), palette[0], "min"),
            (series(|s| s.connections.median), palette[1], "median"),
            (series(|s| s.connections.max), palette[2], "max"),
        ] {
            chart
                .draw_series(LineSeries::new(data, color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(named(label, what))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
    }
    for (bound, name) in [(lo, "min_threshold"), (hi, "max_threshold")] {
        let y = bound as f64;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, y), (t_max, y)],
                6,
                4,
                BLACK.mix(0.5).into(),
            ))
            .map_err(|e| e.to_string())?;
        // The line's name, just above it at the right end.
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{name} = {bound}"),
                (t_max * 0.82, y + c_max * 0.035),
                ("sans-serif", 14).into_font().color(&BLACK.mix(0.7)),
            )))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| e.to_string())?;
    let p_max = all().map(|s| s.mean_pool).fold(1.0, f64::max);
    let mut pool_chart = ChartBuilder::on(&lower)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..t_max, 0.0..p_max * 1.1)
        .map_err(|e| e.to_string())?;
    pool_chart
        .configure_mesh()
        .x_desc("virtual time (s)")
        .y_desc("mean pool size (points)")
        .draw()
        .map_err(|e| e.to_string())?;
    for ((label, samples), palette) in runs.iter().zip(PALETTES) {
        let color = palette[3];
        pool_chart
            .draw_series(LineSeries::new(
                samples
                    .iter()
                    .map(|s| (s.t_ms as f64 / 1000.0, s.mean_pool)),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(named(label, "pool"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    if runs.len() > 1 {
        pool_chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
