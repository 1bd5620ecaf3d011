//! The schema: its name, its tables and the migrations that create them.
//!
//! Migrations are a list of `(version, statements)` recorded in
//! `<schema>.schema_migrations`. Every backend runs [`MigrationScript`] at
//! start-up, in one transaction:
//!
//! 1. the [`prelude`](MigrationScript::prelude): take a transaction-level
//!    advisory lock derived from the schema name (so two servers starting at
//!    once on an empty database queue up instead of racing on
//!    `CREATE SCHEMA`/`CREATE TABLE`), create the schema if it is missing
//!    (without needing the `CREATE` privilege on the database when it
//!    exists), and create the migrations table;
//! 2. [`applied_versions`](MigrationScript::applied_versions), then
//!    [`pending`](MigrationScript::pending) to learn what is left;
//! 3. each pending migration's statements followed by its
//!    [`record`](Migration::record) statement;
//! 4. `COMMIT` (which releases the lock).
//!
//! Every statement is also idempotent on its own (`IF NOT EXISTS`), so a
//! schema created by hand or half-way by an older tool still migrates. No
//! statement has parameters, and each is a single SQL statement (the Data
//! API runs one statement per call).

use std::fmt;

use crate::rows::SqlType;

/// The largest schema version this crate knows.
pub const LATEST_VERSION: i32 = 4;

/// The name of the PostgreSQL schema holding the world's tables
/// (`public` by default).
///
/// Limited to ASCII letters, digits and `_` (not starting with a digit),
/// at most 63 bytes, not starting with `pg_`: it is spliced into SQL text,
/// always double-quoted, so case is kept as given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SchemaName(String);

/// Why a schema name or a stored schema version is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The schema name is not a plain identifier.
    #[error(
        "invalid schema name {0:?}: use 1 to 63 ASCII letters, digits or '_', not starting with a digit or 'pg_'"
    )]
    InvalidName(String),
    /// The database was migrated by a newer version of the server.
    #[error(
        "the schema has migration version {found}, newer than the latest this server knows ({LATEST_VERSION}); upgrade the server"
    )]
    TooNew {
        /// The unknown version found.
        found: i32,
    },
}

impl SchemaName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, SchemaError> {
        let bytes = name.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 63
            && !bytes[0].is_ascii_digit()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
            && !name.to_ascii_lowercase().starts_with("pg_");
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(SchemaError::InvalidName(name.to_owned()))
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted identifier (`"craft"`).
    pub fn ident(&self) -> String {
        format!("\"{}\"", self.0)
    }

    /// The name as a string literal (`'craft'`).
    pub fn literal(&self) -> String {
        format!("'{}'", self.0)
    }

    /// Replaces `{schema}` in `template` with the quoted name.
    pub(crate) fn expand(&self, template: &str) -> String {
        template.replace("{schema}", &self.ident())
    }
}

impl Default for SchemaName {
    fn default() -> Self {
        Self("public".to_owned())
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One migration: its version, a name for humans, and its statements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    /// Version, starting at 1, growing by 1.
    pub version: i32,
    /// Short description, stored beside the version.
    pub name: &'static str,
    /// Single SQL statements, run in order, each idempotent.
    pub statements: Vec<String>,
    /// Records the migration in the migrations table (run after
    /// `statements`, in the same transaction).
    pub record: String,
}

/// Everything a backend runs to bring a schema up to [`LATEST_VERSION`]
/// (see the module docs for the order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationScript {
    /// Run first in the migration transaction: lock, create the schema and
    /// the migrations table.
    pub prelude: Vec<String>,
    /// Returns one `int4` column, `version`, one row per applied migration.
    pub applied_versions: String,
    /// Every migration this crate knows, in version order.
    pub migrations: Vec<Migration>,
}

