//! Launches of `kernels/conv1d.cu`.
//!
//! Strategy: a direct convolution from shared-memory tiles (input span and weights of a
//! channel tile), each thread holding CO_TILE × POS_PER_THREAD accumulators. The weight
//! gradient is split over (chunk of positions, channel-pair tile, batch item) blocks whose
//! partials a second kernel sums in f64, in a fixed order, so the result is deterministic.

use super::{as_i32, CudaBackend, THREADS};
use crate::backend::{BackendResult, Conv1dParams};
use crate::error::BackendError;
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

// These mirror the #defines of kernels/conv1d.cu (a unit test below compares them).
const CONV_THREADS: u32 = 128;
const POS_PER_THREAD: usize = 4;
const TILE_L: usize = CONV_THREADS as usize * POS_PER_THREAD;
const CO_TILE: usize = 8;
const WG_THREADS: u32 = 256;
const WT: usize = 128;
const WCO: usize = 8;
const WCI: usize = 8;

/// Dynamic shared memory a block may use without opting in to more (bytes).
const SMEM_BYTES: usize = 48 * 1024;
const SMEM_FLOATS: usize = SMEM_BYTES / 4;
/// Launches most blocks in flight per multiprocessor for the weight-gradient pass aim at.
const WGRAD_BLOCKS_PER_SM: usize = 4;

impl CudaBackend {
    /// Input channels per shared-memory tile of the direct convolution, or an error when even
    /// one channel's span does not fit.
    fn conv_ci_tile(
        op: &'static str,
        p: &Conv1dParams,
        c_in_of_pass: usize,
    ) -> BackendResult<usize> {
        let span = TILE_L + (p.kernel - 1) * p.dilation;
        let per_channel = span + CO_TILE * p.kernel;
        let tile = (SMEM_FLOATS / per_channel).min(c_in_of_pass);
        if tile == 0 {
            return Err(BackendError::Unsupported {
                op,
                what: format!(
                    "receptive field (kernel−1)·dilation+1 = {} is wider than the CUDA kernel's shared-memory tile allows (at most {})",
                    (p.kernel - 1) * p.dilation + 1,
                    SMEM_FLOATS - TILE_L - CO_TILE * p.kernel + 1
                ),
            });
        }
        Ok(tile)
    }

    fn conv_grid(
        op: &'static str,
        p: &Conv1dParams,
        c_out_of_pass: usize,
        ci_tile: usize,
    ) -> BackendResult<LaunchConfig> {
        if p.batch > 65_535 {
            return Err(BackendError::Unsupported {
                op,
                what: format!("batch {} exceeds 65,535 on CUDA", p.batch),
            });
        }
        let span = TILE_L + (p.kernel - 1) * p.dilation;
        Ok(LaunchConfig {
            grid_dim: (
                p.len.div_ceil(TILE_L) as u32,
                c_out_of_pass.div_ceil(CO_TILE) as u32,
                p.batch as u32,
            ),
            block_dim: (CONV_THREADS, 1, 1),
            shared_mem_bytes: (4 * ci_tile * (span + CO_TILE * p.kernel)) as u32,
        })
    }

    /// The shape as the kernels' ints: c_in, c_out, len, kernel, dilation.
    fn conv_ints(op: &'static str, p: &Conv1dParams) -> BackendResult<[i32; 5]> {
        as_i32(
            op,
            "batch × channels × len",
            p.input_len().max(p.output_len()),
        )?;
        Ok([
            as_i32(op, "c_in", p.c_in)?,
            as_i32(op, "c_out", p.c_out)?,
            as_i32(op, "len", p.len)?,
            as_i32(op, "kernel", p.kernel)?,
            as_i32(op, "dilation", p.dilation)?,
        ])
    }

