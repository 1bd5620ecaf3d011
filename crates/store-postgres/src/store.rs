//! [`PostgresStore`]: the [`BlockStore`] over a deadpool of tokio-postgres
//! connections.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    ClientWrapper, Hook, HookError, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use pg_sql::{
    ChunkDataBuilder, ChunkRow, ColumnData, Form, KEY_EXHAUSTED_SQLSTATE, Positional, RowSql, Rows,
    Sql, Statements, Step, WritePlan, chunk_head, held_rows, player_rows,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;
use world_core::coords::ChunkPos;
use world_core::store::{
    ApplyReceipt, Batch, ChunkData, ChunkHead, DraftChange, HistoryEntry, HistoryQuery, Key,
    PlayerRecord, StoreCounter,
};
use world_core::{BlockStore, StoreError, StoreResult};

use crate::config::Config;
use crate::counters::{Counters, Op};
use crate::error::{OpError, pool_error, postgres_error};
use crate::pipeline::{self, Reply, StatementFuture};
use crate::{migrate, tls};

type Param<'r> = &'r (dyn ToSql + Sync);

/// SQLSTATE `unique_violation`: `insert_blocks` met an existing position.
const UNIQUE_VIOLATION: &str = "23505";

/// Most chunks [`KnownChunks`] remembers; past it, it starts over (a
/// forgotten chunk only costs its next batch the upsert path).
const MAX_KNOWN_CHUNKS: usize = 1 << 20;

/// Chunks known to have a head (chunk rows are never deleted): their block
/// rows go straight to `merge_blocks` (`upsert_blocks` before PostgreSQL
/// 15); the rows of other chunks, most
/// likely new (an import, a first edit), go to the plain `insert_blocks`,
/// which fails rather than overwrite if the guess was wrong. Each row goes
/// through one statement, and the batch stays one round trip.
#[derive(Default)]
struct KnownChunks(Mutex<HashSet<ChunkPos>>);

impl KnownChunks {
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<ChunkPos>> {
        // A panic elsewhere cannot leave the set inconsistent: keep it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ranges of the plan's block rows of chunks not known (for
    /// `insert_blocks`) and of known ones (for `merge_blocks` or
    /// `upsert_blocks`); the set is locked once for the whole batch.
    fn split(&self, plan: &WritePlan<'_>) -> (Vec<Range<usize>>, Vec<Range<usize>>) {
        let set = self.set();
        plan.split_block_runs(|p, q| match (i32::try_from(p), i32::try_from(q)) {
            (Ok(p), Ok(q)) => !set.contains(&ChunkPos::new(p, q)),
            _ => true,
        })
    }

    fn add(&self, chunks: impl IntoIterator<Item = ChunkPos>) {
        let mut set = self.set();
        for chunk in chunks {
            if set.len() >= MAX_KNOWN_CHUNKS {
                set.clear();
            }
            set.insert(chunk);
        }
    }
}

/// Most block rows in one merge or upsert statement of a batch. A batch's
/// statements are pipelined: while PostgreSQL runs one piece, the client
/// encodes the next and the server reads it, instead of the whole set
/// being encoded before the server starts (a batch of 128,000 updates is 8
/// statements).
const PIPELINE_ROWS: usize = 16_384;

/// One statement of a batch: its step, and the range of `rows` it writes.
type StepRows<'s, 'p, 'a> = (Step, &'s RowSql, &'p Rows<'a>, Range<usize>);

/// Rows `range` of `rows` for `statement` in pieces of at most
/// [`PIPELINE_ROWS`] (none for no rows).
fn pieces<'s, 'p, 'a>(
    statement: &'s RowSql,
    rows: &'p Rows<'a>,
    range: Range<usize>,
) -> impl Iterator<Item = StepRows<'s, 'p, 'a>> {
    range.clone().step_by(PIPELINE_ROWS).map(move |start| {
        let end = (start + PIPELINE_ROWS).min(range.end);
        (Step::UpsertBlocks, statement, rows, start..end)
    })
}

