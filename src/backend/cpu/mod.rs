//! The CPU backend: the specification every other backend is tested against.
//!
//! Each op is a generic function over [`Real`] (f32 here, f64 in the gradient checks) in
//! the file of the op's stem; [`CpuBackend`] runs them on `Vec<T>` buffers. Parallelism
//! is rayon's global pool (`--threads` sizes it).

mod amx;
mod conv1d;
pub mod direct;
mod dropout;
mod elementwise;
mod gemm;
pub(crate) mod loss;
mod norm;
mod onehot;
mod optim;
mod packed;
mod pool;
mod real;
mod sparse_head;

pub use conv1d::{conv1d_bwd_input, conv1d_bwd_weight, conv1d_fwd};

/// The reference loops of the ops that have fast paths: what the fast paths are tested
/// against, and all that [`CpuBackend::spec`] runs.
pub mod spec {
    pub use super::conv1d::spec::{conv1d_bwd_input, conv1d_bwd_weight, conv1d_fwd};
    pub use super::elementwise::elementwise_spec as elementwise;
}
pub use dropout::{dropout_bwd, dropout_fwd};
pub use elementwise::{elementwise, sigmoid};
pub use loss::denoise_loss;
pub use norm::{batchnorm_bwd, batchnorm_fwd_infer, batchnorm_fwd_train};
pub use onehot::one_hot;
pub use optim::adam_step;
pub use pool::{maxpool_bwd, maxpool_fwd};
pub use real::Real;
pub use sparse_head::{head_roc_histogram, sparse_head};

use super::{
    check_len, AdamParams, AdamStep, Backend, BackendResult, BatchNormBwd, BatchNormFwdInfer, BatchNormFwdTrain,
    BatchNormParams, BufLen, Conv1dBwdInput, Conv1dBwdWeight, Conv1dFwd, Conv1dParams, DenoiseLoss, DenoiseLossParams,
    DropoutBwd, DropoutFwd, DropoutParams, Elementwise, ElementwiseOp, Epilogue, HeadLogits, LossParts, MaxPoolBwd,
    MaxPoolFwd, MaxPoolParams, OneHot, OneHotParams, Pack, PackParams, SparseHead, SparseHeadParams, Unpack,
};

/// Bytes of memory the operating system can give this process now (Linux's MemAvailable),
/// if it says.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses a batch whose working memory on the host, `batch × bytes_per_item`, exceeds nine
/// tenths of what is available, saying which `--batch` would fit (device backends report
/// their own out-of-memory errors instead).
pub fn check_host_memory(what: &str, batch: usize, bytes_per_item: u64) -> Result<(), String> {
    let Some(available) = available_memory() else { return Ok(()) };
    let usable = available / 10 * 9;
    let need = (batch as u64).saturating_mul(bytes_per_item);
    if need <= usable {
        return Ok(());
    }
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    Err(format!(
        "--batch {batch}: {what} need about {:.1} GiB, and {:.1} GiB of memory is available: --batch {} would fit",
        gib(need),
        gib(available),
        (usable / bytes_per_item.max(1)).max(1)
    ))
}

/// Host memory the specification reads and writes: slices and vectors of its element type.
pub trait HostSlice<T>: AsRef<[T]> + AsMut<[T]> + BufLen {}

impl<T, S: AsRef<[T]> + AsMut<[T]> + BufLen + ?Sized> HostSlice<T> for S {}

/// The unit that multiplies the bf16 products of [`CpuBackend::with_bf16_gemm`] on this CPU:
/// AMX's tiles where the CPU and the OS allow them (Intel Sapphire Rapids and later), else
/// AVX512-BF16; None where bf16 products are refused.
pub fn bf16_products_unit() -> Option<&'static str> {
    if amx::available() {
        Some("AMX-BF16")
    } else if gemm::bf16_available() {
        Some("AVX512-BF16")
    } else {
        None
    }
}

