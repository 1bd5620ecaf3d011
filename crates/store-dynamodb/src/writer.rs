//! The write path. A small share (packed blocks of at most
//! [`SMALL_SHARE_BYTES`]) is one conditional `UpdateItem` on the chunk's
//! head that reserves its keys, appends its packed blocks to the head's
//! log list and commits them, when no reservation is open. Other shares:
//! reserve keys, write log items, commit the watermark (the crate docs
//! explain why in this order). Chunks whose log grew past `compact_after`
//! entries are compacted after the batch.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
    WriteRequest,
};
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::{StreamExt, stream};
use tracing::{debug, warn};
use world_core::store::{
    ApplyReceipt, Batch, ChunkAdvance, Key, MAX_KEY, StoreError, StoreResult, StoredBlock,
};
use world_core::{BlockPos, ChunkPos};

use crate::error::classify;
use crate::limits::{
    self, COMPACT_HEAD_BYTES, LOG_ITEM_BLOCKS, MAX_LOG_LIST, MAX_REWRITES, PROGRESS_COMMIT_KEYS,
    SMALL_SHARE_BYTES,
};
use crate::metrics::{COMMIT_WAITS, REWRITES, SKIPPED, SMALL_SHARES};
use crate::pack;
use crate::schema::{
    self, COMMITTED, COMMITTED_AT, COMMITTED_BY, DECOR_FROM, DECOR_TO, Decor, HEAD_SK, Head, LOG,
    LOG_ITEMS, PK, RESERVED, RESERVED_AT, SK, chunk_pk, key, n, s,
};
use crate::store::{DynamoStore, check_name, delete, now_ms, pack as pack_calls, put, token};

/// One chunk's share of a batch.
struct Share {
    chunk: ChunkPos,
    /// Lights, signs and the effects of clears: no key of their own.
    decor: Vec<WriteRequest>,
    /// Block writes in batch order: `(pos, w, meta)`.
    blocks: Vec<(BlockPos, i32, world_core::store::ChangeMeta)>,
    /// The current reservation `lo..=hi` and its writer token.
    lo: Key,
    hi: Key,
    token: String,
    /// The watermark this share has reached (`lo - 1` until it commits).
    committed_to: Key,
    reserved: bool,
    done: bool,
}

impl Share {
    /// Keys to reserve: one per block, at least one so that lights, signs
    /// and clears move the head too.
    fn keys(&self) -> Key {
        self.blocks.len().max(1) as Key
    }

    /// The share's blocks under keys `first`, `first + 1`, ...
    fn keyed(&self, first: Key) -> Vec<StoredBlock> {
        self.blocks
            .iter()
            .enumerate()
            .map(|(j, (pos, w, _))| StoredBlock {
                pos: *pos,
                w: *w,
                key: first + j as Key,
            })
            .collect()
    }

    /// Log items of the share's blocks.
    fn log_items(&self) -> Key {
        self.blocks.len().div_ceil(LOG_ITEM_BLOCKS) as Key
    }
}

/// Existing lights and sign faces of a chunk (for clears).
#[derive(Default)]
struct Existing {
    lights: HashSet<BlockPos>,
    signs: HashMap<BlockPos, Vec<i32>>,
}

/// What one commit attempt found.
enum Commit {
    /// The watermark reached the share's last key.
    Done,
    /// An earlier reservation is not committed yet; the watermark is here.
    Behind(Key),
    /// The watermark moved past this share without it: re-write it.
    Skipped,
    /// Try again now (the watermark moved over an abandoned reservation,
    /// or a concurrent change raced the condition).
    Again,
    /// A progress commit of this share had landed unseen (the SDK retried
    /// after a lost response): the watermark is here, try again from it.
    Advanced(Key),
}

