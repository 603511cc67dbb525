//! `--device cpu|cuda[:N]`: which backend a compute command runs on, said on stderr.

use super::CliResult;
use chromax::backend::{select as choose, Compute, Device};

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
