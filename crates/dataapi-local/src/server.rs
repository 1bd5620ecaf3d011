//! The HTTP side: routes, request validation, the statement timeout, the
//! resuming switch and the local admin endpoint.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::{CancelToken, NoTls};
use tracing::{debug, info, warn};

use crate::SchemaMode;
use crate::api::{
    BatchExecuteStatementRequest, BeginTransactionRequest, EndTransactionRequest,
    ExecuteStatementRequest, ResultSetOptions,
};
use crate::error::ApiError;
use crate::exec::{self, ExecOptions, ExecOutput};
use crate::params::{self, BoundValue};
use crate::pool::{Conn, Pool};
use crate::sql;
use crate::txn::{EndReason, Registry};
use crate::values::ReturnTypes;

/// The largest request the service accepts: "the maximum size of the HTTP
/// request submitted through the Data API is 4 MiB" (BatchExecuteStatement
/// in the API reference).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// `SqlStatement` in the service model: at most 65,536 characters.
const MAX_SQL_CHARS: usize = 65_536;
/// `DbName` in the service model: at most 64 characters.
const MAX_DB_NAME_CHARS: usize = 64;

/// The message of a simulated `DatabaseResumingException`, after the
/// service's wording for an auto-paused Aurora Serverless v2 instance.
const RESUMING_MESSAGE: &str = "The Aurora DB instance dataapi-local is resuming after being auto-paused. Please wait a few seconds and try again.";

/// When the simulated instance answers `DatabaseResumingException`.
#[derive(Debug, Default)]
struct Resuming {
    calls: u64,
    until: Option<Instant>,
}

/// The size limits of an answer (the service: 1 MiB, 64 KB a row).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnswerLimits {
    /// The whole result, in bytes.
    pub(crate) result_bytes: usize,
    /// One row of it, in bytes.
    pub(crate) row_bytes: usize,
}

/// Everything the handlers share.
pub struct AppState {
    pub(crate) pool: Pool,
    pub(crate) txns: Registry,
    resuming: Mutex<Resuming>,
    statement_timeout: Duration,
    schema_mode: SchemaMode,
    max_result_bytes: usize,
    max_row_bytes: usize,
}

impl AppState {
    pub(crate) fn new(
        pool: Pool,
        txns: Registry,
        statement_timeout: Duration,
        schema_mode: SchemaMode,
        resuming_calls: u64,
        resuming_for: Option<Duration>,
        limits: AnswerLimits,
    ) -> AppState {
        AppState {
            pool,
            txns,
            resuming: Mutex::new(Resuming {
                calls: resuming_calls,
                until: resuming_for.map(|d| Instant::now() + d),
            }),
            statement_timeout,
            schema_mode,
            max_result_bytes: limits.result_bytes,
            max_row_bytes: limits.row_bytes,
        }
    }

    fn check_resuming(&self) -> Result<(), ApiError> {
        let mut r = self.resuming.lock().unwrap_or_else(|e| e.into_inner());
        if r.calls > 0 {
            r.calls -= 1;
            return Err(ApiError::Resuming(RESUMING_MESSAGE.into()));
        }
        match r.until {
            Some(until) if Instant::now() < until => {
                Err(ApiError::Resuming(RESUMING_MESSAGE.into()))
            }
            Some(_) => {
                r.until = None;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// The router of the five operations and the local admin endpoint.
pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new()
        .route("/Execute", post(execute_statement))
        .route("/BatchExecute", post(batch_execute_statement))
        .route("/BeginTransaction", post(begin_transaction))
        .route("/CommitTransaction", post(commit_transaction))
        .route("/RollbackTransaction", post(rollback_transaction))
        .route("/_local/resuming", post(arm_resuming).get(resuming_state))
        .fallback(unknown_operation)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::map_response(add_request_id))
        .with_state(state)
}

async fn add_request_id(mut response: Response) -> Response {
    let id = format!("{:032x}", rand::random::<u128>());
    let id = format!(
        "{}-{}-{}-{}-{}",
        &id[..8],
        &id[8..12],
        &id[12..16],
        &id[16..20],
        &id[20..]
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-amzn-RequestId", value);
    }
    response
}

async fn unknown_operation() -> Response {
    let mut response = (
        StatusCode::NOT_FOUND,
        Json(json!({ "message": "Unknown operation" })),
    )
        .into_response();
    response.headers_mut().insert(
        "x-amzn-ErrorType",
        HeaderValue::from_static("UnknownOperationException"),
    );
    response
}

fn respond(operation: &'static str, result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(body) => {
            debug!(operation, "ok");
            Json(body).into_response()
        }
        Err(error) => {
            match &error {
                ApiError::Internal(_) | ApiError::DatabaseUnavailable(_) => {
                    warn!(operation, %error, "call failed")
                }
                _ => info!(operation, %error, "call refused"),
            }
            error.into_response()
        }
    }
}

fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BadRequest(format!(
                "Request size exceeds the {MAX_REQUEST_BYTES} bytes limit"
            ))
        } else {
            ApiError::BadRequest(format!("Unable to read the request body: {rejection}"))
        }
    })?;
    let body: &[u8] = if body.is_empty() { b"{}" } else { &body };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("Unable to parse the request body: {e}")))
}

fn required<'a>(value: &'a Option<String>, member: &str) -> Result<&'a str, ApiError> {
    value
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest(format!("Parameter {member} is required")))
}

/// `arn:<partition>:<service>:<region>:<12-digit account>:<resource type>:<name>`.
fn arn_is_valid(arn: &str, service: &str, resource_type: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    let [prefix, partition, svc, region, account, kind, name] = parts.as_slice() else {
        return false;
    };
    *prefix == "arn"
        && partition.starts_with("aws")
        && *svc == service
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && *kind == resource_type
        && !name.is_empty()
}

/// The service model bounds both ARNs to 11..=100 characters; the resource
/// must be an RDS cluster, the secret a Secrets Manager secret.
fn check_arns(resource_arn: &Option<String>, secret_arn: &Option<String>) -> Result<(), ApiError> {
    let resource = required(resource_arn, "resourceArn")?;
    let secret = required(secret_arn, "secretArn")?;
    let length_ok = |s: &str| (11..=100).contains(&s.chars().count());
    if !length_ok(resource) || !arn_is_valid(resource, "rds", "cluster") {
        return Err(ApiError::BadRequest(format!(
            "Invalid resourceArn: {resource}"
        )));
    }
    if !length_ok(secret) || !arn_is_valid(secret, "secretsmanager", "secret") {
        return Err(ApiError::BadRequest(format!("Invalid secretArn: {secret}")));
    }
    Ok(())
}

/// Where a call runs: on a pooled connection or in a transaction.
enum Target {
    Pooled {
        database: String,
        schema: Option<String>,
    },
    Transaction {
        id: String,
        schema: Option<String>,
    },
}

impl AppState {
    fn database(&self, database: &Option<String>) -> Result<String, ApiError> {
        match database.as_deref() {
            None | Some("") => Ok(self.pool.default_database().to_owned()),
            Some(name) if name.chars().count() > MAX_DB_NAME_CHARS => Err(ApiError::BadRequest(
                format!("Invalid database name: {name}"),
            )),
            Some(name) => Ok(name.to_owned()),
        }
    }

    /// Aurora Serverless v2 and provisioned clusters refuse the `schema`
    /// parameter ("ValidationException: The schema parameter isn't
    /// supported"); `--schema-parameter search-path` accepts it.
    fn schema(&self, schema: &Option<String>) -> Result<Option<String>, ApiError> {
        match (schema.as_deref(), self.schema_mode) {
            (None, _) => Ok(None),
            (Some(_), SchemaMode::Reject) => Err(ApiError::Validation(
                "The schema parameter isn't supported".into(),
            )),
            (Some(s), SchemaMode::SearchPath) if s.chars().count() > MAX_DB_NAME_CHARS => {
                Err(ApiError::BadRequest(format!("Invalid schema name: {s}")))
            }
            (Some(""), SchemaMode::SearchPath) => Ok(None),
            (Some(s), SchemaMode::SearchPath) => Ok(Some(s.to_owned())),
        }
    }

    fn target(
        &self,
        transaction_id: &Option<String>,
        database: &Option<String>,
        schema: &Option<String>,
    ) -> Result<Target, ApiError> {
        let schema = self.schema(schema)?;
        match transaction_id.as_deref() {
            Some(id) if !id.is_empty() => {
                if id.chars().count() > 192 {
                    return Err(ApiError::BadRequest("Invalid transactionId".into()));
                }
                Ok(Target::Transaction {
                    id: id.to_owned(),
                    schema,
                })
            }
            _ => Ok(Target::Pooled {
                database: self.database(database)?,
                schema,
            }),
        }
    }
}

