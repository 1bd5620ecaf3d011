//! [`DynamoStore`]: the [`BlockStore`] on DynamoDB. The write path (apply)
//! lives in `writer.rs`; this file has the client, the reads and players.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_common::AwsError;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Builder as SdkConfigBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    DeleteRequest, KeysAndAttributes, PutRequest, ReturnConsumedCapacity,
    ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use futures::{StreamExt, TryStreamExt, stream};
use tracing::{debug, warn};
use world_core::ChunkPos;
use world_core::store::{
    ApplyReceipt, Batch, BlockStore, ChunkData, ChunkHead, DraftChange, Key, PlayerRecord,
    StoreCounter, StoreError, StoreResult,
};

use crate::config::Config;
use crate::error::{DynamoError, classify};
use crate::limits::{
    self, MAX_BATCH_GET_KEYS, MAX_NAME_BYTES, MAX_UNPROCESSED_RETRIES, UNPROCESSED_MAX_DELAY,
    UNPROCESSED_MIN_DELAY,
};
use crate::metrics::{CountRequests, ERRORS, ITEMS, Metrics, SKIPPED, UNPROCESSED};
use crate::schema::{
    self, COMMITTED, COMMITTED_AT, COMMITTED_BY, HEAD_SK, Head, Item, KEY, PK, PLAYER_SK, RESERVED,
    RESERVED_AT, SK, W, chunk_pk, key, n, s,
};
use crate::table;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Items DynamoDB kept leaving unprocessed: it is throttling the table.
fn still_unprocessed(op: &'static str, items: usize) -> DynamoError {
    DynamoError::Aws(AwsError::Throttled {
        op,
        code: "UnprocessedItems".to_owned(),
        message: format!("{items} items or keys still unprocessed after the retries"),
        source: None,
    })
}

/// A fresh random token naming one reservation (or one repair).
pub(crate) fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A Craft world in one DynamoDB table (see the crate docs for the design).
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) config: Config,
    pub(crate) metrics: Arc<Metrics>,
    closed: AtomicBool,
    /// Reservations of this store that failed before committing, per chunk:
    /// `(first key, last key)`. Nothing of them will be written any more, so
    /// this store may skip them at once instead of waiting `stuck_after`.
    abandoned: Mutex<HashMap<ChunkPos, Vec<(Key, Key)>>>,
    /// The table has the first layout's key index: chunks whose block items
    /// are not folded into a snapshot yet are read through it too.
    pub(crate) legacy: bool,
    /// The last head seen per chunk with no open reservation: a small
    /// share appends under `r = c = this` in one request (see `writer.rs`).
    heads: Mutex<HashMap<ChunkPos, Key>>,
    /// Appends of this store to one chunk go one at a time (striped by
    /// chunk): concurrent applies of one server to one chunk would
    /// otherwise fail each other's conditions and try again; in turn, each
    /// finds the head the previous one left.
    appends: Vec<tokio::sync::Mutex<()>>,
}

/// Stripes of [`DynamoStore`]'s append locks.
const APPEND_STRIPES: usize = 64;

impl fmt::Debug for DynamoStore {
    // Only what identifies the store: the SDK client's configuration holds
    // the credentials provider.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.config.table)
            .field("region", &self.config.region)
            .field("endpoint", &self.config.endpoint)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The SDK client for `config`: standard credential and region chains,
/// the endpoint override, timeouts and retry attempts of the config.
pub(crate) async fn sdk_client(
    config: &Config,
    metrics: Option<Arc<Metrics>>,
    customize: impl FnOnce(SdkConfigBuilder) -> SdkConfigBuilder,
) -> StoreResult<Client> {
    config
        .validate()
        .map_err(|e| StoreError::Config(e.to_string()))?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(config.connect_timeout)
                .operation_attempt_timeout(config.attempt_timeout)
                .operation_timeout(config.operation_timeout)
                .build(),
        );
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &config.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = &config.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(StoreError::Config(
            "no AWS region: add region=... to the store URL or set AWS_REGION".to_owned(),
        ));
    }
    let mut builder = SdkConfigBuilder::from(&sdk);
    if let Some(metrics) = metrics {
        builder = builder.interceptor(CountRequests(metrics));
    }
    Ok(Client::from_conf(customize(builder).build()))
}

