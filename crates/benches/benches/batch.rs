//! Building and normalising a [`Batch`]: what the server does with every
//! accepted edit until the next flush, and what a store reads back.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use world_core::coords::{BlockPos, ChunkPos};
use world_core::store::{Batch, ChangeMeta};

const EDITS: usize = 10_000;

/// 10,000 edits as players make them: mostly in a few busy chunks, some on
/// chunk edges (mirrors), every fourth a removal, and positions edited
/// more than once (the batch keeps only the last write).
fn edits() -> Vec<(BlockPos, i32)> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..EDITS)
        .map(|i| {
            let r = next();
            let x = (r % 96) as i32 - 48;
            let z = ((r >> 8) % 96) as i32 - 48;
            let y = 10 + ((r >> 16) % 40) as i32;
            let w = if i % 4 == 3 { 0 } else { 1 + (i % 15) as i32 };
            (BlockPos::new(x, y, z), w)
        })
        .collect()
}

/// What `craft-server` records for an accepted `B`.
fn build(edits: &[(BlockPos, i32)], meta: &ChangeMeta) -> Batch {
    let mut batch = Batch::new();
    for &(pos, w) in edits {
        let chunk = pos.chunk();
        batch.set_block(chunk, pos, w, meta.clone());
        for mirror in pos.mirror_chunks() {
            batch.set_block(mirror, pos, -w, meta.clone());
        }
        if w == 0 {
            batch.clear_decor(chunk, pos);
        }
    }
    batch
}

fn batch(c: &mut Criterion) {
    let edits = edits();
    let meta = ChangeMeta {
        user: Some(Arc::from("someone")),
        time_ms: Some(1_700_000_000_000),
    };
    let built = build(&edits, &meta);
    let mut group = c.benchmark_group("batch_10000_edits");
    group.throughput(Throughput::Elements(EDITS as u64));
    group.bench_function("build", |b| b.iter(|| build(black_box(&edits), &meta)));
    group.bench_function("validate", |b| b.iter(|| black_box(&built).validate()));
    group.bench_function("by_chunk", |b| {
        b.iter(|| black_box(&built).by_chunk().len())
    });
    let chunks: Vec<ChunkPos> = built.chunks().into_iter().collect();
    group.bench_function("for_chunk_each", |b| {
        b.iter(|| {
            chunks
                .iter()
                .map(|c| black_box(&built).for_chunk(*c).len())
                .sum::<usize>()
        })
    });
    // A failed flush is put back in front of newer edits.
    let (first, second) = edits.split_at(EDITS / 2);
    let first = build(first, &meta);
    let second = build(second, &meta);
    group.bench_function("extend_half_into_half", |b| {
        b.iter_batched(
            || (first.clone(), second.clone()),
            |(mut a, b)| {
                a.extend(b);
                a
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, batch);
criterion_main!(benches);
