//! Private builds over real sockets: `/private`, `/publish`, `/discard`,
//! with a second player who must see nothing before `/publish` and
//! everything after; drafts kept across a restart; a failed publish.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use craft_server::config::{Config, LoginMode};
use support::TestServer;
use world_core::coords::{BlockPos, ChunkPos};
use world_core::store::{ForwardingStore, MemoryStore, StoreCall, StoreResult};
use world_core::{BlockStore, StoreError};

const WAIT: Duration = Duration::from_secs(10);

fn quick(c: &mut Config) {
    c.commit_interval = Duration::from_millis(50);
}

async fn with_login(store: Arc<dyn BlockStore>) -> TestServer {
    let auth = support::fakes::identity().await;
    TestServer::start(store, move |c| {
        quick(c);
        c.login.mode = LoginMode::Http;
        c.login.url = Some(format!("http://{auth}/api/1/access"));
    })
    .await
}

async fn join(server: &TestServer) -> support::Client {
    let mut client = server.connect().await;
    client.send("V,1").await;
    client.until(WAIT, |l| l.starts_with("N,")).await;
    client
}

async fn login(server: &TestServer, name: &str) -> support::Client {
    let mut client = join(server).await;
    client.send(&format!("A,{name},good")).await;
    client
        .until(WAIT, |l| l == format!("T,{name} has joined the game."))
        .await;
    client
}

/// Requests chunk (p, q) from key 0 and returns its answer.
async fn chunk(client: &mut support::Client, p: i32, q: i32) -> Vec<String> {
    client.send(&format!("C,{p},{q},0")).await;
    client.until(WAIT, |l| l == format!("C,{p},{q}")).await
}

/// Asks `/private` for the draft's size (it runs after every edit sent
/// before it) and waits for `changes`.
async fn draft_size(client: &mut support::Client, changes: usize) {
    client.send("T,/private").await;
    let s = if changes == 1 { "" } else { "s" };
    let expected = format!("your draft holds {changes} change{s}.");
    client.until(WAIT, |l| l.contains(&expected)).await;
}

fn mentions(lines: &[String], what: &str) -> bool {
    lines.iter().any(|l| l.starts_with(what))
}

/// Waits until `store` holds `w` at `pos` in its own chunk.
async fn stored(store: &dyn BlockStore, pos: BlockPos, w: i32) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        let data = store.load_chunk(pos.chunk(), 0).await.expect("load");
        if data.blocks.iter().any(|b| b.pos == pos && b.w == w) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn others_see_nothing_before_publish_and_everything_after() {
    let store = Arc::new(MemoryStore::new());
    let server = TestServer::start(store.clone(), quick).await;
    let mut alice = join(&server).await;
    let mut bob = join(&server).await;
    chunk(&mut alice, 0, 0).await;
    chunk(&mut bob, 0, 0).await;
    chunk(&mut bob, 1, 0).await;

    alice.send("T,/private").await;
    alice
        .until(WAIT, |l| l.starts_with("T,You are building privately"))
        .await;
    alice.send("B,5,100,5,3").await;
    alice.send("L,5,100,5,7").await;
    alice.send("S,5,100,5,0,hello, \"world\"").await;
    // On the chunk's edge: a mirror in chunk (1, 0).
    alice.send("B,31,100,5,4").await;
    draft_size(&mut alice, 4).await;

    // Bob heard nothing, and his chunk answers hold nothing of it.
    bob.send("T,ping").await;
    let heard = bob.until(WAIT, |l| l == "T,guest2> ping").await;
    assert!(
        !heard.iter().any(|l| l.contains(",100,")),
        "draft leaked live: {heard:?}"
    );
    for (p, q) in [(0, 0), (1, 0)] {
        let answer = chunk(&mut bob, p, q).await;
        assert!(
            !answer.iter().any(|l| l.contains(",100,")),
            "draft leaked in a chunk answer: {answer:?}"
        );
    }
    assert!(
        store
            .load_chunk(ChunkPos::new(0, 0), 0)
            .await
            .expect("load")
            .is_empty()
    );

    // Alice's own answers show her draft (a reload keeps it).
    let own = chunk(&mut alice, 0, 0).await;
    for line in [
        "B,0,0,5,100,5,3",
        "L,0,0,5,100,5,7",
        "S,0,0,5,100,5,0,hello, \"world\"",
        "B,0,0,31,100,5,4",
    ] {
        assert!(own.iter().any(|l| l == line), "{line} missing in {own:?}");
    }
    let mirror = chunk(&mut alice, 1, 0).await;
    assert!(mentions(&mirror, "B,1,0,31,100,5,-4"), "{mirror:?}");

    alice.send("T,/publish").await;
    alice
        .until(WAIT, |l| l.starts_with("T,Published 4 changes"))
        .await;
    let heard = bob
        .until(WAIT, |l| l == "S,0,0,5,100,5,0,hello, \"world\"")
        .await;
    for line in ["B,0,0,5,100,5,3", "L,0,0,5,100,5,7", "B,0,0,31,100,5,4"] {
        assert!(mentions(&heard, line), "{line} not broadcast: {heard:?}");
    }
    let mirror = bob.until(WAIT, |l| l == "B,1,0,31,100,5,-4").await;
    assert!(!mirror.is_empty());
    assert!(stored(&*store, BlockPos::new(5, 100, 5), 3).await);
    let answer = chunk(&mut bob, 0, 0).await;
    assert!(mentions(&answer, "B,0,0,5,100,5,3"), "{answer:?}");
    assert!(mentions(&answer, "L,0,0,5,100,5,7"), "{answer:?}");

    // Back to normal building: the next edit is public at once.
    alice.send("B,6,100,5,5").await;
    bob.until(WAIT, |l| l == "B,0,0,6,100,5,5").await;
    server.stop().await;
}

