//! Turning result rows back into store types, with range checks (a stored
//! `bigint` that does not fit the game's `i32` is corrupt data, not a
//! panic).

use world_core::store::{ChunkData, Key, MAX_KEY, StoredBlock, StoredLight, StoredSign};
use world_core::{BlockPos, StoreError};

use crate::plan::coord;

/// What a row of `load_chunk` holds (its `kind` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum RowKind {
    /// A block: `x`, `y`, `z`, `w`, `n` = key.
    Block = 0,
    /// A light: `x`, `y`, `z`, `w`.
    Light = 1,
    /// A sign: `x`, `y`, `z`, `n` = face, `text`.
    Sign = 2,
    /// The head: `n` = key (absent for a chunk never written).
    Head = 3,
}

impl RowKind {
    /// The kind of a `kind` value.
    pub fn from_i32(kind: i32) -> Option<Self> {
        match kind {
            0 => Some(Self::Block),
            1 => Some(Self::Light),
            2 => Some(Self::Sign),
            3 => Some(Self::Head),
            _ => None,
        }
    }
}

/// One row of `load_chunk`, as the backend read it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkRow {
    /// `kind`.
    pub kind: i32,
    /// `x`.
    pub x: Option<i64>,
    /// `y`.
    pub y: Option<i64>,
    /// `z`.
    pub z: Option<i64>,
    /// `w`.
    pub w: Option<i32>,
    /// `n`: key or face.
    pub n: Option<i64>,
    /// `text`.
    pub text: Option<String>,
}

/// Collects the rows of `load_chunk` into a [`ChunkData`].
#[derive(Debug, Default)]
pub struct ChunkDataBuilder {
    data: ChunkData,
}

fn missing(what: &str, kind: RowKind) -> StoreError {
    StoreError::Corrupt(format!("a {kind:?} row of load_chunk has no {what}"))
}

impl ChunkDataBuilder {
    /// An empty result, sized for `rows` rows.
    pub fn with_capacity(rows: usize) -> Self {
        let mut data = ChunkData::default();
        data.blocks.reserve(rows);
        Self { data }
    }

    /// Adds one row.
    pub fn push(&mut self, row: ChunkRow) -> Result<(), StoreError> {
        let kind = RowKind::from_i32(row.kind).ok_or_else(|| {
            StoreError::Corrupt(format!("load_chunk returned row kind {}", row.kind))
        })?;
        if kind == RowKind::Head {
            self.data.head = key(row.n.ok_or_else(|| missing("key", kind))?)?;
            return Ok(());
        }
        let pos = BlockPos::new(
            coord(row.x.ok_or_else(|| missing("x", kind))?, "x")?,
            coord(row.y.ok_or_else(|| missing("y", kind))?, "y")?,
            coord(row.z.ok_or_else(|| missing("z", kind))?, "z")?,
        );
        match kind {
            RowKind::Block => self.data.blocks.push(StoredBlock {
                pos,
                w: row.w.ok_or_else(|| missing("w", kind))?,
                key: key(row.n.ok_or_else(|| missing("key", kind))?)?,
            }),
            RowKind::Light => self.data.lights.push(StoredLight {
                pos,
                w: row.w.ok_or_else(|| missing("w", kind))?,
            }),
            RowKind::Sign => self.data.signs.push(StoredSign {
                pos,
                face: coord(row.n.ok_or_else(|| missing("face", kind))?, "face")?,
                text: row.text.ok_or_else(|| missing("text", kind))?,
            }),
            RowKind::Head => {}
        }
        Ok(())
    }

    /// The result.
    pub fn finish(self) -> ChunkData {
        self.data
    }
}

fn key(v: i64) -> Result<Key, StoreError> {
    if (0..=MAX_KEY).contains(&v) {
        Ok(v)
    } else {
        Err(StoreError::Corrupt(format!(
            "stored key {v} is outside 0..={MAX_KEY}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: i32, n: Option<i64>) -> ChunkRow {
        ChunkRow {
            kind,
            x: Some(1),
            y: Some(2),
            z: Some(-3),
            w: Some(4),
            n,
            text: Some("t".into()),
        }
    }

    #[test]
    fn rows_become_chunk_data() {
        let mut b = ChunkDataBuilder::with_capacity(4);
        b.push(row(0, Some(9))).expect("block");
        b.push(row(1, None)).expect("light");
        b.push(row(2, Some(7))).expect("sign");
        b.push(ChunkRow {
            kind: 3,
            n: Some(12),
            ..ChunkRow::default()
        })
        .expect("head");
        let data = b.finish();
        assert_eq!(data.head, 12);
        assert_eq!(
            data.blocks,
            [StoredBlock {
                pos: BlockPos::new(1, 2, -3),
                w: 4,
                key: 9
            }]
        );
        assert_eq!(data.lights.len(), 1);
        assert_eq!(data.signs[0].face, 7);
    }

    #[test]
    fn bad_rows_are_corrupt() {
        let mut b = ChunkDataBuilder::default();
        assert!(matches!(b.push(row(9, None)), Err(StoreError::Corrupt(_))));
        assert!(matches!(b.push(row(0, None)), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            b.push(ChunkRow {
                x: Some(1 << 40),
                ..row(1, None)
            }),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            b.push(row(0, Some(MAX_KEY + 1))),
            Err(StoreError::Corrupt(_))
        ));
    }
}
