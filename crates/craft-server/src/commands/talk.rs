//! `T,TEXT`: chat, `@nick` private messages and `/commands`.

use world_core::protocol::{Position, ServerMessage};

use crate::world::{ConnId, Queued, Step, World};

/// Chunks `/pq` may reach from the origin.
const PQ_LIMIT: i64 = 1000;

/// The answer to `/nick` on a server where building needs a login.
const NICK_REFUSED: &str = "You cannot change your nick on this server.";

impl World {
    pub(crate) fn on_talk(&mut self, conn: ConnId, text: &str, queued: &Queued) -> Step {
        if let Some(step) = self.on_draft_command(conn, text, queued) {
            return step;
        }
        let Some(me) = self.players.get(&conn) else {
            return Step::Done;
        };
        let nick = me.nick.clone();
        if text.starts_with('/') {
            self.on_slash(conn, text);
        } else if let Some(rest) = text.strip_prefix('@') {
            let target = rest.split(' ').next().unwrap_or("");
            let line = format!("{nick}> {text}");
            match self.find_nick(target) {
                Some(other) => {
                    self.send(conn, ServerMessage::Talk(&line));
                    self.send(other, ServerMessage::Talk(&line));
                }
                None if self.fleet_private(target, &line) => {
                    self.send(conn, ServerMessage::Talk(&line));
                }
                None => {
                    let msg = format!("Unrecognized nick: \"{target}\"");
                    self.send(conn, ServerMessage::Talk(&msg));
                }
            }
        } else {
            let line = format!("{nick}> {text}");
            tracing::debug!(target: "craft_server::chat", "{line}");
            self.broadcast(&[ServerMessage::Talk(&line)], None);
            self.fleet_chat(&line);
        }
        Step::Done
    }

    /// The player with this nick who joined first, if several share it
    /// (whom the original's `@nick` reaches).
    fn find_nick(&self, nick: &str) -> Option<ConnId> {
        self.players
            .iter()
            .find(|(_, p)| p.nick == nick)
            .map(|(c, _)| *c)
    }

    fn on_slash(&mut self, conn: ConnId, text: &str) {
        let (command, rest) = text.split_at(text.find(char::is_whitespace).unwrap_or(text.len()));
        let handled = match command {
            "/spawn" if rest.is_empty() => {
                let spawn = self.config.spawn.position();
                self.teleport(conn, spawn);
                true
            }
            "/list" if rest.is_empty() => {
                // In join order, as the original lists its clients; then
                // the rest of the fleet.
                let remote = self.fleet_nicks();
                let names: Vec<&str> = self
                    .players
                    .values()
                    .map(|p| p.nick.as_str())
                    .chain(remote.iter().map(String::as_str))
                    .collect();
                let msg = format!("Players: {}", names.join(", "));
                self.send(conn, ServerMessage::Talk(&msg));
                true
            }
            "/goto" => match optional_arg(rest) {
                Some(name) => {
                    self.goto(conn, name);
                    true
                }
                None => false,
            },
            "/help" => match optional_arg(rest) {
                Some(topic) => {
                    self.help(conn, topic);
                    true
                }
                None => false,
            },
            "/nick" => match optional_arg(rest) {
                Some(name) => {
                    self.nick(conn, name);
                    true
                }
                None => false,
            },
            "/pq" => match pq_args(rest) {
                Some((p, q)) => {
                    if p.abs() <= PQ_LIMIT && q.abs() <= PQ_LIMIT {
                        let size = world_core::CHUNK_SIZE as f32;
                        let pos = Position {
                            x: p as f32 * size,
                            y: 0.0,
                            z: q as f32 * size,
                            rx: 0.0,
                            ry: 0.0,
                        };
                        self.teleport(conn, pos);
                    }
                    true
                }
                None => false,
            },
            _ => false,
        };
        if !handled {
            let msg = format!("Unrecognized command: \"{text}\"");
            self.send(conn, ServerMessage::Talk(&msg));
        }
    }

    fn goto(&mut self, conn: ConnId, name: Option<&str>) {
        let target = match name {
            // The one who joined last, if several share the nick: the
            // original looks the name up in a dict built in join order.
            Some(name) => self
                .players
                .iter()
                .rev()
                .find(|(_, p)| p.nick == name)
                .map(|(c, _)| *c),
            None => {
                // A random pick among the others, listed in join order.
                let others: Vec<ConnId> = self
                    .players
                    .keys()
                    .copied()
                    .filter(|c| *c != conn)
                    .collect();
                if others.is_empty() {
                    None
                } else {
                    Some(others[rand::random_range(0..others.len())])
                }
            }
        };
        if let Some(pos) = target.and_then(|t| self.players.get(&t)).map(|p| p.pos) {
            self.teleport(conn, pos);
        }
    }

    /// `/nick [NAME]`. Where building needs a login, names are what the
    /// identity service vouches for: the original refuses every `/nick`
    /// there, even the question, so that nobody can pass for another.
    fn nick(&mut self, conn: ConnId, name: Option<&str>) {
        if self.config.login.required_to_build {
            self.send(conn, ServerMessage::Talk(NICK_REFUSED));
            return;
        }
        let Some(me) = self.players.get_mut(&conn) else {
            return;
        };
        match name {
            None => {
                let msg = format!("Your nickname is {}", me.nick);
                self.send(conn, ServerMessage::Talk(&msg));
            }
            Some(name) => {
                let old = std::mem::replace(&mut me.nick, name.to_owned());
                let id = me.id;
                let msg = format!("{old} is now known as {name}");
                self.announce(
                    conn,
                    &[
                        ServerMessage::Talk(&msg),
                        ServerMessage::Nick { id, nick: name },
                    ],
                );
                self.fleet_chat(&msg);
            }
        }
    }

