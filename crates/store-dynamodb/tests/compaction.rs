//! Compaction under a reader: a load that read the head, then pages
//! through a snapshot that another server replaces (and, with a zero
//! grace, deletes) meanwhile, notices and reads again instead of
//! returning a chunk with holes.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use store_dynamodb::DynamoStore;
use store_dynamodb::metrics::{COMPACTIONS, FOLDS, READ_RESTARTS};
use world_core::conformance::test_service;
use world_core::store::{Batch, BlockStore, ChangeMeta, Key};
use world_core::{BlockPos, ChunkPos};

fn meta() -> ChangeMeta {
    ChangeMeta {
        user: Some("compaction".into()),
        time_ms: Some(1),
    }
}

/// Holds the second `Query` request until released, blocking the thread
/// that sends it: a reader paging slowly through a chunk.
#[derive(Clone, Debug, Default)]
struct HoldSecondQuery {
    queries: Arc<AtomicUsize>,
    entered: Arc<AtomicBool>,
    released: Arc<AtomicBool>,
}

impl Intercept for HoldSecondQuery {
    fn name(&self) -> &'static str {
        "HoldSecondQuery"
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
        if target.ends_with(".Query") && self.queries.fetch_add(1, Ordering::SeqCst) == 1 {
            self.entered.store(true, Ordering::SeqCst);
            while !self.released.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Block `i` of the big share.
fn pos(i: i32) -> BlockPos {
    BlockPos::new(i % 32, 10 + (i / 32) % 200, i / 6400)
}

/// One small write of one block at `x` on layer 250.
async fn small(store: &DynamoStore, chunk: ChunkPos, x: i32, w: i32) {
    let mut batch = Batch::new();
    batch.set_block(chunk, BlockPos::new(x, 250, 5), w, meta());
    store.apply(&batch).await.expect("apply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_a_compaction_overtook_reads_again() {
    let Some(endpoint) = test_service(common::ENDPOINT_VAR) else {
        return;
    };
    let mut config = common::config(&endpoint, "compaction");
    // A compaction once two log items gathered, a fold of the list once
    // it has two entries.
    config.compact_after = 1;
    config.compact_grace = Duration::ZERO;
    let writer = common::open(config.clone()).await;
    let chunk = ChunkPos::new(0, 0);
    // 4,500 blocks: two log items, compacted at once into a snapshot of
    // two parts.
    let big = 4_500;
    let mut batch = Batch::new();
    for i in 0..big {
        batch.set_block(chunk, pos(i), 1 + i % 200, meta());
    }
    writer.apply(&batch).await.expect("apply");
    small(&writer, chunk, 0, 1).await;
    assert_eq!(writer.counter_total(COMPACTIONS), 1.0);

    // The reader: pages of two items (the head and one snapshot part
    // first, descending), the second page held while the writer compacts
    // again and deletes the parts the reader's head points to.
    let hold = HoldSecondQuery::default();
    let interceptor = hold.clone();
    let mut reader_config = config.clone();
    reader_config.page_size = Some(2);
    reader_config.create = false;
    let reader = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("reader runtime");
        runtime.block_on(async move {
            let store = DynamoStore::open_with(reader_config, |b| {
                common::test_credentials(b).interceptor(interceptor)
            })
            .await
            .expect("open the reader's store");
            let data = store.load_chunk(chunk, 0).await;
            (data, store.counter_total(READ_RESTARTS))
        })
    });
    until("the reader asks for its second page", || {
        hold.entered.load(Ordering::SeqCst)
    })
    .await;
    // Small writes: their list is folded into log items, until two of
    // them make the writer compact again.
    let mut writes = 0;
    while writer.counter_total(COMPACTIONS) < 2.0 {
        assert!(writes < 10, "no second compaction after {writes} writes");
        writes += 1;
        small(&writer, chunk, writes, 2).await;
    }
    assert!(writer.counter_total(FOLDS) >= 1.0);
    hold.released.store(true, Ordering::SeqCst);
    let (data, restarts) = tokio::task::spawn_blocking(move || reader.join())
        .await
        .expect("join")
        .expect("the reader thread");
    let data = data.expect("the read succeeds after reading again");
    assert!(restarts >= 1.0, "the reader never noticed the compaction");
    let blocks: BTreeMap<BlockPos, (i32, Key)> =
        data.blocks.iter().map(|b| (b.pos, (b.w, b.key))).collect();
    assert_eq!(blocks.len(), (big + 1 + writes) as usize);
    assert_eq!(data.head, Key::from(big + 1 + writes));
    assert!(data.blocks.iter().all(|b| b.key <= data.head));
}

/// Items of `chunk` whose sort key starts with `prefix`.
async fn items(table: &str, chunk: ChunkPos, prefix: &str) -> usize {
    let raw = common::raw_client().expect("endpoint");
    raw.query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("c#{}#{}", chunk.p, chunk.q)),
        )
        .expression_attribute_values(
            ":p",
            aws_sdk_dynamodb::types::AttributeValue::S(prefix.into()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("query")
        .items()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_items_stay_for_the_grace_then_go() {
    let Some(endpoint) = test_service(common::ENDPOINT_VAR) else {
        return;
    };
    let mut config = common::config(&endpoint, "compaction");
    config.compact_after = 1;
    config.compact_grace = Duration::from_millis(1500);
    let store = common::open(config.clone()).await;
    let chunk = ChunkPos::new(3, -2);
    // Two log items (4,500 blocks): compacted at once after the write.
    let mut batch = Batch::new();
    for i in 0..4_500 {
        batch.set_block(chunk, pos(i), 1 + i % 100, meta());
    }
    store.apply(&batch).await.expect("apply");
    assert_eq!(store.counter_total(COMPACTIONS), 1.0);
    assert_eq!(items(&config.table, chunk, "f#").await, 2, "the snapshot");
    assert_eq!(
        items(&config.table, chunk, "g#").await,
        2,
        "the folded log items stay for the grace"
    );
    let data = store.load_chunk(chunk, 0).await.expect("load");
    assert_eq!(data.blocks.len(), 4_500);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while items(&config.table, chunk, "g#").await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replaced log items were never deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(items(&config.table, chunk, "f#").await, 2);
    let again = store.load_chunk(chunk, 0).await.expect("load");
    assert_eq!(again.blocks.len(), 4_500);
    assert_eq!(again.head, data.head);
}
