//! The `craft-server` binary: parse flags, open the store, serve.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use craft_server::cli::{Cli, Command};
use craft_server::config::{Config, StoreUrl};
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
            Command::Serve => serve(config).await,
            Command::Config => print_config(&config),
            Command::Import { from, to } => {
                let to = to.unwrap_or_else(|| config.store.clone());
                craft_server::cli_import::import(&from, &to).await
            }
            Command::History(args) => {
                craft_server::cli_history::history(&config.store, &args).await
            }
            Command::Rollback(args) => {
                craft_server::cli_history::rollback(&config.store, &args).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn print_config(config: &Config) -> Result<(), String> {
    let mut shown = config.clone();
    shown.store = StoreUrl(config.store.redacted());
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
    let mut signal = Box::pin(shutdown_signal());
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
