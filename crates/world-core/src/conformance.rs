//! The conformance suite every [`BlockStore`] backend runs.
//!
//! Each check is a plain async function taking `&dyn BlockStore` that
//! panics on a violation of the trait's contract. Give each check a fresh,
//! empty store. Backends run them all with [`conformance_tests!`]:
//!
//! ```ignore
//! async fn fresh() -> Option<std::sync::Arc<dyn world_core::BlockStore>> { /* ... */ }
//! world_core::conformance_tests!(fresh);
//! ```
//!
//! `fresh` returns `None` when the backend's test service is not configured;
//! use [`test_service`] to read its address so that the test command (which
//! sets `CRAFT_TEST_REQUIRE_SERVICES=1`) fails instead of skipping.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::coords::{BlockPos, ChunkPos};
use crate::store::{
    ApplyReceipt, Area, Author, Batch, BlockStore, Change, ChangeMeta, ChunkData, ChunkHead,
    DraftChange, DraftEdit, DraftSlot, HistoryEntry, HistoryQuery, Key, MAX_KEY,
    MAX_STORED_TEXT_BYTES, PlayerRecord, StoreError, publish_draft,
};

/// Reads the address of a backend's test service from environment variable
/// `var`. When it is missing the test is skipped (`None`), unless
/// `CRAFT_TEST_REQUIRE_SERVICES` is set, in which case it panics: the test
/// command must never skip a backend silently.
pub fn test_service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os("CRAFT_TEST_REQUIRE_SERVICES").is_some() => {
            panic!(
                "{var} is not set but CRAFT_TEST_REQUIRE_SERVICES is: start the services with scripts/test.sh"
            )
        }
        _ => {
            eprintln!("skipping: {var} is not set (scripts/test.sh sets it)");
            None
        }
    }
}

/// Generates one `#[tokio::test]` per conformance check. The argument is an
/// async function returning `Option<S>` where `&*S` coerces to
/// `&dyn BlockStore` (`Arc<dyn BlockStore>`, `Box<_>`, ...); `None` skips.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@each $fresh;
            empty_chunk,
            round_trip,
            keys_grow_on_insert,
            keys_grow_on_update,
            incremental_sync,
            lights_and_signs_advance_the_head,
            changed_chunks_reports_only_newer,
            clear_removes_signs_and_zeroes_the_light,
            signs_replace_and_delete,
            sign_text_round_trips,
            far_and_negative_coordinates,
            large_chunk,
            failed_batch_leaves_nothing,
            reapplying_a_batch_is_harmless,
            concurrent_batches_never_share_keys,
            list_chunks_lists_written_chunks,
            players_round_trip,
            drafts_round_trip_and_upsert,
            drafts_never_reach_the_world,
            draft_text_round_trips,
            invalid_draft_changes_nothing,
            large_draft_publishes_whole,
            draft_conflicts_are_reported,
            ping_answers,
            close_is_final,
        );
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                match $fresh().await {
                    Some(store) => $crate::conformance::$check(&*store).await,
                    None => eprintln!("skipped {}", stringify!($check)),
                }
            }
        )*
    };
}

/// Generates one `#[tokio::test]` per history check, for backends that keep
/// block history ([`BlockStore::keeps_history`]); same argument as
/// [`conformance_tests!`].
#[macro_export]
macro_rules! history_conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@each $fresh;
            history_is_written_with_the_batch,
            history_queries_filter_and_order,
            history_survives_reapplying_once,
            failed_batch_records_no_history,
            history_pruning_by_age_and_rows,
        );
    };
}

fn meta() -> ChangeMeta {
    ChangeMeta {
        user: Some(Arc::from("conformance")),
        time_ms: Some(1_764_000_000_000),
    }
}

async fn apply(store: &dyn BlockStore, batch: &Batch) -> ApplyReceipt {
    match store.apply(batch).await {
        Ok(receipt) => receipt,
        Err(e) => panic!("{} apply failed: {e}", store.backend()),
    }
}

async fn load(store: &dyn BlockStore, chunk: ChunkPos, since: Key) -> ChunkData {
    let data = match store.load_chunk(chunk, since).await {
        Ok(data) => data,
        Err(e) => panic!("{} load_chunk{chunk} failed: {e}", store.backend()),
    };
    let positions: BTreeSet<BlockPos> = data.blocks.iter().map(|b| b.pos).collect();
    assert_eq!(
        positions.len(),
        data.blocks.len(),
        "load_chunk{chunk} returned a position twice"
    );
    for b in &data.blocks {
        assert!(
            b.key > since,
            "load_chunk{chunk} since {since} returned key {}",
            b.key
        );
        assert!((1..=MAX_KEY).contains(&b.key), "key {} out of range", b.key);
    }
    data
}

fn blocks(data: &ChunkData) -> BTreeMap<BlockPos, i32> {
    data.blocks.iter().map(|b| (b.pos, b.w)).collect()
}

fn lights(data: &ChunkData) -> BTreeMap<BlockPos, i32> {
    data.lights.iter().map(|l| (l.pos, l.w)).collect()
}

fn signs(data: &ChunkData) -> BTreeMap<(BlockPos, i32), String> {
    data.signs
        .iter()
        .map(|s| ((s.pos, s.face), s.text.clone()))
        .collect()
}

fn advance(receipt: &ApplyReceipt, chunk: ChunkPos) -> (Key, Key) {
    let found = receipt.chunks.iter().find(|a| a.chunk == chunk);
    let a = found.unwrap_or_else(|| panic!("receipt {receipt:?} lacks chunk {chunk}"));
    assert!(a.after > a.before, "head of {chunk} did not grow: {a:?}");
    assert!(a.after <= MAX_KEY);
    (a.before, a.after)
}

