//! `--device cpu|cuda[:N]` and `--precision f32|bf16`: which backend a compute command runs
//! on and how it multiplies, said on stderr.

use super::CliResult;
use chromax::backend::{select_precision as choose, Compute, Device, Precision};

/// The requested device at the requested precision (`--device`, `--precision`), or CUDA when
/// usable and else the CPU; says which on stderr.
pub fn select(device: Option<&str>, precision: Option<Precision>) -> CliResult<Compute> {
    let chosen = choose(device.map(str::parse::<Device>).transpose()?, precision).map_err(|e| match (device, precision) {
        (_, Some(Precision::Bf16)) if !e.to_string().contains("CUDA") => format!("--precision bf16: {e}"),
        (Some(asked), _) => format!(
            "--device {asked}: {e}\n(--device accepts cpu, cuda, cuda:N and gpu for cuda:0; without a usable GPU, use --device cpu)"
        ),
        (None, _) => e.to_string(),
    })?;
    if let Some(why) = &chosen.cuda_unusable {
        eprintln!("{why} (use --device cuda to require a GPU)");
    }
    eprintln!("device: {}", chosen.compute.describe());
    Ok(chosen.compute)
}
