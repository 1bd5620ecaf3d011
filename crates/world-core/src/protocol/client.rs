//! Client lines.

use std::fmt;
use std::str::FromStr;

use crate::coords::BlockPos;

/// Longest client line accepted, in bytes, without its line ending. The
/// client never sends more than 1023.
pub const MAX_LINE_BYTES: usize = 1024;

/// A position and rotation as the client sends it (`%.2f` floats).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Position {
    /// x.
    pub x: f32,
    /// y (0 makes the client drop onto the highest block).
    pub y: f32,
    /// z.
    pub z: f32,
    /// Rotation around the vertical axis.
    pub rx: f32,
    /// Rotation up/down.
    pub ry: f32,
}

/// A parsed client line. `Debug` never shows a login token (`Display`
/// is the line itself, token included: it is what goes on the wire).
#[derive(Clone, PartialEq)]
pub enum ClientCommand {
    /// `V,VERSION`.
    Version(i32),
    /// `A,USERNAME,TOKEN`; either may be empty (guest).
    Login {
        /// User name.
        username: String,
        /// Access token.
        token: String,
    },
    /// `C,P,Q[,KEY]`: the changes of chunk (P,Q) newer than KEY.
    Chunk {
        /// Chunk index along x.
        p: i32,
        /// Chunk index along z.
        q: i32,
        /// The key the client holds (0 when missing or negative).
        key: i64,
    },
    /// `B,X,Y,Z,W`.
    Block {
        /// The block.
        pos: BlockPos,
        /// The new value (0 = remove).
        w: i32,
    },
    /// `L,X,Y,Z,W`.
    Light {
        /// The block.
        pos: BlockPos,
        /// Light level.
        w: i32,
    },
    /// `S,X,Y,Z,FACE,TEXT` (TEXT may contain commas; empty removes).
    Sign {
        /// The block.
        pos: BlockPos,
        /// Face.
        face: i32,
        /// Text.
        text: String,
    },
    /// `P,X,Y,Z,RX,RY`.
    Position(Position),
    /// `T,TEXT` (chat, `/command` or `@nick message`).
    Talk(String),
}

/// Why a client line was not understood. The server ignores such lines.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing on the line.
    #[error("empty line")]
    Empty,
    /// Longer than [`MAX_LINE_BYTES`].
    #[error("line of {0} bytes is longer than {MAX_LINE_BYTES}")]
    TooLong(usize),
    /// Not valid UTF-8.
    #[error("line is not valid UTF-8")]
    NotUtf8,
    /// The first field is not a known command.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// Wrong number of fields for the command.
    #[error("{command}: expected {expected} fields after the command, got {got}")]
    FieldCount {
        /// The command letter.
        command: char,
        /// What was expected, e.g. `"4"` or `"at least 4"`.
        expected: &'static str,
        /// How many came.
        got: usize,
    },
    /// A field that must be a 32-bit integer is not.
    #[error("{command}: field {field} is not a 32-bit integer: {value:?}")]
    BadInteger {
        /// The command letter.
        command: char,
        /// The field's name.
        field: &'static str,
        /// The text received (cut to 32 bytes).
        value: String,
    },
    /// A field that must be a finite number is not.
    #[error("{command}: field {field} is not a finite number: {value:?}")]
    BadNumber {
        /// The command letter.
        command: char,
        /// The field's name.
        field: &'static str,
        /// The text received (cut to 32 bytes).
        value: String,
    },
}

