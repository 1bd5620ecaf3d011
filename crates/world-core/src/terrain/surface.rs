//! The view from above: each column's highest block, for maps.
//!
//! Clouds are left out: they are generated high above the ground (`y` 64 to
//! 71), can neither be placed nor destroyed, and a map covered in them
//! would hide the world it is meant to show.

use std::collections::BTreeMap;

use super::generate::{Columns, Writes, run};
use super::{ChunkTerrain, TERRAIN_TOP};
use crate::coords::{BlockPos, CHUNK_SIZE, ChunkPos};
use crate::item::{AIR, CLOUD};

/// Columns in a chunk.
const COLUMNS: usize = (CHUNK_SIZE * CHUNK_SIZE) as usize;

/// The highest block of a column: its height and its block id (`w = 0`:
/// nothing at all in the column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Top {
    /// Height of the block.
    pub y: u8,
    /// Block id (an item id, `1..=255`), or 0 for an empty column.
    pub w: u8,
}

/// The highest block (clouds left out) of each of a chunk's 32 x 32
/// columns: 2 KiB.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkSurface {
    chunk: ChunkPos,
    /// Indexed by `dx * 32 + dz`, like [`ChunkTerrain`].
    tops: Box<[Top]>,
}

impl ChunkSurface {
    /// The generated terrain's surface of `chunk`: runs the generator
    /// without its clouds, several times faster than
    /// [`ChunkTerrain::generate`].
    pub fn generate(chunk: ChunkPos) -> Self {
        let mut fold = Fold {
            base_x: chunk.p.wrapping_mul(CHUNK_SIZE),
            base_z: chunk.q.wrapping_mul(CHUNK_SIZE),
            tops: vec![Top::default(); COLUMNS].into_boxed_slice(),
        };
        run(chunk, Columns::Inner, &mut fold);
        Self {
            chunk,
            tops: fold.tops,
        }
    }

    /// The surface of `terrain` with stored `changes` applied: blocks of
    /// this chunk (`w = 0` removes the generated block; mirrors of other
    /// chunks' blocks, with a negative `w` or a position outside the chunk,
    /// are skipped). Only the columns that have changes are recomputed.
    pub fn with_changes(
        mut self,
        terrain: &ChunkTerrain,
        changes: impl IntoIterator<Item = (BlockPos, i32)>,
    ) -> Self {
        let mut columns: BTreeMap<(i32, i32), BTreeMap<i32, i32>> = BTreeMap::new();
        for (pos, w) in changes {
            if w < 0 || pos.chunk() != self.chunk || !(0..=255).contains(&pos.y) {
                continue;
            }
            columns.entry((pos.x, pos.z)).or_default().insert(pos.y, w);
        }
        for ((x, z), stored) in columns {
            let highest = stored.keys().next_back().copied().unwrap_or(0);
            let top = (0..=highest.max(TERRAIN_TOP)).rev().find_map(|y| {
                let w = match stored.get(&y) {
                    Some(&w) => w,
                    None => terrain.get(BlockPos::new(x, y, z)),
                };
                (w != AIR && w != CLOUD).then(|| Top {
                    y: byte(y),
                    w: byte(w),
                })
            });
            let column = column_index(x.rem_euclid(CHUNK_SIZE), z.rem_euclid(CHUNK_SIZE));
            self.tops[column] = top.unwrap_or_default();
        }
        self
    }

    /// The chunk.
    pub fn chunk(&self) -> ChunkPos {
        self.chunk
    }

    /// The top of column `(x, z)`, a position inside this chunk (other
    /// positions are taken modulo 32).
    pub fn top(&self, x: i32, z: i32) -> Top {
        self.tops[column_index(x.rem_euclid(CHUNK_SIZE), z.rem_euclid(CHUNK_SIZE))]
    }
}

impl std::fmt::Debug for ChunkSurface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSurface")
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

#[inline]
fn column_index(dx: i32, dz: i32) -> usize {
    // Callers pass offsets in 0..32.
    (dx * CHUNK_SIZE + dz) as usize
}

