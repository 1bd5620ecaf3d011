//! The `sqlite:` store URL.
//!
//! ```text
//! sqlite:craft.db                      relative to the working directory
//! sqlite:/var/lib/craft/world.db       absolute
//! sqlite:///var/lib/craft/world.db     absolute, URL style (also sqlite://localhost/...)
//! sqlite:world.db?create=false&synchronous=normal&busy_timeout=10s&readers=8
//! ```
//!
//! | parameter | values | default | what |
//! |---|---|---|---|
//! | `create` | `true`, `false` | `true` | create the file when it does not exist |
//! | `synchronous` | `full`, `normal`, `extra` | `full` | SQLite's `PRAGMA synchronous` (see the crate docs) |
//! | `busy_timeout` | a duration (`5s`, `750ms`) or milliseconds | `5s` | how long to wait for another process's lock before failing with a retryable error |
//! | `readers` | `1..=64` | `4` | reader connections (reads run beside the single writer) |
//!
//! The path and values are percent-decoded (`my%20world.db`). Unknown or
//! repeated parameters are errors, so a typo never goes unnoticed.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use world_core::StoreError;

/// Default for `busy_timeout`.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Default for `readers`.
pub const DEFAULT_READERS: usize = 4;

/// Largest accepted `readers`.
pub const MAX_READERS: usize = 64;

const PARAMETERS: &str = "create, synchronous, busy_timeout, readers";

/// How hard SQLite pushes each commit to the disk (`PRAGMA synchronous`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// In WAL mode, commits are not fsynced; a power loss or OS crash may
    /// roll back the last commits (never corrupts the file). A process
    /// crash loses nothing.
    Normal,
    /// Every commit is fsynced before `apply` returns (the default).
    #[default]
    Full,
    /// Like `Full`, and also syncs the directory after deleting journals.
    Extra,
}

impl Synchronous {
    /// The keyword for `PRAGMA synchronous`.
    pub fn pragma_value(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
            Self::Extra => "EXTRA",
        }
    }
}

impl fmt::Display for Synchronous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pragma_value().to_ascii_lowercase())
    }
}

/// Where and how to open the SQLite world file. Holds no secrets, so the
/// derived `Debug` is safe to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The database file.
    pub path: PathBuf,
    /// Create the file (and the schema) when it does not exist.
    pub create: bool,
    /// `PRAGMA synchronous` of the writer connection.
    pub synchronous: Synchronous,
    /// How long a statement waits for a lock held by another connection or
    /// process before failing with [`StoreError::Unavailable`].
    pub busy_timeout: Duration,
    /// Number of reader connections.
    pub readers: usize,
}

impl Config {
    /// A configuration for `path` with every default.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            create: true,
            synchronous: Synchronous::default(),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            readers: DEFAULT_READERS,
        }
    }

    /// Parses a `sqlite:` URL (see the module docs), validating without I/O.
    pub fn from_url(url: &str) -> Result<Config, ConfigError> {
        let rest = strip_scheme(url).ok_or_else(|| ConfigError::Scheme(url.to_owned()))?;
        let (location, query) = match rest.split_once('?') {
            Some((location, query)) => (location, Some(query)),
            None => (rest, None),
        };
        let path = match location.strip_prefix("//") {
            Some(after) => {
                // URL style: an (empty or localhost) authority, then an
                // absolute path.
                let (host, path) = match after.find('/') {
                    Some(slash) => after.split_at(slash),
                    None => (after, ""),
                };
                if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                    // Only the host: user information may hold a password.
                    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
                    return Err(ConfigError::Host(host.to_owned()));
                }
                path
            }
            None => location,
        };
        let path = percent_decode(path)?;
        if path.is_empty() {
            return Err(ConfigError::MissingPath);
        }
        if path == ":memory:" || path.starts_with("file:") {
            return Err(ConfigError::NotAFile(path));
        }
        let mut config = Config::new(path);
        let mut seen: Vec<String> = Vec::new();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name)?;
            let value = percent_decode(value)?;
            if seen.contains(&name) {
                return Err(ConfigError::DuplicateParameter(name));
            }
            match name.as_str() {
                "create" => config.create = parse_bool("create", &value)?,
                "synchronous" => config.synchronous = parse_synchronous(&value)?,
                "busy_timeout" => config.busy_timeout = parse_busy_timeout(&value)?,
                "readers" => config.readers = parse_readers(&value)?,
                _ => return Err(ConfigError::UnknownParameter(name)),
            }
            seen.push(name);
        }
        Ok(config)
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sqlite:{} (synchronous={}, busy_timeout={}, readers={})",
            self.path.display(),
            self.synchronous,
            humantime::format_duration(self.busy_timeout),
            self.readers
        )
    }
}

