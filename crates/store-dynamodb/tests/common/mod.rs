//! Shared helpers of the integration tests: a fresh table per test on the
//! moto_server of the test run.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::config::{BehaviorVersion, Builder, Credentials, Region};
use store_dynamodb::{Config, DynamoStore};
use world_core::conformance::test_service;

/// The variable naming the shared moto_server.
pub const ENDPOINT_VAR: &str = "CRAFT_TEST_DYNAMODB_ENDPOINT";

/// A table name no other test (or earlier run against the same server)
/// uses.
pub fn unique_table(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000
    )
}

/// A config for a fresh table on `endpoint`, created on open.
pub fn config(endpoint: &str, prefix: &str) -> Config {
    let mut config = Config::new(unique_table(prefix));
    config.endpoint = Some(endpoint.to_owned());
    config.region = Some("us-east-1".to_owned());
    config.create = true;
    // moto answers a query by scanning and sorting every item of every
    // partition in Python: a page of the 20,000-block chunk takes seconds
    // there (milliseconds on DynamoDB), so attempts get far longer here
    // than the defaults.
    config.attempt_timeout = std::time::Duration::from_secs(60);
    config.operation_timeout = std::time::Duration::from_secs(120);
    config
}

/// Static credentials (moto accepts any), so that the SDK never walks the
/// credential chain (which could reach for instance metadata off loopback).
pub fn test_credentials(builder: Builder) -> Builder {
    builder.credentials_provider(Credentials::new(
        "AKIDTESTING",
        "testing-secret-key",
        None,
        None,
        "craft-tests",
    ))
}

/// Opens `config` with the test credentials.
pub async fn open(config: Config) -> DynamoStore {
    DynamoStore::open_with(config, test_credentials)
        .await
        .expect("open the DynamoDB store")
}

/// A store on a fresh table of the shared moto_server, or `None` (skip)
/// when it is not configured.
pub async fn fresh_store(prefix: &str) -> Option<DynamoStore> {
    let endpoint = test_service(ENDPOINT_VAR)?;
    Some(open(config(&endpoint, prefix)).await)
}

/// A plain SDK client on the shared moto_server, to set up states the
/// store itself never produces (a crashed writer's reservation).
pub fn raw_client() -> Option<aws_sdk_dynamodb::Client> {
    let endpoint = test_service(ENDPOINT_VAR)?;
    Some(raw_client_on(&endpoint))
}

/// A plain SDK client on `endpoint`.
pub fn raw_client_on(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDTESTING",
            "testing-secret-key",
            None,
            None,
            "craft-tests",
        ))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}
