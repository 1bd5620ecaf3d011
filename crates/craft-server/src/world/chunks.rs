//! The chunk cache: what the server knows of each hot chunk.
//!
//! A cached chunk holds every stored change of the chunk (so any `C,P,Q,KEY`
//! is answered from memory) plus the edits accepted but not yet written.
//! Each block remembers its key, or `None` while its write is pending; after
//! a flush it gets the chunk's head after that flush, an upper bound of its
//! real key, which is all a `K` line needs (sending a block twice is
//! harmless, missing one is not).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::Instant;

use world_core::coords::{BlockPos, ChunkPos};
use world_core::store::{Batch, ChunkData, Key};
use world_core::terrain::ChunkTerrain;

/// One block change known to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockEntry {
    /// Value.
    pub w: i32,
    /// Key (an upper bound of it after our own flush); `None` while the
    /// write is pending.
    pub key: Option<Key>,
    /// Flush generation that will carry the pending write.
    pub generation: u64,
}

/// The cached state of a loaded chunk.
#[derive(Debug, Default)]
pub struct ChunkState {
    /// Block changes (own values and neighbour mirrors).
    pub blocks: FxHashMap<BlockPos, BlockEntry>,
    /// Lights.
    pub lights: BTreeMap<BlockPos, i32>,
    /// Signs by position and face.
    pub signs: BTreeMap<(BlockPos, i32), String>,
    /// Every stored change up to this key is reflected here.
    pub synced: Key,
    /// Blocks whose write is pending.
    pub unflushed: usize,
    /// When a player last used this chunk (for eviction).
    pub last_used: Option<Instant>,
}

impl ChunkState {
    /// Builds the state from a full load (`since = 0`).
    pub fn from_data(data: ChunkData) -> Self {
        let mut state = Self {
            synced: data.head,
            ..Self::default()
        };
        for b in data.blocks {
            state.blocks.insert(
                b.pos,
                BlockEntry {
                    w: b.w,
                    key: Some(b.key),
                    generation: 0,
                },
            );
        }
        for l in data.lights {
            state.lights.insert(l.pos, l.w);
        }
        for s in data.signs {
            state.signs.insert((s.pos, s.face), s.text);
        }
        state
    }

    /// Records a pending block write.
    pub fn set_pending_block(&mut self, pos: BlockPos, w: i32, generation: u64) {
        let entry = BlockEntry {
            w,
            key: None,
            generation,
        };
        match self.blocks.insert(pos, entry) {
            Some(BlockEntry { key: None, .. }) => {}
            _ => self.unflushed += 1,
        }
    }

    /// The stored (or pending) value at `pos`, if any.
    pub fn block(&self, pos: BlockPos) -> Option<i32> {
        self.blocks.get(&pos).map(|e| e.w)
    }

    /// Removes every sign of `pos` and zeroes its light (a removed block).
    pub fn clear_decor(&mut self, pos: BlockPos) {
        self.signs.retain(|(p, _), _| *p != pos);
        if let Some(light) = self.lights.get_mut(&pos) {
            *light = 0;
        }
    }

    /// Applies a batch's lights, signs and clears for this chunk (used to
    /// overlay writes the store may not show yet).
    pub fn overlay_decor(&mut self, batch: &Batch, chunk: ChunkPos) {
        let changes = batch.for_chunk(chunk);
        for clear in changes.clears {
            self.clear_decor(clear.pos);
        }
        for light in changes.lights {
            self.lights.insert(light.pos, light.w);
        }
        for sign in changes.signs {
            match &sign.text {
                Some(text) => self.signs.insert((sign.pos, sign.face), text.clone()),
                None => self.signs.remove(&(sign.pos, sign.face)),
            };
        }
    }

    /// Applies a batch's block writes for this chunk as pending.
    pub fn overlay_blocks(&mut self, batch: &Batch, chunk: ChunkPos, generation: u64) {
        for block in batch.for_chunk(chunk).blocks {
            self.set_pending_block(block.pos, block.w, generation);
        }
    }

    /// Marks the writes of flush `generation` as stored, with `key` (the
    /// chunk's head after the flush) as their key.
    pub fn mark_flushed(
        &mut self,
        positions: impl Iterator<Item = BlockPos>,
        generation: u64,
        key: Key,
    ) {
        for pos in positions {
            if let Some(entry) = self.blocks.get_mut(&pos)
                && entry.key.is_none()
                && entry.generation <= generation
            {
                entry.key = Some(key);
                self.unflushed -= 1;
            }
        }
    }