fn checked_sql(sql: &Option<String>) -> Result<sql::Rewritten, ApiError> {
    let sql = required(sql, "sql")?;
    if sql.chars().count() > MAX_SQL_CHARS {
        return Err(ApiError::BadRequest(format!(
            "SQL statement exceeds {MAX_SQL_CHARS} characters"
        )));
    }
    if sql.trim().is_empty() {
        return Err(ApiError::BadRequest("SQL statement is empty".into()));
    }
    sql::rewrite(sql).map_err(|e| ApiError::Validation(e.to_string()))
}

fn return_types(options: &Option<ResultSetOptions>) -> Result<ReturnTypes, ApiError> {
    let Some(options) = options else {
        return Ok(ReturnTypes::default());
    };
    let decimal_as_number = match options.decimal_return_type.as_deref() {
        None | Some("STRING") => false,
        Some("DOUBLE_OR_LONG") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Invalid decimalReturnType: {other}"
            )));
        }
    };
    let long_as_string = match options.long_return_type.as_deref() {
        None | Some("LONG") => false,
        Some("STRING") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Invalid longReturnType: {other}"
            )));
        }
    };
    Ok(ReturnTypes {
        decimal_as_number,
        long_as_string,
    })
}

fn connect_error(error: tokio_postgres::Error) -> ApiError {
    if error.as_db_error().is_some() {
        // e.g. FATAL: database "x" does not exist.
        error.into()
    } else {
        ApiError::DatabaseUnavailable(format!("Unable to connect to the database: {error}"))
    }
}

/// The work of one call.
enum Work {
    Execute {
        sql: String,
        params: Vec<BoundValue>,
        opts: ExecOptions,
    },
    Batch {
        sql: String,
        sets: Vec<Vec<BoundValue>>,
    },
}

enum Outcome {
    Execute(ExecOutput),
    Batch(usize),
}

impl Work {
    fn sql(&self) -> &str {
        match self {
            Work::Execute { sql, .. } | Work::Batch { sql, .. } => sql,
        }
    }
}

/// Whether a statement changes the session beyond itself (transaction
/// control, settings): its connection is not reused, so nothing leaks into
/// the next call, as the service promises no session between calls.
fn changes_session(sql: &str) -> bool {
    let word: String = sql
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_ascii_uppercase();
    matches!(
        word.as_str(),
        "BEGIN"
            | "START"
            | "COMMIT"
            | "END"
            | "ROLLBACK"
            | "ABORT"
            | "SAVEPOINT"
            | "RELEASE"
            | "SET"
            | "RESET"
            | "DISCARD"
            | "LISTEN"
            | "PREPARE"
            | "DEALLOCATE"
            | "DECLARE"
    )
}

/// PostgreSQL refuses to reuse a prepared statement whose result columns
/// changed (DDL since it was cached); it is prepared again.
fn is_stale_plan(error: &ApiError) -> bool {
    matches!(error, ApiError::Database(m) if m.contains("cached plan must not change result type"))
}

async fn set_search_path(conn: &Conn, schema: &str, local: bool) -> Result<(), ApiError> {
    conn.client
        .query_typed(
            "SELECT set_config('search_path', quote_ident($1), $2)",
            &[
                (&schema, tokio_postgres::types::Type::TEXT),
                (&local, tokio_postgres::types::Type::BOOL),
            ],
        )
        .await?;
    Ok(())
}

async fn perform(conn: &mut Conn, work: &Work, in_transaction: bool) -> Result<Outcome, ApiError> {
    match work {
        Work::Execute { sql, params, opts } => {
            let first = exec::execute(conn, sql, params, *opts).await;
            match first {
                Err(e) if !in_transaction && is_stale_plan(&e) => {
                    conn.forget_statements();
                    exec::execute(conn, sql, params, *opts)
                        .await
                        .map(Outcome::Execute)
                }
                other => other.map(Outcome::Execute),
            }
        }
        Work::Batch { sql, sets } => {
            let first = exec::execute_batch(conn, sql, sets, !in_transaction).await;
            match first {
                Err(e) if !in_transaction && is_stale_plan(&e) => {
                    conn.forget_statements();
                    exec::execute_batch(conn, sql, sets, true)
                        .await
                        .map(Outcome::Batch)
                }
                other => other.map(Outcome::Batch),
            }
        }
    }
}

