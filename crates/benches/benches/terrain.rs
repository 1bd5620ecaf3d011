//! Terrain generation, per chunk.
//!
//! The server generates a chunk's terrain the first time someone edits in
//! it (the rules need to know what is there). Until the real generator
//! lands in `world_core::terrain` this measures a placeholder; the bench
//! stays so that the figure appears as soon as it does.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use world_core::coords::{BlockPos, ChunkPos};
use world_core::terrain::ChunkTerrain;

fn generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("terrain");
    group.throughput(Throughput::Elements(1));
    // Chunks near and far from the origin: the noise costs the same
    // everywhere, but caches and branch predictors must not see one chunk.
    let chunks: Vec<ChunkPos> = (0..64)
        .map(|i| ChunkPos::new(i * 37 % 200 - 100, i * 53 % 200 - 100))
        .collect();
    let mut i = 0;
    group.bench_function("generate_chunk", |b| {
        b.iter(|| {
            i = (i + 1) % chunks.len();
            ChunkTerrain::generate(black_box(chunks[i]))
        })
    });
    // Looking blocks up in generated terrain (what every edit check does).
    let chunk = ChunkPos::new(3, -2);
    let terrain = ChunkTerrain::generate(chunk);
    let column: Vec<BlockPos> = (0..256)
        .map(|y| BlockPos::new(chunk.p * 32 + 5, y, chunk.q * 32 + 9))
        .collect();
    group.throughput(Throughput::Elements(column.len() as u64));
    group.bench_function("get_256_blocks", |b| {
        b.iter(|| {
            let mut sum = 0i64;
            for pos in &column {
                sum += i64::from(terrain.get(black_box(*pos)));
            }
            sum
        })
    });
    group.finish();
}

criterion_group!(benches, generate);
criterion_main!(benches);
