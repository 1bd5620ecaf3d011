//! The PostgreSQL schema, migrations and statements of the world store,
//! shared by `store-postgres` (tokio-postgres) and `store-dataapi` (Aurora
//! Data API). No I/O: this crate builds SQL text and parameter sets, checks
//! what comes back, and leaves talking to the database to the backends.
//!
//! # Schema
//!
//! In a configurable PostgreSQL schema ([`SchemaName`], `public` by
//! default), created by versioned, idempotent migrations
//! ([`MigrationScript`]) that both backends run at start-up, serialised by
//! a transaction-level advisory lock:
//!
//! | table | columns | keys |
//! |---|---|---|
//! | `chunk` | `p, q, key` | primary `(p, q)`: the chunk's head (key counter) |
//! | `block` | `p, q, x, y, z` (bigint), `w`, `key`, `user_id`, `updated_at` | primary `(p, q, x, y, z)`; `fillfactor = 50` (migration 4: updates stay on their page, HOT) |
//! | `light` | `p, q, x, y, z`, `w`, `key`, `user_id`, `updated_at` | primary `(p, q, x, y, z)` |
//! | `sign` | `p, q, x, y, z, face`, `text`, `key`, `user_id`, `updated_at` | primary `(p, q, x, y, z, face)` |
//! | `player` | `name`, `x, y, z, rx, ry` (real), `updated_at` | primary `name` |
//! | `draft` (migration 2) | `owner`, `x, y, z` (bigint), `kind`, `face`, `w`, `text`, `seen`, `ms` | primary `(owner, x, y, z, kind, face)`: players' private edits, never read with chunks |
//! | `history` (migration 3) | `seq` (identity), `id`, `time_ms`, `author`, `guest`, `addr`, `kind`, `x, y, z`, `face`, `old_w`, `new_w`, `old_text`, `new_text` | primary `seq`; unique `id`; indexes `(x, z, y)`, `(author, time_ms)`, `(time_ms)` |
//! | `schema_migrations` | `version`, `name`, `applied_at` | primary `version` |
//!
//! Coordinates are `bigint` as in the seed deployment; reads check that
//! they fit the game's `i32` ([`ChunkDataBuilder`]).
//!
//! # Keys
//!
//! A batch is one transaction running the [`Step`]s of its [`WritePlan`]
//! in order. The first, `advance_heads`, is
//!
//! ```sql
//! INSERT INTO chunk AS c (p, q, key) SELECT ... ORDER BY p, q
//! ON CONFLICT (p, q) DO UPDATE SET key = c.key + EXCLUDED.key
//! RETURNING c.p, c.q, c.key::int4
//! ```
//!
//! It advances each touched chunk's head by the chunk's number of block
//! writes (1 for a chunk with only lights, signs or clears) and leaves the
//! chunk rows locked until the transaction ends. The block writes of a
//! chunk then take the keys `(old head, new head]` (`upsert_blocks` reads
//! the new head from the locked row: `key = head - back`). An update of an
//! existing block gets a new key like an insert does, so clients asking
//! for "newer than k" see it (the seed kept the old key on update).
//!
//! A chunk whose head this batch created (old head 0) has no block rows,
//! and none can appear while its row is locked: its rows go in with a plain
//! `INSERT` (`insert_blocks_new_chunks`), saving `ON CONFLICT`'s
//! speculative insertion; the other chunks' rows are upserted. This is why
//! migration 1 gives a head to every chunk that already has block rows.
//! On PostgreSQL 15 and later, store-postgres sends the rows of chunks it
//! knows through `merge_blocks` instead: one `MERGE` that probes each
//! position once and updates or plainly inserts, without the upsert's row
//! lock (a second WAL record per updated row) or speculative insertion.
//! The locked chunk row is what makes that safe: no writer of this schema
//! adds a position to a chunk without holding it.
//!
//! **Why keys become visible in order.** A second transaction touching the
//! same chunk blocks on the row lock until the first commits or rolls back,
//! and only then reads the head and takes its keys. So within a chunk, a
//! transaction with greater keys always commits after every transaction
//! with smaller keys. A reader's statement sees a snapshot of committed
//! transactions: if it sees key `k` it sees every smaller key of that chunk
//! (or a newer row of the same position). `load_chunk` reads blocks,
//! lights, signs and the head in one statement (`UNION ALL`), hence one
//! snapshot, so the head it returns covers everything returned. A
//! backend that must read a large chunk in several statements pages it
//! with [`ChunkPager`], whose docs say why the pages still add up.
//!
//! **Deadlocks.** Chunk rows are locked in one global order, `(p, q)`,
//! (`ORDER BY` in `advance_heads`), and every other row a batch writes
//! belongs to a chunk it already locked, so two batches cannot wait on each
//! other in a cycle. Deadlock (`40P01`) and serialization (`40001`)
//! failures may still come from outside this design (a DBA's session);
//! backends report them as `StoreError::Conflict`.
//!
//! **Exhaustion.** The client reads keys into an `int32`. `advance_heads`
//! returns the head cast to `int4`, which fails with SQLSTATE `22003` when
//! a head would pass 2147483647; the transaction is aborted and nothing is
//! written. The backend then reads the heads (`chunk_heads`) and names the
//! chunk with [`WritePlan::exhausted_chunk`] in `StoreError::KeyExhausted`.
//!
//! # Statements and forms
//!
//! Every statement is written once, with `:name` placeholders
//! ([`Statements`]). The Data API takes them as they are;
//! [`to_positional`] rewrites them to `$n` for tokio-postgres. Statements
//! over a set of rows ([`RowSql`]) have one body and three [`Form`]s that
//! differ only in the row source `t(...)`.
//!
//! | what | store-postgres | store-dataapi |
//! |---|---|---|
//! | migrations | [`MigrationScript`], simple-query protocol, one transaction | the same statements, one `ExecuteStatement` each, in a transaction |
//! | batch: `advance_heads` | [`Form::Unnest`], pipelined with the other steps and `COMMIT` in one round trip | [`Form::Json`] (`ExecuteStatement`; it needs the returned heads) |
//! | batch: `clear_decor`, block writes, `upsert_lights`, `upsert_signs`, `delete_signs` | [`Form::Unnest`], same pipeline; block writes as `insert_blocks` (chunks it guesses new; a unique violation means a wrong guess and a retry) + `upsert_blocks` (the others) | [`Form::Values`] with `BatchExecuteStatement` (one parameter set per row), or [`Form::Json`] for one call per statement; block writes as `insert_blocks_new_chunks` + `upsert_blocks_old_chunks`, each row to one of them by the heads `advance_heads` returned ([`WritePlan::blocks_by_chunk_age`]); default [`Form::Arrays`], one `ExecuteStatement` per statement |
//! | `load_chunk` | [`Statements::load_chunk`], one statement | [`Statements::load_chunk_page`] driven by [`ChunkPager`]: one statement for a chunk that fits a page, more for larger ones (the 1 MiB answer limit) |
//! | `changed_chunks` | [`Form::Unnest`] | [`Form::Json`], split into calls that fit the request and answer limits |
//! | `list_chunks` | [`Statements::list_chunks`] | [`Statements::list_chunks_page`], by pages |
//! | `load_player`, `ping` | fixed statements | the same |
//! | `save_players` | [`Form::Unnest`] | [`Form::Values`] or [`Form::Json`] |
//!
//! Inputs come as [`Rows`], kept by column: tokio-postgres binds each
//! column as one array parameter; the Data API reads rows one by one
//! ([`Rows::row`]) or as JSON ([`Rows::to_json`]).

mod decode;
mod drafts;
mod history;
mod named;
mod paging;
mod plan;
mod rows;
mod schema;
mod sqlstate;
mod statements;

pub use decode::{ChunkDataBuilder, ChunkRow, RowKind};
pub use drafts::{DraftStatements, draft_change, draft_rows};
pub use history::{HistoryParam, HistoryRow, HistoryStatements, decode_history, history_rows};
pub use named::{Positional, to_positional};
pub use paging::{ChunkPager, PageLimits};
pub use plan::{Step, WritePlan, chunk_head, held_rows, player_rows};
pub use rows::{Column, ColumnData, Rows, SqlType, Value};
pub use schema::{LATEST_VERSION, Migration, MigrationScript, SchemaError, SchemaName};
pub use sqlstate::{ErrorClass, classify_sqlstate};
pub use statements::{Form, JSON_ROWS_PARAM, RowSql, Sql, Statements};

/// SQLSTATE of `advance_heads` when a head would pass the largest key.
pub const KEY_EXHAUSTED_SQLSTATE: &str = "22003";
