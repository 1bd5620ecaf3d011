//! One world across a fleet: `craft-server` processes on one PostgreSQL
//! store (also SQLite and DynamoDB with NATS), joined by a NATS bus or the
//! PostgreSQL bus, show each other's edits, players and chat live; a killed
//! server's players vanish; a NATS restart in the middle of play loses no
//! edit.
#![cfg(feature = "postgres")]

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::Client;
use support::process::Server;
use support::stores::unique;
use world_core::conformance::test_service;

const WAIT: Duration = Duration::from_secs(30);

/// A fresh world on the test database (its own schema).
fn postgres_store() -> Option<String> {
    let base = test_service("CRAFT_TEST_POSTGRES_URL")?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}schema={}", unique("fleet")))
}

/// Starts a server of the fleet; `extra` adds or overrides flags.
async fn server(store: &str, bus: &str, namespace: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--store", store, "--bus", bus, "--bus-namespace", namespace];
    args.extend_from_slice(extra);
    for (flag, value) in [
        ("--commit-interval", "100ms"),
        ("--bus-heartbeat-timeout", "3s"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    let server = Server::start(&args).await;
    wait_bus_connected(&server).await;
    server
}

/// Waits until `/readyz` says the bus is connected.
async fn wait_bus_connected(server: &Server) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, _, body) = support::http_get(&format!("http://{}/readyz", server.admin)).await;
        if status == 200 && body.contains("connected") && !body.contains("disconnected") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "bus never connected: {status} {body}; {:#?}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Joins, sets a nick, returns the client and its own id.
async fn join(addr: SocketAddr, nick: &str) -> (Client, u32) {
    let (client, lines) = join_lines(addr, nick).await;
    let id = lines
        .iter()
        .find_map(|l| l.strip_prefix("U,")?.split(',').next()?.parse().ok())
        .expect("an id");
    (client, id)
}

/// Joins and sets a nick; returns the client and every line read.
async fn join_lines(addr: SocketAddr, nick: &str) -> (Client, Vec<String>) {
    let mut client = Client::connect(addr).await;
    client.send("V,1").await;
    let mut lines = client.until(WAIT, |l| l.starts_with("U,")).await;
    let id: u32 = lines
        .last()
        .and_then(|l| l.split(',').nth(1))
        .and_then(|id| id.parse().ok())
        .expect("an id");
    client.send(&format!("T,/nick {nick}")).await;
    lines.extend(client.until(WAIT, |l| l == format!("N,{id},{nick}")).await);
    (client, lines)
}

/// The id `watcher` knows the player `nick` of another server by, once
/// it has appeared (`P` then `N`).
async fn appears(watcher: &mut Client, nick: &str) -> u32 {
    let (id, lines) = nick_id(watcher, nick).await;
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("P,{id},"))),
        "P before N: {lines:?}"
    );
    id
}

/// The id of the first `N` line naming `nick`, and the lines read.
async fn nick_id(watcher: &mut Client, nick: &str) -> (u32, Vec<String>) {
    let suffix = format!(",{nick}");
    let lines = watcher
        .until(WAIT, |l| l.starts_with("N,") && l.ends_with(&suffix))
        .await;
    let id: u32 = lines
        .last()
        .and_then(|l| l.split(',').nth(1))
        .and_then(|id| id.parse().ok())
        .expect("an id");
    (id, lines)
}

/// Repeats `line` from `actor` until `watcher` sees a line satisfying
/// `pred` (the first messages may go out before the receiver's interest
/// is in place: the bus promises at most once delivery).
async fn until_seen(
    actor: &mut Client,
    line: &str,
    watcher: &mut Client,
    pred: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        actor.send(line).await;
        let mut seen = Vec::new();
        while let Some(l) = watcher.line(Duration::from_millis(500)).await {
            let done = pred(&l);
            seen.push(l);
            if done {
                return seen;
            }
        }
        assert!(Instant::now() < deadline, "never saw it after {line:?}");
    }
}

