//! A training run's directory: what it holds, how a run is opened fresh or resumed (strictly),
//! and how each epoch is committed.
//!
//! Besides the model files of [`crate::models::checkpoint`] (`config.json`, and
//! `model.safetensors`: the best epoch's weights), a run writes `last.safetensors` (the last
//! epoch's weights, Adam's moments as `adam.m.*` / `adam.v.*`, and the [`TrainState`] in the
//! header: one file, one rename, so weights, moments and counters always belong together),
//! `state.json` (the same state, for people), `train_log.tsv` and the task's own files
//! (`cells.tsv`, `peaks.bed` for single-cell runs), each written atomically.

use super::lock::RunLock;
use crate::backend::Backend;
use crate::error::FileError;
use crate::io::atomic::write_atomically;
use crate::io::guard::Files;
use crate::io::json::{read_json, write_json};
use crate::io::safetensors::{read_tensor_metadata, read_tensors, write_tensors, write_tensors_with_metadata, Tensors};
use crate::io::text::write_lines;
use crate::models::checkpoint::{weight_tensors, CONFIG_FILE, MODEL_FILE};
use crate::nn::{download_f32, Module};
use crate::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const LAST_FILE: &str = "last.safetensors";
pub const STATE_FILE: &str = "state.json";
pub const LOG_FILE: &str = "train_log.tsv";
/// The key of the training state in `last.safetensors`' header.
const STATE_KEY: &str = "chromax.train_state";
/// Names of Adam's moments in `last.safetensors`: `adam.m.<param>`, `adam.v.<param>`.
pub const MOMENT_PREFIXES: [&str; 2] = ["adam.m.", "adam.v."];

/// Where training stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: u64,
    /// The monitored value of the best epoch so far.
    pub best_metric: Option<f64>,
    pub best_epoch: Option<usize>,
    /// Epochs since the last improvement.
    #[serde(default)]
    pub wait: usize,
    #[serde(default)]
    pub stopped_early: bool,
}

impl TrainState {
    fn new() -> Self {
        TrainState { epoch: 0, step: 0, best_metric: None, best_epoch: None, wait: 0, stopped_early: false }
    }
}

/// What identifies a run, so that `--resume` continues only the same one.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// `config.json` as written: `format`, the architecture and other model facts at the top
    /// level, the settings under `training` and the inputs' SHA-256 under `inputs`;
    /// `created_by` is not compared.
    config_text: String,
    /// The same, parsed back, as a resume compares it with the saved file.
    config: Value,
    /// Settings a resumed run may change (e.g. `epochs`).
    resumable: &'static [&'static str],
    /// Settings that name input files: compared by the content under `inputs`, not by name.
    input_paths: &'static [&'static str],
    /// The task's own files (name, lines), written at the start and equal on resume.
    files: Vec<(&'static str, Vec<String>)>,
}

impl RunSpec {
    /// The spec of a run whose `config.json` is `config`.
    pub fn new(
        config: &impl Serialize,
        resumable: &'static [&'static str],
        input_paths: &'static [&'static str],
        files: Vec<(&'static str, Vec<String>)>,
    ) -> Result<RunSpec, FileError> {
        let bad = |e: serde_json::Error| FileError::Argument(format!("the run's configuration: {e}"));
        // Written and compared as text parsed back, so that the file and this spec agree
        // exactly (an f32 setting reads back as the decimal the file holds).
        let config_text = serde_json::to_string_pretty(config).map_err(bad)?;
        let config = serde_json::from_str(&config_text).map_err(bad)?;
        Ok(RunSpec { config_text, config, resumable, input_paths, files })
    }
}

/// Refuses a run directory among whose files (those of every run, and the task's own) is a
/// file the run reads; call it before reading anything.
pub fn check_run_files(dir: &Path, task_files: &[&str], reads: Files<'_>) -> Result<(), FileError> {
    let every_run = [CONFIG_FILE, MODEL_FILE, LAST_FILE, STATE_FILE, LOG_FILE, super::lock::LOCK_FILE];
    reads.outputs("-o", every_run.iter().chain(task_files).map(|f| dir.join(f))).check()
}

/// An open run directory: locked for this process, with the state to continue from.
pub struct Run {
    dir: PathBuf,
    _lock: RunLock,
    pub state: TrainState,
    log: Vec<String>,
    /// The last checkpoint's tensors, when resuming.
    resumed: Option<Tensors>,
}

