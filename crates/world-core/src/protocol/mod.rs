//! The Craft line protocol, version 1.
//!
//! Lines are comma-separated fields ending in `\n` (`\r\n` accepted); the
//! first field is a one-letter command. [`parse_line`] turns a client line
//! into a [`ClientCommand`] or a [`ParseError`] (never a panic);
//! [`ServerMessage::encode`] writes a server line.

mod client;
mod server;

pub use client::{ClientCommand, MAX_LINE_BYTES, ParseError, Position, parse_line};
pub use server::ServerMessage;

/// The only protocol version there is.
pub const PROTOCOL_VERSION: i32 = 1;

/// The default TCP port of a Craft server.
pub const DEFAULT_PORT: u16 = 4080;
