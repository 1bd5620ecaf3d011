//! Connection settings: a `postgres://` URL, with the seed deployment's
//! `PG*` environment variables filling what it leaves out.
//!
//! # Sources and precedence
//!
//! For each setting, the first of these that has it wins:
//!
//! 1. the URL: `postgres://USER:PASSWORD@HOST:PORT/DBNAME?param=value&...`
//!    (`postgresql://` too; percent-encoded; a `/path` host, percent-encoded,
//!    is a Unix socket directory; `host`, `port`, `user`, `password` and
//!    `dbname` are also accepted as query parameters, as libpq does, where
//!    the URL's own parts do not give them);
//! 2. the environment ([`Config::from_url`] reads the process's,
//!    [`Config::from_env_and_url`] takes it as a function):
//!    `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`,
//!    `PGSSLROOTCERT`, `PGAPPNAME`, `PGCONNECT_TIMEOUT`;
//! 3. defaults: host `localhost`, port 5432, user `postgres`, database =
//!    user, `sslmode=prefer`, pool of 16, connect timeout 10 s, statement
//!    timeout 30 s, application name `craft-server`, schema `public`.
//!
//! URL query parameters: `sslmode` (`disable`, `prefer`, `require`,
//! `verify-ca`, `verify-full`), `sslrootcert` (a PEM file, e.g. the RDS CA
//! bundle, or `system` for the operating system's roots; without it the
//! verifying modes use the Mozilla roots of `webpki-roots`),
//! `application_name`, `connect_timeout` (seconds, or a duration such as
//! `1500ms`), `statement_timeout` (milliseconds, or a duration such as
//! `30s`), `pool_size`, `schema`. Anything else is refused, so that a typo
//! does not silently weaken TLS.
//!
//! The password never appears in `Debug` output, in [`Config::redacted_url`]
//! or in error messages.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use pg_sql::{SchemaError, SchemaName};
use secrecy::{ExposeSecret, SecretString};

/// How the connection uses TLS (libpq's `sslmode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, plain otherwise; the certificate is
    /// not checked (libpq's default).
    #[default]
    Prefer,
    /// TLS or nothing; the certificate is not checked, unless `sslrootcert`
    /// is set, in which case the chain is (as libpq does).
    Require,
    /// TLS, and the certificate must chain to a trusted root; the host name
    /// is not checked.
    VerifyCa,
    /// TLS, the certificate must chain to a trusted root and name the host.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "disable" => Ok(SslMode::Disable),
            "prefer" | "allow" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(ConfigError::Invalid {
                field: "sslmode",
                value: other.to_owned(),
                reason: "expected disable, prefer, require, verify-ca or verify-full".to_owned(),
            }),
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the certificates that `verify-ca`/`verify-full` trust come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCerts {
    /// Mozilla's roots, built in (`webpki-roots`).
    WebPki,
    /// The operating system's store (`sslrootcert=system`).
    System,
    /// A PEM file with one or more certificates (`sslrootcert=PATH`).
    File(std::path::PathBuf),
}

/// Why a configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The URL cannot be parsed (the URL itself is not repeated: it may
    /// hold a password).
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    /// The URL's scheme is not `postgres` or `postgresql`.
    #[error("unsupported URL scheme {0:?}: expected postgres:// or postgresql://")]
    Scheme(String),
    /// A query parameter this backend does not know.
    #[error(
        "unknown PostgreSQL URL parameter {0:?}; known: host, port, user, password, dbname, sslmode, sslrootcert, application_name, connect_timeout, statement_timeout, pool_size, schema"
    )]
    UnknownParameter(String),
    /// A setting has a value out of its range or format.
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        /// Which setting.
        field: &'static str,
        /// The value given (never a password).
        value: String,
        /// What is expected.
        reason: String,
    },
    /// The schema name is unusable.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// Validated connection settings of a [`PostgresStore`](crate::PostgresStore),
/// from the `--store postgres://...` value ([`Config::from_url`]).
#[derive(Clone)]
pub struct Config {
    host: String,
    port: u16,
    user: String,
    password: Option<SecretString>,
    dbname: String,
    sslmode: SslMode,
    sslrootcert: Option<String>,
    pool_size: usize,
    connect_timeout: Duration,
    statement_timeout: Duration,
    application_name: String,
    schema: SchemaName,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("application_name", &self.application_name)
            .field("schema", &self.schema.as_str())
            .finish()
    }
}

/// Default pool size per server.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default statement timeout.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `application_name`.
pub const DEFAULT_APPLICATION_NAME: &str = "craft-server";

