//! Moving a world between stores, and proving it arrived whole.
//!
//! - [`copy`]: `craft-server import`, every block (mirrors included), light
//!   and sign, chunk reads concurrent up to [`Options::concurrency`], writes
//!   in large batches;
//! - [`digest`]: what "the same chunk" means (contents without keys, which
//!   are each store's own) and a digest of it;
//! - [`verify`]: `craft-server verify` and `import --verify`, a chunk by
//!   chunk comparison with a report of what differs;
//! - [`online`]: `import --online`, copying while servers keep writing to
//!   the source, then catching up through chunk keys until nothing is left;
//! - [`progress`]: a bar or plain lines, with an ETA.
//!
//! Luanti's migration once produced a blank world unnoticed: the point of
//! this module is that a copy is compared value by value, not counted.

pub mod copy;
pub mod digest;
pub mod online;
pub mod progress;
pub mod verify;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tracing::warn;
use world_core::store::ChunkData;
use world_core::{BlockStore, ChunkPos, StoreError, StoreResult};

use crate::config::StoreUrl;
use crate::stores::{self, OpenError};

pub use progress::ProgressMode;
pub use verify::Report;

/// Attempts of a store call that fails with a retryable error (a
/// failover, throttling, a timeout) before the migration gives up.
const ATTEMPTS: u32 = 5;

/// First pause before another attempt; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Runs `call` until it succeeds, fails for good, or [`ATTEMPTS`] are
/// spent. Every call a migration makes may be repeated: reads change
/// nothing, and re-applying a batch leaves the same values.
pub(crate) async fn with_retries<T, F, Fut>(what: &str, mut call: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                warn!(attempt, error = %e, "{what} failed; trying again");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Chunk reads in flight at once, per store, unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Rows per batch written to the destination.
pub const DEFAULT_BATCH_ROWS: usize = 50_000;

/// One side of a migration: a store and the name it is reported by.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The URL with its secrets hidden.
    pub name: String,
    /// The store.
    pub store: Arc<dyn BlockStore>,
}

impl Endpoint {
    /// Opens the store `url` names.
    pub async fn open(url: &StoreUrl) -> Result<Self, MigrateError> {
        Ok(Self {
            name: url.redacted(),
            store: stores::open(url).await?,
        })
    }

    /// Closes the store.
    pub async fn close(&self) -> Result<(), MigrateError> {
        self.store
            .close()
            .await
            .map_err(|source| MigrateError::Close {
                store: self.name.clone(),
                source,
            })
    }

    async fn list(&self) -> Result<Vec<world_core::store::ChunkHead>, MigrateError> {
        with_retries("listing chunks", || self.store.list_chunks())
            .await
            .map_err(|source| MigrateError::List {
                store: self.name.clone(),
                source,
            })
    }

    /// Reads `chunks` whole, up to `concurrency` at a time, in completion
    /// order: one store call per chunk, never per block.
    fn read_all(
        &self,
        chunks: Vec<ChunkPos>,
        concurrency: usize,
    ) -> impl Stream<Item = Result<(ChunkPos, ChunkData), MigrateError>> + Send + 'static {
        let this = self.clone();
        futures::stream::iter(chunks)
            .map(move |chunk| {
                let this = this.clone();
                async move {
                    with_retries("reading a chunk", || this.store.load_chunk(chunk, 0))
                        .await
                        .map(|data| (chunk, data))
                        .map_err(|source| MigrateError::Read {
                            store: this.name.clone(),
                            chunk,
                            source,
                        })
                }
            })
            .buffer_unordered(concurrency.max(1))
    }
}

/// How a migration reads, writes and reports.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Chunk reads in flight at once, per store.
    pub concurrency: usize,
    /// Rows per batch written to the destination.
    pub batch_rows: usize,
    /// Where progress goes.
    pub progress: ProgressMode,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            batch_rows: DEFAULT_BATCH_ROWS,
            progress: ProgressMode::Auto,
        }
    }
}

/// Why a migration or comparison failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A store could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Listing a store's chunks failed.
    #[error("cannot list the chunks of {store}: {source}")]
    List {
        /// The store, secrets hidden.
        store: String,
        /// Why.
        source: StoreError,
    },
    /// Reading a chunk failed.
    #[error("cannot read chunk {chunk} from {store}: {source}")]
    Read {
        /// The store, secrets hidden.
        store: String,
        /// The chunk.
        chunk: ChunkPos,
        /// Why.
        source: StoreError,
    },
    /// Writing a batch failed.
    #[error("cannot write to {store}: {source}")]
    Write {
        /// The store, secrets hidden.
        store: String,
        /// Why.
        source: StoreError,
    },
    /// Closing a store failed (the last writes may not be durable).
    #[error("cannot close {store}: {source}")]
    Close {
        /// The store, secrets hidden.
        store: String,
        /// Why.
        source: StoreError,
    },
    /// The stores hold different worlds; the report says where and how.
    #[error("{0}")]
    Differs(Box<Report>),
    /// The task writing to the destination ended without an answer.
    #[error("the writer task failed: {0}")]
    Writer(String),
}

impl MigrateError {
    /// The process exit code for this error: 3 when the stores differ (the
    /// comparison itself worked), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Differs(_) => 3,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn retryable_failures_are_tried_again_and_others_are_not() {
        let calls = AtomicU32::new(0);
        let got = with_retries("test", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(StoreError::unavailable("down", std::io::Error::other("x")))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(got.expect("third attempt"), 2);

        calls.store(0, Ordering::SeqCst);
        let got: StoreResult<()> = with_retries("test", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(StoreError::Invalid("bad".into())) }
        })
        .await;
        assert!(got.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