impl DynamoStore {
    /// Connects, creates the table when `config.create` is set (else checks
    /// that it exists with this store's schema).
    pub async fn open(config: Config) -> StoreResult<DynamoStore> {
        Self::open_with(config, |builder| builder).await
    }

    /// [`open`](Self::open), letting the caller adjust the SDK client's
    /// configuration first (add interceptors for metrics or tests, a
    /// credentials provider, an HTTP client with its own trust store).
    pub async fn open_with(
        config: Config,
        customize: impl FnOnce(SdkConfigBuilder) -> SdkConfigBuilder,
    ) -> StoreResult<DynamoStore> {
        let metrics = Arc::new(Metrics::default());
        let client = sdk_client(&config, Some(metrics.clone()), customize).await?;
        let legacy = if config.create {
            table::create(&client, &config.table).await?
        } else {
            table::verify(&client, &config.table).await?
        };
        debug!(table = %config.table, legacy, "opened DynamoDB store");
        Ok(DynamoStore {
            client,
            config,
            metrics,
            closed: AtomicBool::new(false),
            abandoned: Mutex::new(HashMap::new()),
            legacy,
            heads: Mutex::new(HashMap::new()),
            appends: (0..APPEND_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        })
    }

    /// Creates this store's table (if missing) and waits until it is active.
    pub async fn create_table(&self) -> StoreResult<()> {
        table::create(&self.client, &self.config.table)
            .await
            .map(|_| ())
    }

    /// Whether the table has the first layout's key index (it was written
    /// by an earlier version; its block items are read until compaction
    /// folds them into snapshots).
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }

    /// The last head seen for `chunk` with no reservation open (0 when
    /// unknown).
    pub(crate) fn known_head(&self, chunk: ChunkPos) -> Key {
        let heads = self.heads.lock().unwrap_or_else(PoisonError::into_inner);
        heads.get(&chunk).copied().unwrap_or(0)
    }

