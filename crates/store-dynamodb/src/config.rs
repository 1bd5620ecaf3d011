//! The store URL and its parameters.
//!
//! ```text
//! dynamodb://TABLE?region=eu-west-1&endpoint=http://127.0.0.1:5000&create=true
//! ```
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `region` | the AWS chain (`AWS_REGION`, profile) | AWS region, e.g. `eu-west-1` |
//! | `endpoint` | the region's DynamoDB endpoint | `http://` or `https://` URL of a local DynamoDB (moto, DynamoDB Local) |
//! | `profile` | `AWS_PROFILE` or `default` | shared config/credentials profile to read |
//! | `create` | `false` | create the table (on-demand billing) if it does not exist, and wait until it is active |
//! | `connect_timeout` | `2s` | TCP/TLS connect timeout |
//! | `attempt_timeout` | `5s` | timeout of one HTTP attempt |
//! | `operation_timeout` | `15s` | timeout of one operation, all SDK retries included |
//! | `max_attempts` | `4` | attempts per operation (SDK standard retry: throttling, 5xx, I/O errors), `1..=20` |
//! | `concurrency` | `16` | requests one store call keeps in flight at most, `1..=256` |
//! | `stuck_after` | `30s` | how long a reservation may stay uncommitted without progress before it is taken for a crashed writer's and skipped |
//! | `compact_after` | `16` | log entries (small shares in the head's list plus log items) a chunk may gather before a writer folds them into a snapshot, `1..=1000` |
//! | `compact_grace` | `60s` | how long items a compaction replaced stay before they are deleted, so that a reader still paging through the chunk finds them; a read that takes longer starts again. `0s` deletes at once (tests only: a concurrent reader may fail) |
//! | `page_size` | none (1 MB pages) | `Limit` of each `Query`/`Scan` page; only for tests and tuning |
//!
//! Durations use humantime syntax (`500ms`, `2s`, `1m`). Credentials never
//! appear in the URL: they come from the standard AWS chain (environment
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, the
//! profile's files, SSO, web identity, ECS/EC2 instance roles). So, with the
//! defaults, an operation against an unreachable endpoint fails after at
//! most `operation_timeout` (15 s).

use std::fmt;
use std::time::Duration;

/// The URL scheme of this backend.
pub const SCHEME: &str = "dynamodb";

/// A parsed, validated `dynamodb://` store URL. Holds no secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Table name (3 to 255 characters of `A-Z a-z 0-9 _ - .`).
    pub table: String,
    /// AWS region; `None` uses the AWS chain.
    pub region: Option<String>,
    /// Endpoint override (`http://host:port`), for local emulators.
    pub endpoint: Option<String>,
    /// Shared config profile; `None` uses `AWS_PROFILE` or `default`.
    pub profile: Option<String>,
    /// Create the table when it does not exist.
    pub create: bool,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one HTTP attempt.
    pub attempt_timeout: Duration,
    /// Timeout of a whole operation, SDK retries included.
    pub operation_timeout: Duration,
    /// Attempts per operation (1 = no SDK retry).
    pub max_attempts: u32,
    /// Requests one store call keeps in flight at most.
    pub concurrency: usize,
    /// After how long without progress an uncommitted reservation is taken
    /// for a crashed writer's (see the crate docs).
    pub stuck_after: Duration,
    /// `Limit` of each `Query`/`Scan` page (`None`: DynamoDB's 1 MB pages).
    pub page_size: Option<i32>,
    /// Log entries a chunk gathers before it is compacted into a snapshot.
    pub compact_after: usize,
    /// How long replaced items stay after a compaction (zero: deleted at
    /// once).
    pub compact_grace: Duration,
}

/// Why a store URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The URL does not start with `dynamodb://`.
    #[error("a DynamoDB store URL starts with dynamodb://")]
    Scheme,
    /// The table name is missing or not a valid DynamoDB table name.
    // The name is not repeated: what stands there in a malformed URL may
    // be user information with a password.
    #[error("invalid table name: 3 to 255 characters of A-Z a-z 0-9 _ - .")]
    Table(String),
    /// A parameter has a value that cannot be used.
    #[error("invalid value for {name}: {reason}")]
    Value {
        /// The parameter.
        name: String,
        /// Why.
        reason: String,
    },
    /// A parameter this backend does not know (a typo?).
    #[error(
        "unknown parameter {0:?} (known: region, endpoint, profile, create, connect_timeout, attempt_timeout, operation_timeout, max_attempts, concurrency, stuck_after, compact_after, compact_grace, page_size)"
    )]
    Unknown(String),
    /// A parameter given twice.
    #[error("parameter {0:?} given twice")]
    Duplicate(String),
}

