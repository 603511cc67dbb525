//! DenoiseNet: AtacWorks' coverage denoiser and peak caller.
//!
//! Regression part: `reg_blocks` residual blocks of `filters` channels, kernel `kernel`,
//! dilation `dilation`, no bias anywhere; the first block's skip is a 1×1 conv + ReLU from the
//! input channels; head: 1×1 conv + ReLU to one channel (the denoised track). Classification
//! part: `cls_blocks` residual blocks fed with that one channel, width-k convs with bias (the
//! 1×1 skip without); head: 1×1 conv with bias → the peak logit (σ gives the probability).
//! AtacWorks' published configuration (the default) has 219,706 parameters.

use crate::backend::{Backend, BackendResult, Epilogue};
use crate::nn::{add, relu_backward, unpack, BlockCache, Conv1d, InitRng, Module, Param, ResBlock};
use serde::{Deserialize, Serialize};

/// The shape of a DenoiseNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenoiseConfig {
    /// Input channels: 1 (the noisy track) + extra tracks.
    pub in_channels: usize,
    pub reg_blocks: usize,
    pub reg_filters: usize,
    pub reg_kernel: usize,
    pub reg_dilation: usize,
    pub cls_blocks: usize,
    pub cls_filters: usize,
    pub cls_kernel: usize,
    pub cls_dilation: usize,
}

impl Default for DenoiseConfig {
    /// AtacWorks' published model.
    fn default() -> Self {
        DenoiseConfig {
            in_channels: 1,
            reg_blocks: 5,
            reg_filters: 15,
            reg_kernel: 51,
            reg_dilation: 8,
            cls_blocks: 2,
            cls_filters: 15,
            cls_kernel: 51,
            cls_dilation: 8,
        }
    }
}

impl DenoiseConfig {
    /// AtacWorks' shape scaled down to train in minutes on a laptop CPU (`chromax demo`'s
    /// model: 2 + 1 blocks of 8 filters, kernel 21, dilation 4; 9,801 parameters).
    pub fn demo() -> Self {
        DenoiseConfig {
            in_channels: 1,
            reg_blocks: 2,
            reg_filters: 8,
            reg_kernel: 21,
            reg_dilation: 4,
            cls_blocks: 1,
            cls_filters: 8,
            cls_kernel: 21,
            cls_dilation: 4,
        }
    }

    /// Trainable parameters.
    pub fn param_count(&self) -> usize {
        let block = |c_in: usize, f: usize, k: usize, bias: bool| {
            let b = if bias { f } else { 0 };
            (f * c_in * k + b) + 2 * (f * f * k + b) + if c_in != f { f * c_in } else { 0 }
        };
        let reg = (0..self.reg_blocks)
            .map(|i| {
                block(
                    if i == 0 { self.in_channels } else { self.reg_filters },
                    self.reg_filters,
                    self.reg_kernel,
                    false,
                )
            })
            .sum::<usize>()
            + self.reg_filters;
        let cls = (0..self.cls_blocks)
            .map(|i| block(if i == 0 { 1 } else { self.cls_filters }, self.cls_filters, self.cls_kernel, true))
            .sum::<usize>()
            + self.cls_filters
            + 1;
        reg + cls
    }

    /// Bases on each side of a position that its output depends on.
    pub fn receptive_radius(&self) -> usize {
        let per_block = |k: usize, d: usize| 3 * ((k - 1) * d).div_ceil(2);
        self.reg_blocks * per_block(self.reg_kernel, self.reg_dilation)
            + self.cls_blocks * per_block(self.cls_kernel, self.cls_dilation)
    }

