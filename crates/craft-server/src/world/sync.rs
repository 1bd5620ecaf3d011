//! Servers sharing one store: learning what the others changed.
//!
//! Every `sync_interval` the loop asks the store which cached chunks have a
//! head past the key it holds for them (one `changed_chunks` call for the
//! whole cache), loads just the newer changes of those, merges them (local
//! pending writes win: they are newer) and shows them to nearby players.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt, TryStreamExt};
use tracing::debug;
use world_core::StoreError;
use world_core::coords::ChunkPos;
use world_core::protocol::ServerMessage;
use world_core::store::{ChunkData, ChunkHead};

use super::{BlockEntry, Event, World};

/// Chunk loads a sync runs at once.
const SYNC_CONCURRENCY: usize = 8;

/// Sync bookkeeping.
#[derive(Debug, Default)]
pub struct SyncState {
    running: bool,
    last: Option<Instant>,
    /// Chunks known to have been written by someone else.
    pub dirty: HashSet<ChunkPos>,
}

impl World {
    /// Starts a sync if one is due.
    ///
    /// Never while one of our own flushes is in flight: the store would
    /// report the chunks it writes as changed by "someone", and we would
    /// reload what we wrote ourselves.
    pub(crate) fn start_sync(&mut self) {
        let interval = self.sync_interval();
        if self.sync.running
            || self.flusher.in_flight().is_some()
            || self.sync.last.is_some_and(|t| t.elapsed() < interval) && self.sync.dirty.is_empty()
        {
            return;
        }
        if interval == Duration::ZERO && self.sync.dirty.is_empty() {
            return;
        }
        let held: Vec<ChunkHead> = self
            .chunks
            .slots
            .iter()
            .filter_map(|(chunk, slot)| match &slot.load {
                super::Load::Ready(state) => Some(ChunkHead {
                    chunk: *chunk,
                    head: state.synced,
                }),
                _ => None,
            })
            .collect();
        self.sync.dirty.clear();
        self.sync.last = Some(Instant::now());
        if held.is_empty() {
            return;
        }
        self.sync.running = true;
        let store = self.store.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let result = async {
                let mut changed = Vec::new();
                for part in held.chunks(1000) {
                    changed.extend(store.changed_chunks(part).await?);
                }
                Ok(changed)
            }
            .await;
            let _ = events.send(Event::SyncChecked { result }).await;
        });
    }

    /// Loads the changes of the chunks the store reported as moved on,
    /// skipping those our own flushes have caught up with meanwhile.
    pub(crate) fn on_sync_checked(&mut self, result: Result<Vec<ChunkHead>, StoreError>) {
        let changed = match result {
            Ok(changed) => changed,
            Err(e) => {
                self.sync.running = false;
                self.metrics.error("sync");
                debug!(error = %e, "sync with the store failed; will retry");
                return;
            }
        };
        let flushing = self.flusher.in_flight().is_some();
        let mut loads = Vec::new();
        for c in changed {
            let Some(state) = self.chunks.ready_mut(c.chunk) else {
                continue;
            };
            if state.synced >= c.head {
                continue;
            }
            if flushing {
                // The head may be our own write: look again once it lands.
                self.sync.dirty.insert(c.chunk);
                continue;
            }
            loads.push((c.chunk, state.synced));
        }
        if loads.is_empty() {
            self.sync.running = false;
            return;
        }
        let store = self.store.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let result = stream::iter(loads)
                .map(|(chunk, from)| {
                    let store = store.clone();
                    async move {
                        let data = store.load_chunk(chunk, from).await?;
                        Ok::<_, StoreError>((chunk, from, data))
                    }
                })
                .buffer_unordered(SYNC_CONCURRENCY)
                .try_collect::<Vec<_>>()
                .await;
            let _ = events.send(Event::Synced { result }).await;
        });
    }

    pub(crate) fn on_synced(
        &mut self,
        result: Result<Vec<(ChunkPos, i64, ChunkData)>, StoreError>,
    ) {
        self.sync.running = false;
        let updates = match result {
            Ok(updates) => updates,
            Err(e) => {
                self.metrics.error("sync");
                debug!(error = %e, "sync with the store failed; will retry");
                return;
            }
        };
        for (chunk, from, data) in updates {
            self.merge_remote(chunk, from, data);
        }
    }

    /// Merges changes another server made to `chunk` (loaded since `from`).
    fn merge_remote(&mut self, chunk: ChunkPos, from: i64, data: ChunkData) {
        let Some(state) = self.chunks.ready_mut(chunk) else {
            return;
        };
        if state.synced != from {
            // The cache moved on while loading; the next sync redoes it.
            return;
        }
        let mut changed_blocks = Vec::new();
        for b in &data.blocks {
            let entry = state.blocks.get(&b.pos).copied();
            let take = match entry {
                None => true,
                Some(BlockEntry { key: None, .. }) => false,
                Some(BlockEntry { key: Some(k), .. }) => b.key > k,
            };
            if take {
                if entry.is_none_or(|e| e.w != b.w) {
                    changed_blocks.push((b.pos, b.w));
                }
                state.blocks.insert(
                    b.pos,
                    BlockEntry {
                        w: b.w,
                        key: Some(b.key),
                        generation: 0,
                    },
                );
            }
        }
        let old_lights = std::mem::take(&mut state.lights);
        let old_signs = std::mem::take(&mut state.signs);
        for l in &data.lights {
            state.lights.insert(l.pos, l.w);
        }
        for s in &data.signs {
            state.signs.insert((s.pos, s.face), s.text.clone());
        }
        // Our own writes the store may not show yet win.
        if let Some((_, batch)) = self.flusher.in_flight() {
            state.overlay_decor(batch, chunk);
        }
        state.overlay_decor(&self.flusher.pending, chunk);
        state.synced = state.synced.max(data.head);

        let mut lines = Vec::new();
        for (pos, w) in &changed_blocks {
            ServerMessage::Block {
                chunk,
                pos: *pos,
                w: *w,
            }
            .encode(&mut lines);
        }
        for (pos, w) in &state.lights {
            if old_lights.get(pos) != Some(w) {
                ServerMessage::Light {
                    chunk,
                    pos: *pos,
                    w: *w,
                }
                .encode(&mut lines);
            }
        }
        for ((pos, face), text) in &state.signs {
            if old_signs.get(&(*pos, *face)) != Some(text) {
                ServerMessage::Sign {
                    chunk,
                    pos: *pos,
                    face: *face,
                    text,
                }
                .encode(&mut lines);
            }
        }
        for (pos, face) in old_signs.keys() {
            if !state.signs.contains_key(&(*pos, *face)) {
                ServerMessage::Sign {
                    chunk,
                    pos: *pos,
                    face: *face,
                    text: "",
                }
                .encode(&mut lines);
            }
        }
        if lines.is_empty() {
            return;
        }
        ServerMessage::Redraw { chunk }.encode(&mut lines);
        let count = lines.iter().filter(|b| **b == b'\n').count() as u64;
        let mut near = Vec::new();
        if self.players.len() <= self.config.interest.broadcast_all_up_to {
            near.extend(self.players.keys().copied());
        } else {
            self.grid
                .near(chunk, self.config.interest.edit_radius, &mut near);
        }
        for conn in near {
            if let Some(player) = self.players.get(&conn) {
                self.push(player, &lines, count);
            }
        }
        for (pos, w) in &changed_blocks {
            if *w >= 0 && pos.chunk() == chunk {
                self.publish_edit(*pos, *w);
            }
        }
        if !changed_blocks.is_empty() {
            debug!(%chunk, blocks = changed_blocks.len(), "merged changes from another server");
        }
    }
}