/// Adds block `w` at `pos` with its neighbour mirrors, as the server does.
fn place(batch: &mut Batch, pos: BlockPos, w: i32) {
    batch.set_block(pos.chunk(), pos, w, meta());
    for neighbour in pos.mirror_chunks() {
        batch.set_block(neighbour, pos, -w, meta());
    }
}

/// A chunk nobody wrote is empty, has head 0 and is never reported changed.
pub async fn empty_chunk(store: &dyn BlockStore) {
    let chunk = ChunkPos::new(3, 4);
    let data = load(store, chunk, 0).await;
    assert!(data.is_empty(), "fresh store returned {data:?}");
    assert_eq!(data.head, 0);
    let changed = store.changed_chunks(&[ChunkHead { chunk, head: 0 }]).await;
    assert_eq!(changed.expect("changed_chunks"), vec![]);
    assert_eq!(
        store.load_player("nobody").await.expect("load_player"),
        None
    );
}

/// Blocks (with mirrors), lights and signs come back exactly as written.
pub async fn round_trip(store: &dyn BlockStore) {
    let origin = ChunkPos::new(0, 0);
    let inner = BlockPos::new(1, 10, 1);
    let corner = BlockPos::new(31, 12, 31);
    let mut batch = Batch::new();
    place(&mut batch, inner, 5);
    place(&mut batch, corner, 3);
    batch.set_light(origin, inner, 15, meta());
    batch.set_sign(origin, inner, 0, "hello", meta());
    batch.set_sign(origin, inner, 3, "world", meta());
    let receipt = apply(store, &batch).await;
    let touched: Vec<ChunkPos> = receipt.chunks.iter().map(|a| a.chunk).collect();
    let expected: Vec<ChunkPos> = [(0, 0), (0, 1), (1, 0), (1, 1)]
        .map(|(p, q)| ChunkPos::new(p, q))
        .into();
    assert_eq!(
        touched, expected,
        "receipt must list every touched chunk, in order"
    );
    for a in &receipt.chunks {
        assert_eq!(a.before, 0, "fresh chunk {} had head {}", a.chunk, a.before);
    }

    let data = load(store, origin, 0).await;
    assert_eq!(blocks(&data), BTreeMap::from([(inner, 5), (corner, 3)]));
    assert_eq!(lights(&data), BTreeMap::from([(inner, 15)]));
    assert_eq!(
        signs(&data),
        BTreeMap::from([
            ((inner, 0), "hello".to_owned()),
            ((inner, 3), "world".to_owned())
        ])
    );
    assert_eq!(
        data.head,
        advance(&receipt, origin).1,
        "head must match the receipt"
    );
    for b in &data.blocks {
        assert!(b.key <= data.head);
    }
    for (p, q) in [(0, 1), (1, 0), (1, 1)] {
        let data = load(store, ChunkPos::new(p, q), 0).await;
        assert_eq!(
            blocks(&data),
            BTreeMap::from([(corner, -3)]),
            "mirror in ({p}, {q})"
        );
        assert!(data.lights.is_empty() && data.signs.is_empty());
    }
}

/// Every insert gets a key above all earlier keys of its chunk.
pub async fn keys_grow_on_insert(store: &dyn BlockStore) {
    let chunk = ChunkPos::new(-2, 5);
    let mut last_head = 0;
    let mut last_key = 0;
    for i in 0..5 {
        let mut batch = Batch::new();
        let pos = BlockPos::new(-60 + i, 20, 170);
        batch.set_block(chunk, pos, 1 + i, meta());
        let receipt = apply(store, &batch).await;
        let (before, after) = advance(&receipt, chunk);
        assert!(
            before >= last_head,
            "head went back from {last_head} to {before}"
        );
        let data = load(store, chunk, last_key).await;
        assert_eq!(
            blocks(&data),
            BTreeMap::from([(pos, 1 + i)]),
            "since {last_key}"
        );
        let key = data.blocks[0].key;
        assert!(
            key > last_key && key > before && key <= after,
            "key {key} not in ({before}, {after}]"
        );
        last_key = key;
        last_head = after;
    }
}

/// Updating an existing block gives it a new, greater key (the seed's bug
/// was keeping the old one, so clients never saw the change).
pub async fn keys_grow_on_update(store: &dyn BlockStore) {
    let chunk = ChunkPos::new(4, -3);
    let a = BlockPos::new(130, 30, -90);
    let b = BlockPos::new(131, 30, -90);
    let mut batch = Batch::new();
    batch.set_block(chunk, a, 7, meta());
    apply(store, &batch).await;
    let mut batch = Batch::new();
    batch.set_block(chunk, b, 8, meta());
    apply(store, &batch).await;
    let before = load(store, chunk, 0).await;
    let key_b = before
        .blocks
        .iter()
        .find(|x| x.pos == b)
        .map(|x| x.key)
        .expect("b stored");
    let mut batch = Batch::new();
    batch.set_block(chunk, a, 0, meta());
    apply(store, &batch).await;
    let newer = load(store, chunk, key_b).await;
    assert_eq!(
        blocks(&newer),
        BTreeMap::from([(a, 0)]),
        "the update must be newer than b"
    );
    let all = load(store, chunk, 0).await;
    assert_eq!(blocks(&all), BTreeMap::from([(a, 0), (b, 8)]));
}

