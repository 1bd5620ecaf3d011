//! An idle connection costs at most 64 KiB of server memory: measured on the
//! real binary (resident set growth over many idle connections).

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::Client;

const CONNECTIONS: usize = 500;
const BUDGET: usize = 64 * 1024;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_bytes(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test]
#[cfg(target_os = "linux")]
async fn an_idle_connection_costs_less_than_64_kib() {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_craft-server"))
        .args([
            "--store",
            "memory:",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn craft-server");
    let server = Server(child);
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    // Wait for the port, then warm up allocator pools with a few clients.
    let mut warm = Vec::new();
    for attempt in 0.. {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(_) => break,
            Err(_) if attempt < 100 => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("server did not start: {e}"),
        }
    }
    for _ in 0..20 {
        let mut c = Client::connect(addr).await;
        c.send("V,1").await;
        c.until(Duration::from_secs(10), |l| l.starts_with("N,"))
            .await;
        warm.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes(server.0.id());
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut c = Client::connect(addr).await;
        c.send("V,1").await;
        clients.push(c);
    }
    // Let every greeting and join notice reach its client.
    for c in &mut clients {
        c.drain(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes(server.0.id());
    let per_connection = after.saturating_sub(before) / CONNECTIONS;
    eprintln!("server RSS {before} -> {after} bytes: {per_connection} bytes per idle connection");
    assert!(
        per_connection <= BUDGET,
        "{per_connection} bytes per idle connection (budget {BUDGET})"
    );
    drop(clients);
    drop(warm);
}
