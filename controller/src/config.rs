//! Configuration of the standalone controller: one clap struct,
//! [`ServerConfig`], read from flags with `RILL_CONTROLLER_*` environment
//! fallbacks. `main` parses it, [`ServerConfig::validate`] turns every
//! mistake into a message naming the flag and the variable, and
//! [`crate::server`] reads it. [`ServerConfig::ephemeral`] is the
//! loopback/port-0 variant for tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
pub use rill_process::config::ConfigError;
use rill_process::config::invalid;
pub use rill_process::logging::LogFormat;

use crate::controller::ControllerConfig;

/// Configuration of `rill-controller`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rill-controller",
    version,
    about = "Rill metadata controller (standalone, file store): broker leases, leaders, ISR and epochs"
)]
pub struct ServerConfig {
    /// Address of the gRPC Controller service brokers connect to (port 0 picks a free port).
    #[arg(
        long,
        env = "RILL_CONTROLLER_LISTEN_ADDR",
        default_value = "0.0.0.0:9095"
    )]
    pub listen_addr: SocketAddr,

    /// Address of the HTTP endpoints /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "RILL_CONTROLLER_HTTP_ADDR",
        default_value = "0.0.0.0:9645"
    )]
    pub http_addr: SocketAddr,

    /// JSON file holding the cluster metadata (created if missing). Only one controller may use it.
    #[arg(
        long,
        env = "RILL_CONTROLLER_METADATA_FILE",
        default_value = "./controller/metadata.json"
    )]
    pub metadata_file: PathBuf,

    /// A broker that has not heartbeated for this long (ms) is fenced and its leaderships move.
    #[arg(
        long,
        env = "RILL_CONTROLLER_SESSION_TIMEOUT_MS",
        default_value_t = 1500
    )]
    pub session_timeout_ms: u32,

    /// How often brokers are told to heartbeat (ms); must be well below the session timeout.
    #[arg(
        long,
        env = "RILL_CONTROLLER_HEARTBEAT_INTERVAL_MS",
        default_value_t = 250
    )]
    pub heartbeat_interval_ms: u32,

    /// How often expired leases are checked (ms); bounds how late a fencing can be.
    #[arg(long, env = "RILL_CONTROLLER_TICK_INTERVAL_MS", default_value_t = 100)]
    pub tick_interval_ms: u32,

    /// Move replicas and preferred leaders onto under-loaded brokers (after a
    /// scale-up) when no move is in flight: `true` or `false`.
    #[arg(
        long,
        env = "RILL_CONTROLLER_AUTO_BALANCE",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub auto_balance: bool,

    /// How often the automatic balance is checked (ms); the first check waits as long.
    #[arg(
        long,
        env = "RILL_CONTROLLER_BALANCE_INTERVAL_MS",
        default_value_t = 10_000
    )]
    pub balance_interval_ms: u64,

    /// Most partitions the automatic balance moves at a time.
    #[arg(long, env = "RILL_CONTROLLER_BALANCE_BATCH", default_value_t = 4)]
    pub balance_batch: usize,

    /// Metadata deltas buffered per watcher; one that falls further behind gets a fresh snapshot.
    #[arg(long, env = "RILL_CONTROLLER_WATCH_BUFFER", default_value_t = 1024)]
    pub watch_buffer: usize,

    /// How long shutdown waits for in-flight requests before closing connections, in ms.
    #[arg(
        long,
        env = "RILL_CONTROLLER_SHUTDOWN_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub shutdown_timeout_ms: u64,

    /// Mutual TLS on the gRPC Controller service: brokers must present a
    /// certificate from the cluster CA (docs/security.md).
    #[command(flatten)]
    pub internal_tls: rill_process::tls::InternalTlsArgs,

    /// Log line format: text or json.
    #[arg(long, env = "RILL_CONTROLLER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or `info,rill_controller=debug`.
    #[arg(long = "log", env = "RILL_CONTROLLER_LOG", default_value = "info")]
    pub log_filter: String,
}

