//! The file's life: reopening, sharing it between stores, wrong files,
//! locks, key exhaustion, query plans, counters.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{TempStore, meta, place};
use rusqlite::Connection;
use store_sqlite::{Config, SqliteStore};
use world_core::store::{ApplyReceipt, Batch, ChunkAdvance, Key, MAX_KEY, PlayerRecord};
use world_core::{BlockPos, BlockStore, ChunkPos, StoreError};

fn blocks_batch(chunk: ChunkPos, layer: i32, count: i32, w: i32) -> Batch {
    let mut batch = Batch::new();
    for i in 0..count {
        let pos = BlockPos::new(chunk.p * 32 + i % 32, layer, chunk.q * 32 + i / 32);
        batch.set_block(chunk, pos, w, meta());
    }
    batch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_survive_close_and_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("world.db");
    let pos = BlockPos::new(-40, 12, 77);
    let store = SqliteStore::open(Config::new(&path)).await.expect("open");
    let mut batch = Batch::new();
    place(&mut batch, pos, 4);
    batch.set_light(pos.chunk(), pos, 7, meta());
    batch.set_sign(pos.chunk(), pos, 3, "still here", meta());
    let receipt = store.apply(&batch).await.expect("apply");
    let player = PlayerRecord {
        name: "bob".into(),
        x: 1.0,
        y: 2.0,
        z: 3.0,
        rx: 0.0,
        ry: 0.5,
        time_ms: 9,
    };
    store
        .save_players(std::slice::from_ref(&player))
        .await
        .expect("save");
    let before = store.load_chunk(pos.chunk(), 0).await.expect("load");
    store.close().await.expect("close");
    // The checkpoint on close folded the WAL into the file.
    let wal = dir.path().join("world.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).expect("wal").len() == 0,
        "WAL left behind"
    );

    let store =
        SqliteStore::open(Config::from_url(&format!("sqlite:{}", path.display())).expect("url"))
            .await
            .expect("reopen");
    let after = store.load_chunk(pos.chunk(), 0).await.expect("load");
    assert_eq!(after, before);
    assert_eq!(store.load_player("bob").await.expect("load"), Some(player));
    let listed = store.list_chunks().await.expect("list");
    assert_eq!(listed.len(), receipt.chunks.len());
    // Keys continue above everything written before the restart.
    let mut batch = Batch::new();
    batch.set_sign(
        ChunkPos::new(50, 50),
        BlockPos::new(1600, 5, 1600),
        0,
        "new chunk",
        meta(),
    );
    let next = store.apply(&batch).await.expect("apply");
    let max_before = receipt.chunks.iter().map(|a| a.after).max().expect("heads");
    assert!(next.chunks[0].after > max_before);
    store.close().await.expect("close");
}

fn check_disjoint(receipts: &[ApplyReceipt]) {
    let mut per_chunk: BTreeMap<ChunkPos, Vec<ChunkAdvance>> = BTreeMap::new();
    for r in receipts {
        for a in &r.chunks {
            assert!(a.after > a.before);
            per_chunk.entry(a.chunk).or_default().push(*a);
        }
    }
    for (chunk, mut ranges) in per_chunk {
        ranges.sort_by_key(|a| a.before);
        for pair in ranges.windows(2) {
            assert!(
                pair[1].before >= pair[0].after,
                "overlapping key ranges in {chunk}: {pair:?}"
            );
        }
    }
}

