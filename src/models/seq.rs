//! SeqNet: scBasset's sequence-to-accessibility model.
//!
//! A peak's DNA (one-hot, `seq_len` bases) goes through conv blocks — each GELU → conv without
//! bias → batch norm → max pool (Keras "same") — a stem (k17, 288 filters, pool 3), a tower of
//! six (k5; 288, 323, 363, 407, 456, 512 filters; pool 2 each) and a k1 conv to 256 without
//! pooling; then the bottleneck GELU → flatten → dense 32 (no bias) → batch norm → dropout
//! 0.2 → GELU gives the peak's 32-d code z. The per-cell head is a dense layer with bias to
//! every cell, σ and BCE, computed by the fused sparse op ([`Backend::sparse_head`]) against
//! the batch's binary CSR rows, never as a batch × cells matrix. The head's rows are the cell
//! embeddings; its biases track each cell's depth.
//!
//! Flatten order: activations are (batch, channels, len), so the dense layer's weight is
//! stored as (32, 256·7) channel-major; Keras flattens (len, channels), so a Keras kernel
//! (1792, 32) maps to it by transposing and permuting its rows (l·256 + c → c·7 + l).
//!
//! Initialisation: convolutions and the bottleneck dense layer He-uniform (the variance of
//! scBasset's he_normal), the head Glorot-uniform with biases at the log-odds of each cell's
//! fraction of accessible peaks when the trainer supplies them (zero otherwise), batch norm
//! γ = 1, β = 0.

use crate::backend::{
    Backend, BackendResult, BufLen, Conv1dBwdWeight, Conv1dFwd, Conv1dParams, DropoutBwd, DropoutFwd, DropoutParams,
    Elementwise, ElementwiseOp, HeadLogits, HeadRows, MaxPoolBwd, MaxPoolFwd, OneHot, OneHotParams, SparseHead,
    SparseHeadParams,
};
use crate::error::BackendError;
use crate::nn::{gelu, gelu_backward, BatchNorm, BatchNormCache, Conv1d, InitRng, Module, Param};
use serde::{Deserialize, Serialize};

/// The shape of a SeqNet. The default is scBasset's published model for `cells` cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeqConfig {
    pub seq_len: usize,
    pub stem_filters: usize,
    pub stem_kernel: usize,
    pub stem_pool: usize,
    pub tower_filters: Vec<usize>,
    pub tower_kernel: usize,
    pub tower_pool: usize,
    pub final_filters: usize,
    pub bottleneck: usize,
    pub dropout: f32,
    pub bn_momentum: f32,
    pub bn_eps: f32,
    /// Cells of the head (set from the data when training).
    #[serde(default)]
    pub cells: usize,
    /// Batches of the batch-correction path (scBasset-BC, the scvi-tools form: a cell's logit
    /// is z·(w_cell + w_batch(cell)) + b_cell); 0 = no batch correction. Set from the data.
    #[serde(default)]
    pub batches: usize,
}

impl SeqConfig {
    /// A configuration from a JSON file of SeqConfig's fields (`--model-config`).
    pub fn read_json(path: &std::path::Path) -> Result<Self, crate::error::FileError> {
        let text = std::fs::read_to_string(path).map_err(crate::error::FileError::io(path))?;
        serde_json::from_str(&text).map_err(|e| {
            crate::error::FileError::content(
                path,
                format!("not a SeqNet configuration ({e}); write every field of chromax::models::SeqConfig"),
            )
        })
    }

    /// scBasset's model for `cells` cells.
    pub fn scbasset(cells: usize) -> Self {
        SeqConfig {
            seq_len: 1344,
            stem_filters: 288,
            stem_kernel: 17,
            stem_pool: 3,
            tower_filters: vec![288, 323, 363, 407, 456, 512],
            tower_kernel: 5,
            tower_pool: 2,
            final_filters: 256,
            bottleneck: 32,
            dropout: 0.2,
            bn_momentum: 0.9,
            bn_eps: 1e-3,
            cells,
            batches: 0,
        }
    }

