//! Craft's `create_world` (`src/world.c`), write for write.

use super::noise::{c_int, simplex2, simplex3};
use crate::coords::{CHUNK_SIZE, ChunkPos};

/// Width of the mirrored border the generator also writes around a chunk.
const PAD: i32 = 1;

/// Ground at or below this height becomes sand at exactly this height.
const WATER_LEVEL: i32 = 12;

/// Block ids the generator writes (besides flowers, `18 + 7 * noise`).
mod block {
    pub const GRASS: i32 = 1;
    pub const SAND: i32 = 2;
    pub const WOOD: i32 = 5;
    pub const LEAVES: i32 = 15;
    pub const CLOUD: i32 = 16;
    pub const TALL_GRASS: i32 = 17;
    pub const FIRST_FLOWER: i32 = 18;
}

/// Clouds are tested for every `y` in this range.
const CLOUD_YS: std::ops::Range<i32> = 64..72;

/// `value * 0.01` (or `0.1`, `0.05`) as C computes it for an `int` times a
/// `double` literal passed to a `float` parameter: exact in `f64`, then
/// rounded once to `f32`.
#[inline]
fn scaled(value: i32, factor: f64) -> f32 {
    (f64::from(value) * factor) as f32
}

/// The column's ground: its height and block (grass, or sand at the water
/// level), as `create_world` derives them from two noise fields.
#[inline]
fn ground(x: i32, z: i32) -> (i32, i32) {
    let f = simplex2(scaled(x, 0.01), scaled(z, 0.01), 4, 0.5, 2.0);
    // `-x` is an `int` negation in C; wrapping matches it at `INT_MIN`.
    let g = simplex2(
        scaled(x.wrapping_neg(), 0.01),
        scaled(z.wrapping_neg(), 0.01),
        2,
        0.9,
        2.0,
    );
    let mh = c_int(g * 32.0 + 16.0);
    let h = c_int(f * mh as f32);
    if h <= WATER_LEVEL {
        (WATER_LEVEL, block::SAND)
    } else {
        (h, block::GRASS)
    }
}

/// Where the generator's writes go. Ground columns come as one call so that
/// a consumer that stores columns compactly need not see every block.
pub(super) trait Writes {
    /// Writes `(x, y, z, w)` for every `y` in `0..h`, bottom up.
    fn ground(&mut self, x: i32, z: i32, h: i32, w: i32);
    /// One write.
    fn block(&mut self, x: i32, y: i32, z: i32, w: i32);
    /// Whether the clouds are wanted: they are most of the generator's
    /// work (eight 3D noise samples per column), and a view from above
    /// leaves them out.
    fn clouds(&self) -> bool {
        true
    }
}

/// Adapts a plain callback to [`Writes`], expanding ground columns.
struct Emit<F>(F);

impl<F: FnMut(i32, i32, i32, i32)> Writes for Emit<F> {
    #[inline]
    fn ground(&mut self, x: i32, z: i32, h: i32, w: i32) {
        for y in 0..h {
            (self.0)(x, y, z, w);
        }
    }

    #[inline]
    fn block(&mut self, x: i32, y: i32, z: i32, w: i32) {
        (self.0)(x, y, z, w);
    }
}

/// Calls `emit(x, y, z, w)` for every write Craft's `create_world` makes
/// for chunk `chunk`, in the same order: overwrites included, and the
/// one-block border around the chunk with negated values (`-w`, the
/// neighbour-mirror convention). Trees (wood `5`, leaves `15`) are written
/// unflagged; they are only planted four or more blocks from the chunk edge,
/// so none of their writes reaches the border.
///
/// Coordinates wrap like the client's `int` arithmetic for chunks whose
/// blocks lie beyond `i32` (never reachable by a valid block position), so
/// no input panics.
pub fn generate_chunk(chunk: ChunkPos, emit: impl FnMut(i32, i32, i32, i32)) {
    run(chunk, Columns::WithBorder, &mut Emit(emit));
}

/// Which columns [`run`] generates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Columns {
    /// The chunk and its one-block border, as the client does.
    WithBorder,
    /// Only the chunk's own columns: the border columns write nothing but
    /// their own mirrored positions (they are too close to the edge for
    /// trees), so skipping them changes nothing inside the chunk.
    Inner,
}

/// The body of `create_world`, writing to `out`.
pub(super) fn run(chunk: ChunkPos, columns: Columns, out: &mut impl Writes) {
    let pad = if columns == Columns::WithBorder {
        PAD
    } else {
        0
    };
    let base_x = chunk.p.wrapping_mul(CHUNK_SIZE);
    let base_z = chunk.q.wrapping_mul(CHUNK_SIZE);
    for dx in -pad..CHUNK_SIZE + pad {
        for dz in -pad..CHUNK_SIZE + pad {
            let inner = (0..CHUNK_SIZE).contains(&dx) && (0..CHUNK_SIZE).contains(&dz);
            let flag = if inner { 1 } else { -1 };
            let x = base_x.wrapping_add(dx);
            let z = base_z.wrapping_add(dz);
            let (h, w) = ground(x, z);
            out.ground(x, z, h, w * flag);
            if w == block::GRASS {
                // The C code compares `float` results with `double`
                // literals, so the comparisons happen in `f64`.
                let tall_grass =
                    simplex2(scaled(x.wrapping_neg(), 0.1), scaled(z, 0.1), 4, 0.8, 2.0);
                if f64::from(tall_grass) > 0.6 {
                    out.block(x, h, z, block::TALL_GRASS * flag);
                }
                let flowers =
                    simplex2(scaled(x, 0.05), scaled(z.wrapping_neg(), 0.05), 4, 0.8, 2.0);
                if f64::from(flowers) > 0.7 {
                    let kind = simplex2(scaled(x, 0.1), scaled(z, 0.1), 4, 0.8, 2.0);
                    let flower = c_int(block::FIRST_FLOWER as f32 + kind * 7.0);
                    out.block(x, h, z, flower * flag);
                }
                let room = dx - 4 >= 0 && dz - 4 >= 0 && dx + 4 < CHUNK_SIZE && dz + 4 < CHUNK_SIZE;
                if room && f64::from(simplex2(x as f32, z as f32, 6, 0.5, 2.0)) > 0.84 {
                    plant_tree(x, h, z, out);
                }
            }
            if !out.clouds() {
                continue;
            }
            for y in CLOUD_YS {
                let density = simplex3(
                    scaled(x, 0.01),
                    scaled(y, 0.1),
                    scaled(z, 0.01),
                    8,
                    0.5,
                    2.0,
                );
                if f64::from(density) > 0.75 {
                    out.block(x, y, z, block::CLOUD * flag);
                }
            }
        }
    }
}

/// A tree on the ground at height `h` of column `(x, z)`: a ball of leaves
/// (`y` from `h + 3` to `h + 7`) around a trunk from `h` to `h + 6`, which
/// is written last and so replaces the leaves it crosses.
fn plant_tree(x: i32, h: i32, z: i32, out: &mut impl Writes) {
    for y in h + 3..h + 8 {
        let dy = y - (h + 4);
        for ox in -3i32..=3 {
            for oz in -3i32..=3 {
                if ox * ox + oz * oz + dy * dy < 11 {
                    out.block(x.wrapping_add(ox), y, z.wrapping_add(oz), block::LEAVES);
                }
            }
        }
    }
    for y in h..h + 7 {
        out.block(x, y, z, block::WOOD);
    }
}
