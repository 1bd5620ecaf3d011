//! DynamoDB's request limits, checked on the requests the store really
//! sends (an SDK interceptor reads each typed request), and the retry of
//! what the service leaves unprocessed (simulated by an interceptor, since
//! moto never leaves anything unprocessed).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextMut, BeforeSerializationInterceptorContextRef,
    FinalizerInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{Builder, ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput};
use aws_sdk_dynamodb::operation::query::QueryInput;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, WriteRequest};
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use store_dynamodb::DynamoStore;
use store_dynamodb::limits::{MAX_BATCH_GET_KEYS, MAX_BATCH_WRITE_ITEMS};
use store_dynamodb::metrics::{
    CONSUMED_RCU, CONSUMED_WCU, ESTIMATED_RCU, ESTIMATED_WCU, REQUESTS, UNPROCESSED,
};
use world_core::conformance::test_service;
use world_core::store::{
    Batch, BlockStore, ChangeMeta, ChunkHead, MAX_KEY, PlayerRecord, StoreError,
};
use world_core::{BlockPos, ChunkPos};

/// What each call carried: `(operation, items or keys)`.
#[derive(Debug, Default)]
struct Seen {
    calls: Mutex<Vec<(&'static str, usize)>>,
    /// Leave the second half of this many batch calls unprocessed.
    starve: Mutex<usize>,
}

impl Seen {
    fn calls(&self, op: &str) -> Vec<usize> {
        let calls = self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        calls
            .iter()
            .filter(|(o, _)| *o == op)
            .map(|(_, n)| *n)
            .collect()
    }
}

#[derive(Debug)]
struct Inspect(Arc<Seen>);

#[derive(Debug, Clone)]
struct HeldBack {
    table: String,
    writes: Vec<WriteRequest>,
    keys: Vec<HashMap<String, AttributeValue>>,
}

impl Storable for HeldBack {
    type Storer = StoreReplace<Self>;
}

impl Intercept for Inspect {
    fn name(&self) -> &'static str {
        "Inspect"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        let seen = if let Some(w) = input.downcast_ref::<BatchWriteItemInput>() {
            Some((
                "BatchWriteItem",
                w.request_items()
                    .map_or(0, |m| m.values().map(Vec::len).sum()),
            ))
        } else if let Some(g) = input.downcast_ref::<BatchGetItemInput>() {
            Some((
                "BatchGetItem",
                g.request_items()
                    .map_or(0, |m| m.values().map(|k| k.keys().len()).sum()),
            ))
        } else if input.downcast_ref::<QueryInput>().is_some() {
            Some(("Query", 0))
        } else {
            None
        };
        if let Some(seen) = seen {
            self.0
                .calls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(seen);
        }
        Ok(())
    }

    /// Takes the second half of a batch out of the request, as if the
    /// service had not processed it...
    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Only batch calls are starved (the reservations before them are
        // not counted).
        let input = context.input();
        if input.downcast_ref::<BatchWriteItemInput>().is_none()
            && input.downcast_ref::<BatchGetItemInput>().is_none()
        {
            return Ok(());
        }
        {
            let mut starve = self
                .0
                .starve
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *starve == 0 {
                return Ok(());
            }
            *starve -= 1;
        }
        let input = context.input_mut();
        let mut held = HeldBack {
            table: String::new(),
            writes: Vec::new(),
            keys: Vec::new(),
        };
        if let Some(w) = input.downcast_mut::<BatchWriteItemInput>() {
            for (table, requests) in w.request_items.iter_mut().flatten() {
                held.table.clone_from(table);
                let half = requests.len() / 2;
                held.writes.extend(requests.drain(half..));
            }
        } else if let Some(g) = input.downcast_mut::<BatchGetItemInput>() {
            for (table, k) in g.request_items.iter_mut().flatten() {
                held.table.clone_from(table);
                let half = k.keys.len() / 2;
                held.keys.extend(k.keys.drain(half..));
            }
        }
        cfg.interceptor_state().store_put(held);
        Ok(())
    }

