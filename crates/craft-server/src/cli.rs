//! Command-line flags. Each overrides the same setting of the config file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError, LoginMode, Spawn, StoreUrl, Switch};
use crate::migrate::{self, ProgressMode};

/// A world server for the unmodified Craft client.
///
/// Settings come from defaults, then the config file (--config), then the
/// flags below. Connect a client with `./craft HOST 4080`.
#[derive(Debug, Parser)]
#[command(name = "craft-server", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file; every field is optional (see
    /// craft-server.example.toml).
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        env = "CRAFT_CONFIG",
        global = true
    )]
    pub config: Option<PathBuf>,

    /// Settings that override the config file.
    #[command(flatten)]
    pub overrides: Overrides,

    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve players (the default).
    Serve,
    /// Print the effective configuration (secrets hidden) and exit.
    Config,
    /// Copy every block, light and sign from one store to another, e.g. an
    /// original craft.db into PostgreSQL.
    Import {
        /// Store to read, e.g. sqlite:craft.db.
        #[arg(long, value_name = "URL")]
        from: StoreUrl,
        /// Store to write (default: the configured store).
        #[arg(long, value_name = "URL")]
        to: Option<StoreUrl>,
        /// Afterwards, compare both stores chunk by chunk (contents, not
        /// counts); when they differ, print what differs and exit with 3.
        #[arg(long)]
        verify: bool,
        /// Copy while servers keep writing to the source, then catch up
        /// with their changes until nothing is left to copy.
        #[arg(long)]
        online: bool,
        /// With --online: keep catching up until SIGINT or SIGTERM, then
        /// catch up a last time (and verify) before exiting.
        #[arg(long, requires = "online")]
        follow: bool,
        /// With --follow: pause between catch-up rounds that found nothing.
        #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "1s")]
        interval: Duration,
        /// How the stores are read.
        #[command(flatten)]
        migrate: MigrateArgs,
    },
    /// Compare two stores chunk by chunk (blocks with mirrors, lights,
    /// signs; keys excluded); when they differ, print what differs and exit
    /// with 3.
    Verify {
        /// One store, e.g. sqlite:craft.db.
        #[arg(long, value_name = "URL")]
        from: StoreUrl,
        /// The other (default: the configured store).
        #[arg(long, value_name = "URL")]
        to: Option<StoreUrl>,
        /// How the stores are read.
        #[command(flatten)]
        migrate: MigrateArgs,
    },
    /// Print recorded block changes of the store (--store, or the
    /// configured one), newest first.
    History(crate::cli_history::HistoryArgs),
    /// Undo every change NAME made within DURATION, as one batch recorded
    /// in history itself (so it can be undone too).
    Rollback(crate::cli_history::RollbackArgs),
}

/// Flags of `import` and `verify`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Chunk reads in flight at once, per store.
    #[arg(long, value_name = "N", default_value_t = migrate::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    pub concurrency: usize,
    /// Progress on stderr: a bar with an ETA on a terminal and plain lines
    /// every 5 s otherwise (auto), always lines, or none.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

impl MigrateArgs {
    /// The migration options these flags ask for.
    pub fn options(&self) -> migrate::Options {
        migrate::Options {
            concurrency: self.concurrency,
            progress: self.progress,
            ..migrate::Options::default()
        }
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 1s, 2m)"))
}

/// Flags that override config file settings.
#[derive(Debug, Default, Args)]
pub struct Overrides {
    /// Game port to listen on [default: 0.0.0.0:4080].
    #[arg(long, value_name = "ADDR:PORT", env = "CRAFT_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,

