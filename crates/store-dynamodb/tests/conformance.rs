//! The backend conformance suite against moto_server, each check on its own
//! freshly created table. Each check prints the requests and capacity it
//! used when its store is dropped (`cargo test -- --nocapture`).

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use store_dynamodb::DynamoStore;
use store_dynamodb::metrics::{CONSUMED_RCU, CONSUMED_WCU, ESTIMATED_RCU, ESTIMATED_WCU, REQUESTS};
use world_core::BlockStore;
use world_core::ChunkPos;
use world_core::store::{
    ApplyReceipt, Batch, ChunkData, ChunkHead, Key, PlayerRecord, StoreCounter, StoreResult,
};

/// The store, reporting what it consumed when the check is over.
#[derive(Debug)]
struct Reporting {
    check: String,
    store: DynamoStore,
}

impl Drop for Reporting {
    fn drop(&mut self) {
        let s = &self.store;
        eprintln!(
            "capacity {:<45} requests {:>5}  reported RCU {:>6.1} WCU {:>6.1}  estimated RCU {:>6.1} WCU {:>8.1}",
            self.check,
            s.counter_total(REQUESTS),
            s.counter_total(CONSUMED_RCU),
            s.counter_total(CONSUMED_WCU),
            s.counter_total(ESTIMATED_RCU),
            s.counter_total(ESTIMATED_WCU),
        );
    }
}

#[async_trait]
impl BlockStore for Reporting {
    fn backend(&self) -> &'static str {
        self.store.backend()
    }
    async fn load_chunk(&self, chunk: ChunkPos, since: Key) -> StoreResult<ChunkData> {
        self.store.load_chunk(chunk, since).await
    }
    async fn apply(&self, batch: &Batch) -> StoreResult<ApplyReceipt> {
        self.store.apply(batch).await
    }
    async fn changed_chunks(&self, held: &[ChunkHead]) -> StoreResult<Vec<ChunkHead>> {
        self.store.changed_chunks(held).await
    }
    async fn list_chunks(&self) -> StoreResult<Vec<ChunkHead>> {
        self.store.list_chunks().await
    }
    async fn load_player(&self, name: &str) -> StoreResult<Option<PlayerRecord>> {
        self.store.load_player(name).await
    }
    async fn save_players(&self, players: &[PlayerRecord]) -> StoreResult<()> {
        self.store.save_players(players).await
    }
    fn counters(&self) -> Vec<StoreCounter> {
        self.store.counters()
    }
    async fn ping(&self) -> StoreResult<()> {
        self.store.ping().await
    }
    async fn close(&self) -> StoreResult<()> {
        self.store.close().await
    }
}

async fn fresh() -> Option<Arc<dyn BlockStore>> {
    let store = common::fresh_store("conformance").await?;
    // The test harness names each test's thread after the test.
    let check = std::thread::current().name().unwrap_or("?").to_owned();
    Some(Arc::new(Reporting { check, store }))
}

world_core::conformance_tests!(fresh);
