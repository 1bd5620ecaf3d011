//! The real `craft-server` binary as a child process, on loopback ports
//! the system picks, with its log captured.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// The binary, killed if the test ends early.
pub struct Server {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// Game port.
    pub game: SocketAddr,
    /// Admin port.
    pub admin: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to its end with `args` (a subcommand and its flags),
/// without the caller's `CRAFT_CONFIG`/`CRAFT_STORE` and without colours.
pub fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_craft-server"))
        .args(args)
        .env_remove("CRAFT_CONFIG")
        .env_remove("CRAFT_STORE")
        .env("NO_COLOR", "1")
        .output()
        .expect("run craft-server")
}

/// Removes ANSI colour codes (the log may be coloured).
pub fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Server {
    /// Starts `craft-server` on loopback ports chosen by the system.
    pub async fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_craft-server"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                // Nothing here may reach for a sidecar or the EC2 metadata.
                "--agones",
                "off",
                "--imds",
                "off",
            ])
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("CRAFT_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start craft-server");
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().expect("log").push(plain(&line));
                }
            });
        }
        let mut server = Self {
            child,
            log,
            game: "0.0.0.0:0".parse().expect("addr"),
            admin: "0.0.0.0:0".parse().expect("addr"),
        };
        server.game = server.addr_of("listening for Craft clients").await;
        server.admin = server.addr_of("admin listener").await;
        server
    }

    /// The `addr=` of the first log line containing `what`.
    pub async fn addr_of(&mut self, what: &str) -> SocketAddr {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self.log.lock().expect("log").iter().find_map(|l| {
                if !l.contains(what) {
                    return None;
                }
                let rest = &l[l.find("addr=")? + 5..];
                rest.split_whitespace().next()?.parse().ok()
            });
            if let Some(addr) = found {
                return addr;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("craft-server exited ({status}): {:#?}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {what:?} in {:#?}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    /// A metric's value from `/metrics`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, _, body) = super::http_get(&format!("http://{}/metrics", self.admin)).await;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// Waits until the metric reaches `min`.
    pub async fn metric_at_least(&self, name: &str, min: f64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let value = self.metric(name).await;
            if value.is_some_and(|v| v >= min) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} = {value:?}, wanted {min}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit.
    pub async fn exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running: {:#?}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
