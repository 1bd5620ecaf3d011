//! Block history on the server side: building entries for accepted edits,
//! showing them, and rollback.
//!
//! Rollback is one function over a store ([`rollback`]), used the same way
//! by the in-game `/rollback`, the admin page and `craft-server rollback`:
//! it reads the entries to undo, reads the current values of their
//! positions from the store (terrain where nothing is stored), and writes
//! every old value back as **one** batch, which carries its own history
//! entries (authored by whoever asked), so a rollback can itself be rolled
//! back. A server that runs it marks the chunks it wrote as changed by
//! someone else: its usual sync reloads them and shows them to the players
//! who have them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use world_core::coords::{BlockPos, ChunkPos};
use world_core::store::{
    Area, Author, Batch, Change, ChangeMeta, ChunkData, ChunkHead, DraftChange, DraftEdit,
    HistoryEntry, HistoryQuery, first_changes,
};
use world_core::terrain::{ChunkTerrain, TERRAIN_TOP};
use world_core::{BlockStore, StoreError};

/// The most entries one rollback undoes; beyond, it is refused (narrow the
/// duration or radius) rather than cut short.
pub const MAX_ROLLBACK_ENTRIES: usize = 100_000;

/// Entries `/history` shows.
pub const HISTORY_LINES: usize = 8;

/// Chunks a rollback reads at once.
const LOAD_CONCURRENCY: usize = 8;

/// Why a rollback (or a history read) failed.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// More entries match than [`MAX_ROLLBACK_ENTRIES`].
    #[error("more than {MAX_ROLLBACK_ENTRIES} changes match; narrow the duration or the radius")]
    TooMany,
    /// The store failed or does not keep history.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What to undo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackRequest {
    /// Whose changes (user name or guest nick); `None`: everyone's.
    pub author: Option<String>,
    /// Changes at or after this time (milliseconds since the epoch).
    pub since_ms: i64,
    /// Only inside this area.
    pub area: Option<Area>,
    /// Who asks (recorded as the author of the restoring changes).
    pub by: Author,
    /// The time recorded for the restoring changes.
    pub now_ms: i64,
}

/// What a rollback did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RollbackReport {
    /// Changes found.
    pub found: usize,
    /// Positions (blocks, lights, sign faces) put back.
    pub restored: usize,
    /// Chunks written (mirrors included), with their heads after the
    /// rollback's batch.
    pub chunks: Vec<ChunkHead>,
}

/// A random, non-negative entry id.
pub fn entry_id() -> i64 {
    rand::random::<i64>() & i64::MAX
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `DURATION` of `/rollback` and the CLI: `90s`, `10m`, `2h`, `1d`, or
/// bare seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (examples: 90s, 10m, 2h, 1d)"))
}

/// One line describing `entry` for players and the command line, e.g.
/// `2026-12-05 12:00:01 ann (192.0.2.7) block 0 -> 5 at 1,2,3`.
pub fn describe(entry: &HistoryEntry) -> String {
    let when = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(entry.time_ms).unwrap_or(0)),
    )
    .to_string()
    .replace('T', " ")
    .trim_end_matches('Z')
    .to_owned();
    let who = match (&entry.author.addr, entry.author.guest) {
        (Some(addr), _) => format!("{} ({addr})", entry.author.name),
        (None, true) => format!("{} (guest)", entry.author.name),
        (None, false) => entry.author.name.to_string(),
    };
    let what = match &entry.change {
        Change::Block { old, new } => format!("block {old} -> {new}"),
        Change::Light { old, new } => format!("light {old} -> {new}"),
        Change::Sign { face, old, new } => {
            let text = |t: &Option<String>| {
                t.as_deref()
                    .map_or("(none)".to_owned(), |t| format!("{t:?}"))
            };
            format!("sign {face} {} -> {}", text(old), text(new))
        }
    };
    let p = entry.pos;
    format!("{when} {who} {what} at {},{},{}", p.x, p.y, p.z)
}

