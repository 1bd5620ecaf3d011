//! Lazy, batched, never-lost writes; loads once per chunk; servers sharing
//! a store see each other's edits.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use support::TestServer;
use world_core::coords::{BlockPos, ChunkPos};
use world_core::store::{ForwardingStore, MemoryStore, StoreCall, StoreResult};
use world_core::{BlockStore, StoreError};

const WAIT: Duration = Duration::from_secs(10);

async fn join(server: &TestServer) -> support::Client {
    let mut client = server.connect().await;
    client.send("V,1").await;
    client.until(WAIT, |l| l.starts_with("N,")).await;
    client
}

/// Waits until the store holds `w` at `pos`.
async fn stored(store: &dyn BlockStore, pos: BlockPos, w: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let data = store.load_chunk(pos.chunk(), 0).await.expect("load");
        if data.blocks.iter().any(|b| b.pos == pos && b.w == w) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn requests(store: &dyn BlockStore, op: &str) -> f64 {
    store
        .counters()
        .iter()
        .filter(|c| c.labels.iter().any(|(_, v)| v == op))
        .map(|c| c.value)
        .sum()
}

#[tokio::test]
async fn accepted_edits_are_stored_in_batches() {
    let store = Arc::new(MemoryStore::new());
    let server = TestServer::start(store.clone(), |c| {
        c.commit_interval = Duration::from_millis(300)
    })
    .await;
    let mut client = join(&server).await;
    for i in 0..20 {
        client.send(&format!("B,{},40,5,5", 100 + i)).await;
    }
    assert!(stored(&*store, BlockPos::new(119, 40, 5), 5, WAIT).await);
    // Twenty edits, a handful of batches (not one write per edit).
    assert!(requests(&*store, "apply") < 10.0, "{:?}", store.counters());
    server.stop().await;
}

#[tokio::test]
async fn a_zero_interval_writes_through() {
    let store = Arc::new(MemoryStore::new());
    let server = TestServer::start(store.clone(), |c| c.commit_interval = Duration::ZERO).await;
    let mut client = join(&server).await;
    client.send("B,5,40,5,7").await;
    assert!(stored(&*store, BlockPos::new(5, 40, 5), 7, WAIT).await);
    server.stop().await;
}

#[tokio::test]
async fn a_chunk_is_loaded_from_the_store_once() {
    let store = Arc::new(MemoryStore::new());
    let server = TestServer::start(store.clone(), |_| {}).await;
    let mut client = join(&server).await;
    for i in 0..5 {
        client.send("C,3,3,0").await;
        client.send(&format!("B,{},40,100,3", 96 + i)).await;
        client.send("L,96,40,100,5").await;
    }
    client.send("C,3,3,0").await;
    client.until(WAIT, |l| l == "C,3,3").await;
    // The last answer comes after the edits, with their keys.
    let answer = client.until(WAIT, |l| l == "C,3,3").await;
    assert!(answer.iter().any(|l| l.starts_with("K,3,3,")), "{answer:?}");
    assert_eq!(
        requests(&*store, "load_chunk"),
        1.0,
        "{:?}",
        store.counters()
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_writes_every_pending_edit() {
    let store = Arc::new(MemoryStore::new());
    // An hour: nothing would be written before the shutdown.
    let server = TestServer::start(store.clone(), |c| {
        c.commit_interval = Duration::from_secs(3600)
    })
    .await;
    let mut client = join(&server).await;
    let mut other = join(&server).await;
    for i in 0..50 {
        client.send(&format!("B,{i},30,-7,4")).await;
    }
    client.send("S,3,30,-7,2,goodbye, world").await;
    other
        .until(WAIT, |l| l.starts_with("S,0,-1,3,30,-7,2,"))
        .await;
    let stop = tokio::spawn(server.stop());
    let warned = other
        .until(WAIT, |l| l.starts_with("T,Game server maintenance"))
        .await;
    assert_eq!(
        warned.last().map(String::as_str),
        Some("T,Game server maintenance is pending - your universe is saved")
    );
    stop.await.expect("stopped");
    store.reopen();
    let data = store
        .load_chunk(ChunkPos::new(0, -1), 0)
        .await
        .expect("load");
    assert_eq!(
        data.blocks.len(),
        32 + 1,
        "x 0..=31 plus the mirror of x = 32"
    );
    assert_eq!(data.signs.len(), 1);
    let next = store
        .load_chunk(ChunkPos::new(1, -1), 0)
        .await
        .expect("load");
    assert_eq!(
        next.blocks.len(),
        18 + 1,
        "x 32..=49 plus the mirror of x = 31"
    );
}

/// The in-memory store, with an outage switch.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    down: AtomicBool,
}

#[async_trait]
impl ForwardingStore for Flaky {
    fn target(&self) -> &dyn BlockStore {
        &self.inner
    }

    async fn before(&self, call: StoreCall<'_>) -> StoreResult<()> {
        if self.down.load(Ordering::SeqCst) && !matches!(call, StoreCall::Close) {
            Err(StoreError::Unavailable {
                message: "switched off by the test".into(),
                source: None,
            })
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn players_keep_playing_through_a_store_outage_and_nothing_is_lost() {
    let store = Arc::new(Flaky::default());
    let server = TestServer::start(store.clone(), |c| {
        c.commit_interval = Duration::from_millis(50)
    })
    .await;
    let mut builder = join(&server).await;
    let mut watcher = join(&server).await;
    builder.send("C,0,0,0").await;
    builder.until(WAIT, |l| l == "C,0,0").await;
    builder.send("B,1,40,1,3").await;
    assert!(stored(&store.inner, BlockPos::new(1, 40, 1), 3, WAIT).await);

    store.down.store(true, Ordering::SeqCst);
    for i in 2..12 {
        builder.send(&format!("B,{i},40,1,3")).await;
    }
    // Edits still reach the others at once.
    watcher.until(WAIT, |l| l == "B,0,0,11,40,1,3").await;
    let deadline = Instant::now() + WAIT;
    while server.shared.health.readiness().is_ok() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.shared.health.readiness(), Err("store unavailable"));
    tokio::time::sleep(Duration::from_millis(500)).await;

    store.down.store(false, Ordering::SeqCst);
    assert!(
        stored(&store.inner, BlockPos::new(11, 40, 1), 3, WAIT).await,
        "retried after the outage"
    );
    let data = store
        .inner
        .load_chunk(ChunkPos::new(0, 0), 0)
        .await
        .expect("load");
    assert_eq!(data.blocks.len(), 11);
    let deadline = Instant::now() + WAIT;
    while server.shared.health.readiness().is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.shared.health.readiness(), Ok(()));
    server.stop().await;
}

#[tokio::test]
async fn servers_sharing_a_store_see_each_others_edits() {
    let memory = Arc::new(MemoryStore::new());
    let store: Arc<dyn BlockStore> = memory.clone();
    let fast = |c: &mut craft_server::Config| {
        c.commit_interval = Duration::from_millis(50);
        c.sync_interval = Duration::from_millis(100);
    };
    let one = TestServer::start(store.clone(), fast).await;
    let two = TestServer::start(store.clone(), fast).await;
    let mut alice = join(&one).await;
    let mut bob = join(&two).await;
    bob.send("C,0,0,0").await;
    bob.until(WAIT, |l| l == "C,0,0").await;
    alice.send("B,3,40,3,9").await;
    alice.send("S,3,40,3,1,from one").await;
    // Bob's server picks the change up and shows it.
    bob.until(WAIT, |l| l == "B,0,0,3,40,3,9").await;
    bob.until(WAIT, |l| l == "S,0,0,3,40,3,1,from one").await;
    // And its answers include it, with a key.
    bob.send("C,0,0,0").await;
    let answer = bob.until(WAIT, |l| l == "C,0,0").await;
    assert!(answer.contains(&"B,0,0,3,40,3,9".to_owned()), "{answer:?}");
    assert!(answer.iter().any(|l| l.starts_with("K,0,0,")));
    // Both edit the same block: the last write wins everywhere.
    bob.send("B,3,40,3,0").await;
    alice.until(WAIT, |l| l == "B,0,0,3,40,3,0").await;
    one.stop().await;
    two.stop().await;
    memory.reopen();
    let data = store
        .load_chunk(ChunkPos::new(0, 0), 0)
        .await
        .expect("load");
    assert!(
        data.blocks
            .iter()
            .any(|b| b.pos == BlockPos::new(3, 40, 3) && b.w == 0)
    );
}
