//! A small figure model — panels of series of points, with optional 95 % intervals — and its
//! drawing with plotters into SVG, rasterised into PNG by resvg (with the bundled font).
//!
//! The legend is drawn in its own band above the panels, never over the data. Axes are linear
//! or logarithmic as the panel says (logarithmic only when every value is positive). Files are
//! written under a temporary name and renamed, like every other output.

use super::style::{self, FONT_EM, LABEL_PT, LINE_PT, MARKER_PT, Marker, PNG_SCALE, SVG_SCALE, TICK_PT, Width};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::element::{DynElement, IntoDynElement};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// One point, with its 95 % interval if it has one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub err: Option<(f64, f64)>,
}

/// Where a series shows its marker.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Markers {
    /// At every point (few points: a value per load level).
    All,
    /// At about this many points, evenly spread (dense lines: CDFs, time series).
    Spread(usize),
    /// A line without markers (a reference line).
    None,
    /// Markers without a line (a scatter).
    Only,
}

/// A line.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    /// Colour and marker index.
    pub style: usize,
    pub points: Vec<Point>,
    pub markers: Markers,
}

/// One plot area.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    /// Start a linear y axis at zero.
    pub y_from_zero: bool,
    /// Tick labels for x = 0, 1, 2, … (a categorical axis).
    pub x_categories: Option<Vec<String>>,
    pub series: Vec<Series>,
}

/// A figure: panels side by side under one legend.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// File name without extension.
    pub name: String,
    pub width: Width,
    pub panels: Vec<Panel>,
    /// Letter the panels (a), (b), … at their top left (for a figure with more than one).
    pub letters: bool,
}

/// Writes `fig` as `<name>.svg` and `<name>.png` into `dir`; returns the two paths.
pub fn render(fig: &Figure, dir: &Path) -> Result<Vec<PathBuf>, String> {
    style::register_font();
    let (w, h) = fig.width.size_pt();
    let size = |scale: f64| ((w * scale).round() as u32, (h * scale).round() as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size(SVG_SCALE)).into_drawing_area();
        draw(&root, fig, SVG_SCALE).and_then(|_| root.present().map_err(|e| e.to_string()))?;
    }
    let png = rasterise(&svg, size(PNG_SCALE), PNG_SCALE / SVG_SCALE)
        .map_err(|e| format!("drawing {}.png: {e}", fig.name))?;
    let mut written = Vec::new();
    for (ext, bytes) in [("svg", svg.as_bytes()), ("png", png.as_slice())] {
        let dest = dir.join(format!("{}.{ext}", fig.name));
        crate::atomic::write_atomic(&dest, bytes).map_err(|e| format!("{}: {e}", dest.display()))?;
        written.push(dest);
    }
    Ok(written)
}

