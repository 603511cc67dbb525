//! Track shards: one memory-mapped file per track.
//!
//! Layout (little-endian):
//!
//! ```text
//! 0      8 bytes  magic "CHROMAXT"
//! 8      u32      format version (1)
//! 12     u32      reserved (0)
//! 16     u64      length of the JSON index in bytes
//! 24     JSON index: {"dtype", "chroms": [{"name", "length", "offset"}], "source", ...}
//! ...    one array per chromosome of `length` values of `dtype`, each starting at a
//!        4 KiB-aligned `offset`
//! ```
//!
//! Slices are zero-copy views into the mapping; positions past a chromosome's end read as 0.
//!
//! A signal shard's index also records, per chromosome, what one pass over its values found
//! as they were written (`occupied`: which blocks of [`OCCUPANCY_BLOCK`] values hold a
//! non-zero value; `first_invalid`: the first negative or non-finite value). The cache's own
//! shards stand on that record ([`TrackShard::adopt_recorded_scan`]) instead of reading a
//! whole genome's values at every open; a shard handed in is read through.

use crate::error::FileError;
use crate::io::atomic::AtomicFile;
use crate::io::ChromSizes;
use crate::track::Track;
use half::f16;
use memmap2::{Mmap, MmapMut};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

pub const SHARD_MAGIC: &[u8; 8] = b"CHROMAXT";
pub const SHARD_VERSION: u32 = 1;
/// File extension of track shards.
pub const SHARD_EXTENSION: &str = "cxtrack";
const ALIGN: u64 = 4096;
const FIXED_HEADER: usize = 24;

/// The value type of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// 0/1 masks (any non-zero value is stored as 1).
    U8,
    /// Integer coverage, rounded, saturating at 0 and 65,535.
    U16,
    F16,
    F32,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::U16 | Dtype::F16 => 2,
            Dtype::F32 => 4,
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "u8" => Ok(Dtype::U8),
            "u16" => Ok(Dtype::U16),
            "f16" => Ok(Dtype::F16),
            "f32" => Ok(Dtype::F32),
            _ => Err(format!("dtype '{s}': expected u8, u16, f16 or f32")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::U8 => "u8",
            Dtype::U16 => "u16",
            Dtype::F16 => "f16",
            Dtype::F32 => "f32",
        }
    }
}

/// Where a shard's data came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSource {
    pub path: String,
    /// SHA-256 of the source file's bytes (hex), if it was hashed.
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

/// One chromosome's entry of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardChrom {
    pub name: String,
    pub length: u64,
    pub offset: u64,
    /// Signal shards: which blocks of [`OCCUPANCY_BLOCK`] values hold a non-zero value,
    /// recorded as the shard was written (so that opening it need not read every value):
    /// the bitmap's u64 words as 16 hex digits each, block k in bit k % 64 of word k / 64.
    /// Absent in shards of base codes and in shards written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupied: Option<String>,
    /// With `occupied`: the first position whose value is negative or not finite, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_invalid: Option<u64>,
}

/// The JSON index of a shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardIndex {
    pub version: u32,
    pub dtype: Dtype,
    /// "signal" (coverage, masks) or "bases" (A, C, G, T, N as 0..4).
    #[serde(default = "default_content")]
    pub content: String,
    pub chroms: Vec<ShardChrom>,
    pub source: Option<ShardSource>,
    /// Bases whose value did not fit the dtype (clamped) or was rounded to it.
    pub saturated: u64,
    pub rounded: u64,
    pub created_by: String,
}

/// Counts of what a conversion could not store exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardStats {
    pub saturated: u64,
    pub rounded: u64,
    pub bytes: u64,
}

/// Writes `track` as a shard of `dtype`, atomically; chromosomes are filled in parallel.
pub fn write_shard(
    path: impl AsRef<Path>,
    track: &Track,
    dtype: Dtype,
    source: Option<ShardSource>,
) -> Result<ShardStats, FileError> {
    write_shard_with(path.as_ref(), track.sizes(), dtype, CONTENT_SIGNAL, source, |id, bytes| {
        fill_chrom(track, id, dtype, bytes)
    })
}

/// What a shard holds, in its index: a signal track or base codes.
pub const CONTENT_SIGNAL: &str = "signal";
pub const CONTENT_BASES: &str = "bases";

fn default_content() -> String {
    CONTENT_SIGNAL.to_string()
}