/// The current values of a chunk's positions, as a rollback needs them.
struct Current {
    data: ChunkData,
    blocks: HashMap<BlockPos, i32>,
    terrain: Option<Arc<ChunkTerrain>>,
}

impl Current {
    fn block(&self, pos: BlockPos) -> i32 {
        if let Some(w) = self.blocks.get(&pos) {
            return *w;
        }
        match &self.terrain {
            Some(t) if (0..=TERRAIN_TOP).contains(&pos.y) => t.get(pos),
            _ => world_core::item::AIR,
        }
    }

    fn light(&self, pos: BlockPos) -> i32 {
        self.data
            .lights
            .iter()
            .find(|l| l.pos == pos)
            .map_or(0, |l| l.w)
    }

    fn sign(&self, pos: BlockPos, face: i32) -> Option<String> {
        self.data
            .signs
            .iter()
            .find(|s| s.pos == pos && s.face == face)
            .map(|s| s.text.clone())
    }

    fn signs_at(&self, pos: BlockPos) -> Vec<(i32, String)> {
        self.data
            .signs
            .iter()
            .filter(|s| s.pos == pos)
            .map(|s| (s.face, s.text.clone()))
            .collect()
    }
}

/// Reads a chunk and, when a block of it may come from the terrain, the
/// terrain (generated on a blocking thread).
async fn current(
    store: &dyn BlockStore,
    chunk: ChunkPos,
    needs_terrain: bool,
) -> Result<Current, StoreError> {
    let data = store.load_chunk(chunk, 0).await?;
    let blocks = data.blocks.iter().map(|b| (b.pos, b.w)).collect();
    let terrain = if needs_terrain {
        let generated = tokio::task::spawn_blocking(move || ChunkTerrain::generate(chunk))
            .await
            .map_err(|e| StoreError::other("generating terrain for a rollback", e))?;
        Some(Arc::new(generated))
    } else {
        None
    };
    Ok(Current {
        data,
        blocks,
        terrain,
    })
}

/// [`current`] of several chunks, a few reads at a time.
async fn current_all(
    store: &dyn BlockStore,
    chunks: BTreeMap<ChunkPos, bool>,
) -> Result<HashMap<ChunkPos, Current>, StoreError> {
    stream::iter(chunks)
        .map(|(chunk, terrain)| async move { current(store, chunk, terrain).await.map(|c| (chunk, c)) })
        .buffer_unordered(LOAD_CONCURRENCY)
        .try_collect()
        .await
}

/// Adds to `batch` (the [`draft_batch`](world_core::store::draft_batch) of
/// `changes`) the history of publishing them: what each drafted position
/// held in the store before, and what it gets, authored by `author` at
/// `now_ms`. One chunk read per drafted chunk, so that the entries commit
/// with the publish itself.
pub async fn record_draft(
    store: &dyn BlockStore,
    batch: &mut Batch,
    changes: &[DraftChange],
    author: &Author,
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut chunks: BTreeMap<ChunkPos, bool> = BTreeMap::new();
    for c in changes {
        let terrain = matches!(c.edit, DraftEdit::Block(_)) && (0..=TERRAIN_TOP).contains(&c.pos.y);
        *chunks.entry(c.pos.chunk()).or_default() |= terrain;
    }
    let loaded = current_all(store, chunks).await?;
    let mut record = |pos: BlockPos, change: Change| {
        batch.record(HistoryEntry {
            id: entry_id(),
            time_ms: now_ms,
            author: author.clone(),
            pos,
            change,
        });
    };
    // The batch clears before it writes lights and signs: so do the
    // entries, and what a clear removed reads as empty afterwards.
    let mut cleared: BTreeSet<BlockPos> = BTreeSet::new();
    for c in changes {
        let Some(cur) = loaded.get(&c.pos.chunk()) else {
            continue;
        };
        match c.edit {
            DraftEdit::Block(new) => {
                let old = cur.block(c.pos);
                if old != new {
                    record(c.pos, Change::Block { old, new });
                }
                if new == 0 {
                    cleared.insert(c.pos);
                }
            }
            DraftEdit::Clear => {
                cleared.insert(c.pos);
            }
            DraftEdit::Light(_) | DraftEdit::Sign { .. } => {}
        }
    }
    for pos in &cleared {
        let Some(cur) = loaded.get(&pos.chunk()) else {
            continue;
        };
        let light = cur.light(*pos);
        if light != 0 {
            record(*pos, Change::Light { old: light, new: 0 });
        }
        for (face, text) in cur.signs_at(*pos) {
            record(
                *pos,
                Change::Sign {
                    face,
                    old: Some(text),
                    new: None,
                },
            );
        }
    }
    for c in changes {
        let Some(cur) = loaded.get(&c.pos.chunk()) else {
            continue;
        };
        let was_cleared = cleared.contains(&c.pos);
        match &c.edit {
            DraftEdit::Light(new) => {
                let old = if was_cleared { 0 } else { cur.light(c.pos) };
                if old != *new {
                    record(c.pos, Change::Light { old, new: *new });
                }
            }
            DraftEdit::Sign { face, text } => {
                let old = if was_cleared {
                    None
                } else {
                    cur.sign(c.pos, *face)
                };
                let new = (!text.is_empty()).then(|| text.clone());
                if old != new {
                    record(
                        c.pos,
                        Change::Sign {
                            face: *face,
                            old,
                            new,
                        },
                    );
                }
            }
            DraftEdit::Block(_) | DraftEdit::Clear => {}
        }
    }
    Ok(())
}

