//! The SVG plot: throughput against threads, one line per subject (dashed
//! for the read-through subjects), one panel per workload, and a legend in
//! the last panel.

use std::error::Error;
use std::path::Path;

use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::throughput::Results;

/// Tableau 10, then darker shades for the bounded subjects of the default
/// order (`Cache`'s blue, black, quick_cache's olive, moka's cyan): distinct
/// on screen and in print. `Cache` gets the first.
const COLORS: [RGBColor; 14] = [
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
    RGBColor(20, 60, 115),
    RGBColor(0, 0, 0),
    RGBColor(120, 120, 0),
    RGBColor(0, 105, 115),
];

const PANEL_WIDTH: u32 = 620;
const PANEL_HEIGHT: u32 = 340;
const COLUMNS: usize = 2;

fn color(index: usize) -> RGBAColor {
    match COLORS.get(index) {
        Some(c) => c.to_rgba(),
        None => Palette99::pick(index).to_rgba(),
    }
}

/// Threads are drawn on a log2 axis; ticks are labelled only at powers of 2.
fn thread_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", 2f64.powf(x.round()))
    } else {
        String::new()
    }
}

/// Writes the plot of `results` to `path`, titled `title`.
pub fn draw(results: &Results, title: &str, path: &Path) -> Result<(), Box<dyn Error>> {
    let plan = &results.plan;
    let panels = plan.workloads.len() + 1;
    let rows = panels.div_ceil(COLUMNS);
    let size = (
        PANEL_WIDTH * COLUMNS as u32,
        PANEL_HEIGHT * rows as u32 + 40,
    );
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let areas = root.split_evenly((rows, COLUMNS));

    let x_max = plan
        .threads
        .iter()
        .map(|&t| (t as f64).log2())
        .fold(0.0, f64::max);
    for (area, &workload) in areas.iter().zip(&plan.workloads) {
        let y_max = plan
            .subjects
            .iter()
            .flat_map(|&s| plan.threads.iter().map(move |&t| (s, t)))
            .filter_map(|(s, t)| results.median(workload, s, t))
            .fold(0.0, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{}: {}", workload.name(), workload.describe()),
                ("sans-serif", 15),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.2..x_max + 0.2, 0.0..y_max.max(1e-3))?;
        chart
            .configure_mesh()
            .x_desc("threads")
            .y_desc("Mops/s")
            .x_labels(4 * plan.threads.len() + 1)
            .x_label_formatter(&thread_label)
            .disable_x_mesh()
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (index, &subject) in plan.subjects.iter().enumerate() {
            let points: Vec<(f64, f64)> = plan
                .threads
                .iter()
                .filter_map(|&t| Some(((t as f64).log2(), results.median(workload, subject, t)?)))
                .collect();
            let width = if index == 0 { 3 } else { 2 };
            let style = color(index).stroke_width(width);
            if subject.read_through() {
                chart.draw_series(DashedLineSeries::new(points, 8, 4, style))?;
            } else {
                chart.draw_series(LineSeries::new(points, style).point_size(3))?;
            }
        }
    }

    if let Some(legend) = areas.get(plan.workloads.len()) {
        // 24 px a line, closer when that would run off the panel.
        let step = (PANEL_HEIGHT as usize - 60) / plan.subjects.len().max(1);
        let step = step.min(24) as i32;
        for (index, subject) in plan.subjects.iter().enumerate() {
            let y = 30 + step * index as i32;
            let style = color(index).stroke_width(3);
            let line = vec![(40, y), (90, y)];
            if subject.read_through() {
                legend.draw(&DashedPathElement::new(line, 8, 4, style))?;
            } else {
                legend.draw(&PathElement::new(line, style))?;
            }
            legend.draw(&Text::new(
                subject.to_string(),
                (100, y - 8),
                ("sans-serif", 16),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}
