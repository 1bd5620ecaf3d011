//! [`DataApiStore`]: the [`BlockStore`] over the RDS Data API.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_rdsdata::Client;
use aws_sdk_rdsdata::config::Credentials;
use aws_sdk_rdsdata::types::{Field, SqlParameter};
use pg_sql::{
    ChunkPager, Form, KEY_EXHAUSTED_SQLSTATE, MigrationScript, PageLimits, RowSql, Rows,
    Statements, Step, Value, WritePlan, chunk_head, held_rows, player_rows,
};
use secrecy::ExposeSecret;
use tracing::{debug, info, warn};
use world_core::coords::ChunkPos;
use world_core::store::{
    ApplyReceipt, Batch, ChunkData, ChunkHead, DraftChange, HistoryEntry, HistoryQuery, Key,
    PlayerRecord, StoreCounter,
};
use world_core::{BlockStore, StoreError, StoreResult};

use crate::config::{Config, WriteForm};
use crate::counters::{CountRequests, Counters};
use crate::error::{DataApiError, Op, classify};
use crate::retry::{Backoff, Failure};
use crate::wire::{
    array_params_len, array_row_len, chunk_row, columns, corrupt, head_row, int, json_row_len,
    json_string_len, parameter, parameter_len, parameters, real, required_long, split,
};

/// Room left in every request for the members besides the rows (ARNs,
/// database, transaction id, SQL) and for HTTP headers, which the
/// service's 4 MiB limit includes.
const REQUEST_OVERHEAD: usize = 16 * 1024;

/// Most parameter sets in one `BatchExecuteStatement`: bounds the answer
/// (one `updateResults` entry per set, well under 1 MiB) and the time the
/// call runs (the service stops a statement after 45 s).
const MAX_SETS_PER_CALL: usize = 10_000;

/// Most chunks in one `advance_heads` call: its answer has a row per chunk.
const MAX_HEADS_PER_CALL: usize = 5_000;

/// A world store on Aurora PostgreSQL through the RDS Data API (see the
/// crate docs).
pub struct DataApiStore {
    client: Client,
    config: Config,
    sql: Statements,
    counters: Arc<Counters>,
    closed: AtomicBool,
    target: String,
}

impl fmt::Debug for DataApiStore {
    // Only what identifies the store: the SDK client's configuration holds
    // the credentials provider.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataApiStore")
            .field("target", &self.target)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The SDK client for `config`: the region (or the cluster's), the
/// endpoint override, static credentials or the AWS chain, the timeouts,
/// no SDK retries (the store retries by meaning), and the request counter.
async fn sdk_client(config: &Config, counters: Arc<Counters>) -> StoreResult<Client> {
    config
        .validate()
        .map_err(|e| StoreError::Config(e.to_string()))?;
    let region = config.effective_region().ok_or_else(|| {
        StoreError::Config("no AWS region: add region=… to the store URL or set REGION".into())
    })?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(config.connect_timeout)
                .operation_attempt_timeout(config.call_timeout)
                .operation_timeout(config.call_timeout)
                .build(),
        );
    if let Some(profile) = &config.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = &config.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(c) = &config.credentials {
        loader = loader.credentials_provider(Credentials::new(
            c.access_key_id.expose_secret(),
            c.secret_access_key.expose_secret(),
            c.session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            None,
            "store-url",
        ));
    }
    let sdk = loader.load().await;
    let conf = aws_sdk_rdsdata::config::Builder::from(&sdk)
        .interceptor(CountRequests(counters))
        .build();
    Ok(Client::from_conf(conf))
}

mod drafts;

impl DataApiStore {
    /// Builds the client, then creates or migrates the schema (one
    /// transaction; retried like any call, so a paused database is waited
    /// for up to `resume_wait`).
    ///
    /// Fails with `Config` for unusable settings, credentials, cluster,
    /// secret or database, `Unavailable` when the service cannot be
    /// reached, `Corrupt` when the schema is newer than this server.
    pub async fn open(config: Config) -> StoreResult<DataApiStore> {
        let counters = Arc::new(Counters::default());
        let client = sdk_client(&config, counters.clone()).await?;
        let store = DataApiStore {
            client,
            sql: Statements::new(&config.schema),
            target: config.target(),
            config,
            counters,
            closed: AtomicBool::new(false),
        };
        let context = format!("opening {}", store.target);
        store.retrying(&context, || store.migrate_once()).await?;
        info!(target = %store.target, "Data API store open");
        Ok(store)
    }

