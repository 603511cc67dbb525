//! Launches of `kernels/elementwise.cu`: ReLU, residual add, sigmoid.

use super::{CudaBackend, THREADS};
use crate::backend::{check_len, BackendResult};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

impl CudaBackend {
    fn config_1d(&self, n: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (self.grid_stride_blocks(n), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// `y = f(x)` for a kernel `f(const float* x, float* y, long long n)`.
    pub(super) fn unary(
        &self,
        name: &'static str,
        x: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
    ) -> BackendResult<()> {
        check_len(name, "y", y.len(), x.len())?;
        let f = self.function("elementwise", name)?;
        let n = x.len() as i64;
        // SAFETY: the kernel takes (const float*, float*, long long) and reads/writes n
        // elements; both buffers hold n values (checked above).
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x)
                .arg(y)
                .arg(&n)
                .launch(self.config_1d(x.len()))
        }
        .map_err(super::driver_err(format!("launching {name}")))?;
        Ok(())
    }

    /// `out = f(a, b)` for a kernel `f(const float* a, const float* b, float* out, long long n)`.
    pub(super) fn binary(
        &self,
        name: &'static str,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        out: &mut CudaSlice<f32>,
    ) -> BackendResult<()> {
        check_len(name, "second input", b.len(), a.len())?;
        check_len(name, "output", out.len(), a.len())?;
        let f = self.function("elementwise", name)?;
        let n = a.len() as i64;
        // SAFETY: the kernel takes (const float*, const float*, float*, long long) and touches n
        // elements of each; all three buffers hold n values (checked above).
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(a)
                .arg(b)
                .arg(out)
                .arg(&n)
                .launch(self.config_1d(a.len()))
        }
        .map_err(super::driver_err(format!("launching {name}")))?;
        Ok(())
    }
}
