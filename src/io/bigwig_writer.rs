//! A streaming bigWig writer (UCSC's format, version 4): chromosomes in order, runs in order
//! within each, zoom levels built as the runs arrive, nothing held but the index.
//!
//! bigtools wrote chromax's bigWigs before; its writer costs, per value, a tokio task
//! entry, a summary update for each of ten zoom levels and 12 bytes of bedGraph record
//! deflated at libdeflate's level 6. In `denoise run` on sparse inputs that was as much CPU
//! as the network (see BENCHMARKS.md, exact skipping). Here a stretch of per-base values is a
//! fixedStep section (4 bytes a value), sections are deflated at a fast level, and only the
//! finest zoom level looks at the values: each coarser one merges the finished records of the
//! level below (the bins nest: 160 · 4^k bases, aligned to the chromosome's start).
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

/// libdeflate's level for data and zoom sections: its fastest. On `denoise run`'s outputs
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

/// A zoom level: the open bin, the records not yet in a section, and its sections (spilled
/// to the writer's scratch file).
struct Zoom {
    bin: u64,
    open: Option<Record>,
    records: Vec<Record>,
    sections: Vec<Section>,
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
}

/// The zoom levels' sections until the data is complete: a file beside the output, removed
/// when dropped.
struct Scratch {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    at: u64,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.file.take();
        let _ = std::fs::remove_file(&self.path);
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
        let scratch_path = tmp.with_extension("zooms");
        let scratch = Scratch {
            file: Some(BufWriter::new(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&scratch_path)
                    .map_err(io)?,
            )),
            path: scratch_path,
            at: 0,
        };
        let zooms = (0..MAX_ZOOMS)
            .map(|k| Zoom {
                bin: FIRST_ZOOM * ZOOM_FACTOR.pow(k as u32),
                open: None,
                records: Vec::new(),
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
        let chrom = self.chrom_id();
        let bin = self.zooms[0].bin;
        let (mut at, end) = (r.start as u64, r.end as u64);
        while at < end {
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

    /// Closes level `k`'s open bin: its record joins the level's records and the next
    /// level's bin (bins nest, so the record lies inside one).
    fn zoom_close(&mut self, k: usize) {
        let Some(rec) = self.zooms[k].open.take() else { return };
        self.zooms[k].records.push(rec);
        self.zooms[k].count += 1;
        if self.zooms[k].records.len() == ITEMS_PER_SLOT {
            self.zoom_flush(k);
        }
        if k + 1 < self.zooms.len() {
            let bin = self.zooms[k + 1].bin;
            let bin_start = rec.start as u64 / bin * bin;
            let open_here = self.zooms[k + 1].open.as_ref().is_some_and(|o| o.start as u64 == bin_start);
            if !open_here {
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
        let records = std::mem::take(&mut self.zooms[k].records);
        let (Some(first), Some(last)) = (records.first(), records.last()) else { return };
        let mut raw = Vec::with_capacity(records.len() * 32);
        for r in &records {
            le32(&mut raw, r.chrom);
            le32(&mut raw, r.start);
            le32(&mut raw, r.end);
            le32(&mut raw, r.sums.valid.min(u32::MAX as u64) as u32);
            for v in [r.sums.min, r.sums.max, r.sums.sum, r.sums.squares] {
                raw.extend_from_slice(&(v as f32).to_le_bytes());
            }
        }
        self.largest_section = self.largest_section.max(raw.len());
        let data = compress(&mut self.compressor, &raw);
        let section = Section {
            chrom: first.chrom,
            start: first.start,
            end: last.end,
            offset: self.scratch.at,
            size: data.len() as u64,
        };
        let written = match self.scratch.file.as_mut() {
            Some(f) => f.write_all(&data).is_ok(),
            None => false,
        };
        if written {
            self.scratch.at += section.size;
            self.zooms[k].sections.push(section);
        } else {
            self.scratch.file = None;
        }
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
        let mut scratch = match self.scratch.file.take().map(|f| f.into_inner()) {
            Some(Ok(f)) => f,
            _ => return Err(FileError::content(&self.path, "the zoom levels' scratch file could not be written")),
        };
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
            for s in &z.sections {
                buf.resize(s.size as usize, 0);
                scratch
                    .seek(SeekFrom::Start(s.offset))
                    .and_then(|_| scratch.read_exact(&mut buf))
                    .map_err(FileError::io(&self.path))?;
                self.out.write_all(&buf).map_err(FileError::io(&self.path))?;
                moved.push(Section { offset: self.at, ..*s });
                self.at += s.size;
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
}
