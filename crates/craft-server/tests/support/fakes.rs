//! Peers the server talks to on an orchestrator, played in process over
//! real sockets: the Agones SDK sidecar's REST API and the EC2 instance
//! metadata service (IMDSv2, token required). Also a store that can be
//! made unavailable or slow, and that notes what it did in a shared
//! journal (to check the order of store writes and sidecar calls). And
//! the identity service of `--login-url`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::{any, post};
use world_core::store::{ForwardingStore, MemoryStore, StoreCall, StoreResult};
use world_core::{BlockStore, StoreError};

/// What happened, in order, across the store and the fakes.
pub type Journal = Arc<Mutex<Vec<String>>>;

/// A fresh journal.
pub fn journal() -> Journal {
    Arc::new(Mutex::new(Vec::new()))
}

fn note(journal: &Journal, entry: String) {
    journal.lock().expect("journal").push(entry);
}

/// Polls `cond` every 20 ms until it holds or `within` passes.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

// --- store ---------------------------------------------------------------

/// A [`MemoryStore`] that can refuse pings, hold writes, and journals
/// `apply` and `close`.
#[derive(Debug, Default)]
pub struct TestStore {
    /// The data.
    pub inner: MemoryStore,
    /// `ping` fails (as an unavailable store) while set.
    pub ping_down: AtomicBool,
    /// `apply` waits while set.
    pub hold_apply: AtomicBool,
    /// `list_chunks` waits while set.
    pub hold_list: AtomicBool,
    /// `list_chunks` calls started.
    pub lists: AtomicUsize,
    journal: Option<Journal>,
}

impl TestStore {
    /// A store journaling into `journal`.
    pub fn journaled(journal: Journal) -> Self {
        Self {
            journal: Some(journal),
            ..Self::default()
        }
    }

    fn note(&self, entry: String) {
        if let Some(j) = &self.journal {
            note(j, entry);
        }
    }
}

#[async_trait]
impl ForwardingStore for TestStore {
    fn target(&self) -> &dyn BlockStore {
        &self.inner
    }

