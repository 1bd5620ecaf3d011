//! Server configuration: a TOML file, overridden by command-line flags.
//!
//! Every field has a default, so an empty file (or none) is a working
//! configuration: `craft-server` alone serves `sqlite:craft.db` on
//! `0.0.0.0:4080`. See `craft-server.example.toml` for a commented file.

mod history;
pub mod memory;
mod orchestrator;
mod store_url;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use world_core::protocol::Position;

pub use history::HistoryConfig;
pub use orchestrator::{
    AgonesConfig, DEFAULT_HTTP_PORT, GRPC_PORT_ENV, HTTP_PORT_ENV, ImdsConfig, PlayerCount, Switch,
};
pub use store_url::StoreUrl;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with line and column.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Where players appear (and `/spawn` takes them).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Spawn {
    /// x.
    pub x: f32,
    /// y; 0 lets the client drop the player onto the highest block.
    pub y: f32,
    /// z.
    pub z: f32,
    /// Rotation around the vertical axis.
    pub rx: f32,
    /// Rotation up/down.
    pub ry: f32,
}

impl Default for Spawn {
    fn default() -> Self {
        Self {
            x: 0.0,
            y: 0.0,
            z: 0.0,
            rx: 0.0,
            ry: 0.0,
        }
    }
}

impl Spawn {
    /// As a protocol position.
    pub fn position(&self) -> Position {
        Position {
            x: self.x,
            y: self.y,
            z: self.z,
            rx: self.rx,
            ry: self.ry,
        }
    }
}

impl std::str::FromStr for Spawn {
    type Err = String;

    /// `X,Y,Z` or `X,Y,Z,RX,RY`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Result<Vec<f32>, _> = s.split(',').map(|p| p.trim().parse::<f32>()).collect();
        let parts = parts.map_err(|e| format!("spawn point {s:?}: {e}"))?;
        if parts.iter().any(|v| !v.is_finite()) {
            return Err(format!("spawn point {s:?} must be finite numbers"));
        }
        match parts.as_slice() {
            [x, y, z] => Ok(Spawn {
                x: *x,
                y: *y,
                z: *z,
                rx: 0.0,
                ry: 0.0,
            }),
            [x, y, z, rx, ry] => Ok(Spawn {
                x: *x,
                y: *y,
                z: *z,
                rx: *rx,
                ry: *ry,
            }),
            _ => Err(format!("spawn point {s:?}: expected X,Y,Z or X,Y,Z,RX,RY")),
        }
    }
}

/// How `A,USERNAME,TOKEN` is checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LoginMode {
    /// No identity service: every player is a guest.
    #[default]
    None,
    /// POST `username` and `access_token` (form-encoded) to `login.url`: a
    /// 2xx answer logs the player in; anything else, or no answer within
    /// `login.timeout`, leaves them a guest.
    Http,
}

/// Login settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginConfig {
    /// How tokens are checked.
    pub mode: LoginMode,
    /// The identity service for `http` mode.
    pub url: Option<String>,
    /// How long to wait for the identity service.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Only logged-in players may build (edit blocks, lights, signs), and
    /// nobody may change their nick.
    pub required_to_build: bool,
    /// Told to guests after `A`. The original pointed at a site that no
    /// longer exists.
    pub register_hint: String,
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            mode: LoginMode::None,
            url: None,
            timeout: Duration::from_secs(3),
            required_to_build: false,
            register_hint: "Visit the server's website to register!".to_owned(),
        }
    }
}

/// The shutdown (SIGTERM / SIGINT, spot notices) drain.
///
/// Timeline of a shutdown with notice (a spot interruption, or a signal
/// when `notice` is set): countdown lines at `countdown` seconds before
/// the connections close, while everyone keeps playing; `grace` before the
/// close the drain starts (the final `message`, no new players, a flush);
/// at the close the connections end and the last flush runs; the process
/// exits once everything is stored. Without notice (SIGTERM, `notice = 0`)
/// the drain starts at once and the close follows `grace` later.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Sent to every player when the drain starts.
    pub message: String,
    /// How long connections stay open after the drain started (and
    /// `message` was sent): lines a client sent just before still count,
    /// and the unmodified client, which quits the moment its connection
    /// closes, gets time to draw the message (a slow client at 2 frames a
    /// second needs well over one second). Pending edits are flushed during
    /// the grace, not after it.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// The longest the drain may take before the server gives up flushing
    /// and exits with an error (keep it under the orchestrator's grace
    /// period: spot instances get 120 s).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Warning time a SIGTERM (or an EC2 rebalance recommendation) gives
    /// players before the connections close: a countdown, then the drain.
    /// 0 (the default) drains at once. Keep `notice + timeout` under the
    /// pod's `terminationGracePeriodSeconds`; a second signal drains at once.
    #[serde(with = "humantime_serde")]
    pub notice: Duration,
    /// Seconds before the close at which players are told how long is left
    /// (only those further away than `grace`; the final `message` covers
    /// the rest).
    pub countdown: Vec<u64>,
    /// The countdown line; `{seconds}` becomes the seconds left.
    pub countdown_message: String,
    /// Time kept after the close for the last flush when a notice names a
    /// deadline (a spot interruption: the connections close this long
    /// before the instance goes away).
    #[serde(with = "humantime_serde")]
    pub flush_reserve: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            message: "Game server maintenance is pending - your universe is saved".to_owned(),
            grace: Duration::from_secs(3),
            timeout: Duration::from_secs(90),
            notice: Duration::ZERO,
            countdown: vec![90, 60, 30, 10],
            countdown_message:
                "This server shuts down in {seconds} seconds - your universe is saved".to_owned(),
            flush_reserve: Duration::from_secs(15),
        }
    }
}