    /// (c_in, c_out, kernel, pool) of every conv block, in order.
    pub fn blocks(&self) -> Vec<(usize, usize, usize, usize)> {
        let mut v = vec![(4, self.stem_filters, self.stem_kernel, self.stem_pool)];
        let mut c = self.stem_filters;
        for &f in &self.tower_filters {
            v.push((c, f, self.tower_kernel, self.tower_pool));
            c = f;
        }
        v.push((c, self.final_filters, 1, 1));
        v
    }

    /// The sequence length entering each block, and after the last one.
    pub fn lengths(&self) -> Vec<usize> {
        let mut v = vec![self.seq_len];
        for (_, _, _, pool) in self.blocks() {
            let l = *v.last().unwrap_or(&0);
            v.push(l.div_ceil(pool));
        }
        v
    }

    /// Bytes a training step keeps per sequence, roughly: the one-hot input and, per block,
    /// its convolution output, its normalised output and its pooled output (f32).
    pub fn train_bytes_per_sequence(&self) -> usize {
        let lens = self.lengths();
        let blocks: usize = self.blocks().iter().zip(&lens).map(|((_, c_out, _, _), &len)| 3 * c_out * len).sum();
        4 * (4 * self.seq_len + blocks)
    }

    /// Inputs of the bottleneck's dense layer: final filters × final length.
    pub fn flat_len(&self) -> usize {
        self.final_filters * self.lengths().last().copied().unwrap_or(0)
    }

    /// Trainable parameters (batch-norm running statistics are state, not counted).
    pub fn param_count(&self) -> usize {
        let convs: usize = self.blocks().iter().map(|&(ci, co, k, _)| ci * co * k + 2 * co).sum();
        convs
            + self.flat_len() * self.bottleneck
            + 2 * self.bottleneck
            + (self.bottleneck + 1) * self.cells
            + self.bottleneck * self.batches
    }

    /// Multiply-adds × 2 of one sequence's forward pass up to the bottleneck.
    pub fn flops_per_sequence(&self) -> f64 {
        let lens = self.lengths();
        let convs: f64 =
            self.blocks().iter().zip(&lens).map(|(&(ci, co, k, _), &l)| 2.0 * (ci * co * k * l) as f64).sum();
        convs + 2.0 * (self.flat_len() * self.bottleneck) as f64
    }

    pub fn validate(&self) -> Result<(), String> {
        use super::MAX_DIM;
        if self.tower_filters.contains(&0) {
            return Err("every tower block needs at least 1 filter".into());
        }
        if let Some(f) = self.tower_filters.iter().find(|&&f| f > MAX_DIM) {
            return Err(format!("a tower block of {f} filters: at most {MAX_DIM} is accepted"));
        }
        let fields = [
            ("seq_len", self.seq_len, 1 << 24),
            ("stem_filters", self.stem_filters, MAX_DIM),
            ("stem_kernel", self.stem_kernel, MAX_DIM),
            ("stem_pool", self.stem_pool, MAX_DIM),
            ("tower_kernel", self.tower_kernel, MAX_DIM),
            ("tower_pool", self.tower_pool, MAX_DIM),
            ("tower blocks", self.tower_filters.len().max(1), 1024),
            ("final_filters", self.final_filters, MAX_DIM),
            ("bottleneck", self.bottleneck, MAX_DIM),
            ("cells", self.cells, 1 << 28),
            ("batches", self.batches.max(1), 1 << 20),
        ];
        // Within these bounds the exact count cannot overflow (each term < 2^60).
        super::check_sizes(&fields, || self.param_count() as f64)?;

        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout {} must be in [0, 1)", self.dropout));
        }
        if self.bn_eps.is_nan() || self.bn_eps <= 0.0 || !(0.0..=1.0).contains(&self.bn_momentum) {
            return Err("batch norm needs eps > 0 and momentum in [0, 1]".into());
        }
        Ok(())
    }
}

