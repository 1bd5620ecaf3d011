//! Agones: the game server's lifecycle reported to the SDK sidecar.
//!
//! Talks to the sidecar's REST gateway (`http://localhost:$AGONES_SDK_HTTP_PORT`,
//! the SDK's official HTTP API, served by the same process as its gRPC API):
//!
//! | when | call |
//! |---|---|
//! | the store answered once | `POST /ready`, retried until the sidecar takes it (it may start after us) |
//! | every `health_interval` while the game loop turns | `POST /health` (a loop stuck for `stall_timeout` stops them, so Agones marks the game server Unhealthy) |
//! | the first player joins | `POST /allocate` (a player who came straight to a Ready server keeps it from being scaled down) |
//! | the player count changes | `PATCH /v1beta1/counters/{counter}` `{"count": "N"}`, or `PUT /metadata/label` |
//! | empty for `shutdown_when_empty_for` after the last player left | the drain starts (as on SIGTERM) |
//! | the drain is over (SIGTERM, spot notice, empty) | `POST /shutdown` |
//!
//! The player count goes to an Agones Counter (beta Counters and Lists,
//! on by default since Agones 1.41) rather than a label: a Counter is what
//! allocation filters and priorities (`counters: {players: {minAvailable:
//! 1}}`) and Counter-based fleet autoscaling read, its updates are batched
//! by the sidecar, and it does not rewrite the GameServer's labels (and so
//! its selectors) on every join. A GameServer whose spec declares no such
//! Counter answers 404; the server then falls back to the label
//! `agones.dev/sdk-<counter>` and says so once in the log.
//!
//! Every call runs in this module's tasks with a timeout: the game loop never
//! waits on the sidecar. Failures are logged (once per outage) and retried.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{AgonesConfig, PlayerCount};
use crate::control::Control;
use crate::metrics::{Health, Metrics, ResultLabel};

/// How often the lifecycle task looks at the player count.
const WATCH: Duration = Duration::from_millis(250);
/// Pauses between retries of a failing call: 100 ms doubling to 5 s, with
/// jitter so that a fleet does not hammer a restarting sidecar in step.
const SDK_BACKOFF: ExponentialBuilder = ExponentialBuilder::new()
    .with_jitter()
    .with_min_delay(Duration::from_millis(100))
    .with_max_delay(Duration::from_secs(5))
    .without_max_times();
/// How long `Shutdown` is retried after the drain.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(5);

/// Why a call to the sidecar failed.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// No answer (not started yet, or gone), or no answer in time.
    #[error("the Agones SDK server does not answer: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// An answer other than 2xx.
    #[error("the Agones SDK server answered {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

impl SdkError {
    /// The thing named (a Counter) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SdkError::Refused { status: 404, .. })
    }
}

/// A client of the sidecar's REST API.
#[derive(Clone, Debug)]
pub struct Sdk {
    http: reqwest::Client,
    base: String,
}

impl Sdk {
    /// A client of the sidecar at `base` (e.g. `http://localhost:9358`).
    pub fn new(base: &str, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            // The sidecar is on localhost: an HTTP proxy from the
            // environment must not see these calls.
            .no_proxy()
            .timeout(timeout)
            .build()
            .unwrap_or_else(|e| {
                warn!(error = %e, "cannot configure the Agones HTTP client; using defaults");
                reqwest::Client::new()
            });
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> Result<(), SdkError> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .map_err(SdkError::Unreachable)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let mut body = response.text().await.unwrap_or_default();
        body.truncate(200);
        Err(SdkError::Refused {
            status: status.as_u16(),
            body,
        })
    }

    /// `Ready`: send players here.
    pub async fn ready(&self) -> Result<(), SdkError> {
        self.call(reqwest::Method::POST, "/ready", serde_json::json!({}))
            .await
    }

    /// `Health`: one ping.
    pub async fn health(&self) -> Result<(), SdkError> {
        self.call(reqwest::Method::POST, "/health", serde_json::json!({}))
            .await
    }

    /// `Allocate`: players are here; do not scale this game server down.
    pub async fn allocate(&self) -> Result<(), SdkError> {
        self.call(reqwest::Method::POST, "/allocate", serde_json::json!({}))
            .await
    }

    /// `Shutdown`: the game server is done.
    pub async fn shutdown(&self) -> Result<(), SdkError> {
        self.call(reqwest::Method::POST, "/shutdown", serde_json::json!({}))
            .await
    }

    /// Sets the count of the beta Counter `name` (int64 travel as strings in
    /// the gateway's JSON).
    pub async fn set_counter(&self, name: &str, count: u64) -> Result<(), SdkError> {
        self.call(
            reqwest::Method::PATCH,
            &format!("/v1beta1/counters/{name}"),
            serde_json::json!({ "count": count.to_string() }),
        )
        .await
    }

