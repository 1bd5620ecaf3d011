//! Spot interruptions: the server against a fake EC2 metadata service
//! that, like IMDSv2, refuses every read without a session token.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use craft_server::config::Config;
use craft_server::config::ImdsConfig;
use craft_server::config::Switch;
use craft_server::imds::{Notice, Watcher};
use support::TestServer;
use support::fakes::{FakeAgones, FakeImds, Journal, TestStore, eventually, journal};

const WAIT: Duration = Duration::from_secs(10);

fn imds(c: &mut Config, fake: &FakeImds) {
    c.imds.enabled = Switch::On;
    c.imds.base_url = fake.url();
    c.imds.poll_interval = Duration::from_millis(100);
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
async fn the_fake_refuses_reads_without_a_token() {
    let fake = FakeImds::start().await;
    let (status, _, _) = support::http_get(&format!(
        "{}/latest/meta-data/spot/instance-action",
        fake.url()
    ))
    .await;
    assert_eq!(status, 401);
    assert_eq!(fake.refused(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_reads_notices_with_a_token() {
    let fake = FakeImds::start().await;
    let mut watcher = Watcher::new(&ImdsConfig {
        base_url: fake.url(),
        ..ImdsConfig::default()
    })
    .expect("watcher");
    assert_eq!(watcher.poll().await.expect("poll"), None);
    assert_eq!(fake.issued(), 1, "one token for both reads");
    assert_eq!(fake.served(), 2);
    // An expired token is replaced, not an error.
    fake.expire_tokens();
    assert_eq!(watcher.poll().await.expect("poll"), None);
    assert_eq!(fake.issued(), 2);
    fake.recommend_rebalance(r#"{"noticeTime": "2025-01-01T12:00:00Z"}"#);
    assert_eq!(watcher.poll().await.expect("poll"), Some(Notice::Rebalance));
    fake.interrupt(r#"{"action": "stop", "time": "2025-01-01T12:02:00Z"}"#);
    let notice = watcher.poll().await.expect("poll");
    let at = humantime::parse_rfc3339("2025-01-01T12:02:00Z").expect("time");
    assert_eq!(
        notice,
        Some(Notice::Interruption {
            action: "stop".into(),
            at: Some(at)
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spot_notice_warns_players_and_drains() {
    let journal = journal();
    let imds_fake = FakeImds::start().await;
    let agones = FakeAgones::start(Some(journal.clone())).await;
    let store = Arc::new(TestStore::journaled(journal.clone()));
    let mut server = TestServer::start(store.clone(), |c| {
        imds(c, &imds_fake);
        c.agones.enabled = Switch::On;
        c.agones.url = Some(agones.url());
        c.commit_interval = Duration::from_secs(60);
        c.shutdown.flush_reserve = Duration::from_secs(2);
        c.shutdown.grace = Duration::from_secs(1);
        c.shutdown.countdown = vec![5];
    })
    .await;
    let mut alice = join(&server).await;
    let mut bob = join(&server).await;
    alice.send("B,5,120,5,3").await;
    assert!(
        eventually(WAIT, || server.shared.metrics.pending_edits.get() == 1).await,
        "the edit is pending"
    );
    assert!(
        eventually(WAIT, || imds_fake.served() >= 4).await,
        "polling"
    );
    imds_fake.expire_tokens();
    assert!(
        eventually(WAIT, || imds_fake.issued() >= 2).await,
        "new token"
    );

    // A short notice: closes 2 s (the flush reserve) before it runs out,
    // with a countdown line at 5 s before the close.
    let at = SystemTime::now() + Duration::from_secs(12);
    imds_fake.interrupt(&format!(
        r#"{{"action": "terminate", "time": "{}"}}"#,
        humantime::format_rfc3339_seconds(at)
    ));
    let lines = alice
        .until(WAIT, |l| {
            l.starts_with("T,This server is being reclaimed in ")
        })
        .await;
    let warning = lines.last().expect("warning");
    let seconds: u64 = warning
        .trim_start_matches("T,This server is being reclaimed in ")
        .split(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no seconds in {warning}"));
    assert!((8..=12).contains(&seconds), "{warning}");
    assert!(
        warning.ends_with("seconds - your universe is saved"),
        "{warning}"
    );
    // Play goes on during the countdown; new players are sent elsewhere.
    assert!(
        eventually(WAIT, || server.shared.health.readiness()
            == Err("shutdown scheduled"))
        .await,
        "not ready while counting down"
    );
    alice.send("B,6,120,5,3").await;
    bob.until(WAIT, |l| l == "B,0,0,6,120,5,3").await;
    let lines = alice
        .until(WAIT, |l| l.starts_with("T,Game server maintenance"))
        .await;
    assert!(
        lines
            .iter()
            .any(|l| l == "T,This server shuts down in 5 seconds - your universe is saved"),
        "{lines:#?}"
    );
    assert!(
        server.finished(WAIT).await,
        "the server drained and stopped"
    );

    let log = entries(&journal);
    let at = |entry: &str| {
        log.iter()
            .position(|e| e == entry)
            .unwrap_or_else(|| panic!("{entry} missing from {log:#?}"))
    };
    assert!(
        at("store: apply 2") < at("agones: POST /shutdown 200"),
        "{log:#?}"
    );
    store.inner.reopen();
    let data = world_core::BlockStore::load_chunk(
        &store.inner,
        world_core::coords::ChunkPos::new(0, 0),
        0,
    )
    .await
    .expect("load");
    for x in [5, 6] {
        let pos = world_core::coords::BlockPos::new(x, 120, 5);
        assert!(
            data.blocks.iter().any(|b| b.pos == pos && b.w == 3),
            "the edit at x = {x} was stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_recommendation_drains_too() {
    let imds_fake = FakeImds::start().await;
    let mut server = TestServer::memory(|c| imds(c, &imds_fake)).await;
    let mut alice = join(&server).await;
    imds_fake.recommend_rebalance(r#"{"noticeTime": "2025-01-01T12:00:00Z"}"#);
    alice
        .until(WAIT, |l| {
            l == "T,This server is moving to another machine - your universe is saved"
        })
        .await;
    assert!(server.finished(WAIT).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_recommendation_can_be_only_noted() {
    let imds_fake = FakeImds::start().await;
    let mut server = TestServer::memory(|c| {
        imds(c, &imds_fake);
        c.imds.drain_on_rebalance = false;
    })
    .await;
    let _alice = join(&server).await;
    imds_fake.recommend_rebalance(r#"{"noticeTime": "2025-01-01T12:00:00Z"}"#);
    let served = imds_fake.served();
    assert!(
        eventually(WAIT, || imds_fake.served() >= served + 4).await,
        "still polling"
    );
    // The drain starts on the poll that sees a notice: none was asked for.
    assert_eq!(server.shared.control.drain_reason(), None, "still serving");
    assert!(!server.finished(Duration::ZERO).await);
    server.stop().await;
}