impl ServerConfig {
    /// Defaults as declared above, ignoring the environment (a test pins
    /// that the two agree).
    pub fn defaults() -> Self {
        Self {
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 9095)),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 9645)),
            metadata_file: PathBuf::from("./controller/metadata.json"),
            session_timeout_ms: 1500,
            heartbeat_interval_ms: 250,
            tick_interval_ms: 100,
            auto_balance: true,
            balance_interval_ms: 10_000,
            balance_batch: 4,
            watch_buffer: 1024,
            shutdown_timeout_ms: 5_000,
            internal_tls: Default::default(),
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
        }
    }

    /// For tests and local tools: loopback on port 0 (the OS picks free
    /// ports), the given metadata file, everything else at defaults.
    pub fn ephemeral(metadata_file: impl Into<PathBuf>) -> Self {
        let mut c = Self::defaults();
        c.listen_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        c.http_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        c.metadata_file = metadata_file.into();
        c
    }

    /// Checks everything that can be checked before touching the disk or
    /// the network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.metadata_file.as_os_str().is_empty() {
            return Err(invalid(
                "--metadata-file",
                "RILL_CONTROLLER_METADATA_FILE",
                "must not be empty",
            ));
        }
        if self.listen_addr.port() != 0 && self.listen_addr == self.http_addr {
            return Err(invalid(
                "--http-addr",
                "RILL_CONTROLLER_HTTP_ADDR",
                format!(
                    "{} is also the gRPC listen address (--listen-addr); use another port",
                    self.http_addr
                ),
            ));
        }
        if !(100..=600_000).contains(&self.session_timeout_ms) {
            return Err(invalid(
                "--session-timeout-ms",
                "RILL_CONTROLLER_SESSION_TIMEOUT_MS",
                format!("{} is not between 100 and 600000", self.session_timeout_ms),
            ));
        }
        if self.auto_balance && (self.balance_interval_ms == 0 || self.balance_batch == 0) {
            return Err(invalid(
                "--balance-interval-ms",
                "RILL_CONTROLLER_BALANCE_INTERVAL_MS",
                format!(
                    "the automatic balance needs an interval ({} ms) and a batch (--balance-batch {}) of at least 1",
                    self.balance_interval_ms, self.balance_batch
                ),
            ));
        }
        if self.heartbeat_interval_ms == 0
            || self.heartbeat_interval_ms.saturating_mul(2) > self.session_timeout_ms
        {
            return Err(invalid(
                "--heartbeat-interval-ms",
                "RILL_CONTROLLER_HEARTBEAT_INTERVAL_MS",
                format!(
                    "{} must be at least 1 and at most half the session timeout ({} ms), so one lost heartbeat does not fence a broker",
                    self.heartbeat_interval_ms, self.session_timeout_ms
                ),
            ));
        }
        if self.tick_interval_ms == 0 || self.tick_interval_ms > self.session_timeout_ms {
            return Err(invalid(
                "--tick-interval-ms",
                "RILL_CONTROLLER_TICK_INTERVAL_MS",
                format!(
                    "{} must be at least 1 and at most the session timeout ({} ms)",
                    self.tick_interval_ms, self.session_timeout_ms
                ),
            ));
        }
        if !(16..=1 << 20).contains(&self.watch_buffer) {
            return Err(invalid(
                "--watch-buffer",
                "RILL_CONTROLLER_WATCH_BUFFER",
                format!("{} is not between 16 and 1048576", self.watch_buffer),
            ));
        }
        rill_process::logging::check_filter(&self.log_filter)
            .map_err(|reason| invalid("--log", "RILL_CONTROLLER_LOG", reason))?;
        Ok(())
    }

    /// Settings of the core.
    pub fn controller(&self) -> ControllerConfig {
        ControllerConfig {
            session_timeout_ms: u64::from(self.session_timeout_ms),
            auto_balance: self.auto_balance,
            balance_interval_ms: self.balance_interval_ms,
            balance_batch: self.balance_batch,
        }
    }

    pub fn tick_interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.tick_interval_ms))
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ServerConfig {
        let mut all = vec!["rill-controller"];
        all.extend_from_slice(args);
        ServerConfig::try_parse_from(all).expect("parses")
    }

    #[test]
    fn given_defaults_when_validated_should_pass_and_match_the_declaration() {
        let d = ServerConfig::defaults();
        assert!(d.validate().is_ok());
        let p = parse(&[]);
        // The environment of the test process may set variables; compare
        // only when it does not.
        if std::env::vars().all(|(k, _)| !k.starts_with("RILL_CONTROLLER_")) {
            assert_eq!(format!("{d:?}"), format!("{p:?}"));
        }
        assert_eq!(d.session_timeout_ms, 1500);
        assert_eq!(d.heartbeat_interval_ms, 250);
    }

    #[test]
    fn given_heartbeat_above_half_the_session_when_validated_should_name_the_flag() {
        let c = parse(&[
            "--session-timeout-ms",
            "1000",
            "--heartbeat-interval-ms",
            "600",
        ]);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("--heartbeat-interval-ms"), "{err}");
        assert!(
            err.contains("RILL_CONTROLLER_HEARTBEAT_INTERVAL_MS"),
            "{err}"
        );
    }

    #[test]
    fn given_bad_values_when_validated_should_fail() {
        for args in [
            &["--session-timeout-ms", "10"][..],
            &["--tick-interval-ms", "0"],
            &["--watch-buffer", "1"],
            &["--log", "[[["],
            &[
                "--listen-addr",
                "127.0.0.1:9000",
                "--http-addr",
                "127.0.0.1:9000",
            ],
        ] {
            assert!(parse(args).validate().is_err(), "{args:?}");
        }
        let mut c = ServerConfig::defaults();
        c.metadata_file = PathBuf::new();
        assert!(c.validate().is_err());
    }
}
