//! `rill-broker`: loads [`BrokerConfig`] from flags, `RILL_*`
//! environment variables and the configuration file, sets up logging and runs the broker until
//! SIGTERM or SIGINT, then shuts down gracefully (in-flight requests
//! finish, every log is flushed) and exits 0. Logging, signals and exit
//! codes are [`rill_process`]'s, shared with `rill-controller`.
//!
//! Exit codes: 0 clean shutdown, 1 runtime failure, 2 bad configuration.

use std::process::ExitCode;

use rill_broker::config::{BrokerConfig, LoadError};

/// jemalloc instead of the C library's allocator: request and fetch
/// buffers of up to a few MiB come and go with every client, and glibc's
/// malloc keeps what they freed in its per-thread arenas (its mmap
/// threshold grows to the largest freed block), so the broker's resident
/// memory stepped up with each burst of clients or leadership changes and
/// stayed there. jemalloc returns freed pages to the kernel after a few
/// seconds, so RSS follows what the broker actually holds.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts: a background thread returns
/// freed pages after about a second (`dirty_decay_ms`) even while the
/// broker is idle, instead of only when later allocations come by.
/// Recently freed memory is still reused first, so the hot path does not
/// pay for it.
// jemalloc finds its options through this exported symbol; nothing else
// reads or writes it.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 60] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

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