    /// ...and reports it back as `UnprocessedItems` / `UnprocessedKeys`.
    fn modify_before_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(held) = cfg.load::<HeldBack>().cloned() else {
            return Ok(());
        };
        let Some(Ok(output)) = context.output_or_error_mut() else {
            return Ok(());
        };
        let table = held.table.clone();
        if let Some(w) = output.downcast_mut::<BatchWriteItemOutput>() {
            if !held.writes.is_empty() {
                w.unprocessed_items = Some(HashMap::from([(table.clone(), held.writes.clone())]));
            }
        } else if let Some(g) = output.downcast_mut::<BatchGetItemOutput>()
            && !held.keys.is_empty()
        {
            let keys = KeysAndAttributes::builder()
                .set_keys(Some(held.keys.clone()))
                .build()?;
            g.unprocessed_keys = Some(HashMap::from([(table, keys)]));
        }
        Ok(())
    }
}

async fn inspected(page_size: Option<i32>) -> Option<(DynamoStore, Arc<Seen>)> {
    let endpoint = test_service(common::ENDPOINT_VAR)?;
    let mut config = common::config(&endpoint, "limits");
    config.page_size = page_size;
    let seen = Arc::new(Seen::default());
    let interceptor = Inspect(seen.clone());
    let store = DynamoStore::open_with(config, |b: Builder| {
        common::test_credentials(b).interceptor(interceptor)
    })
    .await
    .expect("open");
    Some((store, seen))
}

fn meta() -> ChangeMeta {
    ChangeMeta {
        user: Some("limits".into()),
        time_ms: Some(1),
    }
}

/// Blocks per chunk in [`sixty_chunks`]: too many for the head's log list,
/// so each chunk's share is a log item.
const PER_CHUNK: i32 = 150;

/// A share of [`PER_CHUNK`] blocks in each of 60 chunks: 60 log items.
fn sixty_chunks(q: i32) -> (Batch, Vec<ChunkPos>) {
    let mut batch = Batch::new();
    let chunks: Vec<ChunkPos> = (0..60).map(|p| ChunkPos::new(p, q)).collect();
    for chunk in &chunks {
        for i in 0..PER_CHUNK {
            batch.set_block(
                *chunk,
                BlockPos::new(chunk.p * 32 + i % 32, 10 + i / 32, chunk.q * 32),
                1 + i % 9,
                meta(),
            );
        }
    }
    (batch, chunks)
}

