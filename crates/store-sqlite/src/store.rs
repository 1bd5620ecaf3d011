//! [`SqliteStore`]: the [`BlockStore`] over one SQLite file.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backon::{BlockingRetryable, ConstantBuilder};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use tokio::sync::{Mutex as AsyncMutex, Semaphore};
use world_core::store::{
    ApplyReceipt, Batch, ChunkAdvance, ChunkData, ChunkHead, DraftChange, HistoryEntry,
    HistoryQuery, Key, MAX_KEY, PlayerRecord, StoreCounter, StoreCounters, StoredBlock,
    StoredLight, StoredSign, validate_draft,
};
use world_core::{BlockPos, BlockStore, ChunkPos, StoreError, StoreResult};

use crate::config::Config;
use crate::error::{join, map, map_open};
use crate::{drafts, schema};

/// Page cache per connection, in KiB (SQLite's default is 2 MiB).
const CACHE_KIB: i64 = 16 * 1024;

/// WAL size kept after a checkpoint; a 100,000-change batch writes ~10 MiB.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Statements cached per connection (we use fewer than 20).
const STATEMENT_CACHE: usize = 32;

/// A chunk's head: the largest of its recorded head (`craft_chunk`), its
/// largest block rowid (rows the original server wrote after us), and 1 if
/// it holds lights or signs (such rows written by the original into a chunk
/// we never saw). Four index lookups, no scan.
const HEAD: &str = "SELECT max(
    coalesce((SELECT head FROM craft_chunk WHERE p = ?1 AND q = ?2), 0),
    coalesce((SELECT rowid FROM block WHERE p = ?1 AND q = ?2 ORDER BY rowid DESC LIMIT 1), 0),
    EXISTS (SELECT 1 FROM light WHERE p = ?1 AND q = ?2),
    EXISTS (SELECT 1 FROM sign WHERE p = ?1 AND q = ?2))";

/// The last key handed out: the largest block rowid (the original server
/// numbers its rows max(rowid) + 1) or the last key we recorded, if greater.
const LAST_KEY: &str = "SELECT max(
    coalesce((SELECT max(rowid) FROM block), 0),
    coalesce((SELECT value FROM craft_meta WHERE name = 'last_key'), 0))";

const CLEAR_SIGNS: &str =
    "DELETE FROM sign WHERE p = ?1 AND q = ?2 AND x = ?3 AND y = ?4 AND z = ?5";
const CLEAR_LIGHT: &str =
    "UPDATE light SET w = 0 WHERE p = ?1 AND q = ?2 AND x = ?3 AND y = ?4 AND z = ?5";