    /// Multiply-adds × 2 per base of one forward pass.
    pub fn flops_per_base(&self) -> f64 {
        let block = |c_in: usize, f: usize, k: usize| {
            (f * c_in * k + 2 * f * f * k + if c_in != f { f * c_in } else { 0 }) as f64
        };
        let reg: f64 = (0..self.reg_blocks)
            .map(|i| block(if i == 0 { self.in_channels } else { self.reg_filters }, self.reg_filters, self.reg_kernel))
            .sum::<f64>()
            + self.reg_filters as f64;
        let cls: f64 = (0..self.cls_blocks)
            .map(|i| block(if i == 0 { 1 } else { self.cls_filters }, self.cls_filters, self.cls_kernel))
            .sum::<f64>()
            + self.cls_filters as f64;
        2.0 * (reg + cls)
    }

    /// Bytes of device memory one interval of `width` bases needs in a training step
    /// (activations kept for backward, plus the largest temporaries), in f32; `packed`: the
    /// backend keeps the blocks' activations packed ([`DenoiseConfig::packed_on`]).
    pub fn train_bytes_per_interval(&self, width: usize, packed: bool) -> usize {
        let f = self.reg_filters.max(self.cls_filters);
        let blocks = self.reg_blocks * Self::saved_values(self.reg_filters, packed)
            + self.cls_blocks * Self::saved_values(self.cls_filters, packed);
        // Packed: the CPU reference's packed convolution unpacks x, the residual and y (3 f),
        // and each part's output is kept unpacked for its head (2 f).
        let extra = if packed { 5 * f } else { 0 };
        4 * width * (4 * blocks + 8 * f + extra + 4 * self.in_channels + 8)
    }

    /// Bytes an inference pass holds per interval of `width` bases, roughly: the input and
    /// four activations of the widest part alive at once (f32; where `packed`, as
    /// [`DenoiseConfig::train_bytes_per_interval`] counts them, and the 3 unpacked copies of
    /// the CPU reference's packed convolution).
    pub fn infer_bytes_per_interval(&self, width: usize, packed: bool) -> usize {
        let f = self.reg_filters.max(self.cls_filters);
        let extra = if packed { 3 * f } else { 0 };
        4 * width * (self.in_channels + 4 * Self::saved_values(f, packed) + extra + 4)
    }

    /// Values a position of one activation of `filters` channels takes: `filters` in f32;
    /// packed, 16 on the CPU's reference (bf16-rounded values as f32; CUDA's 8 words are less).
    fn saved_values(filters: usize, packed: bool) -> usize {
        if packed {
            filters.max(crate::backend::PACKED_CHANNELS)
        } else {
            filters
        }
    }

    /// Whether `backend` keeps a part's residual-block activations packed for batches of
    /// `batch` intervals of `width` bases ([`crate::backend::Backend::packs`] of its filters →
    /// filters convolutions), as [`DenoiseNet::infer`] and [`DenoiseNet::forward`] decide.
    pub fn packed_on<B: Backend>(&self, backend: &B, batch: usize, width: usize) -> bool {
        let part = |blocks: usize, filters: usize, kernel: usize, dilation: usize| {
            let p = crate::backend::Conv1dParams { batch, c_in: filters, c_out: filters, len: width, kernel, dilation };
            blocks > 0 && backend.packs(&p)
        };
        part(self.reg_blocks, self.reg_filters, self.reg_kernel, self.reg_dilation)
            || part(self.cls_blocks, self.cls_filters, self.cls_kernel, self.cls_dilation)
    }

    pub fn validate(&self) -> Result<(), String> {
        use super::MAX_DIM;
        let fields = [
            ("in_channels", self.in_channels, MAX_DIM),
            ("reg_blocks", self.reg_blocks, 1024),
            ("reg_filters", self.reg_filters, MAX_DIM),
            ("reg_kernel", self.reg_kernel, MAX_DIM),
            ("reg_dilation", self.reg_dilation, MAX_DIM),
            ("cls_blocks", self.cls_blocks, 1024),
            ("cls_filters", self.cls_filters, MAX_DIM),
            ("cls_kernel", self.cls_kernel, MAX_DIM),
            ("cls_dilation", self.cls_dilation, MAX_DIM),
        ];
        // Within these bounds the exact count cannot overflow: at most 2 × 1024 blocks of
        // 3 × 2^48 weights.
        super::check_sizes(&fields, || self.param_count() as f64)
    }
}