pub(crate) async fn apply(store: &DynamoStore, batch: &Batch) -> StoreResult<ApplyReceipt> {
    batch.validate()?;
    let metas = batch
        .blocks()
        .map(|b| &b.meta)
        .chain(batch.lights().map(|l| &l.meta))
        .chain(batch.signs().map(|s| &s.meta));
    for meta in metas {
        if let Some(user) = &meta.user {
            check_name(user, "user name")?;
        }
    }
    if batch.is_empty() {
        return Ok(ApplyReceipt::default());
    }
    let groups = batch.by_chunk();
    let clear_chunks: Vec<ChunkPos> = groups
        .iter()
        .filter(|(_, c)| !c.clears.is_empty())
        .map(|(chunk, _)| *chunk)
        .collect();
    let mut existing = existing_decor(store, clear_chunks).await?;

    let mut shares = Vec::with_capacity(groups.len());
    for (chunk, changes) in &groups {
        let pk = chunk_pk(*chunk);
        let found = existing.remove(chunk).unwrap_or_default();
        let written_lights: HashSet<BlockPos> = changes.lights.iter().map(|l| l.pos).collect();
        let written_signs: HashSet<(BlockPos, i32)> =
            changes.signs.iter().map(|s| (s.pos, s.face)).collect();
        let mut decor = Vec::new();
        // A clear acts on what existed before the batch; the batch's own
        // light and sign writes (already folded by `Batch`) come after it
        // and win, and BatchWriteItem refuses two requests for one item.
        for clear in &changes.clears {
            if found.lights.contains(&clear.pos) && !written_lights.contains(&clear.pos) {
                let meta = world_core::store::ChangeMeta::default();
                decor.push(put(schema::light_item(&pk, clear.pos, 0, &meta))?);
            }
            for face in found.signs.get(&clear.pos).into_iter().flatten() {
                if !written_signs.contains(&(clear.pos, *face)) {
                    decor.push(delete(key(&pk, &schema::sign_sk(clear.pos, *face)))?);
                }
            }
        }
        for light in &changes.lights {
            decor.push(put(schema::light_item(
                &pk,
                light.pos,
                light.w,
                &light.meta,
            ))?);
        }
        for sign in &changes.signs {
            decor.push(match &sign.text {
                Some(text) => put(schema::sign_item(
                    &pk, sign.pos, sign.face, text, &sign.meta,
                ))?,
                None => delete(key(&pk, &schema::sign_sk(sign.pos, sign.face)))?,
            });
        }
        shares.push(Share {
            chunk: *chunk,
            decor,
            blocks: changes
                .blocks
                .iter()
                .map(|b| (b.pos, b.w, b.meta.clone()))
                .collect(),
            lo: 0,
            hi: 0,
            token: String::new(),
            committed_to: 0,
            reserved: false,
            done: false,
        });
    }

    // Chunks whose log grew past `compact_after`, compacted at the end.
    let mut compact: Vec<(ChunkPos, Head)> = Vec::new();
    let small = small_path(store, &mut shares, &mut compact).await;
    let result = match small {
        Ok(()) => run(store, &mut shares, &mut compact).await,
        Err(e) => Err(e),
    };
    if result.is_err() {
        // Nothing more of these reservations will be written: let this
        // store skip them at once instead of after `stuck_after`.
        for share in shares.iter().filter(|s| s.reserved && !s.done) {
            store.abandon(share.chunk, share.committed_to + 1, share.hi);
        }
    }
    result?;
    // One upkeep per chunk, from the newest head seen.
    let mut due: HashMap<ChunkPos, Head> = HashMap::new();
    for (chunk, head) in compact {
        due.insert(chunk, head);
    }
    // The batch is applied: a failed upkeep is only logged (the next write
    // of the chunk tries again).
    let upkeeps: Vec<_> = due
        .into_iter()
        .map(|(chunk, head)| async move {
            let result = match upkeep(store, &head) {
                Some(Upkeep::Compact) => store.compact(chunk).await,
                Some(Upkeep::Fold) => store.fold(chunk, &head).await,
                None => Ok(false),
            };
            if let Err(e) = result {
                warn!(%chunk, error = %e, "compacting a chunk failed; a later write retries");
            }
        })
        .collect();
    stream::iter(upkeeps)
        .buffer_unordered(store.config.concurrency)
        .collect::<Vec<()>>()
        .await;
    Ok(ApplyReceipt {
        chunks: shares
            .iter()
            .map(|s| ChunkAdvance {
                chunk: s.chunk,
                before: s.lo - 1,
                after: s.hi,
            })
            .collect(),
    })
}

/// What a chunk's log needs after a write.
enum Upkeep {
    /// Fold the head's list into one log item (cheap: the list's bytes).
    Fold,
    /// Rewrite the chunk as a new snapshot (the whole chunk's bytes).
    Compact,
}

