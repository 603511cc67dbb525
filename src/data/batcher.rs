//! The batch pipeline: a producer thread slices the memory-mapped track shards into reusable
//! batch buffers ahead of the compute, through a bounded crossbeam channel; a batch's buffers
//! go back through a second channel when the batch is dropped and are refilled, so steady
//! state allocates nothing.
//!
//! Batches hold, per interval, `len + 2·pad` bases: the input channels (the noisy track, then
//! the extra tracks), the clean track and the 0/1 peak mask (for training and evaluation).
//! The buffers come from the backend: page-locked (pinned) host memory on CUDA, so uploads are
//! DMA transfers without a staging copy.

use super::intervals::Interval;
use crate::backend::{Backend, BackendResult, HostBuffer};
use crate::store::TrackShard;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::Arc;

/// The tracks one interval source reads.
#[derive(Clone)]
pub struct TrackSet {
    /// The noisy track, then the extra input tracks: the network's input channels.
    pub inputs: Vec<Arc<TrackShard>>,
    pub clean: Option<Arc<TrackShard>>,
    pub peaks: Option<Arc<TrackShard>>,
}

/// The shape of the batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchShape {
    pub batch: usize,
    pub len: u64,
    pub pad: u64,
    pub channels: usize,
}

impl BatchShape {
    /// Bases per interval with context: `len + 2·pad`.
    pub fn width(&self) -> usize {
        (self.len + 2 * self.pad) as usize
    }
}

/// The host buffers of one batch, sized for a full batch (pinned on CUDA).
struct Buffers {
    intervals: Vec<Interval>,
    input: HostBuffer,
    clean: HostBuffer,
    mask: HostBuffer,
    input_len: usize,
    track_len: usize,
    has_clean: bool,
    has_mask: bool,
}

/// One batch of up to `batch` intervals (the last batch may be smaller). Dropping it hands
/// its buffers back to the producer for refilling: drop it once the device has finished
/// reading them (after a synchronising read-back, e.g. the loss).
pub struct Batch {
    buffers: Buffers,
    home: Sender<Buffers>,
}

impl Buffers {
    /// No memory: what a dropped batch leaves behind when its buffers go home.
    fn none() -> Self {
        Buffers {
            intervals: Vec::new(),
            input: HostBuffer::Plain(Vec::new()),
            clean: HostBuffer::Plain(Vec::new()),
            mask: HostBuffer::Plain(Vec::new()),
            input_len: 0,
            track_len: 0,
            has_clean: false,
            has_mask: false,
        }
    }
}

impl Batch {
    fn buffers(&self) -> &Buffers {
        &self.buffers
    }

    /// The intervals of the batch, in order.
    pub fn intervals(&self) -> &[Interval] {
        &self.buffers().intervals
    }

    pub fn len(&self) -> usize {
        self.intervals().len()
    }

    pub fn is_empty(&self) -> bool {
        self.intervals().is_empty()
    }

    /// (n, channels, width)
    pub fn input(&self) -> BackendResult<&[f32]> {
        let b = self.buffers();
        Ok(&b.input.as_slice()?[..b.input_len])
    }

    /// (n, width); empty without a clean track.
    pub fn clean(&self) -> BackendResult<&[f32]> {
        let b = self.buffers();
        Ok(if b.has_clean { &b.clean.as_slice()?[..b.track_len] } else { &[] })
    }

    /// (n, width); empty without peaks.
    pub fn mask(&self) -> BackendResult<&[f32]> {
        let b = self.buffers();
        Ok(if b.has_mask { &b.mask.as_slice()?[..b.track_len] } else { &[] })
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // The producer may be gone (after the last batch); then the buffers are simply freed.
        let _ = self.home.try_send(std::mem::replace(&mut self.buffers, Buffers::none()));
    }
}

/// Batches arriving from the producer thread, in interval order. The buffers circulate in a
/// fixed pool: each [`Batch`] returns its own when dropped.
pub struct BatchStream {
    full: Option<Receiver<BackendResult<Buffers>>>,
    free: Option<Sender<Buffers>>,
    /// Dropped to stop the producer, even while batches (holding senders of `free`) live on.
    stop: Option<Sender<()>>,
    producer: Option<std::thread::JoinHandle<()>>,
}

impl BatchStream {
    /// Starts the producer over `intervals` (in the given order) with `depth` full batches of
    /// host memory from `backend` (pinned on CUDA) circulating.
    pub fn start<B: Backend>(
        backend: &B,
        sets: Vec<TrackSet>,
        intervals: Vec<Interval>,
        shape: BatchShape,
        depth: usize,
    ) -> BackendResult<Self> {
        let depth = depth.max(1);
        // A batch never holds more intervals than there are: a larger --batch sizes nothing.
        let (w, b) = (shape.width(), shape.batch.clamp(1, intervals.len().max(1)));
        let (full_tx, full_rx) = bounded::<BackendResult<Buffers>>(depth);
        let (free_tx, free_rx) = bounded::<Buffers>(depth + 1);
        let with_clean = sets.iter().any(|s| s.clean.is_some());
        let with_mask = sets.iter().any(|s| s.peaks.is_some());
        for _ in 0..depth.min(intervals.len().div_ceil(b)).max(1) {
            let buffers = Buffers {
                intervals: Vec::with_capacity(b),
                input: backend.host_buffer(b * shape.channels * w)?,
                clean: backend.host_buffer(if with_clean { b * w } else { 0 })?,
                mask: backend.host_buffer(if with_mask { b * w } else { 0 })?,
                input_len: 0,
                track_len: 0,
                has_clean: false,
                has_mask: false,
            };
            let _ = free_tx.try_send(buffers);
        }
        let (stop_tx, stop_rx) = bounded::<()>(0);
        let producer = std::thread::spawn(move || {
            for chunk in intervals.chunks(b) {
                let mut buffers = crossbeam_channel::select! {
                    recv(free_rx) -> buffers => match buffers {
                        Ok(buffers) => buffers,
                        Err(_) => return,
                    },
                    recv(stop_rx) -> _ => return, // the stream was dropped
                };
                let filled = fill(&mut buffers, &sets, chunk, shape).map(|()| buffers);
                if full_tx.send(filled).is_err() {
                    return; // the consumer went away
                }
            }
        });
        Ok(BatchStream { full: Some(full_rx), free: Some(free_tx), stop: Some(stop_tx), producer: Some(producer) })
    }
}

