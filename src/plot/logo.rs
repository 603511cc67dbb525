//! `chromax plot ism`: in-silico mutagenesis (`chromax sc ism`) as sequence logos, one row per
//! group. At each position the three substitutions stand as letters whose heights are their
//! deltas (the mean logit change of the group's cells when that base is put there): gains
//! stacked above the zero line, losses below, the reference base (delta 0) named under the
//! axis. One shared scale for every row, so groups compare by height.

use super::{short_number, thousands, Figure, FONT_FAMILY};
use crate::coverage::Region;
use crate::error::FileError;
use crate::io::hdf5::SizeLimit;
use crate::Error;
use hdf5_pure::Dataset;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Positions a logo shows when none are asked for: centred on the strongest.
pub const DEFAULT_SPAN: usize = 40;
/// The most positions one figure draws (letters stay legible at the default width).
pub const MAX_SPAN: usize = 200;
/// The most groups (rows) one figure draws.
pub const MAX_ROWS: usize = 24;

const BASES: [u8; 4] = *b"ACGT";

/// One region of an ISM file: its window, reference bases and deltas.
#[derive(Debug, Clone, PartialEq)]
pub struct IsmRegion {
    /// The window as the file names it (`chrom:start-end`, 0-based, end exclusive).
    pub name: String,
    pub chrom: String,
    /// 0-based start of the window on the chromosome (may be negative near its start).
    pub start: i64,
    /// Base codes of the window, 0..4 = A C G T N.
    pub reference: Vec<u8>,
    pub groups: Vec<String>,
    /// position × base × group.
    pub delta: Vec<f32>,
}

impl IsmRegion {
    pub fn len(&self) -> usize {
        self.reference.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reference.is_empty()
    }

    fn at(&self, p: usize, b: usize, g: usize) -> f32 {
        self.delta[(p * 4 + b) * self.groups.len() + g]
    }

    /// The offsets of the `span` positions centred on the one whose deltas (all bases, all
    /// groups) are largest in absolute sum, inside the window.
    pub fn strongest(&self, span: usize) -> (usize, usize) {
        let score = |p: usize| -> f64 {
            (0..4)
                .flat_map(|b| (0..self.groups.len()).map(move |g| (b, g)))
                .map(|(b, g)| self.at(p, b, g).abs() as f64)
                .sum()
        };
        let best = (0..self.len()).max_by(|&a, &b| score(a).total_cmp(&score(b)).then(b.cmp(&a))).unwrap_or(0);
        let span = span.min(self.len());
        let from = best.saturating_sub(span / 2).min(self.len() - span);
        (from, from + span)
    }
}

/// The model directory an ISM file was made with (its `model` attribute; files of earlier
/// versions have none).
pub fn ism_model(path: &Path) -> Option<std::path::PathBuf> {
    let (f, _) = open(path).ok()?;
    let attrs = f.root().attrs().ok()?;
    attrs.get("model").and_then(|v| v.as_str()).map(std::path::PathBuf::from)
}

fn open(path: &Path) -> Result<(hdf5_pure::File, SizeLimit), FileError> {
    crate::io::hdf5::check_hdf5_complete(path)?;
    let f = hdf5_pure::File::open_streaming(path).map_err(|e| {
        FileError::content(path, format!("not an HDF5 file ({e}): give the .h5 `chromax sc ism` writes"))
    })?;
    Ok((f, SizeLimit::of(path)?))
}

fn read_strings(path: &Path, f: &hdf5_pure::File, lim: SizeLimit, name: &str) -> Result<Vec<String>, FileError> {
    lim.whole(f.dataset(name), Dataset::read_string)
        .map_err(|e| FileError::content(path, format!("{name}: {e} (not an ISM file of `chromax sc ism`?)")))
}

/// An ISM file opened once: its windows and groups read, a region's rows read on demand.
pub struct IsmFile {
    path: std::path::PathBuf,
    file: hdf5_pure::File,
    lim: SizeLimit,
    /// The windows, in order (`chrom:start-end`, 0-based, end exclusive).
    pub regions: Vec<String>,
    pub groups: Vec<String>,
}

