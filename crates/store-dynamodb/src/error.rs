//! DynamoDB failures by meaning, and how they map onto [`StoreError`].

use std::error::Error as StdError;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use world_core::store::{BoxError, StoreError};

/// What went wrong talking to DynamoDB. Every variant says which operation
/// failed; none carries credentials (the SDK's errors do not either).
#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    /// The endpoint could not be reached (connection refused or reset, DNS).
    #[error("{op}: DynamoDB is unreachable")]
    Unreachable {
        /// The operation.
        op: &'static str,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// An attempt or the whole operation ran out of time.
    #[error("{op}: timed out")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// The table or account is throttling (after the SDK's retries).
    #[error("{op}: throttled ({code})")]
    Throttled {
        /// The operation.
        op: &'static str,
        /// The service's error code.
        code: String,
        /// The SDK's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The service failed (HTTP 5xx) or answered something unreadable.
    #[error("{op}: service failure ({code})")]
    ServiceFailure {
        /// The operation.
        op: &'static str,
        /// The service's error code or HTTP status.
        code: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// The table does not exist (or is not active).
    #[error("{op}: the table does not exist: {message}")]
    TableMissing {
        /// The operation.
        op: &'static str,
        /// The service's message.
        message: String,
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
    /// The client could not be set up or could not build the request
    /// (no region, no credentials provider, bad endpoint).
    #[error("{op}: cannot build the request")]
    Setup {
        /// The operation.
        op: &'static str,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// An item read back does not have the shape this store writes.
    #[error("unexpected item: {0}")]
    Corrupt(String),
    /// Anything else.
    #[error("{op}: {message}")]
    Other {
        /// The operation.
        op: &'static str,
        /// What happened.
        message: String,
        /// The SDK's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl From<DynamoError> for StoreError {
    fn from(e: DynamoError) -> StoreError {
        match e {
            DynamoError::Unreachable { .. }
            | DynamoError::Timeout { .. }
            | DynamoError::Throttled { .. }
            | DynamoError::ServiceFailure { .. } => StoreError::Unavailable {
                message: e.to_string(),
                source: Some(Box::new(e)),
            },
            DynamoError::TableMissing { .. }
            | DynamoError::Denied { .. }
            | DynamoError::Setup { .. } => StoreError::Config(error_chain(&e)),
            DynamoError::Rejected { .. } => StoreError::Invalid(e.to_string()),
            DynamoError::Corrupt(message) => StoreError::Corrupt(message),
            DynamoError::Other { .. } => StoreError::Other {
                message: e.to_string(),
                source: Some(Box::new(e)),
            },
        }
    }
}

/// `e` and its sources on one line (for errors that become plain strings).
fn error_chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(source) = next {
        out.push_str(": ");
        out.push_str(&source.to_string());
        next = source.source();
    }
    out
}

const THROTTLING: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "Throttling",
    "TooManyRequestsException",
];

const DENIED: &[&str] = &[
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "ExpiredTokenException",
    "IncompleteSignature",
    "InvalidClientTokenId",
];

/// Classifies an SDK error of operation `op`.
pub(crate) fn classify<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> DynamoError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match &err {
        SdkError::ConstructionFailure(_) => DynamoError::Setup {
            op,
            source: Box::new(err),
        },
        SdkError::TimeoutError(_) => DynamoError::Timeout {
            op,
            source: Box::new(err),
        },
        SdkError::DispatchFailure(d) if d.is_timeout() => DynamoError::Timeout {
            op,
            source: Box::new(err),
        },
        // A user error at dispatch is a failed identity (credentials) or
        // endpoint resolution, not an outage.
        SdkError::DispatchFailure(d) if d.is_user() => DynamoError::Setup {
            op,
            source: Box::new(err),
        },
        SdkError::DispatchFailure(_) => DynamoError::Unreachable {
            op,
            source: Box::new(err),
        },
        SdkError::ResponseError(r) => DynamoError::ServiceFailure {
            op,
            code: format!("HTTP {}", r.raw().status().as_u16()),
            source: Box::new(err),
        },
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("").to_owned();
            let message = service.err().message().unwrap_or("").to_owned();
            if THROTTLING.contains(&code.as_str()) {
                DynamoError::Throttled {
                    op,
                    code,
                    source: Some(Box::new(err)),
                }
            } else if code == "ResourceNotFoundException" {
                DynamoError::TableMissing { op, message }
            } else if DENIED.contains(&code.as_str()) || status == 403 {
                DynamoError::Denied { op, code, message }
            } else if status >= 500 || code == "InternalServerError" || code == "ServiceUnavailable"
            {
                let code = if code.is_empty() {
                    format!("HTTP {status}")
                } else {
                    code
                };
                DynamoError::ServiceFailure {
                    op,
                    code,
                    source: Box::new(err),
                }
            } else if status == 400 {
                DynamoError::Rejected { op, code, message }
            } else {
                DynamoError::Other {
                    op,
                    message: format!("{code} (HTTP {status}): {message}"),
                    source: Some(Box::new(err)),
                }
            }
        }
        _ => DynamoError::Other {
            op,
            message: "unexpected SDK error".to_owned(),
            source: Some(Box::new(err)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_retryable_and_mistakes_are_not() {
        let unavailable: StoreError = DynamoError::Throttled {
            op: "Query",
            code: "ThrottlingException".into(),
            source: None,
        }
        .into();
        assert!(unavailable.is_retryable());
        let missing: StoreError = DynamoError::TableMissing {
            op: "Query",
            message: "no table".into(),
        }
        .into();
        assert!(matches!(missing, StoreError::Config(_)));
        let rejected: StoreError = DynamoError::Rejected {
            op: "BatchWriteItem",
            code: "ValidationException".into(),
            message: "too big".into(),
        }
        .into();
        assert!(matches!(rejected, StoreError::Invalid(_)));
    }
}
