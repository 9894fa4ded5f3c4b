//! The `rill-operator` binary: parse and check the configuration, set up
//! logging, and run the operator until SIGTERM or SIGINT, with the same
//! process scaffolding as `rill-broker` and `rill-controller`
//! ([`rill_process`]).

use std::process::ExitCode;

use clap::Parser;
use rill_operator::config::Config;

fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(error) = config.validate() {
        eprintln!("rill-operator: {error}");
        return ExitCode::from(2);
    }
    rill_process::logging::init(&config.log_filter, config.log_format);
    rill_process::run::until_signal("rill-operator", "operator", |shutdown| {
        rill_operator::run(config, shutdown)
    })
}
