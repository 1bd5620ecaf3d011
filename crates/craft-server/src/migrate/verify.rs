//! `craft-server verify` and `import --verify`: both stores compared chunk
//! by chunk, by contents (see [`super::digest`]), with a report of what
//! differs.

use std::collections::BTreeSet;
use std::fmt;

use futures::StreamExt;
use tracing::info;
use world_core::ChunkPos;
use world_core::store::Key;

use super::digest::{ChunkContent, ChunkDiff, ChunkDigest, Mismatch, WorldDigest};
use super::progress::Progress;
use super::{Endpoint, MigrateError, Options, with_retries};

/// Differing chunks detailed in a report; the rest are counted.
const CHUNKS_SHOWN: usize = 50;

/// Differing values detailed per chunk; the rest are counted.
const VALUES_SHOWN: usize = 10;

/// One chunk whose contents differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkReport {
    /// The chunk.
    pub chunk: ChunkPos,
    /// Its source's head when it was read.
    pub source_head: Key,
    /// Digest in the source.
    pub source_digest: ChunkDigest,
    /// Digest in the destination.
    pub dest_digest: ChunkDigest,
    /// Rows in the source.
    pub source_rows: usize,
    /// Rows in the destination.
    pub dest_rows: usize,
    /// Blocks that differ.
    pub blocks_differing: usize,
    /// Lights that differ.
    pub lights_differing: usize,
    /// Signs that differ.
    pub signs_differing: usize,
    /// The first differences (a blank destination must not make the report
    /// as large as the world).
    pub diff: ChunkDiff,
}

impl ChunkReport {
    /// Values that differ in this chunk.
    pub fn values_differing(&self) -> usize {
        self.blocks_differing + self.lights_differing + self.signs_differing
    }
}

/// Totals of one side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Chunks listed by the store.
    pub chunks: usize,
    /// Block rows (mirrors and removed blocks included).
    pub blocks: usize,
    /// Lights.
    pub lights: usize,
    /// Signs.
    pub signs: usize,
}

impl Totals {
    fn add(&mut self, content: &ChunkContent) {
        self.blocks += content.blocks.len();
        self.lights += content.lights.len();
        self.signs += content.signs.len();
    }
}

/// The outcome of a comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The source, secrets hidden.
    pub source: String,
    /// The destination, secrets hidden.
    pub dest: String,
    /// Chunks compared (listed by either side).
    pub compared: usize,
    /// What the source holds.
    pub source_totals: Totals,
    /// What the destination holds.
    pub dest_totals: Totals,
    /// Digest of the whole source world.
    pub source_digest: ChunkDigest,
    /// Digest of the whole destination world.
    pub dest_digest: ChunkDigest,
    /// Chunks that differ, in chunk order.
    pub differing: Vec<ChunkReport>,
}

impl Report {
    /// Whether both stores hold the same world.
    pub fn is_same(&self) -> bool {
        self.differing.is_empty()
    }

    /// Values that differ, over all chunks.
    pub fn values_differing(&self) -> usize {
        self.differing
            .iter()
            .map(ChunkReport::values_differing)
            .sum()
    }
}

fn show(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("absent")
}

fn write_mismatches<T>(
    f: &mut fmt::Formatter<'_>,
    shown: &mut usize,
    what: &str,
    list: &[Mismatch<T>],
    at: impl Fn(&T) -> String,
) -> fmt::Result {
    for m in list {
        if *shown >= VALUES_SHOWN {
            return Ok(());
        }
        *shown += 1;
        writeln!(
            f,
            "    {what} {}: source {}, destination {}",
            at(&m.at),
            show(&m.source),
            show(&m.dest)
        )?;
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |t: &Totals| {
            format!(
                "{} chunks, {} blocks, {} lights, {} signs",
                t.chunks, t.blocks, t.lights, t.signs
            )
        };
        writeln!(
            f,
            "source      {}: {}",
            self.source,
            side(&self.source_totals)
        )?;
        writeln!(f, "destination {}: {}", self.dest, side(&self.dest_totals))?;
        writeln!(
            f,
            "world digest: source {}, destination {}",
            self.source_digest, self.dest_digest
        )?;
        if self.is_same() {
            return write!(f, "verified: {} chunks identical", self.compared);
        }
        writeln!(
            f,
            "DIFFERENT: {} of {} chunks differ ({} values)",
            self.differing.len(),
            self.compared,
            self.values_differing()
        )?;
        for c in self.differing.iter().take(CHUNKS_SHOWN) {
            writeln!(
                f,
                "  chunk {}: source {} ({} rows), destination {} ({} rows): {} blocks, {} lights, {} signs differ",
                c.chunk,
                c.source_digest,
                c.source_rows,
                c.dest_digest,
                c.dest_rows,
                c.blocks_differing,
                c.lights_differing,
                c.signs_differing
            )?;
            let mut shown = 0;
            write_mismatches(f, &mut shown, "block", &c.diff.blocks, |p| p.to_string())?;
            write_mismatches(f, &mut shown, "light", &c.diff.lights, |p| p.to_string())?;
            write_mismatches(f, &mut shown, "sign", &c.diff.signs, |(p, face)| {
                format!("{p} face {face}")
            })?;
            if c.values_differing() > shown {
                writeln!(f, "    ... and {} more", c.values_differing() - shown)?;
            }
        }
        if self.differing.len() > CHUNKS_SHOWN {
            writeln!(
                f,
                "  ... and {} more chunks",
                self.differing.len() - CHUNKS_SHOWN
            )?;
        }
        Ok(())
    }
}

