//! 10x Genomics HDF5 feature-barcode matrices: Cell Ranger ATAC's
//! `filtered_peak_bc_matrix.h5` and Cell Ranger ARC's `filtered_feature_bc_matrix.h5`.
//!
//! Layout read (group `matrix`): `shape` = [features, barcodes]; `data`, `indices`, `indptr`
//! in CSC form with one column per barcode (each barcode's column lists its feature rows);
//! `barcodes` and `features/{id, name, feature_type, interval}` as fixed-length (`S`) or
//! variable-length strings. Peaks are named `chr1:100-600` (BED coordinates) in
//! `features/id` (Cell Ranger ATAC; also its older files), `features/name` or
//! `features/interval`. Where `features/feature_type` is present, only rows of type `Peaks`
//! are kept, so an ARC multiome file gives its peaks and leaves out its genes.

use super::bed::Interval;
use super::h5ad::{parse_peak_name, Compressed, SparseCounts, SparseGroup};
use crate::error::FileError;
use hdf5_pure::{Dataset, File};
use std::path::Path;

/// A 10x matrix as read: features × barcodes counts (CSC), and which feature rows are peaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenxMatrix {
    /// features × barcodes, compressed by column (barcode).
    pub counts: SparseCounts,
    pub barcodes: Vec<String>,
    /// The feature rows that are peaks, ascending (all rows for a peaks-only file).
    pub peak_rows: Vec<u32>,
    /// The peak of each row in `peak_rows`.
    pub peaks: Vec<Interval>,
}

/// Whether an HDF5 file has the 10x layout (a `matrix` group).
pub fn is_10x_h5(path: &Path) -> bool {
    File::open_streaming(path).map(|f| f.group("matrix").is_ok()).unwrap_or(false)
}

/// Reads a 10x HDF5 feature-barcode matrix; values by
/// [`count_from_value`](super::h5ad::count_from_value).
pub fn read_10x_h5(path: &Path) -> Result<TenxMatrix, FileError> {
    let head = open_10x_h5(path)?;
    let TenxHead { counts, barcodes, peak_rows, peaks } = head;
    Ok(TenxMatrix { counts: counts.read_all()?, barcodes, peak_rows, peaks })
}

/// A 10x matrix opened: names and peaks read, the counts ([`SparseGroup`], features ×
/// barcodes, CSC) left to be read a window at a time.
pub struct TenxHead {
    pub counts: SparseGroup,
    pub barcodes: Vec<String>,
    /// The feature rows that are peaks, ascending.
    pub peak_rows: Vec<u32>,
    /// The peak of each row in `peak_rows`.
    pub peaks: Vec<Interval>,
}

