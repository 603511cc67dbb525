//! Peak-by-cell matrices from every input form `chromax sc train --matrix` accepts (AnnData
//! CSR/CSC/categorical, 10x HDF5, Matrix Market plain/gzip/transposed, .cxmatrix), read back
//! exactly; matching them to a peak file; filtering; and the faults each must report.

mod common;

use chromax::io::bed::Interval;
use chromax::io::h5ad::{write_h5ad, AnnData, Column};
use chromax::sc::matrix::{
    count_fragments_in_peaks, filter_matrix, match_peaks, read_cell_matrix, write_binary_matrix, CellFilter,
};
use chromax::store::matrix::{write_matrix, CellMatrix, CsrCounts};
use common::say;
use hdf5_pure::{AttrValue, FileBuilder};
use std::io::Write;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chromax-inputs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn peak(chrom: &str, start: u64, end: u64) -> Interval {
    Interval { chrom: chrom.into(), start, end }
}

/// 5 peaks × 4 cells; peak 1 is empty, cell 3 has only peak 3.
const DENSE: [[u32; 4]; 5] = [[2, 0, 1, 0], [0, 0, 0, 0], [1, 3, 0, 0], [0, 0, 0, 5], [1, 1, 1, 0]];

fn expected() -> CsrCounts {
    let mut m = CsrCounts {
        peaks: vec![
            peak("chr1", 100, 600),
            peak("chr1", 1000, 1500),
            peak("chr2", 50, 300),
            peak("chrUn_KI270302v1", 10, 90),
            peak("chrX", 5, 25),
        ],
        cells: ["AAAC-1", "AAAG-1", "AAAT-1", "AACA-1"].map(String::from).to_vec(),
        indptr: vec![0],
        indices: vec![],
        counts: vec![],
    };
    for row in DENSE {
        for (c, &n) in row.iter().enumerate() {
            if n > 0 {
                m.indices.push(c as u32);
                m.counts.push(n);
            }
        }
        m.indptr.push(m.indices.len() as u64);
    }
    m
}

fn names(m: &CsrCounts, sep: [char; 2]) -> Vec<String> {
    m.peaks.iter().map(|p| format!("{}{}{}{}{}", p.chrom, sep[0], p.start, sep[1], p.end)).collect()
}

fn text(s: &str) -> AttrValue {
    AttrValue::VarLenString(s.to_owned())
}

