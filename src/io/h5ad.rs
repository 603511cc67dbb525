//! AnnData (`.h5ad`) files, written and read with hdf5-pure (pure Rust: no libhdf5 to
//! install). What is written follows the AnnData on-disk specification: root attributes
//! `encoding-type = anndata`, `X` as a `csr_matrix` group (`data`, `indices`, `indptr`,
//! `shape`), `obs` and `var` as `dataframe` groups (`_index`, `column-order`, string and
//! numeric columns), `obsm/<name>` as dense arrays, and empty `uns`, `layers`, `obsp`, `varp`,
//! `varm`. Datasets are contiguous (hdf5-pure's chunk sizes above 65,535 elements are read
//! wrongly by HDF5 2.0, which recent h5py ships).
//!
//! Reading count matrices: [`read_h5ad_counts`] (X as counts with one peak per var row),
//! with [`count_from_value`] and [`parse_peak_name`] shared by the 10x ([`super::tenx`])
//! and Matrix Market ([`super::mtx`]) readers.

use super::atomic::AtomicFile;
use super::bed::Interval;
use crate::error::FileError;
use hdf5_pure::{AttrValue, DType, Dataset, File, FileBuilder, Group, GroupBuilder};
use std::path::Path;

/// A column of an obs/var dataframe.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    F64(Vec<f64>),
    I64(Vec<i64>),
    Str(Vec<String>),
}

/// A sparse matrix in CSR form, rows × columns.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrF32 {
    pub rows: usize,
    pub cols: usize,
    pub indptr: Vec<i64>,
    pub indices: Vec<i64>,
    pub data: Vec<f32>,
}

/// Everything an AnnData file written by chromax holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnnData {
    /// cells × features, or none (an AnnData without X, e.g. embeddings only).
    pub x: Option<CsrF32>,
    pub obs_names: Vec<String>,
    pub obs: Vec<(String, Column)>,
    pub var_names: Vec<String>,
    pub var: Vec<(String, Column)>,
    /// name → (values row-major, columns).
    pub obsm: Vec<(String, Vec<f32>, usize)>,
}

fn text(s: &str) -> AttrValue {
    AttrValue::VarLenString(s.to_owned())
}

fn encoding(g: &mut GroupBuilder, kind: &str, version: &str) {
    g.set_attr("encoding-type", text(kind));
    g.set_attr("encoding-version", text(version));
}

fn dataframe(b: &mut FileBuilder, name: &str, index: &[String], columns: &[(String, Column)]) {
    let mut g = b.create_group(name);
    encoding(&mut g, "dataframe", "0.2.0");
    g.set_attr("_index", text("_index"));
    let order: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
    // anndata writes an empty column order as an empty float64 array.
    g.set_attr(
        "column-order",
        if order.is_empty() { AttrValue::F64Array(vec![]) } else { AttrValue::VarLenStringArray(order) },
    );
    let idx: Vec<&str> = index.iter().map(String::as_str).collect();
    g.create_dataset("_index")
        .with_vlen_strings(&idx)
        .set_attr("encoding-type", text("string-array"))
        .set_attr("encoding-version", text("0.2.0"));
    for (n, c) in columns {
        let ds = g.create_dataset(n);
        let kind = match c {
            Column::F64(v) => {
                ds.with_f64_data(v);
                "array"
            }
            Column::I64(v) => {
                ds.with_i64_data(v);
                "array"
            }
            Column::Str(v) => {
                let v: Vec<&str> = v.iter().map(String::as_str).collect();
                ds.with_vlen_strings(&v);
                "string-array"
            }
        };
        ds.set_attr("encoding-type", text(kind)).set_attr("encoding-version", text("0.2.0"));
    }
    b.add_group(g.finish());
}

