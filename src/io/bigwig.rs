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
    let chroms: Vec<usize> = (0..track.sizes().len()).filter(|&id| !track.runs(id).is_empty()).collect();
    if chroms.is_empty() {
        // bigtools never returns from a file without a single value: an all-zero track is
        // written as one explicit zero, which reads back as the same all-zero track.
        let mut zero = Track::empty(track.sizes().clone());
        zero.set_runs(0, vec![Run { start: 0, end: 1, value: 0.0 }]);
        return write_bigwig(path, &zero, threads);
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

/// A message to a streaming bigWig writer.
enum StreamMsg {
    Chrom(String),
    Runs(Vec<Run>),
}

/// Feeds bigtools from a channel: chromosomes in the order sent, runs as they arrive.
struct ChannelSource {
    rx: crossbeam_channel::Receiver<StreamMsg>,
}

impl BBIDataSource for ChannelSource {
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
        let mut current: Option<(P, Option<Value>)> = None;
        let finish =
            |state: Option<(P, Option<Value>)>, advance: &mut Advance| -> Result<(), BBIProcessError<std::io::Error>> {
                if let Some((mut p, pending)) = state {
                    if let Some(v) = pending {
                        runtime.block_on(p.do_process(v, None))?;
                    }
                    advance(p);
                }
                Ok(())
            };
        while let Ok(msg) = self.rx.recv() {
            match msg {
                StreamMsg::Chrom(name) => {
                    finish(current.take(), advance)?;
                    current = Some((start_processing(name)?, None));
                }
                StreamMsg::Runs(runs) => {
                    let Some((p, pending)) = current.as_mut() else { continue };
                    for r in runs {
                        let v = Value { start: r.start, end: r.end, value: r.value };
                        if let Some(prev) = pending.replace(v) {
                            runtime.block_on(p.do_process(prev, Some(&v)))?;
                        }
                    }
                }
            }
        }
        finish(current.take(), advance)
    }
}

/// A bigWig written while its data is still being computed: chromosomes and runs are sent in
/// order, a writer thread compresses them, memory stays bounded by the channel. The file
/// appears (atomically) only after [`BigWigStream::finish`].
pub struct BigWigStream {
    first_chrom: String,
    started: std::cell::Cell<bool>,
    sent_values: std::cell::Cell<bool>,
    tx: Option<crossbeam_channel::Sender<StreamMsg>>,
    worker: Option<std::thread::JoinHandle<Result<(), FileError>>>,
    file: Option<AtomicFile>,
    path: std::path::PathBuf,
}

impl BigWigStream {
    pub fn create(path: impl AsRef<Path>, sizes: &ChromSizes, threads: usize) -> Result<Self, FileError> {
        let path = path.as_ref().to_path_buf();
        let file = AtomicFile::new(&path)?;
        let sizes_map: HashMap<String, u32> =
            sizes.iter().map(|(n, l)| (n.to_string(), l.min(u32::MAX as u64) as u32)).collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .build()
            .map_err(FileError::io(&path))?;
        let writer = BigWigWrite::create_file(file.path().to_string_lossy().into_owned(), sizes_map)
            .map_err(|e| FileError::content(&path, format!("cannot create the bigWig: {e}")))?;
        let (tx, rx) = crossbeam_channel::bounded(64);
        let worker_path = path.clone();
        let worker = std::thread::spawn(move || {
            writer
                .write(ChannelSource { rx }, runtime)
                .map_err(|e| FileError::content(&worker_path, format!("writing the bigWig failed: {e}")))
        });
        let first_chrom = sizes.names().first().cloned().unwrap_or_default();
        Ok(BigWigStream {
            first_chrom,
            started: std::cell::Cell::new(false),
            sent_values: std::cell::Cell::new(false),
            tx: Some(tx),
            worker: Some(worker),
            file: Some(file),
            path,
        })
    }

    fn send(&self, msg: StreamMsg) -> Result<(), FileError> {
        match &self.tx {
            Some(tx) if tx.send(msg).is_ok() => Ok(()),
            _ => Err(FileError::content(&self.path, "the bigWig writer stopped early")),
        }
    }

    /// Starts the next chromosome (each at most once, in the output's order).
    pub fn chrom(&self, name: &str) -> Result<(), FileError> {
        self.started.set(true);
        self.send(StreamMsg::Chrom(name.to_string()))
    }

    /// Appends runs of the current chromosome (sorted, after those sent before).
    pub fn runs(&self, runs: Vec<Run>) -> Result<(), FileError> {
        if runs.is_empty() {
            return Ok(());
        }
        self.sent_values.set(true);
        self.send(StreamMsg::Runs(runs))
    }

    /// Waits for the writer and puts the file in place.
    pub fn finish(mut self) -> Result<(), FileError> {
        if !self.sent_values.get() {
            // bigtools never returns from a file without a single value: write one explicit
            // zero (on the last chromosome started), which reads back as all zeros.
            if !self.started.get() {
                self.chrom(&self.first_chrom.clone())?;
            }
            self.send(StreamMsg::Runs(vec![Run { start: 0, end: 1, value: 0.0 }]))?;
        }
        drop(self.tx.take());
        let result = match self.worker.take().map(|w| w.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(FileError::content(&self.path, "the bigWig writer thread panicked")),
            None => Ok(()),
        };
        result?;
        match self.file.take() {
            Some(f) => f.commit(),
            None => Ok(()),
        }
    }
}

impl Drop for BigWigStream {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        // `file` (if not committed) removes the temporary file when dropped.
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
        // Without sizes: the chromosome holding the explicit zero, and no runs.
        let back = read_bigwig(&path, None).expect("read");
        assert_eq!(back, Track::empty(sizes(&[("chr1", 1000)])));
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
        let s = BigWigStream::create(&path, t.sizes(), 2).expect("create");
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
        BigWigStream::create(&zeros, t.sizes(), 1).expect("create").finish().expect("finish");
        assert_eq!(read_bigwig(&zeros, Some(t.sizes())).expect("read"), Track::empty(t.sizes().clone()));

        // Dropped without finish: no file, and no temporary left behind.
        let dropped = dir.join("dropped.bw");
        let s = BigWigStream::create(&dropped, t.sizes(), 1).expect("create");
        s.chrom("chr1").expect("chr1");
        s.runs(t.runs(0).to_vec()).expect("runs");
        drop(s);
        assert!(!dropped.exists());
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 2);
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
    /// file, not a panic. (Bytes changed inside it can still panic in bigtools.)
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
}