impl Run {
    /// Opens `dir` for a new run, or with `resume` for continuing the run in it, and locks
    /// it. A new run refuses a directory that holds one; a resume refuses a directory without
    /// one, or with other settings, architecture or input data, naming what differs. Writes
    /// nothing: [`Run::begin`] does, once the caller has loaded what it needs.
    pub fn open(dir: &Path, spec: &RunSpec, resume: bool, log_header: &str) -> Result<Run, Error> {
        let no_run = || {
            FileError::content(
                dir,
                "--resume: no training run to continue here (no last.safetensors: no epoch has finished)",
            )
        };
        if resume && !dir.is_dir() {
            return Err(no_run().into());
        }
        std::fs::create_dir_all(dir).map_err(FileError::io(dir))?;
        // The lock first: a run still in its first epoch is named, not taken for no run.
        let lock = RunLock::acquire(dir)?;
        let mut run = Run { dir: dir.to_path_buf(), _lock: lock, state: TrainState::new(), log: vec![], resumed: None };
        if resume {
            if !dir.join(LAST_FILE).is_file() {
                return Err(no_run().into());
            }
            run.check_same_run(spec)?;
            let last = dir.join(LAST_FILE);
            let meta = read_tensor_metadata(&last)?;
            run.state = meta.get(STATE_KEY).and_then(|j| serde_json::from_str(j).ok()).ok_or_else(|| {
                FileError::content(
                    &last,
                    "no training state in the checkpoint's header (written by an older chromax?): it cannot be resumed; start a new run",
                )
            })?;
            run.resumed = Some(read_tensors(&last)?);
            let text = std::fs::read_to_string(dir.join(LOG_FILE)).unwrap_or_default();
            run.log = text.lines().take(run.state.epoch + 1).map(String::from).collect();
        } else if let Some(f) = [LAST_FILE, STATE_FILE, MODEL_FILE].into_iter().find(|f| dir.join(f).exists()) {
            return Err(FileError::content(
                dir,
                format!("already holds a training run ({f}): continue it with --resume, or choose another -o"),
            )
            .into());
        }
        if run.log.len() != run.state.epoch + 1 {
            run.log = vec![log_header.to_string()]; // a lost log restarts; the model state is what matters
        }
        Ok(run)
    }

    /// Writes `config.json` and the task's files: the run begins (or continues) here.
    pub fn begin(&self, spec: &RunSpec) -> Result<(), Error> {
        write_atomically(self.path(CONFIG_FILE), |w| writeln!(w, "{}", spec.config_text))?;
        for (name, lines) in &spec.files {
            write_lines(&self.path(name), lines)?;
        }
        Ok(())
    }

