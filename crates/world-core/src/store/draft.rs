//! Drafts: a player's private edits, kept apart from the world until they
//! are published.
//!
//! A draft is a set of [`DraftChange`]s per owner (a logged-in user name),
//! at most one per [`DraftSlot`] (position, kind and, for signs, face):
//! storing a change replaces the one in its slot. Stores keep drafts in
//! their own rows; chunk reads never include them.
//!
//! Publishing turns the whole draft into one [`Batch`] ([`draft_batch`],
//! with the neighbour mirrors a normal edit writes) and applies it under the
//! [`BlockStore`] contract (atomic, or on DynamoDB reserved-then-visible
//! and completed by re-applying), then deletes the draft
//! ([`publish_draft`]). A publish whose deletion failed may simply be run
//! again: re-applying a batch is harmless.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::coords::{BlockPos, ChunkPos};

use super::{ApplyReceipt, Batch, BlockStore, ChangeMeta, Key, MAX_KEY, StoreError, StoreResult};

/// What a draft change does at its position.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DraftEdit {
    /// Sets the block (`0` removes it; never negative: mirrors are derived
    /// when the draft is published).
    Block(i32),
    /// Sets the light level.
    Light(i32),
    /// Writes a sign face; empty text deletes it.
    Sign {
        /// Face, `0..=7`.
        face: i32,
        /// Text (empty: deletion).
        text: String,
    },
    /// Deletes every sign of the block and zeroes its light, as removing a
    /// block does. Applied before the draft's other changes when published,
    /// so lights and signs drafted after a removal survive it.
    Clear,
}

/// The kinds of [`DraftEdit`], with the small integer stores keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DraftKind {
    /// [`DraftEdit::Block`].
    Block,
    /// [`DraftEdit::Light`].
    Light,
    /// [`DraftEdit::Sign`].
    Sign,
    /// [`DraftEdit::Clear`].
    Clear,
}

impl DraftKind {
    /// The stored code: block 0, light 1, sign 2, clear 3.
    pub fn code(self) -> i32 {
        match self {
            DraftKind::Block => 0,
            DraftKind::Light => 1,
            DraftKind::Sign => 2,
            DraftKind::Clear => 3,
        }
    }

    /// The kind of a stored code.
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            0 => Some(DraftKind::Block),
            1 => Some(DraftKind::Light),
            2 => Some(DraftKind::Sign),
            3 => Some(DraftKind::Clear),
            _ => None,
        }
    }
}

/// Where a draft change sits: a draft holds at most one change per slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DraftSlot {
    /// The block.
    pub pos: BlockPos,
    /// The kind of change.
    pub kind: DraftKind,
    /// Sign face (`0` for the other kinds).
    pub face: i32,
}

/// One change of a draft.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DraftChange {
    /// The block (its own chunk is `pos.chunk()`).
    pub pos: BlockPos,
    /// What it does.
    pub edit: DraftEdit,
    /// The head of `pos.chunk()` the drafting server knew when the draft
    /// first touched this position: a world block row at `pos` with a
    /// greater key was written by someone else since (a conflict).
    pub seen: Key,
    /// When the change was drafted, milliseconds since the Unix epoch.
    pub time_ms: i64,
}

