//! Live reload of the configuration file.
//!
//! A running broker reads its configuration file (`RILL_CONFIG_FILE`) again
//! every [`RELOAD_INTERVAL`] and, when its content changed, loads the whole
//! configuration again exactly as at start (flags and environment still win
//! over the file). The defaults of topic settings
//! ([`rill_proto::broker_config::LIVE_KEYS`]: retention, segment size,
//! largest message, `min.insync.replicas`, flush policy) are applied at
//! once to every hosted partition whose topic does not override them. Any
//! other key that changed takes effect at the next restart; the broker says
//! so in its log, and on Kubernetes the operator rolls the brokers for such
//! a change (it leaves the live keys out of the pod template's hash).
//! A file that no longer loads is reported and ignored: the broker keeps
//! its settings.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rill_proto::broker_config::{is_live, parse_properties};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::BrokerConfig;
use crate::partition::manager::ReplicaManager;

/// How often the file is read again.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Keys whose value differs between two versions of the file (added,
/// removed or changed) and that a running broker does not apply.
pub fn restart_keys(old: &str, new: &str) -> Vec<String> {
    let read = |text: &str| -> BTreeMap<String, String> {
        parse_properties(text)
            .map(|props| props.into_iter().map(|p| (p.key, p.value)).collect())
            .unwrap_or_default()
    };
    let (old, new) = (read(old), read(new));
    let mut keys: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k) && !is_live(k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

struct Reloader {
    args: Vec<OsString>,
    path: PathBuf,
    text: String,
    manager: Arc<ReplicaManager>,
}

impl Reloader {
    /// Reads the file; applies what changed since the last read.
    fn check(&mut self) {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            // Gone for a moment (a ConfigMap volume swaps its files): the
            // next read sees the new one.
            return;
        };
        if text == self.text {
            return;
        }
        let old = std::mem::replace(&mut self.text, text);
        let config = match BrokerConfig::load_from(self.args.clone()) {
            Ok(c) => c,
            Err(e) => {
                warn!(file = %self.path.display(), error = %e, "the changed configuration file does not load; keeping the running settings");
                return;
            }
        };
        let defaults = match config.log_defaults() {
            Ok(d) => d,
            Err(e) => {
                warn!(file = %self.path.display(), error = %e, "the changed configuration file does not load; keeping the running settings");
                return;
            }
        };
        if defaults != self.manager.log_defaults() {
            let partitions = self.manager.set_log_defaults(defaults);
            info!(file = %self.path.display(), partitions, "configuration file changed: topic defaults applied live");
        }
        let later = restart_keys(&old, &self.text);
        if !later.is_empty() {
            warn!(file = %self.path.display(), keys = ?later, "configuration file changed: these keys take effect at the next restart");
        }
    }
}

/// Watches the configuration file of `config` until `stop`; None when the
/// configuration has no file or was not loaded from arguments.
pub fn spawn(
    config: &BrokerConfig,
    manager: Arc<ReplicaManager>,
    stop: CancellationToken,
) -> Option<JoinHandle<()>> {
    let path = config.config_file.clone()?;
    if config.load_args.is_empty() {
        return None;
    }
    let mut reloader = Reloader {
        args: config.load_args.clone(),
        text: std::fs::read_to_string(&path).unwrap_or_default(),
        path,
        manager,
    };
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(RELOAD_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => reloader.check(),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_two_versions_of_the_file_when_comparing_then_only_changed_keys_needing_a_restart_are_named()
     {
        let old = "log.retention.ms=1000\nnum.partitions=3\nauto.create.topics.enable=true\n";
        let new = "log.retention.ms=2000\nnum.partitions=6\ndefault.replication.factor=3\n";
        assert_eq!(
            restart_keys(old, new),
            vec![
                "auto.create.topics.enable".to_owned(),
                "default.replication.factor".to_owned(),
                "num.partitions".to_owned()
            ]
        );
        assert!(restart_keys(old, old).is_empty());
        assert!(restart_keys("log.retention.ms=1\n", "log.retention.ms=2\n").is_empty());
    }
}