/// The SVG drawn into a PNG of `size` pixels, scaled by `zoom`, its text laid out with the
/// bundled font (the SVG's `sans-serif`) and nothing from the system.
fn rasterise(svg: &str, size: (u32, u32), zoom: f64) -> Result<Vec<u8>, String> {
    use resvg::{tiny_skia, usvg};
    static FONTS: std::sync::OnceLock<std::sync::Arc<usvg::fontdb::Database>> = std::sync::OnceLock::new();
    let fonts = FONTS.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(style::FONT.to_vec());
        db.set_sans_serif_family("DejaVu Sans");
        std::sync::Arc::new(db)
    });
    let opts = usvg::Options {
        fontdb: fonts.clone(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &opts).map_err(|e| e.to_string())?;
    let mut pixmap = tiny_skia::Pixmap::new(size.0, size.1).ok_or("a figure of zero size")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    let zoom = zoom as f32;
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(zoom, zoom),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| e.to_string())
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// A marker of series `style` at `at` (in the coordinates of whatever it is drawn on), radius
/// `r` pixels.
fn marker<'a, DB: DrawingBackend + 'a, C: Copy + 'a>(at: C, style: usize, r: i32) -> DynElement<'a, DB, C> {
    let c = style::colour(style);
    let (fill, line) = (c.filled(), c.stroke_width((r / 2).max(1) as u32));
    let poly = |pts: Vec<(i32, i32)>| (EmptyElement::at(at) + Polygon::new(pts, fill)).into_dyn();
    match style::marker(style) {
        Marker::Circle => (EmptyElement::at(at) + Circle::new((0, 0), r, fill)).into_dyn(),
        Marker::Square => {
            let q = (r as f64 * 0.85) as i32;
            (EmptyElement::at(at) + Rectangle::new([(-q, -q), (q, q)], fill)).into_dyn()
        }
        Marker::TriangleUp => poly(vec![(0, -r - r / 4), (r, r * 3 / 4), (-r, r * 3 / 4)]),
        Marker::TriangleDown => poly(vec![(0, r + r / 4), (r, -r * 3 / 4), (-r, -r * 3 / 4)]),
        Marker::Diamond => poly(vec![(0, -r - r / 4), (r, 0), (0, r + r / 4), (-r, 0)]),
        Marker::Hexagon => {
            let pts = (0..6)
                .map(|k| {
                    let a = std::f64::consts::PI / 3.0 * f64::from(k);
                    ((r as f64 * a.cos()).round() as i32, (r as f64 * a.sin()).round() as i32)
                })
                .collect();
            poly(pts)
        }
        Marker::Cross => (EmptyElement::at(at)
            + PathElement::new(vec![(-r, -r), (r, r)], line)
            + PathElement::new(vec![(-r, r), (r, -r)], line))
        .into_dyn(),
        Marker::Plus => (EmptyElement::at(at)
            + PathElement::new(vec![(-r, 0), (r, 0)], line)
            + PathElement::new(vec![(0, -r), (0, r)], line))
        .into_dyn(),
    }
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, fig: &Figure, s: f64) -> Result<(), String> {
    let px = |pt: f64| (pt * s).round() as i32;
    root.fill(&WHITE).map_err(err)?;
    // The legend: every series label once, in order, wrapped into rows above the panels.
    let mut entries: Vec<(&str, usize, Markers)> = Vec::new();
    for p in &fig.panels {
        for ser in &p.series {
            if !entries.iter().any(|(l, _, _)| *l == ser.label) {
                entries.push((&ser.label, ser.style, ser.markers));
            }
        }
    }
    let font = TextStyle::from(("sans-serif", LABEL_PT * FONT_EM * s).into_font());
    let (width, _) = root.dim_in_pixel();
    let (sample, gap, spacing, row_h) = (px(14.0), px(4.0), px(10.0), px(12.0));
    let mut rows: Vec<Vec<(i32, &str, usize, Markers)>> = vec![Vec::new()];
    let mut x = px(8.0);
    for (label, st, kind) in &entries {
        let (tw, _) = root.estimate_text_size(label, &font).map_err(err)?;
        let w = sample + gap + tw as i32;
        if x + w > width as i32 - px(4.0) && !rows.last().expect("a row").is_empty() {
            rows.push(Vec::new());
            x = px(8.0);
        }
        rows.last_mut().expect("a row").push((x, label, *st, *kind));
        x += w + spacing;
    }
    let band = if entries.is_empty() {
        0
    } else {
        rows.len() as i32 * row_h + px(4.0)
    };
    let (top, body) = root.split_vertically(band as u32);
    for (i, row) in rows.iter().enumerate() {
        let yc = px(3.0) + i as i32 * row_h + row_h / 2;
        for &(x, label, st, kind) in row {
            let c = style::colour(st);
            if kind != Markers::Only {
                top.draw(&PathElement::new(
                    vec![(x, yc), (x + sample, yc)],
                    c.stroke_width(px(LINE_PT).max(1) as u32),
                ))
                .map_err(err)?;
            }
            if kind != Markers::None {
                top.draw(&marker::<DB, (i32, i32)>((x + sample / 2, yc), st, px(MARKER_PT)))
                    .map_err(err)?;
            }
            let pos = Pos::new(HPos::Left, VPos::Center);
            top.draw(&Text::new(label.to_string(), (x + sample + gap, yc), font.pos(pos)))
                .map_err(err)?;
        }
    }
    let areas = body.split_evenly((1, fig.panels.len().max(1)));
    for (k, (area, panel)) in areas.iter().zip(&fig.panels).enumerate() {
        draw_panel_axes(area, panel, s)?;
        if fig.letters && fig.panels.len() > 1 {
            let letter = format!("({})", char::from(b'a' + (k % 26) as u8));
            let font = TextStyle::from(("sans-serif", LABEL_PT * FONT_EM * s).into_font());
            area.draw(&Text::new(
                letter,
                (px(2.0), px(2.0)),
                font.pos(Pos::new(HPos::Left, VPos::Top)),
            ))
            .map_err(err)?;
        }
    }
    Ok(())
}

