//! What servers tell each other, and its codec.
//!
//! Every payload is one JSON [`Envelope`]: the format version, the sender,
//! its sequence number, and a [`Body`]. JSON because it is debuggable
//! (`nats sub 'craft.>'`, `LISTEN` in `psql`) and PostgreSQL's
//! notifications carry text; lists are written as arrays of arrays to keep
//! it small. Measured (test `typical_batch_sizes`): 100 block edits take
//! 2.9 KB, 200 positions 7.4 KB (one PostgreSQL notification still). A
//! binary codec (varints, `f32`) would take about 1.0 KB and 4.4 KB: under
//! 3x on edits and 1.7x on positions, the bulk of the traffic. Not worth
//! losing readability while a region's batch fits one message; `v` leaves
//! room to switch if phase 2's measurements say otherwise.
//!
//! # Splitting
//!
//! A body larger than the backend's [`Bus::max_payload`](crate::Bus::max_payload)
//! is split by [`Encoder::encode`] into pieces that fit, when it is a list
//! (edits, commits, positions, roster); each piece is a valid envelope on
//! its own with consecutive `seq` and `part = [index, count]`. Receivers
//! may apply pieces of edits, commits and positions as they come (each
//! item stands alone), and must reassemble a roster ([`Assembler`]), which
//! is only meaningful whole.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use world_core::protocol::{Position, ServerMessage};
use world_core::store::ChunkHead;
use world_core::{BlockPos, ChunkPos};

use crate::config::ServerId;
use crate::error::{BusError, BusResult};
use crate::topic::{RegionPos, Topic};

/// The envelope version this crate writes and reads.
pub const VERSION: u16 = 1;

/// A player's id on its own server (the id its clients know). Receivers
/// map `(server, id)` to ids of their own.
pub type PlayerId = u32;

/// One message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version ([`VERSION`]).
    pub v: u16,
    /// The sending server.
    pub from: ServerId,
    /// The sender's sequence number: grows by one per payload, across all
    /// topics.
    pub seq: u64,
    /// Which piece of a split body this is; absent when whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Part>,
    /// What it says.
    pub body: Body,
}

/// A piece of a split body: `index` of `count` (written `[index, count]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(u32, u32)", into = "(u32, u32)")]
pub struct Part {
    /// 0-based.
    pub index: u32,
    /// How many pieces the body was split into.
    pub count: u32,
}

impl From<(u32, u32)> for Part {
    fn from((index, count): (u32, u32)) -> Self {
        Self { index, count }
    }
}

impl From<Part> for (u32, u32) {
    fn from(part: Part) -> Self {
        (part.index, part.count)
    }
}

/// What a message says. The comment of each variant names the topic it is
/// published on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Body {
    /// Fleet: the sender joined (or re-joined after an outage); every peer
    /// answers with a [`Body::Roster`].
    Hello,
    /// Fleet, every second: the sender is alive; peers that miss it for
    /// the heartbeat timeout drop its players.
    Heartbeat {
        /// Players connected to the sender.
        players: u32,
        /// The sender's clock, milliseconds since the Unix epoch (for the
        /// bus lag metric; servers' clocks are NTP-synchronised).
        at_ms: u64,
    },
    /// Fleet: the sender leaves (graceful shutdown); drop its players now.
    Bye,
    /// Fleet: every player of the sender (answer to `Hello`, and periodic
    /// repair). Replaces what the receiver knew of the sender's players;
    /// reassemble split rosters with [`Assembler`].
    Roster {
        /// The players.
        players: Vec<PlayerInfo>,
    },
    /// Fleet: a player joined the sender. Carries the position because the
    /// Craft client creates a player on `P` and ignores `N` for an unknown
    /// id: receivers send `P` then `N`.
    Join(PlayerInfo),
    /// Fleet: a player left the sender.
    Leave {
        /// The player's id on the sender.
        id: PlayerId,
        /// Its nick.
        nick: String,
    },
    /// Fleet: a player of the sender has a new nick (login, `/nick`).
    Nick {
        /// The player's id on the sender.
        id: PlayerId,
        /// The new nick.
        nick: String,
    },
    /// Fleet: a chat line for everyone, already formatted (`nick> text`,
    /// join and leave notices).
    Chat {
        /// The line as clients show it.
        line: String,
    },
    /// Server topic of the server holding `to_nick`: a private message.
    Private {
        /// The recipient's nick.
        to_nick: String,
        /// The line as the recipient sees it (`AUTHOR> @NICK text`).
        line: String,
    },
    /// Region: edits the sender accepted, not yet committed (mirrors in
    /// neighbour chunks included, as the protocol's `B` lines with `-w`).
    Edits {
        /// The edits, in the order accepted.
        edits: Vec<Edit>,
    },
    /// Region: the sender's flush stored these chunks up to `head`; a
    /// receiver holding one re-syncs it from the store (whose keys and
    /// order are the truth).
    Committed {
        /// Chunks and their new heads.
        #[serde(with = "heads")]
        chunks: Vec<ChunkHead>,
    },
    /// Region: where the sender's players are (coalesced per tick).
    Positions {
        /// Latest position of each player that moved.
        players: Vec<PlayerPos>,
    },
}

