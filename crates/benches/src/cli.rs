//! `craft-bench` command line.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use tracing::info;
use world_core::coords::ChunkPos;

use crate::features::{self, FeaturesConfig, Parts};
use crate::fleet::{self, FleetConfig};
use crate::idle::{self, IdleConfig};
use crate::layout::Spread;
use crate::spawn::{SpawnedServer, default_server_bin};
use crate::stores::{self, StoresConfig};
use crate::swarm::{self, SwarmConfig};
use craft_server::config::StoreUrl;

/// Load generator for the Craft world server.
///
/// Prints a summary on stderr and one JSON object on stdout.
#[derive(Debug, Parser)]
#[command(name = "craft-bench", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads of the generator's runtime.
    #[arg(long, default_value_t = 2, global = true)]
    pub threads: usize,

    /// Log filter when RUST_LOG is not set.
    #[arg(long, default_value = "info", global = true)]
    pub log: String,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// N bot players that join, request chunks, move, edit and chat;
    /// measures edit propagation, chunk answers, line rates and the
    /// server's CPU and memory.
    Swarm(SwarmArgs),
    /// N connections that only send `V,1`: server memory per idle
    /// connection.
    Idle(IdleArgs),
    /// The same work on each store (import, sustained durable edits, chunk
    /// loads, incremental sync), next to raw SQLite and PostgreSQL
    /// baselines.
    Stores(StoresArgs),
    /// K servers on one store joined by a fleet bus (or polling), bots
    /// spread over them: cross-server edit latency and bus traffic.
    Fleet(FleetArgs),
    /// What private builds, block history and migration cost on each
    /// store: draft publishes, history's cost on sustained edits, rollback,
    /// migration between every pair.
    Features(FeaturesArgs),
}

/// Which server to load, and whether to start it.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The server, HOST:PORT.
    #[arg(
        long,
        value_name = "HOST:PORT",
        required_unless_present = "spawn_server"
    )]
    pub addr: Option<String>,

    /// Start a `craft-server` on a free loopback port for the run (and stop
    /// it after); its CPU and memory are measured.
    #[arg(long, conflicts_with = "addr")]
    pub spawn_server: bool,

    /// The spawned server's store, e.g. sqlite:/tmp/bench.db (a fresh file
    /// per run keeps runs comparable).
    // Not `requires = "spawn_server"`: a flag's implicit `false` default
    // satisfies it. Without --spawn-server, --addr is required.
    #[arg(
        long,
        value_name = "URL",
        default_value = "memory:",
        conflicts_with = "addr"
    )]
    pub server_store: String,

    /// The craft-server binary for --spawn-server [default: next to this
    /// binary, else from PATH].
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,

    /// Extra argument for the spawned server (repeat), e.g.
    /// --server-arg=--commit-interval=0s.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub server_arg: Vec<String>,

    /// RUST_LOG of the spawned server.
    #[arg(long, value_name = "FILTER", default_value = "warn")]
    pub server_log: String,

    /// Where the spawned server's log goes [default: discarded].
    #[arg(long, value_name = "FILE")]
    pub server_log_file: Option<PathBuf>,

    /// Process id of a server on this machine, for its CPU (/proc/PID/stat)
    /// and memory (/proc/PID/status).
    #[arg(long, value_name = "PID", conflicts_with = "spawn_server")]
    pub server_pid: Option<u32>,

    /// Append the JSON result line to this file.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
}

/// `craft-bench swarm`.
#[derive(Debug, Args)]
pub struct SwarmArgs {
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,

    /// Bot players.
    #[arg(long, default_value_t = 100)]
    pub bots: u32,

    /// The grid of home chunks, WxH.
    #[arg(long, value_name = "WxH", default_value = "1x1", value_parser = parse_grid)]
    pub chunks: (u32, u32),

    /// The grid's first chunk, P,Q.
    #[arg(long, value_name = "P,Q", default_value = "0,0", value_parser = parse_chunk, allow_hyphen_values = true)]
    pub origin: ChunkPos,

    /// How bots are spread over the grid.
    #[arg(long, value_enum, default_value_t = Spread::Even)]
    pub spread: Spread,

    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Chunks requested around the home chunk on joining ((2R+1)^2).
    #[arg(long, value_name = "R", default_value_t = 1)]
    pub chunk_radius: u32,

    /// Position updates per bot per second.
    #[arg(long, value_name = "HZ", default_value_t = 10.0)]
    pub move_hz: f64,

