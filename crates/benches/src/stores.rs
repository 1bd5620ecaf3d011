//! `craft-bench stores`: the same work on every store, next to raw
//! baselines.
//!
//! For each store URL, on a fresh world:
//!
//! 1. **import**: a world of `import_edits` block changes (1,000 per chunk,
//!    chunks in a square grid), written in batches of [`IMPORT_BATCH`] like
//!    `craft-server import` does; stops early when `import_budget` is spent
//!    (the DynamoDB emulator is slow) and reports what it wrote;
//! 2. **sustained durable edits** at the commit interval: the server
//!    flushes everything accepted during one interval as one batch, so a
//!    rate `R` is sustainable when a batch of `R × interval` edits over 100
//!    busy chunks commits within the interval. Rates double from 1,000/s
//!    until a batch misses the interval (or the budget is spent);
//! 3. **chunk loads**: `load_chunk(chunk, 0)` of chunks holding exactly
//!    100, 1,000 and 20,000 changes;
//! 4. **incremental sync**: 10 edits, then `load_chunk` since the key held
//!    before them; and `changed_chunks` over every imported chunk after 10
//!    of them changed.
//!
//! Requests (and DynamoDB capacity units) come from the store's own
//! counters ([`BlockStore::counters`]), so they count what the backend
//! really sent. Raw baselines run the same rows through plain SQLite
//! inserts and PostgreSQL `COPY`, and read them back with one `SELECT`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use craft_server::config::StoreUrl;
use serde::Serialize;
use tracing::info;
use world_core::BlockStore;
use world_core::coords::{BlockPos, ChunkPos};
use world_core::store::{Batch, ChangeMeta, ChunkHead, Key};

use crate::baseline;

/// Rows per import batch (as `craft-server import`).
pub const IMPORT_BATCH: usize = 50_000;
/// Block changes per imported chunk.
pub const PER_CHUNK: usize = 1_000;
/// Chunks the sustained edits spread over.
pub const HOT_CHUNKS: usize = 100;
/// Edits per incremental-sync sample.
pub const SYNC_EDITS: usize = 10;

/// What to run.
#[derive(Clone, Debug)]
pub struct StoresConfig {
    /// `(label, url)` of each store, each a fresh world.
    pub stores: Vec<(String, StoreUrl)>,
    /// Block changes of the imported world.
    pub import_edits: usize,
    /// Longest time spent importing into one store.
    pub import_budget: Duration,
    /// A smaller import for some stores, by label (the DynamoDB emulator
    /// slows down as its table grows).
    pub import_limits: BTreeMap<String, usize>,
    /// The server's commit interval.
    pub commit_interval: Duration,
    /// Longest time spent on sustained edits per store.
    pub sustain_budget: Duration,
    /// Highest rate tried, edits/s.
    pub max_rate: usize,
    /// Changes per chunk of the load measurements.
    pub load_sizes: Vec<usize>,
    /// Loads measured per size.
    pub load_samples: usize,
    /// Longest time spent on one size's loads (at least two are made):
    /// the DynamoDB emulator takes seconds per large chunk.
    pub load_budget: Duration,
    /// Incremental-sync samples.
    pub sync_samples: usize,
    /// PostgreSQL for the `COPY` baseline (a schema is created and dropped).
    pub pg_baseline: Option<String>,
    /// Directory for the SQLite baseline's file (none: no SQLite baseline).
    pub sqlite_baseline: Option<PathBuf>,
}

/// Latency quantiles, milliseconds (nearest rank).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Quantiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Quantiles {
    /// Quantiles of `samples`.
    pub fn of(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            if ms.is_empty() {
                return 0.0;
            }
            let i = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1;
            ms[i]
        };
        Self {
            count: ms.len(),
            p50_ms: rank(0.5),
            p99_ms: rank(0.99),
            max_ms: ms.last().copied().unwrap_or(0.0),
        }
    }
}

/// Counter totals by metric name (labels summed).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Usage(pub BTreeMap<String, f64>);

