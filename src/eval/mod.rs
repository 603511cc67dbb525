//! Evaluation: exact metrics over whole genomes, and peak calls from per-base probabilities.

pub mod denoise;
pub mod metrics;
pub mod peak_calls;
pub mod roc;
