//! A development server that speaks the Amazon RDS Data API's REST-JSON
//! contract over PostgreSQL, so that code written with `aws-sdk-rdsdata`
//! can be tested without AWS. It is a development tool, not a production
//! proxy: it has no authentication, trusts its callers and keeps state in
//! memory.
//!
//! # Design
//!
//! - [`server`]: axum routes for `POST /Execute`, `/BatchExecute`,
//!   `/BeginTransaction`, `/CommitTransaction`, `/RollbackTransaction` (the
//!   paths of the SDK's serializers) and the local-only `/_local/resuming`.
//! - [`sql`]: `:name` placeholders become `$n` PostgreSQL parameters; values
//!   are always bound, never spliced into SQL text.
//! - [`params`] / [`values`]: `Field` values in and out, typed as the service
//!   types them for Aurora PostgreSQL.
//! - [`exec`]: one statement or a pipelined batch on a connection.
//! - [`txn`]: transactions hold a dedicated connection with an open
//!   PostgreSQL transaction; idle ones expire.
//! - [`pool`]: connections per database of the server of `--postgres`.
//!
//! Each call runs in a task that owns its connection: the call answers
//! `StatementTimeoutException` when the statement timeout passes, and the
//! statement is cancelled (or, with `continueAfterTimeout`, goes on) while
//! the connection still returns where it belongs.
//!
//! # Guarantees
//!
//! - A call without `transactionId` runs in its own transaction (autocommit);
//!   a batch without one is atomic.
//! - A statement error inside a transaction ends it (rolled back), and later
//!   calls with its id get `TransactionNotFoundException`, as on AWS.
//! - No state survives a restart: transactions in flight are rolled back.

pub mod api;
pub mod error;
pub mod exec;
pub mod params;
pub mod pool;
pub mod server;
pub mod sql;
pub mod txn;
pub mod values;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::info;

pub use error::ApiError;

/// What to do with the `schema` request parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SchemaMode {
    /// Refuse it with `ValidationException`, as Aurora Serverless v2 and
    /// provisioned clusters do.
    #[default]
    Reject,
    /// Use it as the `search_path` of the call (a local convenience).
    SearchPath,
}

/// Command-line options.
#[derive(Clone, clap::Parser)]
#[command(
    name = "dataapi-local",
    version,
    about = "A development server speaking the Amazon RDS Data API over PostgreSQL"
)]
pub struct Options {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// PostgreSQL URL or key=value string; its database is the default one,
    /// and a request's `database` selects another on the same server.
    #[arg(long, env = "DATAAPI_LOCAL_POSTGRES")]
    pub postgres: String,
    /// How long a call waits for its statement (the service: 45 s).
    #[arg(long, default_value = "45s", value_parser = humantime::parse_duration)]
    pub statement_timeout: Duration,
    /// Idle time after which a transaction is rolled back (the service: 3 min).
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub transaction_idle_timeout: Duration,
    /// Longest life of a transaction (the service: 24 h).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub transaction_max_lifetime: Duration,
    /// Answer DatabaseResumingException to the first N calls.
    #[arg(long, default_value_t = 0)]
    pub resuming_calls: u64,
    /// Answer DatabaseResumingException for this long after start.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub resuming_for: Option<Duration>,
    /// What to do with the `schema` parameter.
    #[arg(long, value_enum, default_value_t = SchemaMode::Reject)]
    pub schema_parameter: SchemaMode,
    /// The result size limit in bytes (the service: 1 MiB).
    #[arg(long, default_value_t = exec::MAX_RESULT_BYTES)]
    pub max_result_bytes: usize,
    /// The size limit of one result row in bytes (the service: 64 KB).
    #[arg(long, default_value_t = exec::MAX_ROW_BYTES)]
    pub max_row_bytes: usize,
}

impl Options {
    /// Options with the service's defaults for a PostgreSQL URL, listening
    /// on a free loopback port.
    pub fn new(postgres: impl Into<String>) -> Options {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            postgres: postgres.into(),
            statement_timeout: Duration::from_secs(45),
            transaction_idle_timeout: Duration::from_secs(180),
            transaction_max_lifetime: Duration::from_secs(24 * 3600),
            resuming_calls: 0,
            resuming_for: None,
            schema_parameter: SchemaMode::Reject,
            max_result_bytes: exec::MAX_RESULT_BYTES,
            max_row_bytes: exec::MAX_ROW_BYTES,
        }
    }
}

/// `Debug` shows where PostgreSQL is but never its password.
impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let postgres = match tokio_postgres::Config::from_str(&self.postgres) {
            Ok(c) => format!(
                "host={:?} port={:?} user={:?} dbname={:?} password={}",
                c.get_hosts(),
                c.get_ports(),
                c.get_user(),
                c.get_dbname(),
                if c.get_password().is_some() {
                    "<redacted>"
                } else {
                    "<none>"
                }
            ),
            Err(_) => "<unparsable>".to_owned(),
        };
        f.debug_struct("Options")
            .field("listen", &self.listen)
            .field("postgres", &postgres)
            .field("statement_timeout", &self.statement_timeout)
            .field("transaction_idle_timeout", &self.transaction_idle_timeout)
            .field("transaction_max_lifetime", &self.transaction_max_lifetime)
            .field("resuming_calls", &self.resuming_calls)
            .field("resuming_for", &self.resuming_for)
            .field("schema_parameter", &self.schema_parameter)
            .field("max_result_bytes", &self.max_result_bytes)
            .field("max_row_bytes", &self.max_row_bytes)
            .finish()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `--postgres` is not a PostgreSQL connection string.
    #[error("invalid --postgres connection string: {0}")]
    Postgres(#[source] tokio_postgres::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A running server.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the endpoint URL for the SDK.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting calls, lets running ones finish, and rolls back open
    /// transactions.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Waits until the server stops on its own (it only stops on
    /// [`RunningServer::shutdown`] or an I/O error).
    pub async fn wait(mut self) -> std::io::Result<()> {
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Binds the listen address and serves in the background.
pub async fn start(options: Options) -> Result<RunningServer, StartError> {
    let pg = tokio_postgres::Config::from_str(&options.postgres).map_err(StartError::Postgres)?;
    let listener =
        TcpListener::bind(options.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: options.listen,
                source,
            })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: options.listen,
        source,
    })?;
    let state = Arc::new(server::AppState::new(
        pool::Pool::new(pg),
        txn::Registry::new(
            options.transaction_idle_timeout,
            options.transaction_max_lifetime,
        ),
        options.statement_timeout,
        options.schema_parameter,
        options.resuming_calls,
        options.resuming_for,
        server::AnswerLimits {
            result_bytes: options.max_result_bytes,
            row_bytes: options.max_row_bytes,
        },
    ));
    spawn_reaper(Arc::downgrade(&state), state.txns.reap_interval());
    let (tx, rx) = oneshot::channel::<()>();
    let app = server::router(Arc::clone(&state));
    info!(%addr, ?options, "dataapi-local listening");
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        state.txns.clear();
        state.pool.clear();
        result
    });
    Ok(RunningServer {
        addr,
        shutdown: Some(tx),
        task,
    })
}

/// Rolls back expired transactions in the background until the server is
/// gone.
fn spawn_reaper(state: Weak<server::AppState>, interval: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(state) = state.upgrade() else {
                return;
            };
            let expired = state.txns.reap();
            if !expired.is_empty() {
                info!(count = expired.len(), "rolled back expired transactions");
            }
            // Dropping the connections closes them: PostgreSQL rolls back.
            drop(expired);
        }
    });
}