/// GELU → conv (no bias) → batch norm → max pool.
pub struct ConvBlock<B: Backend> {
    pub conv: Conv1d<B>,
    pub bn: BatchNorm<B>,
    pub pool: usize,
}

/// A block's saved activations (its input is the previous block's output).
pub struct ConvBlockCache<B: Backend> {
    conv_out: B::Buf,
    bn: BatchNormCache<B>,
    /// The batch norm output, when a pool follows (otherwise it is `out`).
    normed: Option<B::Buf>,
    pub out: B::Buf,
}

impl<B: Backend> ConvBlock<B> {
    fn pool_shape(&self, batch: usize, len: usize) -> crate::backend::MaxPoolParams {
        crate::backend::MaxPoolParams { batch, channels: self.conv.c_out, len, pool: self.pool }
    }

    fn forward_train(&mut self, backend: &B, x: &B::Buf, batch: usize, len: usize) -> BackendResult<ConvBlockCache<B>> {
        let g = gelu(backend, x)?;
        let conv_out = self.conv.forward(backend, &g, batch, len)?;
        drop(g);
        let (n, bn) = self.bn.forward_train(backend, &conv_out, batch, len)?;
        if self.pool > 1 {
            let p = self.pool_shape(batch, len);
            let mut out = backend.zeros(p.output_len())?;
            backend.maxpool_fwd(&p, MaxPoolFwd { x: &n, y: &mut out })?;
            Ok(ConvBlockCache { conv_out, bn, normed: Some(n), out })
        } else {
            Ok(ConvBlockCache { conv_out, bn, normed: None, out: n })
        }
    }

    fn infer(&self, backend: &B, x: &B::Buf, batch: usize, len: usize) -> BackendResult<B::Buf> {
        let conv_out = self.conv.forward(backend, &gelu(backend, x)?, batch, len)?;
        let n = self.bn.forward_infer(backend, &conv_out, batch, len)?;
        if self.pool > 1 {
            let p = self.pool_shape(batch, len);
            let mut out = backend.zeros(p.output_len())?;
            backend.maxpool_fwd(&p, MaxPoolFwd { x: &n, y: &mut out })?;
            Ok(out)
        } else {
            Ok(n)
        }
    }

    /// Overwrites the block's gradients; returns dx when asked.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &mut self,
        backend: &B,
        x: &B::Buf,
        cache: &ConvBlockCache<B>,
        d_out: B::Buf,
        batch: usize,
        len: usize,
        need_dx: bool,
    ) -> BackendResult<Option<B::Buf>> {
        let d_n = match &cache.normed {
            Some(n) => {
                let p = self.pool_shape(batch, len);
                let mut d = backend.zeros(n.buf_len())?;
                backend.maxpool_bwd(&p, MaxPoolBwd { x: n, dy: &d_out, dx: &mut d })?;
                d
            }
            None => d_out,
        };
        let d_c = self.bn.backward(backend, &cache.conv_out, &cache.bn, &d_n, batch, len)?;
        drop(d_n);
        // GELU's output is recomputed rather than kept: one activation less per block.
        let g = gelu(backend, x)?;
        self.conv.grad_params(backend, &g, &d_c, batch, len)?;
        drop(g);
        if !need_dx {
            return Ok(None);
        }
        let d_g = self.conv.grad_input(backend, &d_c, batch, len)?;
        Ok(Some(gelu_backward(backend, x, &d_g)?))
    }
}

/// Everything backward needs from a training forward pass.
pub struct SeqCache<B: Backend> {
    input: B::Buf,
    blocks: Vec<ConvBlockCache<B>>,
    dense_in: B::Buf,
    dense_out: B::Buf,
    bn: BatchNormCache<B>,
    /// The bottleneck after dropout (GELU's input).
    dropped: B::Buf,
    dropout: Option<DropoutParams>,
    batch: usize,
}