/// Axis ranges from the data: logarithmic only when asked, every value is positive and they
/// span at least a factor of 20 (below that a log axis shows too few ticks to read).
fn range(values: &[f64], log: bool, from_zero: bool) -> (f64, f64, bool) {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (mut lo, mut hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if finite.is_empty() {
        (lo, hi) = (0.0, 1.0);
    }
    if log && lo > 0.0 && hi / lo >= 20.0 {
        let steps = log_steps(lo, hi);
        return (
            snap_log(lo / 1.05, steps, false),
            snap_log(hi * 1.05, steps, true),
            true,
        );
    }
    if from_zero {
        lo = lo.min(0.0);
    }
    if hi - lo < 1e-12 {
        // A constant series: around it, or from zero up when it is zero and the axis starts at
        // zero (never a −1…1 axis for a quantity that cannot be negative).
        if from_zero && hi == 0.0 {
            return (0.0, 1.0, false);
        }
        let pad = if hi.abs() > 0.0 { hi.abs() * 0.1 } else { 1.0 };
        return (lo - pad, hi + pad, false);
    }
    let pad = (hi - lo) * 0.06;
    (if from_zero && lo >= 0.0 { lo } else { lo - pad }, hi + pad, false)
}

fn draw_panel_axes<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel, s: f64) -> Result<(), String> {
    let xs: Vec<f64> = p.series.iter().flat_map(|se| se.points.iter().map(|q| q.x)).collect();
    // The range follows the points; intervals widen it, except a lower bound at or below zero on
    // a log axis (a skewed quantity with few seeds), which is clipped at the axis instead.
    let ys: Vec<f64> = p
        .series
        .iter()
        .flat_map(|se| {
            se.points.iter().flat_map(|q| {
                let lo = q.err.map(|e| e.0).filter(|&v| !p.y_log || v > 0.0);
                [Some(q.y), lo, q.err.map(|e| e.1)]
            })
        })
        .flatten()
        .collect();
    let (x0, x1, xlog) = match &p.x_categories {
        Some(c) => (-0.5, c.len() as f64 - 0.5, false),
        None => range(&xs, p.x_log, false),
    };
    let (y0, y1, ylog) = range(&ys, p.y_log, p.y_from_zero);
    let xl = || (x0..x1).log_scale().with_key_points(log_ticks(x0, x1));
    let yl = || (y0..y1).log_scale().with_key_points(log_ticks(y0, y1));
    match (xlog, ylog) {
        (false, false) => draw_panel(area, p, s, x0..x1, y0..y1),
        (true, false) => draw_panel(area, p, s, xl(), y0..y1),
        (false, true) => draw_panel(area, p, s, x0..x1, yl()),
        (true, true) => draw_panel(area, p, s, xl(), yl()),
    }
}

/// The tick mantissas of a logarithmic axis over [lo, hi]: 1, 2, 5 × 10^k, or every digit when
/// that gives fewer than four ticks, or powers of ten alone when it gives more than ten.
fn log_steps(lo: f64, hi: f64) -> &'static [f64] {
    const COARSE: &[f64] = &[1.0, 2.0, 5.0];
    let n = ticks_within(lo, hi, COARSE).len();
    if n > 10 {
        &[1.0]
    } else if n >= 4 {
        COARSE
    } else {
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    }
}

