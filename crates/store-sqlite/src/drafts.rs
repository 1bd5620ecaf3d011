//! Drafts ([`DraftChange`]): players' private edits, in their own table,
//! never read by chunk loads.

use rusqlite::{Connection, TransactionBehavior, params};
use world_core::store::{DraftChange, validate_draft};
use world_core::{BlockPos, StoreResult};

use crate::error::map;

/// The drafts table, created on open (after the versioned migration: it is
/// independent of the original server's tables and of the schema version).
/// One row per slot: owner, position, kind and sign face.
pub(crate) const DRAFT_TABLE: &str = "
CREATE TABLE IF NOT EXISTS craft_draft (
    owner TEXT NOT NULL,
    x INTEGER NOT NULL, y INTEGER NOT NULL, z INTEGER NOT NULL,
    kind INTEGER NOT NULL, face INTEGER NOT NULL,
    w INTEGER NOT NULL, text TEXT NOT NULL,
    seen INTEGER NOT NULL, time_ms INTEGER NOT NULL,
    PRIMARY KEY (owner, x, y, z, kind, face));
";

const LOAD_DRAFT: &str =
    "SELECT x, y, z, kind, face, w, text, seen, time_ms FROM craft_draft WHERE owner = ?1";
const PUT_DRAFT: &str = "INSERT OR REPLACE INTO craft_draft
    (owner, x, y, z, kind, face, w, text, seen, time_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
const DELETE_DRAFT: &str = "DELETE FROM craft_draft WHERE owner = ?1";

/// Creates the drafts table if it is missing.
pub(crate) fn ensure_table(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(DRAFT_TABLE)
        .map_err(|e| map("creating the drafts table", e))
}

/// The draft of `owner`; returns it and the statements run.
pub(crate) fn load(conn: &mut Connection, owner: &str) -> StoreResult<(Vec<DraftChange>, u64)> {
    let m = |e| map("load_draft", e);
    let mut stmt = conn.prepare_cached(LOAD_DRAFT).map_err(m)?;
    let rows = stmt
        .query_map([owner], |r| {
            Ok((
                BlockPos::new(r.get(0)?, r.get(1)?, r.get(2)?),
                r.get::<_, i32>(3)?,
                r.get::<_, i32>(4)?,
                r.get::<_, i32>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, i64>(8)?,
            ))
        })
        .map_err(m)?;
    let mut changes = Vec::new();
    for row in rows {
        let (pos, kind, face, w, text, seen, time_ms) = row.map_err(m)?;
        changes.push(DraftChange::from_columns(
            pos, kind, face, w, text, seen, time_ms,
        )?);
    }
    Ok((changes, 1))
}

/// Upserts `changes` in one transaction; returns the statements run.
pub(crate) fn put(conn: &mut Connection, owner: &str, changes: &[DraftChange]) -> StoreResult<u64> {
    validate_draft(owner, changes)?;
    if changes.is_empty() {
        return Ok(0);
    }
    let m = |e| map("put_draft", e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(m)?;
    {
        let mut put = tx.prepare_cached(PUT_DRAFT).map_err(m)?;
        for c in changes {
            put.execute(params![
                owner,
                c.pos.x,
                c.pos.y,
                c.pos.z,
                c.kind().code(),
                c.face(),
                c.w(),
                c.text(),
                c.seen,
                c.time_ms
            ])
            .map_err(m)?;
        }
    }
    tx.commit().map_err(m)?;
    Ok(changes.len() as u64)
}

/// Deletes the draft of `owner`; returns the statements run.
pub(crate) fn delete(conn: &mut Connection, owner: &str) -> StoreResult<u64> {
    conn.prepare_cached(DELETE_DRAFT)
        .and_then(|mut stmt| stmt.execute([owner]))
        .map_err(|e| map("delete_draft", e))?;
    Ok(1)
}