impl Body {
    /// The variant's name (`hello`, `edits`, ...), for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Hello => "hello",
            Body::Heartbeat { .. } => "heartbeat",
            Body::Bye => "bye",
            Body::Roster { .. } => "roster",
            Body::Join(_) => "join",
            Body::Leave { .. } => "leave",
            Body::Nick { .. } => "nick",
            Body::Chat { .. } => "chat",
            Body::Private { .. } => "private",
            Body::Edits { .. } => "edits",
            Body::Committed { .. } => "committed",
            Body::Positions { .. } => "positions",
        }
    }
}

/// A player: id on its server, nick, position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlayerInfo {
    /// Id on the sender.
    pub id: PlayerId,
    /// Nick.
    pub nick: String,
    /// Position.
    #[serde(with = "position")]
    pub pos: Position,
}

/// A player's position (written `[id, x, y, z, rx, ry]`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "(PlayerId, f32, f32, f32, f32, f32)")]
#[serde(into = "(PlayerId, f32, f32, f32, f32, f32)")]
pub struct PlayerPos {
    /// Id on the sender.
    pub id: PlayerId,
    /// Position.
    pub pos: Position,
}

impl From<(PlayerId, f32, f32, f32, f32, f32)> for PlayerPos {
    fn from((id, x, y, z, rx, ry): (PlayerId, f32, f32, f32, f32, f32)) -> Self {
        Self {
            id,
            pos: Position { x, y, z, rx, ry },
        }
    }
}

impl From<PlayerPos> for (PlayerId, f32, f32, f32, f32, f32) {
    fn from(p: PlayerPos) -> Self {
        (p.id, p.pos.x, p.pos.y, p.pos.z, p.pos.rx, p.pos.ry)
    }
}

/// An accepted change, as the protocol's server lines carry it (written
/// `{"B":[p,q,x,y,z,w]}`, `{"L":[...]}`, `{"S":[p,q,x,y,z,face,"text"]}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "EditWire", into = "EditWire")]
pub enum Edit {
    /// `B`: block `w` at `pos`, under `chunk` (negative `w`: the mirror of
    /// a neighbour's edge block).
    Block {
        /// The chunk the change belongs to.
        chunk: ChunkPos,
        /// The block.
        pos: BlockPos,
        /// The value.
        w: i32,
    },
    /// `L`: light level `w` on the block at `pos`.
    Light {
        /// The chunk the change belongs to.
        chunk: ChunkPos,
        /// The block.
        pos: BlockPos,
        /// Light level.
        w: i32,
    },
    /// `S`: `text` on `face` of the block at `pos` (empty: removed).
    Sign {
        /// The chunk the change belongs to.
        chunk: ChunkPos,
        /// The block.
        pos: BlockPos,
        /// Face, `0..=7`.
        face: i32,
        /// Text; empty removes the sign.
        text: String,
    },
}

