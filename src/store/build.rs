//! Building shards from track files, and the content-keyed cache.

use super::shard::{write_shard, Dtype, ShardSource, ShardStats, TrackShard, SHARD_EXTENSION, SHARD_VERSION};
use crate::error::FileError;
use crate::io::bed::read_intervals;
use crate::io::bedgraph::read_bedgraph;
use crate::io::bigwig::{is_bigwig, read_bigwig};
use crate::io::sizes::name_mismatch;
use crate::io::ChromSizes;
use crate::track::{Run, Track};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Environment variable that overrides the track cache directory.
pub const CACHE_DIR_ENV: &str = "CHROMAX_TRACK_CACHE";

/// The kind of a track file, from its content (bigWig magic) or extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    BigWig,
    BedGraph,
    /// BED or narrowPeak intervals: a 0/1 mask.
    Intervals,
    Shard,
}

impl SourceFormat {
    pub fn detect(path: &Path) -> Result<Self, FileError> {
        if is_bigwig(path) {
            return Ok(SourceFormat::BigWig);
        }
        let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let ext = name.rsplit('.').next().unwrap_or("");
        match ext {
            "bw" | "bigwig" => Err(FileError::content(path, "has a bigWig extension but is not a bigWig file")),
            "bedgraph" | "bdg" | "bg" => Ok(SourceFormat::BedGraph),
            "bed" | "narrowpeak" | "broadpeak" => Ok(SourceFormat::Intervals),
            e if e == SHARD_EXTENSION => Ok(SourceFormat::Shard),
            _ => Err(FileError::content(
                path,
                format!("unknown track format: expected .bw/.bigWig, .bedGraph/.bdg, .bed/.narrowPeak (optionally .gz) or .{SHARD_EXTENSION}"),
            )),
        }
    }

    /// The dtype a shard of this source gets unless the user asks for another.
    pub fn default_dtype(self) -> Dtype {
        match self {
            SourceFormat::Intervals => Dtype::U8,
            _ => Dtype::F32,
        }
    }
}

/// Reads any supported track file into memory. Intervals become a 0/1 mask (overlaps merged);
/// they need `sizes` (BED files carry no chromosome lengths).
pub fn read_track(path: &Path, sizes: Option<&ChromSizes>) -> Result<Track, FileError> {
    match SourceFormat::detect(path)? {
        SourceFormat::BigWig => read_bigwig(path, sizes),
        SourceFormat::BedGraph => read_bedgraph(path, sizes),
        SourceFormat::Shard => {
            let shard = TrackShard::open(path)?;
            if let Some(s) = sizes {
                check_same_names(path, shard.sizes(), s)?;
            }
            Ok(shard.to_track())
        }
        SourceFormat::Intervals => {
            let sizes = sizes.ok_or_else(|| {
                FileError::Argument(format!(
                    "{}: a BED/narrowPeak mask needs --genome (chromosome sizes)",
                    path.display()
                ))
            })?;
            mask_from_intervals(path, sizes)
        }
    }
}

fn check_same_names(path: &Path, have: &ChromSizes, want: &ChromSizes) -> Result<(), FileError> {
    let missing: Vec<String> = want.names().iter().filter(|n| have.id(n).is_none()).cloned().collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(FileError::Mismatch(name_mismatch(
            &path.display().to_string(),
            have.names(),
            &missing,
            "the shard",
            "the genome sizes",
        )))
    }
}

/// A 0/1 track of the bases covered by the intervals of a BED/narrowPeak file. Every
/// interval must lie on a chromosome of `sizes` and end within it.
pub fn mask_from_intervals(path: &Path, sizes: &ChromSizes) -> Result<Track, FileError> {
    let intervals = read_intervals(path)?;
    let mut per_chrom: Vec<Vec<(u64, u64)>> = vec![Vec::new(); sizes.len()];
    let mut unknown: Vec<String> = Vec::new();
    for iv in &intervals {
        match sizes.id(&iv.chrom) {
            Some(id) if iv.end > sizes.length(id) => {
                return Err(FileError::content(
                    path,
                    format!(
                        "interval {}:{}-{} ends past the chromosome's end ({} bp): peaks from another assembly?",
                        iv.chrom,
                        iv.start,
                        iv.end,
                        sizes.length(id)
                    ),
                ));
            }
            Some(id) => per_chrom[id].push((iv.start, iv.end)),
            None if !unknown.contains(&iv.chrom) => unknown.push(iv.chrom.clone()),
            None => {}
        }
    }
    if !unknown.is_empty() {
        return Err(FileError::Mismatch(name_mismatch(
            &path.display().to_string(),
            sizes.names(),
            &unknown,
            "the genome sizes",
            "the intervals",
        )));
    }
    let mut track = Track::empty(sizes.clone());
    for (id, mut ivs) in per_chrom.into_iter().enumerate() {
        ivs.sort_unstable();
        let mut runs: Vec<Run> = Vec::new();
        for (s, e) in ivs {
            if s >= e {
                continue;
            }
            match runs.last_mut() {
                Some(last) if s <= last.end as u64 => last.end = last.end.max(e as u32),
                _ => runs.push(Run { start: s as u32, end: e as u32, value: 1.0 }),
            }
        }
        track.set_runs(id, runs);
    }
    Ok(track)
}