#[test]
fn h5ad_csr_with_columns_or_with_peak_names() {
    let dir = scratch("h5ad-csr");
    let m = expected();
    let path = dir.join("m.h5ad");
    write_h5ad(&path, &m.to_anndata()).expect("write");
    assert_eq!(read_cell_matrix(&path).expect("read"), m);

    // No coordinate columns: the var names carry the peaks, in all three spellings.
    for sep in [[':', '-'], ['-', '-'], ['_', '_']] {
        let mut a = m.to_anndata();
        a.var.clear();
        a.var_names = names(&m, sep);
        write_h5ad(&path, &a).expect("write");
        assert_eq!(read_cell_matrix(&path).expect("read"), m, "var names with {sep:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An AnnData file written with hdf5-pure directly: X as CSC (cells × peaks, so one column
/// per peak) with float64 values including fractions and an explicit zero; var with a
/// categorical `chr` (as scanpy writes it) and int32 `start`/`end`.
#[test]
fn h5ad_csc_float_values_and_categorical_chr() {
    let dir = scratch("h5ad-csc");
    let m = expected();
    // Column (peak) by column: (cell, stored value); expected counts max(1, round(v)).
    let columns: [&[(i32, f64)]; 5] = [
        &[(0, 2.4), (2, 0.3)],
        &[(1, 0.0)], // explicit zero: absent
        &[(0, 1.0), (1, 2.5)],
        &[(3, 5.0)],
        &[(0, 1.0), (1, 0.01), (2, 1.49)],
    ];
    let (mut indptr, mut indices, mut data) = (vec![0i64], vec![], vec![]);
    for col in columns {
        for &(c, v) in col {
            indices.push(c);
            data.push(v);
        }
        indptr.push(indices.len() as i64);
    }
    let mut b = FileBuilder::new();
    b.set_attr("encoding-type", text("anndata"));
    b.set_attr("encoding-version", text("0.1.0"));
    let mut x = b.create_group("X");
    x.set_attr("encoding-type", text("csc_matrix"));
    x.set_attr("encoding-version", text("0.1.0"));
    x.set_attr("shape", AttrValue::I64Array(vec![4, 5]));
    x.create_dataset("data").with_f64_data(&data);
    x.create_dataset("indices").with_i32_data(&indices);
    x.create_dataset("indptr").with_i64_data(&indptr);
    b.add_group(x.finish());
    let mut obs = b.create_group("obs");
    obs.set_attr("encoding-type", text("dataframe"));
    obs.set_attr("_index", text("_index"));
    let cells: Vec<&str> = m.cells.iter().map(String::as_str).collect();
    obs.create_dataset("_index").with_vlen_strings(&cells);
    b.add_group(obs.finish());
    let mut var = b.create_group("var");
    var.set_attr("encoding-type", text("dataframe"));
    var.set_attr("_index", text("_index"));
    let idx = ["p0", "p1", "p2", "p3", "p4"];
    var.create_dataset("_index").with_vlen_strings(&idx);
    let mut chr = var.create_group("chr");
    chr.set_attr("encoding-type", text("categorical"));
    chr.set_attr("encoding-version", text("0.2.0"));
    chr.set_attr("ordered", AttrValue::U8(0));
    chr.create_dataset("categories").with_vlen_strings(&["chr1", "chr2", "chrUn_KI270302v1", "chrX"]);
    chr.create_dataset("codes").with_i8_data(&[0, 0, 1, 2, 3]);
    var.add_group(chr.finish());
    let starts: Vec<i32> = m.peaks.iter().map(|p| p.start as i32).collect();
    let ends: Vec<i32> = m.peaks.iter().map(|p| p.end as i32).collect();
    var.create_dataset("start").with_i32_data(&starts);
    var.create_dataset("end").with_i32_data(&ends);
    b.add_group(var.finish());
    let path = dir.join("csc.h5ad");
    b.write(&path).expect("write");

    let mut want = m.clone();
    // 2.4 → 2, 0.3 → 1, 2.5 → 3, 0.01 → 1, 1.49 → 1.
    want.counts = vec![2, 1, 1, 3, 5, 1, 1, 1];
    assert_eq!(read_cell_matrix(&path).expect("read"), want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes a 10x feature-barcode matrix (`matrix` group, CSC with one column per barcode)
/// with fixed-length (`S`) strings, as Cell Ranger does. `genes` adds Gene Expression rows
/// between the peaks, as in a Cell Ranger ARC file.
fn write_10x(path: &Path, m: &CsrCounts, genes: bool) {
    // Feature rows: the peaks, with a gene after peak 0 and after peak 2 when `genes`.
    let mut features: Vec<(String, &str, Option<usize>)> = Vec::new();
    for (i, id) in names(m, [':', '-']).into_iter().enumerate() {
        features.push((id, "Peaks", Some(i)));
        if genes && (i == 0 || i == 2) {
            features.push((format!("ENSG0000000{i}"), "Gene Expression", None));
        }
    }
    // CSC by barcode: each barcode's feature rows (genes get a count that must be ignored).
    let (mut indptr, mut indices, mut data) = (vec![0i64], vec![], vec![]);
    for (c, _) in m.cells.iter().enumerate() {
        for (row, (_, _, p)) in features.iter().enumerate() {
            let n = match p {
                Some(p) => DENSE[*p][c],
                None => 7,
            };
            if n > 0 {
                indices.push(row as i64);
                data.push(n as i32);
            }
        }
        indptr.push(indices.len() as i64);
    }
    let mut b = FileBuilder::new();
    let mut g = b.create_group("matrix");
    let bcs: Vec<&str> = m.cells.iter().map(String::as_str).collect();
    g.create_dataset("barcodes").with_ascii_strings(&bcs).expect("barcodes");
    g.create_dataset("data").with_i32_data(&data);
    g.create_dataset("indices").with_i64_data(&indices);
    g.create_dataset("indptr").with_i64_data(&indptr);
    g.create_dataset("shape").with_i32_data(&[features.len() as i32, m.cells.len() as i32]);
    let mut f = g.create_group("features");
    let ids: Vec<&str> = features.iter().map(|f| f.0.as_str()).collect();
    let types: Vec<&str> = features.iter().map(|f| f.1).collect();
    f.create_dataset("id").with_ascii_strings(&ids).expect("id");
    f.create_dataset("name").with_ascii_strings(&ids).expect("name");
    f.create_dataset("feature_type").with_ascii_strings(&types).expect("feature_type");
    g.add_group(f.finish());
    b.add_group(g.finish());
    b.write(path).expect("write 10x");
}

#[test]
fn tenx_h5_peaks_only_and_multiome() {
    let dir = scratch("10x");
    let m = expected();
    write_10x(&dir.join("filtered_peak_bc_matrix.h5"), &m, false);
    assert_eq!(read_cell_matrix(&dir.join("filtered_peak_bc_matrix.h5")).expect("read"), m);
    write_10x(&dir.join("filtered_feature_bc_matrix.h5"), &m, true);
    assert_eq!(read_cell_matrix(&dir.join("filtered_feature_bc_matrix.h5")).expect("read ARC"), m);
    let _ = std::fs::remove_dir_all(&dir);
}

fn gzip(path: &Path, bytes: &[u8]) {
    let mut e =
        flate2::write::GzEncoder::new(std::fs::File::create(path).expect("create"), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip");
}

/// The Matrix Market text of `m`, entries in scrambled order, one count split into a
/// duplicate pair (summed on reading); `transposed` writes barcodes × peaks.
fn mtx_text(m: &CsrCounts, transposed: bool) -> String {
    let mut entries = Vec::new();
    for (r, row) in DENSE.iter().enumerate() {
        for (c, &n) in row.iter().enumerate() {
            if n == 3 {
                entries.push((r, c, 1));
                entries.push((r, c, 2));
            } else if n > 0 {
                entries.push((r, c, n));
            }
        }
    }
    entries.reverse();
    let (rows, cols) = if transposed { (m.cells.len(), m.peaks.len()) } else { (m.peaks.len(), m.cells.len()) };
    let mut s = format!(
        "%%MatrixMarket matrix coordinate integer general\n%metadata_json: {{}}\n{rows} {cols} {}\n",
        entries.len()
    );
    for (r, c, n) in entries {
        let (i, j) = if transposed { (c, r) } else { (r, c) };
        s += &format!("{} {} {n}\n", i + 1, j + 1);
    }
    s
}

fn write_mtx_dir(dir: &Path, m: &CsrCounts, gz: bool, transposed: bool) {
    std::fs::create_dir_all(dir).expect("dir");
    let barcodes = m.cells.join("\n") + "\n";
    let peaks: String = m.peaks.iter().map(|p| format!("{}\t{}\t{}\n", p.chrom, p.start, p.end)).collect();
    let matrix = mtx_text(m, transposed);
    for (name, content) in [("barcodes.tsv", barcodes), ("peaks.bed", peaks), ("matrix.mtx", matrix)] {
        if gz {
            gzip(&dir.join(format!("{name}.gz")), content.as_bytes());
        } else {
            std::fs::write(dir.join(name), content).expect("write");
        }
    }
}

#[test]
fn matrix_market_plain_gzip_and_transposed() {
    let dir = scratch("mtx");
    let m = expected();
    write_mtx_dir(&dir.join("plain"), &m, false, false);
    assert_eq!(read_cell_matrix(&dir.join("plain")).expect("plain"), m);
    // A path to matrix.mtx reads its directory.
    assert_eq!(read_cell_matrix(&dir.join("plain/matrix.mtx")).expect("file path"), m);
    write_mtx_dir(&dir.join("gz"), &m, true, false);
    assert_eq!(read_cell_matrix(&dir.join("gz")).expect("gz"), m);
    write_mtx_dir(&dir.join("t"), &m, true, true);
    assert_eq!(read_cell_matrix(&dir.join("t")).expect("transposed"), m);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cxmatrix_store_reads_back() {
    let dir = scratch("cx");
    let m = expected();
    write_matrix(&dir.join("m.cxmatrix"), &m).expect("write");
    assert_eq!(read_cell_matrix(&dir.join("m.cxmatrix")).expect("read"), m);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `python3` with `PYTHONPATH` defaulting to where CI keeps anndata
/// (`$HOME/.cache/chromax/py-tools`), or `None` when anndata cannot be imported.
fn python_with_anndata() -> Option<std::process::Command> {
    let make = || {
        let mut cmd = std::process::Command::new("python3");
        if std::env::var_os("PYTHONPATH").is_none() {
            if let Some(home) = std::env::var_os("HOME") {
                cmd.env("PYTHONPATH", Path::new(&home).join(".cache/chromax/py-tools"));
            }
        }
        cmd
    };
    let ok = make().args(["-c", "import anndata, h5py"]).output().is_ok_and(|o| o.status.success());
    ok.then(make)
}

/// Files written by Python: anndata (CSR and CSC X, scanpy-style categorical chr) and an
/// h5py 10x file the way Cell Ranger writes it (fixed-length strings, gzip-compressed chunks).
#[test]
fn files_written_by_python_anndata_and_h5py() {
    let Some(mut python) = python_with_anndata() else {
        say("files_written_by_python_anndata_and_h5py: skipped: python anndata not available");
        return;
    };
    let dir = scratch("py");
    let m = expected();
    let dense: Vec<String> = DENSE.iter().map(|r| format!("{r:?}")).collect();
    let script = format!(
        r#"
import sys, numpy as np, pandas as pd, scipy.sparse as sp, anndata, h5py
out = sys.argv[1]
dense = np.array([{dense}], dtype=np.float32)            # peaks x cells
chroms = {chroms:?}; starts = {starts:?}; ends = {ends:?}; cells = {cells:?}
var = pd.DataFrame({{"chr": pd.Categorical(chroms), "start": np.array(starts, dtype=np.int64),
                     "end": np.array(ends, dtype=np.int64)}},
                   index=[f"{{c}}:{{s}}-{{e}}" for c, s, e in zip(chroms, starts, ends)])
obs = pd.DataFrame(index=cells)
anndata.AnnData(X=sp.csr_matrix(dense.T), obs=obs, var=var).write_h5ad(out + "/csr.h5ad")
anndata.AnnData(X=sp.csc_matrix(dense.T), obs=obs, var=var).write_h5ad(out + "/csc.h5ad", compression="gzip")
x = sp.csc_matrix(dense.astype(np.int32))                  # features x barcodes, one column per barcode
with h5py.File(out + "/tenx.h5", "w") as f:
    g = f.create_group("matrix")
    g.create_dataset("barcodes", data=np.array(cells, dtype="S"))
    g.create_dataset("data", data=x.data, compression="gzip", chunks=True)
    g.create_dataset("indices", data=x.indices.astype(np.int64), compression="gzip", chunks=True)
    g.create_dataset("indptr", data=x.indptr.astype(np.int64), compression="gzip", chunks=True)
    g.create_dataset("shape", data=np.array(x.shape, dtype=np.int32))
    ft = g.create_group("features")
    ft.create_dataset("id", data=np.array(var.index, dtype="S"))
    ft.create_dataset("name", data=np.array(var.index, dtype="S"))
    ft.create_dataset("feature_type", data=np.array(["Peaks"] * len(chroms), dtype="S"))
"#,
        dense = dense.join(", "),
        chroms = m.peaks.iter().map(|p| p.chrom.as_str()).collect::<Vec<_>>(),
        starts = m.peaks.iter().map(|p| p.start).collect::<Vec<_>>(),
        ends = m.peaks.iter().map(|p| p.end).collect::<Vec<_>>(),
        cells = m.cells,
    );
    let out = python.args(["-c", &script]).arg(&dir).output().expect("run python3");
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    for name in ["csr.h5ad", "csc.h5ad", "tenx.h5"] {
        let got = read_cell_matrix(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, m, "{name}");
    }
    say("files_written_by_python_anndata_and_h5py: anndata CSR/CSC and h5py 10x files read back");
    let _ = std::fs::remove_dir_all(&dir);
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

/// Real data: `chromax sc matrix` output (.h5ad and .cxmatrix) of the chr22 scATAC
/// fragments reads back as the matrix counted in-process.
#[test]
fn chr22_sc_matrix_outputs_read_back() {
    let dir = scratch("chr22");
    let peaks_path = data("chr22_scatac/macs3_callpeak_frag_peaks.narrowPeak");
    let peaks = chromax::io::bed::read_intervals(&peaks_path).expect("peaks");
    let m = count_fragments_in_peaks(&data("chr22_scatac/fragments.tsv.gz"), &peaks, &CellFilter::MinFragments(1))
        .expect("count");
    for out in ["m.h5ad", "m.cxmatrix"] {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_chromax"))
            .args(["sc", "matrix", "--fragments"])
            .arg(data("chr22_scatac/fragments.tsv.gz"))
            .arg("--peaks")
            .arg(&peaks_path)
            .arg("-o")
            .arg(dir.join(out))
            .output()
            .expect("run chromax");
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let back = read_cell_matrix(&dir.join(out)).expect("read back");
        assert_eq!((back.peaks.len(), back.cells.len(), back.nnz()), (1455, 100, m.nnz()), "{out}");
        assert!(back == m, "{out}: differs from the in-process count");
        let matched = match_peaks(back, &peaks, &dir.join(out), &peaks_path).expect("same peaks");
        assert!(matched == m);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn match_peaks_reorders_to_the_peak_file() {
    let m = expected();
    let (mp, pp) = (Path::new("m.h5ad"), Path::new("p.bed"));
    assert_eq!(match_peaks(m.clone(), &m.peaks, mp, pp).expect("same"), m);
    let order = [3usize, 0, 4, 1, 2];
    let shuffled: Vec<Interval> = order.iter().map(|&r| m.peaks[r].clone()).collect();
    let got = match_peaks(m.clone(), &shuffled, mp, pp).expect("reordered");
    assert_eq!(got.peaks, shuffled);
    for (new, &old) in order.iter().enumerate() {
        assert_eq!(got.row(new).collect::<Vec<_>>(), m.row(old).collect::<Vec<_>>(), "row {new}");
    }
}

#[test]
fn filter_drops_cells_first_then_peaks_then_empty_cells() {
    let m = expected();
    // Peaks per cell: 3, 2, 2, 1. Cells per peak: 2, 0, 2, 1, 3.
    let f = filter_matrix(&m, 2, 1).expect("filter");
    assert_eq!(f.peak_rows, [0, 2, 4]);
    assert_eq!(f.peaks, [m.peaks[0].clone(), m.peaks[2].clone(), m.peaks[4].clone()]);
    // Cell 3 had only peak 3, which the peak filter removed: dropped as empty.
    assert_eq!(f.cell_columns, [0, 1, 2]);
    assert_eq!(f.barcodes, m.cells[..3]);
    assert_eq!(f.dropped_empty_cells, 1);
    assert_eq!((f.indptr.as_slice(), f.indices.as_slice()), (&[0u64, 2, 4, 7][..], &[0u32, 2, 0, 1, 0, 1, 2][..]));

    // min_peaks_per_cell = 0 keeps the empty cell (documented), with no entry.
    let keep_empty = filter_matrix(&m, 2, 0).expect("filter");
    assert_eq!(keep_empty.cell_columns, [0, 1, 2, 3]);
    assert_eq!(keep_empty.indices, f.indices);
    assert_eq!(keep_empty.dropped_empty_cells, 0);

    // Cells first: with 2 peaks per cell, cell 3 goes, so peak 3 is in 0 cells.
    let g = filter_matrix(&m, 1, 2).expect("filter");
    assert_eq!((g.peak_rows.as_slice(), g.cell_columns.as_slice()), (&[0u32, 2, 4][..], &[0u32, 1, 2][..]));

    // The binary matrix caches as a store of ones.
    let dir = scratch("filtered");
    write_binary_matrix(&dir.join("f.cxmatrix"), &f).expect("write");
    let back = read_cell_matrix(&dir.join("f.cxmatrix")).expect("read");
    assert_eq!(back, f.to_counts());
    assert!(back.counts.iter().all(|&n| n == 1));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- Faults -------------------------------------------------------------------------------

#[test]
fn h5ad_without_peak_coordinates_is_refused() {
    let dir = scratch("nocoords");
    let mut a: AnnData = expected().to_anndata();
    a.var = vec![("gene_ids".into(), Column::Str(vec!["x".into(); 5]))];
    a.var_names = (0..5).map(|i| format!("GENE{i}")).collect();
    let path = dir.join("genes.h5ad");
    write_h5ad(&path, &a).expect("write");
    let e = read_cell_matrix(&path).expect_err("no coordinates").to_string();
    assert!(e.contains("genes.h5ad"), "{e}");
    assert!(e.contains("GENE0") && e.contains("chr/start/end") && e.contains("chr1:100-600"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_peak_file_with_more_peaks_than_the_matrix_is_refused() {
    let m = expected();
    let mut more = m.peaks.clone();
    more.push(more[0].clone());
    let e = match_peaks(m.clone(), &more, Path::new("cells.h5ad"), Path::new("peaks.bed"))
        .expect_err("counts differ")
        .to_string();
    assert!(e.contains("matrix cells.h5ad has 5 peaks, peak file peaks.bed has 6"), "{e}");
}

#[test]
fn a_peak_file_naming_a_subset_takes_those_rows_in_its_order() {
    let m = expected();
    let subset = vec![m.peaks[3].clone(), m.peaks[0].clone()];
    let got = match_peaks(m.clone(), &subset, Path::new("cells.h5ad"), Path::new("peaks.bed")).expect("a subset");
    assert_eq!(got.peaks, subset);
    assert_eq!(got.row(0).collect::<Vec<_>>(), m.row(3).collect::<Vec<_>>());
    assert_eq!(got.row(1).collect::<Vec<_>>(), m.row(0).collect::<Vec<_>>());
    assert_eq!(got.cells, m.cells);
}

#[test]
fn coordinates_differing_from_the_peak_file_are_refused() {
    let m = expected();
    let mut other = m.peaks.clone();
    other[2].start += 1;
    let e = match_peaks(m.clone(), &other, Path::new("cells.h5ad"), Path::new("peaks.bed"))
        .expect_err("coordinates differ")
        .to_string();
    assert!(e.contains("cells.h5ad") && e.contains("peaks.bed"), "{e}");
    assert!(e.contains("peak #3") && e.contains("chr2:50-300") && e.contains("chr2:51-300"), "{e}");
    assert!(e.contains("1-based"), "{e}");
}

#[test]
fn malformed_mtx_line_is_named() {
    let dir = scratch("badmtx");
    let m = expected();
    write_mtx_dir(&dir, &m, false, false);
    let text = mtx_text(&m, false);
    let mut lines: Vec<&str> = text.lines().collect();
    lines[4] = "2 x 1"; // line 5
    std::fs::write(dir.join("matrix.mtx"), lines.join("\n") + "\n").expect("write");
    let e = read_cell_matrix(&dir).expect_err("malformed").to_string();
    assert!(e.contains("matrix.mtx: line 5:") && e.contains("'x'"), "{e}");

    lines[4] = "9 1 1"; // row beyond the 5 peaks
    std::fs::write(dir.join("matrix.mtx"), lines.join("\n") + "\n").expect("write");
    let e = read_cell_matrix(&dir).expect_err("out of range").to_string();
    assert!(e.contains("line 5") && e.contains("row 9 is outside 1..=5"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn filters_that_leave_nothing_are_refused() {
    let m = expected();
    let e = filter_matrix(&m, 2, 3).expect_err("no peaks").to_string();
    assert!(e.contains("min cells per peak 2") && e.contains("min peaks per cell 3"), "{e}");
    assert!(e.contains("leaves no peaks") && e.contains("1 cells pass"), "{e}");
    let e = filter_matrix(&m, 1, 10).expect_err("no cells").to_string();
    assert!(e.contains("leaves no cells") && e.contains("most peaks any cell has is 3"), "{e}");
}

#[test]
fn unknown_matrix_form_lists_what_is_accepted() {
    let dir = scratch("unknown");
    std::fs::write(dir.join("m.csv"), "1,2\n").expect("write");
    let e = read_cell_matrix(&dir.join("m.csv")).expect_err("csv").to_string();
    assert!(e.contains("m.csv") && e.contains(".h5ad") && e.contains("matrix.mtx") && e.contains(".cxmatrix"), "{e}");
    let e = read_cell_matrix(&dir.join("missing.h5ad")).expect_err("missing").to_string();
    assert!(e.contains("missing.h5ad"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_store_is_an_error_not_a_panic() {
    let dir = scratch("damaged");
    let path = dir.join("m.cxmatrix");
    chromax::store::matrix::write_matrix(&path, &expected()).expect("write");
    let whole = std::fs::read(&path).expect("read");
    // Cut inside the data sections, then inside the index.
    for keep in [whole.len() - 3, 4096 + 10, 40] {
        std::fs::write(&path, &whole[..keep]).expect("truncate");
        let e = CellMatrix::open(&path).err().expect("a truncated store is refused");
        assert!(e.to_string().contains("m.cxmatrix"), "{e}");
    }
    // An index whose peak count disagrees with its peak names (same length, other digit).
    let mut bad = whole.clone();
    let text = String::from_utf8_lossy(&bad).into_owned();
    let at = text.find("\"peaks\":").expect("peaks in the index") + 8;
    bad[at] = if bad[at] == b'9' { b'8' } else { b'9' };
    std::fs::write(&path, &bad).expect("write");
    let e = CellMatrix::open(&path).err().expect("an inconsistent index is refused");
    assert!(e.to_string().contains("damaged"), "{e}");
    // A cell index past the cells, read by the whole-store reader and by the streamed
    // conversion: an error naming the store, not a panic.
    let mut bad = whole.clone();
    let text = String::from_utf8_lossy(&whole).into_owned();
    let indices_at: usize = text
        .split("\"indices_offset\":")
        .nth(1)
        .and_then(|t| t.split([',', '}']).next())
        .and_then(|n| n.trim().parse().ok())
        .expect("indices offset");
    bad[indices_at..indices_at + 4].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&path, &bad).expect("write");
    let e = read_cell_matrix(&path).expect_err("a cell past the cells").to_string();
    assert!(e.contains("m.cxmatrix") && e.contains("99"), "{e}");
    let peaks = expected().peaks;
    let e = chromax::sc::convert::convert_matrix(
        &path,
        &peaks,
        Path::new("p.bed"),
        chromax::sc::convert::Filters { min_cells_per_peak: 1, min_peaks_per_cell: 1 },
        chromax::sc::convert::DEFAULT_MEMORY,
        &dir.join("out.cxmatrix"),
    )
    .expect_err("a cell past the cells")
    .to_string();
    assert!(e.contains("m.cxmatrix") && e.contains("cell index 99"), "{e}");
    assert!(!dir.join("out.cxmatrix").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