    /// Block edits per bot per second (alternately place and remove).
    #[arg(long, value_name = "PER_S", default_value_t = 1.0)]
    pub edit_rate: f64,

    /// Chat lines per bot per second (every player receives every line).
    #[arg(long, value_name = "PER_S", default_value_t = 0.0)]
    pub chat_rate: f64,

    /// Chunk re-requests (with the bot's key) per bot per second while
    /// active.
    #[arg(long, value_name = "PER_S", default_value_t = 0.1)]
    pub chunk_rate: f64,

    /// Length of the measured (active) phase.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub duration: Duration,

    /// Spread the connections over this long [default: 2 ms per bot, at
    /// least 1 s].
    #[arg(long, value_parser = parse_duration)]
    pub ramp: Option<Duration>,

    /// Pause between "everyone joined" and the active phase.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub settle: Duration,

    /// Keep reading this long after the active phase (late deliveries).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub drain: Duration,

    /// Longest wait for every bot to join, after the ramp.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub join_timeout: Duration,

    /// The server's interest.broadcast_all_up_to (for expected recipients).
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub broadcast_all_up_to: usize,

    /// The server's interest.edit_radius (for expected recipients).
    #[arg(long, value_name = "CHUNKS", default_value_t = 15)]
    pub edit_radius: u32,
}

/// `craft-bench idle`.
#[derive(Debug, Args)]
pub struct IdleArgs {
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,

    /// Connections.
    #[arg(long, default_value_t = 1000)]
    pub bots: u32,

    /// Spread the connections over this long [default: 2 ms per
    /// connection, at least 1 s].
    #[arg(long, value_parser = parse_duration)]
    pub ramp: Option<Duration>,

    /// Wait after the last connection before sampling memory.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub settle: Duration,
}

/// `craft-bench stores`.
#[derive(Debug, Args)]
pub struct StoresArgs {
    /// A store to measure, LABEL=URL (repeat); each must be a fresh, empty
    /// world (a new file, schema, table or database).
    #[arg(long = "store", value_name = "LABEL=URL", required = true, value_parser = parse_labelled)]
    pub stores: Vec<(String, String)>,

    /// Block changes of the imported world.
    #[arg(long, default_value_t = 1_000_000)]
    pub import_edits: usize,

    /// Longest import per store (the rate is still measured when it stops
    /// early).
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    pub import_budget: Duration,

    /// Import at most N changes into the store LABEL (repeat), e.g.
    /// dynamodb=100000 for the emulator.
    #[arg(long, value_name = "LABEL=N", value_parser = parse_limit)]
    pub import_limit: Vec<(String, usize)>,

    /// The server's commit interval (a sustained rate must commit each
    /// interval's batch within it).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub commit_interval: Duration,

    /// Longest sustained-edits phase per store.
    #[arg(long, value_parser = parse_duration, default_value = "40s")]
    pub sustain_budget: Duration,

    /// Highest rate tried, edits/s.
    #[arg(long, default_value_t = 512_000)]
    pub max_rate: usize,

    /// Changes per chunk of the load measurements, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,20000")]
    pub load_sizes: Vec<usize>,

    /// Loads measured per size.
    #[arg(long, default_value_t = 50)]
    pub load_samples: usize,

    /// Longest time spent on the loads of one chunk size, and on the
    /// incremental-sync loads (at least two of each are made).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub load_budget: Duration,

    /// Incremental-sync samples.
    #[arg(long, default_value_t = 20)]
    pub sync_samples: usize,

    /// PostgreSQL URL for the COPY baseline (a schema is created there and
    /// dropped).
    #[arg(long, value_name = "URL")]
    pub pg_baseline: Option<String>,

    /// Directory for the plain-SQLite-inserts baseline's file.
    #[arg(long, value_name = "DIR")]
    pub sqlite_baseline: Option<PathBuf>,

    /// Append the JSON result line to this file.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
}

