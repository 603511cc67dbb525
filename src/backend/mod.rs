//! The compute backends: one trait, a params struct per op, destination-passing.
//!
//! Every op reads its inputs and writes a destination buffer the caller allocated, with
//! the shapes given by the op's params struct. Lengths are checked on every call and a
//! mismatch is an error naming the op and the buffer, never a panic.
//!
//! * [`cpu::CpuBackend`] — f32, rayon, long reductions in f64. It is the specification:
//!   the generic functions under [`cpu`] also run in f64 for the gradient checks.
//! * [`cuda::CudaBackend`] — the kernels of `kernels/`, compiled by NVRTC on first use.
//!
//! Tensors are flat row-major buffers; conv activations are laid out (batch, channels,
//! length) and conv weights (c_out, c_in, kernel).

pub mod cpu;
pub mod cuda;

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

/// Shape of a 1-D convolution with "same" zero padding:
/// `((kernel − 1)·dilation)/2` zeros on the left and the rest on the right, so the output
/// has the input's length.
///
/// `y[b, co, l] = bias[co] + Σ_{ci, k} w[co, ci, k] · x[b, ci, l + k·dilation − pad_left]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv1dParams {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub len: usize,
    pub kernel: usize,
    pub dilation: usize,
}

impl Conv1dParams {
    /// Zeros on the left: `((kernel − 1)·dilation)/2`.
    pub fn pad_left(&self) -> usize {
        self.receptive_field_minus_one() / 2
    }

    /// Zeros on the right: the rest of `(kernel − 1)·dilation`.
    pub fn pad_right(&self) -> usize {
        self.receptive_field_minus_one() - self.pad_left()
    }

    fn receptive_field_minus_one(&self) -> usize {
        self.kernel.saturating_sub(1) * self.dilation
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.c_in * self.len
    }
    pub fn output_len(&self) -> usize {
        self.batch * self.c_out * self.len
    }
    pub fn weight_len(&self) -> usize {
        self.c_out * self.c_in * self.kernel
    }

    /// Multiply-adds × 2 of one pass (forward, backward-input or backward-weight).
    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.c_out * self.c_in * self.kernel) as f64 * self.len as f64
    }

    /// Checks the buffers of a forward pass against this shape.
    pub fn check_fwd(&self, x: usize, w: usize, bias: Option<usize>, y: usize) -> BackendResult<()> {
        const OP: &str = "conv1d_fwd";
        self.validate(OP)?;
        check_len(OP, "x", x, self.input_len())?;
        check_len(OP, "w", w, self.weight_len())?;
        if let Some(b) = bias {
            check_len(OP, "bias", b, self.c_out)?;
        }
        check_len(OP, "y", y, self.output_len())
    }

    /// Checks the buffers of a backward-input pass against this shape.
    pub fn check_bwd_input(&self, dy: usize, w: usize, dx: usize) -> BackendResult<()> {
        const OP: &str = "conv1d_bwd_input";
        self.validate(OP)?;
        check_len(OP, "dy", dy, self.output_len())?;
        check_len(OP, "w", w, self.weight_len())?;
        check_len(OP, "dx", dx, self.input_len())
    }

    /// Checks the buffers of a backward-weight pass against this shape.
    pub fn check_bwd_weight(&self, x: usize, dy: usize, dw: usize, dbias: Option<usize>) -> BackendResult<()> {
        const OP: &str = "conv1d_bwd_weight";
        self.validate(OP)?;
        check_len(OP, "x", x, self.input_len())?;
        check_len(OP, "dy", dy, self.output_len())?;
        check_len(OP, "dw", dw, self.weight_len())?;
        if let Some(b) = dbias {
            check_len(OP, "dbias", b, self.c_out)?;
        }
        Ok(())
    }

    fn validate(&self, op: &'static str) -> BackendResult<()> {
        let fields = [
            ("batch", self.batch),
            ("c_in", self.c_in),
            ("c_out", self.c_out),
            ("len", self.len),
            ("kernel", self.kernel),
            ("dilation", self.dilation),
        ];
        for (name, value) in fields {
            if value == 0 {
                return Err(BackendError::Shape { op, what: format!("{name} must be at least 1, got 0 ({self:?})") });
            }
        }
        Ok(())
    }
}

