//! The fleet bus: how the `craft-server` processes sharing one world tell
//! each other, as it happens, what their players do — edits, joins and
//! leaves, positions, chat — so that the fleet feels like one server.
//!
//! This crate is the abstraction and everything backend-independent:
//!
//! - [`Bus`]: the object-safe trait of a backend (publish to topics, choose
//!   the topics received, status, counters, close), opened together with a
//!   [`BusReceiver`] of [`BusEvent`]s for the game loop;
//! - [`Topic`]: the fleet, one server, or one region of
//!   [`REGION_CHUNKS`] x [`REGION_CHUNKS`] chunks; [`regions_near`] gives
//!   the regions to subscribe to for players' chunks;
//! - [`message`]: the versioned [`Envelope`](message::Envelope) and its
//!   [`Body`](message::Body) variants, the JSON codec that splits batches
//!   to fit [`Bus::max_payload`], and the [`Assembler`](message::Assembler)
//!   for split rosters;
//! - [`MemoryBus`] on a [`MemoryHub`]: an in-process bus for tests that
//!   simulate several servers in one process;
//! - [`inbox`]: the plumbing backends share (non-blocking delivery, state,
//!   counters);
//! - `conformance` (feature `conformance`): the suite every backend runs.
//!
//! Backends: `bus-nats` (NATS, works with every store) and `bus-postgres`
//! (LISTEN/NOTIFY on the PostgreSQL store's own database).
//!
//! # Guarantees
//!
//! - At most once, best effort: a message can be lost (outage, full
//!   receiver, crash), is never duplicated by the bus, and never comes back
//!   to its sender. Messages of one publisher on one topic arrive in order.
//! - Nothing waits on the game loop: when its queue is full, new messages
//!   are dropped and counted, and the receiver reports
//!   [`BusEvent::Lagged`] first thing.
//! - While disconnected, `publish` fails with `Unavailable` (nothing is
//!   queued to arrive late); backends reconnect by themselves, restore the
//!   interest, and only then report connected again.
//! - **The store stays the truth.** Whatever the bus loses is repaired by
//!   the store's `changed_chunks` sync; edits carried by the bus are
//!   provisional until their `Committed` message tells receivers to re-sync
//!   the chunk from the store, whose per-chunk key order decides the final
//!   value of a block two servers edited at once.
//!
//! # Using it in `craft-server` (phase 2)
//!
//! 1. **Opening.** `--bus none|nats://…|postgres` (config `bus`, env
//!    `CRAFT_BUS`). Make a [`ServerId::random`] per process and
//!    [`BusOptions`] with a [`Namespace`] naming the world: for `postgres`,
//!    [`Namespace::derive`] of the store's schema; for NATS a `bus_namespace`
//!    setting (default `craft`) — two worlds on one NATS server need two.
//!    `bus_nats::NatsBus::open(Config::from_url(url)?, options)` or
//!    `bus_postgres::PostgresBus::open(Config::new(store_config), options)`
//!    give the bus and its receiver; opening never waits for the network
//!    (the game starts and plays while the bus is down). Keep an
//!    `Arc<dyn Bus>` and one [`message::Encoder`] in the world.
//! 2. **Receiving.** Select on [`BusReceiver::recv`] in the game loop (or
//!    drain [`BusReceiver::try_recv`] once per tick). Decode each payload
//!    with [`message::decode`] (count and skip `Invalid`), pass rosters
//!    through an [`Assembler`](message::Assembler), apply pieces of edits,
//!    commits and positions directly. On [`BusEvent::State`] with a higher
//!    `connects` than last seen: publish `Hello` (peers answer with their
//!    roster), and mark every held chunk for sync (messages were lost
//!    meanwhile). On `Lagged`: mark every held chunk for sync. While
//!    disconnected, run the store sync at today's polling interval; while
//!    connected, at a slower one (it only repairs losses).
//! 3. **Interest.** When players cross chunk borders (or join or leave),
//!    compute [`regions_near`] of their chunks with `edit_radius` and call
//!    [`Bus::set_interest`] if the set changed (it costs a round trip).
//! 4. **Publishing, once per tick, in one call.** Collect the tick's
//!    `(Topic, Body)` list and [`message::Encoder::encode_all`] it with
//!    [`Bus::max_payload`], then [`Bus::publish`] from a task (never from
//!    the loop itself). Edits as accepted (mirrors included) grouped with
//!    [`message::by_region`] by [`message::Edit::chunk`]; `Committed` after
//!    each flush lands, grouped the same way; `Positions` of the players
//!    that moved, coalesced, grouped by their chunk; `Join`, `Leave`,
//!    `Nick`, `Chat` and notices on [`Topic::Fleet`]; `@nick` messages for
//!    a remote nick as `Private` on that server's [`Topic::Server`].
//!    `Heartbeat` every second; `Bye` on graceful shutdown before
//!    [`Bus::close`]. A failed publish is counted and dropped: the store
//!    repairs edits, and the rest is ephemeral.
//! 5. **Remote players.** Map `(ServerId, PlayerId)` to local protocol ids
//!    from the same free-id pool as local players (so they never collide),
//!    send `P` before `N` (the client ignores `N` for unknown ids), and
//!    send `D` for all of a server's players on `Bye`, on a heartbeat
//!    timeout (a few seconds of silence), or when a `Roster` no longer
//!    lists them. `/list` and `@nick` use the union of local and remote
//!    nicks.
//! 6. **Operations.** [`Bus::status`] for `/readyz` (report, do not fail
//!    readiness: play goes on without the bus), [`Bus::counters`] for
//!    `/metrics`, and the lag from `Heartbeat::at_ms`.

mod bus;
mod config;
mod error;
pub mod inbox;
mod memory;
pub mod message;
mod topic;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use bus::{Bus, BusCounter, BusEvent, BusStatus, Delivery};
pub use config::{BusOptions, DEFAULT_QUEUE, Namespace, ServerId};
pub use error::{BusError, BusResult};
pub use inbox::BusReceiver;
pub use memory::{DEFAULT_MAX_PAYLOAD, MemoryBus, MemoryHub};
pub use topic::{REGION_CHUNKS, RegionPos, Topic, TopicKind, regions_near};
