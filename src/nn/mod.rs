//! Layers that own parameters, with explicit forward and backward passes over a [`Backend`].
//!
//! Activations are (batch, channels, length); a layer's backward takes the input it saw in
//! the forward pass (the caller keeps it) and overwrites its parameters' gradients.

use crate::backend::{
    Backend, BackendResult, BatchNormBwd, BatchNormFwdInfer, BatchNormFwdTrain, BatchNormParams, BufLen,
    Conv1dBwdInput, Conv1dBwdWeight, Conv1dFwd, Conv1dParams, Elementwise, ElementwiseOp, Epilogue, Pack, PackParams,
    Unpack,
};

/// A named parameter tensor with its gradient.
pub struct Param<B: Backend> {
    pub name: String,
    pub shape: Vec<usize>,
    pub value: B::Buf,
    pub grad: B::Buf,
}

impl<B: Backend> Param<B> {
    /// A parameter holding `values` (f32, converted to the backend's element type), with a
    /// zero gradient.
    pub fn new(backend: &B, name: String, shape: Vec<usize>, values: &[f32]) -> BackendResult<Self> {
        Ok(Param { name, shape, value: upload_f32(backend, values)?, grad: backend.zeros(values.len())? })
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A network as named tensors: its parameters (with their gradients) and the state saved
/// with them that gradients do not train (batch-norm running statistics). Checkpoints and
/// the fit loop see networks through it.
pub trait Module<B: Backend> {
    fn params(&self) -> Vec<&Param<B>>;
    fn params_mut(&mut self) -> Vec<&mut Param<B>>;
    /// The state as (name, buffer) pairs; none by default.
    fn stats(&self) -> Vec<(String, &B::Buf)> {
        Vec::new()
    }
    fn stats_mut(&mut self) -> Vec<(String, &mut B::Buf)> {
        Vec::new()
    }
}

/// Seeded initialisation values, drawn from [`crate::rng::SplitMix64`].
pub struct InitRng(crate::rng::SplitMix64);

impl InitRng {
    pub fn new(seed: u64) -> Self {
        InitRng(crate::rng::SplitMix64::new(seed))
    }

    /// Uniform in [−bound, bound).
    pub fn uniform(&mut self, bound: f64) -> f32 {
        ((2.0 * self.0.unit() - 1.0) * bound) as f32
    }
}

/// Uploads host f32 values as the backend's element type.
pub fn upload_f32<B: Backend>(backend: &B, values: &[f32]) -> BackendResult<B::Buf> {
    backend.upload_f32(values)
}

/// Downloads a buffer as f32.
pub fn download_f32<B: Backend>(backend: &B, buf: &B::Buf) -> BackendResult<Vec<f32>> {
    let mut host = vec![B::Elem::default(); buf.buf_len()];
    backend.download(buf, &mut host)?;
    Ok(host.into_iter().map(|v| v.into() as f32).collect())
}

/// A 1-D convolution with "same" padding and an optional bias.
pub struct Conv1d<B: Backend> {
    pub c_in: usize,
    pub c_out: usize,
    pub kernel: usize,
    pub dilation: usize,
    pub weight: Param<B>,
    pub bias: Option<Param<B>>,
    /// The input is a track bf16 would round (coverage: values above 256 lose precision), so
    /// the forward pass and the weight gradient, which read it, take f32 operands on every
    /// backend ([`Backend::conv1d_fwd_f32`]). The input gradient reads only dy and w.
    pub f32_input: bool,
}

impl<B: Backend> Conv1d<B> {
    /// PyTorch's default initialisation: weights and bias uniform in ±1/sqrt(c_in·kernel).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        backend: &B,
        name: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        dilation: usize,
        bias: bool,
        rng: &mut InitRng,
    ) -> BackendResult<Self> {
        let bound = 1.0 / ((c_in * kernel) as f64).sqrt();
        let w: Vec<f32> = (0..c_out * c_in * kernel).map(|_| rng.uniform(bound)).collect();
        let b: Option<Vec<f32>> = bias.then(|| (0..c_out).map(|_| rng.uniform(bound)).collect());
        Self::from_values(backend, name, c_in, c_out, kernel, dilation, &w, b.as_deref())
    }

    /// A convolution with the given weights (c_out, c_in, kernel) and bias (c_out).
    #[allow(clippy::too_many_arguments)]
    pub fn from_values(
        backend: &B,
        name: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        dilation: usize,
        weights: &[f32],
        bias: Option<&[f32]>,
    ) -> BackendResult<Self> {
        let weight = Param::new(backend, format!("{name}.weight"), vec![c_out, c_in, kernel], weights)?;
        let bias = match bias {
            Some(b) => Some(Param::new(backend, format!("{name}.bias"), vec![c_out], b)?),
            None => None,
        };
        Ok(Conv1d { c_in, c_out, kernel, dilation, weight, bias, f32_input: false })
    }

    pub fn shape(&self, batch: usize, len: usize) -> Conv1dParams {
        Conv1dParams { batch, c_in: self.c_in, c_out: self.c_out, len, kernel: self.kernel, dilation: self.dilation }
    }

    pub fn forward(&self, backend: &B, x: &B::Buf, batch: usize, len: usize) -> BackendResult<B::Buf> {
        let p = self.shape(batch, len);
        let mut y = backend.zeros(p.output_len())?;
        let bias = self.bias.as_ref().map(|b| &b.value);
        let bufs = Conv1dFwd { x, w: &self.weight.value, bias, y: &mut y };
        if self.f32_input {
            backend.conv1d_fwd_f32(&p, bufs, None)?;
        } else {
            backend.conv1d_fwd(&p, bufs)?;
        }
        Ok(y)
    }

    /// The forward pass with `epilogue` on its output ([`Epilogue`]: ReLU, or the residual add
    /// and ReLU), fused into the convolution where the backend can.
    pub fn forward_then(
        &self,
        backend: &B,
        x: &B::Buf,
        batch: usize,
        len: usize,
        epilogue: Epilogue<'_, B::Buf>,
    ) -> BackendResult<B::Buf> {
        let p = self.shape(batch, len);
        let mut y = backend.zeros(p.output_len())?;
        let bias = self.bias.as_ref().map(|b| &b.value);
        let bufs = Conv1dFwd { x, w: &self.weight.value, bias, y: &mut y };
        if self.f32_input {
            backend.conv1d_fwd_f32(&p, bufs, Some(epilogue))?;
        } else {
            backend.conv1d_fwd_then(&p, bufs, epilogue)?;
        }
        Ok(y)
    }

    /// The forward pass on packed activations ([`Backend::conv1d_fwd_packed`]): x packed, the
    /// epilogue's residual packed, the output packed.
    pub fn forward_packed(
        &self,
        backend: &B,
        x: &B::Buf,
        batch: usize,
        len: usize,
        epilogue: Option<Epilogue<'_, B::Buf>>,
    ) -> BackendResult<B::Buf> {
        debug_assert!(!self.f32_input, "{}: an input that keeps f32 operands is never packed", self.weight.name);
        let p = self.shape(batch, len);
        let mut y = backend.zeros(backend.packed_len(batch, len))?;
        let bias = self.bias.as_ref().map(|b| &b.value);
        backend.conv1d_fwd_packed(&p, Conv1dFwd { x, w: &self.weight.value, bias, y: &mut y }, epilogue)?;
        Ok(y)
    }

    /// Overwrites the parameter gradients from the forward input `x` and `dy`.
    pub fn grad_params(&mut self, backend: &B, x: &B::Buf, dy: &B::Buf, batch: usize, len: usize) -> BackendResult<()> {
        let p = self.shape(batch, len);
        let dbias = self.bias.as_mut().map(|b| &mut b.grad);
        let bufs = Conv1dBwdWeight { x, dy, dw: &mut self.weight.grad, dbias };
        if self.f32_input {
            backend.conv1d_bwd_weight_f32(&p, bufs)
        } else {
            backend.conv1d_bwd_weight(&p, bufs)
        }
    }

    /// [`Conv1d::grad_params`] from an input that is packed if `x_packed`
    /// ([`Backend::conv1d_bwd_weight_packed`]).
    pub fn grad_params_from(
        &mut self,
        backend: &B,
        x: &B::Buf,
        x_packed: bool,
        dy: &B::Buf,
        batch: usize,
        len: usize,
    ) -> BackendResult<()> {
        if !x_packed {
            return self.grad_params(backend, x, dy, batch, len);
        }
        debug_assert!(!self.f32_input, "{}: an input that keeps f32 operands is never packed", self.weight.name);
        let p = self.shape(batch, len);
        let dbias = self.bias.as_mut().map(|b| &mut b.grad);
        backend.conv1d_bwd_weight_packed(&p, Conv1dBwdWeight { x, dy, dw: &mut self.weight.grad, dbias })
    }

    /// The gradient with respect to the input.
    pub fn grad_input(&self, backend: &B, dy: &B::Buf, batch: usize, len: usize) -> BackendResult<B::Buf> {
        let p = self.shape(batch, len);
        let mut dx = backend.zeros(p.input_len())?;
        backend.conv1d_bwd_input(&p, Conv1dBwdInput { dy, w: &self.weight.value, dx: &mut dx })?;
        Ok(dx)
    }

    pub fn params(&self) -> Vec<&Param<B>> {
        std::iter::once(&self.weight).chain(self.bias.as_ref()).collect()
    }

    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        std::iter::once(&mut self.weight).chain(self.bias.as_mut()).collect()
    }
}

