//! Every op's shape (a params struct) and its buffers (one struct of named buffer references
//! per op and direction), with the one length check that every implementation calls.
//!
//! The buffer structs are generic over the buffer type `S`: host slices and vectors for the
//! CPU specification, device buffers for CUDA and the kernel emulator. Inputs are `&S`,
//! outputs `&mut S`; a mismatch is an error naming the op and the buffer by its field name.
//!
//! ```
//! use chromax::backend::{Conv1dFwd, Conv1dParams};
//! let p = Conv1dParams { batch: 1, c_in: 1, c_out: 1, len: 4, kernel: 3, dilation: 1 };
//! let (x, w, mut y) = (vec![0f32; 4], vec![0f32; 3], vec![0f32; 5]);
//! let err = Conv1dFwd { x: &x, w: &w, bias: None, y: &mut y }.check(&p).unwrap_err();
//! assert_eq!(err.to_string(), "conv1d_fwd: buffer 'y' holds 5 values, expected 4");
//! ```

use super::{BackendResult, BufLen};
use crate::error::BackendError;

/// Checks that a buffer has the length an op expects.
pub(crate) fn check_len(op: &'static str, name: &str, got: usize, want: usize) -> BackendResult<()> {
    if got == want {
        Ok(())
    } else {
        Err(BackendError::Shape { op, what: format!("buffer '{name}' holds {got} values, expected {want}") })
    }
}

fn shape_error(op: &'static str, what: String) -> BackendError {
    BackendError::Shape { op, what }
}

// ---------------------------------------------------------------------------------------------
// Convolution

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

    fn validate(&self, op: &'static str) -> BackendResult<()> {
        let fields = [
            ("batch", self.batch),
            ("c_in", self.c_in),
            ("c_out", self.c_out),
            ("len", self.len),
            ("kernel", self.kernel),
            ("dilation", self.dilation),
        ];
        match fields.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(shape_error(op, format!("{name} must be at least 1, got 0 ({self:?})"))),
            None => Ok(()),
        }
    }
}

/// `y = conv1d(x, w) + bias`: x (batch, c_in, len), w (c_out, c_in, kernel), bias (c_out),
/// y (batch, c_out, len).
pub struct Conv1dFwd<'a, S: ?Sized> {
    pub x: &'a S,
    pub w: &'a S,
    pub bias: Option<&'a S>,
    pub y: &'a mut S,
}

impl<S: BufLen + ?Sized> Conv1dFwd<'_, S> {
    pub fn check(&self, p: &Conv1dParams) -> BackendResult<()> {
        const OP: &str = "conv1d_fwd";
        p.validate(OP)?;
        check_len(OP, "x", self.x.buf_len(), p.input_len())?;
        check_len(OP, "w", self.w.buf_len(), p.weight_len())?;
        if let Some(b) = self.bias {
            check_len(OP, "bias", b.buf_len(), p.c_out)?;
        }
        check_len(OP, "y", self.y.buf_len(), p.output_len())
    }
}

/// What a convolution's forward pass does to each output value before storing it
/// ([`crate::backend::Backend::conv1d_fwd_then`]): a residual block's ReLU, or its residual
/// add and ReLU, without a pass of its own over memory where the backend fuses them.
pub enum Epilogue<'a, S: ?Sized> {
    /// `y = max(conv + bias, 0)`, as [`ElementwiseOp::ReluFwd`] on the convolution's output.
    Relu,
    /// `y = max((conv + bias) + r, 0)`: [`ElementwiseOp::Add`] of `r` (shaped as y), then
    /// [`ElementwiseOp::ReluFwd`].
    AddRelu(&'a S),
}

// By hand: a derive would ask `S: Copy`, which no buffer is; the enum holds a reference.
impl<S: ?Sized> Clone for Epilogue<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: ?Sized> Copy for Epilogue<'_, S> {}

impl<'a, T> Epilogue<'a, Vec<T>> {
    /// The same epilogue over the residual's values (the CPU's buffers as slices).
    pub fn as_slices(self) -> Epilogue<'a, [T]> {
        match self {
            Epilogue::Relu => Epilogue::Relu,
            Epilogue::AddRelu(r) => Epilogue::AddRelu(r.as_slice()),
        }
    }
}

