//! bigWig: writing a [`Track`] or a stream of runs ([`super::bigwig_writer`]), and reading one
//! back through bigtools (one reader per chromosome, in parallel).

use super::atomic::AtomicFile;
use super::bigwig_writer::BigWigWriter;
use super::sizes::{name_mismatch, ChromSizes};
use crate::error::FileError;
use crate::track::{Run, Track};
use bigtools::BigWigRead;
use rayon::prelude::*;
use std::io::Read;
use std::path::Path;

/// The bigWig magic number, little-endian on disk.
const BIGWIG_MAGIC: u32 = 0x888F_FC26;

/// Whether a file starts with the bigWig magic number.
pub fn is_bigwig(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
        && u32::from_le_bytes(magic) == BIGWIG_MAGIC
}

/// Writes `track` as a bigWig (non-zero runs; chromosomes without data are left out, as
/// bedGraphToBigWig does, unless no chromosome has any: then all are listed, without data),
/// atomically, compressing on rayon's threads where `threads` > 1.
pub fn write_bigwig(path: impl AsRef<Path>, track: &Track, threads: usize) -> Result<(), FileError> {
    let path = path.as_ref();
    let file = AtomicFile::new(path)?;
    let mut writer = BigWigWriter::create(file.path(), path, track.sizes(), threads > 1)?;
    let empty = (0..track.sizes().len()).all(|id| track.runs(id).is_empty());
    for id in (0..track.sizes().len()).filter(|&id| empty || !track.runs(id).is_empty()) {
        writer.chrom(track.sizes().name(id))?;
        writer.runs(track.runs(id))?;
    }
    writer.finish()?;
    file.commit()
}

/// Reads a bigWig into a track. With `sizes`, the track covers those chromosomes (every
/// chromosome of the file must be among them); without, the file's own list.
///
/// A damaged or truncated file is an error naming it, never a panic: the file's layout is
/// checked first ([`layout::check`]) so that bigtools, which panics or aborts on some damage,
/// only ever sees files it can read; bigtools is then called behind `catch_unwind`.
pub fn read_bigwig(path: impl AsRef<Path>, sizes: Option<&ChromSizes>) -> Result<Track, FileError> {
    let path = path.as_ref();
    let file_chroms = bigwig_chroms(path)?;
    let track_sizes = match sizes {
        Some(s) => {
            let missing: Vec<String> =
                file_chroms.iter().filter(|(n, _)| s.id(n).is_none()).map(|(n, _)| n.clone()).collect();
            if !missing.is_empty() {
                return Err(FileError::Mismatch(name_mismatch(
                    &path.display().to_string(),
                    s.names(),
                    &missing,
                    "the genome sizes",
                    "the bigWig",
                )));
            }
            if let Some((name, len)) = file_chroms.iter().find(|(n, l)| s.id(n).is_some_and(|id| s.length(id) != *l)) {
                let want = s.id(name).map_or(0, |id| s.length(id));
                return Err(FileError::Mismatch(format!(
                    "{}: {name} is {len} bp in the bigWig but {want} bp in the genome sizes: the tracks come from another assembly",
                    path.display()
                )));
            }
            s.clone()
        }
        None => ChromSizes::from_pairs(file_chroms.iter().cloned()).map_err(|e| FileError::content(path, e))?,
    };
    let per_chrom: Vec<(usize, Vec<Run>)> = file_chroms
        .par_iter()
        .map(|(name, len)| {
            let id = track_sizes.id(name).unwrap_or(usize::MAX);
            let limit = (*len).min(track_sizes.length(id));
            Ok((id, read_runs(path, name, 0, *len, limit)?))
        })
        .collect::<Result<_, FileError>>()?;
    let mut track = Track::empty(track_sizes);
    for (id, runs) in per_chrom {
        track.set_runs(id, runs);
    }
    Ok(track)
}

/// The chromosomes of a bigWig, as (name, length) in its own order, its layout checked.
pub fn bigwig_chroms(path: impl AsRef<Path>) -> Result<Vec<(String, u64)>, FileError> {
    let path = path.as_ref();
    std::fs::File::open(path).map_err(FileError::io(path))?;
    if !is_bigwig(path) {
        return Err(FileError::content(path, "not a bigWig file (wrong magic number)"));
    }
    layout::check(path)
}

/// The non-zero runs of a bigWig over `chrom:start-end` (0-based, end exclusive), cut to it;
/// `chroms` from [`bigwig_chroms`] (whose layout check reads every block once): bigtools then
/// reads only the blocks the region touches.
pub fn read_bigwig_region(
    path: impl AsRef<Path>,
    chroms: &[(String, u64)],
    chrom: &str,
    start: u64,
    end: u64,
) -> Result<Vec<Run>, FileError> {
    let path = path.as_ref();
    let Some(&(_, len)) = chroms.iter().find(|(n, _)| n == chrom) else {
        return Err(FileError::content(path, format!("no chromosome '{chrom}' in the bigWig")));
    };
    read_runs(path, chrom, start.min(len), end.min(len), len)
}

/// What an error says when bigtools panicked on a file that passed [`layout::check`]: the
/// check missed a kind of damage (tests look for this text).
const READER_PANICKED: &str = "the bigWig reader failed on it";

