//! Training: interval tiling and splits, the prefetching batch pipeline, checkpoints, and the
//! denoiser's training loop.

pub mod batcher;
pub mod checkpoint;
pub mod denoise;

pub mod intervals;
pub mod seq;