/// Asking since the head returns no blocks, but lights and signs in full.
pub async fn incremental_sync(store: &dyn BlockStore) {
    let chunk = ChunkPos::new(10, 10);
    let pos = BlockPos::new(330, 40, 330);
    let mut batch = Batch::new();
    for i in 0..10 {
        batch.set_block(chunk, BlockPos::new(320 + i, 40, 321), 3, meta());
    }
    batch.set_block(chunk, pos, 4, meta());
    batch.set_light(chunk, pos, 9, meta());
    batch.set_sign(chunk, pos, 1, "sign", meta());
    let receipt = apply(store, &batch).await;
    let head = advance(&receipt, chunk).1;
    let data = load(store, chunk, head).await;
    assert!(data.blocks.is_empty(), "nothing is newer than the head");
    assert_eq!(lights(&data), BTreeMap::from([(pos, 9)]));
    assert_eq!(
        signs(&data),
        BTreeMap::from([((pos, 1), "sign".to_owned())])
    );
    assert_eq!(data.head, head);

    let mut batch = Batch::new();
    batch.set_block(chunk, BlockPos::new(325, 41, 321), 6, meta());
    apply(store, &batch).await;
    let data = load(store, chunk, head).await;
    assert_eq!(
        blocks(&data),
        BTreeMap::from([(BlockPos::new(325, 41, 321), 6)])
    );
    assert_eq!(load(store, chunk, 0).await.blocks.len(), 12);
}

/// Light and sign writes (and deletions) advance the chunk's head.
pub async fn lights_and_signs_advance_the_head(store: &dyn BlockStore) {
    let chunk = ChunkPos::new(-7, -7);
    let pos = BlockPos::new(-220, 25, -220);
    let mut batch = Batch::new();
    batch.set_block(chunk, pos, 3, meta());
    let mut head = advance(&apply(store, &batch).await, chunk).1;
    let steps: [fn(&mut Batch, ChunkPos, BlockPos); 4] = [
        |b, c, p| b.set_light(c, p, 12, meta()),
        |b, c, p| b.set_sign(c, p, 2, "note", meta()),
        |b, c, p| b.set_sign(c, p, 2, "", meta()),
        |b, c, p| b.clear_decor(c, p),
    ];
    for step in steps {
        let mut batch = Batch::new();
        step(&mut batch, chunk, pos);
        let (before, after) = advance(&apply(store, &batch).await, chunk);
        assert!(
            before >= head && after > head,
            "head did not move past {head}: ({before}, {after})"
        );
        let changed = store
            .changed_chunks(&[ChunkHead { chunk, head }])
            .await
            .expect("changed_chunks");
        assert_eq!(changed, vec![ChunkHead { chunk, head: after }]);
        head = after;
    }
}

/// `changed_chunks` reports exactly the chunks whose head passed the key held.
pub async fn changed_chunks_reports_only_newer(store: &dyn BlockStore) {
    let a = ChunkPos::new(100, -100);
    let b = ChunkPos::new(-100, 100);
    let never = ChunkPos::new(5000, 5000);
    let mut batch = Batch::new();
    batch.set_block(a, BlockPos::new(3200, 5, -3200), 1, meta());
    batch.set_block(b, BlockPos::new(-3200, 5, 3200), 1, meta());
    let receipt = apply(store, &batch).await;
    let head_a = advance(&receipt, a).1;
    let head_b = advance(&receipt, b).1;
    let held = [
        ChunkHead {
            chunk: a,
            head: head_a,
        },
        ChunkHead {
            chunk: b,
            head: head_b,
        },
        ChunkHead {
            chunk: never,
            head: 0,
        },
    ];
    assert_eq!(
        store.changed_chunks(&held).await.expect("changed_chunks"),
        vec![]
    );
    let stale = [
        ChunkHead { chunk: a, head: 0 },
        ChunkHead {
            chunk: b,
            head: head_b,
        },
    ];
    let changed = store.changed_chunks(&stale).await.expect("changed_chunks");
    assert_eq!(
        changed,
        vec![ChunkHead {
            chunk: a,
            head: head_a
        }]
    );

    let mut batch = Batch::new();
    batch.set_block(b, BlockPos::new(-3199, 5, 3200), 2, meta());
    let new_b = advance(&apply(store, &batch).await, b).1;
    let changed = store.changed_chunks(&held).await.expect("changed_chunks");
    assert_eq!(
        changed,
        vec![ChunkHead {
            chunk: b,
            head: new_b
        }]
    );
    assert_eq!(
        store.changed_chunks(&[]).await.expect("changed_chunks"),
        vec![]
    );
}

/// Removing a block deletes its signs and sets its light to 0 (the light row
/// stays, as in the original server), leaving other blocks alone.
pub async fn clear_removes_signs_and_zeroes_the_light(store: &dyn BlockStore) {
    let chunk = ChunkPos::new(0, 0);
    let pos = BlockPos::new(8, 20, 8);
    let other = BlockPos::new(9, 20, 8);
    let mut batch = Batch::new();
    for p in [pos, other] {
        batch.set_block(chunk, p, 3, meta());
        batch.set_light(chunk, p, 15, meta());
        batch.set_sign(chunk, p, 0, "zero", meta());
        batch.set_sign(chunk, p, 4, "four", meta());
    }
    apply(store, &batch).await;
    let mut batch = Batch::new();
    batch.set_block(chunk, pos, 0, meta());
    batch.clear_decor(chunk, pos);
    apply(store, &batch).await;
    let data = load(store, chunk, 0).await;
    assert_eq!(blocks(&data), BTreeMap::from([(pos, 0), (other, 3)]));
    assert_eq!(lights(&data), BTreeMap::from([(pos, 0), (other, 15)]));
    assert_eq!(
        signs(&data),
        BTreeMap::from([
            ((other, 0), "zero".to_owned()),
            ((other, 4), "four".to_owned())
        ])
    );

    // A sign written after the clear in the same batch survives it.
    let mut batch = Batch::new();
    batch.set_sign(chunk, other, 1, "gone", meta());
    batch.clear_decor(chunk, other);
    batch.set_sign(chunk, other, 2, "kept", meta());
    apply(store, &batch).await;
    let data = load(store, chunk, 0).await;
    assert_eq!(
        signs(&data),
        BTreeMap::from([((other, 2), "kept".to_owned())])
    );
    assert_eq!(lights(&data), BTreeMap::from([(pos, 0), (other, 0)]));
}