    /// The schema-qualified statements this store runs.
    pub fn statements(&self) -> &Statements {
        &self.sql
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counter `name` (see [`crate::counters`]) for label value `label`
    /// (an operation, a reason, a statement), or summed over all labels.
    pub fn counter(&self, name: &str, label: Option<&str>) -> f64 {
        self.counters.get(name, label)
    }

    fn ensure_open(&self) -> StoreResult<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    // ---- single calls ----------------------------------------------------

    async fn execute(
        &self,
        sql: &str,
        params: Vec<SqlParameter>,
        transaction: Option<&str>,
    ) -> Result<Vec<Vec<Field>>, DataApiError> {
        let out = self
            .client
            .execute_statement()
            .resource_arn(&self.config.resource_arn)
            .secret_arn(&self.config.secret_arn)
            .set_database(self.config.database.clone())
            .set_transaction_id(transaction.map(str::to_owned))
            .sql(sql)
            .set_parameters((!params.is_empty()).then_some(params))
            .send()
            .await
            .map_err(|e| classify(Op::Execute, e))?;
        Ok(out.records.unwrap_or_default())
    }

    async fn batch_execute(
        &self,
        sql: &str,
        sets: Vec<Vec<SqlParameter>>,
        transaction: &str,
    ) -> Result<(), DataApiError> {
        let n = sets.len();
        let out = self
            .client
            .batch_execute_statement()
            .resource_arn(&self.config.resource_arn)
            .secret_arn(&self.config.secret_arn)
            .set_database(self.config.database.clone())
            .transaction_id(transaction)
            .sql(sql)
            .set_parameter_sets(Some(sets))
            .send()
            .await
            .map_err(|e| classify(Op::BatchExecute, e))?;
        let answered = out.update_results.as_ref().map_or(0, Vec::len);
        if answered != n {
            return Err(corrupt(format!(
                "BatchExecuteStatement answered {answered} results for {n} parameter sets"
            )));
        }
        Ok(())
    }

    async fn begin(&self) -> Result<String, DataApiError> {
        let out = self
            .client
            .begin_transaction()
            .resource_arn(&self.config.resource_arn)
            .secret_arn(&self.config.secret_arn)
            .set_database(self.config.database.clone())
            .send()
            .await
            .map_err(|e| classify(Op::Begin, e))?;
        out.transaction_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| corrupt("BeginTransaction answered no transaction id"))
    }

    async fn commit(&self, transaction: &str) -> Result<(), DataApiError> {
        self.client
            .commit_transaction()
            .resource_arn(&self.config.resource_arn)
            .secret_arn(&self.config.secret_arn)
            .transaction_id(transaction)
            .send()
            .await
            .map_err(|e| classify(Op::Commit, e))?;
        Ok(())
    }

    /// Ends a failed transaction, unless the service already did. Best
    /// effort: an unknown outcome is left to the service, which rolls back
    /// a transaction idle for 3 minutes.
    async fn abandon(&self, transaction: &str, error: &DataApiError) {
        if error.ends_transaction() {
            return;
        }
        let rolled_back = self
            .client
            .rollback_transaction()
            .resource_arn(&self.config.resource_arn)
            .secret_arn(&self.config.secret_arn)
            .transaction_id(transaction)
            .send()
            .await;
        if let Err(e) = rolled_back {
            debug!(error = %classify(Op::Rollback, e), "rollback after a failure failed");
        }
    }

    // ---- retries ---------------------------------------------------------

