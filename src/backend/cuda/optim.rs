//! Launch of `kernels/optim.cu`: Adam.

use super::{CudaBackend, THREADS};
use crate::backend::{AdamParams, BackendResult};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

impl CudaBackend {
    pub(super) fn adam_step_impl(
        &self,
        p: &AdamParams,
        param: &mut CudaSlice<f32>,
        grad: &CudaSlice<f32>,
        m: &mut CudaSlice<f32>,
        v: &mut CudaSlice<f32>,
    ) -> BackendResult<()> {
        p.check(param.len(), grad.len(), m.len(), v.len())?;
        let f = self.function("optim", "adam_step_f32")?;
        let n = param.len() as i64;
        let (bc1, bc2) = p.bias_corrections();
        let (bc1, bc2) = (bc1 as f32, bc2 as f32);
        let cfg = LaunchConfig {
            grid_dim: (self.grid_stride_blocks(param.len()), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: adam_step_f32(float*, const float*, float*, float*, long long, float × 7);
        // the four buffers hold n values each (checked above).
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(param)
                .arg(grad)
                .arg(m)
                .arg(v)
                .arg(&n)
                .arg(&p.lr)
                .arg(&p.beta1)
                .arg(&p.beta2)
                .arg(&p.eps)
                .arg(&p.weight_decay)
                .arg(&bc1)
                .arg(&bc2)
                .launch(cfg)
        }
        .map_err(super::driver_err("launching adam_step_f32"))?;
        Ok(())
    }
}