impl MigrationScript {
    /// The script for `schema`.
    pub fn new(schema: &SchemaName) -> Self {
        let migrations_table = format!("{}.schema_migrations", schema.ident());
        let prelude = vec![
            // The lock is keyed by schema so that tests (a schema each) do
            // not queue behind each other; hashtextextended is PostgreSQL 11+.
            format!(
                "SELECT pg_advisory_xact_lock(hashtextextended('craft-world migrations ' || {}, 0))",
                schema.literal()
            ),
            format!(
                "DO $craft$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = {}) \
                 THEN CREATE SCHEMA {}; END IF; END $craft$",
                schema.literal(),
                schema.ident()
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {migrations_table} (\
                 version {} PRIMARY KEY, \
                 name text NOT NULL, \
                 applied_at timestamptz NOT NULL DEFAULT now())",
                SqlType::Int4.name()
            ),
        ];
        let applied_versions = format!("SELECT version FROM {migrations_table} ORDER BY version");
        let migrations = MIGRATIONS
            .iter()
            .map(|(version, name, statements)| Migration {
                version: *version,
                name,
                statements: statements.iter().map(|s| schema.expand(s)).collect(),
                record: format!(
                    "INSERT INTO {migrations_table} (version, name) VALUES ({version}, '{name}') \
                     ON CONFLICT (version) DO NOTHING"
                ),
            })
            .collect();
        Self {
            prelude,
            applied_versions,
            migrations,
        }
    }

    /// The migrations still to run given the versions already applied, in
    /// order; an error if the schema is newer than this crate.
    pub fn pending(&self, applied: &[i32]) -> Result<Vec<&Migration>, SchemaError> {
        if let Some(&found) = applied
            .iter()
            .find(|v| !self.migrations.iter().any(|m| m.version == **v))
        {
            return Err(SchemaError::TooNew { found });
        }
        Ok(self
            .migrations
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .collect())
    }
}

/// The migrations: `(version, name, statements)`, `{schema}` standing for
/// the quoted schema name. Never edit a released migration: add one.
const MIGRATIONS: &[(i32, &str, &[&str])] = &[
    (
        1,
        "initial schema",
        &[
            // The per-chunk key counter ("head"). A batch advances it with an
            // upsert that locks the row until commit: see the crate docs.
            "CREATE TABLE IF NOT EXISTS {schema}.chunk (
            p bigint NOT NULL,
            q bigint NOT NULL,
            key bigint NOT NULL,
            PRIMARY KEY (p, q)
        )",
            "CREATE TABLE IF NOT EXISTS {schema}.block (
            p bigint NOT NULL,
            q bigint NOT NULL,
            x bigint NOT NULL,
            y bigint NOT NULL,
            z bigint NOT NULL,
            w integer NOT NULL,
            key bigint NOT NULL,
            user_id text,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (p, q, x, y, z)
        )",
            // Served `WHERE p = $1 AND q = $2 AND key > $3` (incremental
            // sync) until migration 4 dropped it.
            "CREATE INDEX IF NOT EXISTS block_p_q_key ON {schema}.block (p, q, key)",
            // Lights and signs are always sent in full, so the primary key's
            // (p, q) prefix serves their reads; `key` records the chunk head at
            // which the row was last written.
            "CREATE TABLE IF NOT EXISTS {schema}.light (
            p bigint NOT NULL,
            q bigint NOT NULL,
            x bigint NOT NULL,
            y bigint NOT NULL,
            z bigint NOT NULL,
            w integer NOT NULL,
            key bigint NOT NULL,
            user_id text,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (p, q, x, y, z)
        )",
            "CREATE TABLE IF NOT EXISTS {schema}.sign (
            p bigint NOT NULL,
            q bigint NOT NULL,
            x bigint NOT NULL,
            y bigint NOT NULL,
            z bigint NOT NULL,
            face integer NOT NULL,
            text text NOT NULL,
            key bigint NOT NULL,
            user_id text,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (p, q, x, y, z, face)
        )",
            // A chunk without a head must have no block rows (a batch inserts
            // into the chunks it creates without ON CONFLICT): give heads to
            // block rows written before the chunk table existed.
            "INSERT INTO {schema}.chunk (p, q, key) \
         SELECT p, q, GREATEST(max(key), 1) FROM {schema}.block GROUP BY p, q \
         ON CONFLICT (p, q) DO NOTHING",
            "CREATE TABLE IF NOT EXISTS {schema}.player (
            name text PRIMARY KEY,
            x real NOT NULL,
            y real NOT NULL,
            z real NOT NULL,
            rx real NOT NULL,
            ry real NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )",
        ],
    ),
    (2, "drafts", crate::drafts::DRAFT_MIGRATION),
    (3, "block history", crate::history::MIGRATION),
    (4, "hot block updates", HOT_BLOCK_UPDATES),
];

