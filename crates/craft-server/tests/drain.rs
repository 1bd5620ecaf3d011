//! The real binary under SIGTERM: players are warned, pending edits are
//! written, the process exits 0, well inside a spot instance's 120 s.
//!
//! `drain_with_100k_pending_edits` (ignored) measures the drain of a full
//! commit window; run it against any store with
//!
//! ```sh
//! CRAFT_DRAIN_STORE=postgres://postgres@127.0.0.1:5432/test \
//!   cargo test --release -p craft-server --features postgres --test drain \
//!   -- --ignored --nocapture
//! ```
//!
//! (`CRAFT_DRAIN_EDITS`, `CRAFT_DRAIN_CLIENTS` change the load; default
//! `memory:`, 100,000 edits, 50 clients).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::Client;
use support::process::Server;
use tokio::io::AsyncWriteExt;
use world_core::BlockStore;

const WAIT: Duration = Duration::from_secs(30);
const SHUTDOWN_MESSAGE: &str = "T,Game server maintenance is pending - your universe is saved";

/// `shutdown.grace` unless configured.
const DEFAULT_GRACE: Duration = Duration::from_secs(3);
/// The warning is sent the moment the drain starts, and the grace counts
/// from that moment too: allow for the line's own trip.
const SLACK: Duration = Duration::from_millis(250);

/// Reads until the server closes the connection; how long that took.
async fn until_closed(client: &mut Client) -> Duration {
    let started = Instant::now();
    while client.line(WAIT).await.is_some() {}
    let open = started.elapsed();
    assert!(open < WAIT, "the connection was never closed");
    open
}