/// A face holds one text; writing replaces it, empty text deletes it.
pub async fn signs_replace_and_delete(store: &dyn BlockStore) {
    let chunk = ChunkPos::new(1, 1);
    let pos = BlockPos::new(40, 30, 40);
    for text in ["first", "second"] {
        let mut batch = Batch::new();
        batch.set_sign(chunk, pos, 5, text, meta());
        apply(store, &batch).await;
    }
    let data = load(store, chunk, 0).await;
    assert_eq!(
        signs(&data),
        BTreeMap::from([((pos, 5), "second".to_owned())])
    );
    let mut batch = Batch::new();
    batch.set_sign(chunk, pos, 5, "", meta());
    apply(store, &batch).await;
    assert!(load(store, chunk, 0).await.signs.is_empty());
    // Deleting what does not exist is fine.
    apply(store, &batch).await;
}

/// Sign text survives byte for byte: commas, quotes, SQL, non-ASCII.
pub async fn sign_text_round_trips(store: &dyn BlockStore) {
    let chunk = ChunkPos::new(-1, 2);
    let texts = [
        "hello, with, commas",
        "\"double\" and 'single' quotes",
        "'); DROP TABLE block; --",
        "100% \\backslash\\ ; :name $1 ?",
        "héllo wörld ✓ 日本語 🙂",
        "012345678901234567890123456789012345678901234567",
        " leading and trailing ",
    ];
    let mut batch = Batch::new();
    for (i, text) in texts.iter().enumerate() {
        let pos = BlockPos::new(-20 - i as i32, 30, 70);
        batch.set_sign(chunk, pos, 0, text, meta());
    }
    apply(store, &batch).await;
    let data = load(store, chunk, 0).await;
    let got: BTreeSet<String> = data.signs.iter().map(|s| s.text.clone()).collect();
    let want: BTreeSet<String> = texts.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(got, want);
}

/// Negative and far coordinates (|x|, |z| up to 2^25) are stored exactly.
pub async fn far_and_negative_coordinates(store: &dyn BlockStore) {
    let far = 1 << 25;
    let positions = [
        BlockPos::new(far, 1, -far),
        BlockPos::new(-far, 255, far),
        BlockPos::new(-far - 1, 128, -far - 1),
        BlockPos::new(far - 1, 64, far - 1),
        BlockPos::new(-1, 40, -1),
        BlockPos::new(-32, 40, -33),
    ];
    let mut batch = Batch::new();
    for (i, pos) in positions.iter().enumerate() {
        place(&mut batch, *pos, 1 + i as i32);
        batch.set_light(pos.chunk(), *pos, 3, meta());
        batch.set_sign(pos.chunk(), *pos, 1, "far", meta());
    }
    apply(store, &batch).await;
    for (i, pos) in positions.iter().enumerate() {
        let data = load(store, pos.chunk(), 0).await;
        assert_eq!(
            blocks(&data).get(pos),
            Some(&(1 + i as i32)),
            "block at {pos}"
        );
        assert_eq!(lights(&data).get(pos), Some(&3));
        assert_eq!(
            signs(&data).get(&(*pos, 1)).map(String::as_str),
            Some("far")
        );
        for neighbour in pos.mirror_chunks() {
            let data = load(store, neighbour, 0).await;
            assert_eq!(
                blocks(&data).get(pos),
                Some(&-(1 + i as i32)),
                "mirror of {pos} in {neighbour}"
            );
        }
    }
}

/// A chunk with 20,000+ changes loads whole, and incrementally.
pub async fn large_chunk(store: &dyn BlockStore) {
    let chunk = ChunkPos::new(2, -2);
    let mut batch = Batch::new();
    let mut expected = BTreeMap::new();
    for y in 1..=21 {
        for dx in 0..32 {
            for dz in 0..32 {
                let pos = BlockPos::new(64 + dx, y, -64 + dz);
                let w = 1 + (dx + dz + y) % 15;
                batch.set_block(chunk, pos, w, meta());
                expected.insert(pos, w);
            }
        }
    }
    assert!(expected.len() > 20_000);
    let head = advance(&apply(store, &batch).await, chunk).1;
    let data = load(store, chunk, 0).await;
    assert_eq!(data.blocks.len(), expected.len());
    assert_eq!(blocks(&data), expected);
    assert_eq!(data.head, head);

    let mut keys: Vec<Key> = data.blocks.iter().map(|b| b.key).collect();
    keys.sort_unstable();
    let middle = keys[keys.len() / 2];
    let newer = keys.iter().filter(|k| **k > middle).count();
    assert_eq!(load(store, chunk, middle).await.blocks.len(), newer);

    let mut batch = Batch::new();
    let pos = BlockPos::new(64, 22, -64);
    batch.set_block(chunk, pos, 9, meta());
    apply(store, &batch).await;
    let data = load(store, chunk, head).await;
    assert_eq!(blocks(&data), BTreeMap::from([(pos, 9)]));
}