impl IsmFile {
    pub fn open(path: &Path) -> Result<IsmFile, FileError> {
        let (file, lim) = open(path)?;
        let regions = read_strings(path, &file, lim, "regions")?;
        let groups = read_strings(path, &file, lim, "groups")?;
        Ok(IsmFile { path: path.to_path_buf(), file, lim, regions, groups })
    }

    /// Region `index` (0-based): only its rows of `delta` and `reference`.
    pub fn region(&self, index: usize) -> Result<IsmRegion, FileError> {
        let (f, lim, path) = (&self.file, self.lim, self.path.as_path());
        let (regions, groups) = (&self.regions, &self.groups);
        let bad = |what: String| FileError::content(path, what);
        let name = regions
            .get(index)
            .ok_or_else(|| bad(format!("region {} asked for, the file holds {}", index + 1, regions.len())))?
            .clone();
        let delta_ds =
            f.dataset("delta").map_err(|e| bad(format!("delta: {e} (not an ISM file of `chromax sc ism`?)")))?;
        let ref_ds = f.dataset("reference").map_err(|e| bad(format!("reference: {e}")))?;
        let shape = delta_ds.shape().map_err(|e| bad(format!("delta: {e}")))?;
        let ref_shape = ref_ds.shape().map_err(|e| bad(format!("reference: {e}")))?;
        let (r, len, g) = match (shape.as_slice(), ref_shape.as_slice()) {
            ([r, len, 4, g], [r2, len2]) if r == r2 && len == len2 && *g as usize == groups.len() => {
                (*r as usize, *len as usize, *g as usize)
            }
            _ => {
                return Err(bad(format!(
                    "delta has shape {shape:?} and reference {ref_shape:?}; an ISM file has delta[region, position, \
                     4, group] and reference[region, position] for its {} regions and {} groups",
                    regions.len(),
                    groups.len()
                )))
            }
        };
        if r != regions.len() {
            return Err(bad(format!("delta holds {r} regions, the region names {}", regions.len())));
        }
        lim.check(&delta_ds).map_err(|e| bad(format!("delta: {e}")))?;
        lim.check(&ref_ds).map_err(|e| bad(format!("reference: {e}")))?;
        let delta = delta_ds.read_f32_rows(index as u64, 1).map_err(|e| bad(format!("delta: {e}")))?;
        let reference = ref_ds.read_raw_rows(index as u64, 1).map_err(|e| bad(format!("reference: {e}")))?;
        if delta.len() != len * 4 * g || reference.len() != len {
            return Err(bad(format!(
                "region {}: {} deltas and {} bases read, {} and {len} expected",
                index + 1,
                delta.len(),
                reference.len(),
                len * 4 * g
            )));
        }
        if let Some(v) = delta.iter().find(|v| !v.is_finite()) {
            return Err(bad(format!("region {name}: delta holds {v}: the file is damaged")));
        }
        let (chrom, start) =
            window_start(&name).ok_or_else(|| bad(format!("region name '{name}' is not chrom:start-end")))?;
        Ok(IsmRegion { name, chrom, start, reference, groups: groups.clone(), delta })
    }

    /// The logo of region `index`: the positions of `range` (inside its window), else the
    /// `span` around its strongest effect; the rows of `groups` (all when empty); titled.
    pub fn figure(
        &self,
        index: usize,
        range: Option<&Region>,
        span: usize,
        groups: &[String],
    ) -> Result<LogoFigure, Error> {
        let region = self.region(index)?;
        let (from, to) = match range {
            Some(r) => ((r.start as i64 - region.start) as usize, (r.end as i64 - region.start) as usize),
            None => region.strongest(span.max(1)),
        };
        if to - from > MAX_SPAN {
            return Err(FileError::Argument(format!(
                "--region: {} positions; a logo draws at most {MAX_SPAN} (letters must stay legible)",
                to - from
            ))
            .into());
        }
        let mut fig = LogoFigure::new(&region, from, to, groups)?;
        fig.title = title(&fig, &region, index, self.regions.len());
        Ok(fig)
    }
}

