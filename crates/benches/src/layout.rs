//! Where the bots live and which block each one edits.
//!
//! Every bot has a home chunk inside a `W x H` grid and only ever moves
//! inside it, so the server always files it under that chunk; the expected
//! recipients of an edit follow from the layout alone.
//!
//! Each bot owns one column of its home chunk and a band of heights in the
//! air (`y` from 100 to 199, far above the terrain and the clouds), and
//! alternates placing and removing a block there, so that every edit is
//! accepted. Columns stay off the chunk edges (x and z from 1 to 30 inside
//! the chunk): an edge block would also be sent as mirrors to the
//! neighbouring chunks.
//!
//! The edited position and value are the marker: a receiver maps
//! `(x, y, z, w)` back to the author and to the edit's slot in the author's
//! ring of send times (see [`Layout::edit`] and [`Layout::decode`]) with
//! arithmetic and one table lookup.

use world_core::coords::{BlockPos, CHUNK_SIZE, ChunkPos};

/// Interior columns of a chunk a bot may own (30 x 30).
pub const COLUMNS_PER_CHUNK: u32 = 900;
const INTERIOR: i32 = CHUNK_SIZE - 2;

/// Lowest edited height.
pub const Y_BASE: i32 = 100;
/// Heights used for edits (100..=199).
pub const Y_LEVELS: i32 = 100;

/// Items placed, in turn (every non-air item players may place).
pub const ITEMS: [i32; 54] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20, 21, 22, 23, 32, 33, 34, 35,
    36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
    60, 61, 62, 63,
];

/// How bots are spread over the chunks.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Spread {
    /// Round robin: chunk counts differ by at most one.
    Even,
    /// Each bot picks a chunk at random (seeded): uneven crowds.
    Random,
}

/// Why a layout is impossible.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// An empty grid or no bots.
    #[error("need at least one bot and one chunk")]
    Empty,
    /// More bots in one chunk than there are distinct edit positions.
    #[error(
        "{0} bots in one chunk: at most {max} fit (900 columns x 50 bands)",
        max = COLUMNS_PER_CHUNK * 50
    )]
    Crowded(u32),
}

/// The bots' home chunks and edit slots.
#[derive(Clone, Debug)]
pub struct Layout {
    origin: ChunkPos,
    width: u32,
    height: u32,
    /// Chunk index of each bot.
    bot_chunk: Vec<u32>,
    /// Index of each bot among the bots of its chunk.
    bot_local: Vec<u32>,
    /// Bots of each chunk, by local index.
    chunk_bots: Vec<Vec<u32>>,
    /// Bots in the chunks before each grid index (row-major), and in all.
    chunk_start: Vec<u32>,
    /// Heights per band (each bot cycles through its band).
    band: i32,
}

/// Where and what a bot's `n`-th edit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edit {
    /// The block.
    pub pos: BlockPos,
    /// The value (0 = remove).
    pub w: i32,
    /// Slot in the author's ring of send times.
    pub ring: usize,
}

/// A received `B` line, traced back to its edit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    /// The author.
    pub bot: u32,
    /// Slot in the author's ring.
    pub ring: usize,
}

impl Layout {
    /// `bots` bots over the `width x height` chunks from `origin`.
    pub fn new(
        bots: u32,
        origin: ChunkPos,
        width: u32,
        height: u32,
        spread: Spread,
        seed: u64,
    ) -> Result<Self, LayoutError> {
        let chunks = width as usize * height as usize;
        if bots == 0 || chunks == 0 {
            return Err(LayoutError::Empty);
        }
        let mut rng = SplitMix64::new(seed);
        let mut chunk_bots: Vec<Vec<u32>> = vec![Vec::new(); chunks];
        let mut bot_chunk = Vec::with_capacity(bots as usize);
        let mut bot_local = Vec::with_capacity(bots as usize);
        for bot in 0..bots {
            let chunk = match spread {
                Spread::Even => bot as usize % chunks,
                Spread::Random => rng.below(chunks as u64) as usize,
            };
            bot_chunk.push(chunk as u32);
            bot_local.push(chunk_bots[chunk].len() as u32);
            chunk_bots[chunk].push(bot);
        }
        let crowd = chunk_bots.iter().map(Vec::len).max().unwrap_or(0) as u32;
        let chunk_start = std::iter::once(0)
            .chain(chunk_bots.iter().scan(0u32, |before, bots| {
                *before += bots.len() as u32;
                Some(*before)
            }))
            .collect();
        let bands = crowd.div_ceil(COLUMNS_PER_CHUNK) as i32;
        let band = Y_LEVELS / bands.max(1);
        if band < 2 {
            return Err(LayoutError::Crowded(crowd));
        }
        Ok(Self {
            origin,
            width,
            height,
            bot_chunk,
            bot_local,
            chunk_bots,
            chunk_start,
            band,
        })
    }