/// The CPU backend: f32 in production, f64 for finite-difference checks of whole models.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend<T = f32> {
    /// Run the reference loops only, never a fast path (see [`CpuBackend::spec`]).
    spec_only: bool,
    /// The wide convolutions' GEMM multiplies in bf16 (see [`CpuBackend::with_bf16_gemm`]).
    bf16_gemm: bool,
    /// The few-channel convolutions take bf16-rounded operands (see
    /// [`CpuBackend::with_bf16_convolutions`]).
    bf16_convolutions: bool,
    _elem: std::marker::PhantomData<T>,
}

impl CpuBackend<f32> {
    pub fn new() -> Self {
        CpuBackend { spec_only: false, bf16_gemm: false, bf16_convolutions: false, _elem: std::marker::PhantomData }
    }

    /// The specification itself: every op by its reference loops, never a fast path; what
    /// the tests compare whole models on [`CpuBackend::new`] with.
    pub fn spec() -> Self {
        CpuBackend { spec_only: true, bf16_gemm: false, bf16_convolutions: false, _elem: std::marker::PhantomData }
    }

    /// The fast paths with the products of the wide convolutions' GEMM (SeqNet's layers, not
    /// DenoiseNet's) rounded to bfloat16 and summed in f32, on AMX's tiles where the CPU has
    /// them, else two per AVX512-BF16 instruction ([`bf16_products_unit`]): each
    /// product within a relative 2^-8 of f32's. Fails where the CPU lacks AVX512-BF16.
    pub fn with_bf16_gemm() -> Result<Self, crate::error::BackendError> {
        if !gemm::bf16_available() {
            return Err(crate::error::BackendError::Unsupported {
                op: "bf16 GEMM",
                what:
                    "bf16 products need a CPU with AVX-512F and AVX512-BF16 (Intel Cooper Lake or Sapphire Rapids and \
                 later, AMD Zen 4 and later); this one has not: use f32"
                        .into(),
            });
        }
        Ok(CpuBackend { spec_only: false, bf16_gemm: true, bf16_convolutions: false, _elem: std::marker::PhantomData })
    }

    /// Whether the GEMM's products are bf16 ([`CpuBackend::with_bf16_gemm`]).
    pub fn bf16_gemm(&self) -> bool {
        self.bf16_gemm
    }

    /// The same backend with the numerics of the CUDA tensor-core convolutions: the operands of
    /// the shapes `cuda::conv1d_mma` takes (DenoiseNet's 2–16-channel layers) and
    /// `cuda::conv1d_igemm` takes (wide, dilation 1), forward and both gradients, rounded to
    /// bfloat16 (nearest, ties to even), products and sums in f32; bias
    /// gradients from f32 dy. The reference the model-level bf16 bounds are measured with; it
    /// copies the rounded operands, so it is not faster than f32.
    pub fn with_bf16_convolutions(mut self, on: bool) -> Self {
        self.bf16_convolutions = on;
        self
    }

    /// Whether few-channel convolutions take bf16-rounded operands.
    pub fn bf16_convolutions(&self) -> bool {
        self.bf16_convolutions
    }
}

impl<T> CpuBackend<T> {
    /// Whether a convolution takes bf16 operands: the shapes CUDA's tensor-core kernels take
    /// (few-channel and wide ones). With the bf16 GEMM on, the wide shapes' products are
    /// bf16 there already: no copy.
    pub(crate) fn rounds(&self, p: &Conv1dParams) -> bool {
        use crate::backend::cuda::TensorCoreKernel;
        self.bf16_convolutions
            && match TensorCoreKernel::for_shape(p) {
                Some(TensorCoreKernel::FewChannels) => true,
                Some(TensorCoreKernel::ImplicitGemm) => !self.bf16_gemm,
                None => false,
            }
    }
}

/// `v` with every value rounded to bfloat16.
fn bf16_rounded<T: Copy + From<f32> + Into<f64>>(v: &[T]) -> Vec<T> {
    v.iter().map(|&a| T::from(gemm::bf16_value(gemm::bf16_bits(a.into() as f32)))).collect()
}

