//! Shared test helpers: a login role and a namespace per test on
//! `CRAFT_TEST_POSTGRES_URL`. Outages are made by refusing the role's
//! logins and terminating its sessions, so that a bus stays disconnected
//! until the test lets it back in.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bus_core::conformance::Harness;
use bus_core::{Bus, BusOptions, BusReceiver, Namespace, ServerId};
use bus_postgres::{Config, PostgresBus};

/// A name unique to this process and call: `t_{tag}_{pid}_{n}_{micros}`.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0);
    format!(
        "t_{tag}_{}_{}_{micros}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An administrative connection (no TLS) to `url`.
pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Buses of one test: its own role (whose logins an outage refuses) and
/// namespace.
pub struct PgHarness {
    pub url: String,
    pub role: String,
    pub namespace: Namespace,
    admin: tokio_postgres::Client,
}

const PASSWORD: &str = "bus-test-password";

impl PgHarness {
    /// A harness named after `tag`, or `None` to skip.
    pub async fn new(tag: &str) -> Option<PgHarness> {
        let url = world_core::conformance::test_service("CRAFT_TEST_POSTGRES_URL")?;
        let admin = admin(&url).await;
        let role = unique(tag);
        admin
            .batch_execute(&format!(
                "CREATE ROLE \"{role}\" LOGIN PASSWORD '{PASSWORD}'"
            ))
            .await
            .expect("create the test role");
        Some(PgHarness {
            namespace: Namespace::new(&role).expect("a valid namespace"),
            url,
            role,
            admin,
        })
    }

    /// Bus settings: this role, short timeouts, quick reconnection.
    pub fn config(&self) -> Config {
        let mut url = url::Url::parse(&self.url).expect("test URL");
        url.set_username(&self.role).expect("user in the URL");
        url.set_password(Some(PASSWORD))
            .expect("password in the URL");
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(name, _)| {
                !["application_name", "connect_timeout", "statement_timeout"]
                    .contains(&name.as_ref())
            })
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("application_name", &self.role)
            .append_pair("connect_timeout", "5s")
            .append_pair("statement_timeout", "10s");
        let store =
            store_postgres::Config::from_env_and_url(url.as_str(), |_| None).expect("test config");
        Config::new(store)
            .ping_interval(Duration::from_secs(1))
            .reconnect_delays(Duration::from_millis(20), Duration::from_millis(300))
    }

    /// Opens a bus in this harness's namespace.
    pub async fn open_bus(&self, server: ServerId, queue: usize) -> (PostgresBus, BusReceiver) {
        PostgresBus::open(
            self.config(),
            BusOptions::new(server)
                .namespace(self.namespace.clone())
                .queue(queue),
        )
        .await
        .expect("open the bus")
    }

    /// Terminates every session of the role; returns how many.
    pub async fn terminate(&self) -> i64 {
        let row = self
            .admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1",
                &[&self.role],
            )
            .await
            .expect("terminate");
        row.get(0)
    }

    /// Allows or refuses the role's logins.
    pub async fn set_login(&self, allowed: bool) {
        let verb = if allowed { "LOGIN" } else { "NOLOGIN" };
        self.admin
            .batch_execute(&format!("ALTER ROLE \"{}\" {verb}", self.role))
            .await
            .expect("alter role");
    }

    /// Runs `sql` as the administrator.
    pub async fn admin_execute(&self, sql: &str) {
        self.admin.batch_execute(sql).await.expect("admin SQL");
    }
}

#[async_trait]
impl Harness for PgHarness {
    async fn open(&self, server: ServerId, queue: usize) -> (Arc<dyn Bus>, BusReceiver) {
        let (bus, rx) = self.open_bus(server, queue).await;
        (Arc::new(bus), rx)
    }

    async fn interrupt(&self) {
        self.set_login(false).await;
        self.terminate().await;
    }

    async fn restore(&self) {
        self.set_login(true).await;
    }
}

impl Drop for PgHarness {
    fn drop(&mut self) {
        // From a thread of its own: Drop may run inside the test's runtime.
        let url = self.url.clone();
        let role = self.role.clone();
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let Ok((client, connection)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                else {
                    return;
                };
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!(
                        "ALTER ROLE \"{role}\" NOLOGIN; \
                         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
                    ))
                    .await;
                // Terminated sessions take a moment to go away.
                for _ in 0..50 {
                    if client
                        .batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""))
                        .await
                        .is_ok()
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        });
        let _ = done.join();
    }
}

/// `PgHarness::new` as the conformance suite wants it.
pub async fn fresh() -> Option<PgHarness> {
    PgHarness::new("busconf").await
}
