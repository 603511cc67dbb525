//! The compute backends: one trait, a params struct and named buffers per op,
//! destination-passing.
//!
//! Every op reads its inputs and writes destination buffers the caller allocated, with the
//! shapes given by the op's params struct and the buffers named by a struct of the op and
//! direction ([`ops`]). Each buffer struct has the op's one length check, which every
//! implementation calls first: a mismatch is an error naming the op and the buffer, never a
//! panic.
//!
//! * [`cpu::CpuBackend`] — f32, rayon, long reductions in f64. It is the specification:
//!   the generic functions under [`cpu`] also run in f64 for the gradient checks.
//! * [`cuda::CudaBackend`] — the kernels of `kernels/`, compiled by NVRTC on first use.
//! * [`cuda::emulator::EmulatedBackend`] — the same kernels and the same launch code, compiled
//!   as C++ for the host: the CUDA backend's logic checked on machines without a GPU.
//! * [`BackendWrapper`] — a backend built on another, overriding allocation or description
//!   (e.g. a small simulated device memory in tests) while every op runs on the inner one.
//!
//! Tensors are flat row-major buffers; conv activations are laid out (batch, channels,
//! length) and conv weights (c_out, c_in, kernel).

pub mod cpu;
pub mod cuda;
pub mod ops;
mod select;

pub(crate) use ops::check_len;
pub use ops::{
    dropout_keep, roc_bin, AdamParams, AdamStep, BatchNormBwd, BatchNormFwdInfer, BatchNormFwdTrain, BatchNormParams,
    Conv1dBwdInput, Conv1dBwdWeight, Conv1dFwd, Conv1dParams, DenoiseLoss, DenoiseLossParams, DropoutBwd, DropoutFwd,
    DropoutParams, Elementwise, ElementwiseOp, Epilogue, HeadLogits, HeadRows, LossParts, MaxPoolBwd, MaxPoolFwd,
    MaxPoolParams, OneHot, OneHotParams, Pack, PackParams, SparseHead, SparseHeadParams, Unpack, GELU_SLOPE,
    PACKED_CHANNELS, ROC_BINS,
};
pub use select::{default_cuda_precision, select, select_precision, Compute, Precision, Selected};

use crate::error::BackendError;

pub type BackendResult<T> = std::result::Result<T, BackendError>;

/// Where to compute: `cpu`, `cuda` (device 0) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for Device {
    type Err = BackendError;

    fn from_str(s: &str) -> BackendResult<Self> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            _ => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(Device::Cuda)
                .ok_or_else(|| BackendError::DeviceSpec(s.to_string())),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The number of values a buffer holds: host slices and vectors, device buffers.
pub trait BufLen {
    fn buf_len(&self) -> usize;
}

impl<T> BufLen for [T] {
    fn buf_len(&self) -> usize {
        self.len()
    }
}

impl<T> BufLen for Vec<T> {
    fn buf_len(&self) -> usize {
        self.len()
    }
}

impl<T> BufLen for cudarc::driver::CudaSlice<T> {
    fn buf_len(&self) -> usize {
        self.len()
    }
}

/// Host memory that batches are assembled in before they go to the device: plain memory for
/// the CPU, page-locked (pinned) memory on CUDA, which the GPU reads by DMA without a staging
/// copy.
pub enum HostBuffer {
    Plain(Vec<f32>),
    Pinned(cudarc::driver::PinnedHostSlice<f32>),
}