    /// Runs `attempt` until it succeeds, fails for good, or the retry
    /// policy gives up (see [`Backoff::next`]); the error carries
    /// `context` and what was tried.
    async fn retrying<T, F, Fut>(&self, context: &str, mut attempt: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut backoff = Backoff::new(
            self.config.resume_wait,
            self.config.max_attempts,
            Instant::now(),
        );
        loop {
            self.ensure_open()?;
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Api(e)) => e,
            };
            match backoff.next(&error, Instant::now()) {
                Some(wait) => {
                    self.counters.retry(error.reason());
                    debug!(context, error = %error, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
                None => {
                    let summary = backoff.summary(Instant::now());
                    let e = error.into_store(&format!("{context} ({summary})"));
                    if e.is_retryable() {
                        warn!(context, error = %e, "Data API call failed");
                    }
                    return Err(e);
                }
            }
        }
    }

    // ---- migrations ------------------------------------------------------

    async fn migrate_once(&self) -> Result<(), Failure> {
        let script = MigrationScript::new(&self.config.schema);
        let transaction = self.begin().await?;
        let result = async {
            for statement in &script.prelude {
                self.execute(statement, Vec::new(), Some(&transaction))
                    .await?;
            }
            let rows = self
                .execute(&script.applied_versions, Vec::new(), Some(&transaction))
                .await?;
            let mut applied = Vec::with_capacity(rows.len());
            for row in &rows {
                let r = columns(row, 1, "migration versions")?;
                applied.push(int(&r[0], "version")?.ok_or_else(|| corrupt("version is null"))?);
            }
            let pending = script.pending(&applied).map_err(|e| {
                StoreError::Corrupt(format!("migrating schema {}: {e}", self.config.schema))
            })?;
            for migration in &pending {
                for statement in &migration.statements {
                    self.execute(statement, Vec::new(), Some(&transaction))
                        .await?;
                }
                self.execute(&migration.record, Vec::new(), Some(&transaction))
                    .await?;
            }
            self.commit(&transaction).await?;
            if !pending.is_empty() {
                let versions: Vec<i32> = pending.iter().map(|m| m.version).collect();
                info!(schema = %self.config.schema, ?versions, "migrated schema");
            }
            Ok::<(), Failure>(())
        }
        .await;
        if let Err(Failure::Api(e)) = &result {
            self.abandon(&transaction, e).await;
        } else if result.is_err() {
            self.abandon(
                &transaction,
                &DataApiError::Corrupt("migration refused".into()),
            )
            .await;
        }
        result
    }

    // ---- writes ----------------------------------------------------------

    /// The request budget left for rows after the statement and overhead.
    fn row_budget(&self, sql: &str) -> usize {
        self.config
            .max_request_bytes
            .saturating_sub(REQUEST_OVERHEAD + json_string_len(sql))
            .max(1)
    }

    /// Runs a set statement in the JSON form over `rows`, in calls that fit
    /// the request limit and at most `max_rows` rows, returning every row
    /// the calls answered.
    async fn execute_json(
        &self,
        statement: &RowSql,
        rows: &Rows<'_>,
        max_rows: usize,
        transaction: Option<&str>,
    ) -> Result<Vec<Vec<Field>>, DataApiError> {
        let sql = statement.form(Form::Json).named();
        let budget = self.row_budget(sql).saturating_sub(32);
        let mut out = Vec::new();
        for range in split(rows.len(), max_rows, budget, |i| json_row_len(rows, i)) {
            let piece = rows.slice(range);
            self.counters.rows(statement.name(), piece.len());
            let params = vec![parameter(
                pg_sql::JSON_ROWS_PARAM,
                Value::Text(&piece.to_json()),
            )];
            out.extend(self.execute(sql, params, transaction).await?);
        }
        Ok(out)
    }

