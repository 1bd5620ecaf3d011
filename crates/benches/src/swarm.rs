//! `craft-bench swarm`: many bot players against one server.
//!
//! # Phases
//!
//! 1. **Join**: bots connect spread over `ramp`, each sends `V,1`, `A,,`,
//!    one `P` inside its home chunk and `C,P,Q,0` for every chunk within
//!    `chunk_radius`, and waits for the answers. The orchestrator waits for
//!    every bot (or `join_timeout`), lets the server settle and samples its
//!    memory: "joined" is every bot connected and idle.
//! 2. **Active** (`duration`): bots move (`P` at `move_hz`, inside their
//!    home chunk), edit (`edit_rate` a second), chat (`chat_rate`) and
//!    re-request nearby chunks with their key (`chunk_rate`). Only edits
//!    made in this phase are measured; the server's CPU is measured over it.
//! 3. **Drain** (`drain`): bots stop sending (a bot whose last edit placed a
//!    block removes it, unmeasured, so the world is left as found) and keep
//!    reading, so that late deliveries still count.
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

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant as TokioInstant;
use tracing::{info, warn};
use world_core::coords::{BlockPos, CHUNK_SIZE, ChunkPos};

use crate::histogram::{Histogram, LatencySummary};
use crate::layout::{Layout, SplitMix64, Spread};
use crate::lines::{self, Line};
use crate::procfs::{Process, ProcessReport, Sample};

/// Marks a ring slot whose last edit was the unmeasured clean-up removal.
const CLEANUP: u64 = u64::MAX;
/// Send times kept per bot for chat lines.
const CHAT_RING: usize = 64;
/// Read buffer per bot; server lines are far shorter.
const READ_BUFFER: usize = 16 * 1024;
/// Height bots report in `P` lines (anything works; the server only uses
/// it to rank nearest players).
const BOT_Y: f32 = 40.0;

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
    /// Runtime worker threads (reported only).
    pub threads: usize,
}

const JOINING: u8 = 0;
const ACTIVE: u8 = 1;
const DRAINING: u8 = 2;
const DONE: u8 = 3;

/// Who should receive an edit.
#[derive(Debug)]
struct Expectation {
    /// Few players: everyone else gets every edit.
    everyone: Option<u64>,
    /// Bots within `edit_radius` of each grid chunk (author included).
    near: Vec<u64>,
    /// Bots connected when the active phase started.
    players: u64,
    /// Which bots those are: only they act and only their receipts count
    /// (a bot that joins late would skew both sides).
    members: Vec<bool>,
}

impl Expectation {
    fn member(&self, bot: u32) -> bool {
        self.members.get(bot as usize).copied().unwrap_or(false)
    }
}

#[derive(Debug, Default)]
struct Counters {
    lines_in: AtomicU64,
    bytes_in: AtomicU64,
    lines_out: AtomicU64,
    edits_sent: AtomicU64,
    edits_expected: AtomicU64,
    edits_delivered: AtomicU64,
    edits_refused: AtomicU64,
    edits_unmatched: AtomicU64,
    edits_stale: AtomicU64,
    chats_sent: AtomicU64,
    chats_expected: AtomicU64,
    chats_delivered: AtomicU64,
    chunk_requests_join: AtomicU64,
    chunk_requests_active: AtomicU64,
    connected: AtomicU64,
    joined: AtomicU64,
    join_settled: AtomicU64,
    connect_failures: AtomicU64,
    join_failures: AtomicU64,
    disconnects: AtomicU64,
}

struct Ctx {
    cfg: SwarmConfig,
    layout: Layout,
    epoch: Instant,
    phase: AtomicU8,
    /// Per bot, `ring_len` slots of `((send_ns + 1) << 8) | w`.
    edit_sent: Box<[AtomicU64]>,
    /// Per bot, [`CHAT_RING`] slots of `send_ns + 1`.
    chat_sent: Box<[AtomicU64]>,
    alive: Box<[AtomicBool]>,
    expect: OnceLock<Expectation>,
    counters: Counters,
    edit_latency: Histogram,
    chat_latency: Histogram,
    chunk_join: Histogram,
    chunk_active: Histogram,
}

