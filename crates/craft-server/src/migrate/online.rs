//! `import --online`: copy while servers keep writing to the source, then
//! catch up through chunk keys until nothing is left to copy.
//!
//! The copy records, per chunk, the source's head as of the read it copied
//! ([`ChunkData::head`](world_core::store::ChunkData::head): every change
//! up to it is in that read). Each catch-up round asks the source which
//! chunks moved past those heads (`changed_chunks`, one call for the
//! whole world) and syncs them: both sides are read and only what differs
//! is written, so signs deleted in the source are deleted in the copy too.
//! A round that finds nothing lists the source once more for chunks
//! created since (so does a round every [`LIST_EVERY`] while chunks keep
//! changing); when that finds nothing either, the copy has caught up.
//!
//! With `verify`, the contents are then compared. A chunk that differs
//! because the source changed after it was synced sends the copy back to
//! catching up; one that differs although the source did not move is a
//! real difference and fails the migration.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tracing::info;
use world_core::ChunkPos;
use world_core::store::{ChunkHead, Key};

use super::copy::{self, CopySummary};
use super::verify::{self, Report};
use super::{Endpoint, MigrateError, Options, with_retries};

/// While chunks keep changing, how often the source is listed anyway for
/// chunks created since the copy (else they would wait for a quiet round).
const LIST_EVERY: Duration = Duration::from_secs(30);

/// How the online copy ends.
#[derive(Clone, Copy, Debug)]
pub struct OnlineOptions {
    /// Compare the contents once caught up.
    pub verify: bool,
    /// Keep catching up after the first time nothing is left, until `stop`
    /// resolves (then catch up a last time and end).
    pub follow: bool,
    /// Pause between rounds that found nothing, while following.
    pub interval: Duration,
}

/// What an online copy did.
#[derive(Clone, Debug)]
pub struct OnlineSummary {
    /// The first, full copy.
    pub copy: CopySummary,
    /// Catch-up rounds that found changes.
    pub rounds: usize,
    /// Chunks synced by those rounds (a chunk may count once per round).
    pub synced_chunks: usize,
    /// Rows written by those rounds.
    pub synced_rows: usize,
    /// The comparison, when asked for.
    pub report: Option<Report>,
}

/// Copies `source` to `dest` while the source is being written, then
/// catches up until the difference is zero (see the module docs). While
/// `online.follow` is set, rounds go on until `stop` resolves.
pub async fn online(
    source: &Endpoint,
    dest: &Endpoint,
    options: &Options,
    online: &OnlineOptions,
    stop: impl Future<Output = ()>,
) -> Result<OnlineSummary, MigrateError> {
    let mut stop = std::pin::pin!(stop.fuse());
    let mut stopping = !online.follow;
    // A signal future starts listening when first polled: do it before the
    // copy, so that a stop asked for during the copy is not missed.
    if !stopping && (&mut stop).now_or_never().is_some() {
        stopping = true;
    }
    let copied = copy::copy_all(source, dest, options).await?;
    info!(
        chunks = copied.chunks,
        blocks = copied.blocks,
        lights = copied.lights,
        signs = copied.signs,
        "copied; catching up with the source"
    );
    let mut held: BTreeMap<ChunkPos, Key> = copied.heads.clone();
    let mut last_listed = Instant::now();
    let mut summary = OnlineSummary {
        copy: copied,
        rounds: 0,
        synced_chunks: 0,
        synced_rows: 0,
        report: None,
    };
    loop {
        if !stopping && (&mut stop).now_or_never().is_some() {
            info!("told to stop: catching up a last time");
            stopping = true;
        }
        let list = last_listed.elapsed() >= LIST_EVERY;
        let changed = changed_since(source, &held, list).await?;
        if list {
            last_listed = Instant::now();
        }
        if !changed.is_empty() {
            let started = Instant::now();
            let count = changed.len();
            let synced = copy::sync_chunks(source, dest, changed, options).await?;
            let rows = synced.blocks + synced.lights + synced.signs;
            summary.rounds += 1;
            summary.synced_chunks += count;
            summary.synced_rows += rows;
            held.extend(synced.heads);
            info!(
                round = summary.rounds,
                chunks = count,
                rows,
                took = ?started.elapsed(),
                "caught up with changed chunks"
            );
            continue;
        }
        if !stopping {
            tokio::select! {
                () = tokio::time::sleep(online.interval) => {}
                () = &mut stop => {
                    info!("told to stop: catching up a last time");
                    stopping = true;
                }
            }
            continue;
        }
        info!(
            rounds = summary.rounds,
            "caught up: no chunk of the source changed since it was copied"
        );
        if !online.verify {
            return Ok(summary);
        }
        let report = verify::verify(source, dest, options).await?;
        let moved = report
            .differing
            .iter()
            .filter(|c| c.source_head > held.get(&c.chunk).copied().unwrap_or(0))
            .count();
        if moved > 0 && moved == report.differing.len() {
            // Writes raced the comparison: catch up with them and compare
            // again.
            info!(chunks = moved, "the source changed during the comparison");
            continue;
        }
        if !report.is_same() {
            return Err(MigrateError::Differs(Box::new(report)));
        }
        summary.report = Some(report);
        return Ok(summary);
    }
}

/// Chunks of the source past the heads in `held`, and chunks it has that
/// `held` lacks. Listing is the slow call: new chunks are only looked for
/// when nothing held moved, or when `list` says it is time.
async fn changed_since(
    source: &Endpoint,
    held: &BTreeMap<ChunkPos, Key>,
    list: bool,
) -> Result<Vec<ChunkPos>, MigrateError> {
    let heads: Vec<ChunkHead> = held
        .iter()
        .map(|(&chunk, &head)| ChunkHead { chunk, head })
        .collect();
    let moved = with_retries("asking for changed chunks", || {
        source.store.changed_chunks(&heads)
    })
    .await
    .map_err(|e| MigrateError::List {
        store: source.name.clone(),
        source: e,
    })?;
    let mut changed: BTreeSet<ChunkPos> = moved.into_iter().map(|h| h.chunk).collect();
    if changed.is_empty() || list {
        let listed = source.list().await?;
        changed.extend(
            listed
                .into_iter()
                .filter(|h| held.get(&h.chunk).is_none_or(|&k| h.head > k))
                .map(|h| h.chunk),
        );
    }
    Ok(changed.into_iter().collect())
}
