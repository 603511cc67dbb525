//! conv1d at the denoiser's shape (batch 8, 15→15 channels, kernel 51, dilation 8, length
//! 60,000) on the CPU and, where present, CUDA, next to the machine's practical roof: a large
//! square f32 GEMM through matrixmultiply (ndarray), rayon over row blocks.
//!
//! Napkin math per pass: 2·B·C_out·C_in·K·L = 2·8·15·15·51·60,000 = 11.0 GFLOP, and at least
//! (x + w + y)·4 bytes = 57.6 MB moved: ~190 FLOP per byte, compute-bound everywhere.
//! Roofs: this CPU's GEMM as measured here; H200 f32 FMA ≈ 67 TFLOP/s (no tensor cores),
//! HBM3e ≈ 4.8 TB/s; bf16 tensor cores (mma.sync, the cuda_conv1d_bf16 rows) ≈ 790 TFLOP/s. Criterion reports elements = FLOP, so "Gelem/s" reads as GFLOP/s; a
//! summary table with GFLOP/s, GB/s and % of the roof is printed at the end.

use chromax::backend::cpu::CpuBackend;
use chromax::backend::cuda::CudaBackend;
use chromax::backend::{Backend, Conv1dParams};
use chromax::backend::{Conv1dBwdInput, Conv1dBwdWeight, Conv1dFwd};
use criterion::{BenchmarkId, Criterion, Throughput};
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2};
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Duration;

const DENOISER: Conv1dParams = Conv1dParams { batch: 8, c_in: 15, c_out: 15, len: 60_000, kernel: 51, dilation: 8 };
const GEMM_N: usize = 2048;
/// H200 f32 (non-tensor-core) peak and HBM bandwidth, for the CUDA rows of the summary.
const H200_F32_TFLOPS: f64 = 67.0;
const H200_TBPS: f64 = 4.8;
/// H200 bf16 tensor-core peak through mma.sync (dense, f32 accumulate).
const H200_BF16_TFLOPS: f64 = 790.0;

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / (1 << 24) as f32) - 0.5)
        .collect()
}

fn conv_bytes(p: &Conv1dParams) -> u64 {
    ((p.input_len() + p.weight_len() + p.output_len()) * 4) as u64
}

fn throughput(p: &Conv1dParams) -> Throughput {
    Throughput::ElementsAndBytes { elements: p.flops() as u64, bytes: conv_bytes(p) }
}

/// C = A·B for square f32 matrices, rayon over row blocks, each block one matrixmultiply GEMM.
fn gemm_rows(a: &Array2<f32>, b: &Array2<f32>, c: &mut Array2<f32>) {
    const ROWS: usize = 128;
    let n = a.nrows();
    let blocks: Vec<usize> = (0..n).step_by(ROWS).collect();
    let outs: Vec<Array2<f32>> = blocks
        .par_iter()
        .map(|&r| {
            let a_blk = a.slice(s![r..(r + ROWS).min(n), ..]);
            let mut out = Array2::<f32>::zeros((a_blk.nrows(), b.ncols()));
            general_mat_mul(1.0, &a_blk, b, 0.0, &mut out);
            out
        })
        .collect();
    for (&r, out) in blocks.iter().zip(outs) {
        c.slice_mut(s![r..r + out.nrows(), ..]).assign(&out);
    }
}

fn bench_gemm_roof(c: &mut Criterion) {
    let n = GEMM_N;
    let a = Array2::from_shape_vec((n, n), values(n * n, 1)).expect("n×n");
    let b = Array2::from_shape_vec((n, n), values(n * n, 2)).expect("n×n");
    let mut out = Array2::<f32>::zeros((n, n));
    let mut group = c.benchmark_group("cpu_gemm_roof");
    group
        .throughput(Throughput::ElementsAndBytes { elements: 2 * (n as u64).pow(3), bytes: 3 * 4 * (n as u64).pow(2) });
    group.bench_function(BenchmarkId::from_parameter(n), |bench| {
        bench.iter(|| gemm_rows(black_box(&a), black_box(&b), &mut out))
    });
    group.finish();
}

