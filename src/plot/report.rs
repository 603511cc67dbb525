//! `chromax report`: one self-contained HTML page for a model — its configuration, its
//! training curves, and (for a denoising run with its files) the evaluation table and
//! figures and genome-browser views of a few regions. Figures are inline SVG, styles inline;
//! the page fetches nothing and runs no script, so it opens from disk anywhere, offline.

use super::curves::{CurvesFigure, TrainLog};
use super::eval::{RocPrFigure, ScatterFigure};
use super::tracks::{BinSummary, Named, OpenTracks};
use super::{svg_string, thousands};
use crate::denoise::eval::{format_table, EvalData};
use crate::error::FileError;
use crate::io::atomic::write_atomically;
use crate::io::bed::read_narrowpeak_signal;
use crate::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A denoising run's files, for the evaluation and track sections.
#[derive(Debug, Clone)]
pub struct DenoiseRun {
    /// `PREFIX` of `denoise run` (PREFIX.track.bw, .prob.bw, .peaks.narrowPeak).
    pub prediction: PathBuf,
    pub noisy: PathBuf,
    pub clean: PathBuf,
    pub peaks: PathBuf,
    /// What the evaluation covered (regions or chromosomes; empty: everything).
    pub regions: Vec<String>,
}

/// What a report holds.
#[derive(Debug, Clone)]
pub struct ReportInputs {
    pub model: PathBuf,
    pub run: Option<DenoiseRun>,
    /// Regions to draw (`chrom:start-end`); empty: the highest predicted peaks and a random one.
    pub views: Vec<String>,
    pub seed: u64,
    /// Analysis outputs of a single-cell model to draw (`sc tf-activity`'s .tsv or .h5ad,
    /// `sc ism`'s .h5), besides those found in the model directory.
    pub analyses: Vec<PathBuf>,
    /// Cell groups (a `barcode<TAB>group` file or `obs:KEY`): the embedding's colours and the
    /// TF heatmap's rows.
    pub groups: Option<String>,
}

/// An analysis output a report draws.
#[derive(Debug, Clone, PartialEq)]
pub enum Analysis {
    /// The cells × motifs z-scores of `sc tf-activity` (its .tsv).
    TfActivity(PathBuf),
    /// The deltas of `sc ism` (.h5).
    Ism(PathBuf),
}

impl Analysis {
    /// What `path` holds, by its extension: a .tsv or .h5ad of `sc tf-activity` (the .tsv
    /// beside an .h5ad is read) or the .h5 of `sc ism`.
    pub fn of(path: &Path) -> Result<Analysis, FileError> {
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "tsv" => Ok(Analysis::TfActivity(path.to_path_buf())),
            "h5ad" => Ok(Analysis::TfActivity(path.with_extension("tsv"))),
            "h5" => Ok(Analysis::Ism(path.to_path_buf())),
            _ => Err(FileError::Argument(format!(
                "--analysis {}: give the .tsv (or .h5ad) `chromax sc tf-activity` writes or the .h5 of `chromax sc ism`",
                path.display()
            ))),
        }
    }

    fn path(&self) -> &Path {
        match self {
            Analysis::TfActivity(p) | Analysis::Ism(p) => p,
        }
    }
}

