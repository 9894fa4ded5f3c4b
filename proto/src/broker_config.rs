//! The broker configuration file: Kafka-style properties (`key=value`
//! lines) that `rill-broker` reads from `--config-file` / `RILL_CONFIG_FILE`
//! at start, and that the operator renders from `StreamCluster.spec.config`.
//!
//! [`BROKER_KEYS`] is the one table of the keys a broker honours, each with
//! the broker flag it sets and its value rule, and of the Kafka keys Rill
//! refuses, each with the reason. The broker applies it and the operator
//! checks `spec.config` with it before rendering, so a key is either
//! honoured or refused with the same message in both places.

use crate::topic::{ValueRule, check_value};

/// How a file value becomes the value of the broker flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convert {
    /// Passed as written (after trimming).
    Same,
    /// Minutes to milliseconds (`offsets.retention.minutes`,
    /// `log.retention.minutes`).
    MinutesToMs,
    /// Hours to milliseconds (`log.retention.hours`).
    HoursToMs,
}

/// What a broker does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// Sets the broker flag `--<flag>` (a flag or its environment variable
    /// given as well wins over the file).
    Flag {
        flag: &'static str,
        rule: ValueRule,
        convert: Convert,
    },
    /// Refused: the reason says why and what to do instead.
    Refused(&'static str),
}

/// One key of the broker configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerKey {
    pub name: &'static str,
    pub key_use: KeyUse,
}

const fn flag(name: &'static str, flag: &'static str, rule: ValueRule) -> BrokerKey {
    BrokerKey {
        name,
        key_use: KeyUse::Flag {
            flag,
            rule,
            convert: Convert::Same,
        },
    }
}

const fn converted(
    name: &'static str,
    flag: &'static str,
    rule: ValueRule,
    convert: Convert,
) -> BrokerKey {
    BrokerKey {
        name,
        key_use: KeyUse::Flag {
            flag,
            rule,
            convert,
        },
    }
}

const fn refused(name: &'static str, reason: &'static str) -> BrokerKey {
    BrokerKey {
        name,
        key_use: KeyUse::Refused(reason),
    }
}

const fn int(min: i64, max: i64) -> ValueRule {
    ValueRule::Int { min, max }
}

const I32_MAX: i64 = i32::MAX as i64;
const SET_BY_OPERATOR: &str =
    "set by the operator for each broker pod (or by a flag when running rill-broker directly)";

const LISTENER_SECURITY: &str = "set by the Kafka listener's security: --kafka-sasl-mechanisms and --kafka-tls-cert-file (docs/security.md)";
const LISTENER_TLS: &str = "the Kafka listener reads PEM files: --kafka-tls-cert-file and --kafka-tls-key-file (docs/security.md)";