/// `chrom:start-end` (0-based; `start` may be negative) as chrom and start.
fn window_start(name: &str) -> Option<(String, i64)> {
    let (chrom, range) = name.rsplit_once(':')?;
    // The start may be negative ("-40"): split at the last '-' that follows a digit.
    let cut = range.char_indices().skip(1).filter(|&(_, c)| c == '-').map(|(i, _)| i).last()?;
    let start: i64 = range[..cut].parse().ok()?;
    Some((chrom.to_string(), start))
}

/// Which region and positions to draw: `N` (the N-th region, 1-based; its strongest
/// positions) or `chrom:start-end` (1-based, inclusive: those positions of the window that
/// holds them). Returns the region's index and, for a genomic range, the range.
pub fn choose(path: &Path, names: &[String], what: &str) -> Result<(usize, Option<Region>), FileError> {
    if let Ok(n) = what.parse::<usize>() {
        return match n {
            1.. if n <= names.len() => Ok((n - 1, None)),
            _ => {
                Err(FileError::Argument(format!("--region {n}: {} holds regions 1 to {}", path.display(), names.len())))
            }
        };
    }
    let r = Region::parse(what).map_err(|e| FileError::Argument(format!("--region: {e}, or a region number")))?;
    let holds = |name: &String| {
        window_start(name)
            .is_some_and(|(c, s)| c == r.chrom && s <= r.start as i64 && r.end as i64 <= s + span_of(name))
    };
    match names.iter().position(holds) {
        Some(i) => Ok((i, Some(r))),
        None => Err(FileError::Argument(format!(
            "--region {what}: no window of {} holds it (its windows: {})",
            path.display(),
            list(names)
        ))),
    }
}

fn span_of(name: &str) -> i64 {
    let end = name.rsplit('-').next().and_then(|e| e.parse::<i64>().ok());
    match (end, window_start(name)) {
        (Some(e), Some((_, s))) => e - s,
        _ => 0,
    }
}

fn list(names: &[String]) -> String {
    let mut s: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    if names.len() > 5 {
        s.push("…");
    }
    s.join(", ")
}

/// The logo figure: rows are groups, columns positions.
pub struct LogoFigure {
    pub title: String,
    pub chrom: String,
    /// 0-based genomic position of the first column.
    pub first: i64,
    /// Reference base codes of the columns.
    pub reference: Vec<u8>,
    pub groups: Vec<String>,
    /// group × position × base.
    pub heights: Vec<f32>,
}

impl LogoFigure {
    /// The figure of `region`'s offsets `from..to`, for the groups named in `keep` (all when
    /// empty).
    pub fn new(region: &IsmRegion, from: usize, to: usize, keep: &[String]) -> Result<LogoFigure, FileError> {
        let rows: Vec<usize> = if keep.is_empty() {
            (0..region.groups.len()).collect()
        } else {
            let mut rows = Vec::new();
            for k in keep {
                match region.groups.iter().position(|g| g == k) {
                    Some(i) => rows.push(i),
                    None => {
                        return Err(FileError::Argument(format!(
                            "--group {k}: not a group of the ISM file (its groups: {})",
                            list(&region.groups)
                        )))
                    }
                }
            }
            rows
        };
        if rows.len() > MAX_ROWS {
            return Err(FileError::Argument(format!(
                "{} groups: a logo draws at most {MAX_ROWS} rows; choose them with --group NAME",
                rows.len()
            )));
        }
        let mut heights = Vec::with_capacity(rows.len() * (to - from) * 4);
        for &g in &rows {
            for p in from..to {
                heights.extend((0..4).map(|b| region.at(p, b, g)));
            }
        }
        Ok(LogoFigure {
            title: String::new(),
            chrom: region.chrom.clone(),
            first: region.start + from as i64,
            reference: region.reference[from..to].to_vec(),
            groups: rows.iter().map(|&g| region.groups[g].clone()).collect(),
            heights,
        })
    }

