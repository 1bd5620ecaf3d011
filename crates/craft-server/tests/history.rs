//! Block history over real sockets and the real binary: `/history`,
//! `/rollback` (operators only, seen by every player, undoable), the admin
//! page's rollback, `craft-server history` / `rollback` against SQLite and
//! PostgreSQL, and retention.

mod support;

use std::sync::Arc;
use std::time::Duration;

use craft_server::config::{LoginMode, StoreUrl};
use support::TestServer;
use world_core::BlockStore;
use world_core::coords::BlockPos;
use world_core::store::{
    Author, Batch, Change, ChangeMeta, HistoryEntry, HistoryQuery, MemoryStore,
};

const WAIT: Duration = Duration::from_secs(20);

async fn server(store: Arc<MemoryStore>) -> TestServer {
    let auth = support::fakes::identity().await;
    TestServer::start(store, move |c| {
        c.login.mode = LoginMode::Http;
        c.login.url = Some(format!("http://{auth}/api/1/access"));
        c.operators = vec!["alice".to_owned()];
        c.commit_interval = Duration::from_millis(50);
        c.sync_interval = Duration::from_millis(200);
    })
    .await
}

/// Joins, logged in as `user` (or a guest when `None`).
async fn join(server: &TestServer, user: Option<&str>) -> support::Client {
    let mut client = server.connect().await;
    client.send("V,1").await;
    client.until(WAIT, |l| l.starts_with("N,")).await;
    if let Some(user) = user {
        client.send(&format!("A,{user},good")).await;
        let joined = format!("T,{user} has joined the game.");
        client.until(WAIT, |l| l == joined).await;
    }
    client
}

/// The value of `pos` in the store (`None`: nothing stored there).
async fn stored(store: &dyn BlockStore, pos: BlockPos) -> Option<i32> {
    let data = store.load_chunk(pos.chunk(), 0).await.expect("load");
    data.blocks.iter().find(|b| b.pos == pos).map(|b| b.w)
}

#[tokio::test]
async fn an_edit_shows_in_history_with_author_and_values() {
    let store = Arc::new(MemoryStore::new());
    let server = server(store.clone()).await;
    let mut guest = join(&server, None).await;
    guest.send("B,5,100,5,3").await;
    guest.send("L,5,100,5,9").await;
    guest.send("S,5,100,5,2,a, \"b\" é").await;
    guest.send("T,/history 5 100 5").await;
    let lines = guest
        .until(WAIT, |l| l.contains("block 0 -> 3 at 5,100,5"))
        .await;
    let at = lines
        .iter()
        .position(|l| l == "T,Last changes at 5,100,5 (newest first):")
        .unwrap_or_else(|| panic!("no header in {lines:?}"));
    let entries = &lines[at + 1..];
    assert_eq!(entries.len(), 3, "{lines:?}");
    assert!(
        entries[0].ends_with(" guest1 (127.0.0.1) sign 2 (none) -> \"a, \\\"b\\\" é\" at 5,100,5"),
        "{entries:?}"
    );
    assert!(entries[1].ends_with(" guest1 (127.0.0.1) light 0 -> 9 at 5,100,5"));
    assert!(entries[2].ends_with(" guest1 (127.0.0.1) block 0 -> 3 at 5,100,5"));

    // The block looked at: from above, looking straight down.
    guest.send("P,5,102,5,0,-1.5707").await;
    guest.send("T,/history").await;
    let lines = guest
        .until(WAIT, |l| {
            l.starts_with("T,Last changes at") || l.starts_with("T,No ")
        })
        .await;
    assert_eq!(
        lines.last().map(String::as_str),
        Some("T,Last changes at 5,100,5 (newest first):")
    );
    server.stop().await;
}

