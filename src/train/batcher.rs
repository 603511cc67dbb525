//! The batch pipeline: a producer thread slices the memory-mapped track shards into reusable
//! batch buffers ahead of the compute, through a bounded crossbeam channel; buffers come back
//! through a second channel and are refilled, so steady state allocates nothing.
//!
//! Batches hold, per interval, `len + 2·pad` bases: the input channels (the noisy track, then
//! the extra tracks), the clean track and the 0/1 peak mask (for training and evaluation).

use super::intervals::Interval;
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

/// One batch of up to `batch` intervals (the last batch may be smaller).
pub struct Batch {
    pub intervals: Vec<Interval>,
    /// (n, channels, width)
    pub input: Vec<f32>,
    /// (n, width); empty without a clean track.
    pub clean: Vec<f32>,
    /// (n, width); empty without peaks.
    pub mask: Vec<f32>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.intervals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }
}

/// Batches arriving from the producer thread, in interval order.
pub struct BatchStream {
    full: Receiver<Batch>,
    free: Sender<Batch>,
    producer: Option<std::thread::JoinHandle<()>>,
}

impl BatchStream {
    /// Starts the producer over `intervals` (in the given order), `depth` batches ahead.
    pub fn start(sets: Vec<TrackSet>, intervals: Vec<Interval>, shape: BatchShape, depth: usize) -> Self {
        let (full_tx, full_rx) = bounded::<Batch>(depth.max(1));
        let (free_tx, free_rx) = bounded::<Batch>(depth.max(1) + 2);
        let producer = std::thread::spawn(move || {
            for chunk in intervals.chunks(shape.batch.max(1)) {
                let mut batch = free_rx.try_recv().unwrap_or_else(|_| Batch {
                    intervals: Vec::new(),
                    input: Vec::new(),
                    clean: Vec::new(),
                    mask: Vec::new(),
                });
                fill(&mut batch, &sets, chunk, shape);
                if full_tx.send(batch).is_err() {
                    return; // the consumer went away
                }
            }
        });
        BatchStream { full: full_rx, free: free_tx, producer: Some(producer) }
    }

    /// Hands a used batch back for refilling.
    pub fn recycle(&self, batch: Batch) {
        let _ = self.free.try_send(batch);
    }
}

impl Iterator for BatchStream {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        self.full.recv().ok()
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        // Unblock the producer (its sends fail once the receiver is gone), then join it.
        let (_, dummy) = bounded::<Batch>(0);
        drop(std::mem::replace(&mut self.full, dummy));
        if let Some(handle) = self.producer.take() {
            let _ = handle.join();
        }
    }
}

/// Fills a batch's buffers from the shards.
pub fn fill(batch: &mut Batch, sets: &[TrackSet], intervals: &[Interval], shape: BatchShape) {
    let (n, w, c) = (intervals.len(), shape.width(), shape.channels);
    batch.intervals.clear();
    batch.intervals.extend_from_slice(intervals);
    batch.input.resize(n * c * w, 0.0);
    let first = &sets[intervals.first().map_or(0, |i| i.source)];
    batch.clean.resize(if first.clean.is_some() { n * w } else { 0 }, 0.0);
    batch.mask.resize(if first.peaks.is_some() { n * w } else { 0 }, 0.0);
    for (i, iv) in intervals.iter().enumerate() {
        let set = &sets[iv.source];
        let from = iv.start as i64 - shape.pad as i64;
        let to = from + w as i64;
        for (ch, track) in set.inputs.iter().enumerate() {
            read_into(track, iv.chrom, from, to, &mut batch.input[(i * c + ch) * w..(i * c + ch + 1) * w]);
        }
        if let Some(clean) = &set.clean {
            read_into(clean, iv.chrom, from, to, &mut batch.clean[i * w..(i + 1) * w]);
        }
        if let Some(peaks) = &set.peaks {
            read_into(peaks, iv.chrom, from, to, &mut batch.mask[i * w..(i + 1) * w]);
        }
    }
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

impl BatchStream {
    /// Iterates the batches while keeping `self` usable for [`BatchStream::recycle`].
    pub fn by_ref_stream(&self) -> impl Iterator<Item = Batch> + '_ {
        std::iter::from_fn(move || self.full.recv().ok())
    }
}