impl ShutdownConfig {
    /// The countdown line for `seconds` left.
    pub fn countdown_line(&self, seconds: u64) -> String {
        self.countdown_message
            .replace("{seconds}", &seconds.to_string())
    }

    /// Checks ranges (no I/O).
    pub fn validate(&self) -> Result<(), String> {
        if self.grace > self.timeout {
            return Err("shutdown.grace cannot be longer than shutdown.timeout".into());
        }
        if self.countdown_message.contains('\n') {
            return Err("shutdown.countdown_message cannot contain newlines".into());
        }
        if self.notice > Duration::from_secs(3600) {
            return Err("shutdown.notice must be at most 1h".into());
        }
        Ok(())
    }
}

/// Protection against misbehaving clients and runaway memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Lines per second a connection may send on average; faster senders
    /// are slowed down (not disconnected).
    pub lines_per_second: u32,
    /// Lines a connection may send in a burst (joining requests hundreds of
    /// chunks at once).
    pub line_burst: u32,
    /// Bytes queued for a client that does not read; past this the client
    /// is disconnected so that it cannot slow anyone else. Unset: derived
    /// at start from the container's memory limit and `max_players` (see
    /// [`memory`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_outbound_bytes: Option<usize>,
    /// Chunks kept in memory (least recently used beyond this are evicted
    /// once their edits are stored).
    pub cache_chunks: usize,
    /// Edits buffered before a flush starts early, whatever the interval.
    pub max_pending_edits: usize,
    /// Most edits held in memory (pending and being written) while the
    /// store does not take them; at this many, new edits are refused and
    /// the world is read-only until the store is back (accepted edits are
    /// never dropped).
    pub max_unwritten_edits: usize,
    /// Commands of one player waiting behind a slow chunk load before the
    /// player is disconnected.
    pub max_backlog: usize,
    /// How long a chunk load keeps retrying a failing store before the
    /// request is answered from what the server has.
    #[serde(with = "humantime_serde")]
    pub load_timeout: Duration,
    /// Connections accepted beyond `max_players` (they are told the server
    /// is full by the game loop, and leaving players' sockets take a moment
    /// to close); more are closed as soon as they are accepted.
    pub connection_margin: usize,
    /// Connections at once from one IP address; 0: no limit. Players behind
    /// one NAT share an address, so keep it generous.
    pub max_connections_per_ip: usize,
}

impl Limits {
    /// `max_outbound_bytes`, or the default derived for a container with
    /// `memory_limit` bytes and `max_players`.
    pub fn outbound_bytes(&self, memory_limit: Option<u64>, max_players: usize) -> usize {
        self.max_outbound_bytes
            .unwrap_or_else(|| memory::derived_outbound_bytes(memory_limit, max_players))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            lines_per_second: 500,
            line_burst: 2000,
            max_outbound_bytes: None,
            cache_chunks: 16_384,
            max_pending_edits: 100_000,
            max_unwritten_edits: 1_000_000,
            max_backlog: 20_000,
            load_timeout: Duration::from_secs(10),
            connection_margin: 64,
            max_connections_per_ip: 128,
        }
    }
}

/// Private builds (`/private`, `/publish`, `/discard`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DraftsConfig {
    /// Changes a player's draft may hold (a block, a light, a sign face
    /// each; removing a block counts twice). Past it, private edits are
    /// refused with a chat message until the draft is published or
    /// discarded. Publishing writes the whole draft as one store batch.
    pub max_changes: usize,
}

impl Default for DraftsConfig {
    fn default() -> Self {
        Self {
            max_changes: 10_000,
        }
    }
}