/// Undoes what `request` names as one batch (see the module docs).
pub async fn rollback(
    store: &dyn BlockStore,
    request: &RollbackRequest,
) -> Result<RollbackReport, RollbackError> {
    let query = HistoryQuery {
        at: None,
        author: request.author.clone(),
        since_ms: Some(request.since_ms),
        area: request.area,
        limit: MAX_ROLLBACK_ENTRIES + 1,
    };
    let entries = store.history(&query).await?;
    if entries.len() > MAX_ROLLBACK_ENTRIES {
        return Err(RollbackError::TooMany);
    }
    let firsts = first_changes(&entries);
    // Chunks to read, and whether one of their blocks may be terrain.
    let mut chunks: BTreeMap<ChunkPos, bool> = BTreeMap::new();
    for e in &firsts {
        let terrain =
            matches!(e.change, Change::Block { .. }) && (0..=TERRAIN_TOP).contains(&e.pos.y);
        *chunks.entry(e.pos.chunk()).or_default() |= terrain;
    }
    let loaded = current_all(store, chunks).await?;

    let meta = ChangeMeta {
        user: Some(request.by.name.clone()),
        time_ms: Some(request.now_ms),
    };
    let mut batch = Batch::new();
    let mut restored = 0;
    let record = |batch: &mut Batch, pos: BlockPos, change: Change| {
        batch.record(HistoryEntry {
            id: entry_id(),
            time_ms: request.now_ms,
            author: request.by.clone(),
            pos,
            change,
        });
    };
    // Blocks first: restoring air clears the position's lights and signs,
    // which the light and sign restores below may then put back.
    let mut cleared: BTreeSet<BlockPos> = BTreeSet::new();
    for e in &firsts {
        let Change::Block { old, .. } = e.change else {
            continue;
        };
        let Some(cur) = loaded.get(&e.pos.chunk()) else {
            continue;
        };
        let now = cur.block(e.pos);
        if now == old {
            continue;
        }
        restored += 1;
        record(&mut batch, e.pos, Change::Block { old: now, new: old });
        batch.set_block(e.pos.chunk(), e.pos, old, meta.clone());
        for mirror in e.pos.mirror_chunks() {
            batch.set_block(mirror, e.pos, -old, meta.clone());
        }
        if old == 0 {
            batch.clear_decor(e.pos.chunk(), e.pos);
            cleared.insert(e.pos);
            let light = cur.light(e.pos);
            if light != 0 {
                record(&mut batch, e.pos, Change::Light { old: light, new: 0 });
            }
            for (face, text) in cur.signs_at(e.pos) {
                let change = Change::Sign {
                    face,
                    old: Some(text),
                    new: None,
                };
                record(&mut batch, e.pos, change);
            }
        }
    }
    for e in &firsts {
        let Some(cur) = loaded.get(&e.pos.chunk()) else {
            continue;
        };
        match &e.change {
            Change::Block { .. } => {}
            Change::Light { old, .. } => {
                let now = if cleared.contains(&e.pos) {
                    0
                } else {
                    cur.light(e.pos)
                };
                if now == *old {
                    continue;
                }
                restored += 1;
                record(
                    &mut batch,
                    e.pos,
                    Change::Light {
                        old: now,
                        new: *old,
                    },
                );
                batch.set_light(e.pos.chunk(), e.pos, *old, meta.clone());
            }
            Change::Sign { face, old, .. } => {
                let now = if cleared.contains(&e.pos) {
                    None
                } else {
                    cur.sign(e.pos, *face)
                };
                if now == *old {
                    continue;
                }
                restored += 1;
                let change = Change::Sign {
                    face: *face,
                    old: now,
                    new: old.clone(),
                };
                record(&mut batch, e.pos, change);
                let text = old.as_deref().unwrap_or("");
                batch.set_sign(e.pos.chunk(), e.pos, *face, text, meta.clone());
            }
        }
    }
    let mut report = RollbackReport {
        found: entries.len(),
        restored,
        chunks: Vec::new(),
    };
    if batch.is_empty() {
        return Ok(report);
    }
    let receipt = store.apply(&batch).await?;
    report.chunks = receipt.heads().collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use world_core::store::MemoryStore;

    fn edit(store_batch: &mut Batch, who: &str, t: i64, pos: BlockPos, old: i32, new: i32) {
        store_batch.set_block(pos.chunk(), pos, new, ChangeMeta::default());
        store_batch.record(HistoryEntry {
            id: entry_id(),
            time_ms: t,
            author: Author::user(who),
            pos,
            change: Change::Block { old, new },
        });
    }

    fn request(author: &str, since_ms: i64, by: &str, now_ms: i64) -> RollbackRequest {
        RollbackRequest {
            author: Some(author.to_owned()),
            since_ms,
            area: None,
            by: Author::user(by),
            now_ms,
        }
    }

    async fn block(store: &MemoryStore, pos: BlockPos) -> Option<i32> {
        let data = store.load_chunk(pos.chunk(), 0).await.expect("load");
        data.blocks.iter().find(|b| b.pos == pos).map(|b| b.w)
    }

    #[tokio::test]
    async fn rollback_restores_the_first_old_value_and_can_be_undone() {
        let store = MemoryStore::new();
        let pos = BlockPos::new(5, 100, -5);
        let mut batch = Batch::new();
        edit(&mut batch, "ann", 1_000, pos, 0, 3);
        store.apply(&batch).await.expect("apply");
        let mut batch = Batch::new();
        edit(&mut batch, "grief", 2_000, pos, 3, 7);
        edit(&mut batch, "grief", 3_000, pos, 7, 9);
        store.apply(&batch).await.expect("apply");

        let report = rollback(&store, &request("grief", 1_500, "op", 4_000))
            .await
            .expect("rollback");
        assert_eq!((report.found, report.restored), (2, 1));
        assert_eq!(block(&store, pos).await, Some(3));

        let again = rollback(&store, &request("op", 3_500, "op", 5_000))
            .await
            .expect("undo");
        assert_eq!(again.restored, 1);
        assert_eq!(block(&store, pos).await, Some(9));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn lines() {
        let e = HistoryEntry {
            id: 1,
            time_ms: 0,
            author: Author::user("ann"),
            pos: BlockPos::new(1, 2, 3),
            change: Change::Sign {
                face: 1,
                old: None,
                new: Some("hi".into()),
            },
        };
        assert_eq!(
            describe(&e),
            "1970-01-01 00:00:00 ann sign 1 (none) -> \"hi\" at 1,2,3"
        );
    }
}