    /// Waits until this store appends to no chunk of `chunk`'s stripe; the
    /// append holds the guard.
    pub(crate) async fn append_turn(&self, chunk: ChunkPos) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = (chunk.p as i64 * 31 + chunk.q as i64).rem_euclid(APPEND_STRIPES as i64);
        self.appends[stripe as usize].lock().await
    }

    /// Remembers a head seen with `reserved == committed`.
    pub(crate) fn saw_head(&self, chunk: ChunkPos, head: &Head) {
        if head.reserved == head.committed {
            self.guess_head(chunk, head.committed);
        }
    }

    /// Remembers `key` as the likely head of `chunk`.
    pub(crate) fn guess_head(&self, chunk: ChunkPos, key: Key) {
        let mut heads = self.heads.lock().unwrap_or_else(PoisonError::into_inner);
        // Bounded: a guess that is missing costs one failed conditional
        // write, nothing more.
        if heads.len() >= 100_000 {
            heads.clear();
        }
        heads.insert(chunk, key);
    }

    /// The sum of counter `name` over its labels (see [`crate::metrics`]).
    pub fn counter_total(&self, name: &str) -> f64 {
        self.metrics.total(name)
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.config.table
    }

    pub(crate) fn check_open(&self) -> StoreResult<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Counts a failed operation and turns it into a [`StoreError`].
    pub(crate) fn failed(&self, err: DynamoError) -> StoreError {
        let op = err.op();
        let err = StoreError::from(err);
        self.metrics
            .add(ERRORS, &[("op", op), ("kind", err.kind())], 1.0);
        warn!(table = %self.config.table, error = %err, "DynamoDB operation failed");
        err
    }

    // ---- pages, batches --------------------------------------------------

    /// Runs a `Query` to the end, following `LastEvaluatedKey`.
    pub(crate) async fn query_all(
        &self,
        index: Option<&str>,
        forward: bool,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, aws_sdk_dynamodb::types::AttributeValue)>,
    ) -> StoreResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.config.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(condition)
                .scan_index_forward(forward)
                .consistent_read(true)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_limit(self.config.page_size)
                .set_exclusive_start_key(start.take());
            for (placeholder, name) in names {
                request = request.expression_attribute_names(*placeholder, *name);
            }
            for (placeholder, value) in &values {
                request = request.expression_attribute_values(*placeholder, value.clone());
            }
            let out = request
                .send()
                .await
                .map_err(|e| self.failed(classify("Query", e)))?;
            self.metrics
                .consumed("Query", false, out.consumed_capacity());
            let bytes: usize = out.items().iter().map(limits::item_size).sum();
            self.metrics
                .estimated("Query", false, limits::read_units(bytes));
            start = out.last_evaluated_key().filter(|k| !k.is_empty()).cloned();
            items.extend(out.items.unwrap_or_default());
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// One `BatchWriteItem` call of at most 25 requests, sending
    /// `UnprocessedItems` again with jittered exponential backoff.
    pub(crate) async fn batch_write(&self, requests: Vec<WriteRequest>) -> StoreResult<()> {
        batch_write_on(&self.client, &self.config.table, &self.metrics, requests)
            .await
            .map_err(|e| self.failed(e))
    }

    /// Writes `requests` in `BatchWriteItem` calls of at most 25 items (and
    /// 16 MB), `concurrency` calls in flight.
    pub(crate) async fn write_all(&self, requests: Vec<WriteRequest>) -> StoreResult<()> {
        let calls: Vec<_> = pack(requests.into_iter().map(|r| (r, ())))
            .into_iter()
            .map(|call| self.batch_write(call.into_iter().map(|(r, ())| r).collect()))
            .collect();
        stream::iter(calls)
            .buffer_unordered(self.config.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Reads items by key with `BatchGetItem` (at most 100 keys a call,
    /// `UnprocessedKeys` sent again), strongly consistent.
    pub(crate) async fn batch_get(
        &self,
        keys: Vec<Item>,
        projection: &str,
        names: &[(&str, &str)],
    ) -> StoreResult<Vec<Item>> {
        let calls: Vec<_> = keys
            .chunks(MAX_BATCH_GET_KEYS)
            .map(|chunk| self.batch_get_call(chunk.to_vec(), projection, names))
            .collect();
        let pages: Vec<Vec<Item>> = stream::iter(calls)
            .buffer_unordered(self.config.concurrency)
            .try_collect()
            .await?;
        Ok(pages.into_iter().flatten().collect())
    }

    async fn batch_get_call(
        &self,
        keys: Vec<Item>,
        projection: &str,
        names: &[(&str, &str)],
    ) -> StoreResult<Vec<Item>> {
        let mut delays = unprocessed_backoff();
        let mut found = Vec::new();
        let mut pending = keys;
        loop {
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(pending.clone()))
                .consistent_read(true)
                .projection_expression(projection);
            for (placeholder, name) in names {
                request = request.expression_attribute_names(*placeholder, *name);
            }
            let request = request.build().map_err(|e| {
                self.failed(DynamoError::Aws(AwsError::Setup {
                    op: "BatchGetItem",
                    source: Box::new(e),
                }))
            })?;
            self.metrics
                .add(ITEMS, &[("op", "BatchGetItem")], pending.len() as f64);
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.config.table, request)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| self.failed(classify("BatchGetItem", e)))?;
            self.metrics
                .consumed("BatchGetItem", false, out.consumed_capacity());
            let unprocessed = out
                .unprocessed_keys
                .and_then(|mut m| m.remove(&self.config.table))
                .map(|k| k.keys)
                .unwrap_or_default();
            // Every key read costs at least one unit, found or not; items
            // read are charged by their full size, not the projection (head
            // items are far below 4 KB).
            self.metrics.estimated(
                "BatchGetItem",
                false,
                (pending.len() - unprocessed.len().min(pending.len())) as f64,
            );
            found.extend(
                out.responses
                    .and_then(|mut m| m.remove(&self.config.table))
                    .unwrap_or_default(),
            );
            if unprocessed.is_empty() {
                return Ok(found);
            }
            self.metrics.add(
                UNPROCESSED,
                &[("op", "BatchGetItem")],
                unprocessed.len() as f64,
            );
            let Some(delay) = delays.next() else {
                return Err(self.failed(still_unprocessed("BatchGetItem", unprocessed.len())));
            };
            tokio::time::sleep(delay).await;
            pending = unprocessed;
        }
    }

    // ---- heads -----------------------------------------------------------

    /// Moves `c` from `expected` to `new` (a commit, a skip or a repair).
    /// `Ok(Err(head))`: the condition failed; `head` is the head as found.
    pub(crate) async fn move_watermark(
        &self,
        chunk: ChunkPos,
        expected: Key,
        new: Key,
        writer: &str,
        also_reserved: Option<Key>,
    ) -> StoreResult<Result<(), Head>> {
        // A chunk's head has no `c` until its first commit.
        let mut condition = if expected == 0 {
            "(attribute_not_exists(#c) OR #c = :expected)".to_owned()
        } else {
            "#c = :expected".to_owned()
        };
        if also_reserved.is_some() {
            condition.push_str(" AND #r = :reserved");
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(key(&chunk_pk(chunk), HEAD_SK)))
            .update_expression("SET #c = :new, #ct = :now, #cw = :writer")
            .condition_expression(condition)
            .expression_attribute_names("#c", COMMITTED)
            .expression_attribute_names("#ct", COMMITTED_AT)
            .expression_attribute_names("#cw", COMMITTED_BY)
            .expression_attribute_values(":expected", n(expected))
            .expression_attribute_values(":new", n(new))
            .expression_attribute_values(":now", n(now_ms()))
            .expression_attribute_values(":writer", s(writer))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if let Some(reserved) = also_reserved {
            request = request
                .expression_attribute_names("#r", RESERVED)
                .expression_attribute_values(":reserved", n(reserved));
        }
        // A conditional write is charged whether or not its condition holds.
        self.metrics.estimated("UpdateItem", true, 1.0);
        match request.send().await {
            Ok(out) => {
                self.metrics
                    .consumed("UpdateItem", true, out.consumed_capacity());
                Ok(Ok(()))
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    let head = match failed.item() {
                        Some(item) => Head::parse(item).map_err(|e| self.failed(e))?,
                        None => self.read_head(chunk).await?,
                    };
                    Ok(Err(head))
                }
                _ => Err(self.failed(classify("UpdateItem", e))),
            },
        }
    }

    /// Reads a chunk's head item (strongly consistent).
    pub(crate) async fn read_head(&self, chunk: ChunkPos) -> StoreResult<Head> {
        let out = self
            .client
            .get_item()
            .table_name(&self.config.table)
            .set_key(Some(key(&chunk_pk(chunk), HEAD_SK)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| self.failed(classify("GetItem", e)))?;
        self.metrics
            .consumed("GetItem", false, out.consumed_capacity());
        self.metrics.estimated(
            "GetItem",
            false,
            limits::read_units(out.item().map_or(0, limits::item_size)),
        );
        match out.item() {
            Some(item) => Head::parse(item).map_err(|e| self.failed(e)),
            None => Ok(Head::default()),
        }
    }

    /// Records reservations that will never be written (after a failure).
    pub(crate) fn abandon(&self, chunk: ChunkPos, from: Key, to: Key) {
        if from > to {
            return;
        }
        let mut abandoned = self
            .abandoned
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ranges = abandoned.entry(chunk).or_default();
        ranges.push((from, to));
        // Bounded: a store that keeps failing must not grow without end;
        // forgetting a range only means waiting `stuck_after` for it.
        if ranges.len() > 64 {
            ranges.remove(0);
        }
    }

    /// The abandoned range of this store that starts right above
    /// `committed`, if any (dropping ranges the watermark has passed).
    pub(crate) fn abandoned_after(&self, chunk: ChunkPos, committed: Key) -> Option<Key> {
        let mut abandoned = self
            .abandoned
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ranges = abandoned.get_mut(&chunk)?;
        ranges.retain(|&(_, to)| to > committed);
        let found = ranges
            .iter()
            .find(|&&(from, _)| from == committed + 1)
            .map(|&(_, to)| to);
        if ranges.is_empty() {
            abandoned.remove(&chunk);
        }
        found
    }

    /// Advances the watermark of a chunk over a reservation nobody will
    /// commit: one of this store's abandoned ones, or one that made no
    /// progress for `stuck_after` (its writer crashed). Returns the new
    /// head, or `None` when there was nothing to repair or someone else
    /// moved the head first.
    pub(crate) async fn repair(&self, chunk: ChunkPos, head: &Head) -> StoreResult<Option<Key>> {
        if head.reserved <= head.committed {
            return Ok(None);
        }
        let (to, also_reserved) = if let Some(to) = self.abandoned_after(chunk, head.committed) {
            (to, None)
        } else if head.is_stuck(now_ms(), duration_ms(self.config.stuck_after)) {
            (head.reserved, Some(head.reserved))
        } else {
            return Ok(None);
        };
        match self
            .move_watermark(chunk, head.committed, to, "skip", also_reserved)
            .await?
        {
            Ok(()) => {
                self.metrics.add(SKIPPED, &[], 1.0);
                warn!(%chunk, from = head.committed, to, "skipped an abandoned key reservation");
                Ok(Some(to))
            }
            Err(_) => Ok(None),
        }
    }
}

