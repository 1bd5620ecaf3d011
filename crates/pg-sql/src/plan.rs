//! A batch turned into the row sets of its statements, and back into a
//! receipt.
//!
//! [`WritePlan::new`] does the key arithmetic both backends share: each
//! touched chunk's head grows by its number of block writes (at least 1,
//! so that a light, sign or clear also moves it), and the `i`-th of a
//! chunk's `n` block writes gets key `head - (n - 1 - i)`, so its writes
//! own `(before, head]` in position order.

use std::collections::HashSet;

use world_core::StoreError;
use world_core::coords::ChunkPos;
use world_core::store::{ApplyReceipt, Batch, ChunkAdvance, ChunkHead, Key, MAX_KEY, PlayerRecord};

use crate::rows::{ColumnData, Rows};
use crate::statements::{
    BLOCK_COLUMNS, CHUNK_COLUMNS, CLEAR_COLUMNS, HEAD_COLUMNS, HELD_COLUMNS, LIGHT_COLUMNS,
    PLAYER_COLUMNS, SIGN_COLUMNS, SIGN_KEY_COLUMNS,
};

/// A statement of a batch, in the order a transaction runs them (the
/// normal-form order of `world_core::store::Batch`: clears, then blocks,
/// lights, signs; all after the heads, which take the chunk locks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// `advance_heads`: lock and advance the chunk heads.
    AdvanceHeads,
    /// `clear_decor`: clears.
    ClearDecor,
    /// `upsert_blocks`: block writes.
    UpsertBlocks,
    /// `upsert_lights`: light writes.
    UpsertLights,
    /// `upsert_signs`: sign writes with text.
    UpsertSigns,
    /// `delete_signs`: sign deletions.
    DeleteSigns,
    /// `record_history`: the batch's history entries (last, so that a
    /// failed write records nothing; the transaction covers both anyway).
    RecordHistory,
}

impl Step {
    /// Every step, in execution order.
    pub const ALL: [Step; 7] = [
        Step::AdvanceHeads,
        Step::ClearDecor,
        Step::UpsertBlocks,
        Step::UpsertLights,
        Step::UpsertSigns,
        Step::DeleteSigns,
        Step::RecordHistory,
    ];
}

/// Column vectors for the coordinate columns every write statement starts
/// with.
#[derive(Default)]
struct Coords {
    p: Vec<i64>,
    q: Vec<i64>,
    x: Vec<i64>,
    y: Vec<i64>,
    z: Vec<i64>,
}

impl Coords {
    fn with_capacity(n: usize) -> Self {
        Self {
            p: Vec::with_capacity(n),
            q: Vec::with_capacity(n),
            x: Vec::with_capacity(n),
            y: Vec::with_capacity(n),
            z: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, chunk: ChunkPos, pos: world_core::BlockPos) {
        self.p.push(chunk.p.into());
        self.q.push(chunk.q.into());
        self.x.push(pos.x.into());
        self.y.push(pos.y.into());
        self.z.push(pos.z.into());
    }

    fn into_data<'a>(self) -> Vec<ColumnData<'a>> {
        vec![
            ColumnData::Int8(self.p),
            ColumnData::Int8(self.q),
            ColumnData::Int8(self.x),
            ColumnData::Int8(self.y),
            ColumnData::Int8(self.z),
        ]
    }
}

/// The statements' inputs for one batch.
#[derive(Debug)]
pub struct WritePlan<'a> {
    /// Touched chunks in order, with how much each head grows.
    advances: Vec<(ChunkPos, i64)>,
    /// Each chunk's block rows: a range of `blocks`, in chunk order.
    block_runs: Vec<(ChunkPos, std::ops::Range<usize>)>,
    heads: Rows<'a>,
    clears: Rows<'a>,
    blocks: Rows<'a>,
    lights: Rows<'a>,
    sign_upserts: Rows<'a>,
    sign_deletes: Rows<'a>,
    history: Rows<'a>,
}

