//! The pages and what feeds them:
//!
//! | path | answer |
//! |---|---|
//! | `/` | the dashboard (HTML) |
//! | `/map` | the world map (HTML) |
//! | `/assets/{file}` | the pages' scripts and style, built into the binary |
//! | `/api/status` | the dashboard's figures (JSON) |
//! | `/api/events` | server-sent events: `status` (the figures) every second, `edits` (arrays of changed blocks) as they happen |
//!
//! Everything here reads snapshots (the game loop's [`WorldView`], atomics,
//! the warning ring): no handler waits on the game loop or the store.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use futures::stream::{self, StreamExt};
use serde::Serialize;
use tokio::sync::broadcast::error::TryRecvError;

use super::AdminState;
use super::logs::{self, LogEntry};
use super::tiles::MAX_ZOOM;
use crate::world::{EditEvent, WorldView};

/// The pages allow only their own scripts, styles and images (tiles), and
/// cannot be framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// How often the event stream sends what changed.
const EVENT_TICK: Duration = Duration::from_millis(250);
/// Ticks between two `status` events.
const STATUS_EVERY: u32 = 4;
/// Edits sent in one `edits` event at most; more wait for the next tick.
const EDITS_PER_EVENT: usize = 1000;
/// Warnings shown.
const WARNINGS_SHOWN: usize = 20;

/// The embedded front end: name, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "admin.css",
        "text/css; charset=utf-8",
        include_str!("assets/admin.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/common.js"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/dashboard.js"),
    ),
    (
        "map.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/map.js"),
    ),
];

const DASHBOARD_HTML: &str = include_str!("assets/dashboard.html");
const MAP_HTML: &str = include_str!("assets/map.html");

/// The dashboard's figures: the game loop's snapshot and what the admin
/// side adds.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The game loop's snapshot (players, writes, edit rate, bus...).
    #[serde(flatten)]
    pub world: WorldView,
    /// craft-server's version.
    pub version: &'static str,
    /// Whether new players are sent here.
    pub ready: bool,
    /// Why not, when not.
    pub not_ready: Option<&'static str>,
    /// Players on this server.
    pub players_online: usize,
    /// The store's last call succeeded.
    pub store_ok: bool,
    /// Store round-trip time, smoothed, in milliseconds (`null` before the
    /// first call).
    pub store_rtt_ms: Option<f64>,
    /// Recent warnings and errors, oldest first.
    pub warnings: Vec<LogEntry>,
    /// Whether actions are possible (a token is configured); the token
    /// itself is never sent.
    pub actions: bool,
    /// Whether the rollback action has a history to work with.
    pub history: bool,
    /// The coarsest map zoom.
    pub max_zoom: u8,
}

/// The figures now.
pub(super) fn status(state: &AdminState) -> Status {
    let mut world = WorldView::clone(&state.shared.observers.view());
    let health = &state.shared.health;
    // The drain starts before the game loop's next snapshot shows it.
    world.draining |= health.draining.load(Ordering::Relaxed);
    let readiness = health.readiness();
    let mut warnings = logs::recent();
    let skip = warnings.len().saturating_sub(WARNINGS_SHOWN);
    warnings.drain(..skip);
    Status {
        version: env!("CARGO_PKG_VERSION"),
        ready: readiness.is_ok(),
        not_ready: readiness.err(),
        players_online: world.players.len(),
        store_ok: health.store_ok.load(Ordering::Relaxed),
        store_rtt_ms: state
            .shared
            .metrics
            .store_rtt
            .get()
            .map(|d| d.as_secs_f64() * 1000.0),
        warnings,
        actions: state.app.auth.configured(),
        history: state.app.history.is_some(),
        max_zoom: MAX_ZOOM,
        world,
    }
}

pub(super) async fn status_json(State(state): State<AdminState>) -> Json<Status> {
    Json(status(&state))
}

pub(super) async fn events(
    State(state): State<AdminState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let edits = state.shared.observers.watch_edits();
    let mut tick = tokio::time::interval(EVENT_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream = stream::unfold(
        (state, edits, tick, 0u32),
        |(state, mut edits, mut tick, n)| async move {
            tick.tick().await;
            let mut out = Vec::new();
            let mut batch: Vec<EditEvent> = Vec::new();
            while batch.len() < EDITS_PER_EVENT {
                match edits.try_recv() {
                    Ok(edit) => batch.push(edit),
                    // Missed edits only miss their highlight; tiles are
                    // invalidated on the server side.
                    Err(TryRecvError::Lagged(_)) => continue,
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            if !batch.is_empty() {
                out.push(json_event("edits", &batch));
            }
            if n % STATUS_EVERY == 0 {
                out.push(json_event("status", &status(&state)));
            }
            Some((stream::iter(out), (state, edits, tick, n.wrapping_add(1))))
        },
    )
    .flatten()
    .map(Ok);
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn json_event(name: &str, data: &impl Serialize) -> Event {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "null".to_owned());
    Event::default().event(name).data(data)
}

fn page(html: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

pub(super) async fn dashboard_page() -> Response {
    page(DASHBOARD_HTML)
}

pub(super) async fn map_page() -> Response {
    page(MAP_HTML)
}

pub(super) async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}
