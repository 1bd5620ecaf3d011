//! The countdown before a scheduled shutdown.
//!
//! The unmodified Craft client quits the moment its connection closes, so
//! a warning sent just before the close is never read. When the server
//! knows ahead of time (a spot interruption notice, SIGTERM with
//! `shutdown.notice`), players get chat lines at the `shutdown.countdown`
//! marks while they keep playing; `shutdown.grace` before the close the
//! drain starts (final message, no new players, flushes), and the
//! connections close at the scheduled time.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tracing::info;

use crate::config::ShutdownConfig;
use crate::control::{Control, Scheduled};
use crate::metrics::Health;

/// Runs until the drain starts: waits for a schedule, announces the
/// countdown, then requests the drain `grace` before the close.
pub async fn run(control: Arc<Control>, config: ShutdownConfig, health: Arc<Health>) {
    let mut schedule = control.scheduled();
    let mut announced: Option<u64> = None;
    loop {
        let current = schedule.borrow_and_update().clone();
        let Some(scheduled) = current else {
            tokio::select! {
                changed = schedule.changed() => if changed.is_err() { return },
                _ = control.drain_wanted() => return,
            }
            continue;
        };
        health.shutdown_scheduled.store(true, Ordering::Relaxed);
        let now = Instant::now();
        let step = next_step(&config, &scheduled, now, announced);
        let at = match step {
            Step::Announce { seconds, at } if at <= now => {
                announced = Some(seconds);
                info!(seconds, "shutdown countdown");
                control.announce(&config.countdown_line(seconds)).await;
                continue;
            }
            Step::Drain { at } if at <= now => {
                control.request_drain(&scheduled.reason);
                return;
            }
            Step::Announce { at, .. } | Step::Drain { at } => at,
        };
        tokio::select! {
            _ = sleep_until(at) => {}
            changed = schedule.changed() => if changed.is_err() { return },
            _ = control.drain_wanted() => return,
        }
    }
}

/// What the countdown does next, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Tell players `seconds` are left.
    Announce { seconds: u64, at: Instant },
    /// Start the drain.
    Drain { at: Instant },
}

/// The next step of `scheduled` at `now`, given the last countdown line
/// sent (`announced`, in seconds left).
fn next_step(
    config: &ShutdownConfig,
    scheduled: &Scheduled,
    now: Instant,
    announced: Option<u64>,
) -> Step {
    let close_at = scheduled.close_at;
    let drain_at = close_at.checked_sub(config.grace).unwrap_or(now);
    let left = close_at.saturating_duration_since(now);
    // Lines closer to the close than the grace would only precede the
    // final message by moments.
    let below = announced.unwrap_or(u64::MAX);
    let mut marks: Vec<u64> = config
        .countdown
        .iter()
        .copied()
        .filter(|&mark| Duration::from_secs(mark) > config.grace && mark < below)
        .collect();
    marks.sort_unstable_by(|a, b| b.cmp(a));
    if announced.is_none() && !scheduled.told {
        // The first line comes at once, with the time actually left, unless
        // a mark is about to say the same.
        let seconds = (left + Duration::from_millis(500)).as_secs();
        let mark_soon = marks
            .iter()
            .any(|&m| m <= seconds && seconds - m < 2 && Duration::from_secs(m) <= left);
        if Duration::from_secs(seconds) > config.grace && !mark_soon {
            return Step::Announce { seconds, at: now };
        }
    }
    for mark in marks {
        let Some(at) = close_at.checked_sub(Duration::from_secs(mark)) else {
            continue;
        };
        if at + Duration::from_millis(500) >= now {
            return Step::Announce {
                seconds: mark,
                at: at.max(now),
            };
        }
    }
    Step::Drain { at: drain_at }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::world::Event;

    fn config() -> ShutdownConfig {
        ShutdownConfig {
            grace: Duration::from_secs(3),
            countdown: vec![10, 60, 30, 90],
            countdown_message: "{seconds}s".into(),
            ..ShutdownConfig::default()
        }
    }

    /// Runs a countdown on paused time; returns what players were told and
    /// how many seconds after the schedule the drain started.
    async fn timeline(notice: u64, told: bool) -> (Vec<String>, u64) {
        let control = Arc::new(Control::new());
        let (tx, mut rx) = mpsc::channel(64);
        control.attach(tx);
        let health = Arc::new(Health::new(10));
        let start = Instant::now();
        control.schedule_shutdown("test", start + Duration::from_secs(notice), told);
        let task = tokio::spawn(run(control.clone(), config(), health.clone()));
        control.drain_wanted().await;
        let drained_after = start.elapsed().as_secs();
        task.await.unwrap();
        assert!(health.shutdown_scheduled.load(Ordering::Relaxed));
        let mut lines = Vec::new();
        while let Ok(event) = rx.try_recv() {
            if let Event::Announce(text) = event {
                lines.push(text);
            }
        }
        (lines, drained_after)
    }

    #[tokio::test(start_paused = true)]
    async fn a_two_minute_notice_counts_down_then_drains_grace_before_the_close() {
        let (lines, drained) = timeline(120, false).await;
        assert_eq!(lines, ["120s", "90s", "60s", "30s", "10s"]);
        assert_eq!(drained, 117);
    }

    #[tokio::test(start_paused = true)]
    async fn a_notice_already_told_waits_for_the_next_mark() {
        let (lines, drained) = timeline(45, true).await;
        assert_eq!(lines, ["30s", "10s"]);
        assert_eq!(drained, 42);
    }

    #[tokio::test(start_paused = true)]
    async fn a_notice_shorter_than_the_grace_drains_at_once() {
        let (lines, drained) = timeline(2, false).await;
        assert!(lines.is_empty(), "{lines:?}");
        assert_eq!(drained, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_mark_right_at_the_notice_is_said_once() {
        let (lines, _) = timeline(60, false).await;
        assert_eq!(lines, ["60s", "30s", "10s"]);
    }
}
