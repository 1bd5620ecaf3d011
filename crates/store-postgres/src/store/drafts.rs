//! Drafts: players' private edits in the `draft` table (see pg-sql's
//! `drafts` module). Each call is one statement, hence atomic.

use pg_sql::{Form, draft_change, draft_rows};
use world_core::StoreResult;
use world_core::store::{DraftChange, validate_draft};

use super::{OpError, PostgresStore, bind, bind_rows, get};
use crate::counters::Op;

impl PostgresStore {
    pub(super) async fn draft_load(&self, owner: &str) -> StoreResult<Vec<DraftChange>> {
        let context = "load_draft";
        self.bounded(context, async {
            with_conn!(self, context, |client| {
                let sql = &self.sql.drafts.load_draft;
                let params = bind(sql.positional(), &[("owner", &owner)])?;
                let rows = self.query(Op::LoadDraft, client, sql, &params).await?;
                let mut changes = Vec::with_capacity(rows.len());
                for row in &rows {
                    changes.push(draft_change(
                        get(row, 0)?,
                        get(row, 1)?,
                        get(row, 2)?,
                        get(row, 3)?,
                        get(row, 4)?,
                        get(row, 5)?,
                        get(row, 6)?,
                        get(row, 7)?,
                        get(row, 8)?,
                    )?);
                }
                Ok(changes)
            })
        })
        .await
    }

    pub(super) async fn draft_put(&self, owner: &str, changes: &[DraftChange]) -> StoreResult<()> {
        self.ensure_open()?;
        validate_draft(owner, changes)?;
        if changes.is_empty() {
            return Ok(());
        }
        let context = format!("put_draft ({} changes)", changes.len());
        let rows = draft_rows(owner, changes);
        self.bounded(&context, async {
            with_conn!(self, context, |client| {
                let sql = self.sql.drafts.put_draft.form(Form::Unnest);
                let params = bind_rows(sql.positional(), &rows)?;
                let statement = self.prepared(client, sql.positional()).await?;
                self.counters.round_trip(Op::PutDraft, 1);
                client.execute(&statement, &params).await?;
                Ok::<_, OpError>(())
            })
        })
        .await
    }

    pub(super) async fn draft_delete(&self, owner: &str) -> StoreResult<()> {
        let context = "delete_draft";
        self.bounded(context, async {
            with_conn!(self, context, |client| {
                let sql = &self.sql.drafts.delete_draft;
                let params = bind(sql.positional(), &[("owner", &owner)])?;
                let statement = self.prepared(client, sql.positional()).await?;
                self.counters.round_trip(Op::DeleteDraft, 1);
                client.execute(&statement, &params).await?;
                Ok::<_, OpError>(())
            })
        })
        .await
    }
}
