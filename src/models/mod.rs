//! Models built from the layers of [`crate::nn`].

pub mod denoise;

pub use denoise::{DenoiseConfig, DenoiseNet, DenoiseOutput};
pub mod seq;

pub use seq::{SeqBatch, SeqConfig, SeqNet};
