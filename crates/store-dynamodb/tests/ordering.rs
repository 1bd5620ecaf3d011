//! "Keys become visible in order" with several writers, crashed writers
//! (reservations never committed), abandoned reservations and writers
//! taken for crashed while they were only slow.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{Builder, ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::AttributeValue;
use store_dynamodb::metrics::{REWRITES, SKIPPED};
use store_dynamodb::{Config, DynamoStore, pack, schema};
use world_core::conformance::test_service;
use world_core::store::{Batch, BlockStore, ChangeMeta, ChunkHead, Key, StoredBlock};
use world_core::{BlockPos, ChunkPos};

fn meta() -> ChangeMeta {
    ChangeMeta {
        user: Some("ordering".into()),
        time_ms: Some(1),
    }
}

const HOUR_MS: i64 = 3_600_000;

/// Waits (polling, with a generous deadline) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What a crashed writer leaves: keys reserved on the head at time
/// `reserved_at`, maybe some of its blocks (each in a log item of its
/// own), never a commit.
async fn crashed_writer(
    table: &str,
    chunk: ChunkPos,
    count: Key,
    reserved_at: i64,
    blocks: &[(BlockPos, Key)],
) {
    let raw = common::raw_client().expect("endpoint");
    let pk = format!("c#{}#{}", chunk.p, chunk.q);
    raw.update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.clone()))
        .key("sk", AttributeValue::S("h".into()))
        .update_expression("ADD r :n SET c = if_not_exists(c, :zero), rt = :t")
        .expression_attribute_values(":n", AttributeValue::N(count.to_string()))
        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
        .expression_attribute_values(":t", AttributeValue::N(reserved_at.to_string()))
        .send()
        .await
        .expect("reserve");
    for (pos, k) in blocks {
        let data = pack::encode(&[StoredBlock {
            pos: *pos,
            w: 9,
            key: *k,
        }]);
        raw.put_item()
            .table_name(table)
            .set_item(Some(schema::log_item(&pk, *k, data)))
            .send()
            .await
            .expect("a crashed writer's block");
    }
}