impl Ctx {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }
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
    let bots = cfg.bots as usize;
    let server = cfg.server_pid.map(Process::pid);
    let me = Process::current();
    let sample = |p: &Option<Process>| -> Option<Sample> {
        p.as_ref().and_then(|p| match p.sample() {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "cannot sample the server");
                None
            }
        })
    };
    let ctx = Arc::new(Ctx {
        edit_sent: (0..bots * layout.ring_len())
            .map(|_| AtomicU64::new(0))
            .collect(),
        chat_sent: (0..bots * CHAT_RING).map(|_| AtomicU64::new(0)).collect(),
        alive: (0..bots).map(|_| AtomicBool::new(false)).collect(),
        layout,
        cfg: cfg.clone(),
        epoch: Instant::now(),
        phase: AtomicU8::new(JOINING),
        expect: OnceLock::new(),
        counters: Counters::default(),
        edit_latency: Histogram::new(),
        chat_latency: Histogram::new(),
        chunk_join: Histogram::new(),
        chunk_active: Histogram::new(),
    });
    let mut peak_rss = 0u64;
    let before = sample(&server);
    if let Some(s) = &before {
        peak_rss = s.rss_kib;
    }

    // --- join ---
    info!(bots = cfg.bots, addr = %cfg.addr, "joining");
    let join_started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for bot in 0..cfg.bots {
        let ctx = ctx.clone();
        tasks.spawn(async move { run_bot(ctx, bot).await });
    }
    let c = &ctx.counters;
    let deadline = join_started + cfg.ramp + cfg.join_timeout;
    let mut last_log = Instant::now();
    while c.join_settled.load(Ordering::Acquire) < u64::from(cfg.bots) && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(s) = sample(&server) {
            peak_rss = peak_rss.max(s.rss_kib);
        }
        if last_log.elapsed() >= Duration::from_secs(5) {
            last_log = Instant::now();
            info!(
                connected = c.connected.load(Ordering::Relaxed),
                joined = c.joined.load(Ordering::Relaxed),
                failed = c.connect_failures.load(Ordering::Relaxed),
                "joining"
            );
        }
    }
    let join_s = join_started.elapsed().as_secs_f64();
    let joined = c.joined.load(Ordering::Acquire);
    if joined == 0 {
        ctx.phase.store(DONE, Ordering::Release);
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
    tokio::time::sleep(cfg.settle).await;
    let joined_sample = sample(&server);
    if let Some(s) = &joined_sample {
        peak_rss = peak_rss.max(s.rss_kib);
    }

    // --- active ---
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
    let load_start = crate::procfs::load_average();
    let start_server = sample(&server);
    let start_me = me.sample().ok();
    let start_counts = Snapshot::take(c);
    let active_started = Instant::now();
    ctx.phase.store(ACTIVE, Ordering::Release);
    info!(
        players,
        duration = ?cfg.duration,
        "active: moving, editing, chatting"
    );
    let mut last_log = Instant::now();
    let mut last_counts = start_counts;
    while active_started.elapsed() < cfg.duration {
        let left = cfg.duration.saturating_sub(active_started.elapsed());
        tokio::time::sleep(left.min(Duration::from_millis(500))).await;
        if let Some(s) = sample(&server) {
            peak_rss = peak_rss.max(s.rss_kib);
        }
        if last_log.elapsed() >= Duration::from_secs(5) {
            let now = Snapshot::take(c);
            let secs = last_log.elapsed().as_secs_f64();
            last_log = Instant::now();
            info!(
                in_per_s = ((now.lines_in - last_counts.lines_in) as f64 / secs) as u64,
                out_per_s = ((now.lines_out - last_counts.lines_out) as f64 / secs) as u64,
                edits_delivered = now.edits_delivered,
                disconnects = c.disconnects.load(Ordering::Relaxed),
                "active"
            );
            last_counts = now;
        }
    }
    let active_s = active_started.elapsed().as_secs_f64();
    let end_counts = Snapshot::take(c);
    let end_server = sample(&server);
    let end_me = me.sample().ok();
    if let Some(s) = &end_server {
        peak_rss = peak_rss.max(s.rss_kib);
    }

    // --- drain ---
    ctx.phase.store(DRAINING, Ordering::Release);
    tokio::time::sleep(cfg.drain).await;
    ctx.phase.store(DONE, Ordering::Release);
    let stop_deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(stop_deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            _ = &mut stop_deadline => {
                warn!(left = tasks.len(), "bots did not stop in time; aborting them");
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }

    let server_report = match (&server, &before, &joined_sample, &end_server) {
        (Some(p), Some(before), joined, Some(end)) => {
            let cpu = match &start_server {
                Some(start) => p.cpu_percent(start, end),
                None => 0.0,
            };
            let joined_kib = joined.map_or(0, |s| s.rss_kib);
            let per = |kib: u64| {
                if players == 0 {
                    0.0
                } else {
                    (kib as f64 - before.rss_kib as f64) / players as f64
                }
            };
            Some(ServerReport {
                process: ProcessReport {
                    pid: cfg.server_pid,
                    cpu_percent: cpu,
                    runqueue_wait_percent: match &start_server {
                        Some(start) => p.runqueue_percent(start, end),
                        None => 0.0,
                    },
                    rss_before_kib: before.rss_kib,
                    rss_joined_kib: joined_kib,
                    rss_end_kib: end.rss_kib,
                    rss_peak_kib: peak_rss,
                },
                kib_per_player_joined: per(joined_kib),
                kib_per_player_active: per(end.rss_kib),
            })
        }
        _ => None,
    };
    let generator = GeneratorReport {
        cpu_percent: match (&start_me, &end_me) {
            (Some(a), Some(b)) => me.cpu_percent(a, b),
            _ => 0.0,
        },
        runqueue_wait_percent: match (&start_me, &end_me) {
            (Some(a), Some(b)) => me.runqueue_percent(a, b),
            _ => 0.0,
        },
        rss_kib: end_me.map_or(0, |s| s.rss_kib),
        threads: cfg.threads,
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average_start: load_start,
        load_average_end: crate::procfs::load_average(),
    };
    let ratio = |got: u64, want: u64| {
        if want == 0 {
            0.0
        } else {
            got as f64 / want as f64
        }
    };
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let edits_expected = load(&c.edits_expected);
    let edits_delivered = load(&c.edits_delivered);
    let chats_expected = load(&c.chats_expected);
    let chats_delivered = load(&c.chats_delivered);
    let per_s = |n: u64| n as f64 / active_s.max(1e-9);
    Ok(SwarmReport {
        kind: "swarm".to_owned(),
        addr: cfg.addr.to_string(),
        bots: cfg.bots,
        chunks: format!("{}x{}", cfg.width, cfg.height),
        spread: cfg.spread,
        chunk_radius: cfg.chunk_radius,
        move_hz: cfg.move_hz,
        edit_rate: cfg.edit_rate,
        chat_rate: cfg.chat_rate,
        chunk_rate: cfg.chunk_rate,
        duration_s: active_s,
        join_s,
        connected: players,
        connect_failures: load(&c.connect_failures),
        join_failures: load(&c.join_failures),
        disconnects: load(&c.disconnects),
        edits_to_everyone: everyone.is_some(),
        edit_radius: cfg.edit_radius,
        edits: DeliveryReport {
            sent: load(&c.edits_sent),
            expected_deliveries: edits_expected,
            delivered: edits_delivered,
            delivery_ratio: ratio(edits_delivered, edits_expected),
            refused: load(&c.edits_refused),
            unmatched: load(&c.edits_unmatched),
            stale: load(&c.edits_stale),
            latency: ctx.edit_latency.summary(),
        },
        chat: DeliveryReport {
            sent: load(&c.chats_sent),
            expected_deliveries: chats_expected,
            delivered: chats_delivered,
            delivery_ratio: ratio(chats_delivered, chats_expected),
            refused: 0,
            unmatched: 0,
            stale: 0,
            latency: ctx.chat_latency.summary(),
        },
        chunk_answers_join: ChunkReport {
            requests: load(&c.chunk_requests_join),
            latency: ctx.chunk_join.summary(),
        },
        chunk_answers_active: ChunkReport {
            requests: load(&c.chunk_requests_active),
            latency: ctx.chunk_active.summary(),
        },
        lines: LinesReport {
            out_per_s: per_s(end_counts.lines_out - start_counts.lines_out),
            in_per_s: per_s(end_counts.lines_in - start_counts.lines_in),
            in_bytes_per_s: per_s(end_counts.bytes_in - start_counts.bytes_in),
            out_total: load(&c.lines_out),
            in_total: load(&c.lines_in),
        },
        server: server_report,
        generator,
    })
}

#[derive(Clone, Copy)]
struct Snapshot {
    lines_in: u64,
    lines_out: u64,
    bytes_in: u64,
    edits_delivered: u64,
}

impl Snapshot {
    fn take(c: &Counters) -> Self {
        Self {
            lines_in: c.lines_in.load(Ordering::Relaxed),
            lines_out: c.lines_out.load(Ordering::Relaxed),
            bytes_in: c.bytes_in.load(Ordering::Relaxed),
            edits_delivered: c.edits_delivered.load(Ordering::Relaxed),
        }
    }
}

/// A `B` line waiting to learn whether an `R` follows (live edit) or not
/// (part of a chunk answer).
#[derive(Clone, Copy)]
struct HeldBlock {
    chunk: ChunkPos,
    pos: BlockPos,
    w: i32,
    at_ns: u64,
}

struct Bot {
    id: u32,
    home: ChunkPos,
    x: f32,
    z: f32,
    rng: SplitMix64,
    out: Vec<u8>,
    /// Chunk requests waiting for their `C`, oldest first.
    pending: VecDeque<(ChunkPos, u64, bool)>,
    join_left: usize,
    keys: Vec<(ChunkPos, i64)>,
    held: Option<HeldBlock>,
    edits: u64,
    chats: u64,
    // Local tallies, added to the shared counters once per read.
    delivered: u64,
    chats_delivered: u64,
}

async fn run_bot(ctx: Arc<Ctx>, id: u32) {
    let cfg = &ctx.cfg;
    let slot = if cfg.bots > 1 {
        cfg.ramp.mul_f64(f64::from(id) / f64::from(cfg.bots))
    } else {
        Duration::ZERO
    };
    tokio::time::sleep_until(TokioInstant::from_std(ctx.epoch + slot)).await;
    let c = &ctx.counters;
    let stream =
        match tokio::time::timeout(Duration::from_secs(15), TcpStream::connect(cfg.addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(bot = id, error = %e, "connect failed");
                c.connect_failures.fetch_add(1, Ordering::Relaxed);
                c.join_settled.fetch_add(1, Ordering::Release);
                return;
            }
            Err(_) => {
                c.connect_failures.fetch_add(1, Ordering::Relaxed);
                c.join_settled.fetch_add(1, Ordering::Release);
                return;
            }
        };
    let _ = stream.set_nodelay(true);
    c.connected.fetch_add(1, Ordering::Relaxed);
    let home = ctx.layout.home(id);
    let mut bot = Bot {
        id,
        home,
        x: (home.p * CHUNK_SIZE) as f32 + 16.0,
        z: (home.q * CHUNK_SIZE) as f32 + 16.0,
        rng: SplitMix64::new(cfg.seed ^ (u64::from(id) << 20) ^ 0x5eed),
        out: Vec::with_capacity(256),
        pending: VecDeque::new(),
        // Not joined until every chunk requested on joining is answered.
        join_left: 1,
        keys: Vec::new(),
        held: None,
        edits: 0,
        chats: 0,
        delivered: 0,
        chats_delivered: 0,
    };
    let result = bot.play(&ctx, stream).await;
    let joined = bot.join_left == 0;
    ctx.alive[id as usize].store(false, Ordering::Release);
    if let Err(e) = &result {
        tracing::debug!(bot = id, error = %e, "connection lost");
        if joined {
            c.disconnects.fetch_add(1, Ordering::Relaxed);
        } else {
            c.join_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
    if !joined {
        // The orchestrator stops waiting for it.
        c.join_settled.fetch_add(1, Ordering::Release);
    }
}

impl Bot {
    async fn play(&mut self, ctx: &Ctx, mut stream: TcpStream) -> std::io::Result<()> {
        let cfg = &ctx.cfg;
        let c = &ctx.counters;
        let (mut rd, mut wr) = stream.split();

        // Join: version, guest login, where we are, the chunks around us.
        self.out.clear();
        self.out.extend_from_slice(b"V,1\nA,,\n");
        self.push_position();
        let now = ctx.now_ns();
        let r = cfg.chunk_radius as i32;
        for dq in -r..=r {
            for dp in -r..=r {
                let chunk = ChunkPos::new(self.home.p + dp, self.home.q + dq);
                let _ = writeln!(Text(&mut self.out), "C,{},{},0", chunk.p, chunk.q);
                self.pending.push_back((chunk, now, true));
            }
        }
        self.join_left = self.pending.len();
        let sent = 3 + self.pending.len() as u64;
        c.chunk_requests_join
            .fetch_add(self.pending.len() as u64, Ordering::Relaxed);
        wr.write_all(&self.out).await?;
        c.lines_out.fetch_add(sent, Ordering::Relaxed);

        let mut buf = vec![0u8; READ_BUFFER];
        let mut filled = 0usize;
        let tick = Duration::from_millis(100);
        let sleep = tokio::time::sleep(tick);
        tokio::pin!(sleep);
        let move_every = period(cfg.move_hz);
        let edit_every = period(cfg.edit_rate);
        let chat_every = period(cfg.chat_rate);
        let chunk_every = period(cfg.chunk_rate);
        let mut next_move = None;
        let mut next_edit = None;
        let mut next_chat = None;
        let mut next_chunk = None;
        let mut started = false;
        let mut cleaned = false;
        loop {
            tokio::select! {
                read = rd.read(&mut buf[filled..]) => {
                    let n = read?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    let at = ctx.now_ns();
                    filled += n;
                    let (consumed, lines) = self.on_bytes(ctx, &buf[..filled], at);
                    c.lines_in.fetch_add(lines, Ordering::Relaxed);
                    c.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    if consumed > 0 {
                        buf.copy_within(consumed..filled, 0);
                        filled -= consumed;
                    } else if filled == buf.len() {
                        // No line end in a full buffer: not a Craft line.
                        filled = 0;
                    }
                    self.flush_tallies(c);
                }
                _ = &mut sleep => {
                    let phase = ctx.phase();
                    let now = Instant::now();
                    let mut next = now + tick;
                    self.out.clear();
                    let mut lines = 0u64;
                    match phase {
                        ACTIVE if ctx.expect.get().is_some_and(|e| e.member(self.id)) => {
                            if !started {
                                // Random phases: bots must not act in lockstep.
                                started = true;
                                let mut first = |every: Option<Duration>| {
                                    every.map(|d| now + d.mul_f64(self.rng.unit()))
                                };
                                next_move = first(move_every);
                                next_edit = first(edit_every);
                                next_chat = first(chat_every);
                                next_chunk = first(chunk_every);
                            }
                            if let (Some(at), Some(every)) = (next_move, move_every)
                                && now >= at {
                                    self.step();
                                    self.push_position();
                                    lines += 1;
                                    next_move = Some(at + every);
                                }
                            if let (Some(at), Some(every)) = (next_edit, edit_every)
                                && now >= at {
                                    self.push_edit(ctx);
                                    lines += 1;
                                    next_edit = Some(at + every);
                                }
                            if let (Some(at), Some(every)) = (next_chat, chat_every)
                                && now >= at {
                                    self.push_chat(ctx);
                                    lines += 1;
                                    next_chat = Some(at + every);
                                }
                            if let (Some(at), Some(every)) = (next_chunk, chunk_every)
                                && now >= at {
                                    self.push_chunk_request(ctx);
                                    lines += 1;
                                    next_chunk = Some(at + every);
                                }
                            for at in [next_move, next_edit, next_chat, next_chunk].into_iter().flatten() {
                                next = next.min(at);
                            }
                        }
                        DRAINING if !cleaned => {
                            cleaned = true;
                            if self.edits % 2 == 1 {
                                self.push_cleanup(ctx);
                                lines += 1;
                            }
                        }
                        DONE => return Ok(()),
                        _ => {}
                    }
                    if !self.out.is_empty() {
                        wr.write_all(&self.out).await?;
                        c.lines_out.fetch_add(lines, Ordering::Relaxed);
                    }
                    sleep.as_mut().reset(TokioInstant::from_std(next.max(Instant::now())));
                }
            }
        }
    }

    /// Handles every complete line of `bytes`; returns the bytes consumed
    /// and the number of lines.
    fn on_bytes(&mut self, ctx: &Ctx, bytes: &[u8], at: u64) -> (usize, u64) {
        let mut start = 0;
        let mut count = 0;
        while let Some(end) = bytes[start..].iter().position(|b| *b == b'\n') {
            let line = &bytes[start..start + end];
            start += end + 1;
            count += 1;
            self.on_line(ctx, line, at);
        }
        (start, count)
    }

    fn on_line(&mut self, ctx: &Ctx, line: &[u8], at: u64) {
        match lines::parse(line) {
            Line::Block { chunk, pos, w } => {
                // A B after a B: the first was part of a chunk answer.
                self.held = Some(HeldBlock {
                    chunk,
                    pos,
                    w,
                    at_ns: at,
                });
            }
            Line::Redraw(chunk) => {
                if let Some(held) = self.held.take()
                    && held.chunk == chunk
                {
                    self.on_live_block(ctx, held);
                }
            }
            other => {
                self.held = None;
                match other {
                    Line::ChunkDone(chunk) => self.on_chunk_done(ctx, chunk, at),
                    Line::Key(chunk, key) => self.on_key(chunk, key),
                    Line::Talk(text) => self.on_talk(ctx, text, at),
                    _ => {}
                }
            }
        }
    }

    fn on_live_block(&mut self, ctx: &Ctx, held: HeldBlock) {
        let c = &ctx.counters;
        if !ctx.expect.get().is_some_and(|e| e.member(self.id)) {
            // Not a measured recipient (joined late, or before the start).
            return;
        }
        if held.chunk != held.pos.chunk() {
            // A mirror for a neighbour chunk: bots never edit chunk edges.
            c.edits_unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(marker) = ctx.layout.decode(held.pos) else {
            c.edits_unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if marker.bot == self.id {
            // The server only echoes our own edit back when it refuses it.
            c.edits_refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let ring = ctx.layout.ring_len();
        let slot = marker.bot as usize * ring + marker.ring + usize::from(held.w == 0);
        let entry = ctx.edit_sent[slot].load(Ordering::Acquire);
        if entry == CLEANUP {
            return;
        }
        if entry == 0 {
            c.edits_unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let sent = (entry >> 8) - 1;
        let w = (entry & 0xff) as i32;
        if w != held.w || sent > held.at_ns {
            // The author has moved on to a later edit with the same slot.
            c.edits_stale.fetch_add(1, Ordering::Relaxed);
            return;
        }
        ctx.edit_latency.record_ns(held.at_ns - sent);
        self.delivered += 1;
    }

    fn on_chunk_done(&mut self, ctx: &Ctx, chunk: ChunkPos, at: u64) {
        let Some(i) = self.pending.iter().position(|(c, _, _)| *c == chunk) else {
            return;
        };
        let Some((_, sent, join)) = self.pending.remove(i) else {
            return;
        };
        let latency = at.saturating_sub(sent);
        if join {
            ctx.chunk_join.record_ns(latency);
            self.join_left = self.join_left.saturating_sub(1);
            if self.join_left == 0 {
                ctx.alive[self.id as usize].store(true, Ordering::Release);
                ctx.counters.joined.fetch_add(1, Ordering::Relaxed);
                ctx.counters.join_settled.fetch_add(1, Ordering::Release);
            }
        } else {
            ctx.chunk_active.record_ns(latency);
        }
    }

    fn on_key(&mut self, chunk: ChunkPos, key: i64) {
        match self.keys.iter_mut().find(|(c, _)| *c == chunk) {
            Some(entry) => entry.1 = entry.1.max(key),
            None => self.keys.push((chunk, key)),
        }
    }

    fn on_talk(&mut self, ctx: &Ctx, text: &[u8], at: u64) {
        let Some((bot, seq)) = lines::chat_marker(text) else {
            return;
        };
        if !ctx.expect.get().is_some_and(|e| e.member(self.id)) {
            return;
        }
        if bot >= ctx.cfg.bots {
            return;
        }
        let slot = bot as usize * CHAT_RING + (seq as usize % CHAT_RING);
        let entry = ctx.chat_sent[slot].load(Ordering::Acquire);
        if entry == 0 || entry - 1 > at {
            return;
        }
        ctx.chat_latency.record_ns(at - (entry - 1));
        self.chats_delivered += 1;
    }

    fn flush_tallies(&mut self, c: &Counters) {
        if self.delivered > 0 {
            c.edits_delivered
                .fetch_add(std::mem::take(&mut self.delivered), Ordering::Relaxed);
        }
        if self.chats_delivered > 0 {
            c.chats_delivered
                .fetch_add(std::mem::take(&mut self.chats_delivered), Ordering::Relaxed);
        }
    }

    /// A small random walk that never leaves the home chunk (so that the
    /// server keeps filing the bot under it).
    fn step(&mut self) {
        let lo_x = (self.home.p * CHUNK_SIZE) as f32 + 1.0;
        let lo_z = (self.home.q * CHUNK_SIZE) as f32 + 1.0;
        let span = (CHUNK_SIZE - 2) as f32;
        self.x = (self.x + (self.rng.unit() as f32 - 0.5)).clamp(lo_x, lo_x + span);
        self.z = (self.z + (self.rng.unit() as f32 - 0.5)).clamp(lo_z, lo_z + span);
    }

    fn push_position(&mut self) {
        let rx = (self.rng.unit() * std::f64::consts::TAU) as f32;
        let _ = writeln!(
            Text(&mut self.out),
            "P,{:.2},{BOT_Y:.2},{:.2},{rx:.2},0.00",
            self.x,
            self.z
        );
    }

    fn push_edit(&mut self, ctx: &Ctx) {
        let edit = ctx.layout.edit(self.id, self.edits);
        self.edits += 1;
        let slot = self.id as usize * ctx.layout.ring_len() + edit.ring;
        let sent = ctx.now_ns();
        ctx.edit_sent[slot].store(((sent + 1) << 8) | edit.w as u64, Ordering::Release);
        let c = &ctx.counters;
        c.edits_sent.fetch_add(1, Ordering::Relaxed);
        if let Some(expect) = ctx.expect.get() {
            let others = match expect.everyone {
                Some(n) => n,
                None => expect.near[ctx.layout.home_index(self.id)].saturating_sub(1),
            };
            c.edits_expected.fetch_add(others, Ordering::Relaxed);
        }
        let p = edit.pos;
        let _ = writeln!(Text(&mut self.out), "B,{},{},{},{}", p.x, p.y, p.z, edit.w);
    }

    /// Removes the block our last (placing) edit left; not measured.
    fn push_cleanup(&mut self, ctx: &Ctx) {
        let edit = ctx.layout.edit(self.id, self.edits);
        self.edits += 1;
        let slot = self.id as usize * ctx.layout.ring_len() + edit.ring;
        ctx.edit_sent[slot].store(CLEANUP, Ordering::Release);
        let p = edit.pos;
        let _ = writeln!(Text(&mut self.out), "B,{},{},{},{}", p.x, p.y, p.z, edit.w);
    }

    fn push_chat(&mut self, ctx: &Ctx) {
        let seq = self.chats;
        self.chats += 1;
        let slot = self.id as usize * CHAT_RING + (seq as usize % CHAT_RING);
        ctx.chat_sent[slot].store(ctx.now_ns() + 1, Ordering::Release);
        let c = &ctx.counters;
        c.chats_sent.fetch_add(1, Ordering::Relaxed);
        if let Some(expect) = ctx.expect.get() {
            // Chat goes to everyone, the author included.
            c.chats_expected
                .fetch_add(expect.players, Ordering::Relaxed);
        }
        let _ = writeln!(Text(&mut self.out), "T,bench:{}:{seq}", self.id);
    }

    fn push_chunk_request(&mut self, ctx: &Ctx) {
        let r = i64::from(ctx.cfg.chunk_radius);
        let side = (2 * r + 1) as u64;
        let dp = self.rng.below(side) as i64 - r;
        let dq = self.rng.below(side) as i64 - r;
        let chunk = ChunkPos::new(
            (i64::from(self.home.p) + dp) as i32,
            (i64::from(self.home.q) + dq) as i32,
        );
        let key = self
            .keys
            .iter()
            .find(|(c, _)| *c == chunk)
            .map_or(0, |(_, k)| *k);
        self.pending.push_back((chunk, ctx.now_ns(), false));
        ctx.counters
            .chunk_requests_active
            .fetch_add(1, Ordering::Relaxed);
        let _ = writeln!(Text(&mut self.out), "C,{},{},{key}", chunk.p, chunk.q);
    }
}

fn period(rate: f64) -> Option<Duration> {
    (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate))
}

/// `write!` into a byte buffer.
struct Text<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
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
            "swarm: {} bots over {} chunks ({:?}) on {}; {} joined in {:.1} s, {} connect failures, {} disconnects",
            self.bots,
            self.chunks,
            self.spread,
            self.addr,
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
            "  edits: {} sent, {}/{} deliveries ({:.4} %), {} refused, {} stale; {} ({})",
            e.sent,
            e.delivered,
            e.expected_deliveries,
            100.0 * e.delivery_ratio,
            e.refused,
            e.stale,
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
                "  server: CPU {:.0} % of a core (waited for a CPU {:.0} %); RSS {} KiB before, {} KiB joined ({:.1} KiB/player), {} KiB active ({:.1} KiB/player), peak {} KiB",
                p.cpu_percent,
                p.runqueue_wait_percent,
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
