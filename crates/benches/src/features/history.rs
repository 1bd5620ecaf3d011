//! Parts 2 and 3: what block history costs sustained edits, and rollback.
//!
//! **Cost.** The server flushes the edits it accepted as one batch, each
//! block with its neighbour mirrors and, when history is on, one
//! [`HistoryEntry`] per edit (author, address, old and new value) that the
//! store writes in the same transaction. Here batches of N block edits over
//! [`HOT_CHUNKS`] busy chunks (updates of rows written by a warm-up batch)
//! are applied back to back, alternately with and without their entries
//! (the order swapped every round so that neither side always goes first),
//! and edits per second of commit time are compared.
//!
//! **Rollback.** 10,000 changes by one author (80% blocks, 10% lights, 10%
//! signs, over ten chunks, in flush-sized batches mixed with another
//! author's changes), then [`craft_server::history::rollback`] of that
//! author since just before: the history query, the reads of the current
//! values, and the one restoring batch with its own entries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use craft_server::config::StoreUrl;
use craft_server::history::{RollbackRequest, entry_id};
use serde::Serialize;
use world_core::BlockStore;
use world_core::coords::{BlockPos, ChunkPos};
use world_core::store::{Author, Batch, Change, ChangeMeta, HistoryEntry};

use super::{FeaturesConfig, now_ms};
use crate::stores::{Usage, position, value};

/// Chunks the history-cost edits spread over.
pub const HOT_CHUNKS: usize = 20;

/// Chunks the rolled-back changes spread over.
pub const ROLLBACK_CHUNKS: usize = 10;

/// Changes per batch written before the rollback (a busy flush).
pub const ROLLBACK_BATCH: usize = 1_000;

/// The other author's changes per rolled-back author's batch.
const OTHER_PER_BATCH: usize = 200;

/// Part 2 on one store.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryCostReport {
    /// Label given on the command line.
    pub label: String,
    /// `BlockStore::backend`.
    pub backend: String,
    /// The URL, secrets hidden.
    pub url: String,
    /// `"ok"`, or `"unsupported"` for a store that keeps no history.
    pub status: &'static str,
    /// Block edits per batch (mirrors come on top).
    pub batch_edits: usize,
    /// Writes per batch, mirrors included.
    pub batch_writes: usize,
    /// Rounds made (one batch with entries and one without each).
    pub rounds: usize,
    /// Edits per second of commit time without history entries.
    pub without_edits_per_s: f64,
    /// Edits per second of commit time with them.
    pub with_edits_per_s: f64,
    /// `with / without` (1.0: history is free).
    pub ratio: f64,
    /// Median commit of a batch without entries, ms.
    pub without_median_ms: f64,
    /// Median commit of a batch with entries, ms.
    pub with_median_ms: f64,
    /// Store counters per 1,000 edits without entries.
    pub without_per_1000: Usage,
    /// Store counters per 1,000 edits with entries.
    pub with_per_1000: Usage,
}

/// Part 3 on one store.
#[derive(Clone, Debug, Serialize)]
pub struct RollbackStoreReport {
    /// Label given on the command line.
    pub label: String,
    /// `BlockStore::backend`.
    pub backend: String,
    /// The URL, secrets hidden.
    pub url: String,
    /// `"ok"`, or `"unsupported"` for a store that keeps no history.
    pub status: &'static str,
    /// Changes written by the author rolled back.
    pub changes: usize,
    /// Changes written by another author meanwhile (left alone).
    pub other_changes: usize,
    /// Seconds writing them (with their entries).
    pub write_s: f64,
    /// Entries the rollback found.
    pub found: usize,
    /// Positions it put back.
    pub restored: usize,
    /// Chunks its batch wrote (mirrors included).
    pub chunks: usize,
    /// The rollback, ms.
    pub rollback_ms: f64,
    /// Changes undone per second.
    pub changes_per_s: f64,
    /// Store counters of the rollback.
    pub usage: Usage,
}

fn author(name: &str) -> Author {
    Author {
        name: Arc::from(name),
        guest: false,
        addr: Some(Arc::from("192.0.2.7")),
    }
}

fn meta(user: &str, time_ms: i64) -> ChangeMeta {
    ChangeMeta {
        user: Some(Arc::from(user)),
        time_ms: Some(time_ms),
    }
}

/// A block edit as the server writes it: the value, its mirrors, and
/// (when `who` is given) its history entry.
fn block_edit(batch: &mut Batch, pos: BlockPos, old: i32, new: i32, who: Option<&Author>) {
    let time_ms = now_ms();
    let user: &str = who.map_or("bench", |a| &*a.name);
    batch.set_block(pos.chunk(), pos, new, meta(user, time_ms));
    for mirror in pos.mirror_chunks() {
        batch.set_block(mirror, pos, -new, meta(user, time_ms));
    }
    if let Some(author) = who {
        batch.record(HistoryEntry {
            id: entry_id(),
            time_ms,
            author: author.clone(),
            pos,
            change: Change::Block { old, new },
        });
    }
}