impl<S: BufLen + ?Sized> Epilogue<'_, S> {
    /// Checks that a residual has the output's length.
    pub fn check(&self, p: &Conv1dParams) -> BackendResult<()> {
        match self {
            Epilogue::Relu => Ok(()),
            Epilogue::AddRelu(r) => check_len("conv1d_fwd_then", "residual", r.buf_len(), p.output_len()),
        }
    }
}

/// An [`Epilogue`] on one value `v` (the convolution plus bias) with its residual, if any: the
/// same operations, in the same order, as the element-wise ops it replaces.
#[inline(always)]
pub fn epilogue_value<T: crate::backend::cpu::Real>(v: T, residual: Option<T>) -> T {
    let v = match residual {
        Some(r) => ElementwiseOp::Add.apply(v, r),
        None => v,
    };
    ElementwiseOp::ReluFwd.apply(v, T::zero())
}

impl<S: BufLen + ?Sized> Conv1dFwd<'_, S> {
    /// The check of [`crate::backend::Backend::conv1d_fwd_packed`]: x and y packed, `packed`
    /// values each (the backend's [`crate::backend::Backend::packed_len`]), at most
    /// [`PACKED_CHANNELS`] channels in and out.
    pub fn check_packed(&self, p: &Conv1dParams, packed: usize) -> BackendResult<()> {
        const OP: &str = "conv1d_fwd_packed";
        p.validate(OP)?;
        if p.c_in > PACKED_CHANNELS || p.c_out > PACKED_CHANNELS {
            return Err(shape_error(
                OP,
                format!("packed activations hold at most {PACKED_CHANNELS} channels, got {} → {}", p.c_in, p.c_out),
            ));
        }
        check_len(OP, "x", self.x.buf_len(), packed)?;
        check_len(OP, "w", self.w.buf_len(), p.weight_len())?;
        if let Some(b) = self.bias {
            check_len(OP, "bias", b.buf_len(), p.c_out)?;
        }
        check_len(OP, "y", self.y.buf_len(), packed)
    }
}

impl<S: BufLen + ?Sized> Epilogue<'_, S> {
    /// Checks that a packed residual has the packed output's length.
    pub fn check_packed(&self, packed: usize) -> BackendResult<()> {
        match self {
            Epilogue::Relu => Ok(()),
            Epilogue::AddRelu(r) => check_len("conv1d_fwd_packed", "residual", r.buf_len(), packed),
        }
    }
}

impl<S: BufLen + ?Sized> Conv1dBwdWeight<'_, S> {
    /// The check of [`crate::backend::Backend::conv1d_bwd_weight_packed`]: x packed
    /// (`packed` values), dy (batch, c_out, len).
    pub fn check_packed(&self, p: &Conv1dParams, packed: usize) -> BackendResult<()> {
        const OP: &str = "conv1d_bwd_weight_packed";
        p.validate(OP)?;
        if p.c_in > PACKED_CHANNELS {
            return Err(shape_error(
                OP,
                format!("packed activations hold at most {PACKED_CHANNELS} channels, got {}", p.c_in),
            ));
        }
        check_len(OP, "x", self.x.buf_len(), packed)?;
        check_len(OP, "dy", self.dy.buf_len(), p.output_len())?;
        check_len(OP, "dw", self.dw.buf_len(), p.weight_len())?;
        if let Some(b) = &self.dbias {
            check_len(OP, "dbias", b.buf_len(), p.c_out)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Packed activations

/// Channels of a packed activation's position (the live ones first, zeros after).
pub const PACKED_CHANNELS: usize = 16;

/// Shape of an activation of few channels held packed: channels-last in bfloat16, each of the
/// `batch × len` positions one row of [`PACKED_CHANNELS`] channels, `channels` live and the
/// rest zero ([`crate::backend::Backend::pack`]). How many buffer values a packed activation
/// takes is the backend's ([`crate::backend::Backend::packed_len`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackParams {
    pub batch: usize,
    pub channels: usize,
    pub len: usize,
}

impl PackParams {
    /// Values of the unpacked (batch, channels, len) activation.
    pub fn values(&self) -> usize {
        self.batch * self.channels * self.len
    }

    fn validate(&self, op: &'static str) -> BackendResult<()> {
        if self.batch == 0 || self.len == 0 || self.channels == 0 || self.channels > PACKED_CHANNELS {
            return Err(shape_error(
                op,
                format!(
                    "a packed activation has 1 to {PACKED_CHANNELS} channels and at least one position, got {self:?}"
                ),
            ));
        }
        Ok(())
    }
}

/// `packed = x` rounded to bfloat16 (nearest, ties to even), channels-last: x (batch,
/// channels, len) f32, packed as [`PackParams`] says.
pub struct Pack<'a, S: ?Sized> {
    pub x: &'a S,
    pub packed: &'a mut S,
}

