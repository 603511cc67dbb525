//! # chromax
//!
//! Deep-learning models of chromatin accessibility (ATAC-seq), on CUDA or on the CPU.
//!
//! Entry points:
//!
//! * [`backend`] — the [`Backend`](backend::Backend) trait with its two implementations,
//!   [`CpuBackend`](backend::cpu::CpuBackend) (the specification) and
//!   [`CudaBackend`](backend::cuda::CudaBackend) (NVRTC-compiled kernels from `kernels/`);
//!   [`Device`](backend::Device) names one (`cpu`, `cuda`, `cuda:N`).
//! * [`backend::cuda::probe`] — what CUDA can be used here, or in one line why not.
//! * [`kernels`] — the CUDA sources embedded in the library.
//! * [`error`] — the error types; every message names the value at fault.
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
pub mod rng;
pub mod sc;
pub mod store;
pub mod track;
pub mod train;