/// The network's two outputs for a batch, each (batch, 1, len).
pub struct DenoiseOutput<B: Backend> {
    /// The denoised track (after the head's ReLU).
    pub reg: B::Buf,
    /// Peak logits (before σ).
    pub logits: B::Buf,
}

/// Everything backward needs from a forward pass.
pub struct DenoiseCache<B: Backend> {
    input: B::Buf,
    reg_caches: Vec<BlockCache<B>>,
    cls_caches: Vec<BlockCache<B>>,
    /// Each part's last block output as its head read it, (batch, filters, len), where the
    /// blocks kept it packed (`None`: the last cache's `out` is it).
    reg_top: Option<B::Buf>,
    cls_top: Option<B::Buf>,
    batch: usize,
    len: usize,
}

/// DenoiseNet on a backend.
pub struct DenoiseNet<B: Backend> {
    pub config: DenoiseConfig,
    reg: Vec<ResBlock<B>>,
    reg_head: Conv1d<B>,
    cls: Vec<ResBlock<B>>,
    cls_head: Conv1d<B>,
}

impl<B: Backend> DenoiseNet<B> {
    /// A freshly initialised network (seeded, PyTorch's default initialisation).
    pub fn new(backend: &B, config: DenoiseConfig, seed: u64) -> BackendResult<Self> {
        config.validate().map_err(|what| crate::error::BackendError::Shape { op: "DenoiseNet", what })?;
        let mut rng = InitRng::new(seed);
        let c = config;
        let reg = (0..c.reg_blocks)
            .map(|i| {
                let c_in = if i == 0 { c.in_channels } else { c.reg_filters };
                ResBlock::new(
                    backend,
                    &format!("regression.block{i}"),
                    c_in,
                    c.reg_filters,
                    c.reg_kernel,
                    c.reg_dilation,
                    false,
                    &mut rng,
                )
            })
            .collect::<BackendResult<Vec<_>>>()?;
        // The head's input is a ReLU output (≥ 0); non-negative initial weights keep the head's
        // own ReLU from starting dead everywhere, which would stop all learning (seen with
        // PyTorch's signed initialisation on small models).
        let mut head_rng = InitRng::new(seed ^ 0x5EED_0F4E_AD00);
        let bound = 1.0 / (c.reg_filters as f64).sqrt();
        let head_weights: Vec<f32> = (0..c.reg_filters).map(|_| head_rng.uniform(bound).abs()).collect();
        let mut reg_head = Conv1d::new(backend, "regression.head", c.reg_filters, 1, 1, 1, false, &mut rng)?;
        reg_head.weight.value = crate::nn::upload_f32(backend, &head_weights)?;
        let cls = (0..c.cls_blocks)
            .map(|i| {
                let c_in = if i == 0 { 1 } else { c.cls_filters };
                ResBlock::new(
                    backend,
                    &format!("classification.block{i}"),
                    c_in,
                    c.cls_filters,
                    c.cls_kernel,
                    c.cls_dilation,
                    true,
                    &mut rng,
                )
            })
            .collect::<BackendResult<Vec<_>>>()?;
        let cls_head = Conv1d::new(backend, "classification.head", c.cls_filters, 1, 1, 1, true, &mut rng)?;
        let mut net = DenoiseNet { config, reg, reg_head, cls, cls_head };
        // Each part's input is a track (the coverage and extra tracks; the regression output):
        // the convolutions reading it keep f32 operands, bf16 or not (issue 16: values above
        // 256 lose precision in bf16). With one input channel that is f32 by shape anyway;
        // with extra tracks the first convolution would otherwise be a bf16 one.
        for first in [net.reg.first_mut(), net.cls.first_mut()].into_iter().flatten() {
            first.conv1.f32_input = true;
            if let Some(skip) = &mut first.skip {
                skip.f32_input = true;
            }
        }
        Ok(net)
    }