/// `op(a[, b])` into a new buffer.
fn elementwise<B: Backend>(backend: &B, op: ElementwiseOp, a: &B::Buf, b: Option<&B::Buf>) -> BackendResult<B::Buf> {
    let mut out = backend.zeros(a.buf_len())?;
    backend.elementwise(op, Elementwise { a, b, out: &mut out })?;
    Ok(out)
}

/// A buffer borrowed, or made for the occasion.
enum MaybeOwned<'a, T> {
    Borrowed(&'a T),
    Owned(T),
}

impl<T> AsRef<T> for MaybeOwned<'_, T> {
    fn as_ref(&self) -> &T {
        match self {
            MaybeOwned::Borrowed(t) => t,
            MaybeOwned::Owned(t) => t,
        }
    }
}

/// x (batch, channels, len) packed into a new buffer ([`Backend::pack`]).
pub fn pack<B: Backend>(backend: &B, x: &B::Buf, batch: usize, channels: usize, len: usize) -> BackendResult<B::Buf> {
    let mut packed = backend.zeros(backend.packed_len(batch, len))?;
    backend.pack(&PackParams { batch, channels, len }, Pack { x, packed: &mut packed })?;
    Ok(packed)
}

/// The first `channels` channels of a packed activation as a new (batch, channels, len) buffer
/// ([`Backend::unpack`]).
pub fn unpack<B: Backend>(
    backend: &B,
    packed: &B::Buf,
    batch: usize,
    channels: usize,
    len: usize,
) -> BackendResult<B::Buf> {
    let p = PackParams { batch, channels, len };
    let mut x = backend.zeros(p.values())?;
    backend.unpack(&p, Unpack { packed, x: &mut x })?;
    Ok(x)
}

