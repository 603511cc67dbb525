//! A streaming bigWig writer (UCSC's format, version 4): chromosomes in order, runs in order
//! within each, zoom levels built as the runs arrive; held: the index and the zoom levels'
//! sections up to 64 MiB (beyond that they go to a scratch file).
//!
//! bigtools wrote chromax's bigWigs before; its writer costs, per value, a tokio task
//! entry, a summary update for each of ten zoom levels and 12 bytes of bedGraph record
//! deflated at libdeflate's level 6. In `denoise run` on sparse inputs that was as much CPU
//! as the network (see BENCHMARKS.md, exact skipping). Here a stretch of per-base values is a
//! fixedStep section (4 bytes a value), sections are deflated at a fast level, and only the
//! finest zoom level looks at the values: each coarser one merges the finished records of the
//! level below (the bins nest: 160 · 4^k bases, aligned to the chromosome's start). A long
//! run of one value makes its whole bins a level at a time, and whole sections of such records
//! are only described until the end, where most are dropped with their level: a sparse track's
//! zoom work follows its runs, not its length (a skipping `denoise run`'s probabilities over
//! chromosome 22 are ≈ 420,000 records, nearly all of one value, in levels then dropped).
//! bigtools still reads every bigWig, and the tests read these files with it.
//!
//! Layout written: header (64 bytes) · 10 zoom header slots (24 each) · total summary (40) ·
//! data count and data sections · the data's R-tree · chromosome B+ tree · each zoom level's
//! sections and R-tree · the magic number. Readers find everything through the header, so the
//! chromosome tree may follow the data (bigtools puts it there too): the chromosomes are known
//! only once the stream ends.

use crate::error::FileError;
use crate::io::ChromSizes;
use crate::track::Run;
use libdeflater::{CompressionLvl, Compressor};
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: u32 = 0x888F_FC26;
const CHROM_TREE_MAGIC: u32 = 0x78CA_8C91;
const CIR_TREE_MAGIC: u32 = 0x2468_ACE0;
const HEADER_LEN: u64 = 64;
const ZOOM_HEADER_LEN: u64 = 24;
const MAX_ZOOMS: usize = 10;
const SUMMARY_OFFSET: u64 = HEADER_LEN + ZOOM_HEADER_LEN * MAX_ZOOMS as u64;
const DATA_OFFSET: u64 = SUMMARY_OFFSET + 40;
/// Items per data or zoom section, and children per index node (UCSC's defaults).
const ITEMS_PER_SLOT: usize = 1024;
const BLOCK_SIZE: usize = 256;
/// The finest zoom level's bin, and the factor between levels (bigtools' choices).
const FIRST_ZOOM: u64 = 160;
const ZOOM_FACTOR: u64 = 4;
/// Runs this short, each starting where the one before ends, are written base by base in a
/// fixedStep section (4 bytes a base) rather than as bedGraph records (12 bytes a run)...
const FIXED_RUN_MAX: u32 = 3;
/// ... where at least this many bases in a row allow it (a section header is 24 bytes).
const FIXED_MIN: u32 = 16;
/// Sections compressed together, in parallel, by a writer that may use the thread pool.
const PARALLEL_BATCH: usize = 64;

/// libdeflate's level for data and zoom sections: its fastest, level 0, which stores the
/// bytes in deflate's uncompressed blocks (zlib-wrapped, as readers expect). On `denoise run`'s outputs
/// (chr22, 10 cells) levels 2, 4 and 6 made the files 4–7% smaller and the run no faster
/// than level 1; fixedStep sections already make them 20–30% smaller than bigtools' files.
fn compression() -> CompressionLvl {
    CompressionLvl::fastest()
}

/// Where a section lies and what it covers.
#[derive(Debug, Clone, Copy)]
struct Section {
    chrom: u32,
    start: u32,
    end: u32,
    offset: u64,
    size: u64,
}

/// Sums over the bases of a bin (or of the whole file), as a zoom record holds them.
#[derive(Debug, Clone, Copy)]
struct Summary {
    valid: u64,
    min: f64,
    max: f64,
    sum: f64,
    squares: f64,
}

impl Summary {
    const EMPTY: Summary = Summary { valid: 0, min: f64::INFINITY, max: f64::NEG_INFINITY, sum: 0.0, squares: 0.0 };

    fn add(&mut self, value: f32, bases: u64) {
        let v = value as f64;
        self.valid += bases;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v * bases as f64;
        self.squares += v * v * bases as f64;
    }

    fn merge(&mut self, o: &Summary) {
        self.valid += o.valid;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum += o.sum;
        self.squares += o.squares;
    }
}

/// One zoom record: a bin of one chromosome and the sums of the values in it.
#[derive(Debug, Clone, Copy)]
struct Record {
    chrom: u32,
    start: u32,
    end: u32,
    sums: Summary,
}

impl Record {
    /// The record as the file holds it: 32 bytes.
    fn encode(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        let words = [self.chrom, self.start, self.end, self.sums.valid.min(u32::MAX as u64) as u32];
        let values = [self.sums.min, self.sums.max, self.sums.sum, self.sums.squares];
        let fields = words.into_iter().map(u32::to_le_bytes).chain(values.map(|v| (v as f32).to_le_bytes()));
        for (i, f) in fields.enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&f);
        }
        b
    }
}

/// A zoom level: the open bin, the records not yet in a section (encoded), and its sections
/// (spilled to the writer's scratch file).
struct Zoom {
    bin: u64,
    open: Option<Record>,
    records: Vec<u8>,
    sections: Vec<ZoomSection>,
    count: u64,
}

