//! The conformance suite every [`Bus`] backend runs.
//!
//! Each check is a plain async function taking a [`Harness`] (which opens
//! buses on one backend and namespace, and can cut them off) that panics on
//! a violation of the trait's contract. Backends run them all with
//! [`bus_conformance_tests!`](crate::bus_conformance_tests):
//!
//! ```ignore
//! async fn fresh() -> Option<MyHarness> { /* ... */ }
//! bus_core::bus_conformance_tests!(fresh);
//! ```
//!
//! `fresh` returns `None` when the backend's test service is not
//! configured; read its address with
//! [`world_core::conformance::test_service`] so that the test command
//! (which sets `CRAFT_TEST_REQUIRE_SERVICES=1`) fails instead of skipping.
//!
//! Checks wait for conditions with generous deadlines and never measure
//! time. "Not delivered" is checked in two ways: a marker published after
//! the message on the same topic by the same publisher arrives first
//! (ordering makes that exact), or, across topics, nothing unexpected
//! arrived by the time a later marker did, plus a short quiet period.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use world_core::protocol::Position;
use world_core::{BlockPos, ChunkPos};

use crate::bus::{Bus, BusCounter, BusEvent};
use crate::config::ServerId;
use crate::error::BusError;
use crate::inbox::BusReceiver;
use crate::message::{Assembler, Body, Edit, Encoder, Envelope, PlayerInfo, decode};
use crate::topic::{RegionPos, Topic};

/// Far above anything a healthy backend needs: reaching it means a hang or
/// a lost message.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// How long "nothing else arrives" is watched after a marker did.
const QUIET: Duration = Duration::from_millis(300);

/// Opens buses on one backend for one check.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Opens a bus for `server` in this harness's namespace (the same for
    /// every call of one harness, unique to it) with room for `queue`
    /// deliveries. It may still be connecting.
    async fn open(&self, server: ServerId, queue: usize) -> (Arc<dyn Bus>, BusReceiver);

    /// Cuts off every bus this harness opened and keeps them from
    /// reconnecting until [`Harness::restore`].
    async fn interrupt(&self);

    /// Lets them reconnect.
    async fn restore(&self);
}

/// Generates one `#[tokio::test]` per conformance check. The argument is an
/// async function returning `Option<H>` with `H:`
/// [`Harness`](crate::conformance::Harness); `None` skips.
#[macro_export]
macro_rules! bus_conformance_tests {
    ($fresh:path) => {
        $crate::bus_conformance_tests!(@each $fresh;
            fleet_reaches_every_other_server,
            server_topic_reaches_only_its_server,
            region_topics_need_interest,
            interest_changes_take_effect,
            own_messages_are_not_delivered_back,
            large_batches_are_split_and_reassembled,
            oversized_payloads_are_refused,
            order_per_publisher_and_topic,
            full_receiver_drops_and_counts,
            lost_connection_is_reported_and_recovered,
            counters_count_traffic,
            close_is_final,
        );
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                match $fresh().await {
                    Some(harness) => $crate::conformance::$check(&harness).await,
                    None => eprintln!("skipped {}", stringify!($check)),
                }
            }
        )*
    };
}

/// One simulated server in a check.
pub struct Node {
    /// Its bus.
    pub bus: Arc<dyn Bus>,
    /// Its receiver.
    pub rx: BusReceiver,
    /// Its encoder.
    pub encoder: Encoder,
}

impl Node {
    /// Opens a node on `harness` and waits until it is connected.
    pub async fn open(harness: &dyn Harness, queue: usize) -> Node {
        let server = ServerId::random();
        let (bus, rx) = harness.open(server, queue).await;
        assert_eq!(bus.server(), server);
        let node = Node {
            bus,
            rx,
            encoder: Encoder::new(server),
        };
        node.wait_connected(true).await;
        node
    }

    /// This node's server id.
    pub fn id(&self) -> ServerId {
        self.bus.server()
    }

