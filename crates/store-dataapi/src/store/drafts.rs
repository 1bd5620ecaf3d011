//! Drafts: players' private edits in the `draft` table (see pg-sql's
//! `drafts` module) over the Data API.
//!
//! `put_draft` runs in one transaction (its rows may need several calls
//! under the request size limit), so it is all or nothing. `load_draft`
//! reads by pages (the 1 MiB answer limit; a page holds at most a
//! twentieth of `page_rows`, since a change may carry a 1 KiB sign text).

use pg_sql::{Value, draft_change, draft_rows};
use world_core::StoreResult;
use world_core::store::{DraftChange, validate_draft};

use super::DataApiStore;
use crate::error::DataApiError;
use crate::retry::Failure;
use crate::wire::{columns, corrupt, int, parameters, required_long, text};

impl DataApiStore {
    pub(super) async fn draft_load(&self, owner: &str) -> StoreResult<Vec<DraftChange>> {
        self.ensure_open()?;
        let context = "load_draft";
        let sql = self.sql.drafts.load_draft_page.named();
        let limit = i64::from((self.config.page_rows / 20).max(1));
        let mut after = (i64::MIN, i64::MIN, i64::MIN, i32::MIN, i32::MIN);
        let mut out = Vec::new();
        loop {
            let params = parameters([
                ("owner", Value::Text(owner)),
                ("x", Value::Int8(after.0)),
                ("y", Value::Int8(after.1)),
                ("z", Value::Int8(after.2)),
                ("kind", Value::Int4(after.3)),
                ("face", Value::Int4(after.4)),
                ("limit", Value::Int8(limit)),
            ]);
            let records = self
                .retrying(context, || async {
                    Ok(self.execute(sql, params.clone(), None).await?)
                })
                .await?;
            for record in &records {
                let decode = || -> Result<_, DataApiError> {
                    let r = columns(record, 9, context)?;
                    let required =
                        |f, what| int(f, what)?.ok_or_else(|| corrupt(format!("{what} is null")));
                    Ok((
                        required_long(&r[0], "x")?,
                        required_long(&r[1], "y")?,
                        required_long(&r[2], "z")?,
                        required(&r[3], "kind")?,
                        required(&r[4], "face")?,
                        required(&r[5], "w")?,
                        text(&r[6], "text")?.unwrap_or_default(),
                        required_long(&r[7], "seen")?,
                        required_long(&r[8], "ms")?,
                    ))
                };
                let (x, y, z, kind, face, w, text, seen, ms) =
                    decode().map_err(|e| e.into_store(context))?;
                out.push(draft_change(x, y, z, kind, face, w, text, seen, ms)?);
                after = (x, y, z, kind, face);
            }
            if (records.len() as i64) < limit {
                return Ok(out);
            }
        }
    }

    pub(super) async fn draft_put(&self, owner: &str, changes: &[DraftChange]) -> StoreResult<()> {
        self.ensure_open()?;
        validate_draft(owner, changes)?;
        if changes.is_empty() {
            return Ok(());
        }
        let context = format!("put_draft ({} changes)", changes.len());
        let rows = draft_rows(owner, changes);
        self.retrying(&context, || async {
            let transaction = self.begin().await?;
            let written = async {
                self.execute_json(
                    &self.sql.drafts.put_draft,
                    &rows,
                    usize::MAX,
                    Some(&transaction),
                )
                .await?;
                self.commit(&transaction).await
            }
            .await;
            if let Err(e) = &written {
                self.abandon(&transaction, e).await;
            }
            written.map_err(Failure::Api)
        })
        .await
    }

    pub(super) async fn draft_delete(&self, owner: &str) -> StoreResult<()> {
        self.ensure_open()?;
        let sql = self.sql.drafts.delete_draft.named();
        let params = parameters([("owner", Value::Text(owner))]);
        self.retrying("delete_draft", || async {
            self.execute(sql, params.clone(), None).await?;
            Ok(())
        })
        .await
    }
}