/// Writes a bigWig to `out` (a temporary file the caller renames into place).
pub(crate) struct BigWigWriter {
    /// The destination, for error messages.
    path: PathBuf,
    out: BufWriter<File>,
    at: u64,
    sizes: ChromSizes,
    /// Chromosomes started, as genome ids; the file's chromosome id is the position here.
    chroms: Vec<usize>,
    /// The current chromosome's length and where its last run ended.
    length: u64,
    last_end: u64,
    /// The current chromosome's runs not yet in a section (at most `ITEMS_PER_SLOT`).
    pending: Vec<Run>,
    sections: Vec<Section>,
    /// Sections encoded but not yet compressed (parallel writers only).
    batch: Vec<(Section, Vec<u8>)>,
    parallel: bool,
    compressor: Compressor,
    zooms: Vec<Zoom>,
    scratch: Scratch,
    summary: Summary,
    items: u64,
    largest_section: usize,
    /// Whole bins of long runs made at once ([`Self::zoom_whole_bins`]); off only in tests,
    /// which compare the bytes with the bin-by-bin path.
    whole_bins: bool,
}

/// A zoom level's section before the output is assembled: in the scratch space (its offset
/// and size there), or `ITEMS_PER_SLOT` records of whole bins of one constant run, encoded
/// only if the level is kept (`record` with the first bin's start and end; each next record
/// `bin` bases on).
enum ZoomSection {
    Scratch(Section),
    Repeated { section: Section, record: [u8; 32], bin: u32 },
}

impl ZoomSection {
    fn section(&self) -> &Section {
        match self {
            ZoomSection::Scratch(s) | ZoomSection::Repeated { section: s, .. } => s,
        }
    }
}

/// Field `i` (chromosome 0, start 1, end 2) of an encoded record.
fn record_field(record: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([record[4 * i], record[4 * i + 1], record[4 * i + 2], record[4 * i + 3]])
}

/// Sets an encoded record's start and end.
fn set_span(record: &mut [u8; 32], start: u32, end: u32) {
    record[4..8].copy_from_slice(&start.to_le_bytes());
    record[8..12].copy_from_slice(&end.to_le_bytes());
}

/// `count` records: `record` with its start and end moved on by `bin` each time.
fn repeated_records(record: &[u8; 32], bin: u32, count: usize) -> Vec<u8> {
    let (start, end) = (record_field(record, 1), record_field(record, 2));
    let mut raw = Vec::with_capacity(32 * count);
    let mut rec = *record;
    for i in 0..count as u32 {
        set_span(&mut rec, start + i * bin, end + i * bin);
        raw.extend_from_slice(&rec);
    }
    raw
}

/// The zoom levels' sections until the data is complete: in memory up to
/// `SCRATCH_IN_MEMORY` bytes, beyond that all of them in a file beside the output, removed
/// when dropped. (A sparse track's zoom levels, such as a skipping run's probabilities, are
/// ≈ 13 MB of records over chromosome 22 that never reach the output: most levels are
/// dropped at the end. A genome's dense ones are gigabytes.)
struct Scratch {
    path: PathBuf,
    /// Bytes held in memory before all go to the file (`SCRATCH_IN_MEMORY`).
    limit: usize,
    memory: Vec<u8>,
    file: Option<BufWriter<File>>,
    /// Bytes written; false once a write failed (the error is reported at the end).
    at: u64,
    ok: bool,
}

/// Bytes of zoom sections a writer holds in memory before it spills them to a file.
const SCRATCH_IN_MEMORY: usize = 64 << 20;

impl Scratch {
    fn new(path: PathBuf) -> Self {
        Scratch { path, limit: SCRATCH_IN_MEMORY, memory: Vec::new(), file: None, at: 0, ok: true }
    }

    /// Appends `data`, at offset `self.at`.
    fn write(&mut self, data: &[u8]) {
        if !self.ok {
            return;
        }
        if self.file.is_none() && self.memory.len() + data.len() > self.limit {
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.path)
                .map(BufWriter::new)
                .and_then(|mut f| f.write_all(&self.memory).map(|_| f));
            match opened {
                Ok(f) => {
                    self.file = Some(f);
                    self.memory = Vec::new();
                }
                Err(_) => {
                    // Nothing of a half-written scratch file is left behind.
                    let _ = std::fs::remove_file(&self.path);
                    self.ok = false;
                }
            }
        }
        let written = match self.file.as_mut() {
            Some(f) => f.write_all(data).is_ok(),
            None => {
                self.memory.extend_from_slice(data);
                true
            }
        };
        if written {
            self.at += data.len() as u64;
        } else {
            self.ok = false;
        }
    }

    /// Reads `buf.len()` bytes from `offset`.
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => {
                f.flush()?;
                let f = f.get_mut();
                f.seek(SeekFrom::Start(offset))?;
                f.read_exact(buf)
            }
            None => {
                let at = offset as usize;
                buf.copy_from_slice(&self.memory[at..at + buf.len()]);
                Ok(())
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn le32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn le64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn compress(compressor: &mut Compressor, raw: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; compressor.zlib_compress_bound(raw.len())];
    // The bound is libdeflate's own: compression into it cannot run out of room.
    let n = compressor.zlib_compress(raw, &mut out).unwrap_or(0);
    out.truncate(n);
    out
}

