//! What the world outside the game loop may ask of a running server, and
//! the helpers that run beside it on an orchestrator.
//!
//! - [`Control`]: tell every player something, or start the drain. A spot
//!   interruption notice ([`imds`](crate::imds)) and an empty Agones game
//!   server ([`agones`](crate::agones)) take the same path as SIGTERM: stop
//!   admitting, warn, flush, Agones `Shutdown`, exit 0.
//! - [`Sidecars`]: the Agones client and the IMDS watcher, started by
//!   [`server::run`](crate::server::run) when configured.
//! - [`spawn_store_probe`]: pings the store while it is not known to answer,
//!   so that readiness (and Agones `Ready`) follows the store even when no
//!   player makes it work.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tracing::{debug, info, warn};
use world_core::BlockStore;

use crate::agones::Agones;
use crate::config::Config;
use crate::imds;
use crate::metrics::Health;
use crate::world::Event;

/// On, off, or decided from the environment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// On when the environment says so (see each setting).
    #[default]
    Auto,
    /// Always on.
    #[value(alias = "true")]
    On,
    /// Always off.
    #[value(alias = "false")]
    Off,
}

impl Switch {
    /// Whether the feature runs, given what the environment says.
    pub fn resolve(self, detected: impl FnOnce() -> bool) -> bool {
        match self {
            Switch::On => true,
            Switch::Off => false,
            Switch::Auto => detected(),
        }
    }
}

impl Serialize for Switch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Switch::Auto => "auto",
            Switch::On => "on",
            Switch::Off => "off",
        })
    }
}

impl<'de> Deserialize<'de> for Switch {
    /// `"auto"`, `"on"`/`true`, `"off"`/`false`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Switch::On),
            Raw::Bool(false) => Ok(Switch::Off),
            Raw::Text(t) => match t.to_ascii_lowercase().as_str() {
                "auto" => Ok(Switch::Auto),
                "on" | "true" => Ok(Switch::On),
                "off" | "false" => Ok(Switch::Off),
                _ => Err(serde::de::Error::custom(format!(
                    "expected \"auto\", \"on\" or \"off\", got {t:?}"
                ))),
            },
        }
    }
}

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

/// How often a store not known to answer is pinged.
const STORE_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// The longest one probe may take.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Pings `store` whenever the last store call failed (or none succeeded
/// yet), until `stop` is cancelled. `store` is the instrumented store, so
/// each answer updates [`Health`].
pub fn spawn_store_probe(
    store: Arc<dyn BlockStore>,
    health: Arc<Health>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STORE_PROBE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if health.store_ok.load(std::sync::atomic::Ordering::Relaxed) {
                continue;
            }
            match tokio::time::timeout(STORE_PROBE_TIMEOUT, store.ping()).await {
                Ok(Ok(())) => info!("the store answers"),
                Ok(Err(e)) => debug!(error = %e, "the store does not answer yet"),
                Err(_) => {
                    health.store_result(false);
                    debug!("store ping timed out");
                }
            }
        }
    })
}

/// The helpers a server runs beside the game loop on an orchestrator.
#[derive(Debug, Default)]
pub struct Sidecars {
    agones: Option<Agones>,
    imds: Option<tokio::task::JoinHandle<()>>,
}

impl Sidecars {
    /// Starts what `config` (and the environment) asks for.
    pub fn start(config: &Config, health: &Arc<Health>, control: &Arc<Control>) -> Self {
        let env = |name: &str| std::env::var(name).ok();
        let agones = match config.agones.endpoint(env) {
            Some(url) => {
                info!(%url, "Agones SDK enabled");
                Some(Agones::start(
                    &config.agones,
                    url,
                    health.clone(),
                    control.clone(),
                    config.stall_timeout,
                ))
            }
            None => None,
        };
        let imds = if config.imds.enabled.resolve(imds::on_ec2) {
            match imds::Watcher::new(&config.imds) {
                Ok(watcher) => {
                    info!(base_url = %config.imds.base_url, "watching for spot interruption notices");
                    Some(tokio::spawn(watcher.run(control.clone())))
                }
                Err(e) => {
                    warn!(error = %e, "cannot watch for spot interruption notices");
                    None
                }
            }
        } else {
            None
        };
        Self { agones, imds }
    }

    /// After the drain: stops the watcher and tells Agones the game server
    /// is done. Returns whether Agones was told (it removes the server).
    pub async fn finish(self) -> bool {
        if let Some(imds) = self.imds {
            imds.abort();
        }
        match self.agones {
            Some(agones) => {
                agones.shutdown().await;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        s: Switch,
    }

    #[test]
    fn switch_reads_words_and_booleans() {
        for (text, want) in [
            ("s = \"auto\"", Switch::Auto),
            ("s = true", Switch::On),
            ("s = \"off\"", Switch::Off),
            ("s = false", Switch::Off),
        ] {
            let h: Holder = toml::from_str(text).expect(text);
            assert_eq!(h.s, want, "{text}");
        }
        assert!(toml::from_str::<Holder>("s = \"maybe\"").is_err());
        assert!(Switch::Auto.resolve(|| true));
        assert!(!Switch::Off.resolve(|| true));
    }

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
