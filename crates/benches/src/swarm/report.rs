//! What a swarm run reports: one JSON object (read by
//! `scripts/bench_report.py` and quoted in BENCHMARKS.md) and a summary for
//! people.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::state::{Counters, Ctx, Snapshot};
use crate::histogram::LatencySummary;
use crate::layout::Spread;
use crate::procfs::{Process, ProcessReport, Sample};

/// What the orchestrator measured around the bots' own tallies.
pub(super) struct Measured {
    /// Time until every bot joined, seconds.
    pub(super) join_s: f64,
    /// Bots that take part in the active phase.
    pub(super) players: u64,
    /// Few enough players that every edit goes to everyone.
    pub(super) everyone: bool,
    /// Length of the active phase, seconds.
    pub(super) active_s: f64,
    /// Line counters when the active phase started and ended.
    pub(super) counts: (Snapshot, Snapshot),
    /// The server, when it runs on this machine.
    pub(super) server: Option<ServerSamples>,
    /// The load generator at the start and end of the active phase.
    pub(super) me: (Process, Option<Sample>, Option<Sample>),
    /// The machine's load average at the start and end of the active phase.
    pub(super) load_average: (f64, f64),
}

/// Samples of the server's process over a run.
pub(super) struct ServerSamples {
    pub(super) process: Process,
    pub(super) before: Sample,
    pub(super) joined: Option<Sample>,
    pub(super) start: Option<Sample>,
    pub(super) end: Sample,
    pub(super) peak_rss_kib: u64,
}