impl BigWigWriter {
    /// Starts a bigWig at `tmp` for the chromosomes of `sizes` (named later, in the order
    /// written). `parallel`: compress on rayon's threads (for a whole track written at
    /// once; a streaming writer compresses on its own thread).
    pub(crate) fn create(tmp: &Path, dest: &Path, sizes: &ChromSizes, parallel: bool) -> Result<Self, FileError> {
        let io = |e| FileError::io(dest)(e);
        let mut out = BufWriter::with_capacity(1 << 20, File::create(tmp).map_err(io)?);
        // Header, zoom headers, summary and data count are written last, in place.
        out.write_all(&[0u8; (DATA_OFFSET + 8) as usize]).map_err(io)?;
        let scratch = Scratch::new(tmp.with_extension("zooms"));
        let zooms = (0..MAX_ZOOMS)
            .map(|k| Zoom {
                bin: FIRST_ZOOM * ZOOM_FACTOR.pow(k as u32),
                open: None,
                records: Vec::with_capacity(32 * ITEMS_PER_SLOT),
                sections: Vec::new(),
                count: 0,
            })
            .collect();
        Ok(BigWigWriter {
            path: dest.to_path_buf(),
            out,
            at: DATA_OFFSET + 8,
            sizes: sizes.clone(),
            chroms: Vec::new(),
            length: 0,
            last_end: 0,
            pending: Vec::with_capacity(ITEMS_PER_SLOT),
            sections: Vec::new(),
            batch: Vec::new(),
            parallel,
            compressor: Compressor::new(compression()),
            zooms,
            scratch,
            summary: Summary::EMPTY,
            items: 0,
            largest_section: 0,
            whole_bins: true,
        })
    }

    /// The current chromosome's id in the file (its place in the order written).
    fn chrom_id(&self) -> u32 {
        self.chroms.len().saturating_sub(1) as u32
    }

    /// Starts the next chromosome: each once, runs of the one before all given.
    pub(crate) fn chrom(&mut self, name: &str) -> Result<(), FileError> {
        let id = self.sizes.id(name).ok_or_else(|| {
            FileError::content(&self.path, format!("chromosome '{name}' is not in the genome the bigWig was made for"))
        })?;
        if self.chroms.contains(&id) {
            return Err(FileError::content(&self.path, format!("chromosome '{name}' was written twice")));
        }
        self.end_chrom()?;
        self.chroms.push(id);
        self.length = self.sizes.length(id).min(u32::MAX as u64);
        self.last_end = 0;
        Ok(())
    }

    /// Appends runs of the current chromosome: sorted, not overlapping, inside it.
    pub(crate) fn runs(&mut self, runs: &[Run]) -> Result<(), FileError> {
        for &r in runs {
            self.run(r)?;
        }
        Ok(())
    }

    fn run(&mut self, r: Run) -> Result<(), FileError> {
        let (start, end) = (r.start as u64, r.end as u64);
        if self.chroms.is_empty() || start < self.last_end || end <= start || end > self.length {
            let chrom = self.chroms.last().map_or("(none started)", |&c| self.sizes.name(c));
            return Err(FileError::content(
                &self.path,
                format!(
                    "run {start}..{end} on chromosome {chrom} ({} bp) after one ending at {}: runs must be sorted, not overlap and lie inside their chromosome",
                    self.length, self.last_end
                ),
            ));
        }
        self.last_end = end;
        self.summary.add(r.value, end - start);
        self.items += 1;
        self.zoom_add(r);
        if self.pending.len() == ITEMS_PER_SLOT {
            self.flush_sections()?;
        }
        self.pending.push(r);
        Ok(())
    }

    /// Writes the pending runs as sections: stretches of short contiguous runs (at least
    /// `FIXED_MIN` bases) as fixedStep, one value a base; the rest as bedGraph.
    fn flush_sections(&mut self) -> Result<(), FileError> {
        let mut items = std::mem::take(&mut self.pending);
        let short = |i: usize| items[i].end - items[i].start <= FIXED_RUN_MAX;
        let mut i = 0;
        let mut bed_from = 0;
        while i < items.len() {
            // The stretch of short runs, each continuing the one before, that starts at i.
            let mut j = i;
            while j < items.len() && short(j) && (j == i || items[j].start == items[j - 1].end) {
                j += 1;
            }
            if j > i && items[j - 1].end - items[i].start >= FIXED_MIN {
                self.section(&items[bed_from..i], false)?;
                self.section(&items[i..j], true)?;
                bed_from = j;
                i = j;
            } else {
                i = j.max(i + 1);
            }
        }
        self.section(&items[bed_from..], false)?;
        // The buffer back, emptied, for the next runs.
        items.clear();
        self.pending = items;
        Ok(())
    }

    /// Encodes `items` as one section: fixedStep (step and span 1, a value per base) or
    /// bedGraph.
    fn section(&mut self, items: &[Run], fixed: bool) -> Result<(), FileError> {
        let (Some(first), Some(last)) = (items.first(), items.last()) else { return Ok(()) };
        let bases = (last.end - first.start) as usize;
        let count = if fixed { bases } else { items.len() };
        let mut raw = Vec::with_capacity(24 + if fixed { 4 * bases } else { 12 * items.len() });
        let chrom = self.chrom_id();
        le32(&mut raw, chrom);
        le32(&mut raw, first.start);
        le32(&mut raw, last.end);
        le32(&mut raw, u32::from(fixed)); // item step
        le32(&mut raw, u32::from(fixed)); // item span
        raw.push(if fixed { 3 } else { 1 }); // fixedStep or bedGraph
        raw.push(0);
        raw.extend_from_slice(&(count as u16).to_le_bytes());
        for it in items {
            if fixed {
                for _ in it.start..it.end {
                    raw.extend_from_slice(&it.value.to_le_bytes());
                }
            } else {
                le32(&mut raw, it.start);
                le32(&mut raw, it.end);
                raw.extend_from_slice(&it.value.to_le_bytes());
            }
        }
        let section = Section { chrom, start: first.start, end: last.end, offset: 0, size: 0 };
        self.largest_section = self.largest_section.max(raw.len());
        if self.parallel {
            self.batch.push((section, raw));
            if self.batch.len() == PARALLEL_BATCH {
                self.write_batch()?;
            }
            Ok(())
        } else {
            let data = compress(&mut self.compressor, &raw);
            self.write_section(section, &data)
        }
    }

