//! `S,X,Y,Z,FACE,TEXT`: write (or, with empty text, remove) a sign.

use world_core::coords::BlockPos;
use world_core::protocol::ServerMessage;
use world_core::rules::{self, SignVerdict};

use crate::world::{ConnId, Step, World};

impl World {
    pub(crate) fn on_sign(&mut self, conn: ConnId, pos: BlockPos, face: i32, text: &str) -> Step {
        match rules::check_sign(self.editor(conn), pos, face, text) {
            SignVerdict::Ignore => {
                self.metrics.edit("sign", "ignored");
                return Step::Done;
            }
            SignVerdict::LoginRequired => {
                self.send(conn, ServerMessage::Talk(SignVerdict::LOGIN_MESSAGE));
                self.metrics.edit("sign", "refused");
                return Step::Done;
            }
            SignVerdict::Accept if self.read_only() => {
                self.send(conn, ServerMessage::Talk(super::block::READ_ONLY));
                self.metrics.edit("sign", "read_only");
                return Step::Done;
            }
            SignVerdict::Accept => {}
        }
        if self.drafting(conn) {
            return self.draft_sign(conn, pos, face, text);
        }
        let chunk = pos.chunk();
        if self.history_on {
            // History needs the old text: the chunk must be in memory.
            match self.ensure_chunk(chunk, false) {
                Err(wait) => return Step::Wait(wait),
                Ok(false) => {
                    self.send(conn, ServerMessage::Talk(super::block::STORE_UNAVAILABLE));
                    self.metrics.edit("sign", "unavailable");
                    return Step::Done;
                }
                Ok(true) => {}
            }
            let old = self
                .chunks
                .ready(chunk)
                .and_then(|s| s.signs.get(&(pos, face)).cloned());
            let new = (!text.is_empty()).then(|| text.to_owned());
            if old != new {
                let change = world_core::store::Change::Sign { face, old, new };
                self.record_change(conn, pos, change);
            }
        }
        self.metrics.edit("sign", "accepted");
        let meta = self.meta(conn);
        // No need to load the chunk: a later load overlays pending writes.
        self.flusher.pending.set_sign(chunk, pos, face, text, meta);
        if let Some(state) = self.chunks.ready_mut(chunk) {
            if text.is_empty() {
                state.signs.remove(&(pos, face));
            } else {
                state.signs.insert((pos, face), text.to_owned());
            }
        }
        self.broadcast_edit(
            chunk,
            &[ServerMessage::Sign {
                chunk,
                pos,
                face,
                text,
            }],
            conn,
        );
        self.fleet_edit(bus_core::message::Edit::Sign {
            chunk,
            pos,
            face,
            text: text.to_owned(),
        });
        self.edited();
        Step::Done
    }
}
