//! A batch of changes, kept in normal form.
//!
//! The server records changes in the order players make them; [`Batch`]
//! folds them as they arrive so that a store receives at most one write per
//! target and never has to replay a sequence:
//!
//! 1. `clears` (a removed block takes its signs and zeroes its light) apply
//!    to rows that existed before the batch;
//! 2. then block, light and sign writes, each the last one made to its
//!    target.
//!
//! Folding keeps the result identical to replaying the changes one by one:
//! a light set before a clear in the same batch becomes a light of 0, a sign
//! written before a clear becomes a deletion, a sign written after it stays.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::coords::{BlockPos, ChunkPos};
use crate::rules::{MAX_LIGHT, MAX_SIGN_FACE};

use super::error::{StoreError, StoreResult};
use super::history::HistoryEntry;

/// Largest sign text a store accepts, in bytes. The game itself stops at 48
/// characters; this bound only keeps stores and imports sane.
pub const MAX_STORED_TEXT_BYTES: usize = 1024;

/// Largest absolute block value a store accepts (items are below 64;
/// mirrors are negative).
pub const MAX_BLOCK_VALUE: i32 = 255;

/// Latest change time a store accepts (the end of year 9999, in
/// milliseconds since the Unix epoch): every database can hold it.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// Who made a change and when; stores keep it beside blocks, lights and signs
/// where their schema has room (the seed keeps `user_id` and `updated_at`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeMeta {
    /// The logged-in user, if any.
    pub user: Option<Arc<str>>,
    /// Milliseconds since the Unix epoch.
    pub time_ms: Option<i64>,
}

/// A block write: `w` at `pos`, stored under `chunk` (the block's own chunk,
/// or a neighbour keeping the `-w` mirror).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockWrite {
    /// The chunk the row is stored under.
    pub chunk: ChunkPos,
    /// The block.
    pub pos: BlockPos,
    /// The new value (`0` = removed, negative = neighbour mirror).
    pub w: i32,
    /// Author and time.
    pub meta: ChangeMeta,
}

/// A light write: level `w` on the block at `pos`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LightWrite {
    /// The chunk the row is stored under.
    pub chunk: ChunkPos,
    /// The block.
    pub pos: BlockPos,
    /// Light level, `0..=15`.
    pub w: i32,
    /// Author and time.
    pub meta: ChangeMeta,
}

/// A sign write: `text` on `face` of the block at `pos`; `None` deletes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignWrite {
    /// The chunk the row is stored under.
    pub chunk: ChunkPos,
    /// The block.
    pub pos: BlockPos,
    /// Face, `0..=7`.
    pub face: i32,
    /// New text, or `None` to delete the face's sign.
    pub text: Option<String>,
    /// Author and time.
    pub meta: ChangeMeta,
}

/// A clear: delete every sign of the block at `pos` and set its light to 0
/// (what removing a block does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DecorClear {
    /// The chunk the rows are stored under.
    pub chunk: ChunkPos,
    /// The block.
    pub pos: BlockPos,
}

/// Everything a batch changes in one chunk, borrowed from the batch.
#[derive(Debug, Default)]
pub struct ChunkChanges<'a> {
    /// Clears, applied first.
    pub clears: Vec<&'a DecorClear>,
    /// Block writes; each gets a new key.
    pub blocks: Vec<&'a BlockWrite>,
    /// Light writes.
    pub lights: Vec<&'a LightWrite>,
    /// Sign writes and deletions.
    pub signs: Vec<&'a SignWrite>,
}

impl ChunkChanges<'_> {
    /// How many writes this chunk receives.
    pub fn len(&self) -> usize {
        self.clears.len() + self.blocks.len() + self.lights.len() + self.signs.len()
    }

    /// Whether nothing changes in this chunk.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type PosKey = (ChunkPos, BlockPos);
type FaceKey = (ChunkPos, BlockPos, i32);

