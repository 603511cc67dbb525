//! The training loop's run directory, on the denoiser (the single-cell trainer shares the
//! loop; its resume is tested in tests/cli_sc.rs): resume refused on an empty or missing
//! directory, a missing training state, a changed setting or a different input track (by
//! content: the same bytes under another name resume); a second trainer into a locked
//! directory refused, naming the running one; a killed trainer's directory resumable with no
//! clean-up.

use chromax::backend::cpu::CpuBackend;
use chromax::denoise::train::{train, BestMetric, TrackPair, TrainOptions};
use chromax::models::DenoiseConfig;
use chromax::train::lock::RunLock;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chromax-runs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::env::set_var(chromax::store::CACHE_DIR_ENV, std::env::temp_dir().join("chromax-runs-cache"));
    dir
}

/// Two chromosomes of patterned coverage (the noisy track `seed`-dependent), peaks on both.
fn inputs(dir: &Path, seed: u64) {
    std::fs::write(dir.join("g.sizes"), "c\t60000\nv\t20000\n").expect("sizes");
    let track = |scale: u64| {
        let mut s = String::new();
        for (chrom, len) in [("c", 60_000u64), ("v", 20_000)] {
            for start in (0..len).step_by(500) {
                let value = (start / 500 * 7 + scale) % 13;
                s.push_str(&format!("{chrom}\t{start}\t{}\t{value}\n", start + 500));
            }
        }
        s
    };
    std::fs::write(dir.join("noisy.bedGraph"), track(seed)).expect("noisy");
    std::fs::write(dir.join("clean.bedGraph"), track(100)).expect("clean");
    std::fs::write(dir.join("peaks.bed"), "c\t1000\t2000\nc\t30000\t31000\nv\t500\t900\n").expect("peaks");
}

fn options(dir: &Path, epochs: usize) -> TrainOptions {
    TrainOptions {
        pairs: vec![TrackPair {
            noisy: dir.join("noisy.bedGraph"),
            clean: dir.join("clean.bedGraph"),
            peaks: dir.join("peaks.bed"),
        }],
        genome: dir.join("g.sizes"),
        val_chroms: vec!["v".into()],
        interval: 10_000,
        pad: 100,
        batch: 2,
        epochs,
        best_metric: BestMetric::Loss,
        model: DenoiseConfig {
            in_channels: 1,
            reg_blocks: 1,
            reg_filters: 4,
            reg_kernel: 5,
            reg_dilation: 1,
            cls_blocks: 1,
            cls_filters: 4,
            cls_kernel: 5,
            cls_dilation: 1,
        },
        ..TrainOptions::default()
    }
}

fn refused(result: Result<Vec<chromax::denoise::train::EpochRecord>, chromax::Error>, needles: &[&str]) {
    let err = result.expect_err("refused").to_string();
    assert!(needles.iter().all(|n| err.contains(n)), "{err} should name {needles:?}");
}

