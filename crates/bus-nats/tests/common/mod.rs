//! Shared test helpers: private `nats-server` processes (from
//! `CRAFT_TEST_NATS_SERVER`) that a test can kill and restart on the same
//! port, and the conformance harness over one of them.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bus_core::conformance::{DEADLINE, Harness};
use bus_core::{Bus, BusOptions, BusReceiver, Namespace, ServerId};
use bus_nats::{Config, NatsBus};

/// A namespace unique to this process and call.
pub fn namespace(tag: &str) -> Namespace {
    static N: AtomicU32 = AtomicU32::new(0);
    Namespace::new(&format!(
        "t_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
    .expect("a valid namespace")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `nats-server` of this test, on a loopback port it keeps across
/// restarts.
pub struct NatsServer {
    bin: String,
    port: u16,
    args: Vec<String>,
    child: Mutex<Option<Child>>,
}

impl NatsServer {
    /// Starts one with extra `args`, or `None` to skip.
    pub async fn start(args: &[&str]) -> Option<NatsServer> {
        let bin = world_core::conformance::test_service("CRAFT_TEST_NATS_SERVER")?;
        let server = NatsServer {
            bin,
            port: free_port(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            child: Mutex::new(None),
        };
        server.restart().await;
        Some(server)
    }

    /// A server that will listen on a port nothing listens on yet
    /// ([`NatsServer::restart`] starts it).
    pub fn stopped() -> Option<NatsServer> {
        let bin = world_core::conformance::test_service("CRAFT_TEST_NATS_SERVER")?;
        Some(NatsServer {
            bin,
            port: free_port(),
            args: Vec::new(),
            child: Mutex::new(None),
        })
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: no goodbye to its clients).
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().expect("lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on its port and waits until it accepts.
    pub async fn restart(&self) {
        self.kill();
        let wait = async {
            loop {
                let child = Command::new(&self.bin)
                    .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
                    .args(&self.args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start nats-server");
                *self.child.lock().expect("lock") = Some(child);
                for _ in 0..100 {
                    if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                        .await
                        .is_ok()
                    {
                        return;
                    }
                    let exited = self
                        .child
                        .lock()
                        .expect("lock")
                        .as_mut()
                        .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
                    if exited {
                        // The port was not free yet: try again.
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .expect("nats-server never listened");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Settings for tests: quick pings and connection attempts.
pub fn config(url: &str) -> Config {
    Config::from_url(&format!("{url}?ping_interval=1s&connect_timeout=2s")).expect("test URL")
}

/// Opens a bus on `url` in `namespace`.
pub async fn open(
    url: &str,
    namespace: &Namespace,
    server: ServerId,
    queue: usize,
) -> (NatsBus, BusReceiver) {
    NatsBus::open(
        config(url),
        BusOptions::new(server)
            .namespace(namespace.clone())
            .queue(queue),
    )
    .await
    .expect("open the bus")
}

/// The conformance harness: a private server per check.
pub struct NatsHarness {
    pub server: NatsServer,
    pub namespace: Namespace,
}

#[async_trait]
impl Harness for NatsHarness {
    async fn open(&self, server: ServerId, queue: usize) -> (Arc<dyn Bus>, BusReceiver) {
        let (bus, rx) = open(&self.server.url(), &self.namespace, server, queue).await;
        (Arc::new(bus), rx)
    }

    async fn interrupt(&self) {
        self.server.kill();
    }

    async fn restore(&self) {
        self.server.restart().await;
    }
}

/// A harness, or `None` to skip.
pub async fn fresh() -> Option<NatsHarness> {
    Some(NatsHarness {
        server: NatsServer::start(&[]).await?,
        namespace: namespace("conf"),
    })
}