impl<S: BufLen + ?Sized> Pack<'_, S> {
    /// `packed_len`: the backend's [`crate::backend::Backend::packed_len`] of the shape.
    pub fn check(&self, p: &PackParams, packed_len: usize) -> BackendResult<()> {
        const OP: &str = "pack";
        p.validate(OP)?;
        check_len(OP, "x", self.x.buf_len(), p.values())?;
        check_len(OP, "packed", self.packed.buf_len(), packed_len)
    }
}

/// `x` (batch, channels, len) = the live channels of `packed`.
pub struct Unpack<'a, S: ?Sized> {
    pub packed: &'a S,
    pub x: &'a mut S,
}

impl<S: BufLen + ?Sized> Unpack<'_, S> {
    /// `packed_len`: the backend's [`crate::backend::Backend::packed_len`] of the shape.
    pub fn check(&self, p: &PackParams, packed_len: usize) -> BackendResult<()> {
        const OP: &str = "unpack";
        p.validate(OP)?;
        check_len(OP, "packed", self.packed.buf_len(), packed_len)?;
        check_len(OP, "x", self.x.buf_len(), p.values())
    }
}

/// `dx = ∂L/∂x` (batch, c_in, len, overwritten) from dy (batch, c_out, len) and w.
pub struct Conv1dBwdInput<'a, S: ?Sized> {
    pub dy: &'a S,
    pub w: &'a S,
    pub dx: &'a mut S,
}

impl<S: BufLen + ?Sized> Conv1dBwdInput<'_, S> {
    pub fn check(&self, p: &Conv1dParams) -> BackendResult<()> {
        const OP: &str = "conv1d_bwd_input";
        p.validate(OP)?;
        check_len(OP, "dy", self.dy.buf_len(), p.output_len())?;
        check_len(OP, "w", self.w.buf_len(), p.weight_len())?;
        check_len(OP, "dx", self.dx.buf_len(), p.input_len())
    }
}

/// `dw = ∂L/∂w` (c_out, c_in, kernel) and, if given, `dbias = ∂L/∂bias` (c_out), overwritten,
/// from the forward input x and dy.
pub struct Conv1dBwdWeight<'a, S: ?Sized> {
    pub x: &'a S,
    pub dy: &'a S,
    pub dw: &'a mut S,
    pub dbias: Option<&'a mut S>,
}

