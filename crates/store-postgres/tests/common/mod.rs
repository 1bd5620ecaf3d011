//! Shared test helpers: a schema per test on `CRAFT_TEST_POSTGRES_URL`,
//! dropped when the store is dropped.

#![allow(dead_code)]

pub mod cluster;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use store_postgres::{Config, PostgresStore};
use world_core::BlockStore;
use world_core::store::ForwardingStore;

/// The test database URL, or `None` to skip.
pub fn url() -> Option<String> {
    world_core::conformance::test_service("CRAFT_TEST_POSTGRES_URL")
}

/// A name unique to this process and call: `{tag}_{pid}_{n}_{nanos}`.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "t_{tag}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `url` with the query parameters `params` set (replacing those of the
/// same names).
pub fn with_params(url: &str, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(url).expect("test URL");
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(name, _)| !params.iter().any(|(n, _)| n == name))
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .extend_pairs(params);
    url.into()
}

/// `url`'s settings, without reading the environment.
pub fn config(url: &str) -> Config {
    Config::from_env_and_url(url, |_| None).expect("test config")
}

/// Settings for tests on `schema`: small pool, short timeouts, `extra`
/// query parameters, no environment.
pub fn settings(url: &str, schema: &str, extra: &[(&str, &str)]) -> Config {
    let url = with_params(
        url,
        &[
            ("schema", schema),
            ("application_name", schema),
            ("pool_size", "3"),
            ("connect_timeout", "5s"),
            ("statement_timeout", "20s"),
        ],
    );
    config(&with_params(&url, extra))
}

/// An administrative connection (no TLS) to `url`.
pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Drops `schema` from a thread of its own (usable from `Drop`).
pub fn drop_schema(url: &str, schema: &str) {
    let url = url.to_owned();
    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    let done = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if let Ok((client, connection)) =
                tokio_postgres::connect(&url, tokio_postgres::NoTls).await
            {
                tokio::spawn(connection);
                let _ = client.batch_execute(&sql).await;
            }
        });
    });
    let _ = done.join();
}

/// A store on a fresh schema, whose schema is dropped with it.
#[derive(Debug)]
pub struct TestStore {
    pub store: PostgresStore,
    pub url: String,
    pub schema: String,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        drop_schema(&self.url, &self.schema);
    }
}

/// A store on a new schema named after `tag`, or `None` to skip.
pub async fn fresh(tag: &str) -> Option<TestStore> {
    let url = url()?;
    let schema = unique(tag);
    let config = settings(&url, &schema, &[]);
    let store = PostgresStore::open(config).await.expect("open store");
    Some(TestStore { store, url, schema })
}

/// `fresh` as the conformance suite wants it.
pub async fn fresh_dyn() -> Option<Arc<dyn BlockStore>> {
    fresh("conf")
        .await
        .map(|s| Arc::new(s) as Arc<dyn BlockStore>)
}

impl ForwardingStore for TestStore {
    fn target(&self) -> &dyn BlockStore {
        &self.store
    }
}

/// The value of counter `name{op=op}`.
pub fn counter(store: &dyn BlockStore, name: &str, op: &str) -> f64 {
    store
        .counters()
        .iter()
        .find(|c| c.name == name && c.labels.iter().any(|(k, v)| *k == "op" && v == op))
        .map_or(0.0, |c| c.value)
}