    /// Waits until the bus reports `connected`.
    pub async fn wait_connected(&self, connected: bool) {
        let wait = async {
            while self.bus.status().connected != connected {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(DEADLINE, wait).await.is_err() {
            panic!(
                "{} bus never became {}: {:?}",
                self.bus.backend(),
                if connected {
                    "connected"
                } else {
                    "disconnected"
                },
                self.bus.status()
            );
        }
    }

    /// Encodes and publishes bodies.
    pub async fn send(&mut self, messages: &[(Topic, Body)]) {
        let max = self.bus.max_payload();
        let payloads = self
            .encoder
            .encode_all(messages.iter().map(|(t, b)| (*t, b)), max)
            .expect("encode");
        if let Err(e) = self.bus.publish(&payloads).await {
            panic!("{} publish failed: {e}", self.bus.backend());
        }
    }

    /// Publishes a chat line on each topic.
    pub async fn say(&mut self, lines: &[(Topic, &str)]) {
        let bodies: Vec<(Topic, Body)> = lines
            .iter()
            .map(|(topic, line)| (*topic, chat(line)))
            .collect();
        self.send(&bodies).await;
    }

    /// Receives messages until one satisfies `done`; returns every message
    /// received, that one last. Panics at [`DEADLINE`].
    pub async fn until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&Topic, &Envelope) -> bool,
    ) -> Vec<(Topic, Envelope)> {
        let backend = self.bus.backend();
        let mut seen = Vec::new();
        let receive = async {
            loop {
                match self.rx.recv().await {
                    Some(BusEvent::Message(delivery)) => {
                        let envelope = decode(&delivery.payload).expect("decode a delivery");
                        let last = done(&delivery.topic, &envelope);
                        seen.push((delivery.topic, envelope));
                        if last {
                            return;
                        }
                    }
                    Some(_) => {}
                    None => panic!("{backend}: the receiver ended while waiting for {what}"),
                }
            }
        };
        if tokio::time::timeout(DEADLINE, receive).await.is_err() {
            panic!("{backend}: never received {what}; got {seen:?}");
        }
        seen
    }

    /// Receives until the chat line `line` arrives.
    pub async fn until_line(&mut self, line: &str) -> Vec<(Topic, Envelope)> {
        self.until_lines(&[line]).await
    }

    /// Receives until every one of the chat lines `wanted` arrived, in any
    /// order.
    pub async fn until_lines(&mut self, wanted: &[&str]) -> Vec<(Topic, Envelope)> {
        let mut missing: Vec<&str> = wanted.to_vec();
        let what = format!("{wanted:?}");
        self.until(&what, |_, e| {
            missing.retain(|line| !is_line(e, line));
            missing.is_empty()
        })
        .await
    }

    /// Messages arriving within a short quiet period.
    pub async fn quiet(&mut self) -> Vec<(Topic, Envelope)> {
        let mut seen = Vec::new();
        let _ = tokio::time::timeout(QUIET, async {
            while let Some(event) = self.rx.recv().await {
                if let BusEvent::Message(delivery) = event {
                    seen.push((delivery.topic, decode(&delivery.payload).expect("decode")));
                }
            }
        })
        .await;
        seen
    }
}

/// A chat body.
pub fn chat(line: &str) -> Body {
    Body::Chat {
        line: line.to_owned(),
    }
}

fn is_line(envelope: &Envelope, line: &str) -> bool {
    matches!(&envelope.body, Body::Chat { line: l } if l == line)
}

