//! `rill-controller`: the standalone metadata controller. Parses
//! [`ServerConfig`] from flags and `RILL_CONTROLLER_*` environment
//! variables, sets up logging and runs the controller on the file store
//! until SIGTERM or SIGINT, then shuts down gracefully and exits 0.
//!
//! Exit codes: 0 clean shutdown, 1 runtime failure (including being
//! deposed by another controller on the same metadata file), 2 bad
//! configuration.

use std::process::ExitCode;

use clap::Parser;
use rill_controller::config::{LogFormat, ServerConfig};
use tracing_subscriber::EnvFilter;

fn init_tracing(config: &ServerConfig) {
    // validate() has already checked the filter.
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a terminal, not for files and log collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Installs SIGTERM and SIGINT handlers now, before the controller reports
/// ready, and returns a future that resolves on the first of them. Must run
/// inside the runtime.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

fn main() -> ExitCode {
    let config = ServerConfig::parse();
    if let Err(e) = config.validate() {
        eprintln!("rill-controller: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    init_tracing(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rill-controller: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = match shutdown_signal() {
            Ok(shutdown) => shutdown,
            Err(e) => {
                eprintln!("rill-controller: cannot install signal handlers: {e}");
                return Err(None);
            }
        };
        rill_controller::run(config, shutdown).await.map_err(Some)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(None) => ExitCode::FAILURE,
        Err(Some(e)) => {
            tracing::error!(error = %e, "controller failed");
            eprintln!("rill-controller: {e}");
            ExitCode::FAILURE
        }
    }
}