impl Iterator for BatchStream {
    type Item = BackendResult<Batch>;

    /// The next batch, or `None` after the last.
    fn next(&mut self) -> Option<BackendResult<Batch>> {
        let filled = self.full.as_ref()?.recv().ok()?;
        let home = self.free.clone()?;
        Some(filled.map(|buffers| Batch { buffers, home }))
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        // Closing these unblocks the producer wherever it waits (batches still held keep the
        // free channel open, so the stop channel is what ends a wait for buffers); then join.
        drop(self.stop.take());
        drop(self.full.take());
        drop(self.free.take());
        if let Some(handle) = self.producer.take() {
            let _ = handle.join();
        }
    }
}

/// Fills a batch's buffers from the shards.
fn fill(batch: &mut Buffers, sets: &[TrackSet], intervals: &[Interval], shape: BatchShape) -> BackendResult<()> {
    let (n, w, c) = (intervals.len(), shape.width(), shape.channels);
    batch.intervals.clear();
    batch.intervals.extend_from_slice(intervals);
    batch.input_len = n * c * w;
    batch.track_len = n * w;
    let first = &sets[intervals.first().map_or(0, |i| i.source)];
    batch.has_clean = first.clean.is_some();
    batch.has_mask = first.peaks.is_some();
    let input = batch.input.as_mut_slice()?;
    for (i, iv) in intervals.iter().enumerate() {
        let set = &sets[iv.source];
        let from = iv.start as i64 - shape.pad as i64;
        let to = from + w as i64;
        for (ch, track) in set.inputs.iter().enumerate() {
            read_into(track, iv.chrom, from, to, &mut input[(i * c + ch) * w..(i * c + ch + 1) * w]);
        }
    }
    for (has, track_of, buf) in [
        (
            batch.has_clean,
            (|s: &TrackSet| s.clean.clone()) as fn(&TrackSet) -> Option<Arc<TrackShard>>,
            &mut batch.clean,
        ),
        (batch.has_mask, |s: &TrackSet| s.peaks.clone(), &mut batch.mask),
    ] {
        if !has {
            continue;
        }
        let out = buf.as_mut_slice()?;
        for (i, iv) in intervals.iter().enumerate() {
            let from = iv.start as i64 - shape.pad as i64;
            if let Some(track) = track_of(&sets[iv.source]) {
                read_into(&track, iv.chrom, from, from + w as i64, &mut out[i * w..(i + 1) * w]);
            }
        }
    }
    Ok(())
}

/// Values of chromosome `chrom` over `from..to` (zeros outside it).
fn read_into(track: &TrackShard, chrom: usize, from: i64, to: i64, out: &mut [f32]) {
    let name = &track.sizes().names()[chrom];
    match track.slice(name, from, to) {
        Ok(slice) => slice.to_f32(out),
        // Callers check that every shard has every chromosome; an absent one reads as zeros.
        Err(_) => out.fill(0.0),
    }
}

/// Whether every input channel of an interval (with context) is zero.
pub fn interval_is_empty(set: &TrackSet, iv: &Interval, shape: BatchShape) -> bool {
    let from = iv.start as i64 - shape.pad as i64;
    let mut buf = vec![0f32; shape.width()];
    set.inputs.iter().all(|t| {
        read_into(t, iv.chrom, from, from + shape.width() as i64, &mut buf);
        buf.iter().all(|&v| v == 0.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;

    #[test]
    fn a_stream_dropped_while_a_batch_is_held_stops_its_producer() {
        let sizes = crate::io::ChromSizes::from_pairs(vec![("c".to_string(), 1000)]).expect("sizes");
        let dir = crate::io::scratch_dir("batcher");
        let track = crate::track::Track::empty(sizes.clone());
        let path = dir.join("t.cxtrack");
        crate::store::shard::write_shard(&path, &track, crate::store::Dtype::F32, None).expect("shard");
        let shard = Arc::new(TrackShard::open(&path).expect("open"));
        let set = TrackSet { inputs: vec![shard], clean: None, peaks: None };
        let intervals: Vec<Interval> =
            (0..10).map(|k| Interval { source: 0, chrom: 0, start: k * 100, skip: 0 }).collect();
        let shape = BatchShape { batch: 1, len: 100, pad: 0, channels: 1 };
        let mut stream = BatchStream::start(&CpuBackend::new(), vec![set], intervals, shape, 1).expect("start");
        let held = stream.next().expect("a batch").expect("filled");
        // The producer now waits for free buffers the held batch keeps; dropping the stream
        // must still end it (this returned only after the batch was dropped, before).
        drop(stream);
        assert_eq!(held.len(), 1);
        drop(held);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
