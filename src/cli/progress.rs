//! Progress display on stderr (hidden when stderr is not a terminal).

use chromax::train::Event;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// A spinner counting records: `reading fragments.tsv.gz: 1,234,567 records (812,345/s)`.
pub fn record_spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    let style = ProgressStyle::with_template("{spinner} {msg}: {human_pos} records ({per_sec}) {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The progress display of a training run, for any task: `ready` words the data summary,
/// `epoch` an epoch's record, `unit` the throughput (`bases`, `peaks`). Each epoch has a bar
/// (`epoch 3 ████ 41/120 loss 0.2134  265001 bases/s`), cleared when validation starts.
pub fn train_reporter<S, R>(
    unit: &'static str,
    ready: impl Fn(&S) -> String,
    epoch: impl Fn(&R) -> String,
) -> impl FnMut(Event<S, R>) {
    let mut bar: Option<ProgressBar> = None;
    move |event| match event {
        Event::Ready { summary, start_epoch } => eprintln!(
            "{}{}",
            ready(&summary),
            if start_epoch > 0 { format!("; resuming after epoch {start_epoch}") } else { String::new() }
        ),
        Event::Batch { epoch, done, total, loss, per_second } => {
            let b = bar.get_or_insert_with(|| {
                let b = ProgressBar::new(total as u64);
                b.set_style(
                    ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b
            });
            b.set_prefix(epoch.to_string());
            b.set_position(done as u64);
            b.set_message(format!("loss {loss:.4}  {per_second:.1} {unit}/s"));
        }
        Event::Validating { .. } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
        }
        Event::Epoch(record) => eprintln!("{}", epoch(&record)),
        Event::EarlyStop { epoch, best_epoch } => {
            eprintln!("early stop after epoch {epoch}: no gain of the monitored metric since epoch {best_epoch}")
        }
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
