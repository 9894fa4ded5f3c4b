//! Topic administration of [`ReplicaManager`]: create, delete and grow
//! topics, and check a create request without creating anything.
//!
//! Standalone, the broker does it itself: one admin lock serialises the
//! requests, and each persists through the
//! [`TopicStore`](crate::partition::store::TopicStore) before changing the
//! in-memory map, so a restart sees exactly the acknowledged topics. In a
//! cluster the request goes to the controller through [`TopicAdmin`] and
//! this waits until the controller's metadata shows its effect.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rill_proto::controller as ctl;
use rill_proto::topic::MAX_PARTITIONS_PER_TOPIC;
use tracing::{info, warn};

use super::topology::standalone_view;
use super::{
    ReplicaManager, Topic, TopicView, new_topic_id, now_ms, open_partition_log, open_topic,
};
use crate::partition::Error;
use crate::partition::store::{TopicSpec, validate_topic_name};

/// Where topic create/delete go in a cluster: the controller.
#[tonic::async_trait]
pub trait TopicAdmin: Send + Sync + std::fmt::Debug {
    async fn create(&self, request: CreateTopic) -> Result<(), Error>;
    /// Deletes topic `name`; with `id`, only if it still has that id.
    async fn delete(&self, name: &str, id: Option<&str>) -> Result<(), Error>;
    /// Grows a topic to `total` partitions.
    async fn create_partitions(&self, name: &str, total: i32) -> Result<(), Error>;
    /// Replaces the config of topic `name` (every key) on behalf of a
    /// Kafka client; with `validate_only` nothing changes.
    async fn alter_config(
        &self,
        name: &str,
        config: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), Error>;
    /// Sets or cancels partitions' target replicas; one outcome per
    /// request, in order (`error` empty on success, else `REASON: text`).
    async fn alter_reassignments(
        &self,
        reassignments: Vec<ctl::Reassignment>,
    ) -> Result<Vec<ctl::PartitionResult>, Error>;
    /// The replica moves in flight among `partitions` (all when empty).
    async fn list_reassignments(
        &self,
        partitions: Vec<ctl::TopicPartition>,
    ) -> Result<Vec<ctl::OngoingReassignment>, Error>;
    /// Preferred-leader elections for `partitions` (when empty: every
    /// partition whose preferred replica does not lead).
    async fn elect_preferred_leaders(
        &self,
        partitions: Vec<ctl::TopicPartition>,
    ) -> Result<Vec<ctl::PartitionResult>, Error>;
}

/// A topic create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopic {
    pub name: String,
    pub partitions: i32,
    /// 0 or -1 mean the broker's `--default-replication-factor`.
    pub replication_factor: i32,
    pub config: BTreeMap<String, String>,
}