/// Changes to apply atomically, in normal form (see the module docs).
/// Iteration is ordered by chunk, then position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    clears: BTreeSet<DecorClear>,
    blocks: BTreeMap<PosKey, BlockWrite>,
    lights: BTreeMap<PosKey, LightWrite>,
    signs: BTreeMap<FaceKey, SignWrite>,
    /// Every change as made (not folded), for stores that keep history.
    history: Vec<HistoryEntry>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets block `pos` to `w` under `chunk`.
    pub fn set_block(&mut self, chunk: ChunkPos, pos: BlockPos, w: i32, meta: ChangeMeta) {
        self.blocks.insert(
            (chunk, pos),
            BlockWrite {
                chunk,
                pos,
                w,
                meta,
            },
        );
    }

    /// Sets the light on `pos` to `w`.
    pub fn set_light(&mut self, chunk: ChunkPos, pos: BlockPos, w: i32, meta: ChangeMeta) {
        self.lights.insert(
            (chunk, pos),
            LightWrite {
                chunk,
                pos,
                w,
                meta,
            },
        );
    }

    /// Sets the text of a sign face; an empty `text` deletes it.
    pub fn set_sign(
        &mut self,
        chunk: ChunkPos,
        pos: BlockPos,
        face: i32,
        text: &str,
        meta: ChangeMeta,
    ) {
        let text = (!text.is_empty()).then(|| text.to_owned());
        self.signs.insert(
            (chunk, pos, face),
            SignWrite {
                chunk,
                pos,
                face,
                text,
                meta,
            },
        );
    }

    /// Deletes every sign of `pos` and sets its light to 0.
    pub fn clear_decor(&mut self, chunk: ChunkPos, pos: BlockPos) {
        if let Some(light) = self.lights.get_mut(&(chunk, pos)) {
            light.w = 0;
        }
        for (_, sign) in self
            .signs
            .range_mut((chunk, pos, i32::MIN)..=(chunk, pos, i32::MAX))
        {
            sign.text = None;
        }
        self.clears.insert(DecorClear { chunk, pos });
    }

    /// Records who changed what, to be written with the batch's changes by
    /// stores that keep history. Entries are kept in the order made, one per
    /// change (they are not folded like the writes).
    pub fn record(&mut self, entry: HistoryEntry) {
        self.history.push(entry);
    }

    /// The history entries, in the order recorded.
    pub fn history(&self) -> &[HistoryEntry] {
        &self.history
    }

    /// Keeps only the history entries `keep` accepts (a batch losing the
    /// writes of a chunk loses their entries too).
    pub fn retain_history(&mut self, keep: impl FnMut(&HistoryEntry) -> bool) {
        self.history.retain(keep);
    }

    /// Appends `later`, as if its changes had been made after this batch's.
    /// Used to put a failed batch back in front of newer changes.
    pub fn extend(&mut self, later: Batch) {
        for clear in later.clears {
            self.clear_decor(clear.chunk, clear.pos);
        }
        self.blocks.extend(later.blocks);
        self.lights.extend(later.lights);
        self.signs.extend(later.signs);
        self.history.extend(later.history);
    }

    /// Number of writes (clears included; history entries are not writes).
    pub fn len(&self) -> usize {
        self.clears.len() + self.blocks.len() + self.lights.len() + self.signs.len()
    }

    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Clears, in order.
    pub fn clears(&self) -> impl ExactSizeIterator<Item = &DecorClear> {
        self.clears.iter()
    }

    /// Block writes, in order.
    pub fn blocks(&self) -> impl ExactSizeIterator<Item = &BlockWrite> {
        self.blocks.values()
    }

    /// Light writes, in order.
    pub fn lights(&self) -> impl ExactSizeIterator<Item = &LightWrite> {
        self.lights.values()
    }

    /// Sign writes and deletions, in order.
    pub fn signs(&self) -> impl ExactSizeIterator<Item = &SignWrite> {
        self.signs.values()
    }

    /// The chunks this batch touches, in order.
    pub fn chunks(&self) -> BTreeSet<ChunkPos> {
        self.by_chunk().into_keys().collect()
    }

    /// The batch grouped by chunk, in order.
    pub fn by_chunk(&self) -> BTreeMap<ChunkPos, ChunkChanges<'_>> {
        let mut out: BTreeMap<ChunkPos, ChunkChanges<'_>> = BTreeMap::new();
        for c in &self.clears {
            out.entry(c.chunk).or_default().clears.push(c);
        }
        for b in self.blocks.values() {
            out.entry(b.chunk).or_default().blocks.push(b);
        }
        for l in self.lights.values() {
            out.entry(l.chunk).or_default().lights.push(l);
        }
        for s in self.signs.values() {
            out.entry(s.chunk).or_default().signs.push(s);
        }
        out
    }

    /// What this batch changes in one chunk (a range lookup, not a scan).
    pub fn for_chunk(&self, chunk: ChunkPos) -> ChunkChanges<'_> {
        let lo = BlockPos::new(i32::MIN, i32::MIN, i32::MIN);
        let hi = BlockPos::new(i32::MAX, i32::MAX, i32::MAX);
        let clear_lo = DecorClear { chunk, pos: lo };
        let clear_hi = DecorClear { chunk, pos: hi };
        ChunkChanges {
            clears: self.clears.range(clear_lo..=clear_hi).collect(),
            blocks: self
                .blocks
                .range((chunk, lo)..=(chunk, hi))
                .map(|(_, b)| b)
                .collect(),
            lights: self
                .lights
                .range((chunk, lo)..=(chunk, hi))
                .map(|(_, l)| l)
                .collect(),
            signs: self
                .signs
                .range((chunk, lo, i32::MIN)..=(chunk, hi, i32::MAX))
                .map(|(_, s)| s)
                .collect(),
        }
    }

    /// Checks every value against what stores accept. Stores call this
    /// before writing anything, so an invalid batch changes nothing.
    pub fn validate(&self) -> StoreResult<()> {
        for entry in &self.history {
            entry.validate()?;
        }
        let bad_time = |meta: &ChangeMeta, pos: BlockPos| {
            meta.time_ms
                .is_some_and(|t| !(0..=MAX_TIME_MS).contains(&t))
                .then(|| {
                    StoreError::Invalid(format!(
                        "change time {:?} at {pos} is outside 1970..=9999",
                        meta.time_ms
                    ))
                })
        };
        // One pass over the blocks (a large batch's client time is spent
        // here while the store waits), reporting in the order of the
        // checks: times of every change first, then values.
        let (mut time_error, mut value_error) = (None, None);
        for b in self.blocks.values() {
            time_error = bad_time(&b.meta, b.pos);
            if time_error.is_some() {
                break;
            }
            if value_error.is_none() && b.w.unsigned_abs() > MAX_BLOCK_VALUE.unsigned_abs() {
                value_error = Some(StoreError::Invalid(format!(
                    "block value {} at {} is out of range",
                    b.w, b.pos
                )));
            }
        }
        let others = self
            .lights
            .values()
            .map(|l| (&l.meta, l.pos))
            .chain(self.signs.values().map(|s| (&s.meta, s.pos)));
        if let Some(e) = time_error.or_else(|| others.into_iter().find_map(|(m, p)| bad_time(m, p)))
        {
            return Err(e);
        }
        if let Some(e) = value_error {
            return Err(e);
        }
        for l in self.lights.values() {
            if !(0..=MAX_LIGHT).contains(&l.w) {
                return Err(StoreError::Invalid(format!(
                    "light value {} at {} is out of range",
                    l.w, l.pos
                )));
            }
        }
        for s in self.signs.values() {
            if !(0..=MAX_SIGN_FACE).contains(&s.face) {
                return Err(StoreError::Invalid(format!(
                    "sign face {} at {} is out of range",
                    s.face, s.pos
                )));
            }
            if let Some(text) = &s.text {
                if text.len() > MAX_STORED_TEXT_BYTES {
                    return Err(StoreError::Invalid(format!(
                        "sign text at {} is {} bytes, more than {MAX_STORED_TEXT_BYTES}",
                        s.pos,
                        text.len()
                    )));
                }
                if text.contains(['\n', '\r', '\0']) {
                    return Err(StoreError::Invalid(format!(
                        "sign text at {} contains a line break or NUL",
                        s.pos
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: ChunkPos = ChunkPos::new(0, 0);
    const AT: BlockPos = BlockPos::new(1, 2, 3);

    fn meta() -> ChangeMeta {
        ChangeMeta::default()
    }

    #[test]
    fn last_write_wins() {
        let mut b = Batch::new();
        b.set_block(C, AT, 3, meta());
        b.set_block(C, AT, 0, meta());
        assert_eq!(b.blocks().map(|b| b.w).collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn clear_folds_earlier_lights_and_signs() {
        let mut b = Batch::new();
        b.set_light(C, AT, 5, meta());
        b.set_sign(C, AT, 0, "before", meta());
        b.clear_decor(C, AT);
        b.set_sign(C, AT, 1, "after", meta());
        assert_eq!(b.lights().map(|l| l.w).collect::<Vec<_>>(), vec![0]);
        let signs: Vec<_> = b.signs().map(|s| (s.face, s.text.clone())).collect();
        assert_eq!(signs, vec![(0, None), (1, Some("after".to_owned()))]);
        assert_eq!(b.clears().count(), 1);
    }

    #[test]
    fn extend_puts_later_changes_after() {
        let mut first = Batch::new();
        first.set_sign(C, AT, 0, "old", meta());
        first.set_light(C, AT, 9, meta());
        let mut later = Batch::new();
        later.clear_decor(C, AT);
        later.set_block(C, AT, 0, meta());
        first.extend(later);
        assert_eq!(first.signs().next().and_then(|s| s.text.clone()), None);
        assert_eq!(first.lights().next().map(|l| l.w), Some(0));
        assert_eq!(first.len(), 4);
    }

    #[test]
    fn empty_sign_text_is_a_deletion() {
        let mut b = Batch::new();
        b.set_sign(C, AT, 2, "", meta());
        assert_eq!(b.signs().next().map(|s| s.text.is_none()), Some(true));
    }

    #[test]
    fn validation_rejects_what_stores_cannot_keep() {
        let mut b = Batch::new();
        b.set_sign(C, AT, 0, "two\nlines", meta());
        assert!(matches!(b.validate(), Err(StoreError::Invalid(_))));
        let mut b = Batch::new();
        b.set_light(C, AT, 16, meta());
        assert!(b.validate().is_err());
        let mut b = Batch::new();
        let far_future = ChangeMeta {
            user: None,
            time_ms: Some(MAX_TIME_MS + 1),
        };
        b.set_block(C, AT, 1, far_future);
        assert!(b.validate().is_err());
        let mut b = Batch::new();
        b.set_block(C, AT, -63, meta());
        b.set_sign(C, AT, 7, "a, \"quoted\" é", meta());
        assert!(b.validate().is_ok());
    }

    #[test]
    fn grouping_by_chunk() {
        let mut b = Batch::new();
        b.set_block(ChunkPos::new(1, 0), AT, -3, meta());
        b.set_block(C, AT, 3, meta());
        b.set_light(C, AT, 3, meta());
        let groups = b.by_chunk();
        assert_eq!(
            groups.keys().copied().collect::<Vec<_>>(),
            vec![C, ChunkPos::new(1, 0)]
        );
        assert_eq!(groups[&C].len(), 2);
        assert_eq!(b.for_chunk(C).len(), 2);
        assert_eq!(b.for_chunk(ChunkPos::new(1, 0)).blocks.len(), 1);
        assert!(b.for_chunk(ChunkPos::new(-1, 0)).is_empty());
    }
}
