//! Settings of the orchestrator integrations: the Agones SDK sidecar
//! (`[agones]`) and the EC2 instance metadata service (`[imds]`), and the
//! [`Switch`] both are turned on with. The code that uses them lives in
//! [`agones`](crate::agones) and [`imds`](crate::imds).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// On, off, or decided from the environment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// On when the environment says so (see each setting).
    #[default]
    Auto,
    /// Always on.
    #[value(alias = "true")]
    On,
    /// Always off.
    #[value(alias = "false")]
    Off,
}

impl Switch {
    /// Whether the feature runs, given what the environment says.
    pub fn resolve(self, detected: impl FnOnce() -> bool) -> bool {
        match self {
            Switch::On => true,
            Switch::Off => false,
            Switch::Auto => detected(),
        }
    }
}

impl Serialize for Switch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Switch::Auto => "auto",
            Switch::On => "on",
            Switch::Off => "off",
        })
    }
}

impl<'de> Deserialize<'de> for Switch {
    /// `"auto"`, `"on"`/`true`, `"off"`/`false`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Switch::On),
            Raw::Bool(false) => Ok(Switch::Off),
            Raw::Text(t) => match t.to_ascii_lowercase().as_str() {
                "auto" => Ok(Switch::Auto),
                "on" | "true" => Ok(Switch::On),
                "off" | "false" => Ok(Switch::Off),
                _ => Err(serde::de::Error::custom(format!(
                    "expected \"auto\", \"on\" or \"off\", got {t:?}"
                ))),
            },
        }
    }
}

/// Set by Agones in the game server container: the sidecar's REST port.
pub const HTTP_PORT_ENV: &str = "AGONES_SDK_HTTP_PORT";
/// Set by Agones in the game server container: the sidecar's gRPC port.
pub const GRPC_PORT_ENV: &str = "AGONES_SDK_GRPC_PORT";
/// The sidecar's REST port when the environment does not say.
pub const DEFAULT_HTTP_PORT: u16 = 9358;

/// Where the player count goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlayerCount {
    /// The beta Counter named `agones.counter` (falls back to a label when
    /// the GameServer declares no such Counter).
    #[default]
    Counter,
    /// The label `agones.dev/sdk-<agones.counter>`.
    Label,
    /// Not reported.
    None,
}

/// `[agones]` settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgonesConfig {
    /// `auto`: on when Agones set `AGONES_SDK_HTTP_PORT` or
    /// `AGONES_SDK_GRPC_PORT`.
    pub enabled: Switch,
    /// The sidecar's REST API; default
    /// `http://localhost:${AGONES_SDK_HTTP_PORT:-9358}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Time between health pings (keep it well under the GameServer's
    /// `health.periodSeconds`, 5 s by default).
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
    /// Where the player count goes: `counter`, `label` or `none`.
    pub player_count: PlayerCount,
    /// Name of the Counter (or label key) holding the player count.
    pub counter: String,
    /// Mark the game server Allocated when the first player joins.
    pub allocate_on_join: bool,
    /// Drain and shut down once the server has been empty this long after
    /// its last player left; unset: never.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub shutdown_when_empty_for: Option<Duration>,
    /// Longest wait for one answer of the sidecar.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for AgonesConfig {
    fn default() -> Self {
        Self {
            enabled: Switch::Auto,
            url: None,
            health_interval: Duration::from_secs(2),
            player_count: PlayerCount::Counter,
            counter: "players".to_owned(),
            allocate_on_join: true,
            shutdown_when_empty_for: None,
            timeout: Duration::from_secs(2),
        }
    }
}

impl AgonesConfig {
    /// The sidecar's base URL when the integration is on, given the
    /// environment (`env` looks a variable up).
    pub fn endpoint(&self, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        let present = || env(HTTP_PORT_ENV).is_some() || env(GRPC_PORT_ENV).is_some();
        if !self.enabled.resolve(present) {
            return None;
        }
        Some(match &self.url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let port = env(HTTP_PORT_ENV)
                    .and_then(|p| p.trim().parse::<u16>().ok())
                    .unwrap_or(DEFAULT_HTTP_PORT);
                format!("http://localhost:{port}")
            }
        })
    }

    /// Checks ranges (no I/O).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(u) = &self.url {
            let url = url::Url::parse(u).map_err(|e| format!("agones.url {u:?}: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("agones.url {u:?} must be http or https"));
            }
        }
        if self.health_interval.is_zero() || self.timeout.is_zero() {
            return Err("agones.health_interval and agones.timeout must be positive".into());
        }
        if self.shutdown_when_empty_for.is_some_and(|d| d.is_zero()) {
            return Err(
                "agones.shutdown_when_empty_for must be positive (leave it out for never)".into(),
            );
        }
        // A label key (the fallback) is the strictest use of the name.
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if self.counter.is_empty() || self.counter.len() > 63 || !self.counter.chars().all(valid) {
            return Err(format!(
                "agones.counter {:?} must be 1 to 63 letters, digits, '-', '_' or '.'",
                self.counter
            ));
        }
        Ok(())
    }
}

