//! A dataapi-local server started in process on a free port over the test
//! PostgreSQL, an `aws-sdk-rdsdata` client pointed at it, and a schema of
//! the test's own.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_rdsdata::config::{Credentials, Region};
use aws_sdk_rdsdata::types::{Field, SqlParameter, TypeHint};
use dataapi_local::{Options, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const RESOURCE_ARN: &str = "arn:aws:rds:us-east-1:123456789012:cluster:dataapi-local-test";
pub const SECRET_ARN: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:dataapi-local-test-AbCdEf";

pub struct Harness {
    pub server: RunningServer,
    pub client: aws_sdk_rdsdata::Client,
    /// A schema only this test uses; SQL names tables `{schema}.t`.
    pub schema: String,
    pub pg: tokio_postgres::Client,
    pub pg_url: String,
}

/// The test PostgreSQL, or `None` to skip (see `test_service`).
pub fn postgres_url() -> Option<String> {
    world_core::conformance::test_service("CRAFT_TEST_POSTGRES_URL")
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

/// Starts a server with the service's defaults changed by `tune`.
pub async fn harness_with(tune: impl FnOnce(&mut Options)) -> Option<Harness> {
    let pg_url = postgres_url()?;
    let mut options = Options::new(pg_url.clone());
    tune(&mut options);
    let server = dataapi_local::start(options).await.expect("server starts");
    let sdk_config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDLOCAL",
            "local-secret",
            None,
            None,
            "dataapi-local-tests",
        ))
        .endpoint_url(server.endpoint())
        // The tests want to see every error the server sends, not a retry.
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let client = aws_sdk_rdsdata::Client::new(&sdk_config);
    let schema = format!("dal_{:016x}", rand_u64());
    let pg = connect(&pg_url).await;
    pg.batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create schema");
    Some(Harness {
        server,
        client,
        schema,
        pg,
        pg_url,
    })
}

pub async fn harness() -> Option<Harness> {
    harness_with(|_| {}).await
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

impl Harness {
    /// `{schema}.{name}`.
    pub fn t(&self, name: &str) -> String {
        format!("{}.{}", self.schema, name)
    }

    pub fn exec(
        &self,
        sql: impl Into<String>,
    ) -> aws_sdk_rdsdata::operation::execute_statement::builders::ExecuteStatementFluentBuilder
    {
        self.client
            .execute_statement()
            .resource_arn(RESOURCE_ARN)
            .secret_arn(SECRET_ARN)
            .sql(sql)
    }

    pub fn batch(&self, sql: impl Into<String>) -> aws_sdk_rdsdata::operation::batch_execute_statement::builders::BatchExecuteStatementFluentBuilder{
        self.client
            .batch_execute_statement()
            .resource_arn(RESOURCE_ARN)
            .secret_arn(SECRET_ARN)
            .sql(sql)
    }

    pub async fn begin(&self) -> String {
        self.client
            .begin_transaction()
            .resource_arn(RESOURCE_ARN)
            .secret_arn(SECRET_ARN)
            .send()
            .await
            .expect("begin")
            .transaction_id()
            .expect("an id")
            .to_owned()
    }

    pub async fn commit(
        &self,
        id: &str,
    ) -> Result<
        String,
        aws_sdk_rdsdata::error::SdkError<
            aws_sdk_rdsdata::operation::commit_transaction::CommitTransactionError,
        >,
    > {
        self.client
            .commit_transaction()
            .resource_arn(RESOURCE_ARN)
            .secret_arn(SECRET_ARN)
            .transaction_id(id)
            .send()
            .await
            .map(|o| o.transaction_status().unwrap_or_default().to_owned())
    }

    pub async fn rollback(
        &self,
        id: &str,
    ) -> Result<
        String,
        aws_sdk_rdsdata::error::SdkError<
            aws_sdk_rdsdata::operation::rollback_transaction::RollbackTransactionError,
        >,
    > {
        self.client
            .rollback_transaction()
            .resource_arn(RESOURCE_ARN)
            .secret_arn(SECRET_ARN)
            .transaction_id(id)
            .send()
            .await
            .map(|o| o.transaction_status().unwrap_or_default().to_owned())
    }

    /// `SELECT count(*)` over the API.
    pub async fn count(&self, table: &str) -> i64 {
        let out = self
            .exec(format!("SELECT count(*) FROM {}", self.t(table)))
            .send()
            .await
            .expect("count");
        match &out.records()[0][0] {
            Field::LongValue(n) => *n,
            other => panic!("count is {other:?}"),
        }
    }

    /// Drops the schema and stops the server.
    pub async fn finish(self) {
        self.pg
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await
            .expect("drop schema");
        self.server.shutdown().await.expect("clean shutdown");
    }

    /// A raw HTTP POST (to see status and headers the SDK hides).
    pub async fn raw_post(&self, path: &str, body: &str) -> RawResponse {
        raw_request(self.server.local_addr(), "POST", path, body).await
    }
}

pub fn param(name: &str, value: Field) -> SqlParameter {
    SqlParameter::builder().name(name).value(value).build()
}

pub fn hinted(name: &str, value: &str, hint: TypeHint) -> SqlParameter {
    SqlParameter::builder()
        .name(name)
        .value(Field::StringValue(value.to_owned()))
        .type_hint(hint)
        .build()
}

pub fn string(value: &str) -> Field {
    Field::StringValue(value.to_owned())
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// HTTP/1.1 with `Connection: close`, enough for these assertions.
pub async fn raw_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> RawResponse {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = if body.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(body).expect("a JSON body")
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

/// Polls `check` until it holds, for at most `limit` (a bound, not a timing
/// assertion).
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