/// Runs the work in a task that owns the connection, so that the call can
/// answer `StatementTimeoutException` while the statement is cancelled (or,
/// with `continueAfterTimeout`, goes on), and the connection still returns
/// where it belongs afterwards.
async fn run(
    state: &Arc<AppState>,
    target: Target,
    continue_after_timeout: bool,
    work: Work,
) -> Result<Outcome, ApiError> {
    let st = Arc::clone(state);
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    let (task, pid): (JoinHandle<Result<Outcome, ApiError>>, i32) = match target {
        Target::Pooled { database, schema } => {
            let mut conn = state.pool.get(&database).await.map_err(connect_error)?;
            let pid = conn.pid;
            let task = tokio::spawn(async move {
                let token = conn.client.cancel_token();
                let result = cancellable(
                    async {
                        if let Some(s) = &schema {
                            set_search_path(&conn, s, false).await?;
                        }
                        perform(&mut conn, &work, false).await
                    },
                    cancel_rx,
                    token,
                )
                .await;
                let mut reusable = !changes_session(work.sql());
                if schema.is_some()
                    && conn
                        .client
                        .batch_execute("RESET search_path")
                        .await
                        .is_err()
                {
                    reusable = false;
                }
                if reusable {
                    st.pool.put(conn);
                }
                result
            });
            (task, pid)
        }
        Target::Transaction { id, schema } => {
            let (txn, mut lease) = state.txns.lease(&id)?;
            let Some(mut conn) = lease.take() else {
                return Err(ApiError::Internal(
                    "transaction without a connection".into(),
                ));
            };
            let pid = conn.pid;
            let task = tokio::spawn(async move {
                let token = conn.client.cancel_token();
                let result = cancellable(
                    async {
                        if let Some(s) = &schema {
                            set_search_path(&conn, s, true).await?;
                        }
                        perform(&mut conn, &work, true).await
                    },
                    cancel_rx,
                    token,
                )
                .await;
                let aborts = match &result {
                    // PostgreSQL aborted the transaction: so does the service.
                    Err(ApiError::Database(_) | ApiError::DatabaseUnavailable(_)) => true,
                    // The service ends a transaction whose statement returned
                    // too much (aurora-data-api's tests against AWS record
                    // the change); a row over its limit is taken alike.
                    Err(ApiError::BadRequest(m)) => exec::is_oversized(m),
                    _ => false,
                };
                if aborts {
                    st.txns.end(&txn.id, EndReason::Aborted);
                    if conn.client.batch_execute("ROLLBACK").await.is_ok() {
                        st.pool.put(conn);
                    }
                } else {
                    *lease = Some(conn);
                    txn.touch();
                }
                drop(lease);
                result
            });
            (task, pid)
        }
    };
    wait(
        task,
        pid,
        cancel_tx,
        continue_after_timeout,
        state.statement_timeout,
    )
    .await
}

/// Runs `work`, cancelling its statement in PostgreSQL when `cancel`
/// fires. The cancel is sent from the task that owns the connection, before
/// the connection is given back, so it can never hit the next call's
/// statement.
async fn cancellable<T>(
    work: impl std::future::Future<Output = T>,
    cancel: oneshot::Receiver<()>,
    token: CancelToken,
) -> T {
    tokio::pin!(work);
    tokio::select! {
        biased;
        result = &mut work => return result,
        signal = cancel => {
            // A dropped sender (the call finished, or continueAfterTimeout)
            // is no cancel.
            if signal.is_ok()
                && let Err(error) = token.cancel_query(NoTls).await {
                    warn!(%error, "could not cancel a timed-out statement");
                }
        }
    }
    work.await
}

