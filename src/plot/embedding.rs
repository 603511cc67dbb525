//! `chromax plot embedding`: a single-cell model's cell embeddings in two dimensions — the
//! first two principal components, computed here, with the share of variance each explains —
//! coloured by group or, without groups, by the cell's intercept (its depth term).

use super::{colour, plain_axes, render, sequential, short_number, thousands, Figure, FONT_FAMILY};
use crate::error::FileError;
use crate::sc::embed::read_cell_embeddings;
use crate::sc::groups::{GroupSource, Groups};
use crate::sc::model::open_sc_model;
use crate::Error;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// The first two principal components of `n` rows of `dim` values: each row's coordinates
/// and the fraction of the total variance each component explains.
pub fn pca2(rows: &[f32], n: usize, dim: usize) -> (Vec<(f64, f64)>, [f64; 2]) {
    if n == 0 || dim == 0 {
        return (Vec::new(), [0.0; 2]);
    }
    let mut mean = vec![0.0f64; dim];
    for r in rows.chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0.0f64; dim * dim];
    for r in rows.chunks_exact(dim) {
        for i in 0..dim {
            let a = r[i] as f64 - mean[i];
            for j in i..dim {
                cov[i * dim + j] += a * (r[j] as f64 - mean[j]);
            }
        }
    }
    for i in 0..dim {
        for j in i..dim {
            let v = cov[i * dim + j] / (n.max(2) - 1) as f64;
            cov[i * dim + j] = v;
            cov[j * dim + i] = v;
        }
    }
    let (values, vectors) = jacobi_eigen(&cov, dim);
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
    let pc = |k: usize| -> Vec<f64> { (0..dim).map(|i| vectors[i * dim + order[k]]).collect() };
    let (p1, p2) = (pc(0), pc(1.min(dim - 1)));
    let points = rows
        .chunks_exact(dim)
        .map(|r| {
            let proj = |p: &[f64]| r.iter().zip(&mean).zip(p).map(|((&v, m), w)| (v as f64 - m) * w).sum::<f64>();
            (proj(&p1), if dim > 1 { proj(&p2) } else { 0.0 })
        })
        .collect();
    let share = |k: usize| if total > 0.0 && k < dim { values[order[k]].max(0.0) / total } else { 0.0 };
    (points, [share(0), share(1)])
}

/// Eigenvalues and eigenvectors (columns of the returned row-major matrix) of the symmetric
/// `a` (n × n), by cyclic Jacobi rotations until the off-diagonal part vanishes.
fn jacobi_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off.sqrt() <= 1e-14 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum().max(0.0).mul_add(2.0, -1.0) / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// How the cells are coloured.
pub enum Colouring {
    /// A group index per cell (None: in no group) and the groups' names.
    Groups(Vec<Option<usize>>, Vec<String>),
    /// A value per cell on a sequential scale, and what it is.
    Values(Vec<f32>, String),
}

/// The figure: cells at their two principal components.
pub struct EmbeddingFigure {
    pub title: String,
    pub points: Vec<(f64, f64)>,
    pub explained: [f64; 2],
    pub colouring: Colouring,
}

impl Figure for EmbeddingFigure {
    fn size(&self) -> (u32, u32) {
        (900, 700)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let (plot, key) = root.split_horizontally(700);
        let range = |f: &dyn Fn(&(f64, f64)) -> f64| {
            let (lo, hi) =
                self.points.iter().map(f).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            if lo.is_finite() && hi > lo {
                let pad = (hi - lo) * 0.05;
                (lo - pad)..(hi + pad)
            } else {
                -1.0..1.0
            }
        };
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, (FONT_FAMILY, 16))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(range(&|p| p.0), range(&|p| p.1))
            .map_err(e)?;
        plain_axes(&mut chart.configure_mesh())
            .x_desc(format!("PC1 ({:.1}% of variance)", 100.0 * self.explained[0]))
            .y_desc(format!("PC2 ({:.1}% of variance)", 100.0 * self.explained[1]))
            .draw()
            .map_err(e)?;
        let radius = if self.points.len() > 20_000 { 1 } else { 3 };
        match &self.colouring {
            Colouring::Groups(of, names) => {
                // Cells in no group first, in grey, underneath.
                let grey = RGBColor(190, 190, 190);
                chart
                    .draw_series(
                        self.points
                            .iter()
                            .zip(of)
                            .filter(|(_, g)| g.is_none())
                            .map(|(&p, _)| Circle::new(p, radius, grey.filled())),
                    )
                    .map_err(e)?;
                for (g, name) in names.iter().enumerate() {
                    let c = colour(g);
                    chart
                        .draw_series(
                            self.points
                                .iter()
                                .zip(of)
                                .filter(|(_, x)| **x == Some(g))
                                .map(|(&p, _)| Circle::new(p, radius, c.filled())),
                        )
                        .map_err(e)?;
                    let count = of.iter().filter(|x| **x == Some(g)).count();
                    let y = 60 + 24 * g as i32;
                    key.draw(&Circle::new((16, y + 6), 6, c.filled())).map_err(e)?;
                    key.draw(&Text::new(format!("{name} ({})", thousands(count as u64)), (28, y), (FONT_FAMILY, 13)))
                        .map_err(e)?;
                }
                key.draw(&Text::new("group", (10, 30), (FONT_FAMILY, 14))).map_err(e)?;
            }
            Colouring::Values(values, what) => {
                let (lo, hi) =
                    values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
                let t = |v: f32| if hi > lo { ((v - lo) / (hi - lo)) as f64 } else { 0.5 };
                chart
                    .draw_series(
                        self.points
                            .iter()
                            .zip(values)
                            .map(|(&p, &v)| Circle::new(p, radius, sequential(t(v)).filled())),
                    )
                    .map_err(e)?;
                key.draw(&Text::new(what.clone(), (10, 30), (FONT_FAMILY, 14))).map_err(e)?;
                for k in 0..=5 {
                    let v = lo + (hi - lo) * k as f32 / 5.0;
                    let y = 60 + (5 - k) * 50;
                    key.draw(&Rectangle::new([(12, y), (34, y + 22)], sequential(t(v)).filled())).map_err(e)?;
                    key.draw(&Text::new(short_number(v as f64), (40, y + 4), (FONT_FAMILY, 12))).map_err(e)?;
                }
            }
        }
        Ok(())
    }
}