/// Shape and weights of the fused denoising loss.
///
/// Inputs are (batch, len) tracks; the loss covers only the centre
/// `pad .. len − pad` of each interval (the padding is cropped).
/// `loss = mse_weight·MSE(reg, clean) + pearson_weight·(1 − r) + bce_weight·BCE(σ(cls), mask)`,
/// with r the Pearson correlation over all cropped elements of the batch flattened,
/// `r = Σ(x−x̄)(y−ȳ) / (sqrt(Σ(x−x̄)²·Σ(y−ȳ)²) + 1e-7)`, and BCE computed from logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenoiseLossParams {
    pub batch: usize,
    pub len: usize,
    pub pad: usize,
    pub mse_weight: f32,
    pub pearson_weight: f32,
    pub bce_weight: f32,
}

impl DenoiseLossParams {
    /// Epsilon added to the denominator of Pearson's r.
    pub const PEARSON_EPS: f64 = 1e-7;

    /// AtacWorks' published weights: 0.0005 / 1 / 1.
    pub fn atacworks(batch: usize, len: usize, pad: usize) -> Self {
        DenoiseLossParams { batch, len, pad, mse_weight: 0.0005, pearson_weight: 1.0, bce_weight: 1.0 }
    }

    pub fn cropped_len(&self) -> usize {
        self.len.saturating_sub(2 * self.pad)
    }

    /// Checks the lengths of reg, clean, cls_logits, mask, d_reg, d_cls (in that order): all
    /// (batch, len).
    pub fn check(&self, lens: [usize; 6]) -> BackendResult<()> {
        const OP: &str = "denoise_loss";
        self.validate(OP)?;
        for (name, got) in ["reg", "clean", "cls_logits", "mask", "d_reg", "d_cls"].iter().zip(lens) {
            check_len(OP, name, got, self.batch * self.len)?;
        }
        Ok(())
    }

    fn validate(&self, op: &'static str) -> BackendResult<()> {
        if self.batch == 0 || self.cropped_len() == 0 {
            return Err(BackendError::Shape {
                op,
                what: format!(
                    "nothing to score: batch {} and interval length {} with padding {} on each side leave no bases",
                    self.batch, self.len, self.pad
                ),
            });
        }
        Ok(())
    }
}

/// The value of the fused loss and its three parts (each before weighting).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossParts {
    /// The weighted sum.
    pub total: f64,
    pub mse: f64,
    /// Pearson's r (the loss term is `1 − r`).
    pub pearson: f64,
    pub bce: f64,
}

/// One Adam step (β1 0.9, β2 0.999, ε 1e-8 by default) with bias correction.
///
/// Weight decay is the L2 form of PyTorch's `Adam(weight_decay=…)`: `g ← g + wd·θ`
/// before the moments are updated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamParams {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// 1-based step count, for the bias correction.
    pub step: u64,
}

impl AdamParams {
    pub fn new(lr: f32, step: u64) -> Self {
        AdamParams { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, step }
    }

    /// `(1 − β1^t, 1 − β2^t)`, computed in f64.
    pub fn bias_corrections(&self) -> (f64, f64) {
        let t = self.step.min(i32::MAX as u64) as i32;
        (1.0 - (self.beta1 as f64).powi(t), 1.0 - (self.beta2 as f64).powi(t))
    }

    /// Checks the settings and that param, grad, m and v have one length.
    pub fn check(&self, param: usize, grad: usize, m: usize, v: usize) -> BackendResult<()> {
        const OP: &str = "adam_step";
        self.validate(OP)?;
        check_len(OP, "grad", grad, param)?;
        check_len(OP, "m", m, param)?;
        check_len(OP, "v", v, param)
    }

    fn validate(&self, op: &'static str) -> BackendResult<()> {
        let ok = self.step >= 1
            && self.lr.is_finite()
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps > 0.0
            && self.weight_decay >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(BackendError::Shape {
                op,
                what: format!(
                    "invalid Adam settings {self:?}: need step ≥ 1, finite lr, 0 ≤ β < 1, ε > 0, weight decay ≥ 0"
                ),
            })
        }
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

/// Max pooling over the length of (batch, channels, len) with window = stride = `pool` and
/// Keras/TensorFlow "same" padding: `out_len = ceil(len / pool)`, `out_len·pool − len`
/// padding positions split with the smaller half on the left; padding never wins the max.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPoolParams {
    pub batch: usize,
    pub channels: usize,
    pub len: usize,
    pub pool: usize,
}