fn bench_conv<B: Backend<Elem = f32>>(c: &mut Criterion, group_name: &str, backend: &B) {
    let p = DENOISER;
    let x = backend.upload(&values(p.input_len(), 3)).expect("x");
    let w = backend.upload(&values(p.weight_len(), 4)).expect("w");
    let bias = backend.upload(&values(p.c_out, 5)).expect("bias");
    let dy = backend.upload(&values(p.output_len(), 6)).expect("dy");
    let mut y = backend.zeros(p.output_len()).expect("y");
    let mut dx = backend.zeros(p.input_len()).expect("dx");
    let mut dw = backend.zeros(p.weight_len()).expect("dw");
    let mut db = backend.zeros(p.c_out).expect("db");
    let mut group = c.benchmark_group(group_name);
    group.throughput(throughput(&p));
    // Each iteration synchronises, so the clock stops only when the device is done.
    group.bench_function("fwd", |bench| {
        bench.iter(|| {
            backend.conv1d_fwd(&p, Conv1dFwd { x: &x, w: &w, bias: Some(&bias), y: &mut y }).expect("fwd");
            backend.synchronize().expect("sync");
        })
    });
    group.bench_function("bwd_input", |bench| {
        bench.iter(|| {
            backend.conv1d_bwd_input(&p, Conv1dBwdInput { dy: &dy, w: &w, dx: &mut dx }).expect("bwd_input");
            backend.synchronize().expect("sync");
        })
    });
    group.bench_function("bwd_weight", |bench| {
        bench.iter(|| {
            backend
                .conv1d_bwd_weight(&p, Conv1dBwdWeight { x: &x, dy: &dy, dw: &mut dw, dbias: Some(&mut db) })
                .expect("bwd_weight");
            backend.synchronize().expect("sync");
        })
    });
    group.finish();
}

/// Mean seconds of a finished benchmark, from criterion's estimates.json.
fn mean_seconds(id: &str) -> Option<f64> {
    let root = std::env::var_os("CRITERION_HOME").map(std::path::PathBuf::from).unwrap_or_else(|| {
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| "target".into());
        target.join("criterion")
    });
    let text = std::fs::read_to_string(root.join(id).join("new").join("estimates.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(json["mean"]["point_estimate"].as_f64()? * 1e-9)
}

fn print_summary(cuda: bool) {
    let gemm_flop = 2.0 * (GEMM_N as f64).powi(3);
    let roof = mean_seconds(&format!("cpu_gemm_roof/{GEMM_N}")).map(|s| gemm_flop / s / 1e9);
    println!("\nsummary (mean times; denoiser shape {DENOISER:?})");
    println!("{:<24} {:>10} {:>10} {:>9}  roof", "benchmark", "ms", "GFLOP/s", "GB/s");
    if let Some(r) = roof {
        println!(
            "{:<24} {:>10.1} {:>10.1} {:>9}  (the CPU roof)",
            format!("cpu_gemm_roof/{GEMM_N}"),
            gemm_flop / r / 1e6,
            r,
            "-"
        );
    }
    let groups: &[&str] = if cuda { &["cpu_conv1d", "cuda_conv1d", "cuda_conv1d_bf16"] } else { &["cpu_conv1d"] };
    for group in groups {
        for pass in ["fwd", "bwd_input", "bwd_weight"] {
            let id = format!("{group}/{pass}");
            let Some(secs) = mean_seconds(&id) else {
                continue;
            };
            let gflops = DENOISER.flops() / secs / 1e9;
            let gbps = conv_bytes(&DENOISER) as f64 / secs / 1e9;
            let vs_roof = if group.starts_with("cpu") {
                roof.map_or("-".to_string(), |r| format!("{:.0}% of CPU GEMM ({r:.1} GFLOP/s)", 100.0 * gflops / r))
            } else {
                let (name, peak) =
                    if group.ends_with("bf16") { ("bf16 mma", H200_BF16_TFLOPS) } else { ("f32", H200_F32_TFLOPS) };
                format!(
                    "{:.1}% of H200 {name} {peak} TFLOP/s, {:.2}% of {H200_TBPS} TB/s",
                    gflops / (10.0 * peak),
                    gbps / (10.0 * H200_TBPS)
                )
            };
            println!("{id:<24} {:>10.1} {gflops:>10.1} {gbps:>9.2}  {vs_roof}", secs * 1e3);
        }
    }
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    bench_gemm_roof(&mut c);
    bench_conv(&mut c, "cpu_conv1d", &CpuBackend::new());
    let cuda = match CudaBackend::new(0) {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            println!("cuda_conv1d: skipped: no CUDA device ({e})");
            None
        }
    };
    let on_gpu = cuda.is_some();
    if let Some(gpu) = cuda {
        bench_conv(&mut c, "cuda_conv1d", &gpu);
        // The same shape on the tensor cores (kernels/conv1d_mma.cu).
        bench_conv(&mut c, "cuda_conv1d_bf16", &gpu.with_bf16_convolutions(true));
    }
    c.final_summary();
    print_summary(on_gpu);
}