impl HostBuffer {
    pub fn len(&self) -> usize {
        match self {
            HostBuffer::Plain(v) => v.len(),
            HostBuffer::Pinned(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values (waits for a pending copy out of pinned memory first).
    pub fn as_slice(&self) -> BackendResult<&[f32]> {
        match self {
            HostBuffer::Plain(v) => Ok(v),
            HostBuffer::Pinned(p) => p.as_slice().map_err(|e| BackendError::Cuda {
                context: "reading pinned host memory".into(),
                message: e.to_string(),
            }),
        }
    }

    /// The values, for writing (waits for a pending copy out of pinned memory first).
    pub fn as_mut_slice(&mut self) -> BackendResult<&mut [f32]> {
        match self {
            HostBuffer::Plain(v) => Ok(v),
            HostBuffer::Pinned(p) => p.as_mut_slice().map_err(|e| BackendError::Cuda {
                context: "writing pinned host memory".into(),
                message: e.to_string(),
            }),
        }
    }
}

/// A compute backend: memory, then one method per op and direction, each taking the op's
/// params and its named buffers (see [`ops`]) and writing into the destination buffers.
///
/// Buffers hold [`Backend::Elem`]: f32 on every production backend; the CPU specification
/// also runs in f64 (`CpuBackend<f64>`) so whole models can be checked by finite differences.
pub trait Backend: Send + Sync {
    /// The element type of buffers (f32, or f64 for the CPU specification in checks).
    type Elem: Copy + Send + Sync + Default + From<f32> + Into<f64> + std::fmt::Debug + 'static;
    /// A buffer of values on this backend's device.
    type Buf: Send + BufLen;

    /// A one-line description, e.g. `cpu (2 threads)` or `cuda:0 NVIDIA H200`.
    fn describe(&self) -> String;

    /// A zero-filled buffer of `len` values.
    fn zeros(&self, len: usize) -> BackendResult<Self::Buf>;
    /// A buffer holding a copy of `host`.
    fn upload(&self, host: &[Self::Elem]) -> BackendResult<Self::Buf>;
    /// Copies `buf` into `host` (same length), waiting for pending work.
    fn download(&self, buf: &Self::Buf, host: &mut [Self::Elem]) -> BackendResult<()>;
    /// Overwrites `buf` with `host` (same length).
    fn copy_from_host(&self, host: &[Self::Elem], buf: &mut Self::Buf) -> BackendResult<()>;
    /// Waits until all queued work has finished.
    fn synchronize(&self) -> BackendResult<()>;
    /// Free device memory in bytes, where the device reports it (not for the CPU).
    fn free_memory(&self) -> Option<usize> {
        None
    }
    /// Host memory of `len` values to assemble batches in (pinned on CUDA).
    fn host_buffer(&self, len: usize) -> BackendResult<HostBuffer> {
        Ok(HostBuffer::Plain(vec![0.0; len]))
    }
    /// A device buffer holding `host` (f32 values converted to the element type).
    fn upload_f32(&self, host: &[f32]) -> BackendResult<Self::Buf> {
        let converted: Vec<Self::Elem> = host.iter().map(|&v| Self::Elem::from(v)).collect();
        self.upload(&converted)
    }

    /// See [`Conv1dFwd`].
    fn conv1d_fwd(&self, p: &Conv1dParams, b: Conv1dFwd<'_, Self::Buf>) -> BackendResult<()>;
    /// [`Conv1dFwd`] followed by `epilogue` on its output (see [`Epilogue`]). By default the
    /// element-wise ops it stands for, through a temporary buffer; a backend fuses them where it
    /// can (the CPU's direct convolutions apply it to each output tile while it is in cache).
    fn conv1d_fwd_then(
        &self,
        p: &Conv1dParams,
        b: Conv1dFwd<'_, Self::Buf>,
        epilogue: Epilogue<'_, Self::Buf>,
    ) -> BackendResult<()> {
        unfused_conv1d_fwd_then(self, p, b, epilogue)
    }
    /// Whether this backend keeps the activations of convolution `p` packed (channels-last
    /// bf16, [`PackParams`]) and runs it by [`Backend::conv1d_fwd_packed`]: where its
    /// convolutions of that shape take bf16 operands anyway (CUDA's tensor-core convolutions of
    /// at most 16 channels, and the CPU's reference of their numerics), so packing rounds
    /// nothing that the convolution would not. None by default.
    fn packs(&self, p: &Conv1dParams) -> bool {
        let _ = p;
        false
    }
    /// Buffer values a packed activation of `batch × len` positions takes: one value a
    /// channel by default (the CPU's bf16-rounded values), two bf16 a 32-bit word on CUDA.
    fn packed_len(&self, batch: usize, len: usize) -> usize {
        batch * len * PACKED_CHANNELS
    }
    /// See [`Pack`]. Only where [`Backend::packs`] says so; an error by default.
    fn pack(&self, p: &PackParams, b: Pack<'_, Self::Buf>) -> BackendResult<()> {
        let _ = (p, b);
        Err(not_packed("pack", &self.describe(), None))
    }
    /// See [`Unpack`]. Only where [`Backend::packs`] says so; an error by default.
    fn unpack(&self, p: &PackParams, b: Unpack<'_, Self::Buf>) -> BackendResult<()> {
        let _ = (p, b);
        Err(not_packed("unpack", &self.describe(), None))
    }
    /// [`Backend::conv1d_fwd_then`] (or, with `epilogue` `None`, [`Backend::conv1d_fwd`]) with
    /// x, y and the residual packed: y is the convolution of the unpacked x, the epilogue on
    /// it, rounded to bf16 as [`Backend::pack`] rounds. Only for the shapes [`Backend::packs`]
    /// takes; an error by default.
    fn conv1d_fwd_packed(
        &self,
        p: &Conv1dParams,
        b: Conv1dFwd<'_, Self::Buf>,
        epilogue: Option<Epilogue<'_, Self::Buf>>,
    ) -> BackendResult<()> {
        let _ = (b, epilogue);
        Err(not_packed("conv1d_fwd_packed", &self.describe(), Some(p)))
    }
    /// [`Backend::conv1d_fwd`] (`epilogue` `None`) or [`Backend::conv1d_fwd_then`] with f32
    /// operands whatever this backend's precision: for an input that bf16 would round, a
    /// coverage track (values above 256 lose precision in bf16). By default the op itself (a
    /// backend whose operands are f32 anyway); the backends with bf16 convolutions override it.
    fn conv1d_fwd_f32(
        &self,
        p: &Conv1dParams,
        b: Conv1dFwd<'_, Self::Buf>,
        epilogue: Option<Epilogue<'_, Self::Buf>>,
    ) -> BackendResult<()> {
        match epilogue {
            None => self.conv1d_fwd(p, b),
            Some(e) => self.conv1d_fwd_then(p, b, e),
        }
    }
    /// [`Backend::conv1d_bwd_weight`] with f32 operands (see [`Backend::conv1d_fwd_f32`]).
    fn conv1d_bwd_weight_f32(&self, p: &Conv1dParams, b: Conv1dBwdWeight<'_, Self::Buf>) -> BackendResult<()> {
        self.conv1d_bwd_weight(p, b)
    }
    /// [`Backend::conv1d_bwd_weight`] with the forward input x packed (dy f32 as there). Only
    /// for the shapes [`Backend::packs`] takes; an error by default.
    fn conv1d_bwd_weight_packed(&self, p: &Conv1dParams, b: Conv1dBwdWeight<'_, Self::Buf>) -> BackendResult<()> {
        let _ = b;
        Err(not_packed("conv1d_bwd_weight_packed", &self.describe(), Some(p)))
    }
    /// See [`Conv1dBwdInput`].
    fn conv1d_bwd_input(&self, p: &Conv1dParams, b: Conv1dBwdInput<'_, Self::Buf>) -> BackendResult<()>;
    /// See [`Conv1dBwdWeight`].
    fn conv1d_bwd_weight(&self, p: &Conv1dParams, b: Conv1dBwdWeight<'_, Self::Buf>) -> BackendResult<()>;
    /// Every element-wise op, forward and backward (see [`ElementwiseOp`]).
    fn elementwise(&self, op: ElementwiseOp, b: Elementwise<'_, Self::Buf>) -> BackendResult<()>;
    /// See [`OneHot`].
    fn one_hot(&self, p: &OneHotParams, b: OneHot<'_, Self::Buf>) -> BackendResult<()>;
    /// See [`DropoutFwd`].
    fn dropout_fwd(&self, p: &DropoutParams, b: DropoutFwd<'_, Self::Buf>) -> BackendResult<()>;
    /// See [`DropoutBwd`].
    fn dropout_bwd(&self, p: &DropoutParams, b: DropoutBwd<'_, Self::Buf>) -> BackendResult<()>;
    /// See [`BatchNormFwdTrain`].
    fn batchnorm_fwd_train(&self, p: &BatchNormParams, b: BatchNormFwdTrain<'_, Self::Buf>) -> BackendResult<()>;
    /// See [`BatchNormFwdInfer`].
    fn batchnorm_fwd_infer(&self, p: &BatchNormParams, b: BatchNormFwdInfer<'_, Self::Buf>) -> BackendResult<()>;
    /// See [`BatchNormBwd`].
    fn batchnorm_bwd(&self, p: &BatchNormParams, b: BatchNormBwd<'_, Self::Buf>) -> BackendResult<()>;
    /// See [`MaxPoolFwd`].
    fn maxpool_fwd(&self, p: &MaxPoolParams, b: MaxPoolFwd<'_, Self::Buf>) -> BackendResult<()>;
    /// See [`MaxPoolBwd`].
    fn maxpool_bwd(&self, p: &MaxPoolParams, b: MaxPoolBwd<'_, Self::Buf>) -> BackendResult<()>;
    /// The fused denoising loss (see [`DenoiseLossParams`], [`DenoiseLoss`]): writes the
    /// gradients and returns the loss.
    fn denoise_loss(&self, p: &DenoiseLossParams, b: DenoiseLoss<'_, Self::Buf>) -> BackendResult<LossParts>;
    /// See [`AdamStep`].
    fn adam_step(&self, p: &AdamParams, b: AdamStep<'_, Self::Buf>) -> BackendResult<()>;
    /// The per-cell sigmoid head (see [`SparseHeadParams`], [`SparseHead`]): writes dz, dw,
    /// dbias and returns the mean BCE.
    fn sparse_head(&self, p: &SparseHeadParams, b: SparseHead<'_, Self::Buf>) -> BackendResult<f64>;
    /// Histogram of the per-cell head's logits for an AUROC without sorting batch × cells
    /// values: `logit[i, c] = z[i]·w[c] + bias[c]` as in [`Backend::sparse_head`], each
    /// counted in bin [`roc_bin`]`(logit)` as a positive (c in row i) or a negative. With
    /// `per_row` false, returns 2·[`ROC_BINS`] counts: positives per bin, then negatives per
    /// bin; with `per_row` true, batch such blocks, row i's first. No batch × cells array is
    /// formed.
    fn head_roc_histogram(
        &self,
        p: &SparseHeadParams,
        b: HeadLogits<'_, Self::Buf>,
        per_row: bool,
    ) -> BackendResult<Vec<u64>>;
    /// A batch's CSR rows copied to the device once, for [`HeadRows::with_device`], so that
    /// [`Backend::sparse_head`] and [`Backend::head_roc_histogram`] of the same batch share one
    /// upload. `None` where ops read the rows from host memory (the CPU).
    fn upload_rows(&self, indptr: &[u32], indices: &[u32]) -> BackendResult<Option<(Self::Buf, Self::Buf)>> {
        let _ = (indptr, indices);
        Ok(None)
    }
}

/// The error of a packed-activation op on a backend (`described`) that keeps no packed
/// activations, or none of convolution `p`'s shape.
pub(crate) fn not_packed(op: &'static str, described: &str, p: Option<&Conv1dParams>) -> BackendError {
    let what = match p {
        Some(p) => format!("{described} keeps no packed activations of {p:?} (see Backend::packs)"),
        None => format!("{described} keeps no packed activations"),
    };
    BackendError::Unsupported { op, what }
}

/// [`Backend::conv1d_fwd_then`] as the ops it stands for: the convolution into a temporary,
/// then the element-wise add (with a residual) and ReLU.
pub fn unfused_conv1d_fwd_then<B: Backend + ?Sized>(
    backend: &B,
    p: &Conv1dParams,
    b: Conv1dFwd<'_, B::Buf>,
    epilogue: Epilogue<'_, B::Buf>,
) -> BackendResult<()> {
    b.check(p)?;
    epilogue.check(p)?;
    let Conv1dFwd { x, w, bias, y } = b;
    let mut z = backend.zeros(p.output_len())?;
    backend.conv1d_fwd(p, Conv1dFwd { x, w, bias, y: &mut z })?;
    if let Epilogue::AddRelu(r) = epilogue {
        let mut sum = backend.zeros(p.output_len())?;
        backend.elementwise(ElementwiseOp::Add, Elementwise { a: &z, b: Some(r), out: &mut sum })?;
        z = sum;
    }
    backend.elementwise(ElementwiseOp::ReluFwd, Elementwise { a: &z, b: None, out: y })
}

/// A backend built on another: it may replace the description and the memory methods
/// (allocation, copies, free memory), and every op runs on [`BackendWrapper::inner`]
/// unchanged. Implementing this trait makes the type a [`Backend`].
///
/// ```
/// use chromax::backend::{cpu::CpuBackend, Backend, BackendResult, BackendWrapper};
/// use chromax::error::BackendError;
///
/// /// The CPU, refusing any buffer above 1,000 values as an out-of-memory device would.
/// struct Tiny(CpuBackend);
/// impl BackendWrapper for Tiny {
///     type Inner = CpuBackend;
///     fn inner(&self) -> &CpuBackend {
///         &self.0
///     }
///     fn zeros(&self, len: usize) -> BackendResult<Vec<f32>> {
///         if len > 1000 {
///             return Err(BackendError::OutOfMemory { device: "tiny".into(), requested_mib: 0.0, free_mib: 0.0 });
///         }
///         self.0.zeros(len)
///     }
/// }
/// let tiny = Tiny(CpuBackend::new());
/// assert!(Backend::zeros(&tiny, 1001).is_err());
/// assert_eq!(Backend::zeros(&tiny, 1000)?.len(), 1000);
/// # Ok::<(), BackendError>(())
/// ```
pub trait BackendWrapper: Send + Sync {
    type Inner: Backend;

    fn inner(&self) -> &Self::Inner;

    fn describe(&self) -> String {
        self.inner().describe()
    }
    fn zeros(&self, len: usize) -> BackendResult<<Self::Inner as Backend>::Buf> {
        self.inner().zeros(len)
    }
    fn upload(&self, host: &[<Self::Inner as Backend>::Elem]) -> BackendResult<<Self::Inner as Backend>::Buf> {
        self.inner().upload(host)
    }
    fn free_memory(&self) -> Option<usize> {
        self.inner().free_memory()
    }
}

impl<W: BackendWrapper> Backend for W {
    type Elem = <W::Inner as Backend>::Elem;
    type Buf = <W::Inner as Backend>::Buf;

    fn describe(&self) -> String {
        BackendWrapper::describe(self)
    }
    fn zeros(&self, len: usize) -> BackendResult<Self::Buf> {
        BackendWrapper::zeros(self, len)
    }
    fn upload(&self, host: &[Self::Elem]) -> BackendResult<Self::Buf> {
        BackendWrapper::upload(self, host)
    }
    fn download(&self, buf: &Self::Buf, host: &mut [Self::Elem]) -> BackendResult<()> {
        self.inner().download(buf, host)
    }
    fn copy_from_host(&self, host: &[Self::Elem], buf: &mut Self::Buf) -> BackendResult<()> {
        self.inner().copy_from_host(host, buf)
    }
    fn synchronize(&self) -> BackendResult<()> {
        self.inner().synchronize()
    }
    fn free_memory(&self) -> Option<usize> {
        BackendWrapper::free_memory(self)
    }
    fn host_buffer(&self, len: usize) -> BackendResult<HostBuffer> {
        self.inner().host_buffer(len)
    }
    fn conv1d_fwd(&self, p: &Conv1dParams, b: Conv1dFwd<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().conv1d_fwd(p, b)
    }
    fn conv1d_fwd_then(
        &self,
        p: &Conv1dParams,
        b: Conv1dFwd<'_, Self::Buf>,
        epilogue: Epilogue<'_, Self::Buf>,
    ) -> BackendResult<()> {
        self.inner().conv1d_fwd_then(p, b, epilogue)
    }
    fn packs(&self, p: &Conv1dParams) -> bool {
        self.inner().packs(p)
    }
    fn packed_len(&self, batch: usize, len: usize) -> usize {
        self.inner().packed_len(batch, len)
    }
    fn pack(&self, p: &PackParams, b: Pack<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().pack(p, b)
    }
    fn unpack(&self, p: &PackParams, b: Unpack<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().unpack(p, b)
    }
    fn conv1d_fwd_packed(
        &self,
        p: &Conv1dParams,
        b: Conv1dFwd<'_, Self::Buf>,
        epilogue: Option<Epilogue<'_, Self::Buf>>,
    ) -> BackendResult<()> {
        self.inner().conv1d_fwd_packed(p, b, epilogue)
    }
    fn conv1d_bwd_weight_packed(&self, p: &Conv1dParams, b: Conv1dBwdWeight<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().conv1d_bwd_weight_packed(p, b)
    }
    fn conv1d_fwd_f32(
        &self,
        p: &Conv1dParams,
        b: Conv1dFwd<'_, Self::Buf>,
        epilogue: Option<Epilogue<'_, Self::Buf>>,
    ) -> BackendResult<()> {
        self.inner().conv1d_fwd_f32(p, b, epilogue)
    }
    fn conv1d_bwd_weight_f32(&self, p: &Conv1dParams, b: Conv1dBwdWeight<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().conv1d_bwd_weight_f32(p, b)
    }
    fn conv1d_bwd_input(&self, p: &Conv1dParams, b: Conv1dBwdInput<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().conv1d_bwd_input(p, b)
    }
    fn conv1d_bwd_weight(&self, p: &Conv1dParams, b: Conv1dBwdWeight<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().conv1d_bwd_weight(p, b)
    }
    fn elementwise(&self, op: ElementwiseOp, b: Elementwise<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().elementwise(op, b)
    }
    fn one_hot(&self, p: &OneHotParams, b: OneHot<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().one_hot(p, b)
    }
    fn dropout_fwd(&self, p: &DropoutParams, b: DropoutFwd<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().dropout_fwd(p, b)
    }
    fn dropout_bwd(&self, p: &DropoutParams, b: DropoutBwd<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().dropout_bwd(p, b)
    }
    fn batchnorm_fwd_train(&self, p: &BatchNormParams, b: BatchNormFwdTrain<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().batchnorm_fwd_train(p, b)
    }
    fn batchnorm_fwd_infer(&self, p: &BatchNormParams, b: BatchNormFwdInfer<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().batchnorm_fwd_infer(p, b)
    }
    fn batchnorm_bwd(&self, p: &BatchNormParams, b: BatchNormBwd<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().batchnorm_bwd(p, b)
    }
    fn maxpool_fwd(&self, p: &MaxPoolParams, b: MaxPoolFwd<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().maxpool_fwd(p, b)
    }
    fn maxpool_bwd(&self, p: &MaxPoolParams, b: MaxPoolBwd<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().maxpool_bwd(p, b)
    }
    fn denoise_loss(&self, p: &DenoiseLossParams, b: DenoiseLoss<'_, Self::Buf>) -> BackendResult<LossParts> {
        self.inner().denoise_loss(p, b)
    }
    fn adam_step(&self, p: &AdamParams, b: AdamStep<'_, Self::Buf>) -> BackendResult<()> {
        self.inner().adam_step(p, b)
    }
    fn sparse_head(&self, p: &SparseHeadParams, b: SparseHead<'_, Self::Buf>) -> BackendResult<f64> {
        self.inner().sparse_head(p, b)
    }
    fn head_roc_histogram(
        &self,
        p: &SparseHeadParams,
        b: HeadLogits<'_, Self::Buf>,
        per_row: bool,
    ) -> BackendResult<Vec<u64>> {
        self.inner().head_roc_histogram(p, b, per_row)
    }
    fn upload_rows(&self, indptr: &[u32], indices: &[u32]) -> BackendResult<Option<(Self::Buf, Self::Buf)>> {
        self.inner().upload_rows(indptr, indices)
    }
}
