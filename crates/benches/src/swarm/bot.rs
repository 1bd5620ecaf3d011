//! One bot player: a task that joins, acts on a schedule while the run is
//! active, and reads everything the server sends, recognising the lines it
//! measures.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant as TokioInstant;
use world_core::coords::{BlockPos, CHUNK_SIZE, ChunkPos};

use super::order::EditOrder;
use super::phase::Phase;
use super::state::{CHAT_RING, CLEANUP, Counters, Ctx};
use crate::layout::SplitMix64;
use crate::lines::{self, Line};
use crate::moves::Text;

/// Read buffer per bot; server lines are far shorter.
const READ_BUFFER: usize = 16 * 1024;
/// How often an idle bot looks at the phase.
const TICK: Duration = Duration::from_millis(100);

/// Connects bot `id` at its slot of the ramp and plays until the run is
/// done or the connection drops; keeps the run's join tallies right either
/// way. Returns the bot and the order in which it received edits (`None`:
/// it received none).
pub(super) async fn run_bot(ctx: Arc<Ctx>, id: u32) -> (u32, Option<EditOrder>) {
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
                return (id, None);
            }
            Err(_) => {
                c.connect_failures.fetch_add(1, Ordering::Relaxed);
                c.join_settled.fetch_add(1, Ordering::Release);
                return (id, None);
            }
        };
    let _ = stream.set_nodelay(true);
    c.connected.fetch_add(1, Ordering::Relaxed);
    let mut bot = Bot::new(&ctx, id);
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
    (id, bot.order)
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

/// One recurring action of the active phase.
#[derive(Clone, Copy)]
struct Timer {
    every: Option<Duration>,
    next: Option<Instant>,
}

impl Timer {
    fn per_second(rate: f64) -> Self {
        Self {
            every: (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate)),
            next: None,
        }
    }

    /// Fires first at a random point of its period: bots must not act in
    /// lockstep.
    fn start(&mut self, now: Instant, rng: &mut SplitMix64) {
        self.next = self.every.map(|d| now + d.mul_f64(rng.unit()));
    }

    /// Whether the action is due at `now`; if so, schedules the next one.
    fn due(&mut self, now: Instant) -> bool {
        match (self.next, self.every) {
            (Some(at), Some(every)) if now >= at => {
                self.next = Some(at + every);
                true
            }
            _ => false,
        }
    }
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
    /// Per author, the newest edit received (from the first one on).
    order: Option<EditOrder>,
    edits: u64,
    chats: u64,
    // Local tallies, added to the shared counters once per read.
    delivered: u64,
    chats_delivered: u64,
}

impl Bot {
    fn new(ctx: &Ctx, id: u32) -> Self {
        let home = ctx.layout.home(id);
        Self {
            id,
            home,
            x: (home.p * CHUNK_SIZE) as f32 + 16.0,
            z: (home.q * CHUNK_SIZE) as f32 + 16.0,
            rng: SplitMix64::new(ctx.cfg.seed ^ (u64::from(id) << 20) ^ 0x5eed),
            out: Vec::with_capacity(256),
            pending: VecDeque::new(),
            // Not joined until every chunk requested on joining is answered.
            join_left: 1,
            keys: Vec::new(),
            held: None,
            order: None,
            edits: 0,
            chats: 0,
            delivered: 0,
            chats_delivered: 0,
        }
    }