/// dbias[co] = Σ_{b,l} dy[b,co,l], summed in f64.
fn bias_sums<T: Copy + From<f32> + Into<f64>>(p: &Conv1dParams, dy: &[T], db: &mut [T]) {
    for (co, out) in db.iter_mut().enumerate() {
        let mut sum = 0f64;
        for b in 0..p.batch {
            sum += dy[(b * p.c_out + co) * p.len..][..p.len].iter().map(|&v| v.into()).sum::<f64>();
        }
        *out = T::from(sum as f32);
    }
}

impl CpuBackend<f64> {
    /// The specification in f64, for gradient checks.
    pub fn new_f64() -> Self {
        CpuBackend { spec_only: true, bf16_gemm: false, bf16_convolutions: false, _elem: std::marker::PhantomData }
    }
}

impl<T: Real + From<f32> + Into<f64>> CpuBackend<T> {
    /// The forward convolution with `epilogue`, if any, on its output, bf16-rounded operands
    /// where [`CpuBackend::rounds`] says.
    fn conv1d_fwd_with(
        &self,
        p: &Conv1dParams,
        b: Conv1dFwd<'_, Vec<T>>,
        epilogue: Option<Epilogue<'_, [T]>>,
    ) -> BackendResult<()> {
        if self.rounds(p) {
            b.check(p)?;
            let (x, w) = (bf16_rounded(b.x), bf16_rounded(b.w));
            return conv1d::fwd(self.conv_mode(), p, Conv1dFwd { x: &x, w: &w, bias: b.bias, y: b.y }, epilogue);
        }
        conv1d::fwd(self.conv_mode(), p, b, epilogue)
    }
}

impl<T> CpuBackend<T> {
    /// The convolution mode with f32 products whatever the bf16 settings.
    fn f32_mode(&self) -> conv1d::Mode {
        if self.spec_only {
            conv1d::Mode::Spec
        } else {
            conv1d::Mode::Fast
        }
    }

    fn conv_mode(&self) -> conv1d::Mode {
        match (self.spec_only, self.bf16_gemm) {
            (true, _) => conv1d::Mode::Spec,
            (false, false) => conv1d::Mode::Fast,
            (false, true) => conv1d::Mode::FastBf16,
        }
    }

    /// Threads in rayon's pool, which the ops run on.
    pub fn threads(&self) -> usize {
        rayon::current_num_threads()
    }
}

impl<T: Real + Default + From<f32> + Into<f64>> Backend for CpuBackend<T> {
    type Elem = T;
    type Buf = Vec<T>;

    fn describe(&self) -> String {
        let products = match (self.bf16_gemm, bf16_products_unit()) {
            (true, Some(unit)) => format!(", bf16 products in the wide convolutions ({unit})"),
            _ => String::new(),
        };
        let rounded = if self.bf16_convolutions { ", bf16 operands in the few-channel convolutions" } else { "" };
        format!("cpu ({} threads{products}{rounded})", self.threads())
    }

    fn zeros(&self, len: usize) -> BackendResult<Vec<T>> {
        Ok(vec![T::zero(); len])
    }

    fn upload(&self, host: &[T]) -> BackendResult<Vec<T>> {
        Ok(host.to_vec())
    }

    fn download(&self, buf: &Vec<T>, host: &mut [T]) -> BackendResult<()> {
        check_len("download", "host", host.len(), buf.len())?;
        host.copy_from_slice(buf);
        Ok(())
    }

    fn copy_from_host(&self, host: &[T], buf: &mut Vec<T>) -> BackendResult<()> {
        check_len("copy_from_host", "host", host.len(), buf.len())?;
        buf.copy_from_slice(host);
        Ok(())
    }

    fn synchronize(&self) -> BackendResult<()> {
        Ok(())
    }

    fn conv1d_fwd(&self, p: &Conv1dParams, b: Conv1dFwd<'_, Vec<T>>) -> BackendResult<()> {
        self.conv1d_fwd_with(p, b, None)
    }

    fn conv1d_fwd_then(
        &self,
        p: &Conv1dParams,
        b: Conv1dFwd<'_, Vec<T>>,
        epilogue: Epilogue<'_, Vec<T>>,
    ) -> BackendResult<()> {
        self.conv1d_fwd_with(p, b, Some(epilogue.as_slices()))
    }

