//! Paper style for figures: sizes of one- and two-column figures, a colour-blind-safe palette
//! with a distinct marker per series, font sizes, and the bundled font.
//!
//! Sizes are in points (1/72 in): a one-column figure is 3.5 in wide, a two-column one 7.16 in
//! (IEEE and ACM column widths). SVG files are drawn at 96 px per inch (their physical size in a
//! browser or a LaTeX `\includegraphics` at natural size), PNG files at 300 dpi. Colours are
//! Okabe and Ito's palette ("Color Universal Design", 2008), which stays distinguishable under
//! the common colour-vision deficiencies; each series also has its own marker shape, so figures
//! survive grey-scale printing. Text uses DejaVu Sans, bundled (`reports/fonts/`, with its
//! licence), so PNG text renders the same on every machine (the PNG is the SVG rasterised with
//! this font alone); SVG text names the generic `sans-serif` family.

use plotters::style::RGBColor;
use std::sync::Once;

/// The bundled font.
pub const FONT: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");

/// Registers the bundled font as `sans-serif` (once per process).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled file is a valid TrueType font; a failure here would be a build defect.
        let _ = plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT);
    });
}

/// Okabe–Ito: black, orange, sky blue, bluish green, blue, vermillion, reddish purple, yellow.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0x00, 0x00, 0x00),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0xF0, 0xE4, 0x42),
];

/// Marker shapes, one per series (cycling with the palette).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
    Cross,
    Plus,
    Hexagon,
}

/// The marker of series `i`.
pub fn marker(i: usize) -> Marker {
    const ALL: [Marker; 8] = [
        Marker::Circle,
        Marker::Square,
        Marker::TriangleUp,
        Marker::Diamond,
        Marker::TriangleDown,
        Marker::Cross,
        Marker::Plus,
        Marker::Hexagon,
    ];
    ALL[i % ALL.len()]
}

/// The colour of series `i`.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Figure width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// One column: 3.5 in.
    Single,
    /// Two columns: 7.16 in.
    Double,
}

impl Width {
    /// Width and height in points.
    pub fn size_pt(self) -> (f64, f64) {
        match self {
            Width::Single => (3.5 * 72.0, 2.5 * 72.0),
            Width::Double => (7.16 * 72.0, 2.5 * 72.0),
        }
    }
}

/// Pixels per point in SVG (96 px per inch).
pub const SVG_SCALE: f64 = 96.0 / 72.0;
/// Pixels per point in PNG (300 dpi).
pub const PNG_SCALE: f64 = 300.0 / 72.0;

/// Font sizes, points (as rendered: plotters draws a font of size s with an em of s / 1.24, so
/// sizes are asked for times [`FONT_EM`]).
pub const TICK_PT: f64 = 7.0;
pub const LABEL_PT: f64 = 8.0;
pub const FONT_EM: f64 = 1.24;
/// Line width and marker radius, points.
pub const LINE_PT: f64 = 1.0;
pub const MARKER_PT: f64 = 2.2;