    async fn play(&mut self, ctx: &Ctx, mut stream: TcpStream) -> std::io::Result<()> {
        let cfg = &ctx.cfg;
        let c = &ctx.counters;
        let (mut rd, mut wr) = stream.split();

        let sent = self.push_join(ctx);
        wr.write_all(&self.out).await?;
        c.lines_out.fetch_add(sent, Ordering::Relaxed);

        let mut buf = vec![0u8; READ_BUFFER];
        let mut filled = 0usize;
        let sleep = tokio::time::sleep(TICK);
        tokio::pin!(sleep);
        let mut moves = Timer::per_second(cfg.move_hz);
        let mut edits = Timer::per_second(cfg.edit_rate);
        let mut chats = Timer::per_second(cfg.chat_rate);
        let mut chunks = Timer::per_second(cfg.chunk_rate);
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
                    let now = Instant::now();
                    let mut next = now + TICK;
                    self.out.clear();
                    let mut lines = 0u64;
                    match ctx.phase() {
                        Phase::Active if ctx.is_member(self.id) => {
                            if !started {
                                started = true;
                                for timer in [&mut moves, &mut edits, &mut chats, &mut chunks] {
                                    timer.start(now, &mut self.rng);
                                }
                            }
                            if moves.due(now) {
                                self.step();
                                self.push_position();
                                lines += 1;
                            }
                            if edits.due(now) {
                                self.push_edit(ctx);
                                lines += 1;
                            }
                            if chats.due(now) {
                                self.push_chat(ctx);
                                lines += 1;
                            }
                            if chunks.due(now) {
                                self.push_chunk_request(ctx);
                                lines += 1;
                            }
                            for at in [moves, edits, chats, chunks].iter().filter_map(|t| t.next) {
                                next = next.min(at);
                            }
                        }
                        Phase::Drain if !cleaned => {
                            cleaned = true;
                            if self.edits % 2 == 1 {
                                self.push_cleanup(ctx);
                                lines += 1;
                            }
                        }
                        Phase::Done => return Ok(()),
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

    /// Version, guest login, where we are and the chunks around us, into
    /// `out`; returns the number of lines.
    fn push_join(&mut self, ctx: &Ctx) -> u64 {
        self.out.clear();
        self.out.extend_from_slice(b"V,1\nA,,\n");
        self.push_position();
        let now = ctx.now_ns();
        let r = ctx.cfg.chunk_radius as i32;
        for dq in -r..=r {
            for dp in -r..=r {
                let chunk = ChunkPos::new(self.home.p + dp, self.home.q + dq);
                let _ = writeln!(Text(&mut self.out), "C,{},{},0", chunk.p, chunk.q);
                self.pending.push_back((chunk, now, true));
            }
        }
        self.join_left = self.pending.len();
        ctx.counters
            .chunk_requests_join
            .fetch_add(self.pending.len() as u64, Ordering::Relaxed);
        3 + self.pending.len() as u64
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
        if !ctx.is_member(self.id) {
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
        // The number was written before the send time we just read: it is
        // this edit's, unless the author reused the slot meanwhile.
        let n = ctx.edit_seq[slot].load(Ordering::Relaxed);
        let edit = ctx.layout.edit(marker.bot, n);
        if w != held.w || sent > held.at_ns || edit.pos != held.pos || edit.w != held.w {
            // The author has moved on to a later edit with the same slot.
            c.edits_stale.fetch_add(1, Ordering::Relaxed);
            return;
        }
        ctx.edit_latency.record_ns(held.at_ns - sent);
        self.delivered += 1;
        if self.order.is_none() {
            self.order = ctx.senders(self.id).map(EditOrder::new);
        }
        if let Some(order) = &mut self.order {
            order.receive(&ctx.layout, marker.bot, n);
        }
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
        if !ctx.is_member(self.id) {
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

    fn step(&mut self) {
        crate::moves::step(self.home, &mut self.x, &mut self.z, &mut self.rng);
    }

    fn push_position(&mut self) {
        crate::moves::write_position(&mut self.out, self.x, self.z, &mut self.rng);
    }

    fn push_edit(&mut self, ctx: &Ctx) {
        let n = self.edits;
        let edit = ctx.layout.edit(self.id, n);
        self.edits += 1;
        let slot = self.id as usize * ctx.layout.ring_len() + edit.ring;
        let sent = ctx.now_ns();
        ctx.edit_seq[slot].store(n, Ordering::Relaxed);
        ctx.edit_sent[slot].store(((sent + 1) << 8) | edit.w as u64, Ordering::Release);
        ctx.edits_made[self.id as usize].store(self.edits, Ordering::Relaxed);
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