/// A batch of sequences as base codes (batch × seq_len, A C G T N = 0..4) with per-sequence
/// augmentation: reverse complement and shift (see [`Backend::one_hot`]).
pub struct SeqBatch<'a> {
    pub codes: &'a [u8],
    pub reverse: &'a [bool],
    pub shift: &'a [i32],
}

impl SeqBatch<'_> {
    pub fn len(&self) -> usize {
        self.reverse.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reverse.is_empty()
    }
}

/// SeqNet on a backend.
pub struct SeqNet<B: Backend> {
    pub config: SeqConfig,
    pub blocks: Vec<ConvBlock<B>>,
    pub dense: Conv1d<B>,
    pub dense_bn: BatchNorm<B>,
    /// Cell embeddings (cells × bottleneck): the head's weights.
    pub head_w: Param<B>,
    /// Per-cell intercepts.
    pub head_b: Param<B>,
    /// Batch correction: the batch embeddings (bottleneck × batches, a width-1 convolution's
    /// weights over the cells' one-hot batch rows) and those rows (cells × batches).
    pub batch_w: Option<Param<B>>,
    pub batch_onehot: Option<B::Buf>,
}

/// The batch path's shape as a width-1 convolution: cells × batches in, bottleneck out.
fn batch_conv(c: &SeqConfig) -> Conv1dParams {
    Conv1dParams { batch: c.cells, c_in: c.batches, c_out: c.bottleneck, len: 1, kernel: 1, dilation: 1 }
}

fn he_uniform(rng: &mut InitRng, fan_in: usize, n: usize) -> Vec<f32> {
    let bound = (6.0 / fan_in as f64).sqrt();
    (0..n).map(|_| rng.uniform(bound)).collect()
}

impl<B: Backend> SeqNet<B> {
    /// A freshly initialised network (seeded). `intercepts`, if given, start the head biases
    /// (one per cell).
    pub fn new(backend: &B, config: SeqConfig, seed: u64, intercepts: Option<&[f32]>) -> BackendResult<Self> {
        config.validate().map_err(|what| BackendError::Shape { op: "SeqNet", what })?;
        let mut rng = InitRng::new(seed);
        let (eps, momentum) = (config.bn_eps, config.bn_momentum);
        let n_blocks = config.blocks().len();
        let mut blocks = Vec::with_capacity(n_blocks);
        for (i, (ci, co, k, pool)) in config.blocks().into_iter().enumerate() {
            let name = match i {
                0 => "stem".to_string(),
                _ if i + 1 == n_blocks => "final".to_string(),
                _ => format!("tower{}", i - 1),
            };
            let w = he_uniform(&mut rng, ci * k, co * ci * k);
            blocks.push(ConvBlock {
                conv: Conv1d::from_values(backend, &format!("{name}.conv"), ci, co, k, 1, &w, None)?,
                bn: BatchNorm::new(backend, &format!("{name}.bn"), co, eps, momentum)?,
                pool,
            });
        }
        let (flat, dim, cells) = (config.flat_len(), config.bottleneck, config.cells);
        let w = he_uniform(&mut rng, flat, dim * flat);
        let dense = Conv1d::from_values(backend, "bottleneck.dense", flat, dim, 1, 1, &w, None)?;
        let dense_bn = BatchNorm::new(backend, "bottleneck.bn", dim, eps, momentum)?;
        let glorot = (6.0 / (dim + cells) as f64).sqrt();
        let hw: Vec<f32> = (0..cells * dim).map(|_| rng.uniform(glorot)).collect();
        let hb: Vec<f32> = match intercepts {
            Some(b) if b.len() == cells => b.to_vec(),
            Some(b) => {
                return Err(BackendError::Shape {
                    op: "SeqNet",
                    what: format!("{} intercepts for {cells} cells", b.len()),
                })
            }
            None => vec![0.0; cells],
        };
        let head_w = Param::new(backend, "head.weight".into(), vec![cells, dim], &hw)?;
        let head_b = Param::new(backend, "head.bias".into(), vec![cells], &hb)?;
        // The batch path starts at 0: the model starts as one without it.
        let batch_w = match config.batches {
            0 => None,
            n => Some(Param::new(backend, "head.batch_weight".into(), vec![dim, n], &vec![0.0; dim * n])?),
        };
        Ok(SeqNet { config, blocks, dense, dense_bn, head_w, head_b, batch_w, batch_onehot: None })
    }

