//! DynamoDB failures by meaning, and how they map onto [`StoreError`].
//!
//! SDK failures are sorted by `aws-common` (shared with the Data API
//! backend: outages, timeouts and throttling are `Unavailable`, credentials
//! `Config`, malformed requests `Invalid`); DynamoDB's own meanings are a
//! missing table (`Config`) and an item this store cannot read (`Corrupt`).

use aws_common::{AwsError, Failure};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use world_core::store::{StoreError, error_chain};

/// What went wrong talking to DynamoDB. Every variant but `Corrupt` says
/// which operation failed; none carries credentials (the SDK's errors do
/// not either).
#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    /// A failed call (unreachable, timed out, throttled, denied, ...).
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The table does not exist (or is not active).
    #[error("{op}: the table does not exist: {message}")]
    TableMissing {
        /// The operation.
        op: &'static str,
        /// The service's message.
        message: String,
    },
    /// An item read back does not have the shape this store writes.
    #[error("unexpected item: {0}")]
    Corrupt(String),
    /// A chunk kept changing under its reads (compactions): retryable.
    #[error("read: {0}")]
    Unavailable(String),
}

impl DynamoError {
    /// The operation that failed (`decode` for an unreadable item).
    pub fn op(&self) -> &'static str {
        match self {
            DynamoError::Aws(e) => e.op(),
            DynamoError::TableMissing { op, .. } => op,
            DynamoError::Corrupt(_) => "decode",
            DynamoError::Unavailable(_) => "Query",
        }
    }
}

impl From<DynamoError> for StoreError {
    fn from(e: DynamoError) -> StoreError {
        match e {
            DynamoError::Aws(e) => e.into_store(""),
            DynamoError::TableMissing { .. } => StoreError::Config(error_chain(&e)),
            DynamoError::Corrupt(message) => StoreError::Corrupt(message),
            DynamoError::Unavailable(message) => StoreError::Unavailable {
                message,
                source: None,
            },
        }
    }
}

/// Classifies an SDK error of operation `op`.
pub(crate) fn classify<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> DynamoError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match aws_common::classify(op, err) {
        Failure::Call(e) => e.into(),
        Failure::Service(s) if s.code == "ResourceNotFoundException" => DynamoError::TableMissing {
            op,
            message: s.message,
        },
        Failure::Service(s) => s.classify().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_retryable_and_mistakes_are_not() {
        let unavailable: StoreError = DynamoError::from(AwsError::Throttled {
            op: "Query",
            code: "ThrottlingException".into(),
            message: "slow down".into(),
            source: None,
        })
        .into();
        assert!(unavailable.is_retryable());
        let missing: StoreError = DynamoError::TableMissing {
            op: "Query",
            message: "no table".into(),
        }
        .into();
        assert!(matches!(missing, StoreError::Config(_)));
        let rejected: StoreError = DynamoError::from(AwsError::Rejected {
            op: "BatchWriteItem",
            code: "ValidationException".into(),
            message: "too big".into(),
        })
        .into();
        assert!(matches!(rejected, StoreError::Invalid(_)));
        assert_eq!(DynamoError::Corrupt("x".into()).op(), "decode");
        assert!(StoreError::from(DynamoError::Unavailable("x".into())).is_retryable());
    }
}