    /// Number of bots.
    pub fn bots(&self) -> u32 {
        self.bot_chunk.len() as u32
    }

    /// Number of chunks in the grid.
    pub fn chunks(&self) -> usize {
        self.chunk_bots.len()
    }

    /// Length of each bot's ring of send times: an edit's marker repeats
    /// after this many edits of the same bot.
    pub fn ring_len(&self) -> usize {
        2 * self.band as usize
    }

    /// The chunk at grid index `index`.
    pub fn chunk_at(&self, index: usize) -> ChunkPos {
        let dx = (index % self.width as usize) as i32;
        let dz = (index / self.width as usize) as i32;
        ChunkPos::new(self.origin.p + dx, self.origin.q + dz)
    }

    /// Grid index of `chunk`, if inside the grid.
    pub fn index_of(&self, chunk: ChunkPos) -> Option<usize> {
        let dx = i64::from(chunk.p) - i64::from(self.origin.p);
        let dz = i64::from(chunk.q) - i64::from(self.origin.q);
        if dx < 0 || dz < 0 || dx >= i64::from(self.width) || dz >= i64::from(self.height) {
            return None;
        }
        Some(dz as usize * self.width as usize + dx as usize)
    }

    /// Grid index of a bot's home chunk.
    pub fn home_index(&self, bot: u32) -> usize {
        self.bot_chunk[bot as usize] as usize
    }

    /// A bot's home chunk.
    pub fn home(&self, bot: u32) -> ChunkPos {
        self.chunk_at(self.home_index(bot))
    }

    /// The column (x, z) and lowest height of a bot's slot.
    fn slot(&self, bot: u32) -> (i32, i32, i32) {
        let chunk = self.home(bot);
        let local = self.bot_local[bot as usize];
        let column = (local % COLUMNS_PER_CHUNK) as i32;
        let band = (local / COLUMNS_PER_CHUNK) as i32;
        let x = chunk.p * CHUNK_SIZE + 1 + column % INTERIOR;
        let z = chunk.q * CHUNK_SIZE + 1 + column / INTERIOR;
        (x, z, Y_BASE + band * self.band)
    }

    /// A bot's `n`-th edit (counting from 0): even edits place an item at
    /// the next height of its band, odd ones remove it again.
    pub fn edit(&self, bot: u32, n: u64) -> Edit {
        let (x, z, y0) = self.slot(bot);
        let band = self.band as u64;
        let pair = n / 2;
        let level = (pair % band) as i32;
        let remove = n % 2 == 1;
        let w = if remove {
            0
        } else {
            ITEMS[((pair / band) % ITEMS.len() as u64) as usize]
        };
        Edit {
            pos: BlockPos::new(x, y0 + level, z),
            w,
            ring: 2 * level as usize + usize::from(remove),
        }
    }

    /// The edit a `B` line of `pos` belongs to, if one of ours.
    pub fn decode(&self, pos: BlockPos) -> Option<Marker> {
        let chunk = pos.chunk();
        let index = self.index_of(chunk)?;
        let cx = pos.x - chunk.p * CHUNK_SIZE - 1;
        let cz = pos.z - chunk.q * CHUNK_SIZE - 1;
        if !(0..INTERIOR).contains(&cx) || !(0..INTERIOR).contains(&cz) {
            return None;
        }
        let dy = pos.y - Y_BASE;
        if !(0..Y_LEVELS).contains(&dy) {
            return None;
        }
        let band = dy / self.band;
        let level = dy % self.band;
        let local = band as u32 * COLUMNS_PER_CHUNK + (cz * INTERIOR + cx) as u32;
        let bot = *self.chunk_bots[index].get(local as usize)?;
        Some(Marker {
            bot,
            ring: 2 * level as usize,
        })
    }

