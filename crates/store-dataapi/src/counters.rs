//! Counters for `BlockStore::counters()`: Data API requests by operation
//! (every HTTP attempt, counted by an SDK interceptor), their bytes, an
//! estimate of the billed request units, and the store's retries.
//!
//! The price estimate assumes the Data API's published metering: requests
//! are billed per million, each request in 32 KiB units of payload (a
//! 33 KiB request counts twice). Payload is taken here as the request body
//! plus the answer body, rounded up per request; AWS's own bill is the
//! reference.

use std::sync::Arc;

use aws_sdk_rdsdata::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_rdsdata::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_rdsdata::error::BoxError;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use world_core::store::{StoreCounter, StoreCounters};

use crate::error::Op;

/// HTTP requests sent, by Data API operation (every attempt).
pub const REQUESTS: &str = "store_requests_total";
/// Request body bytes sent, by operation.
pub const REQUEST_BYTES: &str = "store_request_bytes_total";
/// Answer body bytes received, by operation.
pub const RESPONSE_BYTES: &str = "store_response_bytes_total";
/// Billed request units estimated from payload sizes (32 KiB units).
pub const BILLED_UNITS: &str = "dataapi_billed_request_units_total";
/// Retries made by the store, by reason.
pub const RETRIES: &str = "store_retries_total";
/// Rows sent, by statement.
pub const ROWS: &str = "dataapi_rows_total";

/// The metering unit of the Data API's price (32 KiB of payload).
pub const BILLING_UNIT_BYTES: u64 = 32 * 1024;

const HELP: &[(&str, &str)] = &[
    (
        REQUESTS,
        "Data API HTTP requests sent (every attempt), by operation.",
    ),
    (
        REQUEST_BYTES,
        "Data API request body bytes sent, by operation.",
    ),
    (
        RESPONSE_BYTES,
        "Data API answer body bytes received, by operation.",
    ),
    (
        BILLED_UNITS,
        "Estimated billed Data API request units (request and answer payload in 32 KiB units).",
    ),
    (
        RETRIES,
        "Data API calls or batches retried by the store, by reason.",
    ),
    (ROWS, "Rows sent to batch and set statements, by statement."),
];

/// The counters of one store (shared with its interceptor).
#[derive(Debug)]
pub struct Counters(StoreCounters);

impl Default for Counters {
    fn default() -> Self {
        Self(StoreCounters::new(HELP))
    }
}

impl Counters {
    /// Counts a retry for `reason`.
    pub fn retry(&self, reason: &'static str) {
        self.0.incr(RETRIES, &[("reason", reason)]);
    }

    /// Counts `n` rows sent to `statement`.
    pub fn rows(&self, statement: &'static str, n: usize) {
        self.0.add(ROWS, &[("statement", statement)], n as f64);
    }

    fn sent(&self, op: Op, bytes: u64) {
        let labels = [("op", op.name())];
        self.0.incr(REQUESTS, &labels);
        self.0.add(REQUEST_BYTES, &labels, bytes as f64);
    }

    fn answered(&self, op: Op, sent: u64, bytes: u64) {
        let labels = [("op", op.name())];
        self.0.add(RESPONSE_BYTES, &labels, bytes as f64);
        let units = (sent + bytes).div_ceil(BILLING_UNIT_BYTES).max(1);
        self.0.add(BILLED_UNITS, &labels, units as f64);
    }

    /// A snapshot for `/metrics`.
    pub fn snapshot(&self) -> Vec<StoreCounter> {
        self.0.snapshot()
    }

    /// The value of counter `name` with label value `label` (any label
    /// name), or the sum over all labels when `label` is `None`.
    pub fn get(&self, name: &str, label: Option<&str>) -> f64 {
        self.0.sum(name, label)
    }
}

/// Counts every HTTP attempt by operation (the REST-JSON protocol names
/// the operation in the path: `/Execute`, `/BatchExecute`, ...), with its
/// bytes, so that retries and splits are visible.
#[derive(Debug)]
pub(crate) struct CountRequests(pub(crate) Arc<Counters>);

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountDataApiRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let path = request.uri().split('?').next().unwrap_or("");
        if let Some(op) = Op::from_path(path) {
            let bytes = request.body().bytes().map_or(0, |b| b.len() as u64);
            self.0.sent(op, bytes);
            // Kept for this attempt's answer (the billing estimate).
            cfg.interceptor_state().store_put(Attempt { op, bytes });
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (Some(response), Some(attempt)) = (context.response(), cfg.load::<Attempt>()) else {
            return Ok(());
        };
        let bytes = response
            .body()
            .bytes()
            .map(|b| b.len() as u64)
            .or_else(|| response.body().content_length())
            .unwrap_or(0);
        self.0.answered(attempt.op, attempt.bytes, bytes);
        Ok(())
    }
}

/// The operation and request size of the current attempt.
#[derive(Clone, Debug)]
struct Attempt {
    op: Op,
    bytes: u64,
}

impl Storable for Attempt {
    type Storer = StoreReplace<Self>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_units_round_up_per_request() {
        let c = Counters::default();
        c.sent(Op::Execute, 100);
        c.answered(Op::Execute, 100, 200);
        c.sent(Op::BatchExecute, 40 * 1024);
        c.answered(Op::BatchExecute, 40 * 1024, 30 * 1024);
        assert_eq!(c.get(REQUESTS, None), 2.0);
        assert_eq!(c.get(BILLED_UNITS, Some("ExecuteStatement")), 1.0);
        assert_eq!(c.get(BILLED_UNITS, Some("BatchExecuteStatement")), 3.0);
        assert_eq!(c.get(REQUEST_BYTES, None), 100.0 + 40.0 * 1024.0);
        c.retry("resuming");
        assert_eq!(c.get(RETRIES, Some("resuming")), 1.0);
        assert!(c.snapshot().iter().all(|s| s.name.ends_with("_total")));
    }
}
