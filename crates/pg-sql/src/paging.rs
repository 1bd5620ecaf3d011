//! Reading a chunk in pages, for backends whose answers are size-limited
//! (the Data API refuses a result over 1 MiB).
//!
//! [`ChunkPager`] drives [`Statements::load_chunk_page`](crate::Statements::load_chunk_page):
//! it gives the parameters of the next page ([`ChunkPager::params`]),
//! takes the rows that came back ([`ChunkPager::push_page`]) and moves each
//! part's cursor, until every part returned fewer rows than its limit.
//!
//! # Why pages add up to a correct answer
//!
//! Each page is its own statement, hence its own snapshot; the reported
//! head is the first page's, the oldest snapshot. Blocks are paged by key,
//! and a block row's key only grows (an update gives it a new key above
//! every key of the chunk) and rows are never deleted, so a row is either
//! read at a key the cursor had not passed yet, or updated later and read
//! again at its new key: every block with a key up to the head is
//! returned, or superseded by a newer row, which keeps the contract's
//! "keys become visible in order" (`world_core::BlockStore`). A position
//! read twice keeps its newer row. Lights and signs are paged by position:
//! a row written or deleted after the first page may be seen in its newer
//! state, which a later change of the head announces anyway. A chunk whose
//! answer fits one page (nearly all) is read in one statement, exactly
//! like [`Statements::load_chunk`](crate::Statements::load_chunk).

use std::collections::HashMap;

use world_core::BlockPos;
use world_core::store::{ChunkData, Key};
use world_core::{StoreError, coords::ChunkPos};

use crate::decode::{ChunkDataBuilder, ChunkRow, RowKind};
use crate::rows::Value;

/// How many rows of each part one page may return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageLimits {
    /// Block rows per page.
    pub blocks: u32,
    /// Light rows per page.
    pub lights: u32,
    /// Sign rows per page.
    pub signs: u32,
}

impl PageLimits {
    /// Halves every limit (at least 1), after an answer was still too
    /// large. `false` when every limit was already 1.
    pub fn halve(&mut self) -> bool {
        let before = *self;
        for limit in [&mut self.blocks, &mut self.lights, &mut self.signs] {
            *limit = (*limit / 2).max(1);
        }
        *self != before
    }
}

/// The paging state of one `load_chunk` (see the module docs).
#[derive(Debug)]
pub struct ChunkPager {
    chunk: ChunkPos,
    limits: PageLimits,
    /// `(key, x, y, z)` of the last block read; starts at
    /// `(since, MAX, MAX, MAX)`, i.e. every key above `since`.
    block_after: (i64, i64, i64, i64),
    light_after: (i64, i64, i64),
    sign_after: (i64, i64, i64, i32),
    blocks_done: bool,
    lights_done: bool,
    signs_done: bool,
    head: Option<Key>,
    pages: usize,
    data: ChunkData,
}

impl ChunkPager {
    /// Pages through `chunk`'s blocks with a key above `since`, and its
    /// lights and signs.
    pub fn new(chunk: ChunkPos, since: Key, limits: PageLimits) -> Self {
        Self {
            chunk,
            limits,
            block_after: (since, i64::MAX, i64::MAX, i64::MAX),
            light_after: (i64::MIN, i64::MIN, i64::MIN),
            sign_after: (i64::MIN, i64::MIN, i64::MIN, i32::MIN),
            blocks_done: false,
            lights_done: false,
            signs_done: false,
            head: None,
            pages: 0,
            data: ChunkData::default(),
        }
    }

    /// Whether every part has been read.
    pub fn is_done(&self) -> bool {
        self.blocks_done && self.lights_done && self.signs_done
    }

    /// Pages read so far.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The current limits.
    pub fn limits(&self) -> PageLimits {
        self.limits
    }

    /// Halves the limits for the next page (see [`PageLimits::halve`]).
    pub fn shrink(&mut self) -> bool {
        self.limits.halve()
    }

