//! Drawing a figure with plotters: one line chart, rendered twice from the same code, to an
//! SVG string and to an RGB buffer that `png` encodes.
//!
//! Text in the bitmap is rasterised by ab_glyph from DejaVu Sans, embedded by the `dejavu`
//! crate and registered once as plotters' `sans-serif`, so a machine without system fonts
//! (CI, containers) renders the same pixels (docs/adr/0008-figures.md). The SVG names the
//! `sans-serif` family and lets the viewer pick the face. Log axes plot log2(x) / log10(y) on a
//! linear axis and label the ticks with the values themselves. Nothing here depends on time or
//! on iteration order, so the same points give the same bytes.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::contract::StageError;
use crate::figure_points::Series;

/// Line colours, in series order (Tableau 10).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0xFF, 0x9D, 0xA7),
    RGBColor(0x9C, 0x75, 0x5F),
    RGBColor(0xBA, 0xB0, 0xAC),
];

/// Everything drawn.
pub struct Plot<'a> {
    pub title: &'a str,
    pub xlabel: &'a str,
    pub ylabel: &'a str,
    pub series: &'a [Series],
    /// Horizontal reference lines: (y, label).
    pub reference: &'a [(f64, String)],
    pub log_x: bool,
    pub log_y: bool,
    pub width: u32,
    pub height: u32,
}

fn register_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        // DejaVu Sans is a valid TrueType font; a failure here would show as missing text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

fn draw_err(e: impl std::fmt::Display) -> StageError {
    StageError::Failed(format!("cannot draw the figure: {e}"))
}

/// The figure as an SVG document.
pub fn svg(plot: &Plot<'_>) -> Result<String, StageError> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (plot.width, plot.height)).into_drawing_area();
        draw(&root, plot)?;
        root.present().map_err(draw_err)?;
    }
    Ok(out)
}

/// The figure as a PNG image (8-bit RGB).
pub fn png(plot: &Plot<'_>) -> Result<Vec<u8>, StageError> {
    register_font();
    let mut buf = vec![0u8; plot.width as usize * plot.height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (plot.width, plot.height)).into_drawing_area();
        draw(&root, plot)?;
        root.present().map_err(draw_err)?;
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, plot.width, plot.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(draw_err)?;
    w.write_image_data(&buf).map_err(draw_err)?;
    w.finish().map_err(draw_err)?;
    Ok(out)
}

/// A tick label: up to four significant digits, scientific outside [1e-3, 1e5).
pub fn tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{}", if v == 0.0 { 0.0 } else { v });
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.2e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// The axis range over `values`, padded by `pad` of its width. A single value gets ±0.5, but
/// non-negative values do not get an axis that goes far below 0 (a flat Pass@N of 0 is drawn
/// on [-0.025, 0.5], not [-0.5, 0.5]).
pub(crate) fn range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let top = hi + 0.5;
        let bottom = if lo >= 0.0 && lo - 0.5 < 0.0 { lo - (top - lo) * pad } else { lo - 0.5 };
        return (bottom, top);
    }
    let p = (hi - lo) * pad;
    (lo - p, hi + p)
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, plot: &Plot<'_>) -> Result<(), StageError> {
    let tx = |x: f64| if plot.log_x { x.log2() } else { x };
    let ty = |y: f64| if plot.log_y { y.log10() } else { y };
    let ok_y = |y: &f64| y.is_finite() && (!plot.log_y || *y > 0.0);
    let (x0, x1) = range(plot.series.iter().flat_map(|s| s.points.iter().map(|p| tx(p.x))), 0.03);
    let ys = plot.series.iter().flat_map(|s| s.points.iter().flat_map(|p| [Some(p.y), p.lo, p.hi]).flatten());
    let (y0, y1) = range(ys.chain(plot.reference.iter().map(|r| r.0)).filter(ok_y).map(ty), 0.05);

    root.fill(&WHITE).map_err(draw_err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(plot.title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_err)?;
    let fx = |v: &f64| tick(if plot.log_x { v.exp2() } else { *v });
    let fy = |v: &f64| tick(if plot.log_y { 10f64.powf(*v) } else { *v });
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(plot.xlabel)
        .y_desc(plot.ylabel)
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .bold_line_style(RGBColor(220, 220, 220))
        .light_line_style(RGBColor(242, 242, 242));
    // On a log axis, one label per whole power (1, 2, 4, ...), not at 1.414 and 2.828.
    let powers = |a: f64, b: f64| ((b.floor() - a.ceil()).max(0.0) as usize + 1).clamp(2, 12);
    if plot.log_x {
        mesh.x_labels(powers(x0, x1));
    }
    if plot.log_y {
        mesh.y_labels(powers(y0, y1));
    }
    mesh.draw().map_err(draw_err)?;

    for (i, s) in plot.series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        // One shaded polygon per run of consecutive points that have both bounds.
        let mut run: Vec<(f64, f64, f64)> = Vec::new();
        let bounded = s.points.iter().map(|p| match (p.lo, p.hi) {
            (Some(lo), Some(hi)) if ok_y(&lo) && ok_y(&hi) => Some((tx(p.x), ty(lo), ty(hi))),
            _ => None,
        });
        for b in bounded.chain(std::iter::once(None)) {
            match b {
                Some(t) => run.push(t),
                None if !run.is_empty() => {
                    let mut poly: Vec<(f64, f64)> = run.iter().map(|&(x, _, hi)| (x, hi)).collect();
                    poly.extend(run.iter().rev().map(|&(x, lo, _)| (x, lo)));
                    chart
                        .draw_series(std::iter::once(Polygon::new(poly, colour.mix(0.2).filled())))
                        .map_err(draw_err)?;
                    run.clear();
                }
                None => {}
            }
        }
        let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (tx(p.x), ty(p.y))).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .map_err(draw_err)?
            .label(s.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(draw_err)?;
    }
    for (y, label) in plot.reference.iter().filter(|r| ok_y(&r.0)) {
        let grey = RGBColor(80, 80, 80);
        let line = vec![(x0, ty(*y)), (x1, ty(*y))];
        chart
            .draw_series(DashedLineSeries::new(line, 6, 4, grey.stroke_width(1)))
            .map_err(draw_err)?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}
