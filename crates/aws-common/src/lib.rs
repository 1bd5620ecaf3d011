//! What the AWS store backends (`store-dynamodb`, `store-dataapi`) share:
//! one classification of AWS SDK failures by meaning, and how each meaning
//! maps onto [`StoreError`].
//!
//! [`classify`] sorts an SDK error of any operation:
//!
//! | SDK error | [`AwsError`] | `StoreError` |
//! |---|---|---|
//! | the request could not be built or signed; a dispatch failure caused by the caller (no credentials, endpoint resolution) | `Setup` | `Config` |
//! | the whole call or an attempt timed out; connecting or sending timed out | `Timeout` | `Unavailable` |
//! | other dispatch failures (connection refused or reset, DNS) | `Unreachable` | `Unavailable` |
//! | an answer the SDK could not read (the server hung up mid-body, a proxy's page) | `ServiceFailure` | `Unavailable` |
//! | an error answer of the service | [`ServiceError`], for the backend's own codes first, then [`ServiceError::classify`] | |
//!
//! [`ServiceError::classify`] reads what every AWS service uses:
//!
//! | service answer | [`AwsError`] | `StoreError` |
//! |---|---|---|
//! | throttling codes, HTTP 429 | `Throttled` | `Unavailable` |
//! | access denied or bad, missing or expired credentials, HTTP 401/403 | `Denied` | `Config` |
//! | internal errors, service unavailable, HTTP 5xx | `ServiceFailure` | `Unavailable` |
//! | validation errors, other HTTP 400 | `Rejected` | `Invalid` |
//! | anything else | `Other` | `Other` |
//!
//! A backend checks the codes only it knows (DynamoDB's missing table, the
//! Data API's resuming database or SQL errors) before the common ones.
//! No variant holds credentials: the SDK's errors do not carry them, and
//! the services' messages name resources, not secrets.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use world_core::store::{BoxError, StoreError, error_chain};

/// A failed AWS call, by meaning. Every variant names the operation.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// The endpoint could not be reached (connection refused or reset, DNS).
    #[error("{op}: the endpoint is unreachable")]
    Unreachable {
        /// The operation.
        op: &'static str,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// The call, an attempt, a connection or a statement ran out of time.
    #[error("{op}: timed out: {message}")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// What timed out.
        message: String,
        /// The SDK's error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The service is throttling (after any retries of the SDK).
    #[error("{op}: throttled ({code}): {message}")]
    Throttled {
        /// The operation.
        op: &'static str,
        /// The service's error code.
        code: String,
        /// The service's message.
        message: String,
        /// The SDK's error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The service failed (HTTP 5xx) or answered something unreadable.
    #[error("{op}: service failure ({code}): {message}")]
    ServiceFailure {
        /// The operation.
        op: &'static str,
        /// The service's error code or the HTTP status.
        code: String,
        /// The service's message.
        message: String,
        /// The SDK's error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// Credentials are missing, wrong, expired or lack a permission.
    #[error("{op}: not authorised ({code}): {message}")]
    Denied {
        /// The operation.
        op: &'static str,
        /// The service's error code.
        code: String,
        /// The service's message.
        message: String,
    },
    /// The service refused the request as malformed or too large.
    #[error("{op}: request rejected ({code}): {message}")]
    Rejected {
        /// The operation.
        op: &'static str,
        /// The service's error code.
        code: String,
        /// The service's message.
        message: String,
    },
    /// The request could not be built or signed (no region, no
    /// credentials, bad endpoint).
    #[error("{op}: cannot build the request")]
    Setup {
        /// The operation.
        op: &'static str,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// Anything else.
    #[error("{op}: {message}")]
    Other {
        /// The operation.
        op: &'static str,
        /// What happened.
        message: String,
        /// The SDK's error, if any.
        #[source]
        source: Option<BoxError>,
    },
}

impl AwsError {
    /// The operation that failed.
    pub fn op(&self) -> &'static str {
        match self {
            AwsError::Unreachable { op, .. }
            | AwsError::Timeout { op, .. }
            | AwsError::Throttled { op, .. }
            | AwsError::ServiceFailure { op, .. }
            | AwsError::Denied { op, .. }
            | AwsError::Rejected { op, .. }
            | AwsError::Setup { op, .. }
            | AwsError::Other { op, .. } => op,
        }
    }

    /// Whether the same call may succeed later (an outage, throttling).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AwsError::Unreachable { .. }
                | AwsError::Timeout { .. }
                | AwsError::Throttled { .. }
                | AwsError::ServiceFailure { .. }
        )
    }

    /// A short, stable label for metrics (`timeout`, `throttled`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            AwsError::Unreachable { .. } => "unreachable",
            AwsError::Timeout { .. } => "timeout",
            AwsError::Throttled { .. } => "throttled",
            AwsError::ServiceFailure { .. } => "service_failure",
            AwsError::Denied { .. } => "denied",
            AwsError::Rejected { .. } => "rejected",
            AwsError::Setup { .. } => "setup",
            AwsError::Other { .. } => "other",
        }
    }

    /// The [`StoreError`] of this failure (see the crate docs), its message
    /// the whole error chain with `context` (what the store was doing) in
    /// front, when not empty.
    pub fn into_store(self, context: &str) -> StoreError {
        let chain = error_chain(&self);
        let message = if context.is_empty() {
            chain
        } else {
            format!("{context}: {chain}")
        };
        match self {
            AwsError::Unreachable { .. }
            | AwsError::Timeout { .. }
            | AwsError::Throttled { .. }
            | AwsError::ServiceFailure { .. } => StoreError::Unavailable {
                message,
                source: Some(Box::new(self)),
            },
            AwsError::Denied { .. } | AwsError::Setup { .. } => StoreError::Config(message),
            AwsError::Rejected { .. } => StoreError::Invalid(message),
            AwsError::Other { .. } => StoreError::Other {
                message,
                source: Some(Box::new(self)),
            },
        }
    }
}

