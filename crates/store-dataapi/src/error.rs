//! Data API failures by meaning, which of them are retried, and how they
//! map onto [`StoreError`].
//!
//! | service answer | [`DataApiError`] | retried | `StoreError` |
//! |---|---|---|---|
//! | `DatabaseResumingException` | `Resuming` | for `resume_wait` | `Unavailable` |
//! | throttling codes, HTTP 429 | `Throttled` | `max_attempts` | `Unavailable` |
//! | `StatementTimeoutException`, an HTTP call timing out | `Timeout` | `max_attempts` | `Unavailable` |
//! | connection refused/reset, DNS | `Unreachable` | `max_attempts` | `Unavailable` |
//! | HTTP 5xx, `InternalServerErrorException`, `ServiceUnavailableError`, `DatabaseUnavailableException`, `InvalidResourceStateException` | `ServiceFailure` | `max_attempts` | `Unavailable` |
//! | `TransactionNotFoundException` | `TransactionLost` | the whole batch, `max_attempts` | `Unavailable` |
//! | `DatabaseErrorException` (or a v1 `BadRequestException` with a SQLSTATE) | `Database` | when its SQLSTATE is of class `Unavailable` | by SQLSTATE ([`pg_sql::classify_sqlstate`]) |
//! | "Database response exceeded size limit" | `ResponseTooLarge` | reads: with smaller pages | `Other` |
//! | request over the size limit (HTTP 413) | `RequestTooLarge` | no | `Invalid` |
//! | `BadRequestException`, `ValidationException` | `Rejected` | no | `Invalid` |
//! | `UnsupportedResultException`, anything unknown | `Other` | no | `Other` |
//! | `AccessDeniedException`, `ForbiddenException`, bad or expired credentials | `Denied` | no | `Config` |
//! | `HttpEndpointNotEnabledException`, `InvalidSecretException`, `SecretsErrorException`, `DatabaseNotFoundException`, `NotFoundException` | `NotConfigured` | no | `Config` |
//! | the request could not be built or signed (no credentials) | `Setup` | no | `Config` |
//!
//! No variant holds credentials: the SDK's errors do not carry them, and
//! the service's messages name resources, not secrets.

use std::error::Error as StdError;