fn ticks_within(lo: f64, hi: f64, steps: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi * (1.0 + 1e-9) {
        for &m in steps {
            let v = m * decade;
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// The tick nearest `v` below it (or above it, `up`) among `steps` × 10^k: a log axis ends on
/// labelled ticks, so that every curve lies between two labels.
fn snap_log(v: f64, steps: &[f64], up: bool) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    let candidates = [decade / 10.0, decade, decade * 10.0]
        .into_iter()
        .flat_map(|d| steps.iter().map(move |m| m * d));
    if up {
        candidates
            .filter(|&c| c >= v * (1.0 - 1e-12))
            .fold(f64::INFINITY, f64::min)
    } else {
        candidates.filter(|&c| c <= v * (1.0 + 1e-12)).fold(0.0, f64::max)
    }
}

/// Ticks of a logarithmic axis over [lo, hi] (see [`log_steps`]).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    ticks_within(lo, hi, log_steps(lo, hi))
}

/// A tick label: short, without trailing zeros.
pub fn tick(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.0e}");
    }
    let t = format!("{v:.4}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    t.to_string()
}

fn draw_panel<DB, X, Y>(area: &DrawingArea<DB, Shift>, p: &Panel, s: f64, x: X, y: Y) -> Result<(), String>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let px = |pt: f64| (pt * s).round() as i32;
    let mut chart = ChartBuilder::on(area)
        .margin_top(px(4.0))
        .margin_right(px(12.0))
        .margin_left(px(2.0))
        .margin_bottom(px(2.0))
        .x_label_area_size(px(28.0))
        .y_label_area_size(px(44.0))
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    let tick_font = ("sans-serif", TICK_PT * FONT_EM * s).into_font();
    let label_font = ("sans-serif", LABEL_PT * FONT_EM * s).into_font();
    let (label_len, _) = area
        .estimate_text_size(&p.y_label, &TextStyle::from(label_font.clone()))
        .map_err(err)?;
    let plot_height = chart.plotting_area().dim_in_pixel().1;
    if label_len > plot_height + px(8.0) as u32 {
        return Err(format!(
            "the y label `{}` is longer than its panel is high (it would run into the legend); shorten it",
            p.y_label
        ));
    }
    let categories = p.x_categories.clone();
    let x_fmt = move |v: &f64| match &categories {
        Some(c) => {
            let k = v.round();
            if (v - k).abs() < 1e-6 && k >= 0.0 && (k as usize) < c.len() {
                c[k as usize].clone()
            } else {
                String::new()
            }
        }
        None => tick(*v),
    };
    let y_fmt = |v: &f64| tick(*v);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .label_style(tick_font)
        .axis_desc_style(label_font)
        .bold_line_style(RGBColor(225, 225, 225).stroke_width(1))
        .light_line_style(TRANSPARENT)
        .axis_style(BLACK.stroke_width(px(0.6).max(1) as u32))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .y_labels(6);
    if let Some(c) = &p.x_categories {
        mesh.x_labels(c.len().max(2));
    } else {
        mesh.x_labels(6);
    }
    mesh.draw().map_err(err)?;
    let line_w = px(LINE_PT).max(1) as u32;
    for ser in &p.series {
        let c = style::colour(ser.style);
        if ser.markers != Markers::Only {
            chart
                .draw_series(LineSeries::new(
                    ser.points.iter().map(|q| (q.x, q.y)),
                    c.stroke_width(line_w),
                ))
                .map_err(err)?;
        }
        let n = ser.points.len();
        let every = match ser.markers {
            Markers::All | Markers::Only => 1,
            Markers::Spread(k) => (n / k.max(1)).max(1),
            Markers::None => usize::MAX,
        };
        // Offset each series' markers a little along dense lines, so that overlapping lines
        // still show every marker.
        let offset = match ser.markers {
            Markers::All | Markers::Only => 0,
            Markers::Spread(_) => (ser.style * every / 5) % every,
            Markers::None => usize::MAX,
        };
        let span = chart.y_range();
        // Interval bars and markers in pixels: map each point, draw on the plotting area's
        // pixel grid (plotters' own error bar draws a circle of its own at the mean).
        let plot = chart.plotting_area();
        let pixels = plot.strip_coord_spec();
        let (bx, by) = pixels.get_base_pixel();
        let cap = px(2.0);

        for q in &ser.points {
            let Some((lo, hi)) = q.err else { continue };
            let (lo, hi) = (lo.max(span.start), hi.min(span.end));
            let (x, y0) = plot.map_coordinate(&(q.x, lo));
            let (_, y1) = plot.map_coordinate(&(q.x, hi));
            let (x, y0, y1) = (x - bx, y0 - by, y1 - by);
            for seg in [
                vec![(x, y0), (x, y1)],
                vec![(x - cap, y0), (x + cap, y0)],
                vec![(x - cap, y1), (x + cap, y1)],
            ] {
                pixels
                    .draw(&PathElement::new(seg, c.stroke_width(line_w)))
                    .map_err(err)?;
            }
        }
        for (_, q) in ser.points.iter().enumerate().filter(|(i, _)| i % every == offset) {
            let (ax, ay) = plot.map_coordinate(&(q.x, q.y));
            pixels
                .draw(&marker::<DB, (i32, i32)>((ax - bx, ay - by), ser.style, px(MARKER_PT)))
                .map_err(err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(0.5), "0.5");
        assert_eq!(tick(120.0), "120");
        assert_eq!(tick(0.0125), "0.0125");
        assert_eq!(tick(1e-4), "1e-4");
    }

    #[test]
    fn log_axes_get_readable_ticks() {
        assert_eq!(log_ticks(0.02, 0.7), [0.02, 0.05, 0.1, 0.2, 0.5]);
        assert_eq!(log_ticks(0.025, 0.06).len(), 4);
    }

    /// Every curve lies between two labelled ticks: a log axis ends on ticks.
    #[test]
    fn log_axes_end_on_labelled_ticks() {
        for data in [
            [0.0246, 0.55],
            [0.0246, 1.05],
            [3.0, 900.0],
            [0.012, 4000.0],
            [1.0, 25.0],
        ] {
            let (lo, hi, log) = range(&data, true, false);
            assert!(log, "{data:?}");
            let ticks = log_ticks(lo, hi);
            let (first, last) = (ticks[0], *ticks.last().unwrap());
            assert!(
                first <= data[0] && last >= data[1],
                "{data:?}: axis {lo}..{hi}, ticks {ticks:?}"
            );
            assert!(
                (first - lo).abs() < 1e-9 * lo && (last - hi).abs() < 1e-9 * hi,
                "{data:?}: {ticks:?}"
            );
            assert!(ticks.len() >= 3, "{data:?}: {ticks:?}");
        }
    }

    /// A y label longer than its panel is high would run into the legend: refused.
    #[test]
    fn a_y_label_that_cannot_fit_is_refused() {
        let panel = |y_label: &str| Panel {
            x_label: "x".into(),
            y_label: y_label.into(),
            x_log: false,
            y_log: false,
            y_from_zero: true,
            x_categories: None,
            series: vec![Series {
                label: "s".into(),
                style: 0,
                points: vec![
                    Point {
                        x: 0.0,
                        y: 1.0,
                        err: None,
                    },
                    Point {
                        x: 1.0,
                        y: 2.0,
                        err: None,
                    },
                ],
                markers: Markers::All,
            }],
        };
        let dir = std::env::temp_dir().join(format!("gpushare-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fig = |label: &str| Figure {
            name: "f".into(),
            width: Width::Single,
            panels: vec![panel(label)],
            letters: false,
        };
        assert!(render(&fig("y (s)"), &dir).is_ok());
        let e = render(
            &fig("a very long description of what the y axis shows, in words (units)"),
            &dir,
        )
        .unwrap_err();
        assert!(e.contains("longer than its panel is high"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A quantity that is zero throughout (cold starts of a warm system) gets 0 to 1, not −1 to 1.
    #[test]
    fn an_all_zero_series_from_zero_gets_an_upward_axis() {
        assert_eq!(range(&[0.0, 0.0, 0.0], false, true), (0.0, 1.0, false));
        let (lo, hi, _) = range(&[3.0, 3.0], false, false);
        assert!(lo < 3.0 && hi > 3.0);
    }

    #[test]
    fn ranges_pad_and_choose_log_only_for_positive_data() {
        assert!(range(&[1.0, 100.0], true, false).2);
        assert!(!range(&[0.0, 100.0], true, false).2);
        assert!(!range(&[1.0, 10.0], true, false).2);
        let (lo, hi, _) = range(&[2.0, 4.0], false, true);
        assert!(lo == 0.0 && hi > 4.0);
    }
}
