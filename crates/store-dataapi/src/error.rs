//! Data API failures by meaning, which of them are retried, and how they
//! map onto [`StoreError`].
//!
//! SDK failures are sorted by `aws-common` (shared with the DynamoDB
//! backend); the service's error answers are read for the Data API's own
//! codes first:
//!
//! | service answer | [`DataApiError`] | retried | `StoreError` |
//! |---|---|---|---|
//! | `DatabaseResumingException` | `Resuming` | for `resume_wait` | `Unavailable` |
//! | `StatementTimeoutException` | `Aws(Timeout)` | `max_attempts` | `Unavailable` |
//! | `TransactionNotFoundException` | `TransactionLost` | the whole batch, `max_attempts` | `Unavailable` |
//! | "Database response exceeded size limit" | `ResponseTooLarge` | reads: with smaller pages | `Other` |
//! | `DatabaseErrorException` (or a v1 `BadRequestException` with a SQLSTATE) | `Database` | when its SQLSTATE is of class `Unavailable` | by SQLSTATE ([`pg_sql::classify_sqlstate`]) |
//! | request over the size limit (HTTP 413) | `RequestTooLarge` | no | `Invalid` |
//! | `HttpEndpointNotEnabledException`, `InvalidSecretException`, `SecretsErrorException`, `DatabaseNotFoundException`, `NotFoundException` | `NotConfigured` | no | `Config` |
//! | `DatabaseUnavailableException`, `InvalidResourceStateException` | `Aws(ServiceFailure)` | `max_attempts` | `Unavailable` |
//! | `UnsupportedResultException` | `Aws(Other)` | no | `Other` |
//!
//! and then as every AWS failure (`aws_common::ServiceError::classify`):
//!
//! | failure | [`DataApiError`] | retried | `StoreError` |
//! |---|---|---|---|
//! | throttling codes, HTTP 429 | `Aws(Throttled)` | `max_attempts` | `Unavailable` |
//! | an HTTP call timing out | `Aws(Timeout)` | `max_attempts` | `Unavailable` |
//! | connection refused/reset, DNS | `Aws(Unreachable)` | `max_attempts` | `Unavailable` |
//! | HTTP 5xx, `InternalServerErrorException`, `ServiceUnavailableError`, an unreadable answer | `Aws(ServiceFailure)` | `max_attempts` | `Unavailable` |
//! | `BadRequestException`, `ValidationException`, other HTTP 400 | `Aws(Rejected)` | no | `Invalid` |
//! | `AccessDeniedException`, `ForbiddenException`, bad or expired credentials | `Aws(Denied)` | no | `Config` |
//! | the request could not be built or signed (no credentials) | `Aws(Setup)` | no | `Config` |
//! | anything unknown | `Aws(Other)` | no | `Other` |
//!
//! No variant holds credentials: the SDK's errors do not carry them, and
//! the service's messages name resources, not secrets.

use aws_common::{AwsError, Failure, ServiceError};
use aws_sdk_rdsdata::config::http::HttpResponse;
use aws_sdk_rdsdata::error::{ProvideErrorMetadata, SdkError};
use pg_sql::{ErrorClass, classify_sqlstate};
use world_core::store::{StoreError, error_chain};

