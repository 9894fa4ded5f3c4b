//! Configuration of the operator process: one clap struct, every flag with an
//! environment variable fallback, and [`Config::validate`] with messages a
//! user can act on.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
pub use rill_process::logging::LogFormat;

/// The Rill operator: reconciles StreamCluster and Topic resources.
#[derive(Debug, Clone, Parser, PartialEq, Eq)]
#[command(name = "rill-operator", version, about)]
pub struct Config {
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, env = "RILL_OPERATOR_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Broker image for StreamClusters that do not set spec.image.
    #[arg(long, env = "RILL_BROKER_IMAGE", default_value = "rill/broker:0.1.0")]
    pub broker_image: String,

    /// URL brokers use to reach the operator's controller gRPC Service
    /// (RILL_CONTROLLER_ADDR in broker pods).
    #[arg(
        long,
        env = "RILL_CONTROLLER_ADDRESS",
        default_value = "http://rill-operator.rill-system.svc:9095"
    )]
    pub controller_address: String,

    /// Labels of the operator's own pods, `key=value` pairs separated by
    /// commas: the brokers' NetworkPolicy lets pods with these labels (in
    /// the operator's namespace) reach the brokers' client gRPC port.
    #[arg(
        long,
        env = "RILL_OPERATOR_POD_LABELS",
        default_value = "app.kubernetes.io/name=rill-operator"
    )]
    pub operator_pod_labels: String,

    /// Address of the metadata controller's gRPC service that brokers connect
    /// to (every replica listens; only the Lease holder serves).
    #[arg(
        long,
        env = "RILL_CONTROLLER_LISTEN_ADDR",
        default_value = "0.0.0.0:9095"
    )]
    pub controller_listen_addr: SocketAddr,

    /// A broker that has not heartbeated for this long (ms) is fenced and
    /// its partition leaderships move.
    #[arg(long, env = "RILL_BROKER_SESSION_TIMEOUT_MS", default_value_t = 1500)]
    pub broker_session_timeout_ms: u32,

    /// How often brokers heartbeat (ms); well below the session timeout.
    #[arg(long, env = "RILL_BROKER_HEARTBEAT_INTERVAL_MS", default_value_t = 250)]
    pub broker_heartbeat_interval_ms: u32,

    /// Elect a leader through a Lease so only one replica reconciles.
    #[arg(long, env = "RILL_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the leader election Lease.
    #[arg(long, env = "RILL_LEASE_NAME", default_value = "rill-operator")]
    pub lease_name: String,

    /// Namespace of the Lease; defaults to the pod's namespace (POD_NAMESPACE
    /// or the service account namespace file).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Identity in the Lease and in Events; defaults to the pod name
    /// (POD_NAME), else the host name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "RILL_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,

    /// Seconds a leader keeps leading while renewals fail.
    #[arg(long, env = "RILL_LEASE_RENEW_DEADLINE_SECONDS", default_value_t = 10)]
    pub renew_deadline_seconds: u64,

    /// Seconds between leader election attempts.
    #[arg(long, env = "RILL_LEASE_RETRY_PERIOD_SECONDS", default_value_t = 2)]
    pub retry_period_seconds: u64,

    /// Seconds to wait at start for the CRDs to be Established.
    #[arg(long, env = "RILL_CRD_WAIT_SECONDS", default_value_t = 120)]
    pub crd_wait_seconds: u64,

    /// Log format.
    #[arg(long, env = "RILL_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax, e.g. `info,rill_operator=debug`.
    #[arg(long, env = "RILL_LOG", default_value = "info")]
    pub log_filter: String,
}