/// An error answer of an AWS service, before its code is read.
#[derive(Debug)]
pub struct ServiceError {
    /// The operation.
    pub op: &'static str,
    /// The service's error code (`ThrottlingException`, ...); may be empty.
    pub code: String,
    /// The service's message; may be empty.
    pub message: String,
    /// The HTTP status.
    pub status: u16,
    /// The SDK's error.
    pub source: Option<BoxError>,
}

/// Codes of AWS services for "slow down".
const THROTTLING: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

/// Codes of AWS services for bad, missing or insufficient credentials.
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

/// Codes of AWS services for a failure on their side.
const SERVICE_FAILURE: &[&str] = &[
    "InternalServerError",
    "InternalServerErrorException",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableError",
    "ServiceUnavailableException",
];

/// Codes of AWS services for a malformed request.
const REJECTED: &[&str] = &[
    "ValidationException",
    "BadRequestException",
    "SerializationException",
];

impl ServiceError {
    /// Classifies the answer by the codes and statuses every AWS service
    /// uses (see the crate docs).
    pub fn classify(self) -> AwsError {
        let ServiceError {
            op,
            code,
            message,
            status,
            source,
        } = self;
        let code_is = |codes: &[&str]| codes.contains(&code.as_str());
        if code_is(THROTTLING) || status == 429 {
            AwsError::Throttled {
                op,
                code,
                message,
                source,
            }
        } else if code_is(DENIED) || matches!(status, 401 | 403) {
            AwsError::Denied { op, code, message }
        } else if code_is(SERVICE_FAILURE) || status >= 500 {
            let code = if code.is_empty() {
                format!("HTTP {status}")
            } else {
                code
            };
            AwsError::ServiceFailure {
                op,
                code,
                message,
                source,
            }
        } else if code_is(REJECTED) || status == 400 {
            AwsError::Rejected { op, code, message }
        } else {
            AwsError::Other {
                op,
                message: format!("{code} (HTTP {status}): {message}"),
                source,
            }
        }
    }
}

