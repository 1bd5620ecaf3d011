//! Test support: an in-process server on port 0, line clients and the
//! transcript replayer.
#![allow(dead_code)]

pub mod admin;
pub mod fakes;
pub mod process;
pub mod proxy;
pub mod stores;
pub mod transcript;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use craft_server::config::{Config, StoreUrl};
use craft_server::lifecycle::Switch;
use craft_server::server::{self, Shared};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use world_core::BlockStore;

/// The shared fixtures directory (`<repo>/../shared/fixtures`, or
/// `$CRAFT_FIXTURES`).
pub fn fixtures() -> PathBuf {
    if let Some(dir) = std::env::var_os("CRAFT_FIXTURES") {
        return PathBuf::from(dir);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = repo.join("../shared/fixtures");
    assert!(
        dir.is_dir(),
        "fixtures not found at {} (set CRAFT_FIXTURES)",
        dir.display()
    );
    dir
}

/// A server running in this process, on its own runtime and threads (as
/// a separate process would be), so that its scheduling does not depend on
/// the test's.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its store (shared with the test).
    pub store: Arc<dyn BlockStore>,
    /// Its metrics and health.
    pub shared: Shared,
    /// The admin listener, when the config set `admin_listen` (port 0 is
    /// fine).
    pub admin: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

impl TestServer {
    /// Starts a server on 127.0.0.1:0 over `store`.
    pub async fn start(store: Arc<dyn BlockStore>, configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..Config::default()
        };
        config.store = StoreUrl("memory:".into());
        // Tests opt in: `auto` would reach for the EC2 metadata service when
        // the tests run on an EC2 instance.
        config.agones.enabled = Switch::Off;
        config.imds.enabled = Switch::Off;
        configure(&mut config);
        config.validate().expect("test config is valid");
        let shared = Shared::new(&config);
        let (stop, stopped) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel::<()>();
        let (addr_tx, addr_rx) = oneshot::channel::<(SocketAddr, Option<SocketAddr>)>();
        let server_store = store.clone();
        let server_shared = shared.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .expect("bind");
                let admin = match config.admin_listen {
                    Some(addr) => Some(
                        craft_server::admin::spawn(
                            addr,
                            server_shared.clone(),
                            config.stall_timeout,
                        )
                        .await
                        .expect("admin listener")
                        .0,
                    ),
                    None => None,
                };
                let _ = addr_tx.send((listener.local_addr().expect("addr"), admin));
                server::run(
                    listener,
                    server_store,
                    Arc::new(config),
                    server_shared,
                    async move {
                        let _ = stopped.await;
                    },
                )
                .await;
            });
            let _ = done_tx.send(());
        });
        let (addr, admin) = addr_rx.await.expect("server started");
        Self {
            addr,
            store,
            shared,
            admin,
            stop: Some(stop),
            done: Some(done),
        }
    }

    /// A server over a fresh in-memory store.
    pub async fn memory(configure: impl FnOnce(&mut Config)) -> Self {
        Self::start(Arc::new(world_core::store::MemoryStore::new()), configure).await
    }

    /// Shuts down (drain included) and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            tokio::time::timeout(Duration::from_secs(60), done)
                .await
                .expect("drain finished")
                .expect("server thread");
        }
    }

    /// Whether the server stopped by itself (a drain it started) within
    /// `within`.
    pub async fn finished(&mut self, within: Duration) -> bool {
        let Some(done) = self.done.as_mut() else {
            return true;
        };
        if tokio::time::timeout(within, done).await.is_ok() {
            self.done = None;
            true
        } else {
            false
        }
    }

    /// GETs `path` from the admin listener: status, content type, body.
    pub async fn admin_get(&self, path: &str) -> (u16, String, String) {
        let addr = self.admin.expect("admin listener configured");
        http_get(&format!("http://{addr}{path}")).await
    }

    /// Connects a client.
    pub async fn connect(&self) -> Client {
        Client::connect(self.addr).await
    }
}

/// GETs `url`: status, content type, body.
pub async fn http_get(url: &str) -> (u16, String, String) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(url)
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

/// A line client.
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (r, w) = stream.into_split();
        Self {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    /// Sends one line (adds `\n`).
    pub async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("send");
    }

    /// Sends raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("send");
    }

    /// The next line, or `None` after `timeout` or at EOF.
    pub async fn line(&mut self, timeout: Duration) -> Option<String> {
        let mut line = String::new();
        match tokio::time::timeout(timeout, self.reader.read_line(&mut line)).await {
            Ok(Ok(0)) | Err(_) => None,
            Ok(Ok(_)) => Some(line.trim_end_matches('\n').to_owned()),
            Ok(Err(e)) => panic!("read failed: {e}"),
        }
    }

    /// Every line that arrives until `quiet` passes without one.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.line(quiet).await {
            lines.push(line);
        }
        lines
    }

    /// Reads until a line satisfying `pred` arrives (panics after `timeout`).
    pub async fn until(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.line(left).await {
                Some(line) => {
                    let done = pred(&line);
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                None => panic!("no matching line within {timeout:?}; got {lines:?}"),
            }
        }
    }

    /// Closes the write side and returns what is left to read.
    pub fn split(self) -> (BufReader<OwnedReadHalf>, OwnedWriteHalf) {
        (self.reader, self.writer)
    }
}
