//! The store URL, its parameters and the seed's environment variables.
//!
//! ```text
//! dataapi://DATABASE?resource_arn=arn:aws:rds:…:cluster:…&secret_arn=arn:aws:secretsmanager:…&schema=craft
//! ```
//!
//! | parameter | environment fallback | default | meaning |
//! |---|---|---|---|
//! | `DATABASE` (the URL's host part) | `DB_NAME` | none: the database of the secret | PostgreSQL database (at most 64 characters) |
//! | `resource_arn` | `CLUSTER_ARN` | required | the Aurora cluster, `arn:aws:rds:REGION:ACCOUNT:cluster:NAME` |
//! | `secret_arn` | `SECRET_ARN` | required | the Secrets Manager secret with the database credentials, `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME` |
//! | `region` | `REGION` | the region of `resource_arn` | AWS region of the Data API endpoint |
//! | `endpoint` | | the region's Data API endpoint | `http://` or `https://` URL of another endpoint (`dataapi-local`) |
//! | `schema` | | `public` | PostgreSQL schema of the tables (named in the SQL, schema-qualified; the Data API's own `schema` parameter is not used: Aurora Serverless v2 refuses it) |
//! | `profile` | | `AWS_PROFILE` or `default` | shared config/credentials profile |
//! | `access_key_id`, `secret_access_key`, `session_token` | | the AWS credential chain | static credentials (prefer the chain; these are secrets and never shown) |
//! | `connect_timeout` | | `3s` | TCP/TLS connect timeout |
//! | `call_timeout` | | `60s` | timeout of one HTTP call (the service answers `StatementTimeoutException` after 45 s itself) |
//! | `resume_wait` | | `90s` | how long calls keep retrying while the database resumes from auto-pause (`DatabaseResumingException`) |
//! | `max_attempts` | | `4` | attempts of a call (or a batch) failing with throttling, 5xx, timeouts, a lost connection or a lost transaction, `1..=20` |
//! | `max_request_bytes` | | `4194304` | largest request body this store sends (the service's limit is 4 MiB); `65536..=4194304` |
//! | `page_rows` | | `5000` | block rows per page of `load_chunk` (lights the same, signs a fiftieth), chunks per call of `changed_chunks` and `list_chunks`; `1..=100000` |
//! | `write_form` | | `arrays` | `arrays`: batch steps as `ExecuteStatement` with one PostgreSQL array literal per column; `values`: as `BatchExecuteStatement` with one parameter set per row; `json`: as `ExecuteStatement` with the rows in one JSON parameter |
//!
//! Durations use humantime syntax (`500ms`, `2s`, `1m`). The environment
//! fallbacks let a server of the seed's fleets run with `--store dataapi://`
//! and its usual `CLUSTER_ARN`, `SECRET_ARN`, `DB_NAME`, `REGION`; a value
//! in the URL wins. ARNs identify resources and are not secrets; the
//! secret they name is only read by the service. Parsing does no I/O.

use std::fmt;
use std::time::Duration;

use pg_sql::SchemaName;
use secrecy::{ExposeSecret, SecretString};

/// The URL scheme of this backend.
pub const SCHEME: &str = "dataapi";

/// The service's request size limit (4 MiB, HTTP headers included).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// The service's answer size limit (1 MiB).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Default of `resume_wait`.
pub const DEFAULT_RESUME_WAIT: Duration = Duration::from_secs(90);

/// Default of `call_timeout`.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Default of `page_rows`.
pub const DEFAULT_PAGE_ROWS: u32 = 5_000;

/// How a batch's write steps are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WriteForm {
    /// `ExecuteStatement` with one text parameter per column, the text of
    /// a PostgreSQL array literal ([`pg_sql::Form::Arrays`]): the fewest
    /// bytes per row and the cheapest for the database to read (its array
    /// input function, then `unnest`), so the fewest billed units and
    /// calls.
    #[default]
    Arrays,
    /// `BatchExecuteStatement`, one parameter set per row
    /// ([`pg_sql::Form::Values`]).
    Values,
    /// `ExecuteStatement` with every row in one JSON text parameter
    /// ([`pg_sql::Form::Json`]).
    Json,
}

