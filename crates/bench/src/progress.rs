//! The live progress bar of `rackwave bench` (indicatif, on stderr).
//!
//! Drawn only when stderr is a terminal and the output is not JSON, so
//! scripts and CI logs get the summary alone. A ticker task reads the
//! counters ten times a second: the load generator's hot path never touches
//! the bar.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

/// A running bar; [`Progress::finish`] draws the final state.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<JoinHandle<()>>,
    read: Option<Box<dyn Fn() -> (u64, String) + Send + Sync>>,
}

/// Whether a bar would be drawn for this run.
pub(crate) fn wanted(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

/// The bar's message for a load: the failures so far, if any.
pub(crate) fn failures(failed: u64) -> String {
    if failed > 0 {
        format!("{failed} failed")
    } else {
        String::new()
    }
}

impl Progress {
    /// A bar of `len` units labelled `prefix`; `read` gives the position and
    /// a short message (e.g. the failure count). Does nothing unless
    /// `enabled`.
    pub(crate) fn start<F>(enabled: bool, len: u64, prefix: &str, read: F) -> Progress
    where
        F: Fn() -> (u64, String) + Send + Sync + Clone + 'static,
    {
        if !enabled {
            return Progress {
                bar: None,
                ticker: None,
                read: None,
            };
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(10));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>9} {elapsed:>4} [{bar:40}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(prefix.to_string());
        let ticker = {
            let bar = bar.clone();
            let read = read.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                // The live rate: over the last second of samples.
                let mut window: VecDeque<(Instant, u64)> = VecDeque::new();
                loop {
                    tick.tick().await;
                    let now = Instant::now();
                    let (pos, msg) = read();
                    window.push_back((now, pos));
                    while window.len() > 2 && now - window[0].0 > Duration::from_secs(1) {
                        window.pop_front();
                    }
                    let (t0, p0) = window[0];
                    let dt = (now - t0).as_secs_f64();
                    let rate = if dt > 0.0 {
                        pos.saturating_sub(p0) as f64 / dt
                    } else {
                        0.0
                    };
                    bar.set_position(pos);
                    bar.set_message(format!("{rate:.0}/s {msg}"));
                }
            })
        };
        Progress {
            bar: Some(bar),
            ticker: Some(ticker),
            read: Some(Box::new(read)),
        }
    }

    /// Stops the ticker and leaves the bar at its final state.
    pub(crate) fn finish(mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let (Some(bar), Some(read)) = (self.bar.take(), self.read.take()) {
            let (pos, msg) = read();
            let secs = bar.elapsed().as_secs_f64();
            let rate = if secs > 0.0 { pos as f64 / secs } else { 0.0 };
            bar.set_position(pos);
            bar.set_message(format!("{rate:.0}/s on average {msg}"));
            bar.abandon();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}
