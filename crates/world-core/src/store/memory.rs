//! An in-memory [`BlockStore`]: the reference implementation of the
//! contract, for tests, benchmarks of the server without a database, and
//! throw-away worlds (`memory:` store URL). Nothing survives the process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::coords::{BlockPos, ChunkPos};

use super::{
    ApplyReceipt, Batch, BlockStore, ChunkAdvance, ChunkData, ChunkHead, DraftChange, DraftSlot,
    HistoryEntry, HistoryQuery, Key, MAX_KEY, PlayerRecord, StoreCounter, StoreCounters,
    StoreError, StoreResult, StoredBlock, StoredLight, StoredSign, validate_draft,
};

#[derive(Debug, Default)]
struct Chunk {
    head: Key,
    blocks: HashMap<BlockPos, (i32, Key)>,
    lights: BTreeMap<BlockPos, i32>,
    signs: BTreeMap<(BlockPos, i32), String>,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    chunks: HashMap<ChunkPos, Chunk>,
    players: HashMap<String, PlayerRecord>,
    drafts: HashMap<String, BTreeMap<DraftSlot, DraftChange>>,
    /// In the order recorded; `history_ids` keeps one entry per id.
    history: Vec<HistoryEntry>,
    history_ids: HashSet<i64>,
}

const REQUESTS: &str = "store_requests_total";
const HELP: &[(&str, &str)] = &[(REQUESTS, "Requests made to the store, by operation.")];

/// A [`BlockStore`] kept in a mutex-protected map. Every call is one
/// critical section, so batches are trivially atomic and keys of a chunk
/// become visible in order.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    counters: StoreCounters,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            counters: StoreCounters::new(HELP),
        }
    }
}

impl MemoryStore {
    /// An empty world.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens the store again after [`BlockStore::close`], with its data:
    /// what a restart over a durable store looks like, for tests.
    pub fn reopen(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = false;
    }

    fn with<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut State) -> StoreResult<T>,
    ) -> StoreResult<T> {
        // A poisoned lock only means a panic elsewhere; the data is plain.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.closed {
            return Err(StoreError::Closed);
        }
        self.counters.incr(REQUESTS, &[("op", op)]);
        f(&mut state)
    }
}

