//! `--device cpu|cuda[:N]`: which backend a compute command runs on.

use super::CliResult;
use chromax::backend::cpu::CpuBackend;
use chromax::backend::cuda::CudaBackend;
use chromax::backend::{Backend, Device};

/// The backend a command computes on.
pub enum Compute {
    Cpu(CpuBackend),
    Cuda(Box<CudaBackend>),
}

/// The requested device, or CUDA when usable and else the CPU; says which on stderr.
pub fn select(device: Option<&str>) -> CliResult<Compute> {
    let compute = match device.map(str::parse::<Device>).transpose()? {
        Some(Device::Cpu) => Compute::Cpu(CpuBackend::new()),
        Some(Device::Cuda(n)) => Compute::Cuda(Box::new(CudaBackend::new(n)?)),
        None => match CudaBackend::new(0) {
            Ok(gpu) => Compute::Cuda(Box::new(gpu)),
            Err(e) => {
                eprintln!("{} (use --device cuda to require a GPU)", e);
                Compute::Cpu(CpuBackend::new())
            }
        },
    };
    let name = match &compute {
        Compute::Cpu(b) => b.describe(),
        Compute::Cuda(b) => b.describe(),
    };
    eprintln!("device: {name}");
    Ok(compute)
}

/// Runs `$body` with `$b` bound to the selected backend.
macro_rules! on_backend {
    ($compute:expr, $b:ident => $body:expr) => {
        match $compute {
            $crate::cli::device::Compute::Cpu(ref $b) => $body,
            $crate::cli::device::Compute::Cuda(ref boxed) => {
                let $b: &chromax::backend::cuda::CudaBackend = boxed;
                $body
            }
        }
    };
}
pub(crate) use on_backend;
