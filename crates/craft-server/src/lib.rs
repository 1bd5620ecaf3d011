//! `craft-server`: a world server for the unmodified Craft client.
//!
//! - [`config`]: the TOML file and its defaults; [`cli`]: flags that
//!   override it;
//! - [`server::run`]: accepts players (within the [`admission`] limits)
//!   and runs the [`world`] (the game loop that owns players and cached
//!   chunks) until shutdown, then drains;
//! - [`connection`]: per-client line framing, parsing, rate limiting and
//!   the bounded [`outbound`] queue;
//! - `commands`: one file per protocol command;
//! - [`stores`]: opens the store a URL names and measures every call;
//! - [`migrate`]: `import` and `verify`, copying a world between stores
//!   (also while it is being written) and comparing them chunk by chunk;
//! - [`bus`]: opens the fleet bus between servers sharing a world
//!   (what crosses it: `world/fleet.rs`);
//! - [`login`]: the optional identity service;
//! - [`history`]: block history and rollback (in game, admin page, CLI);
//! - [`metrics`]: Prometheus metrics and health;
//! - on orchestrators: the [`admin`] listener (probes, metrics, the admin
//!   page with its live map), [`agones`] (the SDK sidecar), [`imds`] (spot
//!   interruption notices); both ask for the drain through [`control`], and
//!   [`server`] starts them.

pub mod admin;
pub mod admission;
pub mod agones;
pub mod bus;
pub mod cli;
pub mod cli_history;
mod commands;
pub mod config;
pub mod connection;
pub mod control;
pub mod countdown;
pub mod history;
pub mod imds;
pub mod login;
pub mod metrics;
pub mod migrate;
pub mod outbound;
pub mod server;
pub mod stores;
pub mod world;

pub use config::Config;
