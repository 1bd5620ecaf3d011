//! `POST /api/kick`, `/api/broadcast`, `/api/drain`, `/api/rollback`:
//! what an operator holding the token may do.
//!
//! Every action checks the token first ([`Auth`](super::auth::Auth)):
//! without a configured token every action is 403; a missing or wrong one
//! is 401. Each then goes to the game loop as an event, or to
//! [`Control`](crate::lifecycle::Control) for the drain, and is logged.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::oneshot;
use tracing::info;

use super::auth::Refusal;
use super::{AdminState, LOOP_TIMEOUT};
use crate::world::{AdminRequest, PlayerRef};

/// Longest chat line an operator may broadcast (the client keeps 256
/// bytes of a chat line).
const MAX_BROADCAST: usize = 250;

/// A JSON error answer: `{"error": "..."}`.
pub(super) fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

/// Checks the token, then reads the JSON body: a caller without the token
/// learns nothing, not even whether its body would have been valid.
async fn authorized<T: DeserializeOwned>(
    state: &AdminState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Response> {
    state
        .app
        .auth
        .check(headers)
        .await
        .map_err(IntoResponse::into_response)?;
    serde_json::from_slice(body).map_err(|e| error(StatusCode::BAD_REQUEST, e))
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NotConfigured => error(StatusCode::FORBIDDEN, self),
            Refusal::Unreadable => error(StatusCode::SERVICE_UNAVAILABLE, self),
            Refusal::Missing | Refusal::Wrong => {
                let mut response = error(StatusCode::UNAUTHORIZED, self);
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                response
            }
        }
    }
}

/// What a rollback undoes: the edits of `user` (every user when absent)
/// since `since_ms` (milliseconds since the Unix epoch).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct RollbackRequest {
    /// Whose edits.
    #[serde(default)]
    pub user: Option<String>,
    /// From when.
    pub since_ms: i64,
}

/// What a rollback did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RollbackOutcome {
    /// Positions put back (blocks, lights and sign faces).
    pub blocks: usize,
}

/// Why a rollback failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The request cannot be done (bad range, unknown user...).
    #[error("{0}")]
    Invalid(String),
    /// The history could not be read or written.
    #[error("block history unavailable: {0}")]
    Unavailable(String),
}

/// Block history: what the rollback action calls. [`history`] gives
/// none when the server does not record history, and the action answers
/// 501.
#[async_trait]
pub trait History: Send + Sync + std::fmt::Debug {
    /// Puts back what `request` names.
    async fn rollback(&self, request: &RollbackRequest) -> Result<RollbackOutcome, HistoryError>;
}

/// The block history of this server, if it keeps one.
pub fn history(state: &crate::server::Shared) -> Option<Arc<dyn History>> {
    state.history.then(|| {
        Arc::new(StoreHistory {
            observers: state.observers.clone(),
        }) as Arc<dyn History>
    })
}

/// Rollback through the game loop's store ([`crate::history::rollback`]),
/// then a resync of the written chunks so that players see them.
#[derive(Debug)]
struct StoreHistory {
    observers: Arc<crate::world::Observers>,
}

/// The author the page's rollbacks are recorded under.
const ADMIN_AUTHOR: &str = "admin";

