//! Figures of a denoising evaluation (`chromax denoise eval --plots DIR`): ROC and
//! precision–recall curves of the denoised peak probabilities against the noisy coverage as a
//! baseline score, and hexagonal-bin scatters of each signal against the clean track.

use super::{colour, plain_axes, render, sequential, thousands, Figure, FONT_FAMILY};
use crate::denoise::eval::{EvalData, EvalReport};
use crate::error::FileError;
use crate::eval::metrics::{rank_curves, RankCurves};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Curve points kept per line (enough for a smooth line at any figure size).
const CURVE_POINTS: usize = 600;
/// Hexagons across a scatter panel.
const HEX_COLUMNS: usize = 60;

/// ROC and PR panels, one line per scorer.
pub struct RocPrFigure {
    /// (label with its AUROC / AUPRC, curves)
    pub lines: Vec<(String, String, RankCurves)>,
}

/// One scatter panel: a signal against the clean track, binned into hexagons.
pub struct HexPanel {
    pub title: String,
    /// log(1 + value) ranges of both axes.
    pub max: f64,
    /// Centres (x, y) and counts of non-empty hexagons; the hexagon radius.
    pub cells: Vec<((f64, f64), u64)>,
    pub radius: f64,
}

/// Scatter panels side by side.
pub struct ScatterFigure {
    pub panels: Vec<HexPanel>,
}

impl RocPrFigure {
    pub fn new(data: &EvalData, report: &EvalReport) -> RocPrFigure {
        let mut lines = vec![(
            format!("denoised (AUROC {:.3})", report.denoised.auroc),
            format!("denoised (AUPRC {:.3})", report.denoised.auprc),
            rank_curves(&data.prob, &data.mask, CURVE_POINTS),
        )];
        if let (Some(noisy), Some(m)) = (&data.noisy, &report.noisy) {
            lines.push((
                format!("noisy (AUROC {:.3})", m.auroc),
                format!("noisy (AUPRC {:.3})", m.auprc),
                rank_curves(noisy, &data.mask, CURVE_POINTS),
            ));
        }
        RocPrFigure { lines }
    }
}

impl Figure for RocPrFigure {
    fn size(&self) -> (u32, u32) {
        (1000, 480)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let halves = root.split_evenly((1, 2));
        for (k, area) in halves.iter().enumerate() {
            let roc = k == 0;
            let mut chart = ChartBuilder::on(area)
                .caption(
                    if roc { "ROC: peaks, per base" } else { "Precision–recall: peaks, per base" },
                    (FONT_FAMILY, 16),
                )
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(55)
                .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
                .map_err(e)?;
            plain_axes(&mut chart.configure_mesh())
                .x_desc(if roc { "false-positive rate" } else { "recall" })
                .y_desc(if roc { "true-positive rate" } else { "precision" })
                .draw()
                .map_err(e)?;
            // What a random ranking scores: the diagonal, or the prevalence.
            let grey = RGBColor(150, 150, 150);
            let chance = match (roc, self.lines.first()) {
                (true, _) => vec![(0.0, 0.0), (1.0, 1.0)],
                (false, Some(l)) => vec![(0.0, l.2.prevalence), (1.0, l.2.prevalence)],
                (false, None) => Vec::new(),
            };
            chart
                .draw_series(LineSeries::new(chance, grey.stroke_width(1)))
                .map_err(e)?
                .label("random")
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], grey.stroke_width(1)));
            for (i, (roc_label, pr_label, curves)) in self.lines.iter().enumerate() {
                let c = colour(i);
                let points = if roc { curves.roc.clone() } else { curves.pr.clone() };
                chart
                    .draw_series(LineSeries::new(points, c.stroke_width(2)))
                    .map_err(e)?
                    .label(if roc { roc_label.as_str() } else { pr_label.as_str() })
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(2)));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font((FONT_FAMILY, 12))
                .position(if roc { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight })
                .draw()
                .map_err(e)?;
        }
        Ok(())
    }
}

/// Hexagon centres of a pointy-top grid of radius `r`: row j at y = 1.5·r·j, shifted by half
/// a hexagon on odd rows. The nearest centre of (x, y) is its hexagon.
fn hex_of(x: f64, y: f64, r: f64) -> (i64, i64) {
    let w = 3f64.sqrt() * r;
    let j = (y / (1.5 * r)).round() as i64;
    let mut best = (i64::MAX, i64::MAX);
    let mut best_d = f64::INFINITY;
    for jj in j - 1..=j + 1 {
        let shift = if jj.rem_euclid(2) == 1 { w / 2.0 } else { 0.0 };
        let i = ((x - shift) / w).round() as i64;
        for ii in i - 1..=i + 1 {
            let (cx, cy) = (ii as f64 * w + shift, jj as f64 * 1.5 * r);
            let d = (x - cx).powi(2) + (y - cy).powi(2);
            if d < best_d {
                best_d = d;
                best = (ii, jj);
            }
        }
    }
    best
}

