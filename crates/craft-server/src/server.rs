//! Accepting players and running the world until shutdown.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{error, info};
use world_core::BlockStore;

use crate::config::Config;
use crate::connection;
use crate::lifecycle::{self, Control, Sidecars};
use crate::metrics::{Health, Metrics};
use crate::stores::Instrumented;
use crate::world::{Event, Observers, World};

/// Events waiting for the game loop, at most. Senders wait beyond it, which
/// slows the fastest clients first.
const EVENT_QUEUE: usize = 16 * 1024;

/// What a running server shares with its admin listener and its owner.
#[derive(Clone, Debug)]
pub struct Shared {
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Health.
    pub health: Arc<Health>,
    /// Drain requests and announcements from outside the game loop.
    pub control: Arc<Control>,
    /// What the game loop publishes for the admin page, and its requests.
    pub observers: Arc<Observers>,
    /// The admin page's settings.
    pub admin: Arc<crate::admin::AdminConfig>,
}

impl Shared {
    /// Fresh metrics and health for `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            metrics: Arc::new(Metrics::new()),
            health: Arc::new(Health::new(config.max_players)),
            control: Arc::new(Control::new()),
            observers: Arc::new(Observers::new()),
            admin: Arc::new(config.admin.clone()),
        }
    }
}

/// Serves players on `listener` from `store` until `shutdown` resolves (or
/// `shared.control` asks for a drain), then drains: stops accepting, warns
/// every player, writes every pending edit, closes the store, tells Agones.
/// Returns once all that is done.
pub async fn run(
    listener: TcpListener,
    store: Arc<dyn BlockStore>,
    config: Arc<Config>,
    shared: Shared,
    shutdown: impl Future<Output = ()>,
) -> Drained {
    let Shared {
        metrics,
        health,
        control,
        observers,
        ..
    } = shared;
    metrics.attach_store(store.clone());
    let store: Arc<dyn BlockStore> =
        Arc::new(Instrumented::new(store, metrics.clone(), health.clone()));
    // The first answer from the store makes the server ready.
    match store.ping().await {
        Ok(()) => {}
        Err(e) => {
            error!(error = %e, "the store does not answer yet; serving from memory meanwhile")
        }
    }
    let probe_stop = tokio_util::sync::CancellationToken::new();
    let probe = lifecycle::spawn_store_probe(store.clone(), health.clone(), probe_stop.clone());
    let (events, rx) = mpsc::channel(EVENT_QUEUE);
    observers.attach(events.clone(), store.clone());
    let world = World::new(
        config.clone(),
        store,
        metrics.clone(),
        health.clone(),
        events.clone(),
    )
    .with_observers(observers.clone());
    let world = tokio::spawn(world.run(rx));
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "listening for Craft clients");
    }
    let readers = match connection::Readers::start() {
        Ok(readers) => Arc::new(readers),
        Err(e) => {
            error!(error = %e, "cannot start the reader thread");
            return Drained {
                reason: "startup failed".into(),
                by_itself: false,
                orchestrated: false,
                unwritten: 0,
            };
        }
    };
    control.attach(events.clone());
    let sidecars = Sidecars::start(&config, &health, &control);
    let connections = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    tokio::pin!(shutdown);
    let mut next_conn = 0u64;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = control.drain_wanted() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    next_conn += 1;
                    let events = events.clone();
                    let limits = config.limits.clone();
                    let metrics = metrics.clone();
                    let serve = connection::serve(
                        stream,
                        addr,
                        next_conn,
                        events,
                        limits,
                        metrics,
                        readers.clone(),
                        connections.clone(),
                    );
                    tracker.spawn(serve);
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off a moment.
                    error!(error = %e, "accept failed");
                    metrics.error("accept");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let reason = control.drain_reason().unwrap_or("signal").to_owned();
    info!(reason, "shutdown requested: no longer accepting players");
    let _ = events.send(Event::Shutdown).await;
    drop(events);
    let unwritten = match world.await {
        Ok(unwritten) => unwritten,
        Err(e) => {
            error!(error = %e, "the game loop failed");
            0
        }
    };
    probe_stop.cancel();
    let _ = probe.await;
    // The world flushed and closed; let writers finish what it queued last.
    tracker.close();
    if tokio::time::timeout(std::time::Duration::from_secs(2), tracker.wait())
        .await
        .is_err()
    {
        connections.cancel();
        tracker.wait().await;
    }
    connections.cancel();
    // Every connection task is done, so this is the last reference.
    if let Ok(mut readers) = Arc::try_unwrap(readers) {
        let _ = tokio::task::spawn_blocking(move || readers.stop()).await;
    }
    // Every edit is stored: only now may Agones delete the pod.
    let orchestrated = sidecars.finish().await;
    health
        .drained
        .store(true, std::sync::atomic::Ordering::Relaxed);
    Drained {
        reason,
        by_itself: control.drain_requested(),
        orchestrated,
        unwritten,
    }
}

/// How a server's run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drained {
    /// What started the drain: `signal`, or the server's own reason (a spot
    /// notice, an empty Agones game server).
    pub reason: String,
    /// The server decided to drain (not a signal).
    pub by_itself: bool,
    /// An orchestrator (Agones) was told and will remove the server.
    pub orchestrated: bool,
    /// Edits that could not be stored before `shutdown.timeout`.
    pub unwritten: usize,
}

impl Drained {
    /// Whether the process should stay up (drained, not ready) until a
    /// signal: it drained on its own and nothing will remove it, so exiting
    /// would only get it restarted on a doomed node.
    pub fn wait_for_signal(&self) -> bool {
        self.by_itself && !self.orchestrated
    }
}
