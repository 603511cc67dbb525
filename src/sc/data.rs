//! The data of a single-cell run: the peaks' sequences (base codes, memory-resident:
//! `seq_len` bytes per peak) and the binarised peak × cell rows of the matrix, memory-mapped
//! (the `.cxmatrix` given when the filters leave it whole, else the matched, filtered matrix
//! written once to the content-keyed cache), never densified; the train/validation/test split
//! of the peaks; and the batches gathered from them.

use super::convert::{convert_matrix, Filters};
use super::train::ScTrainOptions;
use crate::error::FileError;
use crate::io::barcodes::{is_label_header, read_barcode_labels};
use crate::io::bed::{read_intervals, Interval};
use crate::io::h5ad::parse_peak_name;
use crate::rng::mix;
use crate::rng::shuffled_for;
use crate::store::bases::BaseStore;
use crate::store::build::cache_dir;
use crate::store::build::file_sha256;
use crate::store::matrix::CellMatrix;
use crate::store::track_cache_dir;
use crate::Error;
use sha2::Digest;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Bytes of mapped rows read between releases of their pages in a walk over every row.
pub const RELEASE_BYTES: usize = 256 << 20;

/// The binarised peak × cell rows: the memory-mapped store, or rows in memory (built by a
/// caller, e.g. a simulation).
pub enum Rows {
    Owned { indptr: Vec<u64>, indices: Vec<u32> },
    Mapped(CellMatrix),
}

impl Rows {
    pub fn indptr(&self) -> &[u64] {
        match self {
            Rows::Owned { indptr, .. } => indptr,
            Rows::Mapped(m) => m.indptr(),
        }
    }

    pub fn indices(&self) -> &[u32] {
        match self {
            Rows::Owned { indices, .. } => indices,
            Rows::Mapped(m) => m.indices(),
        }
    }

    /// Lets go of the memory-mapped pages read so far (no-op for owned rows).
    pub fn release_pages(&self) {
        if let Rows::Mapped(m) = self {
            m.release_pages();
        }
    }

    /// Calls `f` with each row in turn, letting go of the mapped pages every
    /// [`RELEASE_BYTES`] read, so that a walk over a store larger than memory keeps the
    /// resident set small.
    pub fn walk(&self, rows: impl IntoIterator<Item = usize>, mut f: impl FnMut(usize, &[u32])) {
        let mut read = 0usize;
        for r in rows {
            let cells = self.row(r);
            f(r, cells);
            read += 4 * cells.len();
            if read >= RELEASE_BYTES {
                self.release_pages();
                read = 0;
            }
        }
        self.release_pages();
    }

    /// The cells of peak `row`.
    pub fn row(&self, row: usize) -> &[u32] {
        let p = self.indptr();
        &self.indices()[p[row] as usize..p[row + 1] as usize]
    }
}

/// Everything a run trains on.
pub struct ScData {
    pub peaks: Vec<Interval>,
    pub barcodes: Vec<String>,
    /// peaks × seq_len base codes.
    pub codes: Vec<u8>,
    pub seq_len: usize,
    pub rows: Rows,
    /// Where the data came from, by content: input name → SHA-256 (empty for data built in
    /// memory). A resumed run must have the same.
    pub sources: BTreeMap<String, String>,
    /// Each cell's batch, for batch correction.
    pub batches: Option<CellBatches>,
}

/// Batches of cells: their names (sorted) and each cell's index into them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellBatches {
    pub names: Vec<String>,
    pub of_cell: Vec<u32>,
}

impl CellBatches {
    /// From one label per cell.
    pub fn from_labels(labels: &[String]) -> CellBatches {
        let mut names: Vec<String> = labels.to_vec();
        names.sort();
        names.dedup();
        let of_cell = labels.iter().map(|l| names.binary_search(l).unwrap_or(0) as u32).collect();
        CellBatches { names, of_cell }
    }

