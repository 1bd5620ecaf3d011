//! Who lives where in a fleet run, and which block each edit places.
//!
//! Bot `b` plays on server `b % K` and lives in grid chunk `(b / K) % C`,
//! so every server has bots in every chunk. The first `editors` bots edit
//! (an even share of every server, as far as the count allows).
//!
//! Every edit places a block at a position of its own (never removes one,
//! never reuses a position): with polling (`--bus none`) a receiving server
//! only learns the store's latest state, so an edit undone before the next
//! sync would never be shown. The position is the marker: in its editor's
//! home chunk, the `L`-th interior position (x and z from 1 to 30 inside the
//! chunk, away from the edges whose blocks are mirrored to neighbours; y
//! from [`Y_BASE`] up), with `L = local + k * n` for the editor's index
//! `local` among the `k` editors of that chunk and its `n`-th edit.

use world_core::coords::{BlockPos, CHUNK_SIZE, ChunkPos};

/// Lowest edited height (far above terrain and clouds).
pub const Y_BASE: i32 = 100;
/// Heights used (100..=199).
pub const Y_LEVELS: i32 = 100;
const INTERIOR: i32 = CHUNK_SIZE - 2;
/// Distinct edit positions of one chunk.
pub const POSITIONS_PER_CHUNK: u64 = (INTERIOR * INTERIOR * Y_LEVELS) as u64;
/// The item every edit places (stone).
pub const ITEM: i32 = 1;

/// The run's bots, servers, chunks and editors.
#[derive(Clone, Debug)]
pub struct Marks {
    servers: u32,
    origin: ChunkPos,
    width: u32,
    height: u32,
    editors: u32,
    /// Editors of each grid chunk, by local index.
    chunk_editors: Vec<Vec<u32>>,
    /// Edits each editor may make (its ring of send times).
    per_editor: u64,
}

/// An edit traced back from its block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The editing bot.
    pub editor: u32,
    /// Its `n`-th edit.
    pub n: u64,
}

impl Marks {
    /// `editors` of `bots` bots over `servers` servers and the
    /// `width x height` chunks from `origin`, each editor making at most
    /// `per_editor` edits. Errors when the edits do not fit the chunks.
    pub fn new(
        bots: u32,
        servers: u32,
        editors: u32,
        (origin, width, height): (ChunkPos, u32, u32),
        per_editor: u64,
    ) -> Result<Self, String> {
        if bots == 0 || servers == 0 || width == 0 || height == 0 {
            return Err("need at least one bot, one server and one chunk".into());
        }
        if editors > bots {
            return Err(format!("{editors} editors but only {bots} bots"));
        }
        let chunks = width as usize * height as usize;
        let mut chunk_editors = vec![Vec::new(); chunks];
        let mut marks = Self {
            servers,
            origin,
            width,
            height,
            editors,
            chunk_editors: Vec::new(),
            per_editor,
        };
        for e in 0..editors {
            chunk_editors[marks.home_index(e)].push(e);
        }
        let crowd = chunk_editors.iter().map(Vec::len).max().unwrap_or(0) as u64;
        if crowd * per_editor > POSITIONS_PER_CHUNK {
            return Err(format!(
                "{crowd} editors x {per_editor} edits in one chunk: at most \
                 {POSITIONS_PER_CHUNK} positions; use more chunks, fewer editors, a lower rate \
                 or a shorter run"
            ));
        }
        marks.chunk_editors = chunk_editors;
        Ok(marks)
    }

    /// The server bot `bot` plays on.
    pub fn server_of(&self, bot: u32) -> u32 {
        bot % self.servers
    }

    /// Whether `bot` edits.
    pub fn is_editor(&self, bot: u32) -> bool {
        bot < self.editors
    }

    /// Editors.
    pub fn editors(&self) -> u32 {
        self.editors
    }

    /// Edits each editor may make.
    pub fn per_editor(&self) -> u64 {
        self.per_editor
    }

