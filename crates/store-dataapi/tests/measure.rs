//! Quick measurements (not a benchmark harness; that lives in `benches`).
//! Timings are printed, never asserted:
//!
//! ```text
//! CRAFT_TEST_DATAAPI_ENDPOINT=http://127.0.0.1:8090 \
//! CRAFT_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo test -p store-dataapi --release --test measure -- --ignored --nocapture
//! ```
//!
//! Each store (Data API with `write_form=values` and `json`, and
//! store-postgres over the same PostgreSQL server when
//! `CRAFT_TEST_POSTGRES_URL` is set) writes a 100,000-change batch, loads
//! chunks of 100, 1,000 and 20,000 changes, and runs small batches as a game
//! server does; the Data API lines add requests per 1,000 edits and a price
//! estimate per million edits.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use store_dataapi::DataApiStore;
use store_dataapi::counters::{BILLED_UNITS, REQUESTS};
use world_core::coords::ChunkPos;
use world_core::store::{Batch, ChangeMeta, StoreCounter};
use world_core::{BlockPos, BlockStore};

/// The Data API's price per million requests (us-east-1, first billion a
/// month), for the estimate only.
const DOLLARS_PER_MILLION_REQUESTS: f64 = 0.35;

fn meta() -> ChangeMeta {
    ChangeMeta {
        user: Some(Arc::from("measure")),
        time_ms: Some(1_764_000_000_000),
    }
}

/// `per_chunk` block writes in each of `chunks` chunks starting at `first`.
fn batch(first: ChunkPos, chunks: i32, per_chunk: i32, w: i32) -> Batch {
    let mut batch = Batch::new();
    for c in 0..chunks {
        let chunk = ChunkPos::new(first.p + c % 10, first.q + c / 10);
        for i in 0..per_chunk {
            let pos = BlockPos::new(
                chunk.p * 32 + i % 32,
                1 + i / 1024,
                chunk.q * 32 + (i / 32) % 32,
            );
            batch.set_block(chunk, pos, w, meta());
        }
    }
    batch
}

fn total(counters: &[StoreCounter], name: &str) -> f64 {
    counters
        .iter()
        .filter(|c| c.name == name)
        .map(|c| c.value)
        .sum()
}

/// Requests (and billed units) a call made, from the counters around it.
struct Meter<'a> {
    store: &'a dyn BlockStore,
    requests: f64,
    units: f64,
}

impl<'a> Meter<'a> {
    fn start(store: &'a dyn BlockStore) -> Self {
        let counters = store.counters();
        Self {
            store,
            requests: total(&counters, REQUESTS),
            units: total(&counters, BILLED_UNITS),
        }
    }

    fn read(&self) -> (f64, f64) {
        let counters = self.store.counters();
        (
            total(&counters, REQUESTS) - self.requests,
            total(&counters, BILLED_UNITS) - self.units,
        )
    }
}

async fn measure(name: &str, store: &dyn BlockStore) {
    println!("== {name}");
    // ---- one 100,000-change batch (100 chunks of 1,000) ----
    let big = batch(ChunkPos::new(0, 0), 100, 1_000, 3);
    let meter = Meter::start(store);
    let started = Instant::now();
    store.apply(&big).await.expect("100,000-change batch");
    let took = started.elapsed();
    let (requests, units) = meter.read();
    println!(
        "apply 100,000 changes: {:>8.2?}  {requests:>5} requests  {units:>6} billed units",
        took
    );

    // ---- loads of chunks with 100 / 1,000 / 20,000 changes ----
    for (i, n) in [100, 1_000, 20_000].into_iter().enumerate() {
        let chunk = ChunkPos::new(100 + i32::try_from(i).unwrap_or(0), 100);
        store.apply(&batch(chunk, 1, n, 5)).await.expect("fill");
        let mut best = Duration::MAX;
        let meter = Meter::start(store);
        let rounds = 5;
        for _ in 0..rounds {
            let started = Instant::now();
            let data = store.load_chunk(chunk, 0).await.expect("load");
            best = best.min(started.elapsed());
            assert_eq!(data.blocks.len(), usize::try_from(n).unwrap_or(0));
        }
        let (requests, units) = meter.read();
        println!(
            "load {n:>6} changes: best {best:>8.2?}  {:>4} requests  {:>5} billed units per load",
            requests / f64::from(rounds),
            units / f64::from(rounds)
        );
    }

    // ---- game-server-like batches: 10 edits in 2 chunks each ----
    let batches = 200;
    let meter = Meter::start(store);
    let started = Instant::now();
    for b in 0..batches {
        let mut batch = Batch::new();
        for i in 0..10 {
            let chunk = ChunkPos::new(200 + (i % 2), 200);
            let pos = BlockPos::new(chunk.p * 32 + b % 32, 10 + i, chunk.q * 32 + b / 32);
            batch.set_block(chunk, pos, 1 + (b + i) % 15, meta());
        }
        store.apply(&batch).await.expect("small batch");
    }
    let took = started.elapsed();
    let (requests, units) = meter.read();
    let edits = f64::from(batches * 10);
    println!(
        "{batches} batches of 10 edits: {:>8.2?} ({:.2?} each)  {:.0} requests per 1,000 edits  ~${:.2} per million edits",
        took,
        took / u32::try_from(batches).unwrap_or(1),
        requests / edits * 1_000.0,
        units / edits * 1_000_000.0 * DOLLARS_PER_MILLION_REQUESTS / 1_000_000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --release -- --ignored --nocapture"]
async fn measure_writes_and_loads() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    for form in ["values", "json"] {
        let store = DataApiStore::open(common::config(
            &endpoint,
            &common::unique("measure"),
            &format!("&write_form={form}"),
        ))
        .await
        .expect("open");
        measure(&format!("dataapi (write_form={form})"), &store).await;
    }
    if let Some(url) = world_core::conformance::test_service("CRAFT_TEST_POSTGRES_URL") {
        let sep = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{sep}schema={}", common::unique("measure_pg"));
        let config = store_postgres::Config::from_url(&url).expect("postgres URL");
        let store = store_postgres::PostgresStore::open(config)
            .await
            .expect("open postgres");
        measure("postgres (same server, direct)", &store).await;
    }
}
