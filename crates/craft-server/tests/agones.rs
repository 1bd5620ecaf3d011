//! The server against a fake Agones SDK sidecar (its REST API, over real
//! sockets): Ready after the store answered, Health while the game loop
//! turns, Allocate on the first join, the player count, Shutdown after the
//! drain (SIGTERM-like stop, or empty for a while).

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use craft_server::agones::Agones;
use craft_server::config::Switch;
use craft_server::config::{AgonesConfig, Config};
use craft_server::control::Control;
use craft_server::metrics::{Clock, Health, Metrics, ResultLabel};
use support::TestServer;
use support::fakes::{FakeAgones, Journal, TestStore, eventually, journal};

const WAIT: Duration = Duration::from_secs(10);

fn agones(c: &mut Config, fake: &FakeAgones) {
    c.agones.enabled = Switch::On;
    c.agones.url = Some(fake.url());
    c.agones.health_interval = Duration::from_millis(100);
}

async fn join(server: &TestServer) -> support::Client {
    let mut client = server.connect().await;
    client.send("V,1").await;
    client.until(WAIT, |l| l.starts_with("N,")).await;
    client
}

fn entries(journal: &Journal) -> Vec<String> {
    journal.lock().expect("journal").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_from_ready_to_shutdown_after_the_drain() {
    let journal = journal();
    let fake = FakeAgones::start(Some(journal.clone())).await;
    let store = Arc::new(TestStore::journaled(journal.clone()));
    let server = TestServer::start(store.clone(), |c| {
        agones(c, &fake);
        // Edits stay pending until the drain writes them.
        c.commit_interval = Duration::from_secs(60);
    })
    .await;

    assert!(eventually(WAIT, || fake.ok("/ready") == 1).await, "Ready");
    assert!(
        eventually(WAIT, || fake.ok("/health") >= 3).await,
        "Health pings"
    );
    assert!(
        eventually(WAIT, || fake.counts("players") == ["0"]).await,
        "count starts at 0: {:?}",
        fake.calls()
    );
    assert_eq!(fake.ok("/allocate"), 0, "nobody joined yet");

    let mut alice = join(&server).await;
    assert!(
        eventually(WAIT, || fake.ok("/allocate") == 1).await,
        "Allocate on the first join"
    );
    assert!(
        eventually(WAIT, || fake.counts("players").last().map(String::as_str)
            == Some("1"))
        .await
    );
    let bob = join(&server).await;
    assert!(
        eventually(WAIT, || fake.counts("players").last().map(String::as_str)
            == Some("2"))
        .await
    );
    drop(bob);
    assert!(
        eventually(WAIT, || fake.counts("players").last().map(String::as_str)
            == Some("1"))
        .await
    );
    assert_eq!(fake.ok("/allocate"), 1, "allocated once");

    alice.send("B,5,120,5,3").await;
    assert!(
        eventually(WAIT, || server.shared.metrics.pending_edits.get() == 1).await,
        "the edit waits for the drain"
    );
    assert_eq!(fake.ok("/shutdown"), 0);
    // What SIGTERM does in the binary.
    server.stop().await;
    alice
        .until(WAIT, |l| l.starts_with("T,Game server maintenance"))
        .await;

    let log = entries(&journal);
    let at = |entry: &str| {
        log.iter()
            .position(|e| e == entry)
            .unwrap_or_else(|| panic!("{entry} missing from {log:#?}"))
    };
    let ready = at("agones: POST /ready 200");
    let allocate = at("agones: POST /allocate 200");
    let apply = at("store: apply 1");
    let close = at("store: close");
    let shutdown = at("agones: POST /shutdown 200");
    assert!(ready < allocate, "{log:#?}");
    assert!(
        allocate < apply && apply < close && close < shutdown,
        "Shutdown only once every edit is stored: {log:#?}"
    );
    assert!(
        log[shutdown + 1..]
            .iter()
            .all(|e| e == "agones: POST /health 200"),
        "nothing but a last ping in flight after Shutdown: {log:#?}"
    );
    assert!(
        fake.calls().iter().all(|c| c.status < 300),
        "{:?}",
        fake.calls()
    );
    store.inner.reopen();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_waits_for_the_store_and_a_late_sidecar() {
    let fake = FakeAgones::start(None).await;
    fake.fail_ready(2);
    let store = Arc::new(TestStore::default());
    store.ping_down.store(true, Ordering::SeqCst);
    let server = TestServer::start(store.clone(), |c| agones(c, &fake)).await;
    assert!(
        eventually(WAIT, || fake.ok("/health") >= 3).await,
        "alive meanwhile"
    );
    assert!(
        fake.calls().iter().all(|c| c.path != "/ready"),
        "no Ready before the store answered"
    );
    store.ping_down.store(false, Ordering::SeqCst);
    assert!(
        eventually(WAIT, || fake.ok("/ready") == 1).await,
        "Ready once it does"
    );
    let attempts = fake.calls().iter().filter(|c| c.path == "/ready").count();
    assert_eq!(attempts, 3, "two refusals, then Ready");
    server.stop().await;
    assert_eq!(fake.ok("/shutdown"), 1);
}

/// Health pings by result, from the metrics.
fn pings(metrics: &Metrics, result: &'static str) -> u64 {
    metrics
        .agones_health_pings
        .get_or_create(&ResultLabel { result })
        .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_pings_stop_while_the_game_loop_is_stuck() {
    let fake = FakeAgones::start(None).await;
    // The test is the game loop, and its clock moves only when told.
    let clock = Clock::manual();
    let health = Arc::new(Health::with_clock(10, clock.clone()));
    let metrics = Arc::new(Metrics::new());
    let config = AgonesConfig {
        enabled: Switch::On,
        health_interval: Duration::from_millis(50),
        ..AgonesConfig::default()
    };
    let stall_timeout = Duration::from_secs(10);
    let agones = Agones::start(
        &config,
        fake.url(),
        health.clone(),
        metrics.clone(),
        Arc::new(Control::new()),
        stall_timeout,
    );
    health.turn();
    assert!(
        eventually(WAIT, || fake.ok("/health") >= 3).await,
        "pings while it turns"
    );
    // Stuck: past the stall timeout without a turn.
    clock.advance(stall_timeout);
    assert!(eventually(WAIT, || pings(&metrics, "skipped") >= 1).await);
    // A skip means no ping is in flight: the count stands from here.
    let stuck = fake.ok("/health");
    let skipped = pings(&metrics, "skipped");
    assert!(eventually(WAIT, || pings(&metrics, "skipped") >= skipped + 3).await);
    assert_eq!(fake.ok("/health"), stuck, "no pings from a stuck loop");
    assert_eq!(pings(&metrics, "ok"), stuck as u64);
    health.turn();
    assert!(
        eventually(WAIT, || fake.ok("/health") > stuck).await,
        "pings resume"
    );
    agones.shutdown().await;
    assert_eq!(fake.ok("/shutdown"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuts_down_after_being_empty_for_a_while() {
    let fake = FakeAgones::start(None).await;
    let limit = Duration::from_secs(600);
    let mut server = TestServer::memory(|c| {
        agones(c, &fake);
        c.agones.shutdown_when_empty_for = Some(limit);
    })
    .await;
    assert!(eventually(WAIT, || fake.ok("/ready") == 1).await);
    // (A Ready server nobody joined is a warm spare that stays: see the
    // empty timer's unit test.)
    let alice = join(&server).await;
    assert!(eventually(WAIT, || fake.ok("/allocate") == 1).await);
    drop(alice);
    // Back to 0 after alice's 1 (the 0 reported before she joined does not
    // count: the timer starts when her leaving is seen).
    assert!(
        eventually(WAIT, || {
            let counts = fake.counts("players");
            let one = counts.iter().rposition(|c| c == "1");
            one.is_some_and(|at| counts[at + 1..].iter().any(|c| c == "0"))
        })
        .await
    );
    // Ten minutes pass on the server's clock.
    server.clock.advance(limit);
    assert!(server.finished(WAIT).await, "drained and stopped by itself");
    assert_eq!(fake.ok("/shutdown"), 1);
    assert_eq!(server.shared.control.drain_reason(), Some("empty"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_count_falls_back_to_a_label_without_a_counter() {
    let fake = FakeAgones::start(None).await;
    fake.without_counter();
    let server = TestServer::memory(|c| agones(c, &fake)).await;
    let _alice = join(&server).await;
    let labelled = |value: &str| {
        fake.calls().iter().any(|c| {
            c.method == "PUT"
                && c.path == "/metadata/label"
                && c.body == serde_json::json!({"key": "players", "value": value})
        })
    };
    assert!(
        eventually(WAIT, || labelled("1")).await,
        "{:?}",
        fake.calls()
    );
    server.stop().await;
}
