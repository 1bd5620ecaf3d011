//! `craft-bench swarm`: many bot players against one server.
//!
//! # Phases
//!
//! The orchestrator ([`run`]) walks through `phase::Phase`; every bot looks
//! at the current phase on each of its ticks.
//!
//! 1. **Join**: bots connect spread over `ramp`, each sends `V,1`, `A,,`,
//!    one `P` inside its home chunk and `C,P,Q,0` for every chunk within
//!    `chunk_radius`, and waits for the answers. The orchestrator waits for
//!    every bot (or `join_timeout`).
//! 2. **Settle** (`settle`): nobody acts; then the server's memory is
//!    sampled: "joined" is every bot connected and idle. The bots joined
//!    now are the run's players.
//! 3. **Active** (`duration`): bots move (`P` at `move_hz`, inside their
//!    home chunk), edit (`edit_rate` a second), chat (`chat_rate`) and
//!    re-request nearby chunks with their key (`chunk_rate`). Only edits
//!    made in this phase are measured; the server's CPU is measured over it.
//! 4. **Drain** (`drain`): bots stop sending (a bot whose last edit placed a
//!    block removes it, unmeasured, so the world is left as found) and keep
//!    reading, so that late deliveries still count.
//! 5. **Done**: bots hang up.
//!
//! Files: `bot` (one bot player), `phase`, `state` (what the bots and the
//! orchestrator share), `report` (the JSON line and the summary).
//!
//! # Measuring edits
//!
//! Each edit's position and value identify its author and its slot in the
//! author's ring of send times (see [`crate::layout`]); the author writes
//! the send time there just before sending. A receiver that gets the `B`
//! line looks the slot up: latency is receipt minus send, taken when the
//! read returned. A `B` counts as a live edit only when the next line is
//! the `R` of the same chunk: a chunk answer also carries `B` lines (the
//! stored blocks), but always follows them with another `B`, `L`, `S` or
//! `K`, never directly with `R`.
//!
//! Expected recipients follow the server's interest management (see
//! `craft-server`'s `Interest`): up to `broadcast_all_up_to` players, every
//! other player; above, every other player whose chunk is within
//! `edit_radius` chunks (Chebyshev) of the edited chunk. Bots never leave
//! their home chunk, so the count is exact as long as no bot drops.
//!
//! # Cost
//!
//! One task per bot, one fixed 16 KiB read buffer each, lines scanned in
//! place ([`crate::lines`]), counters and histograms updated with relaxed
//! atomics: 5,000 bots fit in one process next to the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tracing::{info, warn};
use world_core::coords::ChunkPos;

use crate::layout::{Layout, Spread};
use crate::procfs::{Process, Sample};

mod bot;
mod order;
mod phase;
mod report;
mod state;

pub use report::{
    ChunkReport, DeliveryReport, GeneratorReport, LinesReport, ServerReport, SwarmReport,
};

use order::EditOrder;
use phase::Phase;
use report::{Measured, ServerSamples};
use state::{Counters, Ctx, Expectation, Snapshot};

/// Everything a swarm run needs.
#[derive(Clone, Debug)]
pub struct SwarmConfig {
    /// The server.
    pub addr: SocketAddr,
    /// Bots.
    pub bots: u32,
    /// Chunks of the grid along x.
    pub width: u32,
    /// Chunks of the grid along z.
    pub height: u32,
    /// The grid's first chunk.
    pub origin: ChunkPos,
    /// How bots are spread over the grid.
    pub spread: Spread,
    /// Seed of every random choice.
    pub seed: u64,
    /// Chunks requested around the home chunk on joining (Chebyshev).
    pub chunk_radius: u32,
    /// `P` lines per bot per second.
    pub move_hz: f64,
    /// Edits per bot per second.
    pub edit_rate: f64,
    /// Chat lines per bot per second.
    pub chat_rate: f64,
    /// Chunk re-requests per bot per second while active.
    pub chunk_rate: f64,
    /// Length of the active phase.
    pub duration: Duration,
    /// Connections are spread over this long.
    pub ramp: Duration,
    /// Pause between joining and the active phase.
    pub settle: Duration,
    /// Reading on after the active phase.
    pub drain: Duration,
    /// Longest wait for every bot to join.
    pub join_timeout: Duration,
    /// The server's `interest.broadcast_all_up_to`.
    pub broadcast_all_up_to: usize,
    /// The server's `interest.edit_radius`.
    pub edit_radius: u32,
    /// The server's process, for CPU and memory (same machine only).
    pub server_pid: Option<u32>,
    /// The store of a server started for the run (reported only).
    pub server_store: Option<String>,
    /// Runtime worker threads (reported only).
    pub threads: usize,
}

