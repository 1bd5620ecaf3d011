//! One chunk's generated blocks in a compact, lookup-friendly form.

use std::fmt;

use super::generate::{Columns, Writes, run};
use crate::coords::{BlockPos, CHUNK_SIZE, ChunkPos};

/// Columns in a chunk.
const COLUMNS: usize = (CHUNK_SIZE * CHUNK_SIZE) as usize;

/// The solid run at the bottom of a column: `block` for every `y` in
/// `0..height`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Ground {
    height: u8,
    block: u8,
}

/// The generated terrain of one chunk (its own 32 x 32 columns), folded
/// with last-write-wins semantics from [`generate_chunk`](super::generate_chunk).
///
/// Layout: per column the ground run (height and block, 2 bytes) plus one
/// sorted list of exceptions, the positions whose final value differs from
/// the ground run (plants, trees, clouds, ground that a later tree
/// overwrote), packed as `column << 16 | y << 8 | w` in a `u32`. A typical
/// chunk holds 2 KiB of ground and a few hundred to a few thousand
/// exceptions: see [`ChunkTerrain::heap_bytes`].
///
/// The one-block border the generator also writes (negated mirrors of the
/// neighbours' edges) is not kept: it belongs to the neighbouring chunks.
///
/// Packing `y` and `w` in a byte each is safe because the generator is
/// bounded: ground heights are `f * (g * 32 + 16)` with both noises within
/// about `0..=1` (so at most about 48), trees reach `h + 7`, clouds
/// `64..72`, and inner values are `1..=25`. Construction checks it in debug
/// builds; the tests compare every position of hundreds of chunks with the
/// raw writes.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkTerrain {
    chunk: ChunkPos,
    /// Indexed by `dx * 32 + dz`, `dx`, `dz` the offsets inside the chunk.
    ground: Box<[Ground]>,
    /// Sorted by `column << 8 | y` (the entry without its low byte).
    exceptions: Box<[u32]>,
}

impl ChunkTerrain {
    /// Runs the generator for `chunk` once and folds its writes.
    pub fn generate(chunk: ChunkPos) -> Self {
        let mut fold = Fold::new(chunk);
        run(chunk, Columns::Inner, &mut fold);
        fold.finish()
    }

    /// The chunk this terrain belongs to.
    pub fn chunk(&self) -> ChunkPos {
        self.chunk
    }

    /// The generated block at `pos` (`0` = air): what the client draws there
    /// when nobody changed it.
    ///
    /// `pos` should lie inside this chunk; positions of other chunks
    /// (including the neighbours' border blocks the generator mirrors)
    /// return `0`, as do heights outside `0..=255`. Never allocates.
    pub fn get(&self, pos: BlockPos) -> i32 {
        if pos.chunk() != self.chunk {
            return 0;
        }
        let Ok(y) = u8::try_from(pos.y) else {
            return 0;
        };
        let column = column_index(pos.x.rem_euclid(CHUNK_SIZE), pos.z.rem_euclid(CHUNK_SIZE));
        let key = position_key(column, y);
        let i = self.exceptions.partition_point(|&e| e >> 8 < key);
        match self.exceptions.get(i) {
            Some(&e) if e >> 8 == key => i32::from(entry_value(e)),
            _ => ground_value(self.ground[column], y),
        }
    }

    /// Approximate heap bytes held (for cache accounting).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.ground) + std::mem::size_of_val(&*self.exceptions)
    }
}

impl fmt::Debug for ChunkTerrain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkTerrain")
            .field("chunk", &self.chunk)
            .field("exceptions", &self.exceptions.len())
            .field("heap_bytes", &self.heap_bytes())
            .finish_non_exhaustive()
    }
}

/// The generated block at `pos`: generates the whole chunk, so it is slow
/// (a few milliseconds); meant for tests and tools. Servers keep
/// [`ChunkTerrain`]s instead.
pub fn block_at(pos: BlockPos) -> i32 {
    ChunkTerrain::generate(pos.chunk()).get(pos)
}

#[inline]
fn column_index(dx: i32, dz: i32) -> usize {
    // Callers pass offsets in 0..32, so the product is in 0..1024.
    (dx * CHUNK_SIZE + dz) as usize
}

