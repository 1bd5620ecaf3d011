//! The admin listener over a real socket: liveness, readiness (store,
//! full, draining) and the metrics a scrape returns.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use craft_server::admin::METRICS_CONTENT_TYPE;
use craft_server::config::Config;
use craft_server::metrics::Clock;
use craft_server::server::Shared;
use support::TestServer;
use support::fakes::{TestStore, eventually};

const WAIT: Duration = Duration::from_secs(10);

fn with_admin(c: &mut Config) {
    c.admin_listen = Some("127.0.0.1:0".parse().expect("addr"));
}

async fn join(server: &TestServer) -> support::Client {
    let mut client = server.connect().await;
    client.send("V,1").await;
    client.until(WAIT, |l| l.starts_with("N,")).await;
    client
}

/// Sample name with labels -> value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Checks the structure OpenMetrics requires: one `# EOF` at the end, every
/// sample in a declared family, with the suffix its type allows.
fn assert_openmetrics(text: &str) {
    assert!(text.ends_with("# EOF\n"), "no final # EOF");
    assert_eq!(text.matches("# EOF").count(), 1, "one # EOF only");
    let mut families: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                families.insert(name.to_owned(), kind.to_owned()).is_none(),
                "family {name} declared twice"
            );
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name = line
            .split(['{', ' '])
            .next()
            .expect("sample name")
            .to_owned();
        let declared = families.iter().any(|(family, kind)| {
            let suffixes: &[&str] = match kind.as_str() {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_count", "_sum", "_created"],
                _ => &[""],
            };
            suffixes.iter().any(|s| name == format!("{family}{s}"))
        });
        assert!(declared, "sample {name} belongs to no declared family");
    }
}

#[tokio::test]
async fn probes_and_metrics_over_http() {
    let server = TestServer::memory(|c| {
        with_admin(c);
        c.commit_interval = Duration::from_millis(50);
        c.max_players = 1;
    })
    .await;
    let (status, content_type, body) = server.admin_get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    server
        .admin_until("/readyz", |s, b| s == 200 && b == "ready\n")
        .await;

    let mut client = join(&server).await;
    client.send("C,0,0,0").await;
    client.until(WAIT, |l| l == "C,0,0").await;
    client.send("B,5,120,5,3").await;
    // Occupied now: refused.
    client.send("B,5,120,5,4").await;
    client.until(WAIT, |l| l.starts_with("T,")).await;
    // A second player is one too many.
    let mut refused = server.connect().await;
    let line = refused.line(WAIT).await;
    assert_eq!(
        line.as_deref(),
        Some("T,The server is full; try again later.")
    );
    let full = server.admin_until("/readyz", |s, _| s == 503).await;
    assert_eq!(full, "full\n");

    let text = server
        .admin_until("/metrics", |_, b| {
            let m = samples(b);
            m.get("craft_flush_seconds_count")
                .is_some_and(|v| *v >= 1.0)
                && m.get("craft_players").is_some_and(|v| *v == 1.0)
        })
        .await;
    let (status, content_type, _) = server.admin_get("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, METRICS_CONTENT_TYPE);
    assert_openmetrics(&text);
    let m = samples(&text);
    let at_least = |name: &str, min: f64| {
        let v = m.get(name).copied();
        assert!(v.is_some_and(|v| v >= min), "{name} = {v:?}\n{text}");
    };
    at_least("craft_players", 1.0);
    at_least("craft_lines_in_total", 4.0);
    at_least("craft_lines_out_total", 5.0);
    at_least("craft_bytes_out_total", 10.0);
    at_least(r#"craft_edits_total{kind="block",result="accepted"}"#, 1.0);
    at_least(r#"craft_edits_total{kind="block",result="refused"}"#, 1.0);
    at_least("craft_chunk_requests_total", 1.0);
    at_least("craft_chunk_answer_seconds_count", 1.0);
    at_least(r#"craft_store_call_seconds_count{op="ping"}"#, 1.0);
    at_least(r#"craft_store_call_seconds_count{op="load_chunk"}"#, 1.0);
    at_least(r#"craft_store_call_seconds_count{op="apply"}"#, 1.0);
    at_least("craft_flush_seconds_count", 1.0);
    at_least("craft_pending_edits", 0.0);
    at_least("craft_pending_oldest_milliseconds", 0.0);
    at_least("craft_cached_chunks", 1.0);
    at_least(r#"craft_connections_refused_total{reason="full"}"#, 1.0);
    // The store's own counters, inside the exposition.
    at_least(r#"craft_store_requests_total{op="apply"}"#, 1.0);
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn readiness_follows_the_store_and_the_drain() {
    let store = Arc::new(TestStore::default());
    store.ping_down.store(true, Ordering::SeqCst);
    let mut server = TestServer::start(store.clone(), |c| {
        with_admin(c);
        c.commit_interval = Duration::from_secs(60);
    })
    .await;
    let (status, _, body) = server.admin_get("/readyz").await;
    assert_eq!((status, body.as_str()), (503, "store unavailable\n"));
    // The server pings a silent store until it answers.
    store.ping_down.store(false, Ordering::SeqCst);
    server.admin_until("/readyz", |s, _| s == 200).await;

    // A drain that cannot finish yet (its flush is held) shows as such.
    let mut client = join(&server).await;
    client.send("B,5,120,5,3").await;
    assert!(
        eventually(WAIT, || server.shared.metrics.pending_edits.get() >= 1).await,
        "the edit is pending"
    );
    store.hold_apply.store(true, Ordering::SeqCst);
    server.shared.control.request_drain("test");
    client
        .until(WAIT, |l| l.starts_with("T,Game server maintenance"))
        .await;
    let (status, _, body) = server.admin_get("/readyz").await;
    assert_eq!((status, body.as_str()), (503, "draining\n"));
    let (status, _, _) = server.admin_get("/healthz").await;
    assert_eq!(status, 200, "a draining server is alive");
    store.hold_apply.store(false, Ordering::SeqCst);
    assert!(
        server.finished(WAIT).await,
        "the drain ends once the flush goes through"
    );
    store.inner.reopen();
    let data = world_core::BlockStore::load_chunk(
        &store.inner,
        world_core::coords::ChunkPos::new(0, 0),
        0,
    )
    .await
    .expect("load");
    assert!(data.blocks.iter().any(|b| b.w == 3), "the edit was stored");
}

#[tokio::test]
async fn healthz_fails_when_the_game_loop_stops_turning() {
    // No game loop at all: only the test turns it, and moves the clock.
    let clock = Clock::manual();
    let shared = Shared::with_clock(&Config::default(), clock.clone());
    let stall_timeout = Duration::from_secs(10);
    let (addr, _task) = craft_server::admin::spawn(
        "127.0.0.1:0".parse().expect("addr"),
        shared.clone(),
        stall_timeout,
    )
    .await
    .expect("admin");
    let url = format!("http://{addr}/healthz");
    shared.health.turn();
    let (status, _, _) = support::http_get(&url).await;
    assert_eq!(status, 200);
    clock.advance(stall_timeout - Duration::from_millis(1));
    let (status, _, _) = support::http_get(&url).await;
    assert_eq!(status, 200, "not yet");
    clock.advance(Duration::from_millis(1));
    let (status, _, body) = support::http_get(&url).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, "game loop stuck: last turn 10.0s ago\n");
    shared.health.turn();
    let (status, _, _) = support::http_get(&url).await;
    assert_eq!(status, 200, "alive again once it turns");
    let (status, _, _) = support::http_get(&format!("http://{addr}/nope")).await;
    assert_eq!(status, 404);
}