/// Where one side of a batch's block rows is: one range of the plan's
/// rows, sent without copying them, or several, gathered into a copy.
fn block_source<'p, 'a>(
    plan_rows: &'p Rows<'a>,
    runs: &[Range<usize>],
    gathered: &'p Option<Rows<'a>>,
) -> Option<(&'p Rows<'a>, Range<usize>)> {
    match gathered {
        Some(rows) => Some((rows, 0..rows.len())),
        None => runs.first().map(|run| (plan_rows, run.clone())),
    }
}

/// How a batch's block rows are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockPath {
    /// Rows of unknown chunks by `insert_blocks`, of known ones by
    /// `merge_blocks` (or `upsert_blocks`).
    Guess,
    /// Every row by `upsert_blocks` (after a wrong guess).
    Upsert,
}

/// A PostgreSQL / Aurora PostgreSQL world store (see the crate docs).
pub struct PostgresStore {
    pool: Pool,
    sql: Arc<Statements>,
    counters: Arc<Counters>,
    closed: AtomicBool,
    call_timeout: Duration,
    target: String,
    known: KnownChunks,
    /// Rows of known chunks go through `merge_blocks` (PostgreSQL 15 and
    /// later) instead of `upsert_blocks`.
    merge: bool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .field("pool", &self.pool.status())
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// A pooled connection for one operation. Dropped without [`Conn::keep`]
/// (an error that leaves the session in an unknown state, or a cancelled
/// call), it is closed instead of going back to the pool.
struct Conn {
    object: Option<Object>,
    keep: bool,
    reused: bool,
}

impl Conn {
    fn client(&self) -> Result<&ClientWrapper, StoreError> {
        self.object.as_deref().ok_or(StoreError::Closed)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if !self.keep
            && let Some(object) = self.object.take()
        {
            // Taking it out of the pool and dropping it closes the
            // socket; the server rolls back whatever was open.
            drop(Object::take(object));
        }
    }
}

/// Runs `$body` with a pooled connection's client bound to `$client`; on a
/// lost connection that came from the pool (it may have died while idle:
/// server restart, failover, `pg_terminate_backend`), retries once on a
/// fresh one. Every operation is safe to repeat: reads, upserts, and
/// batches (re-applying a batch is harmless by the trait's contract).
macro_rules! with_conn {
    ($self:ident, $context:expr, |$client:ident| $body:block) => {{
        let context: &str = &$context;
        let mut attempt = 0u32;
        loop {
            let mut conn = $self.checkout(context).await?;
            let result: Result<_, OpError> = async {
                let $client = conn.client()?;
                $body
            }
            .await;
            match result {
                Ok(value) => {
                    conn.keep = true;
                    break Ok(value);
                }
                Err(e) => {
                    conn.keep = e.leaves_connection_usable();
                    if attempt == 0 && conn.reused && e.is_connection_lost() {
                        attempt += 1;
                        tracing::debug!(context, error = %e, "pooled connection was lost; retrying on a new one");
                        continue;
                    }
                    break Err(e.into_store(context));
                }
            }
        }
    }};
}

mod copy;
mod drafts;

impl PostgresStore {
    /// Connects, creates or migrates the schema, and opens the pool.
    ///
    /// Fails with `Config` for unusable settings (TLS roots, credentials,
    /// database), `Unavailable` when the server cannot be reached within
    /// the timeouts, `Corrupt` when the schema is newer than this server.
    pub async fn open(config: Config) -> StoreResult<PostgresStore> {
        let target = config.redacted_url();
        let tls = tls::connector(&config)?;
        let pg = config.pg_config();
        let sql = Arc::new(Statements::new(config.schema()));
        let counters = Arc::new(Counters::default());
        let context = format!("opening {target}");

        let migration = async {
            // tokio-postgres' connect timeout covers the TCP connect only; a
            // server that accepts and never answers is bounded here.
            let connecting = connect_once(&pg, tls.clone(), &counters);
            let (client, major) =
                match tokio::time::timeout(config.connect_timeout(), connecting).await {
                    Ok(connected) => connected
                        .map_err(|e| postgres_error(&format!("{context}: connecting"), e))?,
                    Err(_) => {
                        return Err(StoreError::Unavailable {
                            message: format!(
                                "{context}: no connection within {:?}",
                                config.connect_timeout()
                            ),
                            source: None,
                        });
                    }
                };
            migrate::migrate(&client, config.schema(), &counters).await?;
            Ok(major)
        };
        let major = match tokio::time::timeout(config.call_timeout(), migration).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(StoreError::Unavailable {
                    message: format!("{context}: timed out after {:?}", config.call_timeout()),
                    source: None,
                });
            }
        };
        // Older servers (and any that hide their version) keep the upsert.
        let merge = major.is_some_and(|m| m >= MERGE_SINCE);
        tracing::debug!(?major, merge, "server version");

        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls {
            Some(tls) => Manager::from_config(pg, tls, manager_config),
            None => Manager::from_config(pg, NoTls, manager_config),
        };
        let hook_sql = sql.clone();
        let hook_counters = counters.clone();
        let pool = Pool::builder(manager)
            .max_size(config.pool_size())
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout()))
            .create_timeout(Some(config.connect_timeout()))
            .recycle_timeout(Some(config.connect_timeout()))
            .post_create(Hook::async_fn(move |client: &mut ClientWrapper, _| {
                let sql = hook_sql.clone();
                let counters = hook_counters.clone();
                Box::pin(async move {
                    counters.connection_opened();
                    prepare_all(client, &sql, merge, &counters)
                        .await
                        .map_err(HookError::Backend)
                })
            }))
            .build()
            .map_err(|e| {
                StoreError::other(format!("{context}: building the connection pool"), e)
            })?;
        tracing::info!(target = %target, pool_size = config.pool_size(), "PostgreSQL store open");
        Ok(PostgresStore {
            pool,
            sql,
            counters,
            closed: AtomicBool::new(false),
            call_timeout: config.call_timeout(),
            target,
            known: KnownChunks::default(),
            merge,
        })
    }

    /// The schema-qualified statements this store runs.
    pub fn statements(&self) -> &Statements {
        &self.sql
    }

    fn ensure_open(&self) -> StoreResult<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    async fn checkout(&self, context: &str) -> StoreResult<Conn> {
        self.ensure_open()?;
        let object = self.pool.get().await.map_err(|e| pool_error(context, e))?;
        let reused = Object::metrics(&object).recycle_count > 0;
        Ok(Conn {
            object: Some(object),
            keep: false,
            reused,
        })
    }

    /// Runs `call` within the call timeout: a call never hangs on a dead
    /// server or network; its connection is then closed, not reused.
    async fn bounded<T>(
        &self,
        context: &str,
        call: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        self.ensure_open()?;
        match tokio::time::timeout(self.call_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable {
                message: format!("{context}: no answer within {:?}", self.call_timeout),
                source: None,
            }),
        }
    }

    /// The prepared statement for `sql` (prepared when the connection
    /// opened; a miss costs, and counts, one round trip).
    async fn prepared(
        &self,
        client: &ClientWrapper,
        sql: &Positional,
    ) -> Result<Statement, tokio_postgres::Error> {
        let before = client.statement_cache.size();
        let statement = client.prepare_cached(&sql.sql).await?;
        if client.statement_cache.size() > before {
            self.counters.round_trip(Op::Prepare, 1);
        }
        Ok(statement)
    }

    async fn query(
        &self,
        op: Op,
        client: &ClientWrapper,
        sql: &Sql,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, OpError> {
        let statement = self.prepared(client, sql.positional()).await?;
        self.counters.round_trip(op, 1);
        Ok(client.query(&statement, params).await?)
    }

    /// Applies `plan` in one transaction and one round trip; a wrong guess
    /// of which chunks are new (see [`KnownChunks`]) is applied again by
    /// the upsert path.
    async fn apply_plan(&self, plan: &WritePlan<'_>, context: &str) -> StoreResult<ApplyReceipt> {
        let mispredicted = AtomicBool::new(false);
        let result = self
            .apply_once(plan, BlockPath::Guess, &mispredicted, context)
            .await;
        let result = match result {
            Err(e) if mispredicted.load(Ordering::Relaxed) => {
                tracing::debug!(error = %e, "a chunk guessed new had rows; applying again by upserts");
                self.apply_once(plan, BlockPath::Upsert, &mispredicted, context)
                    .await
            }
            other => other,
        };
        if result.is_ok() {
            self.known.add(plan.advances().iter().map(|(c, _)| *c));
        }
        result
    }

    async fn apply_once(
        &self,
        plan: &WritePlan<'_>,
        path: BlockPath,
        mispredicted: &AtomicBool,
        context: &str,
    ) -> StoreResult<ApplyReceipt> {
        let plan_rows = plan.rows(Step::UpsertBlocks);
        let (fresh, old, old_statement) = match path {
            BlockPath::Guess => {
                let (fresh, old) = self.known.split(plan);
                let fresh_rows: usize = fresh.iter().map(Range::len).sum();
                if fresh_rows >= copy::COPY_MIN_ROWS {
                    return self.apply_copy(plan, mispredicted, context).await;
                }
                (fresh, old, self.known_blocks())
            }
            BlockPath::Upsert => {
                let all = (!plan_rows.is_empty()).then_some(0..plan_rows.len());
                (
                    Vec::new(),
                    all.into_iter().collect(),
                    &self.sql.upsert_blocks,
                )
            }
        };
        let gathered_fresh = (fresh.len() > 1).then(|| plan.block_runs_rows(&fresh));
        let gathered_old = (old.len() > 1).then(|| plan.block_runs_rows(&old));
        let mut blocks: Vec<StepRows<'_, '_, '_>> = Vec::new();
        // Inserts go whole: in the benchmark, pieces made imports slower
        // (each piece plans and joins again; plain inserts leave the client
        // little to overlap).
        if let Some((rows, range)) = block_source(plan_rows, &fresh, &gathered_fresh) {
            blocks.push((Step::UpsertBlocks, &self.sql.insert_blocks, rows, range));
        }
        if let Some((rows, range)) = block_source(plan_rows, &old, &gathered_old) {
            blocks.extend(pieces(old_statement, rows, range));
        }
        with_conn!(self, context, |client| {
            // One entry per statement: a step may run several.
            let steps = plan_steps(&self.sql, plan, &blocks, false);
            let (statements, bound) = self.bind_steps(client, &steps).await?;
            let params: Vec<Vec<Param<'_>>> = bound
                .iter()
                .map(|columns| columns.iter().map(|c| &**c as Param<'_>).collect())
                .collect();
            let futures: Vec<StatementFuture<'_>> = steps
                .iter()
                .zip(statements.iter().zip(&params))
                .map(
                    |((step, _, _, _), (statement, params))| -> StatementFuture<'_> {
                        let client: &tokio_postgres::Client = client;
                        if *step == Step::AdvanceHeads {
                            Box::pin(async move {
                                client.query(statement, params).await.map(Reply::Rows)
                            })
                        } else {
                            Box::pin(async move {
                                client.execute(statement, params).await.map(|_| Reply::Done)
                            })
                        }
                    },
                )
                .collect();
            self.counters.round_trip(Op::Apply, steps.len() + 2);
            let outcome = pipeline::transaction(client, futures).await;
            self.settle(client, plan, &steps, outcome, mispredicted)
                .await
        })
    }

    /// Reads the outcome of a batch's transaction: the receipt, or the
    /// first error that caused the rollback.
    async fn settle(
        &self,
        client: &ClientWrapper,
        plan: &WritePlan<'_>,
        steps: &[StepRows<'_, '_, '_>],
        outcome: pipeline::Outcome,
        mispredicted: &AtomicBool,
    ) -> Result<ApplyReceipt, OpError> {
        let no_reply = || {
            OpError::Store(StoreError::Other {
                message: "no reply to a pipelined statement".into(),
                source: None,
            })
        };
        outcome.begin.ok_or_else(no_reply)??;
        let mut heads = Vec::new();
        let mut first_error = None;
        for ((step, statement, _, _), answer) in steps.iter().zip(outcome.statements) {
            match answer.ok_or_else(no_reply)? {
                Ok(Reply::Rows(rows)) if *step == Step::AdvanceHeads => heads = rows,
                Ok(_) => {}
                Err(e) => {
                    if first_error.is_none() && !is_aborted(&e) {
                        if self.missed_guess(statement, &e) {
                            mispredicted.store(true, Ordering::Relaxed);
                        }
                        first_error = Some((*step, e));
                    }
                }
            }
        }
        // The end of the transaction decides the connection's state: once
        // it answered, the session is idle whatever happened before.
        outcome.end.ok_or_else(no_reply)??;
        if let Some((step, e)) = first_error {
            if step == Step::AdvanceHeads
                && e.code().is_some_and(|c| c.code() == KEY_EXHAUSTED_SQLSTATE)
            {
                return Err(self.exhausted(client, plan).await.into());
            }
            return Err(e.into());
        }
        if !outcome.committed {
            return Err(StoreError::Other {
                message: "a statement failed before it was sent; the batch was rolled back".into(),
                source: None,
            }
            .into());
        }
        let mut returned = Vec::with_capacity(heads.len());
        for row in &heads {
            let p: i64 = get(row, 0)?;
            let q: i64 = get(row, 1)?;
            let head: i32 = get(row, 2)?;
            returned.push((p, q, i64::from(head)));
        }
        Ok(plan.receipt(&returned)?)
    }

    /// The `KeyExhausted` error naming the chunk (one more round trip).
    async fn exhausted(&self, client: &ClientWrapper, plan: &WritePlan<'_>) -> StoreError {
        let rows = plan.chunk_rows();
        let sql = self.sql.chunk_heads.form(Form::Unnest);
        let current = async {
            let params = bind_rows(sql.positional(), &rows)?;
            let found = self.query(Op::Apply, client, sql, &params).await?;
            let mut heads = Vec::with_capacity(found.len());
            for row in &found {
                heads.push((
                    get::<i64>(row, 0)?,
                    get::<i64>(row, 1)?,
                    get::<i64>(row, 2)?,
                ));
            }
            Ok::<_, OpError>(heads)
        }
        .await
        .unwrap_or_default();
        match plan.exhausted_chunk(&current) {
            Some(chunk) => StoreError::KeyExhausted {
                p: chunk.p,
                q: chunk.q,
            },
            None => StoreError::Other {
                message: "key range exhausted in an unknown chunk".into(),
                source: None,
            },
        }
    }
}

/// Opens one connection outside the pool (for migrations).
async fn connect_once(
    pg: &tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
    counters: &Counters,
) -> Result<(tokio_postgres::Client, Option<u32>), tokio_postgres::Error> {
    counters.connection_opened();
    let connected = match tls {
        Some(tls) => {
            let (client, connection) = pg.connect(tls).await?;
            let major = server_major(&connection);
            tokio::spawn(drive(connection));
            (client, major)
        }
        None => {
            let (client, connection) = pg.connect(NoTls).await?;
            let major = server_major(&connection);
            tokio::spawn(drive(connection));
            (client, major)
        }
    };
    Ok(connected)
}

/// The server's major version, from the `server_version` it reports at
/// start-up (`15.4`, `16beta1`, `15.20 (Debian 15.20-0+deb12u1)`): no
/// round trip. `None` when it reports none or an unreadable one.
fn server_major<S, T>(connection: &tokio_postgres::Connection<S, T>) -> Option<u32>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    parse_major(connection.parameter("server_version")?)
}

fn parse_major(version: &str) -> Option<u32> {
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// First major version with `MERGE`.
const MERGE_SINCE: u32 = 15;

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "migration connection ended");
    }
}