/// Two stores on one file (as two server processes sharing a world) write
/// at the same time: every batch lands, keys never collide, each sees the
/// other's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_share_one_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("world.db");
    // Opening at the same time: both migrate under BEGIN IMMEDIATE.
    let (a, b) = tokio::join!(
        SqliteStore::open(Config::new(&path)),
        SqliteStore::open(Config::new(&path))
    );
    let (a, b) = (a.expect("open a"), b.expect("open b"));
    let shared = ChunkPos::new(2, 2);
    let mut work = Vec::new();
    for i in 0..12 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let mut batch = blocks_batch(shared, 1 + i, 40, 1 + i);
        batch.set_light(shared, BlockPos::new(64, 1 + i, 64), 3, meta());
        // A chunk only this store writes, and a sign-only chunk.
        batch.set_block(
            ChunkPos::new(-1 - i % 2, 0),
            BlockPos::new(-10 - 32 * (i % 2), 5 + i, 3),
            2,
            meta(),
        );
        batch.set_sign(
            ChunkPos::new(9, 9),
            BlockPos::new(300, 5, 300 + i),
            0,
            "shared sign chunk",
            meta(),
        );
        work.push(tokio::spawn(async move { store.apply(&batch).await }));
    }
    let mut receipts = Vec::new();
    for w in work {
        receipts.push(w.await.expect("join").expect("apply"));
    }
    check_disjoint(&receipts);

    let from_a = a.load_chunk(shared, 0).await.expect("load a");
    let from_b = b.load_chunk(shared, 0).await.expect("load b");
    assert_eq!(from_a, from_b);
    assert_eq!(from_a.blocks.len(), 12 * 40);
    let keys: BTreeSet<Key> = from_a.blocks.iter().map(|b| b.key).collect();
    assert_eq!(keys.len(), from_a.blocks.len(), "two blocks share a key");
    let last = receipts
        .iter()
        .flat_map(|r| r.chunks.iter())
        .filter(|c| c.chunk == shared)
        .map(|c| c.after)
        .max();
    assert_eq!(Some(from_a.head), last);
    assert_eq!(
        b.load_chunk(ChunkPos::new(9, 9), 0)
            .await
            .expect("load")
            .signs
            .len(),
        12
    );
    a.close().await.expect("close a");
    // b keeps working after a closed.
    b.apply(&blocks_batch(shared, 100, 1, 3))
        .await
        .expect("apply after the other closed");
    b.close().await.expect("close b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_file_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notes.txt");
    let content = "this is not a database\n".repeat(200);
    std::fs::write(&path, &content).expect("write");
    let err = SqliteStore::open(Config::new(&path))
        .await
        .expect_err("must refuse");
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("not a SQLite database") && message.contains("notes.txt"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        content,
        "the file was modified"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.db");
    Connection::open(&path)
        .and_then(|c| c.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
        .expect("create");
    let err = SqliteStore::open(Config::new(&path))
        .await
        .expect_err("must refuse");
    assert!(
        matches!(err, StoreError::Config(ref m) if m.contains("users")),
        "{err:?}"
    );
    let tables: i64 = Connection::open(&path)
        .and_then(|c| c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)))
        .expect("count");
    assert_eq!(tables, 1, "nothing was added to the foreign database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_craft_tables_are_refused() {
    let cases = [
        (
            "create table block (p int, q int, x int, y int, z int);
             create unique index block_pqxyz_idx on block (p, q, x, y, z);",
            "column w",
        ),
        // The original's index name, but not unique: `create unique index if
        // not exists` cannot repair it.
        (
            "create table block (p int, q int, x int, y int, z int, w int);
             create index block_pqxyz_idx on block (p, q, x, y, z);",
            "unique index",
        ),
    ];
    for (sql, needle) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("craft.db");
        Connection::open(&path)
            .and_then(|c| c.execute_batch(sql))
            .expect("create");
        let err = SqliteStore::open(Config::new(&path))
            .await
            .expect_err("must refuse");
        assert!(
            matches!(err, StoreError::Corrupt(ref m) if m.contains(needle)),
            "{needle}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let t = TempStore::new().await;
    t.close().await.expect("close");
    Connection::open(t.path())
        .and_then(|c| {
            c.execute(
                "UPDATE craft_meta SET value = 99 WHERE name = 'schema_version'",
                [],
            )
        })
        .expect("bump");
    let err = SqliteStore::open(Config::new(t.path()))
        .await
        .expect_err("must refuse");
    assert!(
        matches!(err, StoreError::Corrupt(ref m) if m.contains("99")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_files_and_directories() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("absent.db");
    let url = format!("sqlite:{}?create=false", missing.display());
    let err = SqliteStore::open_url(&url).await.expect_err("create=false");
    assert!(
        matches!(err, StoreError::Config(ref m) if m.contains("does not exist")),
        "{err:?}"
    );
    assert!(!missing.exists());
    let err = SqliteStore::open(Config::new(dir.path().join("no/such/dir/w.db")))
        .await
        .expect_err("no dir");
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    let err = SqliteStore::open_url("sqlite:w.db?journal=off")
        .await
        .expect_err("unknown parameter");
    assert!(
        matches!(err, StoreError::Config(ref m) if m.contains("journal")),
        "{err:?}"
    );
}

/// A lock held past `busy_timeout` is a retryable `Unavailable`; the same
/// batch succeeds once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_is_unavailable_then_retry_succeeds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("world.db");
    let url = format!("sqlite:{}?busy_timeout=100ms", path.display());
    let store = SqliteStore::open_url(&url).await.expect("open");
    let other = Connection::open(&path).expect("other");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let batch = blocks_batch(ChunkPos::new(0, 0), 5, 10, 3);
    let err = store.apply(&batch).await.expect_err("locked");
    assert!(
        matches!(err, StoreError::Unavailable { .. }) && err.is_retryable(),
        "{err:?}"
    );
    // Reads go on beside the writer (WAL).
    assert!(
        store
            .load_chunk(ChunkPos::new(0, 0), 0)
            .await
            .expect("read while locked")
            .is_empty()
    );
    other.execute_batch("ROLLBACK").expect("release");
    store.apply(&batch).await.expect("retry");
    assert_eq!(
        store
            .load_chunk(ChunkPos::new(0, 0), 0)
            .await
            .expect("load")
            .blocks
            .len(),
        10
    );
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_stop_at_the_clients_limit() {
    let t = TempStore::new().await;
    let chunk = ChunkPos::new(1, 1);
    t.apply(&blocks_batch(chunk, 1, 2, 1)).await.expect("apply");
    let head = t.load_chunk(chunk, 0).await.expect("load").head;
    Connection::open(t.path())
        .and_then(|c| {
            c.execute(
                "UPDATE craft_meta SET value = ?1 WHERE name = 'last_key'",
                [MAX_KEY - 3],
            )
        })
        .expect("move the sequence");

    // Four keys needed, three left: nothing is written.
    let mut batch = blocks_batch(chunk, 2, 4, 2);
    batch.set_sign(
        ChunkPos::new(0, 0),
        BlockPos::new(1, 1, 1),
        0,
        "no room",
        meta(),
    );
    match t.apply(&batch).await {
        Err(StoreError::KeyExhausted { p: 1, q: 1 }) => {}
        other => panic!("expected KeyExhausted for (1, 1), got {other:?}"),
    }
    let data = t.load_chunk(chunk, 0).await.expect("load");
    assert_eq!(
        (data.blocks.len(), data.head),
        (2, head),
        "the failed batch left something"
    );
    assert!(
        t.load_chunk(ChunkPos::new(0, 0), 0)
            .await
            .expect("load")
            .is_empty()
    );

    // Exactly three fit, the last one being MAX_KEY.
    let receipt = t.apply(&blocks_batch(chunk, 2, 3, 2)).await.expect("apply");
    assert_eq!(receipt.chunks[0].after, MAX_KEY);
    let newest = t.load_chunk(chunk, MAX_KEY - 1).await.expect("load");
    assert_eq!(
        newest.blocks.iter().map(|b| b.key).collect::<Vec<_>>(),
        vec![MAX_KEY]
    );
    let mut batch = Batch::new();
    batch.set_light(chunk, BlockPos::new(33, 1, 33), 4, meta());
    assert!(matches!(
        t.apply(&batch).await,
        Err(StoreError::KeyExhausted { p: 1, q: 1 })
    ));
}

/// Every read and write statement is an index search, and an incremental
/// load is a range on (p, q, rowid), not a scan of the chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_use_indexes() {
    let t = TempStore::new().await;
    t.apply(&blocks_batch(ChunkPos::new(0, 0), 1, 100, 1))
        .await
        .expect("apply");
    let conn = Connection::open(t.path()).expect("open");
    for (name, sql) in store_sqlite::QUERIES {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let plan: Vec<String> = stmt
            .query_map(
                rusqlite::params_from_iter(std::iter::repeat_n(0, stmt.parameter_count())),
                |r| r.get::<_, String>(3),
            )
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let plan = plan.join(" | ").replace("SCAN CONSTANT ROW", "constant");
        assert!(!plan.contains("SCAN"), "{name} scans: {plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{name} sorts: {plan}");
        if name == "load_blocks" {
            assert!(
                plan.contains("craft_block_pq_idx (p=? AND q=? AND rowid>?)"),
                "{name}: {plan}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn author_and_time_are_kept() {
    let t = TempStore::new().await;
    let pos = BlockPos::new(5, 5, 5);
    let mut batch = Batch::new();
    batch.set_block(pos.chunk(), pos, 3, meta());
    batch.set_light(pos.chunk(), pos, 3, meta());
    batch.set_sign(pos.chunk(), pos, 0, "signed", meta());
    batch.set_block(pos.chunk(), BlockPos::new(6, 5, 5), 3, Default::default());
    t.apply(&batch).await.expect("apply");
    let conn = Connection::open(t.path()).expect("open");
    for table in ["block", "light", "sign"] {
        let (author, time): (Option<String>, Option<i64>) = conn
            .query_row(
                &format!("SELECT author, time_ms FROM {table} WHERE x = 5"),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("row");
        assert_eq!(
            (author.as_deref(), time),
            (Some("tester"), Some(1_764_000_000_000)),
            "{table}"
        );
    }
    let anonymous: (Option<String>, Option<i64>) = conn
        .query_row("SELECT author, time_ms FROM block WHERE x = 6", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("row");
    assert_eq!(anonymous, (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_count_transactions_and_statements() {
    let t = TempStore::new().await;
    let count = |name: &str, op: &str| {
        t.counters()
            .iter()
            .find(|c| c.name == name && c.labels == vec![("op", op.to_owned())])
            .map(|c| c.value)
            .unwrap_or(-1.0)
    };
    // 64 blocks over 2 chunks, 1 light, 1 clear: n + 2k + 2c + 2 statements.
    let mut batch = blocks_batch(ChunkPos::new(0, 0), 1, 32, 1);
    batch.extend(blocks_batch(ChunkPos::new(1, 0), 1, 32, 1));
    batch.set_light(ChunkPos::new(0, 0), BlockPos::new(0, 1, 0), 2, meta());
    batch.clear_decor(ChunkPos::new(0, 0), BlockPos::new(1, 1, 0));
    t.apply(&batch).await.expect("apply");
    assert_eq!(count("store_requests_total", "apply"), 1.0);
    assert_eq!(
        count("store_statements_total", "apply"),
        (65 + 2 + 2 * 2 + 2) as f64
    );
    t.load_chunk(ChunkPos::new(0, 0), 0).await.expect("load");
    assert_eq!(count("store_requests_total", "load_chunk"), 1.0);
    assert_eq!(count("store_statements_total", "load_chunk"), 4.0);
    t.apply(&Batch::new()).await.expect("empty batch");
    assert_eq!(
        count("store_requests_total", "apply"),
        1.0,
        "an empty batch costs nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_finite_player_positions_are_invalid() {
    let t = TempStore::new().await;
    let bad = PlayerRecord {
        name: "nan".into(),
        x: f32::NAN,
        y: 0.0,
        z: 0.0,
        rx: 0.0,
        ry: 0.0,
        time_ms: 1,
    };
    assert!(matches!(
        t.save_players(&[bad]).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(t.load_player("nan").await.expect("load"), None);
}

/// Reads run in parallel with a long write and see either all of a batch
/// or none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_whole_batches() {
    let t = TempStore::new().await;
    let chunk = ChunkPos::new(0, 0);
    let writer = {
        let store = t.store.clone();
        tokio::spawn(async move {
            for layer in 1..=20 {
                store
                    .apply(&blocks_batch(chunk, layer, 1024, layer))
                    .await
                    .expect("apply");
            }
        })
    };
    let mut seen = 0;
    while !writer.is_finished() {
        let data = t.load_chunk(chunk, 0).await.expect("load");
        assert_eq!(data.blocks.len() % 1024, 0, "a read saw part of a batch");
        assert_eq!(data.max_block_key(), data.head);
        seen = seen.max(data.blocks.len());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    writer.await.expect("writer");
    assert_eq!(
        t.load_chunk(chunk, 0).await.expect("load").blocks.len(),
        20 * 1024
    );
    assert!(seen <= 20 * 1024);
}

/// Rows another program (the original server) adds behind our back, in
/// chunks we never wrote, still get heads, and our next keys pass them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_rows_in_new_chunks_get_heads() {
    let t = TempStore::new().await;
    let decor = ChunkPos::new(5, 5);
    let blocks = ChunkPos::new(6, 6);
    let other = Connection::open(t.path()).expect("open");
    other
        .execute_batch(
            "insert or replace into sign (p, q, x, y, z, face, text) values (5, 5, 170, 9, 170, 0, 'theirs');
             insert or replace into block (p, q, x, y, z, w) values (6, 6, 200, 9, 200, 4);",
        )
        .expect("foreign writes");
    let rowid: Key = other
        .query_row("select max(rowid) from block", [], |r| r.get(0))
        .expect("rowid");
    let listed = t.list_chunks().await.expect("list");
    assert_eq!(
        listed.iter().map(|h| (h.chunk, h.head)).collect::<Vec<_>>(),
        vec![(decor, 1), (blocks, rowid)]
    );
    let held = [
        world_core::store::ChunkHead {
            chunk: decor,
            head: 0,
        },
        world_core::store::ChunkHead {
            chunk: blocks,
            head: 0,
        },
    ];
    assert_eq!(t.changed_chunks(&held).await.expect("changed").len(), 2);
    let mut batch = Batch::new();
    batch.set_light(decor, BlockPos::new(170, 9, 170), 5, meta());
    batch.set_block(blocks, BlockPos::new(201, 9, 200), 2, meta());
    let receipt = t.apply(&batch).await.expect("apply");
    let heads: Vec<(ChunkPos, Key, Key)> = receipt
        .chunks
        .iter()
        .map(|a| (a.chunk, a.before, a.after))
        .collect();
    assert_eq!(heads[0].0, decor);
    assert_eq!(heads[0].1, 1);
    assert_eq!(heads[1].0, blocks);
    assert_eq!(heads[1].1, rowid);
    assert!(heads.iter().all(|(_, before, after)| after > before));
    let data = t.load_chunk(blocks, rowid).await.expect("load");
    assert_eq!(data.blocks.len(), 1);
    assert!(data.blocks[0].key > rowid);
}
