//! Lazy, batched, never-lost writes.
//!
//! Accepted edits go into the pending [`Batch`] at once; a flush takes the
//! whole batch to the store in one `apply` at most `commit_interval` after
//! its oldest edit (at once when a player waits for real keys, when the
//! batch grows past `limits.max_pending_edits`, or during the shutdown
//! drain). One flush runs at a time. A failed flush puts its batch back in
//! front of newer edits and is retried with backoff until it commits:
//! re-applying a batch is harmless, so an outcome the store could not
//! report (a timeout after commit) costs nothing.
//!
//! The retry is a state machine of the game loop (`retry_at`), not a
//! `backon` retry around the store call: the loop must keep serving players
//! while the store is down, and each retry must carry the edits accepted
//! since the last attempt (the batch is put back in front of them). A
//! `backon::Retryable` owns its future and sleeps inside it, so it cannot
//! do either; `backon` only supplies the delays.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tracing::{error, info, warn};
use world_core::StoreError;
use world_core::store::{ApplyReceipt, Batch};

use super::{Event, World};
use crate::config::Config;

/// Pauses between flush attempts while the store fails: 100 ms doubling to
/// 5 s, with jitter so that a fleet does not hammer a recovering store in
/// step.
const FLUSH_BACKOFF: ExponentialBuilder = ExponentialBuilder::new()
    .with_jitter()
    .with_min_delay(Duration::from_millis(100))
    .with_max_delay(Duration::from_secs(5))
    .without_max_times();

/// Flush bookkeeping.
#[derive(Debug)]
pub struct Flusher {
    /// Edits accepted since the last flush started.
    pub pending: Batch,
    /// When the oldest pending edit was accepted.
    pending_since: Option<Instant>,
    /// Generation of `pending`: its edits are tagged with it in the cache.
    pub generation: u64,
    in_flight: Option<InFlight>,
    retry_at: Option<Instant>,
    backoff: ExponentialBackoff,
    /// Someone waits for the pending edits to be stored.
    urgent: bool,
    /// The last flush failed.
    pub failing: bool,
}

#[derive(Debug)]
struct InFlight {
    generation: u64,
    batch: Arc<Batch>,
    since: Instant,
}

impl Flusher {
    /// Nothing pending.
    pub fn new() -> Self {
        Self {
            pending: Batch::new(),
            pending_since: None,
            generation: 1,
            in_flight: None,
            retry_at: None,
            backoff: FLUSH_BACKOFF.build(),
            urgent: false,
            failing: false,
        }
    }

    /// The batch being written, with its generation.
    pub fn in_flight(&self) -> Option<(u64, &Batch)> {
        self.in_flight.as_ref().map(|f| (f.generation, &*f.batch))
    }

    /// When the oldest unwritten edit was accepted.
    pub fn oldest(&self) -> Option<Instant> {
        match (&self.in_flight, self.pending_since) {
            (Some(f), Some(p)) => Some(f.since.min(p)),
            (Some(f), None) => Some(f.since),
            (None, p) => p,
        }
    }

    /// Edits held in memory: pending and being written.
    pub fn unwritten(&self) -> usize {
        self.pending.len() + self.in_flight.as_ref().map_or(0, |f| f.batch.len())
    }

    /// Nothing pending and nothing being written.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_none()
    }

    /// Notes that edits were added to `pending`.
    pub fn touched(&mut self) {
        if self.pending_since.is_none() && !self.pending.is_empty() {
            self.pending_since = Some(Instant::now());
        }
    }

    /// When the next flush should start, if one is due at a known time.
    pub fn deadline(&self, config: &Config) -> Option<Instant> {
        if self.in_flight.is_some() || self.pending.is_empty() {
            return None;
        }
        let due = if self.urgent || self.pending.len() >= config.limits.max_pending_edits {
            Instant::now()
        } else {
            self.pending_since? + config.commit_interval
        };
        Some(match self.retry_at {
            Some(retry) => due.max(retry),
            None => due,
        })
    }
}

impl World {
    /// Whether new edits must be refused: `limits.max_unwritten_edits`
    /// edits are held in memory (a long store outage). Accepted edits are
    /// never dropped, so the world turns read-only instead.
    pub(crate) fn read_only(&self) -> bool {
        self.flusher.unwritten() >= self.config.limits.max_unwritten_edits
    }

    /// Publishes how full the edit buffer is (`/readyz`, `/metrics`) and
    /// logs when the world turns read-only or writable again.
    pub(crate) fn note_fill(&mut self) {
        let unwritten = self.flusher.unwritten();
        self.metrics.pending_edits.set(unwritten as i64);
        let full = self.read_only();
        let was = self.health.edits_full.swap(full, Ordering::Relaxed);
        if full && !was {
            warn!(
                unwritten,
                limit = self.config.limits.max_unwritten_edits,
                "the store has not taken edits for a while: the world is read-only until it does"
            );
        } else if was && !full {
            info!(unwritten, "edits are accepted again");
        }
    }

    /// Records that edits were added to the pending batch.
    pub(crate) fn edited(&mut self) {
        self.note_fill();
        self.flusher.touched();
        if self.config.commit_interval.is_zero()
            || self.flusher.pending.len() >= self.config.limits.max_pending_edits
        {
            self.start_flush();
        }
    }

