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
use super::hdf5::SizeLimit;
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
    /// A dense X instead (obs × var, row-major): results such as TF activity per cell.
    pub x_dense: Option<Vec<f32>>,
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

/// An AnnData layout whose X (`csr_matrix` or `csc_matrix`, f32 data, i32 indices) is empty
/// and extendable, for a stream to append to in chunks; indptr is known in advance.
fn streamed_anndata(
    kind: &str,
    indptr: &[i64],
    obs_names: &[String],
    obs: &[(String, Column)],
    var_names: &[String],
    var: &[(String, Column)],
) -> FileBuilder {
    use hdf5_pure::MaxExtent;
    let mut b = FileBuilder::new();
    b.set_attr("encoding-type", text("anndata"));
    b.set_attr("encoding-version", text("0.1.0"));
    let mut g = b.create_group("X");
    encoding(&mut g, kind, "0.1.0");
    g.set_attr("shape", AttrValue::I64Array(vec![obs_names.len() as i64, var_names.len() as i64]));
    g.create_dataset("data")
        .with_f32_data(&[])
        .with_shape(&[0])
        .with_maxshape(&[MaxExtent::Unlimited])
        .with_chunks(&[STREAM_CHUNK]);
    g.create_dataset("indices")
        .with_i32_data(&[])
        .with_shape(&[0])
        .with_maxshape(&[MaxExtent::Unlimited])
        .with_chunks(&[STREAM_CHUNK]);
    g.create_dataset("indptr").with_i64_data(indptr);
    b.add_group(g.finish());
    dataframe(&mut b, "obs", obs_names, obs);
    dataframe(&mut b, "var", var_names, var);
    for name in ["obsm", "uns", "layers", "obsp", "varp", "varm"] {
        let mut g = b.create_group(name);
        encoding(&mut g, "dict", "0.1.0");
        b.add_group(g.finish());
    }
    b
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
    } else if let Some(x) = &a.x_dense {
        b.create_dataset("X")
            .with_f32_data(x)
            .with_shape(&[a.obs_names.len() as u64, a.var_names.len() as u64])
            .set_attr("encoding-type", text("array"))
            .set_attr("encoding-version", text("0.2.0"));
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
    crate::io::hdf5::check_hdf5_complete(path)?;
    let f = hdf5_pure::File::open_streaming(path).map_err(|e| bad(format!("not an HDF5 file: {e}")))?;
    let xg =
        f.group("X").map_err(|_| bad("no X group (a dense X is not supported: store it as a sparse matrix)".into()))?;
    let attrs = xg.attrs().map_err(|e| bad(e.to_string()))?;
    let kind = attrs.get("encoding-type").and_then(|v| v.as_str()).unwrap_or("").to_string();
    let shape = attrs.get("shape").and_then(|v| v.to_i64s()).ok_or_else(|| bad("X has no shape attribute".into()))?;
    let lim = SizeLimit::of(path)?;
    let read_i64 =
        |name: &str| lim.whole(xg.dataset(name), Dataset::read_i64).map_err(|e| bad(format!("X/{name}: {e}")));
    let (indptr, indices) = (read_i64("indptr")?, read_i64("indices")?);
    let data = lim.whole(xg.dataset("data"), Dataset::read_f32).map_err(|e| bad(format!("X/data: {e}")))?;
    let names = |group: &str| -> Result<Vec<String>, FileError> {
        let g = f.group(group).map_err(|_| bad(format!("no {group} group")))?;
        let index = g
            .attrs()
            .ok()
            .and_then(|a| a.get("_index").and_then(|v| v.as_str()).map(String::from))
            .unwrap_or_else(|| "_index".into());
        lim.whole(g.dataset(&index), Dataset::read_string).map_err(|e| bad(format!("{group}/{index}: {e}")))
    };
    let (obs, var) = (names("obs")?, names("var")?);
    let (rows, cols) = match shape.as_slice() {
        &[r, c] if r >= 0 && c >= 0 => (r as usize, c as usize),
        other => return Err(bad(format!("X has shape {other:?}; expected two non-negative sizes"))),
    };
    let compressed = match kind.as_str() {
        "csr_matrix" => Compressed::Rows,
        "csc_matrix" => Compressed::Columns,
        other => return Err(bad(format!("X is '{other}'; expected csr_matrix or csc_matrix"))),
    };
    // Checked before use: transposing a CSC X indexes by these arrays.
    if indices.len() != data.len() {
        return Err(bad(format!("X/indices has {} entries but X/data has {}", indices.len(), data.len())));
    }
    check_indptr("X", &indptr, indices.len() as u64, (rows, cols), compressed).map_err(bad)?;
    for (k, &v) in indices.iter().enumerate() {
        check_index("X", k as u64, v, (rows, cols), compressed).map_err(bad)?;
    }
    let x = match compressed {
        Compressed::Rows => CsrF32 { rows, cols, indptr, indices, data },
        Compressed::Columns => transpose(&CsrF32 { rows: cols, cols: rows, indptr, indices, data }),
    };
    Ok((x, obs, var))
}

