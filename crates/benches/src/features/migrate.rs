//! Part 4: migration between every pair of stores.
//!
//! Each store gets a world of `migrate_chunks` chunks of
//! `migrate_per_chunk` changes (80% blocks with their neighbour mirrors,
//! 12% lights, 8% signs) in a fresh location derived from its URL
//! ([`super::fresh_url`]). Then, for every ordered pair of different
//! stores, the world is copied with
//! [`copy_all`](craft_server::migrate::copy::copy_all) into a fresh
//! destination and compared with
//! [`verify`](craft_server::migrate::verify::verify) (both sides read
//! whole, value by value), each timed; a copy that does not verify fails
//! the run. A pair involving a store with a `--migrate-limit` moves a
//! world of that many chunks instead (built for the purpose in the source).

use std::collections::BTreeMap;
use std::time::Instant;

use craft_server::migrate::{self, Endpoint, Options, ProgressMode};
use serde::Serialize;
use tracing::info;
use world_core::coords::ChunkPos;
use world_core::store::{Batch, ChangeMeta};

use super::{FeaturesConfig, fresh_url};
use crate::stores::{IMPORT_BATCH, position, value};

/// One ordered pair.
#[derive(Clone, Debug, Serialize)]
pub struct PairReport {
    /// Label of the source store.
    pub from: String,
    /// Label of the destination store.
    pub to: String,
    /// Chunks copied.
    pub chunks: usize,
    /// Rows copied: blocks (mirrors included), lights and signs.
    pub rows: usize,
    /// Block rows among them.
    pub blocks: usize,
    /// Lights.
    pub lights: usize,
    /// Signs.
    pub signs: usize,
    /// The copy, seconds.
    pub copy_s: f64,
    /// Rows copied per second.
    pub copy_rows_per_s: f64,
    /// Chunks copied per second.
    pub copy_chunks_per_s: f64,
    /// The comparison, seconds.
    pub verify_s: f64,
    /// Rows compared per second (each read on both sides).
    pub verify_rows_per_s: f64,
    /// Chunks compared per second.
    pub verify_chunks_per_s: f64,
    /// Seconds writing the source world (not part of the migration).
    pub source_write_s: f64,
}

