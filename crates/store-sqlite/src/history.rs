//! Block history in the world file: table `craft_history` (schema
//! version 2), written in the same transaction as the batch it describes.
//!
//! The original server's `block_history` table (timestamp, user id,
//! position, new value) cannot hold old values, lights or signs, so it
//! stays as the original created it; ours sits beside it. The row's
//! `rowid` orders entries recorded in the same millisecond; `id` (unique)
//! makes re-applying a batch record its entries once.

use rusqlite::{Connection, Row, Transaction, params};
use std::sync::Arc;
use world_core::store::{Author, Change, HistoryEntry, HistoryQuery};
use world_core::{BlockPos, StoreError, StoreResult};

use crate::error::map;

/// Version 2: the history table and the indexes its queries and pruning
/// use (by position, by author and time, by time).
pub(crate) const V2_TABLES: &str = "
CREATE TABLE IF NOT EXISTS craft_history (
    id INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    author TEXT NOT NULL,
    guest INTEGER NOT NULL,
    addr TEXT,
    kind INTEGER NOT NULL,
    x INTEGER NOT NULL, y INTEGER NOT NULL, z INTEGER NOT NULL,
    face INTEGER NOT NULL,
    old_w INTEGER NOT NULL, new_w INTEGER NOT NULL,
    old_text TEXT, new_text TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS craft_history_id_idx ON craft_history (id);
CREATE INDEX IF NOT EXISTS craft_history_xzy_idx ON craft_history (x, z, y);
CREATE INDEX IF NOT EXISTS craft_history_author_idx ON craft_history (author, time_ms);
CREATE INDEX IF NOT EXISTS craft_history_time_idx ON craft_history (time_ms);
";

/// The columns `check_ours` requires.
pub(crate) const COLUMNS: [&str; 14] = [
    "id", "time_ms", "author", "guest", "addr", "kind", "x", "y", "z", "face", "old_w", "new_w",
    "old_text", "new_text",
];

const PUT: &str = "INSERT OR IGNORE INTO craft_history
    (id, time_ms, author, guest, addr, kind, x, y, z, face, old_w, new_w, old_text, new_text)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

const SELECT: &str = "SELECT id, time_ms, author, guest, addr, kind, x, y, z, face,
    old_w, new_w, old_text, new_text FROM craft_history";

/// Every filter is optional: a NULL parameter matches everything. The
/// planner still uses the position or author index when its column is
/// bound (SQLite evaluates `?1 IS NULL` once per statement).
const QUERY_AT: &str = "WHERE x = ?1 AND y = ?2 AND z = ?3 AND (?4 IS NULL OR author = ?4)
    AND time_ms >= ?5 ORDER BY time_ms DESC, rowid DESC LIMIT ?6";
const QUERY_BY: &str = "WHERE author = ?1 AND time_ms >= ?2
    AND x BETWEEN ?3 AND ?4 AND z BETWEEN ?5 AND ?6 ORDER BY time_ms DESC, rowid DESC LIMIT ?7";
const QUERY_ANY: &str = "WHERE time_ms >= ?1
    AND x BETWEEN ?2 AND ?3 AND z BETWEEN ?4 AND ?5 ORDER BY time_ms DESC, rowid DESC LIMIT ?6";

const PRUNE_AGE: &str = "DELETE FROM craft_history WHERE time_ms < ?1";
const PRUNE_ROWS: &str = "DELETE FROM craft_history WHERE rowid IN (
    SELECT rowid FROM craft_history ORDER BY time_ms DESC, rowid DESC LIMIT -1 OFFSET ?1)";