/// Every key of the broker configuration file: first those the broker
/// honours, then Kafka keys it refuses. A key in neither list is refused
/// as unknown.
pub const BROKER_KEYS: &[BrokerKey] = &[
    flag("num.partitions", "num-partitions", int(1, 1000)),
    flag(
        "default.replication.factor",
        "default-replication-factor",
        int(1, 32),
    ),
    flag(
        "auto.create.topics.enable",
        "auto-create-topics",
        ValueRule::Bool,
    ),
    flag(
        "min.insync.replicas",
        "log-min-insync-replicas",
        int(1, I32_MAX),
    ),
    flag("log.retention.ms", "log-retention-ms", int(-1, i64::MAX)),
    converted(
        "log.retention.minutes",
        "log-retention-ms",
        int(-1, i64::MAX / 60_000),
        Convert::MinutesToMs,
    ),
    converted(
        "log.retention.hours",
        "log-retention-ms",
        int(-1, i64::MAX / 3_600_000),
        Convert::HoursToMs,
    ),
    flag(
        "log.retention.bytes",
        "log-retention-bytes",
        int(-1, i64::MAX),
    ),
    flag("log.segment.bytes", "log-segment-bytes", int(14, I32_MAX)),
    flag("message.max.bytes", "message-max-bytes", int(61, 64 << 20)),
    flag("log.flush", "log-flush", ValueRule::Flush),
    flag(
        "log.flush.interval.ms",
        "log-flush-interval-ms",
        int(1, i64::MAX),
    ),
    flag(
        "log.retention.check.interval.ms",
        "retention-check-interval-ms",
        int(1, i64::MAX),
    ),
    flag(
        "replica.lag.time.max.ms",
        "replica-lag-time-max-ms",
        int(1, i64::MAX),
    ),
    flag(
        "follower.replication.throttled.rate",
        "reassignment-throttle-bytes-per-sec",
        int(0, i64::MAX),
    ),
    flag(
        "socket.request.max.bytes",
        "kafka-max-request-bytes",
        int(1024, I32_MAX),
    ),
    flag(
        "queued.max.request.bytes",
        "kafka-queued-request-bytes",
        int(1 << 20, u32::MAX as i64),
    ),
    flag(
        "offsets.topic.num.partitions",
        "offsets-topic-partitions",
        int(1, 1000),
    ),
    flag(
        "offsets.topic.replication.factor",
        "offsets-topic-replication-factor",
        int(1, 32),
    ),
    converted(
        "offsets.retention.minutes",
        "offsets-retention-ms",
        int(1, i64::MAX / 60_000),
        Convert::MinutesToMs,
    ),
    flag(
        "offsets.commit.timeout.ms",
        "offsets-commit-timeout-ms",
        int(1, I32_MAX),
    ),
    flag(
        "group.initial.rebalance.delay.ms",
        "group-initial-rebalance-delay-ms",
        int(0, I32_MAX),
    ),
    flag(
        "group.min.session.timeout.ms",
        "group-min-session-timeout-ms",
        int(1, I32_MAX),
    ),
    flag(
        "group.max.session.timeout.ms",
        "group-max-session-timeout-ms",
        int(1, I32_MAX),
    ),
    flag(
        "connections.max.reauth.ms",
        "connections-max-reauth-ms",
        int(0, i64::MAX),
    ),
    flag("super.users", "super-users", ValueRule::Any),
    flag("quota.window.num", "quota-window-num", int(1, I32_MAX)),
    flag(
        "quota.window.size.seconds",
        "quota-window-size-seconds",
        int(1, I32_MAX),
    ),
    refused(
        "authorizer.class.name",
        "Rill has one authorizer, Kafka's ACL rule: turn it on with --authorization (StreamCluster spec.authorization)",
    ),
    refused("broker.id", SET_BY_OPERATOR),
    refused("node.id", SET_BY_OPERATOR),
    refused(
        "broker.rack",
        "set from spec.rack (the node's topology label)",
    ),
    refused("listeners", SET_BY_OPERATOR),
    refused("advertised.listeners", SET_BY_OPERATOR),
    refused(
        "log.dirs",
        "the broker's data directory is its volume, set by the operator",
    ),
    refused(
        "log.dir",
        "the broker's data directory is its volume, set by the operator",
    ),
    refused(
        "process.roles",
        "Rill brokers have one role; the operator is the metadata controller",
    ),
    refused(
        "controller.quorum.voters",
        "the operator is the metadata controller; brokers find it through --controller-addr",
    ),
    refused(
        "controller.quorum.bootstrap.servers",
        "the operator is the metadata controller; brokers find it through --controller-addr",
    ),
    refused("zookeeper.connect", "Rill has no ZooKeeper"),
    refused("sasl.enabled.mechanisms", LISTENER_SECURITY),
    refused("listener.security.protocol.map", LISTENER_SECURITY),
    refused("security.inter.broker.protocol", LISTENER_SECURITY),
    refused("ssl.keystore.location", LISTENER_TLS),
    refused("ssl.keystore.type", LISTENER_TLS),
    refused("ssl.key.password", LISTENER_TLS),
    refused("ssl.truststore.location", LISTENER_TLS),
    refused(
        "log.flush.interval.messages",
        "not supported: use log.flush=fsync to fsync before every acknowledgement",
    ),
    refused(
        "unclean.leader.election.enable",
        "set it per topic (Topic spec.config) where losing acknowledged writes is acceptable",
    ),
];

/// The entry of [`BROKER_KEYS`] named `key`.
pub fn broker_key(key: &str) -> Option<&'static BrokerKey> {
    BROKER_KEYS.iter().find(|k| k.name == key)
}

/// Where a broker setting's value came from, as DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The configuration file.
    File,
    /// The setting's `RILL_*` environment variable.
    Environment,
    /// A command-line flag.
    Flag,
}

impl Source {
    /// A short word for logs and DescribeConfigs documentation.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Environment => "environment",
            Source::Flag => "flag",
        }
    }
}

/// The flag a file key sets, for keys the broker honours.
/// Keys a running broker applies without a restart when the configuration
/// file changes: the defaults of topic settings. The operator leaves them
/// out of the pod template's configuration hash, so changing one of them
/// in `spec.config` rolls no broker.
pub const LIVE_KEYS: &[&str] = &[
    "log.retention.ms",
    "log.retention.minutes",
    "log.retention.hours",
    "log.retention.bytes",
    "log.segment.bytes",
    "message.max.bytes",
    "min.insync.replicas",
    "log.flush",
    "log.flush.interval.ms",
];

/// Whether a running broker applies `key` without a restart.
pub fn is_live(key: &str) -> bool {
    LIVE_KEYS.contains(&key)
}

pub fn flag_of(key: &str) -> Option<&'static str> {
    match broker_key(key)?.key_use {
        KeyUse::Flag { flag, .. } => Some(flag),
        KeyUse::Refused(_) => None,
    }
}

