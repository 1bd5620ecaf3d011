//! The PostgreSQL / Aurora PostgreSQL world store, over `tokio-postgres`
//! with a `deadpool-postgres` connection pool. Selected by
//! `--store postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=...` (see
//! [`Config`] for every setting and the `PG*` environment variables).
//!
//! # Design
//!
//! The schema, migrations and SQL live in `pg-sql`, shared with the Aurora
//! Data API backend; read its crate docs for the tables and for why keys
//! are unique, growing and visible in order. This crate runs them:
//!
//! - **Start-up**: one dedicated connection runs the migrations (two round
//!   trips; serialised across servers by an advisory lock), then the pool
//!   opens. Each new pooled connection prepares every statement in one
//!   pipelined round trip, so operations never wait for a `PREPARE`.
//! - **Writes**: a batch is validated, planned into column arrays
//!   ([`pg_sql::WritePlan`]), and applied as one transaction: `BEGIN`,
//!   `advance_heads`, `clear_decor`, `insert_blocks` (the rows of chunks
//!   this store has not seen with a head: likely new, so plain inserts),
//!   `merge_blocks` (the rows of the others: one `MERGE`, PostgreSQL 15
//!   and later, read from the `server_version` the server reports at
//!   start-up; `upsert_blocks` on older servers), `upsert_lights`,
//!   `upsert_signs`, `delete_signs`, `COMMIT` — the set-based `unnest` form
//!   of each statement, steps without rows left out — written to the socket
//!   back to back and answered together: **one round trip per batch**,
//!   whatever its size. A failed statement aborts the transaction and the
//!   pipelined `COMMIT` becomes a rollback, so nothing of a failed batch
//!   remains. Each block row goes through one statement. A chunk guessed
//!   new that already had the row's position (another server created it)
//!   fails `insert_blocks` with a unique violation, and so does a position
//!   `merge_blocks` did not see that a writer outside this schema's rules
//!   inserted meanwhile: the batch, rolled back, is applied again with
//!   every block row upserted (one more round trip, only then). Rows of
//!   more than 16,384 blocks go in pipelined pieces, bound straight from
//!   the plan's columns. Chunks become known from receipts, loads,
//!   `changed_chunks` and `list_chunks`.
//! - **Reads**: `load_chunk` is one statement (`UNION ALL` of blocks newer
//!   than `since`, lights, signs and the head): one round trip and one
//!   snapshot. `changed_chunks` joins arrays of `(p, q, key)` against the
//!   heads in one statement; `list_chunks`, players and `ping` are one
//!   statement each.
//! - **Counters** ([`BlockStore::counters`](world_core::BlockStore::counters)):
//!   `store_requests_total{op}` counts round trips, `store_statements_total{op}`
//!   the statements they carried, `store_connections_opened_total`
//!   connections.
//!
//! # Failures and outages
//!
//! Errors map onto `StoreError` by meaning (module `error` has the table):
//! lost connections, shutdowns, timeouts → `Unavailable`; deadlocks and
//! serialization failures → `Conflict`; bad data → `Invalid`; missing
//! tables, credentials, database, TLS verification → `Config`.
//!
//! No call hangs: connecting and waiting for a pooled connection are bounded
//! by `connect_timeout`, every statement by `statement_timeout` (sent to
//! the server in the startup options, lock waits included), and the whole
//! call by their sum plus 5 s on the client; TCP keepalives and
//! `tcp_user_timeout` notice a dead peer. A connection whose state is
//! unknown after a failure or a timeout is closed, not returned to the
//! pool; the pool recycles connections the server closed (restart,
//! failover, `pg_terminate_backend`) and opens new ones as soon as the
//! server answers again. An operation that fails on a pooled connection
//! found dead is retried once on a new one (every operation is safe to
//! repeat; re-applying a batch is harmless by the trait's contract).
//!
//! # Guarantees
//!
//! - A batch is atomic (one transaction) and gets, per chunk, the keys
//!   `(before, after]` reported in its receipt; keys of a chunk become
//!   visible in order; `KeyExhausted` when a head would pass 2147483647.
//! - Several servers (several pools) may share one database and schema.
//! - `close` closes the pool; later calls fail with `Closed`.
//! - Passwords never reach logs or `Debug` output.
//!
//! [`connect_session`] opens one connection with the same settings outside
//! the pool, for the PostgreSQL fleet bus (`bus-postgres`).

mod config;
mod counters;
mod error;
mod migrate;
mod pipeline;
mod session;
mod store;
mod tls;

pub use config::{
    Config, ConfigError, DEFAULT_APPLICATION_NAME, DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE,
    DEFAULT_STATEMENT_TIMEOUT, RootCerts, SslMode,
};
pub use session::{SessionMessages, connect_session, session_error};
pub use store::PostgresStore;
