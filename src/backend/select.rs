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

    /// Whether SeqNet's convolutions multiply in bf16 (a training run records it, so a resume
    /// keeps the run's numerics): the CPU's bf16 GEMM, CUDA's tensor-core convolutions.
    pub fn seqnet_bf16(&self) -> bool {
        match self {
            Compute::Cpu(b) => b.bf16_gemm(),
            Compute::Cuda(b) => b.bf16_convolutions(),
        }
    }

    /// The precision of the convolutions' products.
    pub fn precision(&self) -> Precision {
        let bf16 = match self {
            Compute::Cpu(b) => b.bf16_gemm() || b.bf16_convolutions(),
            Compute::Cuda(b) => b.bf16_convolutions(),
        };
        if bf16 {
            Precision::Bf16
        } else {
            Precision::F32
        }
    }
}

/// The precision of the convolutions' products (`--precision`): sums are f32 either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    /// bf16 operands, f32 products and sums: on CUDA (compute capability ≥ 8.0) the
    /// convolutions on the tensor cores (DenoiseNet's few-channel layers; SeqNet's wide ones,
    /// forward and input gradient); on the CPU SeqNet's wide convolutions through AVX512-BF16
    /// and the few-channel ones with bf16-rounded operands (the reference of the GPU's
    /// numerics).
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("precision '{other}': f32 or bf16")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

/// The precision a CUDA device runs without `--precision`: bf16 where the tensor cores take
/// bf16 mma (compute capability 8.0 and later), f32 before.
pub fn default_cuda_precision(compute_capability: (i32, i32)) -> Precision {
    if compute_capability.0 >= 8 {
        Precision::Bf16
    } else {
        Precision::F32
    }
}

/// What [`select`] chose, and why CUDA was passed over when it chose the CPU by default.
pub struct Selected {
    pub compute: Compute,
    /// Set when no device was asked for and CUDA is not usable: the one-line reason.
    pub cuda_unusable: Option<String>,
}

/// [`select`] at a precision: `None` is f32 on the CPU and [`default_cuda_precision`] on
/// CUDA. bf16 on a GPU before compute capability 8.0, or on a CPU without AVX512-BF16, is an
/// error saying so.
pub fn select_precision(device: Option<Device>, precision: Option<Precision>) -> BackendResult<Selected> {
    let mut chosen = select(device)?;
    chosen.compute = match chosen.compute {
        Compute::Cpu(cpu) => match precision {
            None | Some(Precision::F32) => Compute::Cpu(cpu),
            Some(Precision::Bf16) => Compute::Cpu(CpuBackend::with_bf16_gemm()?.with_bf16_convolutions(true)),
        },
        Compute::Cuda(gpu) => {
            let cc = gpu.info().compute_capability;
            let bf16 = match precision {
                None => default_cuda_precision(cc) == Precision::Bf16,
                Some(Precision::F32) => false,
                Some(Precision::Bf16) if cc.0 < 8 => {
                    return Err(crate::error::BackendError::Unsupported {
                        op: "bf16 convolutions",
                        what: format!(
                            "bf16 tensor-core mma needs compute capability 8.0 or later; this GPU has {}.{}: use f32",
                            cc.0, cc.1
                        ),
                    })
                }
                Some(Precision::Bf16) => true,
            };
            Compute::Cuda(Box::new(gpu.with_bf16_convolutions(bf16)))
        }
    };
    Ok(chosen)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_defaults_to_bf16_from_ampere_on() {
        assert_eq!(default_cuda_precision((9, 0)), Precision::Bf16);
        assert_eq!(default_cuda_precision((8, 0)), Precision::Bf16);
        assert_eq!(default_cuda_precision((7, 5)), Precision::F32);
        assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
        assert_eq!("f32".parse::<Precision>(), Ok(Precision::F32));
        let err = "f16".parse::<Precision>().expect_err("f16");
        assert!(err.contains("f16") && err.contains("f32 or bf16"), "{err}");
    }

    #[test]
    fn the_cpu_runs_f32_unless_asked_and_bf16_rounds_the_few_channel_convolutions() {
        let f32_run = select_precision(Some(Device::Cpu), None).expect("cpu").compute;
        assert_eq!(f32_run.precision(), Precision::F32);
        assert!(!f32_run.seqnet_bf16());
        match select_precision(Some(Device::Cpu), Some(Precision::Bf16)) {
            Ok(s) => {
                assert_eq!(s.compute.precision(), Precision::Bf16);
                assert!(s.compute.seqnet_bf16());
                assert!(s.compute.describe().contains("bf16 operands in the few-channel convolutions"));
            }
            // Without AVX512-BF16 the refusal names it.
            Err(e) => assert!(e.to_string().contains("AVX512-BF16"), "{e}"),
        }
    }
}
