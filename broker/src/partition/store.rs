//! The local topic store: the topics this broker has on disk ([`TopicSpec`]:
//! name, id, partition count, replication factor, config overrides), the
//! directories of their partition logs, and Kafka's topic name rules.
//!
//! A standalone broker is the source of truth for its topics and keeps
//! their specs here. In a cluster the controller is: the broker writes no
//! `topic.json` and keeps here only the partition directories of the
//! replicas assigned to it, each stamped with its topic id. Layout:
//!
//! ```text
//! <data>/topics/<topic>/topic.json     TopicSpec (name, id, partitions, rf, overrides)
//! <data>/topics/<topic>/<partition>/   partition log (see crate::log)
//! <data>/topics/<topic>/<partition>/partition.metadata   the topic id the log belongs to
//! <data>/deleted/<topic>-<millis>/     a deleted topic being removed
//! ```
//!
//! `topic.json` is the commit point of a topic: it is written atomically
//! (temp file, fsync, rename, fsync of the directory) *before* partition
//! logs are opened, and a delete first renames the whole topic directory
//! into `deleted/` (one atomic step), then removes it. A restart finishes
//! interrupted deletes and skips (with a warning) topic directories that
//! have no `topic.json`.
//!
//! Topic ids (KIP-516): every topic has a random UUID, given by the
//! controller in a cluster and by the broker itself when standalone. Each
//! partition directory records the id of the topic its log belongs to in
//! `partition.metadata` (as Kafka does), written before the log is opened.
//! A log whose recorded id differs from the topic's current id belongs to
//! an earlier topic of the same name (deleted while this broker was away)
//! and is never used for the new one. A directory without the file (written
//! before topics had ids, or created and not yet stamped) is adopted.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::log::sync_dir;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::{debug, info, warn};

pub use rill_proto::topic::{InvalidTopicName, validate_topic_name};

/// A topic as created by a user: what is persisted in `topic.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSpec {
    pub name: String,
    /// The topic id (a hyphenated UUID); empty only in specs written
    /// before topics had ids, which get one when loaded.
    #[serde(default)]
    pub id: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Only the keys the user set; broker defaults fill in the rest at
    /// load time, so changing a broker default applies to existing topics.
    pub config: BTreeMap<String, String>,
    /// When the topic was created (ms since the epoch).
    pub created_ms: i64,
}

/// Persists [`TopicSpec`]s under `<data>/topics`.
#[derive(Debug, Clone)]
pub struct TopicStore {
    topics_dir: PathBuf,
    deleted_dir: PathBuf,
}

/// A failed metadata read or write, with what was being done.
#[derive(Debug, Error)]
#[error("{context}: {source}")]
pub struct StoreError {
    pub context: String,
    #[source]
    pub source: io::Error,
}

fn ctx(context: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError { context, source }
}

const SPEC_FILE: &str = "topic.json";

/// The file in a partition directory naming the topic id of its log.
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";

/// The topic id recorded in partition directory `dir`: `Ok(None)` when the
/// directory or the file does not exist.
pub fn partition_topic_id(dir: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(dir.join(PARTITION_METADATA_FILE)) {
        Ok(text) => text
            .lines()
            .find_map(|l| l.strip_prefix("topic_id:"))
            .map(|id| Some(id.trim().to_owned()))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} has no topic_id line",
                        dir.join(PARTITION_METADATA_FILE).display()
                    ),
                )
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Records `topic_id` in partition directory `dir` (created if missing),
/// atomically and durably.
pub fn write_partition_topic_id(dir: &Path, topic_id: &str) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    crate::log::write_atomically(
        &dir.join(PARTITION_METADATA_FILE),
        format!("version: 0\ntopic_id: {topic_id}\n").as_bytes(),
    )
}

/// Whether partition directory `dir` holds a log of another topic than
/// `topic_id` (an earlier topic of the same name). A directory without a
/// recorded id is not: it is adopted.
pub fn belongs_to_other_topic(dir: &Path, topic_id: &str) -> io::Result<bool> {
    Ok(partition_topic_id(dir)?.is_some_and(|recorded| recorded != topic_id))
}

impl TopicStore {
    /// The data directory holding the topics (Kafka's log dir).
    pub fn data_dir(&self) -> &Path {
        self.topics_dir.parent().unwrap_or(&self.topics_dir)
    }