/// Writes an AnnData file atomically.
pub fn write_h5ad(path: &Path, a: &AnnData) -> Result<(), FileError> {
    let mut b = FileBuilder::new();
    b.set_attr("encoding-type", text("anndata"));
    b.set_attr("encoding-version", text("0.1.0"));
    if let Some(x) = &a.x {
        let mut g = b.create_group("X");
        encoding(&mut g, "csr_matrix", "0.1.0");
        g.set_attr("shape", AttrValue::I64Array(vec![x.rows as i64, x.cols as i64]));
        g.create_dataset("data").with_f32_data(&x.data);
        g.create_dataset("indices").with_i64_data(&x.indices);
        g.create_dataset("indptr").with_i64_data(&x.indptr);
        b.add_group(g.finish());
    }
    dataframe(&mut b, "obs", &a.obs_names, &a.obs);
    dataframe(&mut b, "var", &a.var_names, &a.var);
    let mut obsm = b.create_group("obsm");
    encoding(&mut obsm, "dict", "0.1.0");
    for (name, values, cols) in &a.obsm {
        obsm.create_dataset(name)
            .with_f32_data(values)
            .with_shape(&[a.obs_names.len() as u64, *cols as u64])
            .set_attr("encoding-type", text("array"))
            .set_attr("encoding-version", text("0.2.0"));
    }
    b.add_group(obsm.finish());
    for name in ["uns", "layers", "obsp", "varp", "varm"] {
        let mut g = b.create_group(name);
        encoding(&mut g, "dict", "0.1.0");
        b.add_group(g.finish());
    }
    let file = AtomicFile::new(path)?;
    b.write(file.path()).map_err(|e| FileError::content(path, format!("writing the AnnData file failed: {e}")))?;
    file.commit()
}

/// Reads X (CSR or CSC, converted to CSR), obs/var names of an AnnData file.
pub fn read_h5ad_x(path: &Path) -> Result<(CsrF32, Vec<String>, Vec<String>), FileError> {
    let bad = |what: String| FileError::content(path, what);
    let f = hdf5_pure::File::open_streaming(path).map_err(|e| bad(format!("not an HDF5 file: {e}")))?;
    let xg =
        f.group("X").map_err(|_| bad("no X group (a dense X is not supported: store it as a sparse matrix)".into()))?;
    let attrs = xg.attrs().map_err(|e| bad(e.to_string()))?;
    let kind = attrs.get("encoding-type").and_then(|v| v.as_str()).unwrap_or("").to_string();
    let shape = attrs.get("shape").and_then(|v| v.to_i64s()).ok_or_else(|| bad("X has no shape attribute".into()))?;
    let read_i64 = |name: &str| xg.dataset(name).and_then(|d| d.read_i64()).map_err(|e| bad(format!("X/{name}: {e}")));
    let (indptr, indices) = (read_i64("indptr")?, read_i64("indices")?);
    let data = xg.dataset("data").and_then(|d| d.read_f32()).map_err(|e| bad(format!("X/data: {e}")))?;
    let names = |group: &str| -> Result<Vec<String>, FileError> {
        let g = f.group(group).map_err(|_| bad(format!("no {group} group")))?;
        let index = g
            .attrs()
            .ok()
            .and_then(|a| a.get("_index").and_then(|v| v.as_str()).map(String::from))
            .unwrap_or_else(|| "_index".into());
        g.dataset(&index).and_then(|d| d.read_string()).map_err(|e| bad(format!("{group}/{index}: {e}")))
    };
    let (obs, var) = (names("obs")?, names("var")?);
    let (rows, cols) = match shape.as_slice() {
        &[r, c] if r >= 0 && c >= 0 => (r as usize, c as usize),
        other => return Err(bad(format!("X has shape {other:?}; expected two non-negative sizes"))),
    };
    let x = match kind.as_str() {
        "csr_matrix" => CsrF32 { rows, cols, indptr, indices, data },
        "csc_matrix" => transpose(&CsrF32 { rows: cols, cols: rows, indptr, indices, data }),
        other => return Err(bad(format!("X is '{other}'; expected csr_matrix or csc_matrix"))),
    };
    Ok((x, obs, var))
}

/// Reads the obs names and one dense `obsm` array (obs × columns, row-major, f32) of an
/// AnnData file: what `chromax sc embed` writes, read back.
pub fn read_h5ad_obsm(path: &Path, name: &str) -> Result<(Vec<String>, Vec<f32>, usize), FileError> {
    let bad = |what: String| FileError::content(path, what);
    let f = hdf5_pure::File::open_streaming(path).map_err(|e| bad(format!("not an HDF5 file: {e}")))?;
    let obs = f.group("obs").map_err(|_| bad("no obs group".into()))?;
    let index = obs
        .attrs()
        .ok()
        .and_then(|a| a.get("_index").and_then(|v| v.as_str()).map(String::from))
        .unwrap_or_else(|| "_index".into());
    let names = obs.dataset(&index).and_then(|d| d.read_string()).map_err(|e| bad(format!("obs/{index}: {e}")))?;
    let ds = f
        .group("obsm")
        .and_then(|g| g.dataset(name))
        .map_err(|_| bad(format!("no obsm/{name} (a dense array) in this file")))?;
    let shape = ds.shape().map_err(|e| bad(format!("obsm/{name}: {e}")))?;
    let values = ds.read_f32().map_err(|e| bad(format!("obsm/{name}: {e}")))?;
    match shape.as_slice() {
        [rows, cols] if *rows as usize == names.len() && values.len() == names.len() * *cols as usize => {
            Ok((names, values, *cols as usize))
        }
        other => Err(bad(format!("obsm/{name} has shape {other:?}, expected ({}, columns)", names.len()))),
    }
}

