//! The CPU backend: the specification every other backend is tested against.
//!
//! Each op is a generic function over [`Real`] (f32 here, f64 in the gradient checks) in
//! the file of the op's stem; [`CpuBackend`] runs them on `Vec<f32>` buffers. Parallelism
//! is rayon's global pool (`--threads` sizes it).

mod conv1d;
mod elementwise;
pub(crate) mod loss;
mod optim;
mod real;

pub use conv1d::{conv1d_bwd_input, conv1d_bwd_weight, conv1d_fwd};
pub use elementwise::{add_fwd, relu_bwd, relu_fwd, sigmoid, sigmoid_bwd, sigmoid_fwd};
pub use loss::denoise_loss;
pub use optim::adam_step;
pub use real::Real;

use super::{check_len, AdamParams, Backend, BackendResult, Conv1dParams, DenoiseLossParams, LossParts};

/// The CPU backend (f32, rayon).
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend;

impl CpuBackend {
    pub fn new() -> Self {
        CpuBackend
    }

    /// Threads in rayon's pool, which the ops run on.
    pub fn threads(&self) -> usize {
        rayon::current_num_threads()
    }
}

impl Backend for CpuBackend {
    type Buf = Vec<f32>;

    fn describe(&self) -> String {
        format!("cpu ({} threads)", self.threads())
    }

    fn zeros(&self, len: usize) -> BackendResult<Vec<f32>> {
        Ok(vec![0.0; len])
    }

    fn upload(&self, host: &[f32]) -> BackendResult<Vec<f32>> {
        Ok(host.to_vec())
    }

    fn download(&self, buf: &Vec<f32>, host: &mut [f32]) -> BackendResult<()> {
        check_len("download", "host", host.len(), buf.len())?;
        host.copy_from_slice(buf);
        Ok(())
    }

    fn copy_from_host(&self, host: &[f32], buf: &mut Vec<f32>) -> BackendResult<()> {
        check_len("copy_from_host", "host", host.len(), buf.len())?;
        buf.copy_from_slice(host);
        Ok(())
    }

    fn buf_len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }

    fn synchronize(&self) -> BackendResult<()> {
        Ok(())
    }

    fn conv1d_fwd(
        &self,
        p: &Conv1dParams,
        x: &Vec<f32>,
        w: &Vec<f32>,
        bias: Option<&Vec<f32>>,
        y: &mut Vec<f32>,
    ) -> BackendResult<()> {
        conv1d_fwd(p, x, w, bias.map(Vec::as_slice), y)
    }

    fn conv1d_bwd_input(&self, p: &Conv1dParams, dy: &Vec<f32>, w: &Vec<f32>, dx: &mut Vec<f32>) -> BackendResult<()> {
        conv1d_bwd_input(p, dy, w, dx)
    }

    fn conv1d_bwd_weight(
        &self,
        p: &Conv1dParams,
        x: &Vec<f32>,
        dy: &Vec<f32>,
        dw: &mut Vec<f32>,
        dbias: Option<&mut Vec<f32>>,
    ) -> BackendResult<()> {
        conv1d_bwd_weight(p, x, dy, dw, dbias.map(Vec::as_mut_slice))
    }

    fn relu_fwd(&self, x: &Vec<f32>, y: &mut Vec<f32>) -> BackendResult<()> {
        relu_fwd(x, y)
    }

    fn relu_bwd(&self, y: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) -> BackendResult<()> {
        relu_bwd(y, dy, dx)
    }

    fn add_fwd(&self, a: &Vec<f32>, b: &Vec<f32>, y: &mut Vec<f32>) -> BackendResult<()> {
        add_fwd(a, b, y)
    }

    fn sigmoid_fwd(&self, x: &Vec<f32>, y: &mut Vec<f32>) -> BackendResult<()> {
        sigmoid_fwd(x, y)
    }

    fn sigmoid_bwd(&self, y: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) -> BackendResult<()> {
        sigmoid_bwd(y, dy, dx)
    }

    fn denoise_loss(
        &self,
        p: &DenoiseLossParams,
        reg: &Vec<f32>,
        clean: &Vec<f32>,
        cls_logits: &Vec<f32>,
        mask: &Vec<f32>,
        d_reg: &mut Vec<f32>,
        d_cls: &mut Vec<f32>,
    ) -> BackendResult<LossParts> {
        denoise_loss(p, reg, clean, cls_logits, mask, d_reg, d_cls)
    }

    fn adam_step(
        &self,
        p: &AdamParams,
        param: &mut Vec<f32>,
        grad: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
    ) -> BackendResult<()> {
        adam_step(p, param, grad, m, v)
    }
}
