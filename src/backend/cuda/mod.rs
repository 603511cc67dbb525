//! The CUDA backend: the kernels of `kernels/`, compiled by NVRTC on first use for the
//! device's own architecture and launched through cudarc's driver API.
//!
//! cudarc loads libcuda and libnvrtc at run time, so nothing here needs CUDA to build. It
//! panics when a library is absent, so [`probe`] checks first and turns every reason CUDA
//! cannot be used into a one-line message.
//!
//! [`KernelBackend`] is the [`Backend`] over any [`KernelDevice`]: each op calls its launch
//! code in the file of its stem (`conv1d.rs` for `kernels/conv1d.cu`), which checks the
//! buffers with the op's one check and launches through the raw layer of [`launch`]. The
//! device is the driver ([`CudaDevice`], giving [`CudaBackend`]) or the host emulator
//! ([`emulator::EmulatedBackend`]), so the emulator runs exactly the code a GPU does.

pub mod compile;
mod conv1d;
mod conv1d_igemm;
mod conv1d_mma;
mod device;
mod dropout;
mod elementwise;
pub mod emulator;
pub mod launch;
mod loss;
mod norm;
mod onehot;
mod optim;
mod pool;
mod sparse_head;

pub use conv1d::CONV_BLOCKS_BY_REGISTERS;
pub use device::CudaDevice;
pub use sparse_head::HEAD_BLOCKS_PER_SM;

use super::{
    check_len, AdamParams, AdamStep, Backend, BackendResult, BatchNormBwd, BatchNormFwdInfer, BatchNormFwdTrain,
    BatchNormParams, BufLen, Conv1dBwdInput, Conv1dBwdWeight, Conv1dFwd, Conv1dParams, DenoiseLoss, DenoiseLossParams,
    DropoutBwd, DropoutFwd, DropoutParams, Elementwise, ElementwiseOp, Epilogue, HeadLogits, HostBuffer, LossParts,
    MaxPoolBwd, MaxPoolFwd, MaxPoolParams, OneHot, OneHotParams, Pack, PackParams, SparseHead, SparseHeadParams,
    Unpack,
};
use crate::error::BackendError;
use cudarc::driver::DriverError;
use launch::KernelDevice;
use std::sync::Arc;

/// The oldest driver chromax's CUDA backend is built for: CUDA 13.0.
const MIN_DRIVER_VERSION: i32 = 13000;

/// One CUDA device as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaDeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub total_memory: usize,
    pub compute_capability: (i32, i32),
    pub multiprocessors: i32,
}

/// What [`probe`] found: the driver, NVRTC and the devices, and the reason CUDA cannot be
/// used if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaProbe {
    /// CUDA version the driver supports, e.g. (13, 0).
    pub driver_version: (i32, i32),
    pub nvrtc_version: Option<(i32, i32)>,
    pub devices: Vec<CudaDeviceInfo>,
    /// Why the devices cannot run chromax's kernels, if they cannot.
    pub problem: Option<String>,
}

/// Looks for a usable CUDA driver, devices and NVRTC. Never panics: an absent driver is
/// `Err(CudaUnavailable("no NVIDIA driver…"))`; an absent or mismatched NVRTC is reported in
/// [`CudaProbe::problem`] with the devices still listed.
pub fn probe() -> BackendResult<CudaProbe> {
    std::panic::catch_unwind(probe_driver).unwrap_or_else(|_| {
        Err(BackendError::CudaUnavailable(
            "the CUDA driver library loaded but a call into it failed (a driver older than CUDA 13.0?)".into(),
        ))
    })
}

pub(crate) fn unavailable(what: impl Into<String>) -> BackendError {
    BackendError::CudaUnavailable(what.into())
}

