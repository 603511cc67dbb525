//! `chromax plot tracks`: coverage tracks of one region stacked on shared coordinates, as a
//! genome browser shows them, with peak files as bars underneath.
//!
//! Any track chromax reads (bigWig, bedGraph, track shard) over any region: where the region
//! has more bases than the plot has pixels, bases are summarised in equal bins, by their
//! maximum (default: a one-base peak stays visible) or mean, and the axis says which.

use super::{colour, render, short_number, thousands, Figure, FONT_FAMILY};
use crate::coverage::Region;
use crate::error::FileError;
use crate::io::bed::{read_intervals, Interval};
use crate::io::bigwig::{bigwig_chroms, read_bigwig_region};
use crate::store::build::{read_track, SourceFormat};
use crate::store::TrackShard;
use crate::track::{Run, Track};
use crate::Error;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// How the bases of a bin become one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinSummary {
    Max,
    Mean,
}

/// A named file: `--track NAME=FILE`, `--peaks NAME=FILE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub name: String,
    pub path: PathBuf,
}

impl Named {
    /// Parses `NAME=FILE` (or a bare `FILE`, named after its file name).
    pub fn parse(text: &str) -> Result<Named, String> {
        let (name, path) = match text.split_once('=') {
            Some((n, p)) if !n.is_empty() && !p.is_empty() => (n.to_string(), p),
            Some(_) => return Err(format!("'{text}' is not NAME=FILE")),
            None => {
                let name = Path::new(text).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                (name, text)
            }
        };
        Ok(Named { name, path: PathBuf::from(path) })
    }
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct TracksOptions {
    /// `chrom:start-end` (1-based, inclusive) or a whole chromosome.
    pub region: String,
    pub tracks: Vec<Named>,
    pub peaks: Vec<Named>,
    /// One y scale for every track instead of one each.
    pub same_scale: bool,
    pub summary: BinSummary,
    /// Figure width in pixels.
    pub width: u32,
}

/// The figure, its data read and binned.
#[derive(Debug, Clone)]
pub struct TracksFigure {
    pub chrom: String,
    /// 0-based, end exclusive.
    pub start: u64,
    pub end: u64,
    /// Bases per bin (1: every base drawn).
    pub bin: u64,
    pub summary: BinSummary,
    pub same_scale: bool,
    pub width: u32,
    /// Per track: its name and one value per bin.
    pub tracks: Vec<(String, Vec<f32>)>,
    /// Per peak file: its name and the peaks overlapping the region, clipped to it.
    pub peaks: Vec<(String, Vec<(u64, u64)>)>,
}

const TRACK_HEIGHT: u32 = 150;
const PEAK_HEIGHT: u32 = 36;
const TITLE_HEIGHT: u32 = 40;
const AXIS_HEIGHT: u32 = 50;
const Y_LABELS: u32 = 110;
const MARGIN: u32 = 20;

/// A track opened for reading regions: a bigWig by its checked chromosome list (bigtools
/// then reads the blocks a region touches), a shard mapped, a bedGraph read whole.
enum Source {
    BigWig(Vec<(String, u64)>),
    Shard(TrackShard),
    Track(Track),
}

impl Source {
    fn open(path: &Path) -> Result<Source, Error> {
        Ok(match SourceFormat::detect(path)? {
            SourceFormat::BigWig => Source::BigWig(bigwig_chroms(path)?),
            SourceFormat::Shard => Source::Shard(TrackShard::open(path)?),
            SourceFormat::BedGraph => Source::Track(read_track(path, None)?),
            SourceFormat::Intervals => {
                return Err(FileError::content(
                    path,
                    "a BED/narrowPeak file is not a coverage track: give it with --peaks NAME=FILE",
                )
                .into())
            }
        })
    }

    /// The chromosomes, as (name, length).
    fn chroms(&self) -> Vec<(String, u64)> {
        match self {
            Source::BigWig(c) => c.clone(),
            Source::Shard(s) => s.sizes().iter().map(|(n, l)| (n.to_string(), l)).collect(),
            Source::Track(t) => t.sizes().iter().map(|(n, l)| (n.to_string(), l)).collect(),
        }
    }