/// The transpose of a CSR matrix, in CSR form (columns sorted within rows).
pub fn transpose(m: &CsrF32) -> CsrF32 {
    let mut counts = vec![0i64; m.cols + 1];
    for &c in &m.indices {
        counts[c as usize + 1] += 1;
    }
    for i in 0..m.cols {
        counts[i + 1] += counts[i];
    }
    let mut next = counts.clone();
    let (mut indices, mut data) = (vec![0i64; m.indices.len()], vec![0f32; m.data.len()]);
    for r in 0..m.rows {
        for k in m.indptr[r] as usize..m.indptr[r + 1] as usize {
            let c = m.indices[k] as usize;
            let at = next[c] as usize;
            indices[at] = r as i64;
            data[at] = m.data[k];
            next[c] += 1;
        }
    }
    CsrF32 { rows: m.cols, cols: m.rows, indptr: counts, indices, data }
}

// ---------------------------------------------------------------------------------------
// Reading count matrices: X of an AnnData file and the sparse groups of 10x HDF5 files
// ([`super::tenx`]) share these helpers.
// ---------------------------------------------------------------------------------------

/// Which axis the `indptr` of a compressed sparse matrix runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compressed {
    /// CSR: `indptr` has one entry per row (+1), `indices` are columns.
    Rows,
    /// CSC: `indptr` has one entry per column (+1), `indices` are rows.
    Columns,
}

/// A compressed sparse matrix (CSR or CSC) whose stored values have been turned into counts
/// by [`count_from_value`]. A stored zero stays here as a 0 entry; the conversion to
/// [`CsrCounts`](crate::store::matrix::CsrCounts) drops it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseCounts {
    pub rows: usize,
    pub cols: usize,
    pub compressed: Compressed,
    /// Length: rows + 1 (CSR) or cols + 1 (CSC); non-decreasing from 0 to nnz.
    pub indptr: Vec<u64>,
    /// Column (CSR) or row (CSC) of each entry, within bounds.
    pub indices: Vec<u32>,
    pub counts: Vec<u32>,
}

impl SparseCounts {
    /// Calls `f(row, col, count)` for every stored entry, along the compressed axis in order.
    pub fn for_each(&self, mut f: impl FnMut(u32, u32, u32)) {
        for major in 0..self.indptr.len().saturating_sub(1) {
            let (a, b) = (self.indptr[major] as usize, self.indptr[major + 1] as usize);
            for k in a..b {
                let (minor, n) = (self.indices[k], self.counts[k]);
                match self.compressed {
                    Compressed::Rows => f(major as u32, minor, n),
                    Compressed::Columns => f(minor, major as u32, n),
                }
            }
        }
    }
}

/// A stored matrix value as a count, the rule every matrix reader uses: 0 stays 0 (an
/// explicit zero, i.e. absent); any `v > 0` becomes `max(1, round(v))`, so a fractional
/// value (a normalised or TF-IDF-weighted matrix, 0.3) still marks the peak present;
/// values beyond `u32::MAX` saturate. Negative, NaN and infinite values are errors.
///
/// ```
/// use chromax::io::h5ad::count_from_value;
/// assert_eq!(count_from_value(0.0), Ok(0));
/// assert_eq!(count_from_value(0.3), Ok(1));
/// assert_eq!(count_from_value(2.5), Ok(3));
/// assert!(count_from_value(-1.0).is_err());
/// ```
pub fn count_from_value(v: f64) -> Result<u32, String> {
    if v == 0.0 {
        Ok(0)
    } else if v > 0.0 && v.is_finite() {
        // `as` saturates at u32::MAX.
        Ok((v.round() as u32).max(1))
    } else {
        Err(format!("value {v} is not a count: expected a finite value ≥ 0"))
    }
}