fn probe_driver() -> BackendResult<CudaProbe> {
    use cudarc::driver::{result, sys};
    // SAFETY: only tries to dlopen the candidate library names; no symbol is called.
    if !unsafe { sys::is_culib_present() } {
        return Err(unavailable(
            "no NVIDIA driver: libcuda.so could not be loaded (no GPU, or the driver is not installed)",
        ));
    }
    result::init().map_err(|e| unavailable(format!("the NVIDIA driver failed to initialise: {e}")))?;
    let mut version = 0;
    // SAFETY: the driver is loaded and initialised; the pointer is valid for a write.
    unsafe { sys::cuDriverGetVersion(&mut version) }
        .result()
        .map_err(|e| unavailable(format!("cannot read the driver version: {e}")))?;
    let driver_version = (version / 1000, (version % 1000) / 10);
    let count = result::device::get_count().map_err(|e| unavailable(format!("cannot count CUDA devices: {e}")))?;
    if count <= 0 {
        return Err(unavailable("the NVIDIA driver is loaded but reports no CUDA device"));
    }
    let mut devices = Vec::new();
    for ordinal in 0..count {
        let err = |e: DriverError| unavailable(format!("cannot query CUDA device {ordinal}: {e}"));
        let dev = result::device::get(ordinal).map_err(err)?;
        let attr = |a| {
            // SAFETY: dev is a valid device handle from cuDeviceGet.
            unsafe { result::device::get_attribute(dev, a) }.map_err(err)
        };
        devices.push(CudaDeviceInfo {
            ordinal: ordinal as usize,
            name: result::device::get_name(dev).map_err(err)?,
            // SAFETY: dev is a valid device handle from cuDeviceGet.
            total_memory: unsafe { result::device::total_mem(dev) }.map_err(err)?,
            compute_capability: (
                attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
                attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
            ),
            multiprocessors: attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
        });
    }

    let nvrtc_version = compile::nvrtc_version();
    let problem = if version < MIN_DRIVER_VERSION {
        Some(format!(
            "the driver supports CUDA {}.{} but chromax's CUDA backend needs 13.0 or newer: update the NVIDIA driver",
            driver_version.0, driver_version.1
        ))
    } else {
        match nvrtc_version {
            None => Some(compile::nvrtc_missing_message()),
            Some(v) if v > driver_version => Some(format!(
                "NVRTC {}.{} is newer than the driver's CUDA {}.{}: the driver would reject its PTX; \
                 use NVRTC {}.{} (e.g. pip install nvidia-cuda-nvrtc=={}.{}.*)",
                v.0,
                v.1,
                driver_version.0,
                driver_version.1,
                driver_version.0,
                driver_version.1,
                driver_version.0,
                driver_version.1
            )),
            Some(_) => None,
        }
    };
    Ok(CudaProbe { driver_version, nvrtc_version, devices, problem })
}

/// Which bf16 tensor-core kernel file takes a convolution shape: one rule for the CUDA
/// backend's dispatch and for the CPU's reference of its numerics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TensorCoreKernel {
    /// kernels/conv1d_mma.cu: 2–16 input, ≤ 16 output channels (DenoiseNet's layers).
    FewChannels,
    /// kernels/conv1d_igemm.cu: wide convolutions of dilation 1 (SeqNet's).
    ImplicitGemm,
}

impl TensorCoreKernel {
    pub(crate) fn for_shape(p: &Conv1dParams) -> Option<Self> {
        if conv1d_mma::eligible(p) {
            Some(TensorCoreKernel::FewChannels)
        } else if conv1d_igemm::eligible(p) {
            Some(TensorCoreKernel::ImplicitGemm)
        } else {
            None
        }
    }
}

/// The [`Backend`] over a [`KernelDevice`]: f32 buffers, ops launched as the kernels of
/// `kernels/`.
pub struct KernelBackend<D> {
    device: D,
    /// Convolutions of at most 16 channels on the tensor cores (bf16 operands, f32 sums).
    bf16_convolutions: bool,
}

/// The CUDA backend on one device.
pub type CudaBackend = KernelBackend<CudaDevice>;

