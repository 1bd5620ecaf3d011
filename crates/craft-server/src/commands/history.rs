//! Block history in game: recording accepted edits, `/history` and
//! `/rollback` (see [`crate::history`] for rollback itself).
//!
//! Both commands first wait for this server's pending edits to be stored
//! (at most two flushes, like a chunk request), so that what they read
//! includes the player's latest edits; then a task asks the store and
//! reports back with [`Event::HistoryDone`](crate::world::Event). The
//! player's later commands wait for the answer.

use std::sync::Arc;

use world_core::coords::BlockPos;
use world_core::protocol::ServerMessage;
use world_core::store::{Area, Author, Change, ChunkHead, HistoryEntry, HistoryQuery};

use crate::history::{self as hist, HISTORY_LINES, RollbackRequest};
use crate::world::{ConnId, Event, Step, Wait, World};

/// How far `/history` looks for the block the player looks at (Craft's
/// hit test reaches 8 blocks).
const SIGHT: f32 = 8.0;

/// Largest `/rollback` radius, in blocks.
const MAX_RADIUS: u32 = 10_000;

const HISTORY_USAGE: &str = "Usage: /history [X Y Z]";
const ROLLBACK_USAGE: &str = "Usage: /rollback NAME DURATION [RADIUS] (e.g. /rollback bob 30m 50)";
const HISTORY_OFF: &str = "Block history is not recorded on this server.";
const NOT_OPERATOR: &str = "Only operators may /rollback.";

/// Whether `text` is one of this module's commands.
pub(crate) fn is_history_command(text: &str) -> bool {
    let word = text.split(char::is_whitespace).next().unwrap_or("");
    matches!(word, "/history" | "/rollback")
}

/// A parsed command.
enum Parsed {
    History(Option<BlockPos>),
    Rollback {
        name: String,
        duration: std::time::Duration,
        radius: Option<u32>,
    },
}

fn parse(text: &str) -> Result<Parsed, &'static str> {
    let mut words = text.split_whitespace();
    match words.next() {
        Some("/history") => {
            let args: Vec<&str> = words.collect();
            match args.as_slice() {
                [] => Ok(Parsed::History(None)),
                [x, y, z] => {
                    let n = |s: &str| s.parse::<i32>().map_err(|_| HISTORY_USAGE);
                    Ok(Parsed::History(Some(BlockPos::new(n(x)?, n(y)?, n(z)?))))
                }
                _ => Err(HISTORY_USAGE),
            }
        }
        Some("/rollback") => {
            let args: Vec<&str> = words.collect();
            let (name, duration, radius) = match args.as_slice() {
                [name, duration] => (*name, *duration, None),
                [name, duration, radius] => (*name, *duration, Some(*radius)),
                _ => return Err(ROLLBACK_USAGE),
            };
            let duration = hist::parse_duration(duration).map_err(|_| ROLLBACK_USAGE)?;
            let radius = match radius {
                Some(r) => Some(
                    r.parse::<u32>()
                        .ok()
                        .filter(|r| *r <= MAX_RADIUS)
                        .ok_or(ROLLBACK_USAGE)?,
                ),
                None => None,
            };
            Ok(Parsed::Rollback {
                name: name.to_owned(),
                duration,
                radius,
            })
        }
        _ => Err(HISTORY_USAGE),
    }
}

impl World {
    /// Who `conn` is, for history: the user name, else the nick (a guest),
    /// with the address.
    pub(crate) fn author(&self, conn: ConnId) -> Author {
        match self.players.get(&conn) {
            Some(p) => Author {
                name: p.user.clone().unwrap_or_else(|| Arc::from(p.nick.as_str())),
                guest: p.user.is_none(),
                addr: Some(Arc::from(p.addr.ip().to_string().as_str())),
            },
            None => Author::user("unknown"),
        }
    }

    /// Records `change` at `pos` by `conn` in the pending batch, when
    /// history is on.
    pub(crate) fn record_change(&mut self, conn: ConnId, pos: BlockPos, change: Change) {
        if !self.history_on {
            return;
        }
        let entry = HistoryEntry {
            id: hist::entry_id(),
            time_ms: Self::now_ms(),
            author: self.author(conn),
            pos,
            change,
        };
        self.flusher.pending.record(entry);
    }