async fn join(addr: SocketAddr) -> Client {
    let mut client = Client::connect(addr).await;
    client.send("V,1").await;
    client.until(WAIT, |l| l.starts_with("N,")).await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_warns_flushes_and_exits_zero() {
    // A durable store, so that the edits can be checked after the exit.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite:{}", dir.path().join("craft.db").display());
    let mut server = Server::start(&["--store", &store, "--commit-interval", "10m"]).await;
    let mut alice = join(server.game).await;
    for x in 1..=20 {
        alice.send(&format!("B,{x},120,5,3")).await;
    }
    server
        .metric_at_least("craft_pending_edits", 20.0, WAIT)
        .await;
    // Ten more sent right before the signal: still on their way when it lands.
    for x in 21..=30 {
        alice.send(&format!("B,{x},120,5,3")).await;
    }

    let started = Instant::now();
    server.sigterm();
    alice.until(WAIT, |l| l == SHUTDOWN_MESSAGE).await;
    // The client quits when its connection closes: the warning must stay
    // on screen for the whole grace (3 s by default) first.
    let open = until_closed(&mut alice).await;
    assert!(
        open >= DEFAULT_GRACE - SLACK,
        "connection closed {open:?} after the warning"
    );
    let status = server.exit(Duration::from_secs(100)).await;
    let took = started.elapsed();
    eprintln!("SIGTERM to exit with 20 pending edits ({store}): {took:?}, warning shown {open:?}");
    assert!(
        status.success(),
        "exit status {status}: {:#?}",
        server.log()
    );
    let log = server.log();
    let has = |s: &str| log.iter().any(|l| l.contains(s));
    assert!(has("SIGTERM received"), "{log:#?}");
    assert!(has("shutdown: warning players and flushing"), "{log:#?}");
    assert!(has("world stopped"), "{log:#?}");
    assert!(
        !has("shutdown timeout reached"),
        "every edit written: {log:#?}"
    );
    assert!(!has("ERROR"), "{log:#?}");

    let store = store_sqlite::SqliteStore::open_url(&store)
        .await
        .expect("reopen the world");
    let data = store
        .load_chunk(world_core::coords::ChunkPos::new(0, 0), 0)
        .await
        .expect("load");
    for x in 1..=30 {
        let pos = world_core::coords::BlockPos::new(x, 120, 5);
        assert!(
            data.blocks.iter().any(|b| b.pos == pos && b.w == 3),
            "edit at x = {x} lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_notice_counts_down_while_players_play_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite:{}", dir.path().join("craft.db").display());
    let config = dir.path().join("notice.toml");
    std::fs::write(
        &config,
        r#"
commit_interval = "10m"
[shutdown]
notice = "8s"
countdown = [5]
grace = "2s"
"#,
    )
    .expect("config");
    let config = config.to_string_lossy().into_owned();
    let mut server = Server::start(&["--config", &config, "--store", &store]).await;
    let mut alice = join(server.game).await;
    let mut bob = join(server.game).await;

    server.sigterm();
    let countdown = |l: &str| l.starts_with("T,This server shuts down in ");
    let first = alice.until(WAIT, countdown).await;
    assert_eq!(
        first.last().map(String::as_str),
        Some("T,This server shuts down in 8 seconds - your universe is saved")
    );
    // Still playing: an edit is accepted and reaches the other player, and
    // the server no longer asks for new players.
    alice.send("B,7,120,7,5").await;
    bob.until(WAIT, |l| l == "B,0,0,7,120,7,5").await;
    let (status, _, body) = support::http_get(&format!("http://{}/readyz", server.admin)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("shutdown scheduled"), "{body}");

    let lines = alice.until(WAIT, |l| l == SHUTDOWN_MESSAGE).await;
    assert!(
        lines
            .iter()
            .any(|l| l == "T,This server shuts down in 5 seconds - your universe is saved"),
        "{lines:#?}"
    );
    let open = until_closed(&mut alice).await;
    assert!(
        open >= Duration::from_secs(2) - SLACK,
        "closed after {open:?}"
    );
    let status = server.exit(WAIT).await;
    assert!(
        status.success(),
        "exit status {status}: {:#?}",
        server.log()
    );

    let store = store_sqlite::SqliteStore::open_url(&store)
        .await
        .expect("reopen the world");
    let data = store
        .load_chunk(world_core::coords::ChunkPos::new(0, 0), 0)
        .await
        .expect("load");
    let pos = world_core::coords::BlockPos::new(7, 120, 7);
    assert!(
        data.blocks.iter().any(|b| b.pos == pos && b.w == 5),
        "the edit is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --ignored --nocapture (CRAFT_DRAIN_STORE picks the store)"]
async fn drain_with_100k_pending_edits() {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let store = env("CRAFT_DRAIN_STORE", "memory:");
    let edits: usize = env("CRAFT_DRAIN_EDITS", "100000").parse().expect("edits");
    let clients: usize = env("CRAFT_DRAIN_CLIENTS", "50").parse().expect("clients");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("drain.toml");
    std::fs::write(
        &config,
        r#"
commit_interval = "1h"
sync_interval = "0s"
[limits]
lines_per_second = 1000000
line_burst = 1000000
max_pending_edits = 100000000
max_backlog = 10000000
[shutdown]
timeout = "115s"
[interest]
# Edits are far from every player: measure the store, not the broadcast.
broadcast_all_up_to = 0
edit_radius = 0
"#,
    )
    .expect("config");
    let config = config.to_string_lossy().into_owned();
    let mut server = Server::start(&["--config", &config, "--store", &store]).await;

    // Each client edits its own column of chunks, far from spawn, at
    // interior positions (one batch entry per edit, no mirrors).
    let per_client = edits.div_ceil(clients);
    let mut players = Vec::new();
    let mut sent = 0;
    for c in 0..clients {
        let client = join(server.game).await;
        let (mut reader, mut writer) = client.split();
        let mut lines = String::new();
        for k in 0..per_client.min(edits - sent) {
            let p = 1000 + c as i32;
            let q = (k / 900) as i32;
            let x = p * 32 + 1 + (k % 30) as i32;
            let z = q * 32 + 1 + ((k / 30) % 30) as i32;
            lines.push_str(&format!("B,{x},100,{z},3\n"));
            sent += 1;
        }
        writer.write_all(lines.as_bytes()).await.expect("send");
        // Keep reading so that nobody is a slow client.
        let drain = tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncBufReadExt::read_until(&mut reader, 0, &mut sink).await;
        });
        players.push((writer, drain));
    }
    let loading = Instant::now();
    server
        .metric_at_least("craft_pending_edits", sent as f64, Duration::from_secs(300))
        .await;
    eprintln!(
        "{sent} edits accepted and pending after {:?}",
        loading.elapsed()
    );

    let started = Instant::now();
    server.sigterm();
    let status = server.exit(Duration::from_secs(130)).await;
    let took = started.elapsed();
    let log = server.log();
    assert!(status.success(), "exit status {status}: {log:#?}");
    assert!(
        !log.iter().any(|l| l.contains("shutdown timeout reached")),
        "every edit written: {log:#?}"
    );
    // The drain as the server saw it: from its start to the store closed.
    let stamp = |what: &str| {
        log.iter()
            .find(|l| l.contains(what))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
    };
    let inside = match (
        stamp("shutdown: warning players and flushing"),
        stamp("world stopped"),
    ) {
        (Some(a), Some(b)) => b.duration_since(a).ok(),
        _ => None,
    };
    println!(
        "drain: {sent} pending edits from {clients} clients, store {}: SIGTERM to exit {:.3} s (drain start to store closed {:?}, of which shutdown.grace 0.5 s)",
        store.split('@').next_back().unwrap_or_default(),
        took.as_secs_f64(),
        inside.map(|d| d.as_secs_f64())
    );
    drop(players);
}
