//! What the Data API adds to the conformance suite: resuming from
//! auto-pause, answers over 1 MiB, requests over 4 MiB, error mapping,
//! counters.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use store_dataapi::counters::{BILLED_UNITS, REQUEST_BYTES, REQUESTS, RETRIES, ROWS};
use store_dataapi::{DataApiStore, MAX_REQUEST_BYTES};
use world_core::coords::{BlockPos, ChunkPos};
use world_core::store::{Batch, ChangeMeta, ChunkData, MAX_KEY};
use world_core::{BlockStore, StoreError};

fn meta() -> ChangeMeta {
    ChangeMeta {
        user: Some("tester".into()),
        time_ms: Some(1_764_000_000_000),
    }
}

/// `n` blocks in `chunk` (x, z inside the chunk, y upwards).
fn blocks(chunk: ChunkPos, n: usize, w: i32) -> Batch {
    let mut batch = Batch::new();
    for i in 0..n {
        let i = i32::try_from(i).expect("small");
        let pos = BlockPos::new(
            chunk.p * 32 + i % 32,
            1 + i / 1024,
            chunk.q * 32 + (i / 32) % 32,
        );
        batch.set_block(chunk, pos, w, meta());
    }
    batch
}

fn by_pos(data: &ChunkData) -> BTreeMap<BlockPos, i32> {
    data.blocks.iter().map(|b| (b.pos, b.w)).collect()
}

fn requests(store: &DataApiStore, op: &str) -> f64 {
    store.counter(REQUESTS, Some(op))
}

