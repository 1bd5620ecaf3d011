//! The admin page over real sockets: the pages and their assets, the
//! figures and the event stream, map tiles (cached, invalidated by edits,
//! within the CPU budget), and the operator actions, refused without the
//! token and done with it.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use craft_server::admin::AdminToken;
use craft_server::admin::tiles::shade;
use craft_server::config::Config;
use serde_json::json;
use support::admin::{Events, TOKEN, decode, get, pixel, post, status, status_until};
use support::fakes::{TestStore, eventually};
use support::{Client, TestServer};
use world_core::BlockStore;
use world_core::store::MemoryStore;
use world_core::terrain::Top;

const WAIT: Duration = Duration::from_secs(20);

fn read_only(c: &mut Config) {
    c.admin_listen = Some("127.0.0.1:0".parse().expect("addr"));
}

fn with_token(c: &mut Config) {
    read_only(c);
    c.admin.token = Some(AdminToken::new(TOKEN));
}

async fn join(server: &TestServer) -> Client {
    let mut client = server.connect().await;
    client.send("V,1").await;
    client.until(WAIT, |l| l.starts_with("N,")).await;
    client
}

/// Every action with a body that would be valid.
fn actions() -> [(&'static str, serde_json::Value); 4] {
    [
        ("/api/kick", json!({ "nick": "guest1" })),
        ("/api/broadcast", json!({ "text": "hello" })),
        ("/api/drain", json!({})),
        ("/api/rollback", json!({ "since_ms": 0 })),
    ]
}

#[tokio::test]
async fn pages_and_assets_come_from_the_binary() {
    let server = TestServer::memory(with_token).await;
    for (path, script) in [("/", "/assets/dashboard.js"), ("/map", "/assets/map.js")] {
        let page = get(&server, path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(page.header("content-type").starts_with("text/html"));
        assert!(
            page.header("content-security-policy")
                .contains("script-src 'self'"),
            "{path}: {}",
            page.header("content-security-policy")
        );
        let html = page.text();
        assert!(html.contains(script), "{path} loads {script}");
        assert!(html.contains("/assets/common.js"));
        assert!(!html.contains(TOKEN), "no secret on the page");
    }
    for (asset, kind) in [
        ("admin.css", "text/css"),
        ("common.js", "text/javascript"),
        ("dashboard.js", "text/javascript"),
        ("map.js", "text/javascript"),
    ] {
        let got = get(&server, &format!("/assets/{asset}")).await;
        assert_eq!(got.status, 200, "{asset}");
        assert!(got.header("content-type").starts_with(kind), "{asset}");
        assert!(got.body.len() > 100, "{asset} has content");
        assert!(!got.text().contains(TOKEN));
    }
    assert!(
        get(&server, "/assets/map.js")
            .await
            .text()
            .contains("player-marker"),
        "the map draws player markers"
    );
    assert_eq!(get(&server, "/assets/secret.txt").await.status, 404);
    // The probes are unchanged.
    assert_eq!(get(&server, "/healthz").await.text(), "ok\n");
    server.stop().await;
}

#[tokio::test]
async fn status_shows_players_writes_and_warnings() {
    // The dashboard's warnings come from this layer (main installs it).
    {
        use tracing_subscriber::layer::SubscriberExt;
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(craft_server::admin::logs::layer()),
        );
    }
    let server = TestServer::memory(|c| {
        with_token(c);
        c.commit_interval = Duration::from_secs(60);
    })
    .await;
    let mut client = join(&server).await;
    client.send("P,10.5,30,-20.25,0,0").await;
    client.send("B,5,120,5,3").await;
    tracing::warn!("a warning for the dashboard");
    let s = status_until(&server, WAIT, |s| {
        s["players_online"] == 1 && s["edits_total"] == 1 && s["players"][0]["x"] == 10.5
    })
    .await;
    assert_eq!(s["players"][0]["nick"], "guest1");
    assert_eq!(s["players"][0]["id"], 1);
    assert_eq!(s["players"][0]["z"], -20.25);
    assert_eq!(s["players_fleet"], serde_json::Value::Null, "no bus");
    assert_eq!(s["bus"], "none");
    assert_eq!(s["pending_writes"], 1, "the edit waits for its flush");
    assert_eq!(s["in_flight_writes"], 0);
    assert_eq!(s["ready"], true);
    assert_eq!(s["store_ok"], true);
    assert!(
        s["store_rtt_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{s}"
    );
    assert!(s["edits_per_second"].as_f64().is_some(), "{s}");
    assert_eq!(s["actions"], true);
    assert_eq!(s["history"], true, "memory worlds record history");
    assert_eq!(s["max_zoom"], 3);
    assert!(
        s["warnings"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["text"] == "a warning for the dashboard")),
        "{s}"
    );
    assert!(!s.to_string().contains(TOKEN));
    drop(client);
    status_until(&server, WAIT, |s| s["players_online"] == 0).await;
    server.stop().await;
}

#[tokio::test]
async fn the_event_stream_sends_figures_and_edits() {
    let server = TestServer::memory(read_only).await;
    let mut events = Events::open(&server).await;
    let first = events.until(WAIT, |e| e.name == "status").await;
    let figures: serde_json::Value = serde_json::from_str(&first.data).expect("JSON");
    assert_eq!(figures["players_online"], 0);
    assert_eq!(figures["actions"], false);
    let mut client = join(&server).await;
    events
        .until(WAIT, |e| {
            e.name == "status" && e.data.contains("\"nick\":\"guest1\"")
        })
        .await;
    client.send("B,-40,100,70,9").await;
    let edits = events.until(WAIT, |e| e.name == "edits").await;
    let edits: serde_json::Value = serde_json::from_str(&edits.data).expect("JSON");
    assert_eq!(
        edits[0],
        json!({ "p": -2, "q": 2, "x": -40, "y": 100, "z": 70, "w": 9, "time_ms": edits[0]["time_ms"] })
    );
    assert!(edits[0]["time_ms"].as_i64().is_some_and(|t| t > 0));
    server.stop().await;
}

#[tokio::test]
async fn actions_are_forbidden_without_a_configured_token() {
    let server = TestServer::memory(read_only).await;
    let mut client = join(&server).await;
    for (path, body) in actions() {
        for token in [None, Some(TOKEN)] {
            let (code, _, answer) = post(&server, path, token, body.clone()).await;
            assert_eq!(code, 403, "{path} {token:?}: {answer}");
            assert!(
                answer["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("no admin token")),
                "{answer}"
            );
        }
    }
    // Nothing happened: the player is still there, nobody drains.
    client.send("T,still here").await;
    client.until(WAIT, |l| l == "T,guest1> still here").await;
    assert_eq!(status(&server).await["draining"], false);
    assert!(!server.shared.control.drain_requested());
    server.stop().await;
}

#[tokio::test]
async fn actions_need_the_right_token() {
    let server = TestServer::memory(with_token).await;
    let mut client = join(&server).await;
    for (path, body) in actions() {
        for token in [None, Some("wrong-token"), Some("")] {
            let (code, challenge, answer) = post(&server, path, token, body.clone()).await;
            assert_eq!(code, 401, "{path} {token:?}: {answer}");
            assert_eq!(challenge, "Bearer");
            assert!(!answer.to_string().contains(TOKEN));
        }
    }
    // Refused before the body is even read.
    let (code, _, _) = post(&server, "/api/kick", None, json!("not an object")).await;
    assert_eq!(code, 401);
    client.send("T,still here").await;
    let lines = client.until(WAIT, |l| l == "T,guest1> still here").await;
    assert!(!lines.iter().any(|l| l == "T,hello"), "{lines:?}");
    assert!(!server.shared.control.drain_requested());
    server.stop().await;
}

#[tokio::test]
async fn kick_disconnects_the_player() {
    let server = TestServer::memory(with_token).await;
    let mut alice = join(&server).await;
    let mut bob = join(&server).await;
    let (code, _, answer) = post(
        &server,
        "/api/kick",
        Some(TOKEN),
        json!({ "nick": "guest1" }),
    )
    .await;
    assert_eq!((code, &answer), (200, &json!({ "kicked": "guest1" })));
    alice
        .until(WAIT, |l| {
            l == "T,You have been disconnected by an operator."
        })
        .await;
    let rest = alice.drain(WAIT).await;
    assert!(rest.is_empty(), "then the connection closes: {rest:?}");
    bob.until(WAIT, |l| l == "D,1").await;
    let (code, _, answer) = post(&server, "/api/kick", Some(TOKEN), json!({ "id": 2 })).await;
    assert_eq!((code, &answer), (200, &json!({ "kicked": "guest2" })));
    bob.until(WAIT, |l| l.starts_with("T,You have been disconnected"))
        .await;
    let (code, _, _) = post(
        &server,
        "/api/kick",
        Some(TOKEN),
        json!({ "nick": "nobody" }),
    )
    .await;
    assert_eq!(code, 404);
    let (code, _, _) = post(&server, "/api/kick", Some(TOKEN), json!({})).await;
    assert_eq!(code, 400);
    status_until(&server, WAIT, |s| s["players_online"] == 0).await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_reaches_every_player() {
    let server = TestServer::memory(with_token).await;
    let mut alice = join(&server).await;
    let mut bob = join(&server).await;
    let (code, _, answer) = post(
        &server,
        "/api/broadcast",
        Some(TOKEN),
        json!({ "text": "Restart at noon, commas, too" }),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    for client in [&mut alice, &mut bob] {
        client
            .until(WAIT, |l| l == "T,Restart at noon, commas, too")
            .await;
    }
    let (code, _, _) = post(
        &server,
        "/api/broadcast",
        Some(TOKEN),
        json!({ "text": " " }),
    )
    .await;
    assert_eq!(code, 400, "an empty message is refused");
    let (code, _, _) = post(
        &server,
        "/api/broadcast",
        Some(TOKEN),
        json!({ "text": "x".repeat(300) }),
    )
    .await;
    assert_eq!(code, 400, "so is one longer than the client shows");
    server.stop().await;
}

#[tokio::test]
async fn drain_starts_the_drain() {
    let store = Arc::new(MemoryStore::new());
    let mut server = TestServer::start(store.clone(), with_token).await;
    let mut client = join(&server).await;
    client.send("B,5,120,5,3").await;
    let (code, _, answer) = post(&server, "/api/drain", Some(TOKEN), json!({})).await;
    assert_eq!(
        (code, &answer),
        (202, &json!({ "draining": true, "reason": "operator" }))
    );
    client
        .until(WAIT, |l| l.starts_with("T,Game server maintenance"))
        .await;
    assert!(server.shared.control.drain_requested());
    assert!(server.finished(WAIT).await, "the drain ends by itself");
    store.reopen();
    let data = store
        .load_chunk(world_core::coords::ChunkPos::new(0, 0), 0)
        .await
        .expect("load");
    assert!(data.blocks.iter().any(|b| b.w == 3), "the edit was written");
}

#[tokio::test]
async fn rollback_says_history_is_not_enabled() {
    let server = TestServer::memory(|c| {
        with_token(c);
        c.history.record = Some(false);
    })
    .await;
    let (code, _, answer) = post(
        &server,
        "/api/rollback",
        Some(TOKEN),
        json!({ "user": "griefer", "since_ms": 0 }),
    )
    .await;
    assert_eq!(
        (code, &answer),
        (501, &json!({ "error": "history is not enabled" }))
    );
    let (code, _, _) = post(&server, "/api/rollback", Some(TOKEN), json!({ "user": 3 })).await;
    assert_eq!(code, 400, "a malformed request is still refused");
    server.stop().await;
}

#[tokio::test]
async fn rollback_restores_and_players_see_it() {
    let store = Arc::new(MemoryStore::new());
    let server = TestServer::start(store.clone(), |c| {
        with_token(c);
        c.commit_interval = Duration::from_millis(20);
    })
    .await;
    let status = status(&server).await;
    assert_eq!(status["history"], true);
    let mut griefer = join(&server).await;
    let mut other = join(&server).await;
    griefer.send("B,3,100,3,6").await;
    other.until(WAIT, |l| l == "B,0,0,3,100,3,6").await;
    let pos = world_core::BlockPos::new(3, 100, 3);
    let stored = |store: Arc<MemoryStore>| async move {
        let data = store.load_chunk(pos.chunk(), 0).await.expect("load");
        data.blocks.iter().find(|b| b.pos == pos).map(|b| b.w)
    };
    let mut flushed = false;
    for _ in 0..80 {
        if stored(store.clone()).await == Some(6) {
            flushed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(flushed, "the edit reaches the store");
    let (code, _, answer) = post(
        &server,
        "/api/rollback",
        Some(TOKEN),
        json!({ "user": "guest1", "since_ms": 0 }),
    )
    .await;
    assert_eq!((code, &answer), (200, &json!({ "blocks": 1 })));
    other.until(WAIT, |l| l == "B,0,0,3,100,3,0").await;
    assert_eq!(stored(store.clone()).await, Some(0));
    let (code, _, _) = post(
        &server,
        "/api/rollback",
        Some(TOKEN),
        json!({ "user": "guest1", "since_ms": -1 }),
    )
    .await;
    assert_eq!(code, 400);
    server.stop().await;
}

#[tokio::test]
async fn tiles_show_edits_at_once_and_come_from_the_cache() {
    let server = TestServer::memory(|c| {
        read_only(c);
        // The edit stays pending: the tile must take it from the game loop.
        c.commit_interval = Duration::from_secs(60);
    })
    .await;
    let before = get(&server, "/tiles/0/0/0").await;
    assert_eq!(before.status, 200);
    assert_eq!(before.header("content-type"), "image/png");
    let pixels = decode(&before.body);
    let again = get(&server, "/tiles/0/0/0").await;
    assert_eq!(again.body, before.body, "the same tile again");

    let mut client = join(&server).await;
    client.send("B,5,200,6,4").await;
    let brick = shade(Top { y: 200, w: 4 });
    assert_ne!(pixel(&pixels, 5, 6), brick);
    let mut after = Vec::new();
    let shown = async {
        for _ in 0..200 {
            after = decode(&get(&server, "/tiles/0/0/0").await.body);
            if pixel(&after, 5, 6) == brick {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
    .await;
    assert!(shown, "the tile shows the new block");
    assert_eq!(
        pixels
            .chunks(3)
            .zip(after.chunks(3))
            .filter(|(a, b)| a != b)
            .count(),
        1,
        "only that column changed"
    );
    // Coarser zooms show it too: (5, 6) is not sampled there, (4, 6) is.
    client.send("B,4,200,6,4").await;
    let mut coarse_ok = false;
    for _ in 0..200 {
        let coarse = decode(&get(&server, "/tiles/1/0/0").await.body);
        if pixel(&coarse, 2, 3) == brick {
            coarse_ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(coarse_ok, "the zoom 1 tile shows the block at (4, 6)");
    assert_eq!(
        get(&server, "/tiles/4/0/0").await.status,
        404,
        "beyond the coarsest zoom"
    );
    assert_eq!(
        get(&server, "/tiles/0/99999/0").await.status,
        404,
        "too far out"
    );
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn tile_renders_beyond_the_budget_are_refused_with_retry_after() {
    let store = Arc::new(TestStore::default());
    let server = TestServer::start(store.clone(), |c| {
        read_only(c);
        c.admin.tile_renders = 1;
        c.admin.tile_queue = 0;
    })
    .await;
    // The first render waits on the store, holding the only slot.
    store.hold_list.store(true, Ordering::SeqCst);
    let first = {
        let addr = server.admin.expect("admin");
        tokio::spawn(async move {
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client")
                .get(format!("http://{addr}/tiles/0/0/0"))
                .send()
                .await
                .expect("GET")
                .status()
                .as_u16()
        })
    };
    assert!(
        eventually(WAIT, || store.lists.load(Ordering::SeqCst) >= 1).await,
        "the first render reached the store"
    );
    let busy = get(&server, "/tiles/0/1/0").await;
    assert_eq!(busy.status, 503, "{}", busy.text());
    assert_eq!(busy.header("retry-after"), "1");
    store.hold_list.store(false, Ordering::SeqCst);
    assert_eq!(first.await.expect("first"), 200);
    assert_eq!(
        get(&server, "/tiles/0/1/0").await.status,
        200,
        "a retry gets it"
    );
    server.stop().await;
}