/// `[imds]` settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImdsConfig {
    /// `auto`: on when the machine looks like an EC2 instance (its DMI or
    /// hypervisor identity, read from /sys: no network probe).
    pub enabled: Switch,
    /// The metadata service.
    pub base_url: String,
    /// Time between two polls.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Lifetime asked for each session token (at most 6 h).
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Longest wait for one answer.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Told to every player on an interruption notice; `{seconds}` becomes
    /// the time left.
    pub message: String,
    /// Also drain on a rebalance recommendation (an earlier, softer signal
    /// than the two-minute notice).
    pub drain_on_rebalance: bool,
    /// Told to every player when a rebalance recommendation starts the drain.
    pub rebalance_message: String,
}

impl Default for ImdsConfig {
    fn default() -> Self {
        Self {
            enabled: Switch::Auto,
            base_url: "http://169.254.169.254".to_owned(),
            poll_interval: Duration::from_secs(5),
            token_ttl: Duration::from_secs(6 * 3600),
            timeout: Duration::from_secs(2),
            message: "This server is being reclaimed in {seconds} seconds - your universe is saved"
                .to_owned(),
            drain_on_rebalance: true,
            rebalance_message: "This server is moving to another machine - your universe is saved"
                .to_owned(),
        }
    }
}

impl ImdsConfig {
    /// Checks ranges (no I/O).
    pub fn validate(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.base_url)
            .map_err(|e| format!("imds.base_url {:?}: {e}", self.base_url))?;
        if url.scheme() != "http" {
            return Err(format!("imds.base_url {:?} must be http", self.base_url));
        }
        if self.poll_interval.is_zero() || self.timeout.is_zero() {
            return Err("imds.poll_interval and imds.timeout must be positive".into());
        }
        let ttl = self.token_ttl.as_secs();
        if !(1..=21_600).contains(&ttl) {
            return Err("imds.token_ttl must be between 1s and 6h".into());
        }
        if self.message.contains('\n') || self.rebalance_message.contains('\n') {
            return Err("imds.message and imds.rebalance_message cannot contain newlines".into());
        }
        Ok(())
    }

    /// The interruption message with `left` filled in.
    pub fn interruption_message(&self, left: Duration) -> String {
        self.message
            .replace("{seconds}", &left.as_secs().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn auto_follows_the_sidecar_environment() {
        let config = AgonesConfig::default();
        assert_eq!(config.endpoint(env(&[])), None);
        assert_eq!(
            config.endpoint(env(&[(HTTP_PORT_ENV, "9999")])).as_deref(),
            Some("http://localhost:9999")
        );
        assert_eq!(
            config.endpoint(env(&[(GRPC_PORT_ENV, "9357")])).as_deref(),
            Some("http://localhost:9358")
        );
        let off = AgonesConfig {
            enabled: Switch::Off,
            ..AgonesConfig::default()
        };
        assert_eq!(off.endpoint(env(&[(HTTP_PORT_ENV, "9999")])), None);
        let explicit = AgonesConfig {
            enabled: Switch::On,
            url: Some("http://127.0.0.1:1234/".into()),
            ..AgonesConfig::default()
        };
        assert_eq!(
            explicit.endpoint(env(&[])).as_deref(),
            Some("http://127.0.0.1:1234")
        );
    }

    #[test]
    fn validation() {
        let mut c = AgonesConfig::default();
        c.validate().expect("defaults");
        c.counter = "players online".into();
        assert!(c.validate().is_err());
        c.counter = "players".into();
        c.url = Some("ftp://x".into());
        assert!(c.validate().is_err());
        c.url = None;
        c.shutdown_when_empty_for = Some(Duration::ZERO);
        assert!(c.validate().is_err());
    }

    #[derive(Debug, Deserialize)]
    struct Holder {
        s: Switch,
    }

    #[test]
    fn switch_reads_words_and_booleans() {
        for (text, want) in [
            ("s = \"auto\"", Switch::Auto),
            ("s = true", Switch::On),
            ("s = \"off\"", Switch::Off),
            ("s = false", Switch::Off),
        ] {
            let h: Holder = toml::from_str(text).expect(text);
            assert_eq!(h.s, want, "{text}");
        }
        assert!(toml::from_str::<Holder>("s = \"maybe\"").is_err());
        assert!(Switch::Auto.resolve(|| true));
        assert!(!Switch::Off.resolve(|| true));
    }

    #[test]
    fn imds_validation() {
        ImdsConfig::default().validate().expect("defaults");
        assert_eq!(
            ImdsConfig::default().interruption_message(Duration::from_secs(115)),
            "This server is being reclaimed in 115 seconds - your universe is saved"
        );
        let bad = ImdsConfig {
            token_ttl: Duration::from_secs(7 * 3600),
            ..ImdsConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