impl<'a> WritePlan<'a> {
    /// Plans `batch` (validate it first: [`Batch::validate`]).
    pub fn new(batch: &'a Batch) -> Self {
        // Block writes come ordered by chunk, so each chunk's are one run
        // of rows: one walk over them fills the columns and finds the
        // runs, without grouping the batch into per-chunk lists (a large
        // batch spends its client time here while the server waits).
        let rows = batch.blocks().len();
        let mut block_runs: Vec<(ChunkPos, std::ops::Range<usize>)> = Vec::new();
        let mut block_coords = Coords::with_capacity(rows);
        let mut w = Vec::with_capacity(rows);
        let mut user = Vec::with_capacity(rows);
        let mut ms = Vec::with_capacity(rows);
        for (i, b) in batch.blocks().enumerate() {
            match block_runs.last_mut() {
                Some((chunk, run)) if *chunk == b.chunk => run.end = i + 1,
                _ => block_runs.push((b.chunk, i..i + 1)),
            }
            block_coords.push(b.chunk, b.pos);
            w.push(b.w);
            user.push(b.meta.user.as_deref());
            ms.push(b.meta.time_ms);
        }
        // The i-th of a chunk's n writes: count n, key head - (n - 1 - i).
        let (mut count, mut back) = (vec![0i64; rows], vec![0i64; rows]);
        for (_, run) in &block_runs {
            let n = i64::try_from(run.len()).unwrap_or(i64::MAX);
            for (i, row) in run.clone().enumerate() {
                count[row] = n;
                back[row] = n - 1 - i64::try_from(i).unwrap_or(i64::MAX);
            }
        }
        // Every touched chunk advances by its block writes, at least 1.
        let mut touched: std::collections::BTreeMap<ChunkPos, i64> = block_runs
            .iter()
            .map(|(chunk, run)| (*chunk, i64::try_from(run.len()).unwrap_or(i64::MAX)))
            .collect();
        let others = batch
            .clears()
            .map(|c| c.chunk)
            .chain(batch.lights().map(|l| l.chunk))
            .chain(batch.signs().map(|s| s.chunk));
        for chunk in others {
            touched.entry(chunk).or_insert(1);
        }
        let advances: Vec<(ChunkPos, i64)> = touched.into_iter().collect();
        let heads = Rows::new(
            HEAD_COLUMNS,
            vec![
                ColumnData::Int8(advances.iter().map(|(c, _)| c.p.into()).collect()),
                ColumnData::Int8(advances.iter().map(|(c, _)| c.q.into()).collect()),
                ColumnData::Int8(advances.iter().map(|(_, n)| *n).collect()),
            ],
        );
        let mut data = block_coords.into_data();
        data.extend([
            ColumnData::Int4(w),
            ColumnData::Int8(count),
            ColumnData::Int8(back),
            ColumnData::OptText(user),
            ColumnData::OptInt8(ms),
        ]);
        let blocks = Rows::new(BLOCK_COLUMNS, data);

        let mut coords = Coords::with_capacity(batch.clears().len());
        for c in batch.clears() {
            coords.push(c.chunk, c.pos);
        }
        let clears = Rows::new(CLEAR_COLUMNS, coords.into_data());

        let mut coords = Coords::with_capacity(batch.lights().len());
        let (mut w, mut user, mut ms) = (Vec::new(), Vec::new(), Vec::new());
        for l in batch.lights() {
            coords.push(l.chunk, l.pos);
            w.push(l.w);
            user.push(l.meta.user.as_deref());
            ms.push(l.meta.time_ms);
        }
        let mut data = coords.into_data();
        data.extend([
            ColumnData::Int4(w),
            ColumnData::OptText(user),
            ColumnData::OptInt8(ms),
        ]);
        let lights = Rows::new(LIGHT_COLUMNS, data);

        let mut set = Coords::default();
        let (mut face, mut text, mut user, mut ms) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut del = Coords::default();
        let mut del_face = Vec::new();
        for s in batch.signs() {
            match &s.text {
                Some(t) => {
                    set.push(s.chunk, s.pos);
                    face.push(s.face);
                    text.push(t.as_str());
                    user.push(s.meta.user.as_deref());
                    ms.push(s.meta.time_ms);
                }
                None => {
                    del.push(s.chunk, s.pos);
                    del_face.push(s.face);
                }
            }
        }
        let mut data = set.into_data();
        data.extend([
            ColumnData::Int4(face),
            ColumnData::Text(text),
            ColumnData::OptText(user),
            ColumnData::OptInt8(ms),
        ]);
        let sign_upserts = Rows::new(SIGN_COLUMNS, data);
        let mut data = del.into_data();
        data.push(ColumnData::Int4(del_face));
        let sign_deletes = Rows::new(SIGN_KEY_COLUMNS, data);

        Self {
            advances,
            block_runs,
            heads,
            clears,
            blocks,
            lights,
            sign_upserts,
            sign_deletes,
            history: crate::history::history_rows(batch.history()),
        }
    }