/// SHA-256 of a file's bytes (hex) and its size.
pub fn file_sha256(path: &Path) -> Result<(String, u64), FileError> {
    let mut f = std::fs::File::open(path).map_err(FileError::io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(FileError::io(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((h.finalize().iter().map(|b| format!("{b:02x}")).collect(), size))
}

/// Builds a shard at `out` from a track file. `dtype` defaults to the source's
/// ([`SourceFormat::default_dtype`]).
pub fn build_shard(
    input: &Path,
    out: &Path,
    dtype: Option<Dtype>,
    sizes: Option<&ChromSizes>,
) -> Result<ShardStats, FileError> {
    let format = SourceFormat::detect(input)?;
    let track = read_track(input, sizes)?;
    let (sha, size) = file_sha256(input)?;
    let source = ShardSource { path: input.display().to_string(), sha256: Some(sha), size: Some(size) };
    write_shard(out, &track, dtype.unwrap_or(format.default_dtype()), Some(source))
}

/// The cache directory, created if needed, with the temporary files of killed runs removed;
/// an error says how to move it.
pub fn cache_dir() -> Result<PathBuf, FileError> {
    let dir = track_cache_dir().ok_or_else(|| {
        FileError::Argument(format!("no cache directory: set {CACHE_DIR_ENV} to a writable directory (or HOME)"))
    })?;
    std::fs::create_dir_all(&dir).map_err(|e| cache_error(&dir, FileError::io(&dir)(e)))?;
    crate::io::atomic::remove_stale_temporaries(&dir);
    Ok(dir)
}

/// A cache write that failed, with the way out: another cache directory.
pub fn cache_error(dir: &Path, e: FileError) -> FileError {
    FileError::Argument(format!(
        "{e} — the cache {} cannot be written: set {CACHE_DIR_ENV} to a writable directory with free space",
        dir.display()
    ))
}

/// The track cache: `$CHROMAX_TRACK_CACHE`, else `$XDG_CACHE_HOME/chromax/tracks`, else
/// `$HOME/.cache/chromax/tracks`.
pub fn track_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var(CACHE_DIR_ENV)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("chromax").join("tracks")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("chromax").join("tracks")))
}

/// The shard of a track file from the cache, converting it on first use. The key is the
/// SHA-256 of the file's bytes, the dtype, the chromosome sizes given and the format
/// version: the same content given twice (under any name) is converted once.
pub fn cached_shard(input: &Path, dtype: Option<Dtype>, sizes: Option<&ChromSizes>) -> Result<TrackShard, FileError> {
    let format = SourceFormat::detect(input)?;
    if format == SourceFormat::Shard {
        return TrackShard::open(input);
    }
    let dtype = dtype.unwrap_or(format.default_dtype());
    let dir = cache_dir()?;
    let (sha, size) = file_sha256(input)?;
    let mut key = Sha256::new();
    key.update(sha.as_bytes());
    key.update(dtype.name().as_bytes());
    key.update(SHARD_VERSION.to_le_bytes());
    if let Some(s) = sizes {
        for (n, l) in s.iter() {
            key.update(n.as_bytes());
            key.update(l.to_le_bytes());
        }
    }
    let key: String = key.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{key}.{SHARD_EXTENSION}"));
    // A cache entry is reused only when its own header says it is what its name promises;
    // anything else (damaged, altered, from another input) is rebuilt in its place, and so
    // is an entry written before shards recorded their non-zero blocks (opening it as
    // coverage would read all of it every time).
    if let Ok(mut shard) = TrackShard::open(&path) {
        let recorded = shard.index().source.as_ref().and_then(|s| s.sha256.as_deref());
        if recorded == Some(sha.as_str())
            && shard.dtype() == dtype
            && sizes.is_none_or(|s| shard.sizes() == s)
            && shard.adopt_recorded_scan().unwrap_or(false)
        {
            return Ok(shard);
        }
    }
    let track = read_track(input, sizes)?;
    let source = ShardSource { path: input.display().to_string(), sha256: Some(sha), size: Some(size) };
    write_shard(&path, &track, dtype, Some(source)).map_err(|e| cache_error(&dir, e))?;
    let mut shard = TrackShard::open(&path)?;
    shard.adopt_recorded_scan()?;
    Ok(shard)
}
