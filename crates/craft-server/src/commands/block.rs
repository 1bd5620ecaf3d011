//! `B,X,Y,Z,W`: place (W > 0) or remove (W = 0) a block.

use world_core::coords::BlockPos;
use world_core::protocol::ServerMessage;
use world_core::rules::{self, Editor};
use world_core::store::ChangeMeta;

use crate::world::{ConnId, Step, World};

/// Told to a player whose edit could not be checked because the store is
/// down and the chunk is not in memory.
pub(crate) const STORE_UNAVAILABLE: &str =
    "The world is not available right now; try again in a moment.";

/// Told to a player whose edit came while `limits.max_unwritten_edits`
/// edits wait for the store.
pub(crate) const READ_ONLY: &str =
    "The world is read-only until its store is back; that edit was not kept.";

impl World {
    /// Who is editing, for the rules.
    pub(crate) fn editor(&self, conn: ConnId) -> Editor {
        Editor {
            login_required: self.config.login.required_to_build,
            logged_in: self.players.get(&conn).is_some_and(|p| p.user.is_some()),
        }
    }

    /// The block at `pos`: stored (or pending) value, else the terrain.
    /// `None` when the chunk or its terrain is not in memory.
    pub(crate) fn block_at(&self, pos: BlockPos) -> Option<i32> {
        let chunk = pos.chunk();
        let slot = self.chunks.slots.get(&chunk)?;
        let state = self.chunks.ready(chunk)?;
        match state.block(pos) {
            Some(w) => Some(w),
            None if !needs_terrain(pos) => Some(world_core::item::AIR),
            None => slot.terrain.as_ref().map(|t| t.get(pos)),
        }
    }

    /// Change metadata for an edit by `conn`.
    pub(crate) fn meta(&self, conn: ConnId) -> ChangeMeta {
        ChangeMeta {
            user: self.players.get(&conn).and_then(|p| p.user.clone()),
            time_ms: Some(Self::now_ms()),
        }
    }

    pub(crate) fn on_block(&mut self, conn: ConnId, pos: BlockPos, w: i32) -> Step {
        let chunk = pos.chunk();
        match self.ensure_chunk(chunk, needs_terrain(pos)) {
            Err(wait) => return Step::Wait(wait),
            Ok(false) => {
                self.send(conn, ServerMessage::Talk(STORE_UNAVAILABLE));
                self.metrics.edit("block", "unavailable");
                return Step::Done;
            }
            Ok(true) => {}
        }
        // What the player sees there: their draft, when building privately.
        let Some(previous) = self.block_seen_by(conn, pos) else {
            return Step::Done;
        };
        let refusal = match rules::check_block(self.editor(conn), pos, w, previous) {
            Err(refusal) => Some((refusal.message(), "refused")),
            Ok(()) if self.read_only() => Some((READ_ONLY, "read_only")),
            Ok(()) => None,
        };
        if let Some((message, result)) = refusal {
            // The client drew the block already: put the previous one back.
            let msgs = [
                ServerMessage::Block {
                    chunk,
                    pos,
                    w: previous,
                },
                ServerMessage::Redraw { chunk },
                ServerMessage::Talk(message),
            ];
            if let Some(player) = self.players.get(&conn) {
                self.push(player, &crate::world::encode_all(&msgs), 3);
            }
            self.metrics.edit("block", result);
            return Step::Done;
        }
        if self.drafting(conn) {
            return self.draft_block(conn, pos, w, previous);
        }
        self.metrics.edit("block", "accepted");
        self.record_change(
            conn,
            pos,
            world_core::store::Change::Block {
                old: previous,
                new: w,
            },
        );
        if w == 0 {
            self.record_clear(conn, pos);
        }
        let meta = self.meta(conn);
        let generation = self.flusher.generation;
        // The block itself, then the mirrors kept by neighbour chunks.
        let mut targets = vec![(chunk, w)];
        targets.extend(pos.mirror_chunks().map(|c| (c, -w)));
        for (target, value) in targets {
            self.flusher
                .pending
                .set_block(target, pos, value, meta.clone());
            if let Some(state) = self.chunks.ready_mut(target) {
                state.set_pending_block(pos, value, generation);
            }
            let msgs = [
                ServerMessage::Block {
                    chunk: target,
                    pos,
                    w: value,
                },
                ServerMessage::Redraw { chunk: target },
            ];
            self.broadcast_edit(target, &msgs, conn);
            self.fleet_edit(bus_core::message::Edit::Block {
                chunk: target,
                pos,
                w: value,
            });
        }
        if w == 0 {
            self.flusher.pending.clear_decor(chunk, pos);
            if let Some(state) = self.chunks.ready_mut(chunk) {
                state.clear_decor(pos);
            }
        }
        self.publish_edit(pos, w);
        self.edited();
        Step::Done
    }
}

/// Whether the generated terrain can have a block at `pos`: above its top
/// (or below 0) it is air, and an edit there need not wait for the chunk's
/// terrain to be generated.
pub(crate) fn needs_terrain(pos: BlockPos) -> bool {
    (0..=world_core::terrain::TERRAIN_TOP).contains(&pos.y)
}
