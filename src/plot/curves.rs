//! `chromax plot curves`: a training run's log (`train_log.tsv`) as curves per epoch — the
//! loss, its parts, the validation metrics — with the best epoch marked. Reads the log of
//! either task by its header, so denoising and single-cell runs draw alike.

use super::{colour, plain_axes, render, Figure, FONT_FAMILY};
use crate::error::FileError;
use crate::train::checkpoint::LOG_FILE;
use crate::Error;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// A training log: its numeric columns by name, one value per epoch, and the best epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainLog {
    pub epochs: Vec<f64>,
    pub columns: Vec<(String, Vec<f64>)>,
    /// The epoch marked best (`*`), if any.
    pub best: Option<f64>,
}

impl TrainLog {
    /// Reads `DIR/train_log.tsv`.
    pub fn read(model: &Path) -> Result<TrainLog, FileError> {
        let path = model.join(LOG_FILE);
        if !model.is_dir() {
            return Err(FileError::Argument(format!("--model {}: not a model directory", model.display())));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                FileError::content(
                    model,
                    format!("no {LOG_FILE} here: curves come from the log `chromax denoise train` and `chromax sc train` write beside the model"),
                )
            } else {
                FileError::io(&path)(e)
            }
        })?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
        if header.first() != Some(&"epoch") {
            return Err(FileError::line(
                &path,
                1,
                "the header does not start with 'epoch': not a chromax training log",
            ));
        }
        let best_col = header.iter().position(|h| *h == "best");
        let mut log = TrainLog { epochs: Vec::new(), columns: Vec::new(), best: None };
        let numeric: Vec<usize> = (1..header.len()).filter(|&i| Some(i) != best_col).collect();
        log.columns = numeric.iter().map(|&i| (header[i].to_string(), Vec::new())).collect();
        for (n, line) in lines.enumerate() {
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.len() != header.len() {
                return Err(FileError::line(
                    &path,
                    n as u64 + 2,
                    format!("{} fields where the header has {}", fields.len(), header.len()),
                ));
            }
            let num = |i: usize| -> Result<f64, FileError> {
                fields[i].trim().parse::<f64>().map_err(|_| {
                    FileError::line(&path, n as u64 + 2, format!("{} '{}' is not a number", header[i], fields[i]))
                })
            };
            let epoch = num(0)?;
            log.epochs.push(epoch);
            for (k, &i) in numeric.iter().enumerate() {
                let v = num(i)?;
                log.columns[k].1.push(v);
            }
            if best_col.is_some_and(|b| fields[b].trim() == "*") {
                log.best = Some(epoch);
            }
        }
        if log.epochs.is_empty() {
            return Err(FileError::content(&path, "the log holds no epoch yet"));
        }
        Ok(log)
    }

    fn column(&self, name: &str) -> Option<&[f64]> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

/// A panel: a title and the columns it draws.
struct Panel {
    title: &'static str,
    y_desc: &'static str,
    series: Vec<String>,
}

/// The figure of a training log.
pub struct CurvesFigure {
    pub log: TrainLog,
    pub title: String,
    panels: Vec<Panel>,
}

const WIDTH: u32 = 1000;
const PANEL_HEIGHT: u32 = 280;
const TITLE_HEIGHT: u32 = 40;

impl CurvesFigure {
    /// Panels with the log's columns: the loss; its parts (MSE, BCE) where logged; the
    /// validation (and training) metrics.
    pub fn new(log: TrainLog, title: String) -> CurvesFigure {
        let names: Vec<&str> = log.columns.iter().map(|(n, _)| n.as_str()).collect();
        let pick = |f: &dyn Fn(&str) -> bool| names.iter().filter(|n| f(n)).map(|n| n.to_string()).collect::<Vec<_>>();
        let mut panels = vec![Panel { title: "Loss", y_desc: "loss", series: pick(&|n| n.ends_with("_loss")) }];
        // The loss's parts each on their own scale (MSE is in coverage², BCE near 0.1–1).
        let mse = pick(&|n| n.ends_with("_mse"));
        if !mse.is_empty() {
            panels.push(Panel { title: "Loss part: MSE (coverage)", y_desc: "MSE", series: mse });
        }
        let bce = pick(&|n| n.ends_with("_bce"));
        if !bce.is_empty() {
            panels.push(Panel { title: "Loss part: BCE (peaks)", y_desc: "BCE", series: bce });
        }
        let metrics = pick(&|n| n.contains("pearson") || n.contains("auroc") || n.contains("auprc"));
        if !metrics.is_empty() {
            panels.push(Panel { title: "Metrics", y_desc: "Pearson r / AUROC / AUPRC", series: metrics });
        }
        CurvesFigure { log, title, panels }
    }
}

