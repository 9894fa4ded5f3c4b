//! The `rill-operator` binary: parse configuration, set up logging, run the
//! library until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use clap::Parser;
use rill_operator::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_tracing(config: &Config) -> Result<(), String> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| format!("invalid --log-filter {:?}: {e}", config.log_filter))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(error) = config.validate() {
        eprintln!("rill-operator: {error}");
        return ExitCode::from(2);
    }
    if let Err(error) = init_tracing(&config) {
        eprintln!("rill-operator: {error}");
        return ExitCode::from(2);
    }
    let log_format = config.log_format;
    match rill_operator::run(config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Log collectors read JSON logs; people read stderr. Text logs
            // would only repeat the stderr line.
            if log_format == LogFormat::Json {
                tracing::error!(reason = error.metric_label(), "{error}");
            }
            eprintln!("rill-operator: {error}");
            ExitCode::FAILURE
        }
    }
}
