//! Shared test helpers: stores in a schema of their own on the run's
//! dataapi-local (`CRAFT_TEST_DATAAPI_ENDPOINT`), private dataapi-local
//! servers for tests that change its behaviour (started in process over
//! `CRAFT_TEST_POSTGRES_URL`), and a raw SDK client for setting up data.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_sdk_rdsdata::config::{Credentials, Region};
use dataapi_local::{Options, RunningServer};
use store_dataapi::{Config, DataApiStore};
use world_core::BlockStore;
use world_core::conformance::test_service;

pub const RESOURCE_ARN: &str = "arn:aws:rds:us-east-1:123456789012:cluster:craft-test";
pub const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:craft-test";

/// The run's dataapi-local, or `None` to skip.
pub fn endpoint() -> Option<String> {
    test_service("CRAFT_TEST_DATAAPI_ENDPOINT")
}

/// A name unique to this process and call.
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

/// The URL of a store on `endpoint` in `schema`. No database: the
/// server's own (the run's database, dropped after the run). Static
/// credentials so that the SDK never looks further (instance metadata).
pub fn url(endpoint: &str, schema: &str, extra: &str) -> String {
    format!(
        "dataapi://?resource_arn={RESOURCE_ARN}&secret_arn={SECRET_ARN}&region=us-east-1\
         &endpoint={endpoint}&schema={schema}&access_key_id=local&secret_access_key=local{extra}"
    )
}

/// A config for `schema` on `endpoint`, the environment ignored.
pub fn config(endpoint: &str, schema: &str, extra: &str) -> Config {
    Config::from_url_with_env(&url(endpoint, schema, extra), |_| None).expect("valid test URL")
}

/// A fresh store in a schema of its own on the run's dataapi-local.
pub async fn fresh_with(extra: &str) -> Option<DataApiStore> {
    let endpoint = endpoint()?;
    let schema = unique("da");
    Some(
        DataApiStore::open(config(&endpoint, &schema, extra))
            .await
            .expect("open a Data API store"),
    )
}

/// For the conformance suite.
pub async fn fresh_dyn() -> Option<Arc<dyn BlockStore>> {
    Some(Arc::new(fresh_with("").await?))
}

/// A dataapi-local of this test only, over the test PostgreSQL, with
/// `tune` applied to the service's defaults.
pub async fn private_server(tune: impl FnOnce(&mut Options)) -> Option<RunningServer> {
    let postgres = test_service("CRAFT_TEST_POSTGRES_URL")?;
    let mut options = Options::new(postgres);
    tune(&mut options);
    Some(
        dataapi_local::start(options)
            .await
            .expect("start a private dataapi-local"),
    )
}

/// Arms (or, with zeros, disarms) the server's simulated resume:
/// `POST /_local/resuming`.
pub async fn arm_resuming(endpoint: &str, body: serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{endpoint}/_local/resuming"))
        .json(&body)
        .send()
        .await
        .expect("admin endpoint answers");
    assert!(response.status().is_success(), "{}", response.status());
}

/// An SDK client on `endpoint` without retries, to set up or inspect
/// data behind the store's back.
pub async fn raw_client(endpoint: &str) -> aws_sdk_rdsdata::Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_rdsdata::Client::new(&sdk)
}

/// Runs `sql` (no parameters) through `client`.
pub async fn raw_execute(
    client: &aws_sdk_rdsdata::Client,
    sql: &str,
) -> Result<
    aws_sdk_rdsdata::operation::execute_statement::ExecuteStatementOutput,
    aws_sdk_rdsdata::error::SdkError<
        aws_sdk_rdsdata::operation::execute_statement::ExecuteStatementError,
    >,
> {
    client
        .execute_statement()
        .resource_arn(RESOURCE_ARN)
        .secret_arn(SECRET_ARN)
        .sql(sql)
        .send()
        .await
}

/// A loopback HTTP/1.1 proxy in front of a dataapi-local that can lose
/// the answer to the next `CommitTransaction`: the commit reaches the
/// server and runs, and the client's connection is closed instead of
/// answered (a network failure after the commit).
pub struct LossyProxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    lose_next_commit: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl LossyProxy {
    /// Starts a proxy to `upstream` (`127.0.0.1:PORT`).
    pub async fn start(upstream: std::net::SocketAddr) -> LossyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let lose = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = lose.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream, flag.clone()));
            }
        });
        LossyProxy {
            endpoint,
            lose_next_commit: lose,
            task,
        }
    }

    /// Loses the answer to the next commit.
    pub fn lose_next_commit(&self) {
        self.lose_next_commit.store(true, Ordering::SeqCst);
    }

    /// Whether an armed loss has happened.
    pub fn lost(&self) -> bool {
        !self.lose_next_commit.load(Ordering::SeqCst)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 message (headers, then a `content-length` body).
async fn read_message(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    buffer: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let total = end + 4 + length;
            while buffer.len() < total {
                let mut chunk = [0u8; 65536];
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            let rest = buffer.split_off(total);
            return Some(std::mem::replace(buffer, rest));
        }
        let mut chunk = [0u8; 65536];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

async fn serve(
    mut client: tokio::net::TcpStream,
    upstream: std::net::SocketAddr,
    lose: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::AsyncWriteExt;
    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let (mut from_client, mut from_server) = (Vec::new(), Vec::new());
    while let Some(request) = read_message(&mut client, &mut from_client).await {
        let commit = request.starts_with(b"POST /CommitTransaction ");
        if server.write_all(&request).await.is_err() {
            return;
        }
        let Some(response) = read_message(&mut server, &mut from_server).await else {
            return;
        };
        if commit && lose.swap(false, Ordering::SeqCst) {
            // The commit ran; its answer is lost with the connection.
            return;
        }
        if client.write_all(&response).await.is_err() {
            return;
        }
    }
}
