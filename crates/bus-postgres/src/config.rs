//! Settings of the PostgreSQL bus: the store's connection settings (the
//! bus lives in the store's own database) plus how it watches and
//! restores its session.

use std::time::Duration;

use bus_core::{BusError, BusResult};

/// Default interval of the session's health check.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(10);
/// Default first delay before reconnecting.
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(100);
/// Default longest delay between reconnection attempts.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Validated settings of a [`PostgresBus`](crate::PostgresBus).
///
/// `Debug` shows no password (the store's `Config` hides it).
#[derive(Clone, Debug)]
pub struct Config {
    store: store_postgres::Config,
    ping_interval: Duration,
    reconnect_min: Duration,
    reconnect_max: Duration,
}

impl Config {
    /// The bus on the database of the store `store` (the server passes its
    /// store's settings).
    pub fn new(store: store_postgres::Config) -> Self {
        Self {
            store,
            ping_interval: DEFAULT_PING_INTERVAL,
            reconnect_min: DEFAULT_RECONNECT_MIN,
            reconnect_max: DEFAULT_RECONNECT_MAX,
        }
    }

    /// The bus on the database of the store URL `url` (see
    /// `store_postgres::Config::from_url`: the `PG*` variables fill what it
    /// lacks). No I/O.
    pub fn from_url(url: &str) -> BusResult<Self> {
        store_postgres::Config::from_url(url)
            .map(Self::new)
            .map_err(|e| BusError::Config(e.to_string()))
    }

    /// Sets how often an idle session is checked (`SELECT 1`); a check
    /// that fails or takes longer than the interval drops the session,
    /// which then reconnects. At least 100 ms.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval.max(Duration::from_millis(100));
        self
    }

    /// Sets the delays between reconnection attempts: exponential with
    /// jitter from `min` to `max`, forever.
    pub fn reconnect_delays(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min.max(Duration::from_millis(1));
        self.reconnect_max = max.max(self.reconnect_min);
        self
    }

    /// The store's connection settings.
    pub fn store(&self) -> &store_postgres::Config {
        &self.store
    }

    /// The health check interval.
    pub fn ping_interval_value(&self) -> Duration {
        self.ping_interval
    }

    /// The reconnection delays `(min, max)`.
    pub fn reconnect_delay_values(&self) -> (Duration, Duration) {
        (self.reconnect_min, self.reconnect_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_secrets() {
        let secret = "s3cr3t-pw";
        let c = Config::from_url(&format!(
            "postgres://craft:{secret}@db/world?sslmode=disable"
        ))
        .expect("valid")
        .ping_interval(Duration::from_millis(1))
        .reconnect_delays(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(c.ping_interval_value(), Duration::from_millis(100));
        assert_eq!(
            c.reconnect_delay_values(),
            (Duration::from_secs(2), Duration::from_secs(2))
        );
        assert_eq!(c.store().dbname(), "world");
        assert!(!format!("{c:?}").contains(secret));
        let err = Config::from_url(&format!("postgres://u:{secret}@h/db?bogus=1"))
            .expect_err("unknown parameter");
        assert!(matches!(err, BusError::Config(_)));
        assert!(!err.to_string().contains(secret));
    }
}