/// Prepares every statement on a new connection, pipelined: one round
/// trip, after which no operation waits for a `PREPARE`.
async fn prepare_all(
    client: &ClientWrapper,
    sql: &Statements,
    merge: bool,
    counters: &Counters,
) -> Result<(), tokio_postgres::Error> {
    let texts: Vec<&str> = sql
        .fixed()
        .into_iter()
        .map(|s| s.positional().sql.as_str())
        .chain(
            sql.row_statements()
                .into_iter()
                // `MERGE` does not parse before PostgreSQL 15.
                .filter(|r| merge || !std::ptr::eq(*r, &sql.merge_blocks))
                .map(|r| r.form(Form::Unnest).positional().sql.as_str()),
        )
        .collect();
    counters.round_trip(Op::Prepare, texts.len());
    futures::future::try_join_all(texts.iter().map(|t| client.prepare_cached(t))).await?;
    Ok(())
}

fn get<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| StoreError::Corrupt(format!("unexpected value in result column {index}: {e}")))
}

/// Binds named values in the statement's parameter order.
fn bind<'r>(sql: &Positional, values: &[(&str, Param<'r>)]) -> Result<Vec<Param<'r>>, StoreError> {
    sql.params
        .iter()
        .map(|name| {
            values
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| StoreError::Other {
                    message: format!("no value for statement parameter :{name}"),
                    source: None,
                })
        })
        .collect()
}

