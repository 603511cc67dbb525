//! Coverage denoising and peak calling (AtacWorks' task): a noisy, low-depth coverage track
//! in; a clean track and per-base peak probabilities out.
//!
//! * [`train`] — DenoiseNet trained noisy → clean on chromosome splits, as a task of the one
//!   training loop ([`crate::train`]).
//! * [`model`] — a trained denoiser on disk, loaded onto a backend.
//! * [`infer`] — streaming denoising of whole genomes or regions to bigWig and narrowPeak.
//! * [`skip`] — exact skipping of empty coverage at inference (bit for bit the dense output).
//! * [`peak_calls`] — peaks from per-base probabilities.
//! * [`eval`] — denoised (and noisy) against clean: exact genome-wide metrics.

pub mod eval;
pub mod infer;
pub mod model;
pub mod peak_calls;
pub mod skip;
pub mod train;