/// `dy · [y > 0]` into a new buffer.
pub fn relu_backward<B: Backend>(backend: &B, y: &B::Buf, dy: &B::Buf) -> BackendResult<B::Buf> {
    elementwise(backend, ElementwiseOp::ReluBwd, y, Some(dy))
}

/// `a + b` into a new buffer.
pub fn add<B: Backend>(backend: &B, a: &B::Buf, b: &B::Buf) -> BackendResult<B::Buf> {
    elementwise(backend, ElementwiseOp::Add, a, Some(b))
}

/// A residual block: conv → ReLU → conv → ReLU → conv, plus the skip (a 1×1 conv + ReLU when
/// the channel count changes, identity otherwise), then ReLU.
pub struct ResBlock<B: Backend> {
    pub conv1: Conv1d<B>,
    pub conv2: Conv1d<B>,
    pub conv3: Conv1d<B>,
    pub skip: Option<Conv1d<B>>,
}

/// What a block's backward needs from its forward pass (its input is kept by the caller).
pub struct BlockCache<B: Backend> {
    a1: B::Buf,
    a2: B::Buf,
    skip_out: Option<B::Buf>,
    pub out: B::Buf,
    /// Whether the activations (a1, a2, skip_out, out) are packed ([`ResBlock::forward_packed`]).
    packed: bool,
}