/// Migration 4: block updates become HOT (heap-only tuple) updates.
///
/// An update of a block changes `w`, `key`, `user_id` and `updated_at`.
/// With the `(p, q, key)` index every update changed an indexed column, so
/// PostgreSQL wrote a new entry in both indexes and the row went wherever
/// there was room; sustained edits, which are mostly updates of the same
/// chunks, paid for three index writes per edit. Without that index only
/// the primary key is left and its columns never change, so an update can
/// stay on its page without touching any index, provided the page has
/// room: hence `fillfactor = 50` (inserts leave half of each page free).
/// It applies to pages written from now on; a table migrated from v3 keeps
/// its full pages until it is rewritten (`VACUUM FULL`, run by hand).
///
/// What the index served, `load_chunk` since a key, now reads the chunk's
/// rows by the primary key's `(p, q)` prefix and filters on `key`: one
/// chunk's rows sit together in the primary key, a full load reads them
/// all anyway, and the benchmark's incremental-sync figures show the cost.
const HOT_BLOCK_UPDATES: &[&str] = &[
    "DROP INDEX IF EXISTS {schema}.block_p_q_key",
    "ALTER TABLE {schema}.block SET (fillfactor = 50)",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        for ok in ["public", "craft", "Craft_2", "_x", "t_1234_abc"] {
            assert!(SchemaName::new(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "pg_catalog",
            "PG_x",
            "é",
            long.as_str(),
        ] {
            assert!(SchemaName::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(SchemaName::default().as_str(), "public");
        assert_eq!(
            SchemaName::new("Craft").map(|s| s.ident()),
            Ok("\"Craft\"".to_owned())
        );
    }

    #[test]
    fn script_is_expanded_and_ordered() {
        let schema = SchemaName::new("craft").expect("valid");
        let script = MigrationScript::new(&schema);
        assert_eq!(script.prelude.len(), 3);
        assert!(script.prelude[0].contains("pg_advisory_xact_lock"));
        let versions: Vec<i32> = script.migrations.iter().map(|m| m.version).collect();
        let expected: Vec<i32> = (1..=LATEST_VERSION).collect();
        assert_eq!(versions, expected);
        for m in &script.migrations {
            for s in &m.statements {
                assert!(!s.contains("{schema}"), "{s}");
                assert!(s.contains("\"craft\"."), "{s}");
                assert!(
                    s.contains("IF NOT EXISTS")
                        || s.contains("IF EXISTS")
                        || s.contains("ON CONFLICT")
                        || s.contains(" SET ("),
                    "not idempotent: {s}"
                );
                assert!(!s.trim_end().ends_with(';'), "one statement each: {s}");
            }
            assert!(m.record.contains("ON CONFLICT"));
        }
    }

    #[test]
    fn pending_migrations() {
        let script = MigrationScript::new(&SchemaName::default());
        assert_eq!(
            script.pending(&[]).map(|p| p.len()),
            Ok(script.migrations.len())
        );
        let all: Vec<i32> = script.migrations.iter().map(|m| m.version).collect();
        assert_eq!(script.pending(&all).map(|p| p.len()), Ok(0));
        assert_eq!(
            script.pending(&[LATEST_VERSION + 1]).map(|p| p.len()),
            Err(SchemaError::TooNew {
                found: LATEST_VERSION + 1
            })
        );
    }
}