impl MaxPoolParams {
    pub fn out_len(&self) -> usize {
        self.len.div_ceil(self.pool)
    }

    pub fn pad_left(&self) -> usize {
        (self.out_len() * self.pool - self.len) / 2
    }

    /// Checks the shape and the input and output lengths.
    pub fn check(&self, op: &'static str, input: usize, output: usize) -> BackendResult<()> {
        if self.batch == 0 || self.channels == 0 || self.len == 0 || self.pool == 0 {
            return Err(BackendError::Shape { op, what: format!("every size must be at least 1 ({self:?})") });
        }
        check_len(op, "input", input, self.batch * self.channels * self.len)?;
        check_len(op, "output", output, self.batch * self.channels * self.out_len())
    }
}

/// Batch normalisation over (batch, channels, len), statistics per channel over batch × len,
/// as Keras' BatchNormalization (scBasset: momentum 0.9, epsilon 1e-3): in training
/// `y = γ·(x − mean)/sqrt(var + ε) + β` with the batch's mean and (biased) variance, and the
/// running statistics move as `running = momentum·running + (1 − momentum)·batch`; in
/// inference the running statistics normalise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormParams {
    pub batch: usize,
    pub channels: usize,
    pub len: usize,
    pub eps: f32,
    pub momentum: f32,
}

impl BatchNormParams {
    /// Checks `batchnorm_fwd_train`'s buffers: x, y, gamma, beta, mean, invstd, running_mean,
    /// running_var.
    pub fn check_fwd_train(&self, lens: [usize; 8]) -> BackendResult<()> {
        const NAMES: [&str; 8] = ["x", "y", "gamma", "beta", "mean", "invstd", "running_mean", "running_var"];
        self.check("batchnorm_fwd_train", &NAMES, &lens, 2)
    }

    /// Checks `batchnorm_fwd_infer`'s buffers: x, y, gamma, beta, running_mean, running_var.
    pub fn check_fwd_infer(&self, lens: [usize; 6]) -> BackendResult<()> {
        const NAMES: [&str; 6] = ["x", "y", "gamma", "beta", "running_mean", "running_var"];
        self.check("batchnorm_fwd_infer", &NAMES, &lens, 2)
    }

    /// Checks `batchnorm_bwd`'s buffers: x, dy, dx, gamma, mean, invstd, dgamma, dbeta.
    pub fn check_bwd(&self, lens: [usize; 8]) -> BackendResult<()> {
        const NAMES: [&str; 8] = ["x", "dy", "dx", "gamma", "mean", "invstd", "dgamma", "dbeta"];
        self.check("batchnorm_bwd", &NAMES, &lens, 3)
    }

    /// The first `activations` buffers hold batch × channels × len values, the rest one per
    /// channel.
    fn check(&self, op: &'static str, names: &[&str], lens: &[usize], activations: usize) -> BackendResult<()> {
        if self.batch == 0
            || self.channels == 0
            || self.len == 0
            || !(self.eps > 0.0)
            || !(0.0..=1.0).contains(&self.momentum)
        {
            return Err(BackendError::Shape { op, what: format!("invalid batch-norm shape or settings {self:?}") });
        }
        for (i, (&name, &got)) in names.iter().zip(lens).enumerate() {
            let want = if i < activations { self.batch * self.channels * self.len } else { self.channels };
            check_len(op, name, got, want)?;
        }
        Ok(())
    }
}

/// Shape of the per-cell sigmoid head over a batch of peaks.
///
/// For peaks i < batch with bottleneck `z[i, :]` (dim values), cells c < cells with embedding
/// `w[c, :]` and bias `b[c]`: `logit[i, c] = z[i]·w[c] + b[c]`; the label `y[i, c]` is 1 when c
/// is in row i of the batch's binary CSR rows. The loss is the mean BCE over batch × cells;
/// the op returns it and the gradients for z, w and b without ever holding the batch × cells
/// logits in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseHeadParams {
    pub batch: usize,
    pub cells: usize,
    pub dim: usize,
}

