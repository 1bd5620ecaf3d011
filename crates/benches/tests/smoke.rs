//! Smoke test of `craft-bench`: a short swarm and an idle run against an
//! in-process `craft-server` over a memory store. Asserts that the runs
//! complete, that edits reach the other players and that the JSON line
//! parses; never timing.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::idle::IdleReport;
use benches::swarm::SwarmReport;
use craft_server::config::{Config, StoreUrl};
use craft_server::server::{self, Shared};
use tokio::sync::oneshot;

/// A server on its own runtime and threads, as a separate process would be.
struct InProcessServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessServer {
    fn start() -> Self {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..Config::default()
        };
        config.store = StoreUrl("memory:".into());
        // Every bot connects from 127.0.0.1.
        config.limits.max_connections_per_ip = 0;
        config.validate().expect("valid config");
        let (stop, stopped) = oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let shared = Shared::new(&config);
                let store = Arc::new(world_core::store::MemoryStore::new());
                server::run(listener, store, Arc::new(config), shared, async move {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server started");
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs craft-bench with `args`; returns its stdout. Kills it after two
/// minutes (a hang is a failure, not a slow run).
fn craft_bench(args: &[String]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_craft-bench"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start craft-bench");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("craft-bench {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "craft-bench {args:?} failed: {stderr}"
    );
    eprintln!("{stderr}");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn swarm_of_20_bots_delivers_edits() {
    let server = InProcessServer::start();
    let json_file =
        std::env::temp_dir().join(format!("craft-bench-smoke-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&json_file);
    let mut a = args(&[
        "--threads",
        "1",
        "swarm",
        "--bots",
        "20",
        "--chunks",
        "2x2",
        "--duration",
        "2s",
        "--ramp",
        "200ms",
        "--settle",
        "200ms",
        "--drain",
        "1s",
        "--edit-rate",
        "2",
        "--chat-rate",
        "0.5",
        "--chunk-rate",
        "1",
    ]);
    a.extend([
        "--addr".to_owned(),
        server.addr.to_string(),
        // The server runs in this process: its figures are ours, which is
        // enough to exercise the /proc sampling.
        "--server-pid".to_owned(),
        std::process::id().to_string(),
        "--json-out".to_owned(),
        json_file.display().to_string(),
    ]);
    let stdout = craft_bench(&a);
    let line = stdout.lines().last().expect("a JSON line");
    let report: SwarmReport = serde_json::from_str(line).expect("JSON parses");
    assert_eq!(report.kind, "swarm");
    assert_eq!(report.connected, 20);
    assert!(report.edits.sent > 0);
    assert!(report.edits.delivered > 0, "edits were delivered: {line}");
    assert!(report.edits.delivered <= report.edits.expected_deliveries);
    assert!(
        report.edits_to_everyone,
        "20 players: everyone gets everything"
    );
    assert_eq!(report.edits.refused, 0, "every edit is accepted");
    assert_eq!(
        report.edits.out_of_order, 0,
        "each author's edits arrive in order: {line}"
    );
    assert_eq!(
        report.edits.missing,
        report.edits.expected_deliveries - report.edits.delivered,
        "the order check and the delivery count agree: {line}"
    );
    assert!(report.lines.in_active > 0);
    assert!(report.chat.delivered > 0);
    assert_eq!(report.chunk_answers_join.latency.count, 20 * 9);
    let server = report.server.expect("server figures");
    assert!(server.cpu_s_active >= 0.0 && server.cpu_ns_per_line.is_finite());
    let written = std::fs::read_to_string(&json_file).expect("--json-out file");
    let _: SwarmReport = serde_json::from_str(written.trim()).expect("file holds the line");
    let _ = std::fs::remove_file(&json_file);
}

#[test]
fn idle_connections_are_measured() {
    let server = InProcessServer::start();
    let mut a = args(&[
        "--threads",
        "1",
        "idle",
        "--bots",
        "20",
        "--ramp",
        "200ms",
        "--settle",
        "200ms",
    ]);
    a.extend([
        "--addr".to_owned(),
        server.addr.to_string(),
        "--server-pid".to_owned(),
        std::process::id().to_string(),
    ]);
    let stdout = craft_bench(&a);
    let line = stdout.lines().last().expect("a JSON line");
    let report: IdleReport = serde_json::from_str(line).expect("JSON parses");
    assert_eq!(report.kind, "idle");
    assert_eq!(report.connected, 20);
    assert!(report.bytes_received_per_connection > 0.0, "greeted");
}
