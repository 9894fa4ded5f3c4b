//! `rill-broker`: parses [`BrokerConfig`] from flags and `RILL_*`
//! environment variables, sets up logging and runs the broker until
//! SIGTERM or SIGINT, then shuts down gracefully (in-flight requests
//! finish, every log is flushed) and exits 0. Logging, signals and exit
//! codes are [`rill_process`]'s, shared with `rill-controller`.
//!
//! Exit codes: 0 clean shutdown, 1 runtime failure, 2 bad configuration.

use std::process::ExitCode;

use clap::Parser;
use rill_broker::config::BrokerConfig;

fn main() -> ExitCode {
    let config = BrokerConfig::parse();
    if let Err(e) = config.validate() {
        eprintln!("rill-broker: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    rill_process::logging::init(&config.log_filter, config.log_format);
    rill_process::run::until_signal("rill-broker", "broker", |shutdown| {
        rill_broker::run(config, shutdown)
    })
}