impl<B: Backend> BlockCache<B> {
    /// Whether the saved activations, `out` included, are packed.
    pub fn is_packed(&self) -> bool {
        self.packed
    }
}

impl<B: Backend> ResBlock<B> {
    /// `bias` applies to the three width-k convs; the 1×1 skip never has one.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        backend: &B,
        name: &str,
        c_in: usize,
        filters: usize,
        kernel: usize,
        dilation: usize,
        bias: bool,
        rng: &mut InitRng,
    ) -> BackendResult<Self> {
        Ok(ResBlock {
            conv1: Conv1d::new(backend, &format!("{name}.conv1"), c_in, filters, kernel, dilation, bias, rng)?,
            conv2: Conv1d::new(backend, &format!("{name}.conv2"), filters, filters, kernel, dilation, bias, rng)?,
            conv3: Conv1d::new(backend, &format!("{name}.conv3"), filters, filters, kernel, dilation, bias, rng)?,
            skip: if c_in != filters {
                Some(Conv1d::new(backend, &format!("{name}.skip"), c_in, filters, 1, 1, false, rng)?)
            } else {
                None
            },
        })
    }

    pub fn forward(&self, backend: &B, x: &B::Buf, batch: usize, len: usize) -> BackendResult<BlockCache<B>> {
        let a1 = self.conv1.forward_then(backend, x, batch, len, Epilogue::Relu)?;
        let a2 = self.conv2.forward_then(backend, &a1, batch, len, Epilogue::Relu)?;
        let skip_out = match &self.skip {
            Some(conv) => Some(conv.forward_then(backend, x, batch, len, Epilogue::Relu)?),
            None => None,
        };
        let residual = Epilogue::AddRelu(skip_out.as_ref().unwrap_or(x));
        let out = self.conv3.forward_then(backend, &a2, batch, len, residual)?;
        Ok(BlockCache { a1, a2, skip_out, out, packed: false })
    }

    /// The training forward pass with the activations packed (where [`ResBlock::packs`]), as
    /// [`ResBlock::infer_packed`] computes them; all of them kept for backward, packed.
    pub fn forward_packed(
        &self,
        backend: &B,
        x: &B::Buf,
        x_packed: bool,
        batch: usize,
        len: usize,
    ) -> BackendResult<BlockCache<B>> {
        let a1 = self.conv1_packed(backend, x, x_packed, batch, len)?;
        let a2 = self.conv2.forward_packed(backend, &a1, batch, len, Some(Epilogue::Relu))?;
        let skip_out = self.skip_packed(backend, x, x_packed, batch, len)?;
        let residual = Epilogue::AddRelu(skip_out.as_ref().unwrap_or(x));
        let out = self.conv3.forward_packed(backend, &a2, batch, len, Some(residual))?;
        Ok(BlockCache { a1, a2, skip_out, out, packed: true })
    }

    /// The first convolution and its ReLU, output packed: on the packed input where the
    /// backend packs its shape, else in f32 (an input from outside the trunk) and packed.
    fn conv1_packed(&self, backend: &B, x: &B::Buf, x_packed: bool, batch: usize, len: usize) -> BackendResult<B::Buf> {
        if x_packed && backend.packs(&self.conv1.shape(batch, len)) {
            return self.conv1.forward_packed(backend, x, batch, len, Some(Epilogue::Relu));
        }
        let x = Self::unpacked(backend, x, x_packed, self.conv1.c_in, batch, len)?;
        let a1 = self.conv1.forward_then(backend, x.as_ref(), batch, len, Epilogue::Relu)?;
        pack(backend, &a1, batch, self.conv1.c_out, len)
    }

    /// The residual of a packed block, packed: the skip convolution's output (f32, then
    /// packed), or the input itself (`None`: x is packed already).
    fn skip_packed(
        &self,
        backend: &B,
        x: &B::Buf,
        x_packed: bool,
        batch: usize,
        len: usize,
    ) -> BackendResult<Option<B::Buf>> {
        let f = self.conv3.c_out;
        match (&self.skip, x_packed) {
            (Some(conv), _) => {
                let x = Self::unpacked(backend, x, x_packed, conv.c_in, batch, len)?;
                let s = conv.forward_then(backend, x.as_ref(), batch, len, Epilogue::Relu)?;
                Ok(Some(pack(backend, &s, batch, f, len)?))
            }
            (None, true) => Ok(None),
            (None, false) => Ok(Some(pack(backend, x, batch, f, len)?)),
        }
    }

    /// `x` as (batch, channels, len): itself, or unpacked into a new buffer.
    fn unpacked<'a>(
        backend: &B,
        x: &'a B::Buf,
        x_packed: bool,
        channels: usize,
        batch: usize,
        len: usize,
    ) -> BackendResult<MaybeOwned<'a, B::Buf>> {
        if x_packed {
            Ok(MaybeOwned::Owned(unpack(backend, x, batch, channels, len)?))
        } else {
            Ok(MaybeOwned::Borrowed(x))
        }
    }

    /// Inference: the output only, intermediates freed as soon as possible.
    pub fn infer(&self, backend: &B, x: &B::Buf, batch: usize, len: usize) -> BackendResult<B::Buf> {
        let a2 = {
            let a1 = self.conv1.forward_then(backend, x, batch, len, Epilogue::Relu)?;
            self.conv2.forward_then(backend, &a1, batch, len, Epilogue::Relu)?
        };
        let skip_out = match &self.skip {
            Some(conv) => Some(conv.forward_then(backend, x, batch, len, Epilogue::Relu)?),
            None => None,
        };
        let residual = Epilogue::AddRelu(skip_out.as_ref().unwrap_or(x));
        self.conv3.forward_then(backend, &a2, batch, len, residual)
    }

    /// Whether the block's inference can keep its activations packed on `backend`
    /// ([`Backend::packs`] takes both filters → filters convolutions).
    pub fn packs(&self, backend: &B, batch: usize, len: usize) -> bool {
        backend.packs(&self.conv2.shape(batch, len)) && backend.packs(&self.conv3.shape(batch, len))
    }

    /// Inference with packed activations (where [`ResBlock::packs`]): `x` is the block's input,
    /// (batch, c_in, len) or packed (`x_packed`); returns the output packed. An input from
    /// outside the trunk (a coverage track) stays f32 in the first convolution and the skip;
    /// their outputs are packed.
    pub fn infer_packed(
        &self,
        backend: &B,
        x: &B::Buf,
        x_packed: bool,
        batch: usize,
        len: usize,
    ) -> BackendResult<B::Buf> {
        let a2 = {
            let a1 = self.conv1_packed(backend, x, x_packed, batch, len)?;
            self.conv2.forward_packed(backend, &a1, batch, len, Some(Epilogue::Relu))?
        };
        let skip_out = self.skip_packed(backend, x, x_packed, batch, len)?;
        let residual = Epilogue::AddRelu(skip_out.as_ref().unwrap_or(x));
        self.conv3.forward_packed(backend, &a2, batch, len, Some(residual))
    }

    /// Gradients of the block's parameters from `d_out`; returns dx if asked. `x` is the
    /// block's input, packed if `x_packed` (a packed block's input from the block before).
    /// A packed cache's activations are unpacked for the ReLU masks; the weight gradients read
    /// them packed ([`Backend::conv1d_bwd_weight_packed`]).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &mut self,
        backend: &B,
        x: &B::Buf,
        x_packed: bool,
        cache: &BlockCache<B>,
        d_out: &B::Buf,
        batch: usize,
        len: usize,
        need_dx: bool,
    ) -> BackendResult<Option<B::Buf>> {
        let f = self.conv3.c_out;
        let packed = cache.packed;
        // dy · [y > 0] for a saved activation y of f channels.
        let relu_bwd = |y: &B::Buf, dy: &B::Buf| -> BackendResult<B::Buf> {
            let y = Self::unpacked(backend, y, packed, f, batch, len)?;
            relu_backward(backend, y.as_ref(), dy)
        };
        let d_pre = relu_bwd(&cache.out, d_out)?;
        self.conv3.grad_params_from(backend, &cache.a2, packed, &d_pre, batch, len)?;
        let d_z2 = relu_bwd(&cache.a2, &self.conv3.grad_input(backend, &d_pre, batch, len)?)?;
        self.conv2.grad_params_from(backend, &cache.a1, packed, &d_z2, batch, len)?;
        let d_z1 = relu_bwd(&cache.a1, &self.conv2.grad_input(backend, &d_z2, batch, len)?)?;
        if x_packed && backend.packs(&self.conv1.shape(batch, len)) {
            self.conv1.grad_params_from(backend, x, true, &d_z1, batch, len)?;
        } else {
            let x = Self::unpacked(backend, x, x_packed, self.conv1.c_in, batch, len)?;
            self.conv1.grad_params(backend, x.as_ref(), &d_z1, batch, len)?;
        }
        let d_skip_in = match (&mut self.skip, &cache.skip_out) {
            (Some(conv), Some(s)) => {
                let d_zs = relu_bwd(s, &d_pre)?;
                let x = Self::unpacked(backend, x, x_packed, conv.c_in, batch, len)?;
                conv.grad_params(backend, x.as_ref(), &d_zs, batch, len)?;
                if need_dx {
                    Some(conv.grad_input(backend, &d_zs, batch, len)?)
                } else {
                    None
                }
            }
            _ => Some(d_pre),
        };
        if !need_dx {
            return Ok(None);
        }
        let dx_main = self.conv1.grad_input(backend, &d_z1, batch, len)?;
        match d_skip_in {
            Some(d) => Ok(Some(add(backend, &dx_main, &d)?)),
            None => Ok(Some(dx_main)),
        }
    }

    pub fn params(&self) -> Vec<&Param<B>> {
        let mut v = Vec::new();
        for c in [&self.conv1, &self.conv2, &self.conv3].into_iter().chain(self.skip.as_ref()) {
            v.extend(c.params());
        }
        v
    }

    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        let mut v = Vec::new();
        for c in [&mut self.conv1, &mut self.conv2, &mut self.conv3].into_iter().chain(self.skip.as_mut()) {
            v.extend(c.params_mut());
        }
        v
    }
}