#[async_trait]
impl BlockStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn load_chunk(&self, chunk: ChunkPos, since: Key) -> StoreResult<ChunkData> {
        self.with("load_chunk", |state| {
            let Some(c) = state.chunks.get(&chunk) else {
                return Ok(ChunkData::default());
            };
            Ok(ChunkData {
                blocks: c
                    .blocks
                    .iter()
                    .filter(|(_, (_, key))| *key > since)
                    .map(|(pos, (w, key))| StoredBlock {
                        pos: *pos,
                        w: *w,
                        key: *key,
                    })
                    .collect(),
                lights: c
                    .lights
                    .iter()
                    .map(|(pos, w)| StoredLight { pos: *pos, w: *w })
                    .collect(),
                signs: c
                    .signs
                    .iter()
                    .map(|((pos, face), text)| StoredSign {
                        pos: *pos,
                        face: *face,
                        text: text.clone(),
                    })
                    .collect(),
                head: c.head,
            })
        })
    }

    async fn apply(&self, batch: &Batch) -> StoreResult<ApplyReceipt> {
        self.with("apply", |state| {
            batch.validate()?;
            let groups = batch.by_chunk();
            // Check every chunk's key budget before touching anything.
            for (chunk, changes) in &groups {
                let head = state.chunks.get(chunk).map_or(0, |c| c.head);
                let needed = changes.blocks.len().max(1) as Key;
                if head + needed > MAX_KEY {
                    return Err(StoreError::KeyExhausted {
                        p: chunk.p,
                        q: chunk.q,
                    });
                }
            }
            let mut receipt = ApplyReceipt::default();
            for (chunk, changes) in groups {
                let c = state.chunks.entry(chunk).or_default();
                let before = c.head;
                for clear in &changes.clears {
                    c.signs.retain(|(pos, _), _| *pos != clear.pos);
                    if let Some(light) = c.lights.get_mut(&clear.pos) {
                        *light = 0;
                    }
                }
                for block in &changes.blocks {
                    c.head += 1;
                    c.blocks.insert(block.pos, (block.w, c.head));
                }
                for light in &changes.lights {
                    c.lights.insert(light.pos, light.w);
                }
                for sign in &changes.signs {
                    match &sign.text {
                        Some(text) => c.signs.insert((sign.pos, sign.face), text.clone()),
                        None => c.signs.remove(&(sign.pos, sign.face)),
                    };
                }
                if changes.blocks.is_empty() {
                    c.head += 1;
                }
                receipt.chunks.push(ChunkAdvance {
                    chunk,
                    before,
                    after: c.head,
                });
            }
            for entry in batch.history() {
                if state.history_ids.insert(entry.id) {
                    state.history.push(entry.clone());
                }
            }
            Ok(receipt)
        })
    }

    async fn changed_chunks(&self, held: &[ChunkHead]) -> StoreResult<Vec<ChunkHead>> {
        self.with("changed_chunks", |state| {
            Ok(held
                .iter()
                .filter_map(|h| {
                    let head = state.chunks.get(&h.chunk)?.head;
                    (head > h.head).then_some(ChunkHead {
                        chunk: h.chunk,
                        head,
                    })
                })
                .collect())
        })
    }

    async fn list_chunks(&self) -> StoreResult<Vec<ChunkHead>> {
        self.with("list_chunks", |state| {
            let mut all: Vec<ChunkHead> = state
                .chunks
                .iter()
                .map(|(chunk, c)| ChunkHead {
                    chunk: *chunk,
                    head: c.head,
                })
                .collect();
            all.sort_unstable();
            Ok(all)
        })
    }

    async fn load_player(&self, name: &str) -> StoreResult<Option<PlayerRecord>> {
        self.with("load_player", |state| Ok(state.players.get(name).cloned()))
    }

    async fn save_players(&self, players: &[PlayerRecord]) -> StoreResult<()> {
        self.with("save_players", |state| {
            for p in players {
                state.players.insert(p.name.clone(), p.clone());
            }
            Ok(())
        })
    }

    async fn load_draft(&self, owner: &str) -> StoreResult<Vec<DraftChange>> {
        self.with("load_draft", |state| {
            Ok(state
                .drafts
                .get(owner)
                .map(|d| d.values().cloned().collect())
                .unwrap_or_default())
        })
    }

    async fn put_draft(&self, owner: &str, changes: &[DraftChange]) -> StoreResult<()> {
        self.with("put_draft", |state| {
            validate_draft(owner, changes)?;
            if changes.is_empty() {
                return Ok(());
            }
            let draft = state.drafts.entry(owner.to_owned()).or_default();
            for c in changes {
                draft.insert(c.slot(), c.clone());
            }
            Ok(())
        })
    }

    async fn delete_draft(&self, owner: &str) -> StoreResult<()> {
        self.with("delete_draft", |state| {
            state.drafts.remove(owner);
            Ok(())
        })
    }

    fn counters(&self) -> Vec<StoreCounter> {
        self.counters.snapshot()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.with("ping", |_| Ok(()))
    }

    async fn close(&self) -> StoreResult<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.closed = true;
        Ok(())
    }

    fn keeps_history(&self) -> bool {
        true
    }

    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<HistoryEntry>> {
        query.validate()?;
        self.with("history", |state| {
            let mut found: Vec<(usize, &HistoryEntry)> = state
                .history
                .iter()
                .enumerate()
                .filter(|(_, e)| query.matches(e))
                .collect();
            // Newest first; the same time in reverse recording order.
            found.sort_by(|(i, a), (j, b)| b.time_ms.cmp(&a.time_ms).then(j.cmp(i)));
            Ok(found
                .into_iter()
                .take(query.limit)
                .map(|(_, e)| e.clone())
                .collect())
        })
    }

    async fn prune_history(&self, older_than_ms: i64, max_rows: Option<u64>) -> StoreResult<u64> {
        self.with("prune_history", |state| {
            let before = state.history.len();
            state.history.retain(|e| e.time_ms >= older_than_ms);
            if let Some(max) = max_rows.and_then(|m| usize::try_from(m).ok())
                && state.history.len() > max
            {
                // Recording order is time order for a single server.
                let excess = state.history.len() - max;
                state.history.drain(..excess);
            }
            let kept: HashSet<i64> = state.history.iter().map(|e| e.id).collect();
            state.history_ids = kept;
            Ok((before - state.history.len()) as u64)
        })
    }
}

#[cfg(test)]
mod conformance {
    use std::sync::Arc;

    use super::MemoryStore;
    use crate::store::BlockStore;

    async fn fresh() -> Option<Arc<dyn BlockStore>> {
        Some(Arc::new(MemoryStore::new()))
    }

    crate::conformance_tests!(fresh);
    crate::history_conformance_tests!(fresh);
}