/// Batch `round` of the cost part: `n` edits over `hot`, values moving on
/// every round so that every edit really changes its block.
fn flush_batch(n: usize, round: usize, hot: &[ChunkPos], who: Option<&Author>) -> Batch {
    let mut batch = Batch::new();
    for k in 0..n {
        let chunk = hot[k % hot.len()];
        let pos = position(chunk, k / hot.len(), 30);
        block_edit(
            &mut batch,
            pos,
            value(k + round + 14),
            value(k + round),
            who,
        );
    }
    batch
}

fn unsupported_cost(label: &str, url: &StoreUrl, store: &dyn BlockStore) -> HistoryCostReport {
    HistoryCostReport {
        label: label.to_owned(),
        backend: store.backend().to_owned(),
        url: url.redacted(),
        status: "unsupported",
        batch_edits: 0,
        batch_writes: 0,
        rounds: 0,
        without_edits_per_s: 0.0,
        with_edits_per_s: 0.0,
        ratio: 0.0,
        without_median_ms: 0.0,
        with_median_ms: 0.0,
        without_per_1000: Usage::default(),
        with_per_1000: Usage::default(),
    }
}

/// Runs part 2 on `store`.
pub async fn cost(
    config: &FeaturesConfig,
    label: &str,
    url: &StoreUrl,
    store: &Arc<dyn BlockStore>,
) -> Result<HistoryCostReport, String> {
    if !store.keeps_history() {
        return Ok(unsupported_cost(label, url, &**store));
    }
    let hot: Vec<ChunkPos> = (0..HOT_CHUNKS)
        .map(|i| ChunkPos::new(310_000 + i as i32, 0))
        .collect();
    let n = config.history_batch.max(1);
    let who = author("bench-history");
    // Warm-up: the rows exist, every measured edit is an update.
    let warm = flush_batch(n, 0, &hot, None);
    store.apply(&warm).await.map_err(|e| e.to_string())?;
    let batch_writes = warm.len();

    let started = Instant::now();
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut usage = [Usage::default(), Usage::default()];
    let mut round = 0;
    while round < config.history_rounds.max(2)
        && (round < 2 || started.elapsed() < config.history_budget)
    {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for (i, with) in order.into_iter().enumerate() {
            let batch = flush_batch(n, 2 * round + i + 1, &hot, (with == 1).then_some(&who));
            let before = Usage::of(&**store);
            let t = Instant::now();
            store.apply(&batch).await.map_err(|e| e.to_string())?;
            times[with].push(t.elapsed());
            usage[with].add(&Usage::of(&**store).since(&before));
        }
        round += 1;
    }
    let rate = |t: &[Duration]| {
        let busy: f64 = t.iter().map(Duration::as_secs_f64).sum();
        (n * t.len()) as f64 / busy.max(1e-9)
    };
    let (without, with) = (rate(&times[0]), rate(&times[1]));
    Ok(HistoryCostReport {
        label: label.to_owned(),
        backend: store.backend().to_owned(),
        url: url.redacted(),
        status: "ok",
        batch_edits: n,
        batch_writes,
        rounds: round,
        without_edits_per_s: without,
        with_edits_per_s: with,
        ratio: with / without.max(1e-9),
        without_median_ms: super::median_ms(&times[0]),
        with_median_ms: super::median_ms(&times[1]),
        without_per_1000: usage[0].per(n * times[0].len(), 1000.0),
        with_per_1000: usage[1].per(n * times[1].len(), 1000.0),
    })
}

/// Change `i` of the rolled-back author over `chunks`: its position, and
/// what it writes (as one batch entry).
fn grief(batch: &mut Batch, chunks: &[ChunkPos], i: usize, who: &Author) {
    let chunk = chunks[i % chunks.len()];
    let j = i / chunks.len();
    let time_ms = now_ms();
    let record = |batch: &mut Batch, pos: BlockPos, change: Change| {
        batch.record(HistoryEntry {
            id: entry_id(),
            time_ms,
            author: who.clone(),
            pos,
            change,
        });
    };
    match i % 10 {
        // Blocks: placed in the air above the ground, at distinct places.
        0..=7 => {
            let pos = position(chunk, j, 40);
            block_edit(batch, pos, 0, value(i), Some(who));
        }
        // Lights and signs on blocks of the same chunk.
        8 => {
            let pos = position(chunk, j, 40);
            let w = (i % 15) as i32 + 1;
            batch.set_light(chunk, pos, w, meta(&who.name, time_ms));
            record(batch, pos, Change::Light { old: 0, new: w });
        }
        _ => {
            let pos = position(chunk, j, 40);
            let face = (i % 8) as i32;
            let text = format!("grief {i}");
            batch.set_sign(chunk, pos, face, &text, meta(&who.name, time_ms));
            record(
                batch,
                pos,
                Change::Sign {
                    face,
                    old: None,
                    new: Some(text),
                },
            );
        }
    }
}

