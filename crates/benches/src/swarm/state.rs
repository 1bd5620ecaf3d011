//! What the orchestrator and the bots share: the run's settings, the
//! authors' rings of send times, who is expected to receive what, and the
//! counters and histograms every bot feeds.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use super::SwarmConfig;
use super::phase::{Phase, PhaseCell};
use crate::histogram::Histogram;
use crate::layout::{Layout, Senders};

/// Marks a ring slot whose last edit was the unmeasured clean-up removal.
pub(super) const CLEANUP: u64 = u64::MAX;
/// Send times kept per bot for chat lines.
pub(super) const CHAT_RING: usize = 64;

/// Who should receive an edit.
#[derive(Debug)]
pub(super) struct Expectation {
    /// Few players: everyone else gets every edit.
    pub(super) everyone: Option<u64>,
    /// Bots within `edit_radius` of each grid chunk (author included).
    pub(super) near: Vec<u64>,
    /// Bots connected when the active phase started.
    pub(super) players: u64,
    /// Which bots those are: only they act and only their receipts count
    /// (a bot that joins late would skew both sides).
    pub(super) members: Vec<bool>,
}

impl Expectation {
    pub(super) fn member(&self, bot: u32) -> bool {
        self.members.get(bot as usize).copied().unwrap_or(false)
    }
}

/// Run-wide tallies, updated with relaxed atomics.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) lines_in: AtomicU64,
    pub(super) bytes_in: AtomicU64,
    pub(super) lines_out: AtomicU64,
    pub(super) edits_sent: AtomicU64,
    pub(super) edits_expected: AtomicU64,
    pub(super) edits_delivered: AtomicU64,
    pub(super) edits_refused: AtomicU64,
    pub(super) edits_unmatched: AtomicU64,
    pub(super) edits_stale: AtomicU64,
    pub(super) edits_out_of_order: AtomicU64,
    pub(super) edits_missing: AtomicU64,
    pub(super) chats_sent: AtomicU64,
    pub(super) chats_expected: AtomicU64,
    pub(super) chats_delivered: AtomicU64,
    pub(super) chunk_requests_join: AtomicU64,
    pub(super) chunk_requests_active: AtomicU64,
    pub(super) connected: AtomicU64,
    pub(super) joined: AtomicU64,
    pub(super) join_settled: AtomicU64,
    pub(super) connect_failures: AtomicU64,
    pub(super) join_failures: AtomicU64,
    pub(super) disconnects: AtomicU64,
}

impl Counters {
    pub(super) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Everything shared by one run.
pub(super) struct Ctx {
    pub(super) cfg: SwarmConfig,
    pub(super) layout: Layout,
    pub(super) epoch: Instant,
    pub(super) phase: PhaseCell,
    /// Per bot, `ring_len` slots of `((send_ns + 1) << 8) | w`.
    pub(super) edit_sent: Box<[AtomicU64]>,
    /// Beside each `edit_sent` slot: the number of the edit (counting the
    /// author's edits from 0), written before the send time.
    pub(super) edit_seq: Box<[AtomicU64]>,
    /// Per bot, the measured edits it made.
    pub(super) edits_made: Box<[AtomicU64]>,
    /// Per bot, [`CHAT_RING`] slots of `send_ns + 1`.
    pub(super) chat_sent: Box<[AtomicU64]>,
    pub(super) alive: Box<[AtomicBool]>,
    pub(super) expect: OnceLock<Expectation>,
    pub(super) counters: Counters,
    pub(super) edit_latency: Histogram,
    pub(super) chat_latency: Histogram,
    pub(super) chunk_join: Histogram,
    pub(super) chunk_active: Histogram,
}

impl Ctx {
    pub(super) fn new(cfg: SwarmConfig, layout: Layout) -> Self {
        let bots = cfg.bots as usize;
        Self {
            edit_sent: atomics(bots * layout.ring_len()),
            edit_seq: atomics(bots * layout.ring_len()),
            edits_made: atomics(bots),
            chat_sent: atomics(bots * CHAT_RING),
            alive: (0..bots).map(|_| AtomicBool::new(false)).collect(),
            layout,
            cfg,
            epoch: Instant::now(),
            phase: PhaseCell::new(Phase::Join),
            expect: OnceLock::new(),
            counters: Counters::default(),
            edit_latency: Histogram::new(),
            chat_latency: Histogram::new(),
            chunk_join: Histogram::new(),
            chunk_active: Histogram::new(),
        }
    }

    pub(super) fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(super) fn phase(&self) -> Phase {
        self.phase.get()
    }

    /// The bots whose edits `bot` should receive, numbered for an
    /// [`EditOrder`](super::order::EditOrder); `None` before the active phase.
    pub(super) fn senders(&self, bot: u32) -> Option<Senders> {
        let expect = self.expect.get()?;
        let radius = expect.everyone.is_none().then_some(self.cfg.edit_radius);
        Some(self.layout.senders(self.layout.home_index(bot), radius))
    }

    /// Whether `bot` acts and counts in the active phase.
    pub(super) fn is_member(&self, bot: u32) -> bool {
        self.expect.get().is_some_and(|e| e.member(bot))
    }
}

fn atomics(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// The line counters at one instant, for rates over a window.
#[derive(Clone, Copy, Debug)]
pub(super) struct Snapshot {
    pub(super) lines_in: u64,
    pub(super) lines_out: u64,
    pub(super) bytes_in: u64,
    pub(super) edits_delivered: u64,
}

impl Snapshot {
    pub(super) fn take(c: &Counters) -> Self {
        Self {
            lines_in: Counters::get(&c.lines_in),
            lines_out: Counters::get(&c.lines_out),
            bytes_in: Counters::get(&c.bytes_in),
            edits_delivered: Counters::get(&c.edits_delivered),
        }
    }
}