impl<S: BufLen + ?Sized> Conv1dBwdWeight<'_, S> {
    pub fn check(&self, p: &Conv1dParams) -> BackendResult<()> {
        const OP: &str = "conv1d_bwd_weight";
        p.validate(OP)?;
        check_len(OP, "x", self.x.buf_len(), p.input_len())?;
        check_len(OP, "dy", self.dy.buf_len(), p.output_len())?;
        check_len(OP, "dw", self.dw.buf_len(), p.weight_len())?;
        if let Some(b) = &self.dbias {
            check_len(OP, "dbias", b.buf_len(), p.c_out)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Element-wise ops

/// The element-wise ops, forward and backward. Each op is defined once: [`Self::apply`] is
/// its value at one element (what the CPU specification computes) and [`Self::kernel`] the
/// CUDA kernel of `kernels/elementwise.cu` that computes the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementwiseOp {
    /// `y = max(x, 0)`.
    ReluFwd,
    /// `dx = dy · [y > 0]`, from the forward output y.
    ReluBwd,
    /// `y = a + b` (the residual add; its backward passes dy to both inputs).
    Add,
    /// `y = σ(x) = 1 / (1 + e^(−x))`.
    SigmoidFwd,
    /// `dx = dy · y · (1 − y)`, from the forward output y.
    SigmoidBwd,
    /// scBasset's GELU, `y = x · σ(1.702·x)`.
    GeluFwd,
    /// `dx = dy · (s + 1.702·x·s·(1 − s))`, `s = σ(1.702·x)`, from the forward input x.
    GeluBwd,
}

/// The slope of scBasset's GELU: `x · σ(1.702·x)`.
pub const GELU_SLOPE: f64 = 1.702;

impl ElementwiseOp {
    pub const ALL: [ElementwiseOp; 7] = [
        ElementwiseOp::ReluFwd,
        ElementwiseOp::ReluBwd,
        ElementwiseOp::Add,
        ElementwiseOp::SigmoidFwd,
        ElementwiseOp::SigmoidBwd,
        ElementwiseOp::GeluFwd,
        ElementwiseOp::GeluBwd,
    ];

    /// The op's name in messages, e.g. `relu_bwd`.
    pub fn name(self) -> &'static str {
        match self {
            ElementwiseOp::ReluFwd => "relu_fwd",
            ElementwiseOp::ReluBwd => "relu_bwd",
            ElementwiseOp::Add => "add_fwd",
            ElementwiseOp::SigmoidFwd => "sigmoid_fwd",
            ElementwiseOp::SigmoidBwd => "sigmoid_bwd",
            ElementwiseOp::GeluFwd => "gelu_fwd",
            ElementwiseOp::GeluBwd => "gelu_bwd",
        }
    }

    /// The kernel of `kernels/elementwise.cu` (`<name>_f32`).
    pub fn kernel(self) -> &'static str {
        match self {
            ElementwiseOp::ReluFwd => "relu_fwd_f32",
            ElementwiseOp::ReluBwd => "relu_bwd_f32",
            ElementwiseOp::Add => "add_fwd_f32",
            ElementwiseOp::SigmoidFwd => "sigmoid_fwd_f32",
            ElementwiseOp::SigmoidBwd => "sigmoid_bwd_f32",
            ElementwiseOp::GeluFwd => "gelu_fwd_f32",
            ElementwiseOp::GeluBwd => "gelu_bwd_f32",
        }
    }

    /// The names of the inputs (one or two) and of the output, as the formulas above use them.
    pub fn buffer_names(self) -> (&'static [&'static str], &'static str) {
        match self {
            ElementwiseOp::ReluFwd | ElementwiseOp::SigmoidFwd | ElementwiseOp::GeluFwd => (&["x"], "y"),
            ElementwiseOp::ReluBwd | ElementwiseOp::SigmoidBwd => (&["y", "dy"], "dx"),
            ElementwiseOp::GeluBwd => (&["x", "dy"], "dx"),
            ElementwiseOp::Add => (&["a", "b"], "y"),
        }
    }

    /// One or two inputs.
    pub fn arity(self) -> usize {
        self.buffer_names().0.len()
    }

    /// The op at one element: `a` is the first input, `b` the second (ignored by unary ops).
    #[inline(always)]
    pub fn apply<T: crate::backend::cpu::Real>(self, a: T, b: T) -> T {
        use crate::backend::cpu::sigmoid;
        match self {
            ElementwiseOp::ReluFwd => {
                if a > T::zero() {
                    a
                } else {
                    T::zero()
                }
            }
            ElementwiseOp::ReluBwd => {
                if a > T::zero() {
                    b
                } else {
                    T::zero()
                }
            }
            ElementwiseOp::Add => a + b,
            ElementwiseOp::SigmoidFwd => sigmoid(a),
            ElementwiseOp::SigmoidBwd => b * a * (T::one() - a),
            ElementwiseOp::GeluFwd => a * sigmoid(T::of(GELU_SLOPE) * a),
            ElementwiseOp::GeluBwd => {
                let k = T::of(GELU_SLOPE);
                let s = sigmoid(k * a);
                b * (s + k * a * s * (T::one() - s))
            }
        }
    }
}

/// The buffers of an element-wise op: the first input, the second (binary ops only) and the
/// output, all of one length. [`ElementwiseOp::buffer_names`] names them in messages.
pub struct Elementwise<'a, S: ?Sized> {
    pub a: &'a S,
    pub b: Option<&'a S>,
    pub out: &'a mut S,
}