impl Config {
    /// A configuration with every default, for `table`.
    pub fn new(table: impl Into<String>) -> Config {
        Config {
            table: table.into(),
            region: None,
            endpoint: None,
            profile: None,
            create: false,
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(15),
            max_attempts: 4,
            concurrency: 16,
            stuck_after: Duration::from_secs(30),
            page_size: None,
            compact_after: 16,
            compact_grace: Duration::from_secs(60),
        }
    }

    /// Parses `dynamodb://TABLE?param=value&...` (see the module docs),
    /// validating without I/O.
    pub fn from_url(url: &str) -> Result<Config, ConfigError> {
        let rest = url
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix("://"))
            .ok_or(ConfigError::Scheme)?;
        let (table, query) = rest.split_once('?').unwrap_or((rest, ""));
        let table = table.strip_suffix('/').unwrap_or(table);
        let mut config = Config::new(table);
        let mut seen = Vec::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if seen.contains(&name) {
                return Err(ConfigError::Duplicate(name.into_owned()));
            }
            config.set(&name, &value)?;
            seen.push(name);
        }
        config.validate()?;
        Ok(config)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason: &str| ConfigError::Value {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        let duration = |v: &str| -> Result<Duration, ConfigError> {
            let d = humantime::parse_duration(v).map_err(|e| invalid(&e.to_string()))?;
            if d.is_zero() {
                return Err(invalid("must be greater than zero"));
            }
            Ok(d)
        };
        match name {
            "region" => self.region = Some(value.to_owned()),
            "endpoint" => self.endpoint = Some(value.to_owned()),
            "profile" => self.profile = Some(value.to_owned()),
            "create" => {
                self.create = match value {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(invalid("expected true or false")),
                }
            }
            "connect_timeout" => self.connect_timeout = duration(value)?,
            "attempt_timeout" => self.attempt_timeout = duration(value)?,
            "operation_timeout" => self.operation_timeout = duration(value)?,
            "stuck_after" => self.stuck_after = duration(value)?,
            "compact_grace" => {
                self.compact_grace =
                    humantime::parse_duration(value).map_err(|e| invalid(&e.to_string()))?;
            }
            "compact_after" => {
                self.compact_after = value.parse().map_err(|_| invalid("expected a number"))?;
            }
            "max_attempts" => {
                self.max_attempts = value.parse().map_err(|_| invalid("expected a number"))?;
            }
            "concurrency" => {
                self.concurrency = value.parse().map_err(|_| invalid("expected a number"))?;
            }
            "page_size" => {
                self.page_size = Some(value.parse().map_err(|_| invalid("expected a number"))?);
            }
            other => return Err(ConfigError::Unknown(other.to_owned())),
        }
        Ok(())
    }

    /// Checks every field (what [`Config::from_url`] does after parsing);
    /// call it after building a `Config` by hand.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name: &str, reason: &str| ConfigError::Value {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        let valid_table = (3..=255).contains(&self.table.len())
            && self
                .table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid_table {
            return Err(ConfigError::Table(self.table.clone()));
        }
        if let Some(region) = &self.region {
            let ok = !region.is_empty()
                && region.len() <= 64
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(invalid(
                    "region",
                    "expected a region name such as eu-west-1",
                ));
            }
        }
        if let Some(endpoint) = &self.endpoint {
            let parsed =
                url::Url::parse(endpoint).map_err(|e| invalid("endpoint", &e.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(invalid("endpoint", "expected an http:// or https:// URL"));
            }
            if parsed.host_str().is_none() {
                return Err(invalid("endpoint", "has no host"));
            }
            // Credentials come from the AWS chain; refusing them here keeps
            // them out of configs, logs and Debug output.
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return Err(invalid("endpoint", "must not contain credentials"));
            }
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(invalid("endpoint", "must not have a query or fragment"));
            }
        }
        if let Some(profile) = &self.profile
            && profile.is_empty()
        {
            return Err(invalid("profile", "must not be empty"));
        }
        if !(1..=20).contains(&self.max_attempts) {
            return Err(invalid("max_attempts", "expected 1 to 20"));
        }
        if !(1..=256).contains(&self.concurrency) {
            return Err(invalid("concurrency", "expected 1 to 256"));
        }
        if !(1..=1000).contains(&self.compact_after) {
            return Err(invalid("compact_after", "expected 1 to 1000"));
        }
        if self.compact_grace > Duration::from_secs(24 * 3600) {
            return Err(invalid("compact_grace", "at most 24h"));
        }
        if let Some(page) = self.page_size
            && page < 1
        {
            return Err(invalid("page_size", "expected a positive number"));
        }
        if self.attempt_timeout > self.operation_timeout {
            return Err(invalid("attempt_timeout", "longer than operation_timeout"));
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("attempt_timeout", self.attempt_timeout),
            ("operation_timeout", self.operation_timeout),
            ("stuck_after", self.stuck_after),
        ] {
            if d.is_zero() {
                return Err(invalid(name, "must be greater than zero"));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Config {
    // Written out so that a field added later cannot leak by accident: the
    // config holds no credentials, and the endpoint is refused if it has any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("table", &self.table)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("profile", &self.profile)
            .field("create", &self.create)
            .field("connect_timeout", &self.connect_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("concurrency", &self.concurrency)
            .field("stuck_after", &self.stuck_after)
            .field("page_size", &self.page_size)
            .field("compact_after", &self.compact_after)
            .field("compact_grace", &self.compact_grace)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_parameter() {
        let c = Config::from_url(
            "dynamodb://Craft_World.v1?region=eu-west-1&endpoint=http://127.0.0.1:5000&create=true\
             &connect_timeout=500ms&attempt_timeout=2s&operation_timeout=10s&max_attempts=2\
             &concurrency=4&stuck_after=1m&page_size=100&profile=dev&compact_after=8&compact_grace=0s",
        )
        .unwrap();
        assert_eq!(c.table, "Craft_World.v1");
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(c.profile.as_deref(), Some("dev"));
        assert!(c.create);
        assert_eq!(c.connect_timeout, Duration::from_millis(500));
        assert_eq!(c.attempt_timeout, Duration::from_secs(2));
        assert_eq!(c.operation_timeout, Duration::from_secs(10));
        assert_eq!(c.max_attempts, 2);
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.stuck_after, Duration::from_secs(60));
        assert_eq!(c.page_size, Some(100));
        assert_eq!(c.compact_after, 8);
        assert_eq!(c.compact_grace, Duration::ZERO);
    }

    #[test]
    fn defaults() {
        let c = Config::from_url("dynamodb://world").unwrap();
        assert_eq!(c, Config::new("world"));
        assert!(!c.create);
        assert_eq!(c.region, None);
        assert_eq!(c.operation_timeout, Duration::from_secs(15));
    }

    #[test]
    fn refuses_bad_urls() {
        assert_eq!(Config::from_url("postgres://x"), Err(ConfigError::Scheme));
        assert!(matches!(
            Config::from_url("dynamodb://ab"),
            Err(ConfigError::Table(_))
        ));
        assert!(matches!(
            Config::from_url("dynamodb://a b c"),
            Err(ConfigError::Table(_))
        ));
        assert!(matches!(
            Config::from_url("dynamodb://?region=x"),
            Err(ConfigError::Table(_))
        ));
        assert!(matches!(
            Config::from_url("dynamodb://world?regoin=x"),
            Err(ConfigError::Unknown(_))
        ));
        assert!(matches!(
            Config::from_url("dynamodb://world?create=maybe"),
            Err(ConfigError::Value { .. })
        ));
        assert!(matches!(
            Config::from_url("dynamodb://world?region=a&region=b"),
            Err(ConfigError::Duplicate(_))
        ));
        assert!(Config::from_url("dynamodb://world?max_attempts=0").is_err());
        assert!(Config::from_url("dynamodb://world?concurrency=0").is_err());
        assert!(Config::from_url("dynamodb://world?compact_after=0").is_err());
        assert!(Config::from_url("dynamodb://world?compact_after=1001").is_err());
        assert!(Config::from_url("dynamodb://world?compact_grace=soon").is_err());
        assert!(Config::from_url("dynamodb://world?compact_grace=2d").is_err());
        assert!(Config::from_url("dynamodb://world?attempt_timeout=0s").is_err());
        assert!(
            Config::from_url("dynamodb://world?attempt_timeout=1m&operation_timeout=10s").is_err()
        );
        assert!(Config::from_url("dynamodb://world?endpoint=ftp://host").is_err());
        assert!(Config::from_url("dynamodb://world?region=EU WEST").is_err());
    }

    #[test]
    fn credentials_never_reach_the_config() {
        let err =
            Config::from_url("dynamodb://world?endpoint=http://AKIDEXAMPLE:s3cr3t@127.0.0.1:8000")
                .unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"));
        let c =
            Config::from_url("dynamodb://world?endpoint=http://127.0.0.1:8000&region=us-east-1")
                .unwrap();
        let debug = format!("{c:?}");
        assert!(debug.contains("world") && debug.contains("127.0.0.1:8000"));
    }
}