impl Config {
    /// Parses a store URL, filling what it lacks from the `PG*` environment
    /// variables and then defaults (see the module docs). No I/O.
    pub fn from_url(url: &str) -> Result<Config, ConfigError> {
        Self::from_env_and_url(url, |name| std::env::var(name).ok())
    }

    /// Like [`Config::from_url`] with the environment given by `env`.
    pub fn from_env_and_url(
        url: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        parse_url(url)?.validate(env)
    }

    /// Host name, address, or Unix socket directory.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// User name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Password, if any.
    pub fn password(&self) -> Option<&SecretString> {
        self.password.as_ref()
    }

    /// Database name.
    pub fn dbname(&self) -> &str {
        &self.dbname
    }

    /// TLS mode.
    pub fn sslmode(&self) -> SslMode {
        self.sslmode
    }

    /// Which roots verifying modes trust.
    pub fn root_certs(&self) -> RootCerts {
        match self.sslrootcert.as_deref() {
            None => RootCerts::WebPki,
            Some("system") => RootCerts::System,
            Some(path) => RootCerts::File(path.into()),
        }
    }

    /// Whether `sslrootcert` was given.
    pub fn has_sslrootcert(&self) -> bool {
        self.sslrootcert.is_some()
    }

    /// Connections in the pool.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// Time to establish a connection (and to wait for a free one).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Server-side limit of one statement (lock waits included).
    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    /// `application_name` of the connections (visible in
    /// `pg_stat_activity`).
    pub fn application_name(&self) -> &str {
        &self.application_name
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &SchemaName {
        &self.schema
    }

    /// Whether `host` is a Unix socket directory.
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// The settings as a URL without the password, for logs.
    pub fn redacted_url(&self) -> String {
        let host = if self.is_unix_socket() {
            percent_encode(&self.host)
        } else if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let password = if self.password.is_some() { ":***" } else { "" };
        format!(
            "postgres://{}{password}@{host}:{}/{}?sslmode={}&schema={}",
            percent_encode(&self.user),
            self.port,
            percent_encode(&self.dbname),
            self.sslmode,
            self.schema
        )
    }

    /// The longest a store call may take before it fails as unavailable:
    /// waiting for or opening a connection, then running its statements.
    pub fn call_timeout(&self) -> Duration {
        self.connect_timeout + self.statement_timeout + Duration::from_secs(5)
    }

    /// The tokio-postgres settings (TLS is chosen by the store).
    pub(crate) fn pg_config(&self) -> tokio_postgres::Config {
        let mut pg = tokio_postgres::Config::new();
        if self.is_unix_socket() {
            pg.host_path(&self.host);
        } else {
            pg.host(&self.host);
        }
        pg.port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(&self.application_name)
            .connect_timeout(self.connect_timeout)
            // Notice a dead peer even when no statement is running, and
            // give up on unacknowledged data instead of retransmitting for
            // the kernel's default quarter of an hour.
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3)
            .tcp_user_timeout(self.call_timeout())
            // Bound every statement (lock waits included) server-side, and
            // free the chunk locks of a transaction whose client vanished.
            .options(format!(
                "-c statement_timeout={} -c idle_in_transaction_session_timeout={}",
                self.statement_timeout.as_millis(),
                self.call_timeout().as_millis()
            ))
            .ssl_mode(match self.sslmode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                    tokio_postgres::config::SslMode::Require
                }
            });
        if let Some(password) = &self.password {
            pg.password(password.expose_secret());
        }
        pg
    }
}

/// The settings a URL gives, before the environment and defaults fill the
/// rest and everything is validated.
#[derive(Default)]
struct Parts {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    password: Option<SecretString>,
    dbname: Option<String>,
    sslmode: Option<SslMode>,
    sslrootcert: Option<String>,
    pool_size: Option<usize>,
    connect_timeout: Option<Duration>,
    statement_timeout: Option<Duration>,
    application_name: Option<String>,
    schema: Option<String>,
}