    /// Rough heap bytes, for the cache size metric.
    pub fn heap_bytes(&self) -> usize {
        self.blocks.capacity() * (std::mem::size_of::<(BlockPos, BlockEntry)>() + 1)
            + self.lights.len() * 48
            + self.signs.values().map(|t| 64 + t.len()).sum::<usize>()
    }
}

/// Load state of a chunk.
#[derive(Debug, Default)]
pub enum Load {
    /// Not in memory.
    #[default]
    Absent,
    /// A load is running.
    Loading,
    /// Loaded.
    Ready(ChunkState),
    /// The last load failed after retrying; the next request retries.
    Failed,
}

/// Everything the server keeps for a chunk.
#[derive(Debug, Default)]
pub struct ChunkSlot {
    /// Stored changes.
    pub load: Load,
    /// Generated terrain, once someone edited here.
    pub terrain: Option<Arc<ChunkTerrain>>,
    /// A terrain generation is running.
    pub terrain_pending: bool,
}

/// The cache.
#[derive(Debug, Default)]
pub struct ChunkCache {
    /// Slots by chunk.
    pub slots: FxHashMap<ChunkPos, ChunkSlot>,
}

impl ChunkCache {
    /// The loaded state of `chunk`, if loaded.
    pub fn ready(&self, chunk: ChunkPos) -> Option<&ChunkState> {
        match self.slots.get(&chunk).map(|s| &s.load) {
            Some(Load::Ready(state)) => Some(state),
            _ => None,
        }
    }

    /// The loaded state of `chunk`, mutably.
    pub fn ready_mut(&mut self, chunk: ChunkPos) -> Option<&mut ChunkState> {
        match self.slots.get_mut(&chunk).map(|s| &mut s.load) {
            Some(Load::Ready(state)) => Some(state),
            _ => None,
        }
    }

    /// Number of loaded chunks.
    pub fn loaded(&self) -> usize {
        self.slots
            .values()
            .filter(|s| matches!(s.load, Load::Ready(_)))
            .count()
    }

    /// Drops least recently used chunks beyond `limit` that have nothing
    /// pending. Returns how many were dropped.
    pub fn evict(&mut self, limit: usize) -> usize {
        let loaded = self.loaded();
        if loaded <= limit {
            return 0;
        }
        let mut candidates: Vec<(Option<Instant>, ChunkPos)> = self
            .slots
            .iter()
            .filter_map(|(chunk, slot)| match &slot.load {
                Load::Ready(state) if state.unflushed == 0 && !slot.terrain_pending => {
                    Some((state.last_used, *chunk))
                }
                Load::Failed => Some((None, *chunk)),
                _ => None,
            })
            .collect();
        candidates.sort_unstable();
        let excess = loaded - limit;
        let mut dropped = 0;
        for (_, chunk) in candidates.into_iter().take(excess) {
            self.slots.remove(&chunk);
            dropped += 1;
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use world_core::store::{ChangeMeta, StoredBlock};

    const C: ChunkPos = ChunkPos::new(0, 0);

    #[test]
    fn pending_blocks_are_counted_once_and_marked_flushed() {
        let mut state = ChunkState::from_data(ChunkData {
            blocks: vec![StoredBlock {
                pos: BlockPos::new(1, 1, 1),
                w: 3,
                key: 7,
            }],
            head: 7,
            ..ChunkData::default()
        });
        state.set_pending_block(BlockPos::new(1, 1, 1), 0, 1);
        state.set_pending_block(BlockPos::new(1, 1, 1), 5, 1);
        state.set_pending_block(BlockPos::new(2, 1, 1), 5, 2);
        assert_eq!(state.unflushed, 2);
        state.mark_flushed(
            [BlockPos::new(1, 1, 1), BlockPos::new(2, 1, 1)].into_iter(),
            1,
            9,
        );
        assert_eq!(state.unflushed, 1, "generation 2 is not part of flush 1");
        assert_eq!(state.blocks[&BlockPos::new(1, 1, 1)].key, Some(9));
    }

    #[test]
    fn overlay_applies_clears_then_writes() {
        let mut state = ChunkState::default();
        let pos = BlockPos::new(1, 2, 3);
        state.lights.insert(pos, 9);
        state.signs.insert((pos, 0), "old".into());
        let mut batch = Batch::new();
        batch.clear_decor(C, pos);
        batch.set_sign(C, pos, 1, "new", ChangeMeta::default());
        state.overlay_decor(&batch, C);
        assert_eq!(state.lights.get(&pos), Some(&0));
        assert_eq!(state.signs.len(), 1);
        assert_eq!(state.signs.get(&(pos, 1)).map(String::as_str), Some("new"));
    }
}