/// What an SDK call failed with.
#[derive(Debug)]
pub enum Failure {
    /// The call failed before or without a readable error answer:
    /// classified already.
    Call(AwsError),
    /// The service answered with an error: the backend reads its own codes,
    /// then [`ServiceError::classify`].
    Service(ServiceError),
}

/// Sorts an SDK error of operation `op` (see the crate docs).
pub fn classify<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let call = |e: AwsError| Failure::Call(e);
    match &err {
        SdkError::ConstructionFailure(_) => call(AwsError::Setup {
            op,
            source: Box::new(err),
        }),
        SdkError::TimeoutError(_) => call(AwsError::Timeout {
            op,
            message: "no answer in time".to_owned(),
            source: Some(Box::new(err)),
        }),
        SdkError::DispatchFailure(d) if d.is_timeout() => call(AwsError::Timeout {
            op,
            message: "connecting or sending timed out".to_owned(),
            source: Some(Box::new(err)),
        }),
        // A user error at dispatch is a failed identity (credentials) or
        // endpoint resolution, not an outage.
        SdkError::DispatchFailure(d) if d.is_user() => call(AwsError::Setup {
            op,
            source: Box::new(err),
        }),
        SdkError::DispatchFailure(_) => call(AwsError::Unreachable {
            op,
            source: Box::new(err),
        }),
        // Typically the server hanging up while the body was read: the
        // service's trouble, and every store call is safe to repeat.
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            call(AwsError::ServiceFailure {
                op,
                code: format!("HTTP {status}"),
                message: "unreadable answer".to_owned(),
                source: Some(Box::new(err)),
            })
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("").to_owned();
            let message = service.err().message().unwrap_or("").to_owned();
            Failure::Service(ServiceError {
                op,
                code,
                message,
                status,
                source: Some(Box::new(err)),
            })
        }
        _ => call(AwsError::Other {
            op,
            message: "unexpected SDK error".to_owned(),
            source: Some(Box::new(err)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: &str, status: u16) -> AwsError {
        ServiceError {
            op: "Query",
            code: code.to_owned(),
            message: "m".to_owned(),
            status,
            source: None,
        }
        .classify()
    }

    #[test]
    fn service_answers_map_by_meaning() {
        for (code, status) in [
            ("ThrottlingException", 400),
            ("ProvisionedThroughputExceededException", 400),
            ("", 429),
            ("InternalServerError", 500),
            ("ServiceUnavailableException", 503),
            ("", 502),
        ] {
            let e = answer(code, status);
            assert!(e.is_transient(), "{code} {status}");
            assert!(
                matches!(e.into_store("x"), StoreError::Unavailable { .. }),
                "{code} {status}"
            );
        }
        for (code, status) in [
            ("AccessDeniedException", 400),
            ("ExpiredTokenException", 400),
            ("", 403),
            ("", 401),
        ] {
            assert!(
                matches!(answer(code, status).into_store("x"), StoreError::Config(_)),
                "{code} {status}"
            );
        }
        for (code, status) in [("ValidationException", 400), ("SomethingElse", 400)] {
            assert!(
                matches!(answer(code, status).into_store("x"), StoreError::Invalid(_)),
                "{code} {status}"
            );
        }
        let other = answer("Teapot", 418);
        assert_eq!(other.reason(), "other");
        assert!(matches!(other.into_store(""), StoreError::Other { .. }));
    }

    #[test]
    fn store_errors_carry_context_operation_and_causes() {
        let e = AwsError::Timeout {
            op: "ExecuteStatement",
            message: "connecting or sending timed out".into(),
            source: Some("connect timeout after 1s".into()),
        };
        assert_eq!(e.op(), "ExecuteStatement");
        assert_eq!(e.reason(), "timeout");
        let store = e.into_store("apply (3 changes)");
        assert!(store.is_retryable());
        assert_eq!(
            store.to_string(),
            "store unavailable: apply (3 changes): ExecuteStatement: timed out: \
             connecting or sending timed out: connect timeout after 1s"
        );
        let code = answer("", 503);
        assert!(code.to_string().contains("(HTTP 503)"), "{code}");
    }
}