/// Who is told about what, on busy servers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Interest {
    /// Up to this many players online, every player gets every position and
    /// every edit, as in the original server. Above it, positions go to
    /// players within `view_radius` chunks (each seeing its nearest
    /// `max_visible` others) and edits to players within `edit_radius`.
    pub broadcast_all_up_to: usize,
    /// Chunks (Chebyshev distance) within which players see each other
    /// move. The client shows 10.
    pub view_radius: u32,
    /// Chunks within which players receive edits live. The client keeps
    /// chunks up to 14 away loaded; farther ones are re-requested (with
    /// their key) when the player comes back.
    pub edit_radius: u32,
    /// Other players shown to each player (the client keeps 128, itself
    /// included).
    pub max_visible: usize,
}

impl Default for Interest {
    fn default() -> Self {
        Self {
            broadcast_all_up_to: 128,
            view_radius: 10,
            edit_radius: 15,
            max_visible: 127,
        }
    }
}

/// The whole server configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Game port.
    pub listen: SocketAddr,
    /// Where the world is kept (see the README for every scheme).
    pub store: StoreUrl,
    /// Players at once; more are told the server is full (see also
    /// `limits.connection_margin`).
    pub max_players: usize,
    /// The longest an accepted edit waits in memory before it is written
    /// (edits are batched); 0 writes every edit through at once.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// How often the server asks the store which cached chunks other
    /// servers changed (servers sharing a store); 0 disables it.
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
    /// The fleet bus between servers sharing the store: `none` (polling
    /// only), `nats://HOST:PORT` (any store) or `postgres` (LISTEN/NOTIFY
    /// on a `postgres://` store's database).
    pub bus: crate::bus::BusUrl,
    /// Prefix of the NATS subjects: servers of one world share it, two
    /// worlds on one NATS server need two (the postgres bus derives it
    /// from the store's schema).
    pub bus_namespace: String,
    /// How often the store sync runs while the bus is connected (it only
    /// repairs what the bus lost); `sync_interval` applies while it is
    /// not.
    #[serde(with = "humantime_serde")]
    pub bus_sync_interval: Duration,
    /// A server silent on the bus for this long is taken for dead: its
    /// players disappear (heartbeats go every second).
    #[serde(with = "humantime_serde")]
    pub bus_heartbeat_timeout: Duration,
    /// Length of a game day in seconds.
    pub day_length: u32,
    /// Where players appear.
    pub spawn: Spawn,
    /// Lines sent to every player on connect.
    pub welcome: Vec<String>,
    /// Admin HTTP listener (`/healthz`, `/readyz`, `/metrics`); off unless
    /// set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<SocketAddr>,
    /// The game loop counts as stuck once it has not turned for this long:
    /// `/healthz` fails and Agones health pings stop.
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    /// Login settings.
    pub login: LoginConfig,
    /// Shutdown drain.
    pub shutdown: ShutdownConfig,
    /// Limits.
    pub limits: Limits,
    /// Interest management on busy servers.
    pub interest: Interest,
    /// Agones SDK integration.
    pub agones: AgonesConfig,
    /// Spot interruption notices from the EC2 metadata service.
    pub imds: ImdsConfig,
    /// The admin page: operator token, map tile budget.
    pub admin: crate::admin::AdminConfig,
    /// Private builds.
    pub drafts: DraftsConfig,
    /// Block history and its retention.
    pub history: HistoryConfig,
    /// User names (logged in) allowed `/rollback`.
    pub operators: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], world_core::protocol::DEFAULT_PORT)),
            store: StoreUrl("sqlite:craft.db".to_owned()),
            max_players: 1000,
            commit_interval: Duration::from_secs(1),
            sync_interval: Duration::from_secs(2),
            bus: crate::bus::BusUrl::default(),
            bus_namespace: "craft".to_owned(),
            bus_sync_interval: Duration::from_secs(10),
            bus_heartbeat_timeout: Duration::from_secs(5),
            day_length: 600,
            spawn: Spawn::default(),
            welcome: vec![
                "Welcome to Craft!".to_owned(),
                "Type \"/help\" for a list of commands.".to_owned(),
            ],
            admin_listen: None,
            stall_timeout: Duration::from_secs(10),
            login: LoginConfig::default(),
            shutdown: ShutdownConfig::default(),
            limits: Limits::default(),
            interest: Interest::default(),
            agones: AgonesConfig::default(),
            imds: ImdsConfig::default(),
            admin: crate::admin::AdminConfig::default(),
            drafts: DraftsConfig::default(),
            history: HistoryConfig::default(),
            operators: Vec::new(),
        }
    }
}