/// The world of `chunks` chunks, in batches of at most [`IMPORT_BATCH`].
pub fn world_batches(chunks: usize, per_chunk: usize) -> Vec<Batch> {
    let side = (chunks as f64).sqrt().ceil().max(1.0) as usize;
    let meta = ChangeMeta::default;
    let mut batches = Vec::new();
    let mut batch = Batch::new();
    for c in 0..chunks {
        // A square of neighbours: most mirrors land in chunks of the world.
        let chunk = ChunkPos::new(330_000 + (c % side) as i32, (c / side) as i32);
        for j in 0..per_chunk {
            let pos = position(chunk, j, 12);
            match j % 25 {
                0..=19 => {
                    let w = value(c + j);
                    batch.set_block(chunk, pos, w, meta());
                    for mirror in pos.mirror_chunks() {
                        batch.set_block(mirror, pos, -w, meta());
                    }
                }
                20..=22 => batch.set_light(chunk, pos, (j % 15) as i32 + 1, meta()),
                _ => batch.set_sign(
                    chunk,
                    pos,
                    (j % 8) as i32,
                    &format!("sign {c}/{j}, \"quoted\" é"),
                    meta(),
                ),
            }
        }
        if batch.len() >= IMPORT_BATCH {
            batches.push(std::mem::take(&mut batch));
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

fn options() -> Options {
    Options {
        progress: ProgressMode::Off,
        ..Options::default()
    }
}

/// Runs part 4 over every pair of `config.stores`.
pub async fn measure(config: &FeaturesConfig) -> Result<Vec<PairReport>, String> {
    let limit = |label: &str| {
        config
            .migrate_limits
            .get(label)
            .copied()
            .unwrap_or(config.migrate_chunks)
            .min(config.migrate_chunks)
            .max(1)
    };
    // Source worlds by (store, chunks), written when first needed.
    let mut sources: BTreeMap<(String, usize), (Endpoint, f64)> = BTreeMap::new();
    let mut pairs = Vec::new();
    let result = async {
        for (from, from_url) in &config.stores {
            for (to, to_url) in &config.stores {
                if from == to {
                    continue;
                }
                let chunks = limit(from).min(limit(to));
                let key = (from.clone(), chunks);
                if !sources.contains_key(&key) {
                    let url = fresh_url(from_url, &format!("msrc{chunks}"))?;
                    let endpoint = Endpoint::open(&url)
                        .await
                        .map_err(|e| format!("{from}: {e}"))?;
                    info!(store = %from, chunks, "writing the world to migrate");
                    let t = Instant::now();
                    for batch in world_batches(chunks, config.migrate_per_chunk) {
                        endpoint
                            .store
                            .apply(&batch)
                            .await
                            .map_err(|e| format!("{from}: writing the source world: {e}"))?;
                    }
                    let secs = t.elapsed().as_secs_f64();
                    sources.insert(key.clone(), (endpoint, secs));
                }
                let Some((source, source_write_s)) = sources.get(&key) else {
                    return Err(format!("{from}: source world missing"));
                };
                let dest_url = fresh_url(to_url, &format!("mfrom_{from}_{chunks}"))?;
                let dest = Endpoint::open(&dest_url)
                    .await
                    .map_err(|e| format!("{to}: {e}"))?;
                info!(from = %from, to = %to, chunks, "migrating");
                let pair = copy_and_verify(source, &dest, from, to, *source_write_s).await;
                let _ = dest.close().await;
                pairs.push(pair?);
            }
        }
        Ok::<(), String>(())
    }
    .await;
    for (source, _) in sources.values() {
        let _ = source.close().await;
    }
    result.map(|()| pairs)
}

async fn copy_and_verify(
    source: &Endpoint,
    dest: &Endpoint,
    from: &str,
    to: &str,
    source_write_s: f64,
) -> Result<PairReport, String> {
    let options = options();
    let t = Instant::now();
    let copied = migrate::copy::copy_all(source, dest, &options)
        .await
        .map_err(|e| format!("copy {from} -> {to}: {e}"))?;
    let copy_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = migrate::verify::verify(source, dest, &options)
        .await
        .map_err(|e| format!("verify {from} -> {to}: {e}"))?;
    let verify_s = t.elapsed().as_secs_f64();
    if !report.is_same() {
        return Err(format!(
            "{from} -> {to}: the copy differs from its source ({} values)",
            report.values_differing()
        ));
    }
    let rows = copied.blocks + copied.lights + copied.signs;
    Ok(PairReport {
        from: from.to_owned(),
        to: to.to_owned(),
        chunks: copied.chunks,
        rows,
        blocks: copied.blocks,
        lights: copied.lights,
        signs: copied.signs,
        copy_s,
        copy_rows_per_s: rows as f64 / copy_s.max(1e-9),
        copy_chunks_per_s: copied.chunks as f64 / copy_s.max(1e-9),
        verify_s,
        verify_rows_per_s: rows as f64 / verify_s.max(1e-9),
        verify_chunks_per_s: report.compared as f64 / verify_s.max(1e-9),
        source_write_s,
    })
}

/// A summary for people.
pub fn human(results: &[PairReport]) -> String {
    let mut out = String::new();
    for p in results {
        out.push_str(&format!(
            "{} -> {}: {} chunks, {} rows: copy {:.2} s ({:.0} rows/s), verify {:.2} s ({:.0} rows/s)\n",
            p.from,
            p.to,
            p.chunks,
            p.rows,
            p.copy_s,
            p.copy_rows_per_s,
            p.verify_s,
            p.verify_rows_per_s
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_has_blocks_mirrors_lights_and_signs() {
        let batches = world_batches(200, 250);
        let (mut blocks, mut lights, mut signs) = (0, 0, 0);
        for b in &batches {
            b.validate().expect("valid");
            blocks += b.blocks().len();
            lights += b.lights().len();
            signs += b.signs().len();
        }
        assert_eq!(lights, 200 * 30);
        assert_eq!(signs, 200 * 20);
        assert!(blocks > 200 * 200, "mirrors come on top: {blocks}");
        assert!(blocks + lights + signs < 60_000);
    }
}