    /// Asks for the pending edits to be stored as soon as possible.
    pub(crate) fn flush_soon(&mut self) {
        self.flusher.urgent = true;
        self.start_flush();
    }

    pub(crate) fn start_flush_if_due(&mut self) {
        if self
            .flusher
            .deadline(&self.config)
            .is_some_and(|at| at <= Instant::now())
        {
            self.start_flush();
        }
    }

    /// Starts a flush of everything pending, unless one is running or the
    /// store is in backoff.
    pub(crate) fn start_flush(&mut self) {
        let f = &mut self.flusher;
        if f.in_flight.is_some() || f.pending.is_empty() {
            return;
        }
        if f.retry_at.is_some_and(|at| at > Instant::now()) {
            return;
        }
        let batch = Arc::new(std::mem::take(&mut f.pending));
        let generation = f.generation;
        f.generation += 1;
        let since = f.pending_since.take().unwrap_or_else(Instant::now);
        f.in_flight = Some(InFlight {
            generation,
            batch: batch.clone(),
            since,
        });
        f.urgent = false;
        let store = self.store.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = store.apply(&batch).await;
            let elapsed = started.elapsed();
            let _ = events
                .send(Event::Flushed {
                    generation,
                    batch,
                    result,
                    elapsed,
                })
                .await;
        });
    }

    pub(crate) fn on_flushed(
        &mut self,
        generation: u64,
        batch: Arc<Batch>,
        result: Result<ApplyReceipt, StoreError>,
        elapsed: Duration,
    ) {
        let since = self.flusher.in_flight.take().map(|f| f.since);
        match result {
            Ok(receipt) => {
                self.metrics.flush_seconds.observe(elapsed.as_secs_f64());
                if self.flusher.failing {
                    info!(edits = batch.len(), "store is back: pending edits written");
                }
                self.flusher.failing = false;
                self.flusher.retry_at = None;
                self.flusher.backoff = FLUSH_BACKOFF.build();
                self.apply_receipt(generation, &batch, &receipt);
                self.fleet_heads(receipt.heads());
            }
            Err(StoreError::KeyExhausted { p, q }) => {
                // This chunk can never take another key: keep everything else.
                let chunk = world_core::coords::ChunkPos::new(p, q);
                error!(%chunk, "chunk has used every key; its pending edits cannot be stored and are dropped");
                self.metrics.error("key_exhausted");
                let mut rest = Batch::new();
                for (c, changes) in batch.by_chunk() {
                    if c == chunk {
                        continue;
                    }
                    // Clears first: in a normal-form batch they precede the writes.
                    for cl in changes.clears {
                        rest.clear_decor(cl.chunk, cl.pos);
                    }
                    for b in changes.blocks {
                        rest.set_block(b.chunk, b.pos, b.w, b.meta.clone());
                    }
                    for l in changes.lights {
                        rest.set_light(l.chunk, l.pos, l.w, l.meta.clone());
                    }
                    for s in changes.signs {
                        rest.set_sign(
                            s.chunk,
                            s.pos,
                            s.face,
                            s.text.as_deref().unwrap_or(""),
                            s.meta.clone(),
                        );
                    }
                }
                self.requeue(rest, since);
            }
            Err(e) => {
                let kind = e.kind();
                self.metrics.error("flush");
                // The builder has no limit: the iterator never ends.
                let retry_in = self
                    .flusher
                    .backoff
                    .next()
                    .unwrap_or(Duration::from_secs(5));
                if !self.flusher.failing {
                    warn!(error = %e, kind, edits = batch.len(), "flush failed; keeping the edits and retrying");
                } else {
                    tracing::debug!(error = %e, ?retry_in, "flush failed again");
                }
                self.flusher.failing = true;
                self.flusher.retry_at = Some(Instant::now() + retry_in);
                let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
                self.requeue(batch, since);
            }
        }
        self.note_fill();
        // Players waiting for keys get their answer now, stored or not.
        self.wake(|w| w == super::Wait::Flush);
    }

    /// Puts a batch that was not stored back in front of newer edits.
    fn requeue(&mut self, mut batch: Batch, since: Option<Instant>) {
        let newer = std::mem::take(&mut self.flusher.pending);
        batch.extend(newer);
        self.flusher.pending = batch;
        self.flusher.pending_since = match (since, self.flusher.pending_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.flusher.pending.is_empty() {
            self.flusher.pending_since = None;
        }
    }

    /// Gives the flushed blocks their keys and advances the chunks' sync
    /// points when nobody else wrote in between.
    fn apply_receipt(&mut self, generation: u64, batch: &Batch, receipt: &ApplyReceipt) {
        for advance in &receipt.chunks {
            let Some(state) = self.chunks.ready_mut(advance.chunk) else {
                continue;
            };
            let positions = batch
                .for_chunk(advance.chunk)
                .blocks
                .into_iter()
                .map(|b| b.pos);
            state.mark_flushed(positions, generation, advance.after);
            if advance.before == state.synced {
                state.synced = advance.after;
            } else {
                // Another server wrote this chunk in between: fetch it.
                self.sync.dirty.insert(advance.chunk);
            }
        }
    }
}