impl SparseHeadParams {
    /// Checks the lengths of z, w, bias, dz, dw, dbias (in that order) and the CSR rows
    /// (offsets rising to nnz, cells sorted, distinct and in range).
    pub fn check(&self, lens: [usize; 6], indptr: &[u32], indices: &[u32]) -> BackendResult<()> {
        self.check_buffers("sparse_head", &["z", "w", "bias", "dz", "dw", "dbias"], &lens, indptr, indices)
    }

    /// Checks the lengths of z, w, bias (in that order) and the CSR rows, for an op `op` that
    /// only evaluates the head's logits (no gradients).
    pub fn check_forward(
        &self,
        op: &'static str,
        lens: [usize; 3],
        indptr: &[u32],
        indices: &[u32],
    ) -> BackendResult<()> {
        self.check_buffers(op, &["z", "w", "bias"], &lens, indptr, indices)
    }

    /// `names[k]` holds batch·dim, cells·dim or cells values as k mod 3 is 0, 1 or 2.
    fn check_buffers(
        &self,
        op: &'static str,
        names: &[&str],
        lens: &[usize],
        indptr: &[u32],
        indices: &[u32],
    ) -> BackendResult<()> {
        if self.batch == 0 || self.cells == 0 || self.dim == 0 {
            return Err(BackendError::Shape {
                op,
                what: format!("batch, cells and dim must be at least 1 ({self:?})"),
            });
        }
        let (b, n, d) = (self.batch, self.cells, self.dim);
        for (k, (name, &got)) in names.iter().zip(lens).enumerate() {
            check_len(op, name, got, [b * d, n * d, n][k % 3])?;
        }
        check_len(op, "indptr", indptr.len(), self.batch + 1)?;
        if indptr[0] != 0 || indptr[self.batch] as usize != indices.len() || indptr.windows(2).any(|w| w[0] > w[1]) {
            return Err(BackendError::Shape {
                op,
                what: format!("indptr must rise from 0 to nnz = {}", indices.len()),
            });
        }
        for i in 0..self.batch {
            let row = &indices[indptr[i] as usize..indptr[i + 1] as usize];
            if row.windows(2).any(|w| w[0] >= w[1]) || row.last().is_some_and(|&c| c as usize >= self.cells) {
                return Err(BackendError::Shape {
                    op,
                    what: format!("row {i}: cell indices must be sorted, distinct and below {}", self.cells),
                });
            }
        }
        Ok(())
    }
}

/// Bins of the head's logit histogram ([`Backend::head_roc_histogram`]): 1/16 wide over
/// [−16, 16), the outermost bins also taking everything beyond.
pub const ROC_BINS: usize = 512;

/// The histogram bin of a logit: `clamp(floor((logit + 16)·16), 0, 511)`, computed in f32
/// (the CUDA kernel's `roc_bin_f32` does the same operations); NaN goes to bin 0.
///
/// ```
/// use chromax::backend::{roc_bin, ROC_BINS};
/// assert_eq!(roc_bin(0.0), 256);
/// assert_eq!(roc_bin(-0.01), 255);
/// assert_eq!(roc_bin(-100.0), 0);
/// assert_eq!(roc_bin(f32::INFINITY), ROC_BINS - 1);
/// assert_eq!(roc_bin(f32::NAN), 0);
/// ```
pub fn roc_bin(logit: f32) -> usize {
    let v = ((logit + 16.0f32) * 16.0f32).floor();
    if v.is_nan() || v < 0.0 {
        0
    } else if v >= (ROC_BINS - 1) as f32 {
        ROC_BINS - 1
    } else {
        v as usize
    }
}

/// Inverted dropout with a mask drawn from a seed, so the backward pass regenerates it
/// instead of storing it: element i of the flat buffer is kept when
/// [`dropout_keep`]`(seed, i, rate)`, and kept values are scaled by `1 / (1 − rate)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutParams {
    /// Probability of dropping an element, in [0, 1).
    pub rate: f32,
    /// Draw a fresh seed per step; forward and backward of one step share it.
    pub seed: u64,
}