    /// The batch of each of `barcodes`: from `batch_key` (an obs column of the .h5ad matrix)
    /// or `file` (barcode<TAB>batch lines; a `barcode` header line is skipped). Every barcode
    /// must have one; lines for other barcodes (cells the filters dropped) are ignored.
    pub fn read(
        barcodes: &[String],
        matrix: &Path,
        batch_key: Option<&str>,
        file: Option<&Path>,
    ) -> Result<Option<CellBatches>, FileError> {
        let table: HashMap<String, String> = match (batch_key, file) {
            (Some(_), Some(_)) => return Err(FileError::Argument("give --batch-key or --batches, not both".into())),
            (None, None) => return Ok(None),
            (Some(key), None) => {
                if !matrix.extension().is_some_and(|e| e.eq_ignore_ascii_case("h5ad")) {
                    return Err(FileError::Argument(format!(
                        "--batch-key {key}: the matrix {} is not an .h5ad with obs columns; give --batches FILE (barcode<TAB>batch)",
                        matrix.display()
                    )));
                }
                let (names, values) = crate::io::h5ad::read_h5ad_obs_column(matrix, key)?;
                names.into_iter().zip(values).collect()
            }
            (None, Some(path)) => read_barcode_labels(path, "batch")?
                .into_iter()
                .filter(|(n, barcode, _)| !is_label_header(*n, barcode))
                .map(|(_, barcode, batch)| (barcode, batch))
                .collect(),
        };
        let origin = batch_key.map_or_else(
            || file.map(|f| f.display().to_string()).unwrap_or_default(),
            |k| format!("obs/{k} of {}", matrix.display()),
        );
        let mut labels = Vec::with_capacity(barcodes.len());
        for b in barcodes {
            match table.get(b) {
                Some(l) => labels.push(l.clone()),
                None => {
                    return Err(FileError::Argument(format!(
                        "{origin} gives no batch for cell {b} ({} cells lack one)",
                        barcodes.iter().filter(|b| !table.contains_key(*b)).count()
                    )))
                }
            }
        }
        Ok(Some(CellBatches::from_labels(&labels)))
    }
}

impl ScData {
    pub fn n_peaks(&self) -> usize {
        self.peaks.len()
    }

    pub fn n_cells(&self) -> usize {
        self.barcodes.len()
    }

    pub fn nnz(&self) -> usize {
        self.rows.indices().len()
    }

    /// Checks what the trainer relies on: one window per peak, CSR offsets rising from 0 to
    /// nnz over peaks + 1 entries, cell indices ascending within a row and below the cell
    /// count.
    pub fn validate(&self) -> Result<(), FileError> {
        let bad = |what: String| FileError::Argument(format!("single-cell data: {what}"));
        if self.codes.len() != self.n_peaks() * self.seq_len {
            return Err(bad(format!(
                "{} base codes for {} peaks of {} bp",
                self.codes.len(),
                self.n_peaks(),
                self.seq_len
            )));
        }
        let (indptr, indices) = (self.rows.indptr(), self.rows.indices());
        if indptr.len() != self.n_peaks() + 1
            || indptr[0] != 0
            || indptr[self.n_peaks()] != indices.len() as u64
            || indptr.windows(2).any(|w| w[0] > w[1])
        {
            return Err(bad("row offsets must rise from 0 to the number of entries, one per peak + 1".into()));
        }
        let mut first_bad = None;
        self.rows.walk(0..self.n_peaks(), |r, row| {
            if first_bad.is_none()
                && (row.windows(2).any(|w| w[0] >= w[1]) || row.last().is_some_and(|&c| c as usize >= self.n_cells()))
            {
                first_bad = Some(r);
            }
        });
        if let Some(r) = first_bad {
            return Err(bad(format!(
                "peak {} ({}): cell indices must ascend without repeats and stay below {}",
                r + 1,
                self.peaks[r].chrom,
                self.n_cells()
            )));
        }
        Ok(())
    }