/// One `key=value` line of a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// Reads a properties file: `key=value` or `key: value` lines, blank lines
/// and comments (`#` or `!` first) skipped, spaces around keys and values
/// trimmed. Line continuations and escapes are refused rather than
/// misread, and so is a key given twice.
pub fn parse_properties(text: &str) -> Result<Vec<Property>, String> {
    let mut out: Vec<Property> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        if trimmed.contains('\\') {
            return Err(format!(
                "line {line}: backslash escapes and line continuations are not supported"
            ));
        }
        let Some(at) = trimmed.find(['=', ':']) else {
            return Err(format!("line {line}: expected key=value, got {trimmed:?}"));
        };
        let key = trimmed[..at].trim();
        let value = trimmed[at + 1..].trim();
        if key.is_empty() {
            return Err(format!("line {line}: the key is empty"));
        }
        if let Some(first) = out.iter().find(|p| p.key == key) {
            return Err(format!(
                "line {line}: {key} is already set on line {}",
                first.line
            ));
        }
        out.push(Property {
            key: key.to_owned(),
            value: value.to_owned(),
            line,
        });
    }
    Ok(out)
}

/// Checks one entry and returns the broker flag it sets with the flag's
/// value; the error says why the key or value is refused.
pub fn flag_value(key: &str, value: &str) -> Result<(&'static str, String), String> {
    let Some(entry) = broker_key(key) else {
        return Err(format!(
            "{key}: unknown broker configuration key (docs/broker.md lists the supported ones)"
        ));
    };
    let (flag, rule, convert) = match entry.key_use {
        KeyUse::Flag {
            flag,
            rule,
            convert,
        } => (flag, rule, convert),
        KeyUse::Refused(reason) => return Err(format!("{key}: not supported: {reason}")),
    };
    let value = value.trim();
    check_value(rule, value).map_err(|why| format!("{key}={value}: {why}"))?;
    let value = match convert {
        Convert::Same => value.to_owned(),
        Convert::MinutesToMs => to_ms(value, 60_000),
        Convert::HoursToMs => to_ms(value, 3_600_000),
    };
    Ok((flag, value))
}

/// A checked integer count of `unit` ms in ms, -1 staying -1 (forever).
fn to_ms(value: &str, unit: i64) -> String {
    match value.parse::<i64>() {
        Ok(-1) => "-1".to_owned(),
        Ok(n) => n.saturating_mul(unit).to_string(),
        Err(_) => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_the_live_keys_then_each_is_an_honoured_key() {
        for key in LIVE_KEYS {
            assert!(flag_of(key).is_some(), "{key} is honoured");
        }
        assert!(is_live("log.retention.ms"));
        assert!(!is_live("num.partitions"));
    }

    #[test]
    fn given_a_properties_text_when_parsing_then_comments_and_spaces_are_skipped() {
        let props = parse_properties(
            "# comment\n! also a comment\n\nnum.partitions = 6\nlog.retention.ms:3600000\n",
        )
        .expect("parses");
        assert_eq!(
            props,
            vec![
                Property {
                    key: "num.partitions".into(),
                    value: "6".into(),
                    line: 4
                },
                Property {
                    key: "log.retention.ms".into(),
                    value: "3600000".into(),
                    line: 5
                },
            ]
        );
    }

    #[test]
    fn given_a_malformed_file_when_parsing_then_the_error_names_the_line() {
        assert_eq!(
            parse_properties("a=1\nnot a pair\n").unwrap_err(),
            "line 2: expected key=value, got \"not a pair\""
        );
        assert!(
            parse_properties("a=1\na=2\n")
                .unwrap_err()
                .contains("line 2: a is already set on line 1")
        );
        assert!(
            parse_properties("a=x\\\n  y\n")
                .unwrap_err()
                .contains("line 1")
        );
    }

    #[test]
    fn given_each_kind_of_key_when_mapped_then_flags_values_and_reasons_follow_the_table() {
        assert_eq!(
            flag_value("default.replication.factor", " 3 "),
            Ok(("default-replication-factor", "3".to_owned()))
        );
        assert_eq!(
            flag_value("log.retention.hours", "2"),
            Ok(("log-retention-ms", "7200000".to_owned()))
        );
        assert_eq!(
            flag_value("offsets.retention.minutes", "10"),
            Ok(("offsets-retention-ms", "600000".to_owned()))
        );
        assert_eq!(
            flag_value("log.retention.minutes", "-1"),
            Ok(("log-retention-ms", "-1".to_owned()))
        );
        let err = flag_value("broker.id", "1").unwrap_err();
        assert!(
            err.starts_with("broker.id: not supported: set by the operator"),
            "{err}"
        );
        let err = flag_value("num.partitions", "zero").unwrap_err();
        assert_eq!(err, "num.partitions=zero: not an integer");
        let err = flag_value("no.such.key", "1").unwrap_err();
        assert!(err.contains("unknown broker configuration key"), "{err}");
    }

    #[test]
    fn given_the_table_then_every_key_is_listed_once() {
        let mut names: Vec<&str> = BROKER_KEYS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