/// A Data API operation, as counters and errors name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `ExecuteStatement`.
    Execute,
    /// `BatchExecuteStatement`.
    BatchExecute,
    /// `BeginTransaction`.
    Begin,
    /// `CommitTransaction`.
    Commit,
    /// `RollbackTransaction`.
    Rollback,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 5] = [
        Op::Execute,
        Op::BatchExecute,
        Op::Begin,
        Op::Commit,
        Op::Rollback,
    ];

    /// The service's name of the operation.
    pub fn name(self) -> &'static str {
        match self {
            Op::Execute => "ExecuteStatement",
            Op::BatchExecute => "BatchExecuteStatement",
            Op::Begin => "BeginTransaction",
            Op::Commit => "CommitTransaction",
            Op::Rollback => "RollbackTransaction",
        }
    }

    /// The operation of a request path (`/Execute`, ...).
    pub fn from_path(path: &str) -> Option<Op> {
        match path.trim_end_matches('/').rsplit('/').next()? {
            "Execute" => Some(Op::Execute),
            "BatchExecute" => Some(Op::BatchExecute),
            "BeginTransaction" => Some(Op::Begin),
            "CommitTransaction" => Some(Op::Commit),
            "RollbackTransaction" => Some(Op::Rollback),
            _ => None,
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong in one Data API call.
#[derive(Debug, thiserror::Error)]
pub enum DataApiError {
    /// A failed call as any AWS service fails (unreachable, timed out,
    /// throttled, denied, ...).
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The auto-paused database is resuming.
    #[error("{op}: the database is resuming from auto-pause: {message}")]
    Resuming {
        /// The operation.
        op: Op,
        /// The service's message.
        message: String,
    },
    /// The transaction ended (expired, aborted by an earlier error, or
    /// unknown to the service).
    #[error("{op}: the transaction was lost: {message}")]
    TransactionLost {
        /// The operation.
        op: Op,
        /// The service's message.
        message: String,
    },
    /// PostgreSQL refused the statement.
    #[error("{op}: database error{}: {message}", sqlstate.as_deref().map(|s| format!(" {s}")).unwrap_or_default())]
    Database {
        /// The operation.
        op: Op,
        /// The SQLSTATE the message ends with, if any.
        sqlstate: Option<String>,
        /// The service's message.
        message: String,
    },
    /// The answer would pass the service's 1 MiB limit.
    #[error("{op}: the answer exceeds the Data API's size limit: {message}")]
    ResponseTooLarge {
        /// The operation.
        op: Op,
        /// The service's message.
        message: String,
    },
    /// The request passes the service's 4 MiB limit.
    #[error("{op}: the request exceeds the Data API's size limit: {message}")]
    RequestTooLarge {
        /// The operation.
        op: Op,
        /// The service's message.
        message: String,
    },
    /// The cluster, secret or database is not set up for the Data API.
    #[error("{op}: the cluster, secret or database is not usable ({code}): {message}")]
    NotConfigured {
        /// The operation.
        op: Op,
        /// The error code.
        code: String,
        /// The service's message.
        message: String,
    },
    /// An answer without the shape this store expects.
    #[error("unexpected answer: {0}")]
    Corrupt(String),
}

/// Whether and how a failed call may be tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// The database is resuming: wait, up to `resume_wait`.
    Resuming,
    /// A transient failure: back off, up to `max_attempts`.
    Transient,
    /// Retrying would fail the same way.
    No,
}

impl DataApiError {
    /// How this failure is retried (see the module docs).
    pub fn retry(&self) -> Retry {
        match self {
            DataApiError::Resuming { .. } => Retry::Resuming,
            DataApiError::Aws(e) if e.is_transient() => Retry::Transient,
            DataApiError::TransactionLost { .. } => Retry::Transient,
            DataApiError::Database { sqlstate, .. }
                if classify_sqlstate(sqlstate.as_deref().unwrap_or(""))
                    == ErrorClass::Unavailable =>
            {
                Retry::Transient
            }
            _ => Retry::No,
        }
    }

    /// A short label for the retry counter.
    pub fn reason(&self) -> &'static str {
        match self {
            DataApiError::Aws(e) => e.reason(),
            DataApiError::Resuming { .. } => "resuming",
            DataApiError::TransactionLost { .. } => "transaction_lost",
            DataApiError::Database { .. } => "database",
            DataApiError::ResponseTooLarge { .. } => "response_too_large",
            DataApiError::RequestTooLarge { .. } => "request_too_large",
            DataApiError::NotConfigured { .. } => "not_configured",
            DataApiError::Corrupt(_) => "corrupt",
        }
    }

    /// Whether the service ends a transaction after this failure of one of
    /// its statements (so rolling back is pointless).
    pub fn ends_transaction(&self) -> bool {
        matches!(
            self,
            DataApiError::Database { .. }
                | DataApiError::TransactionLost { .. }
                | DataApiError::ResponseTooLarge { .. }
        )
    }

    /// The SQLSTATE of a database error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            DataApiError::Database { sqlstate, .. } => sqlstate.as_deref(),
            _ => None,
        }
    }

    /// The [`StoreError`] of this failure, with `context` (what the store
    /// was doing) in front of the message.
    pub fn into_store(self, context: &str) -> StoreError {
        let message = format!("{context}: {}", error_chain(&self));
        match self {
            DataApiError::Aws(e) => e.into_store(context),
            DataApiError::Resuming { .. } | DataApiError::TransactionLost { .. } => {
                StoreError::Unavailable {
                    message,
                    source: Some(Box::new(self)),
                }
            }
            DataApiError::Database { ref sqlstate, .. } => {
                let class = classify_sqlstate(sqlstate.as_deref().unwrap_or(""));
                class.error(message, Some(Box::new(self)))
            }
            DataApiError::RequestTooLarge { .. } => StoreError::Invalid(message),
            DataApiError::NotConfigured { .. } => StoreError::Config(message),
            DataApiError::Corrupt(m) => StoreError::Corrupt(format!("{context}: {m}")),
            DataApiError::ResponseTooLarge { .. } => StoreError::Other {
                message,
                source: Some(Box::new(self)),
            },
        }
    }
}

