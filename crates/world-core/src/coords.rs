//! Block and chunk coordinates.
//!
//! A chunk is a 32 x 32 column of blocks: block `(x, y, z)` lies in chunk
//! `(floor(x / 32), floor(z / 32))`. Floor division matters: `x = -1` is in
//! chunk `-1`, not `0`.

use std::fmt;

/// Width and depth of a chunk, in blocks.
pub const CHUNK_SIZE: i32 = 32;

/// Lowest `y` a player may edit (`y = 0` can never be changed).
pub const MIN_EDIT_Y: i32 = 1;

/// Highest `y` a player may edit.
pub const MAX_EDIT_Y: i32 = 255;

/// The chunk index of a block coordinate (floor division by [`CHUNK_SIZE`]).
pub fn chunk_of(coord: i32) -> i32 {
    coord.div_euclid(CHUNK_SIZE)
}

/// The chunk index of a float position, as the original server computes it:
/// `floor(round(x) / 32)`, rounding halves away from zero.
///
/// Non-finite or huge values saturate instead of panicking.
pub fn chunk_of_f32(coord: f32) -> i32 {
    // `as` saturates on overflow and maps NaN to 0, which is what we want for
    // a value that only decides which players see a position.
    chunk_of(coord.round() as i32)
}

/// The position of a block in the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockPos {
    /// East-west coordinate.
    pub x: i32,
    /// Height; edits are allowed in `1..=255`.
    pub y: i32,
    /// North-south coordinate.
    pub z: i32,
}

impl BlockPos {
    /// A block position.
    pub const fn new(x: i32, y: i32, z: i32) -> Self {
        Self { x, y, z }
    }

    /// The chunk this block belongs to.
    pub fn chunk(self) -> ChunkPos {
        ChunkPos::new(chunk_of(self.x), chunk_of(self.z))
    }

    /// Whether `y` is inside the editable range `1..=255`.
    pub fn y_is_editable(self) -> bool {
        (MIN_EDIT_Y..=MAX_EDIT_Y).contains(&self.y)
    }

    /// The neighbouring chunks that keep a mirror (`-w`) of this block
    /// because it lies on the edge of its own chunk: up to three (two sides
    /// and the diagonal), in the order the original server writes them
    /// (`dx` outer, `dz` inner, each from -1 to 1).
    pub fn mirror_chunks(self) -> impl Iterator<Item = ChunkPos> {
        let own = self.chunk();
        // i64 so that x = i32::MAX cannot overflow when probing x + 1.
        let (x, z) = (i64::from(self.x), i64::from(self.z));
        let size = i64::from(CHUNK_SIZE);
        let side =
            move |c: i64, dc: i64, own: i32| dc == 0 || (c + dc).div_euclid(size) != i64::from(own);
        (-1i32..=1)
            .flat_map(|dx| (-1i32..=1).map(move |dz| (dx, dz)))
            .filter(move |&(dx, dz)| {
                (dx, dz) != (0, 0) && side(x, i64::from(dx), own.p) && side(z, i64::from(dz), own.q)
            })
            .map(move |(dx, dz)| ChunkPos::new(own.p + dx, own.q + dz))
    }
}

impl fmt::Display for BlockPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {}, {})", self.x, self.y, self.z)
    }
}

/// The position of a chunk: `p` along x, `q` along z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkPos {
    /// Chunk index along x.
    pub p: i32,
    /// Chunk index along z.
    pub q: i32,
}

impl ChunkPos {
    /// A chunk position.
    pub const fn new(p: i32, q: i32) -> Self {
        Self { p, q }
    }

    /// The lowest block x of this chunk.
    pub fn min_x(self) -> i64 {
        i64::from(self.p) * i64::from(CHUNK_SIZE)
    }

    /// The lowest block z of this chunk.
    pub fn min_z(self) -> i64 {
        i64::from(self.q) * i64::from(CHUNK_SIZE)
    }

    /// Chebyshev distance in chunks (how many rings apart two chunks are).
    pub fn distance(self, other: ChunkPos) -> u32 {
        let dp = (i64::from(self.p) - i64::from(other.p)).unsigned_abs();
        let dq = (i64::from(self.q) - i64::from(other.q)).unsigned_abs();
        u32::try_from(dp.max(dq)).unwrap_or(u32::MAX)
    }
}

impl fmt::Display for ChunkPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.p, self.q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_division() {
        assert_eq!(chunk_of(0), 0);
        assert_eq!(chunk_of(31), 0);
        assert_eq!(chunk_of(32), 1);
        assert_eq!(chunk_of(-1), -1);
        assert_eq!(chunk_of(-32), -1);
        assert_eq!(chunk_of(-33), -2);
        assert_eq!(chunk_of(i32::MIN), i32::MIN / 32);
        assert_eq!(chunk_of_f32(31.6), 1);
        assert_eq!(chunk_of_f32(-0.4), 0);
        assert_eq!(chunk_of_f32(-0.5), -1);
        assert_eq!(chunk_of_f32(f32::NAN), 0);
    }

    fn mirrors(x: i32, z: i32) -> Vec<(i32, i32)> {
        BlockPos::new(x, 10, z)
            .mirror_chunks()
            .map(|c| (c.p, c.q))
            .collect()
    }

    #[test]
    fn mirror_chunks_follow_the_original_order() {
        assert!(mirrors(5, 5).is_empty());
        assert_eq!(mirrors(31, 10), vec![(1, 0)]);
        assert_eq!(mirrors(0, 10), vec![(-1, 0)]);
        assert_eq!(mirrors(31, 31), vec![(0, 1), (1, 0), (1, 1)]);
        assert_eq!(mirrors(-1, -1), vec![(-1, 0), (0, -1), (0, 0)]);
        assert_eq!(mirrors(32, 32), vec![(0, 0), (0, 1), (1, 0)]);
        assert_eq!(mirrors(i32::MAX, 0).len(), 3);
    }

    #[test]
    fn distance_is_chebyshev() {
        assert_eq!(ChunkPos::new(0, 0).distance(ChunkPos::new(3, -5)), 5);
        assert_eq!(
            ChunkPos::new(i32::MIN, 0).distance(ChunkPos::new(i32::MAX, 0)),
            u32::MAX
        );
    }
}
