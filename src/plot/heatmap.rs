//! `chromax plot tf-activity`: TF activity (the z-scores `chromax sc tf-activity` writes) as a
//! heatmap of groups × the motifs that vary most between them — each cell the mean z-score
//! of the group's cells, on a diverging scale centred at 0.

use super::{render, short_number, Figure, FONT_FAMILY};
use crate::error::FileError;
use crate::sc::groups::{GroupSource, Groups};
use crate::sc::model::open_sc_model;
use crate::Error;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Cells × motifs z-scores, as `sc tf-activity` writes them beside its .h5ad.
#[derive(Debug, Clone, PartialEq)]
pub struct TfScores {
    pub barcodes: Vec<String>,
    pub motifs: Vec<String>,
    /// Row-major, cells × motifs.
    pub z: Vec<f64>,
}

impl TfScores {
    /// Reads the TSV: `barcode<TAB>motif…` then a row per cell.
    pub fn read(path: &Path) -> Result<TfScores, FileError> {
        let text = std::fs::read_to_string(path).map_err(FileError::io(path))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
        if header.first() != Some(&"barcode") || header.len() < 2 {
            return Err(FileError::line(
                path,
                1,
                "expected the header `barcode<TAB>motif…` of the .tsv `chromax sc tf-activity` writes",
            ));
        }
        let motifs: Vec<String> = header[1..].iter().map(|s| s.to_string()).collect();
        let (mut barcodes, mut z) = (Vec::new(), Vec::new());
        for (n, line) in lines.enumerate() {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() != header.len() {
                return Err(FileError::line(
                    path,
                    n as u64 + 2,
                    format!("{} fields where the header has {}", f.len(), header.len()),
                ));
            }
            barcodes.push(f[0].to_string());
            for (k, v) in f[1..].iter().enumerate() {
                let x: f64 = v.parse().map_err(|_| {
                    FileError::line(path, n as u64 + 2, format!("{}: '{v}' is not a number", motifs[k]))
                })?;
                z.push(x);
            }
        }
        if barcodes.is_empty() {
            return Err(FileError::content(path, "no cells"));
        }
        Ok(TfScores { barcodes, motifs, z })
    }
}

/// The heatmap: rows are groups, columns motifs.
pub struct HeatmapFigure {
    pub title: String,
    pub groups: Vec<String>,
    pub motifs: Vec<String>,
    /// Row-major, groups × motifs.
    pub values: Vec<f64>,
}

/// Groups × motifs mean z-scores, keeping the `top` motifs whose group means vary most.
pub fn group_means(scores: &TfScores, groups: &Groups, index: &[Option<usize>], top: usize) -> HeatmapFigure {
    let m = scores.motifs.len();
    let g = groups.names.len();
    let mut sums = vec![0.0f64; g * m];
    let mut counts = vec![0usize; g];
    for (row, gi) in index.iter().enumerate() {
        if let Some(gi) = *gi {
            counts[gi] += 1;
            for k in 0..m {
                sums[gi * m + k] += scores.z[row * m + k];
            }
        }
    }
    let means: Vec<f64> = (0..g * m).map(|i| sums[i] / counts[i / m].max(1) as f64).collect();
    let variance = |k: usize| {
        let col: Vec<f64> = (0..g).map(|gi| means[gi * m + k]).collect();
        let mu = col.iter().sum::<f64>() / g as f64;
        col.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / g as f64
    };
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| variance(b).total_cmp(&variance(a)).then(a.cmp(&b)));
    order.truncate(top.max(1));
    HeatmapFigure {
        title: String::new(),
        groups: groups.names.clone(),
        motifs: order.iter().map(|&k| scores.motifs[k].clone()).collect(),
        values: (0..g).flat_map(|gi| order.iter().map(move |&k| (gi, k))).map(|(gi, k)| means[gi * m + k]).collect(),
    }
}

/// A diverging colour for `t` in −1..1: blue (Okabe–Ito) through white to vermillion.
fn diverging(t: f64) -> RGBColor {
    let t = t.clamp(-1.0, 1.0);
    let (end, f) = if t < 0.0 { ((0.0, 114.0, 178.0), -t) } else { ((213.0, 94.0, 0.0), t) };
    let mix = |e: f64| (255.0 + (e - 255.0) * f).round() as u8;
    RGBColor(mix(end.0), mix(end.1), mix(end.2))
}

const CELL: u32 = 34;
const LEFT: u32 = 160;
const TOP: u32 = 60;
const BOTTOM: u32 = 130;
const KEY: u32 = 110;