    pub(super) fn conv1d_fwd_impl(
        &self,
        p: &Conv1dParams,
        x: &CudaSlice<f32>,
        w: &CudaSlice<f32>,
        bias: Option<&CudaSlice<f32>>,
        y: &mut CudaSlice<f32>,
    ) -> BackendResult<()> {
        const OP: &str = "conv1d_fwd";
        p.check_fwd(x.len(), w.len(), bias.map(|b| b.len()), y.len())?;
        let [c_in, c_out, len, kernel, dilation] = Self::conv_ints(OP, p)?;
        let ci_tile = Self::conv_ci_tile(OP, p, p.c_in)?;
        let cfg = Self::conv_grid(OP, p, p.c_out, ci_tile)?;
        let (pad_left, ci_tile) = (p.pad_left() as i32, ci_tile as i32);
        let f = self.function("conv1d", "conv1d_fwd_f32")?;
        let null: u64 = 0;
        let mut launch = self.stream.launch_builder(&f);
        launch.arg(x).arg(w);
        match bias {
            Some(b) => launch.arg(b),
            None => launch.arg(&null),
        };
        launch
            .arg(y)
            .arg(&c_in)
            .arg(&c_out)
            .arg(&len)
            .arg(&kernel)
            .arg(&dilation)
            .arg(&pad_left)
            .arg(&ci_tile);
        // SAFETY: conv1d_fwd_f32(const float* x, const float* w, const float* bias, float* y,
        // int × 7); x, w, bias, y have the lengths of p (checked above), the grid covers
        // len × c_out × batch and the kernel guards l < len and co < c_out; the dynamic shared
        // memory is the ci_tile·(span + CO_TILE·K) floats the kernel indexes.
        unsafe { launch.launch(cfg) }.map_err(super::driver_err("launching conv1d_fwd_f32"))?;
        Ok(())
    }