    /// Grid chunks.
    pub fn chunks(&self) -> Vec<ChunkPos> {
        (0..self.width as usize * self.height as usize)
            .map(|i| self.chunk_at(i))
            .collect()
    }

    fn chunk_at(&self, index: usize) -> ChunkPos {
        let dx = (index % self.width as usize) as i32;
        let dz = (index / self.width as usize) as i32;
        ChunkPos::new(self.origin.p + dx, self.origin.q + dz)
    }

    fn home_index(&self, bot: u32) -> usize {
        let chunks = self.width as usize * self.height as usize;
        (bot / self.servers) as usize % chunks
    }

    /// The chunk bot `bot` lives in.
    pub fn home(&self, bot: u32) -> ChunkPos {
        self.chunk_at(self.home_index(bot))
    }

    /// The block of editor `editor`'s `n`-th edit (`None`: past its
    /// share of positions).
    pub fn position(&self, editor: u32, n: u64) -> Option<BlockPos> {
        if n >= self.per_editor || editor >= self.editors {
            return None;
        }
        let index = self.home_index(editor);
        let local = self.chunk_editors[index]
            .iter()
            .position(|e| *e == editor)? as u64;
        let k = self.chunk_editors[index].len() as u64;
        let l = local + k * n;
        let chunk = self.chunk_at(index);
        let column = (l % (INTERIOR * INTERIOR) as u64) as i32;
        let level = (l / (INTERIOR * INTERIOR) as u64) as i32;
        Some(BlockPos::new(
            chunk.p * CHUNK_SIZE + 1 + column % INTERIOR,
            Y_BASE + level,
            chunk.q * CHUNK_SIZE + 1 + column / INTERIOR,
        ))
    }

    /// The edit that placed a block at `pos`, if one of ours.
    pub fn decode(&self, pos: BlockPos) -> Option<Mark> {
        let chunk = pos.chunk();
        let dx = i64::from(chunk.p) - i64::from(self.origin.p);
        let dz = i64::from(chunk.q) - i64::from(self.origin.q);
        if dx < 0 || dz < 0 || dx >= i64::from(self.width) || dz >= i64::from(self.height) {
            return None;
        }
        let index = dz as usize * self.width as usize + dx as usize;
        let cx = pos.x - chunk.p * CHUNK_SIZE - 1;
        let cz = pos.z - chunk.q * CHUNK_SIZE - 1;
        let dy = pos.y - Y_BASE;
        if !(0..INTERIOR).contains(&cx)
            || !(0..INTERIOR).contains(&cz)
            || !(0..Y_LEVELS).contains(&dy)
        {
            return None;
        }
        let l = (dy * INTERIOR * INTERIOR + cz * INTERIOR + cx) as u64;
        let editors = &self.chunk_editors[index];
        let k = editors.len() as u64;
        if k == 0 {
            return None;
        }
        let editor = *editors.get((l % k) as usize)?;
        let n = l / k;
        (n < self.per_editor).then_some(Mark { editor, n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_edit_has_its_own_block_and_decodes_back() {
        let marks = Marks::new(40, 4, 10, (ChunkPos::new(-1, -1), 2, 2), 500).expect("fits");
        let mut seen = std::collections::HashSet::new();
        for editor in 0..10 {
            for n in 0..500 {
                let pos = marks.position(editor, n).expect("in range");
                assert!(seen.insert(pos), "{pos:?} reused");
                assert_eq!(pos.chunk(), marks.home(editor));
                assert_eq!(marks.decode(pos), Some(Mark { editor, n }));
            }
        }
        assert_eq!(marks.position(0, 500), None);
        assert_eq!(marks.decode(BlockPos::new(0, 50, 0)), None);
        assert_eq!(marks.server_of(6), 2);
    }

    #[test]
    fn refuses_more_edits_than_positions() {
        assert!(Marks::new(10, 2, 10, (ChunkPos::new(0, 0), 1, 1), 9001).is_err());
        assert!(Marks::new(10, 2, 11, (ChunkPos::new(0, 0), 1, 1), 1).is_err());
    }
}