    fn write_section(&mut self, mut section: Section, data: &[u8]) -> Result<(), FileError> {
        self.out.write_all(data).map_err(FileError::io(&self.path))?;
        section.offset = self.at;
        section.size = data.len() as u64;
        self.at += section.size;
        self.sections.push(section);
        Ok(())
    }

    fn write_batch(&mut self) -> Result<(), FileError> {
        let batch = std::mem::take(&mut self.batch);
        let compressed: Vec<(Section, Vec<u8>)> = batch
            .into_par_iter()
            .map_init(|| Compressor::new(compression()), |c, (s, raw)| (s, compress(c, &raw)))
            .collect();
        for (s, data) in compressed {
            self.write_section(s, &data)?;
        }
        Ok(())
    }

    /// Adds a run to the finest zoom level's bins.
    fn zoom_add(&mut self, r: Run) {
        let (mut at, end) = (r.start as u64, r.end as u64);
        // Most runs (a base each) fall inside the open bin: the loop's first step, without
        // its division.
        if let Some(o) = self.zooms[0].open.as_mut() {
            if at >= o.start as u64 && end <= o.end as u64 {
                o.sums.add(r.value, end - at);
                return;
            }
        }
        let chrom = self.chrom_id();
        let bin = self.zooms[0].bin;
        while at < end {
            // A long run: its whole bins (all but the last) at once, the records the loop
            // below would make, with the same sums.
            if self.whole_bins && at.is_multiple_of(bin) && end - at >= 3 * bin {
                let n = (end - at) / bin - 1;
                self.zoom_close(0);
                let mut full = Summary::EMPTY;
                full.add(r.value, bin);
                self.zoom_whole_bins(0, chrom, at, n, full);
                at += n * bin;
            }
            let bin_start = at / bin * bin;
            let bin_end = (bin_start + bin).min(self.length);
            let open_here = self.zooms[0].open.as_ref().is_some_and(|o| o.start as u64 == bin_start);
            if !open_here {
                self.zoom_close(0);
                self.zooms[0].open =
                    Some(Record { chrom, start: bin_start as u32, end: bin_end as u32, sums: Summary::EMPTY });
            }
            let upto = end.min(bin_end);
            if let Some(o) = self.zooms[0].open.as_mut() {
                o.sums.add(r.value, upto - at);
            }
            at = upto;
        }
    }

    /// `n` whole bins of level `k` from `start` (a bin's start; the level has no open bin),
    /// each summed as `sums`: the records that closing them one by one would make, at this
    /// level and above, with the same sums (a whole bin of the next level is the merge of
    /// `ZOOM_FACTOR` such records, in order), without visiting each bin above this level.
    fn zoom_whole_bins(&mut self, k: usize, chrom: u32, mut start: u64, mut n: u64, sums: Summary) {
        let bin = self.zooms[k].bin;
        while n > 0 {
            let up = k + 1 < self.zooms.len();
            if up && start.is_multiple_of(self.zooms[k + 1].bin) && n >= ZOOM_FACTOR {
                // Whole bins of the next level: this level's records, then the next level's.
                let m = n / ZOOM_FACTOR;
                let mut rec = Record { chrom, start: 0, end: 0, sums }.encode();
                let mut i = 0;
                while i < m * ZOOM_FACTOR {
                    let s = start + i * bin;
                    set_span(&mut rec, s as u32, (s + bin) as u32);
                    let whole = ITEMS_PER_SLOT as u64;
                    if self.zooms[k].records.is_empty() && m * ZOOM_FACTOR - i >= whole {
                        // A whole section of these records: described, not encoded.
                        let end = (s + whole * bin) as u32;
                        let section = Section { chrom, start: s as u32, end, offset: 0, size: 0 };
                        self.largest_section = self.largest_section.max(32 * ITEMS_PER_SLOT);
                        let z = &mut self.zooms[k];
                        z.sections.push(ZoomSection::Repeated { section, record: rec, bin: bin as u32 });
                        z.count += whole;
                        i += whole;
                    } else {
                        self.zoom_push(k, &rec);
                        i += 1;
                    }
                }
                self.zoom_close(k + 1);
                let mut merged = Summary::EMPTY;
                for _ in 0..ZOOM_FACTOR {
                    merged.merge(&sums);
                }
                self.zoom_whole_bins(k + 1, chrom, start, m, merged);
                start += m * ZOOM_FACTOR * bin;
                n -= m * ZOOM_FACTOR;
            } else {
                self.zooms[k].open = Some(Record { chrom, start: start as u32, end: (start + bin) as u32, sums });
                self.zoom_close(k);
                start += bin;
                n -= 1;
            }
        }
    }

    /// A finished record of level `k` (encoded), flushed with the level's others every
    /// `ITEMS_PER_SLOT`.
    fn zoom_push(&mut self, k: usize, rec: &[u8; 32]) {
        let z = &mut self.zooms[k];
        z.records.extend_from_slice(rec);
        z.count += 1;
        if z.records.len() == 32 * ITEMS_PER_SLOT {
            self.zoom_flush(k);
        }
    }