/// Heights and ids are in `0..=255` (the callers check or the generator's
/// bounds guarantee it; see [`ChunkTerrain`]).
#[inline]
fn byte(value: i32) -> u8 {
    u8::try_from(value).unwrap_or(u8::MAX)
}

/// Keeps, per column, the last write at the highest height: every write of
/// the generator is a block (never air), so the highest written position
/// is the top and the last write there is its value. A ground run writes
/// `0..h`, so its top is `h - 1`, and it overwrites whatever an earlier tree
/// put at that height.
struct Fold {
    base_x: i32,
    base_z: i32,
    tops: Box<[Top]>,
}

impl Fold {
    #[inline]
    fn write(&mut self, x: i32, y: i32, z: i32, w: i32) {
        let dx = x.wrapping_sub(self.base_x);
        let dz = z.wrapping_sub(self.base_z);
        if !((0..CHUNK_SIZE).contains(&dx) && (0..CHUNK_SIZE).contains(&dz)) {
            return;
        }
        let top = &mut self.tops[column_index(dx, dz)];
        let y = byte(y);
        if top.w == 0 || y >= top.y {
            *top = Top { y, w: byte(w) };
        }
    }
}

impl Writes for Fold {
    fn ground(&mut self, x: i32, z: i32, h: i32, w: i32) {
        if h > 0 {
            self.write(x, h - 1, z, w);
        }
    }

    fn block(&mut self, x: i32, y: i32, z: i32, w: i32) {
        self.write(x, y, z, w);
    }

    fn clouds(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The top as the full terrain says it: scan down from the clouds.
    fn top_of(terrain: &ChunkTerrain, x: i32, z: i32) -> Top {
        (0..=TERRAIN_TOP)
            .rev()
            .find_map(|y| {
                let w = terrain.get(BlockPos::new(x, y, z));
                (w != AIR && w != CLOUD).then(|| Top {
                    y: byte(y),
                    w: byte(w),
                })
            })
            .unwrap_or_default()
    }

    #[test]
    fn surface_matches_the_full_terrain() {
        for (p, q) in [(0, 0), (-1, 2), (3, -4), (7, 7), (-12, -5), (40, -33)] {
            let chunk = ChunkPos::new(p, q);
            let terrain = ChunkTerrain::generate(chunk);
            let surface = ChunkSurface::generate(chunk);
            for dx in 0..CHUNK_SIZE {
                for dz in 0..CHUNK_SIZE {
                    let (x, z) = (p * CHUNK_SIZE + dx, q * CHUNK_SIZE + dz);
                    assert_eq!(
                        surface.top(x, z),
                        top_of(&terrain, x, z),
                        "chunk {chunk} column {x},{z}"
                    );
                }
            }
        }
    }

    #[test]
    fn changes_override_the_terrain() {
        let chunk = ChunkPos::new(0, 0);
        let terrain = ChunkTerrain::generate(chunk);
        let ground = ChunkSurface::generate(chunk);
        let top = ground.top(5, 5);
        let surface = ground.clone().with_changes(
            &terrain,
            [
                // Removing the top block uncovers what lies below it.
                (BlockPos::new(5, i32::from(top.y), 5), 0),
                // A tower high above everything.
                (BlockPos::new(6, 200, 6), 3),
                // Mirrors and other chunks' blocks change nothing.
                (BlockPos::new(7, 100, 7), -4),
                (BlockPos::new(40, 100, 7), 4),
            ],
        );
        let below = top_of(&terrain, 5, 5);
        assert_eq!(below, top, "the scan agrees with the generated surface");
        let uncovered = surface.top(5, 5);
        assert!(uncovered.y < top.y, "{uncovered:?} below {top:?}");
        assert_eq!(surface.top(6, 6), Top { y: 200, w: 3 });
        assert_eq!(surface.top(7, 7), ground.top(7, 7));
        assert_eq!(surface.top(8, 8), ground.top(8, 8));
    }
}