    /// The runs over `start..end` of `chrom` and the chromosome's length (None: not in the
    /// file).
    fn runs(&self, path: &Path, chrom: &str, start: u64, end: u64) -> Result<(Option<u64>, Vec<Run>), Error> {
        match self {
            Source::BigWig(chroms) => match chroms.iter().find(|(n, _)| n == chrom) {
                None => Ok((None, Vec::new())),
                Some(&(_, len)) => Ok((Some(len), read_bigwig_region(path, chroms, chrom, start, end)?)),
            },
            Source::Shard(shard) => {
                let Some(id) = shard.sizes().id(chrom) else { return Ok((None, Vec::new())) };
                let len = shard.sizes().length(id);
                let mut runs = Vec::new();
                let mut buf = vec![0.0f32; 1 << 20];
                let mut at = start;
                while at < end.min(len) {
                    let n = (end.min(len) - at).min(buf.len() as u64) as usize;
                    shard.slice(chrom, at as i64, (at + n as u64) as i64)?.to_f32(&mut buf[..n]);
                    runs.extend(crate::track::runs_from_dense(&buf[..n], at as u32));
                    at += n as u64;
                }
                Ok((Some(len), runs))
            }
            Source::Track(track) => {
                let Some(id) = track.sizes().id(chrom) else { return Ok((None, Vec::new())) };
                let runs = track
                    .runs(id)
                    .iter()
                    .filter(|r| (r.end as u64) > start && (r.start as u64) < end)
                    .map(|r| Run { start: r.start.max(start as u32), end: r.end.min(end as u32), value: r.value })
                    .collect();
                Ok((Some(track.sizes().length(id)), runs))
            }
        }
    }
}

/// The tracks and peak files of a figure, each opened (and checked) once, for drawing any
/// number of regions.
pub struct OpenTracks {
    tracks: Vec<(Named, Source)>,
    peaks: Vec<(String, Vec<Interval>)>,
}

/// Bins `runs` (inside `start..end`) into `ceil((end − start) / bin)` values.
fn bin_runs(runs: &[Run], start: u64, end: u64, bin: u64, summary: BinSummary) -> Vec<f32> {
    let n = (end - start).div_ceil(bin) as usize;
    let mut max = vec![0.0f32; n];
    let mut sum = vec![0.0f64; n];
    for r in runs {
        let (a, b) = ((r.start as u64).max(start), (r.end as u64).min(end));
        let mut at = a;
        while at < b {
            let k = ((at - start) / bin) as usize;
            let bin_end = (start + (k as u64 + 1) * bin).min(b);
            max[k] = max[k].max(r.value);
            sum[k] += r.value as f64 * (bin_end - at) as f64;
            at = bin_end;
        }
    }
    match summary {
        BinSummary::Max => max,
        BinSummary::Mean => sum
            .iter()
            .enumerate()
            .map(|(k, &s)| {
                let width = (start + (k as u64 + 1) * bin).min(end) - (start + k as u64 * bin);
                (s / width as f64) as f32
            })
            .collect(),
    }
}

impl OpenTracks {
    /// Opens the tracks (at least one) and reads the peak files.
    pub fn open(tracks: &[Named], peaks: &[Named]) -> Result<OpenTracks, Error> {
        if tracks.is_empty() {
            return Err(FileError::Argument("give at least one --track NAME=FILE".into()).into());
        }
        let tracks = tracks.iter().map(|t| Ok((t.clone(), Source::open(&t.path)?))).collect::<Result<_, Error>>()?;
        let peaks =
            peaks.iter().map(|p| Ok((p.name.clone(), read_intervals(&p.path)?))).collect::<Result<_, Error>>()?;
        Ok(OpenTracks { tracks, peaks })
    }

    /// The first track's chromosomes, as (name, length).
    pub fn chroms(&self) -> Vec<(String, u64)> {
        self.tracks.first().map_or_else(Vec::new, |t| t.1.chroms())
    }