/// Why a `sqlite:` URL was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL does not start with `sqlite:`.
    #[error(
        "not a sqlite URL: {0:?} (expected sqlite:PATH, e.g. sqlite:craft.db or sqlite:///var/lib/craft/world.db)"
    )]
    Scheme(String),
    /// Nothing after `sqlite:`.
    #[error("the sqlite URL names no file (expected sqlite:PATH, e.g. sqlite:craft.db)")]
    MissingPath,
    /// `sqlite://host/...` with a host other than `localhost`.
    #[error(
        "sqlite URLs take no host (got {0:?}): write sqlite:relative/path.db or sqlite:///absolute/path.db"
    )]
    Host(String),
    /// `:memory:` or a `file:` URI: the store needs a real file shared by
    /// several connections.
    #[error(
        "{0:?} is not a plain file path: the store opens several connections to one file (use a temporary file in tests)"
    )]
    NotAFile(String),
    /// A query parameter this backend does not know.
    #[error("unknown parameter {0:?} in the sqlite URL (known: {PARAMETERS})")]
    UnknownParameter(String),
    /// A query parameter given twice.
    #[error("parameter {0:?} is given twice in the sqlite URL")]
    DuplicateParameter(String),
    /// A parameter with a value it cannot take.
    #[error("invalid value {value:?} for parameter {name} in the sqlite URL: {reason}")]
    InvalidValue {
        /// The parameter.
        name: &'static str,
        /// The value given.
        value: String,
        /// What it should be.
        reason: String,
    },
    /// A `%` not followed by two hex digits, or bytes that are not UTF-8.
    #[error("bad percent-encoding in the sqlite URL: {0:?}")]
    Encoding(String),
}

impl From<ConfigError> for StoreError {
    fn from(e: ConfigError) -> Self {
        StoreError::Config(e.to_string())
    }
}

fn strip_scheme(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once(':')?;
    scheme.eq_ignore_ascii_case("sqlite").then_some(rest)
}

fn percent_decode(s: &str) -> Result<String, ConfigError> {
    let bad = || ConfigError::Encoding(s.to_owned());
    // The crate passes a stray `%` through as it is; in a file name that
    // is more likely a typo than a wish.
    let well_formed = s.split('%').skip(1).all(|after| {
        after
            .as_bytes()
            .get(..2)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return Err(bad());
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(String::from)
        .map_err(|_| bad())
}

fn invalid(name: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        name,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, value, "expected true or false")),
    }
}

fn parse_synchronous(value: &str) -> Result<Synchronous, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "full" | "2" => Ok(Synchronous::Full),
        "normal" | "1" => Ok(Synchronous::Normal),
        "extra" | "3" => Ok(Synchronous::Extra),
        "off" | "0" => Err(invalid(
            "synchronous",
            value,
            "off can corrupt the world file on power loss; use normal at the least",
        )),
        _ => Err(invalid(
            "synchronous",
            value,
            "expected full, normal or extra",
        )),
    }
}

fn parse_busy_timeout(value: &str) -> Result<Duration, ConfigError> {
    let duration = match value.parse::<u64>() {
        // A bare number is milliseconds, as in `PRAGMA busy_timeout`.
        Ok(ms) => Duration::from_millis(ms),
        Err(_) => humantime::parse_duration(value).map_err(|e| {
            invalid(
                "busy_timeout",
                value,
                format!("expected a duration like 5s or 750ms ({e})"),
            )
        })?,
    };
    // SQLite takes the timeout as a C int of milliseconds.
    if duration.as_millis() > i32::MAX as u128 {
        return Err(invalid("busy_timeout", value, "at most 24 days"));
    }
    Ok(duration)
}

