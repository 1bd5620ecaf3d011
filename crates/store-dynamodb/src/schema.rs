//! The table's items: key formats, attribute names, encoding and decoding.
//! The crate docs describe the design; this module is its single source.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType,
};
use world_core::store::{ChangeMeta, Key, PlayerRecord, StoredBlock, StoredLight, StoredSign};
use world_core::{BlockPos, ChunkPos};

use crate::error::DynamoError;

/// An item as the SDK sees it.
pub type Item = HashMap<String, AttributeValue>;

/// Partition key attribute (`S`): `c#P#Q` for a chunk, `p#NAME` for a player.
pub const PK: &str = "pk";
/// Sort key attribute (`S`): `h` (head), `b#X#Y#Z`, `l#X#Y#Z`, `s#X#Y#Z#F`, `p`.
pub const SK: &str = "sk";
/// The key of a block item (`N`); only block items have it, so the index
/// on it is sparse.
pub const KEY: &str = "k";
/// Block value or light level (`N`).
pub const W: &str = "w";
/// Sign text (`S`).
pub const TEXT: &str = "x";
/// User who made the change (`S`, optional).
pub const USER: &str = "u";
/// Time of the change or of a player's save, ms since the epoch (`N`).
pub const TIME: &str = "t";

/// Head item: the largest key reserved (`N`).
pub const RESERVED: &str = "r";
/// Head item: the committed watermark, the chunk's head (`N`).
pub const COMMITTED: &str = "c";
/// Head item: when the last reservation was made, ms (`N`).
pub const RESERVED_AT: &str = "rt";
/// Head item: when `c` last moved, ms (`N`).
pub const COMMITTED_AT: &str = "ct";
/// Head item: the token of the writer that last moved `c` (`S`).
pub const COMMITTED_BY: &str = "cw";

/// Player position attributes (`N`).
pub const PLAYER_X: &str = "px";
/// Player position y.
pub const PLAYER_Y: &str = "py";
/// Player position z.
pub const PLAYER_Z: &str = "pz";
/// Player rotation around the vertical axis.
pub const PLAYER_RX: &str = "rx";
/// Player rotation up/down.
pub const PLAYER_RY: &str = "ry";

/// The local secondary index on [`KEY`] (projects [`W`]) of tables
/// created by the first layout (one item per block); new tables have none.
pub const KEY_INDEX: &str = "by_key";

/// Head item: the log list (`L` of `B`), packed block changes of small
/// shares appended by one `UpdateItem` each (see `pack.rs`); log items
/// use the same letter as their sort key prefix (`g#HI`).
pub const LOG: &str = "g";
/// Head item: log items written and not yet folded into a snapshot (`N`).
pub const LOG_ITEMS: &str = "gn";
/// Log items and snapshot parts: the packed blocks (`B`).
pub const DATA: &str = "d";
/// Head item: id of the current snapshot (`S`), absent before the first
/// compaction.
pub const SNAP_ID: &str = "sf";
/// Head item: a random token that every change of the log list other than
/// an append (a fold, a compaction) replaces, under the condition that it
/// is still the one read (`S`): two of them never act on one list.
pub const LOG_VERSION: &str = "cv";
/// Head item: the snapshot holds every block with a key up to this (`N`).
pub const SNAP_KEY: &str = "sh";
/// Head item: number of parts of the current snapshot (`N`).
pub const SNAP_PARTS: &str = "sp";
/// Head item: when the last compaction happened, ms (`N`).
pub const COMPACTED_AT: &str = "st";
/// Head item: the chunk's first-layout block items are folded into the
/// snapshot and never read again (`BOOL`).
pub const LEGACY_FOLDED: &str = "lf";

/// Sort key of a chunk's head item. Sorts after blocks (`b#`) and before
/// lights (`l#`) and signs (`s#`), so one query `sk >= "h"` reads the head,
/// every light and every sign of a chunk.
pub const HEAD_SK: &str = "h";
/// Sort key of a player item.
pub const PLAYER_SK: &str = "p";
/// Lower bound of the light and sign sort keys.
pub const DECOR_FROM: &str = "l#";
/// Upper bound of the light and sign sort keys (`$` sorts right after `#`).
pub const DECOR_TO: &str = "s$";
/// Lower bound of the snapshot parts' sort keys: `f#` < `g#` (log items)
/// < `h` (head) < `l#`, `s#`, so one query `sk >= "f#"` reads a whole
/// chunk but the first layout's block items (`b#`).
pub const SNAPSHOT_FROM: &str = "f#";