    /// Closes level `k`'s open bin: its record joins the level's records and the next
    /// level's bin (bins nest, so the record lies inside one).
    fn zoom_close(&mut self, k: usize) {
        let Some(rec) = self.zooms[k].open.take() else { return };
        self.zoom_push(k, &rec.encode());
        if k + 1 < self.zooms.len() {
            let bin = self.zooms[k + 1].bin;
            // Bins nest: the record lies in the open bin of the next level or past its end.
            let open_here = self.zooms[k + 1].open.as_ref().is_some_and(|o| rec.start >= o.start && rec.start < o.end);
            if !open_here {
                let bin_start = rec.start as u64 / bin * bin;
                self.zoom_close(k + 1);
                let bin_end = (bin_start + bin).min(self.length) as u32;
                self.zooms[k + 1].open =
                    Some(Record { chrom: rec.chrom, start: bin_start as u32, end: bin_end, sums: Summary::EMPTY });
            }
            if let Some(o) = self.zooms[k + 1].open.as_mut() {
                o.sums.merge(&rec.sums);
            }
        }
    }

    /// Writes level `k`'s records as a section to the scratch file. A scratch error is kept
    /// for [`Self::finish`] (the section is lost, and the file with it).
    fn zoom_flush(&mut self, k: usize) {
        if self.zooms[k].records.is_empty() {
            return;
        }
        let raw = &self.zooms[k].records;
        // The section spans the first record's start to the last one's end.
        let last = &raw[raw.len() - 32..];
        let (chrom, start, end) = (record_field(raw, 0), record_field(raw, 1), record_field(last, 2));
        self.largest_section = self.largest_section.max(raw.len());
        let data = compress(&mut self.compressor, raw);
        self.zooms[k].records.clear();
        let section = Section { chrom, start, end, offset: self.scratch.at, size: data.len() as u64 };
        self.scratch.write(&data);
        self.zooms[k].sections.push(ZoomSection::Scratch(section));
    }

    /// Ends the current chromosome: its last data section and zoom records.
    fn end_chrom(&mut self) -> Result<(), FileError> {
        self.flush_sections()?;
        for k in 0..self.zooms.len() {
            self.zoom_close(k);
        }
        for k in 0..self.zooms.len() {
            self.zoom_flush(k);
        }
        Ok(())
    }

    /// Writes the indexes, zoom levels and header, and flushes the file (which the caller
    /// then renames into place).
    pub(crate) fn finish(mut self) -> Result<(), FileError> {
        self.end_chrom()?;
        self.write_batch()?;
        let data_end = self.at;
        let mut tail = Vec::new();
        rtree(&mut tail, data_end, &self.sections, data_end);
        let index = data_end;
        let chrom_tree = index + tail.len() as u64;
        let names: Vec<(&str, u32, u32)> = self
            .chroms
            .iter()
            .enumerate()
            .map(|(i, &c)| (self.sizes.name(c), i as u32, self.sizes.length(c).min(u32::MAX as u64) as u32))
            .collect();
        bptree(&mut tail, chrom_tree, &names);
        self.out.write_all(&tail).map_err(FileError::io(&self.path))?;
        self.at += tail.len() as u64;

        // Zoom levels: each kept only if it at least halves the records of the level before
        // it (the data's items for the first), as UCSC's writer does.
        if !self.scratch.ok {
            return Err(FileError::content(&self.path, "the zoom levels' scratch file could not be written"));
        }
        let mut zoom_headers: Vec<(u64, u64, u64)> = Vec::new();
        let mut previous = self.items;
        for k in 0..self.zooms.len() {
            let z = &self.zooms[k];
            if z.count == 0 || z.count * 2 > previous {
                continue;
            }
            previous = z.count;
            let data_offset = self.at;
            let mut moved = Vec::with_capacity(z.sections.len());
            let mut buf = Vec::new();
            for zs in &z.sections {
                match zs {
                    ZoomSection::Scratch(s) => {
                        buf.resize(s.size as usize, 0);
                        self.scratch.read(s.offset, &mut buf).map_err(FileError::io(&self.path))?;
                    }
                    ZoomSection::Repeated { record, bin, .. } => {
                        let raw = repeated_records(record, *bin, ITEMS_PER_SLOT);
                        self.largest_section = self.largest_section.max(raw.len());
                        buf = compress(&mut self.compressor, &raw);
                    }
                }
                self.out.write_all(&buf).map_err(FileError::io(&self.path))?;
                moved.push(Section { offset: self.at, size: buf.len() as u64, ..*zs.section() });
                self.at += buf.len() as u64;
            }
            let mut index = Vec::new();
            rtree(&mut index, self.at, &moved, self.at);
            let index_offset = self.at;
            self.out.write_all(&index).map_err(FileError::io(&self.path))?;
            self.at += index.len() as u64;
            zoom_headers.push((z.bin, data_offset, index_offset));
        }
        self.out.write_all(&MAGIC.to_le_bytes()).map_err(FileError::io(&self.path))?;

        let mut head = Vec::with_capacity((DATA_OFFSET + 8) as usize);
        le32(&mut head, MAGIC);
        head.extend_from_slice(&4u16.to_le_bytes()); // version
        head.extend_from_slice(&(zoom_headers.len() as u16).to_le_bytes());
        le64(&mut head, chrom_tree);
        le64(&mut head, DATA_OFFSET);
        le64(&mut head, index);
        head.extend_from_slice(&[0u8; 4]); // field count, defined field count
        le64(&mut head, 0); // autoSql
        le64(&mut head, SUMMARY_OFFSET);
        le32(&mut head, self.largest_section as u32); // decompression buffer
        le64(&mut head, 0); // extension
        for &(bin, data, index) in &zoom_headers {
            le32(&mut head, bin as u32);
            le32(&mut head, 0);
            le64(&mut head, data);
            le64(&mut head, index);
        }
        head.resize(SUMMARY_OFFSET as usize, 0);
        let s = if self.summary.valid == 0 { Summary { min: 0.0, max: 0.0, ..self.summary } } else { self.summary };
        le64(&mut head, s.valid);
        for v in [s.min, s.max, s.sum, s.squares] {
            head.extend_from_slice(&v.to_le_bytes());
        }
        le64(&mut head, self.sections.len() as u64);
        let io = FileError::io(&self.path);
        self.out
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.out.write_all(&head))
            .and_then(|_| self.out.flush())
            .map_err(io)
    }
}

