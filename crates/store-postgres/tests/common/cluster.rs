//! A PostgreSQL cluster of a test's own (`initdb` + `pg_ctl` from
//! `CRAFT_TEST_PG_BINDIR`), for tests that restart the server or need
//! settings of their own.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A PostgreSQL cluster of this test's own, in a temporary directory.
pub struct Cluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    owner: Option<&'static str>,
    settings: Vec<String>,
}

impl Cluster {
    /// initdb + start, or `None` (skip) when the binaries are missing.
    pub fn create() -> Option<Cluster> {
        Self::create_with(|_| Vec::new())
    }

    /// Like [`Cluster::create`]; `prepare` writes files into the cluster's
    /// directory before it starts and returns extra server settings
    /// (`name=value`).
    pub fn create_with(prepare: impl FnOnce(&Path) -> Vec<String>) -> Option<Cluster> {
        let bindir = std::env::var_os("CRAFT_TEST_PG_BINDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/local/bin"));
        if !bindir.join("initdb").exists() || !bindir.join("pg_ctl").exists() {
            if std::env::var_os("CRAFT_TEST_REQUIRE_SERVICES").is_some() {
                panic!("initdb/pg_ctl not found in {}", bindir.display());
            }
            eprintln!(
                "skipping: no initdb/pg_ctl in {} (set CRAFT_TEST_PG_BINDIR)",
                bindir.display()
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = prepare(dir.path());
        // initdb refuses to run as root: hand the cluster to `postgres`.
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false);
        // As scripts/test.sh does: `postgres` when it exists, else `nobody`.
        let has_postgres = Command::new("id")
            .arg("postgres")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        let owner = is_root.then_some(if has_postgres { "postgres" } else { "nobody" });
        if let Some(user) = owner {
            let status = Command::new("chown")
                .arg("-R")
                .arg(user)
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown {user} failed");
        }
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().expect("addr").port()
        };
        let cluster = Cluster {
            dir,
            bindir,
            port,
            owner,
            settings,
        };
        let data = cluster.data();
        let out = cluster
            .command("initdb")
            .args(["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.start();
        Some(cluster)
    }

    /// The cluster's directory (data, socket, log, files of `prepare`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    pub fn command(&self, program: &str) -> Command {
        let exe = self.bindir.join(program);
        match self.owner {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    pub fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        let data = self.data();
        let mut c = self.command("pg_ctl");
        c.args(["-D", &data]).args(args);
        c.output().expect("pg_ctl")
    }

    pub fn start(&self) {
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=20",
            self.port,
            self.dir.path().display()
        );
        for setting in &self.settings {
            options.push_str(&format!(" -c {setting}"));
        }
        let log = self.dir.path().join("log").display().to_string();
        let out = self.pg_ctl(&["-l", &log, "-w", "-t", "60", "-o", &options, "start"]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn stop(&self, mode: &str) {
        let out = self.pg_ctl(&["-m", mode, "-w", "-t", "60", "stop"]);
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}
