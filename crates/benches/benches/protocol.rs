//! The line codec: parsing client lines and encoding server lines.
//!
//! Throughput is in elements: criterion reports lines per second
//! (`elem/s`), the figure that matters for a game loop fed by thousands
//! of clients.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use world_core::coords::{BlockPos, ChunkPos};
use world_core::protocol::{Position, ServerMessage, parse_line};

/// One line of each command kind, as the client writes them.
const CLIENT_LINES: &[(&str, &str)] = &[
    ("version", "V,1"),
    ("login", "A,someone,0123456789abcdef0123456789abcdef"),
    ("chunk", "C,-12,7,2147483"),
    ("block", "B,-385,87,224,17"),
    ("light", "L,-385,87,224,15"),
    ("sign", "S,-385,87,224,3,Welcome to the town hall, stranger"),
    ("position", "P,-384.52,87.00,224.25,2.75,-0.50"),
    ("talk", "T,hello everyone, how is the build going?"),
];

/// Lines the server must refuse without panicking.
const MALFORMED: &[(&str, &[u8])] = &[
    ("unknown_command", b"X,1,2,3"),
    ("field_count", b"B,1,2,3"),
    ("bad_integer", b"B,1,x,3,4"),
    ("bad_float", b"P,nan,1,1,1,1"),
    ("not_utf8", b"T,\xff\xfe\xfd"),
];

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_line");
    group.throughput(Throughput::Elements(1));
    for (name, line) in CLIENT_LINES {
        group.bench_with_input(BenchmarkId::new("ok", name), line, |b, line| {
            b.iter(|| parse_line(black_box(line.as_bytes())))
        });
    }
    for (name, line) in MALFORMED {
        group.bench_with_input(BenchmarkId::new("malformed", name), line, |b, line| {
            b.iter(|| parse_line(black_box(line)))
        });
    }
    let long = format!("T,{}", "x".repeat(4096));
    group.bench_function(BenchmarkId::new("malformed", "too_long"), |b| {
        b.iter(|| parse_line(black_box(long.as_bytes())))
    });
    group.finish();

    // What a busy client sends: mostly positions, some edits and chunk
    // requests.
    let mut session = Vec::new();
    for i in 0..1000 {
        let line = match i % 20 {
            0 => format!("B,{},{},{},{}", i, 100 + i % 50, -i, i % 60),
            1 => format!("C,{},{},0", i % 7, -(i % 5)),
            2 => "T,nice house".to_owned(),
            _ => format!("P,{}.25,80.00,{}.75,1.57,0.10", i, -i),
        };
        session.push(line);
    }
    let mut group = c.benchmark_group("parse_session");
    group.throughput(Throughput::Elements(session.len() as u64));
    group.bench_function("1000_mixed_lines", |b| {
        b.iter(|| {
            for line in &session {
                let _ = black_box(parse_line(black_box(line.as_bytes())));
            }
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let pos = Position {
        x: -384.52,
        y: 87.0,
        z: 224.25,
        rx: 2.75,
        ry: -0.5,
    };
    let chunk = ChunkPos::new(-13, 7);
    let block = BlockPos::new(-385, 87, 224);
    let messages: Vec<(&str, ServerMessage<'static>)> = vec![
        ("you", ServerMessage::You { id: 17, pos }),
        (
            "time",
            ServerMessage::Time {
                seconds: 1_700_000_123.456,
                day_length: 600,
            },
        ),
        ("talk", ServerMessage::Talk("guest17> hello everyone")),
        (
            "nick",
            ServerMessage::Nick {
                id: 17,
                nick: "guest17",
            },
        ),
        ("position", ServerMessage::Position { id: 17, pos }),
        ("disconnect", ServerMessage::Disconnect { id: 17 }),
        (
            "block",
            ServerMessage::Block {
                chunk,
                pos: block,
                w: 17,
            },
        ),
        (
            "light",
            ServerMessage::Light {
                chunk,
                pos: block,
                w: 15,
            },
        ),
        (
            "sign",
            ServerMessage::Sign {
                chunk,
                pos: block,
                face: 3,
                text: "Welcome to the town hall",
            },
        ),
        (
            "key",
            ServerMessage::Key {
                chunk,
                key: 2_147_483,
            },
        ),
        ("redraw", ServerMessage::Redraw { chunk }),
        ("chunk_done", ServerMessage::ChunkDone { chunk }),
    ];
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(4096);
    for (name, msg) in &messages {
        group.bench_with_input(BenchmarkId::from_parameter(name), msg, |b, msg| {
            b.iter(|| {
                out.clear();
                black_box(msg).encode(&mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();

    // A whole chunk answer: 1,000 stored blocks, then K, R and C.
    let blocks: Vec<(BlockPos, i32)> = (0..1000)
        .map(|i| {
            (
                BlockPos::new(
                    chunk.p * 32 + i % 32,
                    10 + i / 32 % 200,
                    chunk.q * 32 + i / 7 % 32,
                ),
                i % 64,
            )
        })
        .collect();
    let mut answer = Vec::new();
    encode_answer(&blocks, chunk, &mut answer);
    let mut group = c.benchmark_group("encode_chunk_answer");
    group.throughput(Throughput::Elements(blocks.len() as u64 + 3));
    group.bench_function("1000_blocks_lines", |b| {
        let mut out = Vec::with_capacity(answer.len());
        b.iter(|| {
            out.clear();
            encode_answer(black_box(&blocks), chunk, &mut out);
            black_box(out.len())
        })
    });
    group.throughput(Throughput::Bytes(answer.len() as u64));
    group.bench_function("1000_blocks_bytes", |b| {
        let mut out = Vec::with_capacity(answer.len());
        b.iter(|| {
            out.clear();
            encode_answer(black_box(&blocks), chunk, &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

fn encode_answer(blocks: &[(BlockPos, i32)], chunk: ChunkPos, out: &mut Vec<u8>) {
    for (pos, w) in blocks {
        ServerMessage::Block {
            chunk,
            pos: *pos,
            w: *w,
        }
        .encode(out);
    }
    ServerMessage::Key { chunk, key: 4242 }.encode(out);
    ServerMessage::Redraw { chunk }.encode(out);
    ServerMessage::ChunkDone { chunk }.encode(out);
}

criterion_group!(benches, parse, encode);
criterion_main!(benches);
