//! [`ForwardingStore`]: the one place that forwards every [`BlockStore`]
//! method to another store, so that decorators (metrics, injected outages,
//! test journals) implement only what they observe or intercept.
//!
//! A new trait method is forwarded here once (and named in [`StoreCall`]);
//! every decorator gets it without an edit.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::coords::ChunkPos;

use super::{
    ApplyReceipt, Batch, BlockStore, ChunkData, ChunkHead, DraftChange, HistoryEntry, HistoryQuery,
    Key, PlayerRecord, StoreCounter, StoreError, StoreResult,
};

/// One call of [`BlockStore`], with its arguments, as a
/// [`ForwardingStore`] sees it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum StoreCall<'a> {
    /// [`BlockStore::load_chunk`].
    LoadChunk {
        /// The chunk.
        chunk: ChunkPos,
        /// The key the caller holds.
        since: Key,
    },
    /// [`BlockStore::apply`].
    Apply(&'a Batch),
    /// [`BlockStore::changed_chunks`].
    ChangedChunks(&'a [ChunkHead]),
    /// [`BlockStore::list_chunks`].
    ListChunks,
    /// [`BlockStore::load_player`].
    LoadPlayer(&'a str),
    /// [`BlockStore::save_players`].
    SavePlayers(&'a [PlayerRecord]),
    /// [`BlockStore::load_draft`], with the owner.
    LoadDraft(&'a str),
    /// [`BlockStore::put_draft`], with the owner and the changes.
    PutDraft(&'a str, &'a [DraftChange]),
    /// [`BlockStore::delete_draft`], with the owner.
    DeleteDraft(&'a str),
    /// [`BlockStore::ping`].
    Ping,
    /// [`BlockStore::close`].
    Close,
    /// [`BlockStore::history`].
    History(&'a HistoryQuery),
    /// [`BlockStore::prune_history`].
    PruneHistory {
        /// Entries older than this go.
        older_than_ms: i64,
        /// Entries beyond this many go.
        max_rows: Option<u64>,
    },
}

impl StoreCall<'_> {
    /// The method's name (`load_chunk`, `apply`, ...), for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            StoreCall::LoadChunk { .. } => "load_chunk",
            StoreCall::Apply(_) => "apply",
            StoreCall::ChangedChunks(_) => "changed_chunks",
            StoreCall::ListChunks => "list_chunks",
            StoreCall::LoadPlayer(_) => "load_player",
            StoreCall::SavePlayers(_) => "save_players",
            StoreCall::LoadDraft(_) => "load_draft",
            StoreCall::PutDraft(..) => "put_draft",
            StoreCall::DeleteDraft(_) => "delete_draft",
            StoreCall::Ping => "ping",
            StoreCall::Close => "close",
            StoreCall::History(_) => "history",
            StoreCall::PruneHistory { .. } => "prune_history",
        }
    }
}

/// A store that passes every call on to [`target`](Self::target), with
/// hooks around the calls. Every `ForwardingStore` is a [`BlockStore`]
/// (a blanket implementation does the forwarding), so a decorator only
/// writes the hooks it needs:
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use world_core::store::{BlockStore, ForwardingStore, MemoryStore, StoreCall, StoreError, StoreResult};
///
/// /// A store that can be switched off.
/// #[derive(Debug, Default)]
/// struct Switchable {
///     inner: MemoryStore,
///     down: AtomicBool,
/// }
///
/// #[async_trait::async_trait]
/// impl ForwardingStore for Switchable {
///     fn target(&self) -> &dyn BlockStore {
///         &self.inner
///     }
///     async fn before(&self, _call: StoreCall<'_>) -> StoreResult<()> {
///         if self.down.load(Ordering::SeqCst) {
///             return Err(StoreError::Unavailable { message: "off".into(), source: None });
///         }
///         Ok(())
///     }
/// }
/// ```
///
/// [`BlockStore::backend`] and [`BlockStore::counters`] are the target's
/// and have no hooks (they are not calls to the store).
#[async_trait]
pub trait ForwardingStore: Send + Sync + Debug {
    /// The store every call goes to.
    fn target(&self) -> &dyn BlockStore;

    /// Runs before `call` reaches the target. An error fails the call
    /// without reaching the target (and without [`after`](Self::after)).
    async fn before(&self, call: StoreCall<'_>) -> StoreResult<()> {
        let _ = call;
        Ok(())
    }

    /// Runs when the target has answered `call`, which took `elapsed`;
    /// `outcome` is the answer without its value.
    fn after(&self, call: StoreCall<'_>, elapsed: Duration, outcome: Result<(), &StoreError>) {
        let _ = (call, elapsed, outcome);
    }
}

/// `before`, the target's call, `after`.
async fn forward<S, T>(
    store: &S,
    call: StoreCall<'_>,
    target_call: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T>
where
    S: ForwardingStore + ?Sized,
{
    store.before(call).await?;
    let started = Instant::now();
    let result = target_call.await;
    store.after(call, started.elapsed(), result.as_ref().map(drop));
    result
}

#[async_trait]
impl<S: ForwardingStore> BlockStore for S {
    fn backend(&self) -> &'static str {
        self.target().backend()
    }

    async fn load_chunk(&self, chunk: ChunkPos, since: Key) -> StoreResult<ChunkData> {
        let call = StoreCall::LoadChunk { chunk, since };
        forward(self, call, self.target().load_chunk(chunk, since)).await
    }

    async fn apply(&self, batch: &Batch) -> StoreResult<ApplyReceipt> {
        forward(self, StoreCall::Apply(batch), self.target().apply(batch)).await
    }

    async fn changed_chunks(&self, held: &[ChunkHead]) -> StoreResult<Vec<ChunkHead>> {
        let call = StoreCall::ChangedChunks(held);
        forward(self, call, self.target().changed_chunks(held)).await
    }

    async fn list_chunks(&self) -> StoreResult<Vec<ChunkHead>> {
        forward(self, StoreCall::ListChunks, self.target().list_chunks()).await
    }

    async fn load_player(&self, name: &str) -> StoreResult<Option<PlayerRecord>> {
        let call = StoreCall::LoadPlayer(name);
        forward(self, call, self.target().load_player(name)).await
    }

    async fn save_players(&self, players: &[PlayerRecord]) -> StoreResult<()> {
        let call = StoreCall::SavePlayers(players);
        forward(self, call, self.target().save_players(players)).await
    }

    async fn load_draft(&self, owner: &str) -> StoreResult<Vec<DraftChange>> {
        let call = StoreCall::LoadDraft(owner);
        forward(self, call, self.target().load_draft(owner)).await
    }

    async fn put_draft(&self, owner: &str, changes: &[DraftChange]) -> StoreResult<()> {
        let call = StoreCall::PutDraft(owner, changes);
        forward(self, call, self.target().put_draft(owner, changes)).await
    }

    async fn delete_draft(&self, owner: &str) -> StoreResult<()> {
        let call = StoreCall::DeleteDraft(owner);
        forward(self, call, self.target().delete_draft(owner)).await
    }

    fn counters(&self) -> Vec<StoreCounter> {
        self.target().counters()
    }

    async fn ping(&self) -> StoreResult<()> {
        forward(self, StoreCall::Ping, self.target().ping()).await
    }

    async fn close(&self) -> StoreResult<()> {
        forward(self, StoreCall::Close, self.target().close()).await
    }

    fn keeps_history(&self) -> bool {
        self.target().keeps_history()
    }

    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<HistoryEntry>> {
        let call = StoreCall::History(query);
        forward(self, call, self.target().history(query)).await
    }

    async fn prune_history(&self, older_than_ms: i64, max_rows: Option<u64>) -> StoreResult<u64> {
        let call = StoreCall::PruneHistory {
            older_than_ms,
            max_rows,
        };
        let target_call = self.target().prune_history(older_than_ms, max_rows);
        forward(self, call, target_call).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::coords::BlockPos;
    use crate::store::{ChangeMeta, MemoryStore};

    /// Refuses `apply` and notes what reached the target.
    #[derive(Debug, Default)]
    struct Probe {
        inner: MemoryStore,
        seen: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl ForwardingStore for Probe {
        fn target(&self) -> &dyn BlockStore {
            &self.inner
        }

        async fn before(&self, call: StoreCall<'_>) -> StoreResult<()> {
            match call {
                StoreCall::Apply(batch) if batch.len() > 1 => {
                    Err(StoreError::Invalid("too big for the probe".into()))
                }
                _ => Ok(()),
            }
        }

        fn after(&self, call: StoreCall<'_>, _: Duration, outcome: Result<(), &StoreError>) {
            let kind = outcome.err().map_or("ok", StoreError::kind);
            let entry = format!("{} {kind}", call.name());
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(entry);
        }
    }

    #[tokio::test]
    async fn every_call_is_forwarded_between_the_hooks() {
        let probe = Probe::default();
        let store: &dyn BlockStore = &probe;
        let chunk = ChunkPos::new(0, 0);
        let mut one = Batch::new();
        one.set_block(chunk, BlockPos::new(1, 1, 1), 3, ChangeMeta::default());
        let mut two = one.clone();
        two.set_block(chunk, BlockPos::new(2, 1, 1), 3, ChangeMeta::default());

        assert_eq!(store.backend(), "memory");
        store.apply(&one).await.expect("apply");
        assert!(matches!(
            store.apply(&two).await,
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(
            store.load_chunk(chunk, 0).await.expect("load").blocks.len(),
            1
        );
        store.changed_chunks(&[]).await.expect("changed");
        store.list_chunks().await.expect("list");
        store.load_player("ann").await.expect("load player");
        store.save_players(&[]).await.expect("save players");
        store.put_draft("ann", &[]).await.expect("put draft");
        store.load_draft("ann").await.expect("load draft");
        store.delete_draft("ann").await.expect("delete draft");
        store.ping().await.expect("ping");
        assert!(store.keeps_history());
        let query = HistoryQuery::at(BlockPos::new(1, 1, 1), 5);
        store.history(&query).await.expect("history");
        store.prune_history(0, None).await.expect("prune");
        store.close().await.expect("close");
        assert!(matches!(store.ping().await, Err(StoreError::Closed)));
        assert!(!store.counters().is_empty(), "the target's counters");

        let seen = probe.seen.lock().expect("seen").clone();
        assert_eq!(
            seen,
            [
                "apply ok",
                "load_chunk ok",
                "changed_chunks ok",
                "list_chunks ok",
                "load_player ok",
                "save_players ok",
                "put_draft ok",
                "load_draft ok",
                "delete_draft ok",
                "ping ok",
                "history ok",
                "prune_history ok",
                "close ok",
                "ping closed",
            ]
        );
    }
}