    /// What removing the block at `pos` does to its light and signs, as
    /// history (before the cache forgets them).
    pub(crate) fn record_clear(&mut self, conn: ConnId, pos: BlockPos) {
        if !self.history_on {
            return;
        }
        let Some(state) = self.chunks.ready(pos.chunk()) else {
            return;
        };
        let light = state.lights.get(&pos).copied().unwrap_or(0);
        let signs: Vec<(i32, String)> = state
            .signs
            .range((pos, i32::MIN)..=(pos, i32::MAX))
            .map(|((_, face), text)| (*face, text.clone()))
            .collect();
        if light != 0 {
            self.record_change(conn, pos, Change::Light { old: light, new: 0 });
        }
        for (face, text) in signs {
            let change = Change::Sign {
                face,
                old: Some(text),
                new: None,
            };
            self.record_change(conn, pos, change);
        }
    }

    /// `/history [X Y Z]` and `/rollback NAME DURATION [RADIUS]`.
    pub(crate) fn on_history_command(&mut self, conn: ConnId, text: &str, flush_waits: u8) -> Step {
        let parsed = match parse(text) {
            Ok(parsed) => parsed,
            Err(usage) => {
                self.send(conn, ServerMessage::Talk(usage));
                return Step::Done;
            }
        };
        if !self.history_on {
            self.send(conn, ServerMessage::Talk(HISTORY_OFF));
            return Step::Done;
        }
        if let Parsed::Rollback { .. } = parsed
            && !self.is_operator(conn)
        {
            self.send(conn, ServerMessage::Talk(NOT_OPERATOR));
            return Step::Done;
        }
        let at = match parsed {
            Parsed::History(Some(pos)) => Some(pos),
            Parsed::History(None) => match self.looked_at(conn) {
                Some(pos) => Some(pos),
                None => {
                    let msg = "No block in sight; use /history X Y Z.";
                    self.send(conn, ServerMessage::Talk(msg));
                    return Step::Done;
                }
            },
            Parsed::Rollback { .. } => None,
        };
        // Read what this server wrote: its pending edits first.
        if !self.flusher.is_idle() && flush_waits < 2 && !self.flusher.failing {
            self.flush_soon();
            return Step::Wait(Wait::Flush);
        }
        let store = self.store.clone();
        let events = self.events.clone();
        match (parsed, at) {
            (Parsed::History(_), Some(pos)) => {
                tokio::spawn(async move {
                    let lines = match store.history(&HistoryQuery::at(pos, HISTORY_LINES)).await {
                        Ok(entries) if entries.is_empty() => {
                            vec![format!(
                                "No recorded changes at {},{},{}.",
                                pos.x, pos.y, pos.z
                            )]
                        }
                        Ok(entries) => {
                            let mut lines = vec![format!(
                                "Last changes at {},{},{} (newest first):",
                                pos.x, pos.y, pos.z
                            )];
                            lines.extend(entries.iter().map(hist::describe));
                            lines
                        }
                        Err(e) => vec![format!("Cannot read the history: {e}")],
                    };
                    let _ = events
                        .send(Event::HistoryDone {
                            conn,
                            lines,
                            dirty: Vec::new(),
                        })
                        .await;
                });
            }
            (
                Parsed::Rollback {
                    name,
                    duration,
                    radius,
                },
                _,
            ) => {
                let now = Self::now_ms();
                let window = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
                let area = radius.and_then(|radius| {
                    let p = self.players.get(&conn)?.pos;
                    Some(Area {
                        x: p.x.round() as i32,
                        z: p.z.round() as i32,
                        radius,
                    })
                });
                let request = RollbackRequest {
                    author: Some(name.clone()),
                    since_ms: now.saturating_sub(window),
                    area,
                    by: self.author(conn),
                    now_ms: now,
                };
                tracing::info!(operator = %request.by.name, target = %name, ?duration, ?radius, "rollback asked in game");
                tokio::spawn(async move {
                    let (lines, dirty) = match hist::rollback(&*store, &request).await {
                        Ok(report) => {
                            tracing::info!(target = %name, found = report.found, restored = report.restored, "rollback done");
                            let line = format!(
                                "Rolled back {} of {} changes by {name} ({} chunks).",
                                report.restored,
                                report.found,
                                report.chunks.len()
                            );
                            (vec![line], report.chunks)
                        }
                        Err(e) => (vec![format!("Rollback failed: {e}")], Vec::new()),
                    };
                    let _ = events.send(Event::HistoryDone { conn, lines, dirty }).await;
                });
            }
            (Parsed::History(_), None) => return Step::Done,
        }
        Step::Pending(Wait::History)
    }

