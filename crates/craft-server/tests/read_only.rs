//! A store outage long enough to fill the edit buffer: new edits are
//! refused (the world is read-only), none accepted is lost, and once the
//! store takes the edits again everything accepted is stored and editing
//! resumes.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::TestServer;
use support::fakes::TestStore;
use world_core::BlockStore;
use world_core::coords::ChunkPos;

const WAIT: Duration = Duration::from_secs(10);
const READ_ONLY: &str = "T,The world is read-only until its store is back; that edit was not kept.";

async fn stored_xs(store: &TestStore) -> Vec<i32> {
    let data = store
        .inner
        .load_chunk(ChunkPos::new(0, 0), 0)
        .await
        .expect("load");
    let mut xs: Vec<i32> = data.blocks.iter().map(|b| b.pos.x).collect();
    xs.sort_unstable();
    xs
}

/// Waits until the blocks stored in chunk (0, 0) are at exactly `xs`.
async fn stored_eventually(store: &TestStore, xs: &[i32]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = stored_xs(store).await;
        if now == xs {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "stored: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_edit_buffer_makes_the_world_read_only_until_the_store_is_back() {
    let store = Arc::new(TestStore::default());
    let server = TestServer::start(store.clone(), |c| {
        c.admin_listen = Some("127.0.0.1:0".parse().expect("addr"));
        c.commit_interval = Duration::from_millis(20);
        c.limits.max_pending_edits = 4;
        c.limits.max_unwritten_edits = 10;
    })
    .await;
    let mut builder = server.connect().await;
    builder.send("V,1").await;
    builder.send("C,0,0,0").await;
    builder.until(WAIT, |l| l == "C,0,0").await;

    // The store stops taking writes: the first flush hangs, later edits pile
    // up behind it.
    store.hold_apply.store(true, Ordering::SeqCst);
    for x in 1..=20 {
        builder.send(&format!("B,{x},100,5,3")).await;
    }
    builder.send("L,1,100,5,9").await;
    builder.send("S,1,100,5,0,hello").await;
    builder.send("T,marker").await;
    let lines = builder.until(WAIT, |l| l == "T,guest1> marker").await;
    // Edits are applied in order: the first ten fill the buffer, the rest
    // are refused and put back on the client.
    let mut want = Vec::new();
    for x in 11..=20 {
        want.push(format!("B,0,0,{x},100,5,0"));
        want.push("R,0,0".to_owned());
        want.push(READ_ONLY.to_owned());
    }
    want.extend(["R,0,0".to_owned(), READ_ONLY.to_owned()]);
    want.push(READ_ONLY.to_owned());
    want.push("T,guest1> marker".to_owned());
    assert_eq!(lines, want);
    let reason = server.admin_until("/readyz", |s, _| s == 503).await;
    assert!(reason.starts_with("read-only"), "{reason}");
    let metrics = server
        .admin_until("/metrics", |_, b| b.contains("craft_pending_edits 10\n"))
        .await;
    assert!(
        metrics.contains("craft_pending_edits_limit 10\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"craft_edits_total{kind="block",result="read_only"} 10"#),
        "{metrics}"
    );

    // The store is back: every accepted edit is written, none refused.
    store.hold_apply.store(false, Ordering::SeqCst);
    let accepted: Vec<i32> = (1..=10).collect();
    stored_eventually(&store, &accepted).await;
    server.admin_until("/readyz", |s, _| s == 200).await;
    builder.send("B,25,100,5,3").await;
    builder.send("T,again").await;
    let lines = builder.until(WAIT, |l| l == "T,guest1> again").await;
    assert_eq!(lines, vec!["T,guest1> again"], "accepted silently");
    let mut all = accepted.clone();
    all.push(25);
    stored_eventually(&store, &all).await;
    server.stop().await;
}