/// Why a swarm could not run.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The layout is impossible.
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    /// A rate or duration is out of range.
    #[error("invalid setting: {0}")]
    Invalid(String),
    /// No bot could connect.
    #[error("no bot could connect to {0}")]
    NoConnection(SocketAddr),
}

/// Runs a swarm and reports.
pub async fn run(cfg: SwarmConfig) -> Result<SwarmReport, SwarmError> {
    for (name, v) in [
        ("move-hz", cfg.move_hz),
        ("edit-rate", cfg.edit_rate),
        ("chat-rate", cfg.chat_rate),
        ("chunk-rate", cfg.chunk_rate),
    ] {
        if !v.is_finite() || !(0.0..=1000.0).contains(&v) {
            return Err(SwarmError::Invalid(format!("{name} {v} not in 0..=1000")));
        }
    }
    let layout = Layout::new(
        cfg.bots, cfg.origin, cfg.width, cfg.height, cfg.spread, cfg.seed,
    )?;
    let mut server = ServerWatch::new(cfg.server_pid);
    let ctx = Arc::new(Ctx::new(cfg, layout));
    let before = server.sample();

    let mut tasks = JoinSet::new();
    let join_s = join(&ctx, &mut tasks, &mut server).await?;

    ctx.phase.set(Phase::Settle);
    tokio::time::sleep(ctx.cfg.settle).await;
    let joined = server.sample();
    let (players, everyone) = expect(&ctx);

    let window = active(&ctx, players, &mut server).await;

    ctx.phase.set(Phase::Drain);
    // scripts/profile-swarm.sh stops profiling at this line.
    info!(drain = ?ctx.cfg.drain, "draining: reading late deliveries");
    tokio::time::sleep(ctx.cfg.drain).await;
    ctx.phase.set(Phase::Done);
    let orders = stop(&mut tasks).await;
    tally_order(&ctx, orders);

    let server = match (server.process, before, window.server_end) {
        (Some(process), Some(before), Some(end)) => Some(ServerSamples {
            process,
            before,
            joined,
            start: window.server_start,
            end,
            peak_rss_kib: server.peak_rss_kib,
        }),
        _ => None,
    };
    Ok(SwarmReport::build(
        &ctx,
        Measured {
            join_s,
            players,
            everyone,
            active_s: window.active_s,
            counts: (window.start, window.end),
            server,
            me: window.me,
            load_average: window.load_average,
        },
    ))
}

/// The server's process, sampled now and then for its peak memory.
struct ServerWatch {
    process: Option<Process>,
    peak_rss_kib: u64,
}

impl ServerWatch {
    fn new(pid: Option<u32>) -> Self {
        Self {
            process: pid.map(Process::pid),
            peak_rss_kib: 0,
        }
    }

    fn sample(&mut self) -> Option<Sample> {
        let sample = match self.process.as_ref()?.sample() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot sample the server");
                return None;
            }
        };
        self.peak_rss_kib = self.peak_rss_kib.max(sample.rss_kib);
        Some(sample)
    }
}

/// [`Phase::Join`]: starts every bot and waits until each joined or gave
/// up (or `join_timeout` passed); returns how long that took, seconds.
async fn join(
    ctx: &Arc<Ctx>,
    tasks: &mut JoinSet<BotEnd>,
    server: &mut ServerWatch,
) -> Result<f64, SwarmError> {
    let cfg = &ctx.cfg;
    info!(bots = cfg.bots, addr = %cfg.addr, "joining");
    let started = Instant::now();
    for bot in 0..cfg.bots {
        tasks.spawn(bot::run_bot(ctx.clone(), bot));
    }
    let c = &ctx.counters;
    let deadline = started + cfg.ramp + cfg.join_timeout;
    let mut last_log = Instant::now();
    while c.join_settled.load(Ordering::Acquire) < u64::from(cfg.bots) && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.sample();
        if last_log.elapsed() >= Duration::from_secs(5) {
            last_log = Instant::now();
            info!(
                connected = Counters::get(&c.connected),
                joined = Counters::get(&c.joined),
                failed = Counters::get(&c.connect_failures),
                "joining"
            );
        }
    }
    let join_s = started.elapsed().as_secs_f64();
    let joined = c.joined.load(Ordering::Acquire);
    if joined == 0 {
        ctx.phase.set(Phase::Done);
        while tasks.join_next().await.is_some() {}
        return Err(SwarmError::NoConnection(cfg.addr));
    }
    if joined < u64::from(cfg.bots) {
        warn!(
            joined,
            bots = cfg.bots,
            "not every bot joined in time; measuring with those that did"
        );
    }
    Ok(join_s)
}

