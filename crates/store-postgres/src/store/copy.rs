//! Large batches into new chunks (an import, a new area's first edits):
//! their block rows go in by binary `COPY`, which PostgreSQL writes as
//! multi-row inserts (one WAL record per page, no executor per row) while
//! the client is still sending, instead of one `INSERT ... SELECT` over
//! arrays that the server must first receive whole.
//!
//! A `COPY` cannot be pipelined behind statements whose results decide its
//! rows, so this path costs three round trips instead of one: `BEGIN`,
//! `advance_heads`, `now()` and `clear_decor`; then the `COPY` of the rows
//! of the chunks the returned heads show as created by this batch, with
//! their final keys (no guess: a chunk that turns out to exist goes with
//! the other rows); then the other rows by `merge_blocks` (or
//! `upsert_blocks`), lights, signs, history and `COMMIT`. It is taken only
//! for at least [`COPY_MIN_ROWS`] rows of chunks guessed new, where the
//! round trips cost nothing next to the rows.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::ClientWrapper;
use pg_sql::{ColumnData, Form, KEY_EXHAUSTED_SQLSTATE, Rows, Step, WritePlan};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use world_core::StoreError;
use world_core::store::ApplyReceipt;

use super::{
    OpError, PostgresStore, StepRows, bind_rows, block_source, get, is_aborted, pieces, plan_steps,
};
use crate::counters::Op;
use crate::pipeline::{self, Answer, Reply, StatementFuture};

/// Fewest block rows of chunks guessed new for which a batch takes the
/// `COPY` path (two more round trips, about a millisecond on a network).
pub(super) const COPY_MIN_ROWS: usize = 4_096;

/// The columns of `copy_blocks`, in order.
const COPY_TYPES: [Type; 9] = [
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT4,
    Type::INT8,
    Type::TEXT,
    Type::TIMESTAMPTZ,
];

/// The plan's block columns the `COPY` reads.
struct BlockColumns<'r> {
    p: &'r [i64],
    q: &'r [i64],
    x: &'r [i64],
    y: &'r [i64],
    z: &'r [i64],
    w: &'r [i32],
    n: &'r [i64],
    back: &'r [i64],
    user: &'r [Option<&'r str>],
    ms: &'r [Option<i64>],
}

impl<'r> BlockColumns<'r> {
    fn of(rows: &'r Rows<'r>) -> Result<Self, StoreError> {
        let missing = |name: &str| StoreError::Other {
            message: format!("block rows without a usable column {name}"),
            source: None,
        };
        let int8 = |name: &str| match rows.column(name) {
            Some(ColumnData::Int8(v)) => Ok(v.as_slice()),
            _ => Err(missing(name)),
        };
        let w = match rows.column("w") {
            Some(ColumnData::Int4(v)) => v.as_slice(),
            _ => return Err(missing("w")),
        };
        let user = match rows.column("user_id") {
            Some(ColumnData::OptText(v)) => v.as_slice(),
            _ => return Err(missing("user_id")),
        };
        let ms = match rows.column("ms") {
            Some(ColumnData::OptInt8(v)) => v.as_slice(),
            _ => return Err(missing("ms")),
        };
        Ok(Self {
            p: int8("p")?,
            q: int8("q")?,
            x: int8("x")?,
            y: int8("y")?,
            z: int8("z")?,
            w,
            n: int8("n")?,
            back: int8("back")?,
            user,
            ms,
        })
    }
}

/// A change's own time, else the transaction's (as `UPDATED_AT` in SQL).
fn change_time(ms: Option<i64>, now: SystemTime) -> Result<SystemTime, StoreError> {
    match ms {
        None => Ok(now),
        Some(ms) => u64::try_from(ms)
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
            .map_err(|_| StoreError::Invalid(format!("change time {ms} is before 1970"))),
    }
}

