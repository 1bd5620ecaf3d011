//! What a fleet run reports: one JSON object (`kind: "fleet"`, read by
//! `scripts/bench_report.py`) and a summary for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::scrape::BusMetrics;
use super::{Ctx, FleetConfig};
use crate::histogram::LatencySummary;

/// What the orchestrator measured around the bots' tallies.
pub(super) struct Measured {
    pub(super) join_s: f64,
    pub(super) joined: u64,
    pub(super) players: u64,
    pub(super) active_s: f64,
    pub(super) window_s: f64,
    pub(super) servers: Vec<ServerTraffic>,
    pub(super) by_topic: BTreeMap<String, Traffic>,
}

/// Bus traffic, per second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Traffic {
    /// Messages received.
    pub messages_in_per_s: f64,
    /// Messages published.
    pub messages_out_per_s: f64,
    /// Payload bytes received.
    pub bytes_in_per_s: f64,
    /// Payload bytes published.
    pub bytes_out_per_s: f64,
}

/// One server's share of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerTraffic {
    /// Index in the fleet.
    pub server: usize,
    /// Its game address.
    pub addr: String,
    /// Bots taking part on it.
    pub players: u64,
    /// Its bus traffic over the active phase and the settle period.
    pub traffic: Traffic,
    /// Deliveries it dropped (its game loop's queue full) meanwhile.
    pub dropped: u64,
    /// `craft_bus_lag_ms` at the end (the latest peer heartbeat's delay).
    pub lag_ms: Option<i64>,
    /// `craft_bus_peers` at the end.
    pub peers: Option<i64>,
    /// `craft_bus_connected` at the end.
    pub connected: Option<i64>,
}

impl ServerTraffic {
    pub(super) fn between(
        server: usize,
        addr: SocketAddr,
        before: &BusMetrics,
        after: &BusMetrics,
        secs: f64,
        players: u64,
    ) -> Self {
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs.max(1e-9);
        let (mi1, bi1) = after.total("in");
        let (mi0, bi0) = before.total("in");
        let (mo1, bo1) = after.total("out");
        let (mo0, bo0) = before.total("out");
        Self {
            server,
            addr: addr.to_string(),
            players,
            traffic: Traffic {
                messages_in_per_s: rate(mi1, mi0),
                messages_out_per_s: rate(mo1, mo0),
                bytes_in_per_s: rate(bi1, bi0),
                bytes_out_per_s: rate(bo1, bo0),
            },
            dropped: after.dropped.saturating_sub(before.dropped),
            lag_ms: after.lag_ms,
            peers: after.peers,
            connected: after.connected,
        }
    }
}

/// Deliveries of edits to one kind of receiver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Deliveries {
    /// Receipts due: per edit, every taking-part bot of that kind.
    pub expected: u64,
    /// First receipts counted (at most one per receiver and edit).
    pub received: u64,
    /// `received / expected`.
    pub share: f64,
    /// Send to receipt.
    pub latency: LatencySummary,
}

impl Deliveries {
    fn new(expected: u64, received: u64, latency: LatencySummary) -> Self {
        Self {
            expected,
            received,
            share: if expected == 0 {
                0.0
            } else {
                received as f64 / expected as f64
            },
            latency,
        }
    }
}

/// The JSON line of a fleet run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FleetReport {
    /// Always `"fleet"`.
    pub kind: String,
    /// `nats`, `postgres` or `none`.
    pub bus: String,
    /// Servers.
    pub servers: u32,
    /// Bots asked for.
    pub bots: u32,
    /// Bots joined.
    pub joined: u64,
    /// Bots taking part (joined when the active phase started).
    pub players: u64,
    /// Bots editing.
    pub editors: u32,
    /// Blocks per editor per second.
    pub edit_rate: f64,
    /// Position updates per bot per second.
    pub move_hz: f64,
    /// Grid of chunks, `WxH`.
    pub chunks: String,
    /// Seconds until every bot joined.
    pub join_s: f64,
    /// Length of the active phase, seconds.
    pub active_s: f64,
    /// Active phase plus settle period (the traffic window), seconds.
    pub window_s: f64,
    /// Edits placed.
    pub edits: u64,
    /// To bots of other servers than the editor's.
    pub cross: Deliveries,
    /// To the other bots of the editor's own server.
    pub same: Deliveries,
    /// Receipts of an edit a bot had already counted (bus, then sync).
    pub duplicates: u64,
    /// `B` lines that matched no edit sent.
    pub unmatched: u64,
    /// Own edits echoed back (refused by the server).
    pub refused: u64,
    /// Bots whose connection dropped after joining.
    pub disconnects: u64,
    /// Per server bus traffic.
    pub per_server: Vec<ServerTraffic>,
    /// The fleet's bus traffic, all servers summed.
    pub total: Traffic,
    /// The fleet's bus traffic by topic kind, all servers summed.
    pub by_topic: BTreeMap<String, Traffic>,
    /// Deliveries dropped by all servers.
    pub dropped: u64,
    /// Generator runtime threads.
    pub threads: usize,
}

