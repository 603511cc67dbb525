//! Replays what fuzzing kept through the code libFuzzer runs: every input in
//! `fuzz/regressions/<target>/` (each crashed chromax once, by a panic, an abort or a runaway
//! allocation, and must now end normally) and every seed in `fuzz/seeds/<target>/`. The
//! targets' bodies are `fuzz/src/lib.rs`'s `targets` module, included here as it is.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod chromax_fuzz;

mod common;

use std::path::Path;

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.expect("entry").path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

#[test]
fn every_kept_crash_and_every_seed_is_read_without_crashing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let known: Vec<&str> = chromax_fuzz::targets::ALL.iter().map(|(name, _)| *name).collect();
    // A directory of regressions or seeds for a target the list does not have would never be
    // replayed: refuse it.
    for kind in ["regressions", "seeds"] {
        for entry in std::fs::read_dir(root.join(kind)).expect("fuzz directory") {
            let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
            assert!(known.contains(&name.as_str()), "fuzz/{kind}/{name} is not a target's directory");
        }
    }
    let (mut crashes, mut seeds) = (0, 0);
    for (name, run) in chromax_fuzz::targets::ALL {
        for path in inputs(&root.join("regressions").join(name)) {
            // A panic fails this test with the input named; an abort ends the process.
            eprintln!("{name}: {}", path.display());
            run(&std::fs::read(&path).expect("regression"));
            crashes += 1;
        }
        let seed_files = inputs(&root.join("seeds").join(name));
        assert!(!seed_files.is_empty(), "fuzz/seeds/{name} holds no seed");
        for path in seed_files {
            run(&std::fs::read(&path).expect("seed"));
            seeds += 1;
        }
        let _ = std::fs::remove_dir_all(chromax_fuzz::scratch_dir(name));
    }
    assert!(crashes >= 6, "only {crashes} kept crashes found under fuzz/regressions");
    common::say(&format!(
        "fuzz regressions: {crashes} kept crashes and {seeds} seeds of {} targets replayed",
        known.len()
    ));
}