/// Writes a shard over `sizes` whose chromosome arrays `fill` writes (each zero-filled
/// first, filled in parallel), atomically.
pub fn write_shard_with(
    path: &Path,
    sizes: &ChromSizes,
    dtype: Dtype,
    content: &str,
    source: Option<ShardSource>,
    fill: impl Fn(usize, &mut [u8]) -> ShardStats + Sync,
) -> Result<ShardStats, FileError> {
    // Lay out with a placeholder index whose numbers are all u64::MAX, then write the real
    // one (never longer) into the space it reserved.
    let layout = |index: &ShardIndex| -> Result<(Vec<u8>, Vec<u64>, u64), FileError> {
        let mut json = serde_json::to_vec(index).map_err(|e| FileError::content(path, e.to_string()))?;
        json.resize(json.len() + 64, b' ');
        let mut offset = align((FIXED_HEADER + json.len()) as u64);
        let mut offsets = Vec::with_capacity(sizes.len());
        for (_, len) in sizes.iter() {
            offsets.push(offset);
            offset = align(offset + len * dtype.size() as u64);
        }
        Ok((json, offsets, offset))
    };
    let mut index = ShardIndex {
        version: SHARD_VERSION,
        dtype,
        content: content.to_string(),
        // Placeholders as wide as any real value, so the final index is never longer.
        chroms: sizes
            .iter()
            .map(|(n, l)| {
                let words = occupancy_words(l as usize);
                let signal = content == CONTENT_SIGNAL;
                ShardChrom {
                    name: n.to_string(),
                    length: l,
                    offset: u64::MAX,
                    occupied: signal.then(|| "f".repeat(16 * words)),
                    first_invalid: signal.then_some(u64::MAX),
                }
            })
            .collect(),
        source,
        saturated: u64::MAX,
        rounded: u64::MAX,
        created_by: format!("chromax {}", env!("CARGO_PKG_VERSION")),
    };
    let (json, offsets, total) = layout(&index)?;
    for (c, &o) in index.chroms.iter_mut().zip(&offsets) {
        c.offset = o;
    }
    let reserved_json = json.len();

    let file = AtomicFile::new(path)?;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(file.path())
        .map_err(FileError::io(path))?;
    reserve(&f, total)
        .map_err(|e| FileError::content(path, format!("cannot reserve {total} bytes for the shard: {e}")))?;
    // SAFETY: the file was just created by this process under a private temporary name; no
    // one else maps or truncates it while the mapping lives.
    let mut map = unsafe { MmapMut::map_mut(&f) }.map_err(FileError::io(path))?;

    // Split the mapping into one mutable slice per chromosome and fill them in parallel.
    let mut pieces: Vec<(usize, &mut [u8])> = Vec::with_capacity(sizes.len());
    let mut rest: &mut [u8] = &mut map[..];
    let mut consumed = 0u64;
    for (id, &offset) in offsets.iter().enumerate() {
        let skip = (offset - consumed) as usize;
        let (_, tail) = rest.split_at_mut(skip);
        let bytes = sizes.length(id) as usize * dtype.size();
        let (piece, tail) = tail.split_at_mut(bytes);
        pieces.push((id, piece));
        rest = tail;
        consumed = offset + bytes as u64;
    }
    // A signal shard records, in the same parallel pass, which blocks hold a non-zero value
    // and the first invalid value: what opening it as coverage would otherwise read it all for.
    let signal = content == CONTENT_SIGNAL;
    type Scanned = Option<(Vec<u64>, Option<u64>)>;
    let filled: Vec<(ShardStats, Scanned)> = pieces
        .into_par_iter()
        .map(|(id, piece)| {
            let stats = fill(id, piece);
            (stats, signal.then(|| scan_values(values_of(dtype, piece))))
        })
        .collect();
    let mut stats = Vec::with_capacity(filled.len());
    for ((s, scanned), c) in filled.into_iter().zip(index.chroms.iter_mut()) {
        stats.push(s);
        if let Some((bits, first_invalid)) = scanned {
            c.occupied = Some(bits.iter().map(|w| format!("{w:016x}")).collect());
            c.first_invalid = first_invalid;
        }
    }
    let saturated = stats.iter().map(|s| s.saturated).sum();
    let rounded = stats.iter().map(|s| s.rounded).sum();
    index.saturated = saturated;
    index.rounded = rounded;

    let mut json = serde_json::to_vec(&index).map_err(|e| FileError::content(path, e.to_string()))?;
    if json.len() > reserved_json {
        return Err(FileError::content(path, "internal: the shard index grew past its reserved space"));
    }
    json.resize(reserved_json, b' ');
    map[..8].copy_from_slice(SHARD_MAGIC);
    map[8..12].copy_from_slice(&SHARD_VERSION.to_le_bytes());
    map[12..16].copy_from_slice(&0u32.to_le_bytes());
    map[16..24].copy_from_slice(&(json.len() as u64).to_le_bytes());
    map[FIXED_HEADER..FIXED_HEADER + json.len()].copy_from_slice(&json);
    map.flush().map_err(FileError::io(path))?;
    drop(map);
    drop(f);
    file.commit()?;
    Ok(ShardStats { saturated, rounded, bytes: total })
}