    fn positions(&self) -> usize {
        self.reference.len()
    }

    /// The largest stack above zero and below it, over every row and position.
    fn extent(&self) -> (f64, f64) {
        let (mut up, mut down) = (0.0f64, 0.0f64);
        for col in self.heights.chunks_exact(4) {
            up = up.max(col.iter().filter(|&&h| h > 0.0).map(|&h| h as f64).sum());
            down = down.max(col.iter().filter(|&&h| h < 0.0).map(|&h| -h as f64).sum());
        }
        if up == 0.0 && down == 0.0 {
            (1.0, 1.0)
        } else {
            (up, down)
        }
    }
}

/// Letter colours: A bluish green, C blue, G orange, T vermillion (Okabe–Ito; the usual
/// green / blue / orange / red of logos, colour-blind safe).
const LETTER_COLOURS: [RGBColor; 4] =
    [RGBColor(0, 158, 115), RGBColor(0, 114, 178), RGBColor(230, 159, 0), RGBColor(213, 94, 0)];

/// A closed outline in the unit box (x right, y up).
type Outline = Vec<(f64, f64)>;

/// A letter as outlines in the unit box: the letter and, drawn over it in white, its counter
/// (A's hole).
fn glyph(base: usize) -> (Vec<Outline>, Vec<Outline>) {
    let ring = |from: f64, to: f64| -> Outline {
        let steps = 24;
        let angle = |k: usize| (from + (to - from) * k as f64 / steps as f64).to_radians();
        let outer = (0..=steps).map(|k| (0.5 + 0.5 * angle(k).cos(), 0.5 + 0.5 * angle(k).sin()));
        let inner = (0..=steps).rev().map(|k| (0.5 + 0.3 * angle(k).cos(), 0.5 + 0.3 * angle(k).sin()));
        outer.chain(inner).collect()
    };
    match base {
        0 => (
            vec![vec![
                (0.0, 0.0),
                (0.38, 1.0),
                (0.62, 1.0),
                (1.0, 0.0),
                (0.77, 0.0),
                (0.67, 0.28),
                (0.33, 0.28),
                (0.23, 0.0),
            ]],
            vec![vec![(0.4, 0.44), (0.5, 0.74), (0.6, 0.44)]],
        ),
        1 => (vec![ring(45.0, 315.0)], vec![]),
        2 => (vec![ring(40.0, 360.0), vec![(0.55, 0.42), (1.0, 0.42), (1.0, 0.56), (0.55, 0.56)]], vec![]),
        _ => (
            vec![vec![(0.0, 1.0), (1.0, 1.0), (1.0, 0.8), (0.6, 0.8), (0.6, 0.0), (0.4, 0.0), (0.4, 0.8), (0.0, 0.8)]],
            vec![],
        ),
    }
}

const WIDTH_PER_BASE: u32 = 24;
const ROW: u32 = 150;
const LEFT: u32 = 200;
const TITLE: u32 = 40;
const AXIS: u32 = 60;

