//! Cell groups for the analyses (ISM, variant effects): a barcode → label table
//! (`--groups FILE`), an obs column of the training AnnData (`--groups obs:KEY`), one group
//! per listed cell (`--cells FILE`), or all cells as one group.

use crate::error::FileError;
use crate::io::barcodes::{is_label_header, read_barcode_labels};
use crate::io::h5ad::read_h5ad_obs_column;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Where the groups come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSource {
    /// Tab-separated `barcode<TAB>label` lines (a `barcode` header line is skipped).
    File(PathBuf),
    /// A column of the training matrix's obs (an .h5ad).
    Obs(String),
}

impl GroupSource {
    /// `obs:KEY` or a file path.
    pub fn parse(s: &str) -> GroupSource {
        match s.strip_prefix("obs:") {
            Some(key) => GroupSource::Obs(key.to_string()),
            None => GroupSource::File(PathBuf::from(s)),
        }
    }
}

/// Named groups of the model's cells (indices into its head), in name order, none empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Groups {
    pub names: Vec<String>,
    pub members: Vec<Vec<u32>>,
}

impl Groups {
    /// Every cell of the model as one group, `all`.
    pub fn all(cells: usize) -> Groups {
        Groups { names: vec!["all".into()], members: vec![(0..cells as u32).collect()] }
    }

    /// One group per listed barcode, in the list's order.
    pub fn per_cell(list: &[String], model_cells: &[String], origin: &Path) -> Result<Groups, FileError> {
        let index = cell_index(model_cells);
        let mut members = Vec::with_capacity(list.len());
        for (i, b) in list.iter().enumerate() {
            let Some(&c) = index.get(b.as_str()) else {
                return Err(FileError::line(origin, i as u64 + 1, format!("barcode '{b}' is not a cell of the model")));
            };
            members.push(vec![c]);
        }
        if members.is_empty() {
            return Err(FileError::content(origin, "no barcodes"));
        }
        Ok(Groups { names: list.to_vec(), members })
    }

    /// The groups of `source` over the model's cells. Cells the source does not name belong
    /// to no group; a barcode the model does not have is an error (it names the line), so is
    /// a source that leaves every group empty. `training_matrix` is the matrix the model was
    /// trained on (for `obs:KEY`).
    pub fn read(
        source: &GroupSource,
        model_cells: &[String],
        training_matrix: Option<&Path>,
    ) -> Result<Groups, FileError> {
        let index = cell_index(model_cells);
        let mut by_label: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        match source {
            GroupSource::File(path) => {
                for (n, barcode, label) in read_barcode_labels(path, "group")? {
                    if is_label_header(n, &barcode) && !index.contains_key(barcode.as_str()) {
                        continue;
                    }
                    let Some(&c) = index.get(barcode.as_str()) else {
                        return Err(FileError::line(
                            path,
                            n,
                            format!(
                                "barcode '{barcode}' is not a cell of the model ({} cells, e.g. '{}')",
                                model_cells.len(),
                                model_cells.first().map_or("", |s| s.as_str())
                            ),
                        ));
                    };
                    by_label.entry(label).or_default().push(c);
                }
            }
            GroupSource::Obs(key) => {
                let Some(matrix) = training_matrix else {
                    return Err(FileError::Argument(format!(
                        "--groups obs:{key}: the model's training matrix is not known; give --groups FILE (barcode<TAB>group)"
                    )));
                };
                if !matrix.extension().is_some_and(|e| e.eq_ignore_ascii_case("h5ad")) {
                    return Err(FileError::Argument(format!(
                        "--groups obs:{key}: the model was trained on {}, not an .h5ad with obs columns; give --groups FILE",
                        matrix.display()
                    )));
                }
                let (names, values) = read_h5ad_obs_column(matrix, key)?;
                for (barcode, label) in names.iter().zip(values) {
                    // The training filters may have dropped cells: those are in no group.
                    if let Some(&c) = index.get(barcode.as_str()) {
                        by_label.entry(label).or_default().push(c);
                    }
                }
            }
        }
        if by_label.is_empty() {
            return Err(FileError::Argument(format!("{source:?}: no cell of the model is in any group")));
        }
        let (names, mut members): (Vec<String>, Vec<Vec<u32>>) = by_label.into_iter().unzip();
        for m in &mut members {
            m.sort_unstable();
            m.dedup();
        }
        Ok(Groups { names, members })
    }

    /// The mean of each group's rows of `w` (cells × dim): groups × dim.
    pub fn mean_rows(&self, w: &[f32], dim: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; self.names.len() * dim];
        for (g, members) in self.members.iter().enumerate() {
            let mut acc = vec![0.0f64; dim];
            for &c in members {
                for (a, &v) in acc.iter_mut().zip(&w[c as usize * dim..(c as usize + 1) * dim]) {
                    *a += v as f64;
                }
            }
            for (o, a) in out[g * dim..(g + 1) * dim].iter_mut().zip(acc) {
                *o = (a / members.len() as f64) as f32;
            }
        }
        out
    }
}

fn cell_index(cells: &[String]) -> HashMap<&str, u32> {
    cells.iter().enumerate().map(|(i, c)| (c.as_str(), i as u32)).collect()
}
