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

use std::collections::hash_map::Entry;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use world_core::ChunkPos;
use world_core::protocol::{Position, ServerMessage};

use crate::outbound::Outbound;
use crate::world::players::distance2;
use crate::world::{ConnId, Step, VISIBILITY_SLICES, World};

/// Players near a chunk: connection, player id, position.
type Crowd = Vec<(ConnId, u32, Position)>;

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

    /// The players within `interest.view_radius` chunks of `chunk`, with
    /// what [`World::nearest_in`] needs of them: gathered once per chunk, so
    /// a crowd standing in one chunk costs one grid walk, not one each.
    fn crowd_near(&self, chunk: ChunkPos, near: &mut Vec<ConnId>) -> Crowd {
        near.clear();
        self.grid
            .near(chunk, self.config.interest.view_radius, near);
        near.iter()
            .filter_map(|c| self.players.get(c).map(|p| (*c, p.id, p.pos)))
            .collect()
    }

    /// The nearest `interest.max_visible` of `crowd` to `me` (who is
    /// skipped).
    fn nearest_in(
        &self,
        me: ConnId,
        pos: &Position,
        crowd: &Crowd,
        candidates: &mut Vec<(f32, ConnId, u32)>,
    ) -> FxHashSet<u32> {
        candidates.clear();
        candidates.extend(
            crowd
                .iter()
                .filter(|(c, _, _)| *c != me)
                .map(|(c, id, p)| (distance2(pos, p), *c, *id)),
        );
        let keep = self.config.interest.max_visible;
        if candidates.len() > keep {
            // Ties go to whoever joined first: the same crowd shows the same
            // players whatever order the grid listed them in.
            candidates.select_nth_unstable_by(keep, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            candidates.truncate(keep);
        }
        candidates.iter().map(|(_, _, id)| *id).collect()
    }

    /// The nearest others `conn` should be shown (busy servers only).
    fn nearest(&self, conn: ConnId, near: &mut Vec<ConnId>) -> Option<FxHashSet<u32>> {
        if !self.busy() {
            return None;
        }
        let me = self.players.get(&conn)?;
        let crowd = self.crowd_near(me.chunk, near);
        Some(self.nearest_in(conn, &me.pos, &crowd, &mut Vec::new()))
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

    /// Recomputes the visible sets of one slice of the players (those at
    /// positions `slice`, `slice + VISIBILITY_SLICES`, ... of the player
    /// list), tells those clients what changed and rebuilds the watcher
    /// lists. Called once per slice in turn, so every player's set is
    /// refreshed once per `VISIBILITY_SLICES` calls: in a crowd, a whole
    /// refresh is tens of milliseconds of the game loop (mostly the `D`, `P`
    /// and `N` lines of who comes into view), and in slices no edit waits
    /// behind all of it at once.
    pub(crate) fn refresh_visibility(&mut self, slice: usize) {
        if !self.busy() && self.players.values().all(|p| p.visible.is_none()) {
            for player in self.players.values_mut() {
                player.watchers.clear();
            }
            return;
        }
        let conns: Vec<ConnId> = self
            .players
            .keys()
            .copied()
            .skip(slice % VISIBILITY_SLICES)
            .step_by(VISIBILITY_SLICES)
            .collect();
        let all: FxHashSet<u32> = self.players.values().map(|p| p.id).collect();
        let mut near = std::mem::take(&mut self.scratch);
        let busy = self.busy();
        let mut crowds: FxHashMap<ChunkPos, Crowd> = FxHashMap::default();
        let mut candidates = Vec::new();
        // A crowd's players are shown to many others at once: each one's
        // `P` and `N` lines (float formatting) are encoded once per refresh.
        let mut introductions: FxHashMap<u32, Vec<u8>> = FxHashMap::default();
        for &conn in &conns {
            let Some(me) = self.players.get(&conn) else {
                continue;
            };
            let new = if busy {
                let crowd = crowds
                    .entry(me.chunk)
                    .or_insert_with(|| self.crowd_near(me.chunk, &mut near));
                Some(self.nearest_in(conn, &me.pos, crowd, &mut candidates))
            } else {
                None
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
                let introduction = match introductions.entry(id) {
                    Entry::Occupied(known) => Some(known.into_mut()),
                    Entry::Vacant(slot) => self
                        .by_id
                        .get(&id)
                        .and_then(|c| self.players.get(c))
                        .map(|other| {
                            let mut line = Vec::with_capacity(64);
                            ServerMessage::Position { id, pos: other.pos }.encode(&mut line);
                            ServerMessage::Nick {
                                id,
                                nick: &other.nick,
                            }
                            .encode(&mut line);
                            slot.insert(line)
                        }),
                };
                if let Some(line) = introduction {
                    bytes.extend_from_slice(line);
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
