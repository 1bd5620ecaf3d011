//! Map tiles: 256 x 256 PNG images of the world seen from above.
//!
//! At zoom 0 a pixel is one block column; at zoom `z` it is the column at
//! the top-left corner of a `2^z` x `2^z` square (sampling, not averaging:
//! every pixel is a real block). Each pixel is the colour of the column's
//! highest block ([`ChunkSurface`]: generated terrain without its clouds,
//! then the stored changes, removals included), darker in the valleys and
//! lighter on the heights. Tile `(x, y)` at zoom `z` starts at block column
//! `(x * 256 * 2^z, y * 256 * 2^z)`: `x` grows east, `y` grows with the
//! world's `z`.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use world_core::coords::{BlockPos, CHUNK_SIZE, ChunkPos, chunk_of};
use world_core::terrain::{ChunkSurface, ChunkTerrain, Top};

/// Pixels per side of a tile.
pub const TILE_SIZE: i32 = 256;

/// The coarsest zoom: a pixel is 8 x 8 columns, a tile 2048 blocks (64 x 64
/// chunks, about a second and a half of terrain generation on one core).
pub const MAX_ZOOM: u8 = 3;

/// Tile coordinates stay within this many tiles of the origin at zoom 0
/// (block coordinates within about a million), so that no arithmetic can
/// overflow; a player walking that far takes days.
const MAX_TILE_AT_ZOOM_0: i32 = 4096;

/// One tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileKey {
    /// Zoom, `0..=MAX_ZOOM`.
    pub zoom: u8,
    /// Column of tiles (east).
    pub x: i32,
    /// Row of tiles (the world's `z`).
    pub y: i32,
}

impl TileKey {
    /// The tile, if the coordinates are in range.
    pub fn new(zoom: u8, x: i32, y: i32) -> Option<Self> {
        let limit = MAX_TILE_AT_ZOOM_0 >> zoom.min(MAX_ZOOM);
        (zoom <= MAX_ZOOM && (-limit..limit).contains(&x) && (-limit..limit).contains(&y))
            .then_some(Self { zoom, x, y })
    }

    /// Block columns per pixel side.
    pub fn step(self) -> i32 {
        1 << self.zoom
    }

    /// Blocks per tile side.
    pub fn span(self) -> i32 {
        TILE_SIZE * self.step()
    }

    /// The column of the top-left pixel.
    pub fn origin(self) -> (i32, i32) {
        (self.x * self.span(), self.y * self.span())
    }

    /// The tiles (one per zoom level) that show column `(x, z)`.
    pub fn containing(x: i32, z: i32) -> impl Iterator<Item = TileKey> {
        (0..=MAX_ZOOM).filter_map(move |zoom| {
            let span = TILE_SIZE << zoom;
            TileKey::new(zoom, x.div_euclid(span), z.div_euclid(span))
        })
    }

    /// The chunks the tile shows, row by row.
    pub fn chunks(self) -> Vec<ChunkPos> {
        let (x0, z0) = self.origin();
        let side = self.span() / CHUNK_SIZE;
        let (p0, q0) = (chunk_of(x0), chunk_of(z0));
        (0..side)
            .flat_map(|dq| (0..side).map(move |dp| ChunkPos::new(p0 + dp, q0 + dq)))
            .collect()
    }
}

/// What is stored for a chunk: its own blocks, and its generated terrain
/// when already at hand.
#[derive(Clone, Debug, Default)]
pub struct StoredChunk {
    /// Stored (or pending) blocks of the chunk; mirrors are skipped.
    pub blocks: Vec<(BlockPos, i32)>,
    /// The chunk's terrain, if someone already generated it.
    pub terrain: Option<Arc<ChunkTerrain>>,
}

/// Why a tile could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TileError {
    /// The PNG encoder failed (it writes to memory, so this is a bug).
    #[error("cannot encode the tile: {0}")]
    Encode(#[from] png::EncodingError),
}