#[test]
fn denoise_resume_is_strict() {
    let cpu = CpuBackend::new();
    let quiet = &mut |_| {};
    let dir = scratch("strict");
    inputs(&dir, 0);
    let run = dir.join("run");
    train(&cpu, &options(&dir, 1), &run, false, quiet).expect("one epoch");
    let (last, config) = (std::fs::read(run.join("last.safetensors")), std::fs::read(run.join("config.json")));

    // Nothing to resume: an empty directory, a missing one (not created by the attempt).
    std::fs::create_dir_all(dir.join("empty")).expect("dir");
    refused(train(&cpu, &options(&dir, 2), &dir.join("empty"), true, quiet), &["no training run"]);
    refused(train(&cpu, &options(&dir, 2), &dir.join("missing"), true, quiet), &["no training run"]);
    assert!(!dir.join("missing").exists());

    // A changed setting, named, and nothing written.
    refused(
        train(&cpu, &TrainOptions { batch: 3, ..options(&dir, 2) }, &run, true, quiet),
        &["setting 'batch'", "2", "3"],
    );
    let other_model =
        TrainOptions { model: DenoiseConfig { reg_filters: 5, ..options(&dir, 2).model }, ..options(&dir, 2) };
    refused(train(&cpu, &other_model, &run, true, quiet), &["model.reg_filters", "4", "5"]);
    // A different noisy track (other content under another name).
    std::fs::rename(dir.join("noisy.bedGraph"), dir.join("noisy-orig.bedGraph")).expect("move");
    inputs(&dir, 5);
    std::fs::rename(dir.join("noisy.bedGraph"), dir.join("noisy-other.bedGraph")).expect("move");
    let mut other = options(&dir, 2);
    other.pairs[0].noisy = dir.join("noisy-other.bedGraph");
    refused(train(&cpu, &other, &run, true, quiet), &["noisy track 1", "not the data this run was trained on"]);
    assert_eq!(std::fs::read(run.join("last.safetensors")).ok(), last.ok(), "a refused resume writes nothing");
    assert_eq!(std::fs::read(run.join("config.json")).ok(), config.ok());

    // The same content under another name is the same input; the state lives in
    // last.safetensors, so a deleted state.json does not matter.
    std::fs::remove_file(run.join("state.json")).expect("rm");
    let mut renamed = options(&dir, 2);
    renamed.pairs[0].noisy = dir.join("noisy-orig.bedGraph");
    let records = train(&cpu, &renamed, &run, true, quiet).expect("resume");
    assert_eq!(records.iter().map(|r| r.epoch).collect::<Vec<_>>(), [2]);

    // An input left out is a different input too.
    let mut two = renamed.clone();
    two.pairs.push(two.pairs[0].clone());
    refused(train(&cpu, &two, &run, true, quiet), &["this command gives a clean track 2", "not trained with"]);

    // A resume that fails while loading the checkpoint (an optimiser tensor missing) writes
    // nothing: config.json still says what the run is.
    let config = std::fs::read(run.join("config.json")).expect("config");
    let last = run.join("last.safetensors");
    let meta = chromax::io::safetensors::read_tensor_metadata(&last).expect("header");
    let mut tensors = chromax::io::safetensors::read_tensors(&last).expect("tensors");
    let name = tensors.keys().find(|k| k.starts_with("adam.m.")).expect("a moment").clone();
    tensors.remove(&name);
    chromax::io::safetensors::write_tensors_with_metadata(&last, &tensors, Some(meta)).expect("write");
    let more = TrainOptions { epochs: 7, ..renamed.clone() };
    refused(train(&cpu, &more, &run, true, quiet), &["no optimiser state", &name]);
    assert_eq!(std::fs::read(run.join("config.json")).expect("config"), config, "a failed resume wrote config.json");

    // A checkpoint without the training state in its header cannot be resumed; a missing one
    // is no run at all; a new run does not overwrite a directory that holds one.
    std::fs::copy(run.join("model.safetensors"), run.join("last.safetensors")).expect("copy");
    refused(train(&cpu, &renamed, &run, true, quiet), &["no training state"]);
    std::fs::remove_file(run.join("last.safetensors")).expect("rm");
    refused(train(&cpu, &renamed, &run, true, quiet), &["no training run"]);
    refused(train(&cpu, &renamed, &run, false, quiet), &["already holds a training run", "--resume"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_locked_directory_refuses_a_second_trainer() {
    let cpu = CpuBackend::new();
    let dir = scratch("locked");
    inputs(&dir, 0);
    let run = dir.join("run");
    std::fs::create_dir_all(&run).expect("dir");
    let held = RunLock::acquire(&run).expect("lock");
    let pid = format!("pid {}", std::process::id());
    refused(train(&cpu, &options(&dir, 1), &run, false, &mut |_| {}), &["another training run", &pid]);
    assert!(!run.join("config.json").exists(), "the refused run wrote nothing");
    drop(held);
    train(&cpu, &options(&dir, 1), &run, false, &mut |_| {}).expect("free again");
    assert!(!run.join("train.lock").exists(), "a finished run removes its lock file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_trainer_leaves_a_resumable_directory() {
    let dir = scratch("killed");
    inputs(&dir, 0);
    let chromax = env!("CARGO_BIN_EXE_chromax");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "denoise",
            "train",
            "--noisy",
            "noisy.bedGraph",
            "--clean",
            "clean.bedGraph",
            "--peaks",
            "peaks.bed",
            "-g",
            "g.sizes",
            "--val-chrom",
            "v",
            "--interval",
            "10000",
            "--pad",
            "100",
            "--batch",
            "2",
            "--blocks",
            "1",
            "--filters",
            "4",
            "--kernel",
            "5",
            "--dilation",
            "1",
            "--cls-blocks",
            "1",
            "--cls-filters",
            "4",
            "--cls-kernel",
            "5",
            "--cls-dilation",
            "1",
            "--device",
            "cpu",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let mut child = Command::new(chromax)
        .args(args(&["--epochs", "100000", "-o", "run"]))
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a trainer");
    // Wait for its first checkpoint.
    let started = std::time::Instant::now();
    while !dir.join("run/last.safetensors").exists() {
        assert!(started.elapsed().as_secs() < 120, "the trainer wrote no checkpoint in two minutes");
        assert!(child.try_wait().expect("wait").is_none(), "the trainer stopped early");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A second trainer into the same directory is refused at once, naming the first.
    let second = Command::new(chromax)
        .args(args(&["--epochs", "3", "--resume", "run"]))
        .current_dir(&dir)
        .output()
        .expect("run");
    let msg = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{msg}");
    assert!(msg.contains("another training run") && msg.contains(&format!("pid {}", child.id())), "{msg}");
    // Killed without warning: the lock dies with the process, the checkpoint stays whole.
    child.kill().expect("kill");
    child.wait().expect("reap");
    assert!(dir.join("run/train.lock").exists(), "a killed run leaves its lock file behind");
    // The state committed with the last checkpoint (state.json may lag it by a kill).
    let meta = chromax::io::safetensors::read_tensor_metadata(&dir.join("run/last.safetensors")).expect("header");
    let state: serde_json::Value = serde_json::from_str(&meta["chromax.train_state"]).expect("state");
    let done = state["epoch"].as_u64().expect("epoch") as usize;
    let epochs = (done + 1).to_string();
    let out = Command::new(chromax)
        .args(args(&["--epochs", &epochs, "--resume", "run"]))
        .current_dir(&dir)
        .output()
        .expect("resume");
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{msg}");
    assert!(msg.contains(&format!("resuming after epoch {done}")), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}