impl SwarmReport {
    /// The report of a finished run.
    pub(super) fn build(ctx: &Ctx, m: Measured) -> Self {
        let cfg = &ctx.cfg;
        let c = &ctx.counters;
        let get = Counters::get;
        let players = m.players;
        let (start, end) = m.counts;
        let lines_in_active = end.lines_in - start.lines_in;
        let server = m.server.map(|s| {
            let per = |kib: u64| {
                if players == 0 {
                    0.0
                } else {
                    (kib as f64 - s.before.rss_kib as f64) / players as f64
                }
            };
            let joined_kib = s.joined.map_or(0, |j| j.rss_kib);
            let cpu_s = s
                .start
                .map_or(0.0, |start| s.process.cpu_seconds(&start, &s.end));
            ServerReport {
                process: ProcessReport {
                    pid: cfg.server_pid,
                    cpu_percent: s
                        .start
                        .map_or(0.0, |start| s.process.cpu_percent(&start, &s.end)),
                    runqueue_wait_percent: s
                        .start
                        .map_or(0.0, |start| s.process.runqueue_percent(&start, &s.end)),
                    rss_before_kib: s.before.rss_kib,
                    rss_joined_kib: joined_kib,
                    rss_end_kib: s.end.rss_kib,
                    rss_peak_kib: s.peak_rss_kib,
                },
                kib_per_player_joined: per(joined_kib),
                kib_per_player_active: per(s.end.rss_kib),
                cpu_s_active: cpu_s,
                cpu_ns_per_line: if lines_in_active == 0 {
                    0.0
                } else {
                    cpu_s * 1e9 / lines_in_active as f64
                },
            }
        });
        let (me, me_start, me_end) = m.me;
        let generator = GeneratorReport {
            cpu_percent: match (&me_start, &me_end) {
                (Some(a), Some(b)) => me.cpu_percent(a, b),
                _ => 0.0,
            },
            runqueue_wait_percent: match (&me_start, &me_end) {
                (Some(a), Some(b)) => me.runqueue_percent(a, b),
                _ => 0.0,
            },
            rss_kib: me_end.map_or(0, |s| s.rss_kib),
            threads: cfg.threads,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_average_start: m.load_average.0,
            load_average_end: m.load_average.1,
        };
        let ratio = |got: u64, want: u64| {
            if want == 0 {
                0.0
            } else {
                got as f64 / want as f64
            }
        };
        let edits_expected = get(&c.edits_expected);
        let edits_delivered = get(&c.edits_delivered);
        let chats_expected = get(&c.chats_expected);
        let chats_delivered = get(&c.chats_delivered);
        let per_s = |n: u64| n as f64 / m.active_s.max(1e-9);
        SwarmReport {
            kind: "swarm".to_owned(),
            addr: cfg.addr.to_string(),
            server_store: cfg.server_store.clone(),
            bots: cfg.bots,
            chunks: format!("{}x{}", cfg.width, cfg.height),
            spread: cfg.spread,
            chunk_radius: cfg.chunk_radius,
            move_hz: cfg.move_hz,
            edit_rate: cfg.edit_rate,
            chat_rate: cfg.chat_rate,
            chunk_rate: cfg.chunk_rate,
            duration_s: m.active_s,
            join_s: m.join_s,
            connected: players,
            connect_failures: get(&c.connect_failures),
            join_failures: get(&c.join_failures),
            disconnects: get(&c.disconnects),
            edits_to_everyone: m.everyone,
            edit_radius: cfg.edit_radius,
            edits: DeliveryReport {
                sent: get(&c.edits_sent),
                expected_deliveries: edits_expected,
                delivered: edits_delivered,
                delivery_ratio: ratio(edits_delivered, edits_expected),
                refused: get(&c.edits_refused),
                unmatched: get(&c.edits_unmatched),
                stale: get(&c.edits_stale),
                out_of_order: get(&c.edits_out_of_order),
                missing: get(&c.edits_missing),
                latency: ctx.edit_latency.summary(),
            },
            chat: DeliveryReport {
                sent: get(&c.chats_sent),
                expected_deliveries: chats_expected,
                delivered: chats_delivered,
                delivery_ratio: ratio(chats_delivered, chats_expected),
                refused: 0,
                unmatched: 0,
                stale: 0,
                out_of_order: 0,
                missing: 0,
                latency: ctx.chat_latency.summary(),
            },
            chunk_answers_join: ChunkReport {
                requests: get(&c.chunk_requests_join),
                latency: ctx.chunk_join.summary(),
            },
            chunk_answers_active: ChunkReport {
                requests: get(&c.chunk_requests_active),
                latency: ctx.chunk_active.summary(),
            },
            lines: LinesReport {
                out_per_s: per_s(end.lines_out - start.lines_out),
                in_per_s: per_s(lines_in_active),
                in_active: lines_in_active,
                in_bytes_per_s: per_s(end.bytes_in - start.bytes_in),
                out_total: get(&c.lines_out),
                in_total: get(&c.lines_in),
            },
            server,
            generator,
        }
    }
}

/// Deliveries of one kind of broadcast (edits or chat).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// Sent during the active phase.
    pub sent: u64,
    /// Receipts the server's interest rules call for.
    pub expected_deliveries: u64,
    /// Receipts matched to their send.
    pub delivered: u64,
    /// `delivered / expected_deliveries`.
    pub delivery_ratio: f64,
    /// Edits the server refused (echoed back to their author).
    pub refused: u64,
    /// Live `B` lines that were not a measured edit (other players'
    /// edits, or edits made before the active phase).
    pub unmatched: u64,
    /// `B` lines whose slot had been reused by a later edit.
    pub stale: u64,
    /// Edits received after a newer edit of the same author (each receiver
    /// checks the order of every author's edits; edits only).
    #[serde(default)]
    pub out_of_order: u64,
    /// Edits made but never received by a player who should have got
    /// them, per receiver and author (edits only).
    #[serde(default)]
    pub missing: u64,
    /// Send to receipt, over every receipt.
    pub latency: LatencySummary,
}

/// Chunk answers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChunkReport {
    /// Requests sent.
    pub requests: u64,
    /// `C,P,Q,KEY` sent to `C,P,Q` received.
    pub latency: LatencySummary,
}