/// The column of `rows` a statement parameter names.
fn param_column<'c, 'a>(rows: &'c Rows<'a>, name: &str) -> Result<&'c ColumnData<'a>, StoreError> {
    rows.column(name).ok_or_else(|| StoreError::Other {
        message: format!("no column for statement parameter :{name}"),
        source: None,
    })
}

/// Binds each column of `rows` as one array parameter.
fn bind_rows<'r>(sql: &Positional, rows: &'r Rows<'_>) -> Result<Vec<Param<'r>>, StoreError> {
    sql.params
        .iter()
        .map(|name| {
            Ok(match param_column(rows, name)? {
                ColumnData::Int8(v) => v as Param<'r>,
                ColumnData::OptInt8(v) => v,
                ColumnData::Int4(v) => v,
                ColumnData::Float4(v) => v,
                ColumnData::Text(v) => v,
                ColumnData::OptText(v) => v,
            })
        })
        .collect()
}

/// A parameter bound to a range of a column, without copying it.
type RangeParam<'r> = Box<dyn ToSql + Send + Sync + 'r>;

/// Binds rows `range` of each column of `rows` as one array parameter,
/// without copying the values (a batch's pieces are ranges of its plan).
fn bind_range<'r>(
    sql: &Positional,
    rows: &'r Rows<'_>,
    range: Range<usize>,
) -> Result<Vec<RangeParam<'r>>, StoreError> {
    sql.params
        .iter()
        .map(|name| {
            let range = range.clone();
            Ok(match param_column(rows, name)? {
                ColumnData::Int8(v) => Box::new(&v[range]) as RangeParam<'r>,
                ColumnData::OptInt8(v) => Box::new(&v[range]),
                ColumnData::Int4(v) => Box::new(&v[range]),
                ColumnData::Float4(v) => Box::new(&v[range]),
                ColumnData::Text(v) => Box::new(&v[range]),
                ColumnData::OptText(v) => Box::new(&v[range]),
            })
        })
        .collect()
}

