//! Start-up wiring and the accept loop: [`run`] pings the store, starts
//! the game loop ([`World`]), the store probe and the orchestrator
//! [`Sidecars`] (Agones, spot notices), accepts players until shutdown,
//! then drains.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use world_core::BlockStore;

use crate::admission::{self, Admission};
use crate::agones::Agones;
use crate::config::Config;
use crate::connection;
use crate::control::Control;
use crate::imds;
use crate::metrics::{Clock, Health, Metrics};
use crate::outbound::Outbound;
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
    /// Block history is recorded (`history.record` for the store's
    /// backend): the admin page's rollback works.
    pub history: bool,
}

impl Shared {
    /// Fresh metrics and health for `config`.
    pub fn new(config: &Config) -> Self {
        Self::with_clock(config, Clock::system())
    }

    /// Fresh metrics and health for `config`, health measuring time with
    /// `clock`.
    pub fn with_clock(config: &Config, clock: Clock) -> Self {
        Self {
            metrics: Arc::new(Metrics::new()),
            health: Arc::new(Health::with_clock(config.max_players, clock)),
            control: Arc::new(Control::new()),
            observers: Arc::new(Observers::new()),
            admin: Arc::new(config.admin.clone()),
            history: config.history.records(&config.store.scheme()),
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
    let outbound_cap = outbound_cap(&config);
    metrics
        .outbound_limit_bytes
        .set(i64::try_from(outbound_cap).unwrap_or(i64::MAX));
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
    let probe_stop = CancellationToken::new();
    let probe = spawn_store_probe(store.clone(), health.clone(), probe_stop.clone());
    let (events, rx) = mpsc::channel(EVENT_QUEUE);
    observers.attach(events.clone(), store.clone());
    // Opening never waits for the network: play starts with the bus down.
    let bus = crate::bus::open(&config).await;
    let world = World::new(
        config.clone(),
        store,
        metrics.clone(),
        health.clone(),
        events.clone(),
    )
    .with_observers(observers.clone())
    .with_bus(bus);
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
    let countdown = tokio::spawn(crate::countdown::run(
        control.clone(),
        config.shutdown.clone(),
        health.clone(),
    ));
    let sidecars = Sidecars::start(&config, &health, &metrics, &control);
    let connections = CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    tokio::pin!(shutdown);
    let admission = Admission::new(&config);
    let mut next_conn = 0u64;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = control.drain_wanted() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let ticket = match admission.admit(addr.ip()) {
                        Ok(ticket) => ticket,
                        Err(refusal) => {
                            debug!(%addr, reason = refusal.reason(), "connection refused");
                            metrics.refused(refusal.reason());
                            admission::refuse(stream, refusal);
                            continue;
                        }
                    };
                    next_conn += 1;
                    let out = Arc::new(Outbound::new(outbound_cap));
                    // Players join in the order their sockets were accepted:
                    // ids, greetings and every list of players follow it.
                    let connected = Event::Connected { conn: next_conn, out: out.clone(), addr };
                    if events.send(connected).await.is_err() {
                        break;
                    }
                    let serve = connection::serve(
                        stream,
                        addr,
                        next_conn,
                        out,
                        events.clone(),
                        config.limits.clone(),
                        metrics.clone(),
                        readers.clone(),
                        connections.clone(),
                    );
                    tracker.spawn(async move {
                        serve.await;
                        drop(ticket);
                    });
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
    countdown.abort();
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
        by_itself: control.drain_requested() && !control.signalled(),
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
    pub fn start(
        config: &Config,
        health: &Arc<Health>,
        metrics: &Arc<Metrics>,
        control: &Arc<Control>,
    ) -> Self {
        let env = |name: &str| std::env::var(name).ok();
        let agones = match config.agones.endpoint(env) {
            Some(url) => {
                info!(%url, "Agones SDK enabled");
                Some(Agones::start(
                    &config.agones,
                    url,
                    health.clone(),
                    metrics.clone(),
                    control.clone(),
                    config.stall_timeout,
                ))
            }
            None => None,
        };
        let imds = if config.imds.enabled.resolve(imds::on_ec2) {
            match imds::Watcher::new(&config.imds) {
                Ok(watcher) => {
                    let watcher = watcher.with_shutdown(&config.shutdown);
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

/// Bytes queued for one client before it is disconnected:
/// `limits.max_outbound_bytes`, or derived from the container's memory
/// limit and `max_players`. Logged either way: the worst case is this times
/// `max_players`.
fn outbound_cap(config: &Config) -> usize {
    if let Some(bytes) = config.limits.max_outbound_bytes {
        info!(
            max_outbound_bytes = bytes,
            max_players = config.max_players,
            "outbound queue per player: as configured"
        );
        return bytes;
    }
    let memory_limit = crate::config::memory::memory_limit();
    let bytes = config
        .limits
        .outbound_bytes(memory_limit, config.max_players);
    info!(
        max_outbound_bytes = bytes,
        memory_limit = ?memory_limit,
        max_players = config.max_players,
        "outbound queue per player: derived from the memory limit (half of it shared by max_players)"
    );
    bytes
}