    /// Forward pass over x (batch, in_channels, len), keeping what backward needs. Where the
    /// backend packs a part's blocks ([`ResBlock::packs`]) their saved activations are packed,
    /// as in [`DenoiseNet::infer`].
    pub fn forward(
        &self,
        backend: &B,
        x: B::Buf,
        batch: usize,
        len: usize,
    ) -> BackendResult<(DenoiseOutput<B>, DenoiseCache<B>)> {
        let (reg_caches, reg_top) = Self::forward_part(backend, &self.reg, &x, batch, len)?;
        let h = reg_top.as_ref().or(reg_caches.last().map(|c| &c.out)).unwrap_or(&x);
        let reg = self.reg_head.forward_then(backend, h, batch, len, Epilogue::Relu)?;
        let (cls_caches, cls_top) = Self::forward_part(backend, &self.cls, &reg, batch, len)?;
        let g = cls_top.as_ref().or(cls_caches.last().map(|c| &c.out)).unwrap_or(&reg);
        let logits = self.cls_head.forward(backend, g, batch, len)?;
        let cache = DenoiseCache { input: x, reg_caches, cls_caches, reg_top, cls_top, batch, len };
        Ok((DenoiseOutput { reg, logits }, cache))
    }

    /// Whether a part's blocks keep their activations packed: where the backend packs every
    /// block's convolutions, and the first block's residual is its skip convolution (an
    /// identity skip would add the part's input, a track, rounded to bf16: such a part, with
    /// as many input tracks as filters, stays f32).
    fn packs_part(backend: &B, blocks: &[ResBlock<B>], batch: usize, len: usize) -> bool {
        blocks.first().is_some_and(|b| b.skip.is_some()) && blocks.iter().all(|b| b.packs(backend, batch, len))
    }

    /// A part's blocks over `x` for training: their caches, and the last output unpacked
    /// where the blocks were packed.
    #[allow(clippy::type_complexity)]
    fn forward_part(
        backend: &B,
        blocks: &[ResBlock<B>],
        x: &B::Buf,
        batch: usize,
        len: usize,
    ) -> BackendResult<(Vec<BlockCache<B>>, Option<B::Buf>)> {
        let mut caches: Vec<BlockCache<B>> = Vec::with_capacity(blocks.len());
        let packed = Self::packs_part(backend, blocks, batch, len);
        for block in blocks {
            let input = caches.last().map_or(x, |c| &c.out);
            let cache = if packed {
                block.forward_packed(backend, input, !caches.is_empty(), batch, len)?
            } else {
                block.forward(backend, input, batch, len)?
            };
            caches.push(cache);
        }
        let top = match (packed, blocks.last(), caches.last()) {
            (true, Some(last), Some(c)) => Some(unpack(backend, &c.out, batch, last.conv3.c_out, len)?),
            _ => None,
        };
        Ok((caches, top))
    }

    /// Forward pass for inference: intermediates are freed as it goes. Where the backend keeps
    /// a part's activations packed ([`ResBlock::packs`]: bf16 channels-last on CUDA's tensor
    /// cores, and the CPU's reference of it), they stay packed from the part's first block to
    /// its head; the inputs (coverage, the regression output) and the heads stay f32.
    pub fn infer(&self, backend: &B, x: &B::Buf, batch: usize, len: usize) -> BackendResult<DenoiseOutput<B>> {
        let h = Self::infer_part(backend, &self.reg, x, batch, len)?;
        let reg = self.reg_head.forward_then(backend, h.as_ref().unwrap_or(x), batch, len, Epilogue::Relu)?;
        drop(h);
        let g = Self::infer_part(backend, &self.cls, &reg, batch, len)?;
        let logits = self.cls_head.forward(backend, g.as_ref().unwrap_or(&reg), batch, len)?;
        Ok(DenoiseOutput { reg, logits })
    }

