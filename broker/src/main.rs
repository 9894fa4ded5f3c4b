//! `rill-broker`: loads [`BrokerConfig`] from flags, `RILL_*`
//! environment variables and the configuration file, sets up logging and runs the broker until
//! SIGTERM or SIGINT, then shuts down gracefully (in-flight requests
//! finish, every log is flushed) and exits 0. Logging, signals and exit
//! codes are [`rill_process`]'s, shared with `rill-controller`.
//!
//! Exit codes: 0 clean shutdown, 1 runtime failure, 2 bad configuration.

use std::process::ExitCode;

use rill_broker::config::{BrokerConfig, LoadError};

fn main() -> ExitCode {
    let config = match BrokerConfig::load_from(std::env::args_os()) {
        Ok(config) => config,
        Err(LoadError::Args(e)) => e.exit(),
        Err(LoadError::File(why)) => {
            eprintln!("rill-broker: invalid configuration file: {why}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = config.validate() {
        eprintln!("rill-broker: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    rill_process::logging::init(&config.log_filter, config.log_format);
    if let Some(file) = &config.config_file {
        tracing::info!(
            file = %file.display(),
            "configuration file read (flags and RILL_* variables win over it)"
        );
    }
    rill_process::run::until_signal("rill-broker", "broker", |shutdown| {
        rill_broker::run(config, shutdown)
    })
}