/// A batch that fails leaves nothing behind, in any chunk.
pub async fn failed_batch_leaves_nothing(store: &dyn BlockStore) {
    let good = ChunkPos::new(7, 7);
    let bad = ChunkPos::new(8, 8);
    let mut batch = Batch::new();
    batch.set_block(good, BlockPos::new(230, 10, 230), 3, meta());
    batch.set_light(good, BlockPos::new(230, 10, 230), 3, meta());
    batch.set_sign(bad, BlockPos::new(260, 10, 260), 0, "two\nlines", meta());
    match store.apply(&batch).await {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("expected Invalid, got {other:?}"),
    }
    for chunk in [good, bad] {
        let data = load(store, chunk, 0).await;
        assert!(data.is_empty() && data.head == 0, "{chunk} kept {data:?}");
    }
}

/// Applying the same batch twice ends with the same values, newer keys.
pub async fn reapplying_a_batch_is_harmless(store: &dyn BlockStore) {
    let chunk = ChunkPos::new(-5, 0);
    let pos = BlockPos::new(-160, 12, 0);
    let mut batch = Batch::new();
    place(&mut batch, pos, 11);
    batch.set_light(chunk, pos, 4, meta());
    batch.set_sign(chunk, pos, 6, "twice", meta());
    batch.set_block(chunk, BlockPos::new(-150, 12, 5), 0, meta());
    let first = advance(&apply(store, &batch).await, chunk);
    let once = load(store, chunk, 0).await;
    let second = advance(&apply(store, &batch).await, chunk);
    assert!(
        second.0 >= first.1,
        "second apply must come after the first"
    );
    let twice = load(store, chunk, 0).await;
    assert_eq!(blocks(&once), blocks(&twice));
    assert_eq!(lights(&once), lights(&twice));
    assert_eq!(signs(&once), signs(&twice));
    assert_eq!(
        load(store, chunk, first.1).await.blocks.len(),
        2,
        "re-applied blocks are newer"
    );
    let mirror = load(store, ChunkPos::new(-6, -1), 0).await;
    assert_eq!(blocks(&mirror), BTreeMap::from([(pos, -11)]));
}

/// Batches applied at the same time to the same chunk get disjoint,
/// ordered key ranges.
pub async fn concurrent_batches_never_share_keys(store: &dyn BlockStore) {
    let chunk = ChunkPos::new(12, 12);
    let batches: Vec<Batch> = (0..8)
        .map(|i| {
            let mut batch = Batch::new();
            for j in 0..25 {
                batch.set_block(chunk, BlockPos::new(384 + j, 10 + i, 384), 1 + i, meta());
            }
            batch.set_light(chunk, BlockPos::new(384, 10 + i, 384), 2, meta());
            batch
        })
        .collect();
    let receipts = futures::future::join_all(batches.iter().map(|b| store.apply(b))).await;
    let mut ranges: Vec<(Key, Key)> = receipts
        .into_iter()
        .map(|r| advance(&r.expect("concurrent apply"), chunk))
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "overlapping key ranges {pair:?}");
    }
    let data = load(store, chunk, 0).await;
    assert_eq!(data.blocks.len(), 8 * 25);
    assert_eq!(data.head, ranges.last().map(|r| r.1).unwrap_or_default());
}

/// `list_chunks` lists every chunk with anything stored.
pub async fn list_chunks_lists_written_chunks(store: &dyn BlockStore) {
    let mut batch = Batch::new();
    place(&mut batch, BlockPos::new(31, 5, 0), 2);
    batch.set_sign(
        ChunkPos::new(9, 9),
        BlockPos::new(290, 5, 290),
        0,
        "only a sign",
        meta(),
    );
    let receipt = apply(store, &batch).await;
    let mut listed = store.list_chunks().await.expect("list_chunks");
    listed.sort_unstable();
    let mut expected: Vec<ChunkHead> = receipt.heads().collect();
    expected.sort_unstable();
    assert_eq!(listed, expected);
}

/// Player positions are saved per name and replaced on save.
pub async fn players_round_trip(store: &dyn BlockStore) {
    let alice = PlayerRecord {
        name: "alice".into(),
        x: 1.5,
        y: 20.25,
        z: -3.75,
        rx: 0.5,
        ry: -0.25,
        time_ms: 1,
    };
    let other = PlayerRecord {
        name: "Zoë, \"the\" builder".into(),
        x: -1e6,
        y: 0.0,
        z: 1e6,
        rx: 0.0,
        ry: 0.0,
        time_ms: 2,
    };
    store
        .save_players(&[alice.clone(), other.clone()])
        .await
        .expect("save_players");
    assert_eq!(
        store.load_player("alice").await.expect("load"),
        Some(alice.clone())
    );
    assert_eq!(
        store.load_player(&other.name).await.expect("load"),
        Some(other)
    );
    assert_eq!(
        store.load_player("Alice").await.expect("load"),
        None,
        "names are case-sensitive"
    );
    let moved = PlayerRecord {
        x: 100.0,
        time_ms: 3,
        ..alice
    };
    store
        .save_players(std::slice::from_ref(&moved))
        .await
        .expect("save_players");
    assert_eq!(store.load_player("alice").await.expect("load"), Some(moved));
    store.save_players(&[]).await.expect("saving nothing");
}

fn draft(pos: BlockPos, edit: DraftEdit, seen: Key) -> DraftChange {
    DraftChange {
        pos,
        edit,
        seen,
        time_ms: 1_764_000_000_000,
    }
}