    pub(super) fn conv1d_bwd_input_impl(
        &self,
        p: &Conv1dParams,
        dy: &CudaSlice<f32>,
        w: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
    ) -> BackendResult<()> {
        const OP: &str = "conv1d_bwd_input";
        p.check_bwd_input(dy.len(), w.len(), dx.len())?;
        let [c_in, c_out, len, kernel, dilation] = Self::conv_ints(OP, p)?;
        // The pass convolves dy (c_out channels) into dx (c_in channels).
        let ci_tile = Self::conv_ci_tile(OP, p, p.c_out)?;
        let cfg = Self::conv_grid(OP, p, p.c_in, ci_tile)?;
        let (pad_right, ci_tile) = (p.pad_right() as i32, ci_tile as i32);
        let f = self.function("conv1d", "conv1d_bwd_input_f32")?;
        // SAFETY: conv1d_bwd_input_f32(const float* dy, const float* w, float* dx, int × 7);
        // lengths checked above; the grid covers len × c_in × batch with guards in the kernel;
        // shared memory as for the forward pass with c_out input channels.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(dy)
                .arg(w)
                .arg(dx)
                .arg(&c_in)
                .arg(&c_out)
                .arg(&len)
                .arg(&kernel)
                .arg(&dilation)
                .arg(&pad_right)
                .arg(&ci_tile)
                .launch(cfg)
        }
        .map_err(super::driver_err("launching conv1d_bwd_input_f32"))?;
        Ok(())
    }

    pub(super) fn conv1d_bwd_weight_impl(
        &self,
        p: &Conv1dParams,
        x: &CudaSlice<f32>,
        dy: &CudaSlice<f32>,
        dw: &mut CudaSlice<f32>,
        dbias: Option<&mut CudaSlice<f32>>,
    ) -> BackendResult<()> {
        const OP: &str = "conv1d_bwd_weight";
        p.check_bwd_weight(x.len(), dy.len(), dw.len(), dbias.as_ref().map(|b| b.len()))?;
        let [c_in, c_out, len, kernel, dilation] = Self::conv_ints(OP, p)?;
        let span = WT + (p.kernel - 1) * p.dilation;
        let smem_floats = WCO * WT + WCI * (span | 1) + WCO * WCI * p.kernel;
        if smem_floats > SMEM_FLOATS {
            return Err(BackendError::Unsupported {
                op: OP,
                what: format!(
                    "kernel {} with dilation {} needs {} KiB of shared memory per block, more than {} KiB",
                    p.kernel,
                    p.dilation,
                    smem_floats * 4 / 1024,
                    SMEM_BYTES / 1024
                ),
            });
        }
        let n_ci_tiles = p.c_in.div_ceil(WCI);
        let tiles = p.c_out.div_ceil(WCO) * n_ci_tiles;
        if tiles > 65_535 || p.batch > 65_535 {
            return Err(BackendError::Unsupported {
                op: OP,
                what: format!(
                    "{} channels × {} channels is too many for one launch",
                    p.c_out, p.c_in
                ),
            });
        }
        // Enough chunks of positions to fill the device; chunk lengths are whole tiles.
        let target_blocks = WGRAD_BLOCKS_PER_SM * self.info.multiprocessors.max(1) as usize;
        let n_chunks = target_blocks
            .div_ceil(tiles * p.batch)
            .clamp(1, p.len.div_ceil(WT));
        let chunk_len = p.len.div_ceil(n_chunks).div_ceil(WT) * WT;
        let n_chunks = p.len.div_ceil(chunk_len);
        let n_parts = p.batch * n_chunks;
        let mut partial = self.alloc_zeros::<f32>(n_parts * p.weight_len())?;

        let cfg = LaunchConfig {
            grid_dim: (n_chunks as u32, tiles as u32, p.batch as u32),
            block_dim: (WG_THREADS, 1, 1),
            shared_mem_bytes: (4 * smem_floats) as u32,
        };
        let (pad_left, chunk_len, n_ci_tiles) =
            (p.pad_left() as i32, chunk_len as i32, n_ci_tiles as i32);
        let f = self.function("conv1d", "conv1d_bwd_weight_partial_f32")?;
        // SAFETY: conv1d_bwd_weight_partial_f32(const float* x, const float* dy, float* partial,
        // int × 8); x and dy have the lengths of p; partial holds batch·n_chunks·C_out·C_in·K
        // floats, indexed by (blockIdx.z·gridDim.x + blockIdx.x) with gridDim.x = n_chunks; the
        // kernel guards channel indices; shared memory is exactly smem_floats floats.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x)
                .arg(dy)
                .arg(&mut partial)
                .arg(&c_in)
                .arg(&c_out)
                .arg(&len)
                .arg(&kernel)
                .arg(&dilation)
                .arg(&pad_left)
                .arg(&chunk_len)
                .arg(&n_ci_tiles)
                .launch(cfg)
        }
        .map_err(super::driver_err("launching conv1d_bwd_weight_partial_f32"))?;

        let reduce = self.function("conv1d", "conv1d_bwd_weight_reduce_f32")?;
        let (n_parts_i, n_weights) = (as_i32(OP, "partial sums", n_parts)?, p.weight_len() as i64);
        let cfg = LaunchConfig {
            grid_dim: (self.grid_stride_blocks(p.weight_len()), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: conv1d_bwd_weight_reduce_f32(const float*, float*, int, long long); partial
        // holds n_parts·n_weights floats and dw n_weights (checked above).
        unsafe {
            self.stream
                .launch_builder(&reduce)
                .arg(&partial)
                .arg(dw)
                .arg(&n_parts_i)
                .arg(&n_weights)
                .launch(cfg)
        }
        .map_err(super::driver_err("launching conv1d_bwd_weight_reduce_f32"))?;

        if let Some(db) = dbias {
            let bias_fn = self.function("conv1d", "conv1d_bwd_bias_f32")?;
            let b = as_i32(OP, "batch", p.batch)?;
            let cfg = LaunchConfig {
                grid_dim: (p.c_out as u32, 1, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: conv1d_bwd_bias_f32(const float* dy, float* dbias, int, int, int); dy has
            // batch·c_out·len floats, dbias c_out; one block per output channel.
            unsafe {
                self.stream
                    .launch_builder(&bias_fn)
                    .arg(dy)
                    .arg(db)
                    .arg(&b)
                    .arg(&c_out)
                    .arg(&len)
                    .launch(cfg)
            }
            .map_err(super::driver_err("launching conv1d_bwd_bias_f32"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The launch geometry above must match the kernel file's #defines.
    #[test]
    fn constants_match_kernel_defines() {
        let src = crate::kernels::kernel_file("conv1d")
            .expect("conv1d.cu is embedded")
            .text;
        let define = |name: &str| -> usize {
            let line = src
                .lines()
                .find(|l| l.starts_with(&format!("#define {name} ")))
                .unwrap_or_else(|| panic!("#define {name} missing from conv1d.cu"));
            let value = line
                .split_whitespace()
                .nth(2)
                .expect("a value after the name");
            value
                .parse()
                .unwrap_or_else(|_| panic!("#define {name} is not a plain number: {line}"))
        };
        assert_eq!(define("CONV_THREADS"), CONV_THREADS as usize);
        assert_eq!(define("POS_PER_THREAD"), POS_PER_THREAD);
        assert_eq!(define("CO_TILE"), CO_TILE);
        assert_eq!(define("WG_THREADS"), WG_THREADS as usize);
        assert_eq!(define("WT"), WT);
        assert_eq!(define("WCO"), WCO);
        assert_eq!(define("WCI"), WCI);
        let common = crate::kernels::HEADER_FILES
            .iter()
            .find(|h| h.stem == "common")
            .expect("common.cuh")
            .text;
        assert!(common.contains(&format!("#define CHROMAX_THREADS {THREADS}")));
    }
}