impl DropoutParams {
    /// The factor kept values are multiplied by, `1 / (1 − rate)` in f32 (as the kernel
    /// computes it, so both backends scale identically).
    pub fn scale(&self) -> f32 {
        1.0f32 / (1.0f32 - self.rate)
    }

    /// Checks the rate and that x and y have one length.
    pub fn check_fwd(&self, x: usize, y: usize) -> BackendResult<()> {
        self.validate("dropout_fwd")?;
        check_len("dropout_fwd", "y", y, x)
    }

    /// Checks the rate and that dy and dx have one length.
    pub fn check_bwd(&self, dy: usize, dx: usize) -> BackendResult<()> {
        self.validate("dropout_bwd")?;
        check_len("dropout_bwd", "dx", dx, dy)
    }

    fn validate(&self, op: &'static str) -> BackendResult<()> {
        if (0.0..1.0).contains(&self.rate) {
            Ok(())
        } else {
            Err(BackendError::Shape { op, what: format!("dropout rate {} is outside [0, 1)", self.rate) })
        }
    }
}

/// Whether dropout keeps element `i` (its index in the flat buffer) under `seed`:
/// `h = `[`mix`](crate::rng::mix)`(seed ^ i·γ)`, `u = (h >> 40) / 2²⁴ ∈ [0, 1)`, kept iff
/// `u ≥ rate`. The single definition of the mask: the CPU ops call it and
/// `kernels/dropout.cu` computes the same in `unsigned long long`.
///
/// ```
/// use chromax::backend::dropout_keep;
/// assert!((0..100).all(|i| dropout_keep(7, i, 0.0)));
/// assert_eq!(dropout_keep(7, 3, 0.5), dropout_keep(7, 3, 0.5));
/// ```
pub fn dropout_keep(seed: u64, i: u64, rate: f32) -> bool {
    let h = crate::rng::mix(seed ^ i.wrapping_mul(crate::rng::GAMMA));
    let u = (h >> 40) as f64 / (1u64 << 24) as f64;
    u >= rate as f64
}

/// A compute backend. Every op writes into a destination buffer.
///
/// Buffers hold [`Backend::Elem`]: f32 on every production backend; the CPU specification
/// also runs in f64 (`CpuBackend<f64>`) so whole models can be checked by finite differences.
pub trait Backend: Send + Sync {
    /// The element type of buffers (f32, or f64 for the CPU specification in checks).
    type Elem: Copy + Send + Sync + Default + From<f32> + Into<f64> + std::fmt::Debug + 'static;
    /// A buffer of values on this backend's device.
    type Buf: Send;

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
    /// Number of values in `buf`.
    fn buf_len(&self, buf: &Self::Buf) -> usize;
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

    /// `y = conv1d(x, w) + bias`. x (batch, c_in, len), w (c_out, c_in, kernel),
    /// bias (c_out), y (batch, c_out, len).
    fn conv1d_fwd(
        &self,
        p: &Conv1dParams,
        x: &Self::Buf,
        w: &Self::Buf,
        bias: Option<&Self::Buf>,
        y: &mut Self::Buf,
    ) -> BackendResult<()>;
    /// `dx = ∂L/∂x` from dy (batch, c_out, len); dx (batch, c_in, len) is overwritten.
    fn conv1d_bwd_input(
        &self,
        p: &Conv1dParams,
        dy: &Self::Buf,
        w: &Self::Buf,
        dx: &mut Self::Buf,
    ) -> BackendResult<()>;
    /// `dw = ∂L/∂w` (c_out, c_in, kernel) and, if given, `dbias = ∂L/∂bias` (c_out); overwritten.
    fn conv1d_bwd_weight(
        &self,
        p: &Conv1dParams,
        x: &Self::Buf,
        dy: &Self::Buf,
        dw: &mut Self::Buf,
        dbias: Option<&mut Self::Buf>,
    ) -> BackendResult<()>;

