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
        Ok(Conv1d { c_in, c_out, kernel, dilation, weight, bias })
    }

    pub fn shape(&self, batch: usize, len: usize) -> Conv1dParams {
        Conv1dParams { batch, c_in: self.c_in, c_out: self.c_out, len, kernel: self.kernel, dilation: self.dilation }
    }

    pub fn forward(&self, backend: &B, x: &B::Buf, batch: usize, len: usize) -> BackendResult<B::Buf> {
        let p = self.shape(batch, len);
        let mut y = backend.zeros(p.output_len())?;
        let bias = self.bias.as_ref().map(|b| &b.value);
        backend.conv1d_fwd(&p, Conv1dFwd { x, w: &self.weight.value, bias, y: &mut y })?;
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
        backend.conv1d_fwd_then(&p, Conv1dFwd { x, w: &self.weight.value, bias, y: &mut y }, epilogue)?;
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
        backend.conv1d_bwd_weight(&p, Conv1dBwdWeight { x, dy, dw: &mut self.weight.grad, dbias })
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
        Ok(BlockCache { a1, a2, skip_out, out })
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
        let c_in = self.conv1.c_in;
        let f = self.conv2.c_in;
        let a2 = {
            let a1 = if x_packed && backend.packs(&self.conv1.shape(batch, len)) {
                self.conv1.forward_packed(backend, x, batch, len, Some(Epilogue::Relu))?
            } else {
                let unpacked;
                let x = if x_packed {
                    unpacked = unpack(backend, x, batch, c_in, len)?;
                    &unpacked
                } else {
                    x
                };
                let a1 = self.conv1.forward_then(backend, x, batch, len, Epilogue::Relu)?;
                pack(backend, &a1, batch, f, len)?
            };
            self.conv2.forward_packed(backend, &a1, batch, len, Some(Epilogue::Relu))?
        };
        let residual = match (&self.skip, x_packed) {
            (Some(conv), _) => {
                let unpacked;
                let x = if x_packed {
                    unpacked = unpack(backend, x, batch, c_in, len)?;
                    &unpacked
                } else {
                    x
                };
                let s = conv.forward_then(backend, x, batch, len, Epilogue::Relu)?;
                Some(pack(backend, &s, batch, f, len)?)
            }
            (None, true) => None,
            (None, false) => Some(pack(backend, x, batch, f, len)?),
        };
        let residual = Epilogue::AddRelu(residual.as_ref().unwrap_or(x));
        self.conv3.forward_packed(backend, &a2, batch, len, Some(residual))
    }

    /// Gradients of the block's parameters from `d_out`; returns dx if asked.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &mut self,
        backend: &B,
        x: &B::Buf,
        cache: &BlockCache<B>,
        d_out: &B::Buf,
        batch: usize,
        len: usize,
        need_dx: bool,
    ) -> BackendResult<Option<B::Buf>> {
        let d_pre = relu_backward(backend, &cache.out, d_out)?;
        self.conv3.grad_params(backend, &cache.a2, &d_pre, batch, len)?;
        let d_z2 = relu_backward(backend, &cache.a2, &self.conv3.grad_input(backend, &d_pre, batch, len)?)?;
        self.conv2.grad_params(backend, &cache.a1, &d_z2, batch, len)?;
        let d_z1 = relu_backward(backend, &cache.a1, &self.conv2.grad_input(backend, &d_z2, batch, len)?)?;
        self.conv1.grad_params(backend, x, &d_z1, batch, len)?;
        let d_skip_in = match (&mut self.skip, &cache.skip_out) {
            (Some(conv), Some(s)) => {
                let d_zs = relu_backward(backend, s, &d_pre)?;
                conv.grad_params(backend, x, &d_zs, batch, len)?;
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