/// Parses a peak name `chr1:100-600`, `chr1-100-600` or `chr1_100_600` (start and end as
/// written, i.e. 0-based half-open as in BED, which is how Cell Ranger names peaks). The two
/// numbers are taken from the right, so chromosome names holding `_` or `-`
/// (`chrUn_KI270302v1`, `HLA-A*01`) are kept whole. `None` when the name is not of that form
/// or `start ≥ end`.
///
/// ```
/// use chromax::io::h5ad::parse_peak_name;
/// let p = parse_peak_name("chrUn_KI270302v1:100-600").unwrap();
/// assert_eq!((p.chrom.as_str(), p.start, p.end), ("chrUn_KI270302v1", 100, 600));
/// assert!(parse_peak_name("ENSG00000243485").is_none());
/// ```
pub fn parse_peak_name(name: &str) -> Option<Interval> {
    fn last_number(s: &str) -> Option<(&str, u64)> {
        let cut = s.rfind([':', '-', '_'])?;
        let digits = &s[cut + 1..];
        if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((&s[..cut], digits.parse().ok()?))
    }
    let (rest, end) = last_number(name.trim())?;
    let (chrom, start) = last_number(rest)?;
    (!chrom.is_empty() && start < end).then(|| Interval { chrom: chrom.to_string(), start, end })
}

/// Elements read per window when streaming a large dataset.
const WINDOW: u64 = 1 << 20;

fn element_count(ds: &Dataset) -> Result<u64, hdf5_pure::Error> {
    Ok(ds.shape()?.iter().product())
}

/// Reads the sparse matrix stored as `group/{indptr, indices, data}` with the given shape,
/// `indices` checked against the minor axis, `data` converted by [`count_from_value`]; the
/// two long arrays are read a window at a time so no f64 copy of the data is ever whole.
pub(crate) fn read_sparse_group(
    path: &Path,
    g: &Group,
    name: &str,
    (rows, cols): (usize, usize),
    compressed: Compressed,
) -> Result<SparseCounts, FileError> {
    let bad = |what: String| FileError::content(path, what);
    let open = |ds: &str| g.dataset(ds).map_err(|e| bad(format!("{name}/{ds}: {e}")));
    let (major, minor) = match compressed {
        Compressed::Rows => (rows, cols),
        Compressed::Columns => (cols, rows),
    };
    let indptr_i64 = open("indptr")?.read_i64().map_err(|e| bad(format!("{name}/indptr: {e}")))?;
    let (ds_indices, ds_data) = (open("indices")?, open("data")?);
    let nnz = element_count(&ds_indices).map_err(|e| bad(format!("{name}/indices: {e}")))?;
    let n_data = element_count(&ds_data).map_err(|e| bad(format!("{name}/data: {e}")))?;
    if nnz != n_data {
        return Err(bad(format!("{name}/indices has {nnz} entries but {name}/data has {n_data}")));
    }
    if indptr_i64.len() != major + 1 {
        return Err(bad(format!(
            "{name}/indptr has {} entries; the shape {rows} × {cols} ({}) needs {}",
            indptr_i64.len(),
            if compressed == Compressed::Rows { "CSR" } else { "CSC" },
            major + 1
        )));
    }
    if indptr_i64.first() != Some(&0)
        || indptr_i64.windows(2).any(|w| w[1] < w[0])
        || indptr_i64.last().map(|&v| v as u64) != Some(nnz)
    {
        return Err(bad(format!("{name}/indptr must rise from 0 to the number of entries ({nnz})")));
    }
    let indptr: Vec<u64> = indptr_i64.into_iter().map(|v| v as u64).collect();

    let mut indices = Vec::with_capacity(nnz as usize);
    let mut counts = Vec::with_capacity(nnz as usize);
    let mut start = 0u64;
    while start < nnz {
        let n = WINDOW.min(nnz - start);
        let window = ds_indices.read_i64_rows(start, n).map_err(|e| bad(format!("{name}/indices: {e}")))?;
        for (k, v) in window.into_iter().enumerate() {
            if v < 0 || v as u64 >= minor as u64 {
                return Err(bad(format!(
                    "{name}/indices[{}] = {v} is outside 0..{minor} (the matrix is {rows} × {cols})",
                    start + k as u64
                )));
            }
            indices.push(v as u32);
        }
        let window = ds_data.read_f64_rows(start, n).map_err(|e| bad(format!("{name}/data: {e}")))?;
        for (k, v) in window.into_iter().enumerate() {
            counts.push(count_from_value(v).map_err(|e| bad(format!("{name}/data[{}]: {e}", start + k as u64)))?);
        }
        start += n;
    }
    Ok(SparseCounts { rows, cols, compressed, indptr, indices, counts })
}

