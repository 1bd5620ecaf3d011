//! Starting a `craft-server` (on a memory store unless told otherwise) for
//! a benchmark run.
//!
//! A separate process, not an in-process server, so that its CPU and
//! resident memory can be read from `/proc` without counting the load
//! generator, and so that the server runs exactly as it does in production.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// Why the server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// No free port could be found.
    #[error("cannot find a free port: {0}")]
    Port(std::io::Error),
    /// The binary could not be started.
    #[error("cannot start {bin}: {source}")]
    Start {
        /// The binary.
        bin: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server exited or did not listen in time.
    #[error("{0}")]
    NotReady(String),
}

/// A running server this process started; stopped on drop.
#[derive(Debug)]
pub struct SpawnedServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl SpawnedServer {
    /// Starts `bin --store STORE --listen 127.0.0.1:PORT --max-players N
    /// --max-connections-per-ip 0` plus `extra` arguments, on a free
    /// loopback port, and waits until it
    /// accepts connections. Its log (level `log`, via `RUST_LOG`) goes to
    /// `log_file`, or nowhere.
    pub fn start(
        bin: &Path,
        store: &str,
        max_players: usize,
        extra: &[String],
        log: &str,
        log_file: Option<&Path>,
    ) -> Result<Self, SpawnError> {
        let addr = free_port().map_err(SpawnError::Port)?;
        let stderr = match log_file {
            Some(path) => match std::fs::File::create(path) {
                Ok(file) => Stdio::from(file),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "cannot create the server log; discarding it");
                    Stdio::null()
                }
            },
            None => Stdio::null(),
        };
        let mut command = Command::new(bin);
        command
            .arg("--store")
            .arg(store)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--max-players")
            .arg(max_players.to_string())
            // Every bot connects from 127.0.0.1.
            .arg("--max-connections-per-ip")
            .arg("0")
            .args(extra)
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = command.spawn().map_err(|source| SpawnError::Start {
            bin: bin.display().to_string(),
            source,
        })?;
        let mut server = Self { child, addr };
        server.wait_ready(Duration::from_secs(20))?;
        info!(pid = server.pid(), %addr, "started craft-server");
        Ok(server)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), SpawnError> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(SpawnError::NotReady(format!(
                    "craft-server exited at start-up ({status})"
                )));
            }
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(SpawnError::NotReady(format!(
                    "craft-server did not listen on {} within {timeout:?}",
                    self.addr
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asks the server to shut down (SIGTERM, its clean drain) and waits
    /// for it; kills it if it takes longer than `timeout`.
    pub fn stop(mut self, timeout: Duration) {
        self.stop_inner(timeout);
    }

    fn stop_inner(&mut self, timeout: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // std can only SIGKILL; the drain needs SIGTERM.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        warn!(
            pid = self.pid(),
            "craft-server did not stop in time; killing it"
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        self.stop_inner(Duration::from_secs(10));
    }
}

/// A loopback address with a port nobody listens on right now.
pub fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The `craft-server` binary: next to this executable (same cargo target
/// directory), else whatever `PATH` finds.
pub fn default_server_bin() -> PathBuf {
    let name = format!("craft-server{}", std::env::consts::EXE_SUFFIX);
    if let Ok(me) = std::env::current_exe() {
        // Binaries sit in target/<profile>/, tests and benches one deeper.
        for dir in me.ancestors().skip(1).take(2) {
            let candidate = dir.join(&name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from(name)
}