    /// Whether the batch writes nothing (no statement to run).
    pub fn is_empty(&self) -> bool {
        self.advances.is_empty()
    }

    /// The rows of one step.
    pub fn rows(&self, step: Step) -> &Rows<'a> {
        match step {
            Step::AdvanceHeads => &self.heads,
            Step::ClearDecor => &self.clears,
            Step::UpsertBlocks => &self.blocks,
            Step::UpsertLights => &self.lights,
            Step::UpsertSigns => &self.sign_upserts,
            Step::DeleteSigns => &self.sign_deletes,
            Step::RecordHistory => &self.history,
        }
    }

    /// The steps to run, in order, with their rows; steps without rows are
    /// left out (an empty batch has none).
    pub fn steps(&self) -> impl Iterator<Item = (Step, &Rows<'a>)> + '_ {
        Step::ALL
            .into_iter()
            .map(|s| (s, self.rows(s)))
            .filter(|(_, rows)| !rows.is_empty())
    }

    /// The touched chunks, in order, with how much each head grows.
    pub fn advances(&self) -> &[(ChunkPos, i64)] {
        &self.advances
    }

    /// The receipt, from the `(p, q, head)` rows `advance_heads` returned.
    pub fn receipt(&self, heads: &[(i64, i64, i64)]) -> Result<ApplyReceipt, StoreError> {
        let mut chunks = Vec::with_capacity(self.advances.len());
        for (chunk, n) in &self.advances {
            let found = heads
                .iter()
                .find(|(p, q, _)| *p == i64::from(chunk.p) && *q == i64::from(chunk.q));
            let Some((_, _, after)) = found else {
                return Err(StoreError::Corrupt(format!(
                    "advancing the heads returned no row for chunk {chunk}"
                )));
            };
            chunks.push(ChunkAdvance {
                chunk: *chunk,
                before: after - n,
                after: *after,
            });
        }
        Ok(ApplyReceipt { chunks })
    }

    /// The block rows split by the age of their chunk, from the
    /// `(p, q, head)` rows `advance_heads` returned: first the rows of
    /// chunks this batch created (head before 0), for
    /// [`insert_blocks_new_chunks`](crate::Statements::insert_blocks_new_chunks),
    /// then the others, for
    /// [`upsert_blocks_old_chunks`](crate::Statements::upsert_blocks_old_chunks).
    /// A backend that knows the heads before writing blocks sends each row
    /// through exactly one statement this way. A chunk missing from `heads`
    /// counts as old (the upsert is right for any chunk).
    pub fn blocks_by_chunk_age(&self, heads: &[(i64, i64, i64)]) -> (Rows<'a>, Rows<'a>) {
        let new = self.created_chunks(heads);
        self.split_blocks(|p, q| new.contains(&(p, q)))
    }

    /// The block rows split by `is_new(p, q)` of their chunk: first the
    /// rows of the chunks it holds new, then the others. `is_new` is asked
    /// once per chunk.
    pub fn split_blocks(&self, is_new: impl Fn(i64, i64) -> bool) -> (Rows<'a>, Rows<'a>) {
        let (fresh, old) = self.split_block_runs(is_new);
        (self.block_runs_rows(&fresh), self.block_runs_rows(&old))
    }

    /// [`split_blocks`](Self::split_blocks) as ranges of the block rows
    /// ([`rows`](Self::rows) of [`Step::UpsertBlocks`]), ordered, disjoint,
    /// adjacent ones merged: a backend sends a side that is one range
    /// without copying it (all chunks new, or all known, is the common
    /// case).
    pub fn split_block_runs(
        &self,
        is_new: impl Fn(i64, i64) -> bool,
    ) -> (Vec<std::ops::Range<usize>>, Vec<std::ops::Range<usize>>) {
        let (mut fresh, mut old): (Vec<std::ops::Range<usize>>, Vec<_>) = (Vec::new(), Vec::new());
        for (chunk, run) in &self.block_runs {
            let side = if is_new(chunk.p.into(), chunk.q.into()) {
                &mut fresh
            } else {
                &mut old
            };
            match side.last_mut() {
                Some(last) if last.end == run.start => last.end = run.end,
                _ => side.push(run.clone()),
            }
        }
        (fresh, old)
    }

    /// The block rows of `runs` (ordered, disjoint ranges), copied.
    pub fn block_runs_rows(&self, runs: &[std::ops::Range<usize>]) -> Rows<'a> {
        match runs {
            [] => self.blocks.slice(0..0),
            [one] => self.blocks.slice(one.clone()),
            _ => {
                let indices: Vec<usize> = runs.iter().flat_map(|r| r.clone()).collect();
                self.blocks.pick(&indices)
            }
        }
    }

    /// The chunks that `(p, q, head)` rows `advance_heads` returned show
    /// as created by this batch: head equal to their advance (head before
    /// 0).
    pub fn created_chunks(&self, heads: &[(i64, i64, i64)]) -> HashSet<(i64, i64)> {
        self.advances
            .iter()
            .filter(|(chunk, n)| {
                let (p, q) = (i64::from(chunk.p), i64::from(chunk.q));
                heads
                    .iter()
                    .any(|(hp, hq, head)| *hp == p && *hq == q && head == n)
            })
            .map(|(chunk, _)| (i64::from(chunk.p), i64::from(chunk.q)))
            .collect()
    }

    /// After `advance_heads` failed with `22003`: the first chunk whose
    /// current head (from `chunk_heads`, `(p, q, head)`) cannot grow by its
    /// share of the batch without passing [`MAX_KEY`]. The first chunk when
    /// none can be found (a concurrent writer moved the heads since).
    pub fn exhausted_chunk(&self, current: &[(i64, i64, i64)]) -> Option<ChunkPos> {
        let head = |chunk: &ChunkPos| {
            current
                .iter()
                .find(|(p, q, _)| *p == i64::from(chunk.p) && *q == i64::from(chunk.q))
                .map_or(0, |(_, _, k)| *k)
        };
        self.advances
            .iter()
            .find(|(chunk, n)| head(chunk).saturating_add(*n) > MAX_KEY)
            .or(self.advances.first())
            .map(|(chunk, _)| *chunk)
    }

    /// The input of `chunk_heads` for the touched chunks.
    pub fn chunk_rows(&self) -> Rows<'static> {
        Rows::new(
            CHUNK_COLUMNS,
            vec![
                ColumnData::Int8(self.advances.iter().map(|(c, _)| c.p.into()).collect()),
                ColumnData::Int8(self.advances.iter().map(|(c, _)| c.q.into()).collect()),
            ],
        )
    }
}