async fn wait<T>(
    mut task: JoinHandle<Result<T, ApiError>>,
    pid: i32,
    cancel: oneshot::Sender<()>,
    continue_after_timeout: bool,
    timeout: Duration,
) -> Result<T, ApiError> {
    match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(ApiError::Internal(format!(
            "statement task failed: {join_error}"
        ))),
        Err(_) => {
            let after = humantime::format_duration(timeout);
            let message = if continue_after_timeout {
                format!(
                    "The statement did not finish within {after}; it continues to run (continueAfterTimeout)"
                )
            } else {
                let _ = cancel.send(());
                format!("The statement did not finish within {after} and was cancelled")
            };
            Err(ApiError::StatementTimeout {
                message,
                db_connection_id: i64::from(pid),
            })
        }
    }
}

async fn execute_statement(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond("ExecuteStatement", execute_inner(&state, body).await)
}

async fn execute_inner(
    state: &Arc<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    let req: ExecuteStatementRequest = parse(body)?;
    check_arns(&req.resource_arn, &req.secret_arn)?;
    let rewritten = checked_sql(&req.sql)?;
    let target = state.target(&req.transaction_id, &req.database, &req.schema)?;
    let json = match req.format_records_as.as_deref() {
        None | Some("NONE") => false,
        Some("JSON") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Invalid formatRecordsAs: {other}"
            )));
        }
    };
    let opts = ExecOptions {
        include_metadata: req.include_result_metadata.unwrap_or(false),
        json,
        return_types: return_types(&req.result_set_options)?,
        max_result_bytes: state.max_result_bytes,
        max_row_bytes: state.max_row_bytes,
    };
    let params = params::bind(
        &rewritten.names,
        req.parameters.as_deref().unwrap_or_default(),
    )?;
    state.check_resuming()?;
    let work = Work::Execute {
        sql: rewritten.sql,
        params,
        opts,
    };
    let Outcome::Execute(out) = run(
        state,
        target,
        req.continue_after_timeout.unwrap_or(false),
        work,
    )
    .await?
    else {
        return Err(ApiError::Internal("unexpected outcome".into()));
    };
    let mut body = serde_json::Map::new();
    body.insert("numberOfRecordsUpdated".into(), json!(out.updated));
    if let Some(records) = out.records {
        let rows: Vec<Value> = records
            .iter()
            .map(|row| Value::Array(row.iter().map(|f| f.to_wire()).collect()))
            .collect();
        body.insert("records".into(), Value::Array(rows));
    }
    if let Some(metadata) = out.metadata {
        body.insert(
            "columnMetadata".into(),
            serde_json::to_value(metadata).map_err(|e| ApiError::Internal(e.to_string()))?,
        );
    }
    if let Some(formatted) = out.formatted {
        body.insert("formattedRecords".into(), Value::String(formatted));
    }
    if !out.returns_rows {
        // Aurora PostgreSQL does not fill generatedFields (use RETURNING).
        body.insert("generatedFields".into(), json!([]));
    }
    Ok(Value::Object(body))
}

async fn batch_execute_statement(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond("BatchExecuteStatement", batch_inner(&state, body).await)
}

async fn batch_inner(
    state: &Arc<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    let req: BatchExecuteStatementRequest = parse(body)?;
    check_arns(&req.resource_arn, &req.secret_arn)?;
    let rewritten = checked_sql(&req.sql)?;
    let target = state.target(&req.transaction_id, &req.database, &req.schema)?;
    let sets = req
        .parameter_sets
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|set| params::bind(&rewritten.names, set))
        .collect::<Result<Vec<_>, _>>()?;
    state.check_resuming()?;
    let work = Work::Batch {
        sql: rewritten.sql,
        sets,
    };
    let Outcome::Batch(count) = run(state, target, false, work).await? else {
        return Err(ApiError::Internal("unexpected outcome".into()));
    };
    // Aurora PostgreSQL leaves generatedFields empty ("Comparing Amazon RDS
    // Data API behaviors", BatchExecuteStatement behavior).
    let results: Vec<Value> = (0..count)
        .map(|_| json!({ "generatedFields": [] }))
        .collect();
    Ok(json!({ "updateResults": results }))
}

async fn begin_transaction(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond("BeginTransaction", begin_inner(&state, body).await)
}