/// The u64 words of an occupancy bitmap over `len` values.
fn occupancy_words(len: usize) -> usize {
    len.div_ceil(OCCUPANCY_BLOCK).div_ceil(64)
}

fn values_of(dtype: Dtype, bytes: &[u8]) -> ShardValues<'_> {
    match dtype {
        Dtype::U8 => ShardValues::U8(bytes),
        Dtype::U16 => ShardValues::U16(bytemuck::cast_slice(bytes)),
        Dtype::F16 => ShardValues::F16(bytemuck::cast_slice(bytes)),
        Dtype::F32 => ShardValues::F32(bytemuck::cast_slice(bytes)),
    }
}

/// One pass over a chromosome's values, on every thread: which blocks of
/// [`OCCUPANCY_BLOCK`] values hold a non-zero value (a bit per block), and the first value
/// that is negative or not finite (−0 is accepted). Blocks are folded without branches
/// (vectorised); the first bad value's place is looked for only in the first bad block.
pub fn scan_values(values: ShardValues<'_>) -> (Vec<u64>, Option<u64>) {
    fn blocks<T: Sync>(v: &[T], flags: impl Fn(&[T]) -> (u32, u32) + Send + Sync) -> Vec<(bool, bool)> {
        v.par_chunks(OCCUPANCY_BLOCK).map(flags).map(|(bad, nonzero)| (bad != 0, nonzero != 0)).collect()
    }
    let flags = match values {
        ShardValues::U8(v) => blocks(v, |b| (0, b.iter().fold(0u32, |acc, &x| acc | u32::from(x)))),
        ShardValues::U16(v) => blocks(v, |b| (0, b.iter().fold(0u32, |acc, &x| acc | u32::from(x)))),
        ShardValues::F16(v) => blocks(v, |b| {
            b.iter().fold((0u32, 0u32), |(bad, nonzero), x| {
                let bits = u16::from_le(x.to_bits());
                (bad | u32::from(bits & 0x7FFF >= 0x7C00) | u32::from(bits > 0x8000), nonzero | u32::from(bits << 1))
            })
        }),
        ShardValues::F32(v) => blocks(v, |b| {
            b.iter().fold((0u32, 0u32), |(bad, nonzero), x| {
                let bits = u32::from_le(x.to_bits());
                (
                    bad | u32::from(bits & 0x7FFF_FFFF >= 0x7F80_0000) | u32::from(bits > 0x8000_0000),
                    nonzero | (bits << 1),
                )
            })
        }),
    };
    let mut bits = vec![0u64; flags.len().div_ceil(64)];
    for (k, _) in flags.iter().enumerate().filter(|f| f.1 .1) {
        bits[k / 64] |= 1 << (k % 64);
    }
    let first_invalid = flags.iter().position(|f| f.0).and_then(|k| {
        let lo = k * OCCUPANCY_BLOCK;
        let valid = |x: f32| x.is_finite() && x >= 0.0;
        let at = match values {
            ShardValues::U8(_) | ShardValues::U16(_) => None,
            ShardValues::F16(v) => {
                v[lo..].iter().position(|x| !valid(f16::from_bits(u16::from_le(x.to_bits())).to_f32()))
            }
            ShardValues::F32(v) => v[lo..].iter().position(|x| !valid(f32::from_bits(u32::from_le(x.to_bits())))),
        };
        at.map(|i| (lo + i) as u64)
    });
    (bits, first_invalid)
}

