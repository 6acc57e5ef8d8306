//! The SVG plot: hit ratio against capacity (log axis), one panel per
//! trace, one line per policy, and a legend in the last panel.

use std::error::Error;
use std::path::Path;

use plotters::prelude::*;

use crate::policies::Policy;
use crate::report::{series_label, Results};

/// Tableau 10, as in the `compare` plot. shardcache gets the first.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const PANEL_WIDTH: u32 = 520;
const PANEL_HEIGHT: u32 = 340;
const COLUMNS: usize = 3;

fn color(index: usize) -> RGBAColor {
    match COLORS.get(index) {
        Some(c) => c.to_rgba(),
        None => Palette99::pick(index).to_rgba(),
    }
}

/// Capacities are drawn on a log axis, ticked at the capacities measured.
fn capacity_label(entries: &f64) -> String {
    format!("{entries:.0}")
}

/// Writes the plot of `results` to `path`, titled `title`.
pub fn draw(results: &Results, title: &str, path: &Path) -> Result<(), Box<dyn Error>> {
    let series = results.series();
    let panels = results.traces.len() + 1;
    let rows = panels.div_ceil(COLUMNS);
    let size = (
        PANEL_WIDTH * COLUMNS as u32,
        PANEL_HEIGHT * rows as u32 + 40,
    );
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let areas = root.split_evenly((rows, COLUMNS));

    for (t, (area, trace)) in areas.iter().zip(&results.traces).enumerate() {
        let capacities = &results.capacities[t];
        let (lo, hi) = (
            capacities[0] as f64,
            capacities[capacities.len() - 1] as f64,
        );
        let pad = (hi / lo).powf(0.08).max(1.2);
        let y_max = series
            .iter()
            .flat_map(|&(p, n)| {
                capacities
                    .iter()
                    .filter_map(move |&c| results.ratio(t, c, p, n))
            })
            .map(|r| r.mean)
            .fold(0.0, f64::max);
        let y_max = (y_max * 1.1).clamp(1.0, 100.0);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{} ({} keys)", trace.name, trace.distinct),
                ("sans-serif", 15),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(
                (lo / pad..hi * pad)
                    .log_scale()
                    .with_key_points(capacities.iter().map(|&c| c as f64).collect()),
                0.0..y_max,
            )?;
        chart
            .configure_mesh()
            .x_desc("capacity (entries, log scale)")
            .y_desc("hit %")
            .x_labels(capacities.len())
            .x_label_formatter(&capacity_label)
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (index, &(policy, threads)) in series.iter().enumerate() {
            let points: Vec<(f64, f64)> = capacities
                .iter()
                .filter_map(|&c| Some((c as f64, results.ratio(t, c, policy, threads)?.mean)))
                .collect();
            let width = if policy == Policy::Shardcache { 3 } else { 2 };
            chart.draw_series(
                LineSeries::new(points, color(index).stroke_width(width)).point_size(3),
            )?;
        }
    }

    if let Some(legend) = areas.get(results.traces.len()) {
        for (index, &(policy, threads)) in series.iter().enumerate() {
            let y = 30 + 24 * index as i32;
            let style = color(index).stroke_width(3);
            legend.draw(&PathElement::new(vec![(40, y), (90, y)], style))?;
            legend.draw(&Text::new(
                series_label(policy, threads),
                (100, y - 8),
                ("sans-serif", 16),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}
