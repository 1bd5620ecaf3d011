//! Part 1: publishing drafts of 100, 1,000 and 10,000 changes.
//!
//! A draft is 70% blocks, 20% lights and 10% signs, spread evenly over a
//! 2 × 2 square of chunks (so that blocks on the inner edges bring their
//! neighbour mirrors along), drafted on empty ground: every repetition uses
//! a region of its own, so each publish does the same work. `put_draft` is
//! timed too (a player's draft is stored as it is built; here in one call),
//! but the figure is `publish_draft`: the conflict check (one chunk read per
//! drafted chunk), one `apply` of the whole draft with its mirrors, and the
//! deletion of the stored draft. Its baseline, in the same run: a plain
//! `apply` of the same kind of batch on another fresh region.

use std::sync::Arc;
use std::time::Instant;

use craft_server::config::StoreUrl;
use serde::Serialize;
use world_core::BlockStore;
use world_core::coords::ChunkPos;
use world_core::store::{DraftChange, DraftEdit, draft_batch, publish_draft};

use super::{FeaturesConfig, median_ms, now_ms};
use crate::stores::{Quantiles, Usage, position, value};

/// Chunks a draft spans (a 2 × 2 square).
pub const DRAFT_CHUNKS: usize = 4;

/// First chunk column of the drafts' regions (far from the other parts).
const REGION_P: i32 = 300_000;

/// Publishes of one draft size.
#[derive(Clone, Debug, Serialize)]
pub struct DraftSizeReport {
    /// Changes in the draft.
    pub changes: usize,
    /// Why this size was not measured (a per-store limit), if it was not.
    pub skipped: Option<String>,
    /// Writes of the published batch (mirrors included).
    pub writes: usize,
    /// Publishes measured.
    pub reps: usize,
    /// `put_draft` of the whole draft, median, ms.
    pub put_ms: f64,
    /// `publish_draft`, median, ms.
    pub publish_ms: f64,
    /// `publish_draft` latencies.
    pub publish: Quantiles,
    /// The baseline: a plain `apply` of the same batch (a draft of the same
    /// shape on another fresh region, never stored as a draft), median, ms.
    pub apply_ms: f64,
    /// `publish_ms / apply_ms`: what the conflict check and the deletion
    /// of the draft add.
    pub publish_vs_apply: f64,
    /// Draft changes published per second (median publish).
    pub changes_per_s: f64,
    /// Store counters per publish.
    pub per_publish: Usage,
}

/// Part 1 on one store.
#[derive(Clone, Debug, Serialize)]
pub struct DraftStoreReport {
    /// Label given on the command line.
    pub label: String,
    /// `BlockStore::backend`.
    pub backend: String,
    /// The URL, secrets hidden.
    pub url: String,
    /// One entry per size.
    pub sizes: Vec<DraftSizeReport>,
}

/// The chunks of draft region `n`.
fn region(n: usize) -> Vec<ChunkPos> {
    let p = REGION_P + 3 * n as i32;
    vec![
        ChunkPos::new(p, 0),
        ChunkPos::new(p + 1, 0),
        ChunkPos::new(p, 1),
        ChunkPos::new(p + 1, 1),
    ]
}

/// A draft of `n` changes over `chunks`: 7 in 10 blocks, 2 lights, 1 sign,
/// each in a slot of its own.
pub fn draft_changes(chunks: &[ChunkPos], n: usize, time_ms: i64) -> Vec<DraftChange> {
    (0..n)
        .map(|i| {
            let chunk = chunks[i % chunks.len()];
            let pos = position(chunk, i / chunks.len(), 20);
            let edit = match i % 10 {
                0..=6 => DraftEdit::Block(value(i)),
                7 | 8 => DraftEdit::Light((i % 15) as i32 + 1),
                _ => DraftEdit::Sign {
                    face: (i % 8) as i32,
                    text: format!("draft sign {i}"),
                },
            };
            DraftChange {
                pos,
                edit,
                seen: 0,
                time_ms,
            }
        })
        .collect()
}