impl<D: KernelDevice> KernelBackend<D> {
    /// The backend over `device`.
    pub fn on(device: D) -> Self {
        KernelBackend { device, bf16_convolutions: false }
    }

    /// The same backend with convolutions on the tensor cores, bf16 operands and f32 sums:
    /// DenoiseNet's few-channel layers (`conv1d_mma`) and wide convolutions of dilation 1
    /// (`conv1d_igemm`, SeqNet's), forward and both gradients. The first convolution of a coverage input (1 → 15) and 1 × 1
    /// convolutions of few channels stay f32.
    pub fn with_bf16_convolutions(mut self, on: bool) -> Self {
        self.bf16_convolutions = on;
        self
    }

    /// Whether few-channel convolutions run in bf16 on the tensor cores.
    pub fn bf16_convolutions(&self) -> bool {
        self.bf16_convolutions
    }

    /// The tensor-core kernel this backend runs a convolution on, if any.
    fn tensor_core_kernel(&self, p: &Conv1dParams) -> Option<TensorCoreKernel> {
        if self.bf16_convolutions {
            TensorCoreKernel::for_shape(p)
        } else {
            None
        }
    }

    pub fn device(&self) -> &D {
        &self.device
    }
}

impl CudaBackend {
    /// Opens device `ordinal` (`cuda:N`). Fails with a one-line reason when CUDA is not usable.
    pub fn new(ordinal: usize) -> BackendResult<Self> {
        Ok(KernelBackend::on(CudaDevice::new(ordinal)?))
    }

    pub fn info(&self) -> &CudaDeviceInfo {
        self.device.info()
    }

    /// The architecture kernels are compiled for, e.g. `sm_90`.
    pub fn arch(&self) -> &str {
        self.device.arch()
    }

    pub fn stream(&self) -> &Arc<cudarc::driver::CudaStream> {
        self.device.stream()
    }
}

/// Maps a driver error to a backend error that says what was being done.
pub(crate) fn driver_err(context: impl Into<String>) -> impl FnOnce(DriverError) -> BackendError {
    let context = context.into();
    move |e| BackendError::Cuda { context, message: e.to_string() }
}

/// A shape dimension as the `int` the kernels take, or an error naming it.
pub(crate) fn as_i32(op: &'static str, name: &str, v: usize) -> BackendResult<i32> {
    i32::try_from(v).map_err(|_| BackendError::Unsupported {
        op,
        what: format!("{name} = {v} exceeds the CUDA kernels' 32-bit index range ({})", i32::MAX),
    })
}

impl<D: KernelDevice> Backend for KernelBackend<D> {
    type Elem = f32;
    type Buf = D::Buf;

    fn describe(&self) -> String {
        let precision = if self.bf16_convolutions { ", bf16 tensor-core convolutions" } else { "" };
        format!("{}{precision}", self.device.describe())
    }

    fn zeros(&self, len: usize) -> BackendResult<D::Buf> {
        self.device.zeros(len)
    }

    fn upload(&self, host: &[f32]) -> BackendResult<D::Buf> {
        self.device.upload(host)
    }

    fn download(&self, buf: &D::Buf, host: &mut [f32]) -> BackendResult<()> {
        check_len("download", "host", host.len(), buf.buf_len())?;
        self.device.download(buf, host)
    }

    fn copy_from_host(&self, host: &[f32], buf: &mut D::Buf) -> BackendResult<()> {
        check_len("copy_from_host", "host", host.len(), buf.buf_len())?;
        self.device.copy_from_host(host, buf)
    }

    fn synchronize(&self) -> BackendResult<()> {
        self.device.synchronize()
    }

    fn free_memory(&self) -> Option<usize> {
        self.device.free_memory()
    }

    fn host_buffer(&self, len: usize) -> BackendResult<HostBuffer> {
        self.device.host_buffer(len)
    }