fn parse_readers(value: &str) -> Result<usize, ConfigError> {
    match value.parse::<usize>() {
        Ok(n) if (1..=MAX_READERS).contains(&n) => Ok(n),
        _ => Err(invalid(
            "readers",
            value,
            format!("expected a number from 1 to {MAX_READERS}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(url: &str) -> PathBuf {
        Config::from_url(url).expect(url).path
    }

    #[test]
    fn path_forms() {
        assert_eq!(path("sqlite:craft.db"), PathBuf::from("craft.db"));
        assert_eq!(path("sqlite:dir/craft.db"), PathBuf::from("dir/craft.db"));
        assert_eq!(
            path("sqlite:/var/lib/craft/world.db"),
            PathBuf::from("/var/lib/craft/world.db")
        );
        assert_eq!(path("sqlite:///abs/path.db"), PathBuf::from("/abs/path.db"));
        assert_eq!(
            path("sqlite://localhost/abs/path.db"),
            PathBuf::from("/abs/path.db")
        );
        assert_eq!(path("SQLite:my%20world.db"), PathBuf::from("my world.db"));
    }

    #[test]
    fn defaults() {
        let c = Config::from_url("sqlite:craft.db").expect("parse");
        assert_eq!(c, Config::new("craft.db"));
        assert!(c.create);
        assert_eq!(c.synchronous, Synchronous::Full);
        assert_eq!(c.busy_timeout, DEFAULT_BUSY_TIMEOUT);
        assert_eq!(c.readers, DEFAULT_READERS);
    }

    #[test]
    fn parameters() {
        let c = Config::from_url(
            "sqlite:w.db?create=false&synchronous=NORMAL&busy_timeout=250ms&readers=8",
        )
        .expect("parse");
        assert!(!c.create);
        assert_eq!(c.synchronous, Synchronous::Normal);
        assert_eq!(c.busy_timeout, Duration::from_millis(250));
        assert_eq!(c.readers, 8);
        let c = Config::from_url("sqlite:w.db?busy_timeout=1500&").expect("parse");
        assert_eq!(c.busy_timeout, Duration::from_millis(1500));
        let c = Config::from_url("sqlite:///w.db?busy_timeout=10s").expect("parse");
        assert_eq!(c.busy_timeout, Duration::from_secs(10));
    }

    #[test]
    fn refusals() {
        let err = |url: &str| Config::from_url(url).expect_err(url);
        assert_eq!(
            err("postgres://x/y"),
            ConfigError::Scheme("postgres://x/y".into())
        );
        assert_eq!(err("craft.db"), ConfigError::Scheme("craft.db".into()));
        assert_eq!(err("sqlite:"), ConfigError::MissingPath);
        assert_eq!(err("sqlite://"), ConfigError::MissingPath);
        assert_eq!(err("sqlite:?create=true"), ConfigError::MissingPath);
        assert_eq!(
            err("sqlite://example.com/w.db"),
            ConfigError::Host("example.com".into())
        );
        assert_eq!(
            err("sqlite://me:s3cret@example.com/craft.db"),
            ConfigError::Host("example.com".into())
        );
        assert!(matches!(err("sqlite::memory:"), ConfigError::NotAFile(_)));
        assert!(matches!(
            err("sqlite:file:w.db?mode=ro"),
            ConfigError::NotAFile(_)
        ));
        assert_eq!(
            err("sqlite:w.db?mode=ro"),
            ConfigError::UnknownParameter("mode".into())
        );
        assert_eq!(
            err("sqlite:w.db?create=true&create=false"),
            ConfigError::DuplicateParameter("create".into())
        );
        assert!(matches!(
            err("sqlite:w.db?create=maybe"),
            ConfigError::InvalidValue { name: "create", .. }
        ));
        assert!(matches!(
            err("sqlite:w.db?create"),
            ConfigError::InvalidValue { name: "create", .. }
        ));
        assert!(matches!(
            err("sqlite:w.db?synchronous=off"),
            ConfigError::InvalidValue {
                name: "synchronous",
                ..
            }
        ));
        assert!(matches!(
            err("sqlite:w.db?busy_timeout=soon"),
            ConfigError::InvalidValue {
                name: "busy_timeout",
                ..
            }
        ));
        assert!(matches!(
            err("sqlite:w.db?busy_timeout=30days"),
            ConfigError::InvalidValue {
                name: "busy_timeout",
                ..
            }
        ));
        assert!(matches!(
            err("sqlite:w.db?readers=0"),
            ConfigError::InvalidValue {
                name: "readers",
                ..
            }
        ));
        assert!(matches!(
            err("sqlite:w.db?readers=65"),
            ConfigError::InvalidValue {
                name: "readers",
                ..
            }
        ));
        assert!(matches!(err("sqlite:w%zz.db"), ConfigError::Encoding(_)));
        assert!(matches!(err("sqlite:w%ff.db"), ConfigError::Encoding(_)));
    }

    #[test]
    fn errors_become_config_store_errors() {
        let e: StoreError = ConfigError::MissingPath.into();
        assert!(matches!(e, StoreError::Config(_)));
        assert!(!e.is_retryable());
    }
}
