//! Migration: a table written by the first layout (one item per block,
//! the `by_key` index, put here with raw SDK calls as that version wrote
//! them) keeps working. The store reads both layouts, writes the new one,
//! and compaction folds the old block items into a snapshot and deletes
//! them; copying the world into a new table (as `craft-server import`
//! does, through the `BlockStore` API) gives the same world.

mod common;

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, BillingMode};
use store_dynamodb::metrics::COMPACTIONS;
use store_dynamodb::schema;
use world_core::conformance::test_service;
use world_core::store::{Batch, BlockStore, ChangeMeta, ChunkData, Key};
use world_core::{BlockPos, ChunkPos};

fn meta() -> ChangeMeta {
    ChangeMeta {
        user: Some("legacy".into()),
        time_ms: Some(1),
    }
}

/// Creates `table` as the first layout did: keys plus the `by_key` index.
async fn create_legacy_table(raw: &Client, table: &str) {
    raw.create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(schema::attribute_definitions(true)))
        .set_key_schema(Some(schema::key_schema()))
        .set_local_secondary_indexes(schema::key_index().map(|i| vec![i]))
        .send()
        .await
        .expect("create the legacy table");
}

async fn put(raw: &Client, table: &str, item: schema::Item) {
    raw.put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .expect("put");
}

/// A chunk as the first layout wrote it: block items with keys 1..=n
/// (values 1..), a light, a sign, and the head at n.
async fn legacy_chunk(raw: &Client, table: &str, chunk: ChunkPos, n: Key) {
    let pk = schema::chunk_pk(chunk);
    for k in 1..=n {
        let pos = BlockPos::new(chunk.p * 32 + k as i32, 20, chunk.q * 32);
        put(
            raw,
            table,
            schema::block_item(&pk, pos, k as i32, k, &meta()),
        )
        .await;
    }
    let spot = BlockPos::new(chunk.p * 32, 21, chunk.q * 32);
    put(raw, table, schema::light_item(&pk, spot, 9, &meta())).await;
    put(
        raw,
        table,
        schema::sign_item(&pk, spot, 2, "old, \"sign\"", &meta()),
    )
    .await;
    let mut head = schema::key(&pk, schema::HEAD_SK);
    head.insert(schema::RESERVED.into(), schema::n(n));
    head.insert(schema::COMMITTED.into(), schema::n(n));
    put(raw, table, head).await;
}

fn by_pos(data: &ChunkData) -> BTreeMap<BlockPos, (i32, Key)> {
    data.blocks.iter().map(|b| (b.pos, (b.w, b.key))).collect()
}

