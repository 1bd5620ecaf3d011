//! `A,USERNAME,TOKEN`: log in (or stay a guest), then everyone learns the
//! player's name and that they joined.

use std::sync::Arc;

use world_core::protocol::{Position, ServerMessage};
use world_core::store::PlayerRecord;

use crate::config::LoginMode;
use crate::login::{self, LoginOutcome};
use crate::world::{ConnId, Event, Player, Step, Wait, World};

impl World {
    pub(crate) fn on_login(&mut self, conn: ConnId, username: &str, token: &str) -> Step {
        if self.config.login.mode == LoginMode::None || username.is_empty() || token.is_empty() {
            self.on_login_checked(
                conn,
                LoginOutcome {
                    user: None,
                    saved: None,
                },
            );
            return Step::Done;
        }
        let config = self.config.login.clone();
        let http = self.http.clone();
        let store = self.store.clone();
        let events = self.events.clone();
        let (username, token) = (username.to_owned(), token.to_owned());
        tokio::spawn(async move {
            let outcome = login::check(&config, &http, store, username, token).await;
            let _ = events.send(Event::LoginChecked { conn, outcome }).await;
        });
        Step::Pending(Wait::Login)
    }

    pub(crate) fn on_login_checked(&mut self, conn: ConnId, outcome: LoginOutcome) {
        let hint = self.config.login.register_hint.clone();
        let Some(player) = self.players.get_mut(&conn) else {
            return;
        };
        let was_waiting = player.waiting == Some(Wait::Login);
        match outcome.user {
            Some(user) => {
                player.nick = user.clone();
                player.user = Some(Arc::from(user.as_str()));
            }
            None => {
                player.user = None;
                player.nick = format!("guest{}", player.id);
            }
        }
        let (id, nick, guest) = (player.id, player.nick.clone(), player.user.is_none());
        if guest {
            self.send(conn, ServerMessage::Talk(&hint));
        }
        self.announce(conn, &[ServerMessage::Nick { id, nick: &nick }]);
        let joined = format!("{nick} has joined the game.");
        self.announce(conn, &[ServerMessage::Talk(&joined)]);
        self.fleet_chat(&joined);
        if let Some(saved) = outcome.saved {
            let pos = Position {
                x: saved.x,
                y: saved.y,
                z: saved.z,
                rx: saved.rx,
                ry: saved.ry,
            };
            self.teleport(conn, pos);
        }
        // A returning player's stored draft comes back before their next
        // command: an edit must not reach the world while they think they
        // build privately.
        let user = self.players.get(&conn).and_then(|p| p.user.clone());
        if let Some(owner) = user {
            self.drafts.send(crate::world::drafts::DraftOp::Load {
                conn,
                owner,
                open: false,
            });
            if let Some(player) = self.players.get_mut(&conn) {
                player.waiting = Some(Wait::Draft);
            }
            return;
        }
        if was_waiting {
            if let Some(player) = self.players.get_mut(&conn) {
                player.waiting = None;
            }
            self.drive(conn);
        }
    }

    /// Queues the position of a logged-in player for saving.
    pub(crate) fn save_position_of(&mut self, player: &Player) {
        if let Some(record) = record_of(player) {
            self.player_saves.insert(record.name.clone(), record);
        }
    }

    /// Queues every moved logged-in player for saving.
    pub(crate) fn collect_player_saves(&mut self) {
        for player in self.players.values_mut().filter(|p| p.pos_dirty) {
            player.pos_dirty = false;
            if let Some(record) = record_of(player) {
                self.player_saves.insert(record.name.clone(), record);
            }
        }
    }

    /// Writes queued positions in one store call, in the background.
    pub(crate) fn start_player_save(&mut self) {
        if self.saving_players || self.player_saves.is_empty() {
            return;
        }
        self.saving_players = true;
        let records: Vec<PlayerRecord> = self.player_saves.drain().map(|(_, r)| r).collect();
        let store = self.store.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let failed = match store.save_players(&records).await {
                Ok(()) => Vec::new(),
                Err(e) => {
                    tracing::warn!(error = %e, players = records.len(), "saving player positions failed; will retry");
                    records
                }
            };
            let _ = events.send(Event::PlayersSaved { failed }).await;
        });
    }
}

/// What is saved of a logged-in player (guests have nothing saved).
fn record_of(player: &Player) -> Option<PlayerRecord> {
    let user = player.user.as_ref()?;
    Some(PlayerRecord {
        name: user.to_string(),
        x: player.pos.x,
        y: player.pos.y,
        z: player.pos.z,
        rx: player.pos.rx,
        ry: player.pos.ry,
        time_ms: World::now_ms(),
    })
}
