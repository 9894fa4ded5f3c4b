//! Topic rules every Rill component applies the same way: the broker (Kafka
//! and gRPC topic admin, auto-creation, per-partition log settings), the
//! controller (topic admin before anything becomes durable metadata) and the
//! operator (Topic resources).
//!
//! - Names: [`MAX_TOPIC_NAME_LEN`] and [`validate_topic_name`] (Kafka's
//!   rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`).
//! - Partitions: [`MAX_PARTITIONS_PER_TOPIC`].
//! - Config: [`CONFIG_KEYS`], the one table of topic config keys Rill
//!   accepts and the rule each value must follow, read through
//!   [`parse_config`]; [`min_insync_replicas_within`] adds the bound that
//!   needs the topic's replication factor.

use std::fmt;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Largest partition count of one topic (each partition holds open files
/// and a directory on every replica).
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 1000;

/// What is wrong with a topic name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    /// Longer than [`MAX_TOPIC_NAME_LEN`] bytes; `chars` is its length in
    /// characters.
    TooLong {
        chars: usize,
    },
    /// `.` or `..`.
    Reserved,
    /// The first character outside `[a-zA-Z0-9._-]`.
    IllegalCharacter(char),
}

impl NameProblem {
    /// A short reason (`empty`, `too long`, `reserved`, `illegal
    /// character`), as the controller reports it.
    pub fn short(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong { .. } => "too long",
            Self::Reserved => "reserved",
            Self::IllegalCharacter(_) => "illegal character",
        }
    }
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("a topic name must not be empty"),
            Self::TooLong { chars } => write!(
                f,
                "{chars} characters is longer than the limit of {MAX_TOPIC_NAME_LEN}"
            ),
            Self::Reserved => f.write_str("\".\" and \"..\" are not allowed"),
            Self::IllegalCharacter(c) => write!(
                f,
                "character {c:?} is not allowed (use letters, digits, '.', '_' and '-')"
            ),
        }
    }
}

/// Why a topic name is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTopicName {
    /// The refused name, cut to its first 300 characters.
    pub name: String,
    pub problem: NameProblem,
}

impl fmt::Display for InvalidTopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid topic name {:?}: {}", self.name, self.problem)
    }
}

impl std::error::Error for InvalidTopicName {}

/// Kafka's topic name rules: 1..=249 characters of `[a-zA-Z0-9._-]`, and
/// not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), InvalidTopicName> {
    let problem = if name.is_empty() {
        NameProblem::Empty
    } else if name.len() > MAX_TOPIC_NAME_LEN {
        NameProblem::TooLong {
            chars: name.chars().count(),
        }
    } else if name == "." || name == ".." {
        NameProblem::Reserved
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        NameProblem::IllegalCharacter(c)
    } else {
        return Ok(());
    };
    Err(InvalidTopicName {
        name: name.chars().take(300).collect(),
        problem,
    })
}

/// What happens to old data (`cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Whole segments are deleted by age and size.
    Delete,
    /// The last record per key is kept; older ones are removed.
    Compact,
    /// Both: compaction, plus deletion by age and size.
    CompactDelete,
}

impl CleanupPolicy {
    pub fn deletes(self) -> bool {
        matches!(self, Self::Delete | Self::CompactDelete)
    }
    pub fn compacts(self) -> bool {
        matches!(self, Self::Compact | Self::CompactDelete)
    }
    /// The config value (`delete`, `compact`, `compact,delete`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::Compact => "compact",
            Self::CompactDelete => "compact,delete",
        }
    }
}

/// When appended data is made durable (`flush`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Acknowledge once replicated into memory/page cache; fsync on an
    /// interval (Kafka's default behaviour).
    Replicated,
    /// fsync before acknowledging, several producers sharing one fsync
    /// (group commit).
    Fsync,
}

impl FlushPolicy {
    /// The config value (`replicated`, `fsync`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replicated => "replicated",
            Self::Fsync => "fsync",
        }
    }
}

/// Whether Rill acts on a topic config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// The broker or the controller applies the setting.
    Applied,
    /// Accepted, stored and reported (DescribeConfigs) but not acted on, so
    /// Kafka clients that set it keep working (Kafka Streams sets
    /// `message.timestamp.type` on its internal topics). The value is still
    /// checked.
    AcceptedOnly,
}

/// The rule a topic config value must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRule {
    /// An integer between `min` and `max` (surrounding spaces allowed).
    Int { min: i64, max: i64 },
    /// An integer of at least this.
    AtLeast(i64),
    /// `delete`, `compact` or both, comma-separated in any order.
    CleanupPolicy,
    /// `replicated` or `fsync`.
    Flush,
    /// `true` or `false`.
    Bool,
    /// Only `producer`: batches are stored as produced.
    ProducerCompression,
    /// Only `CreateTime`: Rill keeps the producer's timestamps.
    CreateTime,
    /// A number between 0 and 1.
    Ratio,
    /// Any value.
    Any,
}

/// One topic config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigKey {
    pub name: &'static str,
    pub support: Support,
    pub rule: ValueRule,
}