    fn upload_f32(&self, host: &[f32]) -> BackendResult<D::Buf> {
        self.device.upload(host)
    }

    fn conv1d_fwd(&self, p: &Conv1dParams, b: Conv1dFwd<'_, D::Buf>) -> BackendResult<()> {
        match self.tensor_core_kernel(p) {
            Some(TensorCoreKernel::FewChannels) => conv1d_mma::conv1d_fwd(&self.device, p, b),
            Some(TensorCoreKernel::ImplicitGemm) => conv1d_igemm::conv1d_fwd(&self.device, p, b),
            None => conv1d::conv1d_fwd(&self.device, p, b),
        }
    }

    fn conv1d_fwd_then(
        &self,
        p: &Conv1dParams,
        b: Conv1dFwd<'_, D::Buf>,
        epilogue: Epilogue<'_, D::Buf>,
    ) -> BackendResult<()> {
        // The direct and few-channel kernels apply it as they store; the implicit GEMM (SeqNet's
        // wide layers, which have no such epilogue) through the element-wise kernels.
        match self.tensor_core_kernel(p) {
            Some(TensorCoreKernel::FewChannels) => conv1d_mma::conv1d_fwd_then(&self.device, p, b, Some(epilogue)),
            Some(TensorCoreKernel::ImplicitGemm) => super::unfused_conv1d_fwd_then(self, p, b, epilogue),
            None => conv1d::conv1d_fwd_then(&self.device, p, b, Some(epilogue)),
        }
    }

    fn packs(&self, p: &Conv1dParams) -> bool {
        self.tensor_core_kernel(p) == Some(TensorCoreKernel::FewChannels)
    }

    fn packed_len(&self, batch: usize, len: usize) -> usize {
        conv1d_mma::packed_len(batch, len)
    }

    fn pack(&self, p: &PackParams, b: Pack<'_, D::Buf>) -> BackendResult<()> {
        conv1d_mma::pack(&self.device, p, b)
    }

    fn unpack(&self, p: &PackParams, b: Unpack<'_, D::Buf>) -> BackendResult<()> {
        conv1d_mma::unpack(&self.device, p, b)
    }

    fn conv1d_fwd_packed(
        &self,
        p: &Conv1dParams,
        b: Conv1dFwd<'_, D::Buf>,
        epilogue: Option<Epilogue<'_, D::Buf>>,
    ) -> BackendResult<()> {
        if !self.packs(p) {
            return Err(crate::backend::not_packed("conv1d_fwd_packed", &self.describe(), Some(p)));
        }
        conv1d_mma::conv1d_fwd_packed(&self.device, p, b, epilogue)
    }

    /// The f32 kernels whatever the precision.
    fn conv1d_fwd_f32(
        &self,
        p: &Conv1dParams,
        b: Conv1dFwd<'_, D::Buf>,
        epilogue: Option<Epilogue<'_, D::Buf>>,
    ) -> BackendResult<()> {
        conv1d::conv1d_fwd_then(&self.device, p, b, epilogue)
    }

    fn conv1d_bwd_weight_f32(&self, p: &Conv1dParams, b: Conv1dBwdWeight<'_, D::Buf>) -> BackendResult<()> {
        conv1d::conv1d_bwd_weight(&self.device, p, b)
    }

    fn conv1d_bwd_weight_packed(&self, p: &Conv1dParams, b: Conv1dBwdWeight<'_, D::Buf>) -> BackendResult<()> {
        if !self.packs(p) {
            return Err(crate::backend::not_packed("conv1d_bwd_weight_packed", &self.describe(), Some(p)));
        }
        conv1d_mma::conv1d_bwd_weight_packed(&self.device, p, b)
    }