impl<S: BufLen + ?Sized> Elementwise<'_, S> {
    /// Checks the number of inputs and that every buffer has the first input's length;
    /// returns that length.
    pub fn check(&self, op: ElementwiseOp) -> BackendResult<usize> {
        let (inputs, output) = op.buffer_names();
        let n = self.a.buf_len();
        match (inputs, self.b) {
            ([_], None) => {}
            ([_, second], Some(b)) => check_len(op.name(), second, b.buf_len(), n)?,
            _ => return Err(shape_error(op.name(), format!("takes {} input(s): {}", inputs.len(), inputs.join(", ")))),
        }
        check_len(op.name(), output, self.out.buf_len(), n)?;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// One-hot encoding

/// Shape of a one-hot encoding: `batch` sequences of `len` base codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneHotParams {
    pub batch: usize,
    pub len: usize,
}

/// One-hot encoding of base codes with scBasset's augmentation: `codes` (batch, len), base
/// codes A C G T N = 0..4 → `out` (batch, 4, len).
///
/// Let `r[b, t]` be sequence b, reverse-complemented when `reverse[b]` (`r[b, t] = 3 −
/// codes[b, len − 1 − t]`, N staying N), else `codes[b, t]`. It is then shifted right by
/// `shift[b]` (|shift| < len; negative shifts left): `out[b, ch, t] = [r[b, t − shift[b]] =
/// ch]` where `0 ≤ t − shift[b] < len`, and 0.25 in all four channels at the positions the
/// shift uncovers. N is all zeros. Every shift 0 is the plain (reverse-complemented)
/// encoding. The codes, flags and shifts are host memory: one byte per base crosses to a
/// device.
pub struct OneHot<'a, S: ?Sized> {
    pub codes: &'a [u8],
    pub reverse: &'a [bool],
    pub shift: &'a [i32],
    pub out: &'a mut S,
}

impl<S: BufLen + ?Sized> OneHot<'_, S> {
    /// Checks the lengths, the base codes, and every |shift| below len (a shift of 0 is
    /// accepted for any len).
    pub fn check(&self, p: &OneHotParams) -> BackendResult<()> {
        const OP: &str = "one_hot";
        let (batch, len) = (p.batch, p.len);
        check_len(OP, "codes", self.codes.len(), batch * len)?;
        check_len(OP, "reverse", self.reverse.len(), batch)?;
        check_len(OP, "shift", self.shift.len(), batch)?;
        check_len(OP, "out", self.out.buf_len(), batch * 4 * len)?;
        if let Some(b) = self.shift.iter().position(|&s| s != 0 && s.unsigned_abs() as usize >= len) {
            return Err(shape_error(
                OP,
                format!("shift {} of sequence {b} is not below the length {len} in magnitude", self.shift[b]),
            ));
        }
        match self.codes.iter().position(|&c| c > 4) {
            Some(i) => Err(shape_error(OP, format!("code {} at {i} is not a base code (0..=4)", self.codes[i]))),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dropout

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

    fn check(&self, op: &'static str, input: usize, output: (&str, usize)) -> BackendResult<()> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(shape_error(op, format!("dropout rate {} is outside [0, 1)", self.rate)));
        }
        check_len(op, output.0, output.1, input)
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

/// `y[i] = x[i]·(1/(1 − rate))` where [`dropout_keep`]`(seed, i, rate)`, else 0.
pub struct DropoutFwd<'a, S: ?Sized> {
    pub x: &'a S,
    pub y: &'a mut S,
}

impl<S: BufLen + ?Sized> DropoutFwd<'_, S> {
    pub fn check(&self, p: &DropoutParams) -> BackendResult<()> {
        p.check("dropout_fwd", self.x.buf_len(), ("y", self.y.buf_len()))
    }
}

/// `dx[i] = dy[i]·(1/(1 − rate))` where the forward kept element i, else 0; the mask is
/// regenerated from the seed.
pub struct DropoutBwd<'a, S: ?Sized> {
    pub dy: &'a S,
    pub dx: &'a mut S,
}

impl<S: BufLen + ?Sized> DropoutBwd<'_, S> {
    pub fn check(&self, p: &DropoutParams) -> BackendResult<()> {
        p.check("dropout_bwd", self.dy.buf_len(), ("dx", self.dx.buf_len()))
    }
}

