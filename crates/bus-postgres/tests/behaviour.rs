//! What only the PostgreSQL bus does: sessions terminated under it, a
//! database that refuses it at start, text payloads, channels shared with
//! other tools, worlds sharing a database.

mod common;

use std::time::Duration;

use bus_core::conformance::{DEADLINE, Node, counter};
use bus_core::{Bus, BusError, BusEvent, Namespace, RegionPos, ServerId, Topic};
use bytes::Bytes;
use common::PgHarness;

/// Waits until `bus` is connected with more than `connects` connections.
async fn wait_reconnected(bus: &dyn Bus, connects: u64) {
    let wait = async {
        loop {
            let status = bus.status();
            if status.connected && status.connects > connects {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("never reconnected: {:?}", bus.status()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_sessions_reconnect_and_listen_again() {
    let Some(harness) = PgHarness::new("terminate").await else {
        return;
    };
    let mut a = Node::open(&harness, 64).await;
    let mut b = Node::open(&harness, 64).await;
    let region = Topic::Region(RegionPos::new(-3, 4));
    b.bus.set_interest(&[region]).await.expect("interest");
    a.say(&[(region, "before")]).await;
    b.until_line("before").await;

    for round in 0..3 {
        let connects = (a.bus.status().connects, b.bus.status().connects);
        assert!(harness.terminate().await >= 2, "both sessions were there");
        wait_reconnected(&*a.bus, connects.0).await;
        wait_reconnected(&*b.bus, connects.1).await;
        let line = format!("after {round}");
        a.say(&[(region, &line), (Topic::Fleet, "fleet")]).await;
        b.until_lines(&[&line, "fleet"]).await;
    }
    assert!(counter(&b.bus.counters(), "bus_reconnects_total", &[]) >= 3);
    // The receiver saw the losses as states.
    let status = b.rx.status();
    assert!(status.connected);
    assert!(status.last_error.is_some(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_refusing_at_start_is_waited_for() {
    let Some(harness) = PgHarness::new("refuse").await else {
        return;
    };
    harness.set_login(false).await;
    let (bus, mut rx) = harness.open_bus(ServerId::random(), 16).await;
    // Opening returned at once; the bus keeps trying and says why not.
    let refused = async {
        loop {
            if let Some(BusEvent::State(s)) = rx.recv().await
                && !s.connected
                && s.last_error.is_some()
            {
                return s;
            }
        }
    };
    let status = tokio::time::timeout(DEADLINE, refused)
        .await
        .expect("no failed attempt reported");
    assert_eq!(status.connects, 0);
    assert!(
        !status
            .last_error
            .unwrap_or_default()
            .contains("bus-test-password")
    );
    assert!(matches!(
        bus.publish(&[(Topic::Fleet, Bytes::from_static(b"{}"))])
            .await,
        Err(BusError::Unavailable { .. })
    ));
    harness.set_login(true).await;
    wait_reconnected(&bus, 0).await;
    bus.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_must_be_text() {
    let Some(harness) = PgHarness::new("text").await else {
        return;
    };
    let a = Node::open(&harness, 16).await;
    for payload in [&b"\xff\xfe"[..], b"nul\0inside"] {
        let result = a
            .bus
            .publish(&[(Topic::Fleet, Bytes::copy_from_slice(payload))])
            .await;
        assert!(matches!(result, Err(BusError::Invalid(_))), "{result:?}");
    }
    assert!(
        a.bus.status().connected,
        "a refused payload keeps the session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_tools_can_listen_and_notify() {
    let Some(harness) = PgHarness::new("psql").await else {
        return;
    };
    let mut a = Node::open(&harness, 16).await;
    // What `NOTIFY` from psql (or a trigger) sends reaches the bus.
    let channel = bus_postgres::channel(&harness.namespace, Topic::Fleet);
    let payload =
        r#"{"v":1,"from":"00000000000000aa","seq":1,"body":{"t":"chat","line":"from psql"}}"#;
    harness
        .admin_execute(&format!("NOTIFY \"{channel}\", '{payload}'"))
        .await;
    let seen = a.until_line("from psql").await;
    assert_eq!(seen.last().map(|(_, e)| e.from), Some(ServerId::new(0xaa)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worlds_sharing_a_database_do_not_mix() {
    let Some(one) = PgHarness::new("world").await else {
        return;
    };
    let Some(mut two) = PgHarness::new("world").await else {
        return;
    };
    // One database, two worlds: only the namespace separates them.
    two.namespace = Namespace::derive(&format!("{}_two", one.namespace));
    let mut a = Node::open(&one, 16).await;
    let mut b = Node::open(&one, 16).await;
    let (other, mut other_rx) = two.open_bus(ServerId::random(), 16).await;
    wait_reconnected(&other, 0).await;
    a.say(&[(Topic::Fleet, "world one")]).await;
    b.until_line("world one").await;
    other
        .publish(&[(Topic::Fleet, Bytes::from_static(b"world two"))])
        .await
        .expect("publish in world two");
    a.say(&[(Topic::Fleet, "marker")]).await;
    let seen = b.until_line("marker").await;
    assert_eq!(seen.len(), 1, "b heard the other world");
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(300), other_rx.recv()).await
    {
        assert!(
            !matches!(event, BusEvent::Message(_)),
            "the other world heard world one"
        );
    }
}
