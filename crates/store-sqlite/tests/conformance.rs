//! The shared conformance suite, each check on a fresh temporary file.

mod common;

use common::TempStore;

async fn fresh() -> Option<TempStore> {
    Some(TempStore::new().await)
}

world_core::conformance_tests!(fresh);
world_core::history_conformance_tests!(fresh);