/// `craft-bench fleet`.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// The store every server shares: a fresh, empty PostgreSQL world
    /// (e.g. postgres://postgres@127.0.0.1/postgres?schema=fleet_1); the
    /// servers create their tables there, the bench nothing else.
    #[arg(long, value_name = "URL")]
    pub store: String,

    /// The fleet bus: nats://HOST:PORT, postgres, or none (polling).
    #[arg(long, value_name = "BUS", default_value = "none")]
    pub bus: String,

    /// NATS subject prefix of the run [default: a fresh one per run].
    #[arg(long, value_name = "NAME")]
    pub bus_namespace: Option<String>,

    /// Servers.
    #[arg(long, default_value_t = 2)]
    pub servers: u32,

    /// Bots over all servers (bot b plays on server b % servers).
    #[arg(long, default_value_t = 200)]
    pub bots: u32,

    /// Bots that place blocks (an even share of each server).
    #[arg(long, default_value_t = 20)]
    pub editors: u32,

    /// Blocks placed per editor per second.
    #[arg(long, value_name = "PER_S", default_value_t = 1.0)]
    pub edit_rate: f64,

    /// Position updates per bot per second.
    #[arg(long, value_name = "HZ", default_value_t = 1.0)]
    pub move_hz: f64,

    /// The grid of chunks every bot lives in (every bot asks for all of
    /// them), WxH.
    #[arg(long, value_name = "WxH", default_value = "2x2", value_parser = parse_grid)]
    pub chunks: (u32, u32),

    /// The grid's first chunk, P,Q.
    #[arg(long, value_name = "P,Q", default_value = "0,0", value_parser = parse_chunk, allow_hyphen_values = true)]
    pub origin: ChunkPos,

    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Length of the measured (active) phase.
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    pub duration: Duration,

    /// Pause between "everyone joined" and the active phase.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub pause: Duration,

    /// Keep reading this long after the active phase, so that edits shown
    /// by polling still arrive (commit_interval + sync_interval).
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub settle: Duration,

    /// Spread the connections over this long [default: 2 ms per bot, at
    /// least 1 s].
    #[arg(long, value_parser = parse_duration)]
    pub ramp: Option<Duration>,

    /// Longest wait for every bot to join, after the ramp.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub join_timeout: Duration,

    /// The craft-server binary [default: next to this binary, else from
    /// PATH].
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,

    /// Extra argument for every server (repeat), e.g.
    /// --server-arg=--sync-interval=1s.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub server_arg: Vec<String>,

    /// RUST_LOG of the servers.
    #[arg(long, value_name = "FILTER", default_value = "warn")]
    pub server_log: String,

    /// Directory for the servers' logs (server-N.log) [default: discarded].
    #[arg(long, value_name = "DIR")]
    pub server_log_dir: Option<PathBuf>,

    /// Append the JSON result line to this file.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
}

/// `craft-bench features`.
#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// A store to measure, LABEL=URL (repeat); each must be a fresh, empty
    /// world. Migration derives more fresh worlds from it: another SQLite
    /// file in the same directory, another schema, another DynamoDB table.
    #[arg(long = "store", value_name = "LABEL=URL", required = true, value_parser = parse_labelled)]
    pub stores: Vec<(String, String)>,

    /// Parts to run, comma separated: drafts, history, rollback, migrate,
    /// or all.
    #[arg(long, default_value = "all", value_parser = Parts::parse)]
    pub parts: Parts,

    /// Names the run in the JSON lines [default: the time].
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,

    /// Changes per draft, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    pub draft_sizes: Vec<usize>,

    /// Publishes measured per draft size (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub draft_reps: usize,

    /// No further publish of one size starts after this long (one always
    /// runs).
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    pub draft_budget: Duration,

    /// Publish drafts of at most N changes on the store LABEL (repeat).
    #[arg(long, value_name = "LABEL=N", value_parser = parse_limit)]
    pub draft_limit: Vec<(String, usize)>,

    /// Block edits per batch when measuring history's cost.
    #[arg(long, default_value_t = 5_000)]
    pub history_batch: usize,

    /// Rounds (a batch with history and one without) of that measurement.
    #[arg(long, default_value_t = 10)]
    pub history_rounds: usize,

    /// No further round starts after this long (two always run).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub history_budget: Duration,

    /// Changes by one author that the rollback undoes.
    #[arg(long, default_value_t = 10_000)]
    pub rollback_changes: usize,

    /// Chunks of the migrated world.
    #[arg(long, default_value_t = 200)]
    pub migrate_chunks: usize,

    /// Changes per chunk of the migrated world (mirrors come on top).
    #[arg(long, default_value_t = 250)]
    pub migrate_per_chunk: usize,

    /// Migrate a world of at most N chunks to and from the store LABEL
    /// (repeat), e.g. dynamodb=20 for the emulator.
    #[arg(long, value_name = "LABEL=N", value_parser = parse_limit)]
    pub migrate_limit: Vec<(String, usize)>,

    /// Append each part's JSON line to this file.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
}

/// A NATS subject prefix nobody else uses.
fn fresh_namespace() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("bench_{}_{nanos}", std::process::id())
}