/// Static AWS credentials given in the URL.
#[derive(Clone)]
pub struct StaticCredentials {
    /// Access key id (not shown either: it names an account's key).
    pub access_key_id: SecretString,
    /// Secret access key.
    pub secret_access_key: SecretString,
    /// Session token of temporary credentials.
    pub session_token: Option<SecretString>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticCredentials(***)")
    }
}

/// A parsed, validated `dataapi://` store URL.
#[derive(Clone)]
pub struct Config {
    /// PostgreSQL database; `None` uses the secret's (`dbname`) default.
    pub database: Option<String>,
    /// ARN of the Aurora cluster.
    pub resource_arn: String,
    /// ARN of the Secrets Manager secret holding the database credentials.
    pub secret_arn: String,
    /// AWS region; `None` takes the region of `resource_arn`.
    pub region: Option<String>,
    /// Endpoint override (`http://host:port`).
    pub endpoint: Option<String>,
    /// The schema of the tables.
    pub schema: SchemaName,
    /// Shared config profile; `None` uses `AWS_PROFILE` or `default`.
    pub profile: Option<String>,
    /// Static credentials; `None` uses the AWS credential chain.
    pub credentials: Option<StaticCredentials>,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one HTTP call.
    pub call_timeout: Duration,
    /// How long to retry while the database resumes.
    pub resume_wait: Duration,
    /// Attempts for other transient failures.
    pub max_attempts: u32,
    /// Largest request body sent.
    pub max_request_bytes: usize,
    /// Rows per page (see the module docs).
    pub page_rows: u32,
    /// How batch steps are sent.
    pub write_form: WriteForm,
}

/// Why a store URL (or the environment) was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The URL does not start with `dataapi://`.
    #[error("a Data API store URL starts with dataapi://")]
    Scheme,
    /// A required setting is missing from the URL and the environment.
    #[error("missing {name}: add {name}=… to the store URL or set {env}")]
    Missing {
        /// The URL parameter.
        name: &'static str,
        /// The environment variable.
        env: &'static str,
    },
    /// A parameter has a value that cannot be used.
    #[error("invalid value for {name}: {reason}")]
    Value {
        /// The parameter.
        name: String,
        /// Why (never the value of a secret).
        reason: String,
    },
    /// A parameter this backend does not know (a typo?).
    #[error(
        "unknown parameter {0:?} (known: resource_arn, secret_arn, region, endpoint, schema, profile, access_key_id, secret_access_key, session_token, connect_timeout, call_timeout, resume_wait, max_attempts, max_request_bytes, page_rows, write_form)"
    )]
    Unknown(String),
    /// A parameter given twice.
    #[error("parameter {0:?} given twice")]
    Duplicate(String),
}

