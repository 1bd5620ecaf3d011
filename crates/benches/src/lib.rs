//! Benchmarks of the Craft world server.
//!
//! Two halves:
//!
//! - criterion micro-benchmarks (`benches/`): the protocol codec, terrain
//!   generation, the edit rules and [`world_core::store::Batch`]; run with
//!   `cargo bench -p benches`;
//! - `craft-bench`, a load generator speaking the Craft protocol to a real
//!   server over TCP:
//!   - `craft-bench swarm` ([`swarm`]): N bot players that join, request
//!     chunks, move, edit and chat, measuring edit propagation, chunk
//!     answers, line rates and the server's CPU and memory;
//!   - `craft-bench idle` ([`idle`]): server memory per idle connection;
//! - `craft-bench stores` ([`stores`], [`baseline`]): the same work on
//!   every store, next to raw SQLite and PostgreSQL baselines;
//! - `craft-bench fleet` ([`fleet`]): several servers on one store joined
//!   by a fleet bus (or polling), with bots spread over them: cross-server
//!   edit latency and bus traffic.
//! - `craft-bench features` ([`features`]): draft publishes, block
//!   history's cost and rollback, and migration between every pair of
//!   stores.
//!
//! Every run prints a summary for people on stderr and one JSON object on
//! stdout (also appended to `--json-out FILE`), for the script that writes
//! BENCHMARKS.md.

pub mod baseline;
pub mod cli;
pub mod features;
pub mod fleet;
pub mod histogram;
pub mod idle;
pub mod layout;
pub mod lines;
mod moves;
pub mod procfs;
pub mod spawn;
pub mod stores;
pub mod swarm;