    /// A part's blocks over `x`: the last block's output, (batch, filters, len) f32 (`None`:
    /// no blocks).
    fn infer_part(
        backend: &B,
        blocks: &[ResBlock<B>],
        x: &B::Buf,
        batch: usize,
        len: usize,
    ) -> BackendResult<Option<B::Buf>> {
        let Some(last) = blocks.last() else { return Ok(None) };
        let mut h: Option<B::Buf> = None;
        if Self::packs_part(backend, blocks, batch, len) {
            for block in blocks {
                h = Some(block.infer_packed(backend, h.as_ref().unwrap_or(x), h.is_some(), batch, len)?);
            }
            let packed = h.as_ref().unwrap_or(x);
            return Ok(Some(unpack(backend, packed, batch, last.conv3.c_out, len)?));
        }
        for block in blocks {
            h = Some(block.infer(backend, h.as_ref().unwrap_or(x), batch, len)?);
        }
        Ok(h)
    }

    /// Backward pass from the loss gradients w.r.t. the outputs; overwrites every gradient.
    pub fn backward(
        &mut self,
        backend: &B,
        out: &DenoiseOutput<B>,
        cache: &DenoiseCache<B>,
        d_reg: &B::Buf,
        d_logits: &B::Buf,
    ) -> BackendResult<()> {
        let (batch, len) = (cache.batch, cache.len);
        // Classification part, back to its input (the regression output).
        let cls_top = cache.cls_top.as_ref().or(cache.cls_caches.last().map(|c| &c.out)).unwrap_or(&out.reg);
        self.cls_head.grad_params(backend, cls_top, d_logits, batch, len)?;
        let mut d = self.cls_head.grad_input(backend, d_logits, batch, len)?;
        for i in (0..self.cls.len()).rev() {
            let (input, packed) = Self::block_input(&cache.cls_caches, i, &out.reg);
            let block_cache = &cache.cls_caches[i];
            if let Some(dx) = self.cls[i].backward(backend, input, packed, block_cache, &d, batch, len, true)? {
                d = dx;
            }
        }
        // The regression output feeds the loss and the classifier.
        let d_reg_total = add(backend, d_reg, &d)?;
        let d_head = relu_backward(backend, &out.reg, &d_reg_total)?;
        let reg_top = cache.reg_top.as_ref().or(cache.reg_caches.last().map(|c| &c.out)).unwrap_or(&cache.input);
        self.reg_head.grad_params(backend, reg_top, &d_head, batch, len)?;
        let mut d = self.reg_head.grad_input(backend, &d_head, batch, len)?;
        for i in (0..self.reg.len()).rev() {
            let (input, packed) = Self::block_input(&cache.reg_caches, i, &cache.input);
            let block_cache = &cache.reg_caches[i];
            if let Some(dx) = self.reg[i].backward(backend, input, packed, block_cache, &d, batch, len, i > 0)? {
                d = dx;
            }
        }
        Ok(())
    }

    /// Block i's input in a part (the part's input for the first block) and whether it is
    /// packed.
    fn block_input<'a>(caches: &'a [BlockCache<B>], i: usize, part_input: &'a B::Buf) -> (&'a B::Buf, bool) {
        match i.checked_sub(1) {
            Some(j) => (&caches[j].out, caches[j].is_packed()),
            None => (part_input, false),
        }
    }
}

impl<B: Backend> Module<B> for DenoiseNet<B> {
    /// Every parameter, in a fixed order (the checkpoint's order).
    fn params(&self) -> Vec<&Param<B>> {
        let mut v: Vec<&Param<B>> = Vec::new();
        for b in &self.reg {
            v.extend(b.params());
        }
        v.extend(self.reg_head.params());
        for b in &self.cls {
            v.extend(b.params());
        }
        v.extend(self.cls_head.params());
        v
    }

    fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        let mut v: Vec<&mut Param<B>> = Vec::new();
        for b in &mut self.reg {
            v.extend(b.params_mut());
        }
        v.extend(self.reg_head.params_mut());
        for b in &mut self.cls {
            v.extend(b.params_mut());
        }
        v.extend(self.cls_head.params_mut());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::nn::{download_f32, upload_f32};

