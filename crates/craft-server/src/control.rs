//! What the world outside the game loop may ask of a running server: tell
//! every player something, or start the drain. A spot interruption notice
//! ([`imds`](crate::imds)) and an empty Agones game server
//! ([`agones`](crate::agones)) take the same path as SIGTERM: stop
//! admitting, warn, flush, Agones `Shutdown`, exit 0.

use std::sync::OnceLock;

use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tracing::info;

use crate::world::Event;

/// Requests from outside the game loop. Shared (in
/// [`Shared`](crate::server::Shared)) by the server, its admin listener and
/// its helpers.
#[derive(Debug, Default)]
pub struct Control {
    drain: CancellationToken,
    reason: OnceLock<String>,
    events: OnceLock<mpsc::Sender<Event>>,
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
}
