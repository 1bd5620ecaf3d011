//! Reading a chunk (snapshot, log items, the head's log list, lights and
//! signs, and the first layout's block items) and compacting it (folding
//! its log into a new snapshot). The crate docs explain the layout.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, WriteRequest};
use tracing::{debug, info, warn};
use world_core::ChunkPos;
use world_core::store::{Key, StoreError, StoreResult, StoredBlock, StoredLight, StoredSign};

use crate::error::{DynamoError, classify};
use crate::limits::{self, LOG_ITEM_BLOCKS, MAX_READ_RESTARTS};
use crate::metrics::{COMPACTIONS, FOLDS, READ_RESTARTS};
use crate::pack;
use crate::schema::{
    self, COMPACTED_AT, Decor, HEAD_SK, Head, KEY, KEY_INDEX, LEGACY_FOLDED, LOG, LOG_ITEMS,
    LOG_VERSION, PK, SK, SNAP_ID, SNAP_KEY, SNAP_PARTS, SNAPSHOT_FROM, chunk_pk, key, log_sk, n, s,
};
use crate::store::{DynamoStore, batch_write_on, delete, now_ms, pack as pack_calls, put, token};

/// What one read of a chunk found.
#[derive(Debug, Default)]
pub(crate) struct ChunkRead {
    /// The head as read (first, before anything it points to).
    pub head: Head,
    /// Blocks with `since < key <= head.committed`, the newest per position.
    pub blocks: Vec<StoredBlock>,
    /// Every light.
    pub lights: Vec<StoredLight>,
    /// Every sign.
    pub signs: Vec<StoredSign>,
    /// Sort keys and sizes of items a compaction of this read replaces or
    /// finds replaced already: log items up to the head, snapshot parts
    /// (current and stale), first-layout block items read. Only complete
    /// for a read with `since = 0`.
    pub replaced: Vec<(String, usize)>,
    /// Sort keys and sizes of the current snapshot's parts.
    pub snapshot_parts: Vec<(String, usize)>,
    /// Log items of the head's keys not folded into its snapshot.
    pub live_log_items: i64,
    /// Log items with keys above the head (a large share being written).
    pub pending_log_items: i64,
    /// First-layout block items were read.
    pub legacy_items: usize,
}

/// Keeps the newest block per position among those with keys in
/// `since+1 ..= head`.
struct Newest {
    since: Key,
    head: Key,
    blocks: HashMap<world_core::BlockPos, StoredBlock>,
}

impl Newest {
    fn keep(&mut self, block: StoredBlock) {
        if block.key <= self.since || block.key > self.head {
            return;
        }
        match self.blocks.entry(block.pos) {
            Entry::Occupied(mut o) => {
                if o.get().key < block.key {
                    o.insert(block);
                }
            }
            Entry::Vacant(v) => {
                v.insert(block);
            }
        }
    }

    fn keep_packed(&mut self, data: &[u8]) -> Result<(), DynamoError> {
        let blocks = pack::decode(data).map_err(|e| DynamoError::Corrupt(e.to_string()))?;
        for b in blocks {
            self.keep(b);
        }
        Ok(())
    }
}

impl DynamoStore {
    /// Reads `chunk` (blocks newer than `since`), repairing a stuck
    /// reservation, and starting again (a bounded number of times) when a
    /// compaction replaced what the read was looking at.
    pub(crate) async fn read_chunk(&self, chunk: ChunkPos, since: Key) -> StoreResult<ChunkRead> {
        let grace = self.config.compact_grace;
        for attempt in 0..=MAX_READ_RESTARTS {
            let started = Instant::now();
            let read = self.read_once(chunk, since).await?;
            let Some(read) = read else {
                self.metrics.add(READ_RESTARTS, &[], 1.0);
                debug!(%chunk, attempt, "the chunk was compacted under a read; reading again");
                continue;
            };
            // A read slower than the grace may have missed items deleted
            // after a compaction that happened since it read the head.
            if !grace.is_zero() && started.elapsed() >= grace {
                self.metrics.add(READ_RESTARTS, &[], 1.0);
                warn!(%chunk, took = ?started.elapsed(), "a chunk read took longer than compact_grace; reading again");
                continue;
            }
            if attempt < 2 && self.repair(chunk, &read.head).await?.is_some() {
                continue;
            }
            self.saw_head(chunk, &read.head);
            return Ok(read);
        }
        Err(self.failed(DynamoError::Unavailable(format!(
            "chunk {chunk} kept changing under {} reads (compactions, or reads slower than compact_grace)",
            MAX_READ_RESTARTS + 1
        ))))
    }

