//! The server on a real PostgreSQL: connections terminated and the database
//! gone for a while in the middle of play lose nothing; two server
//! processes share one database.
#![cfg(feature = "postgres")]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use craft_server::config::StoreUrl;
use support::process::Server;
use support::proxy::Proxy;
use support::stores::unique;
use support::{Client, TestServer};
use world_core::BlockStore;
use world_core::conformance::test_service;
use world_core::coords::{BlockPos, ChunkPos};

const WAIT: Duration = Duration::from_secs(30);

/// The test database's URL with its own schema (and application name).
fn url_for(base: &str, schema: &str, app: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}schema={schema}&application_name={app}")
}

async fn open(url: &str) -> Arc<dyn BlockStore> {
    craft_server::stores::open(&StoreUrl(url.to_owned()))
        .await
        .expect("open postgres")
}

async fn join(addr: std::net::SocketAddr) -> Client {
    let mut client = Client::connect(addr).await;
    client.send("V,1").await;
    client.until(WAIT, |l| l.starts_with("N,")).await;
    client
}

async fn blocks(store: &dyn BlockStore, chunk: ChunkPos) -> BTreeMap<BlockPos, i32> {
    let data = store.load_chunk(chunk, 0).await.expect("load");
    data.blocks.into_iter().map(|b| (b.pos, b.w)).collect()
}

