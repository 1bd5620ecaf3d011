//! `[history]`: block history and its retention; `operators`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Block history settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Record who changed what (the seed's `RECORD_HISTORY`). Unset: on
    /// for the stores that keep history (SQLite, PostgreSQL, Data API,
    /// memory), off for DynamoDB, which does not (setting it there is
    /// refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
    /// Entries older than this are deleted in the background. Unset: kept
    /// forever.
    #[serde(
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub max_age: Option<Duration>,
    /// At most this many entries are kept (the oldest go first). Unset: no
    /// limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// How often the retention limits are enforced.
    #[serde(with = "humantime_serde")]
    pub prune_interval: Duration,
}

impl HistoryConfig {
    /// The default prune interval.
    pub const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

    /// Whether history is recorded on a store of URL scheme `scheme`.
    pub fn records(&self, scheme: &str) -> bool {
        self.record.unwrap_or(scheme != "dynamodb")
    }

    /// Whether retention needs a background task.
    pub fn prunes(&self) -> bool {
        self.max_age.is_some() || self.max_rows.is_some()
    }

    /// Checks the settings against the store's scheme.
    pub fn validate(&self, scheme: &str) -> Result<(), String> {
        if self.record == Some(true) && scheme == "dynamodb" {
            return Err(
                "history.record = true: the DynamoDB store does not keep block history \
                 (use SQLite, PostgreSQL or the Data API, or leave it unset)"
                    .into(),
            );
        }
        if self.prune_interval < Duration::from_secs(1) {
            return Err("history.prune_interval must be at least 1s".into());
        }
        if self.max_rows == Some(0) {
            return Err("history.max_rows must be at least 1 (leave it unset for no limit)".into());
        }
        Ok(())
    }
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            record: None,
            max_age: None,
            max_rows: None,
            prune_interval: Self::PRUNE_INTERVAL,
        }
    }
}