    /// The bots whose edits a bot living in grid chunk `home` receives:
    /// those within `radius` chunks (Chebyshev) of it, or every bot
    /// (`None`). The receiver itself is one of them.
    pub fn senders(&self, home: usize, radius: Option<u32>) -> Senders {
        let (w, h) = (self.width as usize, self.height as usize);
        let (x, z) = (home % w, home / w);
        let r = radius.map_or(usize::MAX, |r| r as usize);
        let (x0, x1) = (x.saturating_sub(r), x.saturating_add(r).min(w - 1));
        let (z0, z1) = (z.saturating_sub(r), z.saturating_add(r).min(h - 1));
        let mut row_first = Vec::with_capacity(z1 - z0 + 1);
        let mut len = 0u32;
        for row in z0..=z1 {
            row_first.push(len);
            len += self.chunk_start[row * w + x1 + 1] - self.chunk_start[row * w + x0];
        }
        Senders {
            x0,
            x1,
            z0,
            z1,
            row_first,
            len: len as usize,
        }
    }

    /// How many bots live within `radius` chunks (Chebyshev) of each grid
    /// chunk, counting only those `alive`.
    pub fn near_counts(&self, radius: u32, alive: impl Fn(u32) -> bool) -> Vec<u64> {
        let (w, h) = (self.width as i64, self.height as i64);
        let mut grid = vec![0u64; self.chunks()];
        for (bot, &chunk) in self.bot_chunk.iter().enumerate() {
            if alive(bot as u32) {
                grid[chunk as usize] += 1;
            }
        }
        // Summed-area table: each query is four lookups.
        let stride = (w + 1) as usize;
        let mut sat = vec![0u64; stride * (h + 1) as usize];
        for z in 0..h {
            for x in 0..w {
                let v = grid[(z * w + x) as usize];
                let i = ((z + 1) * (w + 1) + x + 1) as usize;
                sat[i] = v + sat[i - 1] + sat[i - stride] - sat[i - stride - 1];
            }
        }
        let r = i64::from(radius);
        let area = |x0: i64, z0: i64, x1: i64, z1: i64| -> u64 {
            // Inclusive bounds, clamped to the grid.
            let (x0, z0) = (x0.max(0), z0.max(0));
            let (x1, z1) = (x1.min(w - 1), z1.min(h - 1));
            let at = |x: i64, z: i64| sat[(z * (w + 1) + x) as usize];
            at(x1 + 1, z1 + 1) + at(x0, z0) - at(x0, z1 + 1) - at(x1 + 1, z0)
        };
        (0..self.chunks())
            .map(|i| {
                let (x, z) = ((i as i64) % w, (i as i64) / w);
                area(x - r, z - r, x + r, z + r)
            })
            .collect()
    }
}

/// The bots whose edits one receiver gets, numbered densely from 0: the
/// bots of a square window of chunks around the receiver's, row by row, in
/// each chunk by local index (see [`Layout::senders`]).
#[derive(Clone, Debug)]
pub struct Senders {
    /// The window, inclusive grid coordinates.
    x0: usize,
    x1: usize,
    z0: usize,
    z1: usize,
    /// Number of the first bot of each row of the window.
    row_first: Vec<u32>,
    len: usize,
}

impl Senders {
    /// How many bots.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of `bot`, if it is one of them.
    pub fn index(&self, layout: &Layout, bot: u32) -> Option<usize> {
        let chunk = *layout.bot_chunk.get(bot as usize)? as usize;
        let w = layout.width as usize;
        let (x, z) = (chunk % w, chunk / w);
        if !(self.x0..=self.x1).contains(&x) || !(self.z0..=self.z1).contains(&z) {
            return None;
        }
        let rank = layout.chunk_start[chunk] + layout.bot_local[bot as usize];
        let row_start = layout.chunk_start[z * w + self.x0];
        Some((self.row_first[z - self.z0] + rank - row_start) as usize)
    }

    /// Every bot with its number, in order of numbers.
    pub fn bots<'a>(&'a self, layout: &'a Layout) -> impl Iterator<Item = (usize, u32)> + 'a {
        let w = layout.width as usize;
        (self.z0..=self.z1)
            .flat_map(move |z| (z * w + self.x0..=z * w + self.x1).map(|c| &layout.chunk_bots[c]))
            .flatten()
            .copied()
            .enumerate()
    }
}

