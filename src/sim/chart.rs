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
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (upper, lower) = root.split_vertically(420);
    let t_max = samples
        .last()
        .map_or(1.0, |s| s.t_ms as f64 / 1000.0)
        .max(1.0);
    let c_max = samples
        .iter()
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
    let series = |f: fn(&Sample) -> usize| -> Vec<(f64, f64)> {
        samples
            .iter()
            .map(|s| (s.t_ms as f64 / 1000.0, f(s) as f64))
            .collect()
    };
    for (data, color, label) in [
        (series(|s| s.connections.min), RED, "min"),
        (series(|s| s.connections.median), BLUE, "median"),
        (series(|s| s.connections.max), GREEN, "max"),
    ] {
        chart
            .draw_series(LineSeries::new(data, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    for bound in [lo, hi] {
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, bound as f64), (t_max, bound as f64)],
                BLACK.mix(0.4),
            ))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| e.to_string())?;
    let p_max = samples.iter().map(|s| s.mean_pool).fold(1.0, f64::max);
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
    pool_chart
        .draw_series(LineSeries::new(
            samples
                .iter()
                .map(|s| (s.t_ms as f64 / 1000.0, s.mean_pool)),
            MAGENTA.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
