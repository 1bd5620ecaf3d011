//! The schema: the original server's tables, our additions, their
//! migrations and the checks run on every open.
//!
//! Schema objects only use syntax that SQLite 3.7 understands (no
//! `WITHOUT ROWID`, no partial or expression indexes): the original server
//! may run on an old Python whose SQLite must still parse the file.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::{SchemaError, map};
use world_core::{StoreError, StoreResult};

/// The newest schema version this build writes (`craft_meta.schema_version`).
pub const SCHEMA_VERSION: i64 = 2;

/// The original server's `create_tables`, statement for statement (also what
/// it runs at every start, hence `if not exists`).
const ORIGINAL_TABLES: &str = "
create table if not exists block (
    p int not null, q int not null, x int not null, y int not null, z int not null, w int not null);
create unique index if not exists block_pqxyz_idx on block (p, q, x, y, z);
create table if not exists light (
    p int not null, q int not null, x int not null, y int not null, z int not null, w int not null);
create unique index if not exists light_pqxyz_idx on light (p, q, x, y, z);
create table if not exists sign (
    p int not null, q int not null, x int not null, y int not null, z int not null,
    face int not null, text text not null);
create index if not exists sign_pq_idx on sign (p, q);
create unique index if not exists sign_xyzface_idx on sign (x, y, z, face);
create table if not exists block_history (
    timestamp real not null, user_id int not null,
    x int not null, y int not null, z int not null, w int not null);
";

/// Version 1: our tables and the index that makes per-chunk `max(rowid)` and
/// incremental loads (`rowid > ?`) index range scans.
const V1_TABLES: &str = "
CREATE TABLE IF NOT EXISTS craft_meta (
    name TEXT NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS craft_chunk (
    p INTEGER NOT NULL,
    q INTEGER NOT NULL,
    head INTEGER NOT NULL,
    PRIMARY KEY (p, q));
CREATE TABLE IF NOT EXISTS craft_player (
    name TEXT NOT NULL PRIMARY KEY,
    x REAL NOT NULL, y REAL NOT NULL, z REAL NOT NULL,
    rx REAL NOT NULL, ry REAL NOT NULL,
    time_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS craft_block_pq_idx ON block (p, q);
";

/// Author and time of the last write, NULL for rows the original wrote.
const META_COLUMNS: [(&str, &str); 2] = [("author", "TEXT"), ("time_ms", "INTEGER")];

const DATA_TABLES: [&str; 3] = ["block", "light", "sign"];

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Version found before (0: a new file, or one only the original wrote).
    pub from: i64,
    /// Version now.
    pub to: i64,
}

/// Brings the schema to [`SCHEMA_VERSION`] and checks it, in one
/// `BEGIN IMMEDIATE` transaction: two processes opening one file at once
/// serialise here, and the second finds nothing left to do.
pub fn migrate(conn: &mut Connection) -> StoreResult<Migration> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| map("migrating the schema", e))?;
    refuse_foreign(&tx)?;
    tx.execute_batch(ORIGINAL_TABLES)
        .map_err(|e| map("creating the original tables", e))?;
    check_original(&tx)?;

    let from = schema_version(&tx)?;
    if from > SCHEMA_VERSION {
        return Err(SchemaError::TooNew {
            found: from,
            supported: SCHEMA_VERSION,
        }
        .into());
    }
    if from < 1 {
        migrate_v1(&tx)?;
    }
    if from < 2 {
        migrate_v2(&tx)?;
    }
    check_ours(&tx)?;
    crate::drafts::ensure_table(&tx)?;
    tx.commit()
        .map_err(|e| map("committing the schema migration", e))?;
    Ok(Migration {
        from,
        to: SCHEMA_VERSION,
    })
}

fn migrate_v1(conn: &Connection) -> StoreResult<()> {
    let m = |e| map("migrating the schema to version 1", e);
    conn.execute_batch(V1_TABLES).map_err(m)?;
    for table in DATA_TABLES {
        let existing = columns(conn, table)?;
        for (column, ty) in META_COLUMNS {
            if !existing.iter().any(|c| c == column) {
                // ADD COLUMN only touches the schema (no row is rewritten),
                // and the original's statements name their columns, so
                // they keep working and leave these NULL.
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))
                    .map_err(m)?;
            }
        }
    }
    // Heads for what the original server wrote: a chunk's head is its
    // largest block rowid (what the original sends as its key). Chunks with
    // only lights and signs get the largest rowid of the file (at least 1):
    // any value >= 1 is a valid head for them, and this one keeps the
    // largest head equal to max(rowid), so the original server (which
    // numbers new rows max(rowid) + 1) would still give greater keys.
    conn.execute_batch(
        "INSERT OR IGNORE INTO craft_chunk (p, q, head)
             SELECT p, q, max(rowid) FROM block GROUP BY p, q;
         INSERT OR IGNORE INTO craft_chunk (p, q, head)
             SELECT p, q, max(1, coalesce((SELECT max(rowid) FROM block), 0))
             FROM (SELECT p, q FROM light UNION SELECT p, q FROM sign);
         INSERT OR REPLACE INTO craft_meta (name, value)
             SELECT 'last_key', max(coalesce((SELECT max(head) FROM craft_chunk), 0),
                                    coalesce((SELECT max(rowid) FROM block), 0));
         INSERT OR REPLACE INTO craft_meta (name, value) VALUES ('schema_version', 1);",
    )
    .map_err(m)?;
    Ok(())
}