impl ReplicaManager {
    /// Checks a topic create request without creating anything (Kafka's
    /// `validate_only`): name, partition count, config, replication factor
    /// against the brokers available, and that the topic does not exist.
    pub fn validate_create_topic(&self, request: &CreateTopic) -> Result<(), Error> {
        validate_topic_name(&request.name)?;
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&request.partitions) {
            return Err(Error::InvalidPartitions {
                requested: request.partitions,
                max: MAX_PARTITIONS_PER_TOPIC,
            });
        }
        self.log_defaults().with_overrides(&request.config)?;
        self.topology.read().check_new_topic(
            &request.name,
            self.replication_factor_or_default(request.replication_factor),
            &self.topics,
        )
    }

    /// `replication_factor`, or the broker's default for 0 and -1.
    pub fn replication_factor_or_default(&self, replication_factor: i32) -> i32 {
        if replication_factor <= 0 {
            self.settings.default_replication_factor
        } else {
            replication_factor
        }
    }

    /// Grows a topic to `total` partitions (never shrinks). In a cluster
    /// the controller places the new partitions and this waits until the
    /// metadata shows them; a standalone broker persists the new count and
    /// opens the new logs. With `validate_only` nothing changes.
    pub async fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), Error> {
        validate_topic_name(name)?;
        let current = self
            .metadata(&[name.to_owned()])?
            .first()
            .map_or(0, |t| t.partitions.len() as i32);
        let current = self
            .topology
            .read()
            .cluster_partitions(name)
            .unwrap_or(current);
        if total <= current {
            return Err(Error::PartitionCountNotIncreased {
                topic: name.to_owned(),
                current,
                requested: total,
            });
        }
        if total > MAX_PARTITIONS_PER_TOPIC {
            return Err(Error::InvalidPartitions {
                requested: total,
                max: MAX_PARTITIONS_PER_TOPIC,
            });
        }
        if validate_only {
            return Ok(());
        }
        if let Some(admin) = self.admin_remote.get() {
            admin.create_partitions(name, total).await?;
            return self.await_partitions(name, total).await;
        }
        let _admin = self.admin.lock().await;
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let old = self.topic(name)?;
        if total <= old.spec.partitions {
            return Err(Error::PartitionCountNotIncreased {
                topic: name.to_owned(),
                current: old.spec.partitions,
                requested: total,
            });
        }
        let mut spec = old.spec.clone();
        spec.partitions = total;
        let store = self.store.clone();
        let config = old.config.clone();
        let metrics = Arc::clone(&self.metrics);
        let isr_due = Arc::clone(&self.isr_due);
        let high_watermarks = Arc::clone(&self.high_watermarks);
        let first_new = old.spec.partitions;
        let opened = tokio::task::spawn_blocking(move || {
            // The spec is the commit point: partitions it lists but that have
            // no directory yet are created empty on the next open.
            store.save(&spec)?;
            let name: Arc<str> = Arc::from(spec.name.as_str());
            let mut opened = Vec::new();
            for id in first_new..spec.partitions {
                let dir = store.partition_dir(&spec.name, id);
                let log = open_partition_log(&dir, &spec.name, &spec.id, id, &config)?;
                opened.push(Some(Arc::new(super::new_partition(
                    &high_watermarks,
                    Arc::clone(&name),
                    id,
                    log,
                    &metrics,
                    &isr_due,
                )?)));
            }
            Ok::<_, Error>((spec, opened))
        })
        .await
        .map_err(|e| Error::InvalidRequest(format!("partition creation task failed: {e}")))??;
        let (spec, opened) = opened;
        let mut partitions = old.partitions.clone();
        partitions.extend(opened);
        info!(topic = name, partitions = total, "partitions added");
        self.topics.write().insert(
            name.to_owned(),
            Arc::new(Topic {
                spec,
                config: old.config.clone(),
                partitions,
            }),
        );
        Ok(())
    }

    /// Replaces the config of topic `name` by `config` (every override; a
    /// key left out goes back to the broker default). In a cluster the
    /// controller decides (its store may refuse: POLICY_VIOLATION) and this
    /// waits until the metadata shows the new config; a standalone broker
    /// persists the new spec and applies it to its logs. With
    /// `validate_only` nothing changes.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        config: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), Error> {
        validate_topic_name(name)?;
        // Unknown topic first, as Kafka answers.
        self.metadata(&[name.to_owned()])?;
        let effective = self.log_defaults().with_overrides(&config)?;
        if let Some(admin) = self.admin_remote.get() {
            admin
                .alter_config(name, config.clone(), validate_only)
                .await?;
            if validate_only {
                return Ok(());
            }
            return self.await_config(name, &config).await;
        }
        if validate_only {
            return Ok(());
        }
        let _admin = self.admin.lock().await;
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let old = self.topic(name)?;
        let mut spec = old.spec.clone();
        spec.config = config;
        let store = self.store.clone();
        let saved = spec.clone();
        tokio::task::spawn_blocking(move || store.save(&saved))
            .await
            .map_err(|e| Error::InvalidRequest(format!("topic config task failed: {e}")))??;
        for p in old.hosted() {
            p.set_config(effective.clone());
        }
        info!(topic = name, config = ?spec.config, "topic config changed");
        self.topics.write().insert(
            name.to_owned(),
            Arc::new(Topic {
                spec,
                config: effective,
                partitions: old.partitions.clone(),
            }),
        );
        Ok(())
    }

    /// Waits (bounded) until the metadata shows `config` for a topic
    /// changed through the controller.
    async fn await_config(
        &self,
        name: &str,
        config: &BTreeMap<String, String>,
    ) -> Result<(), Error> {
        const CONFIG_VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);
        let wanted = rill_proto::topic::normalize_config(config);
        let deadline = tokio::time::Instant::now() + CONFIG_VISIBLE_TIMEOUT;
        loop {
            let changed = self.topology_changed.notified();
            let visible = self
                .metadata(&[name.to_owned()])
                .ok()
                .and_then(|v| v.into_iter().next())
                .map(|v| rill_proto::topic::normalize_config(&v.overrides));
            if visible.as_ref() == Some(&wanted) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(Error::Controller(format!(
                    "the config of topic {name:?} was changed but the metadata did not show it within {CONFIG_VISIBLE_TIMEOUT:?}"
                )));
            }
        }
    }

    /// Waits (bounded) until the metadata shows `total` partitions of a
    /// topic grown through the controller.
    async fn await_partitions(&self, name: &str, total: i32) -> Result<(), Error> {
        const PARTITIONS_VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);
        let deadline = tokio::time::Instant::now() + PARTITIONS_VISIBLE_TIMEOUT;
        loop {
            let changed = self.topology_changed.notified();
            let visible = self.topology.read().cluster_partitions(name);
            if visible.is_some_and(|n| n >= total) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(Error::Controller(format!(
                    "topic {name:?} was grown to {total} partitions but the metadata did not show them within {PARTITIONS_VISIBLE_TIMEOUT:?}"
                )));
            }
        }
    }

    /// Whether this broker is a member of a cluster (has a controller).
    pub fn in_cluster(&self) -> bool {
        self.admin_remote.get().is_some()
    }

    /// Creates a topic: validates everything, persists its spec, opens its
    /// partition logs. In a cluster the controller creates it (placing its
    /// replicas) and this waits until the metadata shows it.
    pub async fn create_topic(&self, mut request: CreateTopic) -> Result<TopicView, Error> {
        request.replication_factor = self.replication_factor_or_default(request.replication_factor);
        validate_topic_name(&request.name)?;
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&request.partitions) {
            return Err(Error::InvalidPartitions {
                requested: request.partitions,
                max: MAX_PARTITIONS_PER_TOPIC,
            });
        }
        if let Some(admin) = self.admin_remote.get() {
            self.log_defaults().with_overrides(&request.config)?;
            let name = request.name.clone();
            admin.create(request).await?;
            return self.await_topic(&name).await;
        }
        let replication_factor = match request.replication_factor {
            1 => 1,
            n => return Err(Error::InvalidReplicationFactor(n)),
        };
        // Validates every key and value; the error names the bad one.
        self.log_defaults().with_overrides(&request.config)?;

        let _admin = self.admin.lock().await;
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        if self.topics.read().contains_key(&request.name) {
            return Err(Error::TopicExists(request.name));
        }
        let spec = TopicSpec {
            name: request.name,
            id: new_topic_id(),
            partitions: request.partitions,
            replication_factor,
            config: request.config,
            created_ms: now_ms(),
        };
        let store = self.store.clone();
        let defaults = self.log_defaults();
        let metrics = Arc::clone(&self.metrics);
        let isr_due = Arc::clone(&self.isr_due);
        let high_watermarks = Arc::clone(&self.high_watermarks);
        let topic = tokio::task::spawn_blocking(move || {
            store.save(&spec)?;
            match open_topic(
                &store,
                &defaults,
                spec.clone(),
                &high_watermarks,
                &metrics,
                &isr_due,
            ) {
                Ok(topic) => Ok(topic),
                Err(e) => {
                    // Do not leave a half-created topic behind to be loaded
                    // at the next start.
                    if let Err(cleanup) = store.delete(&spec.name, now_ms()) {
                        warn!(topic = %spec.name, error = %cleanup, "could not remove a topic whose creation failed");
                    }
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| Error::InvalidRequest(format!("topic creation task failed: {e}")))??;
        let topic = Arc::new(topic);
        info!(topic = %topic.spec.name, partitions = topic.spec.partitions, config = ?topic.spec.config, "topic created");
        self.topics
            .write()
            .insert(topic.spec.name.clone(), Arc::clone(&topic));
        self.roles_changed();
        Ok(standalone_view(&topic, self.settings.broker.id))
    }

    /// Deletes a topic and all its data. Producers and long polls on it
    /// fail with "topic deleted".
    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        self.delete_topic_with_id(name, None).await
    }

    /// Deletes topic `name`; with `id`, only the topic of that id (a topic
    /// of the same name with another id is [`Error::UnknownTopic`] and is
    /// not touched).
    pub async fn delete_topic_with_id(&self, name: &str, id: Option<&str>) -> Result<(), Error> {
        if let Some(admin) = self.admin_remote.get() {
            return admin.delete(name, id).await;
        }
        let _admin = self.admin.lock().await;
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let topic = {
            let mut topics = self.topics.write();
            match topics.get(name) {
                Some(t) if id.is_none_or(|id| id == t.spec.id) => topics.remove(name),
                _ => None,
            }
        }
        .ok_or_else(|| Error::UnknownTopic(name.to_owned()))?;
        for p in topic.hosted() {
            p.mark_deleted();
        }
        self.roles_changed();
        let store = self.store.clone();
        let owned = name.to_owned();
        let result = tokio::task::spawn_blocking(move || store.delete(&owned, now_ms()))
            .await
            .map_err(|e| Error::InvalidRequest(format!("topic deletion task failed: {e}")))?;
        self.metrics.remove_topic(name, topic.spec.partitions);
        match result {
            Ok(()) => {
                info!(topic = name, "topic deleted");
                Ok(())
            }
            Err(e) => {
                warn!(topic = name, error = %e, "topic delete failed part-way; it is gone from this broker and a restart finishes removing its data");
                Err(e.into())
            }
        }
    }

    /// Cluster mode: topic create/delete go to `admin` (the controller).
    pub fn set_topic_admin(&self, admin: Arc<dyn TopicAdmin>) {
        let _ = self.admin_remote.set(admin);
    }

    /// The controller, in a cluster: where replica moves and leader
    /// elections are asked for. `None` for a standalone broker.
    pub fn topic_admin(&self) -> Option<Arc<dyn TopicAdmin>> {
        self.admin_remote.get().cloned()
    }

    /// Waits (bounded) until a topic created through the controller shows
    /// up in the metadata.
    async fn await_topic(&self, name: &str) -> Result<TopicView, Error> {
        const TOPIC_VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);
        let deadline = tokio::time::Instant::now() + TOPIC_VISIBLE_TIMEOUT;
        loop {
            let changed = self.topology_changed.notified();
            if let Ok(mut views) = self.metadata(&[name.to_owned()]) {
                return Ok(views.remove(0));
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(Error::Controller(format!(
                    "topic {name:?} was created but did not appear in the metadata within {TOPIC_VISIBLE_TIMEOUT:?}"
                )));
            }
        }
    }
}