impl Figure for LogoFigure {
    fn size(&self) -> (u32, u32) {
        let w = (LEFT + 30 + WIDTH_PER_BASE * self.positions() as u32).max(600);
        (w, TITLE + ROW * self.groups.len() as u32 + AXIS)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let (w, h) = self.size();
        let (title, rest) = root.split_vertically(TITLE);
        title.titled(&self.title, (FONT_FAMILY, 16).into_font()).map_err(e)?;
        let (rows, axis) = rest.split_vertically(ROW * self.groups.len() as u32);
        let n = self.positions();
        let (up, down) = self.extent();
        let (lo, hi) = (-down * 1.08, up * 1.08);
        let areas = rows.split_evenly((self.groups.len(), 1));
        let mut columns = Vec::new();
        for (gi, row) in areas.iter().enumerate() {
            let (_, area) = row.split_horizontally(LEFT - 60);
            let mut chart = ChartBuilder::on(&area)
                .margin_right(20)
                .margin_top(8)
                .margin_bottom(4)
                .y_label_area_size(60)
                .build_cartesian_2d(-0.5..(n as f64 - 0.5), lo..hi)
                .map_err(e)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .disable_y_mesh()
                .x_labels(0)
                .y_labels(5)
                .y_label_formatter(&|v| short_number(*v))
                .y_desc("Δ logit")
                .label_style((FONT_FAMILY, 11))
                .axis_desc_style((FONT_FAMILY, 12))
                .draw()
                .map_err(e)?;
            let grey = RGBColor(150, 150, 150);
            chart
                .draw_series(LineSeries::new([(-0.5, 0.0), (n as f64 - 0.5, 0.0)], grey.stroke_width(1)))
                .map_err(e)?;
            for p in 0..n {
                let col = &self.heights[(gi * n + p) * 4..(gi * n + p + 1) * 4];
                let mut order: Vec<usize> = (0..4).collect();
                // Smallest magnitude nearest the zero line, as logos stack.
                order.sort_by(|&a, &b| col[a].abs().total_cmp(&col[b].abs()));
                let (mut top, mut bottom) = (0.0f64, 0.0f64);
                for b in order {
                    let v = col[b] as f64;
                    if v == 0.0 {
                        continue;
                    }
                    let (y0, y1) = if v > 0.0 {
                        top += v;
                        (top - v, top)
                    } else {
                        bottom += v;
                        (bottom, bottom - v)
                    };
                    let place = |(u, t): (f64, f64)| (p as f64 - 0.45 + 0.9 * u, y0 + (y1 - y0) * t);
                    let (shapes, holes) = glyph(b);
                    for s in shapes {
                        chart
                            .draw_series(std::iter::once(Polygon::new(
                                s.into_iter().map(place).collect::<Vec<_>>(),
                                LETTER_COLOURS[b].filled(),
                            )))
                            .map_err(e)?;
                    }
                    for s in holes {
                        chart
                            .draw_series(std::iter::once(Polygon::new(
                                s.into_iter().map(place).collect::<Vec<_>>(),
                                WHITE.filled(),
                            )))
                            .map_err(e)?;
                    }
                }
            }
            // The group's name, left of the axis.
            let (_, y_mid) = chart.backend_coord(&(0.0, (lo + hi) / 2.0));
            root.draw(&Text::new(
                self.groups[gi].clone(),
                (LEFT as i32 - 66, y_mid),
                TextStyle::from((FONT_FAMILY, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(e)?;
            if gi + 1 == self.groups.len() {
                columns = (0..n).map(|p| chart.backend_coord(&(p as f64, lo)).0).collect();
            }
        }
        // Under the last row: the reference bases, and the coordinate every ten positions.
        let (_, axis_top) = axis.get_base_pixel();
        for (p, &x) in columns.iter().enumerate() {
            let base = self.reference[p];
            let letter = if (base as usize) < 4 { BASES[base as usize] as char } else { 'N' };
            root.draw(&Text::new(
                letter.to_string(),
                (x, axis_top + 4),
                TextStyle::from((FONT_FAMILY, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(e)?;
            let at = self.first + p as i64 + 1;
            if at % 10 == 0 {
                root.draw(&Text::new(
                    thousands(at.max(0) as u64),
                    (x, axis_top + 22),
                    TextStyle::from((FONT_FAMILY, 11).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .map_err(e)?;
            }
        }
        root.draw(&Text::new(
            format!("reference base and position on {} (1-based)", self.chrom),
            (w as i32 / 2, h as i32 - 14),
            TextStyle::from((FONT_FAMILY, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(e)?;
        Ok(())
    }
}

/// `ISM of chr1:1,001-1,040 (window 2 of 5, chr1:901-1,156)`, 1-based.
fn title(fig: &LogoFigure, region: &IsmRegion, index: usize, windows: usize) -> String {
    let at = |p: i64| thousands(p.max(0) as u64);
    format!(
        "ISM of {}:{}-{} (window {} of {windows}, {}:{}-{}): Δ logit of each substitution, by group",
        fig.chrom,
        at(fig.first + 1),
        at(fig.first + fig.positions() as i64),
        index + 1,
        region.chrom,
        at(region.start + 1),
        at(region.start + region.len() as i64)
    )
}

/// What `chromax plot ism` draws.
#[derive(Debug, Clone, Default)]
pub struct LogoOptions {
    /// `N` or `chrom:start-end` (see [`choose`]); `None`: the first region.
    pub region: Option<String>,
    /// Positions around the strongest when no genomic range is given.
    pub span: usize,
    /// Groups to draw (all when empty).
    pub groups: Vec<String>,
}

/// The logo figure of an ISM file, as `opts` chooses.
pub fn logo_figure(path: &Path, opts: &LogoOptions) -> Result<LogoFigure, Error> {
    let file = IsmFile::open(path)?;
    if file.regions.is_empty() {
        return Err(FileError::content(path, "the ISM file holds no regions").into());
    }
    let (index, range) = match &opts.region {
        Some(r) => choose(path, &file.regions, r)?,
        None => (0, None),
    };
    file.figure(index, range.as_ref(), opts.span, &opts.groups)
}

/// Draws the logo of an ISM file to `out` (.svg or .png).
pub fn plot_ism(path: &Path, opts: &LogoOptions, out: &Path) -> Result<LogoFigure, Error> {
    let fig = logo_figure(path, opts)?;
    super::render(&fig, out)?;
    Ok(fig)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> IsmRegion {
        // 6 positions, 2 groups; position 3 carries the largest deltas.
        let mut delta = vec![0.0f32; 6 * 4 * 2];
        delta[(3 * 4 + 1) * 2] = -2.0;
        delta[(3 * 4 + 2) * 2 + 1] = 1.5;
        delta[4 * 2] = 0.25; // position 1, base A, group 1
        IsmRegion {
            name: "chr1:-2-4".into(),
            chrom: "chr1".into(),
            start: -2,
            reference: vec![0, 1, 2, 3, 4, 0],
            groups: vec!["g1".into(), "g2".into()],
            delta,
        }
    }

    #[test]
    fn windows_parse_with_negative_starts_and_the_strongest_is_centred() {
        assert_eq!(window_start("chr1:-2-4"), Some(("chr1".into(), -2)));
        assert_eq!(window_start("HLA:A:100-260"), Some(("HLA:A".into(), 100)));
        assert_eq!(window_start("chr1"), None);
        assert_eq!(span_of("chr1:-2-4"), 6);
        let r = region();
        assert_eq!(r.strongest(3), (2, 5));
        assert_eq!(r.strongest(100), (0, 6));
        assert_eq!(r.strongest(1), (3, 4));
    }

    #[test]
    fn figures_keep_the_asked_groups_and_stack_to_the_largest_column() {
        let r = region();
        let fig = LogoFigure::new(&r, 1, 4, &["g2".into()]).expect("g2");
        assert_eq!(fig.groups, ["g2"]);
        assert_eq!(fig.first, -1);
        assert_eq!(fig.reference, vec![1, 2, 3]);
        assert_eq!(fig.heights.len(), 3 * 4);
        assert_eq!(fig.heights[2 * 4 + 2], 1.5);
        assert_eq!(fig.extent(), (1.5, 0.0), "nothing below zero");
        let all = LogoFigure::new(&r, 0, 6, &[]).expect("all");
        assert_eq!(all.extent(), (1.5, 2.0));
        let e = LogoFigure::new(&r, 0, 6, &["g3".into()]).err().expect("unknown group").to_string();
        assert!(e.contains("--group g3") && e.contains("g1, g2"), "{e}");
    }
}