impl Figure for HeatmapFigure {
    fn size(&self) -> (u32, u32) {
        (LEFT + CELL * self.motifs.len() as u32 + KEY + 20, TOP + CELL * self.groups.len() as u32 + BOTTOM)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let (w, _) = self.size();
        root.draw(&Text::new(
            self.title.clone(),
            (w as i32 / 2, 20),
            TextStyle::from((FONT_FAMILY, 16).into_font()).pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(e)?;
        let limit = self.values.iter().map(|v| v.abs()).fold(0.0f64, f64::max).max(1e-9);
        let m = self.motifs.len();
        for (gi, name) in self.groups.iter().enumerate() {
            let y = (TOP + CELL * gi as u32) as i32;
            root.draw(&Text::new(
                name.clone(),
                (LEFT as i32 - 8, y + CELL as i32 / 2),
                TextStyle::from((FONT_FAMILY, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(e)?;
            for k in 0..m {
                let x = (LEFT + CELL * k as u32) as i32;
                let v = self.values[gi * m + k];
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL as i32 - 1, y + CELL as i32 - 1)],
                    diverging(v / limit).filled(),
                ))
                .map_err(e)?;
            }
        }
        // Motif names, turned to read upwards, under their columns.
        let bottom = (TOP + CELL * self.groups.len() as u32) as i32 + 6;
        for (k, motif) in self.motifs.iter().enumerate() {
            let x = (LEFT + CELL * k as u32 + CELL / 2) as i32;
            let style = TextStyle::from((FONT_FAMILY, 12).into_font())
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(motif.clone(), (x, bottom), style)).map_err(e)?;
        }
        // The key: mean z-score, symmetric around 0.
        let kx = (LEFT + CELL * m as u32 + 24) as i32;
        root.draw(&Text::new("mean z-score", (kx, TOP as i32 - 18), (FONT_FAMILY, 12))).map_err(e)?;
        for s in 0..=8 {
            let t = 1.0 - s as f64 / 4.0;
            let y = TOP as i32 + s * 18;
            root.draw(&Rectangle::new([(kx, y), (kx + 18, y + 17)], diverging(t).filled())).map_err(e)?;
            if s % 2 == 0 {
                root.draw(&Text::new(short_number(t * limit), (kx + 24, y + 3), (FONT_FAMILY, 11))).map_err(e)?;
            }
        }
        Ok(())
    }
}

/// The heatmap of `scores` (the .tsv of `sc tf-activity`) by the model's `groups`
/// (a file or `obs:KEY`): the `top` motifs whose group means vary most.
pub fn tf_activity_figure(model: &Path, scores: &Path, groups: &str, top: usize) -> Result<HeatmapFigure, Error> {
    let (config, cells) = open_sc_model(model)?;
    let scores_t = TfScores::read(scores)?;
    let matrix = config.training.get("matrix").and_then(|m| m.as_str()).map(std::path::PathBuf::from);
    let groups = Groups::read(&GroupSource::parse(groups), &cells, matrix.as_deref())?;
    // The scores' rows in the model's cell order: by barcode.
    let of_cell: std::collections::HashMap<&str, usize> =
        cells.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let mut group_of = vec![None; cells.len()];
    for (gi, members) in groups.members.iter().enumerate() {
        for &c in members {
            group_of[c as usize] = Some(gi);
        }
    }
    let mut index = Vec::with_capacity(scores_t.barcodes.len());
    for (row, b) in scores_t.barcodes.iter().enumerate() {
        let Some(&c) = of_cell.get(b.as_str()) else {
            return Err(FileError::line(
                scores,
                row as u64 + 2,
                format!("barcode '{b}' is not a cell of the model {}", model.display()),
            )
            .into());
        };
        index.push(group_of[c]);
    }
    let mut fig = group_means(&scores_t, &groups, &index, top);
    fig.title =
        format!("TF activity: {} most variable of {} motifs, by group", fig.motifs.len(), scores_t.motifs.len());
    Ok(fig)
}

/// [`tf_activity_figure`], drawn to `out` (.svg or .png).
pub fn plot_tf_activity(
    model: &Path,
    scores: &Path,
    groups: &str,
    top: usize,
    out: &Path,
) -> Result<HeatmapFigure, Error> {
    let fig = tf_activity_figure(model, scores, groups, top)?;
    render(&fig, out)?;
    Ok(fig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_means_keep_the_motifs_that_differ_most() {
        // Three cells in two groups, three motifs: m1 separates the groups, m0 a little, m2 not.
        let scores = TfScores {
            barcodes: vec!["a".into(), "b".into(), "c".into()],
            motifs: vec!["m0".into(), "m1".into(), "m2".into()],
            z: vec![0.5, 2.0, 1.0, 0.3, 1.0, 1.0, -0.4, -3.0, 1.0],
        };
        let groups = Groups { names: vec!["g1".into(), "g2".into()], members: vec![vec![0, 1], vec![2]] };
        let fig = group_means(&scores, &groups, &[Some(0), Some(0), Some(1)], 2);
        assert_eq!(fig.motifs, ["m1", "m0"]);
        assert_eq!(fig.values, vec![1.5, 0.4, -3.0, -0.4]);
    }

    #[test]
    fn the_diverging_scale_is_white_at_zero() {
        assert_eq!(diverging(0.0), RGBColor(255, 255, 255));
        assert_eq!(diverging(-1.0), RGBColor(0, 114, 178));
        assert_eq!(diverging(1.0), RGBColor(213, 94, 0));
    }
}
