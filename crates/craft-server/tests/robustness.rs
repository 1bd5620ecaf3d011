//! Bad input gets a clear error and loses nothing: malformed and huge
//! lines, floods and clients that stop reading, each over a real socket.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::TestServer;
use world_core::BlockStore;
use world_core::coords::{BlockPos, ChunkPos};
use world_core::store::{Batch, ChangeMeta, MemoryStore};

const WAIT: Duration = Duration::from_secs(10);

/// Connects, says hello and reads the greeting.
async fn join(server: &TestServer) -> support::Client {
    let mut client = server.connect().await;
    client.send("V,1").await;
    client.until(WAIT, |l| l.starts_with("N,")).await;
    client
}

async fn chat_round_trip(client: &mut support::Client, text: &str) {
    client.send(&format!("T,{text}")).await;
    client
        .until(WAIT, |l| l.ends_with(&format!("> {text}")))
        .await;
}

#[tokio::test]
async fn malformed_lines_are_ignored_and_the_player_stays() {
    let server = TestServer::memory(|_| {}).await;
    let mut client = join(&server).await;
    for bad in [
        "",
        "\r",
        "X,1,2",
        "B,1,2",
        "B,a,b,c,d",
        "B,1,2,3,4,5",
        "P,nan,0,0,0,0",
        "C",
        "V",
        "A,only",
        "S,1,2",
        "B,99999999999,1,1,1",
        "\u{1F600}",
        ",,,,",
        "Bxyz",
    ] {
        client.send(bad).await;
    }
    client.send_raw(b"T,\xff\xfe not utf-8\n").await;
    // Still here, still understood.
    chat_round_trip(&mut client, "still here").await;
    let malformed = server.shared.metrics.render();
    assert!(
        malformed.contains("craft_lines_malformed_total"),
        "{malformed}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_huge_line_is_dropped_up_to_its_newline() {
    let server = TestServer::memory(|_| {}).await;
    let mut client = join(&server).await;
    // 1 MiB without a newline, then the end of it, then a good line.
    let mut huge = b"T,".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 1 << 20));
    client.send_raw(&huge).await;
    client.send_raw(b"tail of the huge line\n").await;
    chat_round_trip(&mut client, "after the huge line").await;
    let lines = client.drain(Duration::from_millis(300)).await;
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("xxxx") && !l.contains("tail of")),
        "{lines:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_flood_does_not_slow_anyone_else() {
    let server = TestServer::memory(|_| {}).await;
    let flooder = join(&server).await;
    let mut calm = join(&server).await;
    let (mut flood_reader, mut flood_writer) = flooder.split();
    // The flooder sends position lines as fast as it can and never stops
    // to read (a drain task keeps its socket from filling up).
    let drain = tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        while flood_reader.read_line(&mut line).await.unwrap_or(0) > 0 {
            line.clear();
        }
    });
    let flood = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let chunk = "P,1.00,2.00,3.00,0.00,0.00\n".repeat(1000);
        for _ in 0..1000 {
            if flood_writer.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..20 {
        chat_round_trip(&mut calm, &format!("calm {i}")).await;
    }
    flood.abort();
    drain.abort();
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_nobody_else_waits() {
    let store = Arc::new(MemoryStore::new());
    // A chunk with 2,000 changes: each answer is about 50 KB.
    let mut batch = Batch::new();
    for i in 0..2000 {
        let pos = BlockPos::new(i % 32, 1 + i / 1024, (i / 32) % 32);
        batch.set_block(ChunkPos::new(0, 0), pos, 1, ChangeMeta::default());
    }
    store.apply(&batch).await.expect("prefill");
    let server = TestServer::start(store, |c| {
        c.limits.max_outbound_bytes = Some(256 << 10);
        c.limits.line_burst = 5000;
        c.limits.lines_per_second = 5000;
    })
    .await;
    let mut stuck = join(&server).await;
    let mut calm = join(&server).await;
    calm.drain(Duration::from_millis(200)).await;
    // Ask for ~200 MB of answers and never read them. The server may
    // disconnect the client before it has sent them all: then its sends
    // fail (connection reset), which is the point.
    for _ in 0..4000 {
        if stuck.try_send("C,0,0,0").await.is_err() {
            break;
        }
    }
    // Meanwhile the other player chats normally.
    chat_round_trip(&mut calm, "hello").await;
    // ... and soon sees the stuck one leave.
    calm.until(Duration::from_secs(30), |l| {
        l == "T,guest1 has disconnected from the server."
    })
    .await;
    chat_round_trip(&mut calm, "still fine").await;
    let metrics = server.shared.metrics.render();
    assert!(
        metrics.contains("craft_errors_total{kind=\"slow_client\"} 1"),
        "{metrics}"
    );
    drop(stuck);
    server.stop().await;
}

#[tokio::test]
async fn wrong_protocol_version_closes_the_connection() {
    let server = TestServer::memory(|_| {}).await;
    let mut other = join(&server).await;
    let mut client = server.connect().await;
    client.send("V,2").await;
    client.drain(Duration::from_millis(200)).await;
    assert_eq!(client.line(WAIT).await, None, "connection closed");
    other
        .until(WAIT, |l| l.starts_with("T,guest2 has disconnected"))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn only_the_first_version_counts() {
    let server = TestServer::memory(|_| {}).await;
    let mut client = join(&server).await;
    client.send("V,7").await;
    chat_round_trip(&mut client, "still connected").await;
    server.stop().await;
}

#[tokio::test]
async fn a_full_server_says_so() {
    let server = TestServer::memory(|c| c.max_players = 1).await;
    let mut first = join(&server).await;
    let mut second = server.connect().await;
    assert_eq!(
        second.line(WAIT).await.as_deref(),
        Some("T,The server is full; try again later.")
    );
    assert_eq!(second.line(WAIT).await, None);
    chat_round_trip(&mut first, "alone").await;
    server.stop().await;
}

/// Connects until the server lets a player in (slots come back once a
/// leaving player's connection is closed).
async fn join_when_admitted(server: &TestServer) -> support::Client {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut client = server.connect().await;
        if client.line(WAIT).await.is_some_and(|l| l.starts_with("U,")) {
            return client;
        }
        assert!(tokio::time::Instant::now() < deadline, "never admitted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn refused(server: &TestServer, reason: &str) -> bool {
    server.shared.metrics.render().contains(&format!(
        "craft_connections_refused_total{{reason=\"{reason}\"}} 1"
    ))
}

#[tokio::test]
async fn connections_past_the_accept_limit_are_closed_at_once() {
    let server = TestServer::memory(|c| {
        c.max_players = 2;
        c.limits.connection_margin = 0;
    })
    .await;
    let first = join(&server).await;
    let mut second = join(&server).await;
    // No slot left: closed by the accept loop, with a word.
    let mut extra = server.connect().await;
    assert_eq!(
        extra.line(WAIT).await.as_deref(),
        Some("T,The server is full; try again later.")
    );
    assert_eq!(extra.line(WAIT).await, None, "closed");
    assert!(refused(&server, "accept_limit"));
    chat_round_trip(&mut second, "still here").await;
    // A player leaves: its slot comes back.
    drop(first);
    second
        .until(WAIT, |l| l == "T,guest1 has disconnected from the server.")
        .await;
    let _third = join_when_admitted(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn one_address_has_a_connection_limit() {
    let server = TestServer::memory(|c| c.limits.max_connections_per_ip = 2).await;
    let _first = join(&server).await;
    let _second = join(&server).await;
    let mut third = server.connect().await;
    assert_eq!(
        third.line(WAIT).await.as_deref(),
        Some("T,Too many connections from your address; try again later.")
    );
    assert_eq!(third.line(WAIT).await, None, "closed");
    assert!(refused(&server, "per_ip"));
    // Another address is not affected.
    let mut elsewhere =
        support::Client::connect_from(server.addr, std::net::Ipv4Addr::new(127, 0, 0, 2)).await;
    elsewhere.send("V,1").await;
    elsewhere.until(WAIT, |l| l == "N,3,guest3").await;
    server.stop().await;
}