    /// Each cell's batch (0..batches), for a batch-corrected model; required before the head
    /// is used.
    pub fn set_cell_batches(&mut self, backend: &B, of_cell: &[u32]) -> BackendResult<()> {
        let (cells, n) = (self.config.cells, self.config.batches);
        if n == 0 || of_cell.len() != cells || of_cell.iter().any(|&b| b as usize >= n) {
            return Err(BackendError::Shape {
                op: "SeqNet batches",
                what: format!(
                    "{} batch indices for {cells} cells of a model with {n} batches (each in 0..{n})",
                    of_cell.len()
                ),
            });
        }
        let mut onehot = vec![0.0f32; cells * n];
        for (c, &b) in of_cell.iter().enumerate() {
            onehot[c * n + b as usize] = 1.0;
        }
        self.batch_onehot = Some(crate::nn::upload_f32(backend, &onehot)?);
        Ok(())
    }

    /// The weights the head applies to z in a batch-corrected model: each cell's embedding
    /// plus its batch's (cells × bottleneck); `None` without batch correction, where they are
    /// the cell embeddings themselves ([`SeqNet::head_w`]).
    pub fn batch_head_weights(&self, backend: &B) -> BackendResult<Option<B::Buf>> {
        let (Some(w_b), true) = (&self.batch_w, self.config.batches > 0) else {
            return Ok(None);
        };
        let Some(onehot) = &self.batch_onehot else {
            return Err(BackendError::Shape {
                op: "SeqNet head",
                what: "a batch-corrected model without its cells' batches".into(),
            });
        };
        let mut shift = backend.zeros(self.config.cells * self.config.bottleneck)?;
        backend
            .conv1d_fwd(&batch_conv(&self.config), Conv1dFwd { x: onehot, w: &w_b.value, bias: None, y: &mut shift })?;
        let mut w = backend.zeros(shift.buf_len())?;
        backend.elementwise(ElementwiseOp::Add, Elementwise { a: &self.head_w.value, b: Some(&shift), out: &mut w })?;
        Ok(Some(w))
    }

    fn encode(&self, backend: &B, seqs: &SeqBatch) -> BackendResult<B::Buf> {
        let (batch, len) = (seqs.len(), self.config.seq_len);
        let mut x = backend.zeros(batch * 4 * len)?;
        let bufs = OneHot { codes: seqs.codes, reverse: seqs.reverse, shift: seqs.shift, out: &mut x };
        backend.one_hot(&OneHotParams { batch, len }, bufs)?;
        Ok(x)
    }

    /// Training forward pass: batch statistics (moving the running ones), dropout seeded by
    /// `dropout_seed`. Returns z (batch × bottleneck) and the cache for [`SeqNet::backward`].
    pub fn forward_train(
        &mut self,
        backend: &B,
        seqs: &SeqBatch,
        dropout_seed: u64,
    ) -> BackendResult<(B::Buf, SeqCache<B>)> {
        let batch = seqs.len();
        let lens = self.config.lengths();
        let input = self.encode(backend, seqs)?;
        let mut caches: Vec<ConvBlockCache<B>> = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.blocks.iter_mut().enumerate() {
            let x = caches.last().map_or(&input, |c| &c.out);
            let c = block.forward_train(backend, x, batch, lens[i])?;
            caches.push(c);
        }
        let top = caches.last().map_or(&input, |c| &c.out);
        let dense_in = gelu(backend, top)?;
        let dense_out = self.dense.forward(backend, &dense_in, batch, 1)?;
        let (normed, bn) = self.dense_bn.forward_train(backend, &dense_out, batch, 1)?;
        let dropout =
            (self.config.dropout > 0.0).then_some(DropoutParams { rate: self.config.dropout, seed: dropout_seed });
        let dropped = match &dropout {
            Some(p) => {
                let mut d = backend.zeros(normed.buf_len())?;
                backend.dropout_fwd(p, DropoutFwd { x: &normed, y: &mut d })?;
                d
            }
            None => normed,
        };
        let z = gelu(backend, &dropped)?;
        Ok((z, SeqCache { input, blocks: caches, dense_in, dense_out, bn, dropped, dropout, batch }))
    }