    /// Opens the store in `data_dir`, creating its directories and
    /// finishing deletes interrupted by a crash.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let store = Self {
            topics_dir: data_dir.join("topics"),
            deleted_dir: data_dir.join("deleted"),
        };
        for dir in [&store.topics_dir, &store.deleted_dir] {
            fs::create_dir_all(dir).map_err(ctx(format!("creating {}", dir.display())))?;
        }
        let leftovers = fs::read_dir(&store.deleted_dir)
            .map_err(ctx(format!("listing {}", store.deleted_dir.display())))?;
        for entry in leftovers.flatten() {
            info!(path = %entry.path().display(), "finishing an interrupted topic delete");
            if let Err(e) = fs::remove_dir_all(entry.path()) {
                warn!(path = %entry.path().display(), error = %e, "could not remove deleted topic data");
            }
        }
        Ok(store)
    }

    /// Directory of a topic.
    pub fn topic_dir(&self, topic: &str) -> PathBuf {
        self.topics_dir.join(topic)
    }

    /// Directory of one partition's log.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.topic_dir(topic).join(partition.to_string())
    }

    /// Every persisted topic, sorted by name.
    pub fn load_all(&self) -> Result<Vec<TopicSpec>, StoreError> {
        let mut specs = Vec::new();
        let entries = fs::read_dir(&self.topics_dir)
            .map_err(ctx(format!("listing {}", self.topics_dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(ctx(format!("listing {}", self.topics_dir.display())))?;
            let path = entry.path().join(SPEC_FILE);
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.path().is_dir() {
                continue;
            }
            let text = match fs::read(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // A cluster broker keeps no topic.json: the metadata
                    // controller names its topics and their partitions are
                    // opened as it assigns them. Standalone, an
                    // interrupted create leaves such a directory.
                    debug!(dir = %entry.path().display(), "topic directory without topic.json: left to the metadata controller");
                    continue;
                }
                Err(e) => return Err(ctx(format!("reading {}", path.display()))(e)),
            };
            let spec: TopicSpec = serde_json::from_slice(&text).map_err(|e| StoreError {
                context: format!("parsing {}", path.display()),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            })?;
            if spec.name != name {
                return Err(StoreError {
                    context: format!("loading {}", path.display()),
                    source: io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "names topic {:?} but lives in directory {name:?}",
                            spec.name
                        ),
                    ),
                });
            }
            specs.push(spec);
        }
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(specs)
    }

    /// Writes `spec` atomically: after a crash either the old file or the
    /// new one is there, never a torn one.
    pub fn save(&self, spec: &TopicSpec) -> Result<(), StoreError> {
        let dir = self.topic_dir(&spec.name);
        fs::create_dir_all(&dir).map_err(ctx(format!("creating {}", dir.display())))?;
        let tmp = dir.join(format!("{SPEC_FILE}.tmp"));
        let path = dir.join(SPEC_FILE);
        let json = serde_json::to_vec_pretty(spec).map_err(|e| StoreError {
            context: "encoding topic spec".to_owned(),
            source: io::Error::other(e),
        })?;
        let write = || -> io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            sync_dir(&dir)?;
            sync_dir(&self.topics_dir)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            ctx(format!("writing {}", path.display()))(e)
        })
    }

    /// Deletes a topic's metadata and data: renames the topic directory out
    /// of `topics/` (the commit point), then removes it.
    pub fn delete(&self, topic: &str, now_ms: i64) -> Result<(), StoreError> {
        let dir = self.topic_dir(topic);
        let graveyard = self.deleted_dir.join(format!("{topic}-{now_ms}"));
        fs::rename(&dir, &graveyard).map_err(ctx(format!(
            "moving {} to {}",
            dir.display(),
            graveyard.display()
        )))?;
        sync_dir(&self.topics_dir)
            .map_err(ctx(format!("syncing {}", self.topics_dir.display())))?;
        fs::remove_dir_all(&graveyard).map_err(ctx(format!("removing {}", graveyard.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_saved_specs_when_reopened_should_load_them_and_skip_dirs_without_spec() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = TopicStore::open(tmp.path()).expect("open");
        let spec = TopicSpec {
            name: "t1".into(),
            id: "0b2d5a4e-5b6f-4c1e-9a57-1f0f3c2a9d10".into(),
            partitions: 3,
            replication_factor: 1,
            config: BTreeMap::from([("flush".into(), "fsync".into())]),
            created_ms: 5,
        };
        store.save(&spec).expect("save");
        fs::create_dir_all(tmp.path().join("topics/half-created/0")).expect("mkdir");
        let store = TopicStore::open(tmp.path()).expect("reopen");
        assert_eq!(store.load_all().expect("load"), vec![spec]);
        store.delete("t1", 7).expect("delete");
        assert!(!store.topic_dir("t1").exists());
        assert_eq!(store.load_all().expect("load"), vec![]);
    }
}
