//! What every backend needs besides its connection settings: who this
//! server is on the bus, which world's topics it uses, how many deliveries
//! may wait for the game loop.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::BusError;

/// One server process on the bus, random per start (a restarted server is
/// a new member: its peers time the old one out or got its `Bye`).
///
/// Shown and serialised as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ServerId(u64);

impl ServerId {
    /// A fresh random id (never 0).
    pub fn random() -> Self {
        Self(rand::random::<u64>().max(1))
    }

    /// A given id (tests, or a value read back from [`ServerId::get`]).
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerId({self})")
    }
}

impl FromStr for ServerId {
    type Err = BusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 {
            return Err(BusError::Invalid(format!(
                "server id {s:?} is not 16 hex digits"
            )));
        }
        u64::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| BusError::Invalid(format!("server id {s:?} is not 16 hex digits")))
    }
}

impl From<ServerId> for String {
    fn from(id: ServerId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for ServerId {
    type Error = BusError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The prefix of every topic name, so that two worlds sharing one NATS
/// server or one database never see each other's traffic.
///
/// `[a-z][a-z0-9_]*`, at most [`Namespace::MAX_LEN`] bytes: valid as a NATS
/// subject token and inside a PostgreSQL identifier, with room left for
/// the longest topic suffix under PostgreSQL's 63-byte channel names.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

impl Namespace {
    /// Longest namespace.
    pub const MAX_LEN: usize = 32;

    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, BusError> {
        let valid_start = name.starts_with(|c: char| c.is_ascii_lowercase());
        let valid_rest = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_start || !valid_rest || name.len() > Self::MAX_LEN {
            return Err(BusError::Config(format!(
                "bus namespace {name:?}: expected a lowercase letter, then letters, digits or _, at most {} bytes",
                Self::MAX_LEN
            )));
        }
        Ok(Self(name.to_owned()))
    }

    /// A valid namespace made from any text (a schema or table name):
    /// lowercased, other characters replaced by `_`, prefixed with `w` when
    /// it does not start with a letter, and shortened with a hash of the
    /// whole text when too long, so that distinct inputs stay distinct.
    pub fn derive(text: &str) -> Self {
        let mut name: String = text
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9' | '_') => c,
                _ => '_',
            })
            .collect();
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            name.insert(0, 'w');
        }
        if name.len() > Self::MAX_LEN || name != text {
            // FNV-1a: stable across releases and platforms (unlike std's
            // hasher), which servers of one fleet need.
            let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            let suffix = format!("_{:08x}", hash as u32);
            name.truncate(Self::MAX_LEN - suffix.len());
            name.push_str(&suffix);
        }
        Self(name)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Namespace {
    /// `craft`.
    fn default() -> Self {
        Self("craft".to_owned())
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Namespace({:?})", self.0)
    }
}

/// Deliveries that may wait for the game loop by default; beyond, new ones
/// are dropped and counted (see [`BusEvent::Lagged`](crate::BusEvent::Lagged)).
pub const DEFAULT_QUEUE: usize = 4096;

/// What opening any bus needs besides the backend's own settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusOptions {
    /// This server.
    pub server: ServerId,
    /// The world's namespace.
    pub namespace: Namespace,
    /// Room of the delivery queue, at least 1.
    pub queue: usize,
}

impl BusOptions {
    /// Options for `server` with the default namespace and queue.
    pub fn new(server: ServerId) -> Self {
        Self {
            server,
            namespace: Namespace::default(),
            queue: DEFAULT_QUEUE,
        }
    }

    /// Sets the namespace.
    pub fn namespace(mut self, namespace: Namespace) -> Self {
        self.namespace = namespace;
        self
    }

    /// Sets the queue's room (at least 1).
    pub fn queue(mut self, queue: usize) -> Self {
        self.queue = queue.max(1);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_round_trip_as_hex() {
        let id = ServerId::new(0x00ab_cdef_0123_4567);
        assert_eq!(id.to_string(), "00abcdef01234567");
        assert_eq!("00abcdef01234567".parse::<ServerId>().expect("valid"), id);
        assert!("abc".parse::<ServerId>().is_err());
        assert!("zzzzzzzzzzzzzzzz".parse::<ServerId>().is_err());
        let json = serde_json::to_string(&id).expect("serialise");
        assert_eq!(json, "\"00abcdef01234567\"");
        assert_eq!(
            serde_json::from_str::<ServerId>(&json).expect("deserialise"),
            id
        );
        assert_ne!(ServerId::random().get(), 0);
    }

    #[test]
    fn namespaces_are_validated() {
        for good in ["craft", "w1", "a_b_9", &"x".repeat(32)] {
            assert!(Namespace::new(good).is_ok(), "{good}");
        }
        for bad in ["", "1a", "_a", "Craft", "a-b", "a.b", &"x".repeat(33)] {
            assert!(Namespace::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn derived_namespaces_are_valid_and_distinct() {
        assert_eq!(Namespace::derive("public").as_str(), "public");
        let inputs = [
            "Public",
            "public",
            "craft-world",
            "craft_world",
            "9lives",
            "",
            "a very long schema name that goes on and on and on",
            "a very long schema name that goes on and on and on!",
        ];
        let derived: Vec<Namespace> = inputs.iter().map(|t| Namespace::derive(t)).collect();
        for (text, ns) in inputs.iter().zip(&derived) {
            assert!(Namespace::new(ns.as_str()).is_ok(), "{text:?} -> {ns:?}");
        }
        let distinct: std::collections::BTreeSet<_> = derived.iter().collect();
        assert_eq!(distinct.len(), inputs.len(), "{derived:?}");
    }
}
