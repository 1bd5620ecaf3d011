//! Creating and checking the table.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput;
use aws_sdk_dynamodb::types::{BillingMode, KeyType, TableStatus};
use backon::{BackoffBuilder, ExponentialBuilder};
use tracing::info;
use world_core::store::{StoreError, StoreResult};

use crate::error::{DynamoError, classify};
use crate::limits::CREATE_TABLE_TIMEOUT;
use crate::schema::{self, KEY, KEY_INDEX, PK, SK};

/// Longest wait between two looks at a table being created.
const TABLE_POLL_MAX: Duration = Duration::from_secs(2);

/// Creates `table` with on-demand billing (the schema in the crate docs,
/// no index) unless it exists, then waits until it is active and checks
/// its schema. Returns whether the table has the first layout's key index.
pub(crate) async fn create(client: &Client, table: &str) -> StoreResult<bool> {
    let request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(schema::attribute_definitions(false)))
        .set_key_schema(Some(schema::key_schema()));
    match request.send().await {
        Ok(_) => info!(table, "created DynamoDB table"),
        Err(e) if e.code() == Some("ResourceInUseException") => {
            info!(table, "DynamoDB table exists already");
        }
        Err(e) => return Err(classify("CreateTable", e).into()),
    }
    wait_active(client, table).await
}

/// Waits until `table` is active, then checks its schema.
async fn wait_active(client: &Client, table: &str) -> StoreResult<bool> {
    let started = Instant::now();
    // Endless: the deadline below ends the wait.
    let mut delays = ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(TABLE_POLL_MAX)
        .without_max_times()
        .build();
    loop {
        let described = describe(client, table).await?;
        let status = described.table().and_then(|t| t.table_status());
        if matches!(
            status,
            Some(TableStatus::Active) | Some(TableStatus::Updating)
        ) {
            return check_schema(&described, table);
        }
        if started.elapsed() > CREATE_TABLE_TIMEOUT {
            return Err(StoreError::Config(format!(
                "table {table} is not active after {CREATE_TABLE_TIMEOUT:?} (status {status:?})"
            )));
        }
        tokio::time::sleep(delays.next().unwrap_or(TABLE_POLL_MAX)).await;
    }
}

async fn describe(client: &Client, table: &str) -> StoreResult<DescribeTableOutput> {
    client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| StoreError::from(classify("DescribeTable", e)))
}

/// Checks that an existing `table` is active and has this store's schema;
/// returns whether it has the first layout's key index.
pub(crate) async fn verify(client: &Client, table: &str) -> StoreResult<bool> {
    let described = describe(client, table).await?;
    let status = described.table().and_then(|t| t.table_status());
    if !matches!(
        status,
        Some(TableStatus::Active) | Some(TableStatus::Updating)
    ) {
        return Err(DynamoError::TableMissing {
            op: "DescribeTable",
            message: format!("table {table} is {status:?}, not active"),
        }
        .into());
    }
    check_schema(&described, table)
}

/// Checks the key schema; `Ok(true)` when the table has the first layout's
/// key index `by_key` (its block items are read through it until folded).
fn check_schema(described: &DescribeTableOutput, table: &str) -> StoreResult<bool> {
    let Some(desc) = described.table() else {
        return Err(StoreError::Config(format!(
            "DescribeTable returned nothing for {table}"
        )));
    };
    let has_keys = |elements: &[aws_sdk_dynamodb::types::KeySchemaElement], range: &str| {
        let hash = elements
            .iter()
            .any(|e| e.attribute_name() == PK && *e.key_type() == KeyType::Hash);
        let sort = elements
            .iter()
            .any(|e| e.attribute_name() == range && *e.key_type() == KeyType::Range);
        hash && sort && elements.len() == 2
    };
    if !has_keys(desc.key_schema(), SK) {
        return Err(StoreError::Config(format!(
            "table {table} does not have the key schema ({PK} HASH, {SK} RANGE) of a Craft world"
        )));
    }
    let index = desc
        .local_secondary_indexes()
        .iter()
        .find(|i| i.index_name() == Some(KEY_INDEX));
    match index {
        None => Ok(false),
        Some(i) if has_keys(i.key_schema(), KEY) => Ok(true),
        Some(_) => Err(StoreError::Config(format!(
            "table {table} has an index {KEY_INDEX} that is not ({PK} HASH, {KEY} RANGE)"
        ))),
    }
}
