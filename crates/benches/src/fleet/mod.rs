//! `craft-bench fleet`: K `craft-server` processes on one store, joined by
//! a fleet bus (or polling), and bots spread over them.
//!
//! # What it measures
//!
//! - **Cross-server edit latency**: from the moment a bot sent a `B` edit
//!   to its server to the moment a bot on a *different* server read the
//!   matching `B` line; p50/p99/max, and deliveries expected (every joined
//!   bot on another server, per edit) against received. Deliveries to bots
//!   of the editor's own server are reported apart (the only kind a one
//!   server fleet has).
//! - **Bus traffic**: per server, bus messages and payload bytes in and out
//!   per second over the active phase and the settle period, from the
//!   difference of two readings of its admin listener's `/metrics`
//!   (`craft_bus_messages_total`, `craft_bus_bytes_total`), plus drops and
//!   the peers' heartbeat lag.
//!
//! # Phases
//!
//! 1. **Servers**: starts K servers one after the other (the first creates
//!    the schema), each on a free loopback port with an admin listener,
//!    with `--store URL --bus BUS --bus-namespace NS`; with a bus, waits
//!    until each reports it connected and hears the other K-1.
//! 2. **Join**: bot `b` connects to server `b % K` over `ramp`, asks for
//!    every chunk of the grid and is joined once they are all answered.
//! 3. **Pause** (`pause`), then **Active** (`duration`): every bot moves
//!    inside its home chunk (`move_hz`, which loads the bus with positions
//!    as real players do); the `editors` (an even share of each server)
//!    place `edit_rate` blocks a second each, each at a position of its
//!    own ([`marks`]).
//! 4. **Settle** (`settle`): nobody sends; bots keep reading, so that edits
//!    shown by polling (`--bus none`: the writer's `commit_interval` plus
//!    the reader's `sync_interval`, up to 3 s by default) still count.
//! 5. **Done**: bots hang up and the servers are stopped (SIGTERM).
//!
//! The bench creates nothing but what the servers themselves create in
//! the store given (its schema) and, on NATS, subjects under a namespace
//! of its own per run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tracing::{info, warn};
use world_core::coords::ChunkPos;

use crate::histogram::Histogram;
use crate::spawn::{SpawnedServer, free_port};

mod bot;
pub mod marks;
mod report;
pub mod scrape;

pub use report::{Deliveries, FleetReport, ServerTraffic, Traffic};

use marks::Marks;
use scrape::BusMetrics;

/// Everything a fleet run needs.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// The `craft-server` binary.
    pub server_bin: PathBuf,
    /// The shared store (a fresh PostgreSQL schema per run).
    pub store: String,
    /// `--bus`: `none`, `postgres` or `nats://HOST:PORT`.
    pub bus: String,
    /// `--bus-namespace` (a fresh one per run).
    pub bus_namespace: String,
    /// Servers.
    pub servers: u32,
    /// Bots over all servers.
    pub bots: u32,
    /// Bots that edit.
    pub editors: u32,
    /// Blocks placed per editor per second.
    pub edit_rate: f64,
    /// Position updates per bot per second.
    pub move_hz: f64,
    /// The grid of chunks everyone lives in.
    pub origin: ChunkPos,
    /// Chunks along x.
    pub width: u32,
    /// Chunks along z.
    pub height: u32,
    /// Seed of the random choices.
    pub seed: u64,
    /// Connections are spread over this long.
    pub ramp: Duration,
    /// Longest wait for every bot to join, after the ramp.
    pub join_timeout: Duration,
    /// Pause between joining and the active phase.
    pub pause: Duration,
    /// Length of the active phase.
    pub duration: Duration,
    /// Reading on after the active phase (late deliveries).
    pub settle: Duration,
    /// Extra arguments for every server.
    pub server_args: Vec<String>,
    /// `RUST_LOG` of the servers.
    pub server_log: String,
    /// Directory for the servers' logs (`server-N.log`) [discarded].
    pub server_log_dir: Option<PathBuf>,
    /// Runtime worker threads (reported only).
    pub threads: usize,
}

/// The run's phase, shared with the bots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Join = 0,
    Pause = 1,
    Active = 2,
    Settle = 3,
    Done = 4,
}

/// Run-wide tallies.
#[derive(Debug, Default)]
struct Counters {
    joined: AtomicU64,
    join_settled: AtomicU64,
    disconnects: AtomicU64,
    edits: AtomicU64,
    cross_expected: AtomicU64,
    cross_received: AtomicU64,
    same_expected: AtomicU64,
    same_received: AtomicU64,
    duplicates: AtomicU64,
    unmatched: AtomicU64,
    refused: AtomicU64,
}