#[tokio::test]
async fn operators_roll_back_for_everyone_and_can_undo_it() {
    let store = Arc::new(MemoryStore::new());
    let server = server(store.clone()).await;
    let mut alice = join(&server, Some("alice")).await;
    let mut bob = join(&server, Some("bob")).await;
    let mut carol = join(&server, None).await;

    alice.send("B,10,100,10,5").await;
    alice.send("T,built").await;
    carol.until(WAIT, |l| l == "T,alice> built").await;
    bob.send("B,10,100,10,0").await;
    bob.send("B,11,100,10,7").await;
    bob.send("S,11,100,10,0,griefed").await;
    bob.send("T,done").await;
    carol.until(WAIT, |l| l == "T,bob> done").await;

    bob.send("T,/rollback bob 10m").await;
    bob.until(WAIT, |l| l == "T,Only operators may /rollback.")
        .await;

    alice.send("T,/rollback bob 10m 50").await;
    alice
        .until(WAIT, |l| {
            l == "T,Rolled back 2 of 3 changes by bob (1 chunks)."
        })
        .await;
    // Another player sees the blocks come back, through the sync (in no
    // particular order within the chunk's update, which ends with R).
    let lines = carol.until(WAIT, |l| l == "R,0,0").await;
    assert!(lines.contains(&"B,0,0,10,100,10,5".to_owned()), "{lines:?}");
    assert!(lines.contains(&"B,0,0,11,100,10,0".to_owned()), "{lines:?}");
    let a = BlockPos::new(10, 100, 10);
    let b = BlockPos::new(11, 100, 10);
    assert_eq!(stored(&*store, a).await, Some(5));
    assert_eq!(stored(&*store, b).await, Some(0));
    let data = store.load_chunk(b.chunk(), 0).await.expect("load");
    assert!(data.signs.is_empty(), "the sign went with the rollback");

    // (2 of 3: putting air back took the sign with it.) The rollback is
    // history too: undo it (with alice's own build, also within the
    // minute).
    alice.send("T,/rollback alice 1m").await;
    alice
        .until(WAIT, |l| l.starts_with("T,Rolled back 3 of "))
        .await;
    let lines = carol.until(WAIT, |l| l == "R,0,0").await;
    assert!(lines.contains(&"B,0,0,10,100,10,0".to_owned()), "{lines:?}");
    assert!(lines.contains(&"B,0,0,11,100,10,7".to_owned()), "{lines:?}");
    assert_eq!(stored(&*store, a).await, Some(0));
    assert_eq!(stored(&*store, b).await, Some(7));
    let data = store.load_chunk(b.chunk(), 0).await.expect("load");
    assert_eq!(data.signs.len(), 1, "the sign is back");
    server.stop().await;
}

#[tokio::test]
async fn a_published_draft_is_history_and_can_be_rolled_back() {
    let store = Arc::new(MemoryStore::new());
    let server = server(store.clone()).await;
    let mut alice = join(&server, Some("alice")).await;
    let mut bob = join(&server, Some("bob")).await;
    let pos = BlockPos::new(20, 100, 20);

    bob.send("T,/private").await;
    bob.until(WAIT, |l| l.starts_with("T,") && l.contains("private"))
        .await;
    bob.send("B,20,100,20,4").await;
    bob.send("L,20,100,20,7").await;
    bob.send("T,/publish").await;
    bob.until(WAIT, |l| l.starts_with("T,Published 2 changes"))
        .await;
    assert_eq!(stored(&*store, pos).await, Some(4));

    bob.send("T,/history 20 100 20").await;
    let lines = bob
        .until(WAIT, |l| l.contains("block 0 -> 4 at 20,100,20"))
        .await;
    let entries: Vec<&String> = lines.iter().filter(|l| l.contains(" bob ")).collect();
    assert_eq!(entries.len(), 2, "{lines:?}");
    assert!(
        entries
            .iter()
            .any(|l| l.ends_with(" bob (127.0.0.1) light 0 -> 7 at 20,100,20")),
        "{lines:?}"
    );

    alice.send("T,/rollback bob 10m").await;
    alice
        .until(WAIT, |l| {
            l.starts_with("T,Rolled back 1 of 2 changes by bob")
        })
        .await;
    assert_eq!(stored(&*store, pos).await, Some(0));
    server.stop().await;
}

#[tokio::test]
async fn history_off_answers_so() {
    let server = TestServer::memory(|c| {
        c.history.record = Some(false);
    })
    .await;
    let mut guest = join(&server, None).await;
    guest.send("T,/history 1 2 3").await;
    guest
        .until(WAIT, |l| {
            l == "T,Block history is not recorded on this server."
        })
        .await;
    server.stop().await;
}

