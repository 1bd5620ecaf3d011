//! What can go wrong on a bus, by meaning.

use std::error::Error as StdError;

/// The result of a bus call.
pub type BusResult<T> = Result<T, BusError>;

/// Why a bus call failed.
///
/// Only [`BusError::Unavailable`] is worth retrying: the others describe
/// the call or the settings, which a retry does not change. None of the
/// messages holds a password (backends build them from redacted settings).
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The backend cannot be reached now (not connected, connection lost
    /// mid-call, timed out). The bus reconnects by itself; messages of the
    /// failed call may or may not have been delivered.
    #[error("bus unavailable: {message}")]
    Unavailable {
        /// What was being done and what happened.
        message: String,
        /// The backend's error, if any.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
    /// A message or payload that cannot be carried or decoded (not UTF-8
    /// where the backend needs text, a newer envelope version, bad JSON).
    #[error("invalid bus message: {0}")]
    Invalid(String),
    /// A payload larger than [`Bus::max_payload`](crate::Bus::max_payload),
    /// or one item of a batch that does not fit alone.
    #[error("bus payload of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Size of the payload (or of the smallest piece it splits into).
        size: usize,
        /// The backend's limit.
        max: usize,
    },
    /// Unusable settings (malformed URL, bad namespace, TLS files).
    #[error("bus configuration: {0}")]
    Config(String),
    /// The bus was closed; it does not reopen.
    #[error("the bus is closed")]
    Closed,
}

impl BusError {
    /// An [`BusError::Unavailable`] without a source.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// An [`BusError::Unavailable`] caused by `source`.
    pub fn unavailable_from(
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}
