//! Settings of the NATS bus, from its URL.
//!
//! `nats://[USER:PASSWORD@|TOKEN@]HOST[:PORT][,nats://HOST2:PORT2...][?param=value&...]`
//! (`tls://` for TLS; several servers of one cluster separated by commas,
//! the credentials given once; port 4222 by default). Parameters:
//! `tls_ca` (a PEM file of roots to trust besides the system's),
//! `connect_timeout` (default 5 s) and `ping_interval` (default 10 s: a
//! dead server is noticed within two of them), as durations (`500ms`,
//! `10s`) or seconds. Anything else is refused, so that a typo does not
//! silently weaken TLS.
//!
//! Passwords and tokens never appear in `Debug`, `Display`,
//! [`Config::redacted_url`] or error messages.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bus_core::{BusError, BusResult};
use percent_encoding::percent_decode_str;
use url::Url;

/// Default time to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default interval of the client's pings.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(10);
/// NATS's default port.
pub const DEFAULT_PORT: u16 = 4222;

/// A password or token: kept out of `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the connection only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// How the client authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    None,
    /// `USER:PASSWORD@`.
    UserPassword {
        /// User name.
        user: String,
        /// Password.
        password: Secret,
    },
    /// `TOKEN@`.
    Token(Secret),
}

/// Validated settings of a [`NatsBus`](crate::NatsBus).
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    servers: Vec<Url>,
    auth: Auth,
    tls_required: bool,
    tls_ca: Option<PathBuf>,
    connect_timeout: Duration,
    ping_interval: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.redacted_url())
            .field("auth", &self.auth)
            .field("tls_ca", &self.tls_ca)
            .field("connect_timeout", &self.connect_timeout)
            .field("ping_interval", &self.ping_interval)
            .finish()
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_url())
    }
}

fn invalid(message: impl Into<String>) -> BusError {
    BusError::Config(format!("NATS URL: {}", message.into()))
}