// ---- resuming from auto-pause -----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_and_load_wait_for_a_resuming_database() {
    let Some(server) = common::private_server(|_| {}).await else {
        return;
    };
    let endpoint = server.endpoint();
    let store = DataApiStore::open(common::config(&endpoint, &common::unique("resume"), ""))
        .await
        .expect("open");
    let chunk = ChunkPos::new(1, 1);

    // The next three calls answer DatabaseResumingException.
    common::arm_resuming(&endpoint, json!({ "calls": 3 })).await;
    let receipt = store
        .apply(&blocks(chunk, 10, 3))
        .await
        .expect("apply waits for the resume");
    assert_eq!(receipt.chunks[0].after, 10);
    assert_eq!(store.counter(RETRIES, Some("resuming")), 3.0);

    // For a while, every call does.
    common::arm_resuming(&endpoint, json!({ "seconds": 2 })).await;
    let data = store.load_chunk(chunk, 0).await.expect("load waits");
    assert_eq!(data.blocks.len(), 10);
    assert!(store.counter(RETRIES, Some("resuming")) > 3.0);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_waits_for_a_resuming_database() {
    let Some(server) = common::private_server(|o| o.resuming_calls = 2).await else {
        return;
    };
    let store = DataApiStore::open(common::config(
        &server.endpoint(),
        &common::unique("resume_open"),
        "",
    ))
    .await
    .expect("open waits for the resume");
    store.ping().await.expect("ping");
    assert_eq!(store.counter(RETRIES, Some("resuming")), 2.0);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_longer_than_the_wait_is_unavailable() {
    let Some(server) = common::private_server(|_| {}).await else {
        return;
    };
    let endpoint = server.endpoint();
    let store = DataApiStore::open(common::config(
        &endpoint,
        &common::unique("resume_long"),
        "&resume_wait=1s",
    ))
    .await
    .expect("open");
    let chunk = ChunkPos::new(-3, 4);
    common::arm_resuming(&endpoint, json!({ "seconds": 60 })).await;
    match store.apply(&blocks(chunk, 5, 2)).await {
        Err(e @ StoreError::Unavailable { .. }) => {
            assert!(e.to_string().contains("resuming"), "{e}");
            assert!(e.is_retryable());
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        store.load_chunk(chunk, 0).await,
        Err(StoreError::Unavailable { .. })
    ));
    common::arm_resuming(&endpoint, json!({ "calls": 0, "seconds": 0 })).await;
    let data = store.load_chunk(chunk, 0).await.expect("load once resumed");
    assert!(data.is_empty(), "the refused batch left nothing");
    server.shutdown().await.expect("shutdown");
}

// ---- answers over 1 MiB -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_larger_than_one_answer_loads_whole() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let schema = common::unique("paging");
    let store = DataApiStore::open(common::config(&endpoint, &schema, ""))
        .await
        .expect("open");
    let chunk = ChunkPos::new(3, -7);
    // 40,000 blocks: over 1 MiB however the service counts it (the raw
    // values alone are 40 bytes a row).
    let batch = blocks(chunk, 40_000, 5);
    let receipt = store.apply(&batch).await.expect("apply");
    let head = receipt.chunks[0].after;

    // The whole chunk in one statement is refused by the service...
    let client = common::raw_client(&endpoint).await;
    let sql = store
        .statements()
        .load_chunk
        .named()
        .replace(":p::int8", "3")
        .replace(":q::int8", "-7")
        .replace(":since::int8", "0");
    let refused = common::raw_execute(&client, &sql)
        .await
        .expect_err("over the limit");
    let message = format!("{:?}", refused.into_service_error());
    assert!(message.contains("size limit"), "{message}");

    // ... while the store pages it.
    let before = requests(&store, "ExecuteStatement");
    let data = store.load_chunk(chunk, 0).await.expect("load");
    let pages = requests(&store, "ExecuteStatement") - before;
    assert_eq!(data.blocks.len(), 40_000);
    assert_eq!(data.head, head);
    assert!(data.blocks.iter().all(|b| b.w == 5));
    assert!(pages >= 8.0, "{pages} pages of 5,000 blocks");
    let mut keys: Vec<_> = data.blocks.iter().map(|b| b.key).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 40_000, "every block once");

    // Incrementally, too.
    assert_eq!(
        store
            .load_chunk(chunk, head - 12_345)
            .await
            .expect("since")
            .blocks
            .len(),
        12_345
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_shrink_when_the_answer_is_still_too_large() {
    // A service with a 16 KiB answer limit: 200 signs of 1 KiB text and
    // 3,000 lights cannot come in the default pages.
    let Some(server) = common::private_server(|o| o.max_result_bytes = 16 * 1024).await else {
        return;
    };
    let store = DataApiStore::open(common::config(
        &server.endpoint(),
        &common::unique("shrink"),
        "",
    ))
    .await
    .expect("open");
    let chunk = ChunkPos::new(0, 2);
    let mut batch = Batch::new();
    let text = "é".repeat(500);
    for i in 0..200 {
        let pos = BlockPos::new(i % 32, 10 + i / 32, 64);
        batch.set_sign(chunk, pos, i % 8, &text, meta());
    }
    for i in 0..3_000 {
        let pos = BlockPos::new(i % 32, 20 + i / 1024, 64 + (i / 32) % 32);
        batch.set_light(chunk, pos, 1 + i % 15, meta());
    }
    batch.set_block(chunk, BlockPos::new(1, 1, 65), 7, meta());
    store.apply(&batch).await.expect("apply");
    let data = store.load_chunk(chunk, 0).await.expect("load");
    assert_eq!(data.signs.len(), 200);
    assert!(data.signs.iter().all(|s| s.text == text));
    assert_eq!(data.lights.len(), 3_000);
    assert_eq!(data.blocks.len(), 1);
    assert!(store.counter(RETRIES, Some("response_too_large")) >= 1.0);
    server.shutdown().await.expect("shutdown");
}

// ---- requests over 4 MiB ------------------------------------------------

async fn large_batch_is_split(form: &str, limit: usize) {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let store = DataApiStore::open(common::config(
        &endpoint,
        &common::unique("split"),
        &format!("&write_form={form}&max_request_bytes={limit}"),
    ))
    .await
    .expect("open");
    // 60,000 blocks over 6 chunks and 3,000 signs of 1 KiB: tens of MiB
    // of parameters, refused whole by the service.
    let mut batch = Batch::new();
    for c in 0..6 {
        batch.extend(blocks(ChunkPos::new(c, 0), 10_000, 1 + c));
    }
    let chunk = ChunkPos::new(0, 0);
    let text = "x".repeat(1024);
    for i in 0..3_000 {
        batch.set_sign(
            chunk,
            BlockPos::new(i % 32, 100 + i / 256, (i / 32) % 8),
            i % 8,
            &text,
            meta(),
        );
    }
    let receipt = store.apply(&batch).await.expect("apply");
    assert_eq!(receipt.chunks.len(), 6);
    let op = if form == "values" {
        "BatchExecuteStatement"
    } else {
        "ExecuteStatement"
    };
    let calls = requests(&store, op);
    let bytes = store.counter(REQUEST_BYTES, Some(op));
    assert!(bytes > 2.0 * limit as f64, "{bytes} bytes sent");
    assert!(calls >= 4.0, "{calls} calls");
    assert!(
        bytes / calls <= limit as f64,
        "every request fits: the service refuses larger ones"
    );
    // dataapi-local refuses requests over 4 MiB, so the apply above shows
    // each fits that; the split's own bound is tested in `wire`.
    assert_eq!(requests(&store, "BeginTransaction"), 2.0, "open and apply");
    assert_eq!(requests(&store, "CommitTransaction"), 2.0);
    for c in 0..6 {
        let data = store
            .load_chunk(ChunkPos::new(c, 0), 0)
            .await
            .expect("load");
        assert_eq!(data.blocks.len(), 10_000);
        assert!(data.blocks.iter().all(|b| b.w == 1 + c));
        if c == 0 {
            assert_eq!(data.signs.len(), 3_000);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_one_request_is_split() {
    large_batch_is_split("values", MAX_REQUEST_BYTES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_one_request_is_split_in_json_form() {
    large_batch_is_split("json", MAX_REQUEST_BYTES).await;
}

/// The arrays form packs a row in ~55 bytes: the same batch needs a
/// smaller limit to be split several times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_one_request_is_split_in_arrays_form() {
    large_batch_is_split("arrays", 1024 * 1024).await;
}

// ---- errors -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_exhaustion_names_the_chunk_and_writes_nothing() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let schema = common::unique("exhaust");
    let store = DataApiStore::open(common::config(&endpoint, &schema, ""))
        .await
        .expect("open");
    let full = ChunkPos::new(5, -5);
    let other = ChunkPos::new(-9, 9);
    store.apply(&blocks(full, 1, 1)).await.expect("first write");
    let client = common::raw_client(&endpoint).await;
    common::raw_execute(
        &client,
        &format!(
            "UPDATE \"{schema}\".chunk SET key = {} WHERE p = 5 AND q = -5",
            MAX_KEY - 3
        ),
    )
    .await
    .expect("move the head");
    let mut batch = blocks(full, 5, 2);
    batch.extend(blocks(other, 3, 2));
    match store.apply(&batch).await {
        Err(StoreError::KeyExhausted { p: 5, q: -5 }) => {}
        other => panic!("expected KeyExhausted for (5, -5), got {other:?}"),
    }
    assert!(store.load_chunk(other, 0).await.expect("load").is_empty());
    let data = store.load_chunk(full, 0).await.expect("load");
    assert_eq!(data.head, MAX_KEY - 3);
    assert_eq!(by_pos(&data).values().copied().collect::<Vec<_>>(), [1]);
    // Three keys are left: a batch of three fits.
    let receipt = store.apply(&blocks(full, 3, 4)).await.expect("fits");
    assert_eq!(receipt.chunks[0].after, MAX_KEY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_database_is_a_configuration_error() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let url = common::url(&endpoint, "public", "&max_attempts=1")
        .replace("dataapi://?", "dataapi://no_such_database_here?");
    let config = store_dataapi::Config::from_url_with_env(&url, |_| None).expect("url");
    match DataApiStore::open(config).await {
        Err(StoreError::Config(message)) => {
            assert!(message.contains("3D000"), "{message}");
        }
        other => panic!("expected Config, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_a_configuration_error() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let schema = common::unique("dropped");
    let store = DataApiStore::open(common::config(&endpoint, &schema, ""))
        .await
        .expect("open");
    let client = common::raw_client(&endpoint).await;
    common::raw_execute(&client, &format!("DROP TABLE \"{schema}\".light"))
        .await
        .expect("drop");
    match store.load_chunk(ChunkPos::new(0, 0), 0).await {
        Err(StoreError::Config(message)) => assert!(message.contains("42P01"), "{message}"),
        other => panic!("expected Config, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_unavailable_after_the_attempts() {
    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = common::config(
        &format!("http://127.0.0.1:{port}"),
        "public",
        "&max_attempts=2&connect_timeout=1s",
    );
    match DataApiStore::open(config).await {
        Err(e @ StoreError::Unavailable { .. }) => {
            assert!(e.to_string().contains("2 attempts"), "{e}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_timeout_in_a_batch_rolls_it_back() {
    // The service stops statements after 1 s here, and another
    // transaction holds the chunk's head row: the batch's advance_heads
    // waits for the lock until the service gives up.
    let Some(server) = common::private_server(|o| {
        o.statement_timeout = Duration::from_secs(1);
    })
    .await
    else {
        return;
    };
    let endpoint = server.endpoint();
    let schema = common::unique("timeout");
    let store = DataApiStore::open(common::config(&endpoint, &schema, "&max_attempts=2"))
        .await
        .expect("open");
    let chunk = ChunkPos::new(8, 8);
    store
        .apply(&blocks(chunk, 1, 1))
        .await
        .expect("first write");

    let client = common::raw_client(&endpoint).await;
    let holder = client
        .begin_transaction()
        .resource_arn(common::RESOURCE_ARN)
        .secret_arn(common::SECRET_ARN)
        .send()
        .await
        .expect("begin")
        .transaction_id
        .expect("transaction id");
    client
        .execute_statement()
        .resource_arn(common::RESOURCE_ARN)
        .secret_arn(common::SECRET_ARN)
        .transaction_id(&holder)
        .sql(format!(
            "UPDATE \"{schema}\".chunk SET key = key WHERE p = 8 AND q = 8"
        ))
        .send()
        .await
        .expect("lock the head row");

    let mut batch = blocks(chunk, 100, 9);
    batch.set_light(chunk, BlockPos::new(256, 1, 256), 5, meta());
    match store.apply(&batch).await {
        Err(e @ StoreError::Unavailable { .. }) => {
            assert!(e.to_string().contains("timed out"), "{e}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(store.counter(RETRIES, Some("timeout")), 1.0);
    client
        .rollback_transaction()
        .resource_arn(common::RESOURCE_ARN)
        .secret_arn(common::SECRET_ARN)
        .transaction_id(&holder)
        .send()
        .await
        .expect("release the lock");

    let data = store.load_chunk(chunk, 0).await.expect("load");
    assert_eq!(data.head, 1, "nothing of the timed-out batch was left");
    assert_eq!(by_pos(&data).into_values().collect::<Vec<_>>(), [1]);
    assert!(data.lights.is_empty());
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_names_are_identifiers_not_sql() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    // A mixed-case schema is created and used quoted, as given.
    let schema = format!("Mixed_{}", common::unique("case"));
    let store = DataApiStore::open(common::config(&endpoint, &schema, ""))
        .await
        .expect("open");
    store
        .apply(&blocks(ChunkPos::new(0, 0), 2, 1))
        .await
        .expect("apply");
    assert_eq!(store.list_chunks().await.expect("list").len(), 1);
    assert!(
        store_dataapi::Config::from_url_with_env(
            &common::url(&endpoint, "x\"; DROP SCHEMA public; --", ""),
            |_| None
        )
        .is_err()
    );
}

// ---- counters and paging of lists ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_report_requests_by_operation() {
    // The per-row form, to see BatchExecuteStatement counted too.
    let Some(store) = common::fresh_with("&page_rows=3&write_form=values").await else {
        return;
    };
    let mut batch = Batch::new();
    for c in 0..7 {
        let chunk = ChunkPos::new(c, -c);
        batch.set_block(chunk, BlockPos::new(c * 32, 5, -c * 32), 1, meta());
        batch.set_light(chunk, BlockPos::new(c * 32, 5, -c * 32), 3, meta());
    }
    let before = requests(&store, "BatchExecuteStatement");
    store.apply(&batch).await.expect("apply");
    assert_eq!(
        requests(&store, "BatchExecuteStatement") - before,
        2.0,
        "one call for the blocks, one for the lights"
    );
    // Seven new chunks: their rows are plain inserts.
    assert_eq!(store.counter(ROWS, Some("insert_blocks_new_chunks")), 7.0);
    assert_eq!(store.counter(ROWS, Some("upsert_blocks_old_chunks")), 0.0);
    // Seven chunks, three per page.
    let listed = store.list_chunks().await.expect("list");
    assert_eq!(listed.len(), 7);
    assert!(listed.windows(2).all(|w| w[0].chunk < w[1].chunk));
    let held: Vec<_> = listed
        .iter()
        .map(|h| world_core::store::ChunkHead {
            chunk: h.chunk,
            head: h.head - 1,
        })
        .collect();
    let before = requests(&store, "ExecuteStatement");
    assert_eq!(store.changed_chunks(&held).await.expect("changed"), listed);
    assert_eq!(requests(&store, "ExecuteStatement") - before, 3.0);
    let names: Vec<String> = store
        .counters()
        .iter()
        .filter(|c| c.name == REQUESTS)
        .flat_map(|c| c.labels.iter().map(|(_, v)| v.clone()))
        .collect();
    for op in [
        "BeginTransaction",
        "ExecuteStatement",
        "BatchExecuteStatement",
        "CommitTransaction",
    ] {
        assert!(names.iter().any(|n| n == op), "{op} in {names:?}");
    }
    assert!(store.counter(BILLED_UNITS, None) >= store.counter(REQUESTS, None));
    assert!(
        !format!("{store:?}").contains("local&"),
        "no credentials in Debug"
    );
}

// ---- a commit whose answer is lost ----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_commit_answer_is_lost_is_applied_again_harmlessly() {
    let Some(server) = common::private_server(|_| {}).await else {
        return;
    };
    let proxy = common::LossyProxy::start(server.local_addr()).await;
    let store = DataApiStore::open(common::config(
        &proxy.endpoint,
        &common::unique("lost_commit"),
        "",
    ))
    .await
    .expect("open");
    let chunk = ChunkPos::new(2, 2);
    let mut batch = blocks(chunk, 50, 6);
    batch.set_sign(chunk, BlockPos::new(64, 1, 64), 3, "kept once", meta());
    proxy.lose_next_commit();
    let receipt = store.apply(&batch).await.expect("applied after a retry");
    assert!(proxy.lost(), "the commit's answer was lost");
    assert_eq!(store.counter(RETRIES, Some("unreachable")), 1.0);
    assert_eq!(
        requests(&store, "CommitTransaction"),
        3.0,
        "open, lost, retry"
    );
    // The first commit went through: the batch was applied twice, and the
    // receipt describes the second application.
    let advance = receipt.chunks[0];
    assert_eq!((advance.before, advance.after), (50, 100));
    let data = store.load_chunk(chunk, 0).await.expect("load");
    assert_eq!(data.blocks.len(), 50);
    assert!(data.blocks.iter().all(|b| b.w == 6 && b.key > 50));
    assert_eq!(data.signs.len(), 1);
    assert_eq!(data.head, 100);
    server.shutdown().await.expect("shutdown");
}

// ---- the arrays form ------------------------------------------------------

/// One `ExecuteStatement` per statement with rows; a batch over a new and
/// an old chunk sends each block row through one of the two block
/// statements; text that means something in an array literal (quotes,
/// backslashes, braces, commas, the word NULL) and empty users come back
/// as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_arrays_form_sends_each_row_once_and_keeps_text() {
    let Some(store) = common::fresh_with("&write_form=arrays").await else {
        return;
    };
    let old = ChunkPos::new(0, 0);
    let new = ChunkPos::new(1, 0);
    store
        .apply(&blocks(old, 10, 1))
        .await
        .expect("the old chunk");
    let texts = ["a \"b\" \\c", "{x,y}", "NULL", "", "é, ü; 'q'"];
    let mut batch = blocks(old, 20, 2);
    batch.extend(blocks(new, 5, 3));
    for (i, text) in texts.iter().enumerate() {
        let pos = BlockPos::new(i as i32, 100, 0);
        batch.set_sign(old, pos, 0, text, meta());
    }
    let before = requests(&store, "ExecuteStatement");
    store.apply(&batch).await.expect("apply");
    // advance_heads, the two block statements, signs, deletions.
    assert_eq!(requests(&store, "ExecuteStatement") - before, 5.0);
    assert_eq!(requests(&store, "BatchExecuteStatement"), 0.0);
    assert_eq!(
        store.counter(ROWS, Some("insert_blocks_new_chunks")),
        10.0 + 5.0
    );
    assert_eq!(store.counter(ROWS, Some("upsert_blocks_old_chunks")), 20.0);
    let data = store.load_chunk(old, 0).await.expect("load");
    assert_eq!(data.blocks.len(), 20);
    assert!(data.blocks.iter().all(|b| b.w == 2));
    let mut signs: Vec<(i32, String)> = data
        .signs
        .iter()
        .map(|s| (s.pos.x, s.text.clone()))
        .collect();
    signs.sort();
    let expected: Vec<(i32, String)> = texts
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.is_empty())
        .map(|(i, t)| (i as i32, (*t).to_owned()))
        .collect();
    assert_eq!(signs, expected);
    assert_eq!(
        store.load_chunk(new, 0).await.expect("load").blocks.len(),
        5
    );
}
