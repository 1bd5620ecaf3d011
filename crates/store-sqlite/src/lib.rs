//! The embedded default [`BlockStore`](world_core::BlockStore): one SQLite
//! file, in the original Craft server's schema.
//!
//! `sqlite:craft.db` (see [`config`] for the URL) opens or creates the world
//! file. An original `craft.db` opens as is, and the original Python server
//! can still open and write the file afterwards.
//!
//! # Design
//!
//! - **Connections.** One writer connection behind an async mutex (writes
//!   queue without holding a thread) and a small pool of reader connections
//!   (`readers`, default 4). Every SQLite call runs on
//!   `tokio::task::spawn_blocking`, never on a runtime worker. WAL mode
//!   lets reads run beside the write; a second process (another server on
//!   the same file) serialises its writes with ours through SQLite's locks,
//!   waiting up to `busy_timeout`.
//! - **One transaction per call.** `apply` is one `BEGIN IMMEDIATE`
//!   transaction (the write lock is taken before the keys are read, so two
//!   processes never hand out the same key); `load_chunk`,
//!   `changed_chunks` and `list_chunks` are each one read transaction (one
//!   snapshot). Statements are prepared once per connection
//!   (`prepare_cached`).
//! - **Batches** are validated first, then applied in the order of
//!   `world_core`'s normal form: clears (delete the position's signs,
//!   `UPDATE light SET w = 0`), blocks, lights, signs (no text = delete).
//!
//! # Keys
//!
//! A block's key is its row's `rowid`, as in the original server (which
//! sends `max(rowid)` of the rows it returns as the chunk key), so clients
//! holding keys from the original server stay consistent.
//!
//! Keys come from one sequence per file (hence they also grow per chunk).
//! Inside its write transaction a batch reads
//! `next = max(max(rowid) of block, craft_meta.last_key) + 1` (raised past
//! the current head of every chunk it touches, should foreign rows have put
//! one higher), gives one new
//! key to each chunk touched only by clears, lights or signs (its new head),
//! then one key per block write in (chunk, position) order, written with
//! `INSERT OR REPLACE INTO block (rowid, ...)`. REPLACE deletes the old row
//! of the position, so an update gets a new, greater key. The batch records
//! each touched chunk's head in `craft_chunk` and the last key in
//! `craft_meta`. A batch that would pass 2147483647 fails with
//! `KeyExhausted` and writes nothing.
//!
//! A chunk's head is `max(craft_chunk.head, max(rowid) of its blocks,
//! 1 if it holds lights or signs)`: four index lookups. The last two terms
//! keep heads right for rows the original server wrote (it knows nothing of
//! `craft_chunk`): a block it adds gets `rowid = max(rowid) + 1`, above
//! every block key, so clients holding keys see it.
//!
//! Blocks get the last keys of a batch so that `max(rowid)`, where the
//! original server continues numbering, equals the last key handed out.
//! Only a batch with no block write at all (a light or sign change) moves
//! the last key past `max(rowid)`; if the original server then writes the
//! file, its next rows may reuse numbers at or below that key. That is
//! harmless as long as what a client holds is a block rowid: the server
//! must send `K` with the largest key of the blocks it returns
//! ([`ChunkData::max_block_key`](world_core::store::ChunkData::max_block_key)),
//! as the original does, not with the head.
//!
//! # Schema
//!
//! The original's tables, untouched in shape (its statements name their
//! columns, so the additions below never break them):
//!
//! ```text
//! block(p, q, x, y, z, w)          unique (p, q, x, y, z); rowid = key
//! light(p, q, x, y, z, w)          unique (p, q, x, y, z)
//! sign(p, q, x, y, z, face, text)  unique (x, y, z, face); index (p, q)
//! block_history(...)               created as the original does; unused
//! ```
//!
//! Version 1 adds (all additive, in one `BEGIN IMMEDIATE` transaction,
//! idempotent, recorded in `craft_meta.schema_version`):
//!
//! - `craft_meta(name, value)`: `schema_version`, `last_key`;
//! - `craft_chunk(p, q, head)`: chunk heads, filled for existing chunks from
//!   their `max(rowid)` (chunks with only lights or signs get the file's
//!   `max(rowid)`, at least 1);
//! - `craft_player(name, x, y, z, rx, ry, time_ms)`: player positions;
//! - index `craft_block_pq_idx` on `block(p, q)`: its entries are
//!   `(p, q, rowid)`, so a chunk's `max(rowid)` is one lookup and an
//!   incremental load (`p = ? AND q = ? AND rowid > ?`) is a range scan of
//!   exactly the newer rows;
//! - NULLable columns `author TEXT` and `time_ms INTEGER` on `block`,
//!   `light` and `sign` (`ALTER TABLE ... ADD COLUMN`, which rewrites no
//!   row): who made each change and when, from the batch's `ChangeMeta`,
//!   for moderation. Rows the original writes leave them NULL.
//!
//! Schema objects use only syntax SQLite 3.7 parses (no `WITHOUT ROWID`), so
//! an old Python's SQLite can still open the file. A file that is not a
//! database, a Craft table missing a column or its unique index, a newer
//! schema version, or a database of another program fail `open` with a
//! `Config` or `Corrupt` error naming the problem.
//!
//! # Durability
//!
//! WAL mode with `synchronous=FULL` by default: when `apply` returns, the
//! batch is fsynced (one fsync of the WAL per batch; batching makes that
//! cheap). `synchronous=normal` skips that fsync: a process crash still
//! loses nothing, but a power loss or OS crash may lose the last batches
//! that had been reported applied (the file stays consistent). `close`
//! checkpoints the WAL into the main file (`wal_checkpoint(TRUNCATE)`).
//! Copy the world file only when no server has it open, or copy the
//! `-wal` file with it.
//!
//! # Errors
//!
//! See [`error`]: busy and I/O failures are `Unavailable` (retryable, and
//! re-applying a batch is harmless); wrong files are `Config`; bad stored
//! data is `Corrupt`.
//!
//! # Counters
//!
//! `store_requests_total{op}` counts transactions (the embedded store's
//! round trips) and `store_statements_total{op}` the statements run in them
//! (`BEGIN`/`COMMIT` not counted). A batch of `n` block, light and sign
//! writes over `c` chunks with `k` clears runs `n + 2k + 2c + 2`
//! statements in one transaction.

pub mod config;
mod drafts;
pub mod error;
mod history;
mod schema;
mod store;

pub use config::{Config, ConfigError, Synchronous};
pub use error::SchemaError;
pub use schema::SCHEMA_VERSION;
pub use store::SqliteStore;

#[doc(hidden)]
pub use store::QUERIES;