/// [`read_10x_h5`] up to the counts, which are opened, not read.
pub fn open_10x_h5(path: &Path) -> Result<TenxHead, FileError> {
    let bad = |what: String| FileError::content(path, what);
    crate::io::hdf5::check_hdf5_complete(path)?;
    let f = File::open_streaming(path).map_err(|e| bad(format!("not an HDF5 file: {e}")))?;
    let m = f.group("matrix").map_err(|_| {
        bad("no 'matrix' group: expected a 10x feature-barcode matrix (Cell Ranger ATAC/ARC .h5)".into())
    })?;
    let lim = crate::io::hdf5::SizeLimit::of(path)?;
    let strings =
        |name: &str| lim.whole(m.dataset(name), Dataset::read_string).map_err(|e| format!("matrix/{name}: {e}"));
    let shape = lim.whole(m.dataset("shape"), Dataset::read_i64).map_err(|e| bad(format!("matrix/shape: {e}")))?;
    let &[features, n_barcodes] = shape.as_slice() else {
        return Err(bad(format!("matrix/shape is {shape:?}; expected [features, barcodes]")));
    };
    if features < 0 || n_barcodes < 0 {
        return Err(bad(format!("matrix/shape is {shape:?}; expected [features, barcodes]")));
    }
    let (features, n_barcodes) = (features as usize, n_barcodes as usize);
    let barcodes = strings("barcodes").map_err(&bad)?;
    if barcodes.len() != n_barcodes {
        return Err(bad(format!("matrix/barcodes has {} names; matrix/shape says {n_barcodes}", barcodes.len())));
    }

    // The feature columns are the file's real rows: matrix/shape must agree with them before
    // anything is sized by it (a damaged shape's rows would otherwise be allocated).
    let no_coordinates = |found: &str| {
        bad(format!(
            "no peak coordinates: expected matrix/features/id, name or interval to name each peak as \
             chr1:100-600 (or chr1-100-600, chr1_100_600){found}"
        ))
    };
    let columns: Vec<(&str, Vec<String>)> = ["id", "name", "interval"]
        .into_iter()
        .filter_map(|column| strings(&format!("features/{column}")).ok().map(|names| (column, names)))
        .collect();
    if columns.is_empty() {
        return Err(no_coordinates(" (none of them is present)"));
    }
    if let Some((column, names)) = columns.iter().find(|(_, names)| names.len() != features) {
        return Err(bad(format!("matrix/features/{column} has {} rows; matrix/shape says {features}", names.len())));
    }
    let n_features = u32::try_from(features)
        .map_err(|_| bad(format!("matrix/shape says {features} features, beyond the 2^32 rows supported")))?;

    let peak_rows: Vec<u32> = match strings("features/feature_type") {
        Ok(types) if types.len() == features => (0..n_features).filter(|&r| types[r as usize] == "Peaks").collect(),
        Ok(types) => {
            return Err(bad(format!(
                "matrix/features/feature_type has {} rows; matrix/shape says {features}",
                types.len()
            )))
        }
        Err(_) => (0..n_features).collect(),
    };
    if peak_rows.is_empty() {
        return Err(bad("matrix/features/feature_type has no row of type 'Peaks': not a peak matrix".into()));
    }
    // The first of id, name, interval that names every peak row as chr:start-end.
    let mut seen = Vec::new();
    let mut peaks = None;
    for (column, names) in &columns {
        let parsed: Option<Vec<Interval>> = peak_rows.iter().map(|&r| parse_peak_name(&names[r as usize])).collect();
        if parsed.is_some() {
            peaks = parsed;
            break;
        }
        if let Some(&r) = peak_rows.iter().find(|&&r| parse_peak_name(&names[r as usize]).is_none()) {
            seen.push(format!("features/{column} row {r} is '{}'", names[r as usize]));
        }
    }
    let peaks = peaks.ok_or_else(|| no_coordinates(&format!("; found {}", seen.join(", "))))?;
    let counts = SparseGroup::open(path, lim, &m, "matrix", (features, n_barcodes), Compressed::Columns)?;
    Ok(TenxHead { counts, barcodes, peak_rows, peaks })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (`fuzz/regressions/tenx/`): a 10x file without feature types whose
    /// matrix/shape was damaged to claim 2^30 features made the reader allocate 4 GiB of rows.
    #[test]
    fn a_shape_its_feature_columns_do_not_have_is_an_error_not_an_allocation() {
        let dir = crate::io::scratch_dir("tenx-shape");
        let path = dir.join("damaged.h5");
        std::fs::write(&path, include_bytes!("../../fuzz/regressions/tenx/shape_claims_4g_features.h5"))
            .expect("write");
        let msg = read_10x_h5(&path).expect_err("a damaged shape").to_string();
        assert_eq!(msg, format!("{}: matrix/features/id has 6 rows; matrix/shape says 1073741830", path.display()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A 10x file cut short (a copy that stopped) is named truncated, not left to the HDF5
    /// reader's message about an address past the end.
    #[test]
    fn a_truncated_10x_file_is_named_truncated() {
        let dir = crate::io::scratch_dir("tenx-cut");
        let whole = include_bytes!("../../fuzz/seeds/tenx/filtered_peak_bc_matrix.h5");
        let path = dir.join("cut.h5");
        std::fs::write(&path, &whole[..whole.len() * 2 / 3]).expect("write");
        let msg = read_10x_h5(&path).expect_err("cut").to_string();
        assert!(msg.contains("cut.h5") && msg.contains("truncated"), "{msg}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Found by fuzzing (`fuzz/regressions/tenx/`): matrix/indptr's dataspace damaged to claim
    /// 2.8·10^14 and 1.3·10^9 values in a 13 KiB file; the reader allocated for them first
    /// (one request over ASan's 1 TiB limit, one of 10 GB).
    #[test]
    fn a_dataset_declaring_more_than_the_file_holds_is_an_error_not_an_allocation() {
        let dir = crate::io::scratch_dir("tenx-declared");
        for (name, bytes) in [
            ("petabytes.h5", &include_bytes!("../../fuzz/regressions/tenx/indptr_declares_petabytes.h5")[..]),
            ("10gb.h5", &include_bytes!("../../fuzz/regressions/tenx/indptr_declares_10_gb.h5")[..]),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, bytes).expect("write");
            let msg = read_10x_h5(&path).expect_err("damaged").to_string();
            assert!(msg.contains("matrix/indptr: declares") && msg.contains("the file is damaged"), "{msg}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