fn lines(seen: &[(Topic, Envelope)]) -> Vec<String> {
    seen.iter()
        .filter_map(|(_, e)| match &e.body {
            Body::Chat { line } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

fn region(p: i32, q: i32) -> Topic {
    Topic::Region(RegionPos::new(p, q))
}

/// The value of counter `name` with exactly `labels`.
pub fn counter(counters: &[BusCounter], name: &str, labels: &[(&str, &str)]) -> u64 {
    counters
        .iter()
        .find(|c| {
            c.name == name
                && c.labels.len() == labels.len()
                && labels.iter().all(|l| c.labels.contains(l))
        })
        .map(|c| c.value)
        .unwrap_or_else(|| panic!("no counter {name} {labels:?}"))
}

/// A fleet message reaches every other server, from its sender.
pub async fn fleet_reaches_every_other_server(harness: &dyn Harness) {
    let mut a = Node::open(harness, 64).await;
    let mut b = Node::open(harness, 64).await;
    let mut c = Node::open(harness, 64).await;
    a.say(&[(Topic::Fleet, "hello fleet")]).await;
    for node in [&mut b, &mut c] {
        let seen = node.until_line("hello fleet").await;
        let (topic, envelope) = seen.last().expect("received");
        assert_eq!(*topic, Topic::Fleet);
        assert_eq!(envelope.from, a.id());
    }
}

/// A server topic reaches its server only.
pub async fn server_topic_reaches_only_its_server(harness: &dyn Harness) {
    let mut a = Node::open(harness, 64).await;
    let mut b = Node::open(harness, 64).await;
    let mut c = Node::open(harness, 64).await;
    a.say(&[(Topic::Server(b.id()), "for b"), (Topic::Fleet, "marker")])
        .await;
    let seen = b.until_line("for b").await;
    assert_eq!(seen.last().map(|(t, _)| *t), Some(Topic::Server(b.id())));
    let mut seen = c.until_line("marker").await;
    seen.extend(c.quiet().await);
    assert_eq!(lines(&seen), ["marker"], "c got b's private message");
}

/// Region topics reach the servers interested in them, and no others.
pub async fn region_topics_need_interest(harness: &dyn Harness) {
    let mut a = Node::open(harness, 64).await;
    let mut b = Node::open(harness, 64).await;
    let mut c = Node::open(harness, 64).await;
    b.bus.set_interest(&[region(0, 0)]).await.expect("interest");
    c.bus
        .set_interest(&[region(-1, 5), Topic::Fleet])
        .await
        .expect("interest");
    a.say(&[
        (region(0, 0), "r00"),
        (region(-1, 5), "rm15"),
        (region(3, 3), "r33"),
        (Topic::Fleet, "fleet"),
    ])
    .await;
    let mut seen = b.until_lines(&["r00", "fleet"]).await;
    seen.extend(b.quiet().await);
    assert_eq!(sorted(lines(&seen)), ["fleet", "r00"]);
    let mut seen = c.until_lines(&["rm15", "fleet"]).await;
    seen.extend(c.quiet().await);
    assert_eq!(sorted(lines(&seen)), ["fleet", "rm15"]);
    assert!(
        seen.iter()
            .any(|(t, e)| *t == region(-1, 5) && is_line(e, "rm15"))
    );
}

/// `set_interest` replaces the set: new topics flow when it returns, old
/// ones stop; another server's topic can be followed too.
pub async fn interest_changes_take_effect(harness: &dyn Harness) {
    let mut a = Node::open(harness, 64).await;
    let mut b = Node::open(harness, 64).await;
    let c = Node::open(harness, 64).await;
    b.bus.set_interest(&[region(1, 1)]).await.expect("interest");
    a.say(&[(region(1, 1), "one")]).await;
    b.until_line("one").await;

    b.bus.set_interest(&[region(2, 2)]).await.expect("interest");
    // "two" is on a dropped topic: nothing of it may arrive by the time the
    // later messages did.
    a.say(&[
        (region(1, 1), "two"),
        (region(2, 2), "three"),
        (Topic::Fleet, "marker"),
    ])
    .await;
    let mut seen = b.until_lines(&["three", "marker"]).await;
    seen.extend(b.quiet().await);
    assert_eq!(sorted(lines(&seen)), ["marker", "three"]);

    b.bus.set_interest(&[]).await.expect("interest");
    b.bus
        .set_interest(&[Topic::Server(c.id())])
        .await
        .expect("interest");
    a.say(&[
        (region(2, 2), "four"),
        (Topic::Server(c.id()), "for c"),
        (Topic::Fleet, "marker 2"),
    ])
    .await;
    let mut seen = b.until_lines(&["for c", "marker 2"]).await;
    seen.extend(b.quiet().await);
    assert_eq!(sorted(lines(&seen)), ["for c", "marker 2"]);
}

/// A server never receives what it published, whatever its interest.
pub async fn own_messages_are_not_delivered_back(harness: &dyn Harness) {
    let mut a = Node::open(harness, 64).await;
    let mut b = Node::open(harness, 64).await;
    a.bus
        .set_interest(&[region(0, 0), Topic::Server(b.id())])
        .await
        .expect("interest");
    b.bus.set_interest(&[region(0, 0)]).await.expect("interest");
    a.say(&[
        (Topic::Fleet, "a fleet"),
        (region(0, 0), "a region"),
        (Topic::Server(a.id()), "a to a"),
        (Topic::Server(b.id()), "a to b"),
    ])
    .await;
    b.until_lines(&["a fleet", "a region", "a to b"]).await;
    b.say(&[(Topic::Fleet, "b fleet")]).await;
    let mut seen = a.until_line("b fleet").await;
    seen.extend(a.quiet().await);
    assert_eq!(lines(&seen), ["b fleet"], "a received its own messages");
    assert!(seen.iter().all(|(_, e)| e.from == b.id()));
}

fn many_edits(n: usize) -> Vec<Edit> {
    (0..n)
        .map(|i| {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            Edit::Block {
                chunk: ChunkPos::new(-3, 4),
                pos: BlockPos::new(-96 + i % 32, 1 + (i / 32) % 255, 128 + (i / 8160) % 32),
                w: 1 + i % 60,
            }
        })
        .collect()
}

/// Bodies larger than `max_payload` travel as pieces that each fit, and
/// come back whole.
pub async fn large_batches_are_split_and_reassembled(harness: &dyn Harness) {
    let mut a = Node::open(harness, 4096).await;
    let mut b = Node::open(harness, 4096).await;
    let max = a.bus.max_payload();
    assert!(max >= 1024, "max_payload {max} is uselessly small");
    let target = region(-1, 0);
    b.bus.set_interest(&[target]).await.expect("interest");
    // About three and a half payloads' worth of edits.
    let edits = Body::Edits {
        edits: many_edits(max / 7),
    };
    let roster = Body::Roster {
        players: (1..=u32::try_from(max / 20).unwrap_or(u32::MAX))
            .map(|id| PlayerInfo {
                id,
                nick: format!("guest{id}"),
                pos: Position {
                    x: id as f32,
                    y: 30.25,
                    z: -(id as f32),
                    rx: 0.5,
                    ry: 0.0,
                },
            })
            .collect(),
    };
    let payloads = a
        .encoder
        .encode_all([(target, &edits), (Topic::Fleet, &roster)], max)
        .expect("encode");
    assert!(payloads.len() >= 5, "{} payloads", payloads.len());
    assert!(payloads.iter().all(|(_, p)| p.len() <= max));
    a.bus.publish(&payloads).await.expect("publish");

    let mut assembler = Assembler::default();
    let mut whole = Vec::new();
    let mut pieces = 0;
    b.until("both bodies", |_, envelope| {
        pieces += 1;
        if let Some(done) = assembler.push(envelope.clone()).expect("assemble") {
            whole.push(done);
        }
        whole.len() == 2
    })
    .await;
    assert_eq!(pieces, payloads.len());
    assert_eq!(whole[0].body, edits);
    assert_eq!(whole[1].body, roster);
}

/// A payload over `max_payload` fails the whole call with `TooLarge`;
/// exactly `max_payload` bytes pass intact.
pub async fn oversized_payloads_are_refused(harness: &dyn Harness) {
    let mut a = Node::open(harness, 64).await;
    let mut b = Node::open(harness, 64).await;
    let max = a.bus.max_payload();
    // A chat envelope padded to exactly `max` bytes.
    let probe = a.encoder.encode(&chat(""), usize::MAX).expect("encode")[0].len();
    let exact = a
        .encoder
        .encode(&chat(&"x".repeat(max - probe)), max)
        .expect("encode");
    assert_eq!(exact[0].len(), max);
    let small = a.encoder.encode(&chat("small"), max).expect("encode");
    let big = Bytes::from(vec![b'x'; max + 1]);
    match a
        .bus
        .publish(&[(Topic::Fleet, small[0].clone()), (Topic::Fleet, big)])
        .await
    {
        Err(BusError::TooLarge { size, max: limit }) => {
            assert_eq!((size, limit), (max + 1, max));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    a.bus
        .publish(&[(Topic::Fleet, exact[0].clone())])
        .await
        .expect("publish");
    let seen = b.until("the exact payload", |_, _| true).await;
    match &seen[0].1.body {
        Body::Chat { line } => assert_eq!(line.len(), max - probe, "not \"small\" first"),
        other => panic!("{other:?}"),
    }
}

/// Messages of one publisher on one topic arrive in order, all of them.
pub async fn order_per_publisher_and_topic(harness: &dyn Harness) {
    let mut a = Node::open(harness, 4096).await;
    let mut b = Node::open(harness, 4096).await;
    let topics = [region(0, 0), region(0, 1), Topic::Fleet];
    b.bus.set_interest(&topics[..2]).await.expect("interest");
    let per_call = 20;
    let calls = 15;
    for call in 0..calls {
        let batch: Vec<(Topic, Body)> = (0..per_call)
            .map(|i| {
                let n = call * per_call + i;
                let topic = topics[n % topics.len()];
                (topic, chat(&format!("{n}")))
            })
            .collect();
        a.send(&batch).await;
    }
    let total = calls * per_call;
    let mut got = 0;
    let seen = b
        .until("every message", |_, _| {
            got += 1;
            got == total
        })
        .await;
    for topic in topics {
        let numbers: Vec<usize> = seen
            .iter()
            .filter(|(t, _)| *t == topic)
            .map(|(_, e)| match &e.body {
                Body::Chat { line } => line.parse().expect("a number"),
                other => panic!("{other:?}"),
            })
            .collect();
        let expected: Vec<usize> = (0..total)
            .filter(|n| topics[n % topics.len()] == topic)
            .collect();
        assert_eq!(numbers, expected, "order on {topic}");
        let seqs: Vec<u64> = seen
            .iter()
            .filter(|(t, _)| *t == topic)
            .map(|(_, e)| e.seq)
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq order on {topic}");
    }
}

/// A full receiver drops new messages (never blocking the backend),
/// counts them and reports the loss before the queued messages.
pub async fn full_receiver_drops_and_counts(harness: &dyn Harness) {
    let mut a = Node::open(harness, 64).await;
    let mut b = Node::open(harness, 4).await;
    let lines: Vec<(Topic, Body)> = (0..50)
        .map(|n| (Topic::Fleet, chat(&format!("{n}"))))
        .collect();
    a.send(&lines).await;
    // Wait until every message was either queued or dropped.
    let accounted = async {
        loop {
            let counters = b.bus.counters();
            let queued = counter(
                &counters,
                "bus_messages_total",
                &[("direction", "in"), ("topic", "fleet")],
            );
            let dropped = counter(&counters, "bus_dropped_total", &[]);
            if queued + dropped >= 50 {
                return (queued, dropped);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (queued, dropped) = tokio::time::timeout(DEADLINE, accounted)
        .await
        .expect("messages never reached b");
    assert_eq!((queued, dropped), (4, 46));
    let mut lagged = None;
    let mut received = Vec::new();
    while received.len() < 4 {
        match tokio::time::timeout(DEADLINE, b.rx.recv()).await {
            Ok(Some(BusEvent::Lagged(n))) => {
                assert!(received.is_empty(), "the loss is reported first");
                lagged = Some(n);
            }
            Ok(Some(BusEvent::Message(d))) => received.push(decode(&d.payload).expect("decode")),
            Ok(Some(BusEvent::State(_))) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(lagged, Some(46));
    let first: Vec<String> = received
        .iter()
        .filter_map(|e| match &e.body {
            Body::Chat { line } => Some(line.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(first, ["0", "1", "2", "3"]);
    // And it keeps working.
    a.say(&[(Topic::Fleet, "after")]).await;
    b.until_line("after").await;
}

/// An outage shows in the status and the receiver; publishing fails with
/// `Unavailable` meanwhile; after recovery the interest is back and
/// messages flow again.
pub async fn lost_connection_is_reported_and_recovered(harness: &dyn Harness) {
    let mut a = Node::open(harness, 64).await;
    let mut b = Node::open(harness, 64).await;
    b.bus
        .set_interest(&[region(4, -4)])
        .await
        .expect("interest");
    a.say(&[(region(4, -4), "before")]).await;
    b.until_line("before").await;
    let connects = (a.bus.status().connects, b.bus.status().connects);

    harness.interrupt().await;
    a.wait_connected(false).await;
    b.wait_connected(false).await;
    let payload = a.encoder.encode(&chat("during"), 1024).expect("encode");
    match a.bus.publish(&[(Topic::Fleet, payload[0].clone())]).await {
        Err(e) if e.is_retryable() => {}
        other => panic!("publishing while disconnected: {other:?}"),
    }
    // The receiver reports the loss.
    let lost = async {
        loop {
            match b.rx.recv().await {
                Some(BusEvent::State(s)) if !s.connected => return,
                Some(_) => {}
                None => panic!("the receiver ended"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, lost)
        .await
        .expect("no disconnected state");

    harness.restore().await;
    a.wait_connected(true).await;
    b.wait_connected(true).await;
    assert!(a.bus.status().connects > connects.0);
    assert!(b.bus.status().connects > connects.1);
    a.say(&[(region(4, -4), "after"), (Topic::Fleet, "fleet after")])
        .await;
    let seen = b.until_lines(&["after", "fleet after"]).await;
    assert!(!lines(&seen).contains(&"during".to_owned()));
    assert!(counter(&a.bus.counters(), "bus_publish_errors_total", &[]) >= 1);
    assert!(counter(&b.bus.counters(), "bus_reconnects_total", &[]) >= 1);
}

/// Messages and bytes are counted by direction and topic kind.
pub async fn counters_count_traffic(harness: &dyn Harness) {
    let mut a = Node::open(harness, 64).await;
    let mut b = Node::open(harness, 64).await;
    b.bus.set_interest(&[region(9, 9)]).await.expect("interest");
    let bodies: Vec<(Topic, Body)> = vec![
        (Topic::Fleet, chat("f1")),
        (Topic::Fleet, chat("f2")),
        (Topic::Fleet, chat("f3")),
        (region(9, 9), chat("r1")),
        (region(9, 9), chat("r2")),
    ];
    let payloads = a
        .encoder
        .encode_all(bodies.iter().map(|(t, b)| (*t, b)), a.bus.max_payload())
        .expect("encode");
    let bytes = |kind: fn(&Topic) -> bool| -> u64 {
        payloads
            .iter()
            .filter(|(t, _)| kind(t))
            .map(|(_, p)| p.len() as u64)
            .sum()
    };
    let fleet_bytes = bytes(|t| *t == Topic::Fleet);
    let region_bytes = bytes(|t| matches!(t, Topic::Region(_)));
    a.bus.publish(&payloads).await.expect("publish");
    b.until_lines(&["f1", "f2", "f3", "r1", "r2"]).await;
    for (node, direction) in [(&a, "out"), (&b, "in")] {
        let counters = node.bus.counters();
        let get = |name, topic| {
            counter(
                &counters,
                name,
                &[("direction", direction), ("topic", topic)],
            )
        };
        assert_eq!(get("bus_messages_total", "fleet"), 3, "{direction}");
        assert_eq!(get("bus_messages_total", "region"), 2, "{direction}");
        assert_eq!(get("bus_bytes_total", "fleet"), fleet_bytes, "{direction}");
        assert_eq!(
            get("bus_bytes_total", "region"),
            region_bytes,
            "{direction}"
        );
    }
}

/// After `close`, calls fail with `Closed`, the receiver ends, and the
/// other servers carry on.
pub async fn close_is_final(harness: &dyn Harness) {
    let mut a = Node::open(harness, 64).await;
    let mut b = Node::open(harness, 64).await;
    let mut c = Node::open(harness, 64).await;
    a.bus.close().await.expect("close");
    a.bus.close().await.expect("closing twice");
    assert!(a.bus.status().closed);
    assert!(!a.bus.status().connected);
    let payload = a.encoder.encode(&chat("late"), 1024).expect("encode");
    assert!(matches!(
        a.bus.publish(&[(Topic::Fleet, payload[0].clone())]).await,
        Err(BusError::Closed)
    ));
    assert!(matches!(
        a.bus.set_interest(&[region(0, 0)]).await,
        Err(BusError::Closed)
    ));
    let ended = async { while a.rx.recv().await.is_some() {} };
    tokio::time::timeout(DEADLINE, ended)
        .await
        .expect("the receiver of a closed bus never ended");
    b.say(&[(Topic::Fleet, "still here")]).await;
    c.until_line("still here").await;
}
