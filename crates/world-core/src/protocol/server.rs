//! Server lines.

use std::fmt::{self, Write as _};

use super::client::Position;
use crate::coords::{BlockPos, ChunkPos};

/// A line the server sends. Text fields are borrowed: the server encodes a
/// broadcast once and shares the bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ServerMessage<'a> {
    /// `U,ID,X,Y,Z,RX,RY`: you are player ID, here (also a teleport).
    You {
        /// Your player id.
        id: u32,
        /// Where you are.
        pos: Position,
    },
    /// `E,SECONDS,DAY_LENGTH`: the time of day.
    Time {
        /// Seconds since the time epoch.
        seconds: f64,
        /// Length of a day in seconds.
        day_length: u32,
    },
    /// `T,TEXT`: a chat or system message.
    Talk(&'a str),
    /// `N,ID,NICK`.
    Nick {
        /// Player id.
        id: u32,
        /// Its nick.
        nick: &'a str,
    },
    /// `P,ID,X,Y,Z,RX,RY`: another player moved.
    Position {
        /// Player id.
        id: u32,
        /// Where it is.
        pos: Position,
    },
    /// `D,ID`: player ID left.
    Disconnect {
        /// Player id.
        id: u32,
    },
    /// `B,P,Q,X,Y,Z,W`.
    Block {
        /// The chunk the row belongs to.
        chunk: ChunkPos,
        /// The block.
        pos: BlockPos,
        /// Its value.
        w: i32,
    },
    /// `L,P,Q,X,Y,Z,W`.
    Light {
        /// The chunk.
        chunk: ChunkPos,
        /// The block.
        pos: BlockPos,
        /// Light level.
        w: i32,
    },
    /// `S,P,Q,X,Y,Z,FACE,TEXT` (empty text: removed).
    Sign {
        /// The chunk.
        chunk: ChunkPos,
        /// The block.
        pos: BlockPos,
        /// Face.
        face: i32,
        /// Text.
        text: &'a str,
    },
    /// `K,P,Q,KEY`: remember KEY for the chunk.
    Key {
        /// The chunk.
        chunk: ChunkPos,
        /// Its key.
        key: i64,
    },
    /// `R,P,Q`: redraw the chunk.
    Redraw {
        /// The chunk.
        chunk: ChunkPos,
    },
    /// `C,P,Q`: the answer to a chunk request is complete.
    ChunkDone {
        /// The chunk.
        chunk: ChunkPos,
    },
}

impl ServerMessage<'_> {
    /// Appends the line, `\n` included, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut line = String::with_capacity(48);
        // Writing into a String cannot fail.
        let _ = write!(line, "{self}");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }

    /// The line with its `\n`.
    pub fn to_line(&self) -> String {
        format!("{self}\n")
    }
}

/// Free text must stay on one line: a newline would start a forged command.
fn text(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    if text.contains(['\n', '\r']) {
        f.write_str(&text.replace(['\n', '\r'], " "))
    } else {
        f.write_str(text)
    }
}

fn position(f: &mut fmt::Formatter<'_>, p: &Position) -> fmt::Result {
    // Shortest form that reads back to the same f32: 1.5, 20.25, 0.
    write!(f, "{},{},{},{},{}", p.x, p.y, p.z, p.rx, p.ry)
}

impl fmt::Display for ServerMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::You { id, pos } => {
                write!(f, "U,{id},")?;
                position(f, pos)
            }
            Self::Time {
                seconds,
                day_length,
            } => write!(f, "E,{seconds},{day_length}"),
            Self::Talk(t) => {
                f.write_str("T,")?;
                text(f, t)
            }
            Self::Nick { id, nick } => {
                write!(f, "N,{id},")?;
                text(f, nick)
            }
            Self::Position { id, pos } => {
                write!(f, "P,{id},")?;
                position(f, pos)
            }
            Self::Disconnect { id } => write!(f, "D,{id}"),
            Self::Block { chunk, pos, w } => {
                write!(
                    f,
                    "B,{},{},{},{},{},{w}",
                    chunk.p, chunk.q, pos.x, pos.y, pos.z
                )
            }
            Self::Light { chunk, pos, w } => {
                write!(
                    f,
                    "L,{},{},{},{},{},{w}",
                    chunk.p, chunk.q, pos.x, pos.y, pos.z
                )
            }
            Self::Sign {
                chunk,
                pos,
                face,
                text: t,
            } => {
                write!(
                    f,
                    "S,{},{},{},{},{},{face},",
                    chunk.p, chunk.q, pos.x, pos.y, pos.z
                )?;
                text(f, t)
            }
            Self::Key { chunk, key } => write!(f, "K,{},{},{key}", chunk.p, chunk.q),
            Self::Redraw { chunk } => write!(f, "R,{},{}", chunk.p, chunk.q),
            Self::ChunkDone { chunk } => write!(f, "C,{},{}", chunk.p, chunk.q),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_message() {
        let pos = Position {
            x: 1.5,
            y: 20.25,
            z: 3.75,
            rx: 0.5,
            ry: -0.25,
        };
        let c = ChunkPos::new(0, -1);
        let b = BlockPos::new(-1, 40, -1);
        let cases: Vec<(ServerMessage<'_>, &str)> = vec![
            (
                ServerMessage::You {
                    id: 1,
                    pos: Position::default(),
                },
                "U,1,0,0,0,0,0\n",
            ),
            (
                ServerMessage::Time {
                    seconds: 12.5,
                    day_length: 600,
                },
                "E,12.5,600\n",
            ),
            (ServerMessage::Talk("hello, world"), "T,hello, world\n"),
            (ServerMessage::Talk("two\nlines"), "T,two lines\n"),
            (ServerMessage::Nick { id: 2, nick: "bob" }, "N,2,bob\n"),
            (
                ServerMessage::Position { id: 1, pos },
                "P,1,1.5,20.25,3.75,0.5,-0.25\n",
            ),
            (ServerMessage::Disconnect { id: 2 }, "D,2\n"),
            (
                ServerMessage::Block {
                    chunk: c,
                    pos: b,
                    w: -7,
                },
                "B,0,-1,-1,40,-1,-7\n",
            ),
            (
                ServerMessage::Light {
                    chunk: c,
                    pos: b,
                    w: 15,
                },
                "L,0,-1,-1,40,-1,15\n",
            ),
            (
                ServerMessage::Sign {
                    chunk: c,
                    pos: b,
                    face: 3,
                    text: "a, b",
                },
                "S,0,-1,-1,40,-1,3,a, b\n",
            ),
            (
                ServerMessage::Key {
                    chunk: c,
                    key: 2147483647,
                },
                "K,0,-1,2147483647\n",
            ),
            (ServerMessage::Redraw { chunk: c }, "R,0,-1\n"),
            (ServerMessage::ChunkDone { chunk: c }, "C,0,-1\n"),
        ];
        for (msg, line) in cases {
            let mut out = Vec::new();
            msg.encode(&mut out);
            assert_eq!(String::from_utf8(out).as_deref(), Ok(line));
            assert_eq!(msg.to_line(), line);
        }
    }
}