/// Writes `entries` inside the batch's transaction; returns the statements
/// run.
pub(crate) fn insert(tx: &Transaction<'_>, entries: &[HistoryEntry]) -> StoreResult<u64> {
    if entries.is_empty() {
        return Ok(0);
    }
    let m = |e| map("recording history", e);
    let mut put = tx.prepare_cached(PUT).map_err(m)?;
    for e in entries {
        let (old_w, new_w, old_text, new_text) = e.change.columns();
        put.execute(params![
            e.id,
            e.time_ms,
            &*e.author.name,
            e.author.guest,
            e.author.addr.as_deref(),
            e.change.kind_code(),
            e.pos.x,
            e.pos.y,
            e.pos.z,
            e.change.face(),
            old_w,
            new_w,
            old_text,
            new_text
        ])
        .map_err(m)?;
    }
    Ok(entries.len() as u64)
}

fn row(r: &Row<'_>) -> rusqlite::Result<Result<HistoryEntry, StoreError>> {
    let kind: i16 = r.get(5)?;
    let face: i32 = r.get(9)?;
    let change = Change::from_columns(kind, face, r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?);
    let addr: Option<String> = r.get(4)?;
    let name: String = r.get(2)?;
    Ok(match change {
        Some(change) => Ok(HistoryEntry {
            id: r.get(0)?,
            time_ms: r.get(1)?,
            author: Author {
                name: Arc::from(name),
                guest: r.get(3)?,
                addr: addr.map(Arc::from),
            },
            pos: BlockPos::new(r.get(6)?, r.get(7)?, r.get(8)?),
            change,
        }),
        None => Err(StoreError::Corrupt(format!(
            "craft_history holds an entry of unknown kind {kind}"
        ))),
    })
}

/// Runs `query` in one read transaction.
pub(crate) fn query(conn: &mut Connection, query: &HistoryQuery) -> StoreResult<Vec<HistoryEntry>> {
    let m = |e| map("history", e);
    let since = query.since_ms.unwrap_or(i64::MIN);
    let limit = query.limit_i64();
    let (min_x, max_x, min_z, max_z) = query
        .area
        .map_or((i32::MIN, i32::MAX, i32::MIN, i32::MAX), |a| a.bounds());
    let rows: Vec<Result<HistoryEntry, StoreError>> = match (query.at, &query.author) {
        (Some(at), author) => {
            let mut stmt = conn
                .prepare_cached(&format!("{SELECT} {QUERY_AT}"))
                .map_err(m)?;
            let found = stmt
                .query_map(
                    params![at.x, at.y, at.z, author.as_deref(), since, limit],
                    row,
                )
                .map_err(m)?;
            found.collect::<Result<_, _>>().map_err(m)?
        }
        (None, Some(author)) => {
            let mut stmt = conn
                .prepare_cached(&format!("{SELECT} {QUERY_BY}"))
                .map_err(m)?;
            let found = stmt
                .query_map(
                    params![author, since, min_x, max_x, min_z, max_z, limit],
                    row,
                )
                .map_err(m)?;
            found.collect::<Result<_, _>>().map_err(m)?
        }
        (None, None) => {
            let mut stmt = conn
                .prepare_cached(&format!("{SELECT} {QUERY_ANY}"))
                .map_err(m)?;
            let found = stmt
                .query_map(params![since, min_x, max_x, min_z, max_z, limit], row)
                .map_err(m)?;
            found.collect::<Result<_, _>>().map_err(m)?
        }
    };
    let mut entries: Vec<HistoryEntry> = rows.into_iter().collect::<Result<_, _>>()?;
    // The position query does not filter by area in SQL.
    entries.retain(|e| query.matches(e));
    Ok(entries)
}

/// Deletes by age, then by row budget, in one write transaction.
pub(crate) fn prune(
    conn: &mut Connection,
    older_than_ms: i64,
    max_rows: Option<u64>,
) -> StoreResult<u64> {
    let m = |e| map("prune_history", e);
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(m)?;
    let mut deleted = tx.execute(PRUNE_AGE, [older_than_ms]).map_err(m)? as u64;
    if let Some(max) = max_rows {
        let keep = i64::try_from(max).unwrap_or(i64::MAX);
        deleted += tx.execute(PRUNE_ROWS, [keep]).map_err(m)? as u64;
    }
    tx.commit().map_err(m)?;
    Ok(deleted)
}