async fn load_draft(store: &dyn BlockStore, owner: &str) -> BTreeMap<DraftSlot, DraftChange> {
    let changes = match store.load_draft(owner).await {
        Ok(changes) => changes,
        Err(e) => panic!("{} load_draft({owner:?}) failed: {e}", store.backend()),
    };
    let count = changes.len();
    let by_slot: BTreeMap<DraftSlot, DraftChange> =
        changes.into_iter().map(|c| (c.slot(), c)).collect();
    assert_eq!(by_slot.len(), count, "load_draft returned a slot twice");
    by_slot
}

fn slots(changes: &[DraftChange]) -> BTreeMap<DraftSlot, DraftChange> {
    changes.iter().map(|c| (c.slot(), c.clone())).collect()
}

/// Drafts come back as stored, per owner; storing a change replaces the one
/// in its slot and keeps the others; deleting removes the whole draft.
pub async fn drafts_round_trip_and_upsert(store: &dyn BlockStore) {
    let owner = "Zoë, \"the\" builder";
    let pos = BlockPos::new(-33, 12, 40);
    let first = vec![
        draft(pos, DraftEdit::Block(5), 7),
        draft(pos, DraftEdit::Light(9), 7),
        draft(
            pos,
            DraftEdit::Sign {
                face: 2,
                text: "two".into(),
            },
            7,
        ),
        draft(
            pos,
            DraftEdit::Sign {
                face: 3,
                text: "three".into(),
            },
            7,
        ),
        draft(BlockPos::new(1, 1, 1), DraftEdit::Clear, 0),
        draft(BlockPos::new(1, 1, 1), DraftEdit::Block(0), 0),
    ];
    assert!(load_draft(store, owner).await.is_empty(), "fresh draft");
    store.put_draft(owner, &first).await.expect("put_draft");
    assert_eq!(load_draft(store, owner).await, slots(&first));
    assert!(
        load_draft(store, "zoë, \"the\" builder").await.is_empty(),
        "owners are case-sensitive"
    );

    let later = vec![
        draft(pos, DraftEdit::Block(0), 7),
        draft(
            pos,
            DraftEdit::Sign {
                face: 2,
                text: String::new(),
            },
            7,
        ),
    ];
    store.put_draft(owner, &later).await.expect("upsert");
    let mut expected = slots(&first);
    expected.extend(slots(&later));
    assert_eq!(load_draft(store, owner).await, expected);
    assert_eq!(expected.len(), first.len(), "upsert replaced, not added");

    store
        .put_draft("other", &[draft(pos, DraftEdit::Block(1), 0)])
        .await
        .expect("put_draft");
    store.put_draft(owner, &[]).await.expect("putting nothing");
    store.delete_draft(owner).await.expect("delete_draft");
    assert!(load_draft(store, owner).await.is_empty(), "deleted");
    assert_eq!(load_draft(store, "other").await.len(), 1, "others kept");
    store.delete_draft(owner).await.expect("deleting twice");
    store
        .delete_draft("nobody")
        .await
        .expect("deleting nothing");
}

/// Chunk reads, heads and chunk lists never include drafts.
pub async fn drafts_never_reach_the_world(store: &dyn BlockStore) {
    let chunk = ChunkPos::new(4, -4);
    let pos = BlockPos::new(130, 12, -120);
    store
        .put_draft(
            "ann",
            &[
                draft(pos, DraftEdit::Block(3), 0),
                draft(pos, DraftEdit::Light(3), 0),
                draft(
                    pos,
                    DraftEdit::Sign {
                        face: 0,
                        text: "secret".into(),
                    },
                    0,
                ),
            ],
        )
        .await
        .expect("put_draft");
    let data = load(store, chunk, 0).await;
    assert!(data.is_empty() && data.head == 0, "draft leaked: {data:?}");
    let changed = store.changed_chunks(&[ChunkHead { chunk, head: 0 }]).await;
    assert_eq!(changed.expect("changed_chunks"), vec![]);
    assert_eq!(store.list_chunks().await.expect("list_chunks"), vec![]);

    // A world write beside it shows only the world's value.
    let mut batch = Batch::new();
    batch.set_block(chunk, BlockPos::new(131, 12, -120), 4, meta());
    apply(store, &batch).await;
    let data = load(store, chunk, 0).await;
    assert_eq!(
        blocks(&data),
        BTreeMap::from([(BlockPos::new(131, 12, -120), 4)])
    );
    assert!(data.lights.is_empty() && data.signs.is_empty());
}

/// Draft sign text and owner names are stored byte for byte.
pub async fn draft_text_round_trips(store: &dyn BlockStore) {
    let texts = [
        "a,b,c".to_owned(),
        "\"quoted\" 'single' \\back".to_owned(),
        "héllo wörld ✓ 😀".to_owned(),
        "   spaces   ".to_owned(),
        "%s %d {0} $1 ? :name".to_owned(),
        "x".repeat(MAX_STORED_TEXT_BYTES),
    ];
    let changes: Vec<DraftChange> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            draft(
                BlockPos::new(i as i32, 20, -7),
                DraftEdit::Sign {
                    face: (i % 8) as i32,
                    text: text.clone(),
                },
                0,
            )
        })
        .collect();
    let owner = "ünïcode, \"owner\" 😀";
    store.put_draft(owner, &changes).await.expect("put_draft");
    assert_eq!(load_draft(store, owner).await, slots(&changes));
}

