//! Behaviour beyond the conformance suite: round trips, key exhaustion,
//! migrations under concurrency, two stores on one database, error mapping.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use store_postgres::PostgresStore;
use world_core::coords::ChunkPos;
use world_core::store::{Batch, ChangeMeta, ChunkHead, Key, MAX_KEY};
use world_core::{BlockPos, BlockStore, StoreError};

fn meta() -> ChangeMeta {
    ChangeMeta {
        user: Some(Arc::from("tester")),
        time_ms: Some(1_764_000_000_000),
    }
}

fn requests(store: &dyn BlockStore, op: &str) -> f64 {
    common::counter(store, "store_requests_total", op)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_one_round_trip() {
    let Some(test) = common::fresh("trips").await else {
        return;
    };
    let store: &dyn BlockStore = &test;
    let chunk = ChunkPos::new(1, 1);
    let mut batch = Batch::new();
    for i in 0..500 {
        batch.set_block(chunk, BlockPos::new(32 + i % 32, 1 + i / 32, 40), 3, meta());
    }
    batch.set_light(chunk, BlockPos::new(32, 1, 40), 7, meta());
    batch.set_sign(chunk, BlockPos::new(33, 1, 40), 0, "one", meta());
    batch.set_sign(chunk, BlockPos::new(33, 1, 40), 1, "", meta());
    batch.clear_decor(chunk, BlockPos::new(34, 1, 40));

    let before = requests(store, "apply");
    store.apply(&batch).await.expect("apply");
    assert_eq!(
        requests(store, "apply") - before,
        1.0,
        "a batch is one round trip"
    );
    let statements = common::counter(store, "store_statements_total", "apply");
    assert!(
        statements >= 8.0,
        "BEGIN, 6+ statements and COMMIT were pipelined: {statements}"
    );

    let before = requests(store, "load_chunk");
    let data = store.load_chunk(chunk, 0).await.expect("load");
    assert_eq!(data.blocks.len(), 500);
    assert_eq!(requests(store, "load_chunk") - before, 1.0);

    let held: Vec<ChunkHead> = (0..2000)
        .map(|i| ChunkHead {
            chunk: ChunkPos::new(i, -i),
            head: 0,
        })
        .collect();
    let before = requests(store, "changed_chunks");
    store.changed_chunks(&held).await.expect("changed_chunks");
    assert_eq!(requests(store, "changed_chunks") - before, 1.0);

    // Connections prepared their statements once, in one round trip each.
    let prepares = requests(store, "prepare");
    let connections = store
        .counters()
        .iter()
        .find(|c| c.name == "store_connections_opened_total")
        .map_or(0.0, |c| c.value);
    assert!(
        prepares >= 1.0 && prepares <= connections,
        "{prepares} prepares for {connections} connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_passing_the_largest_key_fails_the_batch() {
    let Some(test) = common::fresh("exhaust").await else {
        return;
    };
    let store: &dyn BlockStore = &test;
    let full = ChunkPos::new(3, -4);
    let other = ChunkPos::new(2, -4);
    let mut batch = Batch::new();
    batch.set_block(full, BlockPos::new(96, 5, -128), 1, meta());
    store.apply(&batch).await.expect("first write");
    let admin = common::admin(&test.url).await;
    admin
        .execute(
            &format!(
                "UPDATE \"{}\".chunk SET key = $1 WHERE p = 3 AND q = -4",
                test.schema
            ),
            &[&(MAX_KEY - 1)],
        )
        .await
        .expect("move the head near the end");

    let mut two = Batch::new();
    two.set_block(other, BlockPos::new(64, 5, -128), 2, meta());
    two.set_block(full, BlockPos::new(97, 5, -128), 2, meta());
    two.set_block(full, BlockPos::new(98, 5, -128), 2, meta());
    match store.apply(&two).await {
        Err(StoreError::KeyExhausted { p: 3, q: -4 }) => {}
        other => panic!("expected KeyExhausted for (3, -4), got {other:?}"),
    }
    // Nothing of the failed batch was kept, in any chunk.
    assert_eq!(store.load_chunk(other, 0).await.expect("load").head, 0);
    let data = store.load_chunk(full, 0).await.expect("load");
    assert_eq!(data.blocks.len(), 1);
    assert_eq!(data.head, MAX_KEY - 1);
    // The same where many rows of a chunk not seen yet take the COPY path.
    let wide = ChunkPos::new(1, -4);
    let mut big = Batch::new();
    for i in 0..5_000 {
        let pos = BlockPos::new(32 + i % 32, 1 + i / 1024, -128 + (i / 32) % 32);
        big.set_block(wide, pos, 1, meta());
    }
    big.set_block(full, BlockPos::new(97, 5, -128), 2, meta());
    big.set_block(full, BlockPos::new(98, 5, -128), 2, meta());
    match store.apply(&big).await {
        Err(StoreError::KeyExhausted { p: 3, q: -4 }) => {}
        other => panic!("expected KeyExhausted for (3, -4), got {other:?}"),
    }
    assert_eq!(store.load_chunk(wide, 0).await.expect("load").head, 0);

    // One more key still fits; then even a light cannot advance the head.
    let mut one = Batch::new();
    one.set_block(full, BlockPos::new(97, 5, -128), 2, meta());
    let receipt = store.apply(&one).await.expect("the last key");
    assert_eq!(receipt.chunks[0].after, MAX_KEY);
    let mut light = Batch::new();
    light.set_light(full, BlockPos::new(97, 5, -128), 3, meta());
    assert!(matches!(
        store.apply(&light).await,
        Err(StoreError::KeyExhausted { p: 3, q: -4 })
    ));
    // The store is still usable.
    store.ping().await.expect("ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_of_an_empty_schema_all_succeed() {
    let Some(url) = common::url() else {
        return;
    };
    let schema = common::unique("migrate");
    let config = common::settings(&url, &schema, &[("pool_size", "1")]);
    let opens =
        futures::future::join_all((0..6).map(|_| PostgresStore::open(config.clone()))).await;
    let stores: Vec<PostgresStore> = opens
        .into_iter()
        .map(|r| r.expect("concurrent open"))
        .collect();

    let admin = common::admin(&url).await;
    let rows = admin
        .query(
            &format!(
                "SELECT version, applied_at FROM \"{schema}\".schema_migrations ORDER BY version"
            ),
            &[],
        )
        .await
        .expect("migrations table");
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    let expected: Vec<i32> = (1..=pg_sql::LATEST_VERSION).collect();
    assert_eq!(versions, expected, "each migration recorded once");
    let applied_at: Vec<std::time::SystemTime> = rows.iter().map(|r| r.get(1)).collect();

    // Every store works on the shared schema.
    let mut batch = Batch::new();
    batch.set_block(ChunkPos::new(0, 0), BlockPos::new(1, 1, 1), 1, meta());
    for store in &stores {
        store.apply(&batch).await.expect("apply");
    }
    assert_eq!(
        stores[0]
            .load_chunk(ChunkPos::new(0, 0), 0)
            .await
            .expect("load")
            .head,
        6
    );

    // Reopening a migrated schema changes nothing.
    let again = PostgresStore::open(config.clone()).await.expect("reopen");
    let rows = admin
        .query(
            &format!("SELECT applied_at FROM \"{schema}\".schema_migrations ORDER BY version"),
            &[],
        )
        .await
        .expect("migrations table");
    let after: Vec<std::time::SystemTime> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(after, applied_at, "reopening re-ran a migration");
    assert_eq!(
        again
            .load_chunk(ChunkPos::new(0, 0), 0)
            .await
            .expect("load")
            .blocks
            .len(),
        1
    );

    // A schema migrated by a newer server is refused, not damaged.
    admin
        .execute(
            &format!(
                "INSERT INTO \"{schema}\".schema_migrations (version, name) VALUES (999, 'future')"
            ),
            &[],
        )
        .await
        .expect("future version");
    match PostgresStore::open(config).await {
        Err(StoreError::Corrupt(message)) => assert!(message.contains("999"), "{message}"),
        other => panic!("expected Corrupt for a newer schema, got {other:?}"),
    }
    for store in stores {
        store.close().await.expect("close");
    }
    common::drop_schema(&url, &schema);
}

/// Two stores (two pools, as two servers) on one database: every write to
/// distinct blocks is kept, a contested block ends with the last committed
/// value, and keys are never shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_share_one_schema() {
    let Some(first) = common::fresh("shared").await else {
        return;
    };
    let config = common::settings(&first.url, &first.schema, &[]);
    let second = PostgresStore::open(config).await.expect("second store");
    let stores: [&dyn BlockStore; 2] = [&first, &second];
    let chunks = [
        ChunkPos::new(0, 0),
        ChunkPos::new(1, 0),
        ChunkPos::new(0, 1),
    ];
    let contested = BlockPos::new(5, 100, 5);

    let rounds = 25;
    let mut tasks = Vec::new();
    for (s, store) in stores.into_iter().enumerate() {
        tasks.push(async move {
            let mut receipts = Vec::new();
            for round in 0..rounds {
                let mut batch = Batch::new();
                // Own blocks in every chunk (ascending and descending chunk
                // order across the two stores would deadlock without the
                // sorted locking).
                for chunk in chunks {
                    for i in 0..10 {
                        let pos = BlockPos::new(
                            chunk.p * 32 + i,
                            1 + round,
                            chunk.q * 32 + 10 + s as i32,
                        );
                        batch.set_block(chunk, pos, 1 + s as i32, meta());
                    }
                }
                let value = 1000 * (s as i32 + 1) + round;
                batch.set_block(chunks[0], contested, value % 200, meta());
                let receipt = store.apply(&batch).await.expect("concurrent apply");
                receipts.push((receipt, value % 200));
            }
            receipts
        });
    }
    let results = futures::future::join_all(tasks).await;

    // Keys: per chunk, the ranges of all batches are disjoint.
    for chunk in chunks {
        let mut ranges: Vec<(Key, Key)> = results
            .iter()
            .flatten()
            .filter_map(|(r, _)| {
                r.chunks
                    .iter()
                    .find(|a| a.chunk == chunk)
                    .map(|a| (a.before, a.after))
            })
            .collect();
        ranges.sort_unstable();
        assert_eq!(ranges.len(), 2 * rounds as usize);
        for pair in ranges.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1,
                "overlapping key ranges in {chunk}: {pair:?}"
            );
        }
        let data = first.load_chunk(chunk, 0).await.expect("load");
        let keys: BTreeSet<Key> = data.blocks.iter().map(|b| b.key).collect();
        assert_eq!(keys.len(), data.blocks.len(), "a key was shared in {chunk}");
        let own = data.blocks.iter().filter(|b| b.pos != contested).count();
        assert_eq!(own, 2 * rounds as usize * 10, "lost writes in {chunk}");
        assert_eq!(data.head, ranges.last().map_or(0, |r| r.1));
    }
    // The contested block holds the value of the batch that committed last,
    // i.e. the one with the greatest head in chunk 0.
    let last = results
        .iter()
        .flatten()
        .max_by_key(|(r, _)| {
            r.chunks
                .iter()
                .find(|a| a.chunk == chunks[0])
                .map(|a| a.after)
        })
        .map(|(_, v)| *v);
    let data = second.load_chunk(chunks[0], 0).await.expect("load");
    let stored: BTreeMap<BlockPos, i32> = data.blocks.iter().map(|b| (b.pos, b.w)).collect();
    assert_eq!(stored.get(&contested).copied(), last);
    second.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_errors_are_config_errors() {
    let Some(url) = common::url() else {
        return;
    };
    // An unknown database.
    let mut no_such_database = url::Url::parse(&url).expect("url");
    no_such_database.set_path("/craft_no_such_database");
    let config = common::config(&common::with_params(
        no_such_database.as_str(),
        &[("connect_timeout", "5s")],
    ));
    match PostgresStore::open(config).await {
        Err(StoreError::Config(message)) => assert!(message.contains("3D000"), "{message}"),
        other => panic!("expected Config for an unknown database, got {other:?}"),
    }

    // A table dropped under a running store.
    let Some(test) = common::fresh("dropped").await else {
        return;
    };
    let admin = common::admin(&test.url).await;
    admin
        .batch_execute(&format!("DROP TABLE \"{}\".block", test.schema))
        .await
        .expect("drop table");
    match test.load_chunk(ChunkPos::new(0, 0), 0).await {
        Err(StoreError::Config(message)) => {
            assert!(
                message.contains("load_chunk (0, 0)") && message.contains("42P01"),
                "{message}"
            )
        }
        other => panic!("expected Config for a missing table, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_batches_change_nothing_and_keep_the_store_usable() {
    let Some(test) = common::fresh("invalid").await else {
        return;
    };
    let chunk = ChunkPos::new(0, 0);
    let mut bad = Batch::new();
    bad.set_block(chunk, BlockPos::new(1, 1, 1), 300, meta());
    assert!(matches!(
        test.apply(&bad).await,
        Err(StoreError::Invalid(_))
    ));
    // A time no database can represent is refused before anything is
    // sent, as invalid data.
    let mut far = Batch::new();
    far.set_block(
        chunk,
        BlockPos::new(1, 1, 1),
        1,
        ChangeMeta {
            user: None,
            time_ms: Some(i64::MAX),
        },
    );
    match test.apply(&far).await {
        Err(StoreError::Invalid(message)) => assert!(message.contains("1970..=9999"), "{message}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let data = test.load_chunk(chunk, 0).await.expect("load");
    assert!(data.is_empty() && data.head == 0, "{data:?}");
    let mut good = Batch::new();
    good.set_block(chunk, BlockPos::new(1, 1, 1), 1, meta());
    test.apply(&good).await.expect("apply after failures");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_stays_out_of_debug_output() {
    let Some(url) = common::url() else {
        return;
    };
    // The test server trusts local connections, so any password works.
    let secret = "pg-secret-do-not-print";
    let schema = common::unique("secret");
    let mut with_password = url::Url::parse(&url).expect("url");
    with_password.set_password(Some(secret)).expect("password");
    let config = common::settings(with_password.as_str(), &schema, &[]);
    assert!(!format!("{config:?}").contains(secret));
    let store = PostgresStore::open(config).await.expect("open");
    let text = format!("{store:?}");
    assert!(!text.contains(secret), "{text}");
    assert!(text.contains(":***@"), "{text}");
    store.close().await.expect("close");
    common::drop_schema(&url, &schema);
}

/// A schema left at version 3 by an older server (with the `(p, q, key)`
/// index and full pages) migrates to 4 on open: the index goes, the block
/// table gets `fillfactor = 50`, and its rows read as before, incremental
/// loads included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_4_applies_on_a_version_3_schema() {
    let Some(url) = common::url() else {
        return;
    };
    let schema = common::unique("v3");
    let name = pg_sql::SchemaName::new(&schema).expect("schema name");
    let script = pg_sql::MigrationScript::new(&name);
    let admin = common::admin(&url).await;
    // What a version-3 server ran: the prelude and migrations 1 to 3.
    let mut v3 = String::from("BEGIN;\n");
    for statement in &script.prelude {
        v3.push_str(statement);
        v3.push_str(";\n");
    }
    for migration in script.migrations.iter().filter(|m| m.version <= 3) {
        for statement in migration.statements.iter().chain([&migration.record]) {
            v3.push_str(statement);
            v3.push_str(";\n");
        }
    }
    v3.push_str(&format!(
        "INSERT INTO \"{schema}\".chunk (p, q, key) VALUES (0, 0, 2);\n\
         INSERT INTO \"{schema}\".block (p, q, x, y, z, w, key) VALUES \
         (0, 0, 1, 1, 1, 5, 1), (0, 0, 2, 1, 1, 6, 2);\n\
         COMMIT"
    ));
    admin.batch_execute(&v3).await.expect("a version-3 schema");
    let index = format!("SELECT to_regclass('\"{schema}\".block_p_q_key') IS NOT NULL");
    let has_index: bool = admin
        .query_one(&index, &[])
        .await
        .expect("index lookup")
        .get(0);
    assert!(has_index, "version 3 has the (p, q, key) index");

    let store = PostgresStore::open(common::settings(&url, &schema, &[]))
        .await
        .expect("open migrates");
    let versions: Vec<i32> = admin
        .query(
            &format!("SELECT version FROM \"{schema}\".schema_migrations ORDER BY version"),
            &[],
        )
        .await
        .expect("migrations table")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    let has_index: bool = admin
        .query_one(&index, &[])
        .await
        .expect("index lookup")
        .get(0);
    assert!(!has_index, "migration 4 drops the (p, q, key) index");
    let options: Option<Vec<String>> = admin
        .query_one(
            &format!("SELECT reloptions FROM pg_class WHERE oid = '\"{schema}\".block'::regclass"),
            &[],
        )
        .await
        .expect("reloptions")
        .get(0);
    assert_eq!(options, Some(vec!["fillfactor=50".to_owned()]));

    // The old rows read as before, in full and since a key.
    let chunk = ChunkPos::new(0, 0);
    let all = store.load_chunk(chunk, 0).await.expect("load");
    assert_eq!((all.head, all.blocks.len()), (2, 2));
    let since = store.load_chunk(chunk, 1).await.expect("load since");
    assert_eq!(since.blocks.len(), 1);
    // Updates of old rows get new keys and are seen since the old head.
    let mut batch = Batch::new();
    batch.set_block(chunk, BlockPos::new(1, 1, 1), 7, meta());
    let receipt = store.apply(&batch).await.expect("update");
    assert_eq!(receipt.chunks[0].after, 3);
    let since = store.load_chunk(chunk, 2).await.expect("load since");
    assert_eq!(since.blocks.len(), 1);
    store.close().await.expect("close");
    common::drop_schema(&url, &schema);
}

/// A store sends the block rows of chunks it has not seen with a head as
/// plain inserts. When another server created the chunk meanwhile and the
/// position exists, the guess fails with a unique violation: the batch is
/// applied again by upserts (one more round trip), nothing is lost or
/// doubled, and the chunk is known from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_guessed_new_that_exists_is_upserted() {
    let Some(first) = common::fresh("guess").await else {
        return;
    };
    let config = common::settings(&first.url, &first.schema, &[]);
    let other = PostgresStore::open(config).await.expect("second store");
    let chunk = ChunkPos::new(2, 3);
    let pos = BlockPos::new(70, 9, 100);
    let mut batch = Batch::new();
    batch.set_block(chunk, pos, 1, meta());
    batch.set_block(chunk, BlockPos::new(71, 9, 100), 1, meta());
    other
        .apply(&batch)
        .await
        .expect("created by the other store");

    let store: &dyn BlockStore = &first;
    let before = requests(store, "apply");
    let mut batch = Batch::new();
    batch.set_block(chunk, pos, 5, meta());
    batch.set_block(chunk, BlockPos::new(72, 9, 100), 6, meta());
    let receipt = store.apply(&batch).await.expect("guess corrected");
    assert_eq!((receipt.chunks[0].before, receipt.chunks[0].after), (2, 4));
    assert_eq!(requests(store, "apply") - before, 2.0, "one retry");
    let data = store.load_chunk(chunk, 0).await.expect("load");
    let mut blocks: Vec<(i32, i32, Key)> =
        data.blocks.iter().map(|b| (b.pos.x, b.w, b.key)).collect();
    blocks.sort_unstable();
    assert_eq!(blocks, [(70, 5, 3), (71, 1, 2), (72, 6, 4)]);

    // Known now: the next batch is one round trip again.
    let before = requests(store, "apply");
    let mut batch = Batch::new();
    batch.set_block(chunk, pos, 7, meta());
    store.apply(&batch).await.expect("upsert");
    assert_eq!(requests(store, "apply") - before, 1.0);
    // A new chunk's rows go in as plain inserts, in one round trip.
    let before = requests(store, "apply");
    let mut batch = Batch::new();
    batch.set_block(ChunkPos::new(9, 9), BlockPos::new(290, 9, 290), 7, meta());
    store.apply(&batch).await.expect("insert");
    assert_eq!(requests(store, "apply") - before, 1.0);
    // A batch of more rows than one statement takes, with a new chunk of
    // many rows: those go in by COPY with their final keys (three round
    // trips: heads; COPY; the known chunk's rows in pipelined pieces, and
    // COMMIT), every row written once.
    let big = ChunkPos::new(-4, 5);
    let mut batch = Batch::new();
    for i in 0..40_000 {
        let pos = BlockPos::new(-128 + i % 32, 1 + i / 1024, 160 + (i / 32) % 32);
        batch.set_block(big, pos, 1 + i % 60, meta());
        batch.set_block(
            chunk,
            BlockPos::new(64 + i % 32, 20 + i / 1024, 96 + (i / 32) % 32),
            2,
            meta(),
        );
    }
    let before = requests(store, "apply");
    let receipt = store.apply(&batch).await.expect("large batch");
    assert_eq!(requests(store, "apply") - before, 3.0);
    assert_eq!(receipt.chunks.len(), 2);
    let data = store.load_chunk(big, 0).await.expect("load");
    assert_eq!(data.blocks.len(), 40_000);
    assert_eq!(data.head, 40_000);
    let keys: std::collections::BTreeSet<Key> = data.blocks.iter().map(|b| b.key).collect();
    assert_eq!(keys.len(), 40_000, "every key once");
    other.close().await.expect("close");
}

/// Rows of chunks the store knows go through one `MERGE` (PostgreSQL 15
/// and later), which does not insert speculatively. A writer that inserts
/// a block row without taking its chunk's row first (not this store, which
/// always does; a hand-written script could) makes the `MERGE` fail with a
/// unique violation once it commits: the batch is applied again by
/// upserts, and nothing is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_inserted_behind_the_chunk_lock_is_upserted() {
    let Some(test) = common::fresh("merge").await else {
        return;
    };
    let store: &dyn BlockStore = &test;
    let chunk = ChunkPos::new(1, 1);
    let mut batch = Batch::new();
    batch.set_block(chunk, BlockPos::new(40, 9, 40), 1, meta());
    store.apply(&batch).await.expect("chunk known");

    // An uncommitted row at a position the store is about to write: the
    // store's statement waits on it, then meets it once it commits.
    let intruder = common::admin(&test.url).await;
    let version: i32 = intruder
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .expect("version")
        .get(0);
    intruder
        .batch_execute(&format!(
            "BEGIN; INSERT INTO \"{}\".block (p, q, x, y, z, w, key) VALUES (1, 1, 41, 9, 40, 3, 1)",
            test.schema
        ))
        .await
        .expect("intruding insert");
    let committer = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        intruder.batch_execute("COMMIT").await.expect("commit");
    });
    let before = requests(store, "apply");
    let mut batch = Batch::new();
    batch.set_block(chunk, BlockPos::new(40, 9, 40), 5, meta());
    batch.set_block(chunk, BlockPos::new(41, 9, 40), 6, meta());
    let receipt = store.apply(&batch).await.expect("applied");
    committer.await.expect("committer");
    assert_eq!((receipt.chunks[0].before, receipt.chunks[0].after), (1, 3));
    let merged = requests(store, "apply") - before;
    let data = store.load_chunk(chunk, 0).await.expect("load");
    let mut blocks: Vec<(i32, i32, Key)> =
        data.blocks.iter().map(|b| (b.pos.x, b.w, b.key)).collect();
    blocks.sort_unstable();
    assert_eq!(blocks, [(40, 5, 2), (41, 6, 3)]);
    // Two round trips where MERGE ran and failed; one where the server
    // has no MERGE and the upsert waited for the intruder instead.
    let expected = if version >= 150_000 { 2.0 } else { 1.0 };
    assert_eq!(merged, expected, "round trips on server {version}");
}

/// Many rows of chunks a store has not seen go by COPY once the heads show
/// which chunks the batch created; a chunk guessed new that another store
/// created meanwhile gets its rows merged with the right keys instead (no
/// retry), and rows keep their own time or take the transaction's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_of_new_chunks_are_copied_with_their_keys_and_times() {
    let Some(first) = common::fresh("copy").await else {
        return;
    };
    let config = common::settings(&first.url, &first.schema, &[]);
    let other = PostgresStore::open(config).await.expect("second store");
    let taken = ChunkPos::new(3, 3);
    let mut batch = Batch::new();
    batch.set_block(taken, BlockPos::new(96, 1, 96), 9, meta());
    other
        .apply(&batch)
        .await
        .expect("created by the other store");

    let store: &dyn BlockStore = &first;
    let fresh = ChunkPos::new(4, 3);
    let mut batch = Batch::new();
    let untimed = ChangeMeta {
        user: None,
        time_ms: None,
    };
    for i in 0..5_000 {
        let pos =
            |base: i32, y: i32| BlockPos::new(base + i % 32, y + i / 1024, 96 + (i / 32) % 32);
        let m = if i == 7 { untimed.clone() } else { meta() };
        batch.set_block(fresh, pos(128, 1), 1 + i % 60, m);
        batch.set_block(taken, pos(96, 1), 2, meta());
    }
    let before = requests(store, "apply");
    let started = std::time::SystemTime::now();
    let receipt = store.apply(&batch).await.expect("copied");
    assert_eq!(requests(store, "apply") - before, 3.0, "no retry");
    let heads: Vec<(ChunkPos, Key, Key)> = receipt
        .chunks
        .iter()
        .map(|c| (c.chunk, c.before, c.after))
        .collect();
    assert_eq!(heads, [(taken, 1, 5_001), (fresh, 0, 5_000)]);
    for (chunk, low) in [(fresh, 1), (taken, 2)] {
        let data = store.load_chunk(chunk, 0).await.expect("load");
        assert_eq!(data.blocks.len(), 5_000);
        let keys: BTreeSet<Key> = data.blocks.iter().map(|b| b.key).collect();
        assert_eq!(keys.len(), 5_000, "every key once in {chunk}");
        assert_eq!(keys.first().copied(), Some(low));
        assert_eq!(keys.last().copied(), Some(data.head));
    }
    // Row i = 7 of the new chunk has no time: it took the transaction's.
    let admin = common::admin(&first.url).await;
    let times: Vec<(i32, f64)> = admin
        .query(
            &format!(
                "SELECT x::int4, extract(epoch FROM updated_at)::float8 FROM \"{}\".block \
                 WHERE p = 4 AND q = 3 AND y = 1 AND z = 96 AND x IN (135, 136) ORDER BY x",
                first.schema
            ),
            &[],
        )
        .await
        .expect("times")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let since = started
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert_eq!(times.len(), 2);
    assert_eq!(times[0].0, 135);
    assert!(
        (times[0].1 - since).abs() < 60.0,
        "transaction time {times:?}"
    );
    assert_eq!(times[1], (136, 1_764_000_000.0));
    other.close().await.expect("close");
}
