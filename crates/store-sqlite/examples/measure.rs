//! Measures the SQLite store on a temporary file:
//!
//! - `apply` of one 100,000-change batch (new rows, then the same positions
//!   again, which replaces every row);
//! - `load_chunk` of a chunk holding 21,504 blocks, whole and incremental;
//! - small batches (the fsync per commit dominates);
//! - statements and transactions per batch, from the store's counters.
//!
//! ```text
//! cargo run --release -p store-sqlite --example measure [-- sqlite-url-parameters]
//! ```
//!
//! An optional argument is appended to the URL as its query, e.g.
//! `synchronous=normal`.

use std::time::{Duration, Instant};

use store_sqlite::{Config, SqliteStore};
use world_core::store::{Batch, ChangeMeta};
use world_core::{BlockPos, BlockStore, ChunkPos};

fn counter(store: &SqliteStore, name: &str, op: &str) -> f64 {
    store
        .counters()
        .iter()
        .find(|c| c.name == name && c.labels.iter().any(|(_, v)| v == op))
        .map(|c| c.value)
        .unwrap_or(0.0)
}

fn meta() -> ChangeMeta {
    ChangeMeta {
        user: Some("measure".into()),
        time_ms: Some(1_764_000_000_000),
    }
}

/// 100,000 block writes over a 10 x 10 chunk area, 1,000 per chunk.
fn big_batch(w: i32) -> Batch {
    let mut batch = Batch::new();
    for p in 0..10 {
        for q in 0..10 {
            let chunk = ChunkPos::new(p, q);
            for i in 0..1000 {
                let pos = BlockPos::new(p * 32 + i % 32, 1, q * 32 + i / 32);
                batch.set_block(chunk, pos, w, meta());
            }
        }
    }
    batch
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let query = std::env::args().nth(1).unwrap_or_default();
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite:{}?{query}", dir.path().join("measure.db").display());
    let store = SqliteStore::open(Config::from_url(&url)?).await?;
    println!("store: {}", store.config());

    // One 100,000-change batch, twice (insert, then replace every row).
    for (label, w) in [("insert", 1), ("replace", 2)] {
        let batch = big_batch(w);
        assert_eq!(batch.len(), 100_000);
        let statements = counter(&store, "store_statements_total", "apply");
        let started = Instant::now();
        let receipt = store.apply(&batch).await?;
        let elapsed = started.elapsed();
        let statements = counter(&store, "store_statements_total", "apply") - statements;
        println!(
            "apply 100,000 changes ({label}, {} chunks): {}, {statements} statements in 1 transaction, {:.0} changes/s",
            receipt.chunks.len(),
            ms(elapsed),
            100_000.0 / elapsed.as_secs_f64()
        );
    }

    // A chunk with 21,504 blocks (21 layers of 32 x 32).
    let chunk = ChunkPos::new(-3, 7);
    let mut batch = Batch::new();
    for y in 1..=21 {
        for dx in 0..32 {
            for dz in 0..32 {
                batch.set_block(
                    chunk,
                    BlockPos::new(-96 + dx, y, 224 + dz),
                    1 + (dx + dz) % 15,
                    meta(),
                );
            }
        }
    }
    store.apply(&batch).await?;
    let whole = store.load_chunk(chunk, 0).await?;
    let mut keys: Vec<i64> = whole.blocks.iter().map(|b| b.key).collect();
    keys.sort_unstable();
    let middle = keys[keys.len() / 2];
    for (label, since) in [
        ("whole", 0),
        ("since the middle key", middle),
        ("since the head", whole.head),
    ] {
        let runs = 20;
        let started = Instant::now();
        let mut rows = 0;
        for _ in 0..runs {
            rows = store.load_chunk(chunk, since).await?.blocks.len();
        }
        println!(
            "load_chunk of a 21,504-block chunk, {label}: {} per call ({rows} blocks), 1 transaction, 4 statements",
            ms(started.elapsed() / runs)
        );
    }

    // Small batches: what a server commits every few hundred milliseconds.
    for size in [1i32, 10, 100] {
        let batches: i32 = 200;
        let before_tx = counter(&store, "store_requests_total", "apply");
        let before_st = counter(&store, "store_statements_total", "apply");
        let started = Instant::now();
        for i in 0..batches {
            let mut batch = Batch::new();
            for j in 0..size {
                let pos = BlockPos::new(500 + j % 32, 1 + (i % 200), 500 + j / 32);
                batch.set_block(pos.chunk(), pos, 3, meta());
            }
            store.apply(&batch).await?;
        }
        let per = started.elapsed() / batches.unsigned_abs();
        let tx = counter(&store, "store_requests_total", "apply") - before_tx;
        let st = counter(&store, "store_statements_total", "apply") - before_st;
        let edits = f64::from(batches * size);
        println!(
            "batches of {size:>3} changes: {} per apply, {:.1} statements per batch, {:.1} transactions per 1,000 edits",
            ms(per),
            st / f64::from(batches),
            tx / edits * 1000.0
        );
    }
    store.close().await?;
    Ok(())
}
