//! `P,X,Y,Z,RX,RY`: a player moved. Also who sees whom on busy servers.
//!
//! Up to `interest.broadcast_all_up_to` players, every position goes to
//! every other player, as in the original. Beyond, a player is shown the
//! nearest `interest.max_visible` others within `interest.view_radius`
//! chunks: the client keeps 128 players and ignores further ids, so when
//! someone leaves a player's set it is told `D` (freeing the slot), and
//! when someone enters it is told `P` and `N`.
//!
//! Each player keeps the outbound queues of the players shown it
//! (`watchers`), so forwarding a move is a walk over at most
//! `max_visible` queues, without lookups.

use std::sync::Arc;

use rustc_hash::FxHashSet;
use world_core::protocol::{Position, ServerMessage};

use crate::outbound::Outbound;
use crate::world::players::distance2;
use crate::world::{ConnId, Step, World};

impl World {
    pub(crate) fn on_position(&mut self, conn: ConnId, pos: Position) -> Step {
        self.move_player(conn, pos);
        if let Some(player) = self.players.get_mut(&conn) {
            player.pos_dirty = true;
        }
        self.send_position_of(conn);
        Step::Done
    }

    fn move_player(&mut self, conn: ConnId, pos: Position) {
        let Some(player) = self.players.get_mut(&conn) else {
            return;
        };
        if let Some(old) = player.set_pos(pos) {
            let new = player.chunk;
            self.grid.remove(old, conn);
            self.grid.insert(new, conn);
        }
    }

    /// Moves a player and tells it (`U`) and the others (`P`).
    pub(crate) fn teleport(&mut self, conn: ConnId, pos: Position) {
        self.move_player(conn, pos);
        let Some(player) = self.players.get_mut(&conn) else {
            return;
        };
        player.pos_dirty = true;
        let id = player.id;
        self.send(conn, ServerMessage::You { id, pos });
        self.send_position_of(conn);
    }

    /// More players than everyone-sees-everyone allows.
    pub(crate) fn busy(&self) -> bool {
        self.players.len() > self.config.interest.broadcast_all_up_to
    }

    /// `P` of `conn` to every player shown it.
    pub(crate) fn send_position_of(&mut self, conn: ConnId) {
        self.fleet_moved(conn);
        let Some(me) = self.players.get(&conn) else {
            return;
        };
        let mut line = Vec::with_capacity(48);
        ServerMessage::Position {
            id: me.id,
            pos: me.pos,
        }
        .encode(&mut line);
        if self.busy() {
            for out in &me.watchers {
                self.push_to(out, &line, 1);
            }
        } else {
            for (other_conn, other) in &self.players {
                if *other_conn != conn {
                    self.push(other, &line, 1);
                }
            }
        }
    }

    /// `P` of every player `conn` is shown, to `conn`.
    pub(crate) fn send_positions_to(&self, conn: ConnId) {
        let Some(me) = self.players.get(&conn) else {
            return;
        };
        let mut bytes = Vec::new();
        let mut lines = 0;
        for other in self.shown_to(conn) {
            ServerMessage::Position {
                id: other.id,
                pos: other.pos,
            }
            .encode(&mut bytes);
            lines += 1;
        }
        self.push(me, &bytes, lines);
    }