/// The surface of `chunk`: generated, then `stored` applied.
pub fn surface(chunk: ChunkPos, stored: Option<&StoredChunk>) -> ChunkSurface {
    let generated = ChunkSurface::generate(chunk);
    match stored {
        Some(stored) if !stored.blocks.is_empty() => {
            let terrain = match &stored.terrain {
                Some(terrain) => terrain.clone(),
                None => Arc::new(ChunkTerrain::generate(chunk)),
            };
            generated.with_changes(&terrain, stored.blocks.iter().copied())
        }
        _ => generated,
    }
}

/// The RGB pixels of `key` (row by row), given the stored changes of its
/// chunks (chunks absent from `stored` have none). CPU-bound: tens of
/// milliseconds at zoom 0, about a second and a half at [`MAX_ZOOM`].
pub fn pixels(key: TileKey, stored: &FxHashMap<ChunkPos, StoredChunk>) -> Vec<u8> {
    let chunks = key.chunks();
    let side = key.span() / CHUNK_SIZE;
    let surfaces: Vec<ChunkSurface> = chunks
        .iter()
        .map(|chunk| surface(*chunk, stored.get(chunk)))
        .collect();
    let (x0, z0) = key.origin();
    let step = key.step();
    let mut rgb = Vec::with_capacity((TILE_SIZE * TILE_SIZE * 3) as usize);
    for py in 0..TILE_SIZE {
        let z = z0 + py * step;
        let row = ((z - z0) / CHUNK_SIZE) as usize;
        for px in 0..TILE_SIZE {
            let x = x0 + px * step;
            let column = ((x - x0) / CHUNK_SIZE) as usize;
            let top = surfaces[row * side as usize + column].top(x, z);
            rgb.extend_from_slice(&shade(top));
        }
    }
    rgb
}

/// The PNG of `key` (see [`pixels`]).
pub fn render(
    key: TileKey,
    stored: &FxHashMap<ChunkPos, StoredChunk>,
) -> Result<Vec<u8>, TileError> {
    encode(&pixels(key, stored))
}