impl Config {
    /// Reads a TOML file (every field optional).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    /// Parses TOML text (every field optional).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<text>".to_owned(),
            source: Box::new(e),
        })
    }

    /// Checks ranges and consistency (no I/O).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.max_players == 0 {
            return invalid("max_players must be at least 1".into());
        }
        if self.day_length == 0 {
            return invalid("day_length must be at least 1 second".into());
        }
        if self.login.mode == LoginMode::Http {
            match &self.login.url {
                None => return invalid("login.mode = \"http\" needs login.url".into()),
                Some(u) => {
                    let url = url::Url::parse(u)
                        .map_err(|e| ConfigError::Invalid(format!("login.url {u:?}: {e}")))?;
                    if !matches!(url.scheme(), "http" | "https") {
                        return invalid(format!("login.url {u:?} must be http or https"));
                    }
                }
            }
        }
        if self.drafts.max_changes == 0 {
            return invalid("drafts.max_changes must be at least 1".into());
        }
        if self.limits.lines_per_second == 0 || self.limits.line_burst == 0 {
            return invalid(
                "limits.lines_per_second and limits.line_burst must be positive".into(),
            );
        }
        if self.limits.max_outbound_bytes.is_some_and(|b| b < 64 << 10) {
            return invalid("limits.max_outbound_bytes must be at least 64 KiB".into());
        }
        if self.limits.max_pending_edits == 0
            || self.limits.max_unwritten_edits < self.limits.max_pending_edits
        {
            return invalid(
                "limits.max_pending_edits must be positive and at most limits.max_unwritten_edits"
                    .into(),
            );
        }
        if self.interest.max_visible == 0 || self.interest.max_visible > 127 {
            return invalid(
                "interest.max_visible must be in 1..=127 (the client keeps 128 players)".into(),
            );
        }
        if self.store.scheme().is_empty() {
            return invalid(format!(
                "store {} has no scheme (e.g. sqlite:craft.db)",
                self.store
            ));
        }
        if self.stall_timeout < Duration::from_secs(1) {
            // The loop turns every 250 ms; less than a second would fail
            // probes on a merely busy machine.
            return invalid("stall_timeout must be at least 1s".into());
        }
        crate::bus::validate(self).map_err(ConfigError::Invalid)?;
        self.agones.validate().map_err(ConfigError::Invalid)?;
        self.imds.validate().map_err(ConfigError::Invalid)?;
        self.shutdown.validate().map_err(ConfigError::Invalid)?;
        self.admin.validate().map_err(ConfigError::Invalid)?;
        self.history
            .validate(&self.store.scheme())
            .map_err(ConfigError::Invalid)?;
        if self.operators.iter().any(|o| o.is_empty()) {
            return invalid("operators cannot contain an empty name".into());
        }
        if self
            .welcome
            .iter()
            .chain([&self.shutdown.message, &self.login.register_hint])
            .any(|l| l.contains('\n'))
        {
            return invalid(
                "welcome, shutdown.message and login.register_hint lines cannot contain newlines"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("").expect("parse");
        assert_eq!(c, Config::default());
        assert_eq!(c.listen.to_string(), "0.0.0.0:4080");
        assert_eq!(c.store.expose(), "sqlite:craft.db");
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../../../craft-server.example.toml");
        let c = Config::from_toml(text).expect("example parses");
        c.validate().expect("example is valid");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = Config::from_toml("listne = \"0.0.0.0:1\"").expect_err("typo");
        assert!(err.to_string().contains("listne"), "{err}");
    }

    #[test]
    fn spawn_parses() {
        assert_eq!("1,2,3".parse::<Spawn>().map(|s| s.z), Ok(3.0));
        assert_eq!("1,2,3,4,5".parse::<Spawn>().map(|s| s.ry), Ok(5.0));
        assert!("1,2".parse::<Spawn>().is_err());
        assert!("1,nan,2".parse::<Spawn>().is_err());
    }

    #[test]
    fn validation_catches_mistakes() {
        let mut c = Config::default();
        c.login.mode = LoginMode::Http;
        assert!(c.validate().is_err());
        c.login.url = Some("ftp://x".into());
        assert!(c.validate().is_err());
        c.login.url = Some("http://127.0.0.1:8080/access".into());
        assert!(c.validate().is_ok());
        c.welcome = vec!["a\nb".into()];
        assert!(c.validate().is_err());
    }

    #[test]
    fn history_defaults_per_backend() {
        let c = Config::from_toml("[history]\nmax_age = \"30d\"").expect("parse");
        assert!(c.history.records("sqlite"));
        assert!(c.history.records("postgres"));
        assert!(!c.history.records("dynamodb"));
        assert_eq!(c.history.prune_interval, HistoryConfig::PRUNE_INTERVAL);
        let mut c =
            Config::from_toml("operators = [\"ann\"]\n[history]\nrecord = true").expect("parse");
        c.validate().expect("valid on sqlite");
        c.store = StoreUrl("dynamodb://t".into());
        assert!(c.validate().is_err(), "DynamoDB keeps no history");
    }
}
