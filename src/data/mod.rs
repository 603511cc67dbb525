//! The data pipeline shared by training and inference: chromosomes tiled into intervals
//! ([`intervals`]), coverage tracks opened as memory-mapped shards checked against the genome
//! ([`tracks`]), and the prefetching batcher that slices them into batch buffers ahead of
//! the compute ([`batcher`]).

pub mod batcher;
pub mod intervals;
pub mod tracks;

pub use batcher::{Batch, BatchShape, BatchStream, TrackSet};
pub use intervals::{chrom_ids, tile, tile_range, Interval};
pub use tracks::{open_coverage, open_peaks};
