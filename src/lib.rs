//! # chromax
//!
//! Deep-learning models of chromatin accessibility (ATAC-seq), on CUDA or on the CPU.
//!
//! The house, by task, each room importing only the rooms below it:
//!
//! * [`denoise`] — coverage denoising and peak calling (AtacWorks' task): train, the model on
//!   disk, streaming inference to bigWig + narrowPeak, evaluation against clean data.
//! * [`sc`] — single-cell sequence models (scBasset's task): matrix inputs, data and split,
//!   train, the model on disk, cell embeddings, synthetic data.
//! * [`train`] — the one training loop both tasks run: Adam, checkpoints, strict resume, the
//!   lock on the output directory, early stopping.
//! * [`data`] — intervals, tracks checked against the genome, the prefetching batcher (shared
//!   by training and inference).
//! * [`models`] and [`nn`] — DenoiseNet and SeqNet, their layers with explicit backward
//!   passes, and how a trained model is kept on disk ([`models::checkpoint`]).
//! * [`eval`] — pure metrics (exact Pearson, Spearman, MSE, AUROC, AUPRC; histogram ROC).
//! * [`backend`] — the [`Backend`](backend::Backend) trait, a params struct and named buffers
//!   per op, with [`CpuBackend`](backend::cpu::CpuBackend) (the specification),
//!   [`CudaBackend`](backend::cuda::CudaBackend) (NVRTC-compiled kernels from `kernels/`) and
//!   the host kernel emulator; [`backend::select`] picks one (`cpu`, `cuda`, `cuda:N`).
//! * [`store`], [`coverage`], [`peaks`], [`io`] — memory-mapped stores and their cache; reads
//!   to coverage; the Poisson baseline peak caller; file formats at the edges.
//! * [`rng`] — the one random generator; [`error`] — the error types, every message naming
//!   the value at fault; [`kernels`] — the CUDA sources embedded in the library.
//!
//! ```
//! use chromax::backend::{cpu::CpuBackend, Backend, Conv1dFwd, Conv1dParams};
//!
//! let cpu = CpuBackend::new();
//! let p = Conv1dParams { batch: 1, c_in: 1, c_out: 1, len: 4, kernel: 3, dilation: 1 };
//! let x = cpu.upload(&[1.0, 2.0, 3.0, 4.0])?;
//! let w = cpu.upload(&[1.0, 1.0, 1.0])?; // a moving sum over three bases
//! let mut y = cpu.zeros(4)?;
//! cpu.conv1d_fwd(&p, Conv1dFwd { x: &x, w: &w, bias: None, y: &mut y })?;
//! assert_eq!(y, vec![3.0, 6.0, 9.0, 7.0]);
//! # Ok::<(), chromax::error::BackendError>(())
//! ```
//!
//! The library never prints; the `chromax` binary owns output and exit codes.

pub mod backend;
pub mod error;
pub mod kernels;

pub use error::{Error, Result};

pub mod coverage;
pub mod data;
pub mod denoise;
pub mod eval;
pub mod io;
pub mod models;
pub mod nn;
pub mod peaks;
pub mod plot;
pub mod rng;
pub mod sc;
pub mod store;
pub mod track;
pub mod train;
