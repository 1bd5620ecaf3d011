//! `craft-bench idle`: server memory per idle connection.
//!
//! Connects `bots` clients that send only `V,1` and then just read (so that
//! nothing piles up in the server's outbound queues), waits for the server
//! to settle, and reports how much its resident memory grew per
//! connection. Then disconnects everyone and samples again, to show what
//! the allocator keeps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::procfs::{Process, ProcessReport};

/// An idle run.
#[derive(Clone, Debug)]
pub struct IdleConfig {
    /// The server.
    pub addr: SocketAddr,
    /// Its process (required: memory is the point).
    pub server_pid: u32,
    /// Connections.
    pub bots: u32,
    /// Connections are spread over this long.
    pub ramp: Duration,
    /// Wait after the last connection before sampling.
    pub settle: Duration,
}

/// Why an idle run failed.
#[derive(Debug, thiserror::Error)]
pub enum IdleError {
    /// The server's process cannot be read.
    #[error(transparent)]
    Proc(#[from] crate::procfs::ProcError),
    /// Nothing connected.
    #[error("no client could connect to {0}")]
    NoConnection(SocketAddr),
}

/// The outcome of an idle run (one JSON line).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdleReport {
    /// `"idle"`.
    pub kind: String,
    /// The server.
    pub addr: String,
    /// Connections attempted.
    pub bots: u32,
    /// Connections open when memory was sampled.
    pub connected: u64,
    /// Connections that failed.
    pub connect_failures: u64,
    /// The server's memory (`rss_joined_kib`: all connected and settled).
    pub server: ProcessReport,
    /// `(rss_joined - rss_before) / connected`, KiB.
    pub kib_per_connection: f64,
    /// Resident memory once everyone disconnected again, KiB.
    pub rss_after_disconnect_kib: u64,
    /// Bytes each client received while connected (the greeting and the
    /// others' arrivals).
    pub bytes_received_per_connection: f64,
}

impl IdleReport {
    /// A summary for people.
    pub fn human(&self) -> String {
        let s = &self.server;
        format!(
            "idle: {} of {} connections on {} ({} failed); server RSS {} KiB before, {} KiB connected: {:.1} KiB per idle connection; {} KiB after all left; peak {} KiB\n",
            self.connected,
            self.bots,
            self.addr,
            self.connect_failures,
            s.rss_before_kib,
            s.rss_joined_kib,
            self.kib_per_connection,
            self.rss_after_disconnect_kib,
            s.rss_peak_kib
        )
    }
}

/// Runs the measurement.
pub async fn run(cfg: IdleConfig) -> Result<IdleReport, IdleError> {
    let server = Process::pid(cfg.server_pid);
    let before = server.sample()?;
    let mut peak = before.rss_kib;
    let (stop_tx, stop_rx) = watch::channel(false);
    let connected = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let settled = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..cfg.bots {
        let at = started
            + if cfg.bots > 1 {
                cfg.ramp.mul_f64(f64::from(i) / f64::from(cfg.bots))
            } else {
                Duration::ZERO
            };
        let (connected, failed, settled, received) = (
            connected.clone(),
            failed.clone(),
            settled.clone(),
            received.clone(),
        );
        let mut stop = stop_rx.clone();
        let addr = cfg.addr;
        tasks.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let stream =
                tokio::time::timeout(Duration::from_secs(15), TcpStream::connect(addr)).await;
            let mut stream = match stream {
                Ok(Ok(s)) => s,
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    settled.fetch_add(1, Ordering::Release);
                    return;
                }
            };
            if stream.write_all(b"V,1\n").await.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
                settled.fetch_add(1, Ordering::Release);
                return;
            }
            connected.fetch_add(1, Ordering::Relaxed);
            settled.fetch_add(1, Ordering::Release);
            let mut buf = vec![0u8; 4096];
            loop {
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => {
                            connected.fetch_sub(1, Ordering::Relaxed);
                            return;
                        }
                        Ok(n) => {
                            received.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    },
                    _ = stop.changed() => return,
                }
            }
        });
    }
    let deadline = started + cfg.ramp + Duration::from_secs(60);
    while settled.load(Ordering::Acquire) < u64::from(cfg.bots) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(s) = server.sample() {
            peak = peak.max(s.rss_kib);
        }
    }
    let open = connected.load(Ordering::Relaxed);
    if open == 0 {
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        return Err(IdleError::NoConnection(cfg.addr));
    }
    info!(
        connected = open,
        "every client connected; letting the server settle"
    );
    tokio::time::sleep(cfg.settle).await;
    let joined = server.sample()?;
    peak = peak.max(joined.rss_kib);
    let open = connected.load(Ordering::Relaxed);
    let bytes = received.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    // Give the server a moment to notice and drop the connections.
    tokio::time::sleep(cfg.settle).await;
    let after = server.sample().map(|s| s.rss_kib).unwrap_or_else(|e| {
        warn!(error = %e, "cannot sample the server after the run");
        0
    });
    let failures = failed.load(Ordering::Relaxed);
    Ok(IdleReport {
        kind: "idle".to_owned(),
        addr: cfg.addr.to_string(),
        bots: cfg.bots,
        connected: open,
        connect_failures: failures,
        server: ProcessReport {
            pid: Some(cfg.server_pid),
            cpu_percent: 0.0,
            runqueue_wait_percent: 0.0,
            rss_before_kib: before.rss_kib,
            rss_joined_kib: joined.rss_kib,
            rss_end_kib: joined.rss_kib,
            rss_peak_kib: peak,
        },
        kib_per_connection: (joined.rss_kib as f64 - before.rss_kib as f64) / open.max(1) as f64,
        rss_after_disconnect_kib: after,
        bytes_received_per_connection: bytes as f64 / open.max(1) as f64,
    })
}
