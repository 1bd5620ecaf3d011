//! The wire model: request and response bodies of the five operations, with
//! the member names of the service model (restJson1, lowerCamelCase).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A parameter as sent: `{"name": ..., "value": Field, "typeHint": ...}`.
/// `value` stays raw JSON so that a bad union gets a precise error.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqlParameter {
    /// The parameter's name, without the colon.
    pub name: Option<String>,
    /// The `Field` union.
    pub value: Option<Value>,
    /// `DATE`, `TIME`, `TIMESTAMP`, `DECIMAL`, `JSON` or `UUID`.
    pub type_hint: Option<String>,
}

/// `resultSetOptions`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultSetOptions {
    /// `STRING` (default) or `DOUBLE_OR_LONG`.
    pub decimal_return_type: Option<String>,
    /// `LONG` (default) or `STRING`.
    pub long_return_type: Option<String>,
}

/// ExecuteStatement (`POST /Execute`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteStatementRequest {
    /// The cluster ARN.
    pub resource_arn: Option<String>,
    /// The secret ARN.
    pub secret_arn: Option<String>,
    /// The SQL text.
    pub sql: Option<String>,
    /// The database name.
    pub database: Option<String>,
    /// The schema name (refused by Aurora Serverless v2 / provisioned).
    pub schema: Option<String>,
    /// Named parameters.
    pub parameters: Option<Vec<SqlParameter>>,
    /// A transaction from BeginTransaction.
    pub transaction_id: Option<String>,
    /// Whether to return `columnMetadata`.
    pub include_result_metadata: Option<bool>,
    /// Whether the statement keeps running after the call times out.
    pub continue_after_timeout: Option<bool>,
    /// How decimals and longs are returned.
    pub result_set_options: Option<ResultSetOptions>,
    /// `NONE` (default) or `JSON`.
    pub format_records_as: Option<String>,
}

/// BatchExecuteStatement (`POST /BatchExecute`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchExecuteStatementRequest {
    /// The cluster ARN.
    pub resource_arn: Option<String>,
    /// The secret ARN.
    pub secret_arn: Option<String>,
    /// The SQL text.
    pub sql: Option<String>,
    /// The database name.
    pub database: Option<String>,
    /// The schema name.
    pub schema: Option<String>,
    /// One parameter list per execution.
    pub parameter_sets: Option<Vec<Vec<SqlParameter>>>,
    /// A transaction from BeginTransaction.
    pub transaction_id: Option<String>,
}

/// BeginTransaction (`POST /BeginTransaction`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BeginTransactionRequest {
    /// The cluster ARN.
    pub resource_arn: Option<String>,
    /// The secret ARN.
    pub secret_arn: Option<String>,
    /// The database name.
    pub database: Option<String>,
    /// The schema name.
    pub schema: Option<String>,
}

/// CommitTransaction and RollbackTransaction.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndTransactionRequest {
    /// The cluster ARN.
    pub resource_arn: Option<String>,
    /// The secret ARN.
    pub secret_arn: Option<String>,
    /// The transaction to end.
    pub transaction_id: Option<String>,
}

/// An array in a result (`ArrayValue` union); nested arrays are refused
/// like the service does for Aurora Serverless v2.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayOut {
    /// `booleanValues`.
    Booleans(Vec<Option<bool>>),
    /// `longValues`.
    Longs(Vec<Option<i64>>),
    /// `doubleValues`.
    Doubles(Vec<Option<f64>>),
    /// `stringValues`.
    Strings(Vec<Option<String>>),
}

/// A value in a result (`Field` union).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldOut {
    /// `{"isNull": true}`.
    Null,
    /// `booleanValue`.
    Bool(bool),
    /// `longValue`.
    Long(i64),
    /// `doubleValue`.
    Double(f64),
    /// `stringValue`.
    String(String),
    /// `blobValue` (base64 on the wire).
    Blob(Vec<u8>),
    /// `arrayValue`.
    Array(ArrayOut),
}