    /// The figure of `region` (`chrom:start-end`, 1-based inclusive, or a chromosome),
    /// checking that the tracks agree on the chromosome's length.
    pub fn figure(
        &self,
        region: &str,
        same_scale: bool,
        summary: BinSummary,
        width: u32,
    ) -> Result<TracksFigure, Error> {
        let parsed = Region::parse(region).map_err(FileError::Argument)?;
        let chrom = parsed.chrom.clone();
        // The chromosome's length, from the first track; every other must agree.
        let mut length: Option<(u64, &Path)> = None;
        let mut raw = Vec::new();
        for (t, source) in &self.tracks {
            let (len, runs) = source.runs(&t.path, &chrom, parsed.start, parsed.end)?;
            let Some(len) = len else {
                return Err(FileError::content(
                    &t.path,
                    format!("no chromosome '{chrom}' in this track: is it of another assembly, or is the chromosome spelled differently (chr1 / 1)?"),
                )
                .into());
            };
            if let Some((first, first_path)) = length {
                if first != len {
                    return Err(FileError::Mismatch(format!(
                        "{chrom} is {} bp in {} but {} bp in {}: the tracks come from different assemblies",
                        thousands(len),
                        t.path.display(),
                        thousands(first),
                        first_path.display()
                    ))
                    .into());
                }
            } else {
                length = Some((len, &t.path));
            }
            raw.push((t.name.clone(), runs));
        }
        let len = length.map_or(0, |l| l.0);
        let end = if parsed.end == u64::MAX { len } else { parsed.end };
        if end > len {
            return Err(FileError::Argument(format!(
                "--region {region}: goes past the end of {chrom} ({} bp)",
                thousands(len)
            ))
            .into());
        }
        if end <= parsed.start {
            return Err(FileError::Argument(format!("--region {region}: the region holds no bases")).into());
        }
        let start = parsed.start;
        let plot_px = width.saturating_sub(Y_LABELS + 2 * MARGIN).max(100) as u64;
        let bin = (end - start).div_ceil(plot_px).max(1);
        let tracks = raw.into_iter().map(|(name, runs)| (name, bin_runs(&runs, start, end, bin, summary))).collect();
        let peaks = self
            .peaks
            .iter()
            .map(|(name, list)| {
                let inside = list
                    .iter()
                    .filter(|iv| iv.chrom == chrom && iv.end > start && iv.start < end)
                    .map(|iv| (iv.start.max(start), iv.end.min(end)))
                    .collect();
                (name.clone(), inside)
            })
            .collect();
        Ok(TracksFigure { chrom, start, end, bin, summary, same_scale, width, tracks, peaks })
    }
}

/// Reads the tracks and peaks of `opts` over its region, checking that they agree.
pub fn load(opts: &TracksOptions) -> Result<TracksFigure, Error> {
    OpenTracks::open(&opts.tracks, &opts.peaks)?.figure(&opts.region, opts.same_scale, opts.summary, opts.width)
}

/// Reads, draws and writes the figure of `opts` to `out` (.svg or .png).
pub fn plot_tracks(opts: &TracksOptions, out: &Path) -> Result<TracksFigure, Error> {
    let figure = load(opts)?;
    render(&figure, out)?;
    Ok(figure)
}

/// A position as the axis shows it: bp, kb or Mb by the region's size.
fn position_label(p: f64, span: u64) -> String {
    if span >= 5_000_000 {
        format!("{:.2} Mb", p / 1e6)
    } else if span >= 5_000 {
        format!("{:.1} kb", p / 1e3)
    } else {
        thousands(p.max(0.0) as u64)
    }
}

impl TracksFigure {
    /// The y-axis description of a track.
    fn y_desc(&self, name: &str) -> String {
        if self.bin == 1 {
            name.to_string()
        } else {
            let how = match self.summary {
                BinSummary::Max => "max",
                BinSummary::Mean => "mean",
            };
            format!("{name} ({how} / {} bp)", thousands(self.bin))
        }
    }

