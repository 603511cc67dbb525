//! Single-cell sequence models (scBasset's task): each peak's DNA sequence in, its
//! accessibility in every cell out; cell embeddings from the per-cell head. The home of the
//! single-cell analyses.
//!
//! * [`matrix`] — peak-by-cell matrices: counted from fragments, read from AnnData, 10x HDF5,
//!   Matrix Market or the store, matched to the peak file, filtered.
//! * [`data`] — what a run trains on: sequences, memory-mapped rows, the split, batches.
//! * [`train`] — SeqNet trained as a task of the one training loop ([`crate::train`]).
//! * [`model`] — a trained model on disk, loaded onto a backend.
//! * [`embed`] — the cells' embeddings and intercepts, written for scanpy.
//! * [`synth`] — synthetic data of any shape, for benchmarks and tests.
//! * [`analyses`] — TF activity, in-silico mutagenesis and variant effects on a trained model,
//!   with [`motifs`] (JASPAR / MEME), [`shuffle`] (the dinucleotide shuffle of backgrounds)
//!   and [`groups`] (cells grouped by a table or an obs column).
//! * [`impute`] — denoised accessibility of every peak in every cell, streamed.

pub mod analyses;
pub mod convert;
pub mod data;
pub mod embed;
pub mod groups;
pub mod impute;
pub mod matrix;
pub mod model;
pub mod motifs;
pub mod shuffle;
pub mod synth;
pub mod train;
