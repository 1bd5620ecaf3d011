//! Block history: who changed what, when, from which value to which.
//!
//! The server knows the value of every position before it changes it (the
//! chunk is in its cache when it accepts the edit), so it builds the
//! [`HistoryEntry`]s itself and puts them in the [`Batch`](super::Batch)
//! that carries the change: a store that keeps history writes them in the
//! same transaction as the change, so history never disagrees with the
//! world. Rollback reads them back ([`BlockStore::history`](super::BlockStore::history))
//! and writes the old values as one more batch, with its own entries.

use std::sync::Arc;

use crate::coords::BlockPos;
use crate::rules::{MAX_LIGHT, MAX_SIGN_FACE};

use super::batch::{MAX_BLOCK_VALUE, MAX_STORED_TEXT_BYTES, MAX_TIME_MS};
use super::error::{StoreError, StoreResult};

/// Longest author name or address a store accepts, in bytes.
pub const MAX_AUTHOR_BYTES: usize = 128;

/// The most entries one [`HistoryQuery`] may ask for.
pub const MAX_HISTORY_LIMIT: usize = 1_000_000;

/// Who made a change.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Author {
    /// The logged-in user name, or the guest's nick (`guest3`) when
    /// `guest` is set.
    pub name: Arc<str>,
    /// Whether `name` is a guest's nick rather than a user name vouched for
    /// by the identity service (guest nicks are reused across connections:
    /// `addr` tells guests apart).
    pub guest: bool,
    /// The client's IP address (no port), when known. Tools writing
    /// directly to a store (rollback from the command line) leave it empty.
    pub addr: Option<Arc<str>>,
}

impl Author {
    /// A logged-in user, or a tool acting under an operator's name.
    pub fn user(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            guest: false,
            addr: None,
        }
    }
}

/// What changed at one position, with the values before and after.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    /// A block's value (`0` = removed). Mirrors in neighbour chunks follow
    /// the block and are not recorded on their own.
    Block {
        /// Before.
        old: i32,
        /// After.
        new: i32,
    },
    /// A light level.
    Light {
        /// Before.
        old: i32,
        /// After.
        new: i32,
    },
    /// The text of one face of a sign (`None` = no sign).
    Sign {
        /// Face, `0..=7`.
        face: i32,
        /// Before.
        old: Option<String>,
        /// After.
        new: Option<String>,
    },
}

impl Change {
    /// `block`, `light` or `sign`.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Block { .. } => "block",
            Change::Light { .. } => "light",
            Change::Sign { .. } => "sign",
        }
    }

    /// The stored number of the kind (`0` block, `1` light, `2` sign).
    pub fn kind_code(&self) -> i16 {
        match self {
            Change::Block { .. } => 0,
            Change::Light { .. } => 1,
            Change::Sign { .. } => 2,
        }
    }

    /// The sign face, `0` for blocks and lights.
    pub fn face(&self) -> i32 {
        match self {
            Change::Sign { face, .. } => *face,
            _ => 0,
        }
    }

    /// The same change undone: `new` becomes `old` and back.
    pub fn reversed(&self) -> Change {
        match self {
            Change::Block { old, new } => Change::Block {
                old: *new,
                new: *old,
            },
            Change::Light { old, new } => Change::Light {
                old: *new,
                new: *old,
            },
            Change::Sign { face, old, new } => Change::Sign {
                face: *face,
                old: new.clone(),
                new: old.clone(),
            },
        }
    }

    /// Builds a change from its stored columns (`kind_code`, face, the two
    /// numbers, the two texts); `None` for an unknown kind.
    pub fn from_columns(
        kind: i16,
        face: i32,
        old_w: i32,
        new_w: i32,
        old_text: Option<String>,
        new_text: Option<String>,
    ) -> Option<Change> {
        match kind {
            0 => Some(Change::Block {
                old: old_w,
                new: new_w,
            }),
            1 => Some(Change::Light {
                old: old_w,
                new: new_w,
            }),
            2 => Some(Change::Sign {
                face,
                old: old_text,
                new: new_text,
            }),
            _ => None,
        }
    }

    /// The stored columns: `(old_w, new_w, old_text, new_text)` (numbers
    /// are 0 for signs, texts `None` for blocks and lights).
    pub fn columns(&self) -> (i32, i32, Option<&str>, Option<&str>) {
        match self {
            Change::Block { old, new } | Change::Light { old, new } => (*old, *new, None, None),
            Change::Sign { old, new, .. } => (0, 0, old.as_deref(), new.as_deref()),
        }
    }
}

