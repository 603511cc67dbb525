//! `chromax devices`: the CPU and every CUDA device, or the one-line reason CUDA is not usable.

use chromax::backend::cuda::{probe, CudaProbe};

#[derive(Debug, clap::Args)]
pub struct DevicesArgs {}

pub fn run(_args: &DevicesArgs) -> super::CliResult {
    let bf16 = match chromax::backend::cpu::bf16_products_unit() {
        Some(unit) => format!("f32 (bf16 with --precision bf16: {unit})"),
        None => "f32".to_string(),
    };
    println!("cpu     {} threads  precision {bf16}", rayon::current_num_threads());
    match probe() {
        Ok(found) => print_cuda(&found),
        Err(e) => println!("cuda    not usable: {}", reason(&e.to_string())),
    }
    Ok(())
}

fn reason(message: &str) -> &str {
    message.strip_prefix("CUDA is not usable: ").unwrap_or(message)
}

fn print_cuda(found: &CudaProbe) {
    let (dmaj, dmin) = found.driver_version;
    let nvrtc = found.nvrtc_version.map_or("not found".to_string(), |(a, b)| format!("{a}.{b}"));
    for d in &found.devices {
        let (major, minor) = d.compute_capability;
        println!(
            "cuda:{:<3} {}  {:.1} GiB  compute {major}.{minor} (sm_{major}{minor})  {} SMs  precision {}",
            d.ordinal,
            d.name,
            d.total_memory as f64 / (1u64 << 30) as f64,
            d.multiprocessors,
            match chromax::backend::default_cuda_precision((major, minor)) {
                chromax::backend::Precision::Bf16 => "bf16 (tensor cores; --precision f32 to change)",
                chromax::backend::Precision::F32 => "f32",
            }
        );
    }
    println!("        driver CUDA {dmaj}.{dmin}, NVRTC {nvrtc}");
    if let Some(problem) = &found.problem {
        println!("cuda    not usable: {problem}");
    }
}
