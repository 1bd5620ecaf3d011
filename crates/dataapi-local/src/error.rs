//! Errors as the service sends them: an HTTP status, the `x-amzn-ErrorType`
//! header (which the SDKs read first to pick the typed error) and a JSON body
//! with `message` (and `dbConnectionId` for a statement timeout).
//!
//! Status codes are the service model's `@httpError` values (botocore
//! `rds-data/2018-08-01/service-2.json`; `DatabaseResumingException`, newer
//! than that file, is "HTTP Status Code: 400" in the API reference).
//! `ValidationException` is not in the model but is what the service answers
//! for multistatements and for the `schema` parameter (Aurora user guide,
//! "Comparing Amazon RDS Data API behaviors"); the SDK surfaces it as an
//! unhandled error with that code.
//!
//! SQL errors are `DatabaseErrorException`: the model documents
//! `BadRequestException` as appearing "only in calls from Aurora Serverless
//! v1 databases". This server still uses `BadRequestException` for malformed
//! calls and the response size limit, where no newer wording is documented.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer of the Data API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// A malformed call, or a limit of the service (400).
    #[error("BadRequestException: {0}")]
    BadRequest(String),
    /// A request the service validates away before running it (400).
    #[error("ValidationException: {0}")]
    Validation(String),
    /// An error from the database (400).
    #[error("DatabaseErrorException: {0}")]
    Database(String),
    /// The call waited longer than the statement timeout (400).
    #[error("StatementTimeoutException: {message}")]
    StatementTimeout {
        /// The message.
        message: String,
        /// The PostgreSQL backend pid that ran the statement.
        db_connection_id: i64,
    },
    /// An unknown, ended, expired or aborted transaction (404).
    #[error("TransactionNotFoundException: {0}")]
    TransactionNotFound(String),
    /// The (simulated) auto-paused instance is resuming (400).
    #[error("DatabaseResumingException: {0}")]
    Resuming(String),
    /// A result type the service does not return (400).
    #[error("UnsupportedResultException: {0}")]
    UnsupportedResult(String),
    /// PostgreSQL cannot be reached (504).
    #[error("DatabaseUnavailableException: {0}")]
    DatabaseUnavailable(String),
    /// A bug or an unexpected state here (500).
    #[error("InternalServerErrorException: {0}")]
    Internal(String),
}

impl ApiError {
    /// The error code (`x-amzn-ErrorType`).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequestException",
            ApiError::Validation(_) => "ValidationException",
            ApiError::Database(_) => "DatabaseErrorException",
            ApiError::StatementTimeout { .. } => "StatementTimeoutException",
            ApiError::TransactionNotFound(_) => "TransactionNotFoundException",
            ApiError::Resuming(_) => "DatabaseResumingException",
            ApiError::UnsupportedResult(_) => "UnsupportedResultException",
            ApiError::DatabaseUnavailable(_) => "DatabaseUnavailableException",
            ApiError::Internal(_) => "InternalServerErrorException",
        }
    }

    /// The HTTP status of the service model.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::TransactionNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::DatabaseUnavailable(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self) -> &str {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Validation(m)
            | ApiError::Database(m)
            | ApiError::TransactionNotFound(m)
            | ApiError::Resuming(m)
            | ApiError::UnsupportedResult(m)
            | ApiError::DatabaseUnavailable(m)
            | ApiError::Internal(m) => m,
            ApiError::StatementTimeout { message, .. } => message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match &self {
            ApiError::StatementTimeout {
                message,
                db_connection_id,
            } => {
                json!({ "message": message, "dbConnectionId": db_connection_id })
            }
            other => json!({ "message": other.message() }),
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(self.code()));
        response
    }
}

/// The message of the service for a PostgreSQL error, as the PostgreSQL JDBC
/// driver formats a server message, followed by the SQLSTATE:
/// `ERROR: ...\n  Detail: ...\n  Hint: ...\n  Position: n; SQLState: 23505`.
pub fn database_message(error: &tokio_postgres::Error) -> String {
    let Some(db) = error.as_db_error() else {
        return error.to_string();
    };
    let mut message = format!("{}: {}", db.severity(), db.message());
    if let Some(detail) = db.detail() {
        message.push_str("\n  Detail: ");
        message.push_str(detail);
    }
    if let Some(hint) = db.hint() {
        message.push_str("\n  Hint: ");
        message.push_str(hint);
    }
    if let Some(tokio_postgres::error::ErrorPosition::Original(position)) = db.position() {
        message.push_str(&format!("\n  Position: {position}"));
    }
    if let Some(where_) = db.where_() {
        message.push_str("\n  Where: ");
        message.push_str(where_);
    }
    message.push_str("; SQLState: ");
    message.push_str(db.code().code());
    message
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(error: tokio_postgres::Error) -> Self {
        if error.as_db_error().is_some() {
            ApiError::Database(database_message(&error))
        } else if error.is_closed() {
            ApiError::DatabaseUnavailable(format!("The database connection was closed: {error}"))
        } else {
            ApiError::Database(error.to_string())
        }
    }
}