/// The input of `changed_chunks`.
pub fn held_rows(held: &[ChunkHead]) -> Rows<'static> {
    Rows::new(
        HELD_COLUMNS,
        vec![
            ColumnData::Int8(held.iter().map(|h| h.chunk.p.into()).collect()),
            ColumnData::Int8(held.iter().map(|h| h.chunk.q.into()).collect()),
            ColumnData::Int8(held.iter().map(|h| h.head).collect()),
        ],
    )
}

/// The input of `save_players`; of several records with one name, the
/// last is kept (an upsert may not touch a row twice).
pub fn player_rows(players: &[PlayerRecord]) -> Rows<'_> {
    let mut seen = std::collections::HashSet::with_capacity(players.len());
    let mut last: Vec<&PlayerRecord> = players
        .iter()
        .rev()
        .filter(|p| seen.insert(p.name.as_str()))
        .collect();
    last.reverse();
    Rows::new(
        PLAYER_COLUMNS,
        vec![
            ColumnData::Text(last.iter().map(|p| p.name.as_str()).collect()),
            ColumnData::Float4(last.iter().map(|p| p.x).collect()),
            ColumnData::Float4(last.iter().map(|p| p.y).collect()),
            ColumnData::Float4(last.iter().map(|p| p.z).collect()),
            ColumnData::Float4(last.iter().map(|p| p.rx).collect()),
            ColumnData::Float4(last.iter().map(|p| p.ry).collect()),
            ColumnData::Int8(last.iter().map(|p| p.time_ms).collect()),
        ],
    )
}

