//! The streamed conversion of a matrix into the training store (`chromax sc store`,
//! `sc::convert`) against the in-memory path (read whole, match, filter, write), byte for
//! byte, on every input form and order, real and generated, with and without filters, peak
//! reordering and a peak subset, at the least memory it accepts (every row written 16 entries
//! at a time) and at the default; its peak memory on a matrix several times its budget,
//! measured from /proc; and a killed conversion.

mod common;

use chromax::io::bed::{read_intervals, Interval};
use chromax::io::h5ad::write_h5ad;
use chromax::sc::convert::{convert_matrix, required_memory, ConvertSummary, Filters, DEFAULT_MEMORY};
use chromax::sc::matrix::{
    count_fragments_in_peaks, filter_matrix, match_peaks, read_cell_matrix, write_binary_matrix, CellFilter,
};
use chromax::sc::synth::{write_synthetic_input, InputForm, SynthSpec, SYNTH_PEAKS};
use chromax::store::matrix::{write_matrix, CsrCounts};
use common::say;
use hdf5_pure::{AttrValue, FileBuilder};
use std::io::Write;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chromax-stream-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn write_bed(path: &Path, peaks: &[Interval]) {
    let text: String = peaks.iter().map(|p| format!("{}\t{}\t{}\n", p.chrom, p.start, p.end)).collect();
    std::fs::write(path, text).expect("write peaks");
}

/// The in-memory path `sc train` took before the streamed conversion.
fn in_memory(matrix: &Path, peaks: &[Interval], peaks_path: &Path, f: Filters, out: &Path) -> Result<(), String> {
    let m = read_cell_matrix(matrix).map_err(|e| e.to_string())?;
    let m = match_peaks(m, peaks, matrix, peaks_path).map_err(|e| e.to_string())?;
    let filtered = filter_matrix(&m, f.min_cells_per_peak, f.min_peaks_per_cell).map_err(|e| e.to_string())?;
    write_binary_matrix(out, &filtered).map_err(|e| e.to_string())
}

const FILTERS: [[u32; 2]; 6] = [[1, 1], [3, 1], [1, 12], [0, 0], [4, 0], [0, 8]];

