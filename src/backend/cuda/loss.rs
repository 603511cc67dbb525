//! Launches of `kernels/loss.cu`: the fused denoising loss in three passes (sums, centred
//! sums, gradients); the seven f64 sums come back to the host to form the loss value.

use super::{as_i32, CudaBackend, THREADS};
use crate::backend::cpu::loss::loss_parts_from_sums;
use crate::backend::{Backend, BackendResult, DenoiseLossParams, LossParts};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

/// Most blocks of the reduction passes: one block reduces their partials.
const MAX_REDUCE_BLOCKS: usize = 1024;

impl CudaBackend {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn denoise_loss_impl(
        &self,
        p: &DenoiseLossParams,
        reg: &CudaSlice<f32>,
        clean: &CudaSlice<f32>,
        logits: &CudaSlice<f32>,
        mask: &CudaSlice<f32>,
        d_reg: &mut CudaSlice<f32>,
        d_cls: &mut CudaSlice<f32>,
    ) -> BackendResult<LossParts> {
        const OP: &str = "denoise_loss";
        p.check([
            ("reg", reg.len()),
            ("clean", clean.len()),
            ("cls_logits", logits.len()),
            ("mask", mask.len()),
            ("d_reg", d_reg.len()),
            ("d_cls", d_cls.len()),
        ])?;
        let (b, l, pad) = (
            as_i32(OP, "batch", p.batch)?,
            as_i32(OP, "len", p.len)?,
            as_i32(OP, "pad", p.pad)?,
        );
        let n = p.batch * p.cropped_len();
        let blocks = n.div_ceil(THREADS as usize).clamp(1, MAX_REDUCE_BLOCKS);
        let grid = |blocks: usize| LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut partial = self.alloc_zeros::<f64>(blocks * 4)?;
        let mut stats = self.alloc_zeros::<f64>(7)?;
        let err = |name: &str| super::driver_err(format!("launching {name}"));

        let sums = self.function("loss", "denoise_loss_sums_f32")?;
        let centred = self.function("loss", "denoise_loss_centred_f32")?;
        let reduce = self.function("loss", "reduce_rows_f64")?;
        let grad = self.function("loss", "denoise_loss_grad_f32")?;
        let (rows, cols4, cols3) = (blocks as i32, 4i32, 3i32);
        // SAFETY (all four launches): the argument lists match the kernels' signatures in
        // kernels/loss.cu; reg, clean, logits, mask, d_reg and d_cls hold batch·len values
        // (checked above) and the kernels touch only (b, l) with b < batch, l < len; partial
        // holds blocks·4 doubles and each block writes its own row; stats holds 7 doubles.
        unsafe {
            self.stream
                .launch_builder(&sums)
                .arg(reg)
                .arg(clean)
                .arg(logits)
                .arg(mask)
                .arg(&mut partial)
                .arg(&b)
                .arg(&l)
                .arg(&pad)
                .launch(grid(blocks))
                .map_err(err("denoise_loss_sums_f32"))?;
            let mut head = stats.slice_mut(0..4);
            self.stream
                .launch_builder(&reduce)
                .arg(&partial)
                .arg(&mut head)
                .arg(&rows)
                .arg(&cols4)
                .launch(grid(1))
                .map_err(err("reduce_rows_f64"))?;
            self.stream
                .launch_builder(&centred)
                .arg(reg)
                .arg(clean)
                .arg(&stats)
                .arg(&mut partial)
                .arg(&b)
                .arg(&l)
                .arg(&pad)
                .launch(grid(blocks))
                .map_err(err("denoise_loss_centred_f32"))?;
            let mut tail = stats.slice_mut(4..7);
            self.stream
                .launch_builder(&reduce)
                .arg(&partial)
                .arg(&mut tail)
                .arg(&rows)
                .arg(&cols3)
                .launch(grid(1))
                .map_err(err("reduce_rows_f64"))?;
            self.stream
                .launch_builder(&grad)
                .arg(reg)
                .arg(clean)
                .arg(logits)
                .arg(mask)
                .arg(&stats)
                .arg(d_reg)
                .arg(d_cls)
                .arg(&b)
                .arg(&l)
                .arg(&pad)
                .arg(&p.mse_weight)
                .arg(&p.pearson_weight)
                .arg(&p.bce_weight)
                .launch(grid(self.grid_stride_blocks(p.batch * p.len) as usize))
                .map_err(err("denoise_loss_grad_f32"))?;
        }
        let mut host = [0.0f64; 7];
        self.stream
            .memcpy_dtoh(&stats, &mut host[..])
            .map_err(super::driver_err("copying the loss sums to the host"))?;
        self.synchronize()?;
        Ok(loss_parts_from_sums(p, host))
    }
}
