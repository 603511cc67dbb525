//! `chromax devices` answers on any machine: the CPU line, then either the CUDA devices or
//! one line saying why CUDA is not usable. Never a panic, exit code 0.

use std::process::Command;

#[test]
fn devices_lists_cpu_and_cuda_or_the_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_chromax")).arg("devices").output().expect("run chromax");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{stderr}", out.status.code());
    assert!(!stderr.contains("panicked"), "{stderr}");
    let first = stdout.lines().next().unwrap_or("");
    assert!(first.starts_with("cpu") && first.contains("threads") && first.contains("precision f32"), "{stdout}");
    // The unit bf16 products would run on (AMX's tiles or AVX512-BF16), where there is one.
    match chromax::backend::cpu::bf16_products_unit() {
        Some(unit) => assert!(first.contains(&format!("--precision bf16: {unit}")), "{stdout}"),
        None => assert!(!first.contains("bf16"), "{stdout}"),
    }
    let cuda_lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("cuda")).collect();
    assert!(!cuda_lines.is_empty(), "no CUDA line: {stdout}");
    // A device line says its default precision (bf16 from compute capability 8.0).
    let listed = cuda_lines.iter().any(|l| l.starts_with("cuda:0") && l.contains("compute") && l.contains("precision"));
    let reason = cuda_lines.iter().any(|l| l.starts_with("cuda    not usable: ") && l.len() > 30);
    assert!(listed || reason, "neither a device nor a reason: {stdout}");
}

#[test]
fn threads_flag_is_honoured_and_checked() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_chromax")).args(["--threads", "1", "devices"]).output().expect("run chromax");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cpu     1 threads"));
    let out =
        Command::new(env!("CARGO_BIN_EXE_chromax")).args(["--threads", "0", "devices"]).output().expect("run chromax");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads 0: give 1 to"));
}

#[test]
fn unknown_device_strings_are_rejected_with_what_is_accepted() {
    use chromax::backend::Device;
    assert_eq!("cpu".parse::<Device>().ok(), Some(Device::Cpu));
    assert_eq!("cuda".parse::<Device>().ok(), Some(Device::Cuda(0)));
    assert_eq!("CUDA:2".parse::<Device>().ok(), Some(Device::Cuda(2)));
    let err = "cuda:x".parse::<Device>().expect_err("not a device").to_string();
    assert!(err.contains("cuda:x") && err.contains("'cpu', 'cuda' or 'cuda:N'"), "{err}");
}