/// Sort key of a log item holding keys up to `hi` (zero-padded, so that
/// sort keys order log items by key).
pub fn log_sk(hi: Key) -> String {
    format!("g#{:010}", hi.max(0))
}

/// Sort key of part `part` of snapshot `id`.
pub fn snapshot_sk(id: &str, part: usize) -> String {
    format!("f#{id}#{part:05}")
}

/// A log item: packed blocks with keys up to `hi`.
pub fn log_item(pk: &str, hi: Key, data: Vec<u8>) -> Item {
    let mut item = key(pk, &log_sk(hi));
    item.insert(DATA.to_owned(), AttributeValue::B(data.into()));
    item
}

/// A snapshot part.
pub fn snapshot_item(pk: &str, id: &str, part: usize, data: Vec<u8>) -> Item {
    let mut item = key(pk, &snapshot_sk(id, part));
    item.insert(DATA.to_owned(), AttributeValue::B(data.into()));
    item
}

/// A binary value.
pub fn b(data: Vec<u8>) -> AttributeValue {
    AttributeValue::B(data.into())
}

/// Partition key of a chunk.
pub fn chunk_pk(chunk: ChunkPos) -> String {
    format!("c#{}#{}", chunk.p, chunk.q)
}

/// Partition key of a player.
pub fn player_pk(name: &str) -> String {
    format!("p#{name}")
}

/// Sort key of a block item.
pub fn block_sk(pos: BlockPos) -> String {
    format!("b#{}#{}#{}", pos.x, pos.y, pos.z)
}

/// Sort key of a light item.
pub fn light_sk(pos: BlockPos) -> String {
    format!("l#{}#{}#{}", pos.x, pos.y, pos.z)
}

/// Sort key of a sign item.
pub fn sign_sk(pos: BlockPos, face: i32) -> String {
    format!("s#{}#{}#{}#{}", pos.x, pos.y, pos.z, face)
}

/// The key of one item.
pub fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// A string value.
pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number value.
pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn add_meta(item: &mut Item, meta: &ChangeMeta) {
    if let Some(user) = &meta.user {
        item.insert(USER.to_owned(), s(user.as_ref()));
    }
    if let Some(time) = meta.time_ms {
        item.insert(TIME.to_owned(), n(time));
    }
}

/// A block item.
pub fn block_item(pk: &str, pos: BlockPos, w: i32, key_value: Key, meta: &ChangeMeta) -> Item {
    let mut item = key(pk, &block_sk(pos));
    item.insert(W.to_owned(), n(w));
    item.insert(KEY.to_owned(), n(key_value));
    add_meta(&mut item, meta);
    item
}

/// A light item.
pub fn light_item(pk: &str, pos: BlockPos, w: i32, meta: &ChangeMeta) -> Item {
    let mut item = key(pk, &light_sk(pos));
    item.insert(W.to_owned(), n(w));
    add_meta(&mut item, meta);
    item
}

/// A sign item.
pub fn sign_item(pk: &str, pos: BlockPos, face: i32, text: &str, meta: &ChangeMeta) -> Item {
    let mut item = key(pk, &sign_sk(pos, face));
    item.insert(TEXT.to_owned(), s(text));
    add_meta(&mut item, meta);
    item
}

/// A player item. Refuses positions DynamoDB numbers cannot hold.
pub fn player_item(player: &PlayerRecord) -> Result<Item, String> {
    let mut item = key(&player_pk(&player.name), PLAYER_SK);
    for (name, v) in [
        (PLAYER_X, player.x),
        (PLAYER_Y, player.y),
        (PLAYER_Z, player.z),
        (PLAYER_RX, player.rx),
        (PLAYER_RY, player.ry),
    ] {
        if !v.is_finite() {
            return Err(format!("player {:?} has a non-finite {name}", player.name));
        }
        // `Display` of f32 is the shortest text that parses back to the
        // same value, so positions round-trip exactly.
        item.insert(name.to_owned(), n(v));
    }
    item.insert(TIME.to_owned(), n(player.time_ms));
    Ok(item)
}