    /// The named parameters of the next page: a part already read gets a
    /// limit of 0.
    pub fn params(&self) -> Vec<(&'static str, Value<'static>)> {
        let limit = |done: bool, n: u32| Value::Int8(if done { 0 } else { i64::from(n) });
        let (bkey, bx, by, bz) = self.block_after;
        let (lx, ly, lz) = self.light_after;
        let (sx, sy, sz, sface) = self.sign_after;
        vec![
            ("p", Value::Int8(self.chunk.p.into())),
            ("q", Value::Int8(self.chunk.q.into())),
            ("bkey", Value::Int8(bkey)),
            ("bx", Value::Int8(bx)),
            ("by", Value::Int8(by)),
            ("bz", Value::Int8(bz)),
            ("blocks", limit(self.blocks_done, self.limits.blocks)),
            ("lx", Value::Int8(lx)),
            ("ly", Value::Int8(ly)),
            ("lz", Value::Int8(lz)),
            ("lights", limit(self.lights_done, self.limits.lights)),
            ("sx", Value::Int8(sx)),
            ("sy", Value::Int8(sy)),
            ("sz", Value::Int8(sz)),
            ("sface", Value::Int4(sface)),
            ("signs", limit(self.signs_done, self.limits.signs)),
        ]
    }

    /// Takes the rows of the page asked for with [`params`](Self::params).
    pub fn push_page(
        &mut self,
        rows: impl IntoIterator<Item = ChunkRow>,
    ) -> Result<(), StoreError> {
        let asked = self.limits;
        let (mut blocks, mut lights, mut signs) = (0u32, 0u32, 0u32);
        let mut page = ChunkDataBuilder::default();
        for row in rows {
            match RowKind::from_i32(row.kind) {
                Some(RowKind::Block) => blocks += 1,
                Some(RowKind::Light) => lights += 1,
                Some(RowKind::Sign) => signs += 1,
                _ => {}
            }
            page.push(row)?;
        }
        let page = page.finish();
        if self.head.is_none() {
            self.head = Some(page.head);
        }
        self.pages += 1;
        let overfull = |n: u32, done: bool, limit: u32| n > if done { 0 } else { limit };
        if overfull(blocks, self.blocks_done, asked.blocks)
            || overfull(lights, self.lights_done, asked.lights)
            || overfull(signs, self.signs_done, asked.signs)
        {
            return Err(StoreError::Corrupt(format!(
                "a page of chunk {} returned more rows than asked for",
                self.chunk
            )));
        }
        // Cursors move to the greatest row of each part; the rows come
        // ordered, but taking the maximum does not depend on it.
        if let Some(last) = page
            .blocks
            .iter()
            .map(|b| {
                (
                    b.key,
                    i64::from(b.pos.x),
                    i64::from(b.pos.y),
                    i64::from(b.pos.z),
                )
            })
            .max()
        {
            self.block_after = last;
        }
        if let Some(last) = page.lights.iter().map(|l| xyz(l.pos)).max() {
            self.light_after = last;
        }
        if let Some(last) = page
            .signs
            .iter()
            .map(|s| {
                let (x, y, z) = xyz(s.pos);
                (x, y, z, s.face)
            })
            .max()
        {
            self.sign_after = last;
        }
        self.blocks_done = self.blocks_done || blocks < asked.blocks;
        self.lights_done = self.lights_done || lights < asked.lights;
        self.signs_done = self.signs_done || signs < asked.signs;
        self.data.blocks.extend(page.blocks);
        self.data.lights.extend(page.lights);
        self.data.signs.extend(page.signs);
        Ok(())
    }

    /// The chunk's data: the first page's head, every row read, a block
    /// position read twice (updated between pages) with its newer row.
    pub fn finish(mut self) -> ChunkData {
        self.data.head = self.head.unwrap_or(0);
        if self.pages > 1 {
            let mut newest: HashMap<BlockPos, usize> =
                HashMap::with_capacity(self.data.blocks.len());
            let mut keep = Vec::with_capacity(self.data.blocks.len());
            for block in self.data.blocks {
                match newest.get(&block.pos) {
                    Some(&i) => {
                        let kept: &mut world_core::store::StoredBlock = &mut keep[i];
                        if block.key > kept.key {
                            *kept = block;
                        }
                    }
                    None => {
                        newest.insert(block.pos, keep.len());
                        keep.push(block);
                    }
                }
            }
            self.data.blocks = keep;
        }
        self.data
    }
}

