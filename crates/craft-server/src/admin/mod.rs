//! The admin HTTP listener (`admin_listen`, off unless set): probes and
//! metrics for Kubernetes and Prometheus, and a page for people.
//!
//! | path | answer |
//! |---|---|
//! | `/healthz` | liveness: 200 while the game loop turns (it turns at least every 250 ms); 503 once it has not for `stall_timeout` |
//! | `/readyz` | readiness: 200 when the store answers, the server is not draining, not full and not read-only (too many edits waiting for the store); 503 with the reason otherwise |
//! | `/metrics` | every metric in the OpenMetrics text format (what `prometheus-client` encodes; Prometheus scrapes it as is) |
//! | `/`, `/map`, `/assets/…`, `/api/status`, `/api/events` | the dashboard and the live map ([`dashboard`]) |
//! | `/tiles/{zoom}/{x}/{y}` | map tiles, PNG ([`map`], [`tiles`]) |
//! | `POST /api/kick`, `/api/broadcast`, `/api/drain`, `/api/rollback` | operator actions, with the token ([`actions`], [`auth`]) |
//!
//! Probe handlers only read atomics and encode metrics: they never wait on
//! the game loop or the store, so a probe answers even when both are
//! stuck. The pages read the game loop's published snapshots; only tiles
//! and actions talk to it (as events) or to the store.

pub mod actions;
pub mod auth;
pub mod dashboard;
pub mod logs;
pub mod map;
mod settings;
pub mod tiles;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::server::Shared;
pub use settings::{AdminConfig, AdminToken};

/// The content type of `/metrics`: `prometheus_client::encoding::text`
/// writes OpenMetrics 1.0 (ending in `# EOF`).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const TEXT: &str = "text/plain; charset=utf-8";

/// The longest an admin request waits for the game loop (a stuck loop
/// makes the request fail, never hang).
const LOOP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
struct AdminState {
    shared: Shared,
    stall_timeout: Duration,
    app: Arc<App>,
}

/// What the page's handlers share.
#[derive(Debug)]
struct App {
    auth: auth::Auth,
    tiles: map::Tiles,
    history: Option<Arc<dyn actions::History>>,
}

impl AdminState {
    fn new(shared: Shared, stall_timeout: Duration) -> Self {
        let app = App {
            auth: auth::Auth::new(&shared.admin, |name| std::env::var(name).ok()),
            tiles: map::Tiles::new(shared.observers.clone(), &shared.admin),
            history: actions::history(&shared),
        };
        Self {
            shared,
            stall_timeout,
            app: Arc::new(app),
        }
    }
}

/// The admin routes over `shared`; `/healthz` fails once the game loop has
/// not turned for `stall_timeout`.
pub fn router(shared: Shared, stall_timeout: Duration) -> Router {
    routes(AdminState::new(shared, stall_timeout))
}

fn routes(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", get(dashboard::dashboard_page))
        .route("/map", get(dashboard::map_page))
        .route("/assets/{name}", get(dashboard::asset))
        .route("/api/status", get(dashboard::status_json))
        .route("/api/events", get(dashboard::events))
        .route("/tiles/{zoom}/{x}/{y}", get(map::tile))
        .route("/api/kick", post(actions::kick))
        .route("/api/broadcast", post(actions::broadcast))
        .route("/api/drain", post(actions::drain))
        .route("/api/rollback", post(actions::rollback))
        .with_state(state)
}

/// Serves the admin routes on `listener` until the task is dropped (the
/// process exits): probes keep answering during the drain, when readiness
/// says `draining`.
pub async fn serve(listener: TcpListener, shared: Shared, stall_timeout: Duration) {
    let state = AdminState::new(shared, stall_timeout);
    if let Ok(addr) = listener.local_addr() {
        let actions = if state.app.auth.configured() {
            "actions with the token"
        } else {
            "read-only: no admin token"
        };
        info!(%addr, "admin listener: /healthz /readyz /metrics, the page on / ({actions})");
    }
    if let Err(e) = axum::serve(listener, routes(state)).await {
        error!(error = %e, "the admin listener stopped");
    }
}

/// Binds `addr` (a clear error when taken) and serves in a task.
pub async fn spawn(
    addr: SocketAddr,
    shared: Shared,
    stall_timeout: Duration,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    auth::Auth::new(&shared.admin, |name| std::env::var(name).ok()).preflight()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (admin_listen): {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("admin listener on {addr}: {e}"))?;
    Ok((bound, tokio::spawn(serve(listener, shared, stall_timeout))))
}

async fn healthz(State(state): State<AdminState>) -> impl IntoResponse {
    let since = state.shared.health.since_last_turn();
    if state
        .shared
        .health
        .drained
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        // The game loop has stopped on purpose; restarting would not help.
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, TEXT)],
            "drained\n".to_owned(),
        )
    } else if since < state.stall_timeout {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, TEXT)],
            "ok\n".to_owned(),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, TEXT)],
            format!(
                "game loop stuck: last turn {:.1}s ago\n",
                since.as_secs_f64()
            ),
        )
    }
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    // The bus is reported, never a reason to refuse players: play goes on
    // without it (the store sync repairs what it would have carried).
    let bus = state
        .shared
        .metrics
        .bus_status()
        .map(|s| {
            let state = if s.connected {
                "connected"
            } else {
                "disconnected"
            };
            format!("bus: {} {state}\n", s.backend)
        })
        .unwrap_or_default();
    match state.shared.health.readiness() {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, TEXT)],
            format!("ready\n{bus}"),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, TEXT)],
            format!("{reason}\n{bus}"),
        ),
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.shared.metrics.render(),
    )
}