    /// Where the world is kept [default: sqlite:craft.db]:
    /// sqlite:PATH, postgres://USER:PASSWORD@HOST:PORT/DB,
    /// dynamodb://TABLE?region=…&endpoint=…&create=true,
    /// dataapi://DATABASE?resource_arn=…&secret_arn=…&region=…&endpoint=…,
    /// memory: (lost on exit).
    #[arg(
        long,
        value_name = "URL",
        env = "CRAFT_STORE",
        hide_env_values = true,
        global = true
    )]
    pub store: Option<StoreUrl>,

    /// Most players at once [default: 1000].
    #[arg(long, value_name = "N", global = true)]
    pub max_players: Option<usize>,

    /// Connections at once from one IP address; 0: no limit [default: 128].
    #[arg(long, value_name = "N", global = true)]
    pub max_connections_per_ip: Option<usize>,

    /// Longest an accepted edit waits before it is written; 0 writes
    /// through [default: 1s].
    #[arg(long, value_name = "DURATION", value_parser = duration, global = true)]
    pub commit_interval: Option<Duration>,

    /// How often to pick up changes other servers made to the same store;
    /// 0 disables [default: 2s].
    #[arg(long, value_name = "DURATION", value_parser = duration, global = true)]
    pub sync_interval: Option<Duration>,

    /// Fleet bus between servers sharing the store: none,
    /// nats://HOST:PORT (any store) or postgres (a postgres:// store's own
    /// database) [default: none].
    #[arg(
        long,
        value_name = "URL",
        env = "CRAFT_BUS",
        hide_env_values = true,
        global = true
    )]
    pub bus: Option<crate::bus::BusUrl>,

    /// NATS subject prefix naming the world [default: craft].
    #[arg(long, value_name = "NAME", env = "CRAFT_BUS_NAMESPACE", global = true)]
    pub bus_namespace: Option<String>,

    /// Store sync interval while the bus is connected [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = duration, global = true)]
    pub bus_sync_interval: Option<Duration>,

    /// Silence after which a server's players disappear [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = duration, global = true)]
    pub bus_heartbeat_timeout: Option<Duration>,

    /// Length of a game day in seconds [default: 600].
    #[arg(long, value_name = "SECONDS", global = true)]
    pub day_length: Option<u32>,

    /// Spawn point X,Y,Z or X,Y,Z,RX,RY [default: 0,0,0].
    #[arg(long, value_name = "X,Y,Z", global = true)]
    pub spawn: Option<Spawn>,

    /// Welcome line sent on connect (repeat for several; replaces the
    /// default two lines).
    #[arg(long, value_name = "TEXT", global = true)]
    pub welcome: Vec<String>,

    /// Only logged-in players may build [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", global = true)]
    pub login_required: Option<bool>,

    /// How logins are checked: none (everyone is a guest) or http
    /// [default: none].
    #[arg(long, value_enum, global = true)]
    pub login_mode: Option<LoginMode>,

    /// Identity service for --login-mode http (POST username, access_token).
    #[arg(long, value_name = "URL", global = true)]
    pub login_url: Option<String>,

    /// Message sent to every player when the server shuts down.
    #[arg(long, value_name = "TEXT", global = true)]
    pub shutdown_message: Option<String>,

    /// Admin HTTP listener for /healthz, /readyz and /metrics, e.g.
    /// 0.0.0.0:9090 [default: off].
    #[arg(
        long,
        value_name = "ADDR:PORT",
        env = "CRAFT_ADMIN_LISTEN",
        global = true
    )]
    pub admin_listen: Option<SocketAddr>,

    /// Agones SDK (Ready, Health, Allocate, player count, Shutdown); auto:
    /// on when AGONES_SDK_HTTP_PORT or AGONES_SDK_GRPC_PORT is set
    /// [default: auto].
    #[arg(long, value_enum, value_name = "auto|on|off", global = true)]
    pub agones: Option<Switch>,

    /// Drain on EC2 spot interruption notices (IMDSv2); auto: on when the
    /// machine is an EC2 instance [default: auto].
    #[arg(long, value_enum, value_name = "auto|on|off", global = true)]
    pub imds: Option<Switch>,
}

impl Cli {
    /// Defaults, then the config file, then the flags; validated.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        self.overrides.apply(&mut config);
        config.validate()?;
        Ok(config)
    }
}

impl Overrides {
    /// Writes the given flags over `config`.
    pub fn apply(&self, config: &mut Config) {
        if let Some(v) = self.listen {
            config.listen = v;
        }
        if let Some(v) = &self.store {
            config.store = v.clone();
        }
        if let Some(v) = self.max_players {
            config.max_players = v;
        }
        if let Some(v) = self.max_connections_per_ip {
            config.limits.max_connections_per_ip = v;
        }
        if let Some(v) = self.commit_interval {
            config.commit_interval = v;
        }
        if let Some(v) = self.sync_interval {
            config.sync_interval = v;
        }
        if let Some(v) = &self.bus {
            config.bus = v.clone();
        }
        if let Some(v) = &self.bus_namespace {
            config.bus_namespace = v.clone();
        }
        if let Some(v) = self.bus_sync_interval {
            config.bus_sync_interval = v;
        }
        if let Some(v) = self.bus_heartbeat_timeout {
            config.bus_heartbeat_timeout = v;
        }
        if let Some(v) = self.day_length {
            config.day_length = v;
        }
        if let Some(v) = self.spawn {
            config.spawn = v;
        }
        if !self.welcome.is_empty() {
            config.welcome = self.welcome.clone();
        }
        if let Some(v) = self.login_required {
            config.login.required_to_build = v;
        }
        if let Some(v) = self.login_mode {
            config.login.mode = v;
        }
        if let Some(v) = &self.login_url {
            config.login.url = Some(v.clone());
        }
        if let Some(v) = &self.shutdown_message {
            config.shutdown.message = v.clone();
        }
        if let Some(v) = self.admin_listen {
            config.admin_listen = Some(v);
        }
        if let Some(v) = self.agones {
            config.agones.enabled = v;
        }
        if let Some(v) = self.imds {
            config.imds.enabled = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let cli = Cli::parse_from([
            "craft-server",
            "--listen",
            "127.0.0.1:5000",
            "--store",
            "memory:",
            "--commit-interval",
            "0s",
            "--spawn",
            "10,20,30",
            "--login-required",
            "--welcome",
            "hi",
        ]);
        let config = cli.load_config().expect("valid");
        assert_eq!(config.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(config.store.expose(), "memory:");
        assert_eq!(config.commit_interval, Duration::ZERO);
        assert_eq!(config.spawn.y, 20.0);
        assert!(config.login.required_to_build);
        assert_eq!(config.welcome, vec!["hi".to_owned()]);
        assert_eq!(config.admin_listen, None, "off unless set");
    }

    #[test]
    fn orchestrator_flags() {
        let cli = Cli::parse_from([
            "craft-server",
            "--admin-listen",
            "127.0.0.1:9100",
            "--agones",
            "on",
            "--imds",
            "false",
        ]);
        let config = cli.load_config().expect("valid");
        assert_eq!(
            config.admin_listen,
            Some("127.0.0.1:9100".parse().expect("addr"))
        );
        assert_eq!(config.agones.enabled, Switch::On);
        assert_eq!(config.imds.enabled, Switch::Off);
    }

    #[test]
    fn help_documents_every_flag() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for flag in [
            "--config",
            "--listen",
            "--store",
            "--commit-interval",
            "--spawn",
            "--login-required",
            "--admin-listen",
            "--agones",
            "--imds",
            "--bus",
        ] {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
    }
}
