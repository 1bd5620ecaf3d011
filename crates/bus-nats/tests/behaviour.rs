//! What only the NATS bus does: a server killed mid-stream and restarted,
//! a server that is not there yet, credentials, the sender header, the
//! shared test server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bus_core::conformance::{DEADLINE, Harness, Node, counter};
use bus_core::{Bus, BusError, BusEvent, RegionPos, ServerId, Topic};
use bus_nats::{FROM_HEADER, subject};
use common::{NatsServer, namespace, open};

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let wait = async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("never: {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_stream_and_restarted() {
    let Some(harness) = common::fresh().await else {
        return;
    };
    let mut a = Node::open(&harness, 4096).await;
    let mut b = Node::open(&harness, 4096).await;
    let region = Topic::Region(RegionPos::new(2, -7));
    b.bus.set_interest(&[region]).await.expect("interest");

    // A stream of messages, published whatever happens.
    let publisher = a.bus.clone();
    let streaming = tokio::spawn(async move {
        let mut encoder = bus_core::message::Encoder::new(publisher.server());
        let mut results = Vec::new();
        for n in 0..300 {
            let body = bus_core::conformance::chat(&format!("stream {n}"));
            let payload = encoder.encode(&body, 1024).expect("encode");
            results.push(
                publisher
                    .publish(&[(region, payload[0].clone())])
                    .await
                    .is_ok(),
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        results
    });
    b.until_line("stream 5").await;
    let connects = b.bus.status().connects;
    harness.interrupt().await;
    b.wait_connected(false).await;
    a.wait_connected(false).await;
    harness.restore().await;
    a.wait_connected(true).await;
    b.wait_connected(true).await;
    assert!(b.bus.status().connects > connects);
    let results = streaming.await.expect("the publisher");
    assert!(
        results.iter().any(|ok| !ok),
        "some publishes failed during the outage"
    );

    // After recovery every message arrives, in order.
    let lines: Vec<String> = (0..50).map(|n| format!("after {n}")).collect();
    let bodies: Vec<(Topic, bus_core::message::Body)> = lines
        .iter()
        .map(|l| (region, bus_core::conformance::chat(l)))
        .collect();
    a.send(&bodies).await;
    let seen = b.until_line("after 49").await;
    let after: Vec<&str> = seen
        .iter()
        .filter_map(|(_, e)| match &e.body {
            bus_core::message::Body::Chat { line } if line.starts_with("after") => {
                Some(line.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(after, lines.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(counter(&a.bus.counters(), "bus_publish_errors_total", &[]) >= 1);
    assert!(counter(&b.bus.counters(), "bus_reconnects_total", &[]) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_there_yet_is_waited_for() {
    let Some(server) = NatsServer::stopped() else {
        return;
    };
    let ns = namespace("late");
    let (bus, mut rx) = open(&server.url(), &ns, ServerId::random(), 16).await;
    assert!(!bus.status().connected);
    assert!(matches!(
        bus.publish(&[(Topic::Fleet, "{}".into())]).await,
        Err(BusError::Unavailable { .. })
    ));
    server.restart().await;
    let connected = async {
        loop {
            if let Some(BusEvent::State(s)) = rx.recv().await
                && s.connected
            {
                return s;
            }
        }
    };
    let status = tokio::time::timeout(DEADLINE, connected)
        .await
        .expect("never connected");
    assert_eq!(status.connects, 1);
    bus.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_used_and_never_shown() {
    let secret = "n4ts-s3cret";
    let Some(server) = NatsServer::start(&["--user", "craft", "--pass", secret]).await else {
        return;
    };
    let ns = namespace("auth");
    let with = |password: &str| {
        server
            .url()
            .replace("nats://", &format!("nats://craft:{password}@"))
    };
    let harness_url = with(secret);
    let (a, _a_rx) = open(&harness_url, &ns, ServerId::random(), 16).await;
    let (b, mut b_rx) = open(&harness_url, &ns, ServerId::random(), 16).await;
    wait_until("a connected", || a.status().connected).await;
    wait_until("b connected", || b.status().connected).await;
    a.publish(&[(Topic::Fleet, "hi".into())])
        .await
        .expect("publish");
    loop {
        match tokio::time::timeout(DEADLINE, b_rx.recv()).await {
            Ok(Some(BusEvent::Message(d))) => break assert_eq!(d.payload, "hi"),
            Ok(Some(_)) => {}
            other => panic!("{other:?}"),
        }
    }

    let (refused, _rx) = open(&with("wrong"), &ns, ServerId::random(), 16).await;
    wait_until("the refusal is reported", || {
        refused.status().last_error.is_some()
    })
    .await;
    let status = refused.status();
    assert!(!status.connected);
    for text in [format!("{status:?}"), format!("{refused:?}")] {
        assert!(!text.contains(secret) && !text.contains("wrong"), "{text}");
    }
    for bus in [&a, &b, &refused] {
        bus.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_header_is_a_safety_net() {
    let Some(harness) = common::fresh().await else {
        return;
    };
    let mut b = Node::open(&harness, 16).await;
    // Another client (no `no_echo` shared with b) forges b's own id.
    let raw = async_nats::connect(harness.server.url())
        .await
        .expect("raw client");
    let fleet = subject(&harness.namespace, Topic::Fleet);
    let mut forged = async_nats::HeaderMap::new();
    forged.insert(FROM_HEADER, b.id().to_string());
    let payload = |line: &str| {
        let mut encoder = bus_core::message::Encoder::new(ServerId::new(0xfeed));
        encoder
            .encode(&bus_core::conformance::chat(line), 1024)
            .expect("encode")
            .remove(0)
    };
    raw.publish_with_headers(fleet.clone(), forged, payload("as b"))
        .await
        .expect("publish");
    raw.publish(fleet, payload("from elsewhere"))
        .await
        .expect("publish");
    raw.flush().await.expect("flush");
    let seen = b.until_line("from elsewhere").await;
    assert_eq!(seen.len(), 1, "b received a message claiming to be its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_test_server_carries_the_bus() {
    let Some(url) = world_core::conformance::test_service("CRAFT_TEST_NATS_URL") else {
        return;
    };
    let ns = namespace("shared");
    let harness = SharedHarness { url, ns };
    let mut a = Node::open(&harness, 16).await;
    let mut b = Node::open(&harness, 16).await;
    let region = Topic::Region(RegionPos::new(-1, -1));
    b.bus.set_interest(&[region]).await.expect("interest");
    a.say(&[(region, "region"), (Topic::Fleet, "fleet")]).await;
    b.until_lines(&["region", "fleet"]).await;
}

/// Buses on the shared server; it is never interrupted.
struct SharedHarness {
    url: String,
    ns: bus_core::Namespace,
}

#[async_trait::async_trait]
impl Harness for SharedHarness {
    async fn open(&self, server: ServerId, queue: usize) -> (Arc<dyn Bus>, bus_core::BusReceiver) {
        let (bus, rx) = open(&self.url, &self.ns, server, queue).await;
        (Arc::new(bus), rx)
    }

    async fn interrupt(&self) {
        unreachable!("the shared server is never interrupted")
    }

    async fn restore(&self) {}
}
