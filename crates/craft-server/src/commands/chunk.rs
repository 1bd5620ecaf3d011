//! `C,P,Q,KEY`: the changes of a chunk newer than KEY.
//!
//! Answered from the cache, in the original's order: blocks newer than KEY
//! (`B`), every light (`L`), every sign (`S`), then `K` if a block was sent,
//! `R` if anything was, and always `C`. Blocks whose write is still pending
//! are stored first (a flush right away) so that `K` is a real key; if the
//! store is down they are sent anyway and `K` stays at what is stored.

use world_core::coords::ChunkPos;
use world_core::protocol::ServerMessage;
use world_core::store::Key;

use crate::world::{ConnId, Queued, Step, Wait, World};

impl World {
    pub(crate) fn on_chunk(
        &mut self,
        conn: ConnId,
        chunk: ChunkPos,
        key: Key,
        queued: &Queued,
    ) -> Step {
        let started = std::time::Instant::now();
        let loaded = match self.ensure_chunk(chunk, false) {
            Ok(loaded) => loaded,
            Err(wait) => return Step::Wait(wait),
        };
        let mut lines = Vec::with_capacity(256);
        let mut count = 0u64;
        if loaded {
            let Some(state) = self.chunks.ready(chunk) else {
                return Step::Done;
            };
            if state.unflushed > 0 && queued.flush_waits < 2 && !self.flusher.failing {
                self.flush_soon();
                return Step::Wait(Wait::Flush);
            }
            let mut any = false;
            // The new K: the largest key sent that the cache is known to be
            // complete up to. Always a block key (the original's K is a
            // block rowid, and SQLite worlds rely on it).
            let mut new_key: Key = key;
            let mut sent_block = false;
            for (pos, entry) in &state.blocks {
                if entry.key.is_none_or(|k| k > key) {
                    ServerMessage::Block {
                        chunk,
                        pos: *pos,
                        w: entry.w,
                    }
                    .encode(&mut lines);
                    count += 1;
                    sent_block = true;
                    if let Some(k) = entry.key.filter(|k| *k <= state.synced) {
                        new_key = new_key.max(k);
                    }
                }
            }
            for (pos, w) in &state.lights {
                ServerMessage::Light {
                    chunk,
                    pos: *pos,
                    w: *w,
                }
                .encode(&mut lines);
                count += 1;
                any = true;
            }
            for ((pos, face), text) in &state.signs {
                ServerMessage::Sign {
                    chunk,
                    pos: *pos,
                    face: *face,
                    text,
                }
                .encode(&mut lines);
                count += 1;
                any = true;
            }
            if sent_block {
                ServerMessage::Key {
                    chunk,
                    key: new_key,
                }
                .encode(&mut lines);
                count += 1;
            }
            if sent_block || any {
                ServerMessage::Redraw { chunk }.encode(&mut lines);
                count += 1;
            }
        }
        // A player building privately sees their draft over the world
        // (so that a reload still shows it); nobody else ever does.
        let drafted = self.draft_lines(conn, chunk, &mut lines);
        if drafted > 0 {
            ServerMessage::Redraw { chunk }.encode(&mut lines);
            count += drafted + 1;
        }
        ServerMessage::ChunkDone { chunk }.encode(&mut lines);
        count += 1;
        if let Some(player) = self.players.get(&conn) {
            self.push(player, &lines, count);
        }
        self.metrics.chunk_requests.inc();
        self.metrics
            .chunk_build_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .chunk_answer_seconds
            .observe(queued.received.elapsed().as_secs_f64());
        Step::Done
    }
}