/// The sizes of a tree's levels, leaves first: `n` items, `block` per node, one root.
fn tree_levels(n: usize, block: usize) -> Vec<usize> {
    let mut levels = vec![n.div_ceil(block).max(1)];
    while levels[levels.len() - 1] > 1 {
        let up = levels[levels.len() - 1].div_ceil(block);
        levels.push(up);
    }
    levels
}

/// Appends the R-tree ("cirTree") of `sections` to `out`, whose first byte lies at `at` in
/// the file; `data_end` is where the indexed data ends. Levels are written root first; every
/// node but a level's last holds `BLOCK_SIZE` children.
fn rtree(out: &mut Vec<u8>, at: u64, sections: &[Section], data_end: u64) {
    let n = sections.len();
    let levels = tree_levels(n, BLOCK_SIZE);
    // Bounds of each node of each level (leaves: of their sections).
    let mut bounds: Vec<Vec<(u32, u32, u32, u32)>> = Vec::new();
    let leaf_bounds: Vec<_> = sections.iter().map(|s| (s.chrom, s.start, s.chrom, s.end)).collect();
    let mut below = leaf_bounds;
    for _ in &levels {
        let up: Vec<_> =
            below.chunks(BLOCK_SIZE).map(|c| (c[0].0, c[0].1, c[c.len() - 1].2, c[c.len() - 1].3)).collect();
        bounds.push(below);
        below = up;
    }
    // Children of the nodes of level l: bounds[l]; a node at level l holds up to BLOCK_SIZE.
    let node_len = |l: usize, j: usize| -> u64 {
        let children = bounds[l].len();
        let count = BLOCK_SIZE.min(children - (j * BLOCK_SIZE).min(children));
        4 + count as u64 * if l == 0 { 32 } else { 24 }
    };
    // Offsets of every node, root level first.
    let mut offsets: Vec<Vec<u64>> = vec![Vec::new(); levels.len()];
    let mut pos = at + 48;
    for l in (0..levels.len()).rev() {
        for j in 0..levels[l] {
            offsets[l].push(pos);
            pos += node_len(l, j);
        }
    }
    let (first, last) = (sections.first(), sections.last());
    le32(out, CIR_TREE_MAGIC);
    le32(out, BLOCK_SIZE as u32);
    le64(out, n as u64);
    le32(out, first.map_or(0, |s| s.chrom));
    le32(out, first.map_or(0, |s| s.start));
    le32(out, last.map_or(0, |s| s.chrom));
    le32(out, last.map_or(0, |s| s.end));
    le64(out, data_end);
    le32(out, ITEMS_PER_SLOT as u32);
    le32(out, 0);
    for l in (0..levels.len()).rev() {
        for j in 0..levels[l] {
            let children =
                &bounds[l][(j * BLOCK_SIZE).min(bounds[l].len())..((j + 1) * BLOCK_SIZE).min(bounds[l].len())];
            out.push(u8::from(l == 0));
            out.push(0);
            out.extend_from_slice(&(children.len() as u16).to_le_bytes());
            for (i, b) in children.iter().enumerate() {
                for v in [b.0, b.1, b.2, b.3] {
                    le32(out, v);
                }
                let child = j * BLOCK_SIZE + i;
                if l == 0 {
                    le64(out, sections[child].offset);
                    le64(out, sections[child].size);
                } else {
                    le64(out, offsets[l - 1][child]);
                }
            }
        }
    }
}

