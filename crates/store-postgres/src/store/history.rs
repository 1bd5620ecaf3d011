//! Block history over tokio-postgres: entries go in with the batch (the
//! `record_history` step of its pipelined transaction, see
//! [`pg_sql::HistoryStatements`]); this module reads and prunes them.

use pg_sql::{HistoryParam, HistoryRow, decode_history};
use tokio_postgres::Row;
use world_core::StoreResult;
use world_core::store::{HistoryEntry, HistoryQuery};

use super::{Param, PostgresStore, bind, get};
use crate::counters::Op;
use crate::error::OpError;

fn entry(row: &Row) -> StoreResult<HistoryEntry> {
    decode_history(HistoryRow {
        id: get(row, 0)?,
        time_ms: get(row, 1)?,
        author: get(row, 2)?,
        guest: get(row, 3)?,
        addr: get(row, 4)?,
        kind: get(row, 5)?,
        pos: (get(row, 6)?, get(row, 7)?, get(row, 8)?),
        face: get(row, 9)?,
        old_w: get(row, 10)?,
        new_w: get(row, 11)?,
        old_text: get(row, 12)?,
        new_text: get(row, 13)?,
    })
}

impl PostgresStore {
    /// [`BlockStore::history`](world_core::BlockStore::history).
    pub(super) async fn read_history(
        &self,
        query: &HistoryQuery,
    ) -> StoreResult<Vec<HistoryEntry>> {
        query.validate()?;
        let context = "history";
        let (sql, values) = self.sql.history.read(query);
        self.bounded(context, async {
            with_conn!(self, context, |client| {
                let named: Vec<(&str, Param<'_>)> = values
                    .iter()
                    .map(|(name, value)| -> (&str, Param<'_>) {
                        match value {
                            HistoryParam::Int8(v) => (*name, v),
                            HistoryParam::Text(v) => (*name, v),
                        }
                    })
                    .collect();
                let params = bind(sql.positional(), &named)?;
                let rows = self.query(Op::History, client, sql, &params).await?;
                let entries: StoreResult<Vec<HistoryEntry>> = rows.iter().map(entry).collect();
                Ok(entries?)
            })
        })
        .await
    }

    /// [`BlockStore::prune_history`](world_core::BlockStore::prune_history):
    /// two statements, each its own transaction (a half-done prune is
    /// still a valid history).
    pub(super) async fn prune(
        &self,
        older_than_ms: i64,
        max_rows: Option<u64>,
    ) -> StoreResult<u64> {
        let context = "prune_history";
        self.bounded(context, async {
            with_conn!(self, context, |client| {
                let count = |rows: Vec<Row>| -> StoreResult<u64> {
                    let n: i64 = rows.first().map_or(Ok(0), |r| get(r, 0))?;
                    Ok(u64::try_from(n).unwrap_or(0))
                };
                let sql = &self.sql.history.prune_age;
                let params = bind(sql.positional(), &[("older_than", &older_than_ms)])?;
                let rows = self.query(Op::PruneHistory, client, sql, &params).await?;
                let mut deleted = count(rows)?;
                if let Some(max) = max_rows {
                    let keep = i64::try_from(max).unwrap_or(i64::MAX);
                    let sql = &self.sql.history.prune_rows;
                    let params = bind(sql.positional(), &[("keep", &keep)])?;
                    let rows = self.query(Op::PruneHistory, client, sql, &params).await?;
                    deleted += count(rows)?;
                }
                Ok::<u64, OpError>(deleted)
            })
        })
        .await
    }
}