/// Parses one client line, without its `\n` (a trailing `\r` is dropped).
pub fn parse_line(line: &[u8]) -> Result<ClientCommand, ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LINE_BYTES {
        return Err(ParseError::TooLong(line.len()));
    }
    let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    let (command, rest) = match line.split_once(',') {
        Some((command, rest)) => (command, Some(rest)),
        None => (line, None),
    };
    let mut fields = Fields { command: ' ', rest };
    let cmd = match command {
        "V" => {
            fields.command = 'V';
            let [version] = fields.exact::<1>("1")?;
            ClientCommand::Version(int(fields.command, "VERSION", version)?)
        }
        "A" => {
            fields.command = 'A';
            let [username, token] = fields.exact::<2>("2")?;
            ClientCommand::Login {
                username: username.to_owned(),
                token: token.to_owned(),
            }
        }
        "C" => {
            fields.command = 'C';
            let all: Vec<&str> = fields
                .rest
                .map(|r| r.split(',').collect())
                .unwrap_or_default();
            let (p, q, key) = match all.as_slice() {
                [p, q] => (*p, *q, None),
                [p, q, key] => (*p, *q, Some(*key)),
                _ => {
                    return Err(ParseError::FieldCount {
                        command: 'C',
                        expected: "2 or 3",
                        got: all.len(),
                    });
                }
            };
            let key = match key {
                Some(key) => i64::from(int('C', "KEY", key)?).max(0),
                None => 0,
            };
            ClientCommand::Chunk {
                p: int('C', "P", p)?,
                q: int('C', "Q", q)?,
                key,
            }
        }
        "B" | "L" => {
            let c = if command == "B" { 'B' } else { 'L' };
            fields.command = c;
            let [x, y, z, w] = fields.exact::<4>("4")?;
            let pos = BlockPos::new(int(c, "X", x)?, int(c, "Y", y)?, int(c, "Z", z)?);
            let w = int(c, "W", w)?;
            if c == 'B' {
                ClientCommand::Block { pos, w }
            } else {
                ClientCommand::Light { pos, w }
            }
        }
        "S" => {
            fields.command = 'S';
            let (head, text) = fields.with_text::<4>()?;
            let [x, y, z, face] = head;
            ClientCommand::Sign {
                pos: BlockPos::new(int('S', "X", x)?, int('S', "Y", y)?, int('S', "Z", z)?),
                face: int('S', "FACE", face)?,
                text: text.to_owned(),
            }
        }
        "P" => {
            fields.command = 'P';
            let [x, y, z, rx, ry] = fields.exact::<5>("5")?;
            ClientCommand::Position(Position {
                x: float('P', "X", x)?,
                y: float('P', "Y", y)?,
                z: float('P', "Z", z)?,
                rx: float('P', "RX", rx)?,
                ry: float('P', "RY", ry)?,
            })
        }
        // The whole rest of the line is the text, commas included; a bare
        // `T` is an empty message, as in the original.
        "T" => ClientCommand::Talk(rest.unwrap_or("").to_owned()),
        other => return Err(ParseError::UnknownCommand(cut(other))),
    };
    Ok(cmd)
}

struct Fields<'a> {
    command: char,
    rest: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn exact<const N: usize>(&self, expected: &'static str) -> Result<[&'a str; N], ParseError> {
        let all: Vec<&'a str> = self
            .rest
            .map(|r| r.split(',').collect())
            .unwrap_or_default();
        let got = all.len();
        all.try_into().map_err(|_| ParseError::FieldCount {
            command: self.command,
            expected,
            got,
        })
    }

    /// `N` fields, then the rest of the line as free text (may be empty).
    fn with_text<const N: usize>(&self) -> Result<([&'a str; N], &'a str), ParseError> {
        let rest = self.rest.unwrap_or("");
        let mut parts = rest.splitn(N + 1, ',');
        let mut head = [""; N];
        let mut got = 0;
        for slot in &mut head {
            match parts.next() {
                Some(field) if self.rest.is_some() => {
                    *slot = field;
                    got += 1;
                }
                _ => {
                    return Err(ParseError::FieldCount {
                        command: self.command,
                        expected: "at least 4",
                        got,
                    });
                }
            }
        }
        Ok((head, parts.next().unwrap_or("")))
    }
}

fn cut(value: &str) -> String {
    let mut end = value.len().min(32);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

fn int(command: char, field: &'static str, value: &str) -> Result<i32, ParseError> {
    // sscanf("%d") and Python's int() both accept surrounding blanks.
    i32::from_str(value.trim()).map_err(|_| ParseError::BadInteger {
        command,
        field,
        value: cut(value),
    })
}

fn float(command: char, field: &'static str, value: &str) -> Result<f32, ParseError> {
    match f32::from_str(value.trim()) {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(ParseError::BadNumber {
            command,
            field,
            value: cut(value),
        }),
    }
}

impl fmt::Debug for ClientCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(v) => f.debug_tuple("Version").field(v).finish(),
            Self::Login { username, token } => f
                .debug_struct("Login")
                .field("username", username)
                .field("token", &if token.is_empty() { "" } else { "***" })
                .finish(),
            Self::Chunk { p, q, key } => f
                .debug_struct("Chunk")
                .field("p", p)
                .field("q", q)
                .field("key", key)
                .finish(),
            Self::Block { pos, w } => f
                .debug_struct("Block")
                .field("pos", pos)
                .field("w", w)
                .finish(),
            Self::Light { pos, w } => f
                .debug_struct("Light")
                .field("pos", pos)
                .field("w", w)
                .finish(),
            Self::Sign { pos, face, text } => f
                .debug_struct("Sign")
                .field("pos", pos)
                .field("face", face)
                .field("text", text)
                .finish(),
            Self::Position(p) => f.debug_tuple("Position").field(p).finish(),
            Self::Talk(text) => f.debug_tuple("Talk").field(text).finish(),
        }
    }
}

