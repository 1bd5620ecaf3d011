//! The fleet bus setting (`--bus none|nats://HOST:PORT|postgres`), opening
//! the bus it names, and the task that publishes for the game loop.
//!
//! The game loop never awaits the bus: it hands each tick's payloads (and
//! interest changes) to [`Outbox`], whose task calls the bus one request
//! at a time, in order, so that one server's messages on one topic arrive
//! in the order the loop produced them. When the task falls behind, new
//! batches are dropped and counted: the store repairs edits, the rest is
//! ephemeral. See `bus-core` for the backends' contract and
//! `world/fleet.rs` for what crosses the bus.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bus_core::{Bus, BusOptions, BusReceiver, Namespace, ServerId, Topic};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::{Config, StoreUrl};

/// Batches waiting for the publishing task, at most (a few seconds of
/// ticks; beyond, the bus is too slow and newer batches are dropped).
const OUTBOX_QUEUE: usize = 64;

/// The `bus` setting: `none` (the default), a `nats://` (or `tls://`) URL,
/// or `postgres`. `Debug` and `Display` hide credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BusUrl(pub String);

impl Default for BusUrl {
    fn default() -> Self {
        Self("none".to_owned())
    }
}

impl BusUrl {
    /// The setting as given (secrets included): only for opening the bus.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the setting names, validated without I/O.
    pub fn kind(&self) -> Result<BusKind, String> {
        let text = self.0.trim();
        match text.to_ascii_lowercase().as_str() {
            "" | "none" => return Ok(BusKind::None),
            "postgres" | "postgresql" => return Ok(BusKind::Postgres),
            _ => {}
        }
        if text.starts_with("nats://") || text.starts_with("tls://") {
            bus_nats::Config::from_url(text)
                .map(|_| BusKind::Nats)
                .map_err(|e| e.to_string())
        } else {
            Err(format!(
                "bus {self}: expected none, postgres or nats://HOST:PORT"
            ))
        }
    }

    /// The setting with passwords and tokens hidden, for logs.
    pub fn redacted(&self) -> String {
        if self.0.starts_with("nats://") || self.0.starts_with("tls://") {
            match bus_nats::Config::from_url(&self.0) {
                Ok(config) => config.redacted_url(),
                Err(_) => "nats://***".to_owned(),
            }
        } else {
            self.0.clone()
        }
    }
}

impl fmt::Display for BusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for BusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BusUrl({:?})", self.redacted())
    }
}

impl std::str::FromStr for BusUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = BusUrl(s.to_owned());
        url.kind()?;
        Ok(url)
    }
}

/// The backends the `bus` setting can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusKind {
    /// No bus: servers sharing a store learn of each other's edits by
    /// polling it (`sync_interval`).
    None,
    /// NATS (works with every store).
    Nats,
    /// LISTEN/NOTIFY on the PostgreSQL store's own database.
    Postgres,
}

/// Checks the bus settings against the rest of `config` (no I/O).
pub fn validate(config: &Config) -> Result<(), String> {
    let kind = config.bus.kind()?;
    Namespace::new(&config.bus_namespace).map_err(|e| e.to_string())?;
    if kind == BusKind::Postgres && !is_postgres(&config.store) {
        return Err(format!(
            "bus = \"postgres\" needs a postgres:// store (the bus uses the store's own database); the store is {}; use a nats:// bus with this store",
            config.store.scheme()
        ));
    }
    if kind != BusKind::None && config.bus_heartbeat_timeout < Duration::from_secs(2) {
        // Heartbeats go every second: less would drop live servers.
        return Err("bus_heartbeat_timeout must be at least 2s".to_owned());
    }
    Ok(())
}

fn is_postgres(store: &StoreUrl) -> bool {
    matches!(store.scheme().as_str(), "postgres" | "postgresql")
}

/// An open bus and its receiver.
pub struct Opened {
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// What other servers send.
    pub receiver: BusReceiver,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("bus", &self.bus)
            .finish_non_exhaustive()
    }
}

