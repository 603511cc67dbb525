//! AnnData (`.h5ad`) files, written and read with hdf5-pure (pure Rust: no libhdf5 to
//! install). What is written follows the AnnData on-disk specification: root attributes
//! `encoding-type = anndata`, `X` as a `csr_matrix` group (`data`, `indices`, `indptr`,
//! `shape`), `obs` and `var` as `dataframe` groups (`_index`, `column-order`, string and
//! numeric columns), `obsm/<name>` as dense arrays, and empty `uns`, `layers`, `obsp`, `varp`,
//! `varm`. Datasets are contiguous (hdf5-pure's chunk sizes above 65,535 elements are read
//! wrongly by HDF5 2.0, which recent h5py ships).

use super::atomic::AtomicFile;
use crate::error::FileError;
use hdf5_pure::{AttrValue, FileBuilder, GroupBuilder};
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
    let (rows, cols) = (shape[0] as usize, shape[1] as usize);
    let x = match kind.as_str() {
        "csr_matrix" => CsrF32 { rows, cols, indptr, indices, data },
        "csc_matrix" => transpose(&CsrF32 { rows: cols, cols: rows, indptr, indices, data }),
        other => return Err(bad(format!("X is '{other}'; expected csr_matrix or csc_matrix"))),
    };
    Ok((x, obs, var))
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