#[tokio::test]
async fn discard_shows_the_world_again_and_rules_apply_to_drafts() {
    let server = TestServer::start(Arc::new(MemoryStore::new()), |c| {
        quick(c);
        c.drafts.max_changes = 3;
    })
    .await;
    let mut alice = join(&server).await;
    let mut bob = join(&server).await;
    chunk(&mut alice, 0, 0).await;
    // A world block, then a private removal of it.
    alice.send("B,9,100,9,1").await;
    bob.until(WAIT, |l| l == "B,0,0,9,100,9,1").await;
    alice.send("T,/private").await;
    alice
        .until(WAIT, |l| l.starts_with("T,You are building privately"))
        .await;
    alice.send("B,9,100,9,0").await;
    // The drafted removal counts for the rules: nothing to remove now.
    alice.send("B,9,100,9,0").await;
    let lines = alice
        .until(WAIT, |l| l == "T,That space is already empty.")
        .await;
    assert!(mentions(&lines, "B,0,0,9,100,9,0"), "{lines:?}");
    // Out of the editable range, as for normal edits.
    alice.send("B,9,300,9,1").await;
    alice
        .until(WAIT, |l| l == "T,Invalid block coordinates.")
        .await;
    // The removal took two of three changes; two more blocks do not fit.
    alice.send("B,10,100,9,2").await;
    alice.send("B,11,100,9,2").await;
    let lines = alice
        .until(WAIT, |l| {
            l.starts_with("T,Your private draft is full (3 changes)")
        })
        .await;
    assert!(mentions(&lines, "B,0,0,11,100,9,0"), "{lines:?}");
    draft_size(&mut alice, 3).await;

    alice.send("T,/discard").await;
    let lines = alice
        .until(WAIT, |l| {
            l.starts_with("T,Discarded your draft (3 changes)")
        })
        .await;
    assert!(
        mentions(&lines, "B,0,0,9,100,9,1"),
        "world value back: {lines:?}"
    );
    assert!(
        mentions(&lines, "B,0,0,10,100,9,0"),
        "world value back: {lines:?}"
    );
    // Bob never saw any of it; alice builds publicly again.
    alice.send("B,12,100,9,2").await;
    let heard = bob.until(WAIT, |l| l == "B,0,0,12,100,9,2").await;
    assert!(
        !heard
            .iter()
            .any(|l| l.starts_with("B,0,0,9,100,9,0") || l.starts_with("B,0,0,10,100,9")),
        "{heard:?}"
    );
    alice.send("T,/publish").await;
    alice
        .until(WAIT, |l| l.starts_with("T,You are not building privately"))
        .await;
    alice.send("T,/help").await;
    alice
        .until(WAIT, |l| {
            l == "T,/private, /publish [check], /discard, /history, /rollback"
        })
        .await;
    server.stop().await;
}