/// Both buses: edits without asking, players appear, move, chat (public
/// and `@nick`), `/list` lists the fleet, leaving sends `D`.
async fn two_servers_play_together(bus: &str, store: &str) {
    let namespace = unique("w");
    // A stores its edits only after a minute: whatever B shows before
    // came over the bus, not from the store.
    let a = server(store, bus, &namespace, &["--commit-interval", "60s"]).await;
    let b = server(store, bus, &namespace, &[]).await;
    let (mut bob, _) = join(b.game, "bob").await;
    bob.send("C,0,0,0").await;
    bob.until(WAIT, |l| l == "C,0,0").await;
    let (mut alice, greeted) = join_lines(a.game, "alice").await;

    let alice_on_b = appears(&mut bob, "alice").await;
    // Bob was there before alice: her greeting shows him (P, then N),
    // or his name follows as soon as A hears of it.
    let mut greeted = greeted;
    let bob_named = |l: &String| {
        l.strip_prefix("N,")?
            .strip_suffix(",bob")?
            .parse::<u32>()
            .ok()
    };
    if !greeted.iter().any(|l| bob_named(l).is_some()) {
        greeted.extend(alice.until(WAIT, |l| l.ends_with(",bob")).await);
    }
    let bob_on_a = greeted
        .iter()
        .find_map(bob_named)
        .expect("alice is shown bob");
    let shown = greeted
        .iter()
        .position(|l| l.starts_with(&format!("P,{bob_on_a},")));
    let named = greeted
        .iter()
        .position(|l| *l == format!("N,{bob_on_a},bob"));
    assert!(shown.is_some() && shown < named, "P before N: {greeted:?}");
    assert_ne!(alice_on_b, 0);
    assert_ne!(bob_on_a, 0);

    // A block placed on A shows on B's client without B asking.
    alice.send("B,5,90,5,3").await;
    bob.until(WAIT, |l| l == "B,0,0,5,90,5,3").await;
    // Signs and lights too.
    alice.send("S,5,90,5,1,hello").await;
    bob.until(WAIT, |l| l == "S,0,0,5,90,5,1,hello").await;
    alice.send("L,5,90,5,9").await;
    bob.until(WAIT, |l| l == "L,0,0,5,90,5,9").await;

    // Moves.
    let moved = format!("P,{alice_on_b},12,40,7,");
    until_seen(&mut alice, "P,12,40,7,0,0", &mut bob, |l| {
        l.starts_with(&moved)
    })
    .await;

    // Chat, both ways, and private messages across servers; join notices
    // and renames too.
    alice.send("T,/nick alicia").await;
    let renamed = format!("N,{alice_on_b},alicia");
    let told = "T,alice is now known as alicia";
    let lines = bob.until(WAIT, |l| *l == renamed || l == told).await;
    let other = if lines.last().is_some_and(|l| *l == renamed) {
        told.to_owned()
    } else {
        renamed
    };
    bob.until(WAIT, |l| *l == other).await;
    alice.send("T,/nick alice").await;
    bob.until(WAIT, |l| l == format!("N,{alice_on_b},alice"))
        .await;
    alice.send("T,hello fleet").await;
    bob.until(WAIT, |l| l == "T,alice> hello fleet").await;
    bob.send("T,@alice psst").await;
    alice.until(WAIT, |l| l == "T,bob> @alice psst").await;
    bob.send("T,/list").await;
    let list = bob.until(WAIT, |l| l.starts_with("T,Players:")).await;
    assert_eq!(
        list.last().map(String::as_str),
        Some("T,Players: bob, alice")
    );

    // Leaving: D on the other server.
    drop(alice);
    bob.until(WAIT, |l| l == format!("D,{alice_on_b}")).await;
    // The bus is reported without failing readiness.
    let (_, _, ready) = support::http_get(&format!("http://{}/readyz", b.admin)).await;
    assert!(ready.starts_with("ready\nbus: "), "{ready}");
    assert!(
        b.metric("craft_bus_messages_total{direction=\"in\",topic=\"region\"}")
            .await
            .is_some_and(|v| v > 0.0)
            || b.metric("craft_bus_connected").await == Some(1.0)
    );
    assert_eq!(b.metric("craft_bus_connected").await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_bus_two_servers_play_together() {
    let Some(store) = postgres_store() else {
        return;
    };
    let Some(nats) = test_service("CRAFT_TEST_NATS_URL") else {
        return;
    };
    two_servers_play_together(&nats, &store).await;
}

/// Two server processes on one SQLite file (a shared volume) with a NATS
/// bus: the bus is independent of the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_bus_two_servers_play_together_on_sqlite() {
    let Some(store) = support::stores::fresh_url("sqlite") else {
        return;
    };
    let Some(nats) = test_service("CRAFT_TEST_NATS_URL") else {
        return;
    };
    two_servers_play_together(&nats, &store).await;
}

/// The same on DynamoDB (moto).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_bus_two_servers_play_together_on_dynamodb() {
    let Some(store) = support::stores::fresh_url("dynamodb") else {
        return;
    };
    let Some(nats) = test_service("CRAFT_TEST_NATS_URL") else {
        return;
    };
    two_servers_play_together(&nats, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_bus_two_servers_play_together() {
    let Some(store) = postgres_store() else {
        return;
    };
    two_servers_play_together("postgres", &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_servers_players_vanish_within_the_heartbeat_timeout() {
    let Some(store) = postgres_store() else {
        return;
    };
    let Some(nats) = test_service("CRAFT_TEST_NATS_URL") else {
        return;
    };
    let namespace = unique("w");
    let a = server(&store, &nats, &namespace, &[]).await;
    let b = server(&store, &nats, &namespace, &[]).await;
    let c = server(&store, &nats, &namespace, &[]).await;
    let (mut bob, _) = join(b.game, "bob").await;
    let (mut carol, _) = join(c.game, "carol").await;
    appears(&mut bob, "carol").await;
    let (_alice, _) = join(a.game, "alice").await;
    let alice_on_b = appears(&mut bob, "alice").await;
    let alice_on_c = appears(&mut carol, "alice").await;
    // kill -9: no Bye, only silence.
    drop(a);
    let killed = Instant::now();
    bob.until(WAIT, |l| l == format!("D,{alice_on_b}")).await;
    carol.until(WAIT, |l| l == format!("D,{alice_on_c}")).await;
    eprintln!(
        "players of the killed server vanished after {:?}",
        killed.elapsed()
    );
    // The survivors still see each other.
    carol.send("T,still here").await;
    bob.until(WAIT, |l| l == "T,carol> still here").await;
}

/// A private `nats-server` on a loopback port, restartable on that port.
struct Nats {
    bin: String,
    port: u16,
    child: Option<Child>,
}

impl Nats {
    fn start(bin: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut nats = Self {
            bin: bin.to_owned(),
            port,
            child: None,
        };
        nats.up();
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        let child = Command::new(&self.bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.down();
    }
}

/// The latest value of each block of chunk (0, 0) in `lines`.
fn blocks_seen(lines: &[String], into: &mut BTreeMap<(i32, i32, i32), i32>) {
    for line in lines {
        let Some(rest) = line.strip_prefix("B,0,0,") else {
            continue;
        };
        let v: Vec<i32> = rest.split(',').filter_map(|s| s.parse().ok()).collect();
        if let [x, y, z, w] = v[..] {
            into.insert((x, y, z), w);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_nats_in_the_middle_of_play_loses_no_edit() {
    let Some(store) = postgres_store() else {
        return;
    };
    let Some(bin) = test_service("CRAFT_TEST_NATS_SERVER") else {
        return;
    };
    let mut nats = Nats::start(&bin);
    let url = nats.url();
    let namespace = unique("w");
    let a = server(&store, &url, &namespace, &["--sync-interval", "500ms"]).await;
    let b = server(&store, &url, &namespace, &["--sync-interval", "500ms"]).await;
    let (mut bob, _) = join(b.game, "bob").await;
    // B holds the chunk: its sync repairs what the bus loses.
    bob.send("C,0,0,0").await;
    let mut seen = BTreeMap::new();
    blocks_seen(&bob.until(WAIT, |l| l == "C,0,0").await, &mut seen);
    let (mut alice, _) = join(a.game, "alice").await;
    appears(&mut bob, "alice").await;

    let mut placed = BTreeMap::new();
    for x in 1..=30 {
        let w = 1 + x % 5;
        alice.send(&format!("B,{x},100,3,{w}")).await;
        placed.insert((x, 100, 3), w);
        if x == 10 {
            nats.down();
        }
        if x == 20 {
            nats.up();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every edit reaches bob, by the bus or by the store's repair.
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(line) = bob.line(Duration::from_millis(200)).await {
            blocks_seen(std::slice::from_ref(&line), &mut seen);
        }
        let missing: Vec<_> = placed
            .iter()
            .filter(|(pos, w)| seen.get(pos) != Some(w))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bob never saw {missing:?}; B's log: {:#?}",
            b.log()
        );
    }
    wait_bus_connected(&a).await;
    wait_bus_connected(&b).await;
    // And live edits flow over the bus again.
    until_seen(&mut alice, "B,2,101,3,5", &mut bob, |l| {
        l == "B,0,0,2,101,3,5"
    })
    .await;
}