fn parse_limit(s: &str) -> Result<(String, usize), String> {
    let (label, n) = parse_labelled(s)?;
    let n = n.parse().map_err(|e| format!("{s:?}: {e}"))?;
    Ok((label, n))
}

fn parse_labelled(s: &str) -> Result<(String, String), String> {
    let (label, url) = s
        .split_once('=')
        .filter(|(l, u)| !l.is_empty() && !u.is_empty() && !l.contains(':'))
        .ok_or_else(|| format!("{s:?}: expected LABEL=URL, e.g. sqlite=sqlite:/tmp/w.db"))?;
    Ok((label.to_owned(), url.to_owned()))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 2s, 1m)"))
}

fn parse_grid(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?}: expected WxH, e.g. 50x50"))?;
    let w: u32 = w.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
    let h: u32 = h.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
    if w == 0 || h == 0 || u64::from(w) * u64::from(h) > 1_000_000 {
        return Err(format!("{s:?}: between 1x1 and 1,000,000 chunks"));
    }
    Ok((w, h))
}

fn parse_chunk(s: &str) -> Result<ChunkPos, String> {
    let (p, q) = s
        .split_once(',')
        .ok_or_else(|| format!("{s:?}: expected P,Q"))?;
    let p: i32 = p.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
    let q: i32 = q.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
    Ok(ChunkPos::new(p, q))
}

fn default_ramp(bots: u32) -> Duration {
    Duration::from_millis(2 * u64::from(bots)).max(Duration::from_secs(1))
}

/// A server to run against: given, or started for the run.
struct Target {
    addr: SocketAddr,
    pid: Option<u32>,
    spawned: Option<SpawnedServer>,
}