#[tokio::test]
async fn a_draft_survives_a_restart_and_publishes_on_another_server() {
    let store = Arc::new(MemoryStore::new());
    let first = with_login(store.clone()).await;
    let mut alice = login(&first, "alice").await;
    alice.send("T,/private").await;
    alice
        .until(WAIT, |l| l.starts_with("T,You are building privately"))
        .await;
    alice.send("B,5,100,5,3").await;
    alice.send("S,5,100,5,2,kept").await;
    draft_size(&mut alice, 2).await;
    drop(alice);
    first.stop().await;
    store.reopen();
    assert_eq!(store.load_draft("alice").await.expect("draft").len(), 2);

    let second = with_login(store.clone()).await;
    let mut bob = join(&second).await;
    chunk(&mut bob, 0, 0).await;
    let mut alice = join(&second).await;
    alice.send("A,alice,good").await;
    let lines = alice
        .until(WAIT, |l| l.contains("your draft holds 2 changes"))
        .await;
    assert!(
        mentions(&lines, "B,0,0,5,100,5,3"),
        "draft shown: {lines:?}"
    );
    assert!(mentions(&lines, "S,0,0,5,100,5,2,kept"), "{lines:?}");
    let answer = chunk(&mut bob, 0, 0).await;
    assert!(!answer.iter().any(|l| l.contains(",100,")), "{answer:?}");

    alice.send("T,/publish").await;
    alice
        .until(WAIT, |l| l.starts_with("T,Published 2 changes"))
        .await;
    bob.until(WAIT, |l| l == "S,0,0,5,100,5,2,kept").await;
    assert!(store.load_draft("alice").await.expect("draft").is_empty());
    assert!(stored(&*store, BlockPos::new(5, 100, 5), 3).await);
    second.stop().await;
}

/// A store whose `apply` fails while `failing` is set.
#[derive(Debug, Default)]
struct FailingApply {
    inner: MemoryStore,
    failing: AtomicBool,
}

#[async_trait]
impl ForwardingStore for FailingApply {
    fn target(&self) -> &dyn BlockStore {
        &self.inner
    }

    async fn before(&self, call: StoreCall<'_>) -> StoreResult<()> {
        if matches!(call, StoreCall::Apply(_)) && self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable {
                message: "injected by the test".into(),
                source: None,
            });
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_failed_publish_leaves_no_world_change_and_keeps_the_draft() {
    let store = Arc::new(FailingApply::default());
    let server = with_login(store.clone()).await;
    let mut alice = login(&server, "alice").await;
    let mut bob = join(&server).await;
    chunk(&mut bob, 0, 0).await;
    alice.send("T,/private").await;
    alice
        .until(WAIT, |l| l.starts_with("T,You are building privately"))
        .await;
    for x in 1..=5 {
        alice.send(&format!("B,{x},100,1,3")).await;
    }
    draft_size(&mut alice, 5).await;

    store.failing.store(true, Ordering::SeqCst);
    alice.send("T,/publish").await;
    alice
        .until(WAIT, |l| l.starts_with("T,Publishing failed"))
        .await;
    let world = store
        .inner
        .load_chunk(ChunkPos::new(0, 0), 0)
        .await
        .expect("load");
    assert!(world.is_empty(), "partial world: {world:?}");
    assert_eq!(
        store.inner.load_draft("alice").await.expect("draft").len(),
        5
    );
    draft_size(&mut alice, 5).await;
    let answer = chunk(&mut bob, 0, 0).await;
    assert!(!answer.iter().any(|l| l.contains(",100,")), "{answer:?}");

    store.failing.store(false, Ordering::SeqCst);
    alice.send("T,/publish check").await;
    alice.until(WAIT, |l| l.starts_with("T,No conflicts")).await;
    alice.send("T,/publish").await;
    alice
        .until(WAIT, |l| l.starts_with("T,Published 5 changes"))
        .await;
    bob.until(WAIT, |l| l == "B,0,0,5,100,1,3").await;
    assert!(
        store
            .inner
            .load_draft("alice")
            .await
            .expect("draft")
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test]
async fn publish_reports_positions_others_changed() {
    let server = TestServer::start(Arc::new(MemoryStore::new()), quick).await;
    let mut alice = join(&server).await;
    let mut bob = join(&server).await;
    chunk(&mut alice, 0, 0).await;
    chunk(&mut bob, 0, 0).await;
    alice.send("T,/private").await;
    alice
        .until(WAIT, |l| l.starts_with("T,You are building privately"))
        .await;
    alice.send("B,7,100,7,3").await;
    alice.send("B,8,100,7,3").await;
    draft_size(&mut alice, 2).await;
    bob.send("B,7,100,7,5").await;
    alice.until(WAIT, |l| l == "B,0,0,7,100,7,5").await;
    alice.send("T,/publish check").await;
    alice
        .until(WAIT, |l| {
            l.starts_with("T,1 drafted position was changed by others") && l.contains("(7,100,7)")
        })
        .await;
    alice.send("T,/publish").await;
    alice
        .until(WAIT, |l| {
            l.starts_with("T,Published 2 changes") && l.contains("1 position others had changed")
        })
        .await;
    bob.until(WAIT, |l| l == "B,0,0,7,100,7,3").await;
    server.stop().await;
}