    /// Runs a set statement in the arrays form over `rows`, in calls that
    /// fit the request limit and at most `max_rows` rows, returning every
    /// row the calls answered. One call carries as many rows as 4 MiB
    /// holds (about 70,000 block writes), as one parameter per column.
    async fn execute_arrays(
        &self,
        statement: &RowSql,
        rows: &Rows<'_>,
        max_rows: usize,
        transaction: Option<&str>,
    ) -> Result<Vec<Vec<Field>>, DataApiError> {
        let sql = statement.form(Form::Arrays).named();
        let budget = self
            .row_budget(sql)
            .saturating_sub(array_params_len(rows))
            .max(1);
        let mut out = Vec::new();
        for range in split(rows.len(), max_rows, budget, |i| array_row_len(rows, i)) {
            let piece = rows.slice(range);
            self.counters.rows(statement.name(), piece.len());
            let params = piece
                .to_arrays()
                .iter()
                .map(|(name, text)| parameter(name, Value::Text(text)))
                .collect();
            out.extend(self.execute(sql, params, transaction).await?);
        }
        Ok(out)
    }

    /// Runs a set statement whose answer is read (`advance_heads`), in
    /// the configured form: arrays, or JSON for the other two (a
    /// `BatchExecuteStatement` answers no rows).
    async fn execute_rows(
        &self,
        statement: &RowSql,
        rows: &Rows<'_>,
        max_rows: usize,
        transaction: Option<&str>,
    ) -> Result<Vec<Vec<Field>>, DataApiError> {
        match self.config.write_form {
            WriteForm::Arrays => {
                self.execute_arrays(statement, rows, max_rows, transaction)
                    .await
            }
            WriteForm::Values | WriteForm::Json => {
                self.execute_json(statement, rows, max_rows, transaction)
                    .await
            }
        }
    }

    /// Runs a write statement of a batch over `rows` in the configured
    /// form (nothing for no rows).
    async fn write_rows(
        &self,
        statement: &RowSql,
        rows: &Rows<'_>,
        transaction: &str,
    ) -> Result<(), DataApiError> {
        if rows.is_empty() {
            return Ok(());
        }
        match self.config.write_form {
            WriteForm::Arrays => self
                .execute_arrays(statement, rows, usize::MAX, Some(transaction))
                .await
                .map(drop),
            WriteForm::Values => self.batch_values(statement, rows, transaction).await,
            WriteForm::Json => self
                .execute_json(statement, rows, usize::MAX, Some(transaction))
                .await
                .map(drop),
        }
    }

    /// Runs a set statement in the per-row form over `rows` as
    /// `BatchExecuteStatement` calls that fit the request limit.
    async fn batch_values(
        &self,
        statement: &RowSql,
        rows: &Rows<'_>,
        transaction: &str,
    ) -> Result<(), DataApiError> {
        let sql = statement.form(Form::Values).named();
        let budget = self.row_budget(sql);
        let size = |i: usize| {
            2 + rows
                .row(i)
                .map(|(name, value)| parameter_len(name, value))
                .sum::<usize>()
        };
        for range in split(rows.len(), MAX_SETS_PER_CALL, budget, size) {
            self.counters.rows(statement.name(), range.len());
            let sets = range.map(|i| parameters(rows.row(i))).collect();
            self.batch_execute(sql, sets, transaction).await?;
        }
        Ok(())
    }

    /// One attempt at a batch: one transaction.
    async fn apply_once(&self, plan: &WritePlan<'_>) -> Result<ApplyReceipt, Failure> {
        let transaction = self.begin().await?;
        match self.write(plan, &transaction).await {
            Ok(receipt) => Ok(receipt),
            Err((step, e)) => {
                self.abandon(&transaction, &e).await;
                if step == Step::AdvanceHeads && e.sqlstate() == Some(KEY_EXHAUSTED_SQLSTATE) {
                    return Err(Failure::Final(self.exhausted(plan).await));
                }
                Err(Failure::Api(e))
            }
        }
    }