impl ServerArgs {
    async fn target(&self, max_players: usize) -> Result<Target, String> {
        if self.spawn_server {
            let bin = self.server_bin.clone().unwrap_or_else(default_server_bin);
            let store = self.server_store.clone();
            let extra = self.server_arg.clone();
            let log = self.server_log.clone();
            let log_file = self.server_log_file.clone();
            let spawned = tokio::task::spawn_blocking(move || {
                SpawnedServer::start(&bin, &store, max_players, &extra, &log, log_file.as_deref())
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            return Ok(Target {
                addr: spawned.addr,
                pid: Some(spawned.pid()),
                spawned: Some(spawned),
            });
        }
        let addr = self.addr.as_deref().unwrap_or("127.0.0.1:4080");
        let resolved = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| format!("cannot resolve {addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("{addr} resolves to nothing"))?;
        Ok(Target {
            addr: resolved,
            pid: self.server_pid,
            spawned: None,
        })
    }

    fn emit(&self, human: &str, json: &impl Serialize) -> Result<(), String> {
        emit(self.json_out.as_deref(), human, json)
    }
}

/// Prints `human` on stderr and `json` as one line on stdout, also
/// appended to `json_out`.
fn emit(json_out: Option<&Path>, human: &str, json: &impl Serialize) -> Result<(), String> {
    let line = serde_json::to_string(json).map_err(|e| e.to_string())?;
    eprint!("{human}");
    println!("{line}");
    if let Some(path) = json_out {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        writeln!(file, "{line}").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

async fn stop(target: Target) {
    if let Some(spawned) = target.spawned {
        let _ = tokio::task::spawn_blocking(move || spawned.stop(Duration::from_secs(30))).await;
    }
}

impl Cli {
    /// Runs the chosen command.
    pub async fn run(self) -> Result<(), String> {
        match self.command {
            Command::Swarm(args) => {
                let target = args.server.target(args.bots as usize + 16).await?;
                let cfg = SwarmConfig {
                    addr: target.addr,
                    bots: args.bots,
                    width: args.chunks.0,
                    height: args.chunks.1,
                    origin: args.origin,
                    spread: args.spread,
                    seed: args.seed,
                    chunk_radius: args.chunk_radius,
                    move_hz: args.move_hz,
                    edit_rate: args.edit_rate,
                    chat_rate: args.chat_rate,
                    chunk_rate: args.chunk_rate,
                    duration: args.duration,
                    ramp: args.ramp.unwrap_or_else(|| default_ramp(args.bots)),
                    settle: args.settle,
                    drain: args.drain,
                    join_timeout: args.join_timeout,
                    broadcast_all_up_to: args.broadcast_all_up_to,
                    edit_radius: args.edit_radius,
                    server_pid: target.pid,
                    server_store: target
                        .spawned
                        .is_some()
                        .then(|| StoreUrl(args.server.server_store.clone()).to_string()),
                    threads: self.threads,
                };
                let result = swarm::run(cfg).await;
                stop(target).await;
                let report = result.map_err(|e| e.to_string())?;
                args.server.emit(&report.human(), &report)
            }
            Command::Idle(args) => {
                let target = args.server.target(args.bots as usize + 16).await?;
                let Some(pid) = target.pid else {
                    stop(target).await;
                    return Err(
                        "idle measures server memory: give --server-pid or --spawn-server".into(),
                    );
                };
                let cfg = IdleConfig {
                    addr: target.addr,
                    server_pid: pid,
                    bots: args.bots,
                    ramp: args.ramp.unwrap_or_else(|| default_ramp(args.bots)),
                    settle: args.settle,
                };
                info!(bots = cfg.bots, addr = %cfg.addr, "connecting idle clients");
                let result = idle::run(cfg).await;
                stop(target).await;
                let report = result.map_err(|e| e.to_string())?;
                args.server.emit(&report.human(), &report)
            }
            Command::Stores(args) => {
                let cfg = StoresConfig {
                    stores: args
                        .stores
                        .into_iter()
                        .map(|(label, url)| (label, StoreUrl(url)))
                        .collect(),
                    import_edits: args.import_edits,
                    import_budget: args.import_budget,
                    import_limits: args.import_limit.into_iter().collect(),
                    commit_interval: args.commit_interval,
                    sustain_budget: args.sustain_budget,
                    max_rate: args.max_rate.max(1000),
                    load_sizes: args.load_sizes,
                    load_samples: args.load_samples.max(1),
                    load_budget: args.load_budget,
                    sync_samples: args.sync_samples.max(1),
                    pg_baseline: args.pg_baseline,
                    sqlite_baseline: args.sqlite_baseline,
                };
                let report = stores::run(cfg).await?;
                emit(args.json_out.as_deref(), &report.human(), &report)
            }
            Command::Fleet(args) => {
                let cfg = FleetConfig {
                    server_bin: args.server_bin.unwrap_or_else(default_server_bin),
                    store: args.store,
                    bus: args.bus,
                    bus_namespace: args.bus_namespace.unwrap_or_else(fresh_namespace),
                    servers: args.servers,
                    bots: args.bots,
                    editors: args.editors,
                    edit_rate: args.edit_rate,
                    move_hz: args.move_hz,
                    origin: args.origin,
                    width: args.chunks.0,
                    height: args.chunks.1,
                    seed: args.seed,
                    ramp: args.ramp.unwrap_or_else(|| default_ramp(args.bots)),
                    join_timeout: args.join_timeout,
                    pause: args.pause,
                    duration: args.duration,
                    settle: args.settle,
                    server_args: args.server_arg,
                    server_log: args.server_log,
                    server_log_dir: args.server_log_dir,
                    threads: self.threads,
                };
                info!(servers = cfg.servers, bus = %cfg.bus, bots = cfg.bots, "fleet run");
                let report = fleet::run(cfg).await?;
                emit(args.json_out.as_deref(), &report.human(), &report)
            }
            Command::Features(args) => {
                let run_id = args.run_id.unwrap_or_else(|| {
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
                });
                let cfg = FeaturesConfig {
                    stores: args
                        .stores
                        .into_iter()
                        .map(|(label, url)| (label, StoreUrl(url)))
                        .collect(),
                    parts: args.parts,
                    run_id,
                    draft_sizes: args.draft_sizes,
                    draft_reps: args.draft_reps.max(1),
                    draft_budget: args.draft_budget,
                    draft_limits: args.draft_limit.into_iter().collect(),
                    history_batch: args.history_batch.max(1),
                    history_rounds: args.history_rounds.max(2),
                    history_budget: args.history_budget,
                    rollback_changes: args.rollback_changes,
                    migrate_chunks: args.migrate_chunks.max(1),
                    migrate_per_chunk: args.migrate_per_chunk.max(1),
                    migrate_limits: args.migrate_limit.into_iter().collect(),
                };
                let json_out = args.json_out;
                features::run(cfg, |human, json| emit(json_out.as_deref(), human, json)).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_swarm_command_line() {
        let cli = Cli::parse_from([
            "craft-bench",
            "swarm",
            "--addr",
            "127.0.0.1:4080",
            "--bots",
            "2000",
            "--chunks",
            "50x50",
            "--origin",
            "-25,-25",
            "--duration",
            "10s",
            "--spread",
            "random",
        ]);
        let Command::Swarm(args) = cli.command else {
            panic!("swarm expected");
        };
        assert_eq!(args.chunks, (50, 50));
        assert_eq!(args.origin, ChunkPos::new(-25, -25));
        assert_eq!(args.duration, Duration::from_secs(10));
        assert_eq!(args.spread, Spread::Random);
        assert_eq!(args.move_hz, 10.0);
        assert!(
            Cli::try_parse_from(["craft-bench", "swarm"]).is_err(),
            "needs a server"
        );
        assert!(
            Cli::try_parse_from(["craft-bench", "swarm", "--spawn-server", "--chunks", "0x3"])
                .is_err()
        );
        let cli = Cli::parse_from([
            "craft-bench",
            "swarm",
            "--spawn-server",
            "--server-store",
            "sqlite:/tmp/w.db",
        ]);
        let Command::Swarm(args) = cli.command else {
            panic!("swarm expected");
        };
        assert_eq!(args.server.server_store, "sqlite:/tmp/w.db");
        assert!(
            Cli::try_parse_from([
                "craft-bench",
                "swarm",
                "--addr",
                "127.0.0.1:4080",
                "--server-store",
                "memory:"
            ])
            .is_err(),
            "only a spawned server's store can be chosen"
        );
        assert!(
            Cli::try_parse_from([
                "craft-bench",
                "idle",
                "--spawn-server",
                "--server-arg=--commit-interval=0s"
            ])
            .is_ok()
        );
    }

    #[test]
    fn parses_a_stores_command_line() {
        let cli = Cli::parse_from([
            "craft-bench",
            "stores",
            "--store",
            "sqlite=sqlite:/tmp/w.db",
            "--store",
            "pg=postgres://u@h/db?schema=a",
            "--load-sizes",
            "10,20",
        ]);
        let Command::Stores(args) = cli.command else {
            panic!("stores expected");
        };
        assert_eq!(args.stores[1].1, "postgres://u@h/db?schema=a");
        assert_eq!(args.load_sizes, vec![10, 20]);
        assert_eq!(args.import_edits, 1_000_000);
        assert!(Cli::try_parse_from(["craft-bench", "stores"]).is_err());
        assert!(Cli::try_parse_from(["craft-bench", "stores", "--store", "sqlite:x.db"]).is_err());
    }

    #[test]
    fn parses_a_fleet_command_line() {
        let cli = Cli::parse_from([
            "craft-bench",
            "fleet",
            "--store",
            "postgres://postgres@127.0.0.1/postgres?schema=f",
            "--bus",
            "nats://127.0.0.1:4222",
            "--servers",
            "4",
            "--server-arg=--sync-interval=1s",
        ]);
        let Command::Fleet(args) = cli.command else {
            panic!("fleet expected");
        };
        assert_eq!(args.servers, 4);
        assert_eq!(args.bots, 200);
        assert_eq!(args.chunks, (2, 2));
        assert_eq!(args.server_arg, vec!["--sync-interval=1s".to_owned()]);
        assert!(
            Cli::try_parse_from(["craft-bench", "fleet"]).is_err(),
            "needs a store"
        );
        assert_ne!(fresh_namespace(), "");
    }

    #[test]
    fn parses_a_features_command_line() {
        let cli = Cli::parse_from([
            "craft-bench",
            "features",
            "--store",
            "sqlite=sqlite:/tmp/w.db",
            "--parts",
            "drafts,migrate",
            "--draft-sizes",
            "10,20",
            "--migrate-limit",
            "dynamodb=20",
        ]);
        let Command::Features(args) = cli.command else {
            panic!("features expected");
        };
        assert_eq!(args.draft_sizes, vec![10, 20]);
        assert!(args.parts.drafts && args.parts.migrate && !args.parts.history);
        assert_eq!(args.migrate_limit, vec![("dynamodb".to_owned(), 20)]);
        assert_eq!(args.rollback_changes, 10_000);
        assert!(Cli::try_parse_from(["craft-bench", "features"]).is_err());
        assert!(
            Cli::try_parse_from([
                "craft-bench",
                "features",
                "--store",
                "a=memory:",
                "--parts",
                "x"
            ])
            .is_err()
        );
    }

    #[test]
    fn ramps_scale_with_bots() {
        assert_eq!(default_ramp(20), Duration::from_secs(1));
        assert_eq!(default_ramp(5000), Duration::from_secs(10));
    }
}
