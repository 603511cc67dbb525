//! Helpers shared by the integration tests: a seeded generator, tolerant comparison with
//! the first mismatches printed, and visible skips.
#![allow(dead_code)]

use std::io::Write;

/// Writes straight to the process's stderr, past libtest's output capture, so that a skip
/// shows in `cargo test` output even when the test passes.
pub fn say(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// The CUDA backend on device 0, or `None` after a visible "skipped: no CUDA device" line.
/// With `CHROMAX_REQUIRE_CUDA=1` a missing device fails the test instead.
pub fn cuda_or_skip(test: &str) -> Option<chromax::backend::cuda::CudaBackend> {
    match chromax::backend::cuda::CudaBackend::new(0) {
        Ok(b) => Some(b),
        Err(e) => {
            if std::env::var("CHROMAX_REQUIRE_CUDA").is_ok_and(|v| v == "1") {
                panic!("{test}: CHROMAX_REQUIRE_CUDA=1 but {e}");
            }
            say(&format!("{test}: skipped: no CUDA device ({e})"));
            None
        }
    }
}

/// The kernel emulator reporting `multiprocessors` SMs, or `None` after a visible skip line
/// when no C++20 compiler is here. With `CHROMAX_REQUIRE_EMULATOR=1` (as CI sets) a missing
/// compiler fails the test instead; a kernel that does not compile always does.
/// `CHROMAX_SKIP_EMULATOR=1` (the GPU kit, whose device minutes are scarce) skips it.
pub fn emulator_or_skip(
    test: &str,
    multiprocessors: usize,
) -> Option<chromax::backend::cuda::emulator::EmulatedBackend> {
    use chromax::error::BackendError;
    if std::env::var("CHROMAX_SKIP_EMULATOR").is_ok_and(|v| v == "1") {
        say(&format!("{test}: emulator skipped (CHROMAX_SKIP_EMULATOR=1)"));
        return None;
    }
    let required = std::env::var("CHROMAX_REQUIRE_EMULATOR").is_ok_and(|v| v == "1");
    match chromax::backend::cuda::emulator::EmulatedBackend::new(multiprocessors) {
        Ok(emu) => Some(emu),
        Err(BackendError::EmulatorUnavailable(why)) if !required => {
            say(&format!("{test}: skipped: {why}"));
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

/// The library's SplitMix64 with the helpers tests use: the same numbers on every platform.
pub struct Rng(chromax::rng::SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(chromax::rng::SplitMix64::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0.unit()
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0.uniform(lo, hi)
    }

    pub fn normal(&mut self) -> f64 {
        self.0.normal()
    }

    pub fn vec_f64(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    pub fn vec_f32(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi) as f32).collect()
    }

    /// 0/1 values, 1 with probability `p`.
    pub fn mask_f32(&mut self, n: usize, p: f64) -> Vec<f32> {
        (0..n).map(|_| if self.unit() < p { 1.0 } else { 0.0 }).collect()
    }
}

/// Asserts `|got − want| ≤ atol + rtol·|want|` element-wise; on failure prints the first
/// mismatches (index, both values) and the worst one, then panics.
pub fn assert_close<A: Copy + Into<f64>, B: Copy + Into<f64>>(what: &str, got: &[A], want: &[B], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let mut bad = Vec::new();
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w): (f64, f64) = (g.into(), w.into());
        let err = (g - w).abs();
        let excess = err - (atol + rtol * w.abs());
        if !(excess <= 0.0) {
            if bad.len() < 8 {
                bad.push(format!("  [{i}] got {g:.9e} want {w:.9e} (|diff| {err:.3e})"));
            }
            if excess.is_nan() || excess > worst.1 {
                worst = (i, if excess.is_nan() { f64::INFINITY } else { excess });
            }
        }
    }
    if !bad.is_empty() {
        panic!(
            "{what}: values differ beyond atol {atol:e} + rtol {rtol:e}·|want|; first mismatches:\n{}\n  worst at [{}]",
            bad.join("\n"),
            worst.0
        );
    }
}

/// Maximum of |a − b| / (|b| + floor), for reporting.
pub fn max_rel_err(a: &[f64], b: &[f64], floor: f64) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / (y.abs() + floor)).fold(0.0, f64::max)
}

/// A small SeqNet architecture (`--model-config`): 256 bp windows, 8 filters, a 4-wide
/// bottleneck; trains in seconds on the CPU.
#[allow(dead_code)]
pub const TINY_SEQ_MODEL: &str = r#"{"seq_len": 256, "stem_filters": 8, "stem_kernel": 9, "stem_pool": 2,
 "tower_filters": [8, 8], "tower_kernel": 5, "tower_pool": 2, "final_filters": 4,
 "bottleneck": 4, "dropout": 0.2, "bn_momentum": 0.9, "bn_eps": 0.001}"#;

/// The chromax binary: `$CHROMAX_BIN` where set (the GPU kit carries test binaries to a machine
/// without this build tree), else the one cargo built for these tests.
pub fn chromax_exe() -> std::path::PathBuf {
    std::env::var_os("CHROMAX_BIN").map_or_else(|| env!("CARGO_BIN_EXE_chromax").into(), Into::into)
}