impl Usage {
    pub(crate) fn of(store: &dyn BlockStore) -> Self {
        let mut totals = BTreeMap::new();
        for c in store.counters() {
            *totals.entry(c.name.to_owned()).or_insert(0.0) += c.value;
        }
        Self(totals)
    }

    pub(crate) fn since(&self, before: &Usage) -> Usage {
        Usage(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v - before.0.get(k).copied().unwrap_or(0.0)))
                .collect(),
        )
    }

    pub(crate) fn add(&mut self, other: &Usage) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_insert(0.0) += v;
        }
    }

    /// This usage per `n` units of work, times `per`.
    pub(crate) fn per(&self, n: usize, per: f64) -> Usage {
        let n = n.max(1) as f64;
        Usage(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v / n * per))
                .collect(),
        )
    }
}

/// The import phase.
#[derive(Clone, Debug, Serialize)]
pub struct ImportResult {
    /// Changes written.
    pub edits: usize,
    /// Whether the time budget or a per-store limit stopped it before
    /// `import_edits`.
    pub truncated: bool,
    /// Seconds.
    pub seconds: f64,
    /// Changes per second.
    pub edits_per_s: f64,
    /// Counters per 1,000 changes.
    pub per_1000: Usage,
}

/// One rate of the sustained phase.
#[derive(Clone, Debug, Serialize)]
pub struct RateStep {
    /// Offered rate, edits/s.
    pub rate: usize,
    /// Edits per batch (rate × interval).
    pub batch: usize,
    /// Slowest commit of this rate, ms.
    pub worst_ms: f64,
    /// Whether every batch committed within the interval.
    pub kept_up: bool,
}

/// The sustained phase.
#[derive(Clone, Debug, Serialize)]
pub struct SustainResult {
    /// The commit interval, ms.
    pub interval_ms: f64,
    /// The highest rate whose batches all committed within the interval.
    pub sustained_edits_per_s: usize,
    /// Edits per second of commit time over the whole phase (how fast the
    /// store writes batches back to back).
    pub throughput_edits_per_s: f64,
    /// Whether `max_rate` was reached without missing the interval (the
    /// real limit is higher).
    pub capped: bool,
    /// Every rate tried.
    pub steps: Vec<RateStep>,
    /// Edits written.
    pub edits: usize,
    /// Counters per 1,000 edits.
    pub per_1000: Usage,
}

/// Loads of one chunk size.
#[derive(Clone, Debug, Serialize)]
pub struct LoadResult {
    /// Changes in the chunk.
    pub changes: usize,
    /// `load_chunk(chunk, 0)` latency.
    pub latency: Quantiles,
    /// Counters per load.
    pub per_load: Usage,
}

/// The incremental-sync phase.
#[derive(Clone, Debug, Serialize)]
pub struct SyncResult {
    /// `load_chunk` since the key held, after 10 edits, in a chunk of
    /// 1,000+ changes.
    pub load_since: Quantiles,
    /// `changed_chunks` over every imported chunk, 10 of them changed.
    pub changed_chunks: Quantiles,
    /// Chunks held in each `changed_chunks` call.
    pub held: usize,
    /// Counters per `changed_chunks` call.
    pub per_changed_chunks: Usage,
}