fn corrupt(what: &str, item: &Item) -> DynamoError {
    let sk = item
        .get(SK)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .unwrap_or("?");
    DynamoError::Corrupt(format!("{what} in item {sk:?}"))
}

/// The string attribute `name`.
pub fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, DynamoError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(corrupt(&format!("missing or non-string {name}"), item)),
    }
}

/// The number attribute `name`.
pub fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, DynamoError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| corrupt(&format!("bad number {name}={v}"), item)),
        _ => Err(corrupt(&format!("missing or non-number {name}"), item)),
    }
}

/// The number attribute `name`, or `default` when absent.
pub fn get_n_or<T: std::str::FromStr>(
    item: &Item,
    name: &str,
    default: T,
) -> Result<T, DynamoError> {
    if item.contains_key(name) {
        get_n(item, name)
    } else {
        Ok(default)
    }
}

fn parse_ints<const N: usize>(rest: &str) -> Option<[i32; N]> {
    let mut out = [0; N];
    let mut parts = rest.split('#');
    for slot in &mut out {
        *slot = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Parses a chunk partition key.
pub fn parse_chunk_pk(pk: &str) -> Option<ChunkPos> {
    let [p, q] = parse_ints::<2>(pk.strip_prefix("c#")?)?;
    Some(ChunkPos::new(p, q))
}

/// A block item read back (from the table or the key index).
pub fn parse_block(item: &Item) -> Result<StoredBlock, DynamoError> {
    let sk = get_s(item, SK)?;
    let [x, y, z] = sk
        .strip_prefix("b#")
        .and_then(parse_ints::<3>)
        .ok_or_else(|| corrupt("bad block sort key", item))?;
    Ok(StoredBlock {
        pos: BlockPos::new(x, y, z),
        w: get_n(item, W)?,
        key: get_n(item, KEY)?,
    })
}

/// What a chunk's query returns, one item at a time.
pub enum Decor {
    /// A log item: keys up to `hi`, packed blocks.
    Log {
        /// Its sort key.
        sk: String,
        /// Its largest key.
        hi: Key,
        /// Packed blocks.
        data: Vec<u8>,
    },
    /// A snapshot part.
    Snapshot {
        /// Its sort key.
        sk: String,
        /// The snapshot's id.
        id: String,
        /// Packed blocks.
        data: Vec<u8>,
    },
    /// The head item.
    Head(Head),
    /// A light.
    Light(StoredLight),
    /// A sign.
    Sign(StoredSign),
}

/// A chunk's head item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// Committed watermark: the chunk's head key.
    pub committed: Key,
    /// Largest reserved key.
    pub reserved: Key,
    /// Last reservation, ms.
    pub reserved_at: i64,
    /// Last move of `committed`, ms.
    pub committed_at: i64,
    /// Token of whoever last moved `committed`.
    pub committed_by: String,
    /// The log list: packed changes of small shares, oldest first.
    pub log: Vec<Vec<u8>>,
    /// Log items written and not folded yet.
    pub log_items: i64,
    /// Current snapshot id (empty: none).
    pub snap_id: String,
    /// Token of the last fold or compaction (empty: none).
    pub log_version: String,
    /// The snapshot holds every block with a key up to this.
    pub snap_key: Key,
    /// Parts of the current snapshot.
    pub snap_parts: usize,
    /// Last compaction, ms.
    pub compacted_at: i64,
    /// First-layout block items are folded into the snapshot.
    pub legacy_folded: bool,
    /// The head item's size (for capacity estimates).
    pub size: usize,
}

impl Head {
    /// Reads a head item's attributes (absent ones are 0).
    pub fn parse(item: &Item) -> Result<Head, DynamoError> {
        Ok(Head {
            committed: get_n_or(item, COMMITTED, 0)?,
            reserved: get_n_or(item, RESERVED, 0)?,
            reserved_at: get_n_or(item, RESERVED_AT, 0)?,
            committed_at: get_n_or(item, COMMITTED_AT, 0)?,
            committed_by: item
                .get(COMMITTED_BY)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default(),
            log: match item.get(LOG) {
                None => Vec::new(),
                Some(AttributeValue::L(entries)) => entries
                    .iter()
                    .map(|e| match e {
                        AttributeValue::B(data) => Ok(data.as_ref().to_vec()),
                        _ => Err(corrupt("non-binary log entry", item)),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(corrupt("non-list log", item)),
            },
            log_items: get_n_or(item, LOG_ITEMS, 0)?,
            snap_id: item
                .get(SNAP_ID)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default(),
            log_version: item
                .get(LOG_VERSION)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default(),
            snap_key: get_n_or(item, SNAP_KEY, 0)?,
            snap_parts: get_n_or(item, SNAP_PARTS, 0)?,
            compacted_at: get_n_or(item, COMPACTED_AT, 0)?,
            legacy_folded: matches!(item.get(LEGACY_FOLDED), Some(AttributeValue::Bool(true))),
            size: crate::limits::item_size(item),
        })
    }

    /// Log entries not folded yet: list entries plus log items.
    pub fn entries(&self) -> i64 {
        self.log.len() as i64 + self.log_items.max(0)
    }

    /// Whether keys are reserved above the watermark and nothing happened
    /// (no reservation, no commit) for longer than `stuck_after_ms`.
    pub fn is_stuck(&self, now_ms: i64, stuck_after_ms: i64) -> bool {
        self.reserved > self.committed
            && now_ms - self.reserved_at.max(self.committed_at) > stuck_after_ms
    }
}

fn get_b(item: &Item, name: &str) -> Result<Vec<u8>, DynamoError> {
    match item.get(name) {
        Some(AttributeValue::B(v)) => Ok(v.as_ref().to_vec()),
        _ => Err(corrupt(&format!("missing or non-binary {name}"), item)),
    }
}

/// Parses an item of a chunk's partition (but first-layout block items).
pub fn parse_decor(item: &Item) -> Result<Option<Decor>, DynamoError> {
    let sk = get_s(item, SK)?;
    if sk == HEAD_SK {
        return Ok(Some(Decor::Head(Head::parse(item)?)));
    }
    if let Some(rest) = sk.strip_prefix("g#") {
        let hi = rest
            .parse()
            .map_err(|_| corrupt("bad log item sort key", item))?;
        return Ok(Some(Decor::Log {
            sk: sk.to_owned(),
            hi,
            data: get_b(item, DATA)?,
        }));
    }
    if let Some(rest) = sk.strip_prefix("f#") {
        let (id, _part) = rest
            .split_once('#')
            .ok_or_else(|| corrupt("bad snapshot sort key", item))?;
        return Ok(Some(Decor::Snapshot {
            sk: sk.to_owned(),
            id: id.to_owned(),
            data: get_b(item, DATA)?,
        }));
    }
    if let Some(rest) = sk.strip_prefix("l#") {
        let [x, y, z] = parse_ints::<3>(rest).ok_or_else(|| corrupt("bad light sort key", item))?;
        return Ok(Some(Decor::Light(StoredLight {
            pos: BlockPos::new(x, y, z),
            w: get_n(item, W)?,
        })));
    }
    if let Some(rest) = sk.strip_prefix("s#") {
        let [x, y, z, face] =
            parse_ints::<4>(rest).ok_or_else(|| corrupt("bad sign sort key", item))?;
        return Ok(Some(Decor::Sign(StoredSign {
            pos: BlockPos::new(x, y, z),
            face,
            text: get_s(item, TEXT)?.to_owned(),
        })));
    }
    // Items of a later schema version are skipped, not failed on.
    Ok(None)
}

/// A player item read back.
pub fn parse_player(name: &str, item: &Item) -> Result<PlayerRecord, DynamoError> {
    Ok(PlayerRecord {
        name: name.to_owned(),
        x: get_n(item, PLAYER_X)?,
        y: get_n(item, PLAYER_Y)?,
        z: get_n(item, PLAYER_Z)?,
        rx: get_n(item, PLAYER_RX)?,
        ry: get_n(item, PLAYER_RY)?,
        time_ms: get_n(item, TIME)?,
    })
}

/// Attribute definitions of the table (keys only, as DynamoDB wants); with
/// `legacy`, also the first layout's key index attribute.
pub fn attribute_definitions(legacy: bool) -> Vec<AttributeDefinition> {
    let mut keys = vec![(PK, ScalarAttributeType::S), (SK, ScalarAttributeType::S)];
    if legacy {
        keys.push((KEY, ScalarAttributeType::N));
    }
    keys.into_iter()
        .filter_map(|(name, ty)| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ty)
                .build()
                .ok()
        })
        .collect()
}

/// Key schema of the table.
pub fn key_schema() -> Vec<KeySchemaElement> {
    key_elements(SK)
}

fn key_elements(range: &str) -> Vec<KeySchemaElement> {
    [(PK, KeyType::Hash), (range, KeyType::Range)]
        .into_iter()
        .filter_map(|(name, ty)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(ty)
                .build()
                .ok()
        })
        .collect()
}

