//! `chromax devices`: the CPU and every CUDA device, or the one-line reason CUDA is not usable.

use chromax::backend::cuda::{probe, CudaProbe};

#[derive(Debug, clap::Args)]
pub struct DevicesArgs {}

pub fn run(_args: &DevicesArgs) -> super::CliResult {
    println!("cpu     {} threads", rayon::current_num_threads());
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
            "cuda:{:<3} {}  {:.1} GiB  compute {major}.{minor} (sm_{major}{minor})  {} SMs",
            d.ordinal,
            d.name,
            d.total_memory as f64 / (1u64 << 30) as f64,
            d.multiprocessors
        );
    }
    println!("        driver CUDA {dmaj}.{dmin}, NVRTC {nvrtc}");
    if let Some(problem) = &found.problem {
        println!("cuda    not usable: {problem}");
    }
}