/// The first real failure among `answers` (not the "transaction is
/// aborted" that follows it).
fn first_failure(answers: Vec<Answer>) -> Result<Vec<Reply>, OpError> {
    let mut replies = Vec::with_capacity(answers.len());
    let (mut real, mut aborted) = (None, None);
    for answer in answers {
        match answer {
            Some(Ok(reply)) => replies.push(reply),
            Some(Err(e)) => {
                if is_aborted(&e) {
                    aborted.get_or_insert(e);
                } else {
                    real.get_or_insert(e);
                }
            }
            None => {
                return Err(StoreError::Other {
                    message: "no reply to a pipelined statement".into(),
                    source: None,
                }
                .into());
            }
        }
    }
    match real.or(aborted) {
        Some(e) => Err(e.into()),
        None => Ok(replies),
    }
}

impl PostgresStore {
    /// Applies `plan` by the `COPY` path (see the module docs), on one
    /// pooled connection, as one transaction.
    pub(super) async fn apply_copy(
        &self,
        plan: &WritePlan<'_>,
        mispredicted: &AtomicBool,
        context: &str,
    ) -> Result<ApplyReceipt, StoreError> {
        with_conn!(self, context, |client| {
            let result = self.copy_transaction(client, plan, mispredicted).await;
            match result {
                Ok(receipt) => Ok(receipt),
                Err(e) => {
                    // Whatever failed, the transaction is not committed;
                    // end it so the connection can go back to the pool (a
                    // ROLLBACK after the final COMMIT only warns).
                    client.batch_execute("ROLLBACK").await?;
                    if matches!(&e, OpError::Postgres(pg)
                        if pg.code().is_some_and(|c| c.code() == KEY_EXHAUSTED_SQLSTATE))
                    {
                        return Err(self.exhausted(client, plan).await.into());
                    }
                    Err(e)
                }
            }
        })
    }

    async fn copy_transaction(
        &self,
        client: &ClientWrapper,
        plan: &WritePlan<'_>,
        mispredicted: &AtomicBool,
    ) -> Result<ApplyReceipt, OpError> {
        // Round trip 1: the heads (locking the chunks), the time, clears.
        let heads_sql = self.sql.advance_heads.form(Form::Unnest).positional();
        let heads_statement = self.prepared(client, heads_sql).await?;
        let heads_params = bind_rows(heads_sql, plan.rows(Step::AdvanceHeads))?;
        let now_statement = self.prepared(client, self.sql.now.positional()).await?;
        let clears = plan.rows(Step::ClearDecor);
        let clear_sql = self.sql.clear_decor.form(Form::Unnest).positional();
        let clear_statement = self.prepared(client, clear_sql).await?;
        let clear_params = bind_rows(clear_sql, clears)?;
        let raw: &tokio_postgres::Client = client;
        let mut first: Vec<StatementFuture<'_>> = vec![
            pipeline::simple(raw, "BEGIN"),
            Box::pin(async {
                raw.query(&heads_statement, &heads_params)
                    .await
                    .map(Reply::Rows)
            }),
            Box::pin(async { raw.query(&now_statement, &[]).await.map(Reply::Rows) }),
        ];
        if !clears.is_empty() {
            first.push(Box::pin(async {
                raw.execute(&clear_statement, &clear_params)
                    .await
                    .map(|_| Reply::Done)
            }));
        }
        self.counters.round_trip(Op::Apply, first.len());
        let replies = first_failure(pipeline::pipelined(first).await)?;
        let (Some(Reply::Rows(head_rows)), Some(Reply::Rows(now_rows))) =
            (replies.get(1), replies.get(2))
        else {
            return Err(StoreError::Other {
                message: "advance_heads or now() returned no rows".into(),
                source: None,
            }
            .into());
        };
        let mut heads = Vec::with_capacity(head_rows.len());
        for row in head_rows {
            let head: i32 = get(row, 2)?;
            heads.push((get::<i64>(row, 0)?, get::<i64>(row, 1)?, i64::from(head)));
        }
        let now: SystemTime = match now_rows.first() {
            Some(row) => get(row, 0)?,
            None => {
                return Err(StoreError::Other {
                    message: "now() returned no row".into(),
                    source: None,
                }
                .into());
            }
        };