/// scBasset's GELU `x · σ(1.702·x)` into a new buffer.
pub fn gelu<B: Backend>(backend: &B, x: &B::Buf) -> BackendResult<B::Buf> {
    elementwise(backend, ElementwiseOp::GeluFwd, x, None)
}

/// The gradient of [`gelu`] from its input x, into a new buffer.
pub fn gelu_backward<B: Backend>(backend: &B, x: &B::Buf, dy: &B::Buf) -> BackendResult<B::Buf> {
    elementwise(backend, ElementwiseOp::GeluBwd, x, Some(dy))
}

/// Batch normalisation over (batch, channels, len) with learned γ, β and running statistics
/// (Keras semantics, see [`BatchNormParams`]). The running statistics are state, not
/// parameters: checkpoints keep them under `<name>.running_mean` / `<name>.running_var`.
pub struct BatchNorm<B: Backend> {
    pub channels: usize,
    pub eps: f32,
    pub momentum: f32,
    pub gamma: Param<B>,
    pub beta: Param<B>,
    pub running_mean: B::Buf,
    pub running_var: B::Buf,
    pub name: String,
}

/// What a batch norm's backward needs: its input and the batch statistics.
pub struct BatchNormCache<B: Backend> {
    pub mean: B::Buf,
    pub invstd: B::Buf,
}

