//! What "the same chunk" means across stores: a chunk's contents in a
//! canonical order, their digest, and the difference between two of them.
//!
//! Keys are left out: each store numbers its own changes, so a faithful
//! copy has other keys. Everything a client is sent is compared: block
//! rows (mirrors and `0` "removed" rows included), lights and signs, text
//! byte for byte.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest as _, Sha256};
use world_core::BlockPos;
use world_core::store::ChunkData;

/// A chunk's contents without keys, sorted by position (and face).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkContent {
    /// Block values by position.
    pub blocks: BTreeMap<BlockPos, i32>,
    /// Light levels by position.
    pub lights: BTreeMap<BlockPos, i32>,
    /// Sign texts by position and face.
    pub signs: BTreeMap<(BlockPos, i32), String>,
}

impl ChunkContent {
    /// The contents of a full read (`load_chunk(chunk, 0)`).
    pub fn from_data(data: &ChunkData) -> Self {
        Self {
            blocks: data.blocks.iter().map(|b| (b.pos, b.w)).collect(),
            lights: data.lights.iter().map(|l| (l.pos, l.w)).collect(),
            signs: data
                .signs
                .iter()
                .map(|s| ((s.pos, s.face), s.text.clone()))
                .collect(),
        }
    }

    /// Rows of every kind.
    pub fn rows(&self) -> usize {
        self.blocks.len() + self.lights.len() + self.signs.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }

    /// SHA-256 over the canonical encoding: a tag per section, counts, then
    /// fixed-width big-endian integers and length-prefixed text, so that no
    /// two different contents encode alike.
    pub fn digest(&self) -> ChunkDigest {
        let mut h = Sha256::new();
        let pos = |h: &mut Sha256, p: &BlockPos| {
            h.update(p.x.to_be_bytes());
            h.update(p.y.to_be_bytes());
            h.update(p.z.to_be_bytes());
        };
        h.update(b"B");
        h.update((self.blocks.len() as u64).to_be_bytes());
        for (p, w) in &self.blocks {
            pos(&mut h, p);
            h.update(w.to_be_bytes());
        }
        h.update(b"L");
        h.update((self.lights.len() as u64).to_be_bytes());
        for (p, w) in &self.lights {
            pos(&mut h, p);
            h.update(w.to_be_bytes());
        }
        h.update(b"S");
        h.update((self.signs.len() as u64).to_be_bytes());
        for ((p, face), text) in &self.signs {
            pos(&mut h, p);
            h.update(face.to_be_bytes());
            h.update((text.len() as u64).to_be_bytes());
            h.update(text.as_bytes());
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(&h.finalize());
        ChunkDigest(out)
    }
}

/// The SHA-256 digest of a chunk's [`ChunkContent`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkDigest(pub [u8; 32]);

impl ChunkDigest {
    /// The digest of an empty chunk (or one never written).
    pub fn empty() -> Self {
        ChunkContent::default().digest()
    }
}

impl fmt::Display for ChunkDigest {
    /// The first 8 bytes in hex: plenty to tell two chunks apart in a report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ChunkDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A digest of a whole world: SHA-256 over every non-empty chunk's position
/// and digest, in chunk order. Two stores holding the same world print the
/// same value.
#[derive(Debug, Default)]
pub struct WorldDigest {
    chunks: BTreeMap<world_core::ChunkPos, ChunkDigest>,
}

impl WorldDigest {
    /// Adds a chunk (empty ones are left out: a chunk whose only change was
    /// deleted has nothing to copy).
    pub fn add(&mut self, chunk: world_core::ChunkPos, digest: ChunkDigest) {
        if digest != ChunkDigest::empty() {
            self.chunks.insert(chunk, digest);
        }
    }

    /// The digest.
    pub fn finish(&self) -> ChunkDigest {
        let mut h = Sha256::new();
        for (c, d) in &self.chunks {
            h.update(c.p.to_be_bytes());
            h.update(c.q.to_be_bytes());
            h.update(d.0);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(&h.finalize());
        ChunkDigest(out)
    }
}

/// One value that differs between source and destination (`None`: absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch<T> {
    /// Where.
    pub at: T,
    /// In the source.
    pub source: Option<String>,
    /// In the destination.
    pub dest: Option<String>,
}

/// How two contents of the same chunk differ.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkDiff {
    /// Blocks that differ, by position.
    pub blocks: Vec<Mismatch<BlockPos>>,
    /// Lights that differ, by position.
    pub lights: Vec<Mismatch<BlockPos>>,
    /// Signs that differ, by position and face.
    pub signs: Vec<Mismatch<(BlockPos, i32)>>,
}

impl ChunkDiff {
    /// The differences between `source` and `dest`.
    pub fn between(source: &ChunkContent, dest: &ChunkContent) -> Self {
        Self {
            blocks: mismatches(&source.blocks, &dest.blocks, |w| w.to_string()),
            lights: mismatches(&source.lights, &dest.lights, |w| w.to_string()),
            signs: mismatches(&source.signs, &dest.signs, |t| format!("{t:?}")),
        }
    }

