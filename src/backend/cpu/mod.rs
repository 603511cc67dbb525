//! The CPU backend: the specification every other backend is tested against.
//!
//! Each op is a generic function over [`Real`] (f32 here, f64 in the gradient checks) in
//! the file of the op's stem; [`CpuBackend`] runs them on `Vec<T>` buffers. Parallelism
//! is rayon's global pool (`--threads` sizes it).

mod conv1d;
mod dropout;
mod elementwise;
pub(crate) mod loss;
mod norm;
mod onehot;
mod optim;
mod pool;
mod real;
mod sparse_head;

pub use conv1d::{conv1d_bwd_input, conv1d_bwd_weight, conv1d_fwd};
pub use dropout::{dropout_bwd, dropout_fwd};
pub use elementwise::{add_fwd, gelu_bwd, gelu_fwd, relu_bwd, relu_fwd, sigmoid, sigmoid_bwd, sigmoid_fwd, GELU_SLOPE};
pub use loss::denoise_loss;
pub use norm::{batchnorm_bwd, batchnorm_fwd_infer, batchnorm_fwd_train};
pub use onehot::{one_hot, one_hot_shifted};
pub use optim::adam_step;
pub use pool::{maxpool_bwd, maxpool_fwd};
pub use real::Real;
pub use sparse_head::{head_roc_histogram, sparse_head};

use super::{
    check_len, AdamParams, Backend, BackendResult, BatchNormParams, Conv1dParams, DenoiseLossParams, DropoutParams,
    LossParts, MaxPoolParams, SparseHeadParams,
};

/// The CPU backend: f32 in production, f64 for finite-difference checks of whole models.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend<T = f32> {
    _elem: std::marker::PhantomData<T>,
}

impl CpuBackend<f32> {
    pub fn new() -> Self {
        CpuBackend { _elem: std::marker::PhantomData }
    }
}

impl CpuBackend<f64> {
    /// The specification in f64, for gradient checks.
    pub fn new_f64() -> Self {
        CpuBackend { _elem: std::marker::PhantomData }
    }
}

impl<T> CpuBackend<T> {
    /// Threads in rayon's pool, which the ops run on.
    pub fn threads(&self) -> usize {
        rayon::current_num_threads()
    }
}

impl<T: Real + Default + From<f32> + Into<f64>> Backend for CpuBackend<T> {
    type Elem = T;
    type Buf = Vec<T>;

