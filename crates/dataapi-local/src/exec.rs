//! Running statements on one connection and shaping their results.

use futures::TryStreamExt;
use tokio_postgres::types::{FromSql, Type};

use crate::api::{ColumnMetadata, FieldOut};
use crate::error::ApiError;
use crate::params::BoundValue;
use crate::pool::Conn;
use crate::values::{self, ColumnKind, DecodeError, ReturnTypes};

/// The service's limit on the data a statement returns: "The response size
/// limit is 1 MiB. If the call returns more than 1 MiB of response data, the
/// call is terminated." (Aurora user guide, Data API limitations.)
pub const MAX_RESULT_BYTES: usize = 1024 * 1024;
/// "The size limit for this field [formattedRecords] is currently 10 MB."
/// (ExecuteStatementResponse in the API reference.)
pub const MAX_JSON_BYTES: usize = 10 * 1024 * 1024;

/// The limit on one row of a result: "The Data API size limit is 64 KB per
/// row in the result set returned by the database. Make sure each row in a
/// result set is less than or equal to 64 KB." (Aurora user guide, Data
/// API limitations.) Read as 64 KiB of column values, the bytes PostgreSQL
/// sends for the row, as the response limit is counted here.
pub const MAX_ROW_BYTES: usize = 64 * 1024;

/// The message for a row over [`MAX_ROW_BYTES`]. The Aurora guide gives no
/// wording; this is the heading the Redshift Data API's troubleshooting
/// guide gives for the same 64 KB-per-row limit, with the sizes as the
/// MySQL connector behind that wording prints them.
pub fn row_too_large(size: usize, limit: usize) -> String {
    format!("Packet for query is too large ({size} > {limit})")
}

/// Whether `message` refuses an answer for its size (the whole answer or
/// one row): the statement ran, its answer was dropped.
pub fn is_oversized(message: &str) -> bool {
    message == TOO_LARGE || message.starts_with("Packet for query is too large")
}

/// The message the service sends when a result is over the limit: the
/// heading of the Aurora user guide's troubleshooting entry, and the text
/// client libraries tested against AWS match. (Aurora Serverless v1 said
/// "Database returned more than the allowed response size limit".)
pub const TOO_LARGE: &str = "Database response exceeded size limit";

/// What an ExecuteStatement call asks for besides the statement.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecOptions {
    /// `includeResultMetadata`.
    pub include_metadata: bool,
    /// `formatRecordsAs=JSON`.
    pub json: bool,
    /// `resultSetOptions`.
    pub return_types: ReturnTypes,
    /// The result size limit in bytes.
    pub max_result_bytes: usize,
    /// The size limit of one result row in bytes.
    pub max_row_bytes: usize,
}

/// The result of one statement.
#[derive(Debug, Default)]
pub struct ExecOutput {
    /// Rows, when the statement returns columns and JSON was not asked for.
    pub records: Option<Vec<Vec<FieldOut>>>,
    /// Column metadata, when asked for and not JSON.
    pub metadata: Option<Vec<ColumnMetadata>>,
    /// The JSON string of the rows.
    pub formatted: Option<String>,
    /// Rows changed (0 for a statement that returns rows, as JDBC reports).
    pub updated: i64,
    /// Whether the statement returns columns.
    pub returns_rows: bool,
}

/// A raw column value: the bytes PostgreSQL sent, or NULL.
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

fn declared_types(params: &[BoundValue]) -> Vec<Type> {
    params.iter().map(BoundValue::declared_type).collect()
}

fn unsupported(type_name: &str) -> ApiError {
    ApiError::UnsupportedResult(format!(
        "The result contains the unsupported data type {type_name}."
    ))
}

fn decode_error(error: DecodeError) -> ApiError {
    match error {
        DecodeError::Multidimensional => ApiError::UnsupportedResult(
            "The result contains a multidimensional array, which isn't supported.".into(),
        ),
        DecodeError::Malformed(_) => ApiError::Internal(error.to_string()),
    }
}

