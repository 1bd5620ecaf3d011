//! `craft-server import`: copy a world from one store to another.

use std::collections::BTreeMap;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::info;
use world_core::store::{Batch, ChangeMeta, ChunkData, Key};
use world_core::{BlockStore, ChunkPos};

use super::digest::ChunkContent;
use super::progress::Progress;
use super::{Endpoint, MigrateError, Options, with_retries};

/// Batches queued for the writer: reads go on while one batch is written
/// and the next is full, and no more is held in memory.
const QUEUED_BATCHES: usize = 2;

/// What a copy did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopySummary {
    /// Chunks read from the source.
    pub chunks: usize,
    /// Block rows written (mirrors included).
    pub blocks: usize,
    /// Lights written.
    pub lights: usize,
    /// Signs written (deletions, when syncing, included).
    pub signs: usize,
    /// Per chunk, the source's head as of the read that was copied: every
    /// change up to it is in the destination.
    pub heads: BTreeMap<ChunkPos, Key>,
}

impl CopySummary {
    fn count(&mut self, batch_before: (usize, usize, usize), batch: &Batch) {
        self.blocks += batch.blocks().len() - batch_before.0;
        self.lights += batch.lights().len() - batch_before.1;
        self.signs += batch.signs().len() - batch_before.2;
    }
}

fn sizes(batch: &Batch) -> (usize, usize, usize) {
    (
        batch.blocks().len(),
        batch.lights().len(),
        batch.signs().len(),
    )
}

/// Writes batches to the destination in order, in a task of its own.
pub(super) struct Writer {
    tx: mpsc::Sender<Batch>,
    task: JoinHandle<Result<(), MigrateError>>,
}

impl Writer {
    pub(super) fn start(dest: &Endpoint) -> Self {
        let (tx, mut rx) = mpsc::channel::<Batch>(QUEUED_BATCHES);
        let dest = dest.clone();
        let task = tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                with_retries("writing a batch", || dest.store.apply(&batch))
                    .await
                    .map_err(|source| MigrateError::Write {
                        store: dest.name.clone(),
                        source,
                    })?;
            }
            Ok(())
        });
        Self { tx, task }
    }

    /// Queues `batch`; fails early when the writer already failed.
    pub(super) async fn send(&mut self, batch: Batch) -> Result<(), MigrateError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.tx.send(batch).await.is_err() {
            // The task ended, so it failed: its error says why.
            return Err(self.join_failed().await);
        }
        Ok(())
    }

    async fn join_failed(&mut self) -> MigrateError {
        match (&mut self.task).await {
            Ok(Err(e)) => e,
            Ok(Ok(())) => MigrateError::Writer("stopped early".to_owned()),
            Err(e) => MigrateError::Writer(e.to_string()),
        }
    }

    /// Waits until everything queued is written.
    pub(super) async fn finish(self) -> Result<(), MigrateError> {
        drop(self.tx);
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(MigrateError::Writer(e.to_string())),
        }
    }
}

/// Adds to `batch` the writes that turn `dest`'s contents of `chunk` into
/// `source`'s: changed and missing values are written; signs only the
/// destination has are deleted; lights only it has are set to 0 (a store
/// cannot delete a light, and a later comparison will say so).
pub fn sync_chunk(batch: &mut Batch, chunk: ChunkPos, source: &ChunkContent, dest: &ChunkContent) {
    let meta = ChangeMeta::default;
    for (pos, w) in &source.blocks {
        if dest.blocks.get(pos) != Some(w) {
            batch.set_block(chunk, *pos, *w, meta());
        }
    }
    for (pos, w) in &source.lights {
        if dest.lights.get(pos) != Some(w) {
            batch.set_light(chunk, *pos, *w, meta());
        }
    }
    for (pos, w) in &dest.lights {
        if *w != 0 && !source.lights.contains_key(pos) {
            batch.set_light(chunk, *pos, 0, meta());
        }
    }
    for ((pos, face), text) in &source.signs {
        if dest.signs.get(&(*pos, *face)) != Some(text) {
            batch.set_sign(chunk, *pos, *face, text, meta());
        }
    }
    for (pos, face) in dest.signs.keys() {
        if !source.signs.contains_key(&(*pos, *face)) {
            batch.set_sign(chunk, *pos, *face, "", meta());
        }
    }
}

/// Adds every row of `data` to `batch`, values exactly as read.
fn copy_chunk(batch: &mut Batch, chunk: ChunkPos, data: &ChunkData) {
    let meta = ChangeMeta::default;
    for b in &data.blocks {
        batch.set_block(chunk, b.pos, b.w, meta());
    }
    for l in &data.lights {
        batch.set_light(chunk, l.pos, l.w, meta());
    }
    for s in &data.signs {
        batch.set_sign(chunk, s.pos, s.face, &s.text, meta());
    }
}