/// What [`read_h5ad_counts`] returns: X (cells × features) as counts, the obs names (cell
/// barcodes) and the peaks, one per var row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H5adCounts {
    pub x: SparseCounts,
    pub obs_names: Vec<String>,
    pub peaks: Vec<Interval>,
}

/// The var columns that give peak coordinates, in the order they are tried.
pub const PEAK_COLUMNS: [[&str; 3]; 3] =
    [["chr", "start", "end"], ["chrom", "chromStart", "chromEnd"], ["seqnames", "start", "end"]];

/// Reads X of an AnnData file as counts (sparse `csr_matrix` or `csc_matrix`, in the current
/// encoding or the older `h5sparse_format` one, or a dense array read a block of rows at a
/// time; any integer or float type, values by [`count_from_value`]), the obs names, and one
/// peak per var row: from the columns of [`PEAK_COLUMNS`] (strings, integers or categorical,
/// as scanpy writes a chromosome column), else from var names `chr1:100-600`, `chr1-100-600`
/// or `chr1_100_600` ([`parse_peak_name`]).
pub fn read_h5ad_counts(path: &Path) -> Result<H5adCounts, FileError> {
    let bad = |what: String| FileError::content(path, what);
    let f = File::open_streaming(path).map_err(|e| bad(format!("not an HDF5 file: {e}")))?;
    let obs = f.group("obs").map_err(|_| bad("no obs group: not an AnnData file".into()))?;
    let var = f.group("var").map_err(|_| bad("no var group: not an AnnData file".into()))?;
    let obs_names = dataframe_index(path, &obs, "obs")?;
    let var_names = dataframe_index(path, &var, "var")?;
    let shape = (obs_names.len(), var_names.len());

    let x = if let Ok(xg) = f.group("X") {
        let attrs = xg.attrs().map_err(|e| bad(format!("X: {e}")))?;
        let text_attr = |k: &str| attrs.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let kind = text_attr("encoding-type")
            .or_else(|| text_attr("h5sparse_format").map(|s| format!("{s}_matrix")))
            .unwrap_or_default();
        let compressed = match kind.as_str() {
            "csr_matrix" => Compressed::Rows,
            "csc_matrix" => Compressed::Columns,
            other => return Err(bad(format!("X is a group of encoding '{other}'; expected csr_matrix or csc_matrix"))),
        };
        let declared = attrs.get("shape").or_else(|| attrs.get("h5sparse_shape")).and_then(|v| v.to_i64s());
        if let Some(s) = declared {
            if s.len() != 2 || s[0] != shape.0 as i64 || s[1] != shape.1 as i64 {
                return Err(bad(format!(
                    "X has shape {s:?} but obs has {} names and var {} (expected [{}, {}])",
                    shape.0, shape.1, shape.0, shape.1
                )));
            }
        }
        read_sparse_group(path, &xg, "X", shape, compressed)?
    } else if let Ok(ds) = f.dataset("X") {
        read_dense_x(path, &ds, shape)?
    } else {
        return Err(bad("no X: expected X as a sparse matrix group or a dense array".into()));
    };
    let peaks = var_peaks(path, &var, &var_names)?;
    Ok(H5adCounts { x, obs_names, peaks })
}

/// The names of a dataframe (the dataset its `_index` attribute names, `_index` by default).
fn dataframe_index(path: &Path, g: &Group, name: &str) -> Result<Vec<String>, FileError> {
    let index = g
        .attrs()
        .ok()
        .and_then(|a| a.get("_index").and_then(|v| v.as_str()).map(String::from))
        .unwrap_or_else(|| "_index".into());
    g.dataset(&index)
        .and_then(|d| d.read_string())
        .map_err(|e| FileError::content(path, format!("{name}/{index} (the {name} names): {e}")))
}