const fn applied(name: &'static str, rule: ValueRule) -> ConfigKey {
    ConfigKey {
        name,
        support: Support::Applied,
        rule,
    }
}

const fn accepted(name: &'static str, rule: ValueRule) -> ConfigKey {
    ConfigKey {
        name,
        support: Support::AcceptedOnly,
        rule,
    }
}

const fn int(min: i64, max: i64) -> ValueRule {
    ValueRule::Int { min, max }
}

const I32_MAX: i64 = i32::MAX as i64;

/// Every topic config key Rill accepts: first those it applies, then those
/// it only accepts.
pub const CONFIG_KEYS: &[ConfigKey] = &[
    applied("segment.bytes", int(14, I32_MAX)),
    applied("segment.ms", int(1, i64::MAX)),
    applied("retention.ms", int(-1, i64::MAX)),
    applied("retention.bytes", int(-1, i64::MAX)),
    applied("cleanup.policy", ValueRule::CleanupPolicy),
    applied("index.interval.bytes", int(0, I32_MAX)),
    applied("max.message.bytes", int(61, 64 << 20)),
    applied("flush", ValueRule::Flush),
    applied("flush.ms", int(1, i64::MAX)),
    // The controller also bounds it by the replication factor
    // (`min_insync_replicas_within`).
    applied("min.insync.replicas", int(1, I32_MAX)),
    applied("unclean.leader.election.enable", ValueRule::Bool),
    accepted("compression.type", ValueRule::ProducerCompression),
    accepted("delete.retention.ms", ValueRule::AtLeast(0)),
    accepted("file.delete.delay.ms", ValueRule::AtLeast(0)),
    accepted("flush.messages", ValueRule::AtLeast(1)),
    accepted("follower.replication.throttled.replicas", ValueRule::Any),
    accepted("leader.replication.throttled.replicas", ValueRule::Any),
    accepted("max.compaction.lag.ms", ValueRule::AtLeast(0)),
    accepted("message.downconversion.enable", ValueRule::Bool),
    accepted("message.timestamp.after.max.ms", ValueRule::AtLeast(0)),
    accepted("message.timestamp.before.max.ms", ValueRule::AtLeast(0)),
    accepted("message.timestamp.difference.max.ms", ValueRule::AtLeast(0)),
    accepted("message.timestamp.type", ValueRule::CreateTime),
    accepted("min.cleanable.dirty.ratio", ValueRule::Ratio),
    accepted("min.compaction.lag.ms", ValueRule::AtLeast(0)),
    accepted("preallocate", ValueRule::Bool),
    accepted("segment.index.bytes", ValueRule::AtLeast(4)),
    accepted("segment.jitter.ms", ValueRule::AtLeast(0)),
];

/// The entry of [`CONFIG_KEYS`] named `key`.
pub fn config_key(key: &str) -> Option<&'static ConfigKey> {
    CONFIG_KEYS.iter().find(|k| k.name == key)
}

/// The names of the keys Rill applies, in table order.
pub fn applied_config_keys() -> Vec<&'static str> {
    CONFIG_KEYS
        .iter()
        .filter(|k| k.support == Support::Applied)
        .map(|k| k.name)
        .collect()
}

/// A topic config value read by its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigValue {
    Int(i64),
    CleanupPolicy(CleanupPolicy),
    Flush(FlushPolicy),
    Bool(bool),
    /// A value that is only stored (ratios, throttled replica lists, ...).
    Other,
}

/// Why a topic config entry is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigProblem {
    /// Not in [`CONFIG_KEYS`].
    UnknownKey,
    /// The value breaks the key's rule; says why.
    BadValue(String),
}

/// An integer between `min` and `max`.
pub fn parse_int(value: &str, min: i64, max: i64) -> Result<i64, String> {
    let n: i64 = value
        .trim()
        .parse()
        .map_err(|_| "not an integer".to_owned())?;
    if n < min || n > max {
        return Err(format!("must be between {min} and {max}"));
    }
    Ok(n)
}

/// `min.insync.replicas` for a topic of `replication_factor` replicas: a
/// larger value could never be satisfied.
pub fn min_insync_replicas_within(value: &str, replication_factor: i32) -> Result<i64, String> {
    parse_int(value, 1, i64::from(replication_factor.max(1)))
}