fn invalid(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

impl Config {
    /// A configuration with every default for the cluster and secret.
    pub fn new(resource_arn: impl Into<String>, secret_arn: impl Into<String>) -> Config {
        Config {
            database: None,
            resource_arn: resource_arn.into(),
            secret_arn: secret_arn.into(),
            region: None,
            endpoint: None,
            schema: SchemaName::default(),
            profile: None,
            credentials: None,
            connect_timeout: Duration::from_secs(3),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            resume_wait: DEFAULT_RESUME_WAIT,
            max_attempts: 4,
            max_request_bytes: MAX_REQUEST_BYTES,
            page_rows: DEFAULT_PAGE_ROWS,
            write_form: WriteForm::Arrays,
        }
    }

    /// Parses `dataapi://DATABASE?param=value&...` (see the module docs),
    /// taking what the URL lacks from the seed's environment variables
    /// (`CLUSTER_ARN`, `SECRET_ARN`, `DB_NAME`, `REGION`). No I/O.
    pub fn from_url(url: &str) -> Result<Config, ConfigError> {
        Self::from_url_with_env(url, |name| std::env::var(name).ok())
    }

    /// The seed's deployment as it is: `CLUSTER_ARN`, `SECRET_ARN`,
    /// `DB_NAME`, `REGION` (what `dataapi://` alone means).
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_url("dataapi://")
    }

    /// [`from_url`](Self::from_url) with the environment given as a
    /// function (for tests, or another source of settings).
    pub fn from_url_with_env(
        url: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let rest = url
            .get(..SCHEME.len() + 3)
            .filter(|prefix| prefix.eq_ignore_ascii_case("dataapi://"))
            .map(|_| &url[SCHEME.len() + 3..])
            .ok_or(ConfigError::Scheme)?;
        let (database, query) = rest.split_once('?').unwrap_or((rest, ""));
        let database = database.strip_suffix('/').unwrap_or(database);
        let database: String = url::form_urlencoded::parse(format!("d={database}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let mut config = Config::new(String::new(), String::new());
        config.database = (!database.is_empty()).then_some(database);
        let mut seen: Vec<String> = Vec::new();
        let mut keys: (Option<String>, Option<String>, Option<String>) = (None, None, None);
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if seen.iter().any(|s| *s == name) {
                return Err(ConfigError::Duplicate(name.into_owned()));
            }
            seen.push(name.clone().into_owned());
            match name.as_ref() {
                "access_key_id" => keys.0 = Some(value.into_owned()),
                "secret_access_key" => keys.1 = Some(value.into_owned()),
                "session_token" => keys.2 = Some(value.into_owned()),
                _ => config.set(&name, &value)?,
            }
        }
        config.credentials = match keys {
            (None, None, None) => None,
            (Some(id), Some(secret), token) => Some(StaticCredentials {
                access_key_id: id.into(),
                secret_access_key: secret.into(),
                session_token: token.map(SecretString::from),
            }),
            _ => {
                return Err(invalid(
                    "access_key_id",
                    "access_key_id and secret_access_key go together",
                ));
            }
        };
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if config.resource_arn.is_empty() {
            config.resource_arn = env("CLUSTER_ARN").ok_or(ConfigError::Missing {
                name: "resource_arn",
                env: "CLUSTER_ARN",
            })?;
        }
        if config.secret_arn.is_empty() {
            config.secret_arn = env("SECRET_ARN").ok_or(ConfigError::Missing {
                name: "secret_arn",
                env: "SECRET_ARN",
            })?;
        }
        if config.database.is_none() {
            config.database = env("DB_NAME");
        }
        if config.region.is_none() {
            config.region = env("REGION");
        }
        config.validate()?;
        Ok(config)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let duration = |v: &str| -> Result<Duration, ConfigError> {
            let d = humantime::parse_duration(v).map_err(|e| invalid(name, e.to_string()))?;
            if d.is_zero() {
                return Err(invalid(name, "must be greater than zero"));
            }
            Ok(d)
        };
        let number = |v: &str| -> Result<u64, ConfigError> {
            v.parse().map_err(|_| invalid(name, "expected a number"))
        };
        match name {
            "resource_arn" => self.resource_arn = value.to_owned(),
            "secret_arn" => self.secret_arn = value.to_owned(),
            "region" => self.region = Some(value.to_owned()),
            "endpoint" => self.endpoint = Some(value.to_owned()),
            "profile" => self.profile = Some(value.to_owned()),
            "schema" => {
                self.schema = SchemaName::new(value).map_err(|e| invalid(name, e.to_string()))?;
            }
            "connect_timeout" => self.connect_timeout = duration(value)?,
            "call_timeout" => self.call_timeout = duration(value)?,
            "resume_wait" => self.resume_wait = duration(value)?,
            "max_attempts" => {
                self.max_attempts =
                    u32::try_from(number(value)?).map_err(|_| invalid(name, "too large"))?;
            }
            "max_request_bytes" => {
                self.max_request_bytes =
                    usize::try_from(number(value)?).map_err(|_| invalid(name, "too large"))?;
            }
            "page_rows" => {
                self.page_rows =
                    u32::try_from(number(value)?).map_err(|_| invalid(name, "too large"))?;
            }
            "write_form" => {
                self.write_form = match value {
                    "arrays" => WriteForm::Arrays,
                    "values" => WriteForm::Values,
                    "json" => WriteForm::Json,
                    _ => return Err(invalid(name, "expected arrays, values or json")),
                }
            }
            other => return Err(ConfigError::Unknown(other.to_owned())),
        }
        Ok(())
    }

    /// Checks every field (what [`Config::from_url`] does after parsing);
    /// call it after building a `Config` by hand.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_arn(&self.resource_arn, "resource_arn", "rds", "cluster")?;
        check_arn(&self.secret_arn, "secret_arn", "secretsmanager", "secret")?;
        if let Some(database) = &self.database
            && (database.is_empty() || database.chars().count() > 64)
        {
            return Err(invalid("database", "expected 1 to 64 characters"));
        }
        if self.database.as_deref().is_some_and(|d| d.contains('@')) {
            // USER:PASSWORD@ in front of the database: the Data API takes
            // credentials from secret_arn, and the name would reach errors.
            return Err(invalid(
                "database",
                "must not contain '@' (credentials come from secret_arn)",
            ));
        }
        if let Some(region) = &self.region
            && !is_region(region)
        {
            return Err(invalid(
                "region",
                "expected a region name such as eu-west-1",
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            let parsed =
                url::Url::parse(endpoint).map_err(|e| invalid("endpoint", e.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(invalid("endpoint", "expected an http:// or https:// URL"));
            }
            if parsed.host_str().is_none() {
                return Err(invalid("endpoint", "has no host"));
            }
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return Err(invalid("endpoint", "must not contain credentials"));
            }
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(invalid("endpoint", "must not have a query or fragment"));
            }
        }
        if self.profile.as_deref().is_some_and(str::is_empty) {
            return Err(invalid("profile", "must not be empty"));
        }
        if let Some(c) = &self.credentials
            && (c.access_key_id.expose_secret().is_empty()
                || c.secret_access_key.expose_secret().is_empty())
        {
            return Err(invalid("access_key_id", "credentials must not be empty"));
        }
        if !(1..=20).contains(&self.max_attempts) {
            return Err(invalid("max_attempts", "expected 1 to 20"));
        }
        if !(65_536..=MAX_REQUEST_BYTES).contains(&self.max_request_bytes) {
            return Err(invalid(
                "max_request_bytes",
                format!("expected 65536 to {MAX_REQUEST_BYTES}"),
            ));
        }
        if !(1..=100_000).contains(&self.page_rows) {
            return Err(invalid("page_rows", "expected 1 to 100000"));
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("call_timeout", self.call_timeout),
            ("resume_wait", self.resume_wait),
        ] {
            if d.is_zero() {
                return Err(invalid(name, "must be greater than zero"));
            }
        }
        Ok(())
    }

    /// The region calls go to: the configured one, else the cluster's.
    pub fn effective_region(&self) -> Option<String> {
        self.region
            .clone()
            .or_else(|| arn_region(&self.resource_arn).map(str::to_owned))
    }

    /// A one-line description for logs: cluster, database, schema,
    /// endpoint (no secret).
    pub fn target(&self) -> String {
        format!(
            "dataapi://{}?resource_arn={}&schema={}{}",
            self.database.as_deref().unwrap_or(""),
            self.resource_arn,
            self.schema,
            self.endpoint
                .as_deref()
                .map(|e| format!("&endpoint={e}"))
                .unwrap_or_default()
        )
    }
}

fn is_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The region field of an ARN.
fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| is_region(r))
}