/// The analyses of `given`, and those found in `model`'s directory and beside it (the
/// directory holding it) that were made from this model: an ISM .h5 whose `model` attribute
/// names it, a TF-activity .tsv whose rows are exactly its cells in order. Each once, given
/// ones first.
pub fn find_analyses(model: &Path, given: &[PathBuf]) -> Result<Vec<Analysis>, Error> {
    let mut found: Vec<Analysis> = given.iter().map(|p| Analysis::of(p)).collect::<Result<_, _>>()?;
    let Ok(home) = model.canonicalize() else { return Ok(found) };
    let cells = crate::sc::model::open_sc_model(model).map(|(_, c)| c).ok();
    let mut candidates = Vec::new();
    for dir in [Some(home.as_path()), home.parent()].into_iter().flatten() {
        if let Ok(entries) = std::fs::read_dir(dir) {
            candidates.extend(entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()));
        }
    }
    candidates.sort();
    let same_file = |a: &Path, b: &Path| a.canonicalize().ok().is_some_and(|x| b.canonicalize().ok() == Some(x));
    for p in candidates {
        let ext = p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        let analysis = match ext.as_str() {
            "tsv" => cells.as_deref().filter(|c| rows_are_cells(&p, c)).map(|_| Analysis::TfActivity(p.clone())),
            "h5" => super::logo::ism_model(&p)
                .filter(|m| m.canonicalize().ok().as_deref() == Some(home.as_path()))
                .map(|_| Analysis::Ism(p.clone())),
            _ => None,
        };
        if let Some(a) = analysis {
            let known = found
                .iter()
                .any(|f| std::mem::discriminant(f) == std::mem::discriminant(&a) && same_file(f.path(), a.path()));
            if !known {
                found.push(a);
            }
        }
    }
    Ok(found)
}

/// Whether `path` is a `barcode<TAB>…` table whose rows are `cells`, in order.
fn rows_are_cells(path: &Path, cells: &[String]) -> bool {
    use std::io::BufRead;
    let Ok(f) = std::fs::File::open(path) else { return false };
    let mut lines = std::io::BufReader::new(f).lines();
    if !lines.next().and_then(Result::ok).is_some_and(|h| h.starts_with("barcode\t")) {
        return false;
    }
    let mut n = 0;
    for line in lines {
        let Ok(line) = line else { return false };
        let barcode = line.split('\t').next().unwrap_or("");
        if cells.get(n).map(String::as_str) != Some(barcode) {
            return false;
        }
        n += 1;
    }
    n == cells.len()
}

/// The sections a report was written with (for the caller's message and tests).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportSummary {
    pub sections: Vec<String>,
    pub views: Vec<String>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The rows of a JSON object, flattened as `a.b` keys (arrays joined).
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, x) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, x, out);
            }
        }
        serde_json::Value::Array(a) if a.iter().all(|x| !x.is_object()) => {
            let items: Vec<String> = a.iter().map(|x| x.to_string().trim_matches('"').to_string()).collect();
            out.push((prefix.to_string(), items.join(", ")));
        }
        // A setting kept as f32 and written as f64 (0.009999999776482582) reads as the f32 it is.
        serde_json::Value::Number(n)
            if n.as_f64().is_some_and(|v| !n.is_i64() && !n.is_u64() && v as f32 as f64 == v) =>
        {
            out.push((prefix.to_string(), format!("{}", n.as_f64().unwrap_or_default() as f32)))
        }
        other => out.push((prefix.to_string(), other.to_string().trim_matches('"').to_string())),
    }
}

/// The views of a run by default: its `n` highest-signal predicted peaks (±2 kb) and one
/// random stretch of the same width, from the evaluated chromosomes (lengths from `chroms`).
fn default_views(run: &DenoiseRun, chroms: &[(String, u64)], n: usize, seed: u64) -> Result<Vec<String>, Error> {
    let mut peaks = read_narrowpeak_signal(crate::io::prefixed(&run.prediction, ".peaks.narrowPeak"))?;
    let evaluated: Vec<&str> = run.regions.iter().map(|r| r.split(':').next().unwrap_or(r)).collect();
    let wanted = |c: &str| evaluated.is_empty() || evaluated.contains(&c);
    peaks.retain(|(iv, _)| wanted(&iv.chrom));
    peaks.sort_by(|a, b| b.1.total_cmp(&a.1));
    let length = |c: &str| chroms.iter().find(|(n, _)| n == c).map_or(0, |s| s.1);
    let mut views = Vec::new();
    for (iv, _) in peaks.iter().take(n) {
        let mid = (iv.start + iv.end) / 2;
        let (a, b) = (mid.saturating_sub(2000), (mid + 2000).min(length(&iv.chrom)));
        views.push(format!("{}:{}-{}", iv.chrom, a + 1, b));
    }
    // A random 4 kb stretch of an evaluated chromosome (or any), seeded.
    let pool: Vec<&(String, u64)> = chroms.iter().filter(|(n, l)| *l > 4000 && wanted(n)).collect();
    if !pool.is_empty() {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let (name, len) = pool[(rng.next_u64() % pool.len() as u64) as usize];
        let start = rng.next_u64() % (len - 4000);
        views.push(format!("{name}:{}-{}", start + 1, start + 4000));
    }
    Ok(views)
}