/// Pauses before sending `UnprocessedItems`/`UnprocessedKeys` again:
/// jittered, exponential, bounded in number.
fn unprocessed_backoff() -> backon::ExponentialBackoff {
    backon::BackoffBuilder::build(
        backon::ExponentialBuilder::new()
            .with_jitter()
            .with_min_delay(UNPROCESSED_MIN_DELAY)
            .with_max_delay(UNPROCESSED_MAX_DELAY)
            .with_max_times(MAX_UNPROCESSED_RETRIES),
    )
}

/// One `BatchWriteItem` call of at most 25 requests on `table`, sending
/// `UnprocessedItems` again with jittered exponential backoff. A free
/// function, so that deletions after a compaction's grace can run in a
/// task of their own.
pub(crate) async fn batch_write_on(
    client: &Client,
    table: &str,
    metrics: &Metrics,
    requests: Vec<WriteRequest>,
) -> Result<(), DynamoError> {
    debug_assert!(requests.len() <= limits::MAX_BATCH_WRITE_ITEMS);
    let mut delays = unprocessed_backoff();
    let mut pending = requests;
    loop {
        metrics.add(ITEMS, &[("op", "BatchWriteItem")], pending.len() as f64);
        let out = client
            .batch_write_item()
            .request_items(table, pending.clone())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| classify("BatchWriteItem", e))?;
        metrics.consumed("BatchWriteItem", true, out.consumed_capacity());
        let unprocessed = out
            .unprocessed_items
            .and_then(|mut m| m.remove(table))
            .unwrap_or_default();
        let sent = pending.iter().map(estimate_write).fold(0.0, |a, b| a + b);
        let left = unprocessed
            .iter()
            .map(estimate_write)
            .fold(0.0, |a, b| a + b);
        metrics.estimated("BatchWriteItem", true, sent - left);
        if unprocessed.is_empty() {
            return Ok(());
        }
        metrics.add(
            UNPROCESSED,
            &[("op", "BatchWriteItem")],
            unprocessed.len() as f64,
        );
        let Some(delay) = delays.next() else {
            return Err(still_unprocessed("BatchWriteItem", unprocessed.len()));
        };
        debug!(
            items = unprocessed.len(),
            ?delay,
            "re-sending unprocessed items"
        );
        tokio::time::sleep(delay).await;
        pending = unprocessed;
    }
}