/// What the orchestrator and the bots share.
struct Ctx {
    epoch: Instant,
    bots: u32,
    ramp: Duration,
    seed: u64,
    move_hz: f64,
    edit_rate: f64,
    addrs: Vec<SocketAddr>,
    marks: Marks,
    phase: AtomicU8,
    alive: Vec<AtomicBool>,
    /// Members (bots joined when the active phase started).
    members: Vec<AtomicBool>,
    /// Members per server.
    members_on: Vec<AtomicU64>,
    /// Send time + 1 (ns since `epoch`) of every edit, by
    /// `editor * per_editor + n`; 0 while unsent.
    sent: Vec<AtomicU64>,
    counters: Counters,
    cross_latency: Histogram,
    same_latency: Histogram,
}

impl Ctx {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Join,
            1 => Phase::Pause,
            2 => Phase::Active,
            3 => Phase::Settle,
            _ => Phase::Done,
        }
    }

    fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    fn is_member(&self, bot: u32) -> bool {
        self.members[bot as usize].load(Ordering::Acquire)
    }

    /// Members on servers other than `server`.
    fn receivers_elsewhere(&self, server: usize) -> u64 {
        self.members_on
            .iter()
            .enumerate()
            .filter(|(s, _)| *s != server)
            .map(|(_, n)| n.load(Ordering::Relaxed))
            .sum()
    }

    /// Members on `server`, the author excluded.
    fn receivers_here(&self, server: usize) -> u64 {
        self.members_on[server]
            .load(Ordering::Relaxed)
            .saturating_sub(1)
    }
}

/// A server of the fleet and its admin listener.
struct Member {
    server: SpawnedServer,
    admin: SocketAddr,
}

/// Runs a fleet benchmark and reports.
pub async fn run(cfg: FleetConfig) -> Result<FleetReport, String> {
    for (name, v) in [("move-hz", cfg.move_hz), ("edit-rate", cfg.edit_rate)] {
        if !v.is_finite() || !(0.0..=100.0).contains(&v) {
            return Err(format!("{name} {v} not in 0..=100"));
        }
    }
    if cfg.servers == 0 || cfg.servers > 64 {
        return Err(format!("servers {} not in 1..=64", cfg.servers));
    }
    // Room for every edit the active phase can make, and a margin.
    let per_editor = (cfg.edit_rate * cfg.duration.as_secs_f64()).ceil() as u64 + 8;
    let marks = Marks::new(
        cfg.bots,
        cfg.servers,
        cfg.editors,
        (cfg.origin, cfg.width, cfg.height),
        per_editor,
    )?;
    let fleet = start_servers(&cfg).await?;
    let result = measure(&cfg, marks, &fleet).await;
    let stop: Vec<SpawnedServer> = fleet.into_iter().map(|m| m.server).collect();
    let _ = tokio::task::spawn_blocking(move || {
        for server in stop {
            server.stop(Duration::from_secs(30));
        }
    })
    .await;
    result
}