/// Opens the bus `config` names, or `None` for `none` or when it cannot be
/// opened (logged: play goes on, polling the store as without a bus).
/// Never waits for the network: backends connect in the background.
pub async fn open(config: &Config) -> Option<Opened> {
    let kind = match config.bus.kind() {
        Ok(kind) => kind,
        Err(e) => {
            warn!(error = %e, "unusable bus setting; running without a bus");
            return None;
        }
    };
    let server = ServerId::random();
    let opened = match kind {
        BusKind::None => return None,
        BusKind::Nats => {
            let namespace = match Namespace::new(&config.bus_namespace) {
                Ok(namespace) => namespace,
                Err(e) => {
                    warn!(error = %e, "unusable bus namespace; running without a bus");
                    return None;
                }
            };
            let options = BusOptions::new(server).namespace(namespace);
            match bus_nats::Config::from_url(config.bus.expose()) {
                Ok(nats) => bus_nats::NatsBus::open(nats, options)
                    .await
                    .map(|(bus, rx)| (Arc::new(bus) as Arc<dyn Bus>, rx)),
                Err(e) => Err(e),
            }
        }
        BusKind::Postgres => open_postgres(config, server).await,
    };
    match opened {
        Ok((bus, receiver)) => {
            info!(bus = %config.bus, server = %server, namespace = %bus.namespace(), "fleet bus opened");
            Some(Opened { bus, receiver })
        }
        Err(e) => {
            warn!(error = %e, bus = %config.bus, "cannot open the bus; running without it (polling the store)");
            None
        }
    }
}

#[cfg(feature = "postgres")]
async fn open_postgres(
    config: &Config,
    server: ServerId,
) -> bus_core::BusResult<(Arc<dyn Bus>, BusReceiver)> {
    let store = store_postgres::Config::from_url(config.store.expose())
        .map_err(|e| bus_core::BusError::Config(e.to_string()))?;
    // Worlds sharing a database are told apart by their schema.
    let namespace = Namespace::derive(store.schema().as_str());
    let options = BusOptions::new(server).namespace(namespace);
    let (bus, rx) =
        bus_postgres::PostgresBus::open(bus_postgres::Config::new(store), options).await?;
    Ok((Arc::new(bus) as Arc<dyn Bus>, rx))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(
    _config: &Config,
    _server: ServerId,
) -> bus_core::BusResult<(Arc<dyn Bus>, BusReceiver)> {
    Err(bus_core::BusError::Config(
        "this craft-server was built without the postgres feature".to_owned(),
    ))
}

/// What the publishing task does, in order.
#[derive(Debug)]
enum Job {
    Publish(Vec<(Topic, Bytes)>),
    Interest(Vec<Topic>),
}

/// The game loop's non-blocking way to the bus.
#[derive(Debug)]
pub struct Outbox {
    jobs: mpsc::Sender<Job>,
    /// Batches dropped because the task was behind or publishing failed.
    pub dropped: Arc<AtomicU64>,
}

impl Outbox {
    /// Starts the publishing task over `bus`.
    pub fn start(bus: Arc<dyn Bus>) -> Self {
        let (jobs, mut rx) = mpsc::channel::<Job>(OUTBOX_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let failed = dropped.clone();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                match job {
                    Job::Publish(messages) => {
                        if let Err(e) = bus.publish(&messages).await {
                            failed.fetch_add(1, Ordering::Relaxed);
                            debug!(error = %e, messages = messages.len(), "bus publish failed; dropped");
                        }
                    }
                    Job::Interest(topics) => {
                        // While disconnected the bus keeps the set for its
                        // reconnection, so a failure here needs no retry.
                        if let Err(e) = bus.set_interest(&topics).await {
                            debug!(error = %e, "bus interest change failed");
                        }
                    }
                }
            }
        });
        Self { jobs, dropped }
    }

    /// Queues payloads for publishing; dropped (and counted) when the task
    /// is behind.
    pub fn publish(&self, messages: Vec<(Topic, Bytes)>) {
        if messages.is_empty() {
            return;
        }
        if self.jobs.try_send(Job::Publish(messages)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues an interest change. Returns false when it could not be
    /// queued (try again next tick).
    pub fn set_interest(&self, topics: Vec<Topic>) -> bool {
        self.jobs.try_send(Job::Interest(topics)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_validated_and_redacted() {
        assert_eq!(BusUrl::default().kind(), Ok(BusKind::None));
        assert_eq!(BusUrl("postgres".into()).kind(), Ok(BusKind::Postgres));
        assert_eq!(
            BusUrl("nats://127.0.0.1:4222".into()).kind(),
            Ok(BusKind::Nats)
        );
        assert!(BusUrl("redis://x".into()).kind().is_err());
        let secret = BusUrl("nats://user:s3cr3t@127.0.0.1:4222".into());
        assert_eq!(secret.kind(), Ok(BusKind::Nats));
        assert!(!format!("{secret} {secret:?}").contains("s3cr3t"));

        let mut config = Config {
            bus: BusUrl("postgres".into()),
            ..Config::default()
        };
        let err = validate(&config).expect_err("postgres bus on sqlite");
        assert!(err.contains("postgres:// store"), "{err}");
        config.store = StoreUrl("postgres://u@h/db".into());
        validate(&config).expect("postgres bus on a postgres store");
        config.bus_namespace = "Bad-Name".into();
        assert!(validate(&config).is_err());
    }
}