    /// Refuses to resume a run of another format, architecture, settings, inputs or files.
    /// Keys are compared both ways: one added or removed is a difference too.
    fn check_same_run(&self, spec: &RunSpec) -> Result<(), FileError> {
        let path = self.dir.join(CONFIG_FILE);
        let saved: Value = read_json(&path, "chromax model config")?;
        let refuse = |what: String| Err(FileError::content(&path, format!("--resume: {what}")));
        if saved.get("inputs").is_none() {
            return refuse(
                "this run was written by an older chromax that did not record its inputs' content, so \
                 resuming it cannot be checked; start a new run"
                    .into(),
            );
        }
        let model = |v: &Value| -> Value {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                for key in ["training", "inputs", "created_by"] {
                    o.remove(key);
                }
            }
            v
        };
        if let Some((at, was, is)) = first_difference("", &model(&saved), &model(&spec.config)) {
            return refuse(format!(
                "the run in this directory has {at} = {was}, this command asks for {is}: resume with the same model"
            ));
        }
        let section = |v: &Value, key: &str| v.get(key).cloned().unwrap_or(Value::Null);
        let (was, is) = (section(&saved, "training"), section(&spec.config, "training"));
        for key in keys(&was, &is) {
            if spec.resumable.contains(&key.as_str()) || spec.input_paths.contains(&key.as_str()) {
                continue;
            }
            if was.get(&key) != is.get(&key) {
                let show = |v: Option<&Value>| v.map_or("absent".to_string(), Value::to_string);
                return refuse(format!(
                    "setting '{key}' was {} in this run and is {} now; resume with the same settings (only {} may change)",
                    show(was.get(&key)),
                    show(is.get(&key)),
                    spec.resumable.join(", ")
                ));
            }
        }
        let (was, is) = (section(&saved, "inputs"), section(&spec.config, "inputs"));
        for name in keys(&was, &is) {
            let short = |v: &Value| format!("{:.12}…", v.as_str().unwrap_or(""));
            let what = match (was.get(&name), is.get(&name)) {
                (Some(a), Some(b)) if a == b => continue,
                (Some(a), Some(b)) => format!(
                    "the {name} is not the data this run was trained on (content SHA-256 {}, the run's {})",
                    short(b),
                    short(a)
                ),
                (Some(_), None) => format!("the run was trained with a {name}, which this command does not give"),
                (None, _) => format!("this command gives a {name}, which the run was not trained with"),
            };
            return refuse(format!("{what}: resume with the same inputs"));
        }
        for (name, lines) in &spec.files {
            let same = std::fs::read_to_string(self.dir.join(name))
                .map(|t| t.lines().eq(lines.iter().map(String::as_str)))
                .unwrap_or(false);
            if !same {
                return refuse(format!(
                    "this data's {name} differs from the run's: resume with the same inputs, filters and splits"
                ));
            }
        }
        Ok(())
    }

    /// The last checkpoint's tensors, once, when resuming.
    pub(crate) fn take_resumed(&mut self) -> Option<Tensors> {
        self.resumed.take()
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Commits a finished epoch: `model.safetensors` when it is the best so far, then
    /// `last.safetensors` with the moments and the state, `state.json` and the log line.
    pub(crate) fn commit_epoch<B: Backend, M: Module<B>>(
        &mut self,
        backend: &B,
        net: &M,
        moments: &[(B::Buf, B::Buf)],
        best: bool,
        log_line: String,
    ) -> Result<(), Error> {
        // One download per epoch: the best model is the last checkpoint without the moments.
        let mut last = weight_tensors(backend, net)?;
        if best {
            write_tensors(&self.path(MODEL_FILE), &last)?;
        }
        for (p, (m, v)) in net.params().iter().zip(moments) {
            for (prefix, buf) in MOMENT_PREFIXES.iter().zip([m, v]) {
                last.insert(format!("{prefix}{}", p.name), (p.shape.clone(), download_f32(backend, buf)?));
            }
        }
        let state = serde_json::to_string(&self.state).map_err(|e| FileError::Argument(e.to_string()))?;
        write_tensors_with_metadata(&self.path(LAST_FILE), &last, Some([(STATE_KEY.to_string(), state)].into()))?;
        write_json(&self.path(STATE_FILE), &self.state)?; // for people; resume reads the header
        self.log.push(log_line);
        write_lines(&self.path(LOG_FILE), &self.log)?;
        Ok(())
    }
}

/// The keys of two JSON objects (either may lack some), in order, each once.
fn keys(a: &Value, b: &Value) -> Vec<String> {
    let mut all: Vec<String> = [a, b].iter().filter_map(|v| v.as_object()).flat_map(|o| o.keys().cloned()).collect();
    all.sort();
    all.dedup();
    all
}

/// The first place two JSON values differ, as (dotted path below `at`, was, is), or `None`;
/// a key on one side only differs from its absence on the other.
fn first_difference(at: &str, was: &Value, is: &Value) -> Option<(String, String, String)> {
    match (was, is) {
        (Value::Object(_), Value::Object(_)) => keys(was, is).into_iter().find_map(|k| {
            let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
            first_difference(&path, was.get(&k).unwrap_or(&Value::Null), is.get(&k).unwrap_or(&Value::Null))
        }),
        _ if was == is => None,
        _ => Some((at.to_string(), was.to_string(), is.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_found_where_they_are() {
        let a: Value = serde_json::json!({"reg_filters": 8, "kernel": {"size": 5}});
        let b: Value = serde_json::json!({"reg_filters": 8, "kernel": {"size": 7}});
        assert_eq!(first_difference("model", &a, &a), None);
        assert_eq!(first_difference("model", &a, &b), Some(("model.kernel.size".into(), "5".into(), "7".into())));
        // A key on one side only is a difference, either way round.
        let c: Value = serde_json::json!({"reg_filters": 8});
        assert_eq!(first_difference("", &a, &c), Some(("kernel".into(), r#"{"size":5}"#.into(), "null".into())));
        assert_eq!(first_difference("", &c, &a), Some(("kernel".into(), "null".into(), r#"{"size":5}"#.into())));
    }
}