    /// The statements of a batch and `COMMIT`, in `transaction`; an error
    /// names the step that failed.
    async fn write(
        &self,
        plan: &WritePlan<'_>,
        transaction: &str,
    ) -> Result<ApplyReceipt, (Step, DataApiError)> {
        let mut heads = Vec::with_capacity(plan.advances().len());
        for (step, rows) in plan.steps() {
            let at = |e| (step, e);
            if step == Step::AdvanceHeads {
                // Chunks go in (p, q) order, call after call: the global
                // lock order holds across the split.
                let records = self
                    .execute_rows(
                        &self.sql.advance_heads,
                        rows,
                        MAX_HEADS_PER_CALL,
                        Some(transaction),
                    )
                    .await
                    .map_err(at)?;
                for record in &records {
                    heads.push(head_row(record).map_err(at)?);
                }
                continue;
            }
            if step == Step::UpsertBlocks {
                // The heads are known by now, so each block row goes
                // through exactly one statement: plain inserts for the
                // chunks this batch created (an import: no speculative
                // insertion), upserts for the others. A batch touches both
                // kinds rarely; otherwise it is one call, as before.
                let (fresh, old) = plan.blocks_by_chunk_age(&heads);
                self.write_rows(self.sql.insert_blocks_new_chunks(), &fresh, transaction)
                    .await
                    .map_err(at)?;
                self.write_rows(self.sql.upsert_blocks_old_chunks(), &old, transaction)
                    .await
                    .map_err(at)?;
                continue;
            }
            for statement in self.sql.step(step) {
                self.write_rows(statement, rows, transaction)
                    .await
                    .map_err(at)?;
            }
        }
        self.commit(transaction)
            .await
            .map_err(|e| (Step::DeleteSigns, e))?;
        plan.receipt(&heads)
            .map_err(|e| (Step::AdvanceHeads, corrupt(e.to_string())))
    }

