//! `L,X,Y,Z,W`: set the light level on a block.

use world_core::coords::BlockPos;
use world_core::protocol::ServerMessage;
use world_core::rules;

use super::block::{READ_ONLY, STORE_UNAVAILABLE};
use crate::world::{ConnId, Step, World};

impl World {
    pub(crate) fn on_light(&mut self, conn: ConnId, pos: BlockPos, w: i32) -> Step {
        let chunk = pos.chunk();
        match self.ensure_chunk(chunk, super::block::needs_terrain(pos)) {
            Err(wait) => return Step::Wait(wait),
            Ok(false) => {
                self.send(conn, ServerMessage::Talk(STORE_UNAVAILABLE));
                self.metrics.edit("light", "unavailable");
                return Step::Done;
            }
            Ok(true) => {}
        }
        let Some(block) = self.block_seen_by(conn, pos) else {
            return Step::Done;
        };
        let refusal = match rules::check_light(self.editor(conn), block, w) {
            Err(refusal) => Some((refusal.message(), "refused")),
            Ok(()) if self.read_only() => Some((READ_ONLY, "read_only")),
            Ok(()) => None,
        };
        if let Some((message, result)) = refusal {
            let msgs = [
                ServerMessage::Redraw { chunk },
                ServerMessage::Talk(message),
            ];
            if let Some(player) = self.players.get(&conn) {
                self.push(player, &crate::world::encode_all(&msgs), 2);
            }
            self.metrics.edit("light", result);
            return Step::Done;
        }
        if self.drafting(conn) {
            return self.draft_light(conn, pos, w);
        }
        self.metrics.edit("light", "accepted");
        let old = self
            .chunks
            .ready(chunk)
            .and_then(|s| s.lights.get(&pos).copied())
            .unwrap_or(0);
        self.record_change(conn, pos, world_core::store::Change::Light { old, new: w });
        let meta = self.meta(conn);
        self.flusher.pending.set_light(chunk, pos, w, meta);
        if let Some(state) = self.chunks.ready_mut(chunk) {
            state.lights.insert(pos, w);
        }
        let msgs = [
            ServerMessage::Light { chunk, pos, w },
            ServerMessage::Redraw { chunk },
        ];
        self.broadcast_edit(chunk, &msgs, conn);
        self.fleet_edit(bus_core::message::Edit::Light { chunk, pos, w });
        self.edited();
        Step::Done
    }
}
