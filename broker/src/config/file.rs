//! Loading [`BrokerConfig`]: flags and `RILL_*` environment variables, then
//! the Kafka-style properties file they name (`--config-file` /
//! `RILL_CONFIG_FILE`) for every setting neither of them gives. The keys,
//! the flags they set and the keys refused are the table in
//! [`rill_proto::broker_config`], which the operator checks
//! `StreamCluster.spec.config` with.
//!
//! Precedence: flag > environment variable > file > default. A file value
//! becomes the flag's own value (so clap parses it by the same rules), and
//! [`ConfigSources`] remembers where each setting came from for
//! DescribeConfigs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use rill_proto::broker_config::{Source, flag_value, parse_properties};

use super::BrokerConfig;

/// Where each setting came from, by clap argument id (the flag name with
/// `_` for `-`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSources {
    by_id: BTreeMap<String, Source>,
}

impl ConfigSources {
    /// The source of the setting of flag `--<flag>`; [`Source::Default`]
    /// when it was not recorded.
    pub fn of_flag(&self, flag: &str) -> Source {
        self.by_id
            .get(&flag.replace('-', "_"))
            .copied()
            .unwrap_or(Source::Default)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// Flags or environment variables clap refused, or `--help`/`--version`
    /// (clap prints those and picks the exit code).
    Args(clap::Error),
    /// The configuration file cannot be read or holds a refused entry.
    File(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Args(e) => write!(f, "{}", e.to_string().trim_end()),
            LoadError::File(why) => f.write_str(why),
        }
    }
}

impl BrokerConfig {
    /// Loads the configuration from `args` (the program name first), the
    /// environment and the configuration file (see the module docs).
    pub fn load_from<I, T>(args: I) -> Result<Self, LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let matches = Self::command()
            .try_get_matches_from(&args)
            .map_err(LoadError::Args)?;
        let mut from_file: BTreeMap<String, (String, usize)> = BTreeMap::new();
        let mut extra: Vec<OsString> = Vec::new();
        if let Some(path) = matches.get_one::<std::path::PathBuf>("config_file") {
            for FileSetting {
                id,
                flag,
                value,
                key,
                line,
            } in file_settings(path)?
            {
                if let Some((other, first)) = from_file.get(&id) {
                    return Err(LoadError::File(format!(
                        "{}: line {line}: {key} sets the same setting as {other} on line {first}",
                        path.display()
                    )));
                }
                if matches!(
                    matches.value_source(&id),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                ) {
                    continue;
                }
                extra.push(format!("--{flag}={value}").into());
                from_file.insert(id, (key, line));
            }
        }
        let matches = if extra.is_empty() {
            matches
        } else {
            Self::command()
                .try_get_matches_from(args.iter().cloned().chain(extra))
                .map_err(LoadError::Args)?
        };
        let mut config = Self::from_arg_matches(&matches).map_err(LoadError::Args)?;
        let mut by_id = BTreeMap::new();
        for arg in Self::command().get_arguments() {
            let id = arg.get_id().as_str().to_owned();
            let source = if from_file.contains_key(&id) {
                Source::File
            } else {
                match matches.value_source(&id) {
                    Some(ValueSource::CommandLine) => Source::Flag,
                    Some(ValueSource::EnvVariable) => Source::Environment,
                    _ => Source::Default,
                }
            };
            by_id.insert(id, source);
        }
        config.sources = ConfigSources { by_id };
        config.load_args = args;
        Ok(config)
    }
}

/// One checked entry of the configuration file.
struct FileSetting {
    /// The clap argument id of the flag it sets.
    id: String,
    flag: &'static str,
    /// The flag's value (converted to the flag's unit).
    value: String,
    key: String,
    line: usize,
}

/// Reads and checks the file's entries.
fn file_settings(path: &Path) -> Result<Vec<FileSetting>, LoadError> {
    let fail = |why: String| LoadError::File(format!("{}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let properties = parse_properties(&text).map_err(fail)?;
    properties
        .into_iter()
        .map(|p| {
            let (flag, value) = flag_value(&p.key, &p.value)
                .map_err(|why| fail(format!("line {}: {why}", p.line)))?;
            Ok(FileSetting {
                id: flag.replace('-', "_"),
                flag,
                value,
                key: p.key,
                line: p.line,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use rill_proto::broker_config::{BROKER_KEYS, KeyUse};

    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    fn load(args: &[&str]) -> Result<BrokerConfig, LoadError> {
        BrokerConfig::load_from(std::iter::once("rill-broker").chain(args.iter().copied()))
    }

    #[test]
    fn given_a_config_file_when_loading_then_its_values_apply_and_a_flag_wins() {
        let f = file(
            "num.partitions=6\ndefault.replication.factor=3\nmin.insync.replicas=2\nlog.retention.hours=1\nauto.create.topics.enable=true\n",
        );
        let path = f.path().to_str().expect("utf-8 path");
        let config = load(&["--config-file", path, "--num-partitions", "4"]).expect("loads");
        assert_eq!(config.num_partitions, 4, "the flag wins over the file");
        assert_eq!(config.default_replication_factor, 3);
        assert_eq!(config.log_min_insync_replicas, 2);
        assert_eq!(config.log_retention_ms, 3_600_000);
        assert_eq!(config.auto_create_partitions(), Some(4));
        assert_eq!(config.sources.of_flag("num-partitions"), Source::Flag);
        assert_eq!(
            config.sources.of_flag("default-replication-factor"),
            Source::File
        );
        assert_eq!(config.sources.of_flag("log-segment-bytes"), Source::Default);
        let defaults = config.log_defaults().expect("log defaults");
        assert_eq!(defaults.min_insync_replicas, 2);
    }

    #[test]
    fn given_refused_or_bad_entries_when_loading_then_the_error_names_file_line_and_key() {
        for (text, expected) in [
            ("broker.id=3\n", "line 1: broker.id: not supported"),
            (
                "\nnum.partitions=x\n",
                "line 2: num.partitions=x: not an integer",
            ),
            (
                "frobnicate=1\n",
                "line 1: frobnicate: unknown broker configuration key",
            ),
            (
                "log.retention.ms=1\nlog.retention.hours=1\n",
                "line 2: log.retention.hours sets the same setting as log.retention.ms on line 1",
            ),
        ] {
            let f = file(text);
            let path = f.path().to_str().expect("utf-8 path");
            match load(&["--config-file", path]) {
                Err(LoadError::File(message)) => {
                    assert!(message.starts_with(path), "{message}");
                    assert!(message.contains(expected), "{message} lacks {expected}");
                }
                other => panic!("{text:?} loaded: {other:?}"),
            }
        }
        match load(&["--config-file", "/nonexistent/broker.properties"]) {
            Err(LoadError::File(message)) => {
                assert!(message.contains("cannot read it"), "{message}")
            }
            other => panic!("a missing file loaded: {other:?}"),
        }
    }

    #[test]
    fn given_the_key_table_then_every_flag_it_names_is_a_broker_flag() {
        let command = BrokerConfig::command();
        for key in BROKER_KEYS {
            if let KeyUse::Flag { flag, .. } = key.key_use {
                assert!(
                    command.get_arguments().any(|a| a.get_long() == Some(flag)),
                    "{}: --{flag} is not a rill-broker flag",
                    key.name
                );
            }
        }
    }
}
