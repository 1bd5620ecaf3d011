//! The [`Bus`] trait every backend implements, and what it hands the game
//! loop.

use std::fmt::Debug;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;

use crate::config::{Namespace, ServerId};
use crate::error::BusResult;
use crate::topic::Topic;

/// A message received from another server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The topic it was published on.
    pub topic: Topic,
    /// The payload, as published (decode with
    /// [`message::decode`](crate::message::decode)).
    pub payload: Bytes,
}

/// What a [`BusReceiver`](crate::BusReceiver) yields.
#[derive(Clone, Debug, PartialEq)]
pub enum BusEvent {
    /// A message.
    Message(Delivery),
    /// This many messages were dropped because the receiver was full: the
    /// game loop should re-sync what it holds from the store.
    Lagged(u64),
    /// The connection state changed (several changes between two reads are
    /// seen as the latest; [`BusStatus::connects`] tells whether a
    /// reconnection happened meanwhile).
    State(BusStatus),
}

/// Connection state of a bus.
#[derive(Clone, Debug, PartialEq)]
pub struct BusStatus {
    /// The backend's name.
    pub backend: &'static str,
    /// Connected now: publishing works and subscriptions are in place.
    pub connected: bool,
    /// When `connected` last changed (or the bus opened).
    pub since: Instant,
    /// Connections established so far (1 after the first one; each
    /// reconnection adds one, and messages sent meanwhile were lost).
    pub connects: u64,
    /// Why the last connection ended or failed, if it did.
    pub last_error: Option<String>,
    /// Closed for good.
    pub closed: bool,
}

/// One counter of a bus, for `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusCounter {
    /// Metric name, `snake_case`, ending in `_total` (`bus_messages_total`).
    pub name: &'static str,
    /// One line of help text.
    pub help: &'static str,
    /// Labels, e.g. `[("direction", "in"), ("topic", "region")]`.
    pub labels: Vec<(&'static str, &'static str)>,
    /// Current value.
    pub value: u64,
}

/// A publish/subscribe bus between the servers of one world.
///
/// Delivery is at most once and best effort: a message can be lost (bus
/// outage, receiver full, server crash), never duplicated by the bus, and
/// messages of one publisher on one topic arrive in the order published.
/// The store stays the truth; what the bus loses, the store sync repairs.
///
/// Object safe: the server holds an `Arc<dyn Bus>`.
#[async_trait]
pub trait Bus: Send + Sync + Debug {
    /// The backend's name (`memory`, `nats`, `postgres`).
    fn backend(&self) -> &'static str;

    /// This server on the bus.
    fn server(&self) -> ServerId;

    /// The world's namespace.
    fn namespace(&self) -> &Namespace;

    /// Largest payload one message may carry on this backend (encode with
    /// [`message::Encoder`](crate::message::Encoder), which splits batches
    /// to fit).
    fn max_payload(&self) -> usize;

    /// Publishes `messages` in order, in one round trip where the backend
    /// allows. Never delivered back to this server.
    ///
    /// Fails with `Unavailable` while disconnected (nothing is queued for
    /// later: late edits and positions are worse than lost ones), `TooLarge`
    /// when a payload exceeds [`Bus::max_payload`] (then nothing is sent),
    /// `Invalid` when the backend cannot carry a payload, `Closed` after
    /// [`Bus::close`].
    async fn publish(&self, messages: &[(Topic, Bytes)]) -> BusResult<()>;

    /// Replaces the [`Topic::Region`] and [`Topic::Server`] topics this
    /// server receives ([`Topic::Fleet`] and its own server topic are
    /// always received, whatever the set). When it returns, messages
    /// published afterwards on the new topics are delivered; messages on
    /// dropped topics already in flight may still arrive. While
    /// disconnected the set is kept and takes effect on reconnection.
    async fn set_interest(&self, topics: &[Topic]) -> BusResult<()>;

    /// The connection state.
    fn status(&self) -> BusStatus;

    /// Counters: messages and bytes in and out by topic kind, dropped
    /// deliveries, publish errors, reconnections.
    fn counters(&self) -> Vec<BusCounter>;

    /// Leaves the bus: later calls fail with `Closed`, the receiver ends
    /// once drained. Closing twice is harmless.
    async fn close(&self) -> BusResult<()>;
}