impl DraftChange {
    /// The slot this change occupies.
    pub fn slot(&self) -> DraftSlot {
        DraftSlot {
            pos: self.pos,
            kind: self.kind(),
            face: self.face(),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> DraftKind {
        match self.edit {
            DraftEdit::Block(_) => DraftKind::Block,
            DraftEdit::Light(_) => DraftKind::Light,
            DraftEdit::Sign { .. } => DraftKind::Sign,
            DraftEdit::Clear => DraftKind::Clear,
        }
    }

    /// The sign face, `0` for other kinds (a stored column).
    pub fn face(&self) -> i32 {
        match self.edit {
            DraftEdit::Sign { face, .. } => face,
            _ => 0,
        }
    }

    /// The block or light value, `0` for other kinds (a stored column).
    pub fn w(&self) -> i32 {
        match self.edit {
            DraftEdit::Block(w) | DraftEdit::Light(w) => w,
            _ => 0,
        }
    }

    /// The sign text, empty for other kinds (a stored column).
    pub fn text(&self) -> &str {
        match &self.edit {
            DraftEdit::Sign { text, .. } => text,
            _ => "",
        }
    }

    /// Rebuilds a change from its stored columns; an unknown kind code is
    /// [`StoreError::Corrupt`].
    pub fn from_columns(
        pos: BlockPos,
        kind: i32,
        face: i32,
        w: i32,
        text: String,
        seen: Key,
        time_ms: i64,
    ) -> StoreResult<Self> {
        let edit = match DraftKind::from_code(kind) {
            Some(DraftKind::Block) => DraftEdit::Block(w),
            Some(DraftKind::Light) => DraftEdit::Light(w),
            Some(DraftKind::Sign) => DraftEdit::Sign { face, text },
            Some(DraftKind::Clear) => DraftEdit::Clear,
            None => {
                return Err(StoreError::Corrupt(format!(
                    "draft change at {pos} has unknown kind {kind}"
                )));
            }
        };
        Ok(Self {
            pos,
            edit,
            seen,
            time_ms,
        })
    }
}

/// Checks draft changes against what stores accept (the values a batch
/// accepts, non-negative blocks, keys in range), so that a draft that was
/// stored can always be published. Stores call it before writing.
pub fn validate_draft(owner: &str, changes: &[DraftChange]) -> StoreResult<()> {
    if owner.is_empty() {
        return Err(StoreError::Invalid("a draft needs an owner".into()));
    }
    for change in changes {
        if !(0..=MAX_KEY).contains(&change.seen) {
            return Err(StoreError::Invalid(format!(
                "draft change at {} has key {} out of range",
                change.pos, change.seen
            )));
        }
        if let DraftEdit::Block(w) = change.edit
            && w < 0
        {
            return Err(StoreError::Invalid(format!(
                "draft block at {} has negative value {w}",
                change.pos
            )));
        }
    }
    draft_batch(changes, None).validate()
}

/// The batch publishing `changes` writes: exactly what the same edits made
/// one by one would have written (blocks with their neighbour mirrors, a
/// removal's clear before the lights and signs drafted after it). The one
/// place drafts become world changes, so that anything recording world
/// changes (history) can hook in here.
pub fn draft_batch(changes: &[DraftChange], user: Option<Arc<str>>) -> Batch {
    let meta = |c: &DraftChange| ChangeMeta {
        user: user.clone(),
        time_ms: Some(c.time_ms),
    };
    let mut batch = Batch::new();
    // Clears first: a normal-form batch applies them before its writes, and
    // adding them first keeps the batch from folding later lights and
    // signs into them.
    for c in changes {
        if matches!(c.edit, DraftEdit::Clear) {
            batch.clear_decor(c.pos.chunk(), c.pos);
        }
    }
    for c in changes {
        if let DraftEdit::Block(w) = c.edit {
            batch.set_block(c.pos.chunk(), c.pos, w, meta(c));
            for neighbour in c.pos.mirror_chunks() {
                batch.set_block(neighbour, c.pos, -w, meta(c));
            }
            if w == 0 {
                batch.clear_decor(c.pos.chunk(), c.pos);
            }
        }
    }
    for c in changes {
        match &c.edit {
            DraftEdit::Light(w) => batch.set_light(c.pos.chunk(), c.pos, *w, meta(c)),
            DraftEdit::Sign { face, text } => {
                batch.set_sign(c.pos.chunk(), c.pos, *face, text, meta(c));
            }
            DraftEdit::Block(_) | DraftEdit::Clear => {}
        }
    }
    batch
}

/// The drafted positions that someone else changed since the draft touched
/// them: a block row at the position (in its own chunk) whose key is
/// greater than the change's [`seen`](DraftChange::seen) key. One chunk
/// read per drafted chunk. Lights and signs changed without their block are
/// not seen (stores keep no key per light or sign).
pub async fn draft_conflicts(
    store: &dyn BlockStore,
    changes: &[DraftChange],
) -> StoreResult<Vec<BlockPos>> {
    let mut seen: BTreeMap<ChunkPos, BTreeMap<BlockPos, Key>> = BTreeMap::new();
    for c in changes {
        let at = seen.entry(c.pos.chunk()).or_default();
        let key = at.entry(c.pos).or_insert(c.seen);
        *key = (*key).min(c.seen);
    }
    let mut conflicts = BTreeSet::new();
    for (chunk, positions) in seen {
        let since = positions.values().copied().min().unwrap_or(0);
        let data = store.load_chunk(chunk, since).await?;
        for block in data.blocks {
            if positions.get(&block.pos).is_some_and(|k| block.key > *k) {
                conflicts.insert(block.pos);
            }
        }
    }
    Ok(conflicts.into_iter().collect())
}

/// What [`publish_draft`] did.
#[derive(Debug)]
pub struct Published {
    /// The batch applied.
    pub batch: Batch,
    /// How it moved each chunk.
    pub receipt: ApplyReceipt,
    /// Drafted positions someone else had changed since the draft touched
    /// them (now overwritten: last writer wins).
    pub overwritten: Vec<BlockPos>,
    /// Why the draft could not be deleted after the world was written, if
    /// it could not: the draft is still stored, and publishing it again is
    /// harmless.
    pub delete_error: Option<StoreError>,
}

/// Publishes `changes` (the draft of `owner`, or of a guest whose draft is
/// not stored when `None`; `user` is recorded as the author): reports
/// conflicts, applies [`draft_batch`] in one [`BlockStore::apply`], then
/// deletes the stored draft. An error means the world was not written (or,
/// on DynamoDB, may be partly visible and is completed by publishing
/// again); the draft is kept either way.
pub async fn publish_draft(
    store: &dyn BlockStore,
    owner: Option<&str>,
    changes: &[DraftChange],
    user: Option<Arc<str>>,
) -> StoreResult<Published> {
    publish_draft_batch(store, owner, changes, draft_batch(changes, user)).await
}

/// [`publish_draft`] with the batch built by the caller: [`draft_batch`]
/// of `changes`, amended with what else must commit with it (history
/// entries), never with other world changes.
pub async fn publish_draft_batch(
    store: &dyn BlockStore,
    owner: Option<&str>,
    changes: &[DraftChange],
    batch: Batch,
) -> StoreResult<Published> {
    let overwritten = draft_conflicts(store, changes).await?;
    let receipt = store.apply(&batch).await?;
    let delete_error = match owner {
        Some(owner) => store.delete_draft(owner).await.err(),
        None => None,
    };
    Ok(Published {
        batch,
        receipt,
        overwritten,
        delete_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(pos: BlockPos, edit: DraftEdit) -> DraftChange {
        DraftChange {
            pos,
            edit,
            seen: 0,
            time_ms: 1,
        }
    }

    #[test]
    fn columns_round_trip() {
        let pos = BlockPos::new(-1, 2, 3);
        for edit in [
            DraftEdit::Block(5),
            DraftEdit::Light(9),
            DraftEdit::Sign {
                face: 4,
                text: "a, \"b\" é".into(),
            },
            DraftEdit::Clear,
        ] {
            let c = change(pos, edit);
            let back = DraftChange::from_columns(
                c.pos,
                c.kind().code(),
                c.face(),
                c.w(),
                c.text().to_owned(),
                c.seen,
                c.time_ms,
            )
            .expect("known kind");
            assert_eq!(back, c);
        }
        assert!(DraftChange::from_columns(pos, 9, 0, 0, String::new(), 0, 0).is_err());
    }

    #[test]
    fn batch_has_mirrors_and_clears_before_later_decor() {
        let edge = BlockPos::new(31, 10, 5);
        let changes = [
            change(edge, DraftEdit::Block(0)),
            change(edge, DraftEdit::Clear),
            change(
                edge,
                DraftEdit::Sign {
                    face: 1,
                    text: "after".into(),
                },
            ),
        ];
        let batch = draft_batch(&changes, None);
        let blocks: Vec<_> = batch.blocks().map(|b| (b.chunk, b.w)).collect();
        assert_eq!(
            blocks,
            vec![(ChunkPos::new(0, 0), 0), (ChunkPos::new(1, 0), 0)]
        );
        assert_eq!(batch.clears().count(), 1);
        let signs: Vec<_> = batch.signs().map(|s| s.text.clone()).collect();
        assert_eq!(signs, vec![Some("after".to_owned())]);
    }

    #[test]
    fn validation_refuses_what_cannot_be_published() {
        let pos = BlockPos::new(0, 1, 0);
        assert!(validate_draft("ann", &[change(pos, DraftEdit::Block(3))]).is_ok());
        assert!(validate_draft("", &[]).is_err());
        assert!(validate_draft("ann", &[change(pos, DraftEdit::Block(-3))]).is_err());
        assert!(validate_draft("ann", &[change(pos, DraftEdit::Light(16))]).is_err());
        let mut bad_key = change(pos, DraftEdit::Clear);
        bad_key.seen = -1;
        assert!(validate_draft("ann", &[bad_key]).is_err());
    }
}