/// Runs one statement and reads its whole result.
pub async fn execute(
    conn: &mut Conn,
    sql: &str,
    params: &[BoundValue],
    opts: ExecOptions,
) -> Result<ExecOutput, ApiError> {
    let statement = conn.prepare(sql, &declared_types(params)).await?;
    let columns = statement.columns();
    // Refused before running, so an unsupported RETURNING column does not
    // leave a committed change behind an error.
    let kinds = columns
        .iter()
        .map(|c| values::column_kind(c.type_()).map_err(|name| unsupported(&name)))
        .collect::<Result<Vec<ColumnKind>, ApiError>>()?;
    let stream = conn.client.query_raw(&statement, params.iter()).await?;
    futures::pin_mut!(stream);
    let mut rows: Vec<Vec<FieldOut>> = Vec::new();
    let mut size = 0usize;
    while let Some(row) = stream.try_next().await? {
        let mut out = Vec::with_capacity(kinds.len());
        let mut row_size = 0usize;
        for (i, kind) in kinds.iter().enumerate() {
            let raw: Raw<'_> = row.try_get(i)?;
            row_size += raw.0.map_or(0, <[u8]>::len);
            out.push(values::decode(*kind, raw.0, opts.return_types).map_err(decode_error)?);
        }
        if row_size > opts.max_row_bytes {
            return Err(ApiError::BadRequest(row_too_large(
                row_size,
                opts.max_row_bytes,
            )));
        }
        size += row_size;
        if size > opts.max_result_bytes {
            return Err(ApiError::BadRequest(TOO_LARGE.into()));
        }
        rows.push(out);
    }
    let affected = stream.rows_affected().unwrap_or(0);
    if columns.is_empty() {
        return Ok(ExecOutput {
            updated: i64::try_from(affected).unwrap_or(i64::MAX),
            ..ExecOutput::default()
        });
    }
    let mut output = ExecOutput {
        returns_rows: true,
        ..ExecOutput::default()
    };
    if opts.json {
        output.formatted = Some(format_json(columns, &rows)?);
        return Ok(output);
    }
    if opts.include_metadata {
        output.metadata = Some(metadata(conn, columns).await?);
    }
    output.records = Some(rows);
    Ok(output)
}

/// `formattedRecords`: an array of objects keyed by column label, in column
/// order. Written by hand to keep that order.
fn format_json(
    columns: &[tokio_postgres::Column],
    rows: &[Vec<FieldOut>],
) -> Result<String, ApiError> {
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].iter().any(|other| other.name() == c.name()) {
            return Err(ApiError::BadRequest(format!(
                "The result set contains duplicate column name '{}'; use column aliases to make the labels unique for the JSON format",
                c.name()
            )));
        }
    }
    let keys = columns
        .iter()
        .map(|c| serde_json::to_string(c.name()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut out = String::from("[");
    for (r, row) in rows.iter().enumerate() {
        if r > 0 {
            out.push(',');
        }
        out.push('{');
        for (i, (key, value)) in keys.iter().zip(row).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push(':');
            out.push_str(&value.to_plain().to_string());
        }
        out.push('}');
        if out.len() > MAX_JSON_BYTES {
            return Err(ApiError::BadRequest(TOO_LARGE.into()));
        }
    }
    out.push(']');
    Ok(out)
}

/// What the catalog says about a table column.
struct TableColumn {
    schema: String,
    table: String,
    not_null: bool,
    typmod: i32,
    auto_increment: bool,
}