impl<B: Backend> BatchNorm<B> {
    /// γ = 1, β = 0, running mean 0 and variance 1 (Keras' initial state).
    pub fn new(backend: &B, name: &str, channels: usize, eps: f32, momentum: f32) -> BackendResult<Self> {
        let ones = vec![1.0f32; channels];
        Ok(BatchNorm {
            channels,
            eps,
            momentum,
            gamma: Param::new(backend, format!("{name}.gamma"), vec![channels], &ones)?,
            beta: Param::new(backend, format!("{name}.beta"), vec![channels], &vec![0.0; channels])?,
            running_mean: backend.zeros(channels)?,
            running_var: upload_f32(backend, &ones)?,
            name: name.to_string(),
        })
    }

    pub fn shape(&self, batch: usize, len: usize) -> BatchNormParams {
        BatchNormParams { batch, channels: self.channels, len, eps: self.eps, momentum: self.momentum }
    }

    /// Training mode: normalises by the batch's statistics and moves the running ones.
    pub fn forward_train(
        &mut self,
        backend: &B,
        x: &B::Buf,
        batch: usize,
        len: usize,
    ) -> BackendResult<(B::Buf, BatchNormCache<B>)> {
        let p = self.shape(batch, len);
        let mut y = backend.zeros(x.buf_len())?;
        let mut mean = backend.zeros(self.channels)?;
        let mut invstd = backend.zeros(self.channels)?;
        let bufs = BatchNormFwdTrain {
            x,
            gamma: &self.gamma.value,
            beta: &self.beta.value,
            y: &mut y,
            mean: &mut mean,
            invstd: &mut invstd,
            running_mean: &mut self.running_mean,
            running_var: &mut self.running_var,
        };
        backend.batchnorm_fwd_train(&p, bufs)?;
        Ok((y, BatchNormCache { mean, invstd }))
    }