    /// The `KeyExhausted` error naming the chunk (one more call, outside
    /// the aborted transaction).
    async fn exhausted(&self, plan: &WritePlan<'_>) -> StoreError {
        let rows = plan.chunk_rows();
        let current = match self
            .execute_rows(&self.sql.chunk_heads, &rows, MAX_HEADS_PER_CALL, None)
            .await
        {
            Ok(records) => records
                .iter()
                .filter_map(|r| head_row(r).ok())
                .collect::<Vec<_>>(),
            Err(e) => {
                debug!(error = %e, "reading the heads of an exhausted batch failed");
                Vec::new()
            }
        };
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

    // ---- reads -----------------------------------------------------------

    fn page_limits(&self) -> PageLimits {
        let rows = self.config.page_rows;
        PageLimits {
            blocks: rows,
            lights: rows,
            // A sign row may carry 1 KiB of text.
            signs: (rows / 50).max(1),
        }
    }

    async fn load_chunk_paged(&self, chunk: ChunkPos, since: Key) -> StoreResult<ChunkData> {
        let context = format!("load_chunk {chunk} since {since}");
        let sql = self.sql.load_chunk_page.named();
        let mut pager = ChunkPager::new(chunk, since, self.page_limits());
        while !pager.is_done() {
            let params = parameters(pager.params());
            // An answer over the size limit comes back as a value, not a
            // failure: the next page is asked for with smaller limits.
            let answer = self
                .retrying(&context, || async {
                    match self.execute(sql, params.clone(), None).await {
                        Ok(records) => Ok(Ok(records)),
                        Err(e @ DataApiError::ResponseTooLarge { .. }) => Ok(Err(e)),
                        Err(e) => Err(Failure::Api(e)),
                    }
                })
                .await?;
            let records = match answer {
                Ok(records) => records,
                Err(e) if pager.shrink() => {
                    self.counters.retry(e.reason());
                    debug!(context, limits = ?pager.limits(), "answer too large; halving the page");
                    continue;
                }
                Err(e) => return Err(e.into_store(&context)),
            };
            let rows = records
                .iter()
                .map(|r| chunk_row(r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.into_store(&context))?;
            pager.push_page(rows).map_err(|e| match e {
                StoreError::Corrupt(m) => StoreError::Corrupt(format!("{context}: {m}")),
                other => other,
            })?;
        }
        if pager.pages() > 1 {
            debug!(context, pages = pager.pages(), "chunk read in pages");
        }
        Ok(pager.finish())
    }
}

#[async_trait]
impl BlockStore for DataApiStore {
    fn backend(&self) -> &'static str {
        "dataapi"
    }

    async fn load_chunk(&self, chunk: ChunkPos, since: Key) -> StoreResult<ChunkData> {
        self.ensure_open()?;
        self.load_chunk_paged(chunk, since).await
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
        // A failed attempt left nothing (rolled back, or ended by the
        // service); one whose commit answer was lost may have committed,
        // and applying the batch again is harmless by the trait's contract.
        self.retrying(&context, || self.apply_once(&plan)).await
    }

    async fn changed_chunks(&self, held: &[ChunkHead]) -> StoreResult<Vec<ChunkHead>> {
        self.ensure_open()?;
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let context = format!("changed_chunks ({} chunks)", held.len());
        let rows = held_rows(held);
        let max_rows = self.config.page_rows as usize;
        let records = self
            .retrying(&context, || async {
                Ok(self
                    .execute_json(&self.sql.changed_chunks, &rows, max_rows, None)
                    .await?)
            })
            .await?;
        let mut out = Vec::with_capacity(records.len());
        for record in &records {
            let (p, q, key) = head_row(record).map_err(|e| e.into_store(&context))?;
            out.push(chunk_head(p, q, key)?);
        }
        // Calls answer in order each; a chunk held twice may come twice.
        out.sort_unstable();
        out.dedup_by_key(|h| h.chunk);
        Ok(out)
    }

    async fn list_chunks(&self) -> StoreResult<Vec<ChunkHead>> {
        self.ensure_open()?;
        let context = "list_chunks";
        let sql = self.sql.list_chunks_page.named();
        let limit = i64::from(self.config.page_rows);
        let mut after = (i64::MIN, i64::MIN);
        let mut out = Vec::new();
        loop {
            let params = parameters([
                ("p", Value::Int8(after.0)),
                ("q", Value::Int8(after.1)),
                ("limit", Value::Int8(limit)),
            ]);
            let records = self
                .retrying(context, || async {
                    Ok(self.execute(sql, params.clone(), None).await?)
                })
                .await?;
            for record in &records {
                let (p, q, key) = head_row(record).map_err(|e| e.into_store(context))?;
                out.push(chunk_head(p, q, key)?);
                after = (p, q);
            }
            if (records.len() as i64) < limit {
                return Ok(out);
            }
        }
    }

    async fn load_player(&self, name: &str) -> StoreResult<Option<PlayerRecord>> {
        self.ensure_open()?;
        let context = "load_player";
        let sql = self.sql.load_player.named();
        let params = parameters([("name", Value::Text(name))]);
        let records = self
            .retrying(context, || async {
                Ok(self.execute(sql, params.clone(), None).await?)
            })
            .await?;
        let Some(record) = records.first() else {
            return Ok(None);
        };
        let decode = || -> Result<PlayerRecord, DataApiError> {
            let r = columns(record, 6, "load_player")?;
            Ok(PlayerRecord {
                name: name.to_owned(),
                x: real(&r[0], "x")?,
                y: real(&r[1], "y")?,
                z: real(&r[2], "z")?,
                rx: real(&r[3], "rx")?,
                ry: real(&r[4], "ry")?,
                time_ms: required_long(&r[5], "ms")?,
            })
        };
        decode().map(Some).map_err(|e| e.into_store(context))
    }

    async fn save_players(&self, players: &[PlayerRecord]) -> StoreResult<()> {
        self.ensure_open()?;
        if players.is_empty() {
            return Ok(());
        }
        let context = format!("save_players ({} players)", players.len());
        let rows = player_rows(players);
        self.retrying(&context, || async {
            self.execute_json(&self.sql.save_players, &rows, usize::MAX, None)
                .await?;
            Ok(())
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
        self.ensure_open()?;
        let sql = self.sql.ping.named();
        self.retrying("ping", || async {
            self.execute(sql, Vec::new(), None).await?;
            Ok(())
        })
        .await
    }

    async fn close(&self) -> StoreResult<()> {
        if !self.closed.swap(true, Ordering::AcqRel) {
            info!(target = %self.target, "Data API store closed");
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