/// A configuration problem.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Checks values clap cannot check alone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.broker_image.trim().is_empty() {
            return Err(ConfigError("--broker-image must not be empty".into()));
        }
        if !(self.controller_address.starts_with("http://")
            || self.controller_address.starts_with("https://"))
        {
            return Err(ConfigError(format!(
                "--controller-address {:?} must start with http:// or https://",
                self.controller_address
            )));
        }
        rill_process::logging::check_filter(&self.log_filter)
            .map_err(|e| ConfigError(format!("--log-filter: {e}")))?;
        if self.lease_name.trim().is_empty() {
            return Err(ConfigError("--lease-name must not be empty".into()));
        }
        if self.retry_period_seconds == 0 {
            return Err(ConfigError(
                "--retry-period-seconds must be at least 1".into(),
            ));
        }
        if self.renew_deadline_seconds <= self.retry_period_seconds {
            return Err(ConfigError(format!(
                "--renew-deadline-seconds ({}) must be greater than --retry-period-seconds ({})",
                self.renew_deadline_seconds, self.retry_period_seconds
            )));
        }
        if self.lease_duration_seconds <= self.renew_deadline_seconds {
            return Err(ConfigError(format!(
                "--lease-duration-seconds ({}) must be greater than --renew-deadline-seconds ({}), or two leaders could overlap",
                self.lease_duration_seconds, self.renew_deadline_seconds
            )));
        }
        self.pod_labels()?;
        self.controller_settings()
            .validate()
            .map_err(|e| ConfigError(e.to_string()))?;
        Ok(())
    }

    /// `--operator-pod-labels` as a map.
    pub fn pod_labels(&self) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
        let mut labels = std::collections::BTreeMap::new();
        for pair in self
            .operator_pod_labels
            .split(',')
            .filter(|p| !p.trim().is_empty())
        {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(ConfigError(format!(
                    "--operator-pod-labels: {pair:?} is not key=value"
                )));
            };
            let key = key.trim();
            if !crate::stream_cluster::validate::is_label_key(key) {
                return Err(ConfigError(format!(
                    "--operator-pod-labels: {key:?} is not a label key"
                )));
            }
            labels.insert(key.to_owned(), value.trim().to_owned());
        }
        if labels.is_empty() {
            return Err(ConfigError(
                "--operator-pod-labels must name at least one label".into(),
            ));
        }
        Ok(labels)
    }

    /// Settings of the embedded metadata controllers (their listen
    /// addresses are unused: the operator serves them on
    /// `--controller-listen-addr`).
    pub fn controller_settings(&self) -> rill_controller::config::ServerConfig {
        let mut c = rill_controller::config::ServerConfig::defaults();
        c.session_timeout_ms = self.broker_session_timeout_ms;
        c.heartbeat_interval_ms = self.broker_heartbeat_interval_ms;
        c
    }

    /// Lease timing as durations.
    pub fn lease_timing(&self) -> (Duration, Duration, Duration) {
        (
            Duration::from_secs(self.lease_duration_seconds),
            Duration::from_secs(self.renew_deadline_seconds),
            Duration::from_secs(self.retry_period_seconds),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["rill-operator"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).expect("parse")
    }

    #[test]
    fn given_no_flags_when_parsing_then_defaults_are_valid() {
        let config = parse(&[]);
        assert_eq!(config.http_addr.port(), 8080);
        assert!(config.leader_election);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.controller_listen_addr.port(), 9095);
    }

    #[test]
    fn given_a_heartbeat_slower_than_the_session_when_validating_then_it_is_refused() {
        let config = parse(&[
            "--broker-session-timeout-ms",
            "1000",
            "--broker-heartbeat-interval-ms",
            "2000",
        ]);
        let err = config.validate().expect_err("invalid");
        assert!(err.0.contains("heartbeat"), "{err}");
    }

    #[test]
    fn given_overlapping_lease_timing_when_validating_then_the_message_names_both_flags() {
        let config = parse(&[
            "--lease-duration-seconds",
            "5",
            "--renew-deadline-seconds",
            "10",
        ]);
        let err = config.validate().expect_err("invalid");
        assert!(err.0.contains("--lease-duration-seconds (5)"), "{err}");
    }

    #[test]
    fn given_a_log_filter_that_does_not_parse_when_validating_then_it_is_refused() {
        let config = parse(&["--log-filter", "info,[=="]);
        let err = config.validate().expect_err("invalid");
        assert!(err.0.contains("--log-filter"), "{err}");
    }

    #[test]
    fn given_operator_pod_labels_when_validating_then_pairs_are_read_and_bad_ones_refused() {
        let config = parse(&[
            "--operator-pod-labels",
            "app.kubernetes.io/name=rill-operator,app.kubernetes.io/instance=rill",
        ]);
        assert_eq!(config.pod_labels().expect("labels").len(), 2);
        let config = parse(&["--operator-pod-labels", "no-equals"]);
        let err = config.validate().expect_err("invalid");
        assert!(err.0.contains("--operator-pod-labels"), "{err}");
    }

    #[test]
    fn given_a_bad_controller_address_when_validating_then_it_is_refused() {
        let config = parse(&["--controller-address", "rill-operator:9095"]);
        assert!(config.validate().is_err());
        let config = parse(&["--leader-election", "false"]);
        assert!(!config.leader_election);
    }
}