/// One entry per statement of `plan`'s steps, in order: `blocks` for the
/// block writes, each other step's statements over all its rows; with
/// `skip_first`, without `advance_heads` and `clear_decor` (run already).
fn plan_steps<'s, 'p, 'a>(
    sql: &'s Statements,
    plan: &'p WritePlan<'a>,
    blocks: &[StepRows<'s, 'p, 'a>],
    skip_first: bool,
) -> Vec<StepRows<'s, 'p, 'a>> {
    let mut steps = Vec::new();
    for (step, rows) in plan.steps() {
        match step {
            Step::UpsertBlocks => steps.extend(blocks.iter().cloned()),
            Step::AdvanceHeads | Step::ClearDecor if skip_first => {}
            _ => {
                for statement in sql.step(step) {
                    steps.push((step, statement, rows, 0..rows.len()));
                }
            }
        }
    }
    steps
}

/// Whether `e` is PostgreSQL's "current transaction is aborted" (`25P02`),
/// the answer to every statement after the one that failed.
fn is_aborted(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| c.code() == "25P02")
}

impl PostgresStore {
    /// Whether `e` from `statement` shows a wrong guess: neither
    /// `insert_blocks` nor `merge_blocks` inserts speculatively, so a
    /// position that exists (or appeared meanwhile) fails them with a
    /// unique violation, and the batch is applied again by upserts.
    fn missed_guess(&self, statement: &RowSql, e: &tokio_postgres::Error) -> bool {
        let guessing = std::ptr::eq(statement, &self.sql.insert_blocks)
            || std::ptr::eq(statement, &self.sql.merge_blocks);
        guessing && e.code().is_some_and(|c| c.code() == UNIQUE_VIOLATION)
    }