    /// Inference: z (batch × bottleneck) with the running statistics and no dropout.
    pub fn embed_peaks(&self, backend: &B, seqs: &SeqBatch) -> BackendResult<B::Buf> {
        let batch = seqs.len();
        let lens = self.config.lengths();
        let mut h = self.encode(backend, seqs)?;
        for (i, block) in self.blocks.iter().enumerate() {
            h = block.infer(backend, &h, batch, lens[i])?;
        }
        let d = self.dense.forward(backend, &gelu(backend, &h)?, batch, 1)?;
        drop(h);
        gelu(backend, &self.dense_bn.forward_infer(backend, &d, batch, 1)?)
    }

    /// Accessibility probabilities, batch × cells (row-major): [`SeqNet::embed_peaks`] then the
    /// head, `σ(z · wᵀ + b)` (eval mode: running statistics, no dropout).
    pub fn predict(&self, backend: &B, seqs: &SeqBatch) -> BackendResult<B::Buf> {
        let z = self.embed_peaks(backend, seqs)?;
        let (batch, dim, cells) = (seqs.len(), self.config.bottleneck, self.config.cells);
        // The dense head is a width-1 convolution of length 1: w (cells, dim, 1), z (batch, dim, 1).
        let p = Conv1dParams { batch, c_in: dim, c_out: cells, len: 1, kernel: 1, dilation: 1 };
        let mut logits = backend.zeros(batch * cells)?;
        let bufs = Conv1dFwd { x: &z, w: &self.head_w.value, bias: Some(&self.head_b.value), y: &mut logits };
        backend.conv1d_fwd(&p, bufs)?;
        let mut probs = backend.zeros(batch * cells)?;
        backend.elementwise(ElementwiseOp::SigmoidFwd, Elementwise { a: &logits, b: None, out: &mut probs })?;
        Ok(probs)
    }

    /// The head's loss and gradients for a batch's binary CSR rows; writes the head's
    /// gradients and returns (mean BCE, dz).
    pub fn head_loss(
        &mut self,
        backend: &B,
        z: &B::Buf,
        indptr: &[u32],
        indices: &[u32],
    ) -> BackendResult<(f64, B::Buf)> {
        let effective = self.batch_head_weights(backend)?;
        self.head_loss_with(backend, z, effective.as_ref(), &HeadRows::host(indptr, indices))
    }

    /// [`SeqNet::head_loss`] with the batch-corrected head weights already computed
    /// ([`SeqNet::batch_head_weights`]; `None` without batch correction) and the batch's rows
    /// as the caller holds them (uploaded once with [`Backend::upload_rows`]), for a caller
    /// that also needs both (the step's AUROC histogram).
    pub fn head_loss_with(
        &mut self,
        backend: &B,
        z: &B::Buf,
        effective: Option<&B::Buf>,
        rows: &HeadRows<'_, B::Buf>,
    ) -> BackendResult<(f64, B::Buf)> {
        let batch = rows.indptr.len().saturating_sub(1);
        let p = SparseHeadParams { batch, cells: self.config.cells, dim: self.config.bottleneck };
        let mut dz = backend.zeros(batch * self.config.bottleneck)?;
        let w = effective.unwrap_or(&self.head_w.value);
        let logits = HeadLogits { z, w, bias: &self.head_b.value, rows };
        // The gradient with respect to the effective weights is the cell embeddings' own.
        let bufs = SparseHead { logits, dz: &mut dz, dw: &mut self.head_w.grad, dbias: &mut self.head_b.grad };
        let loss = backend.sparse_head(&p, bufs)?;
        if let (Some(w_b), Some(onehot)) = (&mut self.batch_w, &self.batch_onehot) {
            let conv = batch_conv(&self.config);
            let bufs = Conv1dBwdWeight { x: onehot, dy: &self.head_w.grad, dw: &mut w_b.grad, dbias: None };
            backend.conv1d_bwd_weight(&conv, bufs)?;
        }
        Ok((loss, dz))
    }