impl Config {
    /// Parses a bus URL (see the module docs). No I/O.
    pub fn from_url(url: &str) -> BusResult<Config> {
        let mut config = Config {
            servers: Vec::new(),
            auth: Auth::None,
            tls_required: false,
            tls_ca: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            ping_interval: DEFAULT_PING_INTERVAL,
        };
        for part in url.split(',') {
            // The URL itself is never repeated: it may hold a secret.
            let mut parsed = Url::parse(part.trim()).map_err(|e| invalid(e.to_string()))?;
            match parsed.scheme() {
                "nats" => {}
                "tls" => config.tls_required = true,
                other => {
                    return Err(invalid(format!(
                        "unsupported scheme {other:?}: expected nats:// or tls://"
                    )));
                }
            }
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(invalid("a server has no host"));
            }
            if !matches!(parsed.path(), "" | "/") || parsed.fragment().is_some() {
                return Err(invalid("a server URL has a path"));
            }
            let auth = credentials(&parsed)?;
            match (&config.auth, auth) {
                (_, Auth::None) => {}
                (Auth::None, auth) => config.auth = auth,
                (known, auth) if *known == auth => {}
                _ => return Err(invalid("servers carry different credentials")),
            }
            for (key, value) in parsed.query_pairs() {
                match key.as_ref() {
                    "tls_ca" => config.tls_ca = Some(PathBuf::from(value.as_ref())),
                    "connect_timeout" => config.connect_timeout = duration(&key, &value)?,
                    "ping_interval" => config.ping_interval = duration(&key, &value)?,
                    other => {
                        return Err(invalid(format!(
                            "unknown parameter {other:?}; known: tls_ca, connect_timeout, ping_interval"
                        )));
                    }
                }
            }
            // Credentials go to the connect options, not the address.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_path("");
            if parsed.port().is_none() {
                parsed
                    .set_port(Some(DEFAULT_PORT))
                    .map_err(|()| invalid("cannot set the port"))?;
            }
            config.servers.push(parsed);
        }
        if config.tls_ca.is_some() {
            config.tls_required = true;
        }
        Ok(config)
    }

    /// The servers, without credentials (`nats://host:4222`).
    pub fn servers(&self) -> &[Url] {
        &self.servers
    }

    /// The credentials.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Whether TLS is required (`tls://` or `tls_ca`).
    pub fn tls_required(&self) -> bool {
        self.tls_required
    }

    /// Extra roots to trust.
    pub fn tls_ca(&self) -> Option<&PathBuf> {
        self.tls_ca.as_ref()
    }

    /// Time to establish a connection.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Interval of the client's pings.
    pub fn ping_interval(&self) -> Duration {
        self.ping_interval
    }

    /// The URL with secrets hidden, for logs.
    pub fn redacted_url(&self) -> String {
        let credentials = match &self.auth {
            Auth::None => String::new(),
            Auth::UserPassword { user, .. } => format!(
                "{}:***@",
                percent_encoding::utf8_percent_encode(user, percent_encoding::NON_ALPHANUMERIC)
            ),
            Auth::Token(_) => "***@".to_owned(),
        };
        self.servers
            .iter()
            .map(|url| {
                let host = url.host_str().unwrap_or_default();
                let port = url.port().unwrap_or(DEFAULT_PORT);
                format!("{}://{credentials}{host}:{port}", url.scheme())
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn credentials(url: &Url) -> BusResult<Auth> {
    let decode = |s: &str, what: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| invalid(format!("the {what} is not valid percent-encoded UTF-8")))
    };
    let user = decode(url.username(), "user")?;
    Ok(match url.password() {
        Some(password) => Auth::UserPassword {
            user,
            password: Secret(decode(password, "password")?),
        },
        None if user.is_empty() => Auth::None,
        None => Auth::Token(Secret(user)),
    })
}

fn duration(key: &str, value: &str) -> BusResult<Duration> {
    let parsed = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(value)
            .map_err(|e| invalid(format!("{key} {value:?}: {e}")))?,
    };
    if parsed.is_zero() {
        return Err(invalid(format!("{key} must be positive")));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_defaults() {
        let c = Config::from_url("nats://127.0.0.1").expect("valid");
        assert_eq!(c.servers()[0].as_str(), "nats://127.0.0.1:4222");
        assert_eq!(c.auth(), &Auth::None);
        assert!(!c.tls_required());
        assert_eq!(c.connect_timeout(), DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(c.ping_interval(), DEFAULT_PING_INTERVAL);
        assert_eq!(c.redacted_url(), "nats://127.0.0.1:4222");
    }

    #[test]
    fn clusters_tls_and_parameters() {
        let c = Config::from_url(
            "tls://u:p@nats-0.nats:4223?tls_ca=/etc/nats/ca.pem&ping_interval=2s, tls://nats-1.nats:4223?connect_timeout=3",
        )
        .expect("valid");
        assert!(c.tls_required());
        assert_eq!(c.servers().len(), 2);
        assert_eq!(c.servers()[1].as_str(), "tls://nats-1.nats:4223");
        assert_eq!(c.tls_ca(), Some(&PathBuf::from("/etc/nats/ca.pem")));
        assert_eq!(c.ping_interval(), Duration::from_secs(2));
        assert_eq!(c.connect_timeout(), Duration::from_secs(3));
        assert_eq!(
            c.redacted_url(),
            "tls://u:***@nats-0.nats:4223,tls://u:***@nats-1.nats:4223"
        );
    }

    #[test]
    fn secrets_never_show() {
        for (url, secret) in [
            ("nats://craft:hunter%402@nats:4222", "hunter@2"),
            ("nats://s3cr3t-t0ken@nats:4222", "s3cr3t-t0ken"),
        ] {
            let c = Config::from_url(url).expect("valid");
            match c.auth() {
                Auth::UserPassword { user, password } => {
                    assert_eq!(user, "craft");
                    assert_eq!(password.expose(), secret);
                }
                Auth::Token(token) => assert_eq!(token.expose(), secret),
                Auth::None => panic!("no credentials parsed from {url}"),
            }
            for text in [format!("{c:?}"), c.to_string(), c.redacted_url()] {
                assert!(!text.contains(secret), "{text}");
                assert!(!text.contains("hunter"), "{text}");
            }
            assert!(c.servers().iter().all(|s| !s.as_str().contains('@')));
            let bad = format!("{url}?bogus=1");
            let err = Config::from_url(&bad).expect_err("unknown parameter");
            assert!(!err.to_string().contains(secret), "{err}");
        }
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "",
            "nats",
            "http://nats:4222",
            "postgres://db/world",
            "nats://",
            "nats://h:99999",
            "nats://h/path",
            "nats://h?tls=1",
            "nats://h?ping_interval=soon",
            "nats://h?connect_timeout=0",
            "nats://a:b@h1,nats://c:d@h2",
        ] {
            assert!(
                matches!(Config::from_url(url), Err(BusError::Config(_))),
                "{url}"
            );
        }
    }
}