impl fmt::Display for ClientCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(v) => write!(f, "V,{v}"),
            Self::Login { username, token } => write!(f, "A,{username},{token}"),
            Self::Chunk { p, q, key } => write!(f, "C,{p},{q},{key}"),
            Self::Block { pos, w } => write!(f, "B,{},{},{},{w}", pos.x, pos.y, pos.z),
            Self::Light { pos, w } => write!(f, "L,{},{},{},{w}", pos.x, pos.y, pos.z),
            Self::Sign { pos, face, text } => {
                write!(f, "S,{},{},{},{face},{text}", pos.x, pos.y, pos.z)
            }
            Self::Position(p) => write!(
                f,
                "P,{:.2},{:.2},{:.2},{:.2},{:.2}",
                p.x, p.y, p.z, p.rx, p.ry
            ),
            Self::Talk(text) => write!(f, "T,{text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ClientCommand, ParseError> {
        parse_line(s.as_bytes())
    }

    #[test]
    fn parses_every_command() {
        assert_eq!(parse("V,1"), Ok(ClientCommand::Version(1)));
        assert_eq!(
            parse("A,,"),
            Ok(ClientCommand::Login {
                username: String::new(),
                token: String::new()
            })
        );
        assert_eq!(
            parse("C,1,-2"),
            Ok(ClientCommand::Chunk {
                p: 1,
                q: -2,
                key: 0
            })
        );
        assert_eq!(
            parse("C,1,-2,17"),
            Ok(ClientCommand::Chunk {
                p: 1,
                q: -2,
                key: 17
            })
        );
        assert_eq!(
            parse("C,1,-2,-5"),
            Ok(ClientCommand::Chunk {
                p: 1,
                q: -2,
                key: 0
            })
        );
        assert_eq!(
            parse("B,-1,40,-1,7\r"),
            Ok(ClientCommand::Block {
                pos: BlockPos::new(-1, 40, -1),
                w: 7
            })
        );
        assert_eq!(
            parse("L,8,20,8,15"),
            Ok(ClientCommand::Light {
                pos: BlockPos::new(8, 20, 8),
                w: 15
            })
        );
        assert_eq!(
            parse("S,8,20,8,1,text, with comma"),
            Ok(ClientCommand::Sign {
                pos: BlockPos::new(8, 20, 8),
                face: 1,
                text: "text, with comma".into()
            })
        );
        assert_eq!(
            parse("S,8,20,8,1,"),
            Ok(ClientCommand::Sign {
                pos: BlockPos::new(8, 20, 8),
                face: 1,
                text: String::new()
            })
        );
        assert_eq!(
            parse("S,8,20,8,1"),
            Ok(ClientCommand::Sign {
                pos: BlockPos::new(8, 20, 8),
                face: 1,
                text: String::new()
            })
        );
        assert_eq!(
            parse("P,1.50,20.25,3.75,0.50,-0.25"),
            Ok(ClientCommand::Position(Position {
                x: 1.5,
                y: 20.25,
                z: 3.75,
                rx: 0.5,
                ry: -0.25
            }))
        );
        assert_eq!(
            parse("T,hello, with, commas"),
            Ok(ClientCommand::Talk("hello, with, commas".into()))
        );
        assert_eq!(parse("T"), Ok(ClientCommand::Talk(String::new())));
        assert_eq!(parse("T,"), Ok(ClientCommand::Talk(String::new())));
    }

    #[test]
    fn refuses_bad_lines_with_a_reason() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("\r"), Err(ParseError::Empty));
        assert!(matches!(parse("X,1"), Err(ParseError::UnknownCommand(c)) if c == "X"));
        assert!(matches!(
            parse("BB,1,2,3,4"),
            Err(ParseError::UnknownCommand(_))
        ));
        assert!(matches!(
            parse("B,1,2,3"),
            Err(ParseError::FieldCount {
                command: 'B',
                got: 3,
                ..
            })
        ));
        assert!(matches!(
            parse("B,1,2,3,4,5"),
            Err(ParseError::FieldCount { got: 5, .. })
        ));
        assert!(matches!(
            parse("B"),
            Err(ParseError::FieldCount { got: 0, .. })
        ));
        assert!(matches!(
            parse("B,1,x,3,4"),
            Err(ParseError::BadInteger { field: "Y", .. })
        ));
        assert!(matches!(
            parse("B,99999999999,1,3,4"),
            Err(ParseError::BadInteger { field: "X", .. })
        ));
        assert!(matches!(
            parse("P,nan,1,1,1,1"),
            Err(ParseError::BadNumber { .. })
        ));
        assert!(matches!(
            parse("P,inf,1,1,1,1"),
            Err(ParseError::BadNumber { .. })
        ));
        assert!(matches!(
            parse("P,1,1,1,1"),
            Err(ParseError::FieldCount { .. })
        ));
        assert!(matches!(
            parse("S,1,2,3"),
            Err(ParseError::FieldCount { .. })
        ));
        assert!(matches!(
            parse("S"),
            Err(ParseError::FieldCount { got: 0, .. })
        ));
        assert!(matches!(parse("C,1"), Err(ParseError::FieldCount { .. })));
        assert!(matches!(parse("V"), Err(ParseError::FieldCount { .. })));
        assert!(matches!(
            parse("A,onlyname"),
            Err(ParseError::FieldCount { .. })
        ));
        assert_eq!(parse_line(b"T,\xff\xfe"), Err(ParseError::NotUtf8));
        let long = format!("T,{}", "x".repeat(MAX_LINE_BYTES));
        assert_eq!(parse(&long), Err(ParseError::TooLong(MAX_LINE_BYTES + 2)));
        let fits = format!("T,{}", "x".repeat(MAX_LINE_BYTES - 2));
        assert!(parse(&fits).is_ok());
    }

    #[test]
    fn accepts_blanks_around_numbers() {
        assert_eq!(
            parse("B, 1 ,2,3,+4"),
            Ok(ClientCommand::Block {
                pos: BlockPos::new(1, 2, 3),
                w: 4
            })
        );
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // A cheap deterministic fuzz: every prefix and mutation of real lines.
        let seeds = [
            "B,1,2,3,4",
            "S,1,2,3,4,a,b",
            "P,1.0,2,3,4,5",
            "C,1,2,3",
            "A,u,t",
            "V,1",
            "T,/pq 1 2",
        ];
        let alphabet = b",-.0123456789eEnaif\r\n\xc3\xa9TSPBCLAV ";
        for seed in seeds {
            let bytes = seed.as_bytes();
            for cut in 0..=bytes.len() {
                for &extra in alphabet {
                    let mut line = bytes[..cut].to_vec();
                    line.push(extra);
                    line.extend_from_slice(&bytes[cut..]);
                    let _ = parse_line(&line);
                }
            }
        }
    }

    #[test]
    fn display_round_trips() {
        for line in [
            "V,1",
            "A,u,t",
            "C,1,2,3",
            "B,1,2,3,4",
            "L,1,2,3,4",
            "S,1,2,3,4,a, b",
            "T,hi, there",
        ] {
            assert_eq!(parse(line).map(|c| c.to_string()), Ok(line.to_owned()));
        }
    }

    #[test]
    fn debug_hides_the_login_token() {
        let login = parse("A,alice,s3cret-token").expect("parses");
        let shown = format!("{login:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(shown, r#"Login { username: "alice", token: "***" }"#);
        assert_eq!(
            format!("{:?}", parse("A,,").expect("parses")),
            r#"Login { username: "", token: "" }"#
        );
        assert_eq!(
            format!("{:?}", parse("T,hi").expect("parses")),
            r#"Talk("hi")"#
        );
        // The line itself still carries it (bots send it).
        assert_eq!(login.to_string(), "A,alice,s3cret-token");
    }
}