/// `arn:PARTITION:SERVICE:REGION:ACCOUNT:TYPE:NAME`, 11 to 100 characters
/// (the service model's bounds).
fn check_arn(arn: &str, name: &str, service: &str, kind: &str) -> Result<(), ConfigError> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    let ok = match parts.as_slice() {
        [prefix, partition, svc, region, account, k, resource] => {
            *prefix == "arn"
                && partition.starts_with("aws")
                && *svc == service
                && is_region(region)
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && *k == kind
                && !resource.is_empty()
        }
        _ => false,
    };
    if !ok || !(11..=100).contains(&arn.chars().count()) {
        return Err(invalid(
            name,
            format!("expected arn:aws:{service}:REGION:ACCOUNT:{kind}:NAME"),
        ));
    }
    Ok(())
}

impl fmt::Debug for Config {
    // Written out so that a field added later cannot leak by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database", &self.database)
            .field("resource_arn", &self.resource_arn)
            .field("secret_arn", &self.secret_arn)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("schema", &self.schema.as_str())
            .field("profile", &self.profile)
            .field("credentials", &self.credentials)
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("resume_wait", &self.resume_wait)
            .field("max_attempts", &self.max_attempts)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("page_rows", &self.page_rows)
            .field("write_form", &self.write_form)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "arn:aws:rds:eu-west-1:123456789012:cluster:craft";
    const SECRET: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:craft-AbCdEf";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn url(rest: &str) -> String {
        format!("dataapi://world?resource_arn={CLUSTER}&secret_arn={SECRET}{rest}")
    }

    #[test]
    fn parses_every_parameter() {
        let c = Config::from_url_with_env(
            &url(
                "&region=us-east-1&endpoint=http://127.0.0.1:8090&schema=Craft_1&profile=dev\
                 &connect_timeout=500ms&call_timeout=10s&resume_wait=2m&max_attempts=2\
                 &max_request_bytes=100000&page_rows=100&write_form=json",
            ),
            no_env,
        )
        .unwrap();
        assert_eq!(c.database.as_deref(), Some("world"));
        assert_eq!(c.resource_arn, CLUSTER);
        assert_eq!(c.secret_arn, SECRET);
        assert_eq!(c.region.as_deref(), Some("us-east-1"));
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:8090"));
        assert_eq!(c.schema.as_str(), "Craft_1");
        assert_eq!(c.profile.as_deref(), Some("dev"));
        assert_eq!(c.connect_timeout, Duration::from_millis(500));
        assert_eq!(c.call_timeout, Duration::from_secs(10));
        assert_eq!(c.resume_wait, Duration::from_secs(120));
        assert_eq!(c.max_attempts, 2);
        assert_eq!(c.max_request_bytes, 100_000);
        assert_eq!(c.page_rows, 100);
        assert_eq!(c.write_form, WriteForm::Json);
    }

    #[test]
    fn defaults_and_region_from_the_arn() {
        let c = Config::from_url_with_env(&url(""), no_env).unwrap();
        let mut expected = Config::new(CLUSTER, SECRET);
        expected.database = Some("world".into());
        // Configs hold secrets, which have no equality: compare what shows.
        assert_eq!(format!("{c:?}"), format!("{expected:?}"));
        assert!(c.resume_wait >= Duration::from_secs(60));
        assert_eq!(c.effective_region().as_deref(), Some("eu-west-1"));
        assert_eq!(c.schema.as_str(), "public");
    }

    #[test]
    fn the_seeds_environment_fills_the_gaps() {
        let env = |name: &str| -> Option<String> {
            match name {
                "CLUSTER_ARN" => Some(CLUSTER.into()),
                "SECRET_ARN" => Some(SECRET.into()),
                "DB_NAME" => Some("craft".into()),
                "REGION" => Some("eu-west-1".into()),
                _ => None,
            }
        };
        let c = Config::from_url_with_env("dataapi://", env).unwrap();
        assert_eq!(c.database.as_deref(), Some("craft"));
        assert_eq!(c.resource_arn, CLUSTER);
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        // The URL wins.
        let c =
            Config::from_url_with_env("dataapi://other?schema=s&region=us-east-2", env).unwrap();
        assert_eq!(c.database.as_deref(), Some("other"));
        assert_eq!(c.region.as_deref(), Some("us-east-2"));
        assert_eq!(
            Config::from_url_with_env("dataapi://", no_env).err(),
            Some(ConfigError::Missing {
                name: "resource_arn",
                env: "CLUSTER_ARN"
            })
        );
    }

    #[test]
    fn refuses_bad_urls() {
        let bad = |rest: &str| Config::from_url_with_env(&url(rest), no_env).unwrap_err();
        assert_eq!(
            Config::from_url_with_env("postgres://x", no_env).err(),
            Some(ConfigError::Scheme)
        );
        assert!(matches!(bad("&scheme=x"), ConfigError::Unknown(_)));
        assert!(matches!(
            bad("&region=a&region=b"),
            ConfigError::Duplicate(_)
        ));
        assert!(matches!(bad("&schema=a-b"), ConfigError::Value { .. }));
        assert!(matches!(
            bad("&schema=pg_catalog"),
            ConfigError::Value { .. }
        ));
        assert!(matches!(bad("&max_attempts=0"), ConfigError::Value { .. }));
        assert!(matches!(
            bad("&max_request_bytes=5000000"),
            ConfigError::Value { .. }
        ));
        assert!(matches!(bad("&page_rows=0"), ConfigError::Value { .. }));
        assert!(matches!(bad("&resume_wait=0s"), ConfigError::Value { .. }));
        assert!(matches!(
            bad("&endpoint=ftp://x"),
            ConfigError::Value { .. }
        ));
        assert!(matches!(bad("&region=EU WEST"), ConfigError::Value { .. }));
        assert!(matches!(bad("&write_form=csv"), ConfigError::Value { .. }));
        assert!(matches!(
            bad("&access_key_id=AKID"),
            ConfigError::Value { .. }
        ));
        let wrong_arn = Config::from_url_with_env(
            &format!("dataapi://w?resource_arn={SECRET}&secret_arn={SECRET}"),
            no_env,
        );
        assert!(matches!(wrong_arn, Err(ConfigError::Value { .. })));
        let long = "d".repeat(65);
        assert!(
            Config::from_url_with_env(
                &format!("dataapi://{long}?resource_arn={CLUSTER}&secret_arn={SECRET}"),
                no_env
            )
            .is_err()
        );
    }

    #[test]
    fn secrets_never_show() {
        let c = Config::from_url_with_env(
            &url("&access_key_id=AKIDEXAMPLE&secret_access_key=wJalrXUtnFEMI&session_token=tok3n"),
            no_env,
        )
        .unwrap();
        let debug = format!("{c:?}");
        for secret in ["AKIDEXAMPLE", "wJalrXUtnFEMI", "tok3n"] {
            assert!(!debug.contains(secret), "{debug}");
            assert!(!c.target().contains(secret));
        }
        assert!(
            debug.contains(CLUSTER) && debug.contains(SECRET),
            "ARNs are not secrets"
        );
        let err =
            Config::from_url_with_env(&url("&endpoint=http://AKID:s3cr3t@127.0.0.1:1"), no_env)
                .unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"));
    }

    #[test]
    fn database_names_are_decoded() {
        let c = Config::from_url_with_env(
            &format!("dataapi://my%20db/?resource_arn={CLUSTER}&secret_arn={SECRET}"),
            no_env,
        )
        .unwrap();
        assert_eq!(c.database.as_deref(), Some("my db"));
        let c = Config::from_url_with_env(
            &format!("DataAPI://?resource_arn={CLUSTER}&secret_arn={SECRET}"),
            no_env,
        )
        .unwrap();
        assert_eq!(c.database, None);
    }
}