        // Round trip 2: the rows of created chunks, keys final.
        let created = plan.created_chunks(&heads);
        let (fresh, old) = plan.split_block_runs(|p, q| created.contains(&(p, q)));
        let rows = plan.rows(Step::UpsertBlocks);
        if !fresh.is_empty() {
            self.copy_rows(client, rows, &fresh, now).await?;
        }

        // Round trip 3: everything else, then COMMIT.
        let known = self.known_blocks();
        let gathered = (old.len() > 1).then(|| plan.block_runs_rows(&old));
        let mut blocks: Vec<StepRows<'_, '_, '_>> = Vec::new();
        if let Some((rows, range)) = block_source(rows, &old, &gathered) {
            blocks.extend(pieces(known, rows, range));
        }
        let steps = plan_steps(&self.sql, plan, &blocks, true);
        let (statements, bound) = self.bind_steps(client, &steps).await?;
        let params: Vec<Vec<super::Param<'_>>> = bound
            .iter()
            .map(|columns| columns.iter().map(|c| &**c as super::Param<'_>).collect())
            .collect();
        let mut last: Vec<StatementFuture<'_>> = statements
            .iter()
            .zip(&params)
            .map(|(statement, params)| -> StatementFuture<'_> {
                Box::pin(async move { raw.execute(statement, params).await.map(|_| Reply::Done) })
            })
            .collect();
        last.push(pipeline::simple(raw, "COMMIT"));
        self.counters.round_trip(Op::Apply, last.len());
        let answers = pipeline::pipelined(last).await;
        // A failed statement aborts the transaction, and the COMMIT then
        // rolls it back: report the statement's error.
        let missed = steps.iter().zip(&answers).any(|((_, statement, _, _), answer)| {
            matches!(answer, Some(Err(e)) if self.missed_guess(statement, e))
        });
        if missed {
            mispredicted.store(true, Ordering::Relaxed);
        }
        first_failure(answers)?;
        Ok(plan.receipt(&heads)?)
    }

    /// Sends the block rows `runs` of `rows` (all of chunks this batch
    /// created, whose head is then their number of rows) by `COPY`.
    async fn copy_rows(
        &self,
        client: &ClientWrapper,
        rows: &Rows<'_>,
        runs: &[Range<usize>],
        now: SystemTime,
    ) -> Result<(), OpError> {
        let columns = BlockColumns::of(rows)?;
        self.counters.round_trip(Op::Apply, 1);
        let sink = client
            .copy_in::<_, bytes::Bytes>(self.sql.copy_blocks.positional().sql.as_str())
            .await?;
        let writer = BinaryCopyInWriter::new(sink, &COPY_TYPES);
        futures::pin_mut!(writer);
        for i in runs.iter().flat_map(Clone::clone) {
            let c = &columns;
            // Created by this batch: the chunk's head is its row count.
            let key = c.n[i] - c.back[i];
            let time = change_time(c.ms[i], now)?;
            writer
                .as_mut()
                .write(&[
                    &c.p[i], &c.q[i], &c.x[i], &c.y[i], &c.z[i], &c.w[i], &key, &c.user[i], &time,
                ])
                .await?;
        }
        writer.finish().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_keeps_its_time_else_takes_the_transactions() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(change_time(None, now).ok(), Some(now));
        assert_eq!(
            change_time(Some(1_764_000_000_123), now).ok(),
            Some(UNIX_EPOCH + Duration::from_millis(1_764_000_000_123))
        );
        assert!(matches!(
            change_time(Some(-1), now),
            Err(StoreError::Invalid(_))
        ));
    }
}