impl Parts {
    /// Fills what the URL left out from `env`, then defaults, and
    /// validates (see the module docs).
    fn validate(self, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env_value = |name: &str| env(name).filter(|v| !v.is_empty());
        let pick = |url: &Option<String>, var: &str| url.clone().or_else(|| env_value(var));

        let host = pick(&self.host, "PGHOST").unwrap_or_else(|| "localhost".to_owned());
        let port = match self.port {
            Some(port) => port,
            None => match env_value("PGPORT") {
                Some(v) => parse_port(&v)?,
                None => 5432,
            },
        };
        if port == 0 {
            return Err(invalid("port", "0", "must be 1 to 65535"));
        }
        let user = pick(&self.user, "PGUSER").unwrap_or_else(|| "postgres".to_owned());
        let password = self
            .password
            .or_else(|| env_value("PGPASSWORD").map(SecretString::from));
        let dbname = pick(&self.dbname, "PGDATABASE").unwrap_or_else(|| user.clone());
        let sslmode = match self.sslmode {
            Some(mode) => mode,
            None => env_value("PGSSLMODE")
                .map(|v| v.parse())
                .transpose()?
                .unwrap_or_default(),
        };
        let sslrootcert = pick(&self.sslrootcert, "PGSSLROOTCERT");
        let pool_size = self.pool_size.unwrap_or(DEFAULT_POOL_SIZE);
        if !(1..=1000).contains(&pool_size) {
            return Err(invalid(
                "pool_size",
                &pool_size.to_string(),
                "must be 1 to 1000",
            ));
        }
        let connect_timeout = match self.connect_timeout {
            Some(t) => t,
            None => match env_value("PGCONNECT_TIMEOUT") {
                Some(v) => parse_duration("connect_timeout", &v, Duration::from_secs)?,
                None => DEFAULT_CONNECT_TIMEOUT,
            },
        };
        let statement_timeout = self.statement_timeout.unwrap_or(DEFAULT_STATEMENT_TIMEOUT);
        for (field, value) in [
            ("connect_timeout", connect_timeout),
            ("statement_timeout", statement_timeout),
        ] {
            // Zero would mean "wait forever" to PostgreSQL: a call could hang.
            if value < Duration::from_millis(1) || value > Duration::from_secs(24 * 3600) {
                return Err(invalid(
                    field,
                    &format!("{value:?}"),
                    "must be between 1ms and 24h",
                ));
            }
        }
        let application_name = pick(&self.application_name, "PGAPPNAME")
            .unwrap_or_else(|| DEFAULT_APPLICATION_NAME.to_owned());
        let schema = match self.schema.as_ref() {
            Some(name) => SchemaName::new(name)?,
            None => SchemaName::default(),
        };
        if host.is_empty() {
            return Err(invalid("host", "", "must not be empty"));
        }
        Ok(Config {
            host,
            port,
            user,
            password,
            dbname,
            sslmode,
            sslrootcert,
            pool_size,
            connect_timeout,
            statement_timeout,
            application_name,
            schema,
        })
    }
}

fn invalid(field: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        field,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

fn parse_port(v: &str) -> Result<u16, ConfigError> {
    v.parse()
        .map_err(|_| invalid("port", v, "must be 1 to 65535"))
}

/// A plain number in `unit`s, or a humantime duration (`1500ms`, `2s`).
fn parse_duration(
    field: &'static str,
    v: &str,
    unit: fn(u64) -> Duration,
) -> Result<Duration, ConfigError> {
    match v.parse::<u64>() {
        Ok(n) => Ok(unit(n)),
        Err(_) => humantime::parse_duration(v).map_err(|e| {
            invalid(
                field,
                v,
                &format!("expected a number or a duration such as 10s ({e})"),
            )
        }),
    }
}

/// The parts of a URL, unvalidated.
fn parse_url(raw: &str) -> Result<Parts, ConfigError> {
    let url = url::Url::parse(raw).map_err(|e| ConfigError::Url(e.to_string()))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(ConfigError::Scheme(url.scheme().to_owned()));
    }
    // An unencoded '#', '/' or '?' in a password cuts the URL elsewhere than
    // meant, and the rest of the password would land in the host, port,
    // database name or fragment (and from there in errors).
    let userinfo = !url.username().is_empty() || url.password().is_some();
    if url.fragment().is_some() || (raw.contains('@') && !userinfo) {
        return Err(ConfigError::Url(
            "the user information is malformed: percent-encode '@', ':', '/', '?' and '#' in the user name and password".to_owned(),
        ));
    }
    let decode = |s: &str, field: &'static str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(String::from)
            .map_err(|_| {
                ConfigError::Url(format!("the {field} is not valid percent-encoded UTF-8"))
            })
    };
    let mut out = Parts::default();
    if let Some(host) = url.host_str().filter(|h| !h.is_empty()) {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        out.host = Some(decode(host, "host")?);
    }
    out.port = url.port();
    if !url.username().is_empty() {
        out.user = Some(decode(url.username(), "user")?);
    }
    if let Some(password) = url.password() {
        out.password = Some(decode(password, "password")?.into());
    }
    let path = url.path().trim_start_matches('/');
    if !path.is_empty() {
        out.dbname = Some(decode(path, "database name")?);
    }
    for (key, value) in url.query_pairs() {
        let value = value.into_owned();
        match key.as_ref() {
            "host" => out.host = out.host.or(Some(value)),
            "port" => out.port = out.port.or(Some(parse_port(&value)?)),
            "user" => out.user = out.user.or(Some(value)),
            "password" => out.password = out.password.or(Some(value.into())),
            "dbname" => out.dbname = out.dbname.or(Some(value)),
            "sslmode" => out.sslmode = Some(value.parse()?),
            "sslrootcert" => out.sslrootcert = Some(value),
            "application_name" => out.application_name = Some(value),
            "connect_timeout" => {
                out.connect_timeout = Some(parse_duration(
                    "connect_timeout",
                    &value,
                    Duration::from_secs,
                )?)
            }
            "statement_timeout" => {
                out.statement_timeout = Some(parse_duration(
                    "statement_timeout",
                    &value,
                    Duration::from_millis,
                )?)
            }
            "pool_size" => {
                out.pool_size = Some(
                    value
                        .parse()
                        .map_err(|_| invalid("pool_size", &value, "must be a number"))?,
                )
            }
            "schema" => out.schema = Some(value),
            other => return Err(ConfigError::UnknownParameter(other.to_owned())),
        }
    }
    Ok(out)
}