    /// Inference mode: normalises by the running statistics.
    pub fn forward_infer(&self, backend: &B, x: &B::Buf, batch: usize, len: usize) -> BackendResult<B::Buf> {
        let p = self.shape(batch, len);
        let mut y = backend.zeros(x.buf_len())?;
        let bufs = BatchNormFwdInfer {
            x,
            gamma: &self.gamma.value,
            beta: &self.beta.value,
            running_mean: &self.running_mean,
            running_var: &self.running_var,
            y: &mut y,
        };
        backend.batchnorm_fwd_infer(&p, bufs)?;
        Ok(y)
    }

    /// Overwrites dγ, dβ and returns dx, from the forward input x.
    pub fn backward(
        &mut self,
        backend: &B,
        x: &B::Buf,
        cache: &BatchNormCache<B>,
        dy: &B::Buf,
        batch: usize,
        len: usize,
    ) -> BackendResult<B::Buf> {
        let p = self.shape(batch, len);
        let mut dx = backend.zeros(x.buf_len())?;
        let bufs = BatchNormBwd {
            x,
            dy,
            gamma: &self.gamma.value,
            mean: &cache.mean,
            invstd: &cache.invstd,
            dx: &mut dx,
            dgamma: &mut self.gamma.grad,
            dbeta: &mut self.beta.grad,
        };
        backend.batchnorm_bwd(&p, bufs)?;
        Ok(dx)
    }

    pub fn params(&self) -> Vec<&Param<B>> {
        vec![&self.gamma, &self.beta]
    }

    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        vec![&mut self.gamma, &mut self.beta]
    }

    /// The running statistics as (name, buffer) pairs, for checkpoints.
    pub fn stats(&self) -> [(String, &B::Buf); 2] {
        [
            (format!("{}.running_mean", self.name), &self.running_mean),
            (format!("{}.running_var", self.name), &self.running_var),
        ]
    }

    pub fn stats_mut(&mut self) -> [(String, &mut B::Buf); 2] {
        [
            (format!("{}.running_mean", self.name), &mut self.running_mean),
            (format!("{}.running_var", self.name), &mut self.running_var),
        ]
    }
}