/// Fixes who takes part (the bots joined now) and so who should receive
/// each edit; returns the number of players and whether every edit goes to
/// everyone.
fn expect(ctx: &Ctx) -> (u64, bool) {
    let cfg = &ctx.cfg;
    let alive = |b: u32| ctx.alive[b as usize].load(Ordering::Acquire);
    let members: Vec<bool> = (0..cfg.bots).map(alive).collect();
    let players = members.iter().filter(|m| **m).count() as u64;
    let everyone = (players as usize <= cfg.broadcast_all_up_to).then(|| players - 1);
    let near = if everyone.is_some() {
        Vec::new()
    } else {
        ctx.layout
            .near_counts(cfg.edit_radius, |b| members[b as usize])
    };
    let _ = ctx.expect.set(Expectation {
        everyone,
        near,
        players,
        members,
    });
    (players, everyone.is_some())
}

/// What [`active`] measured.
struct Window {
    active_s: f64,
    start: Snapshot,
    end: Snapshot,
    server_start: Option<Sample>,
    server_end: Option<Sample>,
    me: (Process, Option<Sample>, Option<Sample>),
    load_average: (f64, f64),
}

/// [`Phase::Active`]: lets the bots act for `duration`, sampling the
/// server and the counters at both ends.
async fn active(ctx: &Ctx, players: u64, server: &mut ServerWatch) -> Window {
    let cfg = &ctx.cfg;
    let c = &ctx.counters;
    let me = Process::current();
    let load_start = crate::procfs::load_average();
    let server_start = server.sample();
    let me_start = me.sample().ok();
    let start = Snapshot::take(c);
    let started = Instant::now();
    ctx.phase.set(Phase::Active);
    // scripts/profile-swarm.sh starts profiling at this line.
    info!(
        players,
        duration = ?cfg.duration,
        "active: moving, editing, chatting"
    );
    let mut last_log = Instant::now();
    let mut last_counts = start;
    while started.elapsed() < cfg.duration {
        let left = cfg.duration.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(Duration::from_millis(500))).await;
        server.sample();
        if last_log.elapsed() >= Duration::from_secs(5) {
            let now = Snapshot::take(c);
            let secs = last_log.elapsed().as_secs_f64();
            last_log = Instant::now();
            info!(
                in_per_s = ((now.lines_in - last_counts.lines_in) as f64 / secs) as u64,
                out_per_s = ((now.lines_out - last_counts.lines_out) as f64 / secs) as u64,
                edits_delivered = now.edits_delivered,
                disconnects = Counters::get(&c.disconnects),
                "active"
            );
            last_counts = now;
        }
    }
    let active_s = started.elapsed().as_secs_f64();
    let end = Snapshot::take(c);
    let server_end = server.sample();
    let me_end = me.sample().ok();
    Window {
        active_s,
        start,
        end,
        server_start,
        server_end,
        me: (me, me_start, me_end),
        load_average: (load_start, crate::procfs::load_average()),
    }
}

/// What a bot task leaves: the bot, and the order in which it received
/// edits.
type BotEnd = (u32, Option<EditOrder>);

/// Waits for the bots to hang up after [`Phase::Done`]; aborts those that
/// take too long (their receipts are left out of the order check).
async fn stop(tasks: &mut JoinSet<BotEnd>) -> Vec<BotEnd> {
    let mut ends = Vec::with_capacity(tasks.len());
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => match next {
                Some(Ok(end)) => ends.push(end),
                Some(Err(e)) => warn!(error = %e, "a bot task failed"),
                None => break,
            },
            _ = &mut deadline => {
                warn!(left = tasks.len(), "bots did not stop in time; aborting them");
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
    ends
}

/// Checks, for every player, that it received each author's edits in order
/// and all of them; adds the out-of-order and missing edits to the
/// counters. Runs once every bot stopped, so the authors' edit counts are
/// final.
fn tally_order(ctx: &Ctx, ends: Vec<BotEnd>) {
    let made = |bot: u32| Counters::get(&ctx.edits_made[bot as usize]);
    let c = &ctx.counters;
    for (bot, order) in ends {
        if !ctx.is_member(bot) {
            continue;
        }
        // A player that received nothing missed everything.
        let Some(order) = order.or_else(|| ctx.senders(bot).map(EditOrder::new)) else {
            continue;
        };
        let tally = order.finish(&ctx.layout, bot, made);
        c.edits_out_of_order
            .fetch_add(tally.out_of_order, Ordering::Relaxed);
        c.edits_missing.fetch_add(tally.missing, Ordering::Relaxed);
    }
}