/// The bundled test data: `$CHROMAX_TEST_DATA` where set (the GPU kit), else `tests/data` of
/// this source tree.
pub fn test_data() -> std::path::PathBuf {
    std::env::var_os("CHROMAX_TEST_DATA")
        .map_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data"), Into::into)
}

/// Runs the chromax binary in `cwd`.
pub fn run_chromax(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    std::process::Command::new(chromax_exe()).args(args).current_dir(cwd).output().expect("run chromax")
}

/// Runs a command that must fail: exit 1, no panic, every piece in stderr, and no new file in
/// `dir` (nothing half-written).
pub fn fails_cleanly(dir: &std::path::Path, args: &[&str], expect: &[&str]) {
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into())
            .collect();
        v.sort();
        v
    };
    let before = listing();
    let out = run_chromax(args, dir);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for piece in expect {
        assert!(stderr.contains(piece), "stderr lacks '{piece}':\n{stderr}");
    }
    assert_eq!(listing(), before, "files left behind by {args:?}");
}

/// Opens `html` in headless Chromium and checks it: no console message, and a screenshot
/// (saved to `png`) with at least 1% of its pixels drawn. Skips, saying so, without Chromium.
#[allow(dead_code)]
pub fn browser_opens_and_draws(html: &std::path::Path, png: &std::path::Path, test: &str) {
    let Some(log) = headless_chromium(html, png, test) else { return };
    assert!(!log.contains("CONSOLE") && !log.contains("Uncaught"), "{test}: console output: {log}");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).expect("screenshot")));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("frame");
    let px = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    let drawn = px.chunks(channels).filter(|p| p[..3].iter().any(|&v| v < 200)).count();
    assert!(drawn * 100 > px.len() / channels, "{test}: the screenshot is blank ({drawn} dark pixels)");
    say(&format!("{test}: chromium opened it, no console messages, screenshot drawn"));
}

/// Opens `html` from disk in headless Chromium (Debian's `chromium`) and saves a screenshot
/// to `png`; returns Chromium's log (console messages included), or None, saying so, where
/// no Chromium is installed.
#[allow(dead_code)]
pub fn headless_chromium(html: &std::path::Path, png: &std::path::Path, test: &str) -> Option<String> {
    let exe = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| std::process::Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()));
    let Some(exe) = exe else {
        say(&format!("{test}: browser part skipped: no chromium (Debian: apt-get install chromium)"));
        return None;
    };
    let url = format!("file://{}", html.canonicalize().expect("html path").display());
    let out = std::process::Command::new(exe)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1300,2400",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--screenshot={}", png.display()),
            &url,
        ])
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The convolution rows of the op table (tests/ops.rs): shape, whether it is a real-sized layer
/// (CUDA only: the emulator would take minutes), and why it is there. tests/conv_mma.rs runs
/// the same shapes with the tensor-core convolutions on.
pub fn op_table_convs() -> Vec<(chromax::backend::Conv1dParams, bool, &'static str)> {
    let conv = |batch, c_in, c_out, len, kernel, dilation| chromax::backend::Conv1dParams {
        batch,
        c_in,
        c_out,
        len,
        kernel,
        dilation,
    };
    vec![
        (conv(2, 15, 15, 60_000, 51, 8), true, "the denoiser's residual-block conv on one real interval"),
        (conv(2, 15, 15, 1500, 51, 8), false, "the denoiser's conv: several tiles, halo beyond the tile"),
        (conv(1, 3, 5, 1, 3, 1), false, "length 1"),
        (conv(2, 4, 3, 37, 51, 8), false, "length below the receptive field (401)"),
        (conv(3, 7, 9, 1000, 5, 3), false, "channel counts not multiples of the 16-channel tiles"),
        (conv(2, 15, 1, 700, 1, 1), false, "1×1 conv (the regression head)"),
        (conv(1, 1, 15, 2000, 51, 8), false, "one input channel (the first block's input)"),
        (conv(1, 5, 6, 777, 4, 2), false, "even kernel: padding one longer on the right"),
        (conv(1, 40, 20, 600, 9, 4), false, "more input channels than one shared-memory tile"),
        (conv(2, 24, 32, 67, 5, 1), false, "a SeqNet tower conv, short length (one position per thread)"),
        (
            conv(2, 20, 18, 200, 5, 1),
            false,
            "a 256-position tile (two per thread), 18 output channels: a partial second tile",
        ),
        (
            conv(1, 72, 33, 140, 3, 2),
            false,
            "two positions per thread with three 16-channel tiles, the last holding one",
        ),
        (conv(1, 3, 4, 300, 67, 1), false, "kernel 67: more weight-gradient tasks (4·K) than threads, two rounds"),
    ]
}

/// Pearson's r of two equally long series, in f64.
pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().map(|&v| v as f64).sum::<f64>() / n, b.iter().map(|&v| v as f64).sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa * sbb).sqrt()
}