    /// `SetLabel`: the label `agones.dev/sdk-<key>`.
    pub async fn set_label(&self, key: &str, value: &str) -> Result<(), SdkError> {
        self.call(
            reqwest::Method::PUT,
            "/metadata/label",
            serde_json::json!({ "key": key, "value": value }),
        )
        .await
    }
}

/// The running integration: a heartbeat task and a lifecycle task.
#[derive(Debug)]
pub struct Agones {
    sdk: Sdk,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Agones {
    /// Starts the tasks talking to the sidecar at `url`. `stall_timeout`:
    /// how long the game loop may go without turning before health pings
    /// stop.
    pub fn start(
        config: &AgonesConfig,
        url: String,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
        control: Arc<Control>,
        stall_timeout: Duration,
    ) -> Self {
        let sdk = Sdk::new(&url, config.timeout);
        let stop = CancellationToken::new();
        let tasks = vec![
            tokio::spawn(heartbeat(
                sdk.clone(),
                health.clone(),
                metrics,
                config.health_interval,
                stall_timeout,
                stop.clone(),
            )),
            tokio::spawn(lifecycle(
                sdk.clone(),
                config.clone(),
                health,
                control,
                stop.clone(),
            )),
        ];
        Self { sdk, stop, tasks }
    }

    /// After the drain: stops the tasks and sends `Shutdown` (retried for a
    /// few seconds; the pod is going away anyway).
    pub async fn shutdown(self) {
        self.stop.cancel();
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
        let shutdown = (|| self.sdk.shutdown())
            .retry(SDK_BACKOFF.with_total_delay(Some(SHUTDOWN_PATIENCE)))
            .sleep(tokio::time::sleep)
            .notify(|e, _| debug!(error = %e, "Agones Shutdown failed; retrying"));
        match shutdown.await {
            Ok(()) => info!("Agones: Shutdown"),
            Err(e) => warn!(error = %e, "Agones Shutdown failed; giving up (the pod ends anyway)"),
        }
    }
}

/// Pings `Health` while the game loop turns.
async fn heartbeat(
    sdk: Sdk,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    every: Duration,
    stall_timeout: Duration,
    stop: CancellationToken,
) {
    let count = |result: &'static str| {
        metrics
            .agones_health_pings
            .get_or_create(&ResultLabel { result })
            .inc();
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stalled = false;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let since = health.since_last_turn();
        if since >= stall_timeout {
            if !stalled {
                warn!(
                    since_last_turn = ?since,
                    "the game loop is stuck; no more Agones health pings until it turns"
                );
                stalled = true;
            }
            count("skipped");
            continue;
        }
        if stalled {
            info!("the game loop turns again; Agones health pings resume");
            stalled = false;
        }
        let result = sdk.health().await;
        count(if result.is_ok() { "ok" } else { "failed" });
        match result {
            Ok(()) => {
                if failing {
                    info!("Agones health pings go through again");
                    failing = false;
                }
            }
            Err(e) => {
                if !failing {
                    warn!(error = %e, "Agones health ping failed; will keep trying");
                    failing = true;
                }
            }
        }
    }
}

/// When a call that the lifecycle loop makes on its rounds may be tried
/// again. The loop keeps watching the player count meanwhile, so it asks
/// `due` on each round instead of sleeping through the backoff.
#[derive(Debug)]
struct Retry {
    next: Instant,
    backoff: ExponentialBackoff,
    failing: bool,
}

impl Retry {
    fn new() -> Self {
        Self {
            next: Instant::now(),
            backoff: SDK_BACKOFF.build(),
            failing: false,
        }
    }

    fn due(&self) -> bool {
        Instant::now() >= self.next
    }

    /// Records an outcome; true when it is the first failure of a run
    /// (worth a warning).
    fn record<E>(&mut self, result: &Result<(), E>) -> bool {
        match result {
            Ok(()) => {
                *self = Self::new();
                false
            }
            Err(_) => {
                // The builder has no limit: the iterator never ends.
                let delay = self.backoff.next().unwrap_or(Duration::from_secs(5));
                self.next = Instant::now() + delay;
                !std::mem::replace(&mut self.failing, true)
            }
        }
    }
}

/// How long an allocated game server has been empty, on the health clock.
#[derive(Debug, Default)]
struct EmptyTimer {
    had_players: bool,
    empty_since: Option<Duration>,
}

