//! Progress of a long copy or comparison on stderr: a bar with an ETA on a
//! terminal, a plain line every few seconds otherwise (logs, CI, `kubectl
//! logs`), nothing when asked for silence.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain progress line is printed.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Where progress goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, else plain lines.
    #[default]
    Auto,
    /// Plain lines on stderr.
    Lines,
    /// Nothing (tests, library callers).
    Off,
}

enum Kind {
    Bar(ProgressBar),
    Lines { last: Instant },
    Off,
}

/// Progress of one phase counted in chunks.
pub struct Progress {
    kind: Kind,
    label: String,
    total: u64,
    done: u64,
    started: Instant,
}

impl Progress {
    /// Starts counting `total` chunks for the phase `label` (`copy`,
    /// `verify`, ...).
    pub fn start(mode: ProgressMode, label: &str, total: u64) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let kind = match mode {
            ProgressMode::Off => Kind::Off,
            ProgressMode::Auto if terminal => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                // The template is a constant: a typo is caught by the unit
                // test below, so falling back to the default is only a
                // safety net.
                let style = ProgressStyle::with_template(TEMPLATE)
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style);
                bar.set_prefix(label.to_owned());
                Kind::Bar(bar)
            }
            ProgressMode::Auto | ProgressMode::Lines => Kind::Lines {
                last: Instant::now(),
            },
        };
        Self {
            kind,
            label: label.to_owned(),
            total,
            done: 0,
            started: Instant::now(),
        }
    }

    /// Counts `n` more chunks done.
    pub fn inc(&mut self, n: u64) {
        self.done += n;
        match &mut self.kind {
            Kind::Bar(bar) => bar.inc(n),
            Kind::Lines { last } => {
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", self.line());
                }
            }
            Kind::Off => {}
        }
    }

    /// Ends the phase (a last line in line mode).
    pub fn finish(self) {
        match &self.kind {
            Kind::Bar(bar) => bar.finish(),
            Kind::Lines { .. } => eprintln!("{}", self.line()),
            Kind::Off => {}
        }
    }

    /// `copy: 1200/5000 chunks (24%), 350 chunks/s, ETA 11s`.
    fn line(&self) -> String {
        let elapsed = self.started.elapsed();
        let rate = self.done as f64 / elapsed.as_secs_f64().max(1e-3);
        let percent = (self.done * 100).checked_div(self.total).unwrap_or(100);
        let eta = match eta(self.done, self.total, elapsed) {
            Some(eta) => humantime::format_duration(eta).to_string(),
            None => "unknown".to_owned(),
        };
        format!(
            "{}: {}/{} chunks ({percent}%), {rate:.0} chunks/s, ETA {eta}",
            self.label, self.done, self.total
        )
    }
}

const TEMPLATE: &str = "{prefix}: [{bar:40}] {pos}/{len} chunks ({percent}%), {per_sec}, ETA {eta}";

/// Time left at the rate so far, to the second; `None` before any progress.
fn eta(done: u64, total: u64, elapsed: Duration) -> Option<Duration> {
    if done == 0 {
        return None;
    }
    let left = total.saturating_sub(done) as f64;
    let secs = elapsed.as_secs_f64() / done as f64 * left;
    Some(Duration::from_secs(secs.ceil() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_template_parses() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
    }

    #[test]
    fn eta_follows_the_rate() {
        assert_eq!(eta(0, 10, Duration::from_secs(3)), None);
        assert_eq!(
            eta(25, 100, Duration::from_secs(10)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(eta(10, 10, Duration::from_secs(10)), Some(Duration::ZERO));
    }
}