/// Everything measured on one store.
#[derive(Clone, Debug, Serialize)]
pub struct StoreReport {
    /// Label given on the command line.
    pub label: String,
    /// `BlockStore::backend`.
    pub backend: String,
    /// The URL, secrets hidden.
    pub url: String,
    /// Import.
    pub import: ImportResult,
    /// Sustained edits.
    pub sustain: SustainResult,
    /// Chunk loads by size.
    pub loads: Vec<LoadResult>,
    /// Incremental sync.
    pub sync: SyncResult,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct StoresReport {
    /// Always `"stores"`.
    pub kind: &'static str,
    /// Changes of the imported world asked for.
    pub import_edits: usize,
    /// One entry per store.
    pub stores: Vec<StoreReport>,
    /// Raw baselines.
    pub baselines: Vec<baseline::BaselineReport>,
}

impl StoresReport {
    /// A summary for people.
    pub fn human(&self) -> String {
        let mut out = String::new();
        for s in &self.stores {
            out.push_str(&format!(
                "{}: import {:.0} edits/s ({} edits{}), sustained {} edits/s{} (back to back {:.0}/s), requests/1000 edits {:.1}\n",
                s.label,
                s.import.edits_per_s,
                s.import.edits,
                if s.import.truncated { ", cut short" } else { "" },
                s.sustain.sustained_edits_per_s,
                if s.sustain.capped { "+" } else { "" },
                s.sustain.throughput_edits_per_s,
                s.sustain
                    .per_1000
                    .0
                    .get("store_requests_total")
                    .copied()
                    .unwrap_or(0.0),
            ));
            for l in &s.loads {
                out.push_str(&format!(
                    "  load {:>6} changes: p50 {:.2} ms p99 {:.2} ms\n",
                    l.changes, l.latency.p50_ms, l.latency.p99_ms
                ));
            }
            out.push_str(&format!(
                "  sync: load since p50 {:.2} ms, changed_chunks({}) p50 {:.2} ms\n",
                s.sync.load_since.p50_ms, s.sync.held, s.sync.changed_chunks.p50_ms
            ));
        }
        for b in &self.baselines {
            out.push_str(&format!(
                "baseline {}: import {:.0} rows/s; loads p50 {}\n",
                b.name,
                b.import_rows_per_s,
                b.loads
                    .iter()
                    .map(|l| format!("{}: {:.2} ms", l.changes, l.latency.p50_ms))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out
    }
}

/// The chunk of imported chunk `i` (a square grid from 0,0).
pub fn import_chunk(i: usize, total_chunks: usize) -> ChunkPos {
    let side = (total_chunks as f64).sqrt().ceil().max(1.0) as usize;
    ChunkPos::new((i % side) as i32, (i / side) as i32)
}

/// The `j`-th distinct position of `chunk`: columns first, then layers
/// upwards from `base_y` (1,024 per layer).
pub fn position(chunk: ChunkPos, j: usize, base_y: i32) -> BlockPos {
    let column = j % 1024;
    BlockPos::new(
        chunk.p * 32 + (column % 32) as i32,
        base_y + (j / 1024) as i32,
        chunk.q * 32 + (column / 32) as i32,
    )
}

/// A block value for variety (always a valid item, never air).
pub(crate) fn value(seed: usize) -> i32 {
    (seed % 15) as i32 + 1
}

fn meta() -> ChangeMeta {
    ChangeMeta::default()
}

/// Chunks of an imported world of `edits` changes (at least one).
fn world_chunks(edits: usize) -> usize {
    edits.div_ceil(PER_CHUNK).max(1)
}

/// The rows of the imported world, in import order: `(chunk, pos, w)`.
pub fn world_rows(edits: usize) -> impl Iterator<Item = (ChunkPos, BlockPos, i32)> {
    let chunks = world_chunks(edits);
    (0..edits).map(move |n| {
        let chunk = import_chunk(n / PER_CHUNK, chunks);
        let j = n % PER_CHUNK;
        (chunk, position(chunk, j, 10), value(n))
    })
}

/// Chunks holding exactly `changes` block rows for the load measurements
/// (far from the imported world).
pub fn load_chunk_of(size_index: usize) -> ChunkPos {
    ChunkPos::new(100_000 + size_index as i32, -100_000)
}

/// Runs every store, then the baselines.
pub async fn run(config: StoresConfig) -> Result<StoresReport, String> {
    let mut stores = Vec::new();
    for (label, url) in &config.stores {
        info!(store = %label, url = %url, "measuring");
        let store = craft_server::stores::open(url)
            .await
            .map_err(|e| format!("{label}: {e}"))?;
        let result = measure(&config, label, url, &store).await;
        let _ = store.close().await;
        stores.push(result.map_err(|e| format!("{label}: {e}"))?);
    }
    let mut baselines = Vec::new();
    if let Some(dir) = &config.sqlite_baseline {
        info!("SQLite baseline (plain inserts)");
        baselines.push(baseline::sqlite(&config, dir).await?);
    }
    if let Some(url) = &config.pg_baseline {
        info!("PostgreSQL baseline (COPY)");
        baselines.push(baseline::postgres(&config, url).await?);
    }
    Ok(StoresReport {
        kind: "stores",
        import_edits: config.import_edits,
        stores,
        baselines,
    })
}

async fn measure(
    config: &StoresConfig,
    label: &str,
    url: &StoreUrl,
    store: &Arc<dyn BlockStore>,
) -> Result<StoreReport, String> {
    let mut heads: BTreeMap<ChunkPos, Key> = BTreeMap::new();
    let import = import(config, label, store, &mut heads).await?;
    info!(store = %label, edits_per_s = import.edits_per_s, "import done");
    let sustain = sustain(config, store, &mut heads).await?;
    info!(store = %label, sustained = sustain.sustained_edits_per_s, "sustained edits done");
    let loads = loads(config, store).await?;
    let sync = sync(config, store, &mut heads).await?;
    Ok(StoreReport {
        label: label.to_owned(),
        backend: store.backend().to_owned(),
        url: url.redacted(),
        import,
        sustain,
        loads,
        sync,
    })
}

async fn apply(
    store: &Arc<dyn BlockStore>,
    batch: &Batch,
    heads: &mut BTreeMap<ChunkPos, Key>,
) -> Result<Duration, String> {
    let started = Instant::now();
    let receipt = store.apply(batch).await.map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    for advance in receipt.chunks {
        heads.insert(advance.chunk, advance.after);
    }
    Ok(elapsed)
}

/// Writes `rows` in batches of [`IMPORT_BATCH`], asking `more(written)`
/// after each full batch whether to go on; returns the rows written.
async fn write_rows(
    store: &Arc<dyn BlockStore>,
    rows: impl Iterator<Item = (ChunkPos, BlockPos, i32)>,
    heads: &mut BTreeMap<ChunkPos, Key>,
    mut more: impl FnMut(usize) -> bool,
) -> Result<usize, String> {
    let mut written = 0;
    let mut batch = Batch::new();
    for (chunk, pos, w) in rows {
        batch.set_block(chunk, pos, w, meta());
        if batch.len() >= IMPORT_BATCH {
            apply(store, &std::mem::take(&mut batch), heads).await?;
            written += IMPORT_BATCH;
            if !more(written) {
                return Ok(written);
            }
        }
    }
    if !batch.is_empty() {
        written += batch.len();
        apply(store, &batch, heads).await?;
    }
    Ok(written)
}

async fn import(
    config: &StoresConfig,
    label: &str,
    store: &Arc<dyn BlockStore>,
    heads: &mut BTreeMap<ChunkPos, Key>,
) -> Result<ImportResult, String> {
    let limit = config
        .import_limits
        .get(label)
        .copied()
        .unwrap_or(usize::MAX);
    let before = Usage::of(&**store);
    let started = Instant::now();
    let written = write_rows(store, world_rows(config.import_edits), heads, |written| {
        started.elapsed() <= config.import_budget && written < limit
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(ImportResult {
        edits: written,
        truncated: written < config.import_edits,
        seconds,
        edits_per_s: written as f64 / seconds.max(1e-9),
        per_1000: Usage::of(&**store).since(&before).per(written, 1000.0),
    })
}

/// A batch of `n` edits over the hot chunks; `round` changes the values so
/// that every batch really updates.
fn hot_batch(n: usize, round: usize, hot: &[ChunkPos]) -> Batch {
    let mut batch = Batch::new();
    for k in 0..n {
        let chunk = hot[k % hot.len()];
        // Layer 10 holds imported blocks (updates); higher layers start as
        // inserts and become updates in later rounds.
        let pos = position(chunk, k / hot.len(), 10);
        batch.set_block(chunk, pos, value(k + round), meta());
    }
    batch
}

async fn sustain(
    config: &StoresConfig,
    store: &Arc<dyn BlockStore>,
    heads: &mut BTreeMap<ChunkPos, Key>,
) -> Result<SustainResult, String> {
    let chunks = world_chunks(config.import_edits);
    let hot: Vec<ChunkPos> = (0..HOT_CHUNKS).map(|i| import_chunk(i, chunks)).collect();
    let interval = config.commit_interval.max(Duration::from_millis(1));
    let before = Usage::of(&**store);
    let started = Instant::now();
    let (mut edits, mut busy) = (0usize, Duration::ZERO);
    let mut steps = Vec::new();
    let mut sustained = 0;
    let mut capped = false;
    let mut rate = 1000usize;
    let mut round = 0;
    loop {
        let n = ((rate as f64 * interval.as_secs_f64()).round() as usize).max(1);
        let mut worst = Duration::ZERO;
        for _ in 0..2 {
            round += 1;
            let batch = hot_batch(n, round, &hot);
            let took = apply(store, &batch, heads).await?;
            edits += batch.len();
            busy += took;
            worst = worst.max(took);
            if took > interval {
                break;
            }
        }
        let kept_up = worst <= interval;
        steps.push(RateStep {
            rate,
            batch: n,
            worst_ms: worst.as_secs_f64() * 1e3,
            kept_up,
        });
        if !kept_up {
            break;
        }
        sustained = rate;
        if rate >= config.max_rate {
            capped = true;
            break;
        }
        if started.elapsed() > config.sustain_budget {
            break;
        }
        rate = (rate * 2).min(config.max_rate);
    }
    Ok(SustainResult {
        interval_ms: interval.as_secs_f64() * 1e3,
        sustained_edits_per_s: sustained,
        throughput_edits_per_s: edits as f64 / busy.as_secs_f64().max(1e-9),
        capped,
        steps,
        edits,
        per_1000: Usage::of(&**store).since(&before).per(edits, 1000.0),
    })
}

/// The rows of the load chunk of `size_index` holding `changes` blocks.
pub fn load_rows(
    size_index: usize,
    changes: usize,
) -> impl Iterator<Item = (ChunkPos, BlockPos, i32)> {
    let chunk = load_chunk_of(size_index);
    (0..changes).map(move |j| (chunk, position(chunk, j, 1), value(j)))
}

async fn loads(
    config: &StoresConfig,
    store: &Arc<dyn BlockStore>,
) -> Result<Vec<LoadResult>, String> {
    let mut results = Vec::new();
    let mut heads = BTreeMap::new();
    for (i, &changes) in config.load_sizes.iter().enumerate() {
        let chunk = load_chunk_of(i);
        write_rows(store, load_rows(i, changes), &mut heads, |_| true).await?;
        // One load to warm caches and check the data.
        let data = store
            .load_chunk(chunk, 0)
            .await
            .map_err(|e| e.to_string())?;
        if data.blocks.len() != changes {
            return Err(format!(
                "chunk {chunk}: loaded {} blocks, wrote {changes}",
                data.blocks.len()
            ));
        }
        let before = Usage::of(&**store);
        let mut samples = Vec::with_capacity(config.load_samples);
        let budget = Instant::now();
        while samples.len() < config.load_samples
            && (samples.len() < 2 || budget.elapsed() < config.load_budget)
        {
            let started = Instant::now();
            store
                .load_chunk(chunk, 0)
                .await
                .map_err(|e| e.to_string())?;
            samples.push(started.elapsed());
        }
        results.push(LoadResult {
            changes,
            latency: Quantiles::of(&samples),
            per_load: Usage::of(&**store).since(&before).per(samples.len(), 1.0),
        });
    }
    Ok(results)
}

async fn sync(
    config: &StoresConfig,
    store: &Arc<dyn BlockStore>,
    heads: &mut BTreeMap<ChunkPos, Key>,
) -> Result<SyncResult, String> {
    let chunks = world_chunks(config.import_edits);
    // A chunk of the imported world (1,000 changes, more after the
    // sustained phase) that the hot edits did not touch when possible.
    let target = import_chunk(chunks - 1, chunks);
    let mut load_since = Vec::new();
    let mut round = 1000;
    let budget = Instant::now();
    for n in 0..config.sync_samples {
        if n >= 2 && budget.elapsed() > config.load_budget {
            break;
        }
        let held = heads.get(&target).copied().unwrap_or(0);
        round += 1;
        let mut batch = Batch::new();
        for j in 0..SYNC_EDITS {
            batch.set_block(target, position(target, j, 40), value(j + round), meta());
        }
        apply(store, &batch, heads).await?;
        let started = Instant::now();
        let data = store
            .load_chunk(target, held)
            .await
            .map_err(|e| e.to_string())?;
        load_since.push(started.elapsed());
        if data.blocks.len() != SYNC_EDITS {
            return Err(format!(
                "sync of {target} since {held}: {} blocks, expected {SYNC_EDITS}",
                data.blocks.len()
            ));
        }
    }

    let imported: Vec<ChunkPos> = (0..chunks).map(|i| import_chunk(i, chunks)).collect();
    let mut changed_samples = Vec::new();
    let mut usage = Usage::default();
    for s in 0..config.sync_samples.clamp(1, 10) {
        let held: Vec<ChunkHead> = imported
            .iter()
            .map(|c| ChunkHead {
                chunk: *c,
                head: heads.get(c).copied().unwrap_or(0),
            })
            .collect();
        let mut batch = Batch::new();
        let mut others = BTreeMap::new();
        for k in 0..SYNC_EDITS.min(imported.len()) {
            let chunk = imported[(s * 7 + k * 13) % imported.len()];
            batch.set_block(chunk, position(chunk, 0, 41), value(s + k), meta());
        }
        // Written "by another server": the heads we hold stay old.
        apply(store, &batch, &mut others).await?;
        let usage_before = Usage::of(&**store);
        let started = Instant::now();
        let changed = store
            .changed_chunks(&held)
            .await
            .map_err(|e| e.to_string())?;
        changed_samples.push(started.elapsed());
        usage.add(&Usage::of(&**store).since(&usage_before));
        if changed.len() != others.len() {
            return Err(format!(
                "changed_chunks: {} chunks, expected {}",
                changed.len(),
                others.len()
            ));
        }
        heads.extend(others);
    }
    let per_changed_chunks = usage.per(changed_samples.len(), 1.0);
    Ok(SyncResult {
        load_since: Quantiles::of(&load_since),
        changed_chunks: Quantiles::of(&changed_samples),
        held: imported.len(),
        per_changed_chunks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let q = Quantiles::of(&samples);
        assert_eq!(q.count, 100);
        assert_eq!(q.p50_ms, 50.0);
        assert_eq!(q.p99_ms, 99.0);
        assert_eq!(q.max_ms, 100.0);
        assert_eq!(Quantiles::of(&[]).p99_ms, 0.0);
    }

    #[test]
    fn the_world_has_distinct_positions_per_chunk() {
        let rows: Vec<_> = world_rows(5_000).collect();
        let distinct: std::collections::BTreeSet<_> = rows.iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(distinct.len(), 5_000);
        for (chunk, pos, _) in &rows {
            assert_eq!(pos.chunk(), *chunk, "rows live in their own chunk");
        }
        let load: Vec<_> = load_rows(2, 20_000).collect();
        let distinct: std::collections::BTreeSet<_> = load.iter().map(|r| r.1).collect();
        assert_eq!(distinct.len(), 20_000);
    }
}
