//! The one training loop, for every task: epochs of steps with Adam, the best model and early
//! stopping by a monitored value, checkpoints committed each epoch, strict resume, a locked
//! output directory, the log and progress events.
//!
//! A task ([`Task`]) is its data, a step function and its metrics: the denoiser's
//! ([`crate::denoise::train`]) and SeqNet's ([`crate::sc::train`]). [`fit`] does the rest.
//! Resuming continues exactly: a run stopped after any epoch and resumed ends with the same
//! bytes as one that never stopped (tested for both tasks).

pub mod checkpoint;
pub mod lock;

use crate::backend::{AdamParams, AdamStep, Backend};
use crate::error::FileError;
use crate::models::checkpoint::{finite, load_weights};
use crate::nn::{upload_f32, Module};
use crate::Error;
pub use checkpoint::{check_run_files, Run, RunSpec, TrainState, LAST_FILE, LOG_FILE, MOMENT_PREFIXES, STATE_FILE};
use std::path::Path;
use std::time::Instant;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The loss of the batch (before the update).
    pub loss: f64,
    /// Work done, in the task's unit (bases, peaks), for the throughput.
    pub units: u64,
}

/// What an epoch's steps amounted to, for the task's record.
#[derive(Debug, Clone, Copy)]
pub struct EpochSummary {
    /// 1-based.
    pub epoch: usize,
    pub batches: usize,
    pub mean_loss: f64,
    pub units: u64,
    pub started: Instant,
    /// Seconds of training steps (validation not included).
    pub train_seconds: f64,
}

/// One line of `train_log.tsv`.
pub trait EpochRecord: Clone {
    /// The log's header line.
    fn header() -> &'static str;
    fn line(&self) -> String;
    fn mark_best(&mut self, best: bool);
}

/// The training batches of one epoch, in order.
pub struct Epoch<'a, Batch> {
    pub total: usize,
    pub batches: Box<dyn Iterator<Item = Result<Batch, Error>> + 'a>,
}

/// A training task: its batches, its step and its metrics.
pub trait Task<B: Backend> {
    type Net: Module<B>;
    type Batch;
    /// Training metrics gathered over an epoch's steps.
    type Metrics: Default;
    type Record: EpochRecord;

    /// The batches of epoch `epoch` (0-based).
    fn epoch(&self, backend: &B, epoch: usize) -> Result<Epoch<'_, Self::Batch>, Error>;

    /// Forward, loss and backward of one batch, leaving the gradients in the net's
    /// parameters; `step` is the 1-based number of the optimiser step that follows.
    fn step(
        &self,
        backend: &B,
        net: &mut Self::Net,
        batch: Self::Batch,
        step: u64,
        metrics: &mut Self::Metrics,
    ) -> Result<Step, Error>;

    /// Validation and the epoch's record, with the value the [`Monitor`] watches.
    fn finish_epoch(
        &self,
        backend: &B,
        net: &mut Self::Net,
        metrics: Self::Metrics,
        summary: &EpochSummary,
    ) -> Result<(Self::Record, f64), Error>;

    /// The gradient term `wd·θ` Adam adds for the parameter of this name (an L2 penalty
    /// λ·Σθ² on it is wd = 2λ); none by default.
    fn weight_decay(&self, _param: &str) -> f32 {
        0.0
    }
}

/// How the best epoch is picked and when training stops early.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Monitor {
    pub higher_is_better: bool,
    /// An epoch is better only by more than this.
    pub min_delta: f64,
    /// Stop after this many epochs without one (never with `None`).
    pub patience: Option<usize>,
}

impl Monitor {
    /// Whether `value` improves on the best so far (a non-finite value never does).
    pub fn improves(&self, value: f64, best: Option<f64>) -> bool {
        value.is_finite()
            && best.is_none_or(|old| {
                if self.higher_is_better {
                    value - self.min_delta > old
                } else {
                    value + self.min_delta < old
                }
            })
    }
}

/// The loop's own settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    pub epochs: usize,
    /// Adam's settings; the step count is the loop's.
    pub adam: AdamParams,
    pub monitor: Monitor,
    /// Stop once the run has taken this many steps, before the epoch's validation and
    /// without writing a checkpoint (benchmarks: training's rate on data whose epoch is long).
    pub max_steps: Option<u64>,
}

/// What the loop reports as it goes: `S` is the task's summary of its data, `R` its record.
#[derive(Debug, Clone)]
pub enum Event<S, R> {
    /// The run is open and about to train from `start_epoch` (0 for a new run).
    Ready {
        summary: S,
        start_epoch: usize,
    },
    /// A step finished: the epoch's mean loss so far and its throughput in the task's unit.
    Batch {
        epoch: usize,
        done: usize,
        total: usize,
        loss: f64,
        per_second: f64,
    },
    Validating {
        epoch: usize,
    },
    Epoch(R),
    EarlyStop {
        epoch: usize,
        best_epoch: usize,
    },
}

