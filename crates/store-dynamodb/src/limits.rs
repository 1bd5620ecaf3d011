//! DynamoDB's service limits and this store's own bounds, in one place.
//!
//! The emulator used in tests (moto) does not enforce all of these (it
//! accepts 26-item batches and never returns `UnprocessedItems`), so the
//! store enforces them itself and the tests check the requests it sends.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};

/// `BatchWriteItem`: at most 25 put or delete requests per call.
pub const MAX_BATCH_WRITE_ITEMS: usize = 25;

/// `BatchWriteItem`: at most 16 MB per call.
pub const MAX_BATCH_WRITE_BYTES: usize = 16 * 1024 * 1024;

/// `BatchGetItem`: at most 100 keys per call.
pub const MAX_BATCH_GET_KEYS: usize = 100;

/// Largest item DynamoDB stores (attribute names and values together).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Largest partition key value.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;

/// Largest user name stored beside a change ([`world_core::store::ChangeMeta`])
/// or used as a player name. With sign text bounded by
/// [`world_core::store::MAX_STORED_TEXT_BYTES`] (1 KiB), every item this store
/// writes stays far below [`MAX_ITEM_BYTES`] and a player's partition key
/// below [`MAX_PARTITION_KEY_BYTES`].
pub const MAX_NAME_BYTES: usize = 1024;

/// One write capacity unit covers an item of up to 1 KB.
pub const WRITE_UNIT_BYTES: usize = 1024;

/// One (strongly consistent) read capacity unit covers up to 4 KB.
pub const READ_UNIT_BYTES: usize = 4096;

/// Blocks per log item and per snapshot part: at most 25 bytes a block
/// packed (5 varints), so an item stays below 100 KB, a quarter of
/// DynamoDB's 400 KB item limit (typically 20 KB: ~5 bytes a block).
pub const LOG_ITEM_BLOCKS: usize = 4_000;

/// A share whose packed blocks take at most this many bytes is appended to
/// the head's log list in the one `UpdateItem` that also reserves and
/// commits its keys; larger shares are written as log items.
pub const SMALL_SHARE_BYTES: usize = 600;

/// The head's log list holds at most this many entries: past it, shares go
/// to log items (compaction normally keeps the list at `compact_after`).
pub const MAX_LOG_LIST: usize = 64;

/// A head item larger than this has its log list folded into a log item
/// whatever `compact_after` says: every update of the head is charged per
/// KB of the whole item, and below 900 bytes the next typical append (10
/// blocks, ~60 bytes) still fits in one write unit.
pub const COMPACT_HEAD_BYTES: usize = 900;

/// How many times a chunk read starts again when a compaction replaced
/// what it was reading, before failing as unavailable.
pub const MAX_READ_RESTARTS: usize = 3;

/// How many times `UnprocessedItems` / `UnprocessedKeys` are sent again
/// (with jittered exponential backoff) before the call fails as
/// unavailable (the table is throttling).
pub const MAX_UNPROCESSED_RETRIES: usize = 10;

/// First delay before re-sending unprocessed items.
pub const UNPROCESSED_MIN_DELAY: Duration = Duration::from_millis(25);

/// Largest delay between two re-sends of unprocessed items.
pub const UNPROCESSED_MAX_DELAY: Duration = Duration::from_secs(2);

/// A chunk whose share of a batch is larger than this many keys publishes
/// its progress (advances the committed watermark) every this many keys, so
/// that other writers see it is alive and never take it for a crashed one.
pub const PROGRESS_COMMIT_KEYS: i64 = 2_500;

/// How often a writer whose reservation was skipped (taken for crashed)
/// writes its chunk's share again under new keys before giving up with
/// `StoreError::Conflict`.
pub const MAX_REWRITES: usize = 3;

/// How long `create_table` waits for a new table to become active.
pub const CREATE_TABLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The size DynamoDB accounts for an item: the UTF-8 length of every
/// attribute name plus the size of its value.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

/// The size of one attribute value, by DynamoDB's rules: strings and binary
/// by length, numbers one byte per two significant digits plus one.
pub fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::L(v) => 3 + v.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
        _ => 1,
    }
}

fn number_size(n: &str) -> usize {
    let mantissa = n.split(['e', 'E']).next().unwrap_or(n);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    significant.div_ceil(2) + 1
}

/// The size of one `BatchWriteItem` entry (its item, or its key).
pub fn write_request_size(request: &WriteRequest) -> usize {
    if let Some(put) = request.put_request() {
        item_size(put.item())
    } else if let Some(delete) = request.delete_request() {
        item_size(delete.key())
    } else {
        0
    }
}

/// Write units for an item of `bytes` (at least one).
pub fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(WRITE_UNIT_BYTES).max(1) as f64
}

/// Strongly consistent read units for `bytes` read in one request (at
/// least one: DynamoDB charges a minimum even when nothing is found).
pub fn read_units(bytes: usize) -> f64 {
    bytes.div_ceil(READ_UNIT_BYTES).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_dynamodb_rules() {
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("12345"), 4);
        assert_eq!(number_size("-1000000"), 2);
        assert_eq!(number_size("20.25"), 3);
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("c#1#2".to_owned())),
            ("k".to_owned(), AttributeValue::N("12".to_owned())),
        ]);
        assert_eq!(item_size(&item), 2 + 5 + 1 + 2);
        assert_eq!(write_units(0), 1.0);
        assert_eq!(write_units(1025), 2.0);
        assert_eq!(read_units(4096), 1.0);
        assert_eq!(read_units(4097), 2.0);
    }
}
