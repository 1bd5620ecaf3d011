//! The backend conformance suite against moto_server, each check on its own
//! freshly created table. Each check prints the requests and capacity it
//! used when its store is dropped (`cargo test -- --nocapture`).

mod common;

use std::sync::Arc;

use store_dynamodb::DynamoStore;
use store_dynamodb::metrics::{CONSUMED_RCU, CONSUMED_WCU, ESTIMATED_RCU, ESTIMATED_WCU, REQUESTS};
use world_core::BlockStore;
use world_core::store::ForwardingStore;

/// The store, reporting what it consumed when the check is over.
#[derive(Debug)]
struct Reporting {
    check: String,
    store: DynamoStore,
}

impl Drop for Reporting {
    fn drop(&mut self) {
        let s = &self.store;
        eprintln!(
            "capacity {:<45} requests {:>5}  reported RCU {:>6.1} WCU {:>6.1}  estimated RCU {:>6.1} WCU {:>8.1}",
            self.check,
            s.counter_total(REQUESTS),
            s.counter_total(CONSUMED_RCU),
            s.counter_total(CONSUMED_WCU),
            s.counter_total(ESTIMATED_RCU),
            s.counter_total(ESTIMATED_WCU),
        );
    }
}

impl ForwardingStore for Reporting {
    fn target(&self) -> &dyn BlockStore {
        &self.store
    }
}

async fn fresh() -> Option<Arc<dyn BlockStore>> {
    let store = common::fresh_store("conformance").await?;
    // The test harness names each test's thread after the test.
    let check = std::thread::current().name().unwrap_or("?").to_owned();
    Some(Arc::new(Reporting { check, store }))
}

world_core::conformance_tests!(fresh);
