//! Map tiles of the admin page, per 256 x 256 tile.
//!
//! - `render_cold_zoom{0,1}`: the tile rendered from scratch (the terrain
//!   surface of its 64 or 256 chunks generated, PNG encoded), no store;
//! - `http_cold_zoom0`: a tile never asked for before, through the admin
//!   listener of a running server (game loop round trip, store index,
//!   render, HTTP);
//! - `http_cached_zoom0`: the same tile again, from the tile cache.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use craft_server::admin::tiles::{self, TileKey};
use craft_server::config::Switch;
use craft_server::config::{Config, StoreUrl};
use craft_server::server::{self, Shared};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustc_hash::FxHashMap;
use world_core::store::MemoryStore;

/// A distinct tile for every call, so that nothing is cached.
fn fresh_key(n: &mut i32, zoom: u8) -> TileKey {
    *n += 1;
    let side = 64;
    TileKey::new(zoom, *n % side - side / 2, *n / side % side - side / 2).expect("tile in range")
}

/// A server over a memory store with its admin listener; runs until the
/// runtime stops.
async fn start_server() -> SocketAddr {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        store: StoreUrl("memory:".into()),
        admin_listen: Some("127.0.0.1:0".parse().expect("addr")),
        ..Config::default()
    };
    config.agones.enabled = Switch::Off;
    config.imds.enabled = Switch::Off;
    let shared = Shared::new(&config);
    let (admin, _) = craft_server::admin::spawn(
        config.admin_listen.expect("admin"),
        shared.clone(),
        config.stall_timeout,
    )
    .await
    .expect("admin listener");
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .expect("bind");
    tokio::spawn(server::run(
        listener,
        Arc::new(MemoryStore::new()),
        Arc::new(config),
        shared,
        std::future::pending::<()>(),
    ));
    admin
}

async fn get(client: &reqwest::Client, url: &str) -> usize {
    let response = client.get(url).send().await.expect("GET");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.bytes().await.expect("body").len()
}

fn map_tiles(c: &mut Criterion) {
    let mut group = c.benchmark_group("map_tile");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    let none = FxHashMap::default();
    let mut n = 0;
    group.bench_function("render_cold_zoom0", |b| {
        b.iter(|| tiles::render(black_box(fresh_key(&mut n, 0)), &none).expect("tile"))
    });
    group.bench_function("render_cold_zoom1", |b| {
        b.iter(|| tiles::render(black_box(fresh_key(&mut n, 1)), &none).expect("tile"))
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let admin = runtime.block_on(start_server());
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    group.bench_function("http_cold_zoom0", |b| {
        b.to_async(&runtime).iter(|| {
            let key = fresh_key(&mut n, 0);
            let url = format!("http://{admin}/tiles/0/{}/{}", key.x, key.y);
            let client = &client;
            async move { get(client, &url).await }
        })
    });
    let cached = format!("http://{admin}/tiles/0/0/0");
    runtime.block_on(get(&client, &cached));
    group.sample_size(50);
    group.bench_function("http_cached_zoom0", |b| {
        b.to_async(&runtime).iter(|| get(&client, &cached))
    });
    group.finish();
}

criterion_group!(benches, map_tiles);
criterion_main!(benches);