impl EmptyTimer {
    /// Notes the player count at `now`; true (once) when the server has
    /// been empty for `limit` since its last player left. A server nobody
    /// joined yet is a warm spare: it never expires.
    fn expired(&mut self, players: usize, now: Duration, limit: Duration) -> bool {
        if players > 0 {
            self.had_players = true;
            self.empty_since = None;
            return false;
        }
        if !self.had_players {
            return false;
        }
        let since = *self.empty_since.get_or_insert(now);
        if now.saturating_sub(since) >= limit {
            self.had_players = false;
            return true;
        }
        false
    }
}

/// `Ready`, then `Allocate`, the player count and the empty timer.
async fn lifecycle(
    sdk: Sdk,
    config: AgonesConfig,
    health: Arc<Health>,
    control: Arc<Control>,
    stop: CancellationToken,
) {
    let pause = |d: Duration| {
        let stop = stop.clone();
        async move {
            tokio::select! {
                _ = stop.cancelled() => false,
                _ = tokio::time::sleep(d) => true,
            }
        }
    };
    // Ready once the store answered: players sent here can then play.
    while !health.store_seen.load(Ordering::Relaxed) {
        if !pause(WATCH).await {
            return;
        }
    }
    let mut first = true;
    let ready = (|| sdk.ready())
        .retry(SDK_BACKOFF)
        .sleep(tokio::time::sleep)
        .notify(|e, _| {
            if std::mem::take(&mut first) {
                warn!(error = %e, "Agones Ready failed; retrying (the sidecar may still be starting)");
            } else {
                debug!(error = %e, "Agones Ready failed again");
            }
        });
    tokio::select! {
        _ = stop.cancelled() => return,
        // Retried without end: only the stop above ends it unready.
        result = ready => if result.is_err() { return },
    }
    info!("Agones: Ready");

    let mut mode = config.player_count;
    let mut reported: Option<usize> = None;
    let mut count_retry = Retry::new();
    let mut allocated = false;
    let mut allocate_retry = Retry::new();
    let mut empty = EmptyTimer::default();
    loop {
        let players = health.players.load(Ordering::Relaxed);
        // The timer reads the clock with the count, before the sidecar calls
        // below: the empty time starts when the count was taken, not when
        // the sidecar got around to hearing of it.
        let expired = config
            .shutdown_when_empty_for
            .is_some_and(|limit| empty.expired(players, health.now(), limit));
        if players > 0 && config.allocate_on_join && !allocated && allocate_retry.due() {
            let result = sdk.allocate().await;
            let first = allocate_retry.record(&result);
            match result {
                Ok(()) => {
                    allocated = true;
                    info!(players, "Agones: Allocated (a player joined)");
                }
                Err(e) if first => warn!(error = %e, "Agones Allocate failed; retrying"),
                Err(e) => debug!(error = %e, "Agones Allocate failed again"),
            }
        }
        if mode != PlayerCount::None && reported != Some(players) && count_retry.due() {
            let result = match mode {
                PlayerCount::Counter => sdk.set_counter(&config.counter, players as u64).await,
                _ => sdk.set_label(&config.counter, &players.to_string()).await,
            };
            match result {
                Ok(()) => {
                    count_retry.record(&result);
                    debug!(players, "Agones player count updated");
                    reported = Some(players);
                }
                Err(e) if mode == PlayerCount::Counter && e.is_not_found() => {
                    warn!(
                        counter = %config.counter,
                        "the GameServer declares no Counter {:?}; reporting the player count in the label agones.dev/sdk-{} instead",
                        config.counter, config.counter
                    );
                    mode = PlayerCount::Label;
                }
                Err(e) => {
                    if count_retry.record(&Err::<(), _>(())) {
                        warn!(error = %e, "cannot update the Agones player count; retrying");
                    }
                }
            }
        }
        if expired {
            info!(empty_for = ?config.shutdown_when_empty_for, "no player left; shutting down");
            control.request_drain("empty");
        }
        if !pause(WATCH).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_timer_starts_when_the_last_player_leaves() {
        let limit = Duration::from_secs(600);
        let at = Duration::from_secs;
        let mut timer = EmptyTimer::default();
        // A warm spare nobody joined: never.
        assert!(!timer.expired(0, at(0), limit));
        assert!(!timer.expired(0, at(10_000), limit));
        assert!(!timer.expired(2, at(10_001), limit));
        assert!(!timer.expired(0, at(10_002), limit), "the timer starts");
        assert!(!timer.expired(0, at(10_500), limit));
        assert!(!timer.expired(1, at(10_501), limit), "someone came back");
        assert!(!timer.expired(0, at(10_600), limit), "starts again");
        assert!(!timer.expired(0, at(11_199), limit));
        assert!(timer.expired(0, at(11_200), limit));
        assert!(!timer.expired(0, at(20_000), limit), "once");
    }
}