/// Line rates, as the bots see them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LinesReport {
    /// Lines bots sent per second (into the server), active phase.
    pub out_per_s: f64,
    /// Lines bots received per second (out of the server), active phase.
    pub in_per_s: f64,
    /// Bytes bots received per second, active phase.
    pub in_bytes_per_s: f64,
    /// Lines sent over the whole run.
    pub out_total: u64,
    /// Lines received over the whole run.
    pub in_total: u64,
    /// Lines bots received during the active phase: the server's
    /// deliveries in the window its CPU is measured over.
    #[serde(default)]
    pub in_active: u64,
}

/// The server's resources, when it runs on this machine.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServerReport {
    /// CPU and memory.
    #[serde(flatten)]
    pub process: ProcessReport,
    /// `(rss_joined - rss_before) / players`, KiB.
    pub kib_per_player_joined: f64,
    /// `(rss_end - rss_before) / players`, KiB.
    pub kib_per_player_active: f64,
    /// CPU time the server used during the active phase, seconds
    /// (`/proc/PID/stat`, user + system).
    #[serde(default)]
    pub cpu_s_active: f64,
    /// `cpu_s_active` per line the bots received in the same window,
    /// nanoseconds: the server's cost of a delivered line, whatever the
    /// load generator manages to read.
    #[serde(default)]
    pub cpu_ns_per_line: f64,
}

/// The load generator's own resources (is it the bottleneck?).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GeneratorReport {
    /// CPU during the active phase, percent of one core.
    pub cpu_percent: f64,
    /// Runnable but waiting for a CPU during the active phase, percent of
    /// wall time summed over threads.
    pub runqueue_wait_percent: f64,
    /// Resident memory at the end, KiB.
    pub rss_kib: u64,
    /// Runtime worker threads.
    pub threads: usize,
    /// CPUs of the machine.
    pub cpus: usize,
    /// The machine's 1-minute load average when the active phase started
    /// (other work on the machine skews every figure).
    pub load_average_start: f64,
    /// ... and when it ended.
    pub load_average_end: f64,
}

/// The outcome of a swarm run (one JSON line).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SwarmReport {
    /// `"swarm"`.
    pub kind: String,
    /// The server.
    pub addr: String,
    /// The store of the server started for the run (`--spawn-server`);
    /// absent for a server given by address.
    #[serde(default)]
    pub server_store: Option<String>,
    /// Bots started.
    pub bots: u32,
    /// The chunk grid, `WxH`.
    pub chunks: String,
    /// How bots were spread.
    pub spread: Spread,
    /// Chunks requested around each bot on joining.
    pub chunk_radius: u32,
    /// `P` lines per bot per second.
    pub move_hz: f64,
    /// Edits per bot per second.
    pub edit_rate: f64,
    /// Chat lines per bot per second.
    pub chat_rate: f64,
    /// Chunk re-requests per bot per second.
    pub chunk_rate: f64,
    /// Length of the active phase, seconds.
    pub duration_s: f64,
    /// Time until every bot joined, seconds.
    pub join_s: f64,
    /// Bots connected and joined when the active phase started.
    pub connected: u64,
    /// Bots that could not connect.
    pub connect_failures: u64,
    /// Bots that connected but lost the connection before joining.
    pub join_failures: u64,
    /// Bots that lost their connection.
    pub disconnects: u64,
    /// Few enough players that every edit goes to everyone.
    pub edits_to_everyone: bool,
    /// The server's edit radius assumed for expected recipients.
    pub edit_radius: u32,
    /// Edit propagation to the other players.
    pub edits: DeliveryReport,
    /// Chat propagation (everyone, the author included).
    pub chat: DeliveryReport,
    /// Chunk answers while joining (all chunks of the radius at once).
    pub chunk_answers_join: ChunkReport,
    /// Chunk answers while active (one at a time, with the key).
    pub chunk_answers_active: ChunkReport,
    /// Line rates.
    pub lines: LinesReport,
    /// The server's CPU and memory (with `--server-pid` or
    /// `--spawn-server`).
    pub server: Option<ServerReport>,
    /// The load generator's CPU and memory.
    pub generator: GeneratorReport,
}