    /// Whether the contents are the same.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty() && self.lights.is_empty() && self.signs.is_empty()
    }

    /// How many values differ.
    pub fn len(&self) -> usize {
        self.blocks.len() + self.lights.len() + self.signs.len()
    }

    /// Keeps the first `n` differences (blocks first, then lights, then
    /// signs).
    pub fn truncate(&mut self, n: usize) {
        self.blocks.truncate(n);
        self.lights.truncate(n - self.blocks.len());
        self.signs
            .truncate(n - self.blocks.len() - self.lights.len());
    }
}

fn mismatches<K: Ord + Copy, V: PartialEq>(
    source: &BTreeMap<K, V>,
    dest: &BTreeMap<K, V>,
    show: impl Fn(&V) -> String,
) -> Vec<Mismatch<K>> {
    let mut out = Vec::new();
    for (k, v) in source {
        match dest.get(k) {
            Some(d) if d == v => {}
            d => out.push(Mismatch {
                at: *k,
                source: Some(show(v)),
                dest: d.map(&show),
            }),
        }
    }
    for (k, d) in dest {
        if !source.contains_key(k) {
            out.push(Mismatch {
                at: *k,
                source: None,
                dest: Some(show(d)),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use world_core::store::{StoredBlock, StoredLight, StoredSign};

    use super::*;

    fn data(key: i64, text: &str) -> ChunkData {
        ChunkData {
            blocks: vec![
                StoredBlock {
                    pos: BlockPos::new(-1, 5, 3),
                    w: 4,
                    key,
                },
                StoredBlock {
                    pos: BlockPos::new(0, 5, 3),
                    w: -4,
                    key: key + 1,
                },
            ],
            lights: vec![StoredLight {
                pos: BlockPos::new(0, 5, 3),
                w: 15,
            }],
            signs: vec![StoredSign {
                pos: BlockPos::new(0, 5, 3),
                face: 2,
                text: text.to_owned(),
            }],
            head: key + 1,
        }
    }

    #[test]
    fn keys_and_order_do_not_matter() {
        let a = data(1, "a, \"b\" é");
        let mut b = data(900, "a, \"b\" é");
        b.blocks.reverse();
        let (ca, cb) = (ChunkContent::from_data(&a), ChunkContent::from_data(&b));
        assert_eq!(ca.digest(), cb.digest());
        assert!(ChunkDiff::between(&ca, &cb).is_empty());
    }

    #[test]
    fn any_value_matters() {
        let base = ChunkContent::from_data(&data(1, "x"));
        let mut text = base.clone();
        text.signs.insert((BlockPos::new(0, 5, 3), 2), "y".into());
        let mut mirror = base.clone();
        mirror.blocks.insert(BlockPos::new(0, 5, 3), 4);
        let mut light = base.clone();
        light.lights.insert(BlockPos::new(0, 5, 3), 0);
        let mut removed = base.clone();
        removed.blocks.insert(BlockPos::new(9, 9, 9), 0);
        for other in [&text, &mirror, &light, &removed] {
            assert_ne!(base.digest(), other.digest());
            assert_eq!(ChunkDiff::between(&base, other).len(), 1);
        }
        let diff = ChunkDiff::between(&base, &removed);
        assert_eq!(diff.blocks[0].source, None);
        assert_eq!(diff.blocks[0].dest.as_deref(), Some("0"));
        let mut all = ChunkDiff::between(&base, &ChunkContent::default());
        assert_eq!(all.len(), 4);
        all.truncate(3);
        assert_eq!(
            (all.blocks.len(), all.lights.len(), all.signs.len()),
            (2, 1, 0)
        );
    }

    #[test]
    fn text_boundaries_are_encoded() {
        let mut a = ChunkContent::default();
        a.signs.insert((BlockPos::new(0, 1, 0), 0), "ab".into());
        a.signs.insert((BlockPos::new(0, 1, 0), 1), "c".into());
        let mut b = ChunkContent::default();
        b.signs.insert((BlockPos::new(0, 1, 0), 0), "a".into());
        b.signs.insert((BlockPos::new(0, 1, 0), 1), "bc".into());
        assert_ne!(a.digest(), b.digest());
        assert_eq!(ChunkContent::default().digest(), ChunkDigest::empty());
    }
}