/// One recorded change.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HistoryEntry {
    /// Chosen by whoever builds the entry (random, non-negative); a store
    /// keeps one entry per id, so re-applying a batch does not record its
    /// changes twice.
    pub id: i64,
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Who.
    pub author: Author,
    /// Where.
    pub pos: BlockPos,
    /// What.
    pub change: Change,
}

impl HistoryEntry {
    /// What the entry is about: kind, position and face. A rollback restores
    /// each target once.
    pub fn target(&self) -> (i16, BlockPos, i32) {
        (self.change.kind_code(), self.pos, self.change.face())
    }

    /// Checks the entry against what stores accept.
    pub fn validate(&self) -> StoreResult<()> {
        let invalid = |what: String| Err(StoreError::Invalid(format!("history entry: {what}")));
        if self.id < 0 {
            return invalid(format!("id {} is negative", self.id));
        }
        if !(0..=MAX_TIME_MS).contains(&self.time_ms) {
            return invalid(format!("time {} is outside 1970..=9999", self.time_ms));
        }
        let author_ok = |s: &str| {
            !s.is_empty() && s.len() <= MAX_AUTHOR_BYTES && !s.contains(['\n', '\r', '\0'])
        };
        if !author_ok(&self.author.name) {
            return invalid(format!(
                "author {:?} is empty or unusable",
                self.author.name
            ));
        }
        if self.author.addr.as_deref().is_some_and(|a| !author_ok(a)) {
            return invalid("address is empty or unusable".to_owned());
        }
        match &self.change {
            Change::Block { old, new } => {
                if [old, new]
                    .iter()
                    .any(|w| w.unsigned_abs() > MAX_BLOCK_VALUE.unsigned_abs())
                {
                    return invalid(format!("block value at {} is out of range", self.pos));
                }
            }
            Change::Light { old, new } => {
                if [old, new].iter().any(|w| !(0..=MAX_LIGHT).contains(*w)) {
                    return invalid(format!("light value at {} is out of range", self.pos));
                }
            }
            Change::Sign { face, old, new } => {
                if !(0..=MAX_SIGN_FACE).contains(face) {
                    return invalid(format!("sign face {face} at {} is out of range", self.pos));
                }
                for text in [old, new].into_iter().flatten() {
                    if text.is_empty()
                        || text.len() > MAX_STORED_TEXT_BYTES
                        || text.contains(['\n', '\r', '\0'])
                    {
                        return invalid(format!("sign text at {} is unusable", self.pos));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A square of columns: every `x` and `z` within `radius` of the centre
/// (all heights).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Area {
    /// Centre x.
    pub x: i32,
    /// Centre z.
    pub z: i32,
    /// Half the side, in blocks.
    pub radius: u32,
}

impl Area {
    /// Whether `pos` is inside.
    pub fn contains(&self, pos: BlockPos) -> bool {
        let r = i64::from(self.radius);
        (i64::from(pos.x) - i64::from(self.x)).abs() <= r
            && (i64::from(pos.z) - i64::from(self.z)).abs() <= r
    }

    /// The bounds `(min_x, max_x, min_z, max_z)`, clamped to `i32`.
    pub fn bounds(&self) -> (i32, i32, i32, i32) {
        let clamp = |v: i64| i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX });
        let r = i64::from(self.radius);
        (
            clamp(i64::from(self.x) - r),
            clamp(i64::from(self.x) + r),
            clamp(i64::from(self.z) - r),
            clamp(i64::from(self.z) + r),
        )
    }
}

/// What [`BlockStore::history`](super::BlockStore::history) returns: the
/// entries matching every field that is set, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only this position.
    pub at: Option<BlockPos>,
    /// Only changes by this author name.
    pub author: Option<String>,
    /// Only changes at or after this time (milliseconds since the epoch).
    pub since_ms: Option<i64>,
    /// Only changes inside this area.
    pub area: Option<Area>,
    /// At most this many entries (the newest).
    pub limit: usize,
}

impl HistoryQuery {
    /// The last `limit` changes at `pos`.
    pub fn at(pos: BlockPos, limit: usize) -> Self {
        Self {
            at: Some(pos),
            author: None,
            since_ms: None,
            area: None,
            limit,
        }
    }

    /// The changes by `author` since `since_ms`, optionally inside `area`.
    pub fn by(author: &str, since_ms: i64, area: Option<Area>, limit: usize) -> Self {
        Self {
            at: None,
            author: Some(author.to_owned()),
            since_ms: Some(since_ms),
            area,
            limit,
        }
    }

    /// Whether `entry` matches (what a store's `WHERE` clause does).
    pub fn matches(&self, entry: &HistoryEntry) -> bool {
        self.at.is_none_or(|at| at == entry.pos)
            && self
                .author
                .as_deref()
                .is_none_or(|a| a == &*entry.author.name)
            && self.since_ms.is_none_or(|t| entry.time_ms >= t)
            && self.area.is_none_or(|area| area.contains(entry.pos))
    }

    /// The limit as a database parameter (0 when nothing is asked).
    pub fn limit_i64(&self) -> i64 {
        i64::try_from(self.limit.min(MAX_HISTORY_LIMIT)).unwrap_or(0)
    }

    /// Refuses limits past [`MAX_HISTORY_LIMIT`].
    pub fn validate(&self) -> StoreResult<()> {
        if self.limit > MAX_HISTORY_LIMIT {
            return Err(StoreError::Invalid(format!(
                "history limit {} is above {MAX_HISTORY_LIMIT}",
                self.limit
            )));
        }
        Ok(())
    }
}

/// The oldest entry per target among `entries`, given newest first as
/// [`BlockStore::history`](super::BlockStore::history) returns them (so
/// among entries of the same millisecond the later in the slice is the
/// older): what a rollback puts back is each target's `old` value from
/// these.
pub fn first_changes(entries: &[HistoryEntry]) -> Vec<&HistoryEntry> {
    let mut first: std::collections::BTreeMap<(i16, BlockPos, i32), (i64, usize)> =
        std::collections::BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        first
            .entry(e.target())
            .and_modify(|(t, at)| {
                // Older wins; in the same millisecond, the later in the
                // slice (recorded earlier).
                if e.time_ms < *t || (e.time_ms == *t && i > *at) {
                    *t = e.time_ms;
                    *at = i;
                }
            })
            .or_insert((e.time_ms, i));
    }
    first.into_values().map(|(_, i)| &entries[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, time_ms: i64, change: Change) -> HistoryEntry {
        HistoryEntry {
            id,
            time_ms,
            author: Author::user("ann"),
            pos: BlockPos::new(1, 2, 3),
            change,
        }
    }

    #[test]
    fn first_change_per_target_is_the_oldest() {
        let entries = vec![
            entry(1, 10, Change::Block { old: 1, new: 2 }),
            entry(2, 5, Change::Block { old: 0, new: 1 }),
            entry(3, 7, Change::Light { old: 0, new: 3 }),
        ];
        let first = first_changes(&entries);
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].id, 2);
        assert_eq!(first[1].id, 3);
        // The same millisecond: newest first, so the last is the first made.
        let same = vec![
            entry(5, 10, Change::Block { old: 1, new: 2 }),
            entry(4, 10, Change::Block { old: 0, new: 1 }),
        ];
        assert_eq!(first_changes(&same)[0].id, 4);
    }