#[inline]
fn position_key(column: usize, y: u8) -> u32 {
    // column < 1024: the key fits in 18 bits.
    (column as u32) << 8 | u32::from(y)
}

#[inline]
fn entry_value(entry: u32) -> u8 {
    (entry & 0xff) as u8
}

#[inline]
fn ground_value(ground: Ground, y: u8) -> i32 {
    if y < ground.height {
        i32::from(ground.block)
    } else {
        0
    }
}

/// Byte-sized view of a generated value; see the bounds on [`ChunkTerrain`].
#[inline]
fn byte(value: i32) -> u8 {
    debug_assert!(
        (0..=255).contains(&value),
        "generated value {value} out of byte range"
    );
    value as u8
}

/// Folds the generator's writes into a [`ChunkTerrain`].
struct Fold {
    chunk: ChunkPos,
    base_x: i32,
    base_z: i32,
    ground: Box<[Ground]>,
    /// Per column, how many writes of `writes` came before its ground run
    /// (the ground overwrites those below its height).
    ground_seq: Box<[u32]>,
    /// Every non-ground write inside the chunk, in order, packed as entries.
    writes: Vec<u32>,
}

impl Fold {
    fn new(chunk: ChunkPos) -> Self {
        Self {
            chunk,
            // The same wrapping arithmetic as the generator, so that the
            // offsets below recover its `dx`, `dz` exactly.
            base_x: chunk.p.wrapping_mul(CHUNK_SIZE),
            base_z: chunk.q.wrapping_mul(CHUNK_SIZE),
            ground: vec![Ground::default(); COLUMNS].into_boxed_slice(),
            ground_seq: vec![0; COLUMNS].into_boxed_slice(),
            writes: Vec::with_capacity(4096),
        }
    }

    /// The column of `(x, z)` if it is one of the chunk's own.
    #[inline]
    fn column(&self, x: i32, z: i32) -> Option<usize> {
        let dx = x.wrapping_sub(self.base_x);
        let dz = z.wrapping_sub(self.base_z);
        ((0..CHUNK_SIZE).contains(&dx) && (0..CHUNK_SIZE).contains(&dz))
            .then(|| column_index(dx, dz))
    }

    fn finish(mut self) -> ChunkTerrain {
        // Drop writes that a later ground run buried.
        let mut seq = 0u32;
        let (ground, ground_seq) = (&self.ground, &self.ground_seq);
        self.writes.retain(|&e| {
            let column = (e >> 16) as usize;
            let y = ((e >> 8) & 0xff) as u8;
            let buried = seq < ground_seq[column] && y < ground[column].height;
            seq += 1;
            !buried
        });
        // A stable sort keeps the writes to one position in order: the last
        // of each run is the final value.
        self.writes.sort_by_key(|&e| e >> 8);
        let mut exceptions = Vec::with_capacity(self.writes.len());
        for (i, &e) in self.writes.iter().enumerate() {
            let last = self
                .writes
                .get(i + 1)
                .is_none_or(|&next| next >> 8 != e >> 8);
            if !last {
                continue;
            }
            let column = (e >> 16) as usize;
            let y = ((e >> 8) & 0xff) as u8;
            if i32::from(entry_value(e)) != ground_value(self.ground[column], y) {
                exceptions.push(e);
            }
        }
        ChunkTerrain {
            chunk: self.chunk,
            ground: self.ground,
            exceptions: exceptions.into_boxed_slice(),
        }
    }
}

impl Writes for Fold {
    fn ground(&mut self, x: i32, z: i32, h: i32, w: i32) {
        if let Some(column) = self.column(x, z) {
            self.ground[column] = Ground {
                height: byte(h),
                block: byte(w),
            };
            // Fewer than 2^32 writes per chunk: bounded by the loops.
            self.ground_seq[column] = self.writes.len() as u32;
        }
    }

    fn block(&mut self, x: i32, y: i32, z: i32, w: i32) {
        if let Some(column) = self.column(x, z) {
            self.writes
                .push(position_key(column, byte(y)) << 8 | u32::from(byte(w)));
        }
    }
}