/// Trains `net` on `task` into `out` (resuming the run there with `resume`) and returns the
/// epochs' records.
#[allow(clippy::too_many_arguments)]
pub fn fit<B: Backend, T: Task<B>, S>(
    backend: &B,
    task: &T,
    net: &mut T::Net,
    out: &Path,
    spec: &RunSpec,
    resume: bool,
    opts: &FitOptions,
    summary: S,
    events: &mut dyn FnMut(Event<S, T::Record>),
) -> Result<Vec<T::Record>, Error> {
    if opts.epochs == 0 {
        return Err(FileError::Argument("--epochs must be at least 1".into()).into());
    }
    let mut run = Run::open(out, spec, resume, T::Record::header())?;
    let mut moments: Vec<(B::Buf, B::Buf)> = net
        .params()
        .iter()
        .map(|p| Ok((backend.zeros(p.len())?, backend.zeros(p.len())?)))
        .collect::<Result<_, Error>>()?;
    if let Some(tensors) = run.take_resumed() {
        let last = run.path(LAST_FILE);
        load_weights(backend, net, &last, &tensors, &MOMENT_PREFIXES)?;
        for (p, (m, v)) in net.params().iter().zip(moments.iter_mut()) {
            for (prefix, slot) in MOMENT_PREFIXES.iter().zip([m, v]) {
                let name = format!("{prefix}{}", p.name);
                match tensors.get(&name) {
                    Some((shape, values)) if *shape == p.shape => {
                        finite(&last, &name, values)?;
                        *slot = upload_f32(backend, values)?
                    }
                    _ => {
                        return Err(
                            FileError::content(&last, format!("no optimiser state {name} of the right shape")).into()
                        )
                    }
                }
            }
        }
    }
    run.begin(spec)?;
    events(Event::Ready { summary, start_epoch: run.state.epoch });
    let mut records = Vec::new();
    if run.state.stopped_early {
        return Ok(records);
    }
    for epoch in run.state.epoch..opts.epochs {
        let started = Instant::now();
        let Epoch { total, batches } = task.epoch(backend, epoch)?;
        let mut metrics = T::Metrics::default();
        let (mut sum_loss, mut done, mut units) = (0.0f64, 0usize, 0u64);
        for batch in batches {
            let step = run.state.step + 1;
            let outcome = task.step(backend, net, batch?, step, &mut metrics)?;
            run.state.step = step;
            for (p, (m, v)) in net.params_mut().into_iter().zip(moments.iter_mut()) {
                let adam =
                    AdamParams { step, weight_decay: opts.adam.weight_decay + task.weight_decay(&p.name), ..opts.adam };
                backend.adam_step(&adam, AdamStep { param: &mut p.value, grad: &p.grad, m, v })?;
            }
            if !outcome.loss.is_finite() {
                return Err(FileError::Argument(format!(
                    "the loss became {} at epoch {} step {step}: lower --lr",
                    outcome.loss,
                    epoch + 1
                ))
                .into());
            }
            sum_loss += outcome.loss;
            done += 1;
            units += outcome.units;
            let per_second = units as f64 / started.elapsed().as_secs_f64().max(1e-9);
            events(Event::Batch { epoch: epoch + 1, done, total, loss: sum_loss / done as f64, per_second });
            if opts.max_steps.is_some_and(|m| run.state.step >= m) {
                return Ok(records);
            }
        }
        let summary = EpochSummary {
            epoch: epoch + 1,
            batches: done,
            mean_loss: sum_loss / done.max(1) as f64,
            units,
            started,
            train_seconds: started.elapsed().as_secs_f64(),
        };
        events(Event::Validating { epoch: epoch + 1 });
        let (mut record, value) = task.finish_epoch(backend, net, metrics, &summary)?;
        let best = opts.monitor.improves(value, run.state.best_metric);
        record.mark_best(best);
        let state = &mut run.state;
        if best {
            (state.best_metric, state.best_epoch, state.wait) = (Some(value), Some(epoch + 1), 0);
        } else {
            state.wait += 1;
        }
        state.epoch = epoch + 1;
        state.stopped_early = opts.monitor.patience.is_some_and(|p| state.wait >= p.max(1));
        run.commit_epoch(backend, net, &moments, best, record.line())?;
        events(Event::Epoch(record.clone()));
        records.push(record);
        if run.state.stopped_early {
            events(Event::EarlyStop { epoch: epoch + 1, best_epoch: run.state.best_epoch.unwrap_or(0) });
            break;
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monitor_needs_a_finite_gain_beyond_min_delta() {
        let up = Monitor { higher_is_better: true, min_delta: 0.01, patience: None };
        assert!(up.improves(0.5, None));
        assert!(!up.improves(f64::NAN, None));
        assert!(up.improves(0.52, Some(0.5)) && !up.improves(0.505, Some(0.5)));
        let down = Monitor { higher_is_better: false, min_delta: 0.0, patience: Some(3) };
        assert!(down.improves(0.4, Some(0.5)) && !down.improves(0.5, Some(0.5)));
    }
}
