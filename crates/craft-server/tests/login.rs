//! Logging in against a local identity service, building rights, and
//! positions restored on the next login.

mod support;

use std::sync::Arc;
use std::time::Duration;

use craft_server::config::LoginMode;
use support::TestServer;
use world_core::store::MemoryStore;

const WAIT: Duration = Duration::from_secs(10);

async fn server(store: Arc<MemoryStore>, required: bool) -> TestServer {
    let auth = support::fakes::identity().await;
    TestServer::start(store, move |c| {
        c.login.mode = LoginMode::Http;
        c.login.url = Some(format!("http://{auth}/api/1/access"));
        c.login.timeout = Duration::from_millis(500);
        c.login.required_to_build = required;
        c.commit_interval = Duration::from_millis(50);
    })
    .await
}

async fn join(server: &TestServer) -> support::Client {
    let mut client = server.connect().await;
    client.send("V,1").await;
    client.until(WAIT, |l| l.starts_with("N,")).await;
    client
}

#[tokio::test]
async fn a_valid_token_logs_in_and_a_bad_one_stays_guest() {
    let server = server(Arc::new(MemoryStore::new()), false).await;
    let mut alice = join(&server).await;
    alice.send("A,alice,good").await;
    let lines = alice
        .until(WAIT, |l| l.ends_with("has joined the game."))
        .await;
    assert_eq!(lines, vec!["N,1,alice", "T,alice has joined the game."]);
    let mut mallory = join(&server).await;
    mallory.send("A,mallory,bad").await;
    let lines = mallory
        .until(WAIT, |l| l.ends_with("has joined the game."))
        .await;
    // (The first line is the end of the greeting: the other player's name.)
    assert_eq!(
        lines,
        vec![
            "N,1,alice",
            "T,Visit the server's website to register!",
            "N,2,guest2",
            "T,guest2 has joined the game."
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_silent_identity_service_blocks_nobody() {
    let server = server(Arc::new(MemoryStore::new()), false).await;
    let mut slow = join(&server).await;
    let mut other = join(&server).await;
    slow.send("A,slowpoke,slow").await;
    slow.send("T,sent after login").await;
    // Others play on meanwhile.
    other.send("T,meanwhile").await;
    other.until(WAIT, |l| l == "T,guest2> meanwhile").await;
    // The slow player's line waits for its login, which times out: guest.
    let lines = slow
        .until(WAIT, |l| l.ends_with("> sent after login"))
        .await;
    assert!(
        lines.contains(&"T,guest1 has joined the game.".to_owned()),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("T,guest1> sent after login")
    );
    server.stop().await;
}

#[tokio::test]
async fn building_can_require_login() {
    let server = server(Arc::new(MemoryStore::new()), true).await;
    let mut guest = join(&server).await;
    guest.send("B,5,40,5,3").await;
    let lines = guest.until(WAIT, |l| l.starts_with("T,")).await;
    assert_eq!(
        lines,
        vec![
            "B,0,0,5,40,5,0",
            "R,0,0",
            "T,Only logged in users are allowed to build."
        ]
    );
    guest.send("S,5,40,5,0,hi").await;
    assert_eq!(
        guest.line(WAIT).await.as_deref(),
        Some("T,Only logged in users are allowed to build.")
    );
    guest.send("A,builder,good").await;
    guest
        .until(WAIT, |l| l == "T,builder has joined the game.")
        .await;
    guest.send("B,5,40,5,3").await;
    guest.send("T,done").await;
    let lines = guest.until(WAIT, |l| l == "T,builder> done").await;
    assert_eq!(
        lines,
        vec!["T,builder> done"],
        "the edit was accepted silently"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_logged_in_player_comes_back_where_they_left() {
    let store = Arc::new(MemoryStore::new());
    let first = server(store.clone(), false).await;
    let mut alice = join(&first).await;
    alice.send("A,alice,good").await;
    alice
        .until(WAIT, |l| l == "T,alice has joined the game.")
        .await;
    alice.send("P,100.50,30.00,-20.25,1.00,0.50").await;
    alice.send("T,bye").await;
    alice.until(WAIT, |l| l == "T,alice> bye").await;
    drop(alice);
    first.stop().await;
    store.reopen();

    // Another server of the fleet, same store.
    let second = server(store, false).await;
    let mut alice = join(&second).await;
    alice.send("A,alice,good").await;
    let lines = alice.until(WAIT, |l| l.starts_with("U,")).await;
    assert_eq!(
        lines.last().map(String::as_str),
        Some("U,1,100.5,30,-20.25,1,0.5"),
        "{lines:?}"
    );
    // Guests are not restored.
    let mut guest = join(&second).await;
    guest.send("A,,").await;
    let lines = guest
        .until(WAIT, |l| l.ends_with("has joined the game."))
        .await;
    assert!(lines.iter().all(|l| !l.starts_with("U,")), "{lines:?}");
    second.stop().await;
}

#[tokio::test]
async fn nobody_changes_nicks_where_building_needs_a_login() {
    let server = server(Arc::new(MemoryStore::new()), true).await;
    let mut alice = join(&server).await;
    alice.send("A,alice,good").await;
    alice
        .until(WAIT, |l| l == "T,alice has joined the game.")
        .await;
    let mut guest = join(&server).await;
    guest.until(WAIT, |l| l == "N,1,alice").await;
    alice.until(WAIT, |l| l == "N,2,guest2").await;
    // Guests and logged-in players alike, asking or renaming.
    for (client, line) in [
        (0, "T,/nick alice"),
        (0, "T,/nick"),
        (1, "T,/nick bob"),
        (1, "T,/nick"),
    ] {
        let client = if client == 0 { &mut guest } else { &mut alice };
        client.send(line).await;
        assert_eq!(
            client.line(WAIT).await.as_deref(),
            Some("T,You cannot change your nick on this server."),
            "{line}"
        );
    }
    // Nothing was renamed: the names are still the vouched-for ones.
    guest.send("T,/list").await;
    assert_eq!(
        guest.line(WAIT).await.as_deref(),
        Some("T,Players: alice, guest2")
    );
    // A malformed /nick is still an unknown command, as in the original.
    guest.send("T,/nick a b").await;
    assert_eq!(
        guest.line(WAIT).await.as_deref(),
        Some("T,Unrecognized command: \"/nick a b\"")
    );
    server.stop().await;
}

#[tokio::test]
async fn nicks_change_freely_where_guests_may_build() {
    let server = server(Arc::new(MemoryStore::new()), false).await;
    let mut guest = join(&server).await;
    guest.send("T,/nick zed").await;
    let lines = guest.until(WAIT, |l| l.starts_with("N,")).await;
    assert_eq!(lines, vec!["T,guest1 is now known as zed", "N,1,zed"]);
    server.stop().await;
}