fn xyz(pos: BlockPos) -> (i64, i64, i64) {
    (pos.x.into(), pos.y.into(), pos.z.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: ChunkPos = ChunkPos::new(1, -1);

    fn block(x: i64, key: i64, w: i32) -> ChunkRow {
        ChunkRow {
            kind: 0,
            x: Some(x),
            y: Some(1),
            z: Some(2),
            w: Some(w),
            n: Some(key),
            text: None,
        }
    }

    fn head(key: i64) -> ChunkRow {
        ChunkRow {
            kind: 3,
            n: Some(key),
            ..ChunkRow::default()
        }
    }

    fn sign(x: i64, face: i64) -> ChunkRow {
        ChunkRow {
            kind: 2,
            x: Some(x),
            y: Some(0),
            z: Some(0),
            w: None,
            n: Some(face),
            text: Some("s".into()),
        }
    }

    fn param(pager: &ChunkPager, name: &str) -> Value<'static> {
        pager
            .params()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .expect("param")
    }

    #[test]
    fn one_short_page_is_everything() {
        let limits = PageLimits {
            blocks: 3,
            lights: 3,
            signs: 3,
        };
        let mut pager = ChunkPager::new(C, 5, limits);
        assert_eq!(param(&pager, "bkey"), Value::Int8(5));
        assert_eq!(param(&pager, "bx"), Value::Int8(i64::MAX));
        assert_eq!(param(&pager, "lx"), Value::Int8(i64::MIN));
        pager
            .push_page([block(1, 6, 1), block(2, 7, 1), head(7)])
            .expect("page");
        assert!(pager.is_done());
        let data = pager.finish();
        assert_eq!(data.head, 7);
        assert_eq!(data.blocks.len(), 2);
    }

    #[test]
    fn full_parts_page_on_and_finished_parts_stop() {
        let limits = PageLimits {
            blocks: 2,
            lights: 5,
            signs: 2,
        };
        let mut pager = ChunkPager::new(C, 0, limits);
        pager
            .push_page([
                block(1, 1, 1),
                block(2, 2, 1),
                sign(4, 0),
                sign(4, 1),
                head(3),
            ])
            .expect("page 1");
        assert!(!pager.is_done());
        assert_eq!(param(&pager, "bkey"), Value::Int8(2));
        assert_eq!(param(&pager, "bx"), Value::Int8(2));
        assert_eq!(param(&pager, "lights"), Value::Int8(0));
        assert_eq!(param(&pager, "sx"), Value::Int8(4));
        assert_eq!(param(&pager, "sface"), Value::Int4(1));
        // Block 1 was updated between the pages: it comes again, newer.
        pager
            .push_page([block(3, 3, 1), block(1, 4, 9), head(4)])
            .expect("page 2");
        assert!(!pager.is_done(), "two blocks came back: maybe more");
        pager.push_page([head(4)]).expect("page 3");
        assert!(pager.is_done());
        assert_eq!(param(&pager, "blocks"), Value::Int8(0));
        assert_eq!(pager.pages(), 3);
        let data = pager.finish();
        assert_eq!(data.head, 3, "the first page's head");
        let mut got: Vec<(i32, i32, Key)> =
            data.blocks.iter().map(|b| (b.pos.x, b.w, b.key)).collect();
        got.sort_unstable();
        assert_eq!(got, [(1, 9, 4), (2, 1, 2), (3, 1, 3)]);
        assert_eq!(data.signs.len(), 2);
    }

    #[test]
    fn overfull_pages_are_refused_and_limits_halve() {
        let limits = PageLimits {
            blocks: 1,
            lights: 4,
            signs: 3,
        };
        let mut pager = ChunkPager::new(C, 0, limits);
        assert!(matches!(
            pager.push_page([block(1, 1, 1), block(2, 2, 1)]),
            Err(StoreError::Corrupt(_))
        ));
        assert!(pager.shrink());
        assert_eq!(
            pager.limits(),
            PageLimits {
                blocks: 1,
                lights: 2,
                signs: 1
            }
        );
        let mut ones = PageLimits {
            blocks: 1,
            lights: 1,
            signs: 1,
        };
        assert!(!ones.halve());
    }
}