/// Reads an occupancy bitmap recorded in a shard's index (`None`: malformed).
fn parse_occupancy(hex: &str, len: u64) -> Option<Vec<u64>> {
    let words = occupancy_words(len as usize);
    if hex.len() != 16 * words || !hex.is_ascii() {
        return None;
    }
    (0..words).map(|w| u64::from_str_radix(&hex[16 * w..16 * w + 16], 16).ok()).collect()
}

fn align(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

/// Sizes `f` to `len` bytes with the disk space allocated (posix_fallocate), so that writing
/// through a memory map cannot meet a full disk (which would kill the process with SIGBUS):
/// the error comes here instead, as an I/O error naming the cause.
pub(crate) fn reserve(f: &File, len: u64) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(|_| std::io::Error::from(std::io::ErrorKind::FileTooLarge))?;
    // SAFETY: a plain system call on an open file descriptor this process owns.
    match unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// Writes chromosome `id`'s runs into its (zero-filled) bytes.
fn fill_chrom(track: &Track, id: usize, dtype: Dtype, bytes: &mut [u8]) -> ShardStats {
    let mut stats = ShardStats::default();
    for r in track.runs(id) {
        let (s, e) = (r.start as usize, r.end as usize);
        let n = (e - s) as u64;
        match dtype {
            Dtype::U8 => bytes[s..e].fill(u8::from(r.value != 0.0)),
            Dtype::U16 => {
                let v = r.value.round();
                if v < 0.0 || v > u16::MAX as f32 {
                    stats.saturated += n;
                } else if v != r.value {
                    stats.rounded += n;
                }
                let q = v.clamp(0.0, u16::MAX as f32) as u16;
                let arr: &mut [u16] = bytemuck::cast_slice_mut(bytes);
                arr[s..e].fill(q.to_le());
            }
            Dtype::F16 => {
                let h = f16::from_f32(r.value);
                if h.is_infinite() {
                    stats.saturated += n;
                } else if h.to_f32() != r.value {
                    stats.rounded += n;
                }
                let arr: &mut [u16] = bytemuck::cast_slice_mut(bytes);
                arr[s..e].fill(h.to_bits().to_le());
            }
            Dtype::F32 => {
                let arr: &mut [u32] = bytemuck::cast_slice_mut(bytes);
                arr[s..e].fill(r.value.to_bits().to_le());
            }
        }
    }
    stats
}

/// A memory-mapped track shard.
pub struct TrackShard {
    path: PathBuf,
    map: Mmap,
    index: ShardIndex,
    sizes: ChromSizes,
    /// Per chromosome, which blocks of [`OCCUPANCY_BLOCK`] values hold a non-zero value
    /// (bit per block), where a pass over the values has recorded it.
    occupancy: Vec<std::sync::OnceLock<Vec<u64>>>,
    /// Whether the index's record of its values (written with them) stands for a scan.
    adopted: bool,
}

/// Values per bit of [`TrackShard::occupancy`].
pub const OCCUPANCY_BLOCK: usize = 4096;

/// The values of a slice, borrowed from the mapping.
#[derive(Debug, Clone, Copy)]
pub enum ShardValues<'a> {
    U8(&'a [u8]),
    U16(&'a [u16]),
    F16(&'a [f16]),
    F32(&'a [f32]),
}

/// `left_zeros` zeros, then `values` (zero-copy), then `right_zeros` zeros: the positions of
/// a requested range that fall before 0 or past the chromosome's end read as 0.
#[derive(Debug, Clone, Copy)]
pub struct ShardSlice<'a> {
    pub left_zeros: usize,
    pub values: ShardValues<'a>,
    pub right_zeros: usize,
}

impl ShardSlice<'_> {
    pub fn len(&self) -> usize {
        self.left_zeros + self.values.len() + self.right_zeros
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the slice into `out` (same length) as f32.
    pub fn to_f32(&self, out: &mut [f32]) {
        let (left, rest) = out.split_at_mut(self.left_zeros);
        left.fill(0.0);
        let (mid, right) = rest.split_at_mut(self.values.len());
        right.fill(0.0);
        match self.values {
            ShardValues::U8(v) => mid.iter_mut().zip(v).for_each(|(o, &x)| *o = x as f32),
            ShardValues::U16(v) => mid.iter_mut().zip(v).for_each(|(o, &x)| *o = u16::from_le(x) as f32),
            ShardValues::F16(v) => {
                mid.iter_mut().zip(v).for_each(|(o, &x)| *o = f16::from_bits(u16::from_le(x.to_bits())).to_f32())
            }
            ShardValues::F32(v) => {
                mid.iter_mut().zip(v).for_each(|(o, &x)| *o = f32::from_bits(u32::from_le(x.to_bits())))
            }
        }
    }
}

impl ShardValues<'_> {
    pub fn len(&self) -> usize {
        match self {
            ShardValues::U8(v) => v.len(),
            ShardValues::U16(v) => v.len(),
            ShardValues::F16(v) => v.len(),
            ShardValues::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TrackShard {
    /// Maps a shard and checks its header and index against the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FileError> {
        let path = path.as_ref();
        if cfg!(target_endian = "big") {
            return Err(FileError::content(path, "track shards are little-endian and this machine is big-endian"));
        }
        let f = File::open(path).map_err(FileError::io(path))?;
        // SAFETY: shards are written once under a temporary name and renamed into place, never
        // modified afterwards; a file truncated by someone else while mapped is outside what
        // chromax can guard against (as for any memory-mapped reader).
        let map = unsafe { Mmap::map(&f) }.map_err(FileError::io(path))?;
        let bad = |what: String| FileError::content(path, what);
        if map.len() < FIXED_HEADER || &map[..8] != SHARD_MAGIC {
            return Err(bad(format!(
                "not a chromax track shard (no '{}' magic)",
                String::from_utf8_lossy(SHARD_MAGIC)
            )));
        }
        let version = u32::from_le_bytes([map[8], map[9], map[10], map[11]]);
        if version != SHARD_VERSION {
            return Err(bad(format!("shard format version {version}; this chromax reads version {SHARD_VERSION}: rebuild it with `chromax store build`")));
        }
        let json_len = u64::from_le_bytes(map[16..24].try_into().unwrap_or([0; 8])) as usize;
        let json = map
            .get(FIXED_HEADER..FIXED_HEADER.saturating_add(json_len))
            .ok_or_else(|| bad("the index runs past the end of the file: truncated".into()))?;
        let index: ShardIndex = serde_json::from_slice(json).map_err(|e| bad(format!("unreadable index: {e}")))?;
        // The index must describe exactly the file's layout (each array aligned right after
        // the one before, the last ending the file): an altered dtype, length or offset, or a
        // truncated file, is damage to refuse, never data to read.
        let mut expected = align((FIXED_HEADER + json_len) as u64);
        for c in &index.chroms {
            let bytes = c.length.checked_mul(index.dtype.size() as u64);
            let end = bytes.and_then(|b| c.offset.checked_add(b));
            if c.offset != expected || end.is_none_or(|e| e > map.len() as u64) {
                return Err(bad(format!(
                    "chromosome '{}' of the index does not match the file's layout: damaged or truncated (rebuild it)",
                    c.name
                )));
            }
            expected = align(end.unwrap_or(u64::MAX));
        }
        if expected != map.len() as u64 {
            return Err(bad(format!(
                "the index describes {expected} bytes but the file holds {}: damaged or truncated (rebuild it)",
                map.len()
            )));
        }
        let sizes = ChromSizes::from_pairs(index.chroms.iter().map(|c| (c.name.clone(), c.length))).map_err(bad)?;
        let occupancy = (0..sizes.len()).map(|_| std::sync::OnceLock::new()).collect();
        Ok(TrackShard { path: path.to_path_buf(), map, index, sizes, occupancy, adopted: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The SHA-256 of the content the shard holds: of the file it was converted from
    /// (recorded in its index when it was built), else of the shard file itself.
    pub fn source_sha256(&self) -> Result<String, FileError> {
        match self.index.source.as_ref().and_then(|s| s.sha256.clone()) {
            Some(sha) => Ok(sha),
            None => super::build::file_sha256(self.path()).map(|(sha, _)| sha),
        }
    }

    pub fn index(&self) -> &ShardIndex {
        &self.index
    }
    pub fn dtype(&self) -> Dtype {
        self.index.dtype
    }
    pub fn sizes(&self) -> &ChromSizes {
        &self.sizes
    }

    /// The whole of chromosome `id`, zero-copy.
    /// Records which blocks of chromosome `id` hold a non-zero value (a bit per
    /// [`OCCUPANCY_BLOCK`] values, from a pass that read them all); the first record stays.
    pub fn set_occupancy(&self, id: usize, bits: Vec<u64>) {
        if let Some(slot) = self.occupancy.get(id) {
            let _ = slot.set(bits);
        }
    }

    /// Takes the record the writer left in the index (which blocks hold a non-zero value, the
    /// first invalid value) in place of a pass over the values: for shards chromax wrote
    /// itself and keeps (its cache), where the values cannot have changed since. A shard
    /// someone hands in is read through instead. False (nothing taken) where a chromosome
    /// has no record; an error where a record is malformed.
    pub fn adopt_recorded_scan(&mut self) -> Result<bool, FileError> {
        let mut bits = Vec::with_capacity(self.index.chroms.len());
        for c in &self.index.chroms {
            let Some(hex) = &c.occupied else { return Ok(false) };
            let damaged = |what: &str| {
                FileError::content(
                    &self.path,
                    format!("chromosome '{}': its {what} is malformed: damaged (rebuild it)", c.name),
                )
            };
            bits.push(parse_occupancy(hex, c.length).ok_or_else(|| damaged("record of non-zero blocks"))?);
            if c.first_invalid.is_some_and(|p| p >= c.length) {
                return Err(damaged("recorded first invalid value"));
            }
        }
        for (slot, b) in self.occupancy.iter().zip(bits) {
            let _ = slot.set(b);
        }
        self.adopted = true;
        Ok(true)
    }

    /// The first invalid value of chromosome `id` as the writer recorded it, where the
    /// record was adopted ([`TrackShard::adopt_recorded_scan`]): `Some(None)` when every
    /// value is finite and non-negative.
    pub fn recorded_first_invalid(&self, id: usize) -> Option<Option<u64>> {
        self.adopted.then(|| self.index.chroms.get(id).and_then(|c| c.first_invalid))
    }

    /// Which blocks of chromosome `id` hold a non-zero value, if recorded.
    pub fn occupancy(&self, id: usize) -> Option<&[u64]> {
        self.occupancy.get(id).and_then(|o| o.get()).map(Vec::as_slice)
    }

    pub fn chrom_values(&self, id: usize) -> ShardValues<'_> {
        let c = &self.index.chroms[id];
        let bytes = &self.map[c.offset as usize..(c.offset + c.length * self.dtype().size() as u64) as usize];
        values_of(self.dtype(), bytes)
    }

    /// `chrom`'s values over `start..end`, which may reach before 0 or past the end (zeros).
    pub fn slice(&self, chrom: &str, start: i64, end: i64) -> Result<ShardSlice<'_>, FileError> {
        let id = self.sizes.id(chrom).ok_or_else(|| {
            FileError::content(
                &self.path,
                format!(
                    "no chromosome '{chrom}' (the shard has {})",
                    self.sizes.names().iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        if end < start {
            return Err(FileError::Argument(format!("{chrom}:{start}-{end}: end before start")));
        }
        let len = self.sizes.length(id) as i64;
        let n = end - start;
        let in_lo = start.clamp(0, len);
        let in_hi = end.min(len).max(in_lo);
        let left_zeros = (in_lo - start).clamp(0, n) as usize;
        let (lo, hi) = (in_lo as usize, in_hi as usize);
        let right_zeros = n as usize - left_zeros - (hi - lo);
        let values = match self.chrom_values(id) {
            ShardValues::U8(v) => ShardValues::U8(&v[lo..hi]),
            ShardValues::U16(v) => ShardValues::U16(&v[lo..hi]),
            ShardValues::F16(v) => ShardValues::F16(&v[lo..hi]),
            ShardValues::F32(v) => ShardValues::F32(&v[lo..hi]),
        };
        Ok(ShardSlice { left_zeros, values, right_zeros })
    }

    /// The shard as a run-length track (for peak calling and exports).
    pub fn to_track(&self) -> Track {
        let mut track = Track::empty(self.sizes.clone());
        let runs: Vec<_> = (0..self.sizes.len())
            .into_par_iter()
            .map(|id| {
                let len = self.sizes.length(id) as usize;
                let mut values = vec![0.0f32; len];
                let slice = ShardSlice { left_zeros: 0, values: self.chrom_values(id), right_zeros: 0 };
                slice.to_f32(&mut values);
                crate::track::runs_from_dense(&values, 0)
            })
            .collect();
        for (id, r) in runs.into_iter().enumerate() {
            track.set_runs(id, r);
        }
        track
    }
}