    /// With an extra input track the first convolution has two input channels, a shape the
    /// bf16 convolutions take; it reads coverage, so it must keep f32 operands.
    #[test]
    fn the_convolutions_reading_a_track_keep_f32_operands_with_bf16_on() {
        let cfg = DenoiseConfig { in_channels: 2, ..DenoiseConfig::demo() };
        let bf16 = CpuBackend::new().with_bf16_convolutions(true);
        let net = DenoiseNet::new(&bf16, cfg, 5).expect("net");
        let first = [&net.reg[0], &net.cls[0]];
        assert!(first.iter().all(|b| b.conv1.f32_input && b.skip.as_ref().is_none_or(|s| s.f32_input)));
        assert!(net.reg[1..].iter().all(|b| !b.conv1.f32_input && !b.conv2.f32_input && !b.conv3.f32_input));
        assert!(bf16.rounds(&net.reg[0].conv1.shape(1, 64)), "2 → 8 is a bf16 shape: the flag is what keeps it f32");

        // Coverage values bf16 cannot hold (257 and above: 8 significant bits): the first
        // block's first convolution gives f32's bits exactly.
        let len = 64;
        let x: Vec<f32> = (0..2 * len).map(|i| 257.0 + 3.0 * i as f32).collect();
        let f32_cpu = CpuBackend::new();
        let f32_net = DenoiseNet::new(&f32_cpu, cfg, 5).expect("net");
        let y = |b: &CpuBackend, n: &DenoiseNet<CpuBackend>| {
            let x = upload_f32(b, &x).unwrap();
            download_f32(b, &n.reg[0].conv1.forward_then(b, &x, 1, len, Epilogue::Relu).unwrap()).unwrap()
        };
        assert_eq!(y(&bf16, &net), y(&f32_cpu, &f32_net));
        let mut rounded = DenoiseNet::new(&bf16, cfg, 5).expect("net");
        rounded.reg[0].conv1.f32_input = false;
        assert_ne!(y(&bf16, &rounded), y(&f32_cpu, &f32_net), "without the flag the inputs are rounded");
    }

    /// A part whose first block adds its input (as many input tracks as filters: an identity
    /// skip) stays f32, as the track would be rounded into the residual; the other part packs.
    #[test]
    fn a_part_adding_its_input_track_stays_unpacked() {
        let bf16 = CpuBackend::new().with_bf16_convolutions(true);
        let demo = DenoiseConfig::demo();
        let cfg = DenoiseConfig { in_channels: demo.reg_filters, ..demo };
        let net = DenoiseNet::new(&bf16, cfg, 2).expect("net");
        assert!(net.reg[0].skip.is_none() && net.reg.iter().all(|b| b.packs(&bf16, 2, 500)));
        assert!(!DenoiseNet::packs_part(&bf16, &net.reg, 2, 500), "the regression part adds its input tracks");
        assert!(DenoiseNet::packs_part(&bf16, &net.cls, 2, 500));
        let plain = DenoiseNet::new(&bf16, demo, 2).expect("net");
        assert!(DenoiseNet::packs_part(&bf16, &plain.reg, 2, 500));
        assert!(demo.packed_on(&bf16, 2, 500) && !demo.packed_on(&CpuBackend::new(), 2, 500));
        // The CPU reference's packed activations hold 16 values a position (the demo has 8
        // filters): the estimates grow with them.
        assert!(demo.infer_bytes_per_interval(500, true) > demo.infer_bytes_per_interval(500, false));
        assert!(demo.train_bytes_per_interval(500, true) > demo.train_bytes_per_interval(500, false));
        // Both parts still compute: the f32 part's output feeds the packed one.
        let x = upload_f32(&bf16, &vec![3.0; cfg.in_channels * 500]).unwrap();
        let out = net.infer(&bf16, &x, 1, 500).expect("infer");
        assert!(download_f32(&bf16, &out.logits).unwrap().iter().all(|v| v.is_finite()));
    }
}
