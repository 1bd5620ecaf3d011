//! The Craft terrain generator, bit-exact with the C client.
//!
//! The client draws every block nobody changed from a deterministic
//! generator (`create_world` in Craft's `src/world.c`, on the simplex noise
//! of `deps/noise/noise.c` with its default permutation table). The server
//! needs the very same blocks to judge edits: an edit's `previous` value is
//! the stored value or else the generated one.
//!
//! - [`simplex2`], [`simplex3`]: the noise functions, same `f32` bits as C;
//! - [`generate_chunk`]: every write the generator makes for a chunk, in
//!   order, border mirrors included (for golden tests and tools);
//! - [`ChunkTerrain`]: one chunk's own blocks, last write wins, compact
//!   (about 2 KiB plus 4 bytes per non-ground block) with allocation-free
//!   lookups; what a server caches;
//! - [`block_at`]: one block, generating its chunk (slow; tests and tools);
//! - [`ChunkSurface`]: the view from above (each column's highest block,
//!   clouds left out), for maps.
//!
//! Precision follows the C build (`-std=c99`, x86-64): noise inputs such as
//! `x * 0.01` are computed in `f64` and rounded to `f32`, all noise math is
//! `f32` without fused multiply-adds, comparisons against literals such as
//! `> 0.6` happen in `f64`, and float-to-int conversions truncate. The golden
//! file `craft-terrain-golden.txt` (see the shared fixtures) holds the
//! reference outputs the tests compare against.

mod chunk;
mod generate;
mod noise;
mod surface;

pub use chunk::{ChunkTerrain, block_at};

/// No generated block lies above this height: clouds fill `y` 64 to 71, and
/// ground, plants and trees stay far below (heights are at most about 48,
/// trees reach 7 above them). Edits higher up never need the terrain.
pub const TERRAIN_TOP: i32 = 71;
pub use generate::generate_chunk;
pub use noise::{simplex2, simplex3};
pub use surface::{ChunkSurface, Top};