/// What [`Config::redacted_url`] leaves unescaped: RFC 3986's unreserved
/// characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn url_parts() {
        let c = Config::from_env_and_url(
            "postgres://craft:s%40cr%2Ft@db.example.org:6543/world?sslmode=verify-full&sslrootcert=/etc/rds.pem&application_name=craft-a&connect_timeout=3&statement_timeout=1500&pool_size=4&schema=craft",
            no_env,
        )
        .expect("valid");
        assert_eq!(c.host(), "db.example.org");
        assert_eq!(c.port(), 6543);
        assert_eq!(c.user(), "craft");
        assert_eq!(
            c.password().map(ExposeSecret::expose_secret),
            Some("s@cr/t")
        );
        assert_eq!(c.dbname(), "world");
        assert_eq!(c.sslmode(), SslMode::VerifyFull);
        assert_eq!(c.root_certs(), RootCerts::File("/etc/rds.pem".into()));
        assert_eq!(c.application_name(), "craft-a");
        assert_eq!(c.connect_timeout(), Duration::from_secs(3));
        assert_eq!(c.statement_timeout(), Duration::from_millis(1500));
        assert_eq!(c.pool_size(), 4);
        assert_eq!(c.schema().as_str(), "craft");
    }

    #[test]
    fn defaults() {
        let c = Config::from_env_and_url("postgres://", no_env).expect("valid");
        assert_eq!(
            (c.host(), c.port(), c.user(), c.dbname()),
            ("localhost", 5432, "postgres", "postgres")
        );
        assert!(c.password().is_none());
        assert_eq!(c.sslmode(), SslMode::Prefer);
        assert_eq!(c.root_certs(), RootCerts::WebPki);
        assert_eq!(c.pool_size(), DEFAULT_POOL_SIZE);
        assert_eq!(c.schema().as_str(), "public");
        let c = Config::from_env_and_url("postgresql://ann@h/", no_env).expect("valid");
        assert_eq!(c.dbname(), "ann", "the database defaults to the user");
    }

    #[test]
    fn environment_fills_what_the_url_lacks() {
        let env: HashMap<&str, &str> = [
            ("PGHOST", "aurora.cluster.local"),
            ("PGPORT", "5433"),
            ("PGUSER", "seed"),
            ("PGPASSWORD", "from-env"),
            ("PGDATABASE", "craftdb"),
            ("PGSSLMODE", "require"),
            ("PGAPPNAME", "seed-app"),
            ("PGCONNECT_TIMEOUT", "7"),
        ]
        .into();
        let env = |name: &str| env.get(name).map(|v| (*v).to_owned());
        let c = Config::from_env_and_url("postgres://", env).expect("valid");
        assert_eq!(c.host(), "aurora.cluster.local");
        assert_eq!(c.port(), 5433);
        assert_eq!(c.user(), "seed");
        assert_eq!(
            c.password().map(ExposeSecret::expose_secret),
            Some("from-env")
        );
        assert_eq!(c.dbname(), "craftdb");
        assert_eq!(c.sslmode(), SslMode::Require);
        assert_eq!(c.application_name(), "seed-app");
        assert_eq!(c.connect_timeout(), Duration::from_secs(7));

        // The URL wins over the environment, part by part.
        let c = Config::from_env_and_url("postgres://other:pw@h2/db2?sslmode=disable", env)
            .expect("valid");
        assert_eq!(
            (c.host(), c.port(), c.user(), c.dbname()),
            ("h2", 5433, "other", "db2")
        );
        assert_eq!(c.password().map(ExposeSecret::expose_secret), Some("pw"));
        assert_eq!(c.sslmode(), SslMode::Disable);
        // And so do its query parameters.
        let c = Config::from_env_and_url("postgres:///?host=h3&password=q", env).expect("valid");
        assert_eq!((c.host(), c.user()), ("h3", "seed"));
        assert_eq!(c.password().map(ExposeSecret::expose_secret), Some("q"));
    }

    #[test]
    fn unix_sockets_and_ipv6() {
        let c = Config::from_env_and_url("postgres://u@%2Fvar%2Frun%2Fpostgresql/db", no_env)
            .expect("valid");
        assert!(c.is_unix_socket());
        assert_eq!(c.host(), "/var/run/postgresql");
        let c = Config::from_env_and_url("postgres://u@[::1]:5000/db", no_env).expect("valid");
        assert_eq!((c.host(), c.port()), ("::1", 5000));
        assert!(c.redacted_url().contains("@[::1]:5000/"));
        let c =
            Config::from_env_and_url("postgres:///db?host=/tmp&port=5444", no_env).expect("valid");
        assert_eq!((c.host(), c.port()), ("/tmp", 5444));
    }

    #[test]
    fn bad_values_are_refused() {
        for url in [
            "mysql://h/db",
            "postgres://h/db?sslmode=bogus",
            "postgres://h/db?sslmod=require",
            "postgres://h/db?pool_size=0",
            "postgres://h/db?pool_size=x",
            "postgres://h/db?connect_timeout=0",
            "postgres://h/db?statement_timeout=soon",
            "postgres://h/db?schema=pg_catalog",
            "postgres://h/db?schema=a-b",
            "postgres://h/db?port=99999",
            "not a url",
        ] {
            assert!(Config::from_env_and_url(url, no_env).is_err(), "{url}");
        }
    }

    #[test]
    fn durations_accept_units() {
        let c = Config::from_env_and_url(
            "postgres://h/db?connect_timeout=1500ms&statement_timeout=2s",
            no_env,
        )
        .expect("valid");
        assert_eq!(c.connect_timeout(), Duration::from_millis(1500));
        assert_eq!(c.statement_timeout(), Duration::from_secs(2));
    }

    #[test]
    fn the_password_never_shows() {
        let secret = "hunter2-s3cr3t";
        let url = format!("postgres://craft:{secret}@db/world?sslmode=require");
        let c = Config::from_env_and_url(&url, no_env).expect("valid");
        for text in [format!("{c:?}"), c.redacted_url()] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(c.redacted_url().contains(":***@db"));
        assert!(!format!("{:?}", c.pg_config()).contains(secret));
        let c = Config::from_env_and_url("postgres://db/world", |name| {
            (name == "PGPASSWORD").then(|| secret.to_owned())
        })
        .expect("valid");
        assert_eq!(c.password().map(ExposeSecret::expose_secret), Some(secret));
        assert!(!format!("{c:?}").contains(secret));
        // Errors never repeat the URL.
        let err = Config::from_env_and_url(&format!("postgres://u:{secret}@h/db?bogus=1"), no_env)
            .expect_err("unknown parameter");
        assert!(!err.to_string().contains(secret));
        let err = Config::from_env_and_url(&format!("postgres://u:{secret}@h:port/db"), no_env)
            .expect_err("bad port");
        assert!(!err.to_string().contains(secret));
    }

    #[test]
    fn pg_config_carries_the_timeouts() {
        let c = Config::from_env_and_url("postgres://h/db?statement_timeout=2500", no_env)
            .expect("valid");
        let pg = c.pg_config();
        assert_eq!(
            pg.get_options(),
            Some("-c statement_timeout=2500 -c idle_in_transaction_session_timeout=17500")
        );
        assert_eq!(pg.get_connect_timeout(), Some(&DEFAULT_CONNECT_TIMEOUT));
    }
}