/// Builds the report's HTML.
pub fn report_html(inputs: &ReportInputs, eval: Option<&EvalData>) -> Result<(String, ReportSummary), Error> {
    let model = &inputs.model;
    let config_path = model.join("config.json");
    if !config_path.is_file() {
        return Err(FileError::content(
            model,
            "not a model directory (no config.json): give the directory `chromax denoise train` or `chromax sc train` wrote",
        )
        .into());
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).map_err(FileError::io(&config_path))?)
            .map_err(|e| FileError::content(&config_path, format!("not JSON: {e}")))?;
    let name = model.canonicalize().unwrap_or(model.clone());
    let name = name.file_name().map_or_else(|| model.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut summary = ReportSummary::default();
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>chromax report: {}</title>\n<style>\nbody {{ font-family: 'DejaVu Sans', Verdana, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }}\nh1 {{ font-size: 1.6em; }} h2 {{ font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }}\ntable {{ border-collapse: collapse; font-size: .9em; }} td, th {{ border: 1px solid #ddd; padding: .25em .6em; text-align: left; }}\npre {{ background: #f6f6f6; padding: .8em; font-size: .9em; }}\nfigure {{ margin: 1em 0; }} figcaption {{ font-size: .9em; color: #555; }}\nsvg {{ max-width: 100%; height: auto; }}\n</style>\n</head>\n<body>\n<h1>chromax report: {}</h1>\n<p>Model directory <code>{}</code>.</p>",
        escape(&name),
        escape(&name),
        escape(&model.display().to_string())
    );

    // Configuration.
    let mut rows = Vec::new();
    flatten("", &config, &mut rows);
    h.push_str(
        "<section id=\"configuration\">\n<h2>Configuration</h2>\n<table>\n<tr><th>setting</th><th>value</th></tr>\n",
    );
    for (k, v) in &rows {
        let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v));
    }
    h.push_str("</table>\n</section>\n");
    summary.sections.push("configuration".into());

    // Training curves.
    h.push_str("<section id=\"training\">\n<h2>Training</h2>\n");
    match TrainLog::read(model) {
        Ok(log) => {
            let epochs = log.epochs.len();
            let best = log.best.map_or(String::new(), |b| format!(", best epoch {b:.0}"));
            let fig = CurvesFigure::new(log, format!("{epochs} epochs{best}"));
            let _ = writeln!(
                h,
                "<figure>{}<figcaption>Loss, its parts and the metrics per epoch (train_log.tsv); the grey line marks the best epoch, the one model.safetensors holds.</figcaption></figure>",
                svg_string(&fig)?
            );
        }
        Err(e) => {
            let _ = writeln!(h, "<p>No training curves: {}</p>", escape(&e.to_string()));
        }
    }
    h.push_str("</section>\n");
    summary.sections.push("training".into());

    // A single-cell model: its cells' embedding.
    if config.get("format").and_then(|f| f.as_str()).is_some_and(|f| f == crate::sc::model::SC_FORMAT) {
        h.push_str("<section id=\"embedding\">\n<h2>Cell embeddings</h2>\n");
        match super::embedding::embedding_figure(model, inputs.groups.as_deref()) {
            Ok(fig) => {
                let colours = match &inputs.groups {
                    Some(g) => format!("coloured by group ({})", escape(g)),
                    None => "coloured by intercept (give --groups FILE|obs:KEY to colour by group)".into(),
                };
                let _ = writeln!(
                    h,
                    "<figure>{}<figcaption>The cells' embeddings (the head's weights) on their first two principal components, {colours}.</figcaption></figure>",
                    svg_string(&fig)?
                );
            }
            Err(e) => {
                let _ = writeln!(h, "<p>No embedding figure: {}</p>", escape(&e.to_string()));
            }
        }
        h.push_str("</section>\n");
        summary.sections.push("embedding".into());
        analyses_section(&mut h, inputs, &mut summary)?;
    }
    if let (Some(run), Some(data)) = (&inputs.run, eval) {
        let report = data.report();
        let _ = writeln!(
            h,
            "<section id=\"evaluation\">\n<h2>Evaluation</h2>\n<p>{} bases ({} in peaks){}; the noisy coverage is the baseline.</p>\n<pre>{}</pre>",
            thousands(report.bases),
            thousands(report.bases_in_peaks),
            if run.regions.is_empty() { String::new() } else { format!(" over {}", escape(&run.regions.join(", "))) },
            escape(&format_table(&report))
        );
        let _ = writeln!(
            h,
            "<figure>{}<figcaption>ROC and precision–recall of the per-base peak probability (denoised) and of the noisy coverage as a score, against the clean peaks.</figcaption></figure>\n<figure>{}<figcaption>Each signal against the clean track, log(1 + value), in hexagonal bins.</figcaption></figure>\n</section>",
            svg_string(&RocPrFigure::new(data, &report))?,
            svg_string(&ScatterFigure::new(data, &report))?
        );
        summary.sections.push("evaluation".into());

        // Every file opened and checked once, for all the views.
        let named = |name: &str, path: PathBuf| Named { name: name.into(), path };
        let open = OpenTracks::open(
            &[
                named("noisy", run.noisy.clone()),
                named("denoised", crate::io::prefixed(&run.prediction, ".track.bw")),
                named("clean", run.clean.clone()),
                named("peak probability", crate::io::prefixed(&run.prediction, ".prob.bw")),
            ],
            &[
                named("called", crate::io::prefixed(&run.prediction, ".peaks.narrowPeak")),
                named("clean peaks", run.peaks.clone()),
            ],
        )?;
        let views = if inputs.views.is_empty() {
            default_views(run, &open.chroms(), 3, inputs.seed)?
        } else {
            inputs.views.clone()
        };
        h.push_str("<section id=\"tracks\">\n<h2>Tracks</h2>\n");
        for v in &views {
            let fig = open.figure(v, false, BinSummary::Max, 1200)?;
            let _ = writeln!(h, "<figure>{}<figcaption>{}</figcaption></figure>", svg_string(&fig)?, escape(v));
        }
        h.push_str("</section>\n");
        summary.sections.push("tracks".into());
        summary.views = views;
    }
    h.push_str("<footer><p>Written by chromax; figures are SVG, inline, with their text as text.</p></footer>\n</body>\n</html>\n");
    Ok((h, summary))
}

