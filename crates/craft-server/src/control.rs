//! What the world outside the game loop may ask of a running server: tell
//! every player something, schedule a shutdown, or start the drain. A spot
//! interruption notice ([`imds`](crate::imds)) and an empty Agones game
//! server ([`agones`](crate::agones)) take the same path as SIGTERM: stop
//! admitting, warn, flush, Agones `Shutdown`, exit 0.
//!
//! A shutdown with notice (a spot interruption two minutes ahead, or
//! SIGTERM when `shutdown.notice` is set) is *scheduled* instead: the
//! [`countdown`](crate::countdown) task warns players while they keep
//! playing and starts the drain `shutdown.grace` before the close.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tracing::info;

use crate::world::Event;

/// Requests from outside the game loop. Shared (in
/// [`Shared`](crate::server::Shared)) by the server, its admin listener and
/// its helpers.
#[derive(Debug)]
pub struct Control {
    drain: CancellationToken,
    reason: OnceLock<String>,
    events: OnceLock<mpsc::Sender<Event>>,
    schedule: watch::Sender<Option<Scheduled>>,
    signalled: AtomicBool,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            drain: CancellationToken::new(),
            reason: OnceLock::new(),
            events: OnceLock::new(),
            schedule: watch::Sender::new(None),
            signalled: AtomicBool::new(false),
        }
    }
}

/// A shutdown announced ahead of time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    /// Why (for logs and the drain reason).
    pub reason: String,
    /// When the connections close; the drain starts `shutdown.grace`
    /// earlier.
    pub close_at: Instant,
    /// Players were already told when it was scheduled (the spot notice's
    /// own message), so the countdown waits for its next mark.
    pub told: bool,
}

impl Control {
    /// Nothing requested yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects the game loop; done once by [`server::run`](crate::server::run).
    pub(crate) fn attach(&self, events: mpsc::Sender<Event>) {
        let _ = self.events.set(events);
    }

    /// Sends a chat line to every player. False when no game loop is
    /// running (or it is gone).
    pub async fn announce(&self, text: &str) -> bool {
        let Some(events) = self.events.get() else {
            return false;
        };
        // A chat line is one protocol line.
        let text = text.replace(['\n', '\r'], " ");
        events.send(Event::Announce(text)).await.is_ok()
    }

    /// Starts the drain (stop admitting, warn, flush, exit) as SIGTERM
    /// does. The first reason is kept; later requests change nothing.
    pub fn request_drain(&self, reason: &str) {
        if self.reason.set(reason.to_owned()).is_ok() {
            info!(reason, "drain requested");
        }
        self.drain.cancel();
    }

    /// Schedules the close of every connection at `close_at`, with a
    /// countdown before it. An earlier schedule wins: a later notice never
    /// postpones a shutdown already announced.
    pub fn schedule_shutdown(&self, reason: &str, close_at: Instant, told: bool) {
        let scheduled = Scheduled {
            reason: reason.to_owned(),
            close_at,
            told,
        };
        let changed = self.schedule.send_if_modified(|current| match current {
            Some(existing) if existing.close_at <= close_at => false,
            _ => {
                *current = Some(scheduled);
                true
            }
        });
        if changed {
            let seconds = close_at.saturating_duration_since(Instant::now()).as_secs();
            info!(reason, seconds, "shutdown scheduled");
        }
    }

    /// The scheduled shutdown, as it changes.
    pub fn scheduled(&self) -> watch::Receiver<Option<Scheduled>> {
        self.schedule.subscribe()
    }

    /// Records that a signal (not the server itself) asked for the
    /// shutdown: the process exits once drained, whoever starts the drain.
    pub fn mark_signalled(&self) {
        self.signalled.store(true, Ordering::Relaxed);
    }

    /// Whether a signal asked for the shutdown.
    pub fn signalled(&self) -> bool {
        self.signalled.load(Ordering::Relaxed)
    }

    /// Whether a drain was requested through [`Control::request_drain`].
    pub fn drain_requested(&self) -> bool {
        self.drain.is_cancelled()
    }

    /// Why the drain was requested, if it was.
    pub fn drain_reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }

    /// Resolves once a drain is requested.
    pub fn drain_wanted(&self) -> WaitForCancellationFuture<'_> {
        self.drain.cancelled()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn drain_keeps_the_first_reason() {
        let control = Control::new();
        assert!(!control.drain_requested());
        assert!(!control.announce("nobody listens").await);
        control.request_drain("spot interruption");
        control.request_drain("empty");
        control.drain_wanted().await;
        assert_eq!(control.drain_reason(), Some("spot interruption"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_earliest_schedule_wins() {
        let control = Control::new();
        let rx = control.scheduled();
        let now = Instant::now();
        control.schedule_shutdown("signal", now + Duration::from_secs(60), false);
        control.schedule_shutdown("later", now + Duration::from_secs(90), false);
        assert_eq!(
            rx.borrow().as_ref().map(|s| s.reason.as_str()),
            Some("signal")
        );
        control.schedule_shutdown("spot", now + Duration::from_secs(30), true);
        let current = rx.borrow().clone();
        assert_eq!(
            current.map(|s| (s.reason, s.told)),
            Some(("spot".to_owned(), true))
        );
    }
}