#[tokio::test]
async fn retention_prunes_in_the_background() {
    let store = Arc::new(MemoryStore::new());
    let server = TestServer::start(store.clone(), |c| {
        c.commit_interval = Duration::from_millis(20);
        c.history.max_rows = Some(2);
        c.history.prune_interval = Duration::from_secs(1);
    })
    .await;
    let mut guest = join(&server, None).await;
    for x in 0..6 {
        guest.send(&format!("B,{x},100,0,3")).await;
    }
    guest.send("T,done").await;
    guest.until(WAIT, |l| l == "T,guest1> done").await;
    let query = HistoryQuery {
        at: None,
        author: None,
        since_ms: None,
        area: None,
        limit: 100,
    };
    let mut left = usize::MAX;
    for _ in 0..60 {
        left = store.history(&query).await.expect("history").len();
        if left == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(left, 2, "retention keeps max_rows entries");
    server.stop().await;
}

// --- the command line ----------------------------------------------------------

fn craft_server(store: &str, args: &[&str]) -> std::process::Output {
    support::process::run(&[&["--store", store], args].concat())
}

/// Writes a griefer's edits (with history) into the store at `url`.
async fn grief(url: &str) -> BlockPos {
    let store = craft_server::stores::open(&StoreUrl(url.to_owned()))
        .await
        .expect("open");
    let pos = BlockPos::new(-1000, 90, 2_000_000);
    let now = craft_server::history::now_ms();
    let mut batch = Batch::new();
    batch.set_block(pos.chunk(), pos, 4, ChangeMeta::default());
    batch.record(HistoryEntry {
        id: 1,
        time_ms: now - 1000,
        author: Author::user("ann"),
        pos,
        change: Change::Block { old: 0, new: 4 },
    });
    store.apply(&batch).await.expect("apply");
    let mut batch = Batch::new();
    batch.set_block(pos.chunk(), pos, 9, ChangeMeta::default());
    batch.record(HistoryEntry {
        id: 2,
        time_ms: now,
        author: Author::user("grief"),
        pos,
        change: Change::Block { old: 4, new: 9 },
    });
    store.apply(&batch).await.expect("apply");
    store.close().await.expect("close");
    pos
}

async fn cli_round_trip(url: &str) {
    // z = 2,000,000 is a chunk edge: the block has a mirror in the next
    // chunk, which the rollback writes too.
    let pos = grief(url).await;
    let out = craft_server(url, &["history", "--at", "-1000,90,2000000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].ends_with("grief block 4 -> 9 at -1000,90,2000000"),
        "{text}"
    );
    assert!(
        lines[1].ends_with("ann block 0 -> 4 at -1000,90,2000000"),
        "{text}"
    );

    let out = craft_server(url, &["rollback", "grief", "1h", "--as", "op"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "rolled back 1 of 1 changes by grief (2 chunks)"
    );
    let out = craft_server(url, &["history", "--by", "op", "--since", "1h"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.trim().ends_with("op block 9 -> 4 at -1000,90,2000000"),
        "{text}"
    );

    let store = craft_server::stores::open(&StoreUrl(url.to_owned()))
        .await
        .expect("open");
    assert_eq!(stored(&*store, pos).await, Some(4));
    store.close().await.expect("close");

    // Undoing the rollback.
    let out = craft_server(url, &["rollback", "op", "1h"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = craft_server::stores::open(&StoreUrl(url.to_owned()))
        .await
        .expect("open");
    assert_eq!(stored(&*store, pos).await, Some(9));
    store.close().await.expect("close");

    let out = craft_server(url, &["rollback", "grief", "soon"]);
    assert!(!out.status.success(), "a bad duration is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_history_and_rollback_on_sqlite() {
    let url = support::stores::fresh_url("sqlite").expect("sqlite");
    cli_round_trip(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_history_and_rollback_on_postgres() {
    let Some(url) = support::stores::fresh_url("postgres") else {
        return;
    };
    cli_round_trip(&url).await;
}