    /// Answers a `/history` or `/rollback`: tells the player, shows the
    /// written chunks to everyone who has them (through the sync) and
    /// resumes the player's commands.
    pub(crate) fn on_history_done(
        &mut self,
        conn: ConnId,
        lines: Vec<String>,
        dirty: Vec<ChunkHead>,
    ) {
        if let Some(player) = self.players.get(&conn) {
            let msgs: Vec<ServerMessage<'_>> =
                lines.iter().map(|l| ServerMessage::Talk(l)).collect();
            self.push(player, &crate::world::encode_all(&msgs), msgs.len() as u64);
        }
        self.resync(dirty);
        let waiting = self
            .players
            .get(&conn)
            .is_some_and(|p| p.waiting == Some(Wait::History));
        if waiting {
            if let Some(player) = self.players.get_mut(&conn) {
                player.waiting = None;
            }
            self.drive(conn);
        }
    }

    /// Marks chunks another writer (a rollback) changed, syncs them now,
    /// and tells the fleet to do the same.
    pub(crate) fn resync(&mut self, heads: Vec<ChunkHead>) {
        if heads.is_empty() {
            return;
        }
        self.sync.dirty.extend(heads.iter().map(|h| h.chunk));
        self.fleet_heads(heads);
        self.start_sync();
    }

    /// Whether `conn` is logged in as one of `operators`.
    fn is_operator(&self, conn: ConnId) -> bool {
        self.players
            .get(&conn)
            .and_then(|p| p.user.as_deref())
            .is_some_and(|user| self.config.operators.iter().any(|o| o == user))
    }

    /// The block the player looks at: Craft's hit test (steps of 1/32
    /// block along the sight vector, up to 8 blocks), over what this
    /// server has in memory. `None` when nothing solid is in reach or a
    /// chunk on the way is not in memory.
    fn looked_at(&self, conn: ConnId) -> Option<BlockPos> {
        let p = self.players.get(&conn)?.pos;
        let m = p.ry.cos();
        let (vx, vy, vz) = (
            (p.rx - std::f32::consts::FRAC_PI_2).cos() * m,
            p.ry.sin(),
            (p.rx - std::f32::consts::FRAC_PI_2).sin() * m,
        );
        let steps = 32.0;
        let (mut x, mut y, mut z) = (p.x, p.y, p.z);
        let mut last = None;
        for _ in 0..(SIGHT * steps) as usize {
            let pos = BlockPos::new(x.round() as i32, y.round() as i32, z.round() as i32);
            if last != Some(pos) {
                if self.block_at(pos)? > 0 {
                    return Some(pos);
                }
                last = Some(pos);
            }
            x += vx / steps;
            y += vy / steps;
            z += vz / steps;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert!(matches!(parse("/history"), Ok(Parsed::History(None))));
        assert!(matches!(
            parse("/history 1 -2 3"),
            Ok(Parsed::History(Some(p))) if p == BlockPos::new(1, -2, 3)
        ));
        assert!(parse("/history 1 2").is_err());
        assert!(matches!(
            parse("/rollback bob 10m 5"),
            Ok(Parsed::Rollback {
                radius: Some(5),
                ..
            })
        ));
        assert!(parse("/rollback bob").is_err());
        assert!(parse("/rollback bob soon").is_err());
        assert!(is_history_command("/rollback x"));
        assert!(!is_history_command("/historyx"));
    }
}
