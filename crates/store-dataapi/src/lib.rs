//! The world store on Aurora PostgreSQL through the **RDS Data API**
//! (`aws-sdk-rdsdata`): HTTPS calls, no connection pool, and a database
//! that may be auto-paused. Selected by
//! `--store dataapi://DATABASE?resource_arn=…&secret_arn=…&schema=…` or,
//! in the seed's fleets, by `dataapi://` and the environment variables
//! `CLUSTER_ARN`, `SECRET_ARN`, `DB_NAME`, `REGION` ([`Config`] has every
//! setting).
//!
//! # Design
//!
//! The schema, migrations and SQL are `pg-sql`'s, the same as
//! `store-postgres` runs over tokio-postgres (read pg-sql's crate docs for
//! the tables and for why keys are unique, growing and visible in order).
//! The tables are named schema-qualified in the SQL (`"craft".block`,
//! [`pg_sql::SchemaName`]: a validated, quoted identifier); the Data API's
//! `schema` request parameter is never sent (Aurora Serverless v2 refuses
//! it). Every value is a typed Data API parameter (`longValue`,
//! `doubleValue`, `stringValue`, `isNull`); none is ever spliced into SQL
//! text.
//!
//! | operation | pg-sql statement | Data API calls |
//! |---|---|---|
//! | start-up | [`pg_sql::MigrationScript`] | `BeginTransaction`, one `ExecuteStatement` per statement, `CommitTransaction` (serialised across servers by an advisory lock) |
//! | `apply`: heads | `advance_heads`, [`Form::Arrays`](pg_sql::Form::Arrays) (`write_form=values` or `json`: [`Form::Json`](pg_sql::Form::Json)) | `ExecuteStatement` in the transaction (it returns the new heads), split by 5,000 chunks |
//! | `apply`: clears, blocks, lights, signs | `clear_decor`, `insert_blocks_new_chunks` (rows of chunks the batch created) and `upsert_blocks_old_chunks` (the others), `upsert_lights`, `upsert_signs`, `delete_signs`, [`Form::Arrays`](pg_sql::Form::Arrays) | one `ExecuteStatement` per statement with rows, in the transaction, one array-literal parameter per column, split under the request limit (`write_form=values`: [`Form::Values`](pg_sql::Form::Values) as `BatchExecuteStatement`, one parameter set per row; `write_form=json`: [`Form::Json`](pg_sql::Form::Json), one `ExecuteStatement` per statement) |
//! | `apply`: key exhaustion | `chunk_heads`, JSON form | one `ExecuteStatement` after the failed transaction |
//! | `load_chunk` | `load_chunk_page` with [`pg_sql::ChunkPager`] | one `ExecuteStatement` per page: one for nearly every chunk |
//! | `changed_chunks` | `changed_chunks`, JSON form | `ExecuteStatement`, one per `page_rows` chunks held |
//! | `list_chunks` | `list_chunks_page` | `ExecuteStatement` per `page_rows` chunks |
//! | `load_player`, `ping` | `load_player`, `ping` | one `ExecuteStatement` |
//! | `save_players` | `save_players`, JSON form | one `ExecuteStatement` (split under the request limit) |
//!
//! # What a batch guarantees
//!
//! A batch is one Data API transaction: `BeginTransaction`,
//! `advance_heads` (locking the touched chunks' head rows in `(p, q)`
//! order until the end of the transaction, so that keys of a chunk become
//! visible in order exactly as with store-postgres), the write steps, and
//! `CommitTransaction`. It is atomic: any failure before the commit rolls
//! back (`RollbackTransaction`, or the service ends the transaction itself
//! after a statement error) and leaves nothing. A head that would pass
//! 2147483647 fails `advance_heads` with SQLSTATE 22003: nothing is
//! written, and [`StoreError::KeyExhausted`](world_core::StoreError::KeyExhausted)
//! names the chunk. A commit whose answer was lost may or may not have
//! been applied; the store then applies the batch again (a new
//! transaction), which the trait's contract makes harmless: values end the
//! same, keys grow again, and the receipt describes the last application.
//!
//! # Retries
//!
//! The SDK's own retries are off; the store retries by meaning (module
//! `error` has the table), a whole batch at a time for writes and one call
//! at a time for reads:
//!
//! - `DatabaseResumingException` (the auto-paused database is waking up):
//!   waits of 250 ms doubling to 5 s, for up to `resume_wait` (90 s by
//!   default) from the first such answer; then `Unavailable`.
//! - Throttling, HTTP 5xx, `StatementTimeoutException`, call timeouts,
//!   unreachable endpoint, a lost transaction, SQLSTATEs meaning the
//!   database is restarting: waits of 100 ms doubling to 5 s, up to
//!   `max_attempts` (4) attempts; then `Unavailable`.
//! - Everything else fails at once with the `StoreError` of its meaning:
//!   database errors by SQLSTATE ([`pg_sql::classify_sqlstate`]: deadlocks
//!   `Conflict`, bad data `Invalid`, missing tables `Config`), refused
//!   requests `Invalid`, denied credentials and unusable cluster, secret or
//!   database `Config`.
//!
//! Waits are jittered. Each HTTP call is bounded by `call_timeout` (60 s;
//! the service stops a statement at 45 s and answers
//! `StatementTimeoutException`) and connecting by `connect_timeout`.
//!
//! # Limits
//!
//! - **Requests**: at most 4 MiB (HTTP headers and JSON notation
//!   included, BatchExecuteStatement API reference). Batch steps are split
//!   by an upper bound of each row's size in the request (its element of
//!   every column's array literal, escaped as JSON; `values`: its parameter
//!   set; `json`: its object) so that every call stays under
//!   `max_request_bytes` minus 16 KiB; `values` also sends at most 10,000
//!   parameter sets per call (bounding the answer and the call's time).
//!   A 50,000-change import batch of blocks is 1 call in the arrays form
//!   (about 55 bytes a row; 4 MiB holds about 70,000), 6 with `values`, 2
//!   with `json`. The SQL text stays far under the model's 65,536
//!   characters: it never grows with the rows.
//! - **Answers**: at most 1 MiB, never truncated: `load_chunk` reads pages
//!   of `page_rows` blocks (by key), lights (by position) and
//!   `page_rows / 50` signs (by position, text up to 1 KiB each), and
//!   halves the page when the service still finds an answer too large;
//!   a 20,000-block chunk loads whole in a few calls. `changed_chunks` and
//!   `list_chunks` go by `page_rows` chunks. Why paged reads stay correct
//!   is in [`pg_sql::ChunkPager`]'s docs.
//! - **Transactions** live at most 3 minutes idle and 24 hours in all on
//!   the service; a batch's calls follow each other at once.
//!
//! # Counters
//!
//! [`BlockStore::counters`](world_core::BlockStore::counters) reports
//! `store_requests_total{op}` (HTTP requests by Data API operation,
//! retries included), request and answer bytes, an estimate of billed
//! request units (`dataapi_billed_request_units_total`, 32 KiB units),
//! `store_retries_total{reason}` and `dataapi_rows_total{statement}`
//! ([`counters`] has the names). Benchmarks divide requests by edits: a
//! game server's small batch (a few edits in one or two chunks) costs 4
//! requests (`BeginTransaction`, `advance_heads`, one write call per kind
//! of change, `CommitTransaction`); `tests/measure.rs` prints requests per
//! 1,000 edits and a price estimate.
//!
//! # Secrets
//!
//! ARNs name resources and are shown; credentials come from the AWS chain
//! (or, for local development, the URL) and never appear in `Debug`,
//! logs or errors. The database password lives in the Secrets Manager
//! secret, read only by the service.

mod config;
pub mod counters;
mod error;
mod retry;
mod store;
mod wire;

pub use config::{
    Config, ConfigError, DEFAULT_CALL_TIMEOUT, DEFAULT_PAGE_ROWS, DEFAULT_RESUME_WAIT,
    MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, SCHEME, StaticCredentials, WriteForm,
};
pub use error::{DataApiError, Op, Retry, classify_service, sqlstate_of};
pub use store::DataApiStore;