    /// `y = max(x, 0)`.
    fn relu_fwd(&self, x: &Self::Buf, y: &mut Self::Buf) -> BackendResult<()>;
    /// `dx = dy · [y > 0]`, from the forward output y.
    fn relu_bwd(&self, y: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf) -> BackendResult<()>;
    /// `y = a + b` (the residual add; its backward passes dy to both inputs).
    fn add_fwd(&self, a: &Self::Buf, b: &Self::Buf, y: &mut Self::Buf) -> BackendResult<()>;
    /// `y = σ(x) = 1 / (1 + e^(−x))`.
    fn sigmoid_fwd(&self, x: &Self::Buf, y: &mut Self::Buf) -> BackendResult<()>;
    /// `dx = dy · y · (1 − y)`, from the forward output y.
    fn sigmoid_bwd(&self, y: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf) -> BackendResult<()>;
    /// One-hot encoding of base codes with scBasset's augmentation: `codes` (batch, len), base
    /// codes A C G T N = 0..4 → out (batch, 4, len).
    ///
    /// Let `r[b, t]` be sequence b, reverse-complemented when `reverse[b]` (`r[b, t] = 3 −
    /// codes[b, len − 1 − t]`, N staying N), else `codes[b, t]`. It is then shifted right by
    /// `shift[b]` (|shift| < len; negative shifts left): `out[b, ch, t] = [r[b, t − shift[b]] =
    /// ch]` where `0 ≤ t − shift[b] < len`, and 0.25 in all four channels at the positions the
    /// shift uncovers. N is all zeros. Every shift 0 is the plain (reverse-complemented)
    /// encoding.
    fn one_hot(
        &self,
        batch: usize,
        len: usize,
        codes: &[u8],
        reverse: &[bool],
        shift: &[i32],
        out: &mut Self::Buf,
    ) -> BackendResult<()>;
    /// Inverted dropout (see [`DropoutParams`]): `y[i] = x[i]·(1/(1 − rate))` where
    /// [`dropout_keep`]`(seed, i, rate)`, else 0. x and y have one length.
    fn dropout_fwd(&self, p: &DropoutParams, x: &Self::Buf, y: &mut Self::Buf) -> BackendResult<()>;
    /// Backward of [`Backend::dropout_fwd`] with the same params: `dx[i] = dy[i]·(1/(1 − rate))`
    /// where the forward kept element i, else 0; the mask is regenerated from the seed.
    fn dropout_bwd(&self, p: &DropoutParams, dy: &Self::Buf, dx: &mut Self::Buf) -> BackendResult<()>;
    /// Batch norm in training mode (see [`BatchNormParams`]): writes y, the batch's mean and
    /// 1/sqrt(var + ε) per channel (for the backward pass) and moves the running statistics.
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_fwd_train(
        &self,
        p: &BatchNormParams,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        y: &mut Self::Buf,
        mean: &mut Self::Buf,
        invstd: &mut Self::Buf,
        running_mean: &mut Self::Buf,
        running_var: &mut Self::Buf,
    ) -> BackendResult<()>;
    /// Batch norm in inference mode: normalised by the running statistics.
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_fwd_infer(
        &self,
        p: &BatchNormParams,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        running_mean: &Self::Buf,
        running_var: &Self::Buf,
        y: &mut Self::Buf,
    ) -> BackendResult<()>;
    /// Backward of the training-mode forward: dx, dγ, dβ (overwritten) from x, dy, γ and the
    /// saved mean and 1/std.
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_bwd(
        &self,
        p: &BatchNormParams,
        x: &Self::Buf,
        dy: &Self::Buf,
        gamma: &Self::Buf,
        mean: &Self::Buf,
        invstd: &Self::Buf,
        dx: &mut Self::Buf,
        dgamma: &mut Self::Buf,
        dbeta: &mut Self::Buf,
    ) -> BackendResult<()>;
    /// Max pooling (see [`MaxPoolParams`]): x (batch, channels, len) → y (batch, channels, out_len).
    fn maxpool_fwd(&self, p: &MaxPoolParams, x: &Self::Buf, y: &mut Self::Buf) -> BackendResult<()>;
    /// dx (overwritten): each window's dy goes to its first maximum, from the forward input x.
    fn maxpool_bwd(&self, p: &MaxPoolParams, x: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf) -> BackendResult<()>;
    /// scBasset's GELU, `y = x · σ(1.702·x)`.
    fn gelu_fwd(&self, x: &Self::Buf, y: &mut Self::Buf) -> BackendResult<()>;
    /// `dx = dy · (s + 1.702·x·s·(1 − s))`, `s = σ(1.702·x)`, from the forward input x.
    fn gelu_bwd(&self, x: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf) -> BackendResult<()>;