/// The single-cell analyses found for `inputs`: a TF-activity heatmap per .tsv (with groups)
/// and an ISM logo of each ISM file's first region.
fn analyses_section(h: &mut String, inputs: &ReportInputs, summary: &mut ReportSummary) -> Result<(), Error> {
    let found = find_analyses(&inputs.model, &inputs.analyses)?;
    h.push_str("<section id=\"analyses\">\n<h2>Analyses</h2>\n");
    if found.is_empty() {
        h.push_str("<p>None found: the outputs of `chromax sc tf-activity` and `chromax sc ism` made from this model are drawn here when they lie beside the model directory or are given with --analysis FILE.</p>\n");
    }
    let given = inputs.analyses.len();
    for (i, a) in found.iter().enumerate() {
        let file = escape(&a.path().display().to_string());
        match analysis_figure(a, inputs, &file) {
            Ok((html, section)) => {
                h.push_str(&html);
                summary.sections.extend(section.map(String::from));
            }
            // A file given with --analysis must draw; one found beside the model is named.
            Err(e) if i < given => return Err(e),
            Err(e) => {
                let _ = writeln!(h, "<p>{file} was not drawn: {}</p>", escape(&e.to_string()));
            }
        }
    }
    h.push_str("</section>\n");
    summary.sections.push("analyses".into());
    Ok(())
}