/// A double as JSON: AWS JSON protocols write non-finite numbers as the
/// strings `NaN`, `Infinity` and `-Infinity`, which the SDKs accept.
fn double_json(d: f64) -> Value {
    if d.is_nan() {
        Value::from("NaN")
    } else if d.is_infinite() {
        Value::from(if d > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        Value::from(d)
    }
}

fn opt<T>(v: &Option<T>, f: impl Fn(&T) -> Value) -> Value {
    v.as_ref().map_or(Value::Null, f)
}

impl ArrayOut {
    /// The `ArrayValue` union as JSON.
    pub fn to_wire(&self) -> Value {
        let (key, values): (&str, Vec<Value>) = match self {
            ArrayOut::Booleans(v) => (
                "booleanValues",
                v.iter().map(|x| opt(x, |b| Value::from(*b))).collect(),
            ),
            ArrayOut::Longs(v) => (
                "longValues",
                v.iter().map(|x| opt(x, |n| Value::from(*n))).collect(),
            ),
            ArrayOut::Doubles(v) => (
                "doubleValues",
                v.iter().map(|x| opt(x, |d| double_json(*d))).collect(),
            ),
            ArrayOut::Strings(v) => (
                "stringValues",
                v.iter()
                    .map(|x| opt(x, |s| Value::from(s.as_str())))
                    .collect(),
            ),
        };
        let mut map = serde_json::Map::new();
        map.insert(key.to_owned(), Value::Array(values));
        Value::Object(map)
    }

    /// The array as a plain JSON array (for `formattedRecords`).
    pub fn to_plain(&self) -> Value {
        match self {
            ArrayOut::Booleans(v) => v.iter().map(|x| opt(x, |b| Value::from(*b))).collect(),
            ArrayOut::Longs(v) => v.iter().map(|x| opt(x, |n| Value::from(*n))).collect(),
            ArrayOut::Doubles(v) => v.iter().map(|x| opt(x, |d| double_json(*d))).collect(),
            ArrayOut::Strings(v) => v
                .iter()
                .map(|x| opt(x, |s| Value::from(s.as_str())))
                .collect(),
        }
    }
}

impl FieldOut {
    /// The `Field` union as JSON.
    pub fn to_wire(&self) -> Value {
        let (key, value) = match self {
            FieldOut::Null => ("isNull", Value::Bool(true)),
            FieldOut::Bool(b) => ("booleanValue", Value::Bool(*b)),
            FieldOut::Long(n) => ("longValue", Value::from(*n)),
            FieldOut::Double(d) => ("doubleValue", double_json(*d)),
            FieldOut::String(s) => ("stringValue", Value::from(s.as_str())),
            FieldOut::Blob(b) => (
                "blobValue",
                Value::from(aws_smithy_types::base64::encode(b)),
            ),
            FieldOut::Array(a) => ("arrayValue", a.to_wire()),
        };
        let mut map = serde_json::Map::new();
        map.insert(key.to_owned(), value);
        Value::Object(map)
    }

    /// The value as plain JSON (for `formattedRecords`): blobs in base64,
    /// arrays as arrays, NULL as `null`.
    pub fn to_plain(&self) -> Value {
        match self {
            FieldOut::Null => Value::Null,
            FieldOut::Bool(b) => Value::Bool(*b),
            FieldOut::Long(n) => Value::from(*n),
            FieldOut::Double(d) => double_json(*d),
            FieldOut::String(s) => Value::from(s.as_str()),
            FieldOut::Blob(b) => Value::from(aws_smithy_types::base64::encode(b)),
            FieldOut::Array(a) => a.to_plain(),
        }
    }
}

/// One entry of `columnMetadata`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnMetadata {
    /// The column name (the label, as the PostgreSQL JDBC driver reports it).
    pub name: String,
    /// The label.
    pub label: String,
    /// The PostgreSQL type name (`int4`, `text`, `serial`, `_int4`...).
    pub type_name: String,
    /// The `java.sql.Types` code.
    #[serde(rename = "type")]
    pub jdbc_type: i32,
    /// 0: no nulls, 1: nullable, 2: unknown.
    pub nullable: i32,
    /// Whether a number type is signed.
    pub is_signed: bool,
    /// Whether the type is `money`.
    pub is_currency: bool,
    /// Whether comparisons are case-sensitive.
    pub is_case_sensitive: bool,
    /// Whether the column defaults to a sequence or is an identity.
    pub is_auto_increment: bool,
    /// Precision (length for strings).
    pub precision: i32,
    /// Scale.
    pub scale: i32,
    /// The schema of the source table, or empty.
    pub schema_name: String,
    /// The source table, or empty.
    pub table_name: String,
    /// For arrays, the `java.sql.Types` code of the elements; else 0.
    pub array_base_column_type: i32,
}