    /// The fused denoising loss (see [`DenoiseLossParams`]). All buffers are (batch, len);
    /// `mask` holds 0/1 peak labels. Writes the gradients w.r.t. the regression output
    /// and the classification logits (zero in the cropped padding) and returns the loss.
    #[allow(clippy::too_many_arguments)]
    fn denoise_loss(
        &self,
        p: &DenoiseLossParams,
        reg: &Self::Buf,
        clean: &Self::Buf,
        cls_logits: &Self::Buf,
        mask: &Self::Buf,
        d_reg: &mut Self::Buf,
        d_cls: &mut Self::Buf,
    ) -> BackendResult<LossParts>;

    /// One Adam update of `param` in place, with moments `m`, `v` updated in place.
    fn adam_step(
        &self,
        p: &AdamParams,
        param: &mut Self::Buf,
        grad: &Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
    ) -> BackendResult<()>;

    /// The per-cell sigmoid head (see [`SparseHeadParams`]): z (batch, dim), w (cells, dim),
    /// bias (cells), the batch's binary CSR rows (`indptr` batch + 1, `indices` nnz); writes
    /// dz, dw, dbias (overwritten) and returns the mean BCE.
    #[allow(clippy::too_many_arguments)]
    fn sparse_head(
        &self,
        p: &SparseHeadParams,
        z: &Self::Buf,
        w: &Self::Buf,
        bias: &Self::Buf,
        indptr: &[u32],
        indices: &[u32],
        dz: &mut Self::Buf,
        dw: &mut Self::Buf,
        dbias: &mut Self::Buf,
    ) -> BackendResult<f64>;

    /// Histogram of the per-cell head's logits for an AUROC without sorting batch × cells
    /// values: `logit[i, c] = z[i]·w[c] + bias[c]` as in [`Backend::sparse_head`] (same
    /// buffers and CSR rows), each counted in bin [`roc_bin`]`(logit)` as a positive (c in
    /// row i) or a negative. With `per_row` false, returns 2·[`ROC_BINS`] counts: positives per
    /// bin, then negatives per bin; with `per_row` true, batch such blocks, row i's first.
    /// No batch × cells array is formed.
    #[allow(clippy::too_many_arguments)]
    fn head_roc_histogram(
        &self,
        p: &SparseHeadParams,
        z: &Self::Buf,
        w: &Self::Buf,
        bias: &Self::Buf,
        indptr: &[u32],
        indices: &[u32],
        per_row: bool,
    ) -> BackendResult<Vec<u64>>;
}

/// Checks the inputs of [`Backend::one_hot`]: lengths, base codes, and every |shift| below
/// len (a shift of 0 is accepted for any len).
pub fn check_one_hot(
    batch: usize,
    len: usize,
    codes: &[u8],
    reverse: &[bool],
    shift: &[i32],
    out: usize,
) -> BackendResult<()> {
    const OP: &str = "one_hot";
    check_len(OP, "codes", codes.len(), batch * len)?;
    check_len(OP, "reverse", reverse.len(), batch)?;
    check_len(OP, "shift", shift.len(), batch)?;
    check_len(OP, "out", out, batch * 4 * len)?;
    if let Some(b) = shift.iter().position(|&s| s != 0 && s.unsigned_abs() as usize >= len) {
        return Err(BackendError::Shape {
            op: OP,
            what: format!("shift {} of sequence {b} is not below the length {len} in magnitude", shift[b]),
        });
    }
    match codes.iter().position(|&c| c > 4) {
        Some(i) => {
            Err(BackendError::Shape { op: OP, what: format!("code {} at {i} is not a base code (0..=4)", codes[i]) })
        }
        None => Ok(()),
    }
}

/// Checks that a buffer has the length an op expects.
pub(crate) fn check_len(op: &'static str, name: &str, got: usize, want: usize) -> BackendResult<()> {
    if got == want {
        Ok(())
    } else {
        Err(BackendError::Shape { op, what: format!("buffer '{name}' holds {got} values, expected {want}") })
    }
}