pub(crate) fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The store's estimate of the write units of one `BatchWriteItem` entry:
/// the item's size in 1 KB units; a block item also writes the key index,
/// counted as an update (remove the old index entry, add the new one). A
/// deletion is charged for the deleted item, assumed below 1 KB.
pub(crate) fn estimate_write(request: &WriteRequest) -> f64 {
    if let Some(put) = request.put_request() {
        let item = put.item();
        let mut units = limits::write_units(limits::item_size(item));
        if item.contains_key(KEY) {
            let entry: usize = [PK, SK, KEY, W]
                .iter()
                .filter_map(|name| item.get(*name).map(|v| name.len() + limits::value_size(v)))
                .sum();
            units += 2.0 * limits::write_units(entry);
        }
        units
    } else {
        1.0
    }
}

/// Packs write requests into `BatchWriteItem` calls of at most 25 items and
/// 16 MB, keeping their order (so a chunk's keys stay in ascending order
/// across consecutive calls).
pub(crate) fn pack<T>(
    requests: impl IntoIterator<Item = (WriteRequest, T)>,
) -> Vec<Vec<(WriteRequest, T)>> {
    let mut calls: Vec<Vec<(WriteRequest, T)>> = Vec::new();
    let mut bytes = 0;
    for (request, tag) in requests {
        let size = limits::write_request_size(&request);
        let full = calls.last().is_none_or(|call| {
            call.len() >= limits::MAX_BATCH_WRITE_ITEMS
                || bytes + size > limits::MAX_BATCH_WRITE_BYTES
        });
        if full {
            calls.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(call) = calls.last_mut() {
            call.push((request, tag));
        }
    }
    calls
}

/// A put of `item`.
pub(crate) fn put(item: Item) -> StoreResult<WriteRequest> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| StoreError::other("cannot build a PutRequest", e))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