/// Copies every chunk's blocks (mirrors included), lights and signs from
/// `source` to `dest`. Keys are the destination's own; values are copied
/// exactly. Rows the destination already has are overwritten, others kept.
pub async fn copy_all(
    source: &Endpoint,
    dest: &Endpoint,
    options: &Options,
) -> Result<CopySummary, MigrateError> {
    let heads = source.list().await?;
    info!(chunks = heads.len(), from = %source.name, to = %dest.name, "copying");
    let chunks: Vec<ChunkPos> = heads.iter().map(|h| h.chunk).collect();
    copy_chunks(source, dest, chunks, options, "copy").await
}

/// Copies `chunks` whole (see [`copy_all`]).
pub(super) async fn copy_chunks(
    source: &Endpoint,
    dest: &Endpoint,
    chunks: Vec<ChunkPos>,
    options: &Options,
    label: &str,
) -> Result<CopySummary, MigrateError> {
    let mut progress = Progress::start(options.progress, label, chunks.len() as u64);
    let mut summary = CopySummary::default();
    let mut writer = Writer::start(dest);
    let mut batch = Batch::new();
    let mut reads = std::pin::pin!(source.read_all(chunks, options.concurrency));
    while let Some(read) = reads.next().await {
        let (chunk, data) = read?;
        let before = sizes(&batch);
        copy_chunk(&mut batch, chunk, &data);
        summary.count(before, &batch);
        summary.chunks += 1;
        summary.heads.insert(chunk, data.head);
        progress.inc(1);
        if batch.len() >= options.batch_rows {
            writer.send(std::mem::take(&mut batch)).await?;
        }
    }
    writer.send(batch).await?;
    writer.finish().await?;
    progress.finish();
    Ok(summary)
}

/// Makes `chunks` of `dest` equal to `source`'s, reading both sides and
/// writing only what differs.
pub(super) async fn sync_chunks(
    source: &Endpoint,
    dest: &Endpoint,
    chunks: Vec<ChunkPos>,
    options: &Options,
) -> Result<CopySummary, MigrateError> {
    let mut summary = CopySummary::default();
    let mut writer = Writer::start(dest);
    let mut batch = Batch::new();
    let dest_store: std::sync::Arc<dyn BlockStore> = dest.store.clone();
    let mut reads = std::pin::pin!(
        source
            .read_all(chunks, options.concurrency)
            .map(|read| {
                let dest_store = dest_store.clone();
                let name = dest.name.clone();
                async move {
                    let (chunk, data) = read?;
                    let theirs =
                        with_retries("reading a chunk", || dest_store.load_chunk(chunk, 0))
                            .await
                            .map_err(|source| MigrateError::Read {
                                store: name,
                                chunk,
                                source,
                            })?;
                    Ok::<_, MigrateError>((chunk, data, theirs))
                }
            })
            .buffer_unordered(options.concurrency.max(1))
    );
    while let Some(read) = reads.next().await {
        let (chunk, data, theirs) = read?;
        let before = sizes(&batch);
        sync_chunk(
            &mut batch,
            chunk,
            &ChunkContent::from_data(&data),
            &ChunkContent::from_data(&theirs),
        );
        summary.count(before, &batch);
        summary.chunks += 1;
        summary.heads.insert(chunk, data.head);
        if batch.len() >= options.batch_rows {
            writer.send(std::mem::take(&mut batch)).await?;
        }
    }
    writer.send(batch).await?;
    writer.finish().await?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use world_core::BlockPos;

    use super::*;

    #[test]
    fn sync_writes_only_the_difference() {
        let chunk = ChunkPos::new(0, 0);
        let p = |x| BlockPos::new(x, 5, 0);
        let mut source = ChunkContent::default();
        source.blocks.insert(p(1), 3);
        source.blocks.insert(p(2), 0);
        source.lights.insert(p(1), 15);
        source.signs.insert((p(1), 0), "same".into());
        source.signs.insert((p(2), 1), "new, \"é\"".into());
        let mut dest = source.clone();
        dest.blocks.insert(p(2), 7);
        dest.lights.insert(p(3), 4);
        dest.signs.remove(&(p(2), 1));
        dest.signs.insert((p(3), 2), "stale".into());
        let mut batch = Batch::new();
        sync_chunk(&mut batch, chunk, &source, &dest);
        let blocks: Vec<_> = batch.blocks().map(|b| (b.pos, b.w)).collect();
        assert_eq!(blocks, vec![(p(2), 0)]);
        let lights: Vec<_> = batch.lights().map(|l| (l.pos, l.w)).collect();
        assert_eq!(lights, vec![(p(3), 0)]);
        let signs: Vec<_> = batch
            .signs()
            .map(|s| (s.pos, s.face, s.text.clone()))
            .collect();
        assert_eq!(
            signs,
            vec![(p(2), 1, Some("new, \"é\"".to_owned())), (p(3), 2, None)]
        );
        let mut same = Batch::new();
        sync_chunk(&mut same, chunk, &source, &source);
        assert!(same.is_empty());
    }
}
