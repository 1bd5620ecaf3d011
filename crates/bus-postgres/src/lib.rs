//! The fleet bus over PostgreSQL LISTEN/NOTIFY, on the store's own
//! database: no extra component for a fleet that already shares a
//! `postgres://` store. Selected by `--bus postgres`; see `bus-core` for the
//! [`Bus`](bus_core::Bus) contract and how the server uses it.
//!
//! # Design
//!
//! - **One session** per server, opened with the store's settings (URL,
//!   `PG*` variables, TLS, timeouts, keepalives) through
//!   `store_postgres::connect_session`, outside the store's pool: it
//!   LISTENs to the fleet channel, its own server channel and the regions
//!   of interest, and publishes. The connection is polled continuously for
//!   notifications, which are handed to the game loop without waiting (a
//!   full receiver drops and counts). Sharing the session for both
//!   directions halves the connections a fleet holds (they count against
//!   `max_connections`, on Aurora too), and our own notifications, which
//!   PostgreSQL sends back to a listening sender, are recognised by the
//!   session's backend pid and skipped before decoding.
//! - **Publishing** a whole batch is one statement, one round trip:
//!   `SELECT count(pg_notify(c, p)) FROM unnest($1::text[], $2::text[])`.
//!   Notifications are delivered when it commits, in array order. Payloads
//!   are text under 8000 bytes ([`MAX_PAYLOAD`]); the codec splits larger
//!   batches.
//! - **Channels** (module `channel`): `{namespace}_f`, `{namespace}_s_{id}`,
//!   `{namespace}_r_{p}_{q}` with `m` for minus (`craft_r_m3_4`), at most
//!   56 bytes; the namespace (by default derived from the store's schema by
//!   the server) keeps worlds sharing a database apart.
//! - **Outages**: a lost connection, a failed or timed-out call, or a
//!   health check (`SELECT 1` every `ping_interval`, 10 s) that fails
//!   drops the session; the bus reports disconnected and reconnects with
//!   exponential backoff and jitter (`backon`, 100 ms to 5 s, forever),
//!   re-issues every LISTEN, and only then reports connected. Publishing
//!   fails with `Unavailable` meanwhile. Opening never waits for the
//!   database.
//!
//! # Load and limits
//!
//! Every notifying transaction takes a database-wide lock on the
//! notification queue at commit, and every listening session of the
//! database receives what its channels carry: this bus suits a modest
//! fleet. Carry edits, commits, membership and chat; thin positions (every
//! few ticks, or only players that moved far) or leave them to a NATS bus
//! when the writer is busy. A listener that stops reading lets the queue
//! (8 GB) fill; the session task reads continuously, so only a stuck
//! process could.

mod bus;
mod channel;
mod config;
mod error;

pub use bus::{MAX_PAYLOAD, PostgresBus};
pub use channel::{channel, topic};
pub use config::{Config, DEFAULT_PING_INTERVAL, DEFAULT_RECONNECT_MAX, DEFAULT_RECONNECT_MIN};