/// One analysis as HTML (a figure, or a paragraph saying what is missing) and the section
/// it adds to the summary.
fn analysis_figure(a: &Analysis, inputs: &ReportInputs, file: &str) -> Result<(String, Option<&'static str>), Error> {
    match a {
        Analysis::TfActivity(p) => match &inputs.groups {
            Some(g) => {
                let fig = super::heatmap::tf_activity_figure(&inputs.model, p, g, 20)?;
                let html = format!(
                    "<figure>{}<figcaption>TF activity ({file}): mean z-score of each group's cells for the {} motifs whose group means vary most.</figcaption></figure>\n",
                    svg_string(&fig)?,
                    fig.motifs.len()
                );
                Ok((html, Some("tf-activity")))
            }
            None => Ok((
                format!("<p>TF activity in {file}: give --groups FILE|obs:KEY to draw it as groups × motifs.</p>\n"),
                None,
            )),
        },
        Analysis::Ism(p) => {
            let ism = super::logo::IsmFile::open(p)?;
            let shown: Vec<String> = ism.groups.iter().take(super::logo::MAX_ROWS).cloned().collect();
            let fig = ism.figure(0, None, super::logo::DEFAULT_SPAN, &shown)?;
            let more = if shown.len() < ism.groups.len() {
                format!(" The first {} of {} groups.", shown.len(), ism.groups.len())
            } else {
                String::new()
            };
            let html = format!(
                "<figure>{}<figcaption>In-silico mutagenesis ({file}): at the {} positions around the strongest effect in the first window, each substitution's letter is as tall as the mean logit change of the group's cells (gains above the line, losses below); the reference base is written under the axis. `chromax plot ism --region N` draws the others.{more}</figcaption></figure>\n",
                svg_string(&fig)?,
                fig.reference.len()
            );
            Ok((html, Some("ism")))
        }
    }
}

/// Writes the report of `inputs` to `out` (evaluating the run's files first, if given).
pub fn write_report(inputs: &ReportInputs, out: &Path) -> Result<ReportSummary, Error> {
    let data = match &inputs.run {
        Some(run) => {
            let opts = crate::denoise::eval::EvalOptions {
                prediction: crate::denoise::eval::Prediction::Files { prefix: run.prediction.clone() },
                noisy: Some(run.noisy.clone()),
                clean: run.clean.clone(),
                peaks: run.peaks.clone(),
                genome: None,
                regions: run.regions.clone(),
            };
            let cpu = crate::backend::cpu::CpuBackend::new();
            Some(crate::denoise::eval::evaluate_data(&cpu, &opts)?)
        }
        None => None,
    };
    write_report_from(inputs, data.as_ref(), out)
}

/// Writes the report of `inputs` to `out`, with an evaluation already made of its run.
pub fn write_report_from(inputs: &ReportInputs, eval: Option<&EvalData>, out: &Path) -> Result<ReportSummary, Error> {
    let (html, summary) = report_html(inputs, eval)?;
    write_atomically(out, |f| std::io::Write::write_all(f, html.as_bytes()))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_flatten_with_f32_values_read_as_written() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"training": {"lr": 0.009999999776482582, "epochs": 3, "x": 0.1, "chroms": ["chrI", "chrII"]}, "name": "a"}"#,
        )
        .expect("json");
        let mut rows = Vec::new();
        flatten("", &v, &mut rows);
        let get = |k: &str| rows.iter().find(|r| r.0 == k).map(|r| r.1.as_str());
        assert_eq!(get("training.lr"), Some("0.01"));
        assert_eq!(get("training.epochs"), Some("3"));
        assert_eq!(get("training.x"), Some("0.1"), "an f64 stays itself");
        assert_eq!(get("training.chroms"), Some("chrI, chrII"));
        assert_eq!(get("name"), Some("a"));
    }
}