/// Compares every chunk either store lists.
pub async fn verify(
    source: &Endpoint,
    dest: &Endpoint,
    options: &Options,
) -> Result<Report, MigrateError> {
    let (listed_source, listed_dest) = futures::try_join!(source.list(), dest.list())?;
    let chunks: BTreeSet<ChunkPos> = listed_source
        .iter()
        .chain(&listed_dest)
        .map(|h| h.chunk)
        .collect();
    info!(chunks = chunks.len(), source = %source.name, dest = %dest.name, "comparing");
    let mut report = compare(source, dest, chunks, options, "verify").await?;
    report.source_totals.chunks = listed_source.len();
    report.dest_totals.chunks = listed_dest.len();
    Ok(report)
}

/// Compares `chunks` (chunk totals are left at 0).
pub(super) async fn compare(
    source: &Endpoint,
    dest: &Endpoint,
    chunks: BTreeSet<ChunkPos>,
    options: &Options,
    label: &str,
) -> Result<Report, MigrateError> {
    let mut progress = Progress::start(options.progress, label, chunks.len() as u64);
    let compared = chunks.len();
    let mut source_world = WorldDigest::default();
    let mut dest_world = WorldDigest::default();
    let mut source_totals = Totals::default();
    let mut dest_totals = Totals::default();
    let mut differing = Vec::new();
    let read = |side: &Endpoint, chunk: ChunkPos| {
        let side = side.clone();
        async move {
            with_retries("reading a chunk", || side.store.load_chunk(chunk, 0))
                .await
                .map_err(|source| MigrateError::Read {
                    store: side.name.clone(),
                    chunk,
                    source,
                })
        }
    };
    let mut reads = std::pin::pin!(
        futures::stream::iter(chunks)
            .map(|chunk| {
                let both = futures::future::try_join(read(source, chunk), read(dest, chunk));
                async move { both.await.map(|(s, d)| (chunk, s, d)) }
            })
            // One read per store per item: the bound holds for each store.
            .buffer_unordered(options.concurrency.max(1))
    );
    while let Some(item) = reads.next().await {
        let (chunk, s, d) = item?;
        let (s_content, d_content) = (ChunkContent::from_data(&s), ChunkContent::from_data(&d));
        let (s_digest, d_digest) = (s_content.digest(), d_content.digest());
        source_world.add(chunk, s_digest);
        dest_world.add(chunk, d_digest);
        source_totals.add(&s_content);
        dest_totals.add(&d_content);
        if s_digest != d_digest {
            let mut diff = ChunkDiff::between(&s_content, &d_content);
            let counts = (diff.blocks.len(), diff.lights.len(), diff.signs.len());
            diff.truncate(VALUES_SHOWN);
            differing.push(ChunkReport {
                chunk,
                source_head: s.head,
                source_digest: s_digest,
                dest_digest: d_digest,
                source_rows: s_content.rows(),
                dest_rows: d_content.rows(),
                blocks_differing: counts.0,
                lights_differing: counts.1,
                signs_differing: counts.2,
                diff,
            });
        }
        progress.inc(1);
    }
    progress.finish();
    differing.sort_by_key(|c| c.chunk);
    Ok(Report {
        source: source.name.clone(),
        dest: dest.name.clone(),
        compared,
        source_totals,
        dest_totals,
        source_digest: source_world.finish(),
        dest_digest: dest_world.finish(),
        differing,
    })
}