    /// The nearest others `conn` should be shown (busy servers only).
    fn nearest(&self, conn: ConnId, near: &mut Vec<ConnId>) -> Option<FxHashSet<u32>> {
        if !self.busy() {
            return None;
        }
        let me = self.players.get(&conn)?;
        near.clear();
        self.grid
            .near(me.chunk, self.config.interest.view_radius, near);
        let mut candidates: Vec<(f32, ConnId, u32)> = near
            .iter()
            .filter(|c| **c != conn)
            .filter_map(|c| self.players.get(c).map(|p| (c, p)))
            .map(|(c, p)| (distance2(&me.pos, &p.pos), *c, p.id))
            .collect();
        let keep = self.config.interest.max_visible;
        if candidates.len() > keep {
            // Ties go to whoever joined first: the same crowd shows the same
            // players whatever order the grid listed them in.
            candidates.select_nth_unstable_by(keep, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            candidates.truncate(keep);
        }
        Some(candidates.into_iter().map(|(_, _, id)| id).collect())
    }

    /// Sets who a new player is shown.
    pub(crate) fn compute_visibility(&mut self, conn: ConnId) {
        let mut near = std::mem::take(&mut self.scratch);
        let visible = self.nearest(conn, &mut near);
        self.scratch = near;
        if let Some(player) = self.players.get_mut(&conn) {
            player.visible = visible;
        }
    }

    /// Recomputes every player's visible set, tells the clients what
    /// changed and rebuilds the watcher lists (runs about once a second).
    pub(crate) fn refresh_visibility(&mut self) {
        if !self.busy() && self.players.values().all(|p| p.visible.is_none()) {
            for player in self.players.values_mut() {
                player.watchers.clear();
            }
            return;
        }
        let conns: Vec<ConnId> = self.players.keys().copied().collect();
        let all: FxHashSet<u32> = self.players.values().map(|p| p.id).collect();
        let mut near = std::mem::take(&mut self.scratch);
        for &conn in &conns {
            let new = self.nearest(conn, &mut near);
            let Some(me) = self.players.get(&conn) else {
                continue;
            };
            // `None` means everyone; diff against the real sets only.
            let everyone_but_me = || {
                let mut all = all.clone();
                all.remove(&me.id);
                all
            };
            let (hide, show): (Vec<u32>, Vec<u32>) = match (&me.visible, &new) {
                (Some(old), Some(new)) => (
                    old.difference(new).copied().collect(),
                    new.difference(old).copied().collect(),
                ),
                (None, Some(new)) => (
                    everyone_but_me().difference(new).copied().collect(),
                    Vec::new(),
                ),
                (Some(old), None) => (
                    Vec::new(),
                    everyone_but_me().difference(old).copied().collect(),
                ),
                (None, None) => (Vec::new(), Vec::new()),
            };
            let (hide, show) = (self.in_join_order(hide), self.in_join_order(show));
            let mut bytes = Vec::new();
            let mut lines = 0;
            for id in hide {
                ServerMessage::Disconnect { id }.encode(&mut bytes);
                lines += 1;
            }
            for id in show {
                if let Some(other) = self.by_id.get(&id).and_then(|c| self.players.get(c)) {
                    ServerMessage::Position { id, pos: other.pos }.encode(&mut bytes);
                    ServerMessage::Nick {
                        id,
                        nick: &other.nick,
                    }
                    .encode(&mut bytes);
                    lines += 2;
                }
            }
            if lines > 0 {
                self.push(me, &bytes, lines);
            }
            if let Some(me) = self.players.get_mut(&conn) {
                me.visible = new;
            }
        }
        self.scratch = near;
        // Who watches whom, from the new sets.
        let mut watchers: Vec<(ConnId, Arc<Outbound>)> = Vec::new();
        for player in self.players.values_mut() {
            player.watchers.clear();
        }
        for (conn, player) in &self.players {
            if let Some(visible) = &player.visible {
                for id in visible {
                    if let Some(target) = self.by_id.get(id) {
                        watchers.push((*target, player.out.clone()));
                    }
                }
            } else {
                for other in self.players.keys().filter(|c| *c != conn) {
                    watchers.push((*other, player.out.clone()));
                }
            }
        }
        for (target, out) in watchers {
            if let Some(player) = self.players.get_mut(&target) {
                player.watchers.push(out);
            }
        }
    }

    /// Player ids sorted by when their players joined (ids are reused, so
    /// not by id); ids of players gone meanwhile first.
    fn in_join_order(&self, mut ids: Vec<u32>) -> Vec<u32> {
        ids.sort_unstable_by_key(|id| (self.by_id.get(id).copied(), *id));
        ids
    }

    /// The players `conn` is shown (everyone else on a quiet server), in
    /// join order.
    pub(crate) fn shown_to(&self, conn: ConnId) -> Vec<&crate::world::Player> {
        let Some(me) = self.players.get(&conn) else {
            return Vec::new();
        };
        match &me.visible {
            Some(visible) => {
                let mut conns: Vec<ConnId> = visible
                    .iter()
                    .filter_map(|id| self.by_id.get(id).copied())
                    .collect();
                conns.sort_unstable();
                conns.iter().filter_map(|c| self.players.get(c)).collect()
            }
            None => self
                .players
                .iter()
                .filter(|(c, _)| **c != conn)
                .map(|(_, p)| p)
                .collect(),
        }
    }
}