fn sixty_blocks(chunk: ChunkPos) -> Batch {
    let mut batch = Batch::new();
    for i in 0..60 {
        batch.set_block(
            chunk,
            BlockPos::new(chunk.p * 32 + i % 32, 10 + i / 32, chunk.q * 32),
            1 + i % 9,
            meta(),
        );
    }
    batch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_writes_carry_at_most_25_items() {
    let Some((store, seen)) = inspected(None).await else {
        return;
    };
    let (batch, chunks) = sixty_chunks(1);
    store.apply(&batch).await.expect("apply");
    let writes = seen.calls("BatchWriteItem");
    assert!(
        writes.len() >= 3,
        "60 items need at least 3 calls, saw {writes:?}"
    );
    assert!(
        writes.iter().all(|n| *n <= MAX_BATCH_WRITE_ITEMS),
        "{writes:?}"
    );
    assert_eq!(writes.iter().sum::<usize>(), 60);
    for chunk in [chunks[0], chunks[59]] {
        assert_eq!(
            store.load_chunk(chunk, 0).await.expect("load").blocks.len(),
            PER_CHUNK as usize
        );
    }
    // A small share is one UpdateItem: no BatchWriteItem at all.
    let calls = seen.calls("BatchWriteItem").len();
    store
        .apply(&sixty_blocks(ChunkPos::new(1, 1)))
        .await
        .expect("apply");
    assert_eq!(seen.calls("BatchWriteItem").len(), calls);

    // Players go the same way.
    let players: Vec<PlayerRecord> = (0..30)
        .map(|i| PlayerRecord {
            name: format!("p{i}"),
            x: i as f32,
            y: 0.0,
            z: 0.0,
            rx: 0.0,
            ry: 0.0,
            time_ms: i,
        })
        .collect();
    store.save_players(&players).await.expect("save");
    let writes = seen.calls("BatchWriteItem");
    assert!(
        writes.iter().all(|n| *n <= MAX_BATCH_WRITE_ITEMS),
        "{writes:?}"
    );
    assert_eq!(
        store.load_player("p29").await.expect("load"),
        Some(players[29].clone())
    );

    // Every call asked for its consumed capacity and was counted.
    let requests = store.counter_total(REQUESTS);
    assert!(requests >= 8.0, "{requests}");
    assert!(store.counter_total(CONSUMED_WCU) > 0.0);
    assert!(store.counter_total(ESTIMATED_WCU) >= 60.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_gets_carry_at_most_100_keys() {
    let Some((store, seen)) = inspected(None).await else {
        return;
    };
    let mut batch = Batch::new();
    let chunks: Vec<ChunkPos> = (0..250).map(|i| ChunkPos::new(i, -i)).collect();
    for c in &chunks {
        batch.set_block(*c, BlockPos::new(c.p * 32, 5, c.q * 32), 2, meta());
    }
    let receipt = store.apply(&batch).await.expect("apply");
    assert_eq!(receipt.chunks.len(), 250);
    let held: Vec<ChunkHead> = chunks
        .iter()
        .map(|c| ChunkHead { chunk: *c, head: 0 })
        .collect();
    let changed = store.changed_chunks(&held).await.expect("changed");
    assert_eq!(changed.len(), 250);
    let gets = seen.calls("BatchGetItem");
    assert!(gets.len() >= 3, "{gets:?}");
    assert!(gets.iter().all(|n| *n <= MAX_BATCH_GET_KEYS), "{gets:?}");
    assert!(store.counter_total(CONSUMED_RCU) + store.counter_total(ESTIMATED_RCU) > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprocessed_items_and_keys_are_sent_again() {
    let Some((store, seen)) = inspected(None).await else {
        return;
    };
    let (batch, chunks) = sixty_chunks(4);
    let chunk = chunks[59];
    *seen.starve.lock().unwrap() = 4;
    let receipt = store.apply(&batch).await.expect("apply");
    assert!(
        store.counter_total(UNPROCESSED) > 0.0,
        "nothing was left unprocessed"
    );
    let writes = seen.calls("BatchWriteItem");
    assert!(
        writes.len() > 3,
        "unprocessed items were not sent again: {writes:?}"
    );
    for (i, chunk) in chunks.iter().enumerate() {
        let data = store.load_chunk(*chunk, 0).await.expect("load");
        assert_eq!(
            data.blocks.len(),
            PER_CHUNK as usize,
            "an unprocessed item was lost"
        );
        assert_eq!(data.head, receipt.chunks[i].after);
    }
    let data = store.load_chunk(chunk, 0).await.expect("load");

    let before = store.counter_total(UNPROCESSED);
    *seen.starve.lock().unwrap() = 1;
    let held = [
        ChunkHead { chunk, head: 0 },
        ChunkHead {
            chunk: ChunkPos::new(9, 9),
            head: 0,
        },
    ];
    let changed = store.changed_chunks(&held).await.expect("changed");
    assert_eq!(
        changed,
        vec![ChunkHead {
            chunk,
            head: data.head
        }]
    );
    assert!(
        store.counter_total(UNPROCESSED) > before,
        "no key was left unprocessed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_follow_every_page() {
    let Some((store, seen)) = inspected(Some(7)).await else {
        return;
    };
    let chunk = ChunkPos::new(0, 5);
    // Ten log items (large shares), the head, ten signs, ten lights.
    for round in 0..10 {
        let mut batch = Batch::new();
        for i in 0..PER_CHUNK {
            batch.set_block(
                chunk,
                BlockPos::new(i % 32, 10 + i / 32, 160),
                1 + round,
                meta(),
            );
        }
        store.apply(&batch).await.expect("apply");
    }
    let mut batch = Batch::new();
    for i in 0..10 {
        batch.set_sign(
            chunk,
            BlockPos::new(i, 40, 160),
            0,
            &format!("sign {i}"),
            meta(),
        );
        batch.set_light(chunk, BlockPos::new(i, 41, 160), 7, meta());
    }
    store.apply(&batch).await.expect("apply");
    let before = seen.calls("Query").len();
    let data = store.load_chunk(chunk, 0).await.expect("load");
    assert_eq!(
        (data.blocks.len(), data.signs.len(), data.lights.len()),
        (PER_CHUNK as usize, 10, 10)
    );
    assert!(
        data.blocks.iter().all(|b| b.w == 10),
        "the newest values win"
    );
    let queries = seen.calls("Query").len() - before;
    assert!(
        queries >= 31 / 7,
        "pages were not followed: {queries} queries"
    );
    let listed = store.list_chunks().await.expect("list");
    assert_eq!(listed.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_values_are_refused_before_writing() {
    let Some((store, _)) = inspected(None).await else {
        return;
    };
    let chunk = ChunkPos::new(2, 2);
    let mut batch = Batch::new();
    batch.set_sign(
        chunk,
        BlockPos::new(64, 5, 64),
        0,
        &"x".repeat(1025),
        meta(),
    );
    assert!(matches!(
        store.apply(&batch).await,
        Err(StoreError::Invalid(_))
    ));
    let mut batch = Batch::new();
    let long_user = ChangeMeta {
        user: Some("u".repeat(5000).into()),
        time_ms: None,
    };
    batch.set_block(chunk, BlockPos::new(64, 5, 64), 1, long_user);
    assert!(matches!(
        store.apply(&batch).await,
        Err(StoreError::Invalid(_))
    ));
    let long_name = PlayerRecord {
        name: "n".repeat(3000),
        x: 0.0,
        y: 0.0,
        z: 0.0,
        rx: 0.0,
        ry: 0.0,
        time_ms: 0,
    };
    assert!(matches!(
        store.save_players(&[long_name]).await,
        Err(StoreError::Invalid(_))
    ));
    let data = store.load_chunk(chunk, 0).await.expect("load");
    assert!(data.is_empty() && data.head == 0);
    // A sign of exactly 1 KiB is fine.
    let mut batch = Batch::new();
    batch.set_sign(chunk, BlockPos::new(64, 5, 64), 0, &"é".repeat(512), meta());
    store.apply(&batch).await.expect("a 1 KiB sign");
    assert_eq!(
        store.load_chunk(chunk, 0).await.expect("load").signs[0]
            .text
            .len(),
        1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_stop_at_max_key() {
    let Some((store, _)) = inspected(None).await else {
        return;
    };
    let chunk = ChunkPos::new(6, 6);
    let raw = common::raw_client().expect("endpoint");
    raw.put_item()
        .table_name(store.table())
        .item("pk", AttributeValue::S("c#6#6".into()))
        .item("sk", AttributeValue::S("h".into()))
        .item("r", AttributeValue::N((MAX_KEY - 3).to_string()))
        .item("c", AttributeValue::N((MAX_KEY - 3).to_string()))
        .send()
        .await
        .expect("seed the head");
    let mut five = Batch::new();
    for i in 0..5 {
        five.set_block(chunk, BlockPos::new(192 + i, 3, 192), 1, meta());
    }
    match store.apply(&five).await {
        Err(StoreError::KeyExhausted { p: 6, q: 6 }) => {}
        other => panic!("expected KeyExhausted, got {other:?}"),
    }
    let mut three = Batch::new();
    for i in 0..3 {
        three.set_block(chunk, BlockPos::new(192 + i, 3, 192), 1, meta());
    }
    let receipt = store.apply(&three).await.expect("the last three keys");
    assert_eq!(receipt.chunks[0].after, MAX_KEY);
    assert_eq!(
        store.load_chunk(chunk, 0).await.expect("load").head,
        MAX_KEY
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_hides_credentials() {
    let Some((store, _)) = inspected(None).await else {
        return;
    };
    let debug = format!("{store:?}");
    assert!(debug.contains(store.table()));
    assert!(
        !debug.contains("testing-secret-key") && !debug.contains("AKIDTESTING"),
        "{debug}"
    );
}