/// Version 2: block history (see [`crate::history`]); a new table only.
fn migrate_v2(conn: &Connection) -> StoreResult<()> {
    let m = |e| map("migrating the schema to version 2", e);
    conn.execute_batch(crate::history::V2_TABLES).map_err(m)?;
    conn.execute_batch(
        "INSERT OR REPLACE INTO craft_meta (name, value) VALUES ('schema_version', 2);",
    )
    .map_err(m)?;
    Ok(())
}

fn table_names(conn: &Connection) -> StoreResult<Vec<String>> {
    let m = |e| map("reading the schema", e);
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .map_err(m)?;
    let names = stmt.query_map([], |r| r.get(0)).map_err(m)?;
    names.collect::<Result<_, _>>().map_err(m)
}

fn refuse_foreign(conn: &Connection) -> StoreResult<()> {
    let tables = table_names(conn)?;
    let ours = ["block", "light", "sign", "craft_meta"];
    if tables.is_empty() || tables.iter().any(|t| ours.contains(&t.as_str())) {
        return Ok(());
    }
    Err(SchemaError::ForeignDatabase {
        tables: tables.join(", "),
    }
    .into())
}

fn schema_version(conn: &Connection) -> StoreResult<i64> {
    let m = |e| map("reading the schema version", e);
    let has_meta = table_names(conn)?.iter().any(|t| t == "craft_meta");
    if !has_meta {
        return Ok(0);
    }
    let version = conn
        .query_row(
            "SELECT value FROM craft_meta WHERE name = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(m)?;
    Ok(version.unwrap_or(0))
}

fn columns(conn: &Connection, table: &str) -> StoreResult<Vec<String>> {
    let m = |e| map("reading the schema", e);
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .map_err(m)?;
    let names = stmt.query_map([table], |r| r.get(0)).map_err(m)?;
    names.collect::<Result<_, _>>().map_err(m)
}

fn require_columns(
    conn: &Connection,
    table: &'static str,
    required: &[&'static str],
) -> StoreResult<()> {
    let existing = columns(conn, table)?;
    for column in required {
        if !existing.iter().any(|c| c == column) {
            return Err(SchemaError::MissingColumn { table, column }.into());
        }
    }
    Ok(())
}

/// Whether `table` has a unique, non-partial index over exactly `wanted`.
fn has_unique_index(conn: &Connection, table: &str, wanted: &[&str]) -> StoreResult<bool> {
    let m = |e| map("reading the schema", e);
    let mut list = conn
        .prepare("SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 1 AND partial = 0")
        .map_err(m)?;
    let names: Vec<String> = list
        .query_map([table], |r| r.get(0))
        .map_err(m)?
        .collect::<Result<_, _>>()
        .map_err(m)?;
    let mut info = conn
        .prepare("SELECT name FROM pragma_index_info(?1)")
        .map_err(m)?;
    for name in names {
        let mut cols: Vec<Option<String>> = info
            .query_map([&name], |r| r.get(0))
            .map_err(m)?
            .collect::<Result<_, _>>()
            .map_err(m)?;
        cols.sort();
        let mut want: Vec<Option<String>> = wanted.iter().map(|c| Some((*c).to_owned())).collect();
        want.sort();
        if cols == want {
            return Ok(true);
        }
    }
    Ok(false)
}

fn check_original(conn: &Connection) -> StoreResult<()> {
    let position = ["p", "q", "x", "y", "z"];
    require_columns(conn, "block", &["p", "q", "x", "y", "z", "w"])?;
    require_columns(conn, "light", &["p", "q", "x", "y", "z", "w"])?;
    require_columns(conn, "sign", &["p", "q", "x", "y", "z", "face", "text"])?;
    if !has_unique_index(conn, "block", &position)? {
        return Err(SchemaError::MissingUniqueIndex {
            table: "block",
            columns: "p, q, x, y, z",
        }
        .into());
    }
    if !has_unique_index(conn, "light", &position)? {
        return Err(SchemaError::MissingUniqueIndex {
            table: "light",
            columns: "p, q, x, y, z",
        }
        .into());
    }
    if !has_unique_index(conn, "sign", &["x", "y", "z", "face"])? {
        return Err(SchemaError::MissingUniqueIndex {
            table: "sign",
            columns: "x, y, z, face",
        }
        .into());
    }
    Ok(())
}

fn check_ours(conn: &Connection) -> StoreResult<()> {
    for table in DATA_TABLES {
        let existing = columns(conn, table)?;
        for (column, _) in META_COLUMNS {
            if !existing.iter().any(|c| c == column) {
                return Err(SchemaError::MissingColumn { table, column }.into());
            }
        }
    }
    require_columns(conn, "craft_meta", &["name", "value"])?;
    require_columns(conn, "craft_chunk", &["p", "q", "head"])?;
    require_columns(
        conn,
        "craft_player",
        &["name", "x", "y", "z", "rx", "ry", "time_ms"],
    )?;
    require_columns(conn, "craft_history", &crate::history::COLUMNS)?;
    if !has_unique_index(conn, "craft_history", &["id"])? {
        return Err(SchemaError::MissingUniqueIndex {
            table: "craft_history",
            columns: "id",
        }
        .into());
    }
    if !has_unique_index(conn, "craft_chunk", &["p", "q"])? {
        return Err(SchemaError::MissingUniqueIndex {
            table: "craft_chunk",
            columns: "p, q",
        }
        .into());
    }
    let last_key: Option<i64> = conn
        .query_row(
            "SELECT value FROM craft_meta WHERE name = 'last_key'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| map("reading craft_meta", e))?;
    if last_key.is_none() {
        return Err(StoreError::from(SchemaError::MissingMeta("last_key")));
    }
    Ok(())
}
