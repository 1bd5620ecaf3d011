//! Quick measurements (not a benchmark harness; that lives in `benches`).
//! Timings are printed, never asserted:
//!
//! ```text
//! CRAFT_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo test -p store-postgres --release --test measure -- --ignored --nocapture
//! ```

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use store_postgres::PostgresStore;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use world_core::coords::ChunkPos;
use world_core::store::{Batch, ChangeMeta};
use world_core::{BlockPos, BlockStore};

fn meta() -> ChangeMeta {
    ChangeMeta {
        user: Some(Arc::from("measure")),
        time_ms: Some(1_764_000_000_000),
    }
}

/// `chunks` x `per_chunk` block writes (per chunk: 32 x 32 columns, rising
/// from `y0`).
fn batch(chunks: i32, per_chunk: i32, w: i32, y0: i32) -> Batch {
    let mut batch = Batch::new();
    let side = (chunks as f64).sqrt().ceil() as i32;
    for c in 0..chunks {
        let chunk = ChunkPos::new(c % side, c / side);
        for i in 0..per_chunk {
            let pos = BlockPos::new(
                chunk.p * 32 + i % 32,
                y0 + i / 1024,
                chunk.q * 32 + (i / 32) % 32,
            );
            batch.set_block(chunk, pos, w, meta());
        }
    }
    batch
}

