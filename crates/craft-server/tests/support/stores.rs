//! Fresh stores of every backend this binary was built with, for tests that
//! run the same game against each (skipped when the backend's test service
//! is not configured; `scripts/test.sh` configures all of them).

use std::sync::Arc;

use craft_server::config::StoreUrl;
use world_core::BlockStore;
use world_core::conformance::test_service;
use world_core::store::MemoryStore;

/// A unique suffix for tables, schemas and files of one test.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

/// The store URL of a fresh, empty world on `backend`, or `None` to skip.
pub fn fresh_url(backend: &str) -> Option<String> {
    match backend {
        "memory" => Some("memory:".to_owned()),
        "sqlite" => {
            let dir = std::env::temp_dir().join(unique("craft_sqlite"));
            std::fs::create_dir_all(&dir).ok()?;
            Some(format!("sqlite:{}", dir.join("world.db").display()))
        }
        "dynamodb" => {
            let endpoint = test_service("CRAFT_TEST_DYNAMODB_ENDPOINT")?;
            let table = unique("craft").replace('_', "-");
            Some(format!(
                "dynamodb://{table}?region=us-east-1&endpoint={endpoint}&create=true"
            ))
        }
        "postgres" => {
            let url = test_service("CRAFT_TEST_POSTGRES_URL")?;
            let sep = if url.contains('?') { '&' } else { '?' };
            Some(format!("{url}{sep}schema={}", unique("craft")))
        }
        "dataapi" => {
            let endpoint = test_service("CRAFT_TEST_DATAAPI_ENDPOINT")?;
            // No database: dataapi-local's own (the run's database, dropped
            // after the run). Static credentials: the SDK needs some, and
            // must not look for them beyond loopback.
            Some(format!(
                "dataapi://?resource_arn=arn:aws:rds:us-east-1:123456789012:cluster:local\
                 &secret_arn=arn:aws:secretsmanager:us-east-1:123456789012:secret:local\
                 &region=us-east-1&endpoint={endpoint}&schema={}\
                 &access_key_id=local&secret_access_key=local",
                unique("craft")
            ))
        }
        other => panic!("unknown backend {other}"),
    }
}

/// A fresh store on `backend`, or `None` to skip.
pub async fn fresh(backend: &str) -> Option<Arc<dyn BlockStore>> {
    if backend == "memory" {
        return Some(Arc::new(MemoryStore::new()));
    }
    let url = fresh_url(backend)?;
    match craft_server::stores::open(&StoreUrl(url)).await {
        Ok(store) => Some(store),
        Err(e) => panic!("cannot open a fresh {backend} store: {e}"),
    }
}