/// A dense X (cells × features), sparsified a block of rows at a time.
fn read_dense_x(path: &Path, ds: &Dataset, (rows, cols): (usize, usize)) -> Result<SparseCounts, FileError> {
    let bad = |what: String| FileError::content(path, what);
    let shape = ds.shape().map_err(|e| bad(format!("X: {e}")))?;
    if shape != [rows as u64, cols as u64] {
        return Err(bad(format!("X has shape {shape:?}; obs and var call for [{rows}, {cols}]")));
    }
    let block = (WINDOW / cols.max(1) as u64).max(1);
    let (mut indptr, mut indices, mut counts) = (vec![0u64], Vec::new(), Vec::new());
    let mut start = 0u64;
    while start < rows as u64 {
        let n = block.min(rows as u64 - start);
        let values = ds.read_f64_rows(start, n).map_err(|e| bad(format!("X: {e}")))?;
        for (r, row) in values.chunks(cols.max(1)).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let count = count_from_value(v).map_err(|e| bad(format!("X[{}, {c}]: {e}", start + r as u64)))?;
                if count > 0 {
                    indices.push(c as u32);
                    counts.push(count);
                }
            }
            indptr.push(indices.len() as u64);
        }
        start += n;
    }
    Ok(SparseCounts { rows, cols, compressed: Compressed::Rows, indptr, indices, counts })
}

/// A dataframe column as read: text or integers.
enum ColumnValues {
    Text(Vec<String>),
    Int(Vec<i64>),
}

/// Reads a plain dataset as text or integers (floats must hold whole numbers).
fn read_plain(ds: &Dataset, what: &str) -> Result<ColumnValues, String> {
    let dtype = ds.dtype().map_err(|e| format!("{what}: {e}"))?;
    match dtype {
        DType::String | DType::VariableLengthString => {
            ds.read_string().map(ColumnValues::Text).map_err(|e| format!("{what}: {e}"))
        }
        DType::I8 | DType::I16 | DType::I32 | DType::I64 | DType::U8 | DType::U16 | DType::U32 | DType::U64 => {
            ds.read_i64().map(ColumnValues::Int).map_err(|e| format!("{what}: {e}"))
        }
        DType::F32 | DType::F64 => {
            let v = ds.read_f64().map_err(|e| format!("{what}: {e}"))?;
            match v.iter().position(|x| x.fract() != 0.0 || !x.is_finite()) {
                Some(i) => Err(format!("{what}[{i}] = {} is not a whole number", v[i])),
                None => Ok(ColumnValues::Int(v.into_iter().map(|x| x as i64).collect())),
            }
        }
        other => Err(format!("{what} has type {other}; expected strings or integers")),
    }
}

/// Reads a dataframe column: a plain array, a categorical (group with `categories` and
/// `codes`; or, as anndata before 0.8 wrote it, codes with a `categories` attribute and the
/// categories under `__categories/<name>`), or a nullable integer (`values` and `mask`).
/// `None` when there is no such column.
fn read_column(df: &Group, df_name: &str, name: &str) -> Result<Option<ColumnValues>, String> {
    let what = format!("{df_name}/{name}");
    let categorical = |categories: ColumnValues, codes: Vec<i64>| -> Result<ColumnValues, String> {
        let pick = |i: usize, c: i64, len: usize| -> Result<usize, String> {
            if c < 0 || c as usize >= len {
                Err(format!("{what}: row {i} has category code {c} (a missing value or out of range 0..{len})"))
            } else {
                Ok(c as usize)
            }
        };
        Ok(match categories {
            ColumnValues::Text(cats) => ColumnValues::Text(
                codes
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| pick(i, c, cats.len()).map(|k| cats[k].clone()))
                    .collect::<Result<_, _>>()?,
            ),
            ColumnValues::Int(cats) => ColumnValues::Int(
                codes
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| pick(i, c, cats.len()).map(|k| cats[k]))
                    .collect::<Result<_, _>>()?,
            ),
        })
    };
    if let Ok(g) = df.group(name) {
        let attrs = g.attrs().map_err(|e| format!("{what}: {e}"))?;
        let kind = attrs.get("encoding-type").and_then(|v| v.as_str()).unwrap_or("").to_string();
        let member = |m: &str| g.dataset(m).map_err(|e| format!("{what}/{m}: {e}"));
        return match kind.as_str() {
            "categorical" => {
                let categories = read_plain(&member("categories")?, &format!("{what}/categories"))?;
                let codes = member("codes")?.read_i64().map_err(|e| format!("{what}/codes: {e}"))?;
                categorical(categories, codes).map(Some)
            }
            "nullable-integer" => {
                if let Ok(mask) = g.dataset("mask") {
                    let mask = mask.read_u8().map_err(|e| format!("{what}/mask: {e}"))?;
                    if let Some(i) = mask.iter().position(|&m| m != 0) {
                        return Err(format!("{what}: row {i} is a missing value"));
                    }
                }
                read_plain(&member("values")?, &format!("{what}/values")).map(Some)
            }
            other => Err(format!("{what} is a group of encoding '{other}'; expected an array or a categorical")),
        };
    }
    let Ok(ds) = df.dataset(name) else { return Ok(None) };
    let legacy_categorical = ds.attrs().map(|a| a.contains_key("categories")).unwrap_or(false);
    if legacy_categorical {
        let cats = df
            .group("__categories")
            .and_then(|c| c.dataset(name))
            .map_err(|e| format!("{df_name}/__categories/{name} (the categories of {what}): {e}"))?;
        let categories = read_plain(&cats, &format!("{df_name}/__categories/{name}"))?;
        let codes = ds.read_i64().map_err(|e| format!("{what}: {e}"))?;
        return categorical(categories, codes).map(Some);
    }
    read_plain(&ds, &what).map(Some)
}

