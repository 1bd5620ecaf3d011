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

use craft_server::config::Switch;
use craft_server::config::{Config, StoreUrl};
use craft_server::metrics::Clock;
use craft_server::server::{self, Shared};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use world_core::BlockStore;

/// The shared fixtures directory: `$CRAFT_FIXTURES`, else `shared/fixtures`
/// beside the workspace root or beside one of its ancestors (git worktrees
/// sit deeper than the main checkout).
pub fn fixtures() -> PathBuf {
    if let Some(dir) = std::env::var_os("CRAFT_FIXTURES") {
        return PathBuf::from(dir);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let repo = manifest
        .ancestors()
        .nth(2)
        .expect("crates/craft-server sits two levels below the workspace root");
    let tried: Vec<PathBuf> = repo
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("shared/fixtures"))
        .collect();
    match tried.iter().find(|dir| dir.is_dir()) {
        Some(dir) => dir.clone(),
        None => panic!("fixtures not found (set CRAFT_FIXTURES); tried {tried:?}"),
    }
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
    /// The clock its health (stall detection, the Agones empty timer)
    /// measures with: it stands still until the test advances it.
    pub clock: Clock,
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
        // Every test client comes from 127.0.0.1.
        config.limits.max_connections_per_ip = 0;
        // Every test ends with a drain: keep it short unless the test is
        // about the grace.
        config.shutdown.grace = Duration::from_millis(300);
        configure(&mut config);
        config.validate().expect("test config is valid");
        let clock = Clock::manual();
        let shared = Shared::with_clock(&config, clock.clone());
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
            clock,
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

    /// Polls an admin path until `pred(status, body)` holds; returns the
    /// body (panics after 10 s).
    pub async fn admin_until(&self, path: &str, pred: impl Fn(u16, &str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (status, _, body) = self.admin_get(path).await;
            if pred(status, &body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never matched; last {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
        Self::over(stream)
    }

    /// Connects to `addr` from the loopback address `from` (any of
    /// 127.0.0.0/8 on Linux), as another machine would.
    pub async fn connect_from(addr: SocketAddr, from: std::net::Ipv4Addr) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from((from, 0)))
            .expect("bind the client address");
        Self::over(socket.connect(addr).await.expect("connect"))
    }

    fn over(stream: TcpStream) -> Self {
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

    /// Sends one line (adds `\n`); an error once the server has closed
    /// the connection (a test that expects that uses this).
    pub async fn try_send(&mut self, line: &str) -> std::io::Result<()> {
        self.writer.write_all(format!("{line}\n").as_bytes()).await
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