    /// The statement for block rows of chunks known to exist.
    fn known_blocks(&self) -> &RowSql {
        if self.merge {
            &self.sql.merge_blocks
        } else {
            &self.sql.upsert_blocks
        }
    }

    /// The statements of `steps`, prepared, with their parameters bound.
    async fn bind_steps<'r>(
        &self,
        client: &ClientWrapper,
        steps: &'r [StepRows<'_, 'r, '_>],
    ) -> Result<(Vec<Statement>, Vec<Vec<RangeParam<'r>>>), OpError> {
        let mut statements = Vec::with_capacity(steps.len());
        let mut bound = Vec::with_capacity(steps.len());
        for (_, statement, rows, range) in steps {
            let sql = statement.form(Form::Unnest).positional();
            statements.push(self.prepared(client, sql).await?);
            bound.push(bind_range(sql, rows, range.clone())?);
        }
        Ok((statements, bound))
    }
}

#[async_trait]
impl BlockStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn load_chunk(&self, chunk: ChunkPos, since: Key) -> StoreResult<ChunkData> {
        let context = format!("load_chunk {chunk} since {since}");
        self.bounded(&context, async {
            let (p, q) = (i64::from(chunk.p), i64::from(chunk.q));
            with_conn!(self, context, |client| {
                let sql = &self.sql.load_chunk;
                let params = bind(sql.positional(), &[("p", &p), ("q", &q), ("since", &since)])?;
                let rows = self.query(Op::LoadChunk, client, sql, &params).await?;
                let mut data = ChunkDataBuilder::with_capacity(rows.len());
                for row in &rows {
                    data.push(ChunkRow {
                        kind: get(row, 0)?,
                        x: get(row, 1)?,
                        y: get(row, 2)?,
                        z: get(row, 3)?,
                        w: get(row, 4)?,
                        n: get(row, 5)?,
                        text: get(row, 6)?,
                    })?;
                }
                let data = data.finish();
                if data.head > 0 {
                    self.known.add([chunk]);
                }
                Ok(data)
            })
        })
        .await
    }

    async fn apply(&self, batch: &Batch) -> StoreResult<ApplyReceipt> {
        self.ensure_open()?;
        batch.validate()?;
        let plan = WritePlan::new(batch);
        if plan.is_empty() {
            return Ok(ApplyReceipt::default());
        }
        let context = format!(
            "apply ({} changes in {} chunks)",
            batch.len(),
            plan.advances().len()
        );
        self.bounded(&context, self.apply_plan(&plan, &context))
            .await
    }

    async fn changed_chunks(&self, held: &[ChunkHead]) -> StoreResult<Vec<ChunkHead>> {
        self.ensure_open()?;
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let context = format!("changed_chunks ({} chunks)", held.len());
        let rows = held_rows(held);
        self.bounded(&context, async {
            with_conn!(self, context, |client| {
                let sql = self.sql.changed_chunks.form(Form::Unnest);
                let params = bind_rows(sql.positional(), &rows)?;
                let found = self.query(Op::ChangedChunks, client, sql, &params).await?;
                let mut out = Vec::with_capacity(found.len());
                for row in &found {
                    out.push(chunk_head(get(row, 0)?, get(row, 1)?, get(row, 2)?)?);
                }
                self.known.add(out.iter().map(|h| h.chunk));
                Ok(out)
            })
        })
        .await
    }

    async fn list_chunks(&self) -> StoreResult<Vec<ChunkHead>> {
        let context = "list_chunks";
        self.bounded(context, async {
            with_conn!(self, context, |client| {
                let found = self
                    .query(Op::ListChunks, client, &self.sql.list_chunks, &[])
                    .await?;
                let mut out = Vec::with_capacity(found.len());
                for row in &found {
                    out.push(chunk_head(get(row, 0)?, get(row, 1)?, get(row, 2)?)?);
                }
                self.known.add(out.iter().map(|h| h.chunk));
                Ok(out)
            })
        })
        .await
    }

    async fn load_player(&self, name: &str) -> StoreResult<Option<PlayerRecord>> {
        let context = "load_player";
        self.bounded(context, async {
            with_conn!(self, context, |client| {
                let sql = &self.sql.load_player;
                let params = bind(sql.positional(), &[("name", &name)])?;
                let found = self.query(Op::LoadPlayer, client, sql, &params).await?;
                let Some(row) = found.first() else {
                    return Ok(None);
                };
                Ok(Some(PlayerRecord {
                    name: name.to_owned(),
                    x: get(row, 0)?,
                    y: get(row, 1)?,
                    z: get(row, 2)?,
                    rx: get(row, 3)?,
                    ry: get(row, 4)?,
                    time_ms: get(row, 5)?,
                }))
            })
        })
        .await
    }

    async fn save_players(&self, players: &[PlayerRecord]) -> StoreResult<()> {
        self.ensure_open()?;
        if players.is_empty() {
            return Ok(());
        }
        let context = format!("save_players ({} players)", players.len());
        let rows = player_rows(players);
        self.bounded(&context, async {
            with_conn!(self, context, |client| {
                let sql = self.sql.save_players.form(Form::Unnest);
                let params = bind_rows(sql.positional(), &rows)?;
                let statement = self.prepared(client, sql.positional()).await?;
                self.counters.round_trip(Op::SavePlayers, 1);
                client.execute(&statement, &params).await?;
                Ok(())
            })
        })
        .await
    }

    async fn load_draft(&self, owner: &str) -> StoreResult<Vec<DraftChange>> {
        self.draft_load(owner).await
    }

    async fn put_draft(&self, owner: &str, changes: &[DraftChange]) -> StoreResult<()> {
        self.draft_put(owner, changes).await
    }

    async fn delete_draft(&self, owner: &str) -> StoreResult<()> {
        self.draft_delete(owner).await
    }

    fn counters(&self) -> Vec<StoreCounter> {
        self.counters.snapshot()
    }

    async fn ping(&self) -> StoreResult<()> {
        let context = "ping";
        self.bounded(context, async {
            with_conn!(self, context, |client| {
                self.query(Op::Ping, client, &self.sql.ping, &[]).await?;
                Ok(())
            })
        })
        .await
    }

    async fn close(&self) -> StoreResult<()> {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.pool.close();
            tracing::info!(target = %self.target, "PostgreSQL store closed");
        }
        Ok(())
    }

    fn keeps_history(&self) -> bool {
        true
    }

    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<HistoryEntry>> {
        self.read_history(query).await
    }

    async fn prune_history(&self, older_than_ms: i64, max_rows: Option<u64>) -> StoreResult<u64> {
        self.prune(older_than_ms, max_rows).await
    }
}

mod history;

#[cfg(test)]
mod tests {
    use super::parse_major;

    #[test]
    fn major_versions_as_servers_report_them() {
        assert_eq!(parse_major("15.20 (Debian 15.20-0+deb12u1)"), Some(15));
        assert_eq!(parse_major("16beta1"), Some(16));
        assert_eq!(parse_major("14.9"), Some(14));
        assert_eq!(parse_major("9.6.24"), Some(9));
        assert_eq!(parse_major(""), None);
        assert_eq!(parse_major("unknown"), None);
    }
}