/// Starts the servers one after the other; with a bus, waits until each
/// is connected and hears the others.
async fn start_servers(cfg: &FleetConfig) -> Result<Vec<Member>, String> {
    let per_server = cfg.bots.div_ceil(cfg.servers) as usize + 16;
    let mut fleet = Vec::with_capacity(cfg.servers as usize);
    for i in 0..cfg.servers {
        let admin = free_port().map_err(|e| format!("cannot find a free port: {e}"))?;
        let mut extra = vec![
            "--admin-listen".to_owned(),
            admin.to_string(),
            "--bus".to_owned(),
            cfg.bus.clone(),
            "--bus-namespace".to_owned(),
            cfg.bus_namespace.clone(),
        ];
        extra.extend(cfg.server_args.iter().cloned());
        let bin = cfg.server_bin.clone();
        let store = cfg.store.clone();
        let log = cfg.server_log.clone();
        let log_file = cfg
            .server_log_dir
            .as_ref()
            .map(|dir| dir.join(format!("server-{i}.log")));
        let server = tokio::task::spawn_blocking(move || {
            SpawnedServer::start(&bin, &store, per_server, &extra, &log, log_file.as_deref())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("server {i}: {e}"))?;
        info!(server = i, game = %server.addr, %admin, bus = %cfg.bus, "fleet server started");
        fleet.push(Member { server, admin });
    }
    if cfg.bus != "none" {
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, member) in fleet.iter().enumerate() {
            loop {
                let m = scrape::read(member.admin).await.unwrap_or_default();
                if m.connected == Some(1) && m.peers.unwrap_or(0) >= i64::from(cfg.servers) - 1 {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "server {i}: bus not connected to all {} peers within 30 s \
                         (connected {:?}, peers {:?})",
                        cfg.servers - 1,
                        m.connected,
                        m.peers
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        info!(servers = cfg.servers, "bus connected everywhere");
    }
    Ok(fleet)
}

/// Joins the bots, runs the active phase and the settle period, and
/// builds the report.
async fn measure(cfg: &FleetConfig, marks: Marks, fleet: &[Member]) -> Result<FleetReport, String> {
    let slots = u64::from(marks.editors()) * marks.per_editor();
    let ctx = Arc::new(Ctx {
        epoch: Instant::now(),
        bots: cfg.bots,
        ramp: cfg.ramp,
        seed: cfg.seed,
        move_hz: cfg.move_hz,
        edit_rate: cfg.edit_rate,
        addrs: fleet.iter().map(|m| m.server.addr).collect(),
        marks,
        phase: AtomicU8::new(Phase::Join as u8),
        alive: (0..cfg.bots).map(|_| AtomicBool::new(false)).collect(),
        members: (0..cfg.bots).map(|_| AtomicBool::new(false)).collect(),
        members_on: (0..cfg.servers).map(|_| AtomicU64::new(0)).collect(),
        sent: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        counters: Counters::default(),
        cross_latency: Histogram::new(),
        same_latency: Histogram::new(),
    });

    // Join.
    info!(bots = cfg.bots, servers = cfg.servers, "joining");
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for bot in 0..cfg.bots {
        tasks.spawn(bot::run_bot(ctx.clone(), bot));
    }
    let c = &ctx.counters;
    let deadline = started + cfg.ramp + cfg.join_timeout;
    while c.join_settled.load(Ordering::Acquire) < u64::from(cfg.bots) && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let join_s = started.elapsed().as_secs_f64();
    let joined = c.joined.load(Ordering::Acquire);
    if joined == 0 {
        ctx.set_phase(Phase::Done);
        while tasks.join_next().await.is_some() {}
        return Err("no bot could join".into());
    }
    if joined < u64::from(cfg.bots) {
        warn!(
            joined,
            bots = cfg.bots,
            "not every bot joined in time; measuring with those that did"
        );
    }

    // Pause, then fix who takes part.
    ctx.set_phase(Phase::Pause);
    tokio::time::sleep(cfg.pause).await;
    for bot in 0..cfg.bots {
        if ctx.alive[bot as usize].load(Ordering::Acquire) {
            ctx.members[bot as usize].store(true, Ordering::Release);
            ctx.members_on[ctx.marks.server_of(bot) as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
    let players = ctx
        .members_on
        .iter()
        .map(|n| n.load(Ordering::Relaxed))
        .sum::<u64>();

    // Active.
    let before = read_all(fleet).await;
    let window_start = Instant::now();
    ctx.set_phase(Phase::Active);
    info!(players, duration = ?cfg.duration, "active: moving and editing");
    tokio::time::sleep(cfg.duration).await;
    let active_s = window_start.elapsed().as_secs_f64();

    // Settle.
    ctx.set_phase(Phase::Settle);
    info!(settle = ?cfg.settle, "settling: reading late deliveries");
    tokio::time::sleep(cfg.settle).await;
    let after = read_all(fleet).await;
    let window_s = window_start.elapsed().as_secs_f64();
    ctx.set_phase(Phase::Done);
    let stop_deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(stop_deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            _ = &mut stop_deadline => {
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }

    let servers = fleet
        .iter()
        .enumerate()
        .map(|(i, m)| {
            ServerTraffic::between(
                i,
                m.server.addr,
                &before[i],
                &after[i],
                window_s,
                ctx.members_on[i].load(Ordering::Relaxed),
            )
        })
        .collect::<Vec<_>>();
    let mut by_topic: BTreeMap<String, Traffic> = BTreeMap::new();
    for (i, _) in fleet.iter().enumerate() {
        for ((topic, direction), (m1, b1)) in &after[i].traffic {
            let (m0, b0) = before[i]
                .traffic
                .get(&(topic.clone(), direction.clone()))
                .copied()
                .unwrap_or_default();
            let t = by_topic.entry(topic.clone()).or_default();
            let (msgs, bytes) = (
                m1.saturating_sub(m0) as f64 / window_s,
                b1.saturating_sub(b0) as f64 / window_s,
            );
            if direction == "in" {
                t.messages_in_per_s += msgs;
                t.bytes_in_per_s += bytes;
            } else {
                t.messages_out_per_s += msgs;
                t.bytes_out_per_s += bytes;
            }
        }
    }
    Ok(FleetReport::build(
        cfg,
        &ctx,
        report::Measured {
            join_s,
            joined,
            players,
            active_s,
            window_s,
            servers,
            by_topic,
        },
    ))
}

/// Every server's bus metrics now (empty for one that does not answer).
async fn read_all(fleet: &[Member]) -> Vec<BusMetrics> {
    let mut out = Vec::with_capacity(fleet.len());
    for (i, m) in fleet.iter().enumerate() {
        out.push(match scrape::read(m.admin).await {
            Ok(metrics) => metrics,
            Err(e) => {
                warn!(server = i, error = %e, "cannot read the server's metrics");
                BusMetrics::default()
            }
        });
    }
    out
}