    fn conv1d_bwd_input(&self, p: &Conv1dParams, b: Conv1dBwdInput<'_, D::Buf>) -> BackendResult<()> {
        match self.tensor_core_kernel(p) {
            Some(TensorCoreKernel::FewChannels) => conv1d_mma::conv1d_bwd_input(&self.device, p, b),
            Some(TensorCoreKernel::ImplicitGemm) => conv1d_igemm::conv1d_bwd_input(&self.device, p, b),
            None => conv1d::conv1d_bwd_input(&self.device, p, b),
        }
    }

    fn conv1d_bwd_weight(&self, p: &Conv1dParams, b: Conv1dBwdWeight<'_, D::Buf>) -> BackendResult<()> {
        match self.tensor_core_kernel(p) {
            Some(TensorCoreKernel::FewChannels) => conv1d_mma::conv1d_bwd_weight(&self.device, p, b),
            Some(TensorCoreKernel::ImplicitGemm) => conv1d_igemm::conv1d_bwd_weight(&self.device, p, b),
            None => conv1d::conv1d_bwd_weight(&self.device, p, b),
        }
    }

    fn elementwise(&self, op: ElementwiseOp, b: Elementwise<'_, D::Buf>) -> BackendResult<()> {
        elementwise::elementwise(&self.device, op, b)
    }

    fn one_hot(&self, p: &OneHotParams, b: OneHot<'_, D::Buf>) -> BackendResult<()> {
        onehot::one_hot(&self.device, p, b)
    }

    fn dropout_fwd(&self, p: &DropoutParams, b: DropoutFwd<'_, D::Buf>) -> BackendResult<()> {
        dropout::dropout_fwd(&self.device, p, b)
    }

    fn dropout_bwd(&self, p: &DropoutParams, b: DropoutBwd<'_, D::Buf>) -> BackendResult<()> {
        dropout::dropout_bwd(&self.device, p, b)
    }

    fn batchnorm_fwd_train(&self, p: &BatchNormParams, b: BatchNormFwdTrain<'_, D::Buf>) -> BackendResult<()> {
        norm::fwd_train(&self.device, p, b)
    }

    fn batchnorm_fwd_infer(&self, p: &BatchNormParams, b: BatchNormFwdInfer<'_, D::Buf>) -> BackendResult<()> {
        norm::fwd_infer(&self.device, p, b)
    }

    fn batchnorm_bwd(&self, p: &BatchNormParams, b: BatchNormBwd<'_, D::Buf>) -> BackendResult<()> {
        norm::bwd(&self.device, p, b)
    }

    fn maxpool_fwd(&self, p: &MaxPoolParams, b: MaxPoolFwd<'_, D::Buf>) -> BackendResult<()> {
        pool::maxpool_fwd(&self.device, p, b)
    }

    fn maxpool_bwd(&self, p: &MaxPoolParams, b: MaxPoolBwd<'_, D::Buf>) -> BackendResult<()> {
        pool::maxpool_bwd(&self.device, p, b)
    }

    fn denoise_loss(&self, p: &DenoiseLossParams, b: DenoiseLoss<'_, D::Buf>) -> BackendResult<LossParts> {
        loss::denoise_loss(&self.device, p, b)
    }

    fn adam_step(&self, p: &AdamParams, b: AdamStep<'_, D::Buf>) -> BackendResult<()> {
        optim::adam_step(&self.device, p, b)
    }

    fn sparse_head(&self, p: &SparseHeadParams, b: SparseHead<'_, D::Buf>) -> BackendResult<f64> {
        sparse_head::sparse_head(&self.device, p, b)
    }

    fn head_roc_histogram(
        &self,
        p: &SparseHeadParams,
        b: HeadLogits<'_, D::Buf>,
        per_row: bool,
    ) -> BackendResult<Vec<u64>> {
        sparse_head::head_roc_histogram(&self.device, p, b, per_row)
    }
    fn upload_rows(&self, indptr: &[u32], indices: &[u32]) -> BackendResult<Option<(D::Buf, D::Buf)>> {
        sparse_head::upload_rows(&self.device, indptr, indices).map(Some)
    }
}