/// One peak per var row, from coordinate columns or from the var names.
fn var_peaks(path: &Path, var: &Group, names: &[String]) -> Result<Vec<Interval>, FileError> {
    let bad = |what: String| FileError::content(path, what);
    for [c, s, e] in PEAK_COLUMNS {
        let column = |n: &str| read_column(var, "var", n).map_err(&bad);
        let (Some(chrom), Some(start), Some(end)) = (column(c)?, column(s)?, column(e)?) else { continue };
        let text = |v: ColumnValues| match v {
            ColumnValues::Text(t) => t,
            ColumnValues::Int(i) => i.into_iter().map(|x| x.to_string()).collect(),
        };
        let position = |v: ColumnValues, col: &str| -> Result<Vec<u64>, FileError> {
            match v {
                ColumnValues::Int(i) => i
                    .into_iter()
                    .enumerate()
                    .map(|(r, x)| {
                        u64::try_from(x).map_err(|_| bad(format!("var/{col}: row {r} is {x}, not a position ≥ 0")))
                    })
                    .collect(),
                ColumnValues::Text(t) => t
                    .into_iter()
                    .enumerate()
                    .map(|(r, x)| {
                        x.trim()
                            .parse::<u64>()
                            .map_err(|_| bad(format!("var/{col}: row {r} is '{x}', not a position ≥ 0")))
                    })
                    .collect(),
            }
        };
        let (chrom, start, end) = (text(chrom), position(start, s)?, position(end, e)?);
        if chrom.len() != names.len() || start.len() != names.len() || end.len() != names.len() {
            return Err(bad(format!(
                "var columns {c}/{s}/{e} have {}/{}/{} rows; var has {}",
                chrom.len(),
                start.len(),
                end.len(),
                names.len()
            )));
        }
        let mut peaks = Vec::with_capacity(names.len());
        for (r, ((chrom, start), end)) in chrom.into_iter().zip(start).zip(end).enumerate() {
            if start >= end || chrom.is_empty() {
                return Err(bad(format!("var row {r} ({}): peak {chrom}:{start}-{end} is empty", names[r])));
            }
            peaks.push(Interval { chrom, start, end });
        }
        return Ok(peaks);
    }
    let parsed: Vec<Option<Interval>> = names.iter().map(|n| parse_peak_name(n)).collect();
    let accepted = "accepted: var columns chr/start/end, chrom/chromStart/chromEnd or seqnames/start/end \
                    (strings, integers or categorical), or var names like chr1:100-600, chr1-100-600 or chr1_100_600";
    match parsed.iter().position(Option::is_none) {
        None => Ok(parsed.into_iter().flatten().collect()),
        Some(r) if parsed.iter().any(Option::is_some) => {
            Err(bad(format!("var name '{}' (row {r}) is not a peak while others are; {accepted}", names[r])))
        }
        Some(_) => Err(bad(format!(
            "var has no peak coordinates (first var name: '{}'); {accepted}",
            names.first().map_or("", String::as_str)
        ))),
    }
}