/// `columnMetadata`. Columns that come from a table get their schema,
/// table, nullability, type modifier and auto-increment from the catalog in
/// one query, as the JDBC driver fetches them.
async fn metadata(
    conn: &mut Conn,
    columns: &[tokio_postgres::Column],
) -> Result<Vec<ColumnMetadata>, ApiError> {
    let (relids, attnums): (Vec<u32>, Vec<i16>) = columns
        .iter()
        .filter_map(|c| c.table_oid().zip(c.column_id()))
        .unzip();
    let mut known: Vec<((u32, i16), TableColumn)> = Vec::new();
    if !relids.is_empty() {
        let rows = conn
            .client
            .query_typed(
                "SELECT a.attrelid, a.attnum, n.nspname::text, c.relname::text, a.attnotnull, a.atttypmod, \
                 (a.attidentity <> '' OR coalesce(pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%', false)) \
                 FROM pg_attribute a \
                 JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE (a.attrelid, a.attnum) IN (SELECT * FROM unnest($1::oid[], $2::int2[]))",
                &[(&relids, Type::OID_ARRAY), (&attnums, Type::INT2_ARRAY)],
            )
            .await?;
        for row in rows {
            known.push((
                (row.try_get(0)?, row.try_get(1)?),
                TableColumn {
                    schema: row.try_get(2)?,
                    table: row.try_get(3)?,
                    not_null: row.try_get(4)?,
                    typmod: row.try_get(5)?,
                    auto_increment: row.try_get(6)?,
                },
            ));
        }
    }
    Ok(columns
        .iter()
        .map(|c| {
            let ty = c.type_();
            let table = c
                .table_oid()
                .zip(c.column_id())
                .and_then(|key| known.iter().find(|(k, _)| *k == key).map(|(_, t)| t));
            let (precision, scale, signed, case_sensitive) =
                values::type_facts(ty, table.map_or(-1, |t| t.typmod));
            let auto_increment = table.is_some_and(|t| t.auto_increment);
            let type_name = match (auto_increment, ty) {
                (true, &Type::INT4) => "serial".to_owned(),
                (true, &Type::INT8) => "bigserial".to_owned(),
                (true, &Type::INT2) => "smallserial".to_owned(),
                _ => ty.name().to_owned(),
            };
            ColumnMetadata {
                name: c.name().to_owned(),
                label: c.name().to_owned(),
                type_name,
                jdbc_type: values::jdbc_type(ty),
                nullable: match table {
                    Some(t) if t.not_null => 0,
                    Some(_) => 1,
                    None => 2,
                },
                is_signed: signed,
                is_currency: *ty == Type::MONEY,
                is_case_sensitive: case_sensitive,
                is_auto_increment: auto_increment,
                precision,
                scale,
                schema_name: table.map(|t| t.schema.clone()).unwrap_or_default(),
                table_name: table.map(|t| t.table.clone()).unwrap_or_default(),
                array_base_column_type: values::array_base_type(ty),
            }
        })
        .collect())
}

/// Runs one statement per parameter set, pipelined on the connection. With
/// `own_transaction` the batch is atomic (as a JDBC batch within one
/// implicit transaction is); inside a caller's transaction, it is part of
/// it. Returns the number of executions.
pub async fn execute_batch(
    conn: &mut Conn,
    sql: &str,
    sets: &[Vec<BoundValue>],
    own_transaction: bool,
) -> Result<usize, ApiError> {
    if sets.is_empty() {
        return Ok(0);
    }
    if own_transaction {
        conn.client.batch_execute("BEGIN").await?;
    }
    let result = run_sets(conn, sql, sets).await;
    match result {
        Ok(()) => {
            if own_transaction {
                conn.client.batch_execute("COMMIT").await?;
            }
            Ok(sets.len())
        }
        Err(error) => {
            if own_transaction {
                // The connection goes back to the pool only if it is clean.
                if conn.client.batch_execute("ROLLBACK").await.is_err() {
                    conn.forget_statements();
                }
            }
            Err(error.into())
        }
    }
}

async fn run_sets(
    conn: &mut Conn,
    sql: &str,
    sets: &[Vec<BoundValue>],
) -> Result<(), tokio_postgres::Error> {
    let mut statements = Vec::with_capacity(sets.len());
    for set in sets {
        statements.push(conn.prepare(sql, &declared_types(set)).await?);
    }
    let client = &conn.client;
    futures::future::try_join_all(
        sets.iter()
            .zip(&statements)
            .map(|(set, statement)| client.execute_raw(statement, set.iter())),
    )
    .await?;
    Ok(())
}