/// The bus kind of a `--bus` value.
fn bus_kind(bus: &str) -> String {
    if bus.starts_with("nats://") {
        "nats".to_owned()
    } else {
        bus.to_owned()
    }
}

impl FleetReport {
    pub(super) fn build(cfg: &FleetConfig, ctx: &Ctx, m: Measured) -> Self {
        let c = &ctx.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let mut total = Traffic::default();
        for s in &m.servers {
            total.messages_in_per_s += s.traffic.messages_in_per_s;
            total.messages_out_per_s += s.traffic.messages_out_per_s;
            total.bytes_in_per_s += s.traffic.bytes_in_per_s;
            total.bytes_out_per_s += s.traffic.bytes_out_per_s;
        }
        Self {
            kind: "fleet".to_owned(),
            bus: bus_kind(&cfg.bus),
            servers: cfg.servers,
            bots: cfg.bots,
            joined: m.joined,
            players: m.players,
            editors: cfg.editors,
            edit_rate: cfg.edit_rate,
            move_hz: cfg.move_hz,
            chunks: format!("{}x{}", cfg.width, cfg.height),
            join_s: m.join_s,
            active_s: m.active_s,
            window_s: m.window_s,
            edits: get(&c.edits),
            cross: Deliveries::new(
                get(&c.cross_expected),
                get(&c.cross_received),
                ctx.cross_latency.summary(),
            ),
            same: Deliveries::new(
                get(&c.same_expected),
                get(&c.same_received),
                ctx.same_latency.summary(),
            ),
            duplicates: get(&c.duplicates),
            unmatched: get(&c.unmatched),
            refused: get(&c.refused),
            disconnects: get(&c.disconnects),
            dropped: m.servers.iter().map(|s| s.dropped).sum(),
            per_server: m.servers,
            total,
            by_topic: m.by_topic,
            threads: cfg.threads,
        }
    }

    /// A summary for people.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "fleet: {} servers, bus {}, {} bots ({} taking part), {} editors x {}/s, \
             {:.1} s active + settle ({:.1} s window)",
            self.servers,
            self.bus,
            self.bots,
            self.players,
            self.editors,
            self.edit_rate,
            self.active_s,
            self.window_s
        );
        for (name, d) in [("cross-server", &self.cross), ("same-server", &self.same)] {
            let l = &d.latency;
            let _ = writeln!(
                s,
                "  {name}: {} of {} deliveries ({:.2} %), p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                d.received,
                d.expected,
                d.share * 100.0,
                l.p50_ms,
                l.p99_ms,
                l.max_ms
            );
        }
        let _ = writeln!(
            s,
            "  edits {}, duplicates {}, unmatched {}, refused {}, disconnects {}, dropped {}",
            self.edits,
            self.duplicates,
            self.unmatched,
            self.refused,
            self.disconnects,
            self.dropped
        );
        for p in &self.per_server {
            let t = &p.traffic;
            let _ = writeln!(
                s,
                "  server {} ({} players): bus in {:.0} msg/s {:.1} KiB/s, out {:.0} msg/s \
                 {:.1} KiB/s, lag {:?} ms, peers {:?}",
                p.server,
                p.players,
                t.messages_in_per_s,
                t.bytes_in_per_s / 1024.0,
                t.messages_out_per_s,
                t.bytes_out_per_s / 1024.0,
                p.lag_ms,
                p.peers
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_bus_kind() {
        assert_eq!(bus_kind("nats://127.0.0.1:4222"), "nats");
        assert_eq!(bus_kind("postgres"), "postgres");
        assert_eq!(bus_kind("none"), "none");
    }

    #[test]
    fn traffic_is_a_rate_over_the_window() {
        let mut before = BusMetrics::default();
        before
            .traffic
            .insert(("region".into(), "out".into()), (10, 1000));
        let mut after = before.clone();
        after
            .traffic
            .insert(("region".into(), "out".into()), (30, 3000));
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("an address");
        let t = ServerTraffic::between(0, addr, &before, &after, 2.0, 5);
        assert_eq!(t.traffic.messages_out_per_s, 10.0);
        assert_eq!(t.traffic.bytes_out_per_s, 1000.0);
        assert_eq!(t.traffic.messages_in_per_s, 0.0);
    }
}
