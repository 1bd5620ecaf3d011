//! Drafts ([`DraftChange`]): the `draft` table's statements and rows.
//!
//! | table | columns | keys |
//! |---|---|---|
//! | `draft` | `owner`, `x, y, z` (bigint), `kind`, `face`, `w`, `text`, `seen`, `ms` | primary `(owner, x, y, z, kind, face)` |
//!
//! A player's whole draft is one primary-key prefix (`owner`), so loading
//! and deleting it are index range operations; chunk reads never touch the
//! table.

use std::collections::HashSet;

use world_core::store::{DraftChange, DraftSlot};
use world_core::{BlockPos, StoreError};

use crate::plan::coord;
use crate::rows::{Column, ColumnData, Rows, SqlType};
use crate::schema::SchemaName;
use crate::statements::{RowSql, Sql};

/// Migration 2: the drafts table (statements for `MIGRATIONS`).
pub(crate) const DRAFT_MIGRATION: &[&str] = &["CREATE TABLE IF NOT EXISTS {schema}.draft (
            owner text NOT NULL,
            x bigint NOT NULL,
            y bigint NOT NULL,
            z bigint NOT NULL,
            kind integer NOT NULL,
            face integer NOT NULL,
            w integer NOT NULL,
            text text NOT NULL,
            seen bigint NOT NULL,
            ms bigint NOT NULL,
            PRIMARY KEY (owner, x, y, z, kind, face)
        )"];

const fn col(name: &'static str, ty: SqlType) -> Column {
    Column { name, ty }
}

/// Input of `put_draft`.
pub(crate) const DRAFT_COLUMNS: &[Column] = &[
    col("owner", SqlType::Text),
    col("x", SqlType::Int8),
    col("y", SqlType::Int8),
    col("z", SqlType::Int8),
    col("kind", SqlType::Int4),
    col("face", SqlType::Int4),
    col("w", SqlType::Int4),
    col("text", SqlType::Text),
    col("seen", SqlType::Int8),
    col("ms", SqlType::Int8),
];

/// The draft statements, for one schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DraftStatements {
    /// The draft of `:owner`: `x`, `y`, `z` (`int8`), `kind`, `face`, `w`
    /// (`int4`), `text`, `seen`, `ms` (`int8`). Decode with
    /// [`draft_change`].
    pub load_draft: Sql,
    /// One page of [`load_draft`](Self::load_draft), for backends whose
    /// answers are size-limited: the rows after
    /// `(:x, :y, :z, :kind, :face)` in that order, at most `:limit` (start
    /// below every row with `i64::MIN` and `i32::MIN`, go on from the last
    /// row returned).
    pub load_draft_page: Sql,
    /// Upserts draft rows by slot (input deduplicated by [`draft_rows`]).
    pub put_draft: RowSql,
    /// Deletes the draft of `:owner`.
    pub delete_draft: Sql,
}

impl DraftStatements {
    /// The statements over the `draft` table of `schema`.
    pub fn new(schema: &SchemaName) -> Self {
        Self {
            load_draft: Sql::new(schema.expand(
                "SELECT x, y, z, kind, face, w, text, seen, ms FROM {schema}.draft \
                 WHERE owner = :owner::text",
            )),
            load_draft_page: Sql::new(schema.expand(
                "SELECT x, y, z, kind, face, w, text, seen, ms FROM {schema}.draft \
                 WHERE owner = :owner::text \
                 AND (x, y, z, kind, face) > (:x::int8, :y::int8, :z::int8, :kind::int4, :face::int4) \
                 ORDER BY x, y, z, kind, face LIMIT :limit::int8",
            )),
            put_draft: RowSql::new(
                schema,
                "put_draft",
                DRAFT_COLUMNS,
                "INSERT INTO {schema}.draft AS d (owner, x, y, z, kind, face, w, text, seen, ms) \
                 SELECT t.owner, t.x, t.y, t.z, t.kind, t.face, t.w, t.text, t.seen, t.ms \
                 FROM {rows} \
                 ON CONFLICT (owner, x, y, z, kind, face) DO UPDATE SET w = EXCLUDED.w, \
                 text = EXCLUDED.text, seen = EXCLUDED.seen, ms = EXCLUDED.ms",
            ),
            delete_draft: Sql::new(
                schema.expand("DELETE FROM {schema}.draft WHERE owner = :owner::text"),
            ),
        }
    }
}

/// The input of `put_draft`; of several changes in one slot the last is
/// kept (an upsert may not touch a row twice).
pub fn draft_rows<'a>(owner: &'a str, changes: &'a [DraftChange]) -> Rows<'a> {
    let mut seen: HashSet<DraftSlot> = HashSet::with_capacity(changes.len());
    let mut last: Vec<&DraftChange> = changes
        .iter()
        .rev()
        .filter(|c| seen.insert(c.slot()))
        .collect();
    last.reverse();
    Rows::new(
        DRAFT_COLUMNS,
        vec![
            ColumnData::Text(vec![owner; last.len()]),
            ColumnData::Int8(last.iter().map(|c| c.pos.x.into()).collect()),
            ColumnData::Int8(last.iter().map(|c| c.pos.y.into()).collect()),
            ColumnData::Int8(last.iter().map(|c| c.pos.z.into()).collect()),
            ColumnData::Int4(last.iter().map(|c| c.kind().code()).collect()),
            ColumnData::Int4(last.iter().map(|c| c.face()).collect()),
            ColumnData::Int4(last.iter().map(|c| c.w()).collect()),
            ColumnData::Text(last.iter().map(|c| c.text()).collect()),
            ColumnData::Int8(last.iter().map(|c| c.seen).collect()),
            ColumnData::Int8(last.iter().map(|c| c.time_ms).collect()),
        ],
    )
}

/// One row of `load_draft`, checked.
#[allow(clippy::too_many_arguments)]
pub fn draft_change(
    x: i64,
    y: i64,
    z: i64,
    kind: i32,
    face: i32,
    w: i32,
    text: String,
    seen: i64,
    ms: i64,
) -> Result<DraftChange, StoreError> {
    let pos = BlockPos::new(coord(x, "x")?, coord(y, "y")?, coord(z, "z")?);
    DraftChange::from_columns(pos, kind, face, w, text, seen, ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statements::Form;
    use world_core::store::DraftEdit;

    #[test]
    fn rows_keep_the_last_change_per_slot() {
        let pos = BlockPos::new(1, 2, 3);
        let change = |w| DraftChange {
            pos,
            edit: DraftEdit::Block(w),
            seen: 0,
            time_ms: 0,
        };
        let changes = [change(1), change(2)];
        let rows = draft_rows("ann", &changes);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows.column("w"), Some(&ColumnData::Int4(vec![2])));
    }

    #[test]
    fn statements_name_the_schema() {
        let s = DraftStatements::new(&SchemaName::new("craft").expect("valid"));
        assert_eq!(s.load_draft.positional().params, ["owner"]);
        assert_eq!(s.delete_draft.positional().params, ["owner"]);
        assert_eq!(
            s.load_draft_page.positional().params,
            ["owner", "x", "y", "z", "kind", "face", "limit"]
        );
        let names: Vec<&str> = DRAFT_COLUMNS.iter().map(|c| c.name).collect();
        assert_eq!(s.put_draft.form(Form::Unnest).positional().params, names);
        assert!(
            s.put_draft
                .form(Form::Json)
                .named()
                .contains("\"craft\".draft")
        );
    }
}