    /// With the bf16 convolutions on: the shapes CUDA packs (the few-channel ones), as the
    /// reference of its numerics.
    fn packs(&self, p: &Conv1dParams) -> bool {
        use crate::backend::cuda::TensorCoreKernel;
        self.bf16_convolutions && TensorCoreKernel::for_shape(p) == Some(TensorCoreKernel::FewChannels)
    }

    fn pack(&self, p: &PackParams, b: Pack<'_, Vec<T>>) -> BackendResult<()> {
        packed::pack(p, b)
    }

    fn unpack(&self, p: &PackParams, b: Unpack<'_, Vec<T>>) -> BackendResult<()> {
        packed::unpack(p, b)
    }

    /// Unpacks x (and the residual), runs the convolution on bf16-rounded operands with the
    /// epilogue, packs y.
    fn conv1d_fwd_packed(
        &self,
        p: &Conv1dParams,
        b: Conv1dFwd<'_, Vec<T>>,
        epilogue: Option<Epilogue<'_, Vec<T>>>,
    ) -> BackendResult<()> {
        let n = self.packed_len(p.batch, p.len);
        b.check_packed(p, n)?;
        if let Some(e) = &epilogue {
            e.check_packed(n)?;
        }
        if !self.packs(p) {
            return Err(crate::backend::not_packed("conv1d_fwd_packed", &self.describe(), Some(p)));
        }
        let shape = |channels| PackParams { batch: p.batch, channels, len: p.len };
        let unpacked = |buf: &Vec<T>, channels| -> BackendResult<Vec<T>> {
            let mut x = vec![T::zero(); shape(channels).values()];
            packed::unpack(&shape(channels), Unpack { packed: buf, x: &mut x })?;
            Ok(x)
        };
        let x = unpacked(b.x, p.c_in)?;
        let residual = match epilogue {
            Some(Epilogue::AddRelu(r)) => Some(unpacked(r, p.c_out)?),
            _ => None,
        };
        // The same epilogue over the unpacked residual (there is one exactly for AddRelu).
        let epilogue = epilogue.map(|_| residual.as_deref().map_or(Epilogue::Relu, Epilogue::AddRelu));
        let mut y = vec![T::zero(); p.output_len()];
        self.conv1d_fwd_with(p, Conv1dFwd { x: &x, w: b.w, bias: b.bias, y: &mut y }, epilogue)?;
        packed::pack(&shape(p.c_out), Pack { x: &y, packed: b.y })
    }

    /// f32 operands and f32 products whatever the bf16 settings.
    fn conv1d_fwd_f32(
        &self,
        p: &Conv1dParams,
        b: Conv1dFwd<'_, Vec<T>>,
        epilogue: Option<Epilogue<'_, Vec<T>>>,
    ) -> BackendResult<()> {
        conv1d::fwd(self.f32_mode(), p, b, epilogue.map(Epilogue::as_slices))
    }

    fn conv1d_bwd_weight_f32(&self, p: &Conv1dParams, b: Conv1dBwdWeight<'_, Vec<T>>) -> BackendResult<()> {
        conv1d::bwd_weight(self.f32_mode(), p, b)
    }

    /// Unpacks x, then the weight gradient on bf16-rounded operands.
    fn conv1d_bwd_weight_packed(&self, p: &Conv1dParams, b: Conv1dBwdWeight<'_, Vec<T>>) -> BackendResult<()> {
        b.check_packed(p, self.packed_len(p.batch, p.len))?;
        if !self.packs(p) {
            return Err(crate::backend::not_packed("conv1d_bwd_weight_packed", &self.describe(), Some(p)));
        }
        let shape = PackParams { batch: p.batch, channels: p.c_in, len: p.len };
        let mut x = vec![T::zero(); shape.values()];
        packed::unpack(&shape, Unpack { packed: b.x, x: &mut x })?;
        self.conv1d_bwd_weight(p, Conv1dBwdWeight { x: &x, dy: b.dy, dw: b.dw, dbias: b.dbias })
    }