    async fn before(&self, call: StoreCall<'_>) -> StoreResult<()> {
        match call {
            StoreCall::Apply(_) => {
                while self.hold_apply.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            StoreCall::Ping if self.ping_down.load(Ordering::SeqCst) => {
                return Err(StoreError::unavailable(
                    "test store is down",
                    std::io::Error::other("down"),
                ));
            }
            StoreCall::Close => self.note("store: close".to_owned()),
            StoreCall::ListChunks => {
                self.lists.fetch_add(1, Ordering::SeqCst);
                while self.hold_list.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn after(&self, call: StoreCall<'_>, _: Duration, outcome: Result<(), &StoreError>) {
        if let (StoreCall::Apply(batch), Ok(())) = (call, outcome) {
            self.note(format!("store: apply {}", batch.len()));
        }
    }
}

// --- Agones SDK sidecar ----------------------------------------------------

/// One call the fake sidecar received.
#[derive(Clone, Debug)]
pub struct SdkCall {
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// JSON body (`null` when empty or not JSON).
    pub body: serde_json::Value,
    /// The status it was answered with.
    pub status: u16,
}

#[derive(Debug, Default)]
struct AgonesState {
    calls: Mutex<Vec<SdkCall>>,
    journal: Option<Journal>,
    counter_missing: AtomicBool,
    ready_failures: AtomicUsize,
}

/// The Agones SDK sidecar's REST API, recording every call.
#[derive(Debug)]
pub struct FakeAgones {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<AgonesState>,
}

impl FakeAgones {
    /// Starts it; calls are also noted in `journal` when given.
    pub async fn start(journal: Option<Journal>) -> Self {
        let state = Arc::new(AgonesState {
            journal,
            ..AgonesState::default()
        });
        let router = Router::new()
            .fallback(any(agones_call))
            .with_state(state.clone());
        Self {
            addr: serve(router).await,
            state,
        }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers Counter calls with 404 (a GameServer without the Counter).
    pub fn without_counter(&self) {
        self.state.counter_missing.store(true, Ordering::SeqCst);
    }

    /// Answers the next `n` `Ready` calls with 503 (a sidecar starting).
    pub fn fail_ready(&self, n: usize) {
        self.state.ready_failures.store(n, Ordering::SeqCst);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<SdkCall> {
        self.state.calls.lock().expect("calls").clone()
    }

    /// Calls to `path` (any method) answered 2xx.
    pub fn ok(&self, path: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.path == path && c.status < 300)
            .count()
    }

    /// The player counts set through the Counter `name`, in order.
    pub fn counts(&self, name: &str) -> Vec<String> {
        let path = format!("/v1beta1/counters/{name}");
        self.calls()
            .iter()
            .filter(|c| c.path == path && c.method == "PATCH" && c.status < 300)
            .filter_map(|c| {
                c.body
                    .get("count")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .collect()
    }
}

async fn agones_call(
    State(state): State<Arc<AgonesState>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> (StatusCode, String) {
    let path = uri.path().to_owned();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let (status, answer) = match (method.as_str(), path.as_str()) {
        ("POST", "/ready") => {
            let failing = state
                .ready_failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                (StatusCode::SERVICE_UNAVAILABLE, "starting".to_owned())
            } else {
                (StatusCode::OK, "{}".to_owned())
            }
        }
        ("POST", "/health" | "/allocate" | "/shutdown") | ("PUT", "/metadata/label") => {
            (StatusCode::OK, "{}".to_owned())
        }
        ("PATCH", p) if p.starts_with("/v1beta1/counters/") => {
            if state.counter_missing.load(Ordering::SeqCst) {
                (
                    StatusCode::NOT_FOUND,
                    r#"{"code":5,"message":"counter not found"}"#.to_owned(),
                )
            } else {
                let name = p.trim_start_matches("/v1beta1/counters/");
                let count = json.get("count").cloned().unwrap_or_default();
                (
                    StatusCode::OK,
                    serde_json::json!({"name": name, "count": count, "capacity": "1000"})
                        .to_string(),
                )
            }
        }
        _ => (StatusCode::NOT_FOUND, "no such SDK call".to_owned()),
    };
    if let Some(j) = &state.journal {
        note(j, format!("agones: {method} {path} {}", status.as_u16()));
    }
    state.calls.lock().expect("calls").push(SdkCall {
        method: method.to_string(),
        path,
        body: json,
        status: status.as_u16(),
    });
    (status, answer)
}

// --- EC2 instance metadata service ----------------------------------------

#[derive(Debug, Default)]
struct ImdsState {
    tokens: Mutex<HashSet<String>>,
    issued: AtomicUsize,
    served: AtomicUsize,
    refused: AtomicUsize,
    instance_action: Mutex<Option<String>>,
    rebalance: Mutex<Option<String>>,
}

/// IMDSv2: `PUT /latest/api/token` with a TTL header issues a token; every
/// GET without a valid token is answered 401.
#[derive(Debug)]
pub struct FakeImds {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<ImdsState>,
}

impl FakeImds {
    /// Starts it with no notice.
    pub async fn start() -> Self {
        let state = Arc::new(ImdsState::default());
        let router = Router::new()
            .fallback(any(imds_call))
            .with_state(state.clone());
        Self {
            addr: serve(router).await,
            state,
        }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Publishes `spot/instance-action`.
    pub fn interrupt(&self, body: &str) {
        *self.state.instance_action.lock().expect("state") = Some(body.to_owned());
    }

    /// Publishes `events/recommendations/rebalance`.
    pub fn recommend_rebalance(&self, body: &str) {
        *self.state.rebalance.lock().expect("state") = Some(body.to_owned());
    }

    /// Invalidates every token issued so far.
    pub fn expire_tokens(&self) {
        self.state.tokens.lock().expect("tokens").clear();
    }

    /// Tokens issued.
    pub fn issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }

    /// GETs answered with a valid token.
    pub fn served(&self) -> usize {
        self.state.served.load(Ordering::SeqCst)
    }

    /// GETs refused for a missing or invalid token.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }
}

async fn imds_call(
    State(state): State<Arc<ImdsState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match (method.as_str(), uri.path()) {
        ("PUT", "/latest/api/token") => {
            let ttl = header("x-aws-ec2-metadata-token-ttl-seconds")
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|t| (1..=21_600).contains(t));
            if ttl.is_none() {
                return (StatusCode::BAD_REQUEST, "missing or invalid TTL".to_owned());
            }
            let n = state.issued.fetch_add(1, Ordering::SeqCst);
            let token = format!("token-{n}");
            state.tokens.lock().expect("tokens").insert(token.clone());
            (StatusCode::OK, token)
        }
        ("GET", path) => {
            let valid = header("x-aws-ec2-metadata-token")
                .is_some_and(|t| state.tokens.lock().expect("tokens").contains(&t));
            if !valid {
                state.refused.fetch_add(1, Ordering::SeqCst);
                return (StatusCode::UNAUTHORIZED, String::new());
            }
            state.served.fetch_add(1, Ordering::SeqCst);
            let notice = match path {
                "/latest/meta-data/spot/instance-action" => {
                    state.instance_action.lock().expect("state").clone()
                }
                "/latest/meta-data/events/recommendations/rebalance" => {
                    state.rebalance.lock().expect("state").clone()
                }
                _ => None,
            };
            match notice {
                Some(body) => (StatusCode::OK, body),
                None => (StatusCode::NOT_FOUND, "Not Found".to_owned()),
            }
        }
        _ => (StatusCode::METHOD_NOT_ALLOWED, String::new()),
    }
}

#[derive(serde::Deserialize)]
struct Access {
    username: String,
    access_token: String,
}

/// An identity service (the original's `/api/1/access`): token `good` is
/// valid for anyone (the user id is the name's length); `slow` never
/// answers in time; anything else is refused.
pub async fn identity() -> SocketAddr {
    let app = Router::new().route(
        "/api/1/access",
        post(|Form(access): Form<Access>| async move {
            match access.access_token.as_str() {
                "good" => (StatusCode::OK, access.username.len().to_string()),
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    (StatusCode::OK, "1".to_owned())
                }
                _ => (StatusCode::FORBIDDEN, String::new()),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
