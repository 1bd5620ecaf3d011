//! The one error type every [`BlockStore`](super::BlockStore) returns.

use std::error::Error as StdError;

/// A boxed source error, so that no backend type leaks into the trait.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// What went wrong in a store, by meaning rather than by backend.
///
/// The server only needs to know whether to retry: [`StoreError::is_retryable`]
/// is true for [`StoreError::Unavailable`] and [`StoreError::Conflict`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached, is restarting, throttling or timed out.
    /// Nothing of the failed call is guaranteed to have been applied (nor to
    /// not have been): retrying the same batch is safe because re-applying
    /// a batch is harmless.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What failed, with context.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The request itself is wrong (bad value, oversized text); retrying it
    /// will fail again.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A concurrent writer won a race (deadlock, serialization failure,
    /// failed condition); retrying may succeed.
    #[error("conflict with a concurrent writer: {0}")]
    Conflict(String),
    /// Assigning keys would pass `MAX_KEY` (2147483647), the largest key the
    /// Craft client can hold, in this chunk.
    #[error("chunk ({p}, {q}) has used every key up to 2147483647")]
    KeyExhausted {
        /// Chunk index along x.
        p: i32,
        /// Chunk index along z.
        q: i32,
    },
    /// Stored data does not have the expected shape (unknown schema version,
    /// a value out of range, a corrupt row).
    #[error("unexpected stored data: {0}")]
    Corrupt(String),
    /// The store is misconfigured or lacks permissions (missing table,
    /// access denied, unknown database).
    #[error("store configuration: {0}")]
    Config(String),
    /// The store cannot do this at all (block history on a backend that
    /// does not keep it); retrying will fail again.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The store was closed with [`BlockStore::close`](super::BlockStore::close).
    #[error("the store is closed")]
    Closed,
    /// Anything else, with context.
    #[error("{message}")]
    Other {
        /// What failed, with context.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// An [`StoreError::Unavailable`] error wrapping `source`.
    pub fn unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An [`StoreError::Other`] error wrapping `source`.
    pub fn other(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Other {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Conflict(_))
    }

    /// A short, stable label for metrics (`unavailable`, `invalid`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "unavailable",
            Self::Invalid(_) => "invalid",
            Self::Conflict(_) => "conflict",
            Self::KeyExhausted { .. } => "key_exhausted",
            Self::Corrupt(_) => "corrupt",
            Self::Config(_) => "config",
            Self::Unsupported(_) => "unsupported",
            Self::Closed => "closed",
            Self::Other { .. } => "other",
        }
    }
}

/// `e` and its sources on one line (`outer: inner: root`), for errors that
/// become plain strings. A source whose text the line already holds is not
/// repeated (wrappers often include their source's message).
pub fn error_chain(e: &dyn StdError) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_skip_repeated_sources() {
        let root = std::io::Error::other("connection refused");
        let e = StoreError::unavailable("apply", root);
        assert_eq!(
            error_chain(&e),
            "store unavailable: apply: connection refused"
        );
        let repeated = StoreError::unavailable(
            "apply failed: connection refused",
            std::io::Error::other("connection refused"),
        );
        assert_eq!(
            error_chain(&repeated),
            "store unavailable: apply failed: connection refused"
        );
    }
}