/// Reads `value` by `rule`. Values are compared as given: `flush` and
/// `unclean.leader.election.enable` refuse surrounding spaces unless the
/// caller trims first; integers and `cleanup.policy` parts are trimmed here.
pub fn check_value(rule: ValueRule, value: &str) -> Result<ConfigValue, String> {
    let v = value;
    Ok(match rule {
        ValueRule::Int { min, max } => ConfigValue::Int(parse_int(v, min, max)?),
        ValueRule::AtLeast(min) => match v.trim().parse::<i64>() {
            Ok(n) if n >= min => ConfigValue::Int(n),
            Ok(_) => return Err(format!("must be at least {min}")),
            Err(_) => return Err("not an integer".to_owned()),
        },
        ValueRule::CleanupPolicy => {
            let mut parts: Vec<&str> = v.split(',').map(str::trim).collect();
            parts.sort_unstable();
            parts.dedup();
            ConfigValue::CleanupPolicy(match parts.as_slice() {
                ["delete"] => CleanupPolicy::Delete,
                ["compact"] => CleanupPolicy::Compact,
                ["compact", "delete"] => CleanupPolicy::CompactDelete,
                _ => return Err("expected delete, compact or compact,delete".to_owned()),
            })
        }
        ValueRule::Flush => ConfigValue::Flush(match v {
            "replicated" => FlushPolicy::Replicated,
            "fsync" => FlushPolicy::Fsync,
            _ => return Err("expected replicated or fsync".to_owned()),
        }),
        ValueRule::Bool => ConfigValue::Bool(match v {
            "true" => true,
            "false" => false,
            _ => return Err("expected true or false".to_owned()),
        }),
        ValueRule::ProducerCompression => {
            if v != "producer" {
                return Err("only \"producer\" is supported: Rill stores batches as the producer compressed them".to_owned());
            }
            ConfigValue::Other
        }
        ValueRule::CreateTime => match v {
            "CreateTime" => ConfigValue::Other,
            "LogAppendTime" => {
                return Err(
                    "LogAppendTime is not supported: Rill keeps the producer's timestamps (CreateTime)"
                        .to_owned(),
                );
            }
            _ => return Err("expected CreateTime".to_owned()),
        },
        ValueRule::Ratio => match v.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => ConfigValue::Other,
            _ => return Err("expected a number between 0 and 1".to_owned()),
        },
        ValueRule::Any => ConfigValue::Other,
    })
}

/// Reads one topic config entry by [`CONFIG_KEYS`]. Values of keys Rill
/// only accepts are trimmed first; see [`check_value`] for the others.
pub fn parse_config(key: &str, value: &str) -> Result<ConfigValue, ConfigProblem> {
    let entry = config_key(key).ok_or(ConfigProblem::UnknownKey)?;
    let value = match entry.support {
        Support::Applied => value,
        Support::AcceptedOnly => value.trim(),
    };
    check_value(entry.rule, value).map_err(ConfigProblem::BadValue)
}

/// The canonical form of a config value, so two spellings of the same
/// setting compare equal: integers without spaces or leading zeros,
/// `cleanup.policy` as [`CleanupPolicy::as_str`], values of keys Rill only
/// accepts trimmed. A value its rule refuses is kept as given.
pub fn normalize_value(key: &str, value: &str) -> String {
    match parse_config(key, value) {
        Ok(ConfigValue::Int(n)) => n.to_string(),
        Ok(ConfigValue::CleanupPolicy(p)) => p.as_str().to_owned(),
        Ok(_) => match config_key(key).map(|k| k.support) {
            Some(Support::AcceptedOnly) => value.trim().to_owned(),
            _ => value.to_owned(),
        },
        Err(_) => value.to_owned(),
    }
}

/// A whole topic config in canonical form ([`normalize_value`]), for
/// comparing the config one component holds with another's.
pub fn normalize_config(
    config: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    config
        .iter()
        .map(|(k, v)| (k.clone(), normalize_value(k, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_kafka_legal_names_when_validated_should_pass() {
        for name in [
            "a",
            "orders",
            "orders.v2",
            "my_topic-1",
            "...",
            "x".repeat(249).as_str(),
        ] {
            assert_eq!(validate_topic_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn given_illegal_names_when_validated_should_say_why() {
        let cases = [
            ("", "empty"),
            (".", "not allowed"),
            ("..", "not allowed"),
            ("a/b", "'/'"),
            ("with space", "' '"),
            ("ünïcode", "'ü'"),
            ("nul\0", "'\\0'"),
        ];
        for (name, why) in cases {
            let err = validate_topic_name(name).expect_err(name).to_string();
            assert!(err.contains(why), "{name:?}: {err}");
        }
        let long = "x".repeat(250);
        let err = validate_topic_name(&long)
            .expect_err("too long")
            .to_string();
        assert!(err.contains("250 characters"), "{err}");
    }

    #[test]
    fn given_two_spellings_of_a_value_when_normalized_should_compare_equal() {
        assert_eq!(normalize_value("retention.ms", " 0060000"), "60000");
        assert_eq!(
            normalize_value("cleanup.policy", "delete, compact"),
            "compact,delete"
        );
        assert_eq!(normalize_value("preallocate", " true "), "true");
        assert_eq!(normalize_value("flush", "fsync"), "fsync");
        assert_eq!(normalize_value("retention.ms", "soon"), "soon");
        let a = std::collections::BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())]);
        let b = std::collections::BTreeMap::from([("retention.ms".to_owned(), "01000".to_owned())]);
        assert_eq!(normalize_config(&a), normalize_config(&b));
    }

    #[test]
    fn given_the_table_then_every_key_appears_once() {
        for (i, k) in CONFIG_KEYS.iter().enumerate() {
            assert!(
                CONFIG_KEYS[i + 1..].iter().all(|o| o.name != k.name),
                "{}",
                k.name
            );
        }
    }
}