/// Appends the chromosome B+ tree of `(name, id, length)` to `out`, whose first byte lies at
/// `at` in the file (keys sorted bytewise, as readers that search the tree expect).
fn bptree(out: &mut Vec<u8>, at: u64, chroms: &[(&str, u32, u32)]) {
    let mut items: Vec<&(&str, u32, u32)> = chroms.iter().collect();
    items.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let n = items.len();
    let block = n.clamp(1, BLOCK_SIZE);
    let key_len = items.iter().map(|c| c.0.len()).max().unwrap_or(1).max(1);
    let item_len = key_len as u64 + 8;
    let levels = tree_levels(n, block);
    // The first key under each node, per level (leaves: the items themselves).
    let mut keys: Vec<Vec<&str>> = Vec::new();
    let mut below: Vec<&str> = items.iter().map(|c| c.0).collect();
    for _ in &levels {
        let up: Vec<&str> = below.chunks(block).map(|c| c[0]).collect();
        keys.push(below);
        below = up;
    }
    let children = |l: usize, j: usize| (j * block).min(keys[l].len())..((j + 1) * block).min(keys[l].len());
    let mut offsets: Vec<Vec<u64>> = vec![Vec::new(); levels.len()];
    let mut pos = at + 32;
    for l in (0..levels.len()).rev() {
        for j in 0..levels[l] {
            offsets[l].push(pos);
            pos += 4 + children(l, j).len() as u64 * item_len;
        }
    }
    le32(out, CHROM_TREE_MAGIC);
    le32(out, block as u32);
    le32(out, key_len as u32);
    le32(out, 8);
    le64(out, n as u64);
    le64(out, 0);
    for l in (0..levels.len()).rev() {
        for j in 0..levels[l] {
            let range = children(l, j);
            out.push(u8::from(l == 0));
            out.push(0);
            out.extend_from_slice(&(range.len() as u16).to_le_bytes());
            for child in range {
                let key = keys[l][child].as_bytes();
                out.extend_from_slice(key);
                out.resize(out.len() + key_len - key.len(), 0);
                if l == 0 {
                    le32(out, items[child].1);
                    le32(out, items[child].2);
                } else {
                    le64(out, offsets[l - 1][child]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{BigWigWriter, SCRATCH_IN_MEMORY};
    use crate::io::bigwig::{read_bigwig, write_bigwig, BigWigStream};
    use crate::io::ChromSizes;
    use crate::track::{Run, Track};
    use bigtools::BigWigRead;

    fn run(start: u32, end: u32, value: f32) -> Run {
        Run { start, end, value }
    }

    /// 300 small chromosomes, named so that their bytewise order is not the genome's (the
    /// chromosome tree needs two levels: at most 256 per node), and one long one with 400,000
    /// per-base values (400 sections: the index needs two levels) broken by a long run, gaps,
    /// lone bases and runs of two, so that fixedStep and bedGraph sections alternate.
    fn track() -> Track {
        let mut pairs: Vec<(String, u64)> = (0..300).map(|i| (format!("c{}", 299 - i), 5_000 + i as u64)).collect();
        pairs.insert(7, ("long".to_string(), 1_000_000));
        let sizes = ChromSizes::from_pairs(pairs).expect("sizes");
        let mut t = Track::empty(sizes.clone());
        let mut x = 0x2545_F491u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / (1 << 24) as f32 + 0.001
        };
        for id in 0..sizes.len() {
            let mut runs = Vec::new();
            if sizes.name(id) == "long" {
                runs.extend((0..300_000).map(|i| run(i, i + 1, next())));
                runs.push(run(300_000, 300_500, 2.0));
                runs.extend((300_500..350_000).map(|i| run(i, i + 1, next())));
                runs.extend((350_010..360_000).step_by(3).map(|i| run(i, i + 1, next())));
                runs.extend((360_000..380_000).step_by(2).map(|i| run(i, i + 2, next())));
                runs.extend((380_000..420_000).map(|i| run(i, i + 1, next())));
                runs.push(run(999_990, 1_000_000, 5.0));
            } else if id % 3 != 0 {
                let len = sizes.length(id) as u32;
                runs.extend((0..len / 50).map(|k| run(k * 50, k * 50 + 1 + k % 7, next())));
            }
            t.set_runs(id, runs);
        }
        t
    }

    #[test]
    fn tracks_round_trip_through_bigtools_whole_and_streamed() {
        let dir = crate::io::scratch_dir("bigwig-writer-round-trip");
        let t = track();
        let (whole, streamed) = (dir.join("whole.bw"), dir.join("streamed.bw"));
        write_bigwig(&whole, &t, 2).expect("write");
        let s = BigWigStream::create(&streamed, t.sizes()).expect("stream");
        for id in 0..t.sizes().len() {
            if !t.runs(id).is_empty() {
                s.chrom(t.sizes().name(id)).expect("chrom");
                // In uneven messages, as `denoise run` sends them.
                for part in t.runs(id).chunks(777) {
                    s.runs(part.to_vec()).expect("runs");
                }
            }
        }
        s.finish().expect("finish");
        for path in [&whole, &streamed] {
            // read_bigwig checks the layout first (every tree, block and section), then reads
            // with bigtools.
            assert_eq!(&read_bigwig(path, Some(t.sizes())).expect("read"), &t, "{}", path.display());
            let own = read_bigwig(path, None).expect("read without sizes");
            let with_data: Vec<&str> =
                (0..t.sizes().len()).filter(|&c| !t.runs(c).is_empty()).map(|c| t.sizes().name(c)).collect();
            assert_eq!(own.sizes().names().iter().map(String::as_str).collect::<Vec<_>>(), with_data);
        }
        // Only the two files: no scratch file or temporary left behind.
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn zoom_records_hold_the_sums_of_their_bins() {
        let dir = crate::io::scratch_dir("bigwig-writer-zooms");
        let t = track();
        let path = dir.join("t.bw");
        write_bigwig(&path, &t, 1).expect("write");
        let mut reader = BigWigRead::open_file(&path).expect("open");
        let levels: Vec<u32> = reader.info().zoom_headers.iter().map(|z| z.reduction_level).collect();
        // 160 · 4^k, each kept level at most half the records of the one before.
        assert!(levels.len() >= 3, "zoom levels {levels:?}");
        assert!(levels
            .iter()
            .enumerate()
            .all(|(k, &l)| (l as u64).is_multiple_of(160) && (k == 0 || l > levels[k - 1])));
        let long = t.sizes().id("long").expect("long");
        let mut values = vec![0.0f32; 1_000_000];
        t.fill(long, 0, &mut values);
        let covered = |a: usize, b: usize| -> Vec<f32> {
            // Bases inside a run (zero-valued bases between runs are not data).
            let mut m = vec![false; b - a];
            for r in t.runs(long) {
                for p in (r.start as usize).max(a)..(r.end as usize).min(b) {
                    m[p - a] = true;
                }
            }
            (a..b).filter(|&p| m[p - a]).map(|p| values[p]).collect()
        };
        for &level in &levels {
            let records: Vec<_> = reader
                .get_zoom_interval("long", 0, 1_000_000, level)
                .expect("zoom")
                .map(|r| r.expect("record"))
                .collect();
            assert!(!records.is_empty());
            let mut checked = 0;
            for r in &records {
                let v = covered(r.start as usize, r.end as usize);
                assert_eq!(r.start % level, 0, "bins start at multiples of the level");
                assert_eq!(r.summary.bases_covered, v.len() as u64, "level {level} at {}", r.start);
                let (min, max) = v.iter().fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
                assert_eq!((r.summary.min_val as f32, r.summary.max_val as f32), (min, max));
                let sum: f64 = v.iter().map(|&x| x as f64).sum();
                let squares: f64 = v.iter().map(|&x| x as f64 * x as f64).sum();
                assert!((r.summary.sum - sum).abs() <= 1e-6 * sum.abs().max(1.0), "{} vs {sum}", r.summary.sum);
                assert!((r.summary.sum_squares - squares).abs() <= 1e-6 * squares.abs().max(1.0));
                checked += 1;
            }
            // Every bin that holds data has its record.
            let bins_with_data = (0..1_000_000usize.div_ceil(level as usize))
                .filter(|&b| !covered(b * level as usize, ((b + 1) * level as usize).min(1_000_000)).is_empty())
                .count();
            assert_eq!(checked, bins_with_data, "level {level}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn runs_out_of_order_or_past_the_end_are_errors_and_leave_no_file() {
        let dir = crate::io::scratch_dir("bigwig-writer-order");
        let sizes = ChromSizes::from_pairs([("a".to_string(), 100), ("b".to_string(), 50)]).expect("sizes");
        let cases: [(&str, Vec<Run>); 4] = [
            ("a", vec![run(10, 20, 1.0), run(15, 30, 1.0)]),
            ("a", vec![run(10, 20, 1.0), run(5, 8, 1.0)]),
            ("b", vec![run(40, 51, 1.0)]),
            ("a", vec![run(10, 10, 1.0)]),
        ];
        for (i, (chrom, runs)) in cases.into_iter().enumerate() {
            let path = dir.join(format!("{i}.bw"));
            let s = BigWigStream::create(&path, &sizes).expect("stream");
            s.chrom(chrom).expect("chrom");
            let _ = s.runs(runs);
            let e = s.finish().expect_err("bad runs");
            assert!(e.to_string().contains("runs must be sorted"), "{e}");
            assert!(!path.exists());
        }
        // A chromosome the genome lacks, and one started twice.
        let path = dir.join("chroms.bw");
        let s = BigWigStream::create(&path, &sizes).expect("stream");
        s.chrom("z").expect("sent");
        assert!(s.finish().expect_err("unknown").to_string().contains("'z' is not in the genome"));
        let s = BigWigStream::create(&path, &sizes).expect("stream");
        s.chrom("a").expect("sent");
        let _ = s.chrom("a");
        assert!(s.finish().expect_err("twice").to_string().contains("written twice"));
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Long constant runs take the whole-bins path (records made a level at a time, whole
    /// sections of them described until the level is kept) and the zoom sections stay in
    /// memory or spill to a file: every combination writes the bytes of the plain path, which
    /// visits each bin. Runs start inside bins and on their edges, span whole sections of the
    /// three finest levels, end at chromosomes' ends that are not bin edges, and alternate with
    /// per-base values, gaps and a second chromosome.
    #[test]
    fn zoom_fast_paths_write_the_bytes_of_the_bin_by_bin_path() {
        let dir = crate::io::scratch_dir("bigwig-writer-whole-bins");
        let sizes =
            ChromSizes::from_pairs([("a".to_string(), 9_000_017), ("b".to_string(), 3_000_001)]).expect("sizes");
        let mut x = 0x9E37_79B9u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / (1 << 20) as f32 - 4.0
        };
        let mut a = vec![run(0, 3_000_000, 0.3), run(3_000_000, 3_000_001, 7.0)];
        // Enough values that the finest levels are kept (each at most half the one before).
        a.extend((3_000_100..3_405_000).map(|p| run(p, p + 1, next())));
        a.push(run(3_405_000, 3_405_640, 0.3));
        a.push(run(3_405_641, 8_500_077, 0.6));
        a.extend((8_500_077..8_500_500).map(|p| run(p, p + 1, next())));
        a.push(run(8_500_500, 9_000_017, 0.3));
        let b = vec![run(17, 2_999_999, 1.5), run(2_999_999, 3_000_001, 2.5)];
        let write = |name: &str, whole_bins: bool, limit: usize| -> Vec<u8> {
            let path = dir.join(name);
            let mut w = BigWigWriter::create(&path, &path, &sizes, false).expect("create");
            w.whole_bins = whole_bins;
            w.scratch.limit = limit;
            for (chrom, runs) in [("a", &a), ("b", &b)] {
                w.chrom(chrom).expect("chrom");
                for part in runs.chunks(1000) {
                    w.runs(part).expect("runs");
                }
            }
            w.finish().expect("finish");
            std::fs::read(&path).expect("read")
        };
        let plain = write("plain.bw", false, SCRATCH_IN_MEMORY);
        assert_eq!(write("whole.bw", true, SCRATCH_IN_MEMORY), plain, "whole bins, zoom sections in memory");
        assert_eq!(write("spilled.bw", true, 4096), plain, "whole bins, zoom sections spilled to a file");
        assert_eq!(write("plain-spilled.bw", false, 4096), plain, "bin by bin, spilled");
        // The files read back (zoom records checked against their bins elsewhere) and no
        // scratch file is left.
        let t = read_bigwig(dir.join("whole.bw"), Some(&sizes)).expect("read");
        assert_eq!(t.runs(1), &b[..]);
        let levels = BigWigRead::open_file(dir.join("whole.bw")).expect("open").info().zoom_headers.len();
        assert!(levels >= 4, "the levels with whole sections of one run are in the file: {levels}");
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 4);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