/// Runs part 1 on `store`.
pub async fn measure(
    config: &FeaturesConfig,
    label: &str,
    url: &StoreUrl,
    store: &Arc<dyn BlockStore>,
) -> Result<DraftStoreReport, String> {
    let limit = config
        .draft_limits
        .get(label)
        .copied()
        .unwrap_or(usize::MAX);
    let mut next_region = 0;
    let mut sizes = Vec::new();
    for &n in &config.draft_sizes {
        if n > limit {
            sizes.push(DraftSizeReport {
                changes: n,
                skipped: Some(format!("--draft-limit {label}={limit}")),
                writes: 0,
                reps: 0,
                put_ms: 0.0,
                publish_ms: 0.0,
                publish: Quantiles::default(),
                apply_ms: 0.0,
                publish_vs_apply: 0.0,
                changes_per_s: 0.0,
                per_publish: Usage::default(),
            });
            continue;
        }
        let started = Instant::now();
        let (mut puts, mut publishes, mut applies) = (Vec::new(), Vec::new(), Vec::new());
        let mut usage = Usage::default();
        let mut writes = 0;
        for rep in 0..config.draft_reps.max(1) {
            if rep > 0 && started.elapsed() > config.draft_budget {
                break;
            }
            let owner = format!("bench-{n}-{rep}");
            let changes = draft_changes(&region(next_region), n, now_ms());
            next_region += 1;
            let t = Instant::now();
            store
                .put_draft(&owner, &changes)
                .await
                .map_err(|e| format!("put_draft of {n} changes: {e}"))?;
            puts.push(t.elapsed());
            let before = Usage::of(&**store);
            let t = Instant::now();
            let published =
                publish_draft(&**store, Some(&owner), &changes, Some(Arc::from("bench")))
                    .await
                    .map_err(|e| format!("publish_draft of {n} changes: {e}"))?;
            publishes.push(t.elapsed());
            usage.add(&Usage::of(&**store).since(&before));
            if let Some(e) = published.delete_error {
                return Err(format!("deleting the published draft of {n} changes: {e}"));
            }
            writes = published.batch.len();
            // The baseline: the same work as a plain batch.
            let plain = draft_batch(
                &draft_changes(&region(next_region), n, now_ms()),
                Some(Arc::from("bench")),
            );
            next_region += 1;
            let t = Instant::now();
            store
                .apply(&plain)
                .await
                .map_err(|e| format!("apply of {n} changes: {e}"))?;
            applies.push(t.elapsed());
            tracing::debug!(store = %label, changes = n, rep, ms = ?publishes.last(), "published");
        }
        let publish_ms = median_ms(&publishes);
        let apply_ms = median_ms(&applies);
        sizes.push(DraftSizeReport {
            changes: n,
            skipped: None,
            writes,
            reps: publishes.len(),
            put_ms: median_ms(&puts),
            publish_ms,
            publish: Quantiles::of(&publishes),
            apply_ms,
            publish_vs_apply: publish_ms / apply_ms.max(1e-9),
            changes_per_s: n as f64 / (publish_ms / 1e3).max(1e-9),
            per_publish: usage.per(publishes.len(), 1.0),
        });
    }
    Ok(DraftStoreReport {
        label: label.to_owned(),
        backend: store.backend().to_owned(),
        url: url.redacted(),
        sizes,
    })
}

/// A summary for people.
pub fn human(results: &[DraftStoreReport]) -> String {
    let mut out = String::new();
    for s in results {
        out.push_str(&format!("{}: publish", s.label));
        for z in &s.sizes {
            match &z.skipped {
                Some(why) => out.push_str(&format!("  {}: skipped ({why})", z.changes)),
                None => out.push_str(&format!(
                    "  {}: {:.1} ms (x{}, plain apply {:.1} ms, put {:.1} ms, {:.0} requests)",
                    z.changes,
                    z.publish_ms,
                    z.reps,
                    z.apply_ms,
                    z.put_ms,
                    z.per_publish
                        .0
                        .get("store_requests_total")
                        .copied()
                        .unwrap_or(0.0)
                )),
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn drafts_use_distinct_slots_and_validate() {
        let changes = draft_changes(&region(0), 10_000, 1);
        let slots: BTreeSet<_> = changes.iter().map(DraftChange::slot).collect();
        assert_eq!(slots.len(), 10_000);
        world_core::store::validate_draft("bench", &changes).expect("valid");
        let chunks: BTreeSet<_> = changes.iter().map(|c| c.pos.chunk()).collect();
        assert_eq!(chunks.len(), DRAFT_CHUNKS);
    }
}
