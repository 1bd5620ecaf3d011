//! Joining and leaving.

use std::net::SocketAddr;
use std::sync::Arc;

use tracing::info;
use world_core::coords::ChunkPos;
use world_core::protocol::ServerMessage;

use crate::outbound::Outbound;
use crate::world::{ConnId, Player, World};

impl World {
    /// A client connected: the original's greeting, in its order.
    pub(crate) fn on_connect(&mut self, conn: ConnId, out: Arc<Outbound>, addr: SocketAddr) {
        if self.draining.is_some() || self.players.len() >= self.config.max_players {
            let text = if self.draining.is_some() {
                self.config.shutdown.message.as_str()
            } else {
                crate::admission::FULL_MESSAGE
            };
            let mut line = Vec::new();
            ServerMessage::Talk(text).encode(&mut line);
            out.send(&line);
            out.close();
            self.metrics.refused(if self.draining.is_some() {
                "draining"
            } else {
                "full"
            });
            info!(%addr, "connection refused: {text}");
            return;
        }
        let id = self.ids.take();
        let spawn = self.config.spawn.position();
        let mut player = Player {
            id,
            nick: format!("guest{id}"),
            user: None,
            pos: spawn,
            chunk: ChunkPos::new(0, 0),
            out,
            addr,
            version: None,
            backlog: Default::default(),
            waiting: None,
            visible: None,
            watchers: Vec::new(),
            pos_dirty: false,
            draft: None,
        };
        player.set_pos(spawn);
        let chunk = player.chunk;
        self.players.insert(conn, player);
        self.by_id.insert(id, conn);
        self.grid.insert(chunk, conn);
        info!(player = id, %addr, players = self.players.len(), "player joined");

        let mut greeting = vec![
            ServerMessage::You { id, pos: spawn },
            ServerMessage::Time {
                seconds: Self::now_seconds(),
                day_length: self.config.day_length,
            },
        ];
        let welcome = self.config.welcome.clone();
        greeting.extend(welcome.iter().map(|l| ServerMessage::Talk(l)));
        if let Some(player) = self.players.get(&conn) {
            self.push(
                player,
                &crate::world::encode_all(&greeting),
                greeting.len() as u64,
            );
        }
        self.compute_visibility(conn);
        // Everyone learns where the newcomer is, the newcomer learns where
        // everyone is, then the names.
        self.send_position_of(conn);
        self.send_positions_to(conn);
        let nick = format!("guest{id}");
        self.announce(conn, &[ServerMessage::Nick { id, nick: &nick }]);
        self.send_nicks_to(conn);
        self.fleet_greet(conn);
    }

    /// A client is gone.
    pub(crate) fn on_disconnect(&mut self, conn: ConnId) {
        if !self.players.contains_key(&conn) {
            return;
        }
        let text = self
            .players
            .get(&conn)
            .map(|p| format!("{} has disconnected from the server.", p.nick));
        // Those near it hear it leave (everyone, on a quiet server).
        if let (Some(text), true) = (&text, self.busy()) {
            self.announce(conn, &[ServerMessage::Talk(text)]);
        }
        let Some(player) = self.players.remove(&conn) else {
            return;
        };
        self.by_id.remove(&player.id);
        self.grid.remove(player.chunk, conn);
        self.ids.give(player.id);
        self.save_position_of(&player);
        info!(player = player.id, nick = %player.nick, addr = %player.addr, players = self.players.len(), "player left");
        let gone = ServerMessage::Disconnect { id: player.id };
        if player.visible.is_some() || self.busy() {
            // Only the players shown it know it.
            let line = crate::world::encode_all(&[gone]);
            for out in &player.watchers {
                self.push_to(out, &line, 1);
            }
            for other in self.players.values_mut() {
                if let Some(visible) = other.visible.as_mut() {
                    visible.remove(&player.id);
                }
            }
        } else if let Some(text) = &text {
            self.broadcast(&[gone, ServerMessage::Talk(text)], None);
        }
    }

    /// `N` of every other player `conn` is shown, to `conn`.
    fn send_nicks_to(&self, conn: ConnId) {
        let Some(me) = self.players.get(&conn) else {
            return;
        };
        let mut bytes = Vec::new();
        let mut lines = 0;
        for other in self.shown_to(conn) {
            ServerMessage::Nick {
                id: other.id,
                nick: &other.nick,
            }
            .encode(&mut bytes);
            lines += 1;
        }
        self.push(me, &bytes, lines);
    }
}