/// REPLACE deletes the old row of the position (unique index on p, q, x, y,
/// z), so an update gets the new, greater rowid: its key.
const PUT_BLOCK: &str = "INSERT OR REPLACE INTO block (rowid, p, q, x, y, z, w, author, time_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const PUT_LIGHT: &str = "INSERT OR REPLACE INTO light (p, q, x, y, z, w, author, time_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const PUT_SIGN: &str = "INSERT OR REPLACE INTO sign (p, q, x, y, z, face, text, author, time_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const DELETE_SIGN: &str =
    "DELETE FROM sign WHERE p = ?1 AND q = ?2 AND x = ?3 AND y = ?4 AND z = ?5 AND face = ?6";
const PUT_HEAD: &str = "INSERT INTO craft_chunk (p, q, head) VALUES (?1, ?2, ?3)
    ON CONFLICT (p, q) DO UPDATE SET head = max(head, excluded.head)";
const PUT_LAST_KEY: &str = "UPDATE craft_meta SET value = ?1 WHERE name = 'last_key'";

/// Incremental load: a range scan of `craft_block_pq_idx` (p, q, rowid).
const LOAD_BLOCKS: &str =
    "SELECT rowid, x, y, z, w FROM block WHERE p = ?1 AND q = ?2 AND rowid > ?3";
const LOAD_LIGHTS: &str = "SELECT x, y, z, w FROM light WHERE p = ?1 AND q = ?2";
const LOAD_SIGNS: &str = "SELECT x, y, z, face, text FROM sign WHERE p = ?1 AND q = ?2";

const LIST_BLOCK_CHUNKS: &str = "SELECT p, q, max(rowid) FROM block GROUP BY p, q";
const LIST_DECOR_CHUNKS: &str = "SELECT p, q FROM light UNION SELECT p, q FROM sign";
const LIST_HEADS: &str = "SELECT p, q, head FROM craft_chunk";

const LOAD_PLAYER: &str = "SELECT x, y, z, rx, ry, time_ms FROM craft_player WHERE name = ?1";
const PUT_PLAYER: &str = "INSERT OR REPLACE INTO craft_player (name, x, y, z, rx, ry, time_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

const PING: &str = "SELECT value FROM craft_meta WHERE name = 'schema_version'";

/// The statements the store runs, for `EXPLAIN QUERY PLAN` checks in tests.
#[doc(hidden)]
pub const QUERIES: [(&str, &str); 7] = [
    ("head", HEAD),
    ("load_blocks", LOAD_BLOCKS),
    ("load_lights", LOAD_LIGHTS),
    ("load_signs", LOAD_SIGNS),
    ("clear_signs", CLEAR_SIGNS),
    ("clear_light", CLEAR_LIGHT),
    ("delete_sign", DELETE_SIGN),
];

/// Operations, as labelled in the counters.
#[derive(Clone, Copy, Debug)]
enum Op {
    Open,
    Apply,
    LoadChunk,
    ChangedChunks,
    ListChunks,
    LoadPlayer,
    SavePlayers,
    LoadDraft,
    PutDraft,
    DeleteDraft,
    Ping,
    Close,
    History,
    PruneHistory,
}

impl Op {
    const ALL: [Op; 14] = [
        Op::Open,
        Op::Apply,
        Op::LoadChunk,
        Op::ChangedChunks,
        Op::ListChunks,
        Op::LoadPlayer,
        Op::SavePlayers,
        Op::LoadDraft,
        Op::PutDraft,
        Op::DeleteDraft,
        Op::Ping,
        Op::Close,
        Op::History,
        Op::PruneHistory,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Apply => "apply",
            Op::LoadChunk => "load_chunk",
            Op::ChangedChunks => "changed_chunks",
            Op::ListChunks => "list_chunks",
            Op::LoadPlayer => "load_player",
            Op::SavePlayers => "save_players",
            Op::LoadDraft => "load_draft",
            Op::PutDraft => "put_draft",
            Op::DeleteDraft => "delete_draft",
            Op::Ping => "ping",
            Op::Close => "close",
            Op::History => "history",
            Op::PruneHistory => "prune_history",
        }
    }
}

const REQUESTS: &str = "store_requests_total";
const STATEMENTS: &str = "store_statements_total";
const COUNTER_HELP: &[(&str, &str)] = &[
    (
        REQUESTS,
        "SQLite transactions run, by operation (the embedded store's round trips).",
    ),
    (
        STATEMENTS,
        "SQL statements executed inside those transactions, by operation.",
    ),
];

/// The store's counters, every operation reported from the start.
fn counters() -> StoreCounters {
    let counters = StoreCounters::new(COUNTER_HELP);
    for op in Op::ALL {
        counters.declare(REQUESTS, &[("op", op.name())]);
        counters.declare(STATEMENTS, &[("op", op.name())]);
    }
    counters
}

/// Counts a transaction of `op` that ran `statements` statements.
fn record(counters: &StoreCounters, op: Op, statements: u64) {
    if statements > 0 {
        let labels = [("op", op.name())];
        counters.incr(REQUESTS, &labels);
        counters.add(STATEMENTS, &labels, statements as f64);
    }
}

/// A connection and how many statements ran on it during one operation.
struct Session<'c> {
    conn: &'c mut Connection,
    statements: u64,
}

