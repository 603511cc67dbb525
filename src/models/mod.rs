//! Models built from the layers of [`crate::nn`], and how a trained one is kept on disk
//! ([`checkpoint`]).

pub mod checkpoint;
pub mod denoise;
pub mod seq;

pub use denoise::{DenoiseConfig, DenoiseNet, DenoiseOutput};
pub use seq::{SeqBatch, SeqConfig, SeqNet};