/// Runs part 3 on `store`.
pub async fn rollback(
    config: &FeaturesConfig,
    label: &str,
    url: &StoreUrl,
    store: &Arc<dyn BlockStore>,
) -> Result<RollbackStoreReport, String> {
    let mut report = RollbackStoreReport {
        label: label.to_owned(),
        backend: store.backend().to_owned(),
        url: url.redacted(),
        status: "unsupported",
        changes: 0,
        other_changes: 0,
        write_s: 0.0,
        found: 0,
        restored: 0,
        chunks: 0,
        rollback_ms: 0.0,
        changes_per_s: 0.0,
        usage: Usage::default(),
    };
    if !store.keeps_history() {
        return Ok(report);
    }
    let chunks: Vec<ChunkPos> = (0..ROLLBACK_CHUNKS)
        .map(|i| ChunkPos::new(320_000 + 2 * i as i32, 0))
        .collect();
    let griefer = author("griefer");
    let builder = author("builder");
    let n = config.rollback_changes;
    let since_ms = now_ms() - 1;
    let started = Instant::now();
    let mut other = 0;
    let mut i = 0;
    while i < n {
        let mut batch = Batch::new();
        for _ in 0..ROLLBACK_BATCH.min(n - i) {
            grief(&mut batch, &chunks, i, &griefer);
            i += 1;
        }
        for k in 0..OTHER_PER_BATCH {
            let chunk = chunks[k % chunks.len()];
            let pos = position(chunk, other / chunks.len(), 60);
            block_edit(&mut batch, pos, 0, value(other), Some(&builder));
            other += 1;
        }
        store.apply(&batch).await.map_err(|e| e.to_string())?;
    }
    report.write_s = started.elapsed().as_secs_f64();
    report.changes = n;
    report.other_changes = other;

    let request = RollbackRequest {
        author: Some(griefer.name.to_string()),
        since_ms,
        area: None,
        by: Author::user("operator"),
        now_ms: now_ms(),
    };
    let before = Usage::of(&**store);
    let t = Instant::now();
    let done = craft_server::history::rollback(&**store, &request)
        .await
        .map_err(|e| e.to_string())?;
    let took = t.elapsed();
    report.usage = Usage::of(&**store).since(&before);
    report.status = "ok";
    report.found = done.found;
    report.restored = done.restored;
    report.chunks = done.chunks.len();
    report.rollback_ms = took.as_secs_f64() * 1e3;
    report.changes_per_s = done.found as f64 / took.as_secs_f64().max(1e-9);
    if done.found != n {
        return Err(format!(
            "rollback found {} changes of {n} made by the author",
            done.found
        ));
    }
    Ok(report)
}

/// A summary of part 2 for people.
pub fn human_cost(results: &[HistoryCostReport]) -> String {
    let mut out = String::new();
    for r in results {
        if r.status != "ok" {
            out.push_str(&format!("{}: history {}\n", r.label, r.status));
            continue;
        }
        out.push_str(&format!(
            "{}: batches of {} edits: without history {:.0} edits/s, with {:.0} edits/s (x{:.2}, {} rounds)\n",
            r.label, r.batch_edits, r.without_edits_per_s, r.with_edits_per_s, r.ratio, r.rounds
        ));
    }
    out
}

/// A summary of part 3 for people.
pub fn human_rollback(results: &[RollbackStoreReport]) -> String {
    let mut out = String::new();
    for r in results {
        if r.status != "ok" {
            out.push_str(&format!("{}: rollback {}\n", r.label, r.status));
            continue;
        }
        out.push_str(&format!(
            "{}: rollback of {} changes: {:.0} ms ({} restored, {} chunks written)\n",
            r.label, r.found, r.rollback_ms, r.restored, r.chunks
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_batches_carry_one_entry_per_edit() {
        let hot: Vec<ChunkPos> = (0..HOT_CHUNKS)
            .map(|i| ChunkPos::new(i as i32, 0))
            .collect();
        let who = author("a");
        let with = flush_batch(1_000, 3, &hot, Some(&who));
        let without = flush_batch(1_000, 3, &hot, None);
        assert_eq!(with.history().len(), 1_000);
        assert!(without.history().is_empty());
        assert_eq!(with.len(), without.len());
        assert!(with.len() > 1_000, "mirrors come along");
        with.validate().expect("valid");
        for e in with.history() {
            e.validate().expect("valid entry");
        }
    }
}