// ---------------------------------------------------------------------------------------------
// Batch normalisation

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
    fn validate(&self, op: &'static str) -> BackendResult<()> {
        if self.batch == 0
            || self.channels == 0
            || self.len == 0
            || !(self.eps > 0.0)
            || !(0.0..=1.0).contains(&self.momentum)
        {
            return Err(shape_error(op, format!("invalid batch-norm shape or settings {self:?}")));
        }
        Ok(())
    }

    /// Checks activation buffers (batch × channels × len values) and per-channel ones.
    fn check(
        &self,
        op: &'static str,
        activations: &[(&str, usize)],
        per_channel: &[(&str, usize)],
    ) -> BackendResult<()> {
        self.validate(op)?;
        for &(name, got) in activations {
            check_len(op, name, got, self.batch * self.channels * self.len)?;
        }
        for &(name, got) in per_channel {
            check_len(op, name, got, self.channels)?;
        }
        Ok(())
    }
}

/// Training mode: writes y, the batch's mean and 1/sqrt(var + ε) per channel (for the
/// backward pass) and moves the running statistics in place.
pub struct BatchNormFwdTrain<'a, S: ?Sized> {
    pub x: &'a S,
    pub gamma: &'a S,
    pub beta: &'a S,
    pub y: &'a mut S,
    pub mean: &'a mut S,
    pub invstd: &'a mut S,
    pub running_mean: &'a mut S,
    pub running_var: &'a mut S,
}

impl<S: BufLen + ?Sized> BatchNormFwdTrain<'_, S> {
    pub fn check(&self, p: &BatchNormParams) -> BackendResult<()> {
        p.check(
            "batchnorm_fwd_train",
            &[("x", self.x.buf_len()), ("y", self.y.buf_len())],
            &[
                ("gamma", self.gamma.buf_len()),
                ("beta", self.beta.buf_len()),
                ("mean", self.mean.buf_len()),
                ("invstd", self.invstd.buf_len()),
                ("running_mean", self.running_mean.buf_len()),
                ("running_var", self.running_var.buf_len()),
            ],
        )
    }
}

/// Inference mode: normalised by the running statistics.
pub struct BatchNormFwdInfer<'a, S: ?Sized> {
    pub x: &'a S,
    pub gamma: &'a S,
    pub beta: &'a S,
    pub running_mean: &'a S,
    pub running_var: &'a S,
    pub y: &'a mut S,
}

impl<S: BufLen + ?Sized> BatchNormFwdInfer<'_, S> {
    pub fn check(&self, p: &BatchNormParams) -> BackendResult<()> {
        p.check(
            "batchnorm_fwd_infer",
            &[("x", self.x.buf_len()), ("y", self.y.buf_len())],
            &[
                ("gamma", self.gamma.buf_len()),
                ("beta", self.beta.buf_len()),
                ("running_mean", self.running_mean.buf_len()),
                ("running_var", self.running_var.buf_len()),
            ],
        )
    }
}

/// Backward of the training-mode forward: dx, dγ, dβ (overwritten) from x, dy, γ and the
/// saved mean and 1/std.
pub struct BatchNormBwd<'a, S: ?Sized> {
    pub x: &'a S,
    pub dy: &'a S,
    pub gamma: &'a S,
    pub mean: &'a S,
    pub invstd: &'a S,
    pub dx: &'a mut S,
    pub dgamma: &'a mut S,
    pub dbeta: &'a mut S,
}

impl<S: BufLen + ?Sized> BatchNormBwd<'_, S> {
    pub fn check(&self, p: &BatchNormParams) -> BackendResult<()> {
        p.check(
            "batchnorm_bwd",
            &[("x", self.x.buf_len()), ("dy", self.dy.buf_len()), ("dx", self.dx.buf_len())],
            &[
                ("gamma", self.gamma.buf_len()),
                ("mean", self.mean.buf_len()),
                ("invstd", self.invstd.buf_len()),
                ("dgamma", self.dgamma.buf_len()),
                ("dbeta", self.dbeta.buf_len()),
            ],
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Max pooling

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

    pub fn input_len(&self) -> usize {
        self.batch * self.channels * self.len
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.channels * self.out_len()
    }

    fn validate(&self, op: &'static str) -> BackendResult<()> {
        if self.batch == 0 || self.channels == 0 || self.len == 0 || self.pool == 0 {
            return Err(shape_error(op, format!("every size must be at least 1 ({self:?})")));
        }
        Ok(())
    }
}

/// x (batch, channels, len) → y (batch, channels, out_len).
pub struct MaxPoolFwd<'a, S: ?Sized> {
    pub x: &'a S,
    pub y: &'a mut S,
}