async fn store_with(
    stuck_after: Duration,
    customize: impl FnOnce(Builder) -> Builder,
) -> Option<DynamoStore> {
    let endpoint = test_service(common::ENDPOINT_VAR)?;
    let mut config: Config = common::config(&endpoint, "ordering");
    config.stuck_after = stuck_after;
    Some(
        DynamoStore::open_with(config, |b| customize(common::test_credentials(b)))
            .await
            .expect("open"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_writers_reservation_is_skipped_by_the_next_writer() {
    let Some(store) = store_with(Duration::from_millis(300), |b| b).await else {
        return;
    };
    let chunk = ChunkPos::new(0, 0);
    // Keys 1..=5 reserved, only key 3 written, then the writer died. Its
    // clock ran an hour ahead: readers, going by head times, must not
    // take the reservation for stuck however slow this machine is; the
    // next writer skips it after stuck_after on its own clock.
    crashed_writer(
        store.table(),
        chunk,
        5,
        now_ms() + HOUR_MS,
        &[(BlockPos::new(1, 1, 1), 3)],
    )
    .await;
    assert_eq!(
        store.load_chunk(chunk, 0).await.expect("load").head,
        0,
        "nothing is committed yet"
    );

    let mut batch = Batch::new();
    batch.set_block(chunk, BlockPos::new(2, 2, 2), 4, meta());
    let receipt = store
        .apply(&batch)
        .await
        .expect("apply waits, then skips the dead reservation");
    assert_eq!((receipt.chunks[0].before, receipt.chunks[0].after), (5, 6));
    assert!(store.counter_total(SKIPPED) >= 1.0);
    let data = store.load_chunk(chunk, 0).await.expect("load");
    assert_eq!(data.head, 6);
    let keys: BTreeMap<BlockPos, Key> = data.blocks.iter().map(|b| (b.pos, b.key)).collect();
    assert_eq!(
        keys,
        BTreeMap::from([(BlockPos::new(1, 1, 1), 3), (BlockPos::new(2, 2, 2), 6)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_repair_a_reservation_nobody_will_commit() {
    // An hour: "fresh" and "stuck" are far apart, whatever the load.
    let Some(store) = store_with(Duration::from_secs(3600), |b| b).await else {
        return;
    };
    let a = ChunkPos::new(1, 0);
    let b = ChunkPos::new(2, 0);
    let long_ago = now_ms() - 2 * HOUR_MS;
    crashed_writer(
        store.table(),
        a,
        4,
        long_ago,
        &[(BlockPos::new(33, 1, 1), 2)],
    )
    .await;
    crashed_writer(store.table(), b, 2, long_ago, &[]).await;
    let data = store.load_chunk(a, 0).await.expect("load");
    assert_eq!(
        data.head, 4,
        "a silent reservation older than stuck_after is skipped by readers"
    );
    assert_eq!(data.blocks.len(), 1);
    let changed = store
        .changed_chunks(&[
            ChunkHead { chunk: a, head: 4 },
            ChunkHead { chunk: b, head: 0 },
        ])
        .await
        .expect("changed");
    assert_eq!(changed, vec![ChunkHead { chunk: b, head: 2 }]);

    // A fresh reservation is not touched.
    let c = ChunkPos::new(3, 0);
    crashed_writer(store.table(), c, 3, now_ms(), &[]).await;
    assert_eq!(store.load_chunk(c, 0).await.expect("load").head, 0);
}

/// Fails every `BatchWriteItem` while set.
#[derive(Debug)]
struct FailWrites(Arc<AtomicBool>);

impl Intercept for FailWrites {
    fn name(&self) -> &'static str {
        "FailWrites"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("");
        if self.0.load(Ordering::SeqCst) && target.ends_with(".BatchWriteItem") {
            return Err("injected failure".into());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_skips_its_own_abandoned_reservation_at_once() {
    let fail = Arc::new(AtomicBool::new(false));
    let interceptor = FailWrites(fail.clone());
    // stuck_after is far longer than the test: only the store's knowledge
    // of its own abandoned reservation can move the head.
    let Some(store) = store_with(Duration::from_secs(3600), |b| b.interceptor(interceptor)).await
    else {
        return;
    };
    let chunk = ChunkPos::new(5, 5);
    let mut first = Batch::new();
    first.set_block(chunk, BlockPos::new(160, 3, 160), 1, meta());
    store.apply(&first).await.expect("apply");
    fail.store(true, Ordering::SeqCst);
    // Large enough for log items (a small share is one UpdateItem: it
    // either happens whole or reserves nothing).
    let n = LARGE;
    let second = large(chunk, 2);
    assert!(
        store.apply(&second).await.is_err(),
        "the injected failure must surface"
    );
    fail.store(false, Ordering::SeqCst);
    let data = store.load_chunk(chunk, 0).await.expect("load");
    assert_eq!(data.head, 1 + n, "the abandoned keys 2..=1+n are skipped");
    let receipt = store.apply(&second).await.expect("the retried batch");
    assert_eq!(
        (receipt.chunks[0].before, receipt.chunks[0].after),
        (1 + n, 1 + 2 * n)
    );
    assert_eq!(
        store
            .load_chunk(chunk, 1 + n)
            .await
            .expect("load")
            .blocks
            .len() as Key,
        n
    );

    // And a writer (rather than a reader) does the same.
    fail.store(true, Ordering::SeqCst);
    assert!(store.apply(&second).await.is_err());
    fail.store(false, Ordering::SeqCst);
    let receipt = store.apply(&second).await.expect("the retried batch");
    assert_eq!(
        (receipt.chunks[0].before, receipt.chunks[0].after),
        (1 + 3 * n, 1 + 4 * n)
    );
    assert!(store.counter_total(SKIPPED) >= 2.0);
}

/// Blocks in a share too large for the head's log list.
const LARGE: Key = 200;

/// A share of [`LARGE`] blocks in `chunk`: written as a log item.
fn large(chunk: ChunkPos, w: i32) -> Batch {
    let mut batch = Batch::new();
    for i in 0..LARGE as i32 {
        batch.set_block(
            chunk,
            BlockPos::new(chunk.p * 32 + i % 32, 3 + i / 32, chunk.q * 32),
            w,
            meta(),
        );
    }
    batch
}

/// Holds the first `BatchWriteItem` until released, blocking the thread
/// that sends it: a writer that is alive but slow.
#[derive(Clone, Debug, Default)]
struct HoldWrites {
    entered: Arc<AtomicBool>,
    released: Arc<AtomicBool>,
}

impl Intercept for HoldWrites {
    fn name(&self) -> &'static str {
        "HoldWrites"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("");
        if target.ends_with(".BatchWriteItem") && !self.entered.swap(true, Ordering::SeqCst) {
            while !self.released.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_writer_that_was_skipped_writes_again_under_new_keys() {
    let Some(endpoint) = test_service(common::ENDPOINT_VAR) else {
        return;
    };
    let mut config: Config = common::config(&endpoint, "ordering");
    config.stuck_after = Duration::from_secs(3600);
    // The test's own store (creates the table); the slow writer gets a
    // store of its own on its own thread and runtime, because holding a
    // request blocks the thread that sends it: on the test's runtime that
    // could strand tasks the rest of the test needs.
    let store = DynamoStore::open_with(config.clone(), common::test_credentials)
        .await
        .expect("open");
    let chunk = ChunkPos::new(-4, -4);
    let batch = large(chunk, 5);
    let hold = HoldWrites::default();
    let interceptor = hold.clone();
    let writer = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("writer runtime");
        runtime.block_on(async move {
            let slow = DynamoStore::open_with(config, |b| {
                common::test_credentials(b).interceptor(interceptor)
            })
            .await
            .expect("open the slow writer's store");
            let receipt = slow.apply(&batch).await;
            (receipt, slow.counter_total(REWRITES))
        })
    });
    // While the writer's items are held in flight (its keys 1..=LARGE
    // reserved), someone (a reader that took it for crashed) moves the
    // watermark over them.
    until("the writer sends its items", || {
        hold.entered.load(Ordering::SeqCst)
    })
    .await;
    let raw = common::raw_client().expect("endpoint");
    let skipped = raw
        .update_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S("c#-4#-4".into()))
        .key("sk", AttributeValue::S("h".into()))
        .update_expression("SET c = r, cw = :who")
        .expression_attribute_values(":who", AttributeValue::S("skip".into()))
        .send()
        .await;
    hold.released.store(true, Ordering::SeqCst);
    skipped.expect("skip");
    let (receipt, rewrites) = tokio::task::spawn_blocking(move || writer.join())
        .await
        .expect("join")
        .expect("the writer thread");
    let receipt = receipt.expect("apply");
    assert_eq!(
        (receipt.chunks[0].before, receipt.chunks[0].after),
        (LARGE, 2 * LARGE)
    );
    assert_eq!(rewrites, 1.0);
    let data = store.load_chunk(chunk, LARGE).await.expect("load");
    assert_eq!(
        data.blocks.len() as Key,
        LARGE,
        "everything is visible again above the skipped keys"
    );
}

/// The positions an apply wrote and the head its receipt reported.
type Finished = (Vec<BlockPos>, Key);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_never_see_a_key_before_the_keys_below_it() {
    let Some(endpoint) = test_service(common::ENDPOINT_VAR) else {
        return;
    };
    let mut config: Config = common::config(&endpoint, "ordering");
    // Compact often, so that reads race compactions too.
    config.compact_after = 4;
    let store = Arc::new(common::open(config).await);
    let chunk = ChunkPos::new(7, -7);
    // Completed applies: (positions, receipt.after), appended when each
    // apply returns; readers check those finished before their read began.
    let done: Arc<Mutex<Vec<Finished>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (store, done) = (store.clone(), done.clone());
        writers.push(tokio::spawn(async move {
            for round in 0..8 {
                let mut batch = Batch::new();
                // Mostly small shares (one UpdateItem), some large (log
                // items), so both paths race; 32 writes of one chunk also
                // compact it several times under the reader.
                let count = if (w + round) % 4 == 0 {
                    150 + w
                } else {
                    1 + (w + round) % 30
                };
                let positions: Vec<BlockPos> = (0..count)
                    .map(|i| BlockPos::new(224 + i, 1 + w * 10 + round, -224 + w))
                    .collect();
                for p in &positions {
                    batch.set_block(chunk, *p, 1 + w, meta());
                }
                let receipt = store.apply(&batch).await.expect("apply");
                done.lock()
                    .unwrap()
                    .push((positions, receipt.chunks[0].after));
            }
        }));
    }
    let reader = {
        let (store, done, stop, reads) = (store.clone(), done.clone(), stop.clone(), reads.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let finished = done.lock().unwrap().clone();
                let data = store.load_chunk(chunk, 0).await.expect("load");
                let keys: BTreeMap<BlockPos, Key> =
                    data.blocks.iter().map(|b| (b.pos, b.key)).collect();
                assert!(
                    data.max_block_key() <= data.head,
                    "a key above the head was returned"
                );
                for (positions, after) in finished.iter().filter(|(_, after)| *after <= data.head) {
                    for p in positions {
                        assert!(
                            keys.contains_key(p),
                            "head {} but {p} of an apply ending at {after} is missing",
                            data.head
                        );
                    }
                }
                reads.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    for w in writers {
        w.await.expect("writer");
    }
    stop.store(true, Ordering::SeqCst);
    reader.await.expect("reader");
    assert!(reads.load(Ordering::SeqCst) > 0);
    let data = store.load_chunk(chunk, 0).await.expect("load");
    let total: usize = done.lock().unwrap().iter().map(|(p, _)| p.len()).sum();
    assert_eq!(data.blocks.len(), total);
    assert!(
        store.counter_total(store_dynamodb::metrics::COMPACTIONS) >= 1.0,
        "the chunk was never compacted"
    );
    assert!(store.counter_total(store_dynamodb::metrics::SMALL_SHARES) >= 1.0);
}