/// The first layout's sparse key index (tables created by this version
/// have none; tests create one to check the migration): partition key [`PK`], sort key [`KEY`], projecting
/// [`W`] (table and index keys are always projected).
pub fn key_index() -> Option<LocalSecondaryIndex> {
    LocalSecondaryIndex::builder()
        .index_name(KEY_INDEX)
        .set_key_schema(Some(key_elements(KEY)))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .non_key_attributes(W)
                .build(),
        )
        .build()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use world_core::store::MAX_KEY;

    #[test]
    fn keys_round_trip() {
        let chunk = ChunkPos::new(-1_048_577, 1_048_576);
        assert_eq!(parse_chunk_pk(&chunk_pk(chunk)), Some(chunk));
        assert_eq!(parse_chunk_pk("c#1"), None);
        assert_eq!(parse_chunk_pk("c#1#2#3"), None);
        let pos = BlockPos::new(-33_554_433, 255, 33_554_432);
        let item = block_item("c#0#0", pos, -12, 77, &ChangeMeta::default());
        assert_eq!(
            parse_block(&item).unwrap(),
            StoredBlock {
                pos,
                w: -12,
                key: 77
            }
        );
        let sign = sign_item("c#0#0", pos, 7, "a, \"b\" é", &ChangeMeta::default());
        match parse_decor(&sign).unwrap() {
            Some(Decor::Sign(s)) => {
                assert_eq!((s.pos, s.face, s.text.as_str()), (pos, 7, "a, \"b\" é"))
            }
            _ => panic!("not a sign"),
        }
    }

    #[test]
    fn sort_keys_order_head_between_blocks_and_decor() {
        let pos = BlockPos::new(1, 2, 3);
        assert!(block_sk(pos).as_str() < SNAPSHOT_FROM);
        assert!(SNAPSHOT_FROM < snapshot_sk("00ff", 3).as_str());
        assert!(snapshot_sk("ffff", 99_999).as_str() < log_sk(1).as_str());
        assert!(log_sk(9) < log_sk(10));
        assert!(log_sk(MAX_KEY).as_str() < HEAD_SK);
        assert!(block_sk(pos).as_str() < HEAD_SK);
        assert!(HEAD_SK < light_sk(pos).as_str());
        assert!(DECOR_FROM <= light_sk(pos).as_str());
        assert!(sign_sk(BlockPos::new(-9, 255, -9), 7).as_str() <= DECOR_TO);
        assert!(light_sk(pos).as_str() < sign_sk(pos, 0).as_str());
    }

    #[test]
    fn log_items_and_snapshots_parse() {
        match parse_decor(&log_item("c#0#0", 42, vec![1, 2])).unwrap() {
            Some(Decor::Log { hi, data, .. }) => assert_eq!((hi, data), (42, vec![1, 2])),
            _ => panic!("not a log item"),
        }
        match parse_decor(&snapshot_item("c#0#0", "abc", 2, vec![3])).unwrap() {
            Some(Decor::Snapshot { id, data, sk }) => {
                assert_eq!(
                    (id.as_str(), data, sk.as_str()),
                    ("abc", vec![3], "f#abc#00002")
                )
            }
            _ => panic!("not a snapshot part"),
        }
    }

    #[test]
    fn player_positions_round_trip() {
        let p = PlayerRecord {
            name: "Zoë".into(),
            x: -1e6,
            y: 20.25,
            z: 0.1,
            rx: f32::MAX,
            ry: f32::MIN_POSITIVE,
            time_ms: 3,
        };
        let item = player_item(&p).unwrap();
        assert_eq!(parse_player("Zoë", &item).unwrap(), p);
        assert!(player_item(&PlayerRecord { x: f32::NAN, ..p }).is_err());
    }
}
