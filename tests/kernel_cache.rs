//! The on-disk kernel cache: one file per (program, options, architecture, NVRTC version) and
//! kind (PTX, machine code), found again on the next use, in the directory
//! `CHROMAX_KERNEL_CACHE` names.

mod common;

use chromax::backend::cuda::compile::{
    cache_key, cached_image, cached_ptx, compile_options, nvrtc_available, nvrtc_missing_message, KernelImage,
    CACHE_DIR_ENV, LOAD_ENV,
};
use chromax::kernels::{kernel_file, kernel_program};

#[test]
fn ptx_is_cached_by_content_and_reused() {
    if !nvrtc_available() {
        if std::env::var("CHROMAX_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
            panic!("CHROMAX_REQUIRE_NVRTC=1 but {}", nvrtc_missing_message());
        }
        common::say(&format!("ptx_is_cached_by_content_and_reused: skipped: {}", nvrtc_missing_message()));
        return;
    }
    let dir = std::env::temp_dir().join(format!("chromax-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The only test in this binary, so setting the variable races with nothing.
    std::env::set_var(CACHE_DIR_ENV, &dir);
    let kernel = kernel_file("optim").expect("optim.cu is embedded");
    let list = || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    };

    let ptx = cached_ptx(kernel, "sm_90").expect("compiles");
    let files = list();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("optim-") && files[0].ends_with(".ptx") && files[0].len() == "optim-.ptx".len() + 32,
        "{files:?}"
    );
    assert_eq!(std::fs::read_to_string(dir.join(&files[0])).expect("readable"), ptx);

    // The second use reads the file: a marked copy comes back as it was written.
    let marked = format!("{ptx}\n// marked by the test\n");
    std::fs::write(dir.join(&files[0]), &marked).expect("writable");
    assert_eq!(cached_ptx(kernel, "sm_90").expect("cached"), marked);

    // Machine code (what the CUDA backend loads): an ELF file cached as <stem>-<key>.cubin and
    // read back on the next use; CHROMAX_CUDA_LOAD=ptx gives the cached PTX instead.
    let Ok(KernelImage::Cubin(cubin)) = cached_image(kernel, "sm_90") else {
        panic!("NVRTC 13 makes sm_90 machine code")
    };
    assert!(cubin.starts_with(b"\x7fELF"), "not an ELF file");
    let cubins: Vec<String> = list().into_iter().filter(|f| f.ends_with(".cubin")).collect();
    assert!(cubins.len() == 1 && cubins[0].starts_with("optim-"), "{cubins:?}");
    let mut marked_cubin = cubin.clone();
    marked_cubin.extend_from_slice(b"marked by the test");
    std::fs::write(dir.join(&cubins[0]), &marked_cubin).expect("writable");
    assert!(matches!(cached_image(kernel, "sm_90"), Ok(KernelImage::Cubin(c)) if c == marked_cubin));
    std::env::set_var(LOAD_ENV, "ptx");
    assert!(matches!(cached_image(kernel, "sm_90"), Ok(KernelImage::Ptx(p)) if p == marked));
    std::env::remove_var(LOAD_ENV);
    assert_eq!(list().len(), 2);

    // Another architecture is another entry.
    let other = cached_ptx(kernel, "sm_80").expect("compiles for sm_80");
    assert!(other.contains(".target sm_80"));
    assert_eq!(list().len(), 3);

    // The key covers the program text, the options and the architecture.
    let program = kernel_program(kernel);
    let opts = compile_options("sm_90");
    let key = cache_key(&program, &opts, "sm_90");
    assert_ne!(key, cache_key(&format!("{program} "), &opts, "sm_90"));
    assert_ne!(key, cache_key(&program, &[opts.clone(), vec!["--use_fast_math".into()]].concat(), "sm_90"));
    assert_ne!(key, cache_key(&program, &opts, "sm_89"));
    let _ = std::fs::remove_dir_all(&dir);
}