impl<S: BufLen + ?Sized> MaxPoolFwd<'_, S> {
    pub fn check(&self, p: &MaxPoolParams) -> BackendResult<()> {
        const OP: &str = "maxpool_fwd";
        p.validate(OP)?;
        check_len(OP, "x", self.x.buf_len(), p.input_len())?;
        check_len(OP, "y", self.y.buf_len(), p.output_len())
    }
}

/// dx (overwritten): each window's dy goes to its first maximum, from the forward input x.
pub struct MaxPoolBwd<'a, S: ?Sized> {
    pub x: &'a S,
    pub dy: &'a S,
    pub dx: &'a mut S,
}

impl<S: BufLen + ?Sized> MaxPoolBwd<'_, S> {
    pub fn check(&self, p: &MaxPoolParams) -> BackendResult<()> {
        const OP: &str = "maxpool_bwd";
        p.validate(OP)?;
        check_len(OP, "x", self.x.buf_len(), p.input_len())?;
        check_len(OP, "dy", self.dy.buf_len(), p.output_len())?;
        check_len(OP, "dx", self.dx.buf_len(), p.input_len())
    }
}

// ---------------------------------------------------------------------------------------------
// The denoising loss

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

/// The fused loss's buffers, all (batch, len): `mask` holds 0/1 peak labels; the gradients
/// w.r.t. the regression output and the classification logits are overwritten (zero in the
/// cropped padding).
pub struct DenoiseLoss<'a, S: ?Sized> {
    pub reg: &'a S,
    pub clean: &'a S,
    pub cls_logits: &'a S,
    pub mask: &'a S,
    pub d_reg: &'a mut S,
    pub d_cls: &'a mut S,
}

impl<S: BufLen + ?Sized> DenoiseLoss<'_, S> {
    pub fn check(&self, p: &DenoiseLossParams) -> BackendResult<()> {
        const OP: &str = "denoise_loss";
        if p.batch == 0 || p.cropped_len() == 0 {
            return Err(shape_error(
                OP,
                format!(
                    "nothing to score: batch {} and interval length {} with padding {} on each side leave no bases",
                    p.batch, p.len, p.pad
                ),
            ));
        }
        for (name, got) in [
            ("reg", self.reg.buf_len()),
            ("clean", self.clean.buf_len()),
            ("cls_logits", self.cls_logits.buf_len()),
            ("mask", self.mask.buf_len()),
            ("d_reg", self.d_reg.buf_len()),
            ("d_cls", self.d_cls.buf_len()),
        ] {
            check_len(OP, name, got, p.batch * p.len)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Adam

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
}

/// One Adam update of `param` in place, with the moments `m`, `v` updated in place.
pub struct AdamStep<'a, S: ?Sized> {
    pub param: &'a mut S,
    pub grad: &'a S,
    pub m: &'a mut S,
    pub v: &'a mut S,
}

impl<S: BufLen + ?Sized> AdamStep<'_, S> {
    /// Checks the settings and that param, grad, m and v have one length.
    pub fn check(&self, p: &AdamParams) -> BackendResult<()> {
        const OP: &str = "adam_step";
        let ok = p.step >= 1
            && p.lr.is_finite()
            && (0.0..1.0).contains(&p.beta1)
            && (0.0..1.0).contains(&p.beta2)
            && p.eps > 0.0
            && p.weight_decay >= 0.0;
        if !ok {
            return Err(shape_error(
                OP,
                format!("invalid Adam settings {p:?}: need step ≥ 1, finite lr, 0 ≤ β < 1, ε > 0, weight decay ≥ 0"),
            ));
        }
        let n = self.param.buf_len();
        check_len(OP, "grad", self.grad.buf_len(), n)?;
        check_len(OP, "m", self.m.buf_len(), n)?;
        check_len(OP, "v", self.v.buf_len(), n)
    }
}