/// What a chunk whose head is `head` (as a write left it) needs: a
/// compaction once more than `compact_after` log items gathered (or, on a
/// first-layout table, log entries: that folds the old block items); a
/// fold once the list has more than `compact_after` entries or the head
/// passed [`COMPACT_HEAD_BYTES`] (each update of it is charged per KB of
/// the whole item).
fn upkeep(store: &DynamoStore, head: &Head) -> Option<Upkeep> {
    let most = store.config.compact_after as i64;
    let legacy = store.legacy && !head.legacy_folded;
    if head.log_items > most || (legacy && head.entries() > most) {
        Some(Upkeep::Compact)
    } else if head.log.len() as i64 > most || head.size > COMPACT_HEAD_BYTES {
        Some(Upkeep::Fold)
    } else {
        None
    }
}

/// Tries the one-request path for every share small enough: its decor
/// first (lights and signs are visible at once anyway; the head moves
/// after them), then one conditional `UpdateItem` per share. Shares it
/// could not take (an open reservation, a long list) stay for [`run`].
async fn small_path(
    store: &DynamoStore,
    shares: &mut [Share],
    compact: &mut Vec<(ChunkPos, Head)>,
) -> StoreResult<()> {
    let candidates: Vec<usize> = (0..shares.len())
        .filter(|&i| {
            let share = &shares[i];
            // The size with a guessed first key: keys are one varint.
            share.blocks.len() * 5 <= SMALL_SHARE_BYTES
                && pack::encode(&share.keyed(store.known_head(share.chunk) + 1)).len()
                    <= SMALL_SHARE_BYTES
        })
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let decor: Vec<WriteRequest> = candidates
        .iter()
        .flat_map(|&i| std::mem::take(&mut shares[i].decor))
        .collect();
    store.write_all(decor).await?;
    let attempts: Vec<_> = candidates
        .iter()
        .map(|&i| {
            let share = &shares[i];
            async move { (i, append_small(store, share).await) }
        })
        .collect();
    let results: Vec<_> = stream::iter(attempts)
        .buffer_unordered(store.config.concurrency)
        .collect()
        .await;
    let mut first_error = None;
    for (i, result) in results {
        match result {
            Ok(Some((base, head))) => {
                let share = &mut shares[i];
                share.lo = base + 1;
                share.hi = base + share.keys();
                share.committed_to = share.hi;
                share.reserved = true;
                share.done = true;
                store.metrics.add(SMALL_SHARES, &[], 1.0);
                if upkeep(store, &head).is_some() {
                    compact.push((share.chunk, head));
                }
            }
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// One `UpdateItem` that reserves, appends and commits a small share:
/// `SET r = c = base + n, g = g + [packed]` under the condition that no
/// reservation is open (`r = c = base`, `base` the head this store saw
/// last). When the guess was wrong but no reservation is open, tries once
/// more with the head the failure returned. `Ok(None)`: leave the share to
/// the reserve, write, commit path. `Ok(Some((base, head)))`: done; its
/// keys are `base + 1 ..`, `head` is the head after it.
async fn append_small(store: &DynamoStore, share: &Share) -> StoreResult<Option<(Key, Head)>> {
    let chunk = share.chunk;
    let _turn = store.append_turn(chunk).await;
    let mut base = store.known_head(chunk);
    for _ in 0..2 {
        let hi = base + share.keys();
        if hi > MAX_KEY {
            // The reserve path reports KeyExhausted.
            return Ok(None);
        }
        let entry = if share.blocks.is_empty() {
            None
        } else {
            Some(pack::encode(&share.keyed(base + 1)))
        };
        if entry.as_ref().is_some_and(|e| e.len() > SMALL_SHARE_BYTES) {
            return Ok(None);
        }
        let mut update = "SET #r = :hi, #c = :hi, #rt = :now, #ct = :now, #cw = :writer".to_owned();
        if entry.is_some() {
            update.push_str(", #g = list_append(if_not_exists(#g, :empty), :entry)");
        }
        let condition = format!(
            "{} AND (attribute_not_exists(#g) OR size(#g) < :maxlist)",
            if base == 0 {
                "attribute_not_exists(#r)"
            } else {
                "#r = :base AND #c = :base"
            }
        );
        let mut request = store
            .client
            .update_item()
            .table_name(&store.config.table)
            .set_key(Some(key(&chunk_pk(chunk), HEAD_SK)))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#r", RESERVED)
            .expression_attribute_names("#c", COMMITTED)
            .expression_attribute_names("#rt", RESERVED_AT)
            .expression_attribute_names("#ct", COMMITTED_AT)
            .expression_attribute_names("#cw", COMMITTED_BY)
            .expression_attribute_names("#g", LOG)
            .expression_attribute_values(":hi", n(hi))
            .expression_attribute_values(":now", n(now_ms()))
            .expression_attribute_values(":writer", s(token()))
            .expression_attribute_values(":maxlist", n(MAX_LOG_LIST))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if base != 0 {
            request = request.expression_attribute_values(":base", n(base));
        }
        if let Some(entry) = &entry {
            request = request
                .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
                .expression_attribute_values(
                    ":entry",
                    AttributeValue::L(vec![schema::b(entry.clone())]),
                );
        }
        match request.send().await {
            Ok(out) => {
                store
                    .metrics
                    .consumed("UpdateItem", true, out.consumed_capacity());
                let head = Head::parse(out.attributes().unwrap_or(&HashMap::new()))
                    .map_err(|e| store.failed(e))?;
                // Charged by the larger of the item before and after.
                store
                    .metrics
                    .estimated("UpdateItem", true, limits::write_units(head.size));
                store.saw_head(chunk, &head);
                return Ok(Some((base, head)));
            }
            Err(e) => {
                let Some(UpdateItemError::ConditionalCheckFailedException(failed)) =
                    e.as_service_error()
                else {
                    return Err(store.failed(classify("UpdateItem", e)));
                };
                let head = match failed.item() {
                    Some(item) => Head::parse(item).map_err(|e| store.failed(e))?,
                    None => Head::default(),
                };
                store
                    .metrics
                    .estimated("UpdateItem", true, limits::write_units(head.size));
                store.saw_head(chunk, &head);
                let open = head.reserved != head.committed;
                if open || head.log.len() >= MAX_LOG_LIST || head.reserved == base {
                    return Ok(None);
                }
                base = head.reserved;
            }
        }
    }
    Ok(None)
}

/// Reserve, write and commit every share not done yet; shares whose
/// reservation was skipped by another writer go round again under new keys.
async fn run(
    store: &DynamoStore,
    shares: &mut [Share],
    compact: &mut Vec<(ChunkPos, Head)>,
) -> StoreResult<()> {
    let mut pending: Vec<usize> = (0..shares.len()).filter(|&i| !shares[i].done).collect();
    if pending.is_empty() {
        return Ok(());
    }
    for round in 0..=MAX_REWRITES {
        reserve(store, shares, &pending, compact).await?;
        write(store, shares, &pending).await?;
        let skipped = commit(store, shares, &pending).await?;
        if skipped.is_empty() {
            return Ok(());
        }
        store.metrics.add(REWRITES, &[], skipped.len() as f64);
        for &i in &skipped {
            warn!(chunk = %shares[i].chunk, round, "key reservation was skipped by another writer; writing again");
            shares[i].reserved = false;
        }
        pending = skipped;
    }
    Err(StoreError::Conflict(format!(
        "key reservations were skipped {} times in a row; is stuck_after shorter than a write takes?",
        MAX_REWRITES + 1
    )))
}

/// Reads the lights and signs of chunks that have clears (one query per
/// chunk, whatever the number of clears).
async fn existing_decor(
    store: &DynamoStore,
    chunks: Vec<ChunkPos>,
) -> StoreResult<HashMap<ChunkPos, Existing>> {
    let reads = chunks.into_iter().map(|chunk| async move {
        let items = store
            .query_all(
                None,
                true,
                "#pk = :pk AND #sk BETWEEN :from AND :to",
                &[("#pk", PK), ("#sk", SK)],
                vec![
                    (":pk", s(chunk_pk(chunk))),
                    (":from", s(DECOR_FROM)),
                    (":to", s(DECOR_TO)),
                ],
            )
            .await?;
        let mut found = Existing::default();
        for item in &items {
            match schema::parse_decor(item).map_err(|e| store.failed(e))? {
                Some(Decor::Light(l)) => {
                    found.lights.insert(l.pos);
                }
                Some(Decor::Sign(s)) => found.signs.entry(s.pos).or_default().push(s.face),
                _ => {}
            }
        }
        StoreResult::Ok((chunk, found))
    });
    let reads: Vec<_> = reads.collect();
    let mut out = HashMap::new();
    let mut results = stream::iter(reads).buffer_unordered(store.config.concurrency);
    while let Some(result) = results.next().await {
        let (chunk, found) = result?;
        out.insert(chunk, found);
    }
    Ok(out)
}

/// Reserves each share's keys: `ADD r :n` on the chunk's head, conditioned
/// on not passing `MAX_KEY` (and counts the log items it will write).
async fn reserve(
    store: &DynamoStore,
    shares: &mut [Share],
    pending: &[usize],
    compact: &mut Vec<(ChunkPos, Head)>,
) -> StoreResult<()> {
    let requests = pending.iter().map(|&i| {
        let chunk = shares[i].chunk;
        let count = shares[i].keys();
        let items = shares[i].log_items();
        async move { (i, reserve_one(store, chunk, count, items).await) }
    });
    // Collected first: a lazy `map` over borrowed items makes the future
    // not `Send` for every lifetime, which `async_trait` requires.
    let requests: Vec<_> = requests.collect();
    let mut results = stream::iter(requests).buffer_unordered(store.config.concurrency);
    let mut first_error = None;
    let mut reserved = Vec::new();
    while let Some((i, result)) = results.next().await {
        match result {
            Ok(head) => {
                reserved.push((i, head.reserved));
                if upkeep(store, &head).is_some() {
                    compact.push((shares[i].chunk, head));
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    drop(results);
    for (i, hi) in reserved {
        let share = &mut shares[i];
        share.hi = hi;
        share.lo = hi - share.keys() + 1;
        share.committed_to = share.lo - 1;
        share.token = token();
        share.reserved = true;
        share.done = false;
    }
    first_error.map_or(Ok(()), Err)
}

/// Reserves `count` keys and counts `items` log items on the head;
/// returns the head after it (its `reserved` is the share's last key).
async fn reserve_one(
    store: &DynamoStore,
    chunk: ChunkPos,
    count: Key,
    items: Key,
) -> StoreResult<Head> {
    let out = store
        .client
        .update_item()
        .table_name(&store.config.table)
        .set_key(Some(key(&chunk_pk(chunk), HEAD_SK)))
        // Touches only `r`, `rt` and `gn`: a reservation never rewrites
        // `c`, which concurrent commits move (a missing `c` reads as 0).
        .update_expression("ADD #r :n, #gn :items SET #rt = :now")
        .condition_expression("attribute_not_exists(#r) OR #r <= :limit")
        .expression_attribute_names("#r", RESERVED)
        .expression_attribute_names("#rt", RESERVED_AT)
        .expression_attribute_names("#gn", LOG_ITEMS)
        .expression_attribute_values(":n", n(count))
        .expression_attribute_values(":items", n(items))
        .expression_attribute_values(":now", n(now_ms()))
        .expression_attribute_values(":limit", n(MAX_KEY - count))
        .return_values(ReturnValue::AllNew)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await;
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            if let Some(UpdateItemError::ConditionalCheckFailedException(_)) = e.as_service_error()
            {
                return Err(StoreError::KeyExhausted {
                    p: chunk.p,
                    q: chunk.q,
                });
            }
            return Err(store.failed(classify("UpdateItem", e)));
        }
    };
    store
        .metrics
        .consumed("UpdateItem", true, out.consumed_capacity());
    let attributes = out.attributes.unwrap_or_default();
    let head = Head::parse(&attributes).map_err(|e| store.failed(e))?;
    store
        .metrics
        .estimated("UpdateItem", true, limits::write_units(head.size));
    Ok(head)
}

/// Where one `BatchWriteItem` call's items belong.
#[derive(Clone, Copy)]
struct Tag {
    share: usize,
    key: Option<Key>,
}

/// Per share: `(call index, largest key of the share in it)` for each call
/// holding its items, in order, and how many from the start have finished.
type Progress = (Vec<(usize, Option<Key>)>, usize);

/// Writes every pending share's items, 25 per call, `concurrency` calls in
/// flight. A chunk's blocks go out in key order, so the calls finished so
/// far from the start cover a prefix of its keys: a long share publishes
/// that prefix as it goes (its writer is visibly alive).
async fn write(store: &DynamoStore, shares: &mut [Share], pending: &[usize]) -> StoreResult<()> {
    let mut items = Vec::new();
    for &i in pending {
        let share = &shares[i];
        let pk = chunk_pk(share.chunk);
        for request in &share.decor {
            items.push((
                request.clone(),
                Tag {
                    share: i,
                    key: None,
                },
            ));
        }
        // Log items of consecutive keys, in key order, each named by its
        // last key.
        for part in share.keyed(share.lo).chunks(LOG_ITEM_BLOCKS) {
            let Some(hi) = part.last().map(|b| b.key) else {
                continue;
            };
            items.push((
                put(schema::log_item(&pk, hi, pack::encode(part)))?,
                Tag {
                    share: i,
                    key: Some(hi),
                },
            ));
        }
    }
    let calls = pack_calls(items);
    // Per share: the calls holding its items (consecutive), the largest key
    // of each, and how many from the start have finished.
    let mut progress: HashMap<usize, Progress> = HashMap::new();
    let mut call_shares: Vec<Vec<usize>> = Vec::with_capacity(calls.len());
    for (c, call) in calls.iter().enumerate() {
        let mut seen: Vec<(usize, Option<Key>)> = Vec::new();
        for (_, tag) in call {
            match seen.iter_mut().find(|(share, _)| *share == tag.share) {
                Some((_, max)) => *max = (*max).max(tag.key),
                None => seen.push((tag.share, tag.key)),
            }
        }
        call_shares.push(seen.iter().map(|(share, _)| *share).collect::<Vec<usize>>());
        for (share, max) in seen {
            progress.entry(share).or_default().0.push((c, max));
        }
    }
    let mut finished = vec![false; calls.len()];

    let failed = AtomicBool::new(false);
    let sends = calls.iter().enumerate().map(|(c, call)| {
        let failed = &failed;
        let requests: Vec<WriteRequest> = call.iter().map(|(r, _)| r.clone()).collect();
        async move {
            // After a failure, start nothing new; let what is in flight end.
            if failed.load(Ordering::Acquire) {
                return (c, Ok(false));
            }
            let result = store.batch_write(requests).await;
            if result.is_err() {
                failed.store(true, Ordering::Release);
            }
            (c, result.map(|()| true))
        }
    });
    let sends: Vec<_> = sends.collect();
    let mut results = stream::iter(sends).buffer_unordered(store.config.concurrency);
    let mut first_error = None;
    while let Some((c, result)) = results.next().await {
        match result {
            Ok(true) => finished[c] = true,
            Ok(false) => continue,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        }
        if first_error.is_some() {
            continue;
        }
        for i in &call_shares[c] {
            let Some((calls_of_share, done)) = progress.get_mut(i) else {
                continue;
            };
            let share = &mut shares[*i];
            if share.keys() <= PROGRESS_COMMIT_KEYS {
                continue;
            }
            let mut prefix_key = None;
            while *done < calls_of_share.len() && finished[calls_of_share[*done].0] {
                prefix_key = calls_of_share[*done].1.or(prefix_key);
                *done += 1;
            }
            let Some(prefix_key) = prefix_key else {
                continue;
            };
            if prefix_key - share.committed_to >= PROGRESS_COMMIT_KEYS
                && *done < calls_of_share.len()
            {
                // One try, no waiting: if an earlier reservation is still
                // open this fails and the final commit waits instead.
                if let Ok(()) = store
                    .move_watermark(
                        share.chunk,
                        share.committed_to,
                        prefix_key,
                        &share.token,
                        None,
                    )
                    .await?
                {
                    debug!(chunk = %share.chunk, prefix_key, "published write progress");
                    share.committed_to = prefix_key;
                }
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The longest wait between two commit attempts, before jitter.
const COMMIT_WAIT_MAX: Duration = Duration::from_millis(200);

/// Moves each share's chunk watermark to its last key, in key order: a
/// share waits while an earlier reservation of its chunk is open, skips one
/// that made no progress for `stuck_after` (or that this store abandoned).
/// Returns the shares whose own reservation was skipped by someone else.
async fn commit(
    store: &DynamoStore,
    shares: &mut [Share],
    pending: &[usize],
) -> StoreResult<Vec<usize>> {
    let stuck_after = store.config.stuck_after;
    let mut open: Vec<usize> = pending.to_vec();
    let mut skipped = Vec::new();
    // Per share: the watermark it waits behind and since when (local clock).
    let mut waiting: HashMap<usize, (Key, Instant)> = HashMap::new();
    // Waits of 4-8 ms at first, growing to 200-400 ms while nobody makes
    // progress (jittered, so that waiting writers do not retry together).
    let waits = ExponentialBuilder::new()
        .with_jitter()
        .with_min_delay(Duration::from_millis(4))
        .with_max_delay(COMMIT_WAIT_MAX)
        .without_max_times();
    let mut delays = waits.build();
    while !open.is_empty() {
        let attempts = open.iter().map(|&i| {
            let share = &shares[i];
            let stuck = waiting
                .get(&i)
                .filter(|(_, since)| since.elapsed() >= stuck_after)
                .map(|(watermark, _)| *watermark);
            let abandoned = waiting
                .get(&i)
                .and_then(|(watermark, _)| store.abandoned_after(share.chunk, *watermark).map(|to| (*watermark, to)));
            let (chunk, lo, hi, token, committed_to) =
                (share.chunk, share.lo, share.hi, share.token.clone(), share.committed_to);
            async move {
                let outcome = match (abandoned, stuck) {
                    // Only this store's own abandoned range, no further:
                    // others may be open right after it.
                    (Some((from, to)), _) if to < lo => {
                        skip(store, chunk, from, to).await.map(|_| Commit::Again)
                    }
                    (_, Some(from)) => {
                        warn!(%chunk, from, to = hi, "skipping a key reservation that made no progress");
                        match skip(store, chunk, from, hi).await {
                            Ok(true) => Ok(Commit::Done),
                            Ok(false) => Ok(Commit::Again),
                            Err(e) => Err(e),
                        }
                    }
                    _ => commit_once(store, chunk, hi, &token, committed_to).await,
                };
                (i, outcome)
            }
        });
        let attempts: Vec<_> = attempts.collect();
        let results: Vec<_> = stream::iter(attempts)
            .buffer_unordered(store.config.concurrency)
            .collect()
            .await;
        let mut next = Vec::new();
        let mut progressed = false;
        let mut first_error = None;
        for (i, outcome) in results {
            // Record every outcome before failing, so that shares that did
            // commit are not reported as abandoned.
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            match outcome {
                Commit::Done => {
                    // A guess for the next small share of this chunk: right
                    // unless someone reserved after this share.
                    store.guess_head(shares[i].chunk, shares[i].hi);
                    shares[i].done = true;
                    shares[i].committed_to = shares[i].hi;
                    waiting.remove(&i);
                    progressed = true;
                }
                Commit::Skipped => {
                    skipped.push(i);
                    waiting.remove(&i);
                }
                Commit::Again => {
                    waiting.remove(&i);
                    next.push(i);
                    progressed = true;
                }
                Commit::Advanced(watermark) => {
                    shares[i].committed_to = watermark;
                    waiting.remove(&i);
                    next.push(i);
                    progressed = true;
                }
                Commit::Behind(watermark) => {
                    match waiting.get(&i) {
                        Some((seen, _)) if *seen == watermark => {}
                        _ => {
                            waiting.insert(i, (watermark, Instant::now()));
                        }
                    }
                    next.push(i);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        open = next;
        if open.is_empty() {
            break;
        }
        if progressed {
            delays = waits.build();
            continue;
        }
        store.metrics.add(COMMIT_WAITS, &[], open.len() as f64);
        let delay = delays.next().unwrap_or(COMMIT_WAIT_MAX);
        tokio::time::sleep(delay).await;
    }
    Ok(skipped)
}

/// Moves the watermark over a reservation nobody will commit, from `from`
/// to `to`. `Ok(false)`: the watermark had moved already.
async fn skip(store: &DynamoStore, chunk: ChunkPos, from: Key, to: Key) -> StoreResult<bool> {
    match store.move_watermark(chunk, from, to, "skip", None).await? {
        Ok(()) => {
            store.metrics.add(SKIPPED, &[], 1.0);
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

/// One attempt to move the watermark from `committed_to` to `hi`.
async fn commit_once(
    store: &DynamoStore,
    chunk: ChunkPos,
    hi: Key,
    token: &str,
    committed_to: Key,
) -> StoreResult<Commit> {
    let head: Head = match store
        .move_watermark(chunk, committed_to, hi, token, None)
        .await?
    {
        Ok(()) => return Ok(Commit::Done),
        Err(head) => head,
    };
    let watermark = head.committed;
    Ok(if head.committed_by == token && watermark >= hi {
        // An earlier attempt of this very commit landed (the SDK retried
        // after a lost response).
        Commit::Done
    } else if head.committed_by == token && watermark > committed_to {
        Commit::Advanced(watermark)
    } else if watermark < committed_to {
        Commit::Behind(watermark)
    } else if watermark == committed_to {
        Commit::Again
    } else {
        Commit::Skipped
    })
}