/// The non-zero runs of chromosome `name` over `from..to` (within its length in the file),
/// cut to that range and at `limit`, read by bigtools behind `catch_unwind`. Opened from a
/// `File`, not a path: bigtools' `open_file` prints to stderr when it fails.
fn read_runs(path: &Path, name: &str, from: u64, to: u64, limit: u64) -> Result<Vec<Run>, FileError> {
    let file = std::fs::File::open(path).map_err(FileError::io(path))?;
    let read = || -> Result<Vec<Run>, FileError> {
        let mut reader = BigWigRead::open(file).map_err(|e| layout::damaged(path, format!("cannot open it: {e}")))?;
        let intervals = reader
            .get_interval(name, from as u32, to as u32)
            .map_err(|e| layout::damaged(path, format!("{name}: {e}")))?;
        let mut runs: Vec<Run> = Vec::new();
        let mut prev_end = 0u32;
        for v in intervals {
            let v = v.map_err(|e| layout::damaged(path, format!("{name}: {e}")))?;
            if !v.value.is_finite() {
                return Err(FileError::content(
                    path,
                    format!("{name}:{}-{}: value {} is not finite", v.start, v.end, v.value),
                ));
            }
            if v.start >= v.end {
                return Err(layout::damaged(
                    path,
                    format!("{name}:{}-{}: an empty or reversed interval", v.start, v.end),
                ));
            }
            if v.start < prev_end {
                return Err(FileError::content(
                    path,
                    format!(
                        "{name}:{}-{}: overlaps the interval before it (which ends at {prev_end}); chromax reads bigWigs whose intervals are sorted and do not overlap",
                        v.start, v.end
                    ),
                ));
            }
            prev_end = v.end;
            let (start, end) = ((v.start as u64).max(from), (v.end as u64).min(to).min(limit));
            if v.value != 0.0 && start < end {
                let (start, end) = (start as u32, end as u32);
                // Adjacent intervals of one value are one run (a fixedStep section holds a
                // run base by base).
                match runs.last_mut() {
                    Some(last) if last.end == start && last.value.to_bits() == v.value.to_bits() => last.end = end,
                    _ => runs.push(Run { start, end, value: v.value }),
                }
            }
        }
        Ok(runs)
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(layout::damaged(path, format!("{name}: {READER_PANICKED} ({why})")))
    })
}

/// A message to a streaming bigWig writer.
enum StreamMsg {
    Chrom(String),
    Runs(Vec<Run>),
    Finish,
}

/// A bigWig written while its data is still being computed: chromosomes and runs are sent in
/// order, a writer thread compresses them, memory stays bounded by the channel. The file
/// appears (atomically) only after [`BigWigStream::finish`].
pub struct BigWigStream {
    tx: Option<crossbeam_channel::Sender<StreamMsg>>,
    worker: Option<std::thread::JoinHandle<Result<(), FileError>>>,
    file: Option<AtomicFile>,
    path: std::path::PathBuf,
}

impl BigWigStream {
    /// A stream to `path` over the chromosomes of `sizes`; one writer thread compresses as the
    /// runs arrive.
    pub fn create(path: impl AsRef<Path>, sizes: &ChromSizes) -> Result<Self, FileError> {
        let path = path.as_ref().to_path_buf();
        let file = AtomicFile::new(&path)?;
        let mut writer = BigWigWriter::create(file.path(), &path, sizes, false)?;
        let (tx, rx) = crossbeam_channel::bounded::<StreamMsg>(64);
        let worker = std::thread::spawn(move || {
            // A closed channel without `Finish` (the stream dropped on an error path): stop,
            // leaving the temporary file for `AtomicFile` to remove.
            while let Ok(msg) = rx.recv() {
                match msg {
                    StreamMsg::Chrom(name) => writer.chrom(&name)?,
                    StreamMsg::Runs(runs) => writer.runs(&runs)?,
                    StreamMsg::Finish => return writer.finish(),
                }
            }
            Ok(())
        });
        Ok(BigWigStream { tx: Some(tx), worker: Some(worker), file: Some(file), path })
    }

    fn send(&self, msg: StreamMsg) -> Result<(), FileError> {
        match &self.tx {
            Some(tx) if tx.send(msg).is_ok() => Ok(()),
            // The writer stopped: `finish` (or the drop) reports its error.
            _ => Err(FileError::content(&self.path, "the bigWig writer stopped early")),
        }
    }

    /// Starts the next chromosome (each at most once, in the output's order).
    pub fn chrom(&self, name: &str) -> Result<(), FileError> {
        self.send(StreamMsg::Chrom(name.to_string()))
    }

    /// Appends runs of the current chromosome (sorted, after those sent before).
    pub fn runs(&self, runs: Vec<Run>) -> Result<(), FileError> {
        if runs.is_empty() {
            return Ok(());
        }
        self.send(StreamMsg::Runs(runs))
    }

    /// Waits for the writer and puts the file in place.
    pub fn finish(mut self) -> Result<(), FileError> {
        let sent = self.send(StreamMsg::Finish);
        drop(self.tx.take());
        let result = match self.worker.take().map(|w| w.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(FileError::content(&self.path, "the bigWig writer thread panicked")),
            None => Ok(()),
        };
        result?;
        sent?;
        match self.file.take() {
            Some(f) => f.commit(),
            None => Ok(()),
        }
    }
}