// ---------------------------------------------------------------------------------------------
// The per-cell sigmoid head

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
    /// Checks the shape, z (batch, dim), w (cells, dim), bias (cells), and the CSR rows:
    /// offsets rising from 0 to nnz, cells sorted, distinct and in range.
    fn check_logits<S: BufLen + ?Sized>(&self, op: &'static str, b: &HeadLogits<'_, S>) -> BackendResult<()> {
        if self.batch == 0 || self.cells == 0 || self.dim == 0 {
            return Err(shape_error(op, format!("batch, cells and dim must be at least 1 ({self:?})")));
        }
        check_len(op, "z", b.z.buf_len(), self.batch * self.dim)?;
        check_len(op, "w", b.w.buf_len(), self.cells * self.dim)?;
        check_len(op, "bias", b.bias.buf_len(), self.cells)?;
        let (indptr, indices) = (b.rows.indptr, b.rows.indices);
        if let Some((d_indptr, d_indices)) = b.rows.device {
            check_len(op, "device indptr", d_indptr.buf_len(), indptr.len())?;
            check_len(op, "device indices", d_indices.buf_len(), indices.len().max(1))?;
        }
        check_len(op, "indptr", indptr.len(), self.batch + 1)?;
        if indptr[0] != 0 || indptr[self.batch] as usize != indices.len() || indptr.windows(2).any(|w| w[0] > w[1]) {
            return Err(shape_error(op, format!("indptr must rise from 0 to nnz = {}", indices.len())));
        }
        for i in 0..self.batch {
            let row = &indices[indptr[i] as usize..indptr[i + 1] as usize];
            if row.windows(2).any(|w| w[0] >= w[1]) || row.last().is_some_and(|&c| c as usize >= self.cells) {
                return Err(shape_error(
                    op,
                    format!("row {i}: cell indices must be sorted, distinct and below {}", self.cells),
                ));
            }
        }
        Ok(())
    }
}

/// A batch's binary CSR rows (`indptr` batch + 1, `indices` nnz) in host memory and, on a
/// device backend, their copy in device memory: [`crate::backend::Backend::upload_rows`]
/// makes it once per batch, and the head and its histogram both read it (no second upload).
pub struct HeadRows<'a, S: ?Sized> {
    pub indptr: &'a [u32],
    pub indices: &'a [u32],
    /// The same u32 values in device buffers (bit for bit; an empty `indices` is one unused
    /// zero), or `None` where the backend reads host memory or copies at each op.
    pub device: Option<(&'a S, &'a S)>,
}

impl<'a, S: ?Sized> HeadRows<'a, S> {
    /// Rows in host memory only: a device backend copies them at each op that reads them.
    pub fn host(indptr: &'a [u32], indices: &'a [u32]) -> Self {
        HeadRows { indptr, indices, device: None }
    }
}

impl<'a, S> HeadRows<'a, S> {
    /// Rows with the device copy [`crate::backend::Backend::upload_rows`] returned for them.
    pub fn with_device(indptr: &'a [u32], indices: &'a [u32], device: &'a Option<(S, S)>) -> Self {
        HeadRows { indptr, indices, device: device.as_ref().map(|(a, b)| (a, b)) }
    }
}

/// The head's inputs: z (batch, dim), w (cells, dim), bias (cells) and the batch's binary CSR
/// rows.
pub struct HeadLogits<'a, S: ?Sized> {
    pub z: &'a S,
    pub w: &'a S,
    pub bias: &'a S,
    pub rows: &'a HeadRows<'a, S>,
}

impl<S: BufLen + ?Sized> HeadLogits<'_, S> {
    /// For [`crate::backend::Backend::head_roc_histogram`].
    pub fn check(&self, p: &SparseHeadParams) -> BackendResult<()> {
        p.check_logits("head_roc_histogram", self)
    }
}

/// The head with its loss: the inputs, and dz (batch, dim), dw (cells, dim), dbias (cells),
/// overwritten.
pub struct SparseHead<'a, S: ?Sized> {
    pub logits: HeadLogits<'a, S>,
    pub dz: &'a mut S,
    pub dw: &'a mut S,
    pub dbias: &'a mut S,
}

impl<S: BufLen + ?Sized> SparseHead<'_, S> {
    pub fn check(&self, p: &SparseHeadParams) -> BackendResult<()> {
        const OP: &str = "sparse_head";
        p.check_logits(OP, &self.logits)?;
        check_len(OP, "dz", self.dz.buf_len(), p.batch * p.dim)?;
        check_len(OP, "dw", self.dw.buf_len(), p.cells * p.dim)?;
        check_len(OP, "dbias", self.dbias.buf_len(), p.cells)
    }
}

/// Bins of the head's logit histogram ([`crate::backend::Backend::head_roc_histogram`]): 1/16
/// wide over [−16, 16), the outermost bins also taking everything beyond.
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
