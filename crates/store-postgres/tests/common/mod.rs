//! Shared test helpers: a schema per test on `CRAFT_TEST_POSTGRES_URL`,
//! dropped when the store is dropped.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use store_postgres::{Config, ConfigBuilder, PostgresStore};
use world_core::coords::ChunkPos;
use world_core::store::{
    ApplyReceipt, Batch, ChunkData, ChunkHead, Key, PlayerRecord, StoreCounter,
};
use world_core::{BlockStore, StoreResult};

/// The test database URL, or `None` to skip.
pub fn url() -> Option<String> {
    world_core::conformance::test_service("CRAFT_TEST_POSTGRES_URL")
}

/// A name unique to this process and call: `{tag}_{pid}_{n}_{nanos}`.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "t_{tag}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Settings for tests: small pool, short timeouts, no environment.
pub fn builder(url: &str, schema: &str) -> ConfigBuilder {
    Config::builder()
        .url(url)
        .schema(schema)
        .application_name(schema)
        .pool_size(3usize)
        .connect_timeout(Duration::from_secs(5))
        .statement_timeout(Duration::from_secs(20))
}

/// An administrative connection (no TLS) to `url`.
pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Drops `schema` from a thread of its own (usable from `Drop`).
pub fn drop_schema(url: &str, schema: &str) {
    let url = url.to_owned();
    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    let done = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if let Ok((client, connection)) =
                tokio_postgres::connect(&url, tokio_postgres::NoTls).await
            {
                tokio::spawn(connection);
                let _ = client.batch_execute(&sql).await;
            }
        });
    });
    let _ = done.join();
}

/// A store on a fresh schema, whose schema is dropped with it.
#[derive(Debug)]
pub struct TestStore {
    pub store: PostgresStore,
    pub url: String,
    pub schema: String,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        drop_schema(&self.url, &self.schema);
    }
}

/// A store on a new schema named after `tag`, or `None` to skip.
pub async fn fresh(tag: &str) -> Option<TestStore> {
    let url = url()?;
    let schema = unique(tag);
    let config = builder(&url, &schema).build().expect("test config");
    let store = PostgresStore::open(config).await.expect("open store");
    Some(TestStore { store, url, schema })
}

/// `fresh` as the conformance suite wants it.
pub async fn fresh_dyn() -> Option<Arc<dyn BlockStore>> {
    fresh("conf")
        .await
        .map(|s| Arc::new(s) as Arc<dyn BlockStore>)
}

#[async_trait]
impl BlockStore for TestStore {
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

/// The value of counter `name{op=op}`.
pub fn counter(store: &dyn BlockStore, name: &str, op: &str) -> f64 {
    store
        .counters()
        .iter()
        .find(|c| c.name == name && c.labels.iter().any(|(k, v)| *k == "op" && v == op))
        .map_or(0.0, |c| c.value)
}