#[async_trait]
impl History for StoreHistory {
    async fn rollback(&self, request: &RollbackRequest) -> Result<RollbackOutcome, HistoryError> {
        use crate::history::{self as hist, RollbackError};
        use world_core::StoreError;
        if request.since_ms < 0 {
            return Err(HistoryError::Invalid(
                "since_ms must not be negative".into(),
            ));
        }
        if request.user.as_deref().is_some_and(str::is_empty) {
            return Err(HistoryError::Invalid("user must not be empty".into()));
        }
        let store = self
            .observers
            .store()
            .ok_or_else(|| HistoryError::Unavailable("the game loop is not running".into()))?;
        let rollback = hist::RollbackRequest {
            author: request.user.clone(),
            since_ms: request.since_ms,
            area: None,
            by: world_core::store::Author::user(ADMIN_AUTHOR),
            now_ms: hist::now_ms(),
        };
        match hist::rollback(&*store, &rollback).await {
            Ok(report) => {
                let blocks = report.restored;
                let chunks = report.chunks;
                self.observers
                    .request(AdminRequest::Resync { chunks })
                    .await;
                Ok(RollbackOutcome { blocks })
            }
            Err(e @ RollbackError::TooMany) => Err(HistoryError::Invalid(e.to_string())),
            Err(RollbackError::Store(
                e @ (StoreError::Invalid(_) | StoreError::Unsupported(_)),
            )) => Err(HistoryError::Invalid(e.to_string())),
            Err(RollbackError::Store(e)) => Err(HistoryError::Unavailable(e.to_string())),
        }
    }
}

/// `{"id": 3}` or `{"nick": "alice"}`.
#[derive(Debug, Deserialize)]
pub(super) struct KickBody {
    id: Option<u32>,
    nick: Option<String>,
}

pub(super) async fn kick(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: KickBody = match authorized(&state, &headers, &body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let player = match (body.id, body.nick) {
        (Some(id), _) => PlayerRef::Id(id),
        (None, Some(nick)) => PlayerRef::Nick(nick),
        (None, None) => return error(StatusCode::BAD_REQUEST, "name a player: id or nick"),
    };
    let (reply, answer) = oneshot::channel();
    let request = AdminRequest::Kick {
        player: player.clone(),
        reply,
    };
    let asked = async {
        if state.shared.observers.request(request).await {
            answer.await.ok()
        } else {
            None
        }
    };
    match tokio::time::timeout(LOOP_TIMEOUT, asked).await {
        Ok(Some(Some(nick))) => {
            info!(%nick, "operator kicked a player");
            Json(json!({ "kicked": nick })).into_response()
        }
        Ok(Some(None)) => error(StatusCode::NOT_FOUND, format!("no such player: {player}")),
        Ok(None) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the game loop is not running",
        ),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the game loop does not answer",
        ),
    }
}

/// `{"text": "..."}`.
#[derive(Debug, Deserialize)]
pub(super) struct BroadcastBody {
    text: String,
}

pub(super) async fn broadcast(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: BroadcastBody = match authorized(&state, &headers, &body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let text = body.text.trim();
    if text.is_empty() || text.len() > MAX_BROADCAST {
        return error(
            StatusCode::BAD_REQUEST,
            format!("the message must have 1 to {MAX_BROADCAST} bytes"),
        );
    }
    match tokio::time::timeout(LOOP_TIMEOUT, state.shared.control.announce(text)).await {
        Ok(true) => {}
        Ok(false) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the game loop is not running",
            );
        }
        Err(_) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the game loop does not answer",
            );
        }
    }
    info!(text, "operator broadcast a message");
    Json(json!({ "sent": text })).into_response()
}

pub(super) async fn drain(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(refusal) = state.app.auth.check(&headers).await {
        return refusal.into_response();
    }
    state.shared.control.request_drain("operator");
    (
        StatusCode::ACCEPTED,
        Json(json!({ "draining": true, "reason": state.shared.control.drain_reason() })),
    )
        .into_response()
}

pub(super) async fn rollback(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: RollbackRequest = match authorized(&state, &headers, &body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(history) = &state.app.history else {
        return error(StatusCode::NOT_IMPLEMENTED, "history is not enabled");
    };
    match history.rollback(&body).await {
        Ok(outcome) => {
            info!(?body, blocks = outcome.blocks, "operator rolled back edits");
            Json(outcome).into_response()
        }
        Err(e @ HistoryError::Invalid(_)) => error(StatusCode::BAD_REQUEST, e),
        Err(e @ HistoryError::Unavailable(_)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}
