//! `rill-controller`: the standalone metadata controller. Parses
//! [`ServerConfig`] from flags and `RILL_CONTROLLER_*` environment
//! variables, sets up logging and runs the controller on the file store
//! until SIGTERM or SIGINT, then shuts down gracefully and exits 0.
//! Logging, signals and exit codes are [`rill_process`]'s, shared with
//! `rill-broker`.
//!
//! Exit codes: 0 clean shutdown, 1 runtime failure (including being
//! deposed by another controller on the same metadata file), 2 bad
//! configuration.

use std::process::ExitCode;

use clap::Parser;
use rill_controller::config::ServerConfig;

fn main() -> ExitCode {
    let config = ServerConfig::parse();
    if let Err(e) = config.validate() {
        eprintln!("rill-controller: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    rill_process::logging::init(&config.log_filter, config.log_format);
    rill_process::run::until_signal("rill-controller", "controller", |shutdown| {
        rill_controller::run(config, shutdown)
    })
}
