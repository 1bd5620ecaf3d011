//! What sustained edits cost: requests and write units per 1,000 edits,
//! from the store's own counters (requests counted by its SDK interceptor,
//! write units estimated from item sizes by DynamoDB's rules) and from what
//! moto reports as consumed; and how many requests a chunk load takes.
//! The workload is `craft-bench stores`' sustained phase: batches of 1,000
//! edits over 100 chunks of 100 blocks each, 10 edits per chunk per batch.
//! `cargo test -p store-dynamodb --test cost -- --nocapture` prints them.

mod common;

use store_dynamodb::DynamoStore;
use store_dynamodb::metrics::{
    COMPACTIONS, CONSUMED_WCU, ESTIMATED_RCU, ESTIMATED_WCU, FOLDS, REQUESTS, SMALL_SHARES,
};
use world_core::store::{Batch, BlockStore, ChangeMeta};
use world_core::{BlockPos, ChunkPos};

/// On-demand price of a million write request units (us-east-1).
const DOLLARS_PER_MILLION_WRU: f64 = 0.625;
/// The target: dollars per million sustained edits.
const TARGET_DOLLARS_PER_MILLION_EDITS: f64 = 0.25;

const CHUNKS: i32 = 100;
const EDITS: usize = 1_000;

fn meta() -> ChangeMeta {
    ChangeMeta {
        user: Some("cost".into()),
        time_ms: Some(1),
    }
}

fn chunk(i: i32) -> ChunkPos {
    ChunkPos::new(i % 10, i / 10)
}

fn pos(c: ChunkPos, j: usize, y: i32) -> BlockPos {
    let j = j as i32;
    BlockPos::new(c.p * 32 + j % 32, y + j / 32, c.q * 32 + (j * 7) % 32)
}

/// `(requests, estimated WRU, moto's WCU)` so far.
fn usage(store: &DynamoStore) -> (f64, f64, f64) {
    (
        store.counter_total(REQUESTS),
        store.counter_total(ESTIMATED_WCU),
        store.counter_total(CONSUMED_WCU),
    )
}

/// What the sustained workload cost with `compact_after`: the store,
/// requests and dollars per million edits (asserted below the target).
async fn sustained(compact_after: usize) -> Option<(DynamoStore, f64, f64)> {
    let endpoint = world_core::conformance::test_service(common::ENDPOINT_VAR)?;
    let mut config = common::config(&endpoint, "cost");
    config.compact_after = compact_after;
    // Replaced items are deleted at once, so that their deletion is in the
    // counts (with a grace, it happens later, at the same price).
    config.compact_grace = std::time::Duration::ZERO;
    let store = common::open(config).await;
    // The world: 100 chunks of 100 blocks (one large share each).
    let mut world = Batch::new();
    for i in 0..CHUNKS {
        let c = chunk(i);
        for j in 0..100 {
            world.set_block(c, pos(c, j, 10), 1 + (j % 50) as i32, meta());
        }
    }
    store.apply(&world).await.expect("import");

    // 20 intervals of 1,000 edits, 10 per chunk: half updates of imported
    // blocks, half new positions; enough rounds for every chunk's log list
    // to be folded at least once, so that upkeep is in the cost.
    let rounds = 20;
    let before = usage(&store);
    for round in 0..rounds {
        let mut batch = Batch::new();
        for k in 0..EDITS {
            let c = chunk((k % CHUNKS as usize) as i32);
            let j = k / CHUNKS as usize;
            let y = if j.is_multiple_of(2) { 10 } else { 40 };
            batch.set_block(
                c,
                pos(c, j + round, y),
                1 + ((k + round) % 60) as i32,
                meta(),
            );
        }
        store.apply(&batch).await.expect("apply");
    }
    let after = usage(&store);
    let per_1000 = |a: f64, b: f64| (a - b) / (rounds * EDITS) as f64 * 1000.0;
    let requests = per_1000(after.0, before.0);
    let wru = per_1000(after.1, before.1);
    let moto_wcu = per_1000(after.2, before.2);
    let dollars = wru * 1000.0 * DOLLARS_PER_MILLION_WRU / 1e6;
    eprintln!(
        "compact_after={compact_after}: cost per 1,000 edits: {requests:.1} requests, {wru:.1} WRU estimated, {moto_wcu:.1} WCU reported by moto; ${dollars:.4} per million edits; {} small shares, {} folds, {} compactions",
        store.counter_total(SMALL_SHARES),
        store.counter_total(FOLDS),
        store.counter_total(COMPACTIONS),
    );
    for c in store.counters() {
        if c.name == ESTIMATED_WCU || c.name == REQUESTS {
            eprintln!("  {} {:?}: {:.0} in all", c.name, c.labels, c.value);
        }
    }
    assert!(
        store.counter_total(FOLDS) + store.counter_total(COMPACTIONS) >= f64::from(CHUNKS),
        "every chunk's log list was folded"
    );
    assert!(
        dollars <= TARGET_DOLLARS_PER_MILLION_EDITS,
        "${dollars} per million edits ({wru} WRU per 1,000)"
    );
    Some((store, requests, dollars))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacting_often_still_costs_less_than_the_target() {
    // A fold every 3 writes of a chunk, a compaction (the whole chunk
    // rewritten, the replaced items deleted) every 3 folds.
    let Some((store, requests, _)) = sustained(2).await else {
        return;
    };
    assert!(store.counter_total(COMPACTIONS) >= f64::from(CHUNKS));
    assert!(requests <= 230.0, "{requests} requests per 1,000 edits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_edits_cost_at_most_a_quarter_dollar_per_million() {
    let Some((store, requests, _)) = sustained(16).await else {
        return;
    };
    assert!(
        requests <= 115.0,
        "{requests} requests per 1,000 edits (one per chunk and interval, plus folds)"
    );

    // Loads: a whole chunk, and since a recent key, in at most 2 requests.
    let c = chunk(7);
    let (r0, _, _) = usage(&store);
    let rcu0 = store.counter_total(ESTIMATED_RCU);
    let full = store.load_chunk(c, 0).await.expect("load");
    let (r1, _, _) = usage(&store);
    assert!(full.blocks.len() >= 100, "{}", full.blocks.len());
    assert!(r1 - r0 <= 2.0, "a full load took {} requests", r1 - r0);
    let mut batch = Batch::new();
    for j in 0..10 {
        batch.set_block(c, pos(c, j, 80), 3, meta());
    }
    store.apply(&batch).await.expect("apply");
    let (r2, _, _) = usage(&store);
    let since = store.load_chunk(c, full.head).await.expect("load since");
    let (r3, _, _) = usage(&store);
    assert_eq!(since.blocks.len(), 10);
    assert!(r3 - r2 <= 2.0, "a since load took {} requests", r3 - r2);
    eprintln!(
        "loads: full ({} blocks) {} requests, since {} requests; {:.1} RCU estimated",
        full.blocks.len(),
        r1 - r0,
        r3 - r2,
        store.counter_total(ESTIMATED_RCU) - rcu0
    );
}