/// A pool of reader connections, opened lazily, at most `permits` at once.
struct Readers {
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Connection>>,
    size: usize,
}

struct Inner {
    config: Config,
    writer: Arc<AsyncMutex<Option<Connection>>>,
    readers: Readers,
    closed: AtomicBool,
    counters: StoreCounters,
}

/// The SQLite [`BlockStore`]; see the crate docs for the design.
///
/// Cheap to clone: clones share the connections.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("config", &self.inner.config)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it unless `create=false`) the world file, switches it
    /// to WAL and migrates the schema. An original Craft `craft.db` opens as
    /// is and stays usable by the original server.
    pub async fn open(config: Config) -> StoreResult<SqliteStore> {
        let started = Instant::now();
        let cfg = config.clone();
        let (conn, migration) = tokio::task::spawn_blocking(move || open_writer(&cfg))
            .await
            .map_err(|e| join("opening the world file", e))??;
        let store = SqliteStore {
            inner: Arc::new(Inner {
                readers: Readers {
                    permits: Arc::new(Semaphore::new(config.readers)),
                    idle: Mutex::new(Vec::new()),
                    size: config.readers,
                },
                config,
                writer: Arc::new(AsyncMutex::new(Some(conn))),
                closed: AtomicBool::new(false),
                counters: counters(),
            }),
        };
        record(&store.inner.counters, Op::Open, 1);
        tracing::info!(
            config = %store.inner.config,
            schema_from = migration.from,
            schema_to = migration.to,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "opened the sqlite world file"
        );
        Ok(store)
    }

    /// Parses `url` ([`Config::from_url`]) and opens it.
    pub async fn open_url(url: &str) -> StoreResult<SqliteStore> {
        Self::open(Config::from_url(url)?).await
    }

    /// The configuration this store was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    fn check_open(&self) -> StoreResult<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Runs `f` on the writer connection, on a blocking thread. Waiting for
    /// the writer happens on the async side, so queued writes hold no
    /// thread.
    async fn with_writer<T, F>(&self, op: Op, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Session<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.check_open()?;
        let mut guard = self.inner.writer.clone().lock_owned().await;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = guard.as_mut().ok_or(StoreError::Closed)?;
            let mut session = Session {
                conn,
                statements: 0,
            };
            let result = f(&mut session);
            record(&inner.counters, op, session.statements);
            result
        })
        .await
        .map_err(|e| join(op.name(), e))?
    }

    /// Runs `f` on a reader connection, on a blocking thread.
    async fn with_reader<T, F>(&self, op: Op, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Session<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.check_open()?;
        let permit = self
            .inner
            .readers
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let idle = inner
                .readers
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => open_reader(&inner.config)?,
            };
            let mut session = Session {
                conn: &mut conn,
                statements: 0,
            };
            let result = f(&mut session);
            record(&inner.counters, op, session.statements);
            inner
                .readers
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
            drop(permit);
            result
        })
        .await
        .map_err(|e| join(op.name(), e))?
    }
}

fn configure(conn: &Connection, config: &Config) -> rusqlite::Result<()> {
    conn.busy_timeout(config.busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(&format!("PRAGMA cache_size = -{CACHE_KIB}"))
}

fn open_writer(config: &Config) -> StoreResult<(Connection, schema::Migration)> {
    let path = &config.path;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if config.create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    } else if !path.exists() {
        return Err(StoreError::Config(format!(
            "{} does not exist (and the URL says create=false)",
            path.display()
        )));
    }
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| map_open(path, e))?;
    configure(&conn, config).map_err(|e| map_open(path, e))?;
    // The first read of the file: a file that is not a database fails here.
    // Switching a new file to WAL needs an exclusive lock, and SQLite
    // answers busy at once (no busy handler) while another process opening
    // the same file holds its lock: try again within `busy_timeout`.
    let pause = Duration::from_millis(20);
    let tries = usize::try_from(config.busy_timeout.as_millis() / pause.as_millis()).unwrap_or(1);
    let mode: String = (|| conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)))
        .retry(
            ConstantBuilder::default()
                .with_delay(pause)
                .with_max_times(tries.max(1)),
        )
        .when(|e| e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy))
        .call()
        .map_err(|e| map_open(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Config(format!(
            "{}: could not switch to WAL mode (journal_mode is {mode}); is it on a network file system?",
            path.display()
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT};",
        config.synchronous.pragma_value()
    ))
    .map_err(|e| map_open(path, e))?;
    let migration = schema::migrate(&mut conn).map_err(|e| with_path(path, e))?;
    Ok((conn, migration))
}