    fn help(&self, conn: ConnId, topic: Option<&str>) {
        let lines: &[&str] = match topic.map(|t| t.trim().to_lowercase()).as_deref() {
            None => &[
                "Type \"t\" to chat. Type \"/\" to type commands:",
                "/goto [NAME], /help [TOPIC], /list, /login NAME, /logout, /nick",
                "/offline [FILE], /online HOST [PORT], /pq P Q, /spawn, /view N",
                // The lines above are the original's, byte for byte; this
                // server's own commands follow on a line of their own.
                "/private, /publish [check], /discard, /history, /rollback",
            ],
            Some("goto") => &[
                "Help: /goto [NAME]",
                "Teleport to another user.",
                "If NAME is unspecified, a random user is chosen.",
            ],
            Some("list") => &["Help: /list", "Display a list of connected users."],
            Some("login") => &[
                "Help: /login NAME",
                "Switch to another registered username.",
                "The login server will be re-contacted. The username is case-sensitive.",
            ],
            Some("logout") => &[
                "Help: /logout",
                "Unauthenticate and become a guest user.",
                "Automatic logins will not occur again until the /login command is re-issued.",
            ],
            Some("offline") => &[
                "Help: /offline [FILE]",
                "Switch to offline mode.",
                "FILE specifies the save file to use and defaults to \"craft\".",
            ],
            Some("online") => &[
                "Help: /online HOST [PORT]",
                "Connect to the specified server.",
            ],
            Some("pq") => &["Help: /pq P Q", "Teleport to the specified chunk."],
            Some("private") => &[
                "Help: /private",
                "Build privately: your next edits go to your own draft, which only you see.",
                "Shows the state of your draft when you already build privately.",
            ],
            Some("publish") => &[
                "Help: /publish [check]",
                "Make your whole draft public at once, overwriting what others changed there.",
                "/publish check only lists the drafted positions others changed since.",
            ],
            Some("discard") => &[
                "Help: /discard",
                "Drop your draft and see the world as it is again.",
            ],
            Some("history") => &[
                "Help: /history [X Y Z]",
                "Show the last changes of the block you look at, or at X Y Z:",
                "who, when, and the values before and after.",
            ],
            Some("rollback") => &[
                "Help: /rollback NAME DURATION [RADIUS]",
                "Operators: undo every change NAME made in the last DURATION",
                "(90s, 10m, 2h, 1d), within RADIUS blocks of you if given.",
            ],
            Some("spawn") => &["Help: /spawn", "Teleport back to the spawn point."],
            Some("view") => &["Help: /view N", "Set viewing distance, 1 - 24."],
            Some(_) => &[],
        };
        let msgs: Vec<ServerMessage<'_>> = lines.iter().map(|l| ServerMessage::Talk(l)).collect();
        if let Some(player) = self.players.get(&conn) {
            self.push(player, &crate::world::encode_all(&msgs), msgs.len() as u64);
        }
    }
}

/// `(?:\s+(\S+))?$` after a command word: `Some(None)` for nothing,
/// `Some(Some(arg))` for one word, `None` when it does not match.
fn optional_arg(rest: &str) -> Option<Option<&str>> {
    if rest.is_empty() {
        return Some(None);
    }
    let arg = rest.trim_start();
    if arg.is_empty() || arg.contains(char::is_whitespace) {
        return None;
    }
    Some(Some(arg))
}

/// `\s+(-?[0-9]+)\s*,?\s*(-?[0-9]+)$` with the original's backtracking (so
/// `/pq 34` is chunk (3, 4), as there). Out-of-range numbers saturate.
fn pq_args(rest: &str) -> Option<(i64, i64)> {
    let body = rest.trim_start();
    if body.len() == rest.len() {
        return None;
    }
    let number_len = |s: &str| {
        let digits = s.strip_prefix('-').unwrap_or(s);
        let n = digits.bytes().take_while(u8::is_ascii_digit).count();
        (n > 0).then(|| n + (s.len() - digits.len()))
    };
    let parse = |s: &str| {
        s.parse::<i64>().unwrap_or(if s.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        })
    };
    let longest = number_len(body)?;
    let min = if body.starts_with('-') { 2 } else { 1 };
    for split in (min..=longest).rev() {
        let (first, tail) = body.split_at(split);
        let tail = tail.trim_start();
        let tail = tail.strip_prefix(',').unwrap_or(tail).trim_start();
        if number_len(tail) == Some(tail.len()) {
            return Some((parse(first), parse(tail)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pq_matches_like_the_original_regex() {
        assert_eq!(pq_args(" 3 4"), Some((3, 4)));
        assert_eq!(pq_args(" 3,-4"), Some((3, -4)));
        assert_eq!(pq_args("  3 , -4"), Some((3, -4)));
        assert_eq!(pq_args(" 34"), Some((3, 4)));
        assert_eq!(pq_args(" -3-4"), Some((-3, -4)));
        assert_eq!(pq_args(" 2000 1"), Some((2000, 1)));
        assert_eq!(pq_args(" 99999999999999999999999 1"), Some((i64::MAX, 1)));
        assert_eq!(pq_args("3 4"), None);
        assert_eq!(pq_args(" 3"), None);
        assert_eq!(pq_args(" 3 4 "), None);
        assert_eq!(pq_args(" a b"), None);
        assert_eq!(pq_args(""), None);
    }

    #[test]
    fn optional_args() {
        assert_eq!(optional_arg(""), Some(None));
        assert_eq!(optional_arg(" bob"), Some(Some("bob")));
        assert_eq!(optional_arg("  bob"), Some(Some("bob")));
        assert_eq!(optional_arg(" bob alice"), None);
        assert_eq!(optional_arg(" "), None);
        assert_eq!(optional_arg(" bob "), None);
    }
}