/// Compares the two paths on `matrix` for every filter of [`FILTERS`] and three peak files
/// (the matrix's peaks, reversed, every other one reversed), at the least memory the
/// conversion accepts and at the default. Returns how many stores were compared and the
/// least-memory summaries.
fn same_as_in_memory(matrix: &Path, all_peaks: &[Interval], dir: &Path) -> (usize, Vec<ConvertSummary>) {
    let reversed: Vec<Interval> = all_peaks.iter().rev().cloned().collect();
    let subset: Vec<Interval> = reversed.iter().step_by(2).cloned().collect();
    let mut compared = 0;
    let mut tight = Vec::new();
    for (name, peaks) in [("same", all_peaks), ("reversed", &reversed[..]), ("subset", &subset[..])] {
        let peaks_path = dir.join(format!("{name}.bed"));
        write_bed(&peaks_path, peaks);
        let least = required_memory(matrix, peaks).expect("required memory");
        for [c, p] in FILTERS {
            let f = Filters { min_cells_per_peak: c, min_peaks_per_cell: p };
            let want_path = dir.join("want.cxmatrix");
            let want = in_memory(matrix, peaks, &peaks_path, f, &want_path);
            for memory in [least, DEFAULT_MEMORY] {
                let got_path = dir.join("got.cxmatrix");
                let got = convert_matrix(matrix, peaks, &peaks_path, f, memory, &got_path);
                let what = format!("{} with {name} peaks, filters {c}/{p}, memory {memory}", matrix.display());
                match (&want, got) {
                    (Ok(()), Ok(summary)) => {
                        let (a, b) = (std::fs::read(&want_path).expect("want"), std::fs::read(&got_path).expect("got"));
                        assert!(a == b, "{what}: the streamed store differs from the in-memory one");
                        compared += 1;
                        if memory == least {
                            tight.push(summary);
                        }
                    }
                    (Err(a), Err(b)) => assert_eq!(*a, b.to_string(), "{what}: the two paths refuse differently"),
                    (a, b) => {
                        panic!("{what}: in memory {a:?}, streamed {:?}", b.map(|_| ()).map_err(|e| e.to_string()))
                    }
                }
                let _ = std::fs::remove_file(&got_path);
            }
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    (compared, tight)
}

/// Writes `m` (peaks × cells) as an AnnData X in CSC (one column per peak), cells within a
/// column in descending order, with an explicit zero and a duplicate entry (the in-memory
/// reader sums duplicates; either way the pair is present once).
fn write_h5ad_csc(path: &Path, m: &CsrCounts) {
    let (mut indptr, mut indices, mut data) = (vec![0i64], vec![], vec![]);
    for r in 0..m.peaks.len() {
        let mut row: Vec<(u32, u32)> = m.row(r).collect();
        row.reverse();
        for (k, (c, _)) in row.iter().enumerate() {
            indices.push(*c as i32);
            data.push(if k == 1 { 0.4 } else { 1.0 });
            if r % 7 == 3 && k == 0 {
                indices.push(*c as i32);
                data.push(2.0);
            }
        }
        if r % 5 == 1 && !row.is_empty() {
            // An explicit zero for a cell that is present elsewhere in the matrix.
            indices.push(((row[0].0 as usize + 1) % m.cells.len()) as i32);
            data.push(0.0);
        }
        indptr.push(indices.len() as i64);
    }
    let text = |s: &str| AttrValue::VarLenString(s.to_owned());
    let mut b = FileBuilder::new();
    b.set_attr("encoding-type", text("anndata"));
    b.set_attr("encoding-version", text("0.1.0"));
    let mut x = b.create_group("X");
    x.set_attr("encoding-type", text("csc_matrix"));
    x.set_attr("encoding-version", text("0.1.0"));
    x.set_attr("shape", AttrValue::I64Array(vec![m.cells.len() as i64, m.peaks.len() as i64]));
    x.create_dataset("data").with_f64_data(&data);
    x.create_dataset("indices").with_i32_data(&indices);
    x.create_dataset("indptr").with_i64_data(&indptr);
    b.add_group(x.finish());
    for (group, names) in [
        ("obs", m.cells.clone()),
        ("var", m.peaks.iter().map(|p| format!("{}:{}-{}", p.chrom, p.start, p.end)).collect::<Vec<_>>()),
    ] {
        let mut g = b.create_group(group);
        g.set_attr("encoding-type", text("dataframe"));
        g.set_attr("_index", text("_index"));
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        g.create_dataset("_index").with_vlen_strings(&names);
        b.add_group(g.finish());
    }
    b.write(path).expect("write csc h5ad");
}

/// A dense X (cells × peaks, f32) of the first `cells` cells.
fn write_h5ad_dense(path: &Path, m: &CsrCounts, cells: usize) {
    let mut a = m.to_anndata();
    let x = a.x.take().expect("x");
    let mut dense = vec![0f32; cells * m.peaks.len()];
    for r in 0..cells {
        for k in x.indptr[r] as usize..x.indptr[r + 1] as usize {
            dense[r * m.peaks.len() + x.indices[k] as usize] = x.data[k];
        }
    }
    a.obs_names.truncate(cells);
    a.obs.clear();
    a.x_dense = Some(dense);
    write_h5ad(path, &a).expect("write dense h5ad");
}

/// Matrix Market text of `m` (peaks × barcodes), entries by peak (`peak_major`) or in a
/// scrambled order with a duplicate pair and an explicit zero.
fn write_mtx(dir: &Path, m: &CsrCounts, peak_major: bool) {
    std::fs::create_dir_all(dir).expect("dir");
    let mut entries: Vec<(usize, u32, u32)> = Vec::new();
    for r in 0..m.peaks.len() {
        for (c, n) in m.row(r) {
            entries.push((r, c, n));
        }
    }
    if !peak_major {
        // A fixed scramble, a duplicate of the first entry and a zero.
        let n = entries.len();
        entries = (0..n).map(|i| entries[(i * 7919) % n]).collect();
        entries.push(entries[0]);
        entries.push((entries[1].0, (entries[1].1 + 1) % m.cells.len() as u32, 0));
    }
    let mut text = format!(
        "%%MatrixMarket matrix coordinate integer general\n{} {} {}\n",
        m.peaks.len(),
        m.cells.len(),
        entries.len()
    );
    for (r, c, n) in entries {
        text += &format!("{} {} {n}\n", r + 1, c + 1);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).expect("gzip");
    std::fs::write(dir.join("matrix.mtx.gz"), gz.finish().expect("gzip")).expect("write");
    std::fs::write(dir.join("barcodes.tsv"), m.cells.join("\n") + "\n").expect("write");
    write_bed(&dir.join("peaks.bed"), &m.peaks);
}

/// Generated data in every form and order: AnnData CSR (cell-major), 10x (cell-major),
/// Matrix Market by cell (Cell Ranger's order), by peak and in no order, AnnData CSC
/// (peak-major, cells unsorted, zeros and duplicates), dense X and a store with counts.
#[test]
fn streamed_equals_in_memory_on_every_generated_form() {
    let dir = scratch("generated");
    let spec = SynthSpec { cells: 1500, peaks: 300, density: 0.06, seed: 3 };
    let mut inputs = Vec::new();
    for form in [InputForm::H5ad, InputForm::Tenx, InputForm::Mtx] {
        let sub = dir.join(format!("{form:?}"));
        std::fs::create_dir_all(&sub).expect("dir");
        let (path, nnz) = write_synthetic_input(&spec, form, &sub).expect("write input");
        assert!(nnz > 20_000, "{nnz} non-zeros");
        inputs.push(path);
    }
    let peaks = read_intervals(dir.join("H5ad").join(SYNTH_PEAKS)).expect("peaks");
    let m = read_cell_matrix(&inputs[0]).expect("read h5ad");
    write_h5ad_csc(&dir.join("csc.h5ad"), &m);
    write_h5ad_dense(&dir.join("dense.h5ad"), &m, 400);
    write_mtx(&dir.join("by-peak"), &m, true);
    write_mtx(&dir.join("scrambled"), &m, false);
    write_matrix(&dir.join("counts.cxmatrix"), &m).expect("store with counts");
    inputs.extend(["csc.h5ad", "dense.h5ad", "by-peak", "scrambled", "counts.cxmatrix"].iter().map(|n| dir.join(n)));
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("dir");
    let mut orders = std::collections::BTreeSet::new();
    for input in &inputs {
        let (compared, tight) = same_as_in_memory(input, &peaks, &work);
        assert!(compared >= 30, "{}: only {compared} stores compared", input.display());
        let rows_written_in_pieces =
            tight.iter().filter(|s| s.row_buffer == 16 && s.writes > 2 * s.peaks as u64).count();
        let cell_major = tight.iter().any(|s| s.order == "cell-major");
        assert!(!cell_major || rows_written_in_pieces > 0, "{}: the least budget never split a row", input.display());
        orders.extend(tight.iter().map(|s| s.order));
        say(&format!(
            "{}: {compared} stores equal; at the least budget rows buffered {} entries at a time, {} passes, {} writes",
            input.display(),
            tight[0].row_buffer,
            tight[0].passes,
            tight[0].writes
        ));
    }
    assert_eq!(orders.into_iter().collect::<Vec<_>>(), ["cell-major", "peak-major", "unsorted"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Real data: the chr22 single-cell fragments counted in its peaks, as AnnData and as a store.
#[test]
fn streamed_equals_in_memory_on_the_chr22_cells() {
    let dir = scratch("chr22");
    let data = common::test_data().join("chr22_scatac");
    let peaks = read_intervals(data.join("macs3_callpeak_frag_peaks.narrowPeak")).expect("peaks");
    let m =
        count_fragments_in_peaks(&data.join("fragments.tsv.gz"), &peaks, &CellFilter::MinFragments(1)).expect("count");
    write_h5ad(&dir.join("chr22.h5ad"), &m.to_anndata()).expect("write h5ad");
    write_matrix(&dir.join("chr22.cxmatrix"), &m).expect("write store");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("dir");
    for name in ["chr22.h5ad", "chr22.cxmatrix"] {
        let (compared, _) = same_as_in_memory(&dir.join(name), &peaks, &work);
        assert!(compared >= 30, "{name}: {compared}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The bundled matrices of the fuzz seeds: AnnData files written by anndata (CSR, and CSC
/// with gzip-compressed chunks), by hdf5-pure (CSR, CSC, dense, variable-length peak names),
/// 10x files (Cell Ranger's layout from h5py with gzip chunks, an ARC multiome file) and a
/// store cut from the chr22 cells.
#[test]
fn streamed_equals_in_memory_on_the_bundled_matrices() {
    let dir = scratch("bundled");
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut checked = 0;
    for sub in ["h5ad", "tenx", "cell_matrix"] {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(seeds.join(sub)).expect("seeds").flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let m = read_cell_matrix(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let (compared, _) = same_as_in_memory(&file, &m.peaks, &dir);
            assert!(compared >= 6, "{}: {compared}", file.display());
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} bundled matrices");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sc store`'s figures: (peak memory, resident before), bytes, from its closing line.
fn memory_figures(stderr: &str) -> (f64, f64) {
    let bytes = |s: &str| -> f64 {
        let (v, unit) = s.trim().split_once(' ').expect("value unit");
        let v: f64 = v.parse().expect("number");
        v * match unit {
            "GiB" => (1u64 << 30) as f64,
            "MiB" => (1u64 << 20) as f64,
            "KiB" => 1024.0,
            _ => 1.0,
        }
    };
    let after = stderr.split("peak memory ").nth(1).expect("peak memory in the output");
    let (peak, rest) = after.split_once(" (resident ").expect("resident");
    let before = rest.split_once(" before").expect("before").0;
    (bytes(peak), bytes(before))
}

/// On a matrix whose non-zeros alone (8 bytes each in memory, as indices and counts) are
/// several times the budget, the conversion's resident memory grows by no more than the
/// budget (VmHWM − VmRSS before, from /proc/self/status), and the store is the in-memory one.
#[test]
fn peak_memory_stays_within_the_budget_on_a_larger_matrix() {
    let dir = scratch("rss");
    let spec = SynthSpec { cells: 120_000, peaks: 3_000, density: 0.05, seed: 5 };
    let (input, nnz) = write_synthetic_input(&spec, InputForm::H5ad, &dir).expect("write");
    let budget: u64 = 32 << 20;
    assert!(nnz * 8 > 4 * budget, "{nnz} non-zeros are not several times the budget");
    let out = common::run_chromax(
        &["sc", "store", "--matrix", "matrix.h5ad", "--peaks", SYNTH_PEAKS, "--memory", "32M", "-o", "m.cxmatrix"],
        &dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let (peak, before) = memory_figures(&stderr);
    say(&format!(
        "peak_memory_stays_within_the_budget: {nnz} non-zeros ({:.0} MiB as CSR), peak {:.1} MiB, before {:.1} MiB, budget 32 MiB",
        (nnz * 8) as f64 / (1u64 << 20) as f64,
        peak / (1u64 << 20) as f64,
        before / (1u64 << 20) as f64
    ));
    assert!(peak - before <= budget as f64, "grew by {} bytes over a budget of {budget}", peak - before);
    assert_store_equals_in_memory(&dir, &input);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `dir/m.cxmatrix`, which `sc store` wrote from `input` with the default filters, is the
/// store the in-memory path writes from it, byte for byte.
fn assert_store_equals_in_memory(dir: &Path, input: &Path) {
    let peaks = read_intervals(dir.join(SYNTH_PEAKS)).expect("peaks");
    in_memory(
        input,
        &peaks,
        &dir.join(SYNTH_PEAKS),
        Filters { min_cells_per_peak: 1, min_peaks_per_cell: 1 },
        &dir.join("want.cxmatrix"),
    )
    .expect("in memory");
    let got = std::fs::read(dir.join("m.cxmatrix")).expect("got");
    let want = std::fs::read(dir.join("want.cxmatrix")).expect("want");
    assert!(got == want, "sc store's {} differs from the in-memory store", dir.join("m.cxmatrix").display());
}

/// A conversion killed while it writes leaves no store under the final name, only its
/// temporary file, which the next conversion into that directory removes before it writes.
#[test]
fn a_killed_conversion_leaves_no_store_and_the_next_run_cleans_up() {
    let dir = scratch("killed");
    let spec = SynthSpec { cells: 60_000, peaks: 3_000, density: 0.05, seed: 7 };
    write_synthetic_input(&spec, InputForm::Mtx, &dir).expect("write");
    let args = [
        "sc",
        "store",
        "--matrix",
        "filtered_peak_bc_matrix",
        "--peaks",
        SYNTH_PEAKS,
        "--memory",
        "24M",
        "-o",
        "m.cxmatrix",
    ];
    let temporaries = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .expect("dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".m.cxmatrix.tmp-"))
            .map(|e| e.path())
            .collect()
    };
    let mut killed = false;
    for _attempt in 0..3 {
        let mut child = std::process::Command::new(common::chromax_exe())
            .args(args)
            .current_dir(&dir)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromax");
        let t = std::time::Instant::now();
        while temporaries(&dir).is_empty() && t.elapsed().as_secs() < 60 {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let _ = child.kill();
        let status = child.wait().expect("wait");
        if !status.success() && !temporaries(&dir).is_empty() {
            killed = true;
            break;
        }
        let _ = std::fs::remove_file(dir.join("m.cxmatrix"));
    }
    assert!(killed, "the conversion was never caught while writing");
    assert!(!dir.join("m.cxmatrix").exists(), "a killed conversion left a store under the final name");
    let left = temporaries(&dir);
    let out = common::run_chromax(&args, &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for t in &left {
        assert!(!t.exists(), "{} was not removed by the next run", t.display());
    }
    assert!(temporaries(&dir).is_empty());
    assert_store_equals_in_memory(&dir, &dir.join("filtered_peak_bc_matrix"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sc train` takes a store `sc store` wrote with its filters as it is (no conversion), and
/// a budget too small for the matrix is refused naming what it needs.
#[test]
fn sc_store_output_is_taken_directly_and_a_tiny_budget_is_refused() {
    let dir = scratch("cli");
    let data = common::test_data().join("chr22_scatac");
    let peaks = data.join("macs3_callpeak_frag_peaks.narrowPeak");
    let p = peaks.to_string_lossy().into_owned();
    let m = count_fragments_in_peaks(
        &data.join("fragments.tsv.gz"),
        &read_intervals(&peaks).expect("peaks"),
        &CellFilter::MinFragments(1),
    )
    .expect("count");
    write_h5ad(&dir.join("m.h5ad"), &m.to_anndata()).expect("write");
    let out = common::run_chromax(
        &["sc", "store", "--matrix", "m.h5ad", "--peaks", &p, "--min-cells-per-peak", "5", "-o", "s.cxmatrix"],
        &dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("non-zeros") && stderr.contains("peak memory"), "{stderr}");
    let store = chromax::store::matrix::CellMatrix::open(&dir.join("s.cxmatrix")).expect("open");
    assert_eq!(store.filters(), Some([5, 1]));
    assert_eq!(store.counts(), None, "a binary store has no counts section");
    common::fails_cleanly(
        &dir,
        &["sc", "store", "--matrix", "m.h5ad", "--peaks", &p, "--memory", "64K", "-o", "t.cxmatrix"],
        &["--memory 64.0 KiB is too little", "needs at least"],
    );
    common::fails_cleanly(&dir, &["sc", "store", "--matrix", "m.h5ad", "--peaks", &p, "-o", "m.h5ad"], &["m.h5ad"]);
    let out = common::run_chromax(
        &["sc", "store", "--matrix", "m.h5ad", "--peaks", &p, "--memory", "lots", "-o", "u.cxmatrix"],
        &dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("'lots' is not a memory size"), "{stderr}");
    assert!(!dir.join("u.cxmatrix").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