impl Drop for BigWigStream {
    fn drop(&mut self) {
        // Dropped without `finish` (an error on the way): the writer stops at the closed
        // channel and the temporary file is removed, never committed.
        drop(self.tx.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// The layout of a bigWig, checked against the UCSC format before bigtools reads it.
///
/// bigtools 0.5 trusts the file: a damaged byte can make it panic (`assert_eq!(val_size, 8)`,
/// "Unexpected isleaf", `unwrap()` on a failed decompression, slicing past a short block, an
/// overflowing position) or ask for an allocation of terabytes (a chromosome count or a block
/// size taken as is), which aborts the process. This module walks every structure bigtools
/// will follow and accepts the file only if each one lies inside the file, has the sizes
/// and counts the format allows, and each data block decompresses, within the buffer size
/// the header states, to sections whose items fit. Nothing read here is sized by a number
/// from the file without that number first being bounded by the file's length.
///
/// Layout (little-endian; bigtools and UCSC write the machine's order, and
/// [`is_bigwig`](super::is_bigwig) only takes little-endian files):
/// header (64 bytes) · zoom headers (24 each) · … · chromosome B+ tree · data count · data
/// blocks · R-tree index of the blocks · zoom levels · the magic number again (bigtools
/// writes the chromosome tree after the data blocks instead).
pub(super) mod layout {
    use super::BIGWIG_MAGIC;
    use crate::error::FileError;
    use rayon::prelude::*;
    use std::collections::HashSet;
    use std::fs::File;
    use std::io::{Read, Seek, SeekFrom};
    use std::path::Path;

    const HEADER_LEN: u64 = 64;
    const ZOOM_HEADER_LEN: u64 = 24;
    const CHROM_TREE_MAGIC: u32 = 0x78CA_8C91;
    const CHROM_TREE_HEADER_LEN: u64 = 32;
    const CIR_TREE_MAGIC: u32 = 0x2468_ACE0;
    const CIR_TREE_HEADER_LEN: u64 = 48;
    const NODE_HEADER_LEN: u64 = 4;
    /// bigtools reads 32 bytes per item of every R-tree node (a non-leaf item is 24 bytes:
    /// it reads past them), so a node must leave that much room before the file's end.
    const CIR_ITEM_READ_LEN: u64 = 32;
    const SECTION_HEADER_LEN: usize = 24;
    /// Deeper trees are not written by anyone (a B+ tree of 2^64 items with 2 per node is
    /// 64 deep); bigtools walks the chromosome tree recursively, so depth is stack.
    const MAX_TREE_DEPTH: usize = 64;
    /// DEFLATE expands at most 1032-fold (258 bytes from 2 bits); the slack covers headers.
    const DEFLATE_MAX_RATIO: u64 = 1032;
    const DEFLATE_SLACK: u64 = 1024;
    /// Writers may state a buffer larger than their largest block (libBigWig uses a fixed
    /// size); up to this much is accepted whatever the blocks' sizes.
    const GENEROUS_BUFFER: u64 = 16 << 20;

    /// An error for a file whose structure is wrong.
    pub(crate) fn damaged(path: &Path, what: impl std::fmt::Display) -> FileError {
        FileError::content(path, format!("damaged bigWig: {what}"))
    }

    /// An error for a structure that reaches past the file's end.
    fn cut(path: &Path, what: impl std::fmt::Display) -> FileError {
        FileError::content(path, format!("damaged or truncated bigWig: {what}"))
    }

    fn le16(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    fn le64(b: &[u8], at: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(a)
    }

    /// The file, read at offsets checked against its length.
    struct Source<'a> {
        path: &'a Path,
        file: File,
        len: u64,
    }

    impl<'a> Source<'a> {
        fn open(path: &'a Path) -> Result<Self, FileError> {
            let file = File::open(path).map_err(FileError::io(path))?;
            let len = file.metadata().map_err(FileError::io(path))?.len();
            Ok(Source { path, file, len })
        }

        /// Bytes `offset..offset + n`, or an error naming `what` if they are not all in the file.
        fn read(&mut self, offset: u64, n: u64, what: &str) -> Result<Vec<u8>, FileError> {
            if offset.checked_add(n).is_none_or(|end| end > self.len) {
                return Err(cut(
                    self.path,
                    format!("{what} (bytes {offset}..+{n}) reaches past the end of the file ({} bytes)", self.len),
                ));
            }
            let mut buf = vec![0u8; n as usize];
            self.file.seek(SeekFrom::Start(offset)).map_err(FileError::io(self.path))?;
            self.file.read_exact(&mut buf).map_err(FileError::io(self.path))?;
            Ok(buf)
        }
    }

    /// The header fields the rest of the file is found by.
    struct Header {
        chrom_tree: u64,
        full_data: u64,
        full_index: u64,
        uncompress_buf: u32,
    }

    fn header(src: &mut Source) -> Result<Header, FileError> {
        let path = src.path;
        if src.len < HEADER_LEN + 4 {
            return Err(cut(path, format!("{} bytes, less than a bigWig's header", src.len)));
        }
        let h = src.read(0, HEADER_LEN, "the header")?;
        if le32(&h, 0) != BIGWIG_MAGIC {
            return Err(damaged(path, "wrong magic number"));
        }
        let tail = src.read(src.len - 4, 4, "the closing magic number")?;
        if le32(&tail, 0) != BIGWIG_MAGIC {
            return Err(cut(path, "it does not end with the bigWig magic number"));
        }
        let version = le16(&h, 4);
        if !(1..=4).contains(&version) {
            return Err(damaged(path, format!("version {version}; versions 1 to 4 are known")));
        }
        let zoom_levels = le16(&h, 6) as u64;
        let (chrom_tree, full_data, full_index) = (le64(&h, 8), le64(&h, 16), le64(&h, 24));
        let (field_count, defined_field_count) = (le16(&h, 32), le16(&h, 34));
        let (auto_sql, total_summary, uncompress_buf) = (le64(&h, 36), le64(&h, 44), le32(&h, 52));
        if field_count != 0 || defined_field_count != 0 {
            return Err(damaged(
                path,
                format!("field counts {field_count}/{defined_field_count}; a bigWig has none (0/0)"),
            ));
        }
        // Each section after the zoom headers and before the closing magic number; the data
        // before its index (UCSC puts the chromosome tree before the data, bigtools after).
        let zooms_end = HEADER_LEN + ZOOM_HEADER_LEN * zoom_levels;
        let body_end = src.len - 4;
        let in_place = zooms_end <= chrom_tree
            && zooms_end <= full_data
            && chrom_tree.checked_add(CHROM_TREE_HEADER_LEN).is_some_and(|e| e <= body_end)
            && full_data.checked_add(4).is_some_and(|e| e <= full_index)
            && full_index.checked_add(CIR_TREE_HEADER_LEN).is_some_and(|e| e <= body_end);
        if !in_place {
            return Err(cut(
                path,
                format!(
                    "the header places {zoom_levels} zoom levels (to byte {zooms_end}), the chromosome tree at byte {chrom_tree}, the data at {full_data} and its index at {full_index}, in a file of {} bytes",
                    src.len
                ),
            ));
        }
        let summary_outside = total_summary != 0 && total_summary.checked_add(40).is_none_or(|e| e > src.len);
        if auto_sql >= src.len || summary_outside {
            return Err(cut(path, format!("the header places the autoSql at byte {auto_sql} and the summary at {total_summary}, past the end of the file ({} bytes)", src.len)));
        }
        Ok(Header { chrom_tree, full_data, full_index, uncompress_buf })
    }

    /// The chromosomes, as (name, length), in the order of their ids (the data's order).
    fn chrom_tree(src: &mut Source, h: &Header) -> Result<Vec<(String, u64)>, FileError> {
        let path = src.path;
        let t = src.read(h.chrom_tree, CHROM_TREE_HEADER_LEN, "the chromosome tree's header")?;
        if le32(&t, 0) != CHROM_TREE_MAGIC {
            return Err(damaged(path, format!("no chromosome tree at byte {} (wrong magic number)", h.chrom_tree)));
        }
        let (block_size, key_size, val_size, item_count) =
            (le32(&t, 4), le32(&t, 8) as u64, le32(&t, 12), le64(&t, 16));
        if val_size != 8 {
            return Err(damaged(
                path,
                format!("the chromosome tree's value size is {val_size}; it is 8 (id and length)"),
            ));
        }
        if key_size == 0 || block_size == 0 {
            return Err(damaged(
                path,
                format!("the chromosome tree's key size {key_size} and block size {block_size} must be at least 1"),
            ));
        }
        let item_len = key_size + 8;
        if item_count > src.len / item_len {
            return Err(damaged(
                path,
                format!("the chromosome tree claims {item_count} chromosomes of {item_len} bytes each; the file ({} bytes) holds at most {}", src.len, src.len / item_len),
            ));
        }
        let mut chroms = Vec::new();
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        let mut visited = HashSet::new();
        // Bytes of nodes read: a tree whose nodes overlap or repeat could otherwise make
        // bigtools read far more than the file.
        let mut budget = src.len;
        let mut stack = vec![(h.chrom_tree + CHROM_TREE_HEADER_LEN, 0usize)];
        while let Some((offset, depth)) = stack.pop() {
            if depth > MAX_TREE_DEPTH || !visited.insert(offset) {
                return Err(damaged(
                    path,
                    format!("the chromosome tree's node at byte {offset} is reached twice or lies {depth} levels deep"),
                ));
            }
            let n = src.read(offset, NODE_HEADER_LEN, "a chromosome tree node")?;
            let (is_leaf, count) = (n[0], le16(&n, 2) as u64);
            if is_leaf > 1 || count > block_size as u64 {
                return Err(damaged(path, format!("the chromosome tree's node at byte {offset} has leaf flag {is_leaf} (0 or 1) and {count} items (at most {block_size})")));
            }
            let size = NODE_HEADER_LEN + item_len * count;
            budget = budget
                .checked_sub(size)
                .ok_or_else(|| damaged(path, "the chromosome tree's nodes hold more bytes than the file"))?;
            let items = src.read(offset + NODE_HEADER_LEN, item_len * count, "a chromosome tree node")?;
            let mut children = Vec::new();
            for item in items.chunks_exact(item_len as usize) {
                let (key, value) = item.split_at(key_size as usize);
                if is_leaf == 1 {
                    let name = std::str::from_utf8(key)
                        .map_err(|_| {
                            damaged(path, format!("a chromosome name in the node at byte {offset} is not UTF-8"))
                        })?
                        .trim_matches('\0')
                        .to_string();
                    let (id, length) = (le32(value, 0), le32(value, 4));
                    if name.is_empty() || length == 0 || !names.insert(name.clone()) || !ids.insert(id) {
                        return Err(damaged(path, format!("chromosome '{name}' (id {id}, {length} bp): an empty name, a zero length, or a name or id listed twice")));
                    }
                    chroms.push((id, name, length as u64));
                } else {
                    children.push(le64(value, 0));
                }
            }
            stack.extend(children.into_iter().rev().map(|c| (c, depth + 1)));
        }
        if chroms.len() as u64 != item_count {
            return Err(damaged(
                path,
                format!("the chromosome tree claims {item_count} chromosomes but holds {}", chroms.len()),
            ));
        }
        // In id order, the order of the data (the tree is sorted by name).
        chroms.sort_unstable_by_key(|c| c.0);
        Ok(chroms.into_iter().map(|(_, name, length)| (name, length)).collect())
    }

    /// The data blocks, as (offset, size), from the R-tree index.
    fn index_blocks(src: &mut Source, h: &Header) -> Result<Vec<(u64, u64)>, FileError> {
        let path = src.path;
        let t = src.read(h.full_index, CIR_TREE_HEADER_LEN, "the index's header")?;
        if le32(&t, 0) != CIR_TREE_MAGIC {
            return Err(damaged(path, format!("no index at byte {} (wrong magic number)", h.full_index)));
        }
        let block_size = le32(&t, 4) as u64;
        let mut blocks = Vec::new();
        let mut visited = HashSet::new();
        let mut budget = src.len;
        let mut stack = vec![(h.full_index + CIR_TREE_HEADER_LEN, 0usize)];
        while let Some((offset, depth)) = stack.pop() {
            if depth > MAX_TREE_DEPTH || !visited.insert(offset) {
                return Err(damaged(
                    path,
                    format!("the index's node at byte {offset} is reached twice or lies {depth} levels deep"),
                ));
            }
            let n = src.read(offset, NODE_HEADER_LEN, "an index node")?;
            let (is_leaf, count) = (n[0], le16(&n, 2) as u64);
            if is_leaf > 1 || count > block_size {
                return Err(damaged(path, format!("the index's node at byte {offset} has leaf flag {is_leaf} (0 or 1) and {count} items (at most {block_size})")));
            }
            let size = NODE_HEADER_LEN + CIR_ITEM_READ_LEN * count;
            budget = budget
                .checked_sub(size)
                .ok_or_else(|| damaged(path, "the index's nodes hold more bytes than the file"))?;
            let items = src.read(offset + NODE_HEADER_LEN, CIR_ITEM_READ_LEN * count, "an index node")?;
            if is_leaf == 1 {
                for item in items.chunks_exact(32) {
                    let (data, size) = (le64(item, 16), le64(item, 24));
                    // Blocks lie between the data count and the index.
                    if size == 0 || data < h.full_data + 4 || data.checked_add(size).is_none_or(|e| e > h.full_index) {
                        return Err(cut(path, format!("the index lists a data block at byte {data} of {size} bytes, outside the data (bytes {}..{})", h.full_data + 4, h.full_index)));
                    }
                    blocks.push((data, size));
                }
            } else {
                let children = items.chunks_exact(24).take(count as usize).map(|item| (le64(item, 16), depth + 1));
                let children: Vec<_> = children.collect();
                stack.extend(children.into_iter().rev());
            }
        }
        // Each block once, none overlapping another: reading them reads the file at most once.
        let mut sorted = blocks.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0].0 + w[0].1 > w[1].0) {
            return Err(damaged(
                path,
                format!("the index lists data blocks that overlap (at bytes {} and {})", w[0].0, w[1].0),
            ));
        }
        Ok(blocks)
    }

    /// Adler-32 (RFC 1950), as a zlib stream's trailer holds it.
    pub(super) fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for chunk in data.chunks(5552) {
            for &x in chunk {
                a += x as u32;
                b += a;
            }
            a %= 65521;
            b %= 65521;
        }
        (b << 16) | a
    }

