//! One bot of a fleet run: joins its server, asks for every chunk of the
//! grid, then moves (and, if an editor, places blocks) while the run is
//! active, and reads everything, timing each edit it receives.
//!
//! Every `B` line that arrives after the bot's chunk answers completed is
//! a delivery (bots ask for no chunk later): live over the bus, or shown
//! by the store sync. A delivery counts once per receiver and edit,
//! whichever path brought it first.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant as TokioInstant;
use world_core::coords::{BlockPos, CHUNK_SIZE, ChunkPos};

use super::marks::ITEM;
use super::{Ctx, Phase};
use crate::layout::SplitMix64;
use crate::lines::{self, Line};
use crate::moves::Text;

/// Read buffer per bot.
const READ_BUFFER: usize = 16 * 1024;
/// How often an idle bot looks at the phase.
const TICK: Duration = Duration::from_millis(100);

/// Connects bot `id` at its slot of the ramp and plays until the run is
/// done or its connection drops.
pub(super) async fn run_bot(ctx: Arc<Ctx>, id: u32) {
    let slot = if ctx.bots > 1 {
        ctx.ramp.mul_f64(f64::from(id) / f64::from(ctx.bots))
    } else {
        Duration::ZERO
    };
    tokio::time::sleep_until(TokioInstant::from_std(ctx.epoch + slot)).await;
    let addr = ctx.addrs[ctx.marks.server_of(id) as usize];
    let c = &ctx.counters;
    let stream = match tokio::time::timeout(Duration::from_secs(15), TcpStream::connect(addr)).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(bot = id, error = %e, "connect failed");
            c.join_settled.fetch_add(1, Ordering::Release);
            return;
        }
        Err(_) => {
            c.join_settled.fetch_add(1, Ordering::Release);
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let mut bot = Bot::new(&ctx, id);
    let result = bot.play(&ctx, stream).await;
    ctx.alive[id as usize].store(false, Ordering::Release);
    if let Err(e) = result {
        tracing::debug!(bot = id, error = %e, "connection lost");
        if bot.joined {
            c.disconnects.fetch_add(1, Ordering::Relaxed);
        }
    }
    if !bot.joined {
        c.join_settled.fetch_add(1, Ordering::Release);
    }
}

struct Bot {
    id: u32,
    server: u32,
    home: ChunkPos,
    x: f32,
    z: f32,
    rng: SplitMix64,
    out: Vec<u8>,
    /// Chunks whose answer has not completed yet.
    waiting: Vec<ChunkPos>,
    joined: bool,
    /// Edits received, by `editor * per_editor + n`.
    seen: HashSet<u64>,
    edits: u64,
}

impl Bot {
    fn new(ctx: &Ctx, id: u32) -> Self {
        let home = ctx.marks.home(id);
        Self {
            id,
            server: ctx.marks.server_of(id),
            home,
            x: (home.p * CHUNK_SIZE) as f32 + 16.0,
            z: (home.q * CHUNK_SIZE) as f32 + 16.0,
            rng: SplitMix64::new(ctx.seed ^ (u64::from(id) << 20) ^ 0xf1ee7),
            out: Vec::with_capacity(256),
            waiting: ctx.marks.chunks(),
            joined: false,
            seen: HashSet::new(),
            edits: 0,
        }
    }