    /// Backward from dz (the gradient w.r.t. the bottleneck code); overwrites every gradient
    /// below the head (the head's own come from [`SeqNet::head_loss`]).
    pub fn backward(&mut self, backend: &B, cache: SeqCache<B>, dz: &B::Buf) -> BackendResult<()> {
        let batch = cache.batch;
        let lens = self.config.lengths();
        let d_drop = gelu_backward(backend, &cache.dropped, dz)?;
        let d_norm = match &cache.dropout {
            Some(p) => {
                let mut d = backend.zeros(d_drop.buf_len())?;
                backend.dropout_bwd(p, DropoutBwd { dy: &d_drop, dx: &mut d })?;
                d
            }
            None => d_drop,
        };
        let d_dense = self.dense_bn.backward(backend, &cache.dense_out, &cache.bn, &d_norm, batch, 1)?;
        self.dense.grad_params(backend, &cache.dense_in, &d_dense, batch, 1)?;
        let d_flat = self.dense.grad_input(backend, &d_dense, batch, 1)?;
        let SeqCache { input, blocks: caches, .. } = cache;
        let top = caches.last().map_or(&input, |c| &c.out);
        let mut d = gelu_backward(backend, top, &d_flat)?;
        for i in (0..self.blocks.len()).rev() {
            let x = if i == 0 { &input } else { &caches[i - 1].out };
            match self.blocks[i].backward(backend, x, &caches[i], d, batch, lens[i], i > 0)? {
                Some(dx) => d = dx,
                None => break,
            }
        }
        Ok(())
    }
}

impl<B: Backend> Module<B> for SeqNet<B> {
    /// Every trainable parameter, in a fixed order (the checkpoint's).
    fn params(&self) -> Vec<&Param<B>> {
        let mut v: Vec<&Param<B>> = Vec::new();
        for b in &self.blocks {
            v.extend(b.conv.params());
            v.extend(b.bn.params());
        }
        v.extend(self.dense.params());
        v.extend(self.dense_bn.params());
        v.push(&self.head_w);
        v.push(&self.head_b);
        v.extend(self.batch_w.as_ref());
        v
    }

    fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        let mut v: Vec<&mut Param<B>> = Vec::new();
        for b in &mut self.blocks {
            v.extend(b.conv.params_mut());
            v.extend(b.bn.params_mut());
        }
        v.extend(self.dense.params_mut());
        v.extend(self.dense_bn.params_mut());
        v.push(&mut self.head_w);
        v.push(&mut self.head_b);
        v.extend(self.batch_w.as_mut());
        v
    }

    /// The batch-norm running statistics (name, buffer), in a fixed order.
    fn stats(&self) -> Vec<(String, &B::Buf)> {
        self.blocks.iter().map(|b| &b.bn).chain(std::iter::once(&self.dense_bn)).flat_map(|bn| bn.stats()).collect()
    }

    fn stats_mut(&mut self) -> Vec<(String, &mut B::Buf)> {
        self.blocks
            .iter_mut()
            .map(|b| &mut b.bn)
            .chain(std::iter::once(&mut self.dense_bn))
            .flat_map(|bn| bn.stats_mut())
            .collect()
    }
}
