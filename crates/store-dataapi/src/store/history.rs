//! Block history through the Data API: entries go in with the batch (the
//! `record_history` step of its transaction, like every other step); this
//! module reads and prunes them, one `ExecuteStatement` each.
//!
//! A read answers at most 1 MiB (the service's limit): about 5,000 entries
//! of short signs. Larger reads fail with a clear error instead of being
//! cut short; ask for less (a smaller radius or duration).

use aws_sdk_rdsdata::types::Field;
use pg_sql::{HistoryParam, HistoryRow, Value, decode_history};
use world_core::StoreResult;
use world_core::store::{HistoryEntry, HistoryQuery};

use super::DataApiStore;
use crate::error::DataApiError;
use crate::wire::{columns, corrupt, int, parameters, required_long, text};

fn entry(record: &[Field]) -> Result<HistoryEntry, DataApiError> {
    let r = columns(record, 14, "history")?;
    let required_int =
        |f: &Field, what: &str| int(f, what)?.ok_or_else(|| corrupt(format!("{what} is null")));
    let row = HistoryRow {
        id: required_long(&r[0], "id")?,
        time_ms: required_long(&r[1], "time_ms")?,
        author: text(&r[2], "author")?.ok_or_else(|| corrupt("author is null"))?,
        guest: required_int(&r[3], "guest")?,
        addr: text(&r[4], "addr")?,
        kind: required_int(&r[5], "kind")?,
        pos: (
            required_long(&r[6], "x")?,
            required_long(&r[7], "y")?,
            required_long(&r[8], "z")?,
        ),
        face: required_int(&r[9], "face")?,
        old_w: required_int(&r[10], "old_w")?,
        new_w: required_int(&r[11], "new_w")?,
        old_text: text(&r[12], "old_text")?,
        new_text: text(&r[13], "new_text")?,
    };
    decode_history(row).map_err(|e| corrupt(e.to_string()))
}

fn count(records: &[Vec<Field>]) -> Result<u64, DataApiError> {
    match records.first() {
        Some(record) => {
            let r = columns(record, 1, "prune_history")?;
            Ok(u64::try_from(required_long(&r[0], "count")?).unwrap_or(0))
        }
        None => Ok(0),
    }
}

impl DataApiStore {
    /// [`BlockStore::history`](world_core::BlockStore::history).
    pub(super) async fn read_history(
        &self,
        query: &HistoryQuery,
    ) -> StoreResult<Vec<HistoryEntry>> {
        self.ensure_open()?;
        query.validate()?;
        let (sql, values) = self.sql.history.read(query);
        let params = parameters(values.iter().map(|(name, value)| {
            let value = match value {
                HistoryParam::Int8(v) => Value::Int8(*v),
                HistoryParam::Text(Some(v)) => Value::Text(v),
                HistoryParam::Text(None) => Value::Null(pg_sql::SqlType::Text),
            };
            (*name, value)
        }));
        let sql = sql.named();
        let context = "history";
        self.retrying(context, || async {
            let records = self.execute(sql, params.clone(), None).await?;
            records
                .iter()
                .map(|r| entry(r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Into::into)
        })
        .await
    }

    /// [`BlockStore::prune_history`](world_core::BlockStore::prune_history).
    pub(super) async fn prune(
        &self,
        older_than_ms: i64,
        max_rows: Option<u64>,
    ) -> StoreResult<u64> {
        self.ensure_open()?;
        let context = "prune_history";
        let age = self.sql.history.prune_age.named();
        let params = parameters([("older_than", Value::Int8(older_than_ms))]);
        let mut deleted = self
            .retrying(context, || async {
                let records = self.execute(age, params.clone(), None).await?;
                count(&records).map_err(Into::into)
            })
            .await?;
        if let Some(max) = max_rows {
            let rows = self.sql.history.prune_rows.named();
            let keep = i64::try_from(max).unwrap_or(i64::MAX);
            let params = parameters([("keep", Value::Int8(keep))]);
            deleted += self
                .retrying(context, || async {
                    let records = self.execute(rows, params.clone(), None).await?;
                    count(&records).map_err(Into::into)
                })
                .await?;
        }
        Ok(deleted)
    }
}