/// The SQLSTATE at the end of a Data API database message
/// (`ERROR: ...; SQLState: 23505`).
pub fn sqlstate_of(message: &str) -> Option<String> {
    let at = message.rfind("SQLState: ")?;
    let code: String = message[at + "SQLState: ".len()..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    (code.len() == 5).then_some(code)
}

/// The message the service sends when an answer passes 1 MiB.
const TOO_LARGE: &[&str] = &[
    "Database response exceeded size limit",
    "Database returned more than the allowed response size limit",
];

const NOT_CONFIGURED: &[&str] = &[
    "HttpEndpointNotEnabledException",
    "InvalidSecretException",
    "SecretsErrorException",
    "DatabaseNotFoundException",
    "NotFoundException",
];

/// The Data API's own codes for a failure on its side.
const SERVICE_FAILURE: &[&str] = &[
    "DatabaseUnavailableException",
    "InvalidResourceStateException",
];

/// Classifies a service error by code, message and HTTP status.
pub fn classify_service(op: Op, code: &str, message: &str, status: u16) -> DataApiError {
    read_answer(
        op,
        ServiceError {
            op: op.name(),
            code: code.to_owned(),
            message: message.to_owned(),
            status,
            source: None,
        },
    )
}

/// The Data API's own codes (see the module docs), then the codes every
/// AWS service uses.
fn read_answer(op: Op, answer: ServiceError) -> DataApiError {
    let code = answer.code.as_str();
    let message = || answer.message.clone();
    match code {
        "DatabaseResumingException" => {
            return DataApiError::Resuming {
                op,
                message: message(),
            };
        }
        "StatementTimeoutException" => {
            return AwsError::Timeout {
                op: op.name(),
                message: message(),
                source: None,
            }
            .into();
        }
        "TransactionNotFoundException" => {
            return DataApiError::TransactionLost {
                op,
                message: message(),
            };
        }
        _ => {}
    }
    if TOO_LARGE.iter().any(|m| answer.message.contains(m)) {
        return DataApiError::ResponseTooLarge {
            op,
            message: message(),
        };
    }
    let sqlstate = sqlstate_of(&answer.message);
    if code == "DatabaseErrorException" || (code == "BadRequestException" && sqlstate.is_some()) {
        return DataApiError::Database {
            op,
            sqlstate,
            message: message(),
        };
    }
    if answer.status == 413 || answer.message.contains("Request size exceeds") {
        return DataApiError::RequestTooLarge {
            op,
            message: message(),
        };
    }
    if NOT_CONFIGURED.contains(&code) {
        return DataApiError::NotConfigured {
            op,
            code: code.to_owned(),
            message: message(),
        };
    }
    if SERVICE_FAILURE.contains(&code) {
        return AwsError::ServiceFailure {
            op: op.name(),
            code: code.to_owned(),
            message: message(),
            source: answer.source,
        }
        .into();
    }
    if code == "UnsupportedResultException" {
        // A result type this store never asks for: its own mistake, not a
        // malformed request.
        return AwsError::Other {
            op: op.name(),
            message: format!("{code}: {}", answer.message),
            source: answer.source,
        }
        .into();
    }
    answer.classify().into()
}

/// Classifies an SDK error of operation `op`.
pub fn classify<E>(op: Op, err: SdkError<E, HttpResponse>) -> DataApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match aws_common::classify(op.name(), err) {
        Failure::Call(e) => e.into(),
        Failure::Service(answer) => read_answer(op, answer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(code: &str, message: &str, status: u16) -> StoreError {
        classify_service(Op::Execute, code, message, status).into_store("test")
    }

    #[test]
    fn sqlstates_are_read_from_messages() {
        assert_eq!(
            sqlstate_of("ERROR: duplicate key\n  Detail: x; SQLState: 23505").as_deref(),
            Some("23505")
        );
        assert_eq!(
            sqlstate_of("ERROR: x; SQLState: 40P01").as_deref(),
            Some("40P01")
        );
        assert_eq!(sqlstate_of("no state"), None);
        assert_eq!(sqlstate_of("SQLState: 123"), None);
    }

    #[test]
    fn database_errors_map_by_sqlstate() {
        let e = |state: &str| {
            store(
                "DatabaseErrorException",
                &format!("ERROR: x; SQLState: {state}"),
                400,
            )
        };
        assert!(matches!(e("40P01"), StoreError::Conflict(_)));
        assert!(matches!(e("40001"), StoreError::Conflict(_)));
        assert!(matches!(e("23505"), StoreError::Invalid(_)));
        assert!(matches!(e("42P01"), StoreError::Config(_)));
        assert!(matches!(e("57P01"), StoreError::Unavailable { .. }));
        assert!(matches!(e("42601"), StoreError::Other { .. }));
        // Serverless v1 sent SQL errors as BadRequestException.
        assert!(matches!(
            store("BadRequestException", "ERROR: x; SQLState: 3D000", 400),
            StoreError::Config(_)
        ));
        let unavailable = classify_service(
            Op::Execute,
            "DatabaseErrorException",
            "FATAL: terminating connection; SQLState: 57P01",
            400,
        );
        assert_eq!(unavailable.retry(), Retry::Transient);
        let conflict = classify_service(
            Op::Execute,
            "DatabaseErrorException",
            "ERROR: deadlock detected; SQLState: 40P01",
            400,
        );
        assert_eq!(conflict.retry(), Retry::No, "the caller retries conflicts");
        assert!(conflict.ends_transaction());
    }

    #[test]
    fn service_errors_map_by_meaning() {
        let resuming = classify_service(
            Op::Begin,
            "DatabaseResumingException",
            "resuming after being auto-paused",
            400,
        );
        assert_eq!(resuming.retry(), Retry::Resuming);
        assert!(resuming.into_store("x").is_retryable());
        for (code, status) in [
            ("ThrottlingException", 400),
            ("", 429),
            ("StatementTimeoutException", 400),
            ("TransactionNotFoundException", 404),
            ("InternalServerErrorException", 500),
            ("ServiceUnavailableError", 503),
            ("DatabaseUnavailableException", 504),
            ("", 502),
        ] {
            let e = classify_service(Op::Execute, code, "m", status);
            assert_eq!(e.retry(), Retry::Transient, "{code} {status}");
            assert!(
                matches!(e.into_store("x"), StoreError::Unavailable { .. }),
                "{code}"
            );
        }
        for code in [
            "AccessDeniedException",
            "ForbiddenException",
            "HttpEndpointNotEnabledException",
            "InvalidSecretException",
            "SecretsErrorException",
            "DatabaseNotFoundException",
            "NotFoundException",
        ] {
            assert!(
                matches!(store(code, "m", 400), StoreError::Config(_)),
                "{code}"
            );
        }
        assert!(matches!(
            store("BadRequestException", "Invalid transactionId", 400),
            StoreError::Invalid(_)
        ));
        assert!(matches!(
            store(
                "ValidationException",
                "The schema parameter isn't supported",
                400
            ),
            StoreError::Invalid(_)
        ));
        assert!(matches!(
            store(
                "BadRequestException",
                "Request size exceeds the 4194304 bytes limit",
                400
            ),
            StoreError::Invalid(_)
        ));
        let large = classify_service(
            Op::Execute,
            "BadRequestException",
            "Database response exceeded size limit",
            400,
        );
        assert!(matches!(large, DataApiError::ResponseTooLarge { .. }));
        assert_eq!(large.retry(), Retry::No);
        assert!(matches!(
            store("UnsupportedResultException", "m", 400),
            StoreError::Other { .. }
        ));
    }

    #[test]
    fn messages_carry_context_and_operation() {
        let e = store(
            "DatabaseErrorException",
            "ERROR: boom; SQLState: 42601",
            400,
        );
        let text = e.to_string();
        assert!(
            text.contains("test: ExecuteStatement: database error 42601"),
            "{text}"
        );
        assert_eq!(Op::from_path("/BatchExecute"), Some(Op::BatchExecute));
        assert_eq!(Op::from_path("/nope"), None);
    }
}