async fn begin_inner(
    state: &Arc<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    let req: BeginTransactionRequest = parse(body)?;
    check_arns(&req.resource_arn, &req.secret_arn)?;
    let database = state.database(&req.database)?;
    let schema = state.schema(&req.schema)?;
    state.check_resuming()?;
    let conn = state.pool.get(&database).await.map_err(connect_error)?;
    conn.client.batch_execute("BEGIN").await?;
    if let Some(schema) = &schema
        && let Err(error) = set_search_path(&conn, schema, true).await
    {
        if conn.client.batch_execute("ROLLBACK").await.is_ok() {
            state.pool.put(conn);
        }
        return Err(error);
    }
    let id = state.txns.insert(conn);
    debug!(transaction = %id, "transaction started");
    Ok(json!({ "transactionId": id }))
}

async fn commit_transaction(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond("CommitTransaction", end_inner(&state, body, true).await)
}

async fn rollback_transaction(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond("RollbackTransaction", end_inner(&state, body, false).await)
}

async fn end_inner(
    state: &Arc<AppState>,
    body: Result<Bytes, BytesRejection>,
    commit: bool,
) -> Result<Value, ApiError> {
    let req: EndTransactionRequest = parse(body)?;
    check_arns(&req.resource_arn, &req.secret_arn)?;
    let id = required(&req.transaction_id, "transactionId")?;
    let (_txn, mut lease) = state.txns.lease(id)?;
    let conn = lease.take();
    state.txns.end(id, EndReason::Ended);
    drop(lease);
    let Some(conn) = conn else {
        return Err(ApiError::Internal(
            "transaction without a connection".into(),
        ));
    };
    let (sql, status) = if commit {
        ("COMMIT", "Transaction Committed")
    } else {
        ("ROLLBACK", "Rollback Complete")
    };
    let result = conn.client.batch_execute(sql).await;
    // After COMMIT or ROLLBACK, failed or not, the session is out of the
    // transaction and can serve again.
    state.pool.put(conn);
    result?;
    Ok(json!({ "transactionStatus": status }))
}

/// The body of `POST /_local/resuming`.
#[derive(Debug, Deserialize)]
struct ArmResuming {
    calls: Option<u64>,
    seconds: Option<f64>,
}

fn resuming_view(state: &AppState) -> Value {
    let r = state.resuming.lock().unwrap_or_else(|e| e.into_inner());
    let seconds = r.until.map_or(0.0, |u| {
        u.saturating_duration_since(Instant::now()).as_secs_f64()
    });
    json!({ "calls": r.calls, "seconds": seconds })
}

/// Local only (not part of the Data API): arms the simulated
/// `DatabaseResumingException` for the next `calls` calls and/or the next
/// `seconds` seconds; zero disarms.
async fn arm_resuming(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let arm: ArmResuming = match parse(body) {
        Ok(arm) => arm,
        Err(error) => return error.into_response(),
    };
    {
        let mut r = state.resuming.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(calls) = arm.calls {
            r.calls = calls;
        }
        if let Some(seconds) = arm.seconds {
            r.until = match Duration::try_from_secs_f64(seconds) {
                Ok(d) if !d.is_zero() => Some(Instant::now() + d),
                _ => None,
            };
        }
    }
    info!(calls = ?arm.calls, seconds = ?arm.seconds, "resuming switch armed");
    Json(resuming_view(&state)).into_response()
}

async fn resuming_state(State(state): State<Arc<AppState>>) -> Response {
    Json(resuming_view(&state)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns() {
        assert!(arn_is_valid(
            "arn:aws:rds:us-east-1:123456789012:cluster:my-cluster",
            "rds",
            "cluster"
        ));
        assert!(arn_is_valid(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-abc123",
            "secretsmanager",
            "secret"
        ));
        assert!(!arn_is_valid(
            "arn:aws:rds:us-east-1:1234:cluster:c",
            "rds",
            "cluster"
        ));
        assert!(!arn_is_valid(
            "arn:aws:rds:us-east-1:123456789012:db:c",
            "rds",
            "cluster"
        ));
        assert!(!arn_is_valid("not-an-arn", "rds", "cluster"));
        assert!(!arn_is_valid(
            "arn:aws:rds:us-east-1:123456789012:cluster:",
            "rds",
            "cluster"
        ));
    }

    #[test]
    fn session_changing_statements() {
        assert!(changes_session("  begin"));
        assert!(changes_session("SET search_path TO x"));
        assert!(!changes_session("SELECT 1"));
        assert!(!changes_session("settle"));
    }
}