/// Prefixes configuration and corruption messages with the file's path.
fn with_path(path: &std::path::Path, e: StoreError) -> StoreError {
    match e {
        StoreError::Config(m) => StoreError::Config(format!("{}: {m}", path.display())),
        StoreError::Corrupt(m) => StoreError::Corrupt(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// Opens a reader, lazily, after the writer opened and migrated the file:
/// a failure here (out of file descriptors, the disk) is an outage, not a
/// configuration problem, hence [`map`] rather than [`map_open`].
fn open_reader(config: &Config) -> StoreResult<Connection> {
    let m = |e| map("opening a reader connection", e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&config.path, flags).map_err(m)?;
    configure(&conn, config).map_err(m)?;
    // Readers never write, and SQLite now enforces it.
    conn.execute_batch("PRAGMA query_only = ON").map_err(m)?;
    Ok(conn)
}

fn key_exhausted(chunk: ChunkPos) -> StoreError {
    StoreError::KeyExhausted {
        p: chunk.p,
        q: chunk.q,
    }
}

/// Reads a 32-bit coordinate or value; anything else is corrupt data.
fn int(row: &Row<'_>, i: usize) -> rusqlite::Result<i32> {
    row.get(i)
}

/// Sign text as stored; the original server (Python 2) may have stored
/// bytes that are not UTF-8, which are replaced rather than failing the
/// whole chunk.
fn text(row: &Row<'_>, i: usize) -> rusqlite::Result<String> {
    match row.get_ref(i)? {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            Ok(String::from_utf8_lossy(bytes).into_owned())
        }
        ValueRef::Integer(n) => Ok(n.to_string()),
        ValueRef::Real(f) => Ok(f.to_string()),
        ValueRef::Null => Err(rusqlite::Error::InvalidColumnType(
            i,
            "text".into(),
            rusqlite::types::Type::Null,
        )),
    }
}

fn apply_batch(session: &mut Session<'_>, batch: &Batch) -> StoreResult<ApplyReceipt> {
    let m = |e| map("apply", e);
    let by_chunk = batch.by_chunk();
    let tx = session
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(m)?;
    let mut statements = 0u64;

    // Heads before, and the first free key, read under the write lock.
    let mut before: BTreeMap<ChunkPos, Key> = BTreeMap::new();
    {
        let mut head = tx.prepare_cached(HEAD).map_err(m)?;
        for chunk in by_chunk.keys() {
            statements += 1;
            before.insert(
                *chunk,
                head.query_row(params![chunk.p, chunk.q], |r| r.get(0))
                    .map_err(m)?,
            );
        }
    }
    statements += 1;
    let last: Key = tx.query_row(LAST_KEY, [], |r| r.get(0)).map_err(m)?;
    // A head above every recorded key can only come from rows the original
    // server wrote (the "1 for lights or signs" case): keys must pass it.
    let mut next = last.max(before.values().copied().max().unwrap_or(0)) + 1;

    // Keys: first one per chunk touched only by clears, lights or signs,
    // then one per block write. Blocks last keeps the largest key a block
    // rowid whenever the batch writes a block, so that max(rowid), which
    // the original server continues from, stays at the last key.
    let mut after: BTreeMap<ChunkPos, Key> = BTreeMap::new();
    for (chunk, changes) in &by_chunk {
        if changes.blocks.is_empty() {
            if next > MAX_KEY {
                return Err(key_exhausted(*chunk));
            }
            after.insert(*chunk, next);
            next += 1;
        }
    }
    let first_block_key = next;
    for (chunk, changes) in &by_chunk {
        if let Some(count) = Key::try_from(changes.blocks.len()).ok().filter(|n| *n > 0) {
            let last_of_chunk = next + count - 1;
            if last_of_chunk > MAX_KEY {
                return Err(key_exhausted(*chunk));
            }
            after.insert(*chunk, last_of_chunk);
            next += count;
        }
    }

    // Clears first: they apply to what existed before the batch.
    {
        let mut signs = tx.prepare_cached(CLEAR_SIGNS).map_err(m)?;
        let mut light = tx.prepare_cached(CLEAR_LIGHT).map_err(m)?;
        for c in batch.clears() {
            let args = params![c.chunk.p, c.chunk.q, c.pos.x, c.pos.y, c.pos.z];
            signs.execute(args).map_err(m)?;
            light.execute(args).map_err(m)?;
            statements += 2;
        }
    }
    {
        // The same walk as the one that computed the heads above.
        let mut put = tx.prepare_cached(PUT_BLOCK).map_err(m)?;
        let blocks = by_chunk.values().flat_map(|c| c.blocks.iter().copied());
        for (key, b) in (first_block_key..).zip(blocks) {
            put.execute(params![
                key,
                b.chunk.p,
                b.chunk.q,
                b.pos.x,
                b.pos.y,
                b.pos.z,
                b.w,
                b.meta.user.as_deref(),
                b.meta.time_ms
            ])
            .map_err(m)?;
            statements += 1;
        }
    }
    {
        let mut put = tx.prepare_cached(PUT_LIGHT).map_err(m)?;
        for l in batch.lights() {
            put.execute(params![
                l.chunk.p,
                l.chunk.q,
                l.pos.x,
                l.pos.y,
                l.pos.z,
                l.w,
                l.meta.user.as_deref(),
                l.meta.time_ms
            ])
            .map_err(m)?;
            statements += 1;
        }
    }
    {
        let mut put = tx.prepare_cached(PUT_SIGN).map_err(m)?;
        let mut delete = tx.prepare_cached(DELETE_SIGN).map_err(m)?;
        for s in batch.signs() {
            match &s.text {
                Some(text) => put.execute(params![
                    s.chunk.p,
                    s.chunk.q,
                    s.pos.x,
                    s.pos.y,
                    s.pos.z,
                    s.face,
                    text,
                    s.meta.user.as_deref(),
                    s.meta.time_ms
                ]),
                None => delete.execute(params![
                    s.chunk.p, s.chunk.q, s.pos.x, s.pos.y, s.pos.z, s.face
                ]),
            }
            .map_err(m)?;
            statements += 1;
        }
    }
    {
        let mut put = tx.prepare_cached(PUT_HEAD).map_err(m)?;
        for (chunk, head) in &after {
            put.execute(params![chunk.p, chunk.q, head]).map_err(m)?;
            statements += 1;
        }
    }
    tx.execute(PUT_LAST_KEY, [next - 1]).map_err(m)?;
    statements += 1;
    statements += crate::history::insert(&tx, batch.history())?;
    tx.commit().map_err(m)?;
    session.statements += statements;

    let chunks = after
        .into_iter()
        .map(|(chunk, after)| ChunkAdvance {
            chunk,
            before: before.get(&chunk).copied().unwrap_or(0),
            after,
        })
        .collect();
    Ok(ApplyReceipt { chunks })
}

fn load_chunk(session: &mut Session<'_>, chunk: ChunkPos, since: Key) -> StoreResult<ChunkData> {
    let m = |e| map("load_chunk", e);
    // One read transaction: every statement sees the same snapshot.
    let tx = session
        .conn
        .transaction_with_behavior(TransactionBehavior::Deferred)
        .map_err(m)?;
    let head: Key = tx
        .prepare_cached(HEAD)
        .and_then(|mut s| s.query_row(params![chunk.p, chunk.q], |r| r.get(0)))
        .map_err(m)?;
    let blocks = tx
        .prepare_cached(LOAD_BLOCKS)
        .and_then(|mut s| {
            s.query_map(params![chunk.p, chunk.q, since.max(0)], |r| {
                Ok(StoredBlock {
                    key: r.get(0)?,
                    pos: BlockPos::new(int(r, 1)?, int(r, 2)?, int(r, 3)?),
                    w: int(r, 4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(m)?;
    let lights = tx
        .prepare_cached(LOAD_LIGHTS)
        .and_then(|mut s| {
            s.query_map(params![chunk.p, chunk.q], |r| {
                Ok(StoredLight {
                    pos: BlockPos::new(int(r, 0)?, int(r, 1)?, int(r, 2)?),
                    w: int(r, 3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(m)?;
    let signs = tx
        .prepare_cached(LOAD_SIGNS)
        .and_then(|mut s| {
            s.query_map(params![chunk.p, chunk.q], |r| {
                Ok(StoredSign {
                    pos: BlockPos::new(int(r, 0)?, int(r, 1)?, int(r, 2)?),
                    face: int(r, 3)?,
                    text: text(r, 4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(m)?;
    tx.commit().map_err(m)?;
    session.statements += 4;
    if let Some(bad) = blocks.iter().find(|b| !(1..=MAX_KEY).contains(&b.key)) {
        return Err(StoreError::Corrupt(format!(
            "block row {} of chunk {chunk} has a rowid outside the client's key range 1..={MAX_KEY}",
            bad.key
        )));
    }
    Ok(ChunkData {
        blocks,
        lights,
        signs,
        head,
    })
}

fn changed_chunks(session: &mut Session<'_>, held: &[ChunkHead]) -> StoreResult<Vec<ChunkHead>> {
    let m = |e| map("changed_chunks", e);
    let tx = session
        .conn
        .transaction_with_behavior(TransactionBehavior::Deferred)
        .map_err(m)?;
    let mut changed = Vec::new();
    {
        let mut stmt = tx.prepare_cached(HEAD).map_err(m)?;
        for h in held {
            let head: Key = stmt
                .query_row(params![h.chunk.p, h.chunk.q], |r| r.get(0))
                .map_err(m)?;
            if head > h.head {
                changed.push(ChunkHead {
                    chunk: h.chunk,
                    head,
                });
            }
        }
    }
    tx.commit().map_err(m)?;
    session.statements += held.len() as u64;
    Ok(changed)
}

fn list_chunks(session: &mut Session<'_>) -> StoreResult<Vec<ChunkHead>> {
    let m = |e| map("list_chunks", e);
    let tx = session
        .conn
        .transaction_with_behavior(TransactionBehavior::Deferred)
        .map_err(m)?;
    let mut heads: BTreeMap<ChunkPos, Key> = BTreeMap::new();
    {
        let mut stmt = tx.prepare_cached(LIST_BLOCK_CHUNKS).map_err(m)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((ChunkPos::new(int(r, 0)?, int(r, 1)?), r.get::<_, Key>(2)?))
            })
            .map_err(m)?;
        for row in rows {
            let (chunk, max_rowid) = row.map_err(m)?;
            heads.insert(chunk, max_rowid);
        }
        let mut stmt = tx.prepare_cached(LIST_DECOR_CHUNKS).map_err(m)?;
        let rows = stmt
            .query_map([], |r| Ok(ChunkPos::new(int(r, 0)?, int(r, 1)?)))
            .map_err(m)?;
        for row in rows {
            let head = heads.entry(row.map_err(m)?).or_insert(0);
            *head = (*head).max(1);
        }
        // Heads recorded for chunks that still hold something (a chunk
        // whose last sign was deleted keeps a head but is not listed).
        let mut stmt = tx.prepare_cached(LIST_HEADS).map_err(m)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((ChunkPos::new(int(r, 0)?, int(r, 1)?), r.get::<_, Key>(2)?))
            })
            .map_err(m)?;
        for row in rows {
            let (chunk, recorded) = row.map_err(m)?;
            if let Some(head) = heads.get_mut(&chunk) {
                *head = (*head).max(recorded);
            }
        }
    }
    tx.commit().map_err(m)?;
    session.statements += 3;
    Ok(heads
        .into_iter()
        .map(|(chunk, head)| ChunkHead { chunk, head })
        .collect())
}

#[async_trait]
impl BlockStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn load_chunk(&self, chunk: ChunkPos, since: Key) -> StoreResult<ChunkData> {
        self.with_reader(Op::LoadChunk, move |s| load_chunk(s, chunk, since))
            .await
    }

    async fn apply(&self, batch: &Batch) -> StoreResult<ApplyReceipt> {
        self.check_open()?;
        batch.validate()?;
        if batch.is_empty() {
            return Ok(ApplyReceipt::default());
        }
        let started = Instant::now();
        let changes = batch.len();
        // The blocking thread needs an owned batch; cloning is cheap next to
        // writing it.
        let owned = batch.clone();
        let receipt = self
            .with_writer(Op::Apply, move |s| apply_batch(s, &owned))
            .await?;
        tracing::debug!(
            changes,
            chunks = receipt.chunks.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "applied a batch"
        );
        Ok(receipt)
    }

    async fn changed_chunks(&self, held: &[ChunkHead]) -> StoreResult<Vec<ChunkHead>> {
        if held.is_empty() {
            self.check_open()?;
            return Ok(Vec::new());
        }
        let held = held.to_vec();
        self.with_reader(Op::ChangedChunks, move |s| changed_chunks(s, &held))
            .await
    }

    async fn list_chunks(&self) -> StoreResult<Vec<ChunkHead>> {
        self.with_reader(Op::ListChunks, list_chunks).await
    }

    async fn load_player(&self, name: &str) -> StoreResult<Option<PlayerRecord>> {
        let name = name.to_owned();
        self.with_reader(Op::LoadPlayer, move |s| {
            let m = |e| map("load_player", e);
            s.statements += 1;
            let mut stmt = s.conn.prepare_cached(LOAD_PLAYER).map_err(m)?;
            stmt.query_row([&name], |r| {
                Ok(PlayerRecord {
                    name: name.clone(),
                    // Stored as REAL (f64) from an f32: the cast is exact.
                    x: r.get::<_, f64>(0)? as f32,
                    y: r.get::<_, f64>(1)? as f32,
                    z: r.get::<_, f64>(2)? as f32,
                    rx: r.get::<_, f64>(3)? as f32,
                    ry: r.get::<_, f64>(4)? as f32,
                    time_ms: r.get(5)?,
                })
            })
            .optional()
            .map_err(m)
        })
        .await
    }

    async fn save_players(&self, players: &[PlayerRecord]) -> StoreResult<()> {
        self.check_open()?;
        if players.is_empty() {
            return Ok(());
        }
        if let Some(p) = players
            .iter()
            .find(|p| ![p.x, p.y, p.z, p.rx, p.ry].iter().all(|v| v.is_finite()))
        {
            // SQLite would store NaN as NULL; refuse before writing anything.
            return Err(StoreError::Invalid(format!(
                "position of player {:?} is not finite",
                p.name
            )));
        }
        let players = players.to_vec();
        self.with_writer(Op::SavePlayers, move |s| {
            let m = |e| map("save_players", e);
            let tx = s
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(m)?;
            {
                let mut put = tx.prepare_cached(PUT_PLAYER).map_err(m)?;
                for p in &players {
                    put.execute(params![
                        p.name,
                        f64::from(p.x),
                        f64::from(p.y),
                        f64::from(p.z),
                        f64::from(p.rx),
                        f64::from(p.ry),
                        p.time_ms
                    ])
                    .map_err(m)?;
                }
            }
            tx.commit().map_err(m)?;
            s.statements += players.len() as u64;
            Ok(())
        })
        .await
    }

    async fn load_draft(&self, owner: &str) -> StoreResult<Vec<DraftChange>> {
        let owner = owner.to_owned();
        self.with_reader(Op::LoadDraft, move |s| {
            let (changes, statements) = drafts::load(s.conn, &owner)?;
            s.statements += statements;
            Ok(changes)
        })
        .await
    }

    async fn put_draft(&self, owner: &str, changes: &[DraftChange]) -> StoreResult<()> {
        self.check_open()?;
        validate_draft(owner, changes)?;
        if changes.is_empty() {
            return Ok(());
        }
        let (owner, changes) = (owner.to_owned(), changes.to_vec());
        self.with_writer(Op::PutDraft, move |s| {
            s.statements += drafts::put(s.conn, &owner, &changes)?;
            Ok(())
        })
        .await
    }

    async fn delete_draft(&self, owner: &str) -> StoreResult<()> {
        let owner = owner.to_owned();
        self.with_writer(Op::DeleteDraft, move |s| {
            s.statements += drafts::delete(s.conn, &owner)?;
            Ok(())
        })
        .await
    }

    fn counters(&self) -> Vec<StoreCounter> {
        self.inner.counters.snapshot()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.with_reader(Op::Ping, |s| {
            s.statements += 1;
            let version: Option<i64> = s
                .conn
                .prepare_cached(PING)
                .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)).optional())
                .map_err(|e| map("ping", e))?;
            match version {
                Some(_) => Ok(()),
                None => Err(StoreError::Corrupt(
                    "craft_meta lost its schema_version row".into(),
                )),
            }
        })
        .await
    }

    async fn close(&self) -> StoreResult<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Wait for running reads, then refuse new ones.
        let readers = &self.inner.readers;
        let all = u32::try_from(readers.size).unwrap_or(u32::MAX);
        let permits = readers.permits.clone().acquire_many_owned(all).await;
        readers.permits.close();
        drop(permits);
        let idle =
            std::mem::take(&mut *readers.idle.lock().unwrap_or_else(PoisonError::into_inner));
        let mut writer = self.inner.writer.clone().lock_owned().await;
        let conn = writer.take();
        let path = self.inner.config.path.clone();
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            drop(idle);
            let Some(conn) = conn else { return Ok(()) };
            // Fold the WAL back into the file, so that the file alone is the
            // world (copies, backups, the original server). Another process
            // still reading keeps its part of the WAL; that is fine.
            match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
                Ok(0) => {}
                Ok(_) => tracing::info!(path = %path.display(), "WAL checkpoint incomplete: another process is reading"),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "WAL checkpoint failed on close"),
            }
            record(&inner.counters, Op::Close, 1);
            conn.close().map_err(|(_, e)| map("close", e))?;
            tracing::info!(path = %path.display(), "closed the sqlite world file");
            Ok(())
        })
        .await
        .map_err(|e| join("close", e))?
    }

    fn keeps_history(&self) -> bool {
        true
    }

    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<HistoryEntry>> {
        query.validate()?;
        let query = query.clone();
        self.with_reader(Op::History, move |s| {
            s.statements += 1;
            crate::history::query(s.conn, &query)
        })
        .await
    }

    async fn prune_history(&self, older_than_ms: i64, max_rows: Option<u64>) -> StoreResult<u64> {
        self.with_writer(Op::PruneHistory, move |s| {
            s.statements += 1 + u64::from(max_rows.is_some());
            crate::history::prune(s.conn, older_than_ms, max_rows)
        })
        .await
    }
}