impl HexPanel {
    /// `signal` against `clean`, both as log(1 + value), in hexagons.
    pub fn new(title: String, signal: &[f32], clean: &[f32]) -> HexPanel {
        let lg = |v: f32| (v.max(0.0) as f64).ln_1p();
        let max = signal.iter().chain(clean).map(|&v| lg(v)).fold(0.0f64, f64::max).max(1e-3);
        let r = max / HEX_COLUMNS as f64 / 3f64.sqrt();
        let mut counts: std::collections::HashMap<(i64, i64), u64> = std::collections::HashMap::new();
        for (&s, &c) in signal.iter().zip(clean) {
            *counts.entry(hex_of(lg(c), lg(s), r)).or_insert(0) += 1;
        }
        let w = 3f64.sqrt() * r;
        let mut cells: Vec<((f64, f64), u64)> = counts
            .into_iter()
            .map(|((i, j), n)| {
                let shift = if j.rem_euclid(2) == 1 { w / 2.0 } else { 0.0 };
                ((i as f64 * w + shift, j as f64 * 1.5 * r), n)
            })
            .collect();
        cells.sort_by(|a, b| a.0 .0.total_cmp(&b.0 .0).then(a.0 .1.total_cmp(&b.0 .1)));
        HexPanel { title, max, cells, radius: r }
    }
}

impl ScatterFigure {
    pub fn new(data: &EvalData, report: &EvalReport) -> ScatterFigure {
        let mut panels = Vec::new();
        if let (Some(noisy), Some(m)) = (&data.noisy, &report.noisy) {
            panels.push(HexPanel::new(format!("noisy vs clean (r = {:.3})", m.pearson), noisy, &data.clean));
        }
        panels.push(HexPanel::new(
            format!("denoised vs clean (r = {:.3})", report.denoised.pearson),
            &data.denoised,
            &data.clean,
        ));
        ScatterFigure { panels }
    }
}

impl Figure for ScatterFigure {
    fn size(&self) -> (u32, u32) {
        (500 * self.panels.len() as u32 + 90, 520)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let (plots, key) = root.split_horizontally(500 * self.panels.len() as u32);
        let areas = plots.split_evenly((1, self.panels.len()));
        let top = self.panels.iter().flat_map(|p| p.cells.iter().map(|c| c.1)).max().unwrap_or(1).max(2);
        let shade = |n: u64| sequential((n as f64).ln() / (top as f64).ln());
        for (panel, area) in self.panels.iter().zip(&areas) {
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, (FONT_FAMILY, 16))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(55)
                .build_cartesian_2d(0f64..panel.max * 1.02, 0f64..panel.max * 1.02)
                .map_err(e)?;
            plain_axes(&mut chart.configure_mesh())
                .x_desc("clean: log(1 + coverage)")
                .y_desc(if panel.title.starts_with("noisy") {
                    "noisy: log(1 + coverage)"
                } else {
                    "denoised: log(1 + value)"
                })
                .draw()
                .map_err(e)?;
            let r = panel.radius;
            chart
                .draw_series(panel.cells.iter().map(|&((cx, cy), n)| {
                    let corners: Vec<(f64, f64)> = (0..6)
                        .map(|k| {
                            let a = std::f64::consts::PI / 180.0 * (60.0 * k as f64 + 30.0);
                            (cx + r * a.cos(), cy + r * a.sin())
                        })
                        .collect();
                    Polygon::new(corners, shade(n).filled())
                }))
                .map_err(e)?;
            chart
                .draw_series(LineSeries::new(
                    [(0.0, 0.0), (panel.max, panel.max)],
                    RGBColor(120, 120, 120).stroke_width(1),
                ))
                .map_err(e)?;
        }
        // The colour key: bases per hexagon, on a log scale.
        let steps = 5;
        for k in 0..=steps {
            let n = ((top as f64).ln() * k as f64 / steps as f64).exp().round() as u64;
            let y = 90 + (steps - k) * 60;
            key.draw(&Rectangle::new([(12, y), (34, y + 22)], shade(n.max(1)).filled())).map_err(e)?;
            key.draw(&Text::new(thousands(n.max(1)), (40, y + 4), (FONT_FAMILY, 12))).map_err(e)?;
        }
        key.draw(&Text::new("bases", (12, 60), (FONT_FAMILY, 13))).map_err(e)?;
        Ok(())
    }
}

/// Writes the evaluation's figures into `dir` (created if needed): `roc_pr` and `scatter`,
/// each as .svg and .png. Returns the files written.
pub fn write_eval_plots(data: &EvalData, report: &EvalReport, dir: &Path) -> Result<Vec<PathBuf>, FileError> {
    std::fs::create_dir_all(dir).map_err(FileError::io(dir))?;
    let roc = RocPrFigure::new(data, report);
    let scatter = ScatterFigure::new(data, report);
    let mut written = Vec::new();
    for ext in ["svg", "png"] {
        let p = dir.join(format!("roc_pr.{ext}"));
        render(&roc, &p)?;
        written.push(p);
        let p = dir.join(format!("scatter.{ext}"));
        render(&scatter, &p)?;
        written.push(p);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_fall_in_the_hexagon_whose_centre_is_nearest() {
        let r = 1.0;
        let w = 3f64.sqrt();
        assert_eq!(hex_of(0.1, 0.1, r), (0, 0));
        assert_eq!(hex_of(w, 0.0, r), (1, 0));
        // Row 1 is shifted by half a hexagon.
        assert_eq!(hex_of(w / 2.0, 1.5, r), (0, 1));
        assert_eq!(hex_of(-w / 2.0 + 0.01, 1.5, r), (-1, 1));
        // Every point is within the hexagon's circumradius of its centre.
        for k in 0..1000 {
            let (x, y) = ((k * 37 % 101) as f64 / 7.0, (k * 53 % 97) as f64 / 9.0);
            let (i, j) = hex_of(x, y, r);
            let shift = if j.rem_euclid(2) == 1 { w / 2.0 } else { 0.0 };
            let (cx, cy) = (i as f64 * w + shift, j as f64 * 1.5);
            assert!(((x - cx).powi(2) + (y - cy).powi(2)).sqrt() <= r + 1e-9);
        }
    }
}