    async fn play(&mut self, ctx: &Ctx, mut stream: TcpStream) -> std::io::Result<()> {
        let (mut rd, mut wr) = stream.split();
        self.out.clear();
        self.out.extend_from_slice(b"V,1\nA,,\n");
        self.push_position();
        for chunk in &self.waiting {
            let _ = writeln!(Text(&mut self.out), "C,{},{},0", chunk.p, chunk.q);
        }
        wr.write_all(&self.out).await?;

        let mut buf = vec![0u8; READ_BUFFER];
        let mut filled = 0usize;
        let sleep = tokio::time::sleep(TICK);
        tokio::pin!(sleep);
        let move_every = (ctx.move_hz > 0.0).then(|| Duration::from_secs_f64(1.0 / ctx.move_hz));
        let edit_every = (ctx.marks.is_editor(self.id) && ctx.edit_rate > 0.0)
            .then(|| Duration::from_secs_f64(1.0 / ctx.edit_rate));
        let mut next_move: Option<Instant> = None;
        let mut next_edit: Option<Instant> = None;
        let mut started = false;
        loop {
            tokio::select! {
                read = rd.read(&mut buf[filled..]) => {
                    let n = read?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    let at = ctx.now_ns();
                    filled += n;
                    let consumed = self.on_bytes(ctx, &buf[..filled], at);
                    if consumed > 0 {
                        buf.copy_within(consumed..filled, 0);
                        filled -= consumed;
                    } else if filled == buf.len() {
                        filled = 0;
                    }
                }
                _ = &mut sleep => {
                    let now = Instant::now();
                    let mut next = now + TICK;
                    self.out.clear();
                    match ctx.phase() {
                        Phase::Active if ctx.is_member(self.id) => {
                            if !started {
                                // Random first times: bots must not act in lockstep.
                                started = true;
                                next_move = move_every.map(|d| now + d.mul_f64(self.rng.unit()));
                                next_edit = edit_every.map(|d| now + d.mul_f64(self.rng.unit()));
                            }
                            if let (Some(at), Some(every)) = (next_move, move_every)
                                && now >= at
                            {
                                next_move = Some(at + every);
                                self.step();
                                self.push_position();
                            }
                            if let (Some(at), Some(every)) = (next_edit, edit_every)
                                && now >= at
                            {
                                next_edit = Some(at + every);
                                self.push_edit(ctx);
                            }
                            for at in [next_move, next_edit].into_iter().flatten() {
                                next = next.min(at);
                            }
                        }
                        Phase::Done => return Ok(()),
                        _ => {}
                    }
                    if !self.out.is_empty() {
                        wr.write_all(&self.out).await?;
                    }
                    sleep.as_mut().reset(TokioInstant::from_std(next.max(Instant::now())));
                }
            }
        }
    }

    /// Handles every complete line of `bytes`; returns the bytes consumed.
    fn on_bytes(&mut self, ctx: &Ctx, bytes: &[u8], at: u64) -> usize {
        let mut start = 0;
        while let Some(end) = bytes[start..].iter().position(|b| *b == b'\n') {
            let line = &bytes[start..start + end];
            start += end + 1;
            match lines::parse(line) {
                Line::Block { pos, w, .. } if self.joined && w == ITEM => {
                    self.on_block(ctx, pos, at);
                }
                Line::ChunkDone(chunk) if !self.joined => {
                    self.waiting.retain(|c| *c != chunk);
                    if self.waiting.is_empty() {
                        self.joined = true;
                        ctx.alive[self.id as usize].store(true, Ordering::Release);
                        ctx.counters.joined.fetch_add(1, Ordering::Relaxed);
                        ctx.counters.join_settled.fetch_add(1, Ordering::Release);
                    }
                }
                _ => {}
            }
        }
        start
    }

    fn on_block(&mut self, ctx: &Ctx, pos: BlockPos, at: u64) {
        let c = &ctx.counters;
        if !ctx.is_member(self.id) {
            return;
        }
        let Some(mark) = ctx.marks.decode(pos) else {
            c.unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if mark.editor == self.id {
            // Echoed back: the server refused it.
            c.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let key = u64::from(mark.editor) * ctx.marks.per_editor() + mark.n;
        let sent = ctx.sent[key as usize].load(Ordering::Acquire);
        if sent == 0 || sent - 1 > at {
            c.unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !self.seen.insert(key) {
            c.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let latency = at - (sent - 1);
        if ctx.marks.server_of(mark.editor) == self.server {
            ctx.same_latency.record_ns(latency);
            c.same_received.fetch_add(1, Ordering::Relaxed);
        } else {
            ctx.cross_latency.record_ns(latency);
            c.cross_received.fetch_add(1, Ordering::Relaxed);
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
        let Some(pos) = ctx.marks.position(self.id, n) else {
            // Out of positions: the run is longer than planned.
            return;
        };
        self.edits += 1;
        let key = u64::from(self.id) * ctx.marks.per_editor() + n;
        ctx.sent[key as usize].store(ctx.now_ns() + 1, Ordering::Release);
        let c = &ctx.counters;
        c.edits.fetch_add(1, Ordering::Relaxed);
        let server = self.server as usize;
        c.cross_expected
            .fetch_add(ctx.receivers_elsewhere(server), Ordering::Relaxed);
        c.same_expected
            .fetch_add(ctx.receivers_here(server), Ordering::Relaxed);
        let _ = writeln!(
            Text(&mut self.out),
            "B,{},{},{},{ITEM}",
            pos.x,
            pos.y,
            pos.z
        );
    }
}
