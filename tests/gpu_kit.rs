//! The GPU kit's dry run: `.ci/gpu-pack` packs the binaries these tests were built with, and
//! `.ci/gpu-run` runs that kit from a copy in another directory, with cargo off the PATH and
//! no GPU. It must complete, say visibly what it skipped, run every CUDA test the kit names,
//! and leave exactly its two files in $OUT.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The newest test executable `<stem>-<hash>` beside this one (cargo builds every test binary
/// before it runs any).
fn sibling_test_binary(stem: &str) -> PathBuf {
    let me = std::env::current_exe().expect("this test's path");
    let deps = me.parent().expect("deps directory");
    let prefix = format!("{stem}-");
    std::fs::read_dir(deps)
        .expect("read deps")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.strip_prefix(&prefix).is_some_and(|h| h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("no {prefix}* test binary in {}", deps.display()))
}

/// The CUDA tests as the kit lists them: (test file stem, test name) for every
/// `cuda_or_skip` call with a literal name in tests/*.rs (as .ci/gpu-pack finds them).
fn cuda_tests(repo: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(repo.join("tests")).expect("tests/").filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
        let text = std::fs::read_to_string(&path).expect("test source");
        for part in text.split("cuda_or_skip(\"").skip(1) {
            if let Some(name) = part.split('"').next() {
                found.push((stem.clone(), name.to_string()));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// PATH without any directory that holds cargo or rustc.
fn path_without_cargo() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<PathBuf> =
        std::env::split_paths(&path).filter(|d| !d.join("cargo").exists() && !d.join("rustc").exists()).collect();
    std::env::join_paths(kept).expect("join PATH").to_string_lossy().into_owned()
}

#[test]
fn the_gpu_kit_runs_from_a_copy_without_cargo_or_gpu() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tests = cuda_tests(repo);
    assert!(tests.len() >= 6, "the kit should carry the op and model parity tests: {tests:?}");
    let tmp = std::env::temp_dir().join(format!("chromax-kit-dry-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (bins, root, out) = (tmp.join("bins"), tmp.join("elsewhere"), tmp.join("out"));
    for d in [&bins, &root.join(".ci"), &out] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::copy(common::chromax_exe(), bins.join("chromax")).expect("copy chromax");
    let mut stems: Vec<&str> = tests.iter().map(|(s, _)| s.as_str()).collect();
    stems.dedup();
    for stem in &stems {
        std::fs::copy(sibling_test_binary(stem), bins.join(format!("test-{stem}"))).expect("copy test binary");
    }

    // Pack (xz's fastest level: this is about the kit's contents, not its size).
    let pack = Command::new("bash")
        .arg(repo.join(".ci/gpu-pack"))
        .arg(&bins)
        .arg(root.join(".device"))
        .env("XZ_OPT", "-0")
        .output()
        .expect("run gpu-pack");
    let said = String::from_utf8_lossy(&pack.stdout).to_string() + &String::from_utf8_lossy(&pack.stderr);
    assert!(pack.status.success(), "gpu-pack failed:\n{said}");
    assert!(said.contains(&format!("{} CUDA tests", tests.len())), "{said}");

    // The copy holds what travels: the script, the kit and the test data; no build tree.
    std::fs::copy(repo.join(".ci/gpu-run"), root.join(".ci/gpu-run")).expect("copy gpu-run");
    std::fs::create_dir_all(root.join("tests")).expect("mkdir tests");
    std::os::unix::fs::symlink(common::test_data(), root.join("tests/data")).expect("link data");
    let path = path_without_cargo();
    let which = Command::new("bash").args(["-c", "command -v cargo rustc"]).env("PATH", &path).output().expect("bash");
    assert!(!which.status.success(), "cargo is still on the PATH: {}", String::from_utf8_lossy(&which.stdout));

    let run = Command::new("bash")
        .arg(".ci/gpu-run")
        .current_dir(&root)
        .env("PATH", &path)
        .env("OUT", &out)
        .env("CHROMAX_KIT_DRY_RUN", "1")
        .env("CUDA_VISIBLE_DEVICES", "")
        .env_remove("CHROMAX_REQUIRE_CUDA")
        .env_remove("CHROMAX_REQUIRE_EMULATOR")
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .expect("run gpu-run");
    let said = String::from_utf8_lossy(&run.stdout).to_string() + &String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "gpu-run failed:\n{said}");

    let mut left: Vec<String> = std::fs::read_dir(&out)
        .expect("OUT")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["logs.tar.gz", "summary.md"], "{said}");

    let summary = std::fs::read_to_string(out.join("summary.md")).expect("summary");
    for stem in &stems {
        assert!(summary.contains(&format!("| test-{stem} | ok |")), "test-{stem} not ok:\n{summary}");
    }
    assert!(summary.contains("| devices | ok |"), "{summary}");
    for bench in ["bench-conv1d", "bench-denoise", "bench-sc-100k", "bench-sc-atlas"] {
        assert!(summary.contains(&format!("| {bench} | skipped: no GPU |")), "{bench}:\n{summary}");
    }
    assert!(summary.contains("every step passed or skipped"), "{summary}");

    // Every CUDA test ran and said it skipped, in the logs the archive brings back.
    let logs = tmp.join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let untar =
        Command::new("tar").arg("-xzf").arg(out.join("logs.tar.gz")).arg("-C").arg(&logs).output().expect("tar");
    assert!(untar.status.success(), "{}", String::from_utf8_lossy(&untar.stderr));
    for stem in &stems {
        let log = std::fs::read_to_string(logs.join(format!("logs/test-{stem}.log"))).expect("test log");
        let names: Vec<&String> = tests.iter().filter(|(s, _)| s == stem).map(|(_, n)| n).collect();
        assert!(log.contains(&format!("test result: ok. {} passed", names.len())), "test-{stem}:\n{log}");
        for name in names {
            assert!(log.contains(&format!("test {name} ...")), "{name} did not run:\n{log}");
            assert!(log.contains(&format!("{name}: skipped: no CUDA device")), "{name} did not say it skipped:\n{log}");
        }
    }
    let devices = std::fs::read_to_string(logs.join("logs/devices.log")).expect("devices log");
    assert!(devices.contains("cuda    not usable"), "{devices}");
    let _ = std::fs::remove_dir_all(&tmp);
}
