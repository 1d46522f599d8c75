//! The SVG of a sweep: throughput, latency and success against load, stacked so that
//! the knee of the curve lines up across the three.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::config::{SweepAxis, Workload};
use crate::stats::Report;

/// Why the plot could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the plot {path}: {reason}")]
pub struct PlotError {
    path: String,
    reason: String,
}

const WIDTH: u32 = 960;
const PANEL_HEIGHT: u32 = 300;
const TITLE_HEIGHT: u32 = 50;
const DARK_GREEN: RGBColor = RGBColor(0, 140, 0);

/// Writes the plot of `reports` (one per sweep point, in sweep order) to `path`.
pub fn plot_sweep(
    path: &Path,
    title: &str,
    axis: SweepAxis,
    reports: &[Report],
) -> Result<(), PlotError> {
    let failed = |reason: String| PlotError {
        path: path.display().to_string(),
        reason,
    };
    draw(path, title, axis, reports).map_err(|e| failed(e.to_string()))?;
    Ok(())
}

type Panel<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Failure = Box<dyn std::error::Error>;

fn draw(path: &Path, title: &str, axis: SweepAxis, reports: &[Report]) -> Result<(), Failure> {
    if reports.is_empty() {
        return Err("no sweep points to plot".into());
    }
    let root = SVGBackend::new(path, (WIDTH, TITLE_HEIGHT + 3 * PANEL_HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(TITLE_HEIGHT);
    header.titled(title, ("sans-serif", 22))?;
    let panels = body.split_evenly((3, 1));

    let x = |r: &Report| match axis {
        SweepAxis::Connections => r.shape.connections as f64,
        SweepAxis::Rate => r.shape.rate.unwrap_or(0) as f64,
    };
    // A webhook sweep plots what it measures: deliveries, and their ingest→delivery
    // latency; the others, events (or requests) and the request latency.
    let webhook = reports.iter().all(|r| r.shape.workload == "webhook");
    let events = reports.iter().any(|r| r.events_per_s > 0.0);
    let x_desc = axis.label(if webhook {
        Workload::Webhook
    } else {
        Workload::Ingest
    });
    let throughput = |r: &Report| {
        if webhook {
            r.consumed_per_s
        } else if events {
            r.events_per_s
        } else {
            r.req_per_s
        }
    };
    let throughput_label = if webhook {
        "deliveries/s"
    } else if events {
        "events/s"
    } else {
        "requests/s"
    };
    let latency = |r: &Report| match (webhook, r.end_to_end_ms) {
        (true, Some(e)) => e,
        _ => r.latency_ms,
    };

    let max_throughput = reports.iter().map(throughput).fold(1.0, f64::max);
    line_panel(
        &panels[0],
        x_desc,
        reports.iter().map(x),
        &format!("throughput ({throughput_label})"),
        false,
        0.0..max_throughput * 1.15,
        &[(
            throughput_label,
            &BLUE,
            reports.iter().map(throughput).collect(),
        )],
    )?;

    let lowest = reports
        .iter()
        .map(|r| latency(r).p50)
        .fold(f64::MAX, f64::min)
        .max(0.001);
    let highest = reports
        .iter()
        .map(|r| latency(r).p99)
        .fold(lowest, f64::max);
    line_panel(
        &panels[1],
        x_desc,
        reports.iter().map(x),
        if webhook {
            "ingest→delivery latency (ms, log scale)"
        } else {
            "latency (ms, log scale)"
        },
        true,
        lowest / 2.0..highest * 2.0,
        &[
            (
                "p99",
                &RED,
                reports.iter().map(|r| latency(r).p99.max(0.001)).collect(),
            ),
            (
                "p50",
                &MAGENTA,
                reports.iter().map(|r| latency(r).p50.max(0.001)).collect(),
            ),
        ],
    )?;

    line_panel(
        &panels[2],
        x_desc,
        reports.iter().map(x),
        if webhook {
            "success (% of expected deliveries that arrived)"
        } else {
            "success (% of requests answered 2xx)"
        },
        false,
        0.0..105.0,
        &[(
            "success %",
            &DARK_GREEN,
            reports.iter().map(|r| r.success_pct).collect(),
        )],
    )?;
    root.present()?;
    Ok(())
}

/// One panel: x is the load (log scale, a tick at each swept value), one line per
/// series.
fn line_panel(
    area: &Panel<'_>,
    x_desc: &str,
    xs: impl Iterator<Item = f64>,
    caption: &str,
    log_y: bool,
    y_range: std::ops::Range<f64>,
    series: &[(&str, &RGBColor, Vec<f64>)],
) -> Result<(), Failure> {
    let xs: Vec<f64> = xs.map(|x| x.max(1.0)).collect();
    let x_min = xs.iter().copied().fold(f64::MAX, f64::min);
    let x_max = xs.iter().copied().fold(1.0, f64::max);
    let x_range = ((x_min / 1.5)..(x_max * 1.5))
        .log_scale()
        .with_key_points(xs.clone());
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80);
    if log_y {
        let mut chart = builder.build_cartesian_2d(x_range, y_range.log_scale())?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v}"))
            .draw()?;
        draw_series(&mut chart, &xs, series)?;
    } else {
        let mut chart = builder.build_cartesian_2d(x_range, y_range)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        draw_series(&mut chart, &xs, series)?;
    }
    Ok(())
}

fn draw_series<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    xs: &[f64],
    series: &[(&str, &RGBColor, Vec<f64>)],
) -> Result<(), Failure>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    // A panel's caption names its one series; only several need a legend.
    let legend = series.len() > 1;
    for (name, color, ys) in series {
        let color = **color;
        let points: Vec<(f64, f64)> = xs.iter().copied().zip(ys.iter().copied()).collect();
        let line = chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
        if legend {
            line.label(*name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
    }
    if !legend {
        return Ok(());
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