    fn top(values: &[f32]) -> f32 {
        let m = values.iter().copied().fold(0.0f32, f32::max);
        if m > 0.0 && m.is_finite() {
            m * 1.05
        } else {
            1.0
        }
    }
}

impl Figure for TracksFigure {
    fn size(&self) -> (u32, u32) {
        let h = TITLE_HEIGHT
            + self.tracks.len() as u32 * TRACK_HEIGHT
            + self.peaks.len() as u32 * PEAK_HEIGHT
            + AXIS_HEIGHT;
        (self.width, h)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let (x0, x1) = (self.start as f64, self.end as f64);
        let span = self.end - self.start;
        let title =
            format!("{}:{}-{} ({} bp)", self.chrom, thousands(self.start + 1), thousands(self.end), thousands(span));
        let (title_area, rest) = root.split_vertically(TITLE_HEIGHT);
        title_area.titled(&title, (FONT_FAMILY, 20).into_font()).map_err(e)?;
        let shared_top = self.tracks.iter().map(|(_, v)| Self::top(v)).fold(0.0f32, f32::max);
        let mut area = rest;
        let rows = self.tracks.len() + self.peaks.len();
        let mut row = 0;
        for (i, (name, values)) in self.tracks.iter().enumerate() {
            row += 1;
            let last = row == rows;
            let height = TRACK_HEIGHT + if last { AXIS_HEIGHT } else { 0 };
            let (panel, below) = area.split_vertically(height);
            area = below;
            let top = if self.same_scale { shared_top } else { Self::top(values) };
            let mut chart = ChartBuilder::on(&panel)
                .margin_left(MARGIN)
                .margin_right(MARGIN)
                .margin_top(4)
                .x_label_area_size(if last { AXIS_HEIGHT } else { 0 })
                .y_label_area_size(Y_LABELS)
                .build_cartesian_2d(x0..x1, 0f32..top)
                .map_err(e)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .light_line_style(TRANSPARENT)
                .y_labels(3)
                .y_label_formatter(&|v| short_number(*v as f64))
                .x_labels(if last { 8 } else { 0 })
                .x_label_formatter(&|p| position_label(*p, span))
                .y_desc(self.y_desc(name))
                .x_desc(if last { format!("{} position", self.chrom) } else { String::new() })
                .label_style((FONT_FAMILY, 13))
                .axis_desc_style((FONT_FAMILY, 13))
                .draw()
                .map_err(e)?;
            let c = colour(i);
            let points = values.iter().enumerate().flat_map(|(k, &v)| {
                let a = (self.start + k as u64 * self.bin) as f64;
                let b = ((self.start + (k as u64 + 1) * self.bin).min(self.end)) as f64;
                [(a, v), (b, v)]
            });
            chart.draw_series(AreaSeries::new(points, 0.0, c.mix(0.55)).border_style(c)).map_err(e)?;
        }
        for (i, (name, peaks)) in self.peaks.iter().enumerate() {
            row += 1;
            let last = row == rows;
            let height = PEAK_HEIGHT + if last { AXIS_HEIGHT } else { 0 };
            let (panel, below) = area.split_vertically(height);
            area = below;
            // The name written across, in the column where tracks have their y axis.
            let (label, panel) = panel.split_horizontally(MARGIN + Y_LABELS);
            let style = TextStyle::from((FONT_FAMILY, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
            label
                .draw(&Text::new(
                    format!("{name} ({})", peaks.len()),
                    ((MARGIN + Y_LABELS) as i32 - 6, PEAK_HEIGHT as i32 / 2),
                    style,
                ))
                .map_err(e)?;
            let mut chart = ChartBuilder::on(&panel)
                .margin_right(MARGIN)
                .x_label_area_size(if last { AXIS_HEIGHT } else { 0 })
                .build_cartesian_2d(x0..x1, 0f64..1f64)
                .map_err(e)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .y_labels(0)
                .x_labels(if last { 8 } else { 0 })
                .x_label_formatter(&|p| position_label(*p, span))
                .x_desc(if last { format!("{} position", self.chrom) } else { String::new() })
                .label_style((FONT_FAMILY, 13))
                .axis_desc_style((FONT_FAMILY, 13))
                .draw()
                .map_err(e)?;
            let c = colour(self.tracks.len() + i);
            // A peak narrower than a pixel still shows: at least one bin wide.
            let min_width = self.bin as f64;
            chart
                .draw_series(peaks.iter().map(|&(a, b)| {
                    let (a, b) = (a as f64, (b as f64).max(a as f64 + min_width));
                    Rectangle::new([(a, 0.2), (b, 0.8)], c.filled())
                }))
                .map_err(e)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(start: u32, end: u32, value: f32) -> Run {
        Run { start, end, value }
    }

    #[test]
    fn bins_hold_the_max_or_the_mean_of_their_bases() {
        let runs = [run(10, 12, 4.0), run(12, 13, 1.0), run(25, 40, 2.0)];
        // Bins of 10 over 10..40: [10, 20), [20, 30), [30, 40).
        assert_eq!(bin_runs(&runs, 10, 40, 10, BinSummary::Max), vec![4.0, 2.0, 2.0]);
        assert_eq!(bin_runs(&runs, 10, 40, 10, BinSummary::Mean), vec![0.9, 1.0, 2.0]);
        // A short last bin is averaged over its own bases.
        assert_eq!(bin_runs(&runs, 10, 35, 10, BinSummary::Mean), vec![0.9, 1.0, 2.0]);
        assert_eq!(bin_runs(&runs, 11, 14, 1, BinSummary::Max), vec![4.0, 1.0, 0.0]);
    }

    #[test]
    fn named_files_parse() {
        assert_eq!(Named::parse("clean=a/b.bw"), Ok(Named { name: "clean".into(), path: "a/b.bw".into() }));
        assert_eq!(Named::parse("a/b.bw"), Ok(Named { name: "b.bw".into(), path: "a/b.bw".into() }));
        assert!(Named::parse("=b.bw").is_err() && Named::parse("x=").is_err());
    }
}