/// The embedding figure of a single-cell model, coloured by `groups` (a `barcode<TAB>group`
/// file or `obs:KEY` of the training AnnData) or else by the cells' intercepts.
pub fn embedding_figure(model: &Path, groups: Option<&str>) -> Result<EmbeddingFigure, Error> {
    let (config, cells) = open_sc_model(model)?;
    let e = read_cell_embeddings(model)?;
    let n = e.barcodes.len();
    if n < 3 {
        return Err(FileError::content(model, format!("{n} cells: an embedding plot needs at least 3")).into());
    }
    let (points, explained) = pca2(&e.embeddings, n, e.dim);
    let name = model.canonicalize().unwrap_or(model.to_path_buf());
    let name = name.file_name().map_or(String::new(), |f| f.to_string_lossy().into_owned());
    let colouring = match groups {
        Some(g) => {
            let matrix = config.training.get("matrix").and_then(|m| m.as_str()).map(std::path::PathBuf::from);
            let groups = Groups::read(&GroupSource::parse(g), &cells, matrix.as_deref())?;
            let mut of = vec![None; n];
            for (k, members) in groups.members.iter().enumerate() {
                for &c in members {
                    of[c as usize] = Some(k);
                }
            }
            Colouring::Groups(of, groups.names)
        }
        None => Colouring::Values(e.intercepts.clone(), "intercept (depth)".into()),
    };
    Ok(EmbeddingFigure {
        title: format!("Cell embeddings of {name}: {} cells, {} dimensions, PCA", thousands(n as u64), e.dim),
        points,
        explained,
        colouring,
    })
}

/// Draws the embedding of `model` to `out` (.svg or .png).
pub fn plot_embedding(model: &Path, groups: Option<&str>, out: &Path) -> Result<EmbeddingFigure, Error> {
    let fig = embedding_figure(model, groups)?;
    render(&fig, out)?;
    Ok(fig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_components_find_the_long_axis_and_its_share() {
        // Points on an ellipse in 3-D: long axis along (1, 1, 0)/√2 (sd 3), short along
        // (1, −1, 0)/√2 (sd 1), nothing on z.
        let mut rows = Vec::new();
        for k in 0..400 {
            let t = k as f64 * std::f64::consts::TAU / 400.0;
            let (a, b) = (3.0 * t.cos(), t.sin());
            let s = std::f64::consts::FRAC_1_SQRT_2;
            rows.extend([(s * (a + b)) as f32, (s * (a - b)) as f32, 0.0]);
        }
        let (points, share) = pca2(&rows, 400, 3);
        assert!((share[0] - 0.9).abs() < 1e-6 && (share[1] - 0.1).abs() < 1e-6, "{share:?}");
        // PC1 coordinates are ±3 cos t (up to sign), PC2 ±sin t.
        for (k, p) in points.iter().enumerate() {
            let t = k as f64 * std::f64::consts::TAU / 400.0;
            assert!((p.0.abs() - (3.0 * t.cos()).abs()).abs() < 1e-5 && (p.1.abs() - t.sin().abs()).abs() < 1e-5);
        }
    }

    #[test]
    fn jacobi_diagonalises_a_symmetric_matrix() {
        let a = [4.0, 1.0, 2.0, 1.0, 3.0, 0.5, 2.0, 0.5, 5.0];
        let (values, v) = jacobi_eigen(&a, 3);
        for k in 0..3 {
            // A v_k = λ_k v_k.
            for i in 0..3 {
                let av: f64 = (0..3).map(|j| a[i * 3 + j] * v[j * 3 + k]).sum();
                assert!((av - values[k] * v[i * 3 + k]).abs() < 1e-10);
            }
        }
        assert!((values.iter().sum::<f64>() - 12.0).abs() < 1e-10);
    }
}
