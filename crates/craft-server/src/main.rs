//! The `craft-server` binary: parse flags, open the store, serve.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use craft_server::cli::{Cli, Command};
use craft_server::config::{Config, StoreUrl};
use craft_server::migrate::online::OnlineOptions;
use craft_server::migrate::{self, Endpoint, MigrateError, Options};
use craft_server::server::{self, Shared};
use craft_server::stores;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr: stdout is for what a subcommand prints (`config`).
    let colour = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(colour),
        )
        // Recent warnings for the admin dashboard.
        .with(craft_server::admin::logs::layer())
        .init();
    let config = match cli.load_config() {
        Ok(config) => config,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await.map_err(Failure::from),
            Command::Config => print_config(&config).map_err(Failure::from),
            Command::Import {
                from,
                to,
                verify,
                online,
                follow,
                interval,
                migrate,
            } => {
                let to = to.unwrap_or_else(|| config.store.clone());
                let how = OnlineOptions {
                    verify,
                    follow,
                    interval,
                };
                import(
                    &from,
                    &to,
                    &migrate.options(),
                    online.then_some(how),
                    verify,
                )
                .await
                .map_err(migrate_failure)
            }
            Command::Verify { from, to, migrate } => {
                let to = to.unwrap_or_else(|| config.store.clone());
                verify(&from, &to, &migrate.options())
                    .await
                    .map_err(migrate_failure)
            }
            Command::History(args) => craft_server::cli_history::history(&config.store, &args)
                .await
                .map_err(Failure::from),
            Command::Rollback(args) => craft_server::cli_history::rollback(&config.store, &args)
                .await
                .map_err(Failure::from),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// Why the process exits unsuccessfully, and with which code.
struct Failure {
    message: String,
    code: u8,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self { message, code: 1 }
    }
}

/// Ends `import` or `verify`: a report of differences is the command's
/// output (stdout), a one-line summary goes to the log.
fn migrate_failure(e: MigrateError) -> Failure {
    let code = e.exit_code();
    let message = match &e {
        MigrateError::Differs(report) => {
            println!("{report}");
            format!(
                "the stores differ: {} of {} chunks ({} values)",
                report.differing.len(),
                report.compared,
                report.values_differing()
            )
        }
        _ => e.to_string(),
    };
    Failure { message, code }
}

/// `craft-server import`.
async fn import(
    from: &StoreUrl,
    to: &StoreUrl,
    options: &Options,
    online: Option<OnlineOptions>,
    verify: bool,
) -> Result<(), MigrateError> {
    let source = Endpoint::open(from).await?;
    let dest = Endpoint::open(to).await?;
    let (copied, report) = match online {
        Some(how) => {
            let done =
                migrate::online::online(&source, &dest, options, &how, shutdown_signal()).await?;
            println!(
                "caught up with the source in {} rounds: {} chunks, {} rows synced",
                done.rounds, done.synced_chunks, done.synced_rows
            );
            (done.copy, done.report)
        }
        None => {
            let copied = migrate::copy::copy_all(&source, &dest, options).await?;
            let report = match verify {
                true => Some(migrate::verify::verify(&source, &dest, options).await?),
                false => None,
            };
            (copied, report)
        }
    };
    println!(
        "imported {} chunks: {} blocks, {} lights, {} signs",
        copied.chunks, copied.blocks, copied.lights, copied.signs
    );
    dest.close().await?;
    source.close().await?;
    match report {
        Some(report) if !report.is_same() => Err(MigrateError::Differs(Box::new(report))),
        Some(report) => {
            println!("{report}");
            Ok(())
        }
        None => Ok(()),
    }
}

/// `craft-server verify`.
async fn verify(from: &StoreUrl, to: &StoreUrl, options: &Options) -> Result<(), MigrateError> {
    let source = Endpoint::open(from).await?;
    let dest = Endpoint::open(to).await?;
    let report = migrate::verify::verify(&source, &dest, options).await?;
    dest.close().await?;
    source.close().await?;
    if !report.is_same() {
        return Err(MigrateError::Differs(Box::new(report)));
    }
    println!("{report}");
    Ok(())
}

fn print_config(config: &Config) -> Result<(), String> {
    let mut shown = config.clone();
    shown.store = StoreUrl(config.store.redacted());
    shown.bus = craft_server::bus::BusUrl(config.bus.redacted());
    let text = toml::to_string_pretty(&shown).map_err(|e| e.to_string())?;
    print!("{text}");
    Ok(())
}

async fn serve(config: Config) -> Result<(), String> {
    let config = Arc::new(config);
    info!(store = %config.store, listen = %config.listen, "starting craft-server {}", env!("CARGO_PKG_VERSION"));
    let store = stores::open(&config.store)
        .await
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let shared = Shared::new(&config);
    if let Some(addr) = config.admin_listen {
        // Probes must answer through the drain: the task lives until exit.
        craft_server::admin::spawn(addr, shared.clone(), config.stall_timeout).await?;
    }
    let notice = config.shutdown.notice;
    let control = shared.control.clone();
    let mut signal = Box::pin(async move {
        shutdown_signal().await;
        if notice.is_zero() {
            return;
        }
        // Players get a countdown and play on; a second signal means now.
        control.mark_signalled();
        control.schedule_shutdown("signal", tokio::time::Instant::now() + notice, false);
        shutdown_signal().await;
        info!("second signal: draining at once");
    });
    let drained = server::run(listener, store, config, shared, &mut signal).await;
    if drained.wait_for_signal() {
        // Exiting now would only get the server restarted on the node that
        // is going away; stay drained and not ready until told to stop.
        info!(reason = %drained.reason, "drained; waiting for SIGTERM");
        signal.await;
    }
    if drained.unwritten > 0 {
        return Err(format!(
            "{} edits could not be stored before shutdown.timeout",
            drained.unwritten
        ));
    }
    info!("bye");
    Ok(())
}

/// Resolves on SIGTERM (orchestrators, spot reclaims) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => info!("SIGINT received"),
        _ = term => info!("SIGTERM received"),
    }
}