/// Sort keys of the first layout's block items left in `chunk`.
async fn block_items(raw: &Client, table: &str, chunk: ChunkPos) -> usize {
    let out = raw
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :b)")
        .expression_attribute_values(":pk", AttributeValue::S(schema::chunk_pk(chunk)))
        .expression_attribute_values(":b", AttributeValue::S("b#".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("query");
    out.items().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_layout_table_is_read_written_and_compacted() {
    let Some(endpoint) = test_service(common::ENDPOINT_VAR) else {
        return;
    };
    let raw = common::raw_client_on(&endpoint);
    let mut config = common::config(&endpoint, "legacy");
    config.create = false;
    config.compact_after = 3;
    config.compact_grace = std::time::Duration::ZERO;
    create_legacy_table(&raw, &config.table).await;
    let old = ChunkPos::new(2, -3);
    let untouched = ChunkPos::new(-1, 0);
    legacy_chunk(&raw, &config.table, old, 5).await;
    legacy_chunk(&raw, &config.table, untouched, 3).await;

    let store = common::open(config.clone()).await;
    assert!(store.is_legacy());

    // Read: the old block items, with their keys; since a key too.
    let data = store.load_chunk(old, 0).await.expect("load");
    assert_eq!(data.head, 5);
    assert_eq!(data.blocks.len(), 5);
    assert_eq!((data.lights.len(), data.signs.len()), (1, 1));
    assert_eq!(data.signs[0].text, "old, \"sign\"");
    let since = store.load_chunk(old, 3).await.expect("load since");
    let keys: Vec<Key> = by_pos(&since).values().map(|(_, k)| *k).collect();
    assert_eq!(keys, vec![4, 5]);

    // Write: one old position again, one new; both layouts are read.
    let moved = BlockPos::new(old.p * 32 + 2, 20, old.q * 32);
    let fresh = BlockPos::new(old.p * 32 + 30, 30, old.q * 32);
    let mut batch = Batch::new();
    batch.set_block(old, moved, 77, meta());
    batch.set_block(old, fresh, 78, meta());
    let receipt = store.apply(&batch).await.expect("apply");
    assert_eq!((receipt.chunks[0].before, receipt.chunks[0].after), (5, 7));
    let data = store.load_chunk(old, 0).await.expect("load");
    let blocks = by_pos(&data);
    assert_eq!(blocks.len(), 6);
    assert_eq!(blocks[&moved].0, 77);
    assert!(blocks[&moved].1 > 5);
    assert_eq!(blocks[&fresh].0, 78);
    let since = store.load_chunk(old, 5).await.expect("load since");
    assert_eq!(since.blocks.len(), 2);
    assert_eq!(store.counter_total(COMPACTIONS), 0.0);
    let before = by_pos(&store.load_chunk(old, 0).await.expect("load"));

    // Compaction folds the old block items into the snapshot and deletes
    // them (at once: compact_grace is zero here).
    for round in 0..3 {
        let mut batch = Batch::new();
        batch.set_block(old, fresh, 80 + round, meta());
        store.apply(&batch).await.expect("apply");
    }
    assert!(store.counter_total(COMPACTIONS) >= 1.0, "no compaction");
    assert_eq!(block_items(&raw, &config.table, old).await, 0);
    assert_eq!(block_items(&raw, &config.table, untouched).await, 3);
    let data = store.load_chunk(old, 0).await.expect("load");
    let mut after = by_pos(&data);
    assert_eq!(after.len(), 6);
    assert_eq!(after[&fresh].0, 82);
    after.remove(&fresh);
    let mut expected = before.clone();
    expected.remove(&fresh);
    assert_eq!(after, expected, "compaction kept every block and key");
    assert_eq!((data.lights.len(), data.signs.len()), (1, 1));
    let since = store.load_chunk(old, 7).await.expect("load since");
    assert_eq!(by_pos(&since).keys().collect::<Vec<_>>(), vec![&fresh]);

    // A reopened store (another server) reads the same.
    let again = common::open(config.clone()).await;
    assert_eq!(
        by_pos(&again.load_chunk(old, 0).await.expect("load")),
        by_pos(&data)
    );
    assert_eq!(
        again
            .load_chunk(untouched, 0)
            .await
            .expect("load")
            .blocks
            .len(),
        3
    );

    // Copy into a new table, as `craft-server import` does.
    let copy = common::open(common::config(&endpoint, "legacy-copy")).await;
    assert!(!copy.is_legacy());
    let listed = store.list_chunks().await.expect("list");
    assert_eq!(listed.len(), 2);
    for head in &listed {
        let data = store.load_chunk(head.chunk, 0).await.expect("load");
        let mut batch = Batch::new();
        for b in &data.blocks {
            batch.set_block(head.chunk, b.pos, b.w, meta());
        }
        for l in &data.lights {
            batch.set_light(head.chunk, l.pos, l.w, meta());
        }
        for s in &data.signs {
            batch.set_sign(head.chunk, s.pos, s.face, &s.text, meta());
        }
        copy.apply(&batch).await.expect("copy");
        let copied = copy.load_chunk(head.chunk, 0).await.expect("load copy");
        let values = |d: &ChunkData| -> BTreeMap<BlockPos, i32> {
            d.blocks.iter().map(|b| (b.pos, b.w)).collect()
        };
        assert_eq!(values(&copied), values(&data));
        assert_eq!(copied.signs, data.signs);
        assert_eq!(copied.lights, data.lights);
    }
}