impl Edit {
    /// The protocol line a receiving server sends its players for this
    /// change (then `R,P,Q` for blocks and lights, as the original does).
    pub fn message(&self) -> ServerMessage<'_> {
        match self {
            Edit::Block { chunk, pos, w } => ServerMessage::Block {
                chunk: *chunk,
                pos: *pos,
                w: *w,
            },
            Edit::Light { chunk, pos, w } => ServerMessage::Light {
                chunk: *chunk,
                pos: *pos,
                w: *w,
            },
            Edit::Sign {
                chunk,
                pos,
                face,
                text,
            } => ServerMessage::Sign {
                chunk: *chunk,
                pos: *pos,
                face: *face,
                text,
            },
        }
    }

    /// The change a protocol line makes, for the lines that are edits
    /// (`B`, `L`, `S`; `None` for the rest): the inverse of
    /// [`message`](Self::message).
    pub fn from_message(msg: &ServerMessage<'_>) -> Option<Self> {
        match *msg {
            ServerMessage::Block { chunk, pos, w } => Some(Edit::Block { chunk, pos, w }),
            ServerMessage::Light { chunk, pos, w } => Some(Edit::Light { chunk, pos, w }),
            ServerMessage::Sign {
                chunk,
                pos,
                face,
                text,
            } => Some(Edit::Sign {
                chunk,
                pos,
                face,
                text: text.to_owned(),
            }),
            _ => None,
        }
    }

    /// The chunk the change belongs to (its region is where it is
    /// published).
    pub fn chunk(&self) -> ChunkPos {
        match self {
            Edit::Block { chunk, .. } | Edit::Light { chunk, .. } | Edit::Sign { chunk, .. } => {
                *chunk
            }
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
enum EditWire {
    B(i32, i32, i32, i32, i32, i32),
    L(i32, i32, i32, i32, i32, i32),
    S(i32, i32, i32, i32, i32, i32, String),
}

impl From<EditWire> for Edit {
    fn from(wire: EditWire) -> Self {
        match wire {
            EditWire::B(p, q, x, y, z, w) => Edit::Block {
                chunk: ChunkPos::new(p, q),
                pos: BlockPos::new(x, y, z),
                w,
            },
            EditWire::L(p, q, x, y, z, w) => Edit::Light {
                chunk: ChunkPos::new(p, q),
                pos: BlockPos::new(x, y, z),
                w,
            },
            EditWire::S(p, q, x, y, z, face, text) => Edit::Sign {
                chunk: ChunkPos::new(p, q),
                pos: BlockPos::new(x, y, z),
                face,
                text,
            },
        }
    }
}

impl From<Edit> for EditWire {
    fn from(edit: Edit) -> Self {
        match edit {
            Edit::Block { chunk, pos, w } => EditWire::B(chunk.p, chunk.q, pos.x, pos.y, pos.z, w),
            Edit::Light { chunk, pos, w } => EditWire::L(chunk.p, chunk.q, pos.x, pos.y, pos.z, w),
            Edit::Sign {
                chunk,
                pos,
                face,
                text,
            } => EditWire::S(chunk.p, chunk.q, pos.x, pos.y, pos.z, face, text),
        }
    }
}

/// `Position` as `[x, y, z, rx, ry]`.
mod position {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use world_core::protocol::Position;

    pub fn serialize<S: Serializer>(p: &Position, s: S) -> Result<S::Ok, S::Error> {
        (p.x, p.y, p.z, p.rx, p.ry).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Position, D::Error> {
        let (x, y, z, rx, ry) = <(f32, f32, f32, f32, f32)>::deserialize(d)?;
        Ok(Position { x, y, z, rx, ry })
    }
}

/// `ChunkHead`s as `[[p, q, head], ...]`.
mod heads {
    use serde::{Deserialize, Deserializer, Serializer};
    use world_core::ChunkPos;
    use world_core::store::{ChunkHead, Key};

    pub fn serialize<S: Serializer>(heads: &[ChunkHead], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(heads.iter().map(|h| (h.chunk.p, h.chunk.q, h.head)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ChunkHead>, D::Error> {
        let wire = Vec::<(i32, i32, Key)>::deserialize(d)?;
        Ok(wire
            .into_iter()
            .map(|(p, q, head)| ChunkHead {
                chunk: ChunkPos::new(p, q),
                head,
            })
            .collect())
    }
}

/// Groups items by the region of their chunk, keeping their order within
/// each region: edits and positions are published per region.
pub fn by_region<T>(
    items: impl IntoIterator<Item = T>,
    chunk: impl Fn(&T) -> ChunkPos,
) -> BTreeMap<RegionPos, Vec<T>> {
    let mut regions: BTreeMap<RegionPos, Vec<T>> = BTreeMap::new();
    for item in items {
        regions
            .entry(RegionPos::of(chunk(&item)))
            .or_default()
            .push(item);
    }
    regions
}

/// Writes one server's envelopes, numbering them.
#[derive(Debug)]
pub struct Encoder {
    from: ServerId,
    next_seq: u64,
}

impl Encoder {
    /// An encoder for `from`, starting at sequence number 1.
    pub fn new(from: ServerId) -> Self {
        Self { from, next_seq: 1 }
    }

    /// The sender.
    pub fn server(&self) -> ServerId {
        self.from
    }

    /// Encodes `body` into payloads of at most `max_payload` bytes: one
    /// when it fits, else pieces of its list (see the module docs).
    /// `TooLarge` when a body that is not a list, or one item of a list,
    /// does not fit alone; then no sequence number is used.
    pub fn encode(&mut self, body: &Body, max_payload: usize) -> BusResult<Vec<Bytes>> {
        let whole = self.envelope(self.next_seq, None, body.clone());
        let bytes = to_json(&whole)?;
        if bytes.len() <= max_payload {
            self.next_seq += 1;
            return Ok(vec![Bytes::from(bytes)]);
        }
        let bodies = match body {
            Body::Edits { edits } => {
                self.split(edits, max_payload, json_len, |edits| Body::Edits { edits })
            }
            Body::Positions { players } => self.split(players, max_payload, json_len, |players| {
                Body::Positions { players }
            }),
            Body::Roster { players } => self.split(players, max_payload, json_len, |players| {
                Body::Roster { players }
            }),
            Body::Committed { chunks } => self.split(
                chunks,
                max_payload,
                |h| json_len(&(h.chunk.p, h.chunk.q, h.head)),
                |chunks| Body::Committed { chunks },
            ),
            _ => Err(BusError::TooLarge {
                size: bytes.len(),
                max: max_payload,
            }),
        }?;
        let count = u32::try_from(bodies.len())
            .map_err(|_| BusError::Invalid(format!("{} pieces are too many", bodies.len())))?;
        let first = self.next_seq;
        let mut payloads = Vec::with_capacity(bodies.len());
        for (index, body) in (0..count).zip(bodies) {
            let part = Part { index, count };
            let envelope = self.envelope(first + u64::from(index), Some(part), body);
            payloads.push(Bytes::from(to_json(&envelope)?));
        }
        self.next_seq += u64::from(count);
        Ok(payloads)
    }

    /// Encodes several `(topic, body)` into the `(topic, payload)` list one
    /// [`Bus::publish`](crate::Bus::publish) call takes.
    pub fn encode_all<'a>(
        &mut self,
        messages: impl IntoIterator<Item = (Topic, &'a Body)>,
        max_payload: usize,
    ) -> BusResult<Vec<(Topic, Bytes)>> {
        let mut out = Vec::new();
        for (topic, body) in messages {
            for payload in self.encode(body, max_payload)? {
                out.push((topic, payload));
            }
        }
        Ok(out)
    }

    fn envelope(&self, seq: u64, part: Option<Part>, body: Body) -> Envelope {
        Envelope {
            v: VERSION,
            from: self.from,
            seq,
            part,
            body,
        }
    }

    /// Packs `items` greedily into bodies whose envelopes fit
    /// `max_payload`, bounding the envelope's own size by its largest
    /// possible header (sequence number and part at their maxima).
    fn split<T: Clone>(
        &self,
        items: &[T],
        max_payload: usize,
        item_len: impl Fn(&T) -> BusResult<usize>,
        make: impl Fn(Vec<T>) -> Body,
    ) -> BusResult<Vec<Body>> {
        let worst = Part {
            index: u32::MAX,
            count: u32::MAX,
        };
        let empty = to_json(&self.envelope(u64::MAX, Some(worst), make(Vec::new())))?.len();
        let mut bodies = Vec::new();
        let mut piece: Vec<T> = Vec::new();
        let mut size = empty;
        for item in items {
            let item_size = item_len(item)?;
            if empty + item_size > max_payload {
                return Err(BusError::TooLarge {
                    size: empty + item_size,
                    max: max_payload,
                });
            }
            let separator = usize::from(!piece.is_empty());
            if size + separator + item_size > max_payload {
                bodies.push(make(std::mem::take(&mut piece)));
                size = empty;
            }
            size += usize::from(!piece.is_empty()) + item_size;
            piece.push(item.clone());
        }
        if !piece.is_empty() {
            bodies.push(make(piece));
        }
        Ok(bodies)
    }
}

fn json_len<T: Serialize>(value: &T) -> BusResult<usize> {
    to_json(value).map(|json| json.len())
}

fn to_json<T: Serialize>(value: &T) -> BusResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| BusError::Invalid(format!("encoding: {e}")))
}

/// Decodes one payload. `Invalid` for anything but an envelope of a
/// version this crate reads.
pub fn decode(payload: &[u8]) -> BusResult<Envelope> {
    match serde_json::from_slice::<Envelope>(payload) {
        Ok(envelope) if envelope.v == VERSION => Ok(envelope),
        Ok(envelope) => Err(BusError::Invalid(format!(
            "envelope version {} (this server reads {VERSION})",
            envelope.v
        ))),
        Err(e) => {
            #[derive(Deserialize)]
            struct Version {
                v: u16,
            }
            match serde_json::from_slice::<Version>(payload) {
                Ok(Version { v }) if v != VERSION => Err(BusError::Invalid(format!(
                    "envelope version {v} (this server reads {VERSION})"
                ))),
                _ => Err(BusError::Invalid(format!("undecodable envelope: {e}"))),
            }
        }
    }
}

/// Pieces of split bodies waiting for the rest, per sender.
#[derive(Debug)]
pub struct Assembler {
    pending: BTreeMap<(ServerId, u64), Pending>,
    order: VecDeque<(ServerId, u64)>,
    limit: usize,
}

#[derive(Debug)]
struct Pending {
    pieces: Vec<Option<Body>>,
    missing: u32,
}

impl Default for Assembler {
    fn default() -> Self {
        Self::new(64)
    }
}

impl Assembler {
    /// An assembler keeping at most `limit` incomplete bodies (the oldest
    /// is forgotten beyond: a piece was lost, and the store or the next
    /// roster repairs it).
    pub fn new(limit: usize) -> Self {
        Self {
            pending: BTreeMap::new(),
            order: VecDeque::new(),
            limit: limit.max(1),
        }
    }

    /// Takes an envelope: returns it when whole, the reassembled body (with
    /// the first piece's `seq`, no `part`) when this was its last missing
    /// piece, else `None`. `Invalid` for inconsistent pieces (the body is
    /// forgotten).
    pub fn push(&mut self, envelope: Envelope) -> BusResult<Option<Envelope>> {
        let Some(part) = envelope.part else {
            return Ok(Some(envelope));
        };
        if part.count == 0 || part.index >= part.count {
            return Err(BusError::Invalid(format!(
                "piece {} of {}",
                part.index, part.count
            )));
        }
        let first = envelope
            .seq
            .checked_sub(u64::from(part.index))
            .ok_or_else(|| {
                BusError::Invalid(format!("piece {} at seq {}", part.index, envelope.seq))
            })?;
        let key = (envelope.from, first);
        if !self.pending.contains_key(&key) {
            if self.pending.len() >= self.limit
                && let Some(oldest) = self.order.pop_front()
            {
                self.pending.remove(&oldest);
            }
            self.order.push_back(key);
            self.pending.insert(
                key,
                Pending {
                    pieces: vec![None; part.count as usize],
                    missing: part.count,
                },
            );
        }
        let Some(pending) = self.pending.get_mut(&key) else {
            return Ok(None);
        };
        let matches = pending.pieces.len() == part.count as usize;
        let slot = match pending.pieces.get_mut(part.index as usize) {
            Some(slot) if matches => slot,
            _ => {
                self.forget_key(key);
                return Err(BusError::Invalid(format!(
                    "piece {} of {} does not match its body",
                    part.index, part.count
                )));
            }
        };
        if slot.is_none() {
            pending.missing -= 1;
        }
        *slot = Some(envelope.body);
        if pending.missing > 0 {
            return Ok(None);
        }
        let Some(pending) = self.forget_key(key) else {
            return Ok(None);
        };
        let body = merge(pending.pieces.into_iter().flatten())?;
        Ok(Some(Envelope {
            v: envelope.v,
            from: envelope.from,
            seq: first,
            part: None,
            body,
        }))
    }

    /// Forgets the pieces of `server` (it left the bus).
    pub fn forget(&mut self, server: ServerId) {
        self.pending.retain(|(from, _), _| *from != server);
        self.order.retain(|(from, _)| *from != server);
    }

    fn forget_key(&mut self, key: (ServerId, u64)) -> Option<Pending> {
        self.order.retain(|k| *k != key);
        self.pending.remove(&key)
    }
}

/// Concatenates the lists of the pieces of one body.
fn merge(pieces: impl Iterator<Item = Body>) -> BusResult<Body> {
    let mut merged: Option<Body> = None;
    for piece in pieces {
        merged = Some(match (merged, piece) {
            (None, piece) => piece,
            (Some(Body::Edits { mut edits }), Body::Edits { edits: more }) => {
                edits.extend(more);
                Body::Edits { edits }
            }
            (Some(Body::Positions { mut players }), Body::Positions { players: more }) => {
                players.extend(more);
                Body::Positions { players }
            }
            (Some(Body::Roster { mut players }), Body::Roster { players: more }) => {
                players.extend(more);
                Body::Roster { players }
            }
            (Some(Body::Committed { mut chunks }), Body::Committed { chunks: more }) => {
                chunks.extend(more);
                Body::Committed { chunks }
            }
            (Some(a), b) => {
                return Err(BusError::Invalid(format!(
                    "pieces of one body disagree: {} and {}",
                    a.kind(),
                    b.kind()
                )));
            }
        });
    }
    merged.ok_or_else(|| BusError::Invalid("a body without pieces".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(i: u32) -> Position {
        Position {
            x: 412.37 + i as f32,
            y: 40.5,
            z: -220.13 - i as f32,
            rx: 1.57,
            ry: -0.33,
        }
    }

    fn edits(n: i32) -> Vec<Edit> {
        (0..n)
            .map(|i| Edit::Block {
                chunk: ChunkPos::new(12, -7),
                pos: BlockPos::new(390 + i % 32, 40 + i / 32, -220 + i % 7),
                w: 1 + i % 60,
            })
            .collect()
    }

    /// A mirrored block, a light and a sign with a comma.
    fn one_of_each() -> Vec<Edit> {
        vec![
            Edit::Block {
                chunk: ChunkPos::new(-1, 0),
                pos: BlockPos::new(-1, 10, 5),
                w: -3,
            },
            Edit::Light {
                chunk: ChunkPos::new(0, 0),
                pos: BlockPos::new(1, 2, 3),
                w: 15,
            },
            Edit::Sign {
                chunk: ChunkPos::new(0, 0),
                pos: BlockPos::new(1, 2, 3),
                face: 4,
                text: "a, b".into(),
            },
        ]
    }

    fn positions(n: u32) -> Vec<PlayerPos> {
        (1..=n).map(|id| PlayerPos { id, pos: pos(id) }).collect()
    }

    fn round_trip(body: Body) {
        let mut encoder = Encoder::new(ServerId::new(7));
        let payloads = encoder.encode(&body, usize::MAX).expect("encode");
        assert_eq!(payloads.len(), 1);
        let envelope = decode(&payloads[0]).expect("decode");
        assert_eq!(envelope.body, body);
        assert_eq!(envelope.from, ServerId::new(7));
        assert_eq!(envelope.seq, 1);
        assert_eq!(envelope.part, None);
    }

    #[test]
    fn edits_round_trip_through_protocol_lines() {
        let chunk = ChunkPos::new(-1, 2);
        let at = BlockPos::new(-5, 12, 40);
        for edit in [
            Edit::Block {
                chunk,
                pos: at,
                w: -3,
            },
            Edit::Light {
                chunk,
                pos: at,
                w: 15,
            },
            Edit::Sign {
                chunk,
                pos: at,
                face: 4,
                text: "a, \"b\" é".into(),
            },
        ] {
            assert_eq!(Edit::from_message(&edit.message()), Some(edit.clone()));
        }
        assert_eq!(Edit::from_message(&ServerMessage::Redraw { chunk }), None);
    }

    #[test]
    fn every_body_round_trips() {
        let player = PlayerInfo {
            id: 3,
            nick: "ann, the builder".into(),
            pos: pos(0),
        };
        for body in [
            Body::Hello,
            Body::Heartbeat {
                players: 12,
                at_ms: 1_764_000_000_123,
            },
            Body::Bye,
            Body::Roster {
                players: vec![player.clone()],
            },
            Body::Join(player),
            Body::Leave {
                id: 3,
                nick: "ann".into(),
            },
            Body::Nick {
                id: 3,
                nick: "bob".into(),
            },
            Body::Chat {
                line: "ann> hi, \"all\" \u{e9}".into(),
            },
            Body::Private {
                to_nick: "bob".into(),
                line: "ann> @bob psst".into(),
            },
            Body::Edits {
                edits: one_of_each(),
            },
            Body::Committed {
                chunks: vec![ChunkHead {
                    chunk: ChunkPos::new(-5, 9),
                    head: world_core::store::MAX_KEY,
                }],
            },
            Body::Positions {
                players: positions(2),
            },
        ] {
            round_trip(body);
        }
    }

    #[test]
    fn the_wire_format_is_compact_and_readable() {
        let mut encoder = Encoder::new(ServerId::new(1));
        let payload = encoder
            .encode(
                &Body::Edits {
                    edits: vec![Edit::Block {
                        chunk: ChunkPos::new(0, -1),
                        pos: BlockPos::new(5, 6, -7),
                        w: 3,
                    }],
                },
                usize::MAX,
            )
            .expect("encode");
        assert_eq!(
            std::str::from_utf8(&payload[0]).expect("text"),
            r#"{"v":1,"from":"0000000000000001","seq":1,"body":{"t":"edits","edits":[{"B":[0,-1,5,6,-7,3]}]}}"#
        );
    }

    #[test]
    fn typical_batch_sizes() {
        let mut encoder = Encoder::new(ServerId::random());
        let edit_batch = encoder
            .encode(&Body::Edits { edits: edits(100) }, usize::MAX)
            .expect("encode");
        let position_batch = encoder
            .encode(
                &Body::Positions {
                    players: positions(200),
                },
                usize::MAX,
            )
            .expect("encode");
        let (e, p) = (edit_batch[0].len(), position_batch[0].len());
        eprintln!("100 edits: {e} bytes; 200 positions: {p} bytes");
        // The figures quoted in the module docs.
        assert!((2_500..3_200).contains(&e), "{e}");
        assert!((6_500..7_600).contains(&p), "{p}");
    }

    #[test]
    fn sequence_numbers_grow_per_payload() {
        let mut encoder = Encoder::new(ServerId::new(9));
        let all = encoder
            .encode_all(
                [
                    (Topic::Fleet, &Body::Hello),
                    (
                        Topic::Region(RegionPos::new(0, 0)),
                        &Body::Edits { edits: edits(50) },
                    ),
                    (Topic::Fleet, &Body::Bye),
                ],
                600,
            )
            .expect("encode");
        let seqs: Vec<u64> = all
            .iter()
            .map(|(_, p)| decode(p).expect("decode").seq)
            .collect();
        assert!(seqs.len() > 3, "the edits were split");
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        assert_eq!(all.first().map(|(t, _)| *t), Some(Topic::Fleet));
    }

    #[test]
    fn large_bodies_split_to_fit_and_reassemble() {
        for max in [200, 450, 1000, 7999] {
            let mut encoder = Encoder::new(ServerId::new(3));
            for body in [
                Body::Edits { edits: edits(400) },
                Body::Positions {
                    players: positions(300),
                },
                Body::Roster {
                    players: (1..=120)
                        .map(|id| PlayerInfo {
                            id,
                            nick: format!("player{id}"),
                            pos: pos(id),
                        })
                        .collect(),
                },
                Body::Committed {
                    chunks: (0..500)
                        .map(|i| ChunkHead {
                            chunk: ChunkPos::new(i, -i),
                            head: i64::from(i) * 1000,
                        })
                        .collect(),
                },
            ] {
                let payloads = encoder.encode(&body, max).expect("encode");
                assert!(payloads.len() > 1, "{} at {max}", body.kind());
                assert!(payloads.iter().all(|p| p.len() <= max), "{max}");
                // Out of order, with another sender's pieces in between.
                let mut other = Encoder::new(ServerId::new(4));
                let noise = other
                    .encode(&Body::Edits { edits: edits(60) }, max)
                    .expect("encode");
                let mut assembler = Assembler::default();
                let mut whole = Vec::new();
                let envelopes = payloads
                    .iter()
                    .rev()
                    .chain(noise.iter())
                    .map(|p| decode(p).expect("decode"));
                for envelope in envelopes {
                    if let Some(done) = assembler.push(envelope).expect("push") {
                        whole.push(done);
                    }
                }
                assert_eq!(whole.len(), 2, "{} at {max}", body.kind());
                let mine = whole
                    .iter()
                    .find(|e| e.from == ServerId::new(3))
                    .expect("reassembled");
                assert_eq!(mine.body, body, "{} at {max}", body.kind());
            }
        }
    }

    #[test]
    fn what_cannot_fit_is_too_large() {
        let mut encoder = Encoder::new(ServerId::new(1));
        let chat = Body::Chat {
            line: "x".repeat(10_000),
        };
        assert!(matches!(
            encoder.encode(&chat, 7999),
            Err(BusError::TooLarge { max: 7999, .. })
        ));
        let sign = Body::Edits {
            edits: vec![Edit::Sign {
                chunk: ChunkPos::new(0, 0),
                pos: BlockPos::new(0, 1, 0),
                face: 0,
                text: "y".repeat(500),
            }],
        };
        assert!(matches!(
            encoder.encode(&sign, 300),
            Err(BusError::TooLarge { .. })
        ));
        // Nothing was numbered.
        let next = encoder.encode(&Body::Hello, 7999).expect("encode");
        assert_eq!(decode(&next[0]).expect("decode").seq, 1);
    }

    #[test]
    fn bad_payloads_are_invalid() {
        for payload in [
            &b"not json"[..],
            br#"{"v":1,"from":"0000000000000001","seq":1,"body":{"t":"warp"}}"#,
            br#"{"v":1,"from":"xyz","seq":1,"body":{"t":"hello"}}"#,
        ] {
            assert!(matches!(decode(payload), Err(BusError::Invalid(_))));
        }
        let newer = br#"{"v":2,"from":"0000000000000001","seq":1,"body":{"t":"teleport"}}"#;
        match decode(newer) {
            Err(BusError::Invalid(message)) => assert!(message.contains("version 2"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_assembler_forgets_incomplete_bodies() {
        let mut encoder = Encoder::new(ServerId::new(5));
        let mut assembler = Assembler::new(2);
        let mut firsts = Vec::new();
        for _ in 0..3 {
            let pieces = encoder
                .encode(&Body::Edits { edits: edits(40) }, 300)
                .expect("encode");
            firsts.push(pieces);
        }
        // The first piece of three bodies: the oldest is forgotten.
        for pieces in &firsts {
            let envelope = decode(&pieces[0]).expect("decode");
            assert_eq!(assembler.push(envelope).expect("push"), None);
        }
        let mut completed = 0;
        for pieces in &firsts[1..] {
            for piece in &pieces[1..] {
                if assembler
                    .push(decode(piece).expect("decode"))
                    .expect("push")
                    .is_some()
                {
                    completed += 1;
                }
            }
        }
        assert_eq!(completed, 2);
        // The forgotten body restarted from its second piece never
        // completes.
        for piece in &firsts[0][1..] {
            let envelope = decode(piece).expect("decode");
            assert_eq!(assembler.push(envelope).expect("push"), None);
        }
        assembler.forget(ServerId::new(5));
        assert!(assembler.pending.is_empty());
        let bad = Envelope {
            v: VERSION,
            from: ServerId::new(5),
            seq: 1,
            part: Some(Part { index: 3, count: 2 }),
            body: Body::Hello,
        };
        assert!(assembler.push(bad).is_err());
    }

    #[test]
    fn edits_become_protocol_lines() {
        let lines: Vec<String> = one_of_each()
            .iter()
            .map(|e| e.message().to_string())
            .collect();
        assert_eq!(
            lines,
            ["B,-1,0,-1,10,5,-3", "L,0,0,1,2,3,15", "S,0,0,1,2,3,4,a, b"]
        );
    }

    #[test]
    fn grouping_by_region_keeps_order() {
        let grouped = by_region(edits(3), Edit::chunk);
        assert_eq!(grouped.len(), 1);
        assert_eq!(grouped[&RegionPos::new(1, -1)], edits(3));
        let mixed = by_region(
            [
                ChunkPos::new(0, 0),
                ChunkPos::new(-1, 0),
                ChunkPos::new(7, 7),
            ],
            |c| *c,
        );
        assert_eq!(
            mixed.keys().copied().collect::<Vec<_>>(),
            [RegionPos::new(-1, 0), RegionPos::new(0, 0)]
        );
        assert_eq!(mixed[&RegionPos::new(0, 0)].len(), 2);
    }
}