/// A deletion of the item with `key`.
pub(crate) fn delete(key: Item) -> StoreResult<WriteRequest> {
    let delete = DeleteRequest::builder()
        .set_key(Some(key))
        .build()
        .map_err(|e| StoreError::other("cannot build a DeleteRequest", e))?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}

/// Refuses user and player names too long to store.
pub(crate) fn check_name(name: &str, what: &str) -> StoreResult<()> {
    if name.len() > MAX_NAME_BYTES {
        return Err(StoreError::Invalid(format!(
            "{what} is {} bytes, more than {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    Ok(())
}

#[async_trait]
impl BlockStore for DynamoStore {
    fn backend(&self) -> &'static str {
        "dynamodb"
    }

    async fn load_chunk(&self, chunk: ChunkPos, since: Key) -> StoreResult<ChunkData> {
        self.check_open()?;
        let read = self.read_chunk(chunk, since).await?;
        Ok(ChunkData {
            blocks: read.blocks,
            lights: read.lights,
            signs: read.signs,
            head: read.head.committed,
        })
    }

    async fn apply(&self, batch: &Batch) -> StoreResult<ApplyReceipt> {
        self.check_open()?;
        crate::writer::apply(self, batch).await
    }

    async fn changed_chunks(&self, held: &[ChunkHead]) -> StoreResult<Vec<ChunkHead>> {
        self.check_open()?;
        // BatchGetItem refuses duplicate keys: ask once per chunk, against
        // the oldest key held for it.
        let mut wanted: BTreeMap<ChunkPos, Key> = BTreeMap::new();
        for h in held {
            wanted
                .entry(h.chunk)
                .and_modify(|k| *k = (*k).min(h.head))
                .or_insert(h.head);
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let keys = wanted.keys().map(|c| key(&chunk_pk(*c), HEAD_SK)).collect();
        let items = self
            .batch_get(
                keys,
                "#pk, #c, #r, #rt, #ct",
                &[
                    ("#pk", PK),
                    ("#c", COMMITTED),
                    ("#r", RESERVED),
                    ("#rt", RESERVED_AT),
                    ("#ct", COMMITTED_AT),
                ],
            )
            .await?;
        let mut changed = Vec::new();
        for item in &items {
            let pk = schema::get_s(item, PK).map_err(|e| self.failed(e))?;
            let chunk = schema::parse_chunk_pk(pk).ok_or_else(|| {
                self.failed(DynamoError::Corrupt(format!("bad chunk key {pk:?}")))
            })?;
            let head = Head::parse(item).map_err(|e| self.failed(e))?;
            let current = match self.repair(chunk, &head).await? {
                Some(repaired) => repaired,
                None => head.committed,
            };
            if wanted.get(&chunk).is_some_and(|held| current > *held) {
                changed.push(ChunkHead {
                    chunk,
                    head: current,
                });
            }
        }
        changed.sort_unstable();
        Ok(changed)
    }

    async fn list_chunks(&self) -> StoreResult<Vec<ChunkHead>> {
        self.check_open()?;
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.config.table)
                .filter_expression("#sk = :head")
                .projection_expression("#pk, #c")
                .expression_attribute_names("#sk", SK)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#c", COMMITTED)
                .expression_attribute_values(":head", s(HEAD_SK))
                .consistent_read(true)
                .set_limit(self.config.page_size)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| self.failed(classify("Scan", e)))?;
            self.metrics
                .consumed("Scan", false, page.consumed_capacity());
            // A lower bound: a scan is charged for every item it reads,
            // including those the filter drops, whose size it does not return.
            let bytes: usize = page.items().iter().map(limits::item_size).sum();
            self.metrics
                .estimated("Scan", false, limits::read_units(bytes));
            for item in page.items() {
                let pk = schema::get_s(item, PK).map_err(|e| self.failed(e))?;
                let Some(chunk) = schema::parse_chunk_pk(pk) else {
                    continue;
                };
                let head: Key = schema::get_n_or(item, COMMITTED, 0).map_err(|e| self.failed(e))?;
                if head > 0 {
                    out.push(ChunkHead { chunk, head });
                }
            }
            start = page.last_evaluated_key().filter(|k| !k.is_empty()).cloned();
            if start.is_none() {
                break;
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    async fn load_player(&self, name: &str) -> StoreResult<Option<PlayerRecord>> {
        self.check_open()?;
        check_name(name, "player name")?;
        let out = self
            .client
            .get_item()
            .table_name(&self.config.table)
            .set_key(Some(key(&schema::player_pk(name), PLAYER_SK)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| self.failed(classify("GetItem", e)))?;
        self.metrics
            .consumed("GetItem", false, out.consumed_capacity());
        self.metrics.estimated(
            "GetItem",
            false,
            limits::read_units(out.item().map_or(0, limits::item_size)),
        );
        match out.item() {
            Some(item) => Ok(Some(
                schema::parse_player(name, item).map_err(|e| self.failed(e))?,
            )),
            None => Ok(None),
        }
    }

    async fn save_players(&self, players: &[PlayerRecord]) -> StoreResult<()> {
        self.check_open()?;
        // One write per name (BatchWriteItem refuses duplicate keys); the
        // last record of a name wins.
        let mut latest: BTreeMap<&str, &PlayerRecord> = BTreeMap::new();
        for p in players {
            check_name(&p.name, "player name")?;
            latest.insert(&p.name, p);
        }
        let requests = latest
            .values()
            .map(|p| put(schema::player_item(p).map_err(StoreError::Invalid)?))
            .collect::<StoreResult<Vec<_>>>()?;
        self.write_all(requests).await
    }

    async fn load_draft(&self, owner: &str) -> StoreResult<Vec<DraftChange>> {
        self.draft_load(owner).await
    }

    async fn put_draft(&self, owner: &str, changes: &[DraftChange]) -> StoreResult<()> {
        self.draft_put(owner, changes).await
    }

    async fn delete_draft(&self, owner: &str) -> StoreResult<()> {
        self.draft_delete(owner).await
    }

    fn counters(&self) -> Vec<StoreCounter> {
        self.metrics.snapshot()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.check_open()?;
        // An eventually consistent read of a key that never exists: half a
        // read unit, and it fails when the table is missing.
        let out = self
            .client
            .get_item()
            .table_name(&self.config.table)
            .set_key(Some(key("#ping", "#ping")))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| self.failed(classify("GetItem", e)))?;
        self.metrics
            .consumed("GetItem", false, out.consumed_capacity());
        self.metrics.estimated("GetItem", false, 0.5);
        Ok(())
    }

    async fn close(&self) -> StoreResult<()> {
        // The SDK client holds no session: pooled connections close when the
        // store is dropped. Later calls fail with `Closed`.
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}