    #[test]
    fn validation() {
        assert!(
            entry(1, 1, Change::Block { old: 1, new: 2 })
                .validate()
                .is_ok()
        );
        assert!(
            entry(-1, 1, Change::Block { old: 1, new: 2 })
                .validate()
                .is_err()
        );
        assert!(
            entry(1, 1, Change::Light { old: 1, new: 16 })
                .validate()
                .is_err()
        );
        let sign = Change::Sign {
            face: 0,
            old: None,
            new: Some("a, \"b\" é".to_owned()),
        };
        assert!(entry(1, 1, sign).validate().is_ok());
        let mut bad = entry(1, 1, Change::Block { old: 1, new: 2 });
        bad.author.name = "".into();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn areas_are_squares() {
        let area = Area {
            x: -5,
            z: 5,
            radius: 2,
        };
        assert!(area.contains(BlockPos::new(-7, 100, 7)));
        assert!(!area.contains(BlockPos::new(-8, 0, 5)));
        let edge = Area {
            x: i32::MAX,
            z: i32::MIN,
            radius: u32::MAX,
        };
        assert_eq!(edge.bounds().1, i32::MAX);
        assert_eq!(edge.bounds().2, i32::MIN);
    }

    #[test]
    fn reversing_swaps_values() {
        let c = Change::Sign {
            face: 2,
            old: None,
            new: Some("x".into()),
        };
        assert_eq!(c.reversed().reversed(), c);
        assert_eq!(c.columns(), (0, 0, None, Some("x")));
    }
}
