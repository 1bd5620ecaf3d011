//! Counters exposed through `BlockStore::counters()`: requests by
//! operation (counted per HTTP attempt by an SDK interceptor), the capacity
//! units DynamoDB reports, and the store's own estimate from item sizes.

use std::sync::Arc;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::ConsumedCapacity;
use world_core::store::{Labels, StoreCounter, StoreCounters};

/// HTTP requests sent, by operation (every SDK attempt, retries included).
pub const REQUESTS: &str = "store_requests_total";
/// Operations that failed after the SDK's retries, by operation and kind.
pub const ERRORS: &str = "store_errors_total";
/// Read capacity units DynamoDB reported (`ReturnConsumedCapacity=TOTAL`).
pub const CONSUMED_RCU: &str = "dynamodb_consumed_read_capacity_units_total";
/// Write capacity units DynamoDB reported (`ReturnConsumedCapacity=TOTAL`).
pub const CONSUMED_WCU: &str = "dynamodb_consumed_write_capacity_units_total";
/// Read capacity units estimated by this store from item sizes.
pub const ESTIMATED_RCU: &str = "dynamodb_estimated_read_capacity_units_total";
/// Write capacity units estimated by this store from item sizes.
pub const ESTIMATED_WCU: &str = "dynamodb_estimated_write_capacity_units_total";
/// Items (or keys) sent in batch requests, by operation.
pub const ITEMS: &str = "dynamodb_batch_items_total";
/// Items or keys DynamoDB left unprocessed and the store sent again.
pub const UNPROCESSED: &str = "dynamodb_unprocessed_items_total";
/// Uncommitted reservations skipped because they made no progress for
/// `stuck_after` (a crashed writer), or were this store's own abandoned ones.
pub const SKIPPED: &str = "dynamodb_reservations_skipped_total";
/// Chunk shares written again under new keys because another writer
/// skipped their reservation.
pub const REWRITES: &str = "dynamodb_rewrites_total";
/// Commit attempts that had to wait for an earlier reservation.
pub const COMMIT_WAITS: &str = "dynamodb_commit_waits_total";
/// Chunk shares appended to the head's log list in one request.
pub const SMALL_SHARES: &str = "dynamodb_small_shares_total";
/// Log lists folded into a log item (the head kept small).
pub const FOLDS: &str = "dynamodb_log_folds_total";
/// Chunk compactions (log folded into a new snapshot).
pub const COMPACTIONS: &str = "dynamodb_compactions_total";
/// Chunk reads started again because a compaction replaced their items.
pub const READ_RESTARTS: &str = "dynamodb_read_restarts_total";

const HELP: &[(&str, &str)] = &[
    (
        REQUESTS,
        "DynamoDB HTTP requests sent (every attempt), by operation.",
    ),
    (
        ERRORS,
        "DynamoDB operations that failed after retries, by operation and error kind.",
    ),
    (
        CONSUMED_RCU,
        "Read capacity units DynamoDB reported as consumed.",
    ),
    (
        CONSUMED_WCU,
        "Write capacity units DynamoDB reported as consumed.",
    ),
    (
        ESTIMATED_RCU,
        "Read capacity units estimated from item sizes (strongly consistent reads).",
    ),
    (
        ESTIMATED_WCU,
        "Write capacity units estimated from item sizes (block writes counted as updates of the key index).",
    ),
    (ITEMS, "Items or keys sent in batch requests, by operation."),
    (
        UNPROCESSED,
        "Items or keys DynamoDB left unprocessed and the store sent again.",
    ),
    (
        SKIPPED,
        "Uncommitted key reservations skipped as abandoned.",
    ),
    (
        REWRITES,
        "Chunk shares written again under new keys after their reservation was skipped.",
    ),
    (
        COMMIT_WAITS,
        "Commit attempts that waited for an earlier reservation of the chunk.",
    ),
    (
        SMALL_SHARES,
        "Chunk shares appended to the head's log list with one UpdateItem.",
    ),
    (COMPACTIONS, "Chunk logs folded into a new snapshot."),
    (
        READ_RESTARTS,
        "Chunk reads started again after a compaction replaced their items.",
    ),
];

/// The counters of one store (shared with its interceptor).
#[derive(Debug)]
pub struct Metrics(StoreCounters);

impl Default for Metrics {
    fn default() -> Self {
        Self(StoreCounters::new(HELP))
    }
}

impl Metrics {
    /// Adds `value` to counter `name` with `labels`.
    pub fn add(&self, name: &'static str, labels: Labels<'_>, value: f64) {
        self.0.add(name, labels, value);
    }

    /// Adds one to counter `name` of operation `op`.
    pub fn incr(&self, name: &'static str, op: &'static str) {
        self.0.incr(name, &[("op", op)]);
    }

    /// Records what DynamoDB reported as consumed by `op`.
    pub fn consumed<'a>(
        &self,
        op: &'static str,
        write: bool,
        capacity: impl IntoIterator<Item = &'a ConsumedCapacity>,
    ) {
        // A fold from +0.0: `sum()` of no floats is -0.0.
        let units = capacity
            .into_iter()
            .filter_map(ConsumedCapacity::capacity_units)
            .fold(0.0, |a, b| a + b);
        self.add(
            if write { CONSUMED_WCU } else { CONSUMED_RCU },
            &[("op", op)],
            units,
        );
    }

    /// Records the store's own estimate for `op`.
    pub fn estimated(&self, op: &'static str, write: bool, units: f64) {
        self.add(
            if write { ESTIMATED_WCU } else { ESTIMATED_RCU },
            &[("op", op)],
            units,
        );
    }

    /// A snapshot for `/metrics`.
    pub fn snapshot(&self) -> Vec<StoreCounter> {
        self.0.snapshot()
    }

    /// The sum of counter `name` over all labels (for tests and benches).
    pub fn total(&self, name: &str) -> f64 {
        self.0.sum(name, None)
    }
}

/// The DynamoDB operations this store uses, as `'static` label values.
const OPERATIONS: &[&str] = &[
    "BatchGetItem",
    "BatchWriteItem",
    "CreateTable",
    "DeleteItem",
    "DescribeTable",
    "GetItem",
    "PutItem",
    "Query",
    "Scan",
    "TransactWriteItems",
    "UpdateItem",
];

/// Counts every HTTP attempt by operation (the JSON protocol names the
/// operation in the `X-Amz-Target` header), so SDK retries are visible.
#[derive(Debug)]
pub struct CountRequests(pub Arc<Metrics>);

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("");
        let op = target.rsplit('.').next().unwrap_or("");
        let op = OPERATIONS
            .iter()
            .copied()
            .find(|known| *known == op)
            .unwrap_or("other");
        self.0.incr(REQUESTS, op);
        Ok(())
    }
}
