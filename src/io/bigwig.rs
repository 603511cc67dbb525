//! bigWig, through bigtools: writing a [`Track`] (chromosomes in the track's order, several
//! compressed at once) and reading one back (one reader per chromosome, in parallel).

use super::atomic::AtomicFile;
use super::sizes::{name_mismatch, ChromSizes};
use crate::error::FileError;
use crate::track::{Run, Track};
use bigtools::{BBIDataProcessor, BBIDataSource, BBIProcessError, BigWigRead, BigWigWrite, ProcessDataError, Value};
use rayon::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::Path;
use tokio::runtime::Runtime;

/// The bigWig magic number, little-endian on disk.
const BIGWIG_MAGIC: u32 = 0x888F_FC26;

/// Whether a file starts with the bigWig magic number.
pub fn is_bigwig(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
        && u32::from_le_bytes(magic) == BIGWIG_MAGIC
}

/// Feeds a track's chromosomes to bigtools, `max_inflight` at a time, in the track's order;
/// only the chromosomes in flight are copied into the writer's tasks.
struct TrackSource<'a> {
    track: &'a Track,
    chroms: Vec<usize>,
    max_inflight: usize,
}

impl BBIDataSource for TrackSource<'_> {
    type Value = Value;
    type Error = std::io::Error;

    fn process_to_bbi<
        P: BBIDataProcessor<Value = Value> + Send + 'static,
        StartProcessing: FnMut(String) -> Result<P, ProcessDataError>,
        Advance: FnMut(P),
    >(
        &mut self,
        runtime: &Runtime,
        start_processing: &mut StartProcessing,
        advance: &mut Advance,
    ) -> Result<(), BBIProcessError<Self::Error>> {
        let mut queue = VecDeque::new();
        let mut pending = std::mem::take(&mut self.chroms).into_iter();
        loop {
            while queue.len() < self.max_inflight {
                let Some(id) = pending.next() else { break };
                let mut processor = start_processing(self.track.sizes().name(id).to_string())?;
                let runs: Vec<Run> = self.track.runs(id).to_vec();
                queue.push_back(runtime.spawn(async move {
                    for (i, r) in runs.iter().enumerate() {
                        let next = runs.get(i + 1).map(|n| Value { start: n.start, end: n.end, value: n.value });
                        processor
                            .do_process(Value { start: r.start, end: r.end, value: r.value }, next.as_ref())
                            .await?;
                    }
                    Ok::<P, ProcessDataError>(processor)
                }));
            }
            let Some(handle) = queue.pop_front() else {
                break;
            };
            let processor = runtime.block_on(handle).map_err(|e| {
                BBIProcessError::SourceError(std::io::Error::other(format!("a writer task failed: {e}")))
            })??;
            advance(processor);
        }
        Ok(())
    }
}

/// Writes `track` as a bigWig (non-zero runs; chromosomes without data are left out, as
/// bedGraphToBigWig does), atomically, compressing on `threads` threads.
pub fn write_bigwig(path: impl AsRef<Path>, track: &Track, threads: usize) -> Result<(), FileError> {
    let path = path.as_ref();
    let file = AtomicFile::new(path)?;
    let sizes: HashMap<String, u32> =
        track.sizes().iter().map(|(n, l)| (n.to_string(), l.min(u32::MAX as u64) as u32)).collect();
    let mut chroms: Vec<usize> = (0..track.sizes().len()).filter(|&id| !track.runs(id).is_empty()).collect();
    if chroms.is_empty() {
        chroms.push(0); // an all-zero track: one chromosome listed, with no data
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .build()
        .map_err(FileError::io(path))?;
    let writer = BigWigWrite::create_file(file.path().to_string_lossy().into_owned(), sizes)
        .map_err(|e| FileError::content(path, format!("cannot create the bigWig: {e}")))?;
    let source = TrackSource { track, chroms, max_inflight: threads.max(2) };
    writer.write(source, runtime).map_err(|e| FileError::content(path, format!("writing the bigWig failed: {e}")))?;
    file.commit()
}

/// Reads a bigWig into a track. With `sizes`, the track covers those chromosomes (every
/// chromosome of the file must be among them); without, the file's own list.
pub fn read_bigwig(path: impl AsRef<Path>, sizes: Option<&ChromSizes>) -> Result<Track, FileError> {
    let path = path.as_ref();
    std::fs::File::open(path).map_err(FileError::io(path))?;
    if !is_bigwig(path) {
        return Err(FileError::content(path, "not a bigWig file (wrong magic number)"));
    }
    let bw =
        BigWigRead::open_file(path).map_err(|e| FileError::content(path, format!("cannot read the bigWig: {e}")))?;
    let file_chroms: Vec<(String, u64)> = bw.chroms().iter().map(|c| (c.name.clone(), c.length as u64)).collect();
    drop(bw);
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
            s.clone()
        }
        None => ChromSizes::from_pairs(file_chroms.iter().cloned()).map_err(|e| FileError::content(path, e))?,
    };
    let per_chrom: Vec<(usize, Vec<Run>)> = file_chroms
        .par_iter()
        .map(|(name, len)| {
            let id = track_sizes.id(name).unwrap_or(usize::MAX);
            let mut reader = BigWigRead::open_file(path).map_err(|e| FileError::content(path, e.to_string()))?;
            let limit = (*len).min(track_sizes.length(id));
            let mut runs = Vec::new();
            let intervals = reader
                .get_interval(name, 0, *len as u32)
                .map_err(|e| FileError::content(path, format!("{name}: {e}")))?;
            for v in intervals {
                let v = v.map_err(|e| FileError::content(path, format!("{name}: {e}")))?;
                if !v.value.is_finite() {
                    return Err(FileError::content(
                        path,
                        format!("{name}:{}-{}: value {} is not finite", v.start, v.end, v.value),
                    ));
                }
                if v.value != 0.0 && (v.start as u64) < limit {
                    runs.push(Run { start: v.start, end: (v.end as u64).min(limit) as u32, value: v.value });
                }
            }
            Ok((id, runs))
        })
        .collect::<Result<_, FileError>>()?;
    let mut track = Track::empty(track_sizes);
    for (id, runs) in per_chrom {
        track.set_runs(id, runs);
    }
    Ok(track)
}