impl SwarmReport {
    /// A summary for people.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let l = |x: &LatencySummary| {
            format!(
                "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} samples)",
                x.p50_ms, x.p99_ms, x.max_ms, x.count
            )
        };
        let _ = writeln!(
            s,
            "swarm: {} bots over {} chunks ({:?}) on {}{}; {} joined in {:.1} s, {} connect failures, {} disconnects",
            self.bots,
            self.chunks,
            self.spread,
            self.addr,
            self.server_store
                .as_ref()
                .map_or_else(String::new, |store| format!(" ({store})")),
            self.connected,
            self.join_s,
            self.connect_failures,
            self.disconnects
        );
        let _ = writeln!(
            s,
            "  active {:.1} s: moves {} Hz, edits {}/s, chat {}/s, chunk re-requests {}/s per bot",
            self.duration_s, self.move_hz, self.edit_rate, self.chat_rate, self.chunk_rate
        );
        let e = &self.edits;
        let _ = writeln!(
            s,
            "  edits: {} sent, {}/{} deliveries ({:.4} %), {} refused, {} stale, {} out of order, {} missing; {} ({})",
            e.sent,
            e.delivered,
            e.expected_deliveries,
            100.0 * e.delivery_ratio,
            e.refused,
            e.stale,
            e.out_of_order,
            e.missing,
            l(&e.latency),
            if self.edits_to_everyone {
                "everyone gets every edit".to_owned()
            } else {
                format!("recipients within {} chunks", self.edit_radius)
            }
        );
        if self.chat.sent > 0 {
            let c = &self.chat;
            let _ = writeln!(
                s,
                "  chat: {} sent, {}/{} deliveries ({:.4} %); {}",
                c.sent,
                c.delivered,
                c.expected_deliveries,
                100.0 * c.delivery_ratio,
                l(&c.latency)
            );
        }
        let _ = writeln!(
            s,
            "  chunk answers: joining {} requests, {}; active {} requests, {}",
            self.chunk_answers_join.requests,
            l(&self.chunk_answers_join.latency),
            self.chunk_answers_active.requests,
            l(&self.chunk_answers_active.latency)
        );
        let _ = writeln!(
            s,
            "  lines: {:.0}/s to the server, {:.0}/s from it ({:.1} MB/s)",
            self.lines.out_per_s,
            self.lines.in_per_s,
            self.lines.in_bytes_per_s / 1e6
        );
        if let Some(server) = &self.server {
            let p = &server.process;
            let _ = writeln!(
                s,
                "  server: CPU {:.0} % of a core (waited for a CPU {:.0} %), {:.0} ns per delivered line ({:.2} s for {} lines); RSS {} KiB before, {} KiB joined ({:.1} KiB/player), {} KiB active ({:.1} KiB/player), peak {} KiB",
                p.cpu_percent,
                p.runqueue_wait_percent,
                server.cpu_ns_per_line,
                server.cpu_s_active,
                self.lines.in_active,
                p.rss_before_kib,
                p.rss_joined_kib,
                server.kib_per_player_joined,
                p.rss_end_kib,
                server.kib_per_player_active,
                p.rss_peak_kib
            );
        }
        let _ = writeln!(
            s,
            "  generator: CPU {:.0} % of a core (waited for a CPU {:.0} %, {} threads), RSS {} KiB; machine: {} CPUs, load average {:.1} -> {:.1}",
            self.generator.cpu_percent,
            self.generator.runqueue_wait_percent,
            self.generator.threads,
            self.generator.rss_kib,
            self.generator.cpus,
            self.generator.load_average_start,
            self.generator.load_average_end
        );
        s
    }
}