/// Waits until `check` holds for the chunk's stored blocks.
async fn eventually(
    store: &dyn BlockStore,
    chunk: ChunkPos,
    check: impl Fn(&BTreeMap<BlockPos, i32>) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = blocks(store, chunk).await;
        if check(&now) {
            return;
        }
        assert!(Instant::now() < deadline, "store never got there: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_in_the_middle_of_play_lose_nothing() {
    let Some(base) = test_service("CRAFT_TEST_POSTGRES_URL") else {
        return;
    };
    let (schema, app) = (unique("craft"), unique("outage"));
    let url = url_for(&base, &schema, &app);
    let server = TestServer::start(open(&url).await, |c| {
        c.commit_interval = Duration::from_millis(100)
    })
    .await;
    let mut player = join(server.addr).await;

    // Kill every connection of this server, over and over, while it plays.
    let (admin, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("admin");
    tokio::spawn(connection);
    let killer = tokio::spawn(async move {
        let mut killed = 0u64;
        for _ in 0..20 {
            let rows = admin
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                    &[&app],
                )
                .await
                .expect("terminate");
            killed += rows.len() as u64;
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
        killed
    });
    for x in 0..100 {
        player.send(&format!("B,{x},60,7,5")).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = killer.await.expect("killer");
    eprintln!("terminated {killed} backend connections during play");
    assert!(killed > 0, "the test must actually terminate connections");
    // The player was never disconnected and every edit is stored.
    player.send("T,still here").await;
    player.until(WAIT, |l| l == "T,guest1> still here").await;
    let check = open(&url).await;
    for chunk in [
        ChunkPos::new(0, 0),
        ChunkPos::new(1, 0),
        ChunkPos::new(2, 0),
        ChunkPos::new(3, 0),
    ] {
        let lo = chunk.p * 32;
        eventually(&*check, chunk, |b| {
            (lo..(lo + 32).min(100)).all(|x| b.get(&BlockPos::new(x, 60, 7)) == Some(&5))
        })
        .await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_played_through_reported_and_caught_up() {
    let Some(base) = test_service("CRAFT_TEST_POSTGRES_URL") else {
        return;
    };
    let target: url::Url = base.parse().expect("url");
    let host = target.host_str().expect("host");
    let port = target.port().unwrap_or(5432);
    let pg: std::net::SocketAddr = tokio::net::lookup_host((host, port))
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let proxy = Proxy::start(pg).await;
    let mut through = target.clone();
    through.set_host(Some("127.0.0.1")).expect("host");
    through.set_port(Some(proxy.addr.port())).expect("port");
    let url = url_for(through.as_str(), &unique("craft"), "craft-outage");
    let server = TestServer::start(open(&url).await, |c| {
        c.commit_interval = Duration::from_millis(50)
    })
    .await;
    let mut builder = join(server.addr).await;
    let mut watcher = join(server.addr).await;
    builder.send("C,0,0,0").await;
    builder.until(WAIT, |l| l == "C,0,0").await;
    builder.send("B,1,40,1,3").await;
    let direct = open(&url_for(
        &base,
        url.split("schema=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .expect("schema"),
        "check",
    ))
    .await;
    eventually(&*direct, ChunkPos::new(0, 0), |b| b.len() == 1).await;

    proxy.down();
    for x in 2..12 {
        builder.send(&format!("B,{x},40,1,3")).await;
    }
    // Players keep playing from memory: the others see every edit at once.
    watcher.until(WAIT, |l| l == "B,0,0,11,40,1,3").await;
    let deadline = Instant::now() + WAIT;
    while server.shared.health.readiness() != Err("store unavailable") {
        assert!(
            Instant::now() < deadline,
            "readiness never reported the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Answers from memory still work.
    builder.send("C,0,0,0").await;
    let answer = builder.until(WAIT, |l| l == "C,0,0").await;
    assert!(answer.contains(&"B,0,0,11,40,1,3".to_owned()), "{answer:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;

    proxy.up();
    eventually(&*direct, ChunkPos::new(0, 0), |b| b.len() == 11).await;
    let deadline = Instant::now() + WAIT;
    while server.shared.health.readiness().is_err() {
        assert!(Instant::now() < deadline, "readiness did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

/// The key of the last `K` line for the chunk in `lines`.
fn last_key(lines: &[String], chunk: &str) -> Option<i64> {
    lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("K,{chunk},"))?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_share_one_database() {
    let Some(base) = test_service("CRAFT_TEST_POSTGRES_URL") else {
        return;
    };
    let url = url_for(&base, &unique("craft"), "craft-two");
    let args = [
        "--store",
        url.as_str(),
        "--commit-interval",
        "100ms",
        "--sync-interval",
        "200ms",
    ];
    let mut one = Server::start(&args).await;
    let mut two = Server::start(&args).await;
    let mut alice = join(one.game).await;
    let mut bob = join(two.game).await;
    for c in [&mut alice, &mut bob] {
        c.send("C,0,0,0").await;
        c.until(WAIT, |l| l == "C,0,0").await;
    }
    let mut keys = Vec::new();
    // Different blocks from both servers.
    for x in 1..=10 {
        alice.send(&format!("B,{x},50,5,3")).await;
        bob.send(&format!("B,{},50,6,4", x)).await;
    }
    // The same block: alice places it, bob (once his server has seen it)
    // removes it. The last write wins.
    alice.send("B,20,50,5,7").await;
    bob.until(WAIT, |l| l == "B,0,0,20,50,5,7").await;
    bob.send("B,20,50,5,0").await;
    alice.until(WAIT, |l| l == "B,0,0,20,50,5,0").await;
    for c in [&mut alice, &mut bob] {
        c.send("C,0,0,0").await;
        let answer = c.until(WAIT, |l| l == "C,0,0").await;
        keys.push(last_key(&answer, "0,0").expect("a key"));
    }
    bob.send("B,21,50,5,9").await;
    alice.until(WAIT, |l| l == "B,0,0,21,50,5,9").await;
    alice.send(&format!("C,0,0,{}", keys[0])).await;
    let answer = alice.until(WAIT, |l| l == "C,0,0").await;
    assert!(
        answer.contains(&"B,0,0,21,50,5,9".to_owned()),
        "incremental sync sees bob's edit: {answer:?}"
    );
    let newer = last_key(&answer, "0,0").expect("a newer key");
    assert!(newer > keys[0], "keys grow: {} then {newer}", keys[0]);

    one.sigterm();
    two.sigterm();
    assert!(one.exit(WAIT).await.success());
    assert!(two.exit(WAIT).await.success());
    let store = open(&url).await;
    let stored = blocks(&*store, ChunkPos::new(0, 0)).await;
    for x in 1..=10 {
        assert_eq!(
            stored.get(&BlockPos::new(x, 50, 5)),
            Some(&3),
            "alice's x = {x}"
        );
        assert_eq!(
            stored.get(&BlockPos::new(x, 50, 6)),
            Some(&4),
            "bob's x = {x}"
        );
    }
    assert_eq!(
        stored.get(&BlockPos::new(20, 50, 5)),
        Some(&0),
        "the last write wins"
    );
    assert_eq!(stored.get(&BlockPos::new(21, 50, 5)), Some(&9));
}
