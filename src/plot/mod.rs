//! Figures, drawn by chromax itself: SVG (text stays text, for editing and for the HTML
//! report) or PNG, by the output's extension.
//!
//! plotters draws both from one description ([`Figure`]); text is laid out with the bundled
//! DejaVu Sans, so a figure looks the same on a laptop without fonts and in CI. Colours come
//! from the Okabe–Ito palette, which stays distinct for the common colour-vision deficiencies.
//! Outputs appear whole or not at all (a temporary file renamed into place).

pub mod curves;
pub mod embedding;
pub mod eval;
pub mod heatmap;
pub mod logo;
pub mod report;
pub mod tracks;

use crate::error::FileError;
use crate::io::atomic::{write_atomically, AtomicFile};
use plotters::chart::MeshStyle;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// The file formats a figure is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    /// The format named by `path`'s extension.
    pub fn of(path: &Path) -> Result<Format, FileError> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(FileError::Argument(format!(
                "-o {}: a figure is written as .svg or .png (by the extension)",
                path.display()
            ))),
        }
    }
}

/// Okabe & Ito's palette (black first), distinct under the common colour-vision deficiencies.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(240, 228, 66),  // yellow
    RGBColor(0, 0, 0),       // black
];

/// The `i`-th colour of the palette (it repeats after eight).
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The font every figure's text is laid out with (DejaVu Sans; licence beside it).
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// The family name figures ask for.
pub const FONT_FAMILY: &str = "sans-serif";

fn register_font() -> Result<(), String> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "the bundled font could not be read".to_string())?;
            plotters::style::register_font(FONT_FAMILY, FontStyle::Bold, FONT)
                .map_err(|_| "the bundled font could not be read".to_string())
        })
        .clone()
}

/// Something that can be drawn on any of plotters' backends.
pub trait Figure {
    /// Width and height in pixels (SVG user units).
    fn size(&self) -> (u32, u32);
    /// Draws the figure on `area` (already white).
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

fn svg_text(figure: &impl Figure) -> Result<String, String> {
    register_font()?;
    let (w, h) = figure.size();
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        figure.draw(&root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(text)
}

/// `figure` as SVG text (for pages that hold figures inline).
pub fn svg_string(figure: &impl Figure) -> Result<String, FileError> {
    svg_text(figure).map_err(|e| FileError::Argument(format!("drawing a figure failed: {e}")))
}

fn axis_number(v: &f64) -> String {
    short_number(*v)
}

/// The axes every f64 × f64 chart shares: no light grid, short numbers, the figure font.
pub(crate) fn plain_axes<'m, 'a, 'b, DB: DrawingBackend>(
    mesh: &'m mut MeshStyle<'a, 'b, RangedCoordf64, RangedCoordf64, DB>,
) -> &'m mut MeshStyle<'a, 'b, RangedCoordf64, RangedCoordf64, DB> {
    mesh.light_line_style(TRANSPARENT)
        .x_label_formatter(&axis_number)
        .y_label_formatter(&axis_number)
        .label_style((FONT_FAMILY, 12))
        .axis_desc_style((FONT_FAMILY, 13))
}

/// Writes `figure` to `out` as SVG or PNG (by the extension), atomically.
pub fn render(figure: &impl Figure, out: &Path) -> Result<(), FileError> {
    let format = Format::of(out)?;
    register_font().map_err(|e| FileError::content(out, e))?;
    let (w, h) = figure.size();
    let failed = |e: String| FileError::content(out, format!("drawing the figure failed: {e}"));
    match format {
        Format::Svg => {
            let text = svg_text(figure).map_err(failed)?;
            write_atomically(out, |f| std::io::Write::write_all(f, text.as_bytes()))
        }
        Format::Png => {
            let mut pixels = vec![255u8; w as usize * h as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
                figure.draw(&root).map_err(failed)?;
                root.present().map_err(|e| failed(e.to_string()))?;
            }
            let file = AtomicFile::new(out)?;
            {
                let mut w8 = file.create()?;
                let mut encoder = png::Encoder::new(&mut w8, w, h);
                encoder.set_color(png::ColorType::Rgb);
                encoder.set_depth(png::BitDepth::Eight);
                let io = |e: png::EncodingError| FileError::content(out, format!("writing the PNG failed: {e}"));
                let mut writer = encoder.write_header().map_err(io)?;
                writer.write_image_data(&pixels).map_err(io)?;
                writer.finish().map_err(io)?;
                std::io::Write::flush(&mut w8).map_err(FileError::io(out))?;
            }
            file.commit()
        }
    }
}

/// A value as an axis shows it: no trailing zeros, at most 3 significant decimals.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    let text = if a == 0.0 {
        "0".to_string()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text };
    // A value that rounds to zero from below is 0, not "-0".
    if text == "-0" {
        "0".to_string()
    } else {
        text
    }
}

/// A sequential colour for `t` in 0..1, light to dark (viridis' ends and middle,
/// interpolated): readable in grey and by colour-blind readers.
pub fn sequential(t: f64) -> RGBColor {
    const STOPS: [(f64, (f64, f64, f64)); 5] = [
        (0.0, (253.0, 231.0, 37.0)),
        (0.25, (94.0, 201.0, 98.0)),
        (0.5, (33.0, 145.0, 140.0)),
        (0.75, (59.0, 82.0, 139.0)),
        (1.0, (68.0, 1.0, 84.0)),
    ];
    let t = t.clamp(0.0, 1.0);
    let k = STOPS.iter().position(|s| s.0 >= t).unwrap_or(STOPS.len() - 1).max(1);
    let (a, b) = (STOPS[k - 1], STOPS[k]);
    let f = (t - a.0) / (b.0 - a.0);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.1 .0, b.1 .0), mix(a.1 .1, b.1 .1), mix(a.1 .2, b.1 .2))
}

/// `n` with thousands separators (axis labels and titles).
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_extension() {
        assert_eq!(Format::of(Path::new("a/fig.SVG")).ok(), Some(Format::Svg));
        assert_eq!(Format::of(Path::new("fig.png")).ok(), Some(Format::Png));
        let e = Format::of(Path::new("fig.pdf")).expect_err("pdf");
        assert!(e.to_string().contains(".svg or .png"), "{e}");
    }

    #[test]
    fn the_sequential_scale_runs_light_to_dark() {
        let lum = |c: RGBColor| 0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64;
        let l: Vec<f64> = (0..=10).map(|k| lum(sequential(k as f64 / 10.0))).collect();
        assert!(l.windows(2).all(|w| w[1] < w[0]), "{l:?}");
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(450.0), "450");
        assert_eq!(short_number(-0.00004), "0");
        assert_eq!(short_number(1.5), "1.5");
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(50_818_468), "50,818,468");
    }
}