/// A draft change stores refuse leaves the draft as it was.
pub async fn invalid_draft_changes_nothing(store: &dyn BlockStore) {
    let pos = BlockPos::new(2, 2, 2);
    let good = draft(pos, DraftEdit::Block(2), 0);
    store
        .put_draft("ann", std::slice::from_ref(&good))
        .await
        .expect("put_draft");
    let bad = [
        draft(pos, DraftEdit::Block(9), 0),
        draft(
            pos,
            DraftEdit::Sign {
                face: 1,
                text: "two\nlines".into(),
            },
            0,
        ),
    ];
    match store.put_draft("ann", &bad).await {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(load_draft(store, "ann").await, slots(&[good]));
}

/// A draft of 10,000 changes (the server's default limit) stores, loads
/// and publishes whole: every change (with mirrors) in the world, the draft
/// gone.
pub async fn large_draft_publishes_whole(store: &dyn BlockStore) {
    let owner = "builder";
    let mut changes = Vec::new();
    // 100 x 100 blocks over 16 chunks (edges included, so mirrors too),
    // then lights and signs replacing some of them in later puts.
    for dx in 0..100 {
        for dz in 0..100 {
            let pos = BlockPos::new(-40 + dx, 30, 20 + dz);
            changes.push(draft(pos, DraftEdit::Block(1 + (dx + dz) % 60), 0));
        }
    }
    assert_eq!(changes.len(), 10_000);
    for part in changes.chunks(2_500) {
        store.put_draft(owner, part).await.expect("put_draft");
    }
    let loaded = load_draft(store, owner).await;
    assert_eq!(loaded.len(), 10_000);
    assert_eq!(loaded, slots(&changes));

    let published = match publish_draft(store, Some(owner), &changes, Some(Arc::from(owner))).await
    {
        Ok(published) => published,
        Err(e) => panic!("{} publish failed: {e}", store.backend()),
    };
    assert!(published.delete_error.is_none(), "{published:?}");
    assert!(published.overwritten.is_empty());
    assert!(load_draft(store, owner).await.is_empty(), "draft deleted");
    let mut world: BTreeMap<(ChunkPos, BlockPos), i32> = BTreeMap::new();
    for a in &published.receipt.chunks {
        for b in load(store, a.chunk, 0).await.blocks {
            world.insert((a.chunk, b.pos), b.w);
        }
    }
    let expected: BTreeMap<(ChunkPos, BlockPos), i32> = published
        .batch
        .blocks()
        .map(|b| ((b.chunk, b.pos), b.w))
        .collect();
    assert!(expected.len() > 10_000, "mirrors are part of the batch");
    assert_eq!(world, expected);
}

/// Positions someone else wrote after the draft saw them are reported as
/// conflicts; the others are not, and publishing still writes them all.
pub async fn draft_conflicts_are_reported(store: &dyn BlockStore) {
    let chunk = ChunkPos::new(-3, 3);
    let a = BlockPos::new(-90, 15, 100);
    let b = BlockPos::new(-91, 15, 100);
    let mut batch = Batch::new();
    batch.set_block(chunk, a, 1, meta());
    batch.set_block(chunk, b, 1, meta());
    let seen = advance(&apply(store, &batch).await, chunk).1;
    let changes = [
        draft(a, DraftEdit::Block(7), seen),
        draft(b, DraftEdit::Block(8), seen),
    ];
    store.put_draft("ann", &changes).await.expect("put_draft");
    let mut other = Batch::new();
    other.set_block(chunk, a, 2, meta());
    apply(store, &other).await;
    let conflicts = crate::store::draft_conflicts(store, &changes)
        .await
        .expect("conflicts");
    assert_eq!(conflicts, vec![a]);
    let published = publish_draft(store, Some("ann"), &changes, None)
        .await
        .expect("publish");
    assert_eq!(published.overwritten, vec![a]);
    let data = load(store, chunk, 0).await;
    assert_eq!(blocks(&data), BTreeMap::from([(a, 7), (b, 8)]));
}

/// `ping` answers on a healthy store.
pub async fn ping_answers(store: &dyn BlockStore) {
    store.ping().await.expect("ping");
}

/// After `close`, calls fail with `Closed`; closing twice is harmless.
pub async fn close_is_final(store: &dyn BlockStore) {
    store.close().await.expect("close");
    store.close().await.expect("second close");
    match store.load_chunk(ChunkPos::new(0, 0), 0).await {
        Err(StoreError::Closed) => {}
        other => panic!("expected Closed after close, got {other:?}"),
    }
    match store.apply(&Batch::new()).await {
        Err(StoreError::Closed) => {}
        other => panic!("expected Closed after close, got {other:?}"),
    }
    match store.load_draft("ann").await {
        Err(StoreError::Closed) => {}
        other => panic!("expected Closed after close, got {other:?}"),
    }
}

// --- block history -----------------------------------------------------------

const HISTORY_T0: i64 = 1_764_000_000_000;

fn entry(id: i64, time_ms: i64, who: &str, pos: BlockPos, change: Change) -> HistoryEntry {
    HistoryEntry {
        id,
        time_ms,
        author: Author {
            name: Arc::from(who),
            guest: who.starts_with("guest"),
            addr: Some(Arc::from("192.0.2.7")),
        },
        pos,
        change,
    }
}

async fn history(store: &dyn BlockStore, query: &HistoryQuery) -> Vec<HistoryEntry> {
    match store.history(query).await {
        Ok(entries) => entries,
        Err(e) => panic!("{} history({query:?}) failed: {e}", store.backend()),
    }
}

/// Entries come back exactly as written (every kind, far and negative
/// positions, texts with commas, quotes and non-ASCII), newest first.
pub async fn history_is_written_with_the_batch(store: &dyn BlockStore) {
    assert!(store.keeps_history(), "{} keeps history", store.backend());
    let pos = BlockPos::new(-1_000_000, 40, 2_000_000_000);
    let chunk = pos.chunk();
    let mut batch = Batch::new();
    batch.set_block(chunk, pos, 5, meta());
    batch.set_light(chunk, pos, 9, meta());
    batch.set_sign(chunk, pos, 3, "a, \"b\" é ☃", meta());
    let written = vec![
        entry(11, HISTORY_T0, "ann", pos, Change::Block { old: 0, new: 5 }),
        entry(
            12,
            HISTORY_T0 + 1,
            "ann",
            pos,
            Change::Light { old: 0, new: 9 },
        ),
        entry(
            13,
            HISTORY_T0 + 2,
            "guest4",
            pos,
            Change::Sign {
                face: 3,
                old: None,
                new: Some("a, \"b\" é ☃".to_owned()),
            },
        ),
    ];
    for e in &written {
        batch.record(e.clone());
    }
    apply(store, &batch).await;
    let mut back = history(store, &HistoryQuery::at(pos, 10)).await;
    back.reverse();
    assert_eq!(back, written);
    assert!(
        history(store, &HistoryQuery::at(BlockPos::new(0, 40, 0), 10))
            .await
            .is_empty()
    );
}

/// Author, time, area and limit filters; ties in time keep recording order.
pub async fn history_queries_filter_and_order(store: &dyn BlockStore) {
    let mut batch = Batch::new();
    for (id, (who, x, t)) in (100..).zip([
        ("ann", 0, 0),
        ("bob", 1, 1),
        ("ann", 2, 2),
        ("ann", 500, 2),
        ("ann", -3, 3),
    ]) {
        let pos = BlockPos::new(x, 10, 0);
        batch.set_block(pos.chunk(), pos, 1, meta());
        batch.record(entry(
            id,
            HISTORY_T0 + t,
            who,
            pos,
            Change::Block { old: 0, new: 1 },
        ));
    }
    apply(store, &batch).await;
    let xs = |entries: Vec<HistoryEntry>| entries.iter().map(|e| e.pos.x).collect::<Vec<_>>();
    let all_ann = HistoryQuery::by("ann", HISTORY_T0, None, 100);
    assert_eq!(xs(history(store, &all_ann).await), vec![-3, 500, 2, 0]);
    let recent = HistoryQuery::by("ann", HISTORY_T0 + 2, None, 100);
    assert_eq!(xs(history(store, &recent).await), vec![-3, 500, 2]);
    let near = Area {
        x: 0,
        z: 0,
        radius: 2,
    };
    let around = HistoryQuery::by("ann", HISTORY_T0, Some(near), 100);
    assert_eq!(xs(history(store, &around).await), vec![2, 0]);
    let two = HistoryQuery::by("ann", HISTORY_T0, None, 2);
    assert_eq!(xs(history(store, &two).await), vec![-3, 500]);
    let nobody = HistoryQuery::by("carol", 0, None, 100);
    assert!(history(store, &nobody).await.is_empty());
}

/// Re-applying a batch (a retry after an unknown outcome) records its
/// entries once.
pub async fn history_survives_reapplying_once(store: &dyn BlockStore) {
    let pos = BlockPos::new(77, 5, -77);
    let mut batch = Batch::new();
    batch.set_block(pos.chunk(), pos, 4, meta());
    batch.record(entry(
        900,
        HISTORY_T0,
        "ann",
        pos,
        Change::Block { old: 0, new: 4 },
    ));
    apply(store, &batch).await;
    apply(store, &batch).await;
    assert_eq!(history(store, &HistoryQuery::at(pos, 10)).await.len(), 1);
}

/// A batch refused as invalid records no history either.
pub async fn failed_batch_records_no_history(store: &dyn BlockStore) {
    let pos = BlockPos::new(3, 3, 3);
    let mut batch = Batch::new();
    batch.set_block(pos.chunk(), pos, 4, meta());
    batch.set_light(pos.chunk(), pos, 99, meta());
    batch.record(entry(
        901,
        HISTORY_T0,
        "ann",
        pos,
        Change::Block { old: 0, new: 4 },
    ));
    assert!(store.apply(&batch).await.is_err());
    assert!(history(store, &HistoryQuery::at(pos, 10)).await.is_empty());
}

/// Pruning drops what is older than the limit, then the oldest beyond the
/// row budget.
pub async fn history_pruning_by_age_and_rows(store: &dyn BlockStore) {
    let pos = BlockPos::new(9, 9, 9);
    let mut batch = Batch::new();
    batch.set_block(pos.chunk(), pos, 1, meta());
    for i in 0..10 {
        batch.record(entry(
            1000 + i,
            HISTORY_T0 + i,
            "ann",
            pos,
            Change::Block { old: 0, new: 1 },
        ));
    }
    apply(store, &batch).await;
    let deleted = match store.prune_history(HISTORY_T0 + 3, None).await {
        Ok(n) => n,
        Err(e) => panic!("{} prune_history failed: {e}", store.backend()),
    };
    assert_eq!(deleted, 3);
    let deleted = match store.prune_history(HISTORY_T0, Some(4)).await {
        Ok(n) => n,
        Err(e) => panic!("{} prune_history failed: {e}", store.backend()),
    };
    assert_eq!(deleted, 3);
    let left = history(store, &HistoryQuery::at(pos, 100)).await;
    let ids: Vec<i64> = left.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![1009, 1008, 1007, 1006]);
}