/// Reads the obs names and one dense `obsm` array (obs × columns, row-major, f32) of an
/// AnnData file: what `chromax sc embed` writes, read back.
pub fn read_h5ad_obsm(path: &Path, name: &str) -> Result<(Vec<String>, Vec<f32>, usize), FileError> {
    let bad = |what: String| FileError::content(path, what);
    crate::io::hdf5::check_hdf5_complete(path)?;
    let f = hdf5_pure::File::open_streaming(path).map_err(|e| bad(format!("not an HDF5 file: {e}")))?;
    let obs = f.group("obs").map_err(|_| bad("no obs group".into()))?;
    let index = obs
        .attrs()
        .ok()
        .and_then(|a| a.get("_index").and_then(|v| v.as_str()).map(String::from))
        .unwrap_or_else(|| "_index".into());
    let lim = SizeLimit::of(path)?;
    let names = lim.whole(obs.dataset(&index), Dataset::read_string).map_err(|e| bad(format!("obs/{index}: {e}")))?;
    let ds = f
        .group("obsm")
        .and_then(|g| g.dataset(name))
        .map_err(|_| bad(format!("no obsm/{name} (a dense array) in this file")))?;
    let shape = ds.shape().map_err(|e| bad(format!("obsm/{name}: {e}")))?;
    let values = lim.read(&ds, Dataset::read_f32).map_err(|e| bad(format!("obsm/{name}: {e}")))?;
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

/// Checks that `indptr` has one entry per row (CSR) or column (CSC) plus one and rises from
/// 0 to `nnz`.
fn check_indptr(
    name: &str,
    indptr: &[i64],
    nnz: u64,
    (rows, cols): (usize, usize),
    compressed: Compressed,
) -> Result<(), String> {
    let (major, form) = match compressed {
        Compressed::Rows => (rows, "CSR"),
        Compressed::Columns => (cols, "CSC"),
    };
    if indptr.len() != major + 1 {
        return Err(format!(
            "{name}/indptr has {} entries; the shape {rows} × {cols} ({form}) needs {}",
            indptr.len(),
            major + 1
        ));
    }
    if indptr.first() != Some(&0)
        || indptr.windows(2).any(|w| w[1] < w[0])
        || indptr.last().map(|&v| v as u64) != Some(nnz)
    {
        return Err(format!("{name}/indptr must rise from 0 to the number of entries ({nnz})"));
    }
    Ok(())
}

/// Entry `k` of `indices`, checked against the minor axis (columns of CSR, rows of CSC).
fn check_index(
    name: &str,
    k: u64,
    v: i64,
    (rows, cols): (usize, usize),
    compressed: Compressed,
) -> Result<u32, String> {
    let minor = match compressed {
        Compressed::Rows => cols,
        Compressed::Columns => rows,
    };
    if v < 0 || v as u64 >= minor as u64 {
        return Err(format!("{name}/indices[{k}] = {v} is outside 0..{minor} (the matrix is {rows} × {cols})"));
    }
    Ok(v as u32)
}

/// A compressed sparse matrix stored as `group/{indptr, indices, data}`, opened: `indptr`
/// read and checked, the two long arrays left on disk to be read a window at a time
/// ([`read_indices`](Self::read_indices), [`read_counts`](Self::read_counts)), so a matrix
/// larger than memory can be streamed.
pub struct SparseGroup {
    path: std::path::PathBuf,
    name: String,
    pub rows: usize,
    pub cols: usize,
    pub compressed: Compressed,
    /// Length: rows + 1 (CSR) or cols + 1 (CSC); non-decreasing from 0 to nnz.
    pub indptr: Vec<u64>,
    indices: Dataset,
    data: Dataset,
}

impl SparseGroup {
    /// Opens `g` (named `name` in messages) as a matrix of the given shape.
    pub(crate) fn open(
        path: &Path,
        lim: SizeLimit,
        g: &Group,
        name: &str,
        (rows, cols): (usize, usize),
        compressed: Compressed,
    ) -> Result<SparseGroup, FileError> {
        let bad = |what: String| FileError::content(path, what);
        let open = |ds: &str| g.dataset(ds).map_err(|e| bad(format!("{name}/{ds}: {e}")));
        let indptr_i64 =
            lim.read(&open("indptr")?, Dataset::read_i64).map_err(|e| bad(format!("{name}/indptr: {e}")))?;
        let (indices, data) = (open("indices")?, open("data")?);
        lim.check(&indices).map_err(|e| bad(format!("{name}/indices: {e}")))?;
        lim.check(&data).map_err(|e| bad(format!("{name}/data: {e}")))?;
        let nnz = element_count(&indices).map_err(|e| bad(format!("{name}/indices: {e}")))?;
        let n_data = element_count(&data).map_err(|e| bad(format!("{name}/data: {e}")))?;
        if nnz != n_data {
            return Err(bad(format!("{name}/indices has {nnz} entries but {name}/data has {n_data}")));
        }
        check_indptr(name, &indptr_i64, nnz, (rows, cols), compressed).map_err(bad)?;
        let indptr = indptr_i64.into_iter().map(|v| v as u64).collect();
        Ok(SparseGroup {
            path: path.to_path_buf(),
            name: name.to_string(),
            rows,
            cols,
            compressed,
            indptr,
            indices,
            data,
        })
    }

    /// The number of stored entries.
    pub fn nnz(&self) -> u64 {
        self.indptr.last().copied().unwrap_or(0)
    }

    /// Entries `start..start + n` of `indices`, checked against the minor axis (columns of
    /// CSR, rows of CSC), into `out` (cleared first).
    pub fn read_indices(&self, start: u64, n: u64, out: &mut Vec<u32>) -> Result<(), FileError> {
        let (name, shape, compressed) = (&self.name, (self.rows, self.cols), self.compressed);
        let bad = |what: String| FileError::content(&self.path, what);
        out.clear();
        let window = self.indices.read_i64_rows(start, n).map_err(|e| bad(format!("{name}/indices: {e}")))?;
        for (k, v) in window.into_iter().enumerate() {
            out.push(check_index(name, start + k as u64, v, shape, compressed).map_err(bad)?);
        }
        Ok(())
    }

    /// Entries `start..start + n` of `data` as counts by [`count_from_value`], into `out`
    /// (cleared first).
    pub fn read_counts(&self, start: u64, n: u64, out: &mut Vec<u32>) -> Result<(), FileError> {
        let name = &self.name;
        let bad = |what: String| FileError::content(&self.path, what);
        out.clear();
        let window = self.data.read_f64_rows(start, n).map_err(|e| bad(format!("{name}/data: {e}")))?;
        for (k, v) in window.into_iter().enumerate() {
            out.push(count_from_value(v).map_err(|e| bad(format!("{name}/data[{}]: {e}", start + k as u64)))?);
        }
        Ok(())
    }

    /// Reads the whole matrix, a window at a time (no f64 copy of the data is ever whole).
    pub fn read_all(self) -> Result<SparseCounts, FileError> {
        let nnz = self.nnz();
        let mut indices = Vec::with_capacity(nnz as usize);
        let mut counts = Vec::with_capacity(nnz as usize);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut start = 0u64;
        while start < nnz {
            let n = WINDOW.min(nnz - start);
            self.read_indices(start, n, &mut a)?;
            self.read_counts(start, n, &mut b)?;
            indices.extend_from_slice(&a);
            counts.extend_from_slice(&b);
            start += n;
        }
        let SparseGroup { rows, cols, compressed, indptr, .. } = self;
        Ok(SparseCounts { rows, cols, compressed, indptr, indices, counts })
    }
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

/// X of an AnnData file as opened by [`open_h5ad_x`]: a sparse group to stream, or a dense
/// array already read (sparsified a block of rows at a time).
pub enum H5adX {
    Sparse(SparseGroup),
    Dense(SparseCounts),
}

/// An AnnData file's obs names, its peaks (one per var row) and X opened.
pub struct H5adHead {
    pub obs_names: Vec<String>,
    pub peaks: Vec<Interval>,
    pub x: H5adX,
}

/// Reads X of an AnnData file as counts (sparse `csr_matrix` or `csc_matrix`, in the current
/// encoding or the older `h5sparse_format` one, or a dense array read a block of rows at a
/// time; any integer or float type, values by [`count_from_value`]), the obs names, and one
/// peak per var row: from the columns of [`PEAK_COLUMNS`] (strings, integers or categorical,
/// as scanpy writes a chromosome column), else from var names `chr1:100-600`, `chr1-100-600`
/// or `chr1_100_600` ([`parse_peak_name`]).
pub fn read_h5ad_counts(path: &Path) -> Result<H5adCounts, FileError> {
    let head = open_h5ad_x(path)?;
    let x = match head.x {
        H5adX::Sparse(g) => g.read_all()?,
        H5adX::Dense(x) => x,
    };
    Ok(H5adCounts { x, obs_names: head.obs_names, peaks: head.peaks })
}

/// [`read_h5ad_counts`] up to X: the names and peaks read, a sparse X opened to be read a
/// window at a time.
pub fn open_h5ad_x(path: &Path) -> Result<H5adHead, FileError> {
    let bad = |what: String| FileError::content(path, what);
    crate::io::hdf5::check_hdf5_complete(path)?;
    let f = File::open_streaming(path).map_err(|e| bad(format!("not an HDF5 file: {e}")))?;
    let obs = f.group("obs").map_err(|_| bad("no obs group: not an AnnData file".into()))?;
    let var = f.group("var").map_err(|_| bad("no var group: not an AnnData file".into()))?;
    let lim = SizeLimit::of(path)?;
    let obs_names = dataframe_index(path, lim, &obs, "obs")?;
    let var_names = dataframe_index(path, lim, &var, "var")?;
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
        H5adX::Sparse(SparseGroup::open(path, lim, &xg, "X", shape, compressed)?)
    } else if let Ok(ds) = f.dataset("X") {
        H5adX::Dense(read_dense_x(path, &ds, shape)?)
    } else {
        return Err(bad("no X: expected X as a sparse matrix group or a dense array".into()));
    };
    let peaks = var_peaks(path, lim, &var, &var_names)?;
    Ok(H5adHead { obs_names, peaks, x })
}

/// The names of a dataframe (the dataset its `_index` attribute names, `_index` by default).
fn dataframe_index(path: &Path, lim: SizeLimit, g: &Group, name: &str) -> Result<Vec<String>, FileError> {
    let index = g
        .attrs()
        .ok()
        .and_then(|a| a.get("_index").and_then(|v| v.as_str()).map(String::from))
        .unwrap_or_else(|| "_index".into());
    lim.whole(g.dataset(&index), Dataset::read_string)
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

/// Elements buffered per dataset before an append (each append is one durable write).
const STREAM_BUFFER: usize = 1 << 20;
/// Chunk length of the streamed datasets (HDF5 2.0 rejects hdf5-pure's encoding of chunks
/// over 65,535 elements).
const STREAM_CHUNK: u64 = 65_535;

/// An AnnData file whose X (obs × var, f32) is written a column at a time, as a CSC matrix of
/// every entry: what `sc impute` streams peak by peak into, holding at most a buffer of
/// [`STREAM_BUFFER`] values per dataset. Written under a temporary name, renamed by
/// [`CscStream::finish`]; dropped unfinished, the temporary file is removed.
pub struct CscStream {
    file: Option<hdf5_pure::File>,
    atomic: Option<AtomicFile>,
    dest: std::path::PathBuf,
    rows: usize,
    cols: usize,
    written: usize,
    data: Vec<f32>,
    indices: Vec<i32>,
}

impl CscStream {
    /// A file with obs (names, columns) and var (names, columns) written, X empty.
    pub fn create(
        path: &Path,
        obs_names: &[String],
        obs: &[(String, Column)],
        var_names: &[String],
        var: &[(String, Column)],
    ) -> Result<CscStream, FileError> {
        let bad = |e: hdf5_pure::Error| FileError::content(path, format!("writing the AnnData file failed: {e}"));
        if obs_names.len() > i32::MAX as usize {
            return Err(FileError::Argument(format!(
                "{} cells: at most {} fit a CSC index",
                obs_names.len(),
                i32::MAX
            )));
        }
        // indptr is known in advance: every column holds every row.
        let indptr: Vec<i64> = (0..=var_names.len() as i64).map(|j| j * obs_names.len() as i64).collect();
        let b = streamed_anndata("csc_matrix", &indptr, obs_names, obs, var_names, var);
        let atomic = AtomicFile::new(path)?;
        b.write(atomic.path()).map_err(bad)?;
        let file = hdf5_pure::File::open_rw(atomic.path()).map_err(bad)?;
        Ok(CscStream {
            file: Some(file),
            atomic: Some(atomic),
            dest: path.to_path_buf(),
            rows: obs_names.len(),
            cols: var_names.len(),
            written: 0,
            data: Vec::with_capacity(STREAM_BUFFER),
            indices: Vec::with_capacity(STREAM_BUFFER),
        })
    }

    fn flush(&mut self) -> Result<(), FileError> {
        let dest = self.dest.clone();
        let bad = |e: hdf5_pure::Error| FileError::content(&dest, format!("writing the AnnData file failed: {e}"));
        let Some(file) = &self.file else { return Ok(()) };
        if !self.data.is_empty() {
            file.dataset("X/data").map_err(bad)?.append(&self.data).map_err(bad)?;
            file.dataset("X/indices").map_err(bad)?.append(&self.indices).map_err(bad)?;
            self.data.clear();
            self.indices.clear();
        }
        Ok(())
    }

    /// The next columns, column-major (each `rows` values).
    pub fn push_columns(&mut self, values: &[f32]) -> Result<(), FileError> {
        if self.rows == 0
            || !values.len().is_multiple_of(self.rows)
            || self.written + values.len() / self.rows > self.cols
        {
            return Err(FileError::Argument(format!(
                "{} values are not whole columns of {} rows, or more than the {} columns declared",
                values.len(),
                self.rows,
                self.cols
            )));
        }
        for column in values.chunks(self.rows) {
            self.data.extend_from_slice(column);
            self.indices.extend(0..self.rows as i32);
            if self.data.len() >= STREAM_BUFFER {
                self.flush()?;
            }
        }
        self.written += values.len() / self.rows;
        Ok(())
    }

    /// Writes what is buffered and renames the file into place; every column must be written.
    pub fn finish(mut self) -> Result<(), FileError> {
        if self.written != self.cols {
            return Err(FileError::Argument(format!("{} of {} columns written", self.written, self.cols)));
        }
        self.flush()?;
        let dest = self.dest.clone();
        if let Some(file) = self.file.take() {
            file.close().map_err(|e| FileError::content(&dest, format!("closing the AnnData file failed: {e}")))?;
        }
        match self.atomic.take() {
            Some(a) => a.commit(),
            None => Ok(()),
        }
    }
}

/// Which file a [`SparseStream`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamForm {
    /// AnnData X (obs × var) as CSR: f32 data, i32 indices.
    AnnDataCsr,
    /// A 10x `matrix` group (features × barcodes, CSC): i32 data, i64 indices.
    Tenx,
}

/// A sparse matrix of ones written a major-axis line at a time (an AnnData X row per cell, a
/// 10x column per barcode), with `indptr` given up front, holding at most a buffer of
/// [`STREAM_BUFFER`] entries: how a synthetic atlas larger than memory is written in the
/// forms users have. Written under a temporary name, renamed by [`SparseStream::finish`];
/// dropped unfinished, the temporary file is removed.
pub struct SparseStream {
    file: Option<hdf5_pure::File>,
    atomic: Option<AtomicFile>,
    dest: std::path::PathBuf,
    form: StreamForm,
    indptr: Vec<u64>,
    lines: usize,
    minor: usize,
    buffer: Vec<u32>,
}

impl SparseStream {
    /// An AnnData file, X cells × peaks (CSR; `indptr` has one entry per cell + 1), obs the
    /// barcodes, var the peaks (`chr:start-end` names; chr, start, end columns).
    pub fn anndata_csr(
        path: &Path,
        barcodes: &[String],
        peaks: &[Interval],
        indptr: &[u64],
    ) -> Result<SparseStream, FileError> {
        let ip: Vec<i64> = indptr.iter().map(|&v| v as i64).collect();
        let var_names: Vec<String> = peaks.iter().map(|p| format!("{}:{}-{}", p.chrom, p.start, p.end)).collect();
        let var = vec![
            ("chr".into(), Column::Str(peaks.iter().map(|p| p.chrom.clone()).collect())),
            ("start".into(), Column::I64(peaks.iter().map(|p| p.start as i64).collect())),
            ("end".into(), Column::I64(peaks.iter().map(|p| p.end as i64).collect())),
        ];
        let b = streamed_anndata("csr_matrix", &ip, barcodes, &[], &var_names, &var);
        SparseStream::start(path, b, StreamForm::AnnDataCsr, indptr, peaks.len())
    }

    /// A 10x feature-barcode matrix (Cell Ranger ATAC's layout: `matrix/{data, indices,
    /// indptr, shape, barcodes, features/{id, name, feature_type}}`, fixed-length strings),
    /// peaks × barcodes, CSC (`indptr` has one entry per barcode + 1).
    pub fn tenx(
        path: &Path,
        barcodes: &[String],
        peaks: &[Interval],
        indptr: &[u64],
    ) -> Result<SparseStream, FileError> {
        use hdf5_pure::MaxExtent;
        let bad = |e: String| FileError::content(path, format!("writing the 10x file failed: {e}"));
        let mut b = FileBuilder::new();
        let mut g = b.create_group("matrix");
        let bcs: Vec<&str> = barcodes.iter().map(String::as_str).collect();
        g.create_dataset("barcodes").with_ascii_strings(&bcs).map_err(|e| bad(e.to_string()))?;
        g.create_dataset("data")
            .with_i32_data(&[])
            .with_shape(&[0])
            .with_maxshape(&[MaxExtent::Unlimited])
            .with_chunks(&[STREAM_CHUNK]);
        g.create_dataset("indices")
            .with_i64_data(&[])
            .with_shape(&[0])
            .with_maxshape(&[MaxExtent::Unlimited])
            .with_chunks(&[STREAM_CHUNK]);
        let ip: Vec<i64> = indptr.iter().map(|&v| v as i64).collect();
        g.create_dataset("indptr").with_i64_data(&ip);
        g.create_dataset("shape").with_i32_data(&[peaks.len() as i32, barcodes.len() as i32]);
        let mut f = g.create_group("features");
        let ids: Vec<String> = peaks.iter().map(|p| format!("{}:{}-{}", p.chrom, p.start, p.end)).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        f.create_dataset("id").with_ascii_strings(&ids).map_err(|e| bad(e.to_string()))?;
        f.create_dataset("name").with_ascii_strings(&ids).map_err(|e| bad(e.to_string()))?;
        f.create_dataset("feature_type")
            .with_ascii_strings(&vec!["Peaks"; peaks.len()])
            .map_err(|e| bad(e.to_string()))?;
        g.add_group(f.finish());
        b.add_group(g.finish());
        SparseStream::start(path, b, StreamForm::Tenx, indptr, peaks.len())
    }

    fn start(
        path: &Path,
        b: FileBuilder,
        form: StreamForm,
        indptr: &[u64],
        minor: usize,
    ) -> Result<SparseStream, FileError> {
        let bad = |e: hdf5_pure::Error| FileError::content(path, format!("writing the HDF5 file failed: {e}"));
        if indptr.first() != Some(&0) || indptr.windows(2).any(|w| w[1] < w[0]) {
            return Err(FileError::Argument(format!("writing {}: indptr must rise from 0", path.display())));
        }
        let atomic = AtomicFile::new(path)?;
        b.write(atomic.path()).map_err(bad)?;
        let file = hdf5_pure::File::open_rw(atomic.path()).map_err(bad)?;
        Ok(SparseStream {
            file: Some(file),
            atomic: Some(atomic),
            dest: path.to_path_buf(),
            form,
            indptr: indptr.to_vec(),
            lines: 0,
            minor,
            buffer: Vec::with_capacity(STREAM_BUFFER),
        })
    }

    fn flush(&mut self) -> Result<(), FileError> {
        let dest = self.dest.clone();
        let bad = |e: hdf5_pure::Error| FileError::content(&dest, format!("writing the HDF5 file failed: {e}"));
        let Some(file) = &self.file else { return Ok(()) };
        if self.buffer.is_empty() {
            return Ok(());
        }
        match self.form {
            StreamForm::AnnDataCsr => {
                let idx: Vec<i32> = self.buffer.iter().map(|&v| v as i32).collect();
                file.dataset("X/data").map_err(bad)?.append(&vec![1.0f32; idx.len()]).map_err(bad)?;
                file.dataset("X/indices").map_err(bad)?.append(&idx).map_err(bad)?;
            }
            StreamForm::Tenx => {
                let idx: Vec<i64> = self.buffer.iter().map(|&v| v as i64).collect();
                file.dataset("matrix/data").map_err(bad)?.append(&vec![1i32; idx.len()]).map_err(bad)?;
                file.dataset("matrix/indices").map_err(bad)?.append(&idx).map_err(bad)?;
            }
        }
        self.buffer.clear();
        Ok(())
    }

    /// The next line's minor indices (ascending, below the minor axis), exactly as many as
    /// `indptr` declares.
    pub fn push(&mut self, indices: &[u32]) -> Result<(), FileError> {
        let l = self.lines;
        if l + 1 >= self.indptr.len() || (self.indptr[l + 1] - self.indptr[l]) as usize != indices.len() {
            return Err(FileError::Argument(format!(
                "writing {}: line {l} has {} entries, not those indptr declares",
                self.dest.display(),
                indices.len()
            )));
        }
        if indices.last().is_some_and(|&i| i as usize >= self.minor) {
            return Err(FileError::Argument(format!(
                "writing {}: an index beyond {}",
                self.dest.display(),
                self.minor
            )));
        }
        for chunk in indices.chunks(STREAM_BUFFER) {
            self.buffer.extend_from_slice(chunk);
            if self.buffer.len() >= STREAM_BUFFER {
                self.flush()?;
            }
        }
        self.lines += 1;
        Ok(())
    }

    /// Writes what is buffered and renames the file into place; every line must be written.
    pub fn finish(mut self) -> Result<(), FileError> {
        if self.lines + 1 != self.indptr.len() {
            return Err(FileError::Argument(format!("{} of {} lines written", self.lines, self.indptr.len() - 1)));
        }
        self.flush()?;
        let dest = self.dest.clone();
        if let Some(file) = self.file.take() {
            file.close().map_err(|e| FileError::content(&dest, format!("closing the HDF5 file failed: {e}")))?;
        }
        match self.atomic.take() {
            Some(a) => a.commit(),
            None => Ok(()),
        }
    }
}

/// The obs names and one obs column of an AnnData file as text (integers written out):
/// what cell groups are read from (`obs:KEY`). An absent column is an error listing the
/// columns there are.
pub fn read_h5ad_obs_column(path: &Path, key: &str) -> Result<(Vec<String>, Vec<String>), FileError> {
    let bad = |what: String| FileError::content(path, what);
    crate::io::hdf5::check_hdf5_complete(path)?;
    let f = File::open_streaming(path).map_err(|e| bad(format!("not an HDF5 file: {e}")))?;
    let obs = f.group("obs").map_err(|_| bad("no obs group: not an AnnData file".into()))?;
    let lim = SizeLimit::of(path)?;
    let names = dataframe_index(path, lim, &obs, "obs")?;
    let values = match read_column(lim, &obs, "obs", key).map_err(bad)? {
        Some(ColumnValues::Text(v)) => v,
        Some(ColumnValues::Int(v)) => v.into_iter().map(|x| x.to_string()).collect(),
        None => {
            let mut there: Vec<String> = obs.datasets().unwrap_or_default();
            there.extend(obs.groups().unwrap_or_default());
            there.retain(|n| !n.starts_with('_'));
            return Err(bad(format!("obs has no column '{key}'; its columns: {}", there.join(", "))));
        }
    };
    if values.len() != names.len() {
        return Err(bad(format!("obs/{key} has {} values for {} cells", values.len(), names.len())));
    }
    Ok((names, values))
}

/// A dataframe column as read: text or integers.
enum ColumnValues {
    Text(Vec<String>),
    Int(Vec<i64>),
}

/// Reads a plain dataset as text or integers (floats must hold whole numbers).
fn read_plain(lim: SizeLimit, ds: &Dataset, what: &str) -> Result<ColumnValues, String> {
    let dtype = ds.dtype().map_err(|e| format!("{what}: {e}"))?;
    lim.check(ds).map_err(|e| format!("{what}: {e}"))?;
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
fn read_column(lim: SizeLimit, df: &Group, df_name: &str, name: &str) -> Result<Option<ColumnValues>, String> {
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
                let categories = read_plain(lim, &member("categories")?, &format!("{what}/categories"))?;
                let codes = lim.read(&member("codes")?, Dataset::read_i64).map_err(|e| format!("{what}/codes: {e}"))?;
                categorical(categories, codes).map(Some)
            }
            "nullable-integer" => {
                if let Ok(mask) = g.dataset("mask") {
                    let mask = lim.read(&mask, Dataset::read_u8).map_err(|e| format!("{what}/mask: {e}"))?;
                    if let Some(i) = mask.iter().position(|&m| m != 0) {
                        return Err(format!("{what}: row {i} is a missing value"));
                    }
                }
                read_plain(lim, &member("values")?, &format!("{what}/values")).map(Some)
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
        let categories = read_plain(lim, &cats, &format!("{df_name}/__categories/{name}"))?;
        let codes = lim.read(&ds, Dataset::read_i64).map_err(|e| format!("{what}: {e}"))?;
        return categorical(categories, codes).map(Some);
    }
    read_plain(lim, &ds, &what).map(Some)
}

/// One peak per var row, from coordinate columns or from the var names.
fn var_peaks(path: &Path, lim: SizeLimit, var: &Group, names: &[String]) -> Result<Vec<Interval>, FileError> {
    let bad = |what: String| FileError::content(path, what);
    for [c, s, e] in PEAK_COLUMNS {
        let column = |n: &str| read_column(lim, var, "var", n).map_err(&bad);
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

#[cfg(test)]
mod stream_tests {
    use super::*;

    #[test]
    fn a_streamed_csc_reads_back_as_the_dense_matrix() {
        let path = std::env::temp_dir().join(format!("chromax-csc-{}.h5ad", std::process::id()));
        let (rows, cols) = (7usize, 300usize);
        let names = |p: &str, n: usize| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
        let mut w = CscStream::create(&path, &names("c", rows), &[], &names("p", cols), &[]).expect("create");
        let value = |r: usize, c: usize| (r * 1000 + c) as f32 * 0.5;
        for c0 in (0..cols).step_by(64) {
            let block: Vec<f32> = (c0..(c0 + 64).min(cols)).flat_map(|c| (0..rows).map(move |r| value(r, c))).collect();
            w.push_columns(&block).expect("push");
        }
        w.finish().expect("finish");
        let (x, obs, var) = read_h5ad_x(&path).expect("read back");
        assert_eq!((obs.len(), var.len(), x.rows, x.cols), (rows, cols, rows, cols));
        for r in 0..rows {
            for k in x.indptr[r] as usize..x.indptr[r + 1] as usize {
                assert_eq!(x.data[k], value(r, x.indices[k] as usize));
            }
            assert_eq!(x.indptr[r + 1] - x.indptr[r], cols as i64);
        }
        let _ = std::fs::remove_file(&path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh directory per test: tests run in parallel in one process.
    fn scratch(name: &str) -> PathBuf {
        crate::io::scratch_dir(&format!("h5ad-{name}"))
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn interval(chrom: &str, start: u64, end: u64) -> Interval {
        Interval { chrom: chrom.into(), start, end }
    }

    /// 3 cells × 4 peaks; cell 1 is empty. Dense:
    /// [[1.0, 0, 0.3, 0], [0, 0, 0, 0], [0, 2.5, 0, 4.0]].
    fn csr() -> CsrF32 {
        CsrF32 { rows: 3, cols: 4, indptr: vec![0, 2, 2, 4], indices: vec![0, 2, 1, 3], data: vec![1.0, 0.3, 2.5, 4.0] }
    }

    /// The same matrix as counts: 0.3 → 1, 2.5 → 3.
    fn counts() -> SparseCounts {
        SparseCounts {
            rows: 3,
            cols: 4,
            compressed: Compressed::Rows,
            indptr: vec![0, 2, 2, 4],
            indices: vec![0, 2, 1, 3],
            counts: vec![1, 1, 3, 4],
        }
    }

    fn cells() -> Vec<String> {
        strings(&["AAAC-1", "AAAG-1", "AAAT-1"])
    }

    fn peaks() -> Vec<Interval> {
        vec![
            interval("chr1", 100, 600),
            interval("chr1", 1000, 1500),
            interval("chr2", 50, 300),
            interval("chrX", 5, 25),
        ]
    }

    /// What `chromax` writes: X as CSR, peaks both as var columns and as var names.
    fn anndata() -> AnnData {
        let p = peaks();
        AnnData {
            x: Some(csr()),
            obs_names: cells(),
            obs: vec![("n_fragments".into(), Column::I64(vec![12, 0, 30]))],
            var_names: p.iter().map(|p| format!("{}:{}-{}", p.chrom, p.start, p.end)).collect(),
            var: vec![
                ("chr".into(), Column::Str(p.iter().map(|p| p.chrom.clone()).collect())),
                ("start".into(), Column::I64(p.iter().map(|p| p.start as i64).collect())),
                ("end".into(), Column::I64(p.iter().map(|p| p.end as i64).collect())),
            ],
            obsm: vec![("X_embed".into(), vec![0.5, -1.0, 2.0, 0.0, -3.25, 8.0], 2)],
            x_dense: None,
        }
    }

    /// A minimal dataframe group (names only), as other tools write one.
    fn frame(b: &mut FileBuilder, name: &str, index: &[String]) {
        let mut g = b.create_group(name);
        g.set_attr("encoding-type", text("dataframe"));
        g.set_attr("_index", text("_index"));
        let idx: Vec<&str> = index.iter().map(String::as_str).collect();
        g.create_dataset("_index").with_vlen_strings(&idx);
        b.add_group(g.finish());
    }

    /// An AnnData file written with hdf5-pure directly, X as `x` makes it; obs are
    /// [`cells`], var names are the peaks as `chr:start-end`.
    fn write_raw(path: &Path, x: impl FnOnce(&mut FileBuilder)) {
        let mut b = FileBuilder::new();
        b.set_attr("encoding-type", text("anndata"));
        b.set_attr("encoding-version", text("0.1.0"));
        x(&mut b);
        frame(&mut b, "obs", &cells());
        let names: Vec<String> = peaks().iter().map(|p| format!("{}:{}-{}", p.chrom, p.start, p.end)).collect();
        frame(&mut b, "var", &names);
        b.write(path).expect("write raw");
    }

    /// The entries of a count matrix as sorted (row, col, count) triples.
    fn triples(m: &SparseCounts) -> Vec<(u32, u32, u32)> {
        let mut t = Vec::new();
        m.for_each(|r, c, n| t.push((r, c, n)));
        t.sort_unstable();
        t
    }

    #[test]
    fn csr_written_and_read_back_exactly() {
        let dir = scratch("csr");
        let path = dir.join("m.h5ad");
        let a = anndata();
        write_h5ad(&path, &a).expect("write");

        let (x, obs, var) = read_h5ad_x(&path).expect("read X");
        assert_eq!(x, csr());
        assert_eq!(obs, a.obs_names);
        assert_eq!(var, a.var_names);

        let (obs, values, cols) = read_h5ad_obsm(&path, "X_embed").expect("read obsm");
        assert_eq!((obs, values, cols), (a.obs_names.clone(), a.obsm[0].1.clone(), 2));

        let got = read_h5ad_counts(&path).expect("read counts");
        assert_eq!(got, H5adCounts { x: counts(), obs_names: cells(), peaks: peaks() });
        // Nothing left behind but the file itself.
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn csc_dense_and_h5sparse_x_read_as_the_same_counts() {
        let dir = scratch("forms");
        let path = dir.join("m.h5ad");

        // CSC: one compressed column per peak, float64 values, int32 indices.
        write_raw(&path, |b| {
            let mut x = b.create_group("X");
            x.set_attr("encoding-type", text("csc_matrix"));
            x.set_attr("encoding-version", text("0.1.0"));
            x.set_attr("shape", AttrValue::I64Array(vec![3, 4]));
            x.create_dataset("data").with_f64_data(&[1.0, 2.5, 0.3, 4.0]);
            x.create_dataset("indices").with_i32_data(&[0, 2, 0, 2]);
            x.create_dataset("indptr").with_i64_data(&[0, 1, 2, 3, 4]);
            b.add_group(x.finish());
        });
        let (x, obs, _) = read_h5ad_x(&path).expect("read CSC X");
        assert_eq!((x, obs), (csr(), cells()));
        let got = read_h5ad_counts(&path).expect("read CSC counts");
        assert_eq!(got.x.compressed, Compressed::Columns);
        assert_eq!((got.x.rows, got.x.cols), (3, 4));
        assert_eq!(got.x.indptr, vec![0, 1, 2, 3, 4]);
        assert_eq!(triples(&got.x), triples(&counts()));
        assert_eq!((got.obs_names, got.peaks), (cells(), peaks()));

        // Dense: sparsified; zeros are not stored.
        write_raw(&path, |b| {
            let dense = [1.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.5, 0.0, 4.0];
            b.create_dataset("X").with_f32_data(&dense).with_shape(&[3, 4]);
        });
        assert_eq!(read_h5ad_counts(&path).expect("read dense").x, counts());
        let msg = read_h5ad_x(&path).expect_err("dense X is not read here").to_string();
        assert_eq!(
            msg,
            format!("{}: no X group (a dense X is not supported: store it as a sparse matrix)", path.display())
        );

        // The older h5sparse encoding: `h5sparse_format` and `h5sparse_shape` attributes.
        write_raw(&path, |b| {
            let c = csr();
            let mut x = b.create_group("X");
            x.set_attr("h5sparse_format", text("csr"));
            x.set_attr("h5sparse_shape", AttrValue::I64Array(vec![3, 4]));
            x.create_dataset("data").with_f32_data(&c.data);
            x.create_dataset("indices").with_i64_data(&c.indices);
            x.create_dataset("indptr").with_i64_data(&c.indptr);
            b.add_group(x.finish());
        });
        assert_eq!(read_h5ad_counts(&path).expect("read h5sparse").x, counts());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn peaks_from_each_column_convention_or_from_names() {
        let dir = scratch("columns");
        let path = dir.join("m.h5ad");
        let p = peaks();
        let chroms = Column::Str(p.iter().map(|p| p.chrom.clone()).collect());
        let starts = || p.iter().map(|p| p.start);
        let ends = || p.iter().map(|p| p.end);
        let conventions: [Vec<(String, Column)>; 3] = [
            vec![
                ("chrom".into(), chroms.clone()),
                ("chromStart".into(), Column::I64(starts().map(|v| v as i64).collect())),
                ("chromEnd".into(), Column::I64(ends().map(|v| v as i64).collect())),
            ],
            // Whole floats and numbers as text are positions too.
            vec![
                ("seqnames".into(), chroms.clone()),
                ("start".into(), Column::F64(starts().map(|v| v as f64).collect())),
                ("end".into(), Column::Str(ends().map(|v| v.to_string()).collect())),
            ],
            // Columns win over names that are not peaks.
            vec![
                ("chr".into(), chroms),
                ("start".into(), Column::I64(starts().map(|v| v as i64).collect())),
                ("end".into(), Column::I64(ends().map(|v| v as i64).collect())),
            ],
        ];
        for var in conventions {
            let a = AnnData { var_names: strings(&["p0", "p1", "p2", "p3"]), var: var.clone(), ..anndata() };
            write_h5ad(&path, &a).expect("write");
            assert_eq!(read_h5ad_counts(&path).expect("read").peaks, p, "columns {:?}", var[0].0);
        }
        for sep in [[':', '-'], ['-', '-'], ['_', '_']] {
            let names = p.iter().map(|p| format!("{}{}{}{}{}", p.chrom, sep[0], p.start, sep[1], p.end)).collect();
            let a = AnnData { var_names: names, var: vec![], ..anndata() };
            write_h5ad(&path, &a).expect("write");
            assert_eq!(read_h5ad_counts(&path).expect("read").peaks, p, "names with {sep:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn peak_coordinate_faults_are_named() {
        let dir = scratch("coordinate-faults");
        let path = dir.join("m.h5ad");
        let chroms = || ("chr".to_string(), Column::Str(strings(&["chr1", "chr1", "chr2", "chrX"])));
        let accepted = "accepted: var columns chr/start/end, chrom/chromStart/chromEnd or seqnames/start/end \
                        (strings, integers or categorical), or var names like chr1:100-600, chr1-100-600 or \
                        chr1_100_600";
        let cases: [(Vec<String>, Vec<(String, Column)>, String); 6] = [
            (
                strings(&["p0", "p1", "p2", "p3"]),
                vec![
                    chroms(),
                    ("start".into(), Column::F64(vec![100.0, 1000.5, 50.0, 5.0])),
                    ("end".into(), Column::I64(vec![600, 1500, 300, 25])),
                ],
                "var/start[1] = 1000.5 is not a whole number".into(),
            ),
            (
                strings(&["p0", "p1", "p2", "p3"]),
                vec![
                    chroms(),
                    ("start".into(), Column::I64(vec![-5, 1000, 50, 5])),
                    ("end".into(), Column::I64(vec![600, 1500, 300, 25])),
                ],
                "var/start: row 0 is -5, not a position ≥ 0".into(),
            ),
            (
                strings(&["p0", "p1", "p2", "p3"]),
                vec![
                    chroms(),
                    ("start".into(), Column::I64(vec![100, 1000, 50, 5])),
                    ("end".into(), Column::Str(strings(&["600", "1500", "3e2", "25"]))),
                ],
                "var/end: row 2 is '3e2', not a position ≥ 0".into(),
            ),
            (
                strings(&["p0", "p1", "p2", "p3"]),
                vec![
                    chroms(),
                    ("start".into(), Column::I64(vec![100, 1500, 50, 5])),
                    ("end".into(), Column::I64(vec![600, 1500, 300, 25])),
                ],
                "var row 1 (p1): peak chr1:1500-1500 is empty".into(),
            ),
            (
                strings(&["ENSG00000243485", "ENSG00000237613", "ENSG00000186092", "ENSG00000238009"]),
                vec![],
                format!("var has no peak coordinates (first var name: 'ENSG00000243485'); {accepted}"),
            ),
            (
                strings(&["chr1:100-600", "chr1:1000-1500", "MIR1302-2HG", "chrX:5-25"]),
                vec![],
                format!("var name 'MIR1302-2HG' (row 2) is not a peak while others are; {accepted}"),
            ),
        ];
        for (var_names, var, what) in cases {
            write_h5ad(&path, &AnnData { var_names, var, ..anndata() }).expect("write");
            let msg = read_h5ad_counts(&path).expect_err(&what).to_string();
            assert_eq!(msg, format!("{}: {what}", path.display()));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn parse_peak_name_takes_the_numbers_from_the_right() {
        let cases = [
            ("chr1:100-600", ("chr1", 100, 600)),
            ("chr1-100-600", ("chr1", 100, 600)),
            ("chr1_100_600", ("chr1", 100, 600)),
            ("chrUn_KI270302v1_0_90", ("chrUn_KI270302v1", 0, 90)),
            ("HLA-A*01:01-5-10", ("HLA-A*01:01", 5, 10)),
            ("  chrX:5-25\t", ("chrX", 5, 25)),
        ];
        for (name, (chrom, start, end)) in cases {
            assert_eq!(parse_peak_name(name), Some(interval(chrom, start, end)), "{name:?}");
        }
        let garbage = [
            "",
            "chr1",
            "chr1:100",
            ":100-600",
            "chr1:600-100",
            "chr1:100-100",
            "chr1:100-600x",
            "chr1:1e2-600",
            "chr1:100-",
            "chr1 100 600",
            "chr1:100-99999999999999999999",
            "ENSG00000243485",
            "MIR1302-2HG",
        ];
        for name in garbage {
            assert_eq!(parse_peak_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn a_file_that_is_not_hdf5_is_an_error_naming_it() {
        let dir = scratch("not-hdf5");
        let path = dir.join("text.h5ad");
        std::fs::write(&path, "chr1\t100\t600\n").expect("write");
        let missing = dir.join("absent.h5ad");
        for (p, what) in [(&path, "not an HDF5 file: "), (&missing, "No such file or directory")] {
            let prefix = format!("{}: {what}", p.display());
            let msgs = [
                read_h5ad_counts(p).expect_err("counts").to_string(),
                read_h5ad_x(p).expect_err("X").to_string(),
                read_h5ad_obsm(p, "X_embed").expect_err("obsm").to_string(),
            ];
            for msg in msgs {
                assert!(msg.starts_with(&prefix), "{msg}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_x_or_obsm_and_wrong_shapes_are_named() {
        let dir = scratch("missing");
        let path = dir.join("m.h5ad");
        write_h5ad(&path, &AnnData { x: None, ..anndata() }).expect("write");
        let msg = read_h5ad_counts(&path).expect_err("no X").to_string();
        assert_eq!(msg, format!("{}: no X: expected X as a sparse matrix group or a dense array", path.display()));
        let msg = read_h5ad_x(&path).expect_err("no X").to_string();
        assert_eq!(
            msg,
            format!("{}: no X group (a dense X is not supported: store it as a sparse matrix)", path.display())
        );
        // Without X the embeddings are still there.
        assert_eq!(read_h5ad_obsm(&path, "X_embed").expect("obsm").2, 2);
        let msg = read_h5ad_obsm(&path, "X_umap").expect_err("no such obsm").to_string();
        assert_eq!(msg, format!("{}: no obsm/X_umap (a dense array) in this file", path.display()));

        // X declared 2 × 4 while obs has 3 names.
        let x = CsrF32 { rows: 2, cols: 4, indptr: vec![0, 2, 2], indices: vec![0, 2], data: vec![1.0, 1.0] };
        write_h5ad(&path, &AnnData { x: Some(x), ..anndata() }).expect("write");
        let msg = read_h5ad_counts(&path).expect_err("shape").to_string();
        assert_eq!(
            msg,
            format!("{}: X has shape [2, 4] but obs has 3 names and var 4 (expected [3, 4])", path.display())
        );

        // A dense X of the wrong shape.
        write_raw(&path, |b| {
            b.create_dataset("X").with_f32_data(&[0.0; 12]).with_shape(&[4, 3]);
        });
        let msg = read_h5ad_counts(&path).expect_err("dense shape").to_string();
        assert_eq!(msg, format!("{}: X has shape [4, 3]; obs and var call for [3, 4]", path.display()));

        // An obsm array with fewer rows than obs.
        write_raw(&path, |b| {
            let mut obsm = b.create_group("obsm");
            obsm.create_dataset("X_embed").with_f32_data(&[1.0; 4]).with_shape(&[2, 2]);
            b.add_group(obsm.finish());
        });
        let msg = read_h5ad_obsm(&path, "X_embed").expect_err("obsm shape").to_string();
        assert_eq!(msg, format!("{}: obsm/X_embed has shape [2, 2], expected (3, columns)", path.display()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sparse_x_faults_are_named() {
        let dir = scratch("sparse-faults");
        let path = dir.join("m.h5ad");
        let cases = [
            (CsrF32 { indices: vec![0, 2, 1, 4], ..csr() }, "X/indices[3] = 4 is outside 0..4 (the matrix is 3 × 4)"),
            (CsrF32 { indices: vec![0, -1, 1, 3], ..csr() }, "X/indices[1] = -1 is outside 0..4 (the matrix is 3 × 4)"),
            (CsrF32 { indptr: vec![0, 2, 4], ..csr() }, "X/indptr has 3 entries; the shape 3 × 4 (CSR) needs 4"),
            (CsrF32 { indptr: vec![0, 3, 2, 4], ..csr() }, "X/indptr must rise from 0 to the number of entries (4)"),
            (CsrF32 { indptr: vec![0, 2, 2, 3], ..csr() }, "X/indptr must rise from 0 to the number of entries (4)"),
            (CsrF32 { data: vec![1.0, 0.3, 2.5], ..csr() }, "X/indices has 4 entries but X/data has 3"),
            (
                CsrF32 { data: vec![1.0, -1.0, 2.5, 4.0], ..csr() },
                "X/data[1]: value -1 is not a count: expected a finite value ≥ 0",
            ),
            (
                CsrF32 { data: vec![1.0, 0.3, f32::NAN, 4.0], ..csr() },
                "X/data[2]: value NaN is not a count: expected a finite value ≥ 0",
            ),
        ];
        for (x, what) in cases {
            write_h5ad(&path, &AnnData { x: Some(x), ..anndata() }).expect("write");
            let msg = read_h5ad_counts(&path).expect_err(what).to_string();
            assert_eq!(msg, format!("{}: {what}", path.display()));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// read_h5ad_x hands back the arrays as stored: a CSC X is transposed first, so its
    /// arrays must be checked before, or a row index out of range would index past the end.
    #[test]
    fn read_h5ad_x_refuses_inconsistent_arrays() {
        let dir = scratch("x-faults");
        let path = dir.join("m.h5ad");
        let csc = |indptr: &[i64], indices: &[i64], data: &[f32]| {
            let (indptr, indices, data) = (indptr.to_vec(), indices.to_vec(), data.to_vec());
            move |b: &mut FileBuilder| {
                let mut x = b.create_group("X");
                x.set_attr("encoding-type", text("csc_matrix"));
                x.set_attr("shape", AttrValue::I64Array(vec![3, 4]));
                x.create_dataset("data").with_f32_data(&data);
                x.create_dataset("indices").with_i64_data(&indices);
                x.create_dataset("indptr").with_i64_data(&indptr);
                b.add_group(x.finish());
            }
        };
        let data = [1.0, 2.5, 0.3, 4.0];
        let cases = [
            (csc(&[0, 1, 2, 3, 4], &[0, 3, 0, 2], &data), "X/indices[1] = 3 is outside 0..3 (the matrix is 3 × 4)"),
            (csc(&[0, 1, 2, 3, 4], &[0, -1, 0, 2], &data), "X/indices[1] = -1 is outside 0..3 (the matrix is 3 × 4)"),
            (csc(&[0, 1, 2, 4], &[0, 2, 0, 2], &data), "X/indptr has 4 entries; the shape 3 × 4 (CSC) needs 5"),
            (csc(&[0, 1, 2, 3, 5], &[0, 2, 0, 2], &data), "X/indptr must rise from 0 to the number of entries (4)"),
            (csc(&[0, 1, 2, 3, 4], &[0, 2, 0, 2], &data[..3]), "X/indices has 4 entries but X/data has 3"),
        ];
        for (x, what) in cases {
            write_raw(&path, x);
            let msg = read_h5ad_x(&path).expect_err(what).to_string();
            assert_eq!(msg, format!("{}: {what}", path.display()));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn transpose_is_exact() {
        let t = transpose(&csr());
        // Dense transpose: [[1, 0, 0], [0, 0, 2.5], [0.3, 0, 0], [0, 0, 4]].
        let want = CsrF32 {
            rows: 4,
            cols: 3,
            indptr: vec![0, 1, 2, 3, 4],
            indices: vec![0, 2, 0, 2],
            data: vec![1.0, 2.5, 0.3, 4.0],
        };
        assert_eq!(t, want);
        assert_eq!(transpose(&t), csr());
    }

    #[test]
    fn count_from_value_edges() {
        assert_eq!(count_from_value(-0.0), Ok(0));
        assert_eq!(count_from_value(1e-30), Ok(1));
        assert_eq!(count_from_value(1.49), Ok(1));
        assert_eq!(count_from_value(1.5), Ok(2));
        assert_eq!(count_from_value(7.0), Ok(7));
        assert_eq!(count_from_value(1e12), Ok(u32::MAX));
        for bad in [-0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(count_from_value(bad), Err(format!("value {bad} is not a count: expected a finite value ≥ 0")));
        }
    }

    /// Found by fuzzing (`fuzz/regressions/h5ad/`): X/indices declares 4,194,304,005 values in
    /// a 40 KiB file whose root group cannot be listed; read_h5ad_x reserved 33.5 GB for them.
    #[test]
    fn a_dataset_declaring_more_than_the_file_holds_is_an_error_not_an_allocation() {
        let dir = crate::io::scratch_dir("h5ad-declared");
        let path = dir.join("damaged.h5ad");
        std::fs::write(&path, include_bytes!("../../fuzz/regressions/h5ad/x_indices_declares_4g_values.h5ad"))
            .expect("write");
        let msg = read_h5ad_x(&path).expect_err("damaged").to_string();
        assert!(msg.contains("X/indices: declares [4194304005] values of 4 bytes"), "{msg}");
        for msg in [read_h5ad_counts(&path).err(), read_h5ad_obsm(&path, "X_embed").err()] {
            assert!(msg.is_some(), "read a damaged file");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