impl Figure for CurvesFigure {
    fn size(&self) -> (u32, u32) {
        (WIDTH, TITLE_HEIGHT + PANEL_HEIGHT * self.panels.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let (title, rest) = root.split_vertically(TITLE_HEIGHT);
        title.titled(&self.title, (FONT_FAMILY, 20).into_font()).map_err(e)?;
        let panels = rest.split_evenly((self.panels.len(), 1));
        let (first, last) = (self.log.epochs[0], self.log.epochs[self.log.epochs.len() - 1]);
        let (x0, x1) = if last > first { (first - 0.5, last + 0.5) } else { (first - 1.0, first + 1.0) };
        for (panel, area) in self.panels.iter().zip(&panels) {
            let series: Vec<(&str, &[f64])> =
                panel.series.iter().filter_map(|n| self.log.column(n).map(|v| (n.as_str(), v))).collect();
            let finite = series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| v.is_finite());
            let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
            let pad = ((hi - lo) * 0.08).max(1e-3);
            let mut chart = ChartBuilder::on(area)
                .caption(panel.title, (FONT_FAMILY, 15))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(x0..x1, (lo - pad)..(hi + pad))
                .map_err(e)?;
            plain_axes(&mut chart.configure_mesh())
                .x_desc("epoch")
                .y_desc(panel.y_desc)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .draw()
                .map_err(e)?;
            if let Some(best) = self.log.best {
                let grey = RGBColor(120, 120, 120);
                chart
                    .draw_series(LineSeries::new([(best, lo - pad), (best, hi + pad)], grey.stroke_width(1)))
                    .map_err(e)?
                    .label(format!("best epoch ({best:.0})"))
                    .legend(move |(x, y)| PathElement::new([(x, y - 6), (x, y + 6)], grey.stroke_width(2)));
            }
            for (i, (name, values)) in series.iter().enumerate() {
                let c = colour(i);
                let points: Vec<(f64, f64)> = self
                    .log
                    .epochs
                    .iter()
                    .zip(values.iter())
                    .filter(|(_, v)| v.is_finite())
                    .map(|(&x, &v)| (x, v))
                    .collect();
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
                    .map_err(e)?
                    .label(name.replace('_', " "))
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(2)));
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled()))).map_err(e)?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font((FONT_FAMILY, 12))
                // Metrics rise and losses fall: the legend where the curves are not.
                .position(if panel.title == "Metrics" {
                    SeriesLabelPosition::LowerRight
                } else {
                    SeriesLabelPosition::UpperRight
                })
                .draw()
                .map_err(e)?;
        }
        Ok(())
    }
}

/// Reads `model`'s training log and writes its curves to `out` (.svg or .png).
pub fn plot_curves(model: &Path, out: &Path) -> Result<CurvesFigure, Error> {
    let log = TrainLog::read(model)?;
    let name = model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let title = match log.best {
        Some(b) => format!("Training of {name}: {} epochs, best {b:.0}", log.epochs.len()),
        None => format!("Training of {name}: {} epochs", log.epochs.len()),
    };
    let figure = CurvesFigure::new(log, title);
    render(&figure, out)?;
    Ok(figure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_read_by_their_header_and_bad_ones_are_named() {
        let dir = crate::io::scratch_dir("plot-curves-log");
        std::fs::write(
            dir.join(LOG_FILE),
            "epoch\ttrain_loss\tval_loss\tval_auroc\tseconds\tbest\n1\t0.9\t0.8\t0.6\t1.0\t\n2\t0.7\t0.75\t0.7\t1.0\t*\n3\t0.6\t0.77\t0.69\t1.0\t\n",
        )
        .expect("write");
        let log = TrainLog::read(&dir).expect("read");
        assert_eq!(log.epochs, vec![1.0, 2.0, 3.0]);
        assert_eq!(log.best, Some(2.0));
        assert_eq!(log.column("val_auroc"), Some(&[0.6, 0.7, 0.69][..]));
        let fig = CurvesFigure::new(log, String::new());
        let titles: Vec<&str> = fig.panels.iter().map(|p| p.title).collect();
        assert_eq!(titles, ["Loss", "Metrics"]);
        std::fs::write(dir.join(LOG_FILE), "epoch\ttrain_loss\n1\tx\n").expect("write");
        let e = TrainLog::read(&dir).expect_err("bad");
        assert!(e.to_string().contains("line 2") && e.to_string().contains("'x' is not a number"), "{e}");
        std::fs::remove_file(dir.join(LOG_FILE)).expect("rm");
        let e = TrainLog::read(&dir).expect_err("none");
        assert!(e.to_string().contains("no train_log.tsv"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