/// Encodes 256 x 256 RGB pixels as a PNG.
pub fn encode(rgb: &[u8]) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::with_capacity(32 * 1024);
    let mut encoder = png::Encoder::new(&mut out, TILE_SIZE as u32, TILE_SIZE as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Tiles are made once and served often: favour size a little, but the
    // map's flat colours compress well even at the fast setting.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// The pixel of a column: its block's colour, darkened below the usual
/// ground height and lightened above it so that relief shows.
pub fn shade(top: Top) -> [u8; 3] {
    if top.w == 0 {
        return VOID;
    }
    let [r, g, b] = colour(top.w);
    // Ground lies between 12 (the sand of the shores) and about 48; trees
    // and buildings rise above. Integer arithmetic: tiles are compared
    // byte for byte with committed images.
    let factor = (72 + i32::from(top.y)).clamp(64, 160);
    let scale = |c: u8| u8::try_from((i32::from(c) * factor / 100).min(255)).unwrap_or(255);
    [scale(r), scale(g), scale(b)]
}

/// An empty column (nothing at all, not even the ground).
const VOID: [u8; 3] = [0, 0, 0];

/// A block id without a colour: loud, so that it gets noticed.
const UNKNOWN: [u8; 3] = [255, 0, 255];

/// The colour of block `w`, after the client's textures (`src/item.c`,
/// `textures/texture.png`).
pub fn colour(w: u8) -> [u8; 3] {
    match w {
        1 => [96, 160, 64],    // grass
        2 => [219, 205, 150],  // sand
        3 => [128, 128, 128],  // stone
        4 => [158, 82, 66],    // brick
        5 => [104, 80, 48],    // wood
        6 => [196, 192, 180],  // cement
        7 => [134, 96, 67],    // dirt
        8 => [180, 144, 90],   // plank
        9 => [240, 248, 250],  // snow
        10 => [190, 225, 235], // glass
        11 => [110, 110, 110], // cobble
        12 => [200, 200, 190], // light stone
        13 => [70, 70, 76],    // dark stone
        14 => [150, 110, 50],  // chest
        15 => [52, 110, 40],   // leaves
        16 => [250, 250, 250], // cloud
        17 => [110, 170, 70],  // tall grass
        18 => [230, 210, 60],  // yellow flower
        19 => [200, 50, 50],   // red flower
        20 => [150, 80, 180],  // purple flower
        21 => [240, 180, 40],  // sun flower
        22 => [235, 235, 235], // white flower
        23 => [70, 110, 210],  // blue flower
        32..=63 => COLOURS[usize::from(w - 32)],
        _ => UNKNOWN,
    }
}

/// The 32 plain colour blocks (`COLOR_00` to `COLOR_31`): the client's
/// palette row, eight hues in four shades.
const COLOURS: [[u8; 3]; 32] = [
    [255, 255, 255],
    [192, 192, 192],
    [128, 128, 128],
    [64, 64, 64],
    [0, 0, 0],
    [255, 0, 0],
    [255, 128, 0],
    [255, 255, 0],
    [128, 255, 0],
    [0, 255, 0],
    [0, 255, 128],
    [0, 255, 255],
    [0, 128, 255],
    [0, 0, 255],
    [128, 0, 255],
    [224, 64, 224],
    [255, 0, 128],
    [128, 0, 0],
    [128, 64, 0],
    [128, 128, 0],
    [64, 128, 0],
    [0, 128, 0],
    [0, 128, 64],
    [0, 128, 128],
    [0, 64, 128],
    [0, 0, 128],
    [64, 0, 128],
    [128, 0, 128],
    [128, 0, 64],
    [255, 192, 160],
    [160, 96, 64],
    [96, 64, 48],
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_their_chunks_and_columns() {
        let key = TileKey::new(0, -1, 2).expect("in range");
        assert_eq!(key.origin(), (-256, 512));
        let chunks = key.chunks();
        assert_eq!(chunks.len(), 64);
        assert_eq!(chunks[0], ChunkPos::new(-8, 16));
        assert_eq!(chunks[63], ChunkPos::new(-1, 23));
        let coarse = TileKey::new(MAX_ZOOM, 0, 0).expect("in range");
        assert_eq!(coarse.chunks().len(), 64 * 64);
        let tiles: Vec<TileKey> = TileKey::containing(-1, 300).collect();
        assert_eq!(tiles.len(), usize::from(MAX_ZOOM) + 1);
        assert_eq!(
            tiles[0],
            TileKey {
                zoom: 0,
                x: -1,
                y: 1
            }
        );
        assert_eq!(
            tiles[1],
            TileKey {
                zoom: 1,
                x: -1,
                y: 0
            }
        );
        assert!(TileKey::new(0, MAX_TILE_AT_ZOOM_0, 0).is_none());
        assert!(TileKey::new(MAX_ZOOM + 1, 0, 0).is_none());
    }

    #[test]
    fn coarse_tiles_sample_the_fine_ones() {
        let stored = FxHashMap::default();
        let fine = pixels(TileKey::new(0, 0, 0).expect("tile"), &stored);
        let coarse = pixels(TileKey::new(1, 0, 0).expect("tile"), &stored);
        // The top-left quarter of the coarse tile shows every other column
        // of the fine one.
        for py in 0..128usize {
            for px in 0..128usize {
                let c = (py * 256 + px) * 3;
                let f = (py * 2 * 256 + px * 2) * 3;
                assert_eq!(coarse[c..c + 3], fine[f..f + 3], "pixel {px},{py}");
            }
        }
    }

    #[test]
    fn every_item_has_a_colour() {
        for w in (1..=23).chain(32..=63) {
            assert_ne!(colour(w), UNKNOWN, "item {w}");
        }
        assert_eq!(shade(Top { y: 0, w: 0 }), VOID);
    }
}