    /// Decompresses a zlib block into `out` as libdeflate (bigtools' decompressor) does:
    /// the 2-byte header checked, the DEFLATE data within the bytes before the 4-byte trailer,
    /// at most `limit` bytes out, the Adler-32 after the data.
    fn inflate(raw: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), String> {
        if raw.len() < 6 {
            return Err(format!("{} bytes, less than a zlib stream", raw.len()));
        }
        let header = u16::from_be_bytes([raw[0], raw[1]]);
        if !header.is_multiple_of(31) || (header >> 8) & 0xF != 8 || header >> 12 > 7 || (header >> 5) & 1 != 0 {
            return Err(format!("no zlib header (bytes {:02x} {:02x})", raw[0], raw[1]));
        }
        out.clear();
        out.reserve_exact(limit);
        let mut z = flate2::Decompress::new(false);
        let body = &raw[2..raw.len() - 4];
        let status = z
            .decompress_vec(body, out, flate2::FlushDecompress::Finish)
            .map_err(|e| format!("corrupt compressed data ({e})"))?;
        if status != flate2::Status::StreamEnd || out.len() > limit {
            return Err(if out.len() >= limit {
                format!("it decompresses to more than the {limit} bytes the header allows")
            } else {
                "the compressed data ends early".to_string()
            });
        }
        let end = 2 + z.total_in() as usize;
        if be32(raw, end) != adler32(out) {
            return Err("the checksum does not match the data".into());
        }
        Ok(())
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// Checks a data block's section: its header, that its items fit, and that no position
    /// bigtools computes from it overflows.
    fn section(data: &[u8]) -> Result<(), String> {
        if data.len() < SECTION_HEADER_LEN {
            return Err(format!("{} bytes, less than a section header ({SECTION_HEADER_LEN})", data.len()));
        }
        let (start, step, span) = (le32(data, 4) as u64, le32(data, 12) as u64, le32(data, 16) as u64);
        let (kind, count) = (data[20], le16(data, 22) as u64);
        let item_len = match kind {
            1 => 12,
            2 => 8,
            3 => 4,
            _ => {
                return Err(format!("section type {kind}; types are 1 (bedGraph), 2 (variableStep) and 3 (fixedStep)"))
            }
        };
        let items = &data[SECTION_HEADER_LEN..];
        if (items.len() as u64) < item_len * count {
            return Err(format!("{count} items of {item_len} bytes do not fit in its {} bytes", items.len()));
        }
        let max = u32::MAX as u64;
        let overflow = match kind {
            2 => items.chunks_exact(8).take(count as usize).any(|item| le32(item, 0) as u64 + span > max),
            3 => count > 0 && (start + step * count > max || start + step * (count - 1) + span > max),
            _ => false,
        };
        if overflow {
            return Err(format!(
                "its positions (start {start}, step {step}, span {span}, {count} items) run past 2^32"
            ));
        }
        Ok(())
    }

    /// Checks every data block, several at once. This decompresses each block once more
    /// than bigtools does (with miniz, slower than bigtools' libdeflate): for a 62 MB bigWig
    /// of 8 M runs, 0.7 s on 2 threads in the test profile, where bigtools' own read takes
    /// 0.45 s. The price of never handing bigtools a block it would panic on.
    fn data_blocks(path: &Path, h: &Header, blocks: &[(u64, u64)]) -> Result<(), FileError> {
        let largest = blocks.iter().map(|b| b.1).max().unwrap_or(0);
        let buf = h.uncompress_buf as u64;
        // bigtools allocates this much for every block it reads.
        let bound = (largest * DEFLATE_MAX_RATIO + DEFLATE_SLACK).max(GENEROUS_BUFFER);
        if buf > bound {
            return Err(damaged(path, format!("the header's decompression buffer of {buf} bytes is more than any of its blocks (at most {largest} bytes) can need")));
        }
        blocks.par_chunks(64).try_for_each_init(
            || {
                let src = File::open(path).and_then(|file| Ok(Source { path, len: file.metadata()?.len(), file }));
                (src, Vec::new())
            },
            |(src, out), chunk| {
                let src = match src {
                    Ok(src) => src,
                    Err(e) => return Err(FileError::io(path)(std::io::Error::new(e.kind(), e.to_string()))),
                };
                for &(offset, size) in chunk {
                    let raw = src.read(offset, size, "a data block")?;
                    let data = if buf > 0 {
                        let limit = buf.min(size * DEFLATE_MAX_RATIO + DEFLATE_SLACK) as usize;
                        inflate(&raw, limit, out).map_err(|e| {
                            damaged(path, format!("the data block at byte {offset} ({size} bytes): {e}"))
                        })?;
                        &out[..]
                    } else {
                        &raw[..]
                    };
                    section(data)
                        .map_err(|e| damaged(path, format!("the data block at byte {offset} ({size} bytes): {e}")))?;
                }
                Ok(())
            },
        )
    }

    /// Checks the whole layout of the bigWig at `path`; its chromosomes, as (name, length).
    pub(crate) fn check(path: &Path) -> Result<Vec<(String, u64)>, FileError> {
        let mut src = Source::open(path)?;
        let h = header(&mut src)?;
        let chroms = chrom_tree(&mut src, &h)?;
        let blocks = index_blocks(&mut src, &h)?;
        data_blocks(path, &h, &blocks)?;
        Ok(chroms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh directory per test: tests run in parallel in one process.
    fn scratch(name: &str) -> PathBuf {
        crate::io::scratch_dir(&format!("bigwig-{name}"))
    }

    fn run(start: u32, end: u32, value: f32) -> Run {
        Run { start, end, value }
    }

    fn sizes(pairs: &[(&str, u64)]) -> ChromSizes {
        ChromSizes::from_pairs(pairs.iter().map(|&(n, l)| (n.to_string(), l))).expect("sizes")
    }

    /// chr1 and chr2 with data (adjacent runs of different values, gaps of zeros, a run to
    /// the chromosome's end, values that are not short decimals); chrM without.
    fn track() -> Track {
        let mut t = Track::empty(sizes(&[("chr1", 1000), ("chr2", 500), ("chrM", 300)]));
        t.set_runs(0, vec![run(10, 20, 1.5), run(20, 30, 2.0), run(100, 200, 0.1), run(990, 1000, 7.0)]);
        t.set_runs(1, vec![run(0, 500, 1.0 / 3.0)]);
        t
    }

    #[test]
    fn track_round_trip_is_exact() {
        let dir = scratch("round-trip");
        let path = dir.join("t.bw");
        let t = track();
        write_bigwig(&path, &t, 2).expect("write");
        assert!(is_bigwig(&path));
        // Nothing left behind but the file itself.
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 1);

        // With the genome's sizes: the same track, chrM (all zeros) included.
        assert_eq!(read_bigwig(&path, Some(t.sizes())).expect("read with sizes"), t);

        // Without: the file's own chromosomes, those with data (chrM is left out, as
        // bedGraphToBigWig does), with their lengths and runs.
        let back = read_bigwig(&path, None).expect("read");
        assert_eq!(back.sizes(), &sizes(&[("chr1", 1000), ("chr2", 500)]));
        assert_eq!((back.runs(0), back.runs(1)), (t.runs(0), t.runs(1)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_all_zero_track_reads_back_as_zeros() {
        let dir = scratch("zeros");
        let path = dir.join("zeros.bw");
        let t = Track::empty(sizes(&[("chr1", 1000), ("chr2", 500)]));
        write_bigwig(&path, &t, 1).expect("write");
        assert_eq!(read_bigwig(&path, Some(t.sizes())).expect("read"), t);
        // Without sizes: every chromosome, no runs.
        let back = read_bigwig(&path, None).expect("read");
        assert_eq!(back, t);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sizes_that_disagree_with_the_file_are_named() {
        let dir = scratch("sizes");
        let path = dir.join("t.bw");
        write_bigwig(&path, &track(), 1).expect("write");

        let other = sizes(&[("chr1", 1000), ("chr2", 600), ("chrM", 300)]);
        let msg = read_bigwig(&path, Some(&other)).expect_err("lengths differ").to_string();
        assert_eq!(
            msg,
            format!(
                "{}: chr2 is 500 bp in the bigWig but 600 bp in the genome sizes: the tracks come from another assembly",
                path.display()
            )
        );

        let bare = sizes(&[("1", 1000), ("2", 500), ("M", 300)]);
        let msg = read_bigwig(&path, Some(&bare)).expect_err("names differ").to_string();
        assert!(msg.starts_with(&format!("{}: the bigWig names ", path.display())), "{msg}");
        assert!(msg.contains("they differ only by a 'chr' prefix"), "{msg}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stream_writes_the_same_file_as_a_track() {
        let dir = scratch("stream");
        let path = dir.join("s.bw");
        let t = track();
        let s = BigWigStream::create(&path, t.sizes()).expect("create");
        s.chrom("chr1").expect("chr1");
        // Runs arrive in pieces; an empty piece is allowed.
        s.runs(t.runs(0)[..1].to_vec()).expect("runs");
        s.runs(vec![]).expect("no runs");
        s.runs(t.runs(0)[1..].to_vec()).expect("runs");
        s.chrom("chr2").expect("chr2");
        s.runs(t.runs(1).to_vec()).expect("runs");
        // Not there until finished.
        assert!(!path.exists());
        s.finish().expect("finish");
        assert_eq!(read_bigwig(&path, Some(t.sizes())).expect("read"), t);
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 1);

        // Nothing sent: an all-zero track.
        let zeros = dir.join("zeros.bw");
        BigWigStream::create(&zeros, t.sizes()).expect("create").finish().expect("finish");
        assert_eq!(read_bigwig(&zeros, Some(t.sizes())).expect("read"), Track::empty(t.sizes().clone()));

        // Dropped without finish: no file, and no temporary left behind.
        let dropped = dir.join("dropped.bw");
        let s = BigWigStream::create(&dropped, t.sizes()).expect("create");
        s.chrom("chr1").expect("chr1");
        s.runs(t.runs(0).to_vec()).expect("runs");
        drop(s);
        assert!(!dropped.exists());
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 2);

        // Dropped before any value (an error before the first batch, as when a model's first
        // output is not finite): this hung for good, bigtools closing a file over no data. The
        // drop runs on a thread so that a hang fails the test instead of stalling it.
        for chroms in [&[][..], &["chr1"][..], &["chr1", "chr2"][..]] {
            let empty = dir.join("empty.bw");
            let s = BigWigStream::create(&empty, t.sizes()).expect("create");
            for c in chroms {
                s.chrom(c).expect("chrom");
            }
            let (done, wait) = crossbeam_channel::bounded(1);
            std::thread::spawn(move || {
                drop(s);
                let _ = done.send(());
            });
            assert!(
                wait.recv_timeout(std::time::Duration::from_secs(60)).is_ok(),
                "dropping a stream after chromosomes {chroms:?} and no value did not return"
            );
            assert!(!empty.exists());
            assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 2, "a temporary was left behind");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn is_bigwig_reads_the_magic_number() {
        let dir = scratch("magic");
        let bw = dir.join("t.bw");
        write_bigwig(&bw, &track(), 1).expect("write");
        assert!(is_bigwig(&bw));
        let text = dir.join("t.bedGraph");
        std::fs::write(&text, "chr1\t10\t20\t1.5\n").expect("write");
        assert!(!is_bigwig(&text));
        // Shorter than the magic number, or absent.
        let short = dir.join("short.bw");
        std::fs::write(&short, [0x26, 0xFC, 0x8F]).expect("write");
        assert!(!is_bigwig(&short));
        assert!(!is_bigwig(&dir.join("absent.bw")));
        // The magic number byte-swapped (a big-endian file) is not taken.
        std::fs::write(&short, BIGWIG_MAGIC.to_be_bytes()).expect("write");
        assert!(!is_bigwig(&short));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_that_is_not_a_bigwig_is_an_error_naming_it() {
        let dir = scratch("not-bigwig");
        let text = dir.join("t.bedGraph");
        std::fs::write(&text, "chr1\t10\t20\t1.5\n").expect("write");
        let msg = read_bigwig(&text, None).expect_err("text").to_string();
        assert_eq!(msg, format!("{}: not a bigWig file (wrong magic number)", text.display()));
        let absent = dir.join("absent.bw");
        let msg = read_bigwig(&absent, None).expect_err("absent").to_string();
        assert!(msg.starts_with(&format!("{}: ", absent.display())), "{msg}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Truncated anywhere before its closing magic number, a bigWig is an error naming the
    /// file, not a panic. (tests/readers_robust.rs changes every byte in turn.)
    #[test]
    fn a_truncated_bigwig_is_an_error_naming_it() {
        let dir = scratch("truncated");
        let path = dir.join("t.bw");
        write_bigwig(&path, &track(), 1).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        let n = bytes.len();
        let cut = dir.join("cut.bw");
        // Within the magic number; the header; the chromosome tree; the data; the index.
        for len in [2, 4, 64, n / 2, n * 3 / 4, n - 40, n - 8] {
            std::fs::write(&cut, &bytes[..len]).expect("write");
            let msg = read_bigwig(&cut, None).expect_err(&format!("{len} of {n} bytes")).to_string();
            assert!(msg.starts_with(&format!("{}: ", cut.display())), "{len} of {n} bytes: {msg}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn le64_at(b: &[u8], at: usize) -> usize {
        u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes")) as usize
    }

    /// The damage that made bigtools 0.5.8 panic or abort, each named instead: the
    /// chromosome tree's value size (`assert_eq!`) and item count (an allocation of 137 GB),
    /// an index node's leaf flag ("Unexpected isleaf"), a block's size (an allocation of
    /// 1 TB), the decompression buffer, and a compressed block (`unwrap()` on `BadData`).
    #[test]
    fn each_known_damage_is_named() {
        let dir = scratch("damage");
        let path = dir.join("t.bw");
        write_bigwig(&path, &track(), 1).expect("write");
        let good = std::fs::read(&path).expect("read");
        let (chrom_tree, full_index) = (le64_at(&good, 8), le64_at(&good, 24));
        let root = full_index + 48;
        assert_eq!(good[root], 1, "the test expects a one-node index");
        let first_block = le64_at(&good, root + 4 + 16);
        let cases: [(usize, &[u8], &str); 6] = [
            (chrom_tree + 12, &9u32.to_le_bytes(), "the chromosome tree's value size is 9"),
            (chrom_tree + 16, &(1u64 << 37).to_le_bytes(), "the chromosome tree claims 137438953472 chromosomes"),
            (root, &[2], "has leaf flag 2"),
            (root + 4 + 24, &(1u64 << 40).to_le_bytes(), "the index lists a data block at byte"),
            (52, &0x7FFF_FFFFu32.to_le_bytes(), "the header's decompression buffer of 2147483647 bytes"),
            (first_block + 10, &[good[first_block + 10] ^ 0xFF], &format!("the data block at byte {first_block}")),
        ];
        let bad = dir.join("bad.bw");
        for (at, bytes, want) in cases {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            std::fs::write(&bad, &b).expect("write");
            for sizes in [None, Some(track().sizes().clone())] {
                let msg = read_bigwig(&bad, sizes.as_ref()).expect_err(want).to_string();
                assert!(msg.starts_with(&format!("{}: damaged", bad.display())), "{want}: {msg}");
                assert!(msg.contains(want), "{want}: {msg}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn adler32_matches_the_rfc_example() {
        assert_eq!(layout::adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(layout::adler32(&[]), 1);
        // Past the 5552-byte stretch between reductions.
        let long = vec![0xFFu8; 100_000];
        let (mut a, mut b) = (1u64, 0u64);
        for &x in &long {
            a = (a + x as u64) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(layout::adler32(&long), ((b << 16) | a) as u32);
    }
}
