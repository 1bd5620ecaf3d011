//! The fleet bus over NATS (the `async-nats` client): works with every
//! store, and carries the whole traffic of a large fleet, positions
//! included. Selected by `--bus nats://HOST:PORT` (see [`Config`] for the
//! URL); see `bus-core` for the [`Bus`](bus_core::Bus) contract and how the
//! server uses it.
//!
//! # Design
//!
//! - **Subjects** ([`subject`]): `{namespace}.fleet`,
//!   `{namespace}.server.{id}`, `{namespace}.region.{p}.{q}`: one
//!   subscription per topic, so the NATS server routes each region's
//!   traffic to the servers interested in it only.
//! - **One client** with `no_echo` (the server never sends a client its own
//!   messages); every message also carries a `Craft-From` header with the
//!   sender's id, and the receiving side drops its own as a safety net.
//! - **Receiving**: one task polls every subscription (a `StreamMap`) and
//!   hands messages to the game loop without waiting (a full receiver
//!   drops and counts). `set_interest` subscribes, unsubscribes, then
//!   makes one round trip through the server (a request to a subject
//!   nobody serves, answered "no responders"), so the server has the new
//!   set when it returns.
//! - **Publishing**: messages are written back to back, no round trip per
//!   call; [`MAX_PAYLOAD`] is 60 KiB.
//! - **Outages**: the client reconnects by itself forever (delays growing to
//!   4 s) and re-sends every subscription; the bus reports connected only
//!   after a round trip proves the server has them, and publishing fails with
//!   `Unavailable` meanwhile rather than queueing messages to arrive late.
//!   A dead server is noticed at once when its socket closes, else within
//!   two `ping_interval`s (10 s). Opening never waits for the server.
//!
//! # What the NATS server needs
//!
//! Plain core NATS (no JetStream, no persistence): `nats-server` 2.2 or
//! later (headers), one per fleet or a cluster (list every member in the
//! URL). At most once delivery is enough because the store is the truth.

mod bus;
mod config;

pub use bus::{FROM_HEADER, MAX_PAYLOAD, NatsBus, subject};
pub use config::{
    Auth, Config, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PING_INTERVAL, DEFAULT_PORT, Secret,
};