use aws_sdk_rdsdata::config::http::HttpResponse;
use aws_sdk_rdsdata::error::{ProvideErrorMetadata, SdkError};
use pg_sql::{ErrorClass, classify_sqlstate};
use world_core::store::{BoxError, StoreError};

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
    /// The auto-paused database is resuming.
    #[error("{op}: the database is resuming from auto-pause: {message}")]
    Resuming {
        /// The operation.
        op: Op,
        /// The service's message.
        message: String,
    },
    /// The service is throttling.
    #[error("{op}: throttled ({code}): {message}")]
    Throttled {
        /// The operation.
        op: Op,
        /// The service's error code.
        code: String,
        /// The service's message.
        message: String,
    },
    /// The statement or the HTTP call ran out of time.
    #[error("{op}: timed out: {message}")]
    Timeout {
        /// The operation.
        op: Op,
        /// What timed out.
        message: String,
        /// The SDK's error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The endpoint could not be reached.
    #[error("{op}: the Data API endpoint is unreachable")]
    Unreachable {
        /// The operation.
        op: Op,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// The service or the database failed (5xx, writer unavailable).
    #[error("{op}: service failure ({code}): {message}")]
    ServiceFailure {
        /// The operation.
        op: Op,
        /// The error code or HTTP status.
        code: String,
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
    /// The service refused the request as malformed.
    #[error("{op}: request rejected ({code}): {message}")]
    Rejected {
        /// The operation.
        op: Op,
        /// The error code.
        code: String,
        /// The service's message.
        message: String,
    },
    /// Credentials are wrong, expired or lack a permission.
    #[error("{op}: not authorised ({code}): {message}")]
    Denied {
        /// The operation.
        op: Op,
        /// The error code.
        code: String,
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
    /// The request could not be built or signed (no credentials, bad
    /// endpoint).
    #[error("{op}: cannot build the request")]
    Setup {
        /// The operation.
        op: Op,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// An answer without the shape this store expects.
    #[error("unexpected answer: {0}")]
    Corrupt(String),
    /// Anything else.
    #[error("{op}: {message}")]
    Other {
        /// The operation.
        op: Op,
        /// What happened.
        message: String,
        /// The SDK's error.
        #[source]
        source: Option<BoxError>,
    },
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
            DataApiError::Throttled { .. }
            | DataApiError::Timeout { .. }
            | DataApiError::Unreachable { .. }
            | DataApiError::ServiceFailure { .. }
            | DataApiError::TransactionLost { .. } => Retry::Transient,
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
            DataApiError::Resuming { .. } => "resuming",
            DataApiError::Throttled { .. } => "throttled",
            DataApiError::Timeout { .. } => "timeout",
            DataApiError::Unreachable { .. } => "unreachable",
            DataApiError::ServiceFailure { .. } => "service_failure",
            DataApiError::TransactionLost { .. } => "transaction_lost",
            DataApiError::Database { .. } => "database",
            DataApiError::ResponseTooLarge { .. } => "response_too_large",
            DataApiError::RequestTooLarge { .. } => "request_too_large",
            DataApiError::Rejected { .. } => "rejected",
            DataApiError::Denied { .. } => "denied",
            DataApiError::NotConfigured { .. } => "not_configured",
            DataApiError::Setup { .. } => "setup",
            DataApiError::Corrupt(_) => "corrupt",
            DataApiError::Other { .. } => "other",
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
        match &self {
            DataApiError::Resuming { .. }
            | DataApiError::Throttled { .. }
            | DataApiError::Timeout { .. }
            | DataApiError::Unreachable { .. }
            | DataApiError::ServiceFailure { .. }
            | DataApiError::TransactionLost { .. } => StoreError::Unavailable {
                message,
                source: Some(Box::new(self)),
            },
            DataApiError::Database { sqlstate, .. } => {
                let class = classify_sqlstate(sqlstate.as_deref().unwrap_or(""));
                class.error(message, Some(Box::new(self)))
            }
            DataApiError::RequestTooLarge { .. } | DataApiError::Rejected { .. } => {
                StoreError::Invalid(message)
            }
            DataApiError::Denied { .. }
            | DataApiError::NotConfigured { .. }
            | DataApiError::Setup { .. } => StoreError::Config(message),
            DataApiError::Corrupt(m) => StoreError::Corrupt(format!("{context}: {m}")),
            DataApiError::ResponseTooLarge { .. } | DataApiError::Other { .. } => {
                StoreError::Other {
                    message,
                    source: Some(Box::new(self)),
                }
            }
        }
    }
}

/// `e` and its sources on one line.
pub(crate) fn error_chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(source) = next {
        let text = source.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = source.source();
    }
    out
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

const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
];

const DENIED: &[&str] = &[
    "AccessDeniedException",
    "ForbiddenException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "ExpiredTokenException",
    "IncompleteSignature",
    "InvalidClientTokenId",
];

const NOT_CONFIGURED: &[&str] = &[
    "HttpEndpointNotEnabledException",
    "InvalidSecretException",
    "SecretsErrorException",
    "DatabaseNotFoundException",
    "NotFoundException",
];

const SERVICE_FAILURE: &[&str] = &[
    "InternalServerErrorException",
    "ServiceUnavailableError",
    "ServiceUnavailableException",
    "DatabaseUnavailableException",
    "InvalidResourceStateException",
];

/// Classifies a service error by code, message and HTTP status.
pub fn classify_service(op: Op, code: &str, message: &str, status: u16) -> DataApiError {
    let owned = || (code.to_owned(), message.to_owned());
    if code == "DatabaseResumingException" {
        return DataApiError::Resuming {
            op,
            message: message.to_owned(),
        };
    }
    if code == "StatementTimeoutException" {
        return DataApiError::Timeout {
            op,
            message: message.to_owned(),
            source: None,
        };
    }
    if code == "TransactionNotFoundException" {
        return DataApiError::TransactionLost {
            op,
            message: message.to_owned(),
        };
    }
    if TOO_LARGE.iter().any(|m| message.contains(m)) {
        return DataApiError::ResponseTooLarge {
            op,
            message: message.to_owned(),
        };
    }
    if code == "DatabaseErrorException"
        || (code == "BadRequestException" && sqlstate_of(message).is_some())
    {
        return DataApiError::Database {
            op,
            sqlstate: sqlstate_of(message),
            message: message.to_owned(),
        };
    }
    if THROTTLING.contains(&code) || status == 429 {
        let (code, message) = owned();
        return DataApiError::Throttled { op, code, message };
    }
    if status == 413 || message.contains("Request size exceeds") {
        return DataApiError::RequestTooLarge {
            op,
            message: message.to_owned(),
        };
    }
    if DENIED.contains(&code) || status == 403 || status == 401 {
        let (code, message) = owned();
        return DataApiError::Denied { op, code, message };
    }
    if NOT_CONFIGURED.contains(&code) {
        let (code, message) = owned();
        return DataApiError::NotConfigured { op, code, message };
    }
    if SERVICE_FAILURE.contains(&code) || status >= 500 {
        let code = if code.is_empty() {
            format!("HTTP {status}")
        } else {
            code.to_owned()
        };
        return DataApiError::ServiceFailure {
            op,
            code,
            message: message.to_owned(),
        };
    }
    if matches!(code, "BadRequestException" | "ValidationException") {
        let (code, message) = owned();
        return DataApiError::Rejected { op, code, message };
    }
    DataApiError::Other {
        op,
        message: format!("{code} (HTTP {status}): {message}"),
        source: None,
    }
}

/// Classifies an SDK error of operation `op`.
pub fn classify<E>(op: Op, err: SdkError<E, HttpResponse>) -> DataApiError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match &err {
        SdkError::ConstructionFailure(_) => DataApiError::Setup {
            op,
            source: Box::new(err),
        },
        SdkError::TimeoutError(_) => DataApiError::Timeout {
            op,
            message: "no answer within call_timeout".to_owned(),
            source: Some(Box::new(err)),
        },
        SdkError::DispatchFailure(d) if d.is_timeout() => DataApiError::Timeout {
            op,
            message: "connecting or sending timed out".to_owned(),
            source: Some(Box::new(err)),
        },
        // A user error at dispatch is a failed identity (credentials) or
        // endpoint resolution, not an outage.
        SdkError::DispatchFailure(d) if d.is_user() => DataApiError::Setup {
            op,
            source: Box::new(err),
        },
        SdkError::DispatchFailure(_) => DataApiError::Unreachable {
            op,
            source: Box::new(err),
        },
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            if status >= 500 || status == 429 {
                classify_service(op, "", "unreadable answer", status)
            } else {
                DataApiError::Other {
                    op,
                    message: format!("unreadable answer (HTTP {status})"),
                    source: Some(Box::new(err)),
                }
            }
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("");
            let message = service.err().message().unwrap_or("");
            classify_service(op, code, message, status)
        }
        _ => DataApiError::Other {
            op,
            message: "unexpected SDK error".to_owned(),
            source: Some(Box::new(err)),
        },
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