    fn conv1d_bwd_input(&self, p: &Conv1dParams, b: Conv1dBwdInput<'_, Vec<T>>) -> BackendResult<()> {
        if self.rounds(p) {
            b.check(p)?;
            let (dy, w) = (bf16_rounded(b.dy), bf16_rounded(b.w));
            return conv1d::bwd_input(self.conv_mode(), p, Conv1dBwdInput { dy: &dy, w: &w, dx: b.dx });
        }
        conv1d::bwd_input(self.conv_mode(), p, b)
    }

    fn conv1d_bwd_weight(&self, p: &Conv1dParams, b: Conv1dBwdWeight<'_, Vec<T>>) -> BackendResult<()> {
        if self.rounds(p) {
            b.check(p)?;
            let (x, dy) = (bf16_rounded(b.x), bf16_rounded(b.dy));
            let rounded = Conv1dBwdWeight { x: &x, dy: &dy, dw: b.dw, dbias: None };
            conv1d::bwd_weight(self.conv_mode(), p, rounded)?;
            // The bias gradient has no products: from f32 dy, as on the GPU.
            if let Some(db) = b.dbias {
                bias_sums(p, b.dy, db);
            }
            return Ok(());
        }
        conv1d::bwd_weight(self.conv_mode(), p, b)
    }

    fn elementwise(&self, op: ElementwiseOp, b: Elementwise<'_, Vec<T>>) -> BackendResult<()> {
        if self.spec_only {
            spec::elementwise(op, b)
        } else {
            elementwise(op, b)
        }
    }

    fn one_hot(&self, p: &OneHotParams, b: OneHot<'_, Vec<T>>) -> BackendResult<()> {
        one_hot(p, b)
    }

    fn dropout_fwd(&self, p: &DropoutParams, b: DropoutFwd<'_, Vec<T>>) -> BackendResult<()> {
        dropout_fwd(p, b)
    }

    fn dropout_bwd(&self, p: &DropoutParams, b: DropoutBwd<'_, Vec<T>>) -> BackendResult<()> {
        dropout_bwd(p, b)
    }

    fn batchnorm_fwd_train(&self, p: &BatchNormParams, b: BatchNormFwdTrain<'_, Vec<T>>) -> BackendResult<()> {
        batchnorm_fwd_train(p, b)
    }

    fn batchnorm_fwd_infer(&self, p: &BatchNormParams, b: BatchNormFwdInfer<'_, Vec<T>>) -> BackendResult<()> {
        batchnorm_fwd_infer(p, b)
    }

    fn batchnorm_bwd(&self, p: &BatchNormParams, b: BatchNormBwd<'_, Vec<T>>) -> BackendResult<()> {
        batchnorm_bwd(p, b)
    }

    fn maxpool_fwd(&self, p: &MaxPoolParams, b: MaxPoolFwd<'_, Vec<T>>) -> BackendResult<()> {
        maxpool_fwd(p, b)
    }

    fn maxpool_bwd(&self, p: &MaxPoolParams, b: MaxPoolBwd<'_, Vec<T>>) -> BackendResult<()> {
        maxpool_bwd(p, b)
    }

    fn denoise_loss(&self, p: &DenoiseLossParams, b: DenoiseLoss<'_, Vec<T>>) -> BackendResult<LossParts> {
        denoise_loss(p, b)
    }

    fn adam_step(&self, p: &AdamParams, b: AdamStep<'_, Vec<T>>) -> BackendResult<()> {
        adam_step(p, b)
    }

    fn sparse_head(&self, p: &SparseHeadParams, b: SparseHead<'_, Vec<T>>) -> BackendResult<f64> {
        sparse_head(p, b)
    }

    fn head_roc_histogram(
        &self,
        p: &SparseHeadParams,
        b: HeadLogits<'_, Vec<T>>,
        per_row: bool,
    ) -> BackendResult<Vec<u64>> {
        head_roc_histogram(p, b, per_row)
    }
}