    fn describe(&self) -> String {
        format!("cpu ({} threads)", self.threads())
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

    fn buf_len(&self, buf: &Vec<T>) -> usize {
        buf.len()
    }

    fn synchronize(&self) -> BackendResult<()> {
        Ok(())
    }

    fn conv1d_fwd(
        &self,
        p: &Conv1dParams,
        x: &Vec<T>,
        w: &Vec<T>,
        bias: Option<&Vec<T>>,
        y: &mut Vec<T>,
    ) -> BackendResult<()> {
        conv1d_fwd(p, x, w, bias.map(Vec::as_slice), y)
    }

    fn conv1d_bwd_input(&self, p: &Conv1dParams, dy: &Vec<T>, w: &Vec<T>, dx: &mut Vec<T>) -> BackendResult<()> {
        conv1d_bwd_input(p, dy, w, dx)
    }

    fn conv1d_bwd_weight(
        &self,
        p: &Conv1dParams,
        x: &Vec<T>,
        dy: &Vec<T>,
        dw: &mut Vec<T>,
        dbias: Option<&mut Vec<T>>,
    ) -> BackendResult<()> {
        conv1d_bwd_weight(p, x, dy, dw, dbias.map(Vec::as_mut_slice))
    }

    fn relu_fwd(&self, x: &Vec<T>, y: &mut Vec<T>) -> BackendResult<()> {
        relu_fwd(x, y)
    }

    fn relu_bwd(&self, y: &Vec<T>, dy: &Vec<T>, dx: &mut Vec<T>) -> BackendResult<()> {
        relu_bwd(y, dy, dx)
    }

    fn add_fwd(&self, a: &Vec<T>, b: &Vec<T>, y: &mut Vec<T>) -> BackendResult<()> {
        add_fwd(a, b, y)
    }

    fn sigmoid_fwd(&self, x: &Vec<T>, y: &mut Vec<T>) -> BackendResult<()> {
        sigmoid_fwd(x, y)
    }

    fn sigmoid_bwd(&self, y: &Vec<T>, dy: &Vec<T>, dx: &mut Vec<T>) -> BackendResult<()> {
        sigmoid_bwd(y, dy, dx)
    }

    fn batchnorm_fwd_train(
        &self,
        p: &BatchNormParams,
        x: &Vec<T>,
        gamma: &Vec<T>,
        beta: &Vec<T>,
        y: &mut Vec<T>,
        mean: &mut Vec<T>,
        invstd: &mut Vec<T>,
        running_mean: &mut Vec<T>,
        running_var: &mut Vec<T>,
    ) -> BackendResult<()> {
        batchnorm_fwd_train(p, x, gamma, beta, y, mean, invstd, running_mean, running_var)
    }

    fn batchnorm_fwd_infer(
        &self,
        p: &BatchNormParams,
        x: &Vec<T>,
        gamma: &Vec<T>,
        beta: &Vec<T>,
        running_mean: &Vec<T>,
        running_var: &Vec<T>,
        y: &mut Vec<T>,
    ) -> BackendResult<()> {
        batchnorm_fwd_infer(p, x, gamma, beta, running_mean, running_var, y)
    }

    fn batchnorm_bwd(
        &self,
        p: &BatchNormParams,
        x: &Vec<T>,
        dy: &Vec<T>,
        gamma: &Vec<T>,
        mean: &Vec<T>,
        invstd: &Vec<T>,
        dx: &mut Vec<T>,
        dgamma: &mut Vec<T>,
        dbeta: &mut Vec<T>,
    ) -> BackendResult<()> {
        batchnorm_bwd(p, x, dy, gamma, mean, invstd, dx, dgamma, dbeta)
    }

    fn one_hot(
        &self,
        batch: usize,
        len: usize,
        codes: &[u8],
        reverse: &[bool],
        shift: &[i32],
        out: &mut Vec<T>,
    ) -> BackendResult<()> {
        one_hot_shifted(batch, len, codes, reverse, shift, out)
    }

    fn dropout_fwd(&self, p: &DropoutParams, x: &Vec<T>, y: &mut Vec<T>) -> BackendResult<()> {
        dropout_fwd(p, x, y)
    }

    fn dropout_bwd(&self, p: &DropoutParams, dy: &Vec<T>, dx: &mut Vec<T>) -> BackendResult<()> {
        dropout_bwd(p, dy, dx)
    }

    fn maxpool_fwd(&self, p: &MaxPoolParams, x: &Vec<T>, y: &mut Vec<T>) -> BackendResult<()> {
        maxpool_fwd(p, x, y)
    }

    fn maxpool_bwd(&self, p: &MaxPoolParams, x: &Vec<T>, dy: &Vec<T>, dx: &mut Vec<T>) -> BackendResult<()> {
        maxpool_bwd(p, x, dy, dx)
    }

    fn gelu_fwd(&self, x: &Vec<T>, y: &mut Vec<T>) -> BackendResult<()> {
        gelu_fwd(x, y)
    }

    fn gelu_bwd(&self, x: &Vec<T>, dy: &Vec<T>, dx: &mut Vec<T>) -> BackendResult<()> {
        gelu_bwd(x, dy, dx)
    }

    fn denoise_loss(
        &self,
        p: &DenoiseLossParams,
        reg: &Vec<T>,
        clean: &Vec<T>,
        cls_logits: &Vec<T>,
        mask: &Vec<T>,
        d_reg: &mut Vec<T>,
        d_cls: &mut Vec<T>,
    ) -> BackendResult<LossParts> {
        denoise_loss(p, reg, clean, cls_logits, mask, d_reg, d_cls)
    }

    fn adam_step(
        &self,
        p: &AdamParams,
        param: &mut Vec<T>,
        grad: &Vec<T>,
        m: &mut Vec<T>,
        v: &mut Vec<T>,
    ) -> BackendResult<()> {
        adam_step(p, param, grad, m, v)
    }

    fn sparse_head(
        &self,
        p: &SparseHeadParams,
        z: &Vec<T>,
        w: &Vec<T>,
        bias: &Vec<T>,
        indptr: &[u32],
        indices: &[u32],
        dz: &mut Vec<T>,
        dw: &mut Vec<T>,
        dbias: &mut Vec<T>,
    ) -> BackendResult<f64> {
        sparse_head(p, z, w, bias, indptr, indices, dz, dw, dbias)
    }

    fn head_roc_histogram(
        &self,
        p: &SparseHeadParams,
        z: &Vec<T>,
        w: &Vec<T>,
        bias: &Vec<T>,
        indptr: &[u32],
        indices: &[u32],
        per_row: bool,
    ) -> BackendResult<Vec<u64>> {
        head_roc_histogram(p, z, w, bias, indptr, indices, per_row)
    }
}
