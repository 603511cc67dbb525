//! `--device cpu|cuda[:N]`: which backend a compute command runs on, said on stderr.

use super::CliResult;
use chromax::backend::cpu::CpuBackend;
use chromax::backend::{select as choose, Backend, Compute, Device};

/// The requested device, or CUDA when usable and else the CPU; says which on stderr.
pub fn select(device: Option<&str>) -> CliResult<Compute> {
    let chosen = choose(device.map(str::parse::<Device>).transpose()?).map_err(|e| match device {
        Some(asked) => format!(
            "--device {asked}: {e}\n(--device accepts cpu, cuda, cuda:N and gpu for cuda:0; without a usable GPU, use --device cpu)"
        ),
        None => e.to_string(),
    })?;
    if let Some(why) = &chosen.cuda_unusable {
        eprintln!("{why} (use --device cuda to require a GPU)");
    }
    eprintln!("device: {}", chosen.compute.describe());
    Ok(chosen.compute)
}

/// [`select`], and with `bf16` the CPU backend whose wide convolutions multiply in bf16
/// (`--bf16`); refused on CUDA and on a CPU without AVX512-BF16.
pub fn select_with(device: Option<&str>, bf16: bool) -> CliResult<Compute> {
    if !bf16 {
        return select(device);
    }
    if device.is_none_or(|d| d != "cpu") {
        return Err(
            "--bf16 is a CPU option (products of SeqNet's convolutions in bf16, sums in f32): give --device cpu \
                    as well"
                .into(),
        );
    }
    let cpu = CpuBackend::with_bf16_gemm().map_err(|e| format!("--bf16: {e}"))?;
    eprintln!("device: {}", cpu.describe());
    Ok(Compute::Cpu(cpu))
}