/// A head as stored, checked against the range keys live in.
pub fn chunk_head(p: i64, q: i64, key: i64) -> Result<ChunkHead, StoreError> {
    let chunk = ChunkPos::new(coord(p, "p")?, coord(q, "q")?);
    if !(0..=MAX_KEY).contains(&key) {
        return Err(StoreError::Corrupt(format!(
            "chunk {chunk} has head {key}, outside 0..={MAX_KEY}"
        )));
    }
    Ok(ChunkHead {
        chunk,
        head: key as Key,
    })
}

/// A stored `bigint` coordinate as `i32`.
pub(crate) fn coord(v: i64, what: &str) -> Result<i32, StoreError> {
    i32::try_from(v)
        .map_err(|_| StoreError::Corrupt(format!("stored {what} = {v} is outside the i32 range")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use world_core::BlockPos;
    use world_core::store::ChangeMeta;

    use super::*;
    use crate::rows::Value;

    fn meta() -> ChangeMeta {
        ChangeMeta {
            user: Some(Arc::from("ann")),
            time_ms: Some(5),
        }
    }

    #[test]
    fn keys_and_advances() {
        let a = ChunkPos::new(0, 0);
        let b = ChunkPos::new(-1, 0);
        let mut batch = Batch::new();
        batch.set_block(a, BlockPos::new(3, 1, 1), 1, meta());
        batch.set_block(a, BlockPos::new(1, 1, 1), 2, meta());
        batch.set_block(a, BlockPos::new(2, 1, 1), 3, ChangeMeta::default());
        batch.set_light(b, BlockPos::new(-3, 1, 1), 4, meta());
        batch.clear_decor(ChunkPos::new(5, 5), BlockPos::new(160, 1, 160));
        let plan = WritePlan::new(&batch);
        assert_eq!(plan.advances(), &[(b, 1), (a, 3), (ChunkPos::new(5, 5), 1)]);
        let steps: Vec<Step> = plan.steps().map(|(s, _)| s).collect();
        assert_eq!(
            steps,
            [
                Step::AdvanceHeads,
                Step::ClearDecor,
                Step::UpsertBlocks,
                Step::UpsertLights
            ]
        );
        let blocks = plan.rows(Step::UpsertBlocks);
        // Position order inside the chunk; the last write gets the head.
        assert_eq!(blocks.column("x"), Some(&ColumnData::Int8(vec![1, 2, 3])));
        assert_eq!(
            blocks.column("back"),
            Some(&ColumnData::Int8(vec![2, 1, 0]))
        );
        assert_eq!(
            blocks.row(1).find(|(n, _)| *n == "user_id").map(|(_, v)| v),
            Some(Value::Null(crate::SqlType::Text))
        );

        let receipt = plan
            .receipt(&[(0, 0, 13), (-1, 0, 1), (5, 5, 7)])
            .expect("receipt");
        let got: Vec<(ChunkPos, Key, Key)> = receipt
            .chunks
            .iter()
            .map(|c| (c.chunk, c.before, c.after))
            .collect();
        assert_eq!(got, [(b, 0, 1), (a, 10, 13), (ChunkPos::new(5, 5), 6, 7)]);
        assert!(plan.receipt(&[(0, 0, 13)]).is_err());
    }

    #[test]
    fn blocks_split_by_chunk_age() {
        let new = ChunkPos::new(0, 0);
        let old = ChunkPos::new(1, 0);
        let mut batch = Batch::new();
        batch.set_block(new, BlockPos::new(1, 1, 1), 1, meta());
        batch.set_block(new, BlockPos::new(2, 1, 1), 1, meta());
        batch.set_block(old, BlockPos::new(33, 1, 1), 1, meta());
        let plan = WritePlan::new(&batch);
        // `new` got head 2 for its 2 writes: it had none before.
        let (fresh, stale) = plan.blocks_by_chunk_age(&[(0, 0, 2), (1, 0, 9)]);
        assert_eq!(fresh.column("x"), Some(&ColumnData::Int8(vec![1, 2])));
        assert_eq!(stale.column("x"), Some(&ColumnData::Int8(vec![33])));
        // Unknown heads: everything goes through the upsert.
        let (fresh, stale) = plan.blocks_by_chunk_age(&[]);
        assert!(fresh.is_empty());
        assert_eq!(stale.len(), 3);
    }

    #[test]
    fn signs_split_into_upserts_and_deletes() {
        let c = ChunkPos::new(0, 0);
        let mut batch = Batch::new();
        batch.set_sign(c, BlockPos::new(1, 1, 1), 0, "hi", meta());
        batch.set_sign(c, BlockPos::new(1, 1, 1), 1, "", meta());
        let plan = WritePlan::new(&batch);
        assert_eq!(plan.rows(Step::UpsertSigns).len(), 1);
        assert_eq!(plan.rows(Step::DeleteSigns).len(), 1);
        assert_eq!(plan.advances(), &[(c, 1)]);
    }

    #[test]
    fn exhausted_chunk_is_named() {
        let mut batch = Batch::new();
        let a = ChunkPos::new(0, 0);
        let b = ChunkPos::new(1, 0);
        batch.set_block(a, BlockPos::new(1, 1, 1), 1, meta());
        batch.set_block(b, BlockPos::new(33, 1, 1), 1, meta());
        batch.set_block(b, BlockPos::new(34, 1, 1), 1, meta());
        let plan = WritePlan::new(&batch);
        assert_eq!(
            plan.exhausted_chunk(&[(0, 0, 5), (1, 0, MAX_KEY - 1)]),
            Some(b)
        );
        assert_eq!(plan.exhausted_chunk(&[(0, 0, MAX_KEY)]), Some(a));
        assert_eq!(plan.exhausted_chunk(&[]), Some(a));
        assert!(WritePlan::new(&Batch::new()).is_empty());
    }

    #[test]
    fn players_keep_the_last_record_per_name() {
        let rec = |name: &str, x: f32| PlayerRecord {
            name: name.into(),
            x,
            y: 0.0,
            z: 0.0,
            rx: 0.0,
            ry: 0.0,
            time_ms: 1,
        };
        let players = [rec("a", 1.0), rec("b", 2.0), rec("a", 3.0)];
        let rows = player_rows(&players);
        assert_eq!(rows.column("name"), Some(&ColumnData::Text(vec!["b", "a"])));
        assert_eq!(rows.column("x"), Some(&ColumnData::Float4(vec![2.0, 3.0])));
    }

    #[test]
    fn heads_are_range_checked() {
        assert!(chunk_head(1, -1, 5).is_ok());
        assert!(chunk_head(1 << 40, 0, 5).is_err());
        assert!(chunk_head(0, 0, MAX_KEY + 1).is_err());
    }
}
