//! Choosing where to compute: the device asked for (`cpu`, `cuda`, `cuda:N`), or CUDA when
//! it is usable and else the CPU.

use super::cpu::CpuBackend;
use super::cuda::CudaBackend;
use super::{Backend, BackendResult, Device};

/// The backend a computation runs on. Generic code runs on either through [`on_backend!`].
///
/// [`on_backend!`]: crate::on_backend
pub enum Compute {
    Cpu(CpuBackend),
    Cuda(Box<CudaBackend>),
}

impl Compute {
    pub fn describe(&self) -> String {
        match self {
            Compute::Cpu(b) => b.describe(),
            Compute::Cuda(b) => b.describe(),
        }
    }
}

/// What [`select`] chose, and why CUDA was passed over when it chose the CPU by default.
pub struct Selected {
    pub compute: Compute,
    /// Set when no device was asked for and CUDA is not usable: the one-line reason.
    pub cuda_unusable: Option<String>,
}

/// The requested device, or with `None` CUDA device 0 when usable and else the CPU. Asking
/// for CUDA where it is not usable is an error saying why.
pub fn select(device: Option<Device>) -> BackendResult<Selected> {
    Ok(match device {
        Some(Device::Cpu) => Selected { compute: Compute::Cpu(CpuBackend::new()), cuda_unusable: None },
        Some(Device::Cuda(n)) => {
            Selected { compute: Compute::Cuda(Box::new(CudaBackend::new(n)?)), cuda_unusable: None }
        }
        None => match CudaBackend::new(0) {
            Ok(gpu) => Selected { compute: Compute::Cuda(Box::new(gpu)), cuda_unusable: None },
            Err(e) => Selected { compute: Compute::Cpu(CpuBackend::new()), cuda_unusable: Some(e.to_string()) },
        },
    })
}

/// Runs `$body` with `$b` bound to the backend of a [`Compute`] (by reference), so one generic
/// call serves both:
///
/// ```
/// use chromax::backend::{select, Backend, Device};
/// let chosen = select(Some(Device::Cpu)).unwrap();
/// let name = chromax::on_backend!(chosen.compute, b => b.describe());
/// assert!(name.starts_with("cpu"));
/// ```
#[macro_export]
macro_rules! on_backend {
    ($compute:expr, $b:ident => $body:expr) => {
        match $compute {
            $crate::backend::Compute::Cpu(ref $b) => $body,
            $crate::backend::Compute::Cuda(ref boxed) => {
                let $b: &$crate::backend::cuda::CudaBackend = boxed;
                $body
            }
        }
    };
}