/// A small, fast, seedable generator (SplitMix64): reproducible runs
/// without a dependency.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; a negligible bias is fine here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_edit_decodes_to_its_author_and_slot() {
        for (bots, w, h) in [
            (1, 1, 1),
            (20, 1, 1),
            (2000, 1, 1),
            (5000, 50, 50),
            (7, 3, 2),
        ] {
            let layout =
                Layout::new(bots, ChunkPos::new(-2, 3), w, h, Spread::Even, 1).expect("layout");
            let mut seen = std::collections::HashSet::new();
            for bot in 0..bots {
                for n in 0..(2 * layout.ring_len() as u64 + 3) {
                    let edit = layout.edit(bot, n);
                    assert!(edit.pos.y_is_editable());
                    assert_eq!(edit.pos.mirror_chunks().count(), 0, "never on an edge");
                    assert_eq!(edit.pos.chunk(), layout.home(bot));
                    assert!(world_core::item::is_allowed(edit.w));
                    assert_eq!(edit.w == 0, n % 2 == 1);
                    let marker = layout.decode(edit.pos).expect("decodes");
                    assert_eq!(marker.bot, bot);
                    assert_eq!(marker.ring + usize::from(edit.w == 0), edit.ring);
                    if n < layout.ring_len() as u64 && n % 2 == 0 {
                        assert!(seen.insert(edit.pos), "positions are unique");
                    }
                }
            }
        }
        let layout = Layout::new(3, ChunkPos::new(0, 0), 1, 1, Spread::Even, 1).expect("layout");
        assert_eq!(layout.decode(BlockPos::new(0, 150, 5)), None, "edge");
        assert_eq!(layout.decode(BlockPos::new(5, 50, 5)), None, "too low");
        assert_eq!(
            layout.decode(BlockPos::new(40, 150, 5)),
            None,
            "other chunk"
        );
        assert_eq!(layout.decode(BlockPos::new(1, 150, 2)), None, "no such bot");
    }

    #[test]
    fn crowds_have_limits() {
        assert_eq!(
            Layout::new(0, ChunkPos::new(0, 0), 1, 1, Spread::Even, 1).err(),
            Some(LayoutError::Empty)
        );
        assert!(Layout::new(45_000, ChunkPos::new(0, 0), 1, 1, Spread::Even, 1).is_ok());
        assert!(Layout::new(45_001, ChunkPos::new(0, 0), 1, 1, Spread::Even, 1).is_err());
    }

    #[test]
    fn near_counts_match_brute_force() {
        let layout = Layout::new(500, ChunkPos::new(5, -5), 7, 4, Spread::Random, 9).expect("ok");
        let alive = |b: u32| !b.is_multiple_of(7);
        for radius in [0, 1, 2, 15] {
            let fast = layout.near_counts(radius, alive);
            for (i, got) in fast.iter().enumerate() {
                let center = layout.chunk_at(i);
                let slow = (0..layout.bots())
                    .filter(|b| alive(*b) && layout.home(*b).distance(center) <= radius)
                    .count() as u64;
                assert_eq!(*got, slow, "chunk {center} radius {radius}");
            }
        }
    }

    #[test]
    fn senders_number_the_bots_in_range_densely() {
        let layout = Layout::new(500, ChunkPos::new(5, -5), 7, 4, Spread::Random, 9).expect("ok");
        for radius in [Some(0), Some(1), Some(2), Some(15), None] {
            for home in 0..layout.chunks() {
                let senders = layout.senders(home, radius);
                let center = layout.chunk_at(home);
                let expected: Vec<u32> = (0..layout.bots())
                    .filter(|b| radius.is_none_or(|r| layout.home(*b).distance(center) <= r))
                    .collect();
                assert_eq!(senders.len(), expected.len(), "{center} {radius:?}");
                let listed: Vec<(usize, u32)> = senders.bots(&layout).collect();
                assert_eq!(listed.len(), expected.len());
                for (i, (number, bot)) in listed.iter().enumerate() {
                    assert_eq!(*number, i);
                    assert_eq!(senders.index(&layout, *bot), Some(i), "bot {bot}");
                }
                for bot in 0..layout.bots() {
                    assert_eq!(
                        senders.index(&layout, bot).is_some(),
                        expected.contains(&bot),
                        "bot {bot} around {center} radius {radius:?}"
                    );
                }
            }
        }
        let one = Layout::new(1000, ChunkPos::new(0, 0), 1, 1, Spread::Even, 1).expect("ok");
        let senders = one.senders(0, Some(15));
        assert_eq!(senders.len(), 1000);
        assert_eq!(senders.index(&one, 999), Some(999));
        assert_eq!(senders.index(&one, 1000), None);
    }

    #[test]
    fn even_spread_is_round_robin() {
        let layout = Layout::new(10, ChunkPos::new(0, 0), 2, 2, Spread::Even, 0).expect("ok");
        assert_eq!(layout.home(0), ChunkPos::new(0, 0));
        assert_eq!(layout.home(1), ChunkPos::new(1, 0));
        assert_eq!(layout.home(2), ChunkPos::new(0, 1));
        assert_eq!(layout.home(5), ChunkPos::new(1, 0));
        assert_eq!(layout.index_of(ChunkPos::new(2, 0)), None);
    }
}
