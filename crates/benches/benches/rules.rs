//! The edit rules: every `B`, `L` and `S` a player sends is checked.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use world_core::coords::BlockPos;
use world_core::rules::{Editor, check_block, check_light, check_sign};

fn rules(c: &mut Criterion) {
    let guest = Editor::GUEST_BUILDS;
    let locked = Editor {
        login_required: true,
        logged_in: false,
    };
    let at = BlockPos::new(-385, 87, 224);
    // (name, editor, pos, w, previous): one per verdict.
    let cases = [
        ("accept_place", guest, at, 17, 0),
        ("accept_remove", guest, at, 0, 5),
        ("login_required", locked, at, 17, 0),
        ("invalid_y", guest, BlockPos::new(1, 0, 1), 17, 0),
        ("item_not_allowed", guest, at, 16, 0),
        ("not_empty", guest, at, 17, 3),
        ("already_empty", guest, at, 0, 0),
        ("indestructible", guest, at, 0, 16),
    ];
    let mut group = c.benchmark_group("check_block");
    group.throughput(Throughput::Elements(1));
    for (name, editor, pos, w, previous) in cases {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                check_block(
                    black_box(editor),
                    black_box(pos),
                    black_box(w),
                    black_box(previous),
                )
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("check_other");
    group.throughput(Throughput::Elements(1));
    group.bench_function("light", |b| {
        b.iter(|| check_light(black_box(guest), black_box(5), black_box(15)))
    });
    group.bench_function("sign", |b| {
        b.iter(|| {
            check_sign(
                black_box(guest),
                black_box(at),
                black_box(3),
                black_box("Welcome to the town hall, stranger"),
            )
        })
    });
    // Edge blocks are also stored in up to three neighbour chunks.
    group.bench_function("mirror_chunks_corner", |b| {
        b.iter(|| black_box(BlockPos::new(31, 80, 31)).mirror_chunks().count())
    });
    group.bench_function("mirror_chunks_inside", |b| {
        b.iter(|| black_box(BlockPos::new(5, 80, 9)).mirror_chunks().count())
    });
    group.finish();
}

criterion_group!(benches, rules);
criterion_main!(benches);