    /// One read: `None` when a compaction deleted what the head points to.
    ///
    /// One `Query` in descending sort-key order reads signs, lights, the
    /// head, and then what the head points to: log items (newer than
    /// `since`) and, for a full read, the snapshot. So the head is read
    /// before anything it covers; a since-read older than the snapshot
    /// reads the snapshot with a second query.
    async fn read_once(&self, chunk: ChunkPos, since: Key) -> StoreResult<Option<ChunkRead>> {
        let pk = chunk_pk(chunk);
        let from = if since <= 0 {
            SNAPSHOT_FROM.to_owned()
        } else {
            log_sk(since + 1)
        };
        let items = self
            .query_all(
                None,
                false,
                "#pk = :pk AND #sk >= :from",
                &[("#pk", PK), ("#sk", SK)],
                vec![(":pk", s(pk.clone())), (":from", s(from))],
            )
            .await?;
        let mut read = ChunkRead::default();
        let mut logs = Vec::new();
        let mut parts: HashMap<String, Vec<(String, Vec<u8>)>> = HashMap::new();
        for item in &items {
            match schema::parse_decor(item).map_err(|e| self.failed(e))? {
                Some(Decor::Head(h)) => read.head = h,
                Some(Decor::Light(l)) => read.lights.push(l),
                Some(Decor::Sign(s)) => read.signs.push(s),
                Some(Decor::Log { sk, hi, data }) => logs.push((sk, hi, data)),
                Some(Decor::Snapshot { sk, id, data }) => {
                    parts.entry(id).or_default().push((sk, data))
                }
                None => {}
            }
        }
        let head = read.head.clone();
        let mut newest = Newest {
            since,
            head: head.committed,
            blocks: HashMap::new(),
        };
        if head.snap_parts > 0 {
            let mine = if since <= 0 {
                parts.remove(&head.snap_id).unwrap_or_default()
            } else if head.snap_key > since {
                let prefix = format!("{SNAPSHOT_FROM}{}#", head.snap_id);
                self.query_all(
                    None,
                    true,
                    "#pk = :pk AND #sk BETWEEN :from AND :to",
                    &[("#pk", PK), ("#sk", SK)],
                    vec![
                        (":pk", s(pk.clone())),
                        (":from", s(prefix.clone())),
                        (":to", s(format!("{prefix}~"))),
                    ],
                )
                .await?
                .iter()
                .filter_map(|item| match schema::parse_decor(item) {
                    Ok(Some(Decor::Snapshot { sk, data, .. })) => Some(Ok((sk, data))),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_, _>>()
                .map_err(|e| self.failed(e))?
            } else {
                Vec::new()
            };
            if (since <= 0 || head.snap_key > since) && mine.len() != head.snap_parts {
                return Ok(None);
            }
            for (sk, data) in &mine {
                newest.keep_packed(data).map_err(|e| self.failed(e))?;
                read.snapshot_parts.push((sk.clone(), data.len()));
                read.replaced.push((sk.clone(), data.len()));
            }
        }
        // Parts of other snapshots: garbage a compaction left for later.
        for (sk, data) in parts.into_values().flatten() {
            read.replaced.push((sk, data.len()));
        }
        for (sk, hi, data) in &logs {
            if *hi > head.snap_key && *hi <= head.committed {
                read.live_log_items += 1;
            }
            if *hi > head.committed {
                read.pending_log_items += 1;
            }
            if *hi > head.snap_key.max(since) {
                newest.keep_packed(data).map_err(|e| self.failed(e))?;
            }
            if *hi <= head.committed {
                read.replaced.push((sk.clone(), data.len()));
            }
        }
        for entry in &head.log {
            newest.keep_packed(entry).map_err(|e| self.failed(e))?;
        }
        if self.legacy && !head.legacy_folded && head.committed > since {
            let items = self
                .query_all(
                    Some(KEY_INDEX),
                    true,
                    "#pk = :pk AND #k BETWEEN :from AND :to",
                    &[("#pk", PK), ("#k", KEY)],
                    vec![
                        (":pk", s(pk)),
                        (":from", n(since.saturating_add(1))),
                        (":to", n(head.committed)),
                    ],
                )
                .await?;
            for item in &items {
                let block = schema::parse_block(item).map_err(|e| self.failed(e))?;
                if let Ok(sk) = schema::get_s(item, SK) {
                    read.replaced.push((sk.to_owned(), limits::item_size(item)));
                }
                read.legacy_items += 1;
                newest.keep(block);
            }
        }
        read.blocks = newest.blocks.into_values().collect();
        Ok(Some(read))
    }

    /// Folds the chunk's log (list entries, log items, first-layout block
    /// items) into a new snapshot: write the snapshot's parts, then switch
    /// the head to it with one conditional `UpdateItem` that also drops
    /// the folded list entries; the replaced items are deleted after
    /// `compact_grace`. Returns whether this call compacted (`false`: there
    /// was nothing to fold, or another writer compacted first).
    pub(crate) async fn compact(&self, chunk: ChunkPos) -> StoreResult<bool> {
        let read = self.read_chunk(chunk, 0).await?;
        let head = &read.head;
        let legacy = self.legacy && !head.legacy_folded;
        if head.log.is_empty() && read.live_log_items == 0 && !legacy {
            return Ok(false);
        }
        let pk = chunk_pk(chunk);
        let mut blocks = read.blocks.clone();
        blocks.sort_unstable_by_key(|b| b.key);
        let id = token();
        let parts: Vec<Vec<u8>> = blocks.chunks(LOG_ITEM_BLOCKS).map(pack::encode).collect();
        let puts = parts
            .iter()
            .enumerate()
            .map(|(i, data)| put(schema::snapshot_item(&pk, &id, i, data.clone())))
            .collect::<StoreResult<Vec<_>>>()?;
        let part_keys: Vec<(String, usize)> = parts
            .iter()
            .enumerate()
            .map(|(i, data)| (schema::snapshot_sk(&id, i), data.len()))
            .collect();
        self.write_all(puts).await?;

        // Drop exactly the list entries read (appends go to the end; the
        // condition on the log version excludes a concurrent fold or
        // compaction).
        let removes: Vec<String> = (0..head.log.len()).map(|i| format!("#g[{i}]")).collect();
        let mut expression = format!(
            "SET #sf = :id, #sh = :sh, #sp = :sp, #st = :now, #cv = :cv, #gn = :left{}",
            if legacy { ", #lf = :true" } else { "" }
        );
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let condition = if head.log_version.is_empty() {
            "attribute_not_exists(#cv)"
        } else {
            "#cv = :old"
        };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(key(&pk, HEAD_SK)))
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_names("#sf", SNAP_ID)
            .expression_attribute_names("#sh", SNAP_KEY)
            .expression_attribute_names("#sp", SNAP_PARTS)
            .expression_attribute_names("#st", COMPACTED_AT)
            .expression_attribute_names("#gn", LOG_ITEMS)
            .expression_attribute_names("#cv", LOG_VERSION)
            .expression_attribute_values(":cv", s(token()))
            .expression_attribute_values(":id", s(id.clone()))
            .expression_attribute_values(":sh", n(head.committed))
            .expression_attribute_values(":sp", n(parts.len()))
            .expression_attribute_values(":now", n(now_ms()))
            // Set, not added: the count starts over from what is there (a
            // log item whose reservation comes after this read is counted
            // by the next compaction instead).
            .expression_attribute_values(":left", n(read.pending_log_items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if !removes.is_empty() {
            request = request.expression_attribute_names("#g", LOG);
        }
        if legacy {
            request = request
                .expression_attribute_names("#lf", LEGACY_FOLDED)
                .expression_attribute_values(":true", AttributeValue::Bool(true));
        }
        if !head.log_version.is_empty() {
            request = request.expression_attribute_values(":old", s(head.log_version.clone()));
        }
        // Charged by the larger of the head before and after.
        self.metrics
            .estimated("UpdateItem", true, limits::write_units(head.size));
        match request.send().await {
            Ok(out) => {
                self.metrics
                    .consumed("UpdateItem", true, out.consumed_capacity());
            }
            Err(e) => {
                if let Some(UpdateItemError::ConditionalCheckFailedException(_)) =
                    e.as_service_error()
                {
                    // Another writer compacted first: this snapshot is
                    // referenced by nobody.
                    debug!(%chunk, "another writer compacted the chunk first");
                    self.delete_items(&pk, part_keys, Duration::ZERO).await;
                    return Ok(false);
                }
                return Err(self.failed(classify("UpdateItem", e)));
            }
        }
        self.metrics.add(COMPACTIONS, &[], 1.0);
        info!(
            %chunk,
            blocks = blocks.len(),
            parts = parts.len(),
            entries = head.log.len() as i64 + read.live_log_items,
            legacy_items = read.legacy_items,
            "compacted a chunk"
        );
        let replaced = read.replaced.clone();
        self.delete_items(&pk, replaced, self.config.compact_grace)
            .await;
        Ok(true)
    }

    /// Folds the head's log list, as `head` shows it, into one log item:
    /// cheap (it writes only the list's bytes, not the chunk), so that the
    /// head stays small between the compactions, which rewrite the whole
    /// chunk and come only once `compact_after` log items gathered. Writes
    /// the item `g#LAST` (the entries' last key), then `REMOVE g[0..L]
    /// ADD gn 1` on the head if its log version is still `head`'s. A fold
    /// that loses that race leaves its item behind: it repeats committed
    /// blocks under their own keys (harmless to readers) and the next
    /// compaction deletes it. Returns whether it folded.
    pub(crate) async fn fold(&self, chunk: ChunkPos, head: &Head) -> StoreResult<bool> {
        let mut newest = Newest {
            since: 0,
            head: Key::MAX,
            blocks: HashMap::new(),
        };
        for entry in &head.log {
            newest.keep_packed(entry).map_err(|e| self.failed(e))?;
        }
        let mut blocks: Vec<StoredBlock> = newest.blocks.into_values().collect();
        blocks.sort_unstable_by_key(|b| b.key);
        let Some(hi) = blocks.last().map(|b| b.key) else {
            return Ok(false);
        };
        let pk = chunk_pk(chunk);
        let items = blocks
            .chunks(LOG_ITEM_BLOCKS)
            .map(|part| {
                let last = part.last().map_or(hi, |b| b.key);
                put(schema::log_item(&pk, last, pack::encode(part)))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let count = items.len();
        self.write_all(items).await?;
        let removes: Vec<String> = (0..head.log.len()).map(|i| format!("#g[{i}]")).collect();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(key(&pk, HEAD_SK)))
            .update_expression(format!(
                "SET #cv = :cv ADD #gn :items REMOVE {}",
                removes.join(", ")
            ))
            .condition_expression(if head.log_version.is_empty() {
                "attribute_not_exists(#cv)"
            } else {
                "#cv = :old"
            })
            .expression_attribute_names("#cv", LOG_VERSION)
            .expression_attribute_names("#gn", LOG_ITEMS)
            .expression_attribute_names("#g", LOG)
            .expression_attribute_values(":cv", s(token()))
            .expression_attribute_values(":items", n(count))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if !head.log_version.is_empty() {
            request = request.expression_attribute_values(":old", s(head.log_version.clone()));
        }
        self.metrics
            .estimated("UpdateItem", true, limits::write_units(head.size));
        match request.send().await {
            Ok(out) => {
                self.metrics
                    .consumed("UpdateItem", true, out.consumed_capacity());
                self.metrics.add(FOLDS, &[], 1.0);
                debug!(%chunk, entries = head.log.len(), blocks = blocks.len(), "folded the log list into a log item");
                Ok(true)
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => {
                    debug!(%chunk, "another writer folded or compacted the log list first");
                    Ok(false)
                }
                _ => Err(self.failed(classify("UpdateItem", e))),
            },
        }
    }

    /// Deletes items of partition `pk` after `delay` (at once when zero),
    /// best effort: what fails stays, and the next compaction of the chunk
    /// finds it again.
    async fn delete_items(&self, pk: &str, items: Vec<(String, usize)>, delay: Duration) {
        if items.is_empty() {
            return;
        }
        // A deletion is charged by the size of the item deleted.
        let extra: f64 = items
            .iter()
            .map(|(_, bytes)| limits::write_units(*bytes) - 1.0)
            .sum();
        let requests: Vec<WriteRequest> = match items
            .iter()
            .map(|(sk, _)| delete(key(pk, sk)))
            .collect::<StoreResult<Vec<_>>>()
        {
            Ok(requests) => requests,
            Err(e) => {
                warn!(error = %e, "cannot build deletions");
                return;
            }
        };
        let client = self.client.clone();
        let table = self.config.table.clone();
        let metrics = self.metrics.clone();
        let pk = pk.to_owned();
        let run = async move {
            tokio::time::sleep(delay).await;
            metrics.estimated("BatchWriteItem", true, extra);
            for call in pack_calls(requests.into_iter().map(|r| (r, ()))) {
                let call = call.into_iter().map(|(r, ())| r).collect();
                if let Err(e) = batch_write_on(&client, &table, &metrics, call).await {
                    warn!(pk, error = %StoreError::from(e), "deleting items replaced by a compaction failed; the next compaction retries");
                    return;
                }
            }
        };
        if delay.is_zero() {
            run.await;
        } else {
            tokio::spawn(run);
        }
    }
}
