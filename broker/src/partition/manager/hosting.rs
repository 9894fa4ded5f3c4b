//! Cluster mode: the local replicas of [`ReplicaManager`] follow the
//! controller's assignment. The cluster link calls these to host exactly
//! the partitions assigned here (opening or recovering their logs), and to
//! delete replicas, topics and logs of earlier topics of the same name that
//! no longer belong here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tracing::{info, warn};

use super::{ReplicaManager, Topic, now_ms, open_partition_log};
use crate::partition::store::{TopicSpec, belongs_to_other_topic};
use crate::partition::{Error, Partition};

impl ReplicaManager {
    /// Cluster mode: makes this broker host exactly the `hosted` partitions
    /// of `topic` (which has `total`) with id `topic_id`. Opens (recovers)
    /// logs of new ones, deletes local replicas no longer assigned here.
    /// Local replicas and logs of another topic id (an earlier topic of the
    /// same name, deleted while this broker did not follow) are deleted,
    /// never used. A changed config (`overrides`) of a topic already
    /// hosted is applied to its replicas' logs in place. Blocking.
    pub fn host(
        &self,
        topic: &str,
        topic_id: &str,
        total: i32,
        hosted: &BTreeSet<i32>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Vec<Arc<Partition>>, Error> {
        let config = self.log_defaults().with_overrides(overrides)?;
        let held = self.topics.read().get(topic).cloned();
        if held.as_ref().is_none_or(|t| t.spec.id != topic_id) {
            self.drop_local_incarnation(topic, topic_id);
        }
        let existing = self.topics.read().get(topic).cloned();
        let total_usize = total.max(0) as usize;
        let mut partitions: Vec<Option<Arc<Partition>>> = vec![None; total_usize];
        let mut removed = Vec::new();
        if let Some(t) = &existing {
            for p in t.hosted() {
                let i = p.id as usize;
                if i < total_usize && hosted.contains(&p.id) {
                    partitions[i] = Some(Arc::clone(p));
                } else {
                    removed.push(Arc::clone(p));
                }
            }
        }
        let unchanged = existing.as_ref().is_some_and(|t| {
            removed.is_empty()
                && t.partitions.len() == total_usize
                && hosted
                    .iter()
                    .all(|id| partitions.get(*id as usize).is_some_and(Option::is_some))
        });
        if unchanged {
            let hosted: Vec<Arc<Partition>> = partitions.into_iter().flatten().collect();
            if let Some(t) = existing.filter(|t| &t.spec.config != overrides) {
                // A config change of a topic already hosted: applied live.
                for p in &hosted {
                    p.set_config(config.clone());
                }
                let mut spec = t.spec.clone();
                spec.config = overrides.clone();
                self.topics.write().insert(
                    topic.to_owned(),
                    Arc::new(Topic {
                        spec,
                        config,
                        partitions: t.partitions.clone(),
                    }),
                );
                info!(
                    topic,
                    ?overrides,
                    "topic config changed: applied to the local replicas"
                );
            }
            return Ok(hosted);
        }
        if existing
            .as_ref()
            .is_some_and(|t| &t.spec.config != overrides)
        {
            for p in partitions.iter().flatten() {
                p.set_config(config.clone());
            }
        }
        let name: Arc<str> = Arc::from(topic);
        for &id in hosted {
            let Some(slot) = partitions.get_mut(id as usize) else {
                continue;
            };
            if slot.is_none() {
                let dir = self.store.partition_dir(topic, id);
                self.remove_if_other_topic(topic, topic_id, id);
                let log = open_partition_log(&dir, topic, topic_id, id, &config)?;
                *slot = Some(Arc::new(super::new_partition(
                    &self.high_watermarks,
                    Arc::clone(&name),
                    id,
                    log,
                    &self.metrics,
                    &self.isr_due,
                )?));
            }
        }
        let spec = TopicSpec {
            name: topic.to_owned(),
            id: topic_id.to_owned(),
            partitions: total,
            replication_factor: 0,
            config: overrides.clone(),
            created_ms: now_ms(),
        };
        let out = partitions.iter().flatten().cloned().collect();
        self.topics.write().insert(
            topic.to_owned(),
            Arc::new(Topic {
                spec,
                config,
                partitions,
            }),
        );
        for p in removed {
            p.mark_deleted();
            let dir = self.store.partition_dir(topic, p.id);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                warn!(topic, partition = p.id, error = %e, "could not delete a replica no longer assigned here");
            }
            info!(topic, partition = p.id, "replica removed from this broker");
        }
        Ok(out)
    }

    /// Deletes partition directory `partition` of `topic` when it holds a
    /// log of another topic id than `topic_id`. Blocking.
    fn remove_if_other_topic(&self, topic: &str, topic_id: &str, partition: i32) {
        let dir = self.store.partition_dir(topic, partition);
        match belongs_to_other_topic(&dir, topic_id) {
            Ok(false) => {}
            Ok(true) => match std::fs::remove_dir_all(&dir) {
                Ok(()) => info!(
                    topic,
                    partition,
                    id = topic_id,
                    "deleted a local log of an earlier topic with the same name"
                ),
                Err(e) => {
                    warn!(topic, partition, error = %e, "could not delete a local log of an earlier topic with the same name")
                }
            },
            Err(e) => {
                warn!(topic, partition, error = %e, "cannot read the topic id of a local log")
            }
        }
    }

    /// Cluster mode: removes every local replica and log of `topic` whose
    /// topic id is not `current` (an earlier topic of the same name): the
    /// in-memory replicas if they belong to another id, and every partition
    /// directory recording another id. Data of `current` is never touched.
    /// Blocking.
    pub fn drop_local_incarnation(&self, topic: &str, current: &str) {
        let stale = {
            let mut topics = self.topics.write();
            match topics.get(topic) {
                Some(t) if t.spec.id != current => topics.remove(topic),
                _ => None,
            }
        };
        if let Some(t) = &stale {
            for p in t.hosted() {
                p.mark_deleted();
            }
            self.metrics.remove_topic(topic, t.spec.partitions);
            self.roles_changed();
            info!(topic, old = %t.spec.id, new = current, "dropping the replicas of an earlier topic with the same name");
        }
        let Ok(entries) = std::fs::read_dir(self.store.topic_dir(topic)) else {
            return;
        };
        for entry in entries.flatten() {
            if let Some(partition) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            {
                self.remove_if_other_topic(topic, current, partition);
            }
        }
    }

    /// Cluster mode: removes a topic the controller no longer has, with its
    /// local data. Blocking.
    pub fn drop_local_topic(&self, name: &str) {
        let topic = self.topics.write().remove(name);
        if let Some(t) = &topic {
            for p in t.hosted() {
                p.mark_deleted();
            }
            self.metrics.remove_topic(name, t.spec.partitions);
            self.roles_changed();
        }
        let dir = self.store.topic_dir(name);
        if dir.exists() {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => info!(
                    topic = name,
                    "deleted local data of a topic the controller no longer has"
                ),
                Err(e) => warn!(topic = name, error = %e, "could not delete local topic data"),
            }
        }
    }

    /// Names of topics with data or replicas on this broker.
    pub fn local_topics(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.topics.read().keys().cloned().collect();
        if let Some(root) = self.store.topic_dir("x").parent() {
            if let Ok(entries) = std::fs::read_dir(root) {
                names.extend(
                    entries
                        .flatten()
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
            }
        }
        names
    }
}
