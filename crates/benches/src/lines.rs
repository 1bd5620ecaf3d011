//! Just enough of the server's lines for the bots, parsed without
//! allocating.
//!
//! A crowded bot receives thousands of lines a second and cares about few
//! of them (`B`, `R`, `C`, `K`, some `T`); everything else is only counted.
//! Parsing here is a byte scan with hand-rolled integer parsing, so that the
//! load generator stays cheap next to the server it measures.

use world_core::coords::{BlockPos, ChunkPos};

/// A server line a bot reacts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// `B,P,Q,X,Y,Z,W`.
    Block {
        /// The chunk.
        chunk: ChunkPos,
        /// The block.
        pos: BlockPos,
        /// Its value.
        w: i32,
    },
    /// `R,P,Q`.
    Redraw(ChunkPos),
    /// `C,P,Q`: a chunk answer is complete.
    ChunkDone(ChunkPos),
    /// `K,P,Q,KEY`.
    Key(ChunkPos, i64),
    /// `T,TEXT`.
    Talk(&'a [u8]),
    /// Anything else (`P`, `N`, `U`, `E`, `D`, `L`, `S`) or malformed.
    Other,
}

/// Parses one line (without its `\n`).
pub fn parse(line: &[u8]) -> Line<'_> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() < 2 || line[1] != b',' {
        return Line::Other;
    }
    let rest = &line[2..];
    match line[0] {
        b'B' => {
            let mut f = Ints(rest);
            match (f.int(), f.int(), f.int(), f.int(), f.int(), f.last()) {
                (Some(p), Some(q), Some(x), Some(y), Some(z), Some(w)) => Line::Block {
                    chunk: ChunkPos::new(p, q),
                    pos: BlockPos::new(x, y, z),
                    w,
                },
                _ => Line::Other,
            }
        }
        b'R' | b'C' => {
            let mut f = Ints(rest);
            match (f.int(), f.last()) {
                (Some(p), Some(q)) if line[0] == b'R' => Line::Redraw(ChunkPos::new(p, q)),
                (Some(p), Some(q)) => Line::ChunkDone(ChunkPos::new(p, q)),
                _ => Line::Other,
            }
        }
        b'K' => {
            let mut f = Ints(rest);
            match (f.int(), f.int(), f.last_i64()) {
                (Some(p), Some(q), Some(key)) => Line::Key(ChunkPos::new(p, q), key),
                _ => Line::Other,
            }
        }
        b'T' => Line::Talk(rest),
        _ => Line::Other,
    }
}

/// Comma-separated integers.
struct Ints<'a>(&'a [u8]);

impl Ints<'_> {
    /// The next field, which must be followed by a comma.
    fn int(&mut self) -> Option<i32> {
        let end = self.0.iter().position(|b| *b == b',')?;
        let v = int(&self.0[..end])?;
        self.0 = &self.0[end + 1..];
        i32::try_from(v).ok()
    }

    /// The last field.
    fn last(&mut self) -> Option<i32> {
        i32::try_from(self.last_i64()?).ok()
    }

    fn last_i64(&mut self) -> Option<i64> {
        let v = int(self.0)?;
        self.0 = &[];
        Some(v)
    }
}

fn int(field: &[u8]) -> Option<i64> {
    let (negative, digits) = match field.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, field),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(d - b'0');
    }
    Some(if negative { -v } else { v })
}

/// The `bench:BOT:SEQ` marker of a chat line (`T,NICK> bench:BOT:SEQ`).
pub fn chat_marker(text: &[u8]) -> Option<(u32, u64)> {
    const TAG: &[u8] = b"> bench:";
    let at = text.windows(TAG.len()).position(|w| w == TAG)?;
    let rest = &text[at + TAG.len()..];
    let colon = rest.iter().position(|b| *b == b':')?;
    let bot = u32::try_from(int(&rest[..colon])?).ok()?;
    let seq = u64::try_from(int(&rest[colon + 1..])?).ok()?;
    Some((bot, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_bots_need() {
        assert_eq!(
            parse(b"B,0,-1,5,120,-7,33"),
            Line::Block {
                chunk: ChunkPos::new(0, -1),
                pos: BlockPos::new(5, 120, -7),
                w: 33
            }
        );
        assert_eq!(parse(b"R,3,-4\r"), Line::Redraw(ChunkPos::new(3, -4)));
        assert_eq!(parse(b"C,3,-4"), Line::ChunkDone(ChunkPos::new(3, -4)));
        assert_eq!(
            parse(b"K,1,2,2147483647"),
            Line::Key(ChunkPos::new(1, 2), 2147483647)
        );
        assert_eq!(parse(b"T,a, b"), Line::Talk(b"a, b"));
        for other in [
            &b"P,1,2.5,3,4,5,6"[..],
            b"N,1,guest1",
            b"B,1,2,3",
            b"B,1,2,3,4,5,x",
            b"B,1,2,3,4,5,99999999999",
            b"C",
            b"",
            b"BB,1",
            b"C,1,2,3",
        ] {
            assert_eq!(
                parse(other),
                Line::Other,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn finds_chat_markers() {
        assert_eq!(chat_marker(b"guest12> bench:7:42"), Some((7, 42)));
        assert_eq!(chat_marker(b"guest12 has joined the game."), None);
        assert_eq!(chat_marker(b"x> bench:7"), None);
    }
}
