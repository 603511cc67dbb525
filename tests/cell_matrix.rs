//! The peak-by-cell matrix from real chr22 scATAC fragments and MACS3 peaks: 1,455 peaks ×
//! 100 cells, counts equal to an independent count, stored and read back memory-mapped.

use chromax::io::bed::read_intervals;
use chromax::sc::matrix::{count_fragments_in_peaks, CellFilter};
use chromax::store::matrix::{write_matrix, CellMatrix};
use flate2::read::MultiGzDecoder;
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

#[test]
fn chr22_matrix_matches_an_independent_count() {
    let frags_path = data("chr22_scatac/fragments.tsv.gz");
    let peaks = read_intervals(data("chr22_scatac/macs3_callpeak_frag_peaks.narrowPeak")).expect("peaks");
    assert_eq!(peaks.len(), 1455);
    let fragments: Vec<(String, u64, u64, String)> =
        BufReader::new(MultiGzDecoder::new(std::fs::File::open(&frags_path).expect("fragments")))
            .lines()
            .map(|l| {
                let l = l.expect("line");
                let f: Vec<&str> = l.split('\t').collect();
                (f[0].to_string(), f[1].parse().expect("start"), f[2].parse().expect("end"), f[3].to_string())
            })
            .collect();
    let barcodes: Vec<String> = fragments.iter().map(|f| f.3.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    assert_eq!(barcodes.len(), 100);

    let m = count_fragments_in_peaks(&frags_path, &peaks, &CellFilter::MinFragments(1)).expect("count");
    assert_eq!((m.peaks.len(), m.cells.len()), (1455, 100));
    assert_eq!(m.cells, barcodes, "cells in sorted barcode order");

    // Independent count: every fragment against every peak.
    let col: HashMap<&str, usize> = barcodes.iter().enumerate().map(|(i, b)| (b.as_str(), i)).collect();
    let mut dense = vec![0u32; 1455 * 100];
    for (chrom, s, e, bc) in &fragments {
        for (i, p) in peaks.iter().enumerate() {
            if &p.chrom == chrom && *s < p.end && p.start < *e {
                dense[i * 100 + col[bc.as_str()]] += 1;
            }
        }
    }
    let mut from_csr = vec![0u32; 1455 * 100];
    for row in 0..1455 {
        for (c, n) in m.row(row) {
            from_csr[row * 100 + c as usize] = n;
        }
    }
    assert!(from_csr == dense, "CSR counts differ from the direct count");
    let total: u32 = dense.iter().sum();
    assert!(total > 10_000, "{total} fragment-peak overlaps");
    assert_eq!(m.nnz(), dense.iter().filter(|&&n| n > 0).count());

    // A barcode list keeps exactly those cells, in its order.
    let fifty: Vec<String> = std::fs::read_to_string(data("chr22_scatac/barcodes_50.txt"))
        .expect("list")
        .lines()
        .map(String::from)
        .collect();
    let m50 = count_fragments_in_peaks(&frags_path, &peaks, &CellFilter::Barcodes(fifty.clone())).expect("count 50");
    assert_eq!(m50.cells, fifty);
    for row in 0..1455 {
        for (c, n) in m50.row(row) {
            assert_eq!(n, dense[row * 100 + col[fifty[c as usize].as_str()]]);
        }
    }

    // Stored and mapped back.
    let dir = std::env::temp_dir().join(format!("chromax-matrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    write_matrix(&dir.join("m.cxmatrix"), &m).expect("write");
    let mapped = CellMatrix::open(&dir.join("m.cxmatrix")).expect("open");
    assert_eq!(mapped.shape(), (1455, 100));
    assert_eq!(
        (mapped.indptr(), mapped.indices(), mapped.counts()),
        (&m.indptr[..], &m.indices[..], Some(&m.counts[..]))
    );
    assert_eq!(mapped.barcodes(), &barcodes[..]);
    assert_eq!(mapped.peak_names()[0], format!("{}:{}-{}", peaks[0].chrom, peaks[0].start, peaks[0].end));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sc_matrix_writes_an_anndata_file_that_reads_back() {
    let dir = std::env::temp_dir().join(format!("chromax-h5ad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chromax"))
        .args(["sc", "matrix", "--fragments"])
        .arg(data("chr22_scatac/fragments.tsv.gz"))
        .arg("--peaks")
        .arg(data("chr22_scatac/macs3_callpeak_frag_peaks.narrowPeak"))
        .arg("-o")
        .arg(dir.join("m.h5ad"))
        .output()
        .expect("run chromax");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1,455 peaks × 100 cells"));

    let peaks = read_intervals(data("chr22_scatac/macs3_callpeak_frag_peaks.narrowPeak")).expect("peaks");
    let m = count_fragments_in_peaks(&data("chr22_scatac/fragments.tsv.gz"), &peaks, &CellFilter::MinFragments(1))
        .expect("count");
    let (x, obs, var) = chromax::io::h5ad::read_h5ad_x(&dir.join("m.h5ad")).expect("read back");
    assert_eq!((x.rows, x.cols), (100, 1455), "cells × peaks");
    assert_eq!(obs, m.cells);
    assert_eq!(var[0], format!("{}:{}-{}", peaks[0].chrom, peaks[0].start, peaks[0].end));
    // X is the transpose of the peaks × cells counts.
    let mut dense = vec![0f32; 100 * 1455];
    for row in 0..1455 {
        for (c, n) in m.row(row) {
            dense[c as usize * 1455 + row] = n as f32;
        }
    }
    let mut back = vec![0f32; 100 * 1455];
    for r in 0..x.rows {
        for k in x.indptr[r] as usize..x.indptr[r + 1] as usize {
            back[r * 1455 + x.indices[k] as usize] = x.data[k];
        }
    }
    assert!(back == dense);

    // anndata, where Python has it.
    let script = format!(
        "import anndata\na = anndata.read_h5ad({:?})\nprint(a.n_obs, a.n_vars, int(a.X.sum()), a.var['chr'].iloc[0], int(a.var['start'].iloc[0]), a.obs_names[0])",
        dir.join("m.h5ad").display().to_string()
    );
    // PYTHONPATH defaults to where CI keeps anndata.
    let mut python = std::process::Command::new("python3");
    if std::env::var_os("PYTHONPATH").is_none() {
        if let Some(home) = std::env::var_os("HOME") {
            python.env("PYTHONPATH", Path::new(&home).join(".cache/chromax/py-tools"));
        }
    }
    match python.args(["-c", &script]).output() {
        Ok(o) if o.status.success() => {
            let total: f32 = dense.iter().sum();
            let want = format!("100 1455 {} {} {} {}", total as i64, peaks[0].chrom, peaks[0].start, m.cells[0]);
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), want);
            let _ = std::io::Write::write_all(&mut std::io::stderr(), b"sc_matrix: anndata reads the file\n");
        }
        _ => {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"sc_matrix_writes_an_anndata_file: anndata part skipped: python3 has no anndata\n",
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