fn requests(store: &dyn BlockStore) -> (f64, f64) {
    (
        common::counter(store, "store_requests_total", "apply"),
        common::counter(store, "store_statements_total", "apply"),
    )
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:>9.0} rows/s", n as f64 / d.as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --release -- --ignored --nocapture"]
async fn measure_writes_and_loads() {
    let Some(url) = common::url() else {
        return;
    };
    // Plain TCP like the admin connection that runs the COPY and the
    // SELECTs, so that both sides pay the same transport.
    let schema = common::unique("measure");
    let config = common::settings(&url, &schema, &[("sslmode", "disable")]);
    let store = PostgresStore::open(config).await.expect("open");
    let test = common::TestStore { store, url, schema };
    let store: &dyn BlockStore = &test;
    let admin = common::admin(&test.url).await;
    let schema = &test.schema;

    // ---- A 100,000-change batch vs a raw COPY of the same rows into an
    // equal table. Rounds alternate and the best of each is kept: this
    // machine is shared, and a busy moment should not decide. ----
    let n = 100_000;
    let inserts = batch(100, 1000, 3, 1);
    let updates = batch(100, 1000, 4, 1);
    let more = batch(100, 1000, 5, 100);
    assert_eq!(inserts.len(), n);
    admin
        .batch_execute(&format!(
            "CREATE TABLE \"{schema}\".copy_block (LIKE \"{schema}\".block INCLUDING ALL)"
        ))
        .await
        .expect("copy table");
    let when = std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_000);
    let types = [
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT4,
        Type::INT8,
        Type::TEXT,
        Type::TIMESTAMPTZ,
    ];
    let (mut best_insert, mut best_update, mut best_copy) =
        (Duration::MAX, Duration::MAX, Duration::MAX);
    let mut best_more = Duration::MAX;
    let (mut trips, mut statements) = (0.0, 0.0);
    for _ in 0..3 {
        admin
            .batch_execute(&format!(
                "TRUNCATE \"{schema}\".block, \"{schema}\".chunk, \"{schema}\".copy_block; CHECKPOINT"
            ))
            .await
            .expect("truncate");
        let (r0, s0) = requests(store);
        let started = Instant::now();
        store.apply(&inserts).await.expect("apply inserts");
        best_insert = best_insert.min(started.elapsed());
        let (r1, s1) = requests(store);
        (trips, statements) = (r1 - r0, s1 - s0);
        let started = Instant::now();
        store.apply(&updates).await.expect("apply updates");
        best_update = best_update.min(started.elapsed());
        let started = Instant::now();
        store
            .apply(&more)
            .await
            .expect("apply new rows in old chunks");
        best_more = best_more.min(started.elapsed());

        let started = Instant::now();
        let sink = admin
            .copy_in(&format!(
                "COPY \"{schema}\".copy_block (p, q, x, y, z, w, key, user_id, updated_at) FROM STDIN BINARY"
            ))
            .await
            .expect("copy in");
        let writer = BinaryCopyInWriter::new(sink, &types);
        futures::pin_mut!(writer);
        for (i, b) in inserts.blocks().enumerate() {
            let (p, q) = (i64::from(b.chunk.p), i64::from(b.chunk.q));
            let (x, y, z) = (i64::from(b.pos.x), i64::from(b.pos.y), i64::from(b.pos.z));
            let key = i as i64 + 1;
            let row: [&(dyn ToSql + Sync); 9] = [&p, &q, &x, &y, &z, &b.w, &key, &"measure", &when];
            writer.as_mut().write(&row).await.expect("copy row");
        }
        assert_eq!(writer.finish().await.expect("copy finish"), n as u64);
        best_copy = best_copy.min(started.elapsed());
    }
    let started = Instant::now();
    let plan = pg_sql::WritePlan::new(&inserts);
    println!(
        "(planning the batch into column arrays: {:?}, {} statements' rows)",
        started.elapsed(),
        plan.steps().count()
    );
    println!("100,000 block writes in 100 chunks, best of 3:");
    println!(
        "  apply, new chunks:               {:>7.1} ms {}  ({trips} round trip, {statements} statements)",
        best_insert.as_secs_f64() * 1e3,
        rate(n, best_insert),
    );
    println!(
        "  apply, new rows in old chunks:   {:>7.1} ms {}",
        best_more.as_secs_f64() * 1e3,
        rate(n, best_more),
    );
    println!(
        "  apply, updating every row:       {:>7.1} ms {}",
        best_update.as_secs_f64() * 1e3,
        rate(n, best_update),
    );
    println!(
        "  COPY BINARY into an empty table: {:>7.1} ms {}",
        best_copy.as_secs_f64() * 1e3,
        rate(n, best_copy)
    );
    println!(
        "  apply runs at {:.0}% (new chunks), {:.0}% (new rows in old chunks), {:.0}% (updates) of the COPY rate",
        100.0 * best_copy.as_secs_f64() / best_insert.as_secs_f64(),
        100.0 * best_copy.as_secs_f64() / best_more.as_secs_f64(),
        100.0 * best_copy.as_secs_f64() / best_update.as_secs_f64(),
    );

    // ---- Loads: chunks of 100, 1,000 and 20,000 changes vs a plain SELECT. ----
    let sizes = [
        (100, ChunkPos::new(200, 0)),
        (1_000, ChunkPos::new(201, 0)),
        (20_000, ChunkPos::new(202, 0)),
    ];
    let mut big = Batch::new();
    for (size, chunk) in sizes {
        for i in 0..size {
            let pos = BlockPos::new(
                chunk.p * 32 + i % 32,
                1 + i / 1024,
                chunk.q * 32 + (i / 32) % 32,
            );
            big.set_block(chunk, pos, 1 + i % 15, meta());
        }
    }
    store.apply(&big).await.expect("apply load fixtures");
    let plain = admin
        .prepare(&format!(
            "SELECT x, y, z, w, key FROM \"{schema}\".block WHERE p = $1 AND q = $2 AND key > $3"
        ))
        .await
        .expect("prepare plain select");
    println!("load_chunk (since 0) vs a plain SELECT of the same block rows:");
    for (size, chunk) in sizes {
        let reps = if size >= 20_000 { 20 } else { 200 };
        let (p, q, since) = (i64::from(chunk.p), i64::from(chunk.q), 0i64);
        // Warm both paths.
        store.load_chunk(chunk, 0).await.expect("load");
        admin
            .query(&plain, &[&p, &q, &since])
            .await
            .expect("select");
        let started = Instant::now();
        for _ in 0..reps {
            let data = store.load_chunk(chunk, 0).await.expect("load");
            assert_eq!(data.blocks.len(), size as usize);
        }
        let load = started.elapsed() / reps;
        let started = Instant::now();
        for _ in 0..reps {
            let rows = admin
                .query(&plain, &[&p, &q, &since])
                .await
                .expect("select");
            assert_eq!(rows.len(), size as usize);
        }
        let select = started.elapsed() / reps;
        println!(
            "  {size:>6} blocks: load_chunk {:>8.3} ms, plain SELECT {:>8.3} ms ({:.0}% of the SELECT's time)",
            load.as_secs_f64() * 1e3,
            select.as_secs_f64() * 1e3,
            100.0 * load.as_secs_f64() / select.as_secs_f64()
        );
    }
}