    /// The SHA-256 of the data itself (peaks, barcodes, sequences, rows): the identity of
    /// data built in memory, which has no files to name. Reads every row.
    pub fn digest(&self) -> String {
        let mut h = sha2::Sha256::new();
        for p in &self.peaks {
            h.update(format!("{}\t{}\t{}\n", p.chrom, p.start, p.end).as_bytes());
        }
        for b in &self.barcodes {
            h.update(b.as_bytes());
            h.update(b"\n");
        }
        h.update(&self.codes);
        h.update(bytemuck::cast_slice(self.rows.indptr()));
        self.rows.walk(0..self.n_peaks(), |_, cells| h.update(bytemuck::cast_slice(cells)));
        if let Some(b) = &self.batches {
            for (c, &k) in b.of_cell.iter().enumerate() {
                h.update(format!("batch {c} {}\n", b.names[k as usize]).as_bytes());
            }
        }
        self.rows.release_pages();
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The codes of one peak's window.
    pub fn window(&self, peak: usize) -> &[u8] {
        &self.codes[peak * self.seq_len..(peak + 1) * self.seq_len]
    }
}

/// Reads the peaks, the matrix (matched to the peaks and filtered) and the peaks' sequences.
pub fn load_sc_data(opts: &ScTrainOptions) -> Result<ScData, Error> {
    let peaks = read_intervals(&opts.peaks)?;
    if peaks.is_empty() {
        return Err(FileError::content(&opts.peaks, "no peaks").into());
    }
    // The genome first: peaks on chromosomes it lacks are the more basic mistake.
    let bases = BaseStore::cached(&opts.genome)?;
    let all_codes = bases.peak_windows(&peaks, opts.model.seq_len, &opts.peaks.display().to_string())?;
    let is_store = opts.matrix.extension().is_some_and(|e| e.eq_ignore_ascii_case("cxmatrix"));
    let given_store = is_store.then(|| CellMatrix::open(&opts.matrix)).transpose()?;
    let matrix_sha = match &given_store {
        Some(store) => store.content_sha256(&opts.matrix)?,
        None => matrix_sha256(&opts.matrix)?,
    };
    let peaks_sha = file_sha256(&opts.peaks)?.0;
    let (peaks, barcodes, rows, codes) = match given_store {
        Some(store) if store_needs_no_filtering(&store, &peaks, opts)? => {
            (peaks, store.barcodes().to_vec(), Rows::Mapped(store), all_codes)
        }
        _ => {
            let store = filtered_store(opts, &peaks, &matrix_sha, &peaks_sha)?;
            let kept: Vec<Interval> = store
                .peak_names()
                .iter()
                .map(|n| {
                    parse_peak_name(n).ok_or_else(|| {
                        FileError::content(&opts.matrix, format!("damaged matrix cache: peak name '{n}'"))
                    })
                })
                .collect::<Result<_, _>>()?;
            let codes = if kept == peaks {
                all_codes
            } else {
                bases.peak_windows(&kept, opts.model.seq_len, &opts.peaks.display().to_string())?
            };
            (kept, store.barcodes().to_vec(), Rows::Mapped(store), codes)
        }
    };
    // With --min-peaks-per-cell ≥ 1 the filter (or the whole-store check) has already
    // removed empty cells; only a run that keeps them needs the scan.
    if opts.min_peaks_per_cell == 0 {
        let mut per_cell = vec![0u64; barcodes.len()];
        rows.walk(0..rows.indptr().len() - 1, |_, cells| {
            for &c in cells {
                if let Some(n) = per_cell.get_mut(c as usize) {
                    *n += 1;
                }
            }
        });
        if let Some(c) = per_cell.iter().position(|&n| n == 0) {
            return Err(FileError::content(
                &opts.matrix,
                format!(
                    "cell {} is accessible in none of the peaks ({} such cells): a cell without data cannot be trained; drop them with --min-peaks-per-cell 1 (or more)",
                    barcodes[c],
                    per_cell.iter().filter(|&&n| n == 0).count()
                ),
            )
            .into());
        }
    }
    let mut sources = BTreeMap::from([
        ("genome".to_string(), bases.source_sha256()?),
        ("matrix".to_string(), matrix_sha),
        ("peaks".to_string(), peaks_sha),
    ]);
    let batches = CellBatches::read(&barcodes, &opts.matrix, opts.batch_key.as_deref(), opts.batches_file.as_deref())?;
    if let Some(f) = &opts.batches_file {
        sources.insert("batches".to_string(), file_sha256(f)?.0);
    }
    Ok(ScData { peaks, barcodes, codes, seq_len: opts.model.seq_len, rows, sources, batches })
}

/// The SHA-256 of a matrix that is not a store: of its file, or for a Matrix Market
/// directory of its files' hashes in name order.
fn matrix_sha256(path: &Path) -> Result<String, FileError> {
    if !path.is_dir() {
        return Ok(file_sha256(path)?.0);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(FileError::io(path))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut all = sha2::Sha256::new();
    for f in files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        all.update(format!("{name} {}\n", file_sha256(&f)?.0).as_bytes());
    }
    Ok(all.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The matrix matched to the peaks, filtered and binarised, as a memory-mapped store: from
/// the content-keyed cache (key: the SHA-256 of the matrix and peak files and the filters),
/// or converted there on first use, streamed within `opts.matrix_memory`
/// ([`convert_matrix`]). A Matrix Market directory is converted every time.
fn filtered_store(
    opts: &ScTrainOptions,
    peaks: &[Interval],
    matrix_sha: &str,
    peaks_sha: &str,
) -> Result<CellMatrix, Error> {
    let cache = track_cache_dir().filter(|_| opts.matrix.is_file()).map(|_| cache_dir()).transpose()?;
    let path = match &cache {
        Some(dir) => {
            let (m, p) = (matrix_sha, peaks_sha);
            let key = format!("chromax-matrix-1 {m} {p} {} {}", opts.min_cells_per_peak, opts.min_peaks_per_cell);
            let digest = sha2::Sha256::digest(key.as_bytes());
            let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
            dir.join(format!("matrix-{hex}.cxmatrix"))
        }
        None => {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::env::temp_dir().join(format!("chromax-matrix-{}-{n}.cxmatrix", std::process::id()))
        }
    };
    if cache.is_some() {
        if let Ok(store) = CellMatrix::open(&path) {
            return Ok(store);
        }
    }
    let filters = Filters { min_cells_per_peak: opts.min_cells_per_peak, min_peaks_per_cell: opts.min_peaks_per_cell };
    convert_matrix(&opts.matrix, peaks, &opts.peaks, filters, opts.matrix_memory, &path)?;
    let store = CellMatrix::open(&path)?;
    if cache.is_none() {
        // Mapped, so the file can go at once (Unix keeps it until the mapping ends).
        let _ = std::fs::remove_file(&path);
    }
    Ok(store)
}

/// Whether a `.cxmatrix` store names the same peaks as the peak file and passes the filters
/// whole (then it is used memory-mapped, as is).
fn store_needs_no_filtering(store: &CellMatrix, peaks: &[Interval], opts: &ScTrainOptions) -> Result<bool, Error> {
    let (n_peaks, n_cells) = store.shape();
    let names = store.peak_names();
    let same = n_peaks == peaks.len()
        && names.iter().zip(peaks).all(|(n, p)| *n == format!("{}:{}-{}", p.chrom, p.start, p.end));
    if !same {
        return Ok(false);
    }
    let indptr = store.indptr();
    let damaged = |what: &str| FileError::content(&opts.matrix, format!("damaged matrix store: {what}"));
    if indptr.first() != Some(&0)
        || indptr.last().copied() != Some(store.indices().len() as u64)
        || indptr.windows(2).any(|w| w[0] > w[1])
    {
        return Err(damaged("row offsets do not rise from 0 to the number of entries").into());
    }
    if store.filters() == Some([opts.min_cells_per_peak, opts.min_peaks_per_cell]) {
        // Made with these filters (by `sc store` or a run's conversion): taken as it is.
        return Ok(true);
    }
    if indptr.windows(2).any(|w| w[1] - w[0] < opts.min_cells_per_peak as u64) {
        return Ok(false);
    }
    let mut per_cell = vec![0u32; n_cells];
    for piece in store.indices().chunks(RELEASE_BYTES / 4) {
        for &c in piece {
            match per_cell.get_mut(c as usize) {
                Some(n) => *n = n.saturating_add(1),
                None => return Err(damaged(&format!("cell index {c} of {n_cells} cells")).into()),
            }
        }
        store.release_pages();
    }
    Ok(per_cell.iter().all(|&n| n >= opts.min_peaks_per_cell.max(1)))
}

/// Which split each peak is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// Peaks into train/val/test: by chromosome when `val_chroms` is given, else by a seeded
/// shuffle (the first `val_fraction` validation, the next `test_fraction` test).
pub fn split_peaks(peaks: &[Interval], opts: &ScTrainOptions) -> Result<Vec<Split>, FileError> {
    let n = peaks.len();
    if !opts.val_chroms.is_empty() {
        for c in opts.val_chroms.iter().chain(&opts.test_chroms) {
            if !peaks.iter().any(|p| &p.chrom == c) {
                let mut names: Vec<&str> = peaks.iter().map(|p| p.chrom.as_str()).collect();
                names.dedup();
                names.truncate(8);
                return Err(FileError::Argument(format!(
                    "--val-chrom/--test-chrom {c}: no peak is on it (the peaks are on {}…)",
                    names.join(", ")
                )));
            }
        }
        return Ok(peaks
            .iter()
            .map(|p| {
                if opts.val_chroms.contains(&p.chrom) {
                    Split::Val
                } else if opts.test_chroms.contains(&p.chrom) {
                    Split::Test
                } else {
                    Split::Train
                }
            })
            .collect());
    }
    if !(0.0..1.0).contains(&opts.val_fraction)
        || !(0.0..1.0).contains(&opts.test_fraction)
        || opts.val_fraction + opts.test_fraction >= 1.0
    {
        return Err(FileError::Argument("validation and test fractions must be in [0, 1) and sum below 1".into()));
    }
    let order: Vec<usize> = shuffled_for(&(0..n).collect::<Vec<_>>(), opts.seed ^ 0x5EED_5B11_7000, 0);
    let n_val = ((n as f64 * opts.val_fraction).round() as usize).max(1).min(n.saturating_sub(1));
    let n_test = ((n as f64 * opts.test_fraction).round() as usize).min(n.saturating_sub(n_val + 1));
    let mut split = vec![Split::Train; n];
    for (k, &i) in order.iter().enumerate() {
        if k < n_val {
            split[i] = Split::Val;
        } else if k < n_val + n_test {
            split[i] = Split::Test;
        }
    }
    Ok(split)
}

/// A batch's inputs on the host.
pub(crate) struct HostBatch {
    pub codes: Vec<u8>,
    pub reverse: Vec<bool>,
    pub shift: Vec<i32>,
    pub indptr: Vec<u32>,
    pub indices: Vec<u32>,
}

pub(crate) fn gather(data: &ScData, peaks: &[usize], augment: Option<(u64, i32)>) -> Result<HostBatch, FileError> {
    let mut codes = Vec::with_capacity(peaks.len() * data.seq_len);
    let (mut indptr, mut indices) = (vec![0u32], Vec::new());
    for &p in peaks {
        codes.extend_from_slice(data.window(p));
        indices.extend_from_slice(data.rows.row(p));
        let end = u32::try_from(indices.len()).map_err(|_| {
            FileError::Argument("a batch holds more than 4,294,967,295 non-zero entries: lower --batch".into())
        })?;
        indptr.push(end);
    }
    // As scBasset (basenji's stochastic layers): one draw per batch, not per sequence.
    let (reverse, shift) = match augment {
        Some((seed, max_shift)) => {
            let r = mix(seed ^ 0xA06_0E47);
            let span = 2 * max_shift as u64 + 1;
            (vec![r & 1 == 1; peaks.len()], vec![((r >> 1) % span) as i32 - max_shift; peaks.len()])
        }
        None => (vec![false; peaks.len()], vec![0; peaks.len()]),
    };
    Ok(HostBatch { codes, reverse, shift, indptr, indices })
}
