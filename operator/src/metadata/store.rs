//! [`KubeStore`]: the metadata controller's durable state in Kubernetes.
//!
//! Where each piece lives:
//!
//! | state | object | written with |
//! |-------|--------|--------------|
//! | controller epoch, broker registrations | ConfigMap `<cluster>-controller` (key `state.json`), owned by the StreamCluster | merge patch carrying the read resourceVersion |
//! | replicas, leader, ISR, epochs, replicas being added and removed per partition | `Topic` `status.partitions` (+ `status.controllerEpoch`, `status.reassigningPartitions`) | merge patch carrying the read resourceVersion |
//!
//! Every write is a compare-and-swap: it names the resourceVersion it was
//! computed from, and the API server refuses it (409) if the object changed
//! in between. A refused write is recomputed from a fresh read and retried,
//! so concurrent writers (the Topic reconciler writing conditions, a user
//! editing labels) never lose each other's fields.
//!
//! Fencing a deposed controller: [`MetadataStore::claim`] bumps the epoch in
//! the ConfigMap (CAS), then stamps every placed Topic with the new epoch
//! (CAS) and loads it from the version it stamped. A write by an older
//! controller after that either finds the ConfigMap epoch moved (broker
//! changes, and the check at the start of every persist) or the Topic
//! stamped by a newer epoch: both end in [`StoreError::Superseded`].
//!
//! Topics created through the controller (Kafka `CreateTopics`) get a
//! Topic resource, so GitOps users see every topic; deleting a topic
//! through the controller deletes its Topic resource (its finalizer then
//! finds the data already gone). Topic configuration is read from the
//! Topic spec at claim and pushed by the Topic reconciler afterwards
//! (origin Resource); a change from Kafka follows the StreamCluster's
//! `spec.topicPolicy.configChanges` ([`MetadataStore::admit_topic_config`]):
//! refused with a message naming the Topic, or written into its
//! `spec.config` first. The store never writes config anywhere else.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rill_controller::{
    BrokerRegistration, Change, ClusterMetadata, ConfigOrigin, MetadataStore, NO_LEADER,
    PartitionState, StoreError, TopicState,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{debug, info};

use crate::crd::{ConfigChanges, PartitionStatus, StreamCluster, Topic, TopicConfig, TopicSpec};
use crate::stream_cluster::build::{labels, owner_reference};
use crate::topic::build;
use rill_proto::topic::normalize_value;

/// Key of the state document in the ConfigMap.
pub const STATE_KEY: &str = "state.json";

/// Attempts of one compare-and-swap before giving up (each after a fresh
/// read); conflicts beyond this mean a hot object and fail the persist,
/// which the controller retries.
const CAS_ATTEMPTS: usize = 16;

/// Pause between conflicting attempts.
const CAS_PAUSE: Duration = Duration::from_millis(20);

/// Name of the ConfigMap holding a cluster's controller state.
pub fn state_config_map(cluster: &str) -> String {
    format!("{cluster}-controller")
}

/// What the ConfigMap holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ControllerRecord {
    controller_epoch: i64,
    brokers: Vec<BrokerRegistration>,
    /// Kafka ACLs (CreateAcls, DeleteAcls through any broker).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    acls: Vec<rill_proto::acl::Acl>,
    /// Kafka client quotas (AlterClientQuotas through any broker).
    #[serde(
        default,
        skip_serializing_if = "rill_proto::quota::ClientQuotas::is_empty"
    )]
    client_quotas: rill_proto::quota::ClientQuotas,
}

/// The metadata store of one StreamCluster.
#[derive(Clone)]
pub struct KubeStore {
    client: Client,
    namespace: String,
    cluster: String,
}

impl std::fmt::Debug for KubeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeStore")
            .field("namespace", &self.namespace)
            .field("cluster", &self.cluster)
            .finish()
    }
}

fn backend(what: impl std::fmt::Display, e: kube::Error) -> StoreError {
    StoreError::Backend(format!("{what}: {e}"))
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

/// The Kubernetes object name for a topic created through the controller:
/// the Kafka name when it is a valid object name, else a cleaned-up form
/// with a short hash (the exact name goes to `spec.topicName`).
pub fn resource_name_for(topic: &str) -> String {
    let valid = topic.len() <= 253
        && topic
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && topic
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && topic
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if valid {
        return topic.to_owned();
    }
    let cleaned: String = topic
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    let cleaned = cleaned.trim_matches(|c| c == '-' || c == '.');
    let cleaned = &cleaned[..cleaned.len().min(200)];
    let hash = crc32c::crc32c(topic.as_bytes());
    if cleaned.is_empty() {
        format!("topic-{hash:08x}")
    } else {
        format!("{cleaned}-{hash:08x}")
    }
}

fn to_status(p: &PartitionState, index: usize) -> PartitionStatus {
    PartitionStatus {
        partition: index as i32,
        leader: (p.leader != NO_LEADER).then_some(p.leader),
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        removing_replicas: p.removing.clone(),
        adding_replicas: p.adding.clone(),
    }
}

fn from_status(p: &PartitionStatus) -> PartitionState {
    PartitionState {
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        leader: p.leader.unwrap_or(NO_LEADER),
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        removing: p.removing_replicas.clone(),
        adding: p.adding_replicas.clone(),
    }
}

/// The `spec.config` of a Topic resource that holds Kafka config
/// `config`: the typed fields, and `other` for the rest. Values are put
/// in canonical form first; the error says what a Topic cannot express.
fn spec_config(config: &BTreeMap<String, String>) -> Result<TopicConfig, String> {
    let mut typed = serde_json::Map::new();
    let mut other = serde_json::Map::new();
    for (key, value) in config {
        let value = normalize_value(key, value);
        let number = |v: &str| v.parse::<i64>().ok().map(serde_json::Value::from);
        match key.as_str() {
            "retention.ms" => typed.insert("retentionMs".into(), number(&value).into()),
            "retention.bytes" => typed.insert("retentionBytes".into(), number(&value).into()),
            "cleanup.policy" => typed.insert("cleanupPolicy".into(), value.into()),
            "min.insync.replicas" => {
                typed.insert("minInsyncReplicas".into(), number(&value).into())
            }
            "segment.bytes" => typed.insert("segmentBytes".into(), number(&value).into()),
            "flush" => typed.insert("flush".into(), value.into()),
            _ => other.insert(key.clone(), value.into()),
        };
    }
    if !other.is_empty() {
        typed.insert("other".into(), other.into());
    }
    serde_json::from_value(typed.into()).map_err(|e| e.to_string())
}

/// A merge patch that makes a Topic's `spec.config` exactly `wanted`:
/// typed fields and `other` keys it does not set are removed (null).
fn config_patch(wanted: &TopicConfig, current: Option<&TopicConfig>) -> serde_json::Value {
    let mut patch = json!({
        "retentionMs": wanted.retention_ms,
        "retentionBytes": wanted.retention_bytes,
        "cleanupPolicy": wanted.cleanup_policy,
        "minInsyncReplicas": wanted.min_insync_replicas,
        "segmentBytes": wanted.segment_bytes,
        "flush": wanted.flush,
    });
    let mut other = serde_json::Map::new();
    for key in current.map(|c| c.other.keys()).into_iter().flatten() {
        other.insert(key.clone(), serde_json::Value::Null);
    }
    for (key, value) in &wanted.other {
        other.insert(key.clone(), value.clone().into());
    }
    if !other.is_empty() {
        patch["other"] = other.into();
    }
    patch
}

/// A Topic spec for a topic created through the controller.
fn spec_for(cluster: &str, t: &TopicState) -> Result<TopicSpec, StoreError> {
    let replication_factor = t.partitions.first().map_or(1, |p| p.replicas.len() as i32);
    let config = spec_config(&t.config).map_err(|e| {
        StoreError::Backend(format!(
            "topic {:?} cannot be expressed as a Topic resource: {e}",
            t.name
        ))
    })?;
    let mut spec = json!({
        "clusterRef": {"name": cluster},
        "partitions": t.partitions.len(),
        "replicationFactor": replication_factor,
    });
    if resource_name_for(&t.name) != t.name {
        spec["topicName"] = t.name.clone().into();
    }
    if !t.config.is_empty() {
        spec["config"] = serde_json::to_value(&config).expect("config serializes");
    }
    serde_json::from_value(spec).map_err(|e| {
        StoreError::Backend(format!(
            "topic {:?} cannot be expressed as a Topic resource: {e}",
            t.name
        ))
    })
}

/// Among `topics` (one cluster's, oldest first), the one that holds Kafka
/// topic `name`: see [`KubeStore::find_topic`].
fn choose_topic<'a>(topics: &'a [Topic], name: &str) -> Option<&'a Topic> {
    let mut candidates = topics
        .iter()
        .filter(|t| t.effective_topic_name() == name)
        .filter(|t| t.metadata.deletion_timestamp.is_none())
        .peekable();
    let first = candidates.peek().copied();
    candidates
        .find(|t| t.status.as_ref().is_some_and(|s| !s.partitions.is_empty()))
        .or(first)
}

impl KubeStore {
    /// The store of StreamCluster `namespace/cluster`.
    pub fn new(client: Client, namespace: &str, cluster: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_owned(),
            cluster: cluster.to_owned(),
        }
    }

    fn config_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn topics(&self) -> Api<Topic> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn parse(&self, cm: &ConfigMap) -> Result<ControllerRecord, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            path: format!(
                "ConfigMap {}/{} key {STATE_KEY}",
                self.namespace,
                cm.name_any()
            ),
            reason,
        };
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(STATE_KEY))
            .ok_or_else(|| corrupt("the key is missing".into()))?;
        serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))
    }

    fn state_object(&self, record: &ControllerRecord, owner: Option<&StreamCluster>) -> ConfigMap {
        let mut labels = BTreeMap::new();
        labels.insert(labels::PART_OF.to_owned(), "rill".to_owned());
        labels.insert(labels::COMPONENT.to_owned(), "controller".to_owned());
        labels.insert(labels::CLUSTER.to_owned(), self.cluster.clone());
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(state_config_map(&self.cluster)),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                owner_references: owner.and_then(owner_reference).map(|r| vec![r]),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                STATE_KEY.to_owned(),
                serde_json::to_string_pretty(record).expect("record serializes"),
            )])),
            ..ConfigMap::default()
        }
    }

    /// Compare-and-swap on the state ConfigMap: `update` sees the current
    /// record (default when the ConfigMap does not exist) and returns the
    /// new one, or an error that ends the loop.
    async fn update_record(
        &self,
        mut update: impl FnMut(ControllerRecord) -> Result<ControllerRecord, StoreError>,
    ) -> Result<ControllerRecord, StoreError> {
        let api = self.config_maps();
        let name = state_config_map(&self.cluster);
        for _ in 0..CAS_ATTEMPTS {
            let current = api
                .get_opt(&name)
                .await
                .map_err(|e| backend("reading the controller state", e))?;
            let result = match &current {
                Some(cm) => {
                    let next = update(self.parse(cm)?)?;
                    let patch = json!({
                        "metadata": {"resourceVersion": cm.resource_version()},
                        "data": {STATE_KEY: serde_json::to_string_pretty(&next).expect("record serializes")},
                    });
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| next)
                }
                None => {
                    let next = update(ControllerRecord::default())?;
                    let clusters: Api<StreamCluster> =
                        Api::namespaced(self.client.clone(), &self.namespace);
                    let owner = clusters
                        .get_opt(&self.cluster)
                        .await
                        .map_err(|e| backend("reading the StreamCluster", e))?;
                    let object = self.state_object(&next, owner.as_ref());
                    api.create(&PostParams::default(), &object)
                        .await
                        .map(|_| next)
                }
            };
            match result {
                Ok(next) => return Ok(next),
                Err(e) if is_conflict(&e) => {
                    debug!(configmap = %name, "controller state changed meanwhile; retrying from a fresh read");
                    tokio::time::sleep(CAS_PAUSE).await;
                }
                Err(e) => return Err(backend("writing the controller state", e)),
            }
        }
        Err(StoreError::Backend(format!(
            "ConfigMap {name} kept changing: {CAS_ATTEMPTS} compare-and-swap attempts conflicted"
        )))
    }

    /// Topic resources of this cluster, oldest first.
    async fn cluster_topics(&self) -> Result<Vec<Topic>, StoreError> {
        let mut topics: Vec<Topic> = self
            .topics()
            .list(&ListParams::default())
            .await
            .map_err(|e| backend("listing Topics", e))?
            .items
            .into_iter()
            .filter(|t| t.spec.cluster_ref.name == self.cluster)
            .collect();
        topics.sort_by(|a, b| {
            (a.creation_timestamp(), a.name_any()).cmp(&(b.creation_timestamp(), b.name_any()))
        });
        Ok(topics)
    }

    /// The Topic resource that holds Kafka topic `name`: the placed one, else
    /// the oldest (the one that wins a name conflict). A resource being
    /// deleted (deletionTimestamp set) is never chosen: it belongs to the
    /// topic it was placed for (its `status.topicId`), which its finalizer
    /// deletes, and a topic created again under the same name must not
    /// write its status into it.
    async fn find_topic(&self, name: &str) -> Result<Option<Topic>, StoreError> {
        Ok(choose_topic(&self.cluster_topics().await?, name).cloned())
    }

    /// Compare-and-swap on one Topic's controller-owned status fields.
    /// `update` gets the current partitions and returns the new ones; with
    /// `topic_id`, the topic id is written too, and a resource that records
    /// another topic id (another topic of the same name) is refused.
    ///
    /// `read`, when given, is a version of the resource read moments ago
    /// (the list a persist starts from): the first attempt uses it instead
    /// of reading again, and a conflict sends it back to a fresh read.
    async fn update_topic(
        &self,
        resource: &str,
        ours: i64,
        topic_id: Option<&str>,
        mut read: Option<Topic>,
        mut update: impl FnMut(&[PartitionStatus]) -> Result<Vec<PartitionStatus>, StoreError>,
    ) -> Result<Option<Topic>, StoreError> {
        let api = self.topics();
        for _ in 0..CAS_ATTEMPTS {
            let topic = match read.take() {
                Some(topic) => topic,
                None => match api
                    .get_opt(resource)
                    .await
                    .map_err(|e| backend(format!("reading Topic {resource}"), e))?
                {
                    Some(topic) => topic,
                    None => return Ok(None),
                },
            };
            let status = topic.status.clone().unwrap_or_default();
            if let Some(current) = status.controller_epoch
                && current > ours
            {
                return Err(StoreError::Superseded { ours, current });
            }
            if let (Some(ours_id), Some(theirs)) = (topic_id, status.topic_id.as_deref())
                && ours_id != theirs
            {
                return Err(StoreError::Backend(format!(
                    "Topic {resource} holds topic id {theirs}, not {ours_id}: it belongs to another topic of the same name"
                )));
            }
            let partitions = update(&status.partitions)?;
            let reassigning = partitions
                .iter()
                .filter(|p| !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty())
                .count();
            let mut patch = json!({
                "metadata": {"resourceVersion": topic.resource_version()},
                "status": {
                    "partitions": partitions,
                    "controllerEpoch": ours,
                    "reassigningPartitions": reassigning,
                },
            });
            if let Some(id) = topic_id {
                patch["status"]["topicId"] = id.into();
            }
            match api
                .patch_status(resource, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(written) => return Ok(Some(written)),
                Err(e) if is_conflict(&e) => {
                    debug!(
                        topic = resource,
                        "Topic changed meanwhile; retrying from a fresh read"
                    );
                    tokio::time::sleep(CAS_PAUSE).await;
                }
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(backend(format!("writing Topic {resource} status"), e)),
            }
        }
        Err(StoreError::Backend(format!(
            "Topic {resource} kept changing: {CAS_ATTEMPTS} compare-and-swap attempts conflicted"
        )))
    }

    async fn check_epoch(&self, ours: i64) -> Result<(), StoreError> {
        let cm = self
            .config_maps()
            .get_opt(&state_config_map(&self.cluster))
            .await
            .map_err(|e| backend("reading the controller state", e))?;
        let current = match cm {
            Some(cm) => self.parse(&cm)?.controller_epoch,
            None => 0,
        };
        if current != ours {
            return Err(StoreError::Superseded { ours, current });
        }
        Ok(())
    }

    async fn persist_topic(&self, ours: i64, t: &TopicState) -> Result<(), StoreError> {
        let wanted: Vec<PartitionStatus> = t
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| to_status(p, i))
            .collect();
        let resource = match self.find_topic(&t.name).await? {
            Some(existing) => {
                let name = existing.name_any();
                if existing.spec.partitions < wanted.len() as i32 {
                    // Partitions added through the controller: the spec follows.
                    self.topics()
                        .patch(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"spec": {"partitions": wanted.len()}})),
                        )
                        .await
                        .map_err(|e| backend(format!("growing Topic {name}"), e))?;
                }
                name
            }
            None => {
                let name = resource_name_for(&t.name);
                let mut topic = Topic::new(&name, spec_for(&self.cluster, t)?);
                topic.metadata.namespace = Some(self.namespace.clone());
                match self.topics().create(&PostParams::default(), &topic).await {
                    Ok(_) => {
                        info!(topic = %t.name, resource = %name, "created a Topic resource for a topic created through the controller")
                    }
                    Err(e) if is_conflict(&e) => {
                        // Someone else created it meanwhile, or a resource
                        // of that name is still being deleted (the topic was
                        // deleted and created again quickly): that one is
                        // the old topic's and must not take the new status.
                        let existing = self
                            .topics()
                            .get_opt(&name)
                            .await
                            .map_err(|e| backend(format!("reading Topic {name}"), e))?;
                        if existing.is_some_and(|t| t.metadata.deletion_timestamp.is_some()) {
                            return Err(StoreError::Backend(format!(
                                "Topic {name} of an earlier topic {:?} is still being deleted; retry once it is gone",
                                t.name
                            )));
                        }
                    }
                    Err(e) => return Err(backend(format!("creating Topic {name}"), e)),
                }
                name
            }
        };
        self.update_topic(&resource, ours, Some(&t.id), None, |_| Ok(wanted.clone()))
            .await?;
        Ok(())
    }

    /// Writes the changed partitions of `topic` into its Topic's status;
    /// `listed` is this cluster's Topics as listed at the start of the
    /// write (one list per persist, however many topics it writes).
    async fn persist_partitions(
        &self,
        ours: i64,
        topic: &str,
        updates: &BTreeMap<i32, PartitionState>,
        listed: &[Topic],
    ) -> Result<(), StoreError> {
        let Some(existing) = choose_topic(listed, topic) else {
            return Err(StoreError::Backend(format!(
                "no Topic resource holds topic {topic:?}"
            )));
        };
        let resource = existing.name_any();
        let written = self
            .update_topic(&resource, ours, None, Some(existing.clone()), |current| {
                let mut next = current.to_vec();
                for (&partition, state) in updates {
                    let slot = next.get_mut(partition as usize).ok_or_else(|| {
                        StoreError::Backend(format!(
                            "Topic {resource} has no partition {partition} in its status"
                        ))
                    })?;
                    *slot = to_status(state, partition as usize);
                }
                Ok(next)
            })
            .await?;
        if written.is_none() {
            return Err(StoreError::Backend(format!(
                "Topic {resource} disappeared while its partitions changed"
            )));
        }
        Ok(())
    }

    async fn persist_delete(&self, topic: &str) -> Result<(), StoreError> {
        let Some(existing) = self.find_topic(topic).await? else {
            return Ok(());
        };
        if existing.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let name = existing.name_any();
        match self.topics().delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                info!(topic, resource = %name, "deleted the Topic resource of a topic deleted through the controller");
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(backend(format!("deleting Topic {name}"), e)),
        }
    }
}

impl MetadataStore for KubeStore {
    async fn claim(&self) -> Result<ClusterMetadata, StoreError> {
        let record = self
            .update_record(|mut r| {
                r.controller_epoch += 1;
                Ok(r)
            })
            .await?;
        let ours = record.controller_epoch;
        let mut meta = ClusterMetadata {
            controller_epoch: ours,
            brokers: record.brokers.into_iter().map(|b| (b.id, b)).collect(),
            topics: BTreeMap::new(),
            acls: record.acls,
            client_quotas: record.client_quotas,
        };
        let mut seen = BTreeSet::new();
        // A resource being deleted loses to a live one of the same Kafka
        // topic: the live one holds the topic created again since.
        let mut listed = self.cluster_topics().await?;
        listed.sort_by_key(|t| t.metadata.deletion_timestamp.is_some());
        for topic in listed {
            let placed = topic
                .status
                .as_ref()
                .is_some_and(|s| !s.partitions.is_empty());
            let name = topic.effective_topic_name();
            if !placed || seen.contains(&name) {
                continue;
            }
            // Stamp it: from now on an older controller cannot write it.
            let Some(stamped) = self
                .update_topic(&topic.name_any(), ours, None, None, |current| {
                    Ok(current.to_vec())
                })
                .await?
            else {
                continue;
            };
            let status = stamped.status.clone().unwrap_or_default();
            let mut partitions = status.partitions.clone();
            partitions.sort_by_key(|p| p.partition);
            seen.insert(name.clone());
            meta.topics.insert(
                name.clone(),
                TopicState {
                    name,
                    // Empty for a topic placed before topic ids: the
                    // controller gives it one and persists it right after
                    // the claim.
                    id: status.topic_id.clone().unwrap_or_default(),
                    partitions: partitions.iter().map(from_status).collect(),
                    config: build::plan(&stamped).config,
                },
            );
        }
        info!(
            namespace = %self.namespace,
            cluster = %self.cluster,
            controller_epoch = ours,
            brokers = meta.brokers.len(),
            topics = meta.topics.len(),
            "claimed the cluster's metadata in Kubernetes"
        );
        Ok(meta)
    }

    /// Changes from Kafka follow the StreamCluster's
    /// `spec.topicPolicy.configChanges`: Refuse names the Topic resource to
    /// edit instead; WriteToResource writes the change into its
    /// `spec.config` (compare-and-swap on its resourceVersion) before the
    /// controller commits it. The operator's own pushes (origin Resource)
    /// pass.
    async fn admit_topic_config(
        &self,
        topic: &str,
        config: &BTreeMap<String, String>,
        origin: ConfigOrigin,
        validate_only: bool,
    ) -> Result<(), StoreError> {
        if origin == ConfigOrigin::Resource {
            return Ok(());
        }
        let clusters: Api<StreamCluster> = Api::namespaced(self.client.clone(), &self.namespace);
        let rule = clusters
            .get_opt(&self.cluster)
            .await
            .map_err(|e| backend("reading the StreamCluster", e))?
            .map_or(ConfigChanges::Refuse, |sc| {
                sc.spec.topic_policy.config_changes
            });
        let (ns, cluster) = (&self.namespace, &self.cluster);
        for _ in 0..CAS_ATTEMPTS {
            let Some(resource) = self.find_topic(topic).await? else {
                return Err(StoreError::Refused(format!(
                    "no Topic resource in namespace {ns} holds topic {topic:?}; its config can only change through one"
                )));
            };
            let name = resource.name_any();
            if rule == ConfigChanges::Refuse {
                return Err(StoreError::Refused(format!(
                    "topic {topic:?} is managed by Topic {ns}/{name}: change its spec.config instead (StreamCluster {ns}/{cluster} has spec.topicPolicy.configChanges: Refuse)"
                )));
            }
            let wanted = spec_config(config).map_err(|why| {
                StoreError::Refused(format!(
                    "topic {topic:?} is managed by Topic {ns}/{name}, whose spec.config cannot hold this config: {why}"
                ))
            })?;
            if validate_only {
                return Ok(());
            }
            let patch = json!({
                "metadata": {"resourceVersion": resource.resource_version()},
                "spec": {"config": config_patch(&wanted, resource.spec.config.as_ref())},
            });
            match self
                .topics()
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    info!(topic, resource = %name, "wrote a topic config change made through Kafka into the Topic resource");
                    return Ok(());
                }
                Err(e) if is_conflict(&e) => {
                    debug!(topic = %name, "Topic changed meanwhile; retrying from a fresh read");
                    tokio::time::sleep(CAS_PAUSE).await;
                }
                Err(e) => {
                    return Err(backend(
                        format!("writing the config change into Topic {name}"),
                        e,
                    ));
                }
            }
        }
        Err(StoreError::Backend(format!(
            "the Topic of {topic:?} kept changing: {CAS_ATTEMPTS} compare-and-swap attempts conflicted"
        )))
    }

    async fn persist(&self, ours: i64, changes: &[Change]) -> Result<(), StoreError> {
        self.check_epoch(ours).await?;
        let brokers: Vec<&BrokerRegistration> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Broker(b) => Some(b),
                _ => None,
            })
            .collect();
        if !brokers.is_empty() {
            self.update_record(|mut r| {
                if r.controller_epoch != ours {
                    return Err(StoreError::Superseded {
                        ours,
                        current: r.controller_epoch,
                    });
                }
                for b in &brokers {
                    match r.brokers.iter_mut().find(|x| x.id == b.id) {
                        Some(slot) => *slot = (*b).clone(),
                        None => r.brokers.push((*b).clone()),
                    }
                }
                r.brokers.sort_by_key(|b| b.id);
                Ok(r)
            })
            .await?;
        }
        if let Some(acls) = changes.iter().rev().find_map(|c| match c {
            Change::Acls(acls) => Some(acls),
            _ => None,
        }) {
            self.update_record(|mut r| {
                if r.controller_epoch != ours {
                    return Err(StoreError::Superseded {
                        ours,
                        current: r.controller_epoch,
                    });
                }
                r.acls = acls.clone();
                Ok(r)
            })
            .await?;
        }
        if let Some(quotas) = changes.iter().rev().find_map(|c| match c {
            Change::ClientQuotas(q) => Some(q),
            _ => None,
        }) {
            self.update_record(|mut r| {
                if r.controller_epoch != ours {
                    return Err(StoreError::Superseded {
                        ours,
                        current: r.controller_epoch,
                    });
                }
                r.client_quotas = quotas.clone();
                Ok(r)
            })
            .await?;
        }
        // Partition changes are grouped per topic (one write each), in the
        // order their topics first appear; whole-topic changes and
        // deletions are written in place.
        let mut pending: Vec<(String, BTreeMap<i32, PartitionState>)> = Vec::new();
        for change in changes {
            match change {
                Change::Broker(_) | Change::Acls(_) | Change::ClientQuotas(_) => {}
                Change::Partition {
                    topic,
                    partition,
                    state,
                } => match pending.iter_mut().find(|(t, _)| t == topic) {
                    Some((_, m)) => {
                        m.insert(*partition, state.clone());
                    }
                    None => {
                        pending.push((topic.clone(), BTreeMap::from([(*partition, state.clone())])))
                    }
                },
                Change::Topic(t) => {
                    pending.retain(|(name, _)| name != &t.name);
                    self.persist_topic(ours, t).await?;
                }
                Change::DeleteTopic(name) => {
                    pending.retain(|(n, _)| n != name);
                    self.persist_delete(name).await?;
                }
            }
        }
        if !pending.is_empty() {
            // Listed after the topics created above, so it holds them.
            let listed = self.cluster_topics().await?;
            for (topic, updates) in &pending {
                self.persist_partitions(ours, topic, updates, &listed)
                    .await?;
            }
        }
        // A topic created (or deleted) here was not stamped by a newer
        // controller's claim, so the stamp check in `update_topic` cannot
        // fence it. The interleaving that needs this check:
        //
        //   old: check_epoch (E, fine)
        //   new: claim bumps the ConfigMap to E+1, lists Topics (no X yet)
        //   old: creates Topic X and writes its status stamped E
        //
        // Without it the old controller would tell brokers about X, which
        // the new controller does not know (brokers then delete its data).
        // The claim bumps the epoch *before* it lists, and this check reads
        // the epoch *after* the write: either the write came before the
        // bump, so before the list, and the claim saw (and stamped) X; or
        // this read sees the bump and the persist fails as Superseded, so
        // nobody is told about X.
        if changes
            .iter()
            .any(|c| matches!(c, Change::Topic(_) | Change::DeleteTopic(_)))
        {
            self.check_epoch(ours).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_kafka_names_when_naming_resources_then_valid_names_are_kept_and_others_cleaned_and_hashed()
     {
        assert_eq!(resource_name_for("orders.v1"), "orders.v1");
        let upper = resource_name_for("Orders_V1");
        assert!(upper.starts_with("orders-v1-"), "{upper}");
        assert_ne!(
            resource_name_for("a_b"),
            resource_name_for("a-b_"),
            "different topics get different names"
        );
        assert!(resource_name_for("__consumer_offsets").starts_with("consumer-offsets-"));
        assert!(resource_name_for("___").starts_with("topic-"));
    }

    #[test]
    fn given_a_created_topic_when_building_its_spec_then_typed_and_other_config_are_split() {
        let t = TopicState {
            name: "Payments_EU".into(),
            id: String::new(),
            partitions: vec![
                PartitionState {
                    replicas: vec![0, 1, 2],
                    isr: vec![0, 1, 2],
                    leader: 0,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    removing: Vec::new(),
                    adding: Vec::new(),
                };
                3
            ],
            config: BTreeMap::from([
                ("retention.ms".into(), "60000".into()),
                ("cleanup.policy".into(), "compact".into()),
                ("max.message.bytes".into(), "2000000".into()),
            ]),
        };
        let spec = spec_for("events", &t).expect("spec");
        assert_eq!(spec.partitions, 3);
        assert_eq!(spec.replication_factor, 3);
        assert_eq!(spec.topic_name.as_deref(), Some("Payments_EU"));
        let config = spec.config.clone().expect("config");
        assert_eq!(config.retention_ms, Some(60000));
        assert_eq!(
            config.other.get("max.message.bytes").map(String::as_str),
            Some("2000000")
        );
        let mut topic = Topic::new("x", spec);
        topic.metadata.name = Some(resource_name_for(&t.name));
        assert_eq!(
            build::plan(&topic).config,
            t.config,
            "the Topic renders back to the same Kafka config"
        );
    }

    #[test]
    fn given_partition_state_when_round_tripping_through_status_then_it_is_unchanged() {
        let p = PartitionState {
            replicas: vec![2, 0, 1],
            isr: vec![2, 1],
            leader: NO_LEADER,
            leader_epoch: 7,
            partition_epoch: 12,
            removing: Vec::new(),
            adding: Vec::new(),
        };
        let s = to_status(&p, 4);
        assert_eq!(s.partition, 4);
        assert_eq!(s.leader, None);
        assert_eq!(from_status(&s), p);

        // A move in flight survives a controller failover.
        let moving = PartitionState {
            replicas: vec![3, 0, 1, 2],
            isr: vec![0, 1, 2],
            leader: 0,
            removing: vec![2],
            adding: vec![3],
            ..p
        };
        let s = to_status(&moving, 0);
        assert_eq!(
            (s.adding_replicas.clone(), s.removing_replicas.clone()),
            (vec![3], vec![2])
        );
        assert_eq!(from_status(&s), moving);
    }
}

#[cfg(test)]
mod kube_tests {
    //! KubeStore against a scripted API server (`test_support`).
    use http::Method;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::test_support::{TIMEOUT, list, mock_client};
    use crate::topic::fixtures::topic;

    const TOPICS: &str = "/apis/rill.dev/v1alpha1/namespaces/data/topics";
    const STATE: &str = "/api/v1/namespaces/data/configmaps/events-controller";

    fn state(epoch: i64) -> ConfigMap {
        let mut cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("events-controller".into()),
                namespace: Some("data".into()),
                resource_version: Some(format!("{epoch}")),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        cm.data = Some(BTreeMap::from([(
            STATE_KEY.to_owned(),
            serde_json::to_string(&ControllerRecord {
                controller_epoch: epoch,
                brokers: vec![],
                acls: vec![],
                client_quotas: Default::default(),
            })
            .expect("json"),
        )]));
        cm
    }

    fn topic_state(id: &str) -> TopicState {
        TopicState {
            name: "orders".into(),
            id: id.into(),
            partitions: vec![PartitionState {
                replicas: vec![0],
                isr: vec![0],
                leader: 0,
                leader_epoch: 0,
                partition_epoch: 0,
                removing: Vec::new(),
                adding: Vec::new(),
            }],
            config: BTreeMap::new(),
        }
    }

    /// "orders", placed for topic id `id`, being deleted (its finalizer
    /// still pending).
    fn terminating(id: &str) -> Topic {
        let mut t = topic("orders", "2024-01-01T00:00:00Z");
        t.metadata.resource_version = Some("7".into());
        t.metadata.deletion_timestamp =
            Some(Time("2024-06-01T00:00:00Z".parse().expect("timestamp")));
        t.status = Some(crate::crd::TopicStatus {
            partitions: vec![to_status(&topic_state(id).partitions[0], 0)],
            controller_epoch: Some(3),
            topic_id: Some(id.into()),
            ..Default::default()
        });
        t
    }

    #[tokio::test]
    async fn given_client_quotas_when_persisted_then_the_state_config_map_holds_them_for_the_next_controller()
     {
        use rill_proto::quota::{ClientQuotas, EntityName, QuotaAlteration, QuotaEntity, QuotaKey};
        let (client, mut server) = mock_client();
        let store = KubeStore::new(client, "data", "events");
        let mut quotas = ClientQuotas::default();
        quotas.apply(&QuotaAlteration {
            entity: QuotaEntity::client_id(EntityName::Named("app".into())),
            ops: vec![(QuotaKey::ProducerByteRate, Some(1024.0))],
        });
        let change = Change::ClientQuotas(quotas.clone());
        let task = tokio::spawn(async move { store.persist(3, &[change]).await });
        // The epoch check, then the read of the compare-and-swap.
        server.expect(Method::GET, STATE).await.ok(&state(3));
        server.expect(Method::GET, STATE).await.ok(&state(3));
        let patch = server.expect(Method::PATCH, STATE).await;
        let written: ControllerRecord = serde_json::from_str(
            patch.body["data"][STATE_KEY]
                .as_str()
                .expect("the record is a string"),
        )
        .expect("the record parses");
        assert_eq!(written.client_quotas, quotas);
        assert_eq!(written.controller_epoch, 3);
        patch.ok(&state(3));
        tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("persist ends")
            .expect("task")
            .expect("persisted");
    }

    #[tokio::test]
    async fn given_a_terminating_topic_resource_when_the_topic_is_created_again_then_its_status_is_not_written()
     {
        let (client, mut server) = mock_client();
        let store = KubeStore::new(client, "data", "events");
        let old = terminating("id-old");
        let task = tokio::spawn(async move {
            store
                .persist(3, &[Change::Topic(topic_state("id-new"))])
                .await
        });
        server.expect(Method::GET, STATE).await.ok(&state(3));
        server
            .expect(Method::GET, TOPICS)
            .await
            .respond(200, &list("TopicList", std::slice::from_ref(&old)));
        // Not the terminating resource: a new one is created ...
        let create = server.expect(Method::POST, TOPICS).await;
        assert_eq!(create.body["metadata"]["name"], "orders");
        create.respond(
            409,
            &serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "AlreadyExists", "code": 409, "message": "already exists"}),
        );
        // ... and since the name is still taken by the terminating one, the
        // persist fails (the create is retried later) instead of writing.
        server
            .expect(Method::GET, &format!("{TOPICS}/orders"))
            .await
            .ok(&old);
        let result = tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("persist ends")
            .expect("task");
        assert!(
            matches!(result, Err(StoreError::Backend(ref m)) if m.contains("still being deleted")),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn given_a_claim_between_the_check_and_the_create_when_a_deposed_controller_creates_a_topic_then_it_is_superseded()
     {
        // old: check_epoch sees 3; new: claim bumps to 4 and lists Topics
        // before "orders" exists; old: creates "orders" and writes its
        // status. The old controller must not report success.
        let (client, mut server) = mock_client();
        let store = KubeStore::new(client, "data", "events");
        let task = tokio::spawn(async move {
            store
                .persist(3, &[Change::Topic(topic_state("id-new"))])
                .await
        });
        server.expect(Method::GET, STATE).await.ok(&state(3));
        server
            .expect(Method::GET, TOPICS)
            .await
            .respond(200, &list::<Topic>("TopicList", &[]));
        server.expect(Method::POST, TOPICS).await.echo();
        let mut created = topic("orders", "2024-01-01T00:00:00Z");
        created.metadata.resource_version = Some("1".into());
        server
            .expect(Method::GET, &format!("{TOPICS}/orders"))
            .await
            .ok(&created);
        let status = server
            .expect(Method::PATCH, &format!("{TOPICS}/orders/status"))
            .await;
        assert_eq!(status.body["status"]["topicId"], "id-new");
        status.ok(&created);
        // The claim of epoch 4 happened meanwhile.
        server.expect(Method::GET, STATE).await.ok(&state(4));
        let result = tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("persist ends")
            .expect("task");
        assert!(
            matches!(
                result,
                Err(StoreError::Superseded {
                    ours: 3,
                    current: 4
                })
            ),
            "{result:?}"
        );
    }

    const CLUSTER: &str = "/apis/rill.dev/v1alpha1/namespaces/data/streamclusters/events";

    fn cluster_with(rule: ConfigChanges) -> StreamCluster {
        let mut sc = crate::stream_cluster::build::fixtures::cluster();
        sc.spec.topic_policy.config_changes = rule;
        sc
    }

    /// "orders", placed, with `other` config set and resourceVersion 7.
    fn managed() -> Topic {
        let mut t = topic("orders", "2024-01-01T00:00:00Z");
        t.metadata.resource_version = Some("7".into());
        t.spec.config = Some(TopicConfig {
            retention_ms: Some(1000),
            other: BTreeMap::from([("max.message.bytes".into(), "2000000".into())]),
            ..Default::default()
        });
        t.status = Some(crate::crd::TopicStatus {
            partitions: vec![to_status(&topic_state("id-1").partitions[0], 0)],
            controller_epoch: Some(3),
            topic_id: Some("id-1".into()),
            ..Default::default()
        });
        t
    }

    fn wanted() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("retention.ms".into(), "60000".into()),
            ("cleanup.policy".into(), "compact".into()),
        ])
    }

    #[tokio::test]
    async fn given_the_refuse_rule_when_kafka_alters_a_managed_topic_then_it_is_refused_naming_the_resource()
     {
        let (client, mut server) = mock_client();
        let store = KubeStore::new(client, "data", "events");
        let task = tokio::spawn(async move {
            store
                .admit_topic_config("orders", &wanted(), ConfigOrigin::Kafka, false)
                .await
        });
        server
            .expect(Method::GET, CLUSTER)
            .await
            .ok(&cluster_with(ConfigChanges::Refuse));
        server
            .expect(Method::GET, TOPICS)
            .await
            .respond(200, &list("TopicList", &[managed()]));
        let result = tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("admission ends")
            .expect("task");
        match result {
            Err(StoreError::Refused(message)) => {
                assert!(message.contains("Topic data/orders"), "{message}");
                assert!(message.contains("spec.config"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn given_write_to_resource_when_kafka_alters_then_the_spec_config_is_replaced_with_cas() {
        let (client, mut server) = mock_client();
        let store = KubeStore::new(client, "data", "events");
        let task = tokio::spawn(async move {
            store
                .admit_topic_config("orders", &wanted(), ConfigOrigin::Kafka, false)
                .await
        });
        server
            .expect(Method::GET, CLUSTER)
            .await
            .ok(&cluster_with(ConfigChanges::WriteToResource));
        server
            .expect(Method::GET, TOPICS)
            .await
            .respond(200, &list("TopicList", &[managed()]));
        let patch = server
            .expect(Method::PATCH, &format!("{TOPICS}/orders"))
            .await;
        assert_eq!(patch.body["metadata"]["resourceVersion"], "7");
        let config = &patch.body["spec"]["config"];
        assert_eq!(config["retentionMs"], 60000);
        assert_eq!(config["cleanupPolicy"], "compact");
        assert!(config["segmentBytes"].is_null());
        assert!(
            config["other"]["max.message.bytes"].is_null(),
            "a key the change leaves out is removed: {config}"
        );
        patch.ok(&managed());
        let result = tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("admission ends")
            .expect("task");
        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn given_write_to_resource_and_validate_only_when_kafka_alters_then_nothing_is_written() {
        let (client, mut server) = mock_client();
        let store = KubeStore::new(client, "data", "events");
        let task = tokio::spawn(async move {
            store
                .admit_topic_config("orders", &wanted(), ConfigOrigin::Kafka, true)
                .await
        });
        server
            .expect(Method::GET, CLUSTER)
            .await
            .ok(&cluster_with(ConfigChanges::WriteToResource));
        server
            .expect(Method::GET, TOPICS)
            .await
            .respond(200, &list("TopicList", &[managed()]));
        let result = tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("admission ends without a write")
            .expect("task");
        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn given_a_config_a_topic_cannot_express_when_written_to_the_resource_then_it_is_refused()
    {
        let (client, mut server) = mock_client();
        let store = KubeStore::new(client, "data", "events");
        let both = BTreeMap::from([("cleanup.policy".to_owned(), "delete,compact".to_owned())]);
        let task = tokio::spawn(async move {
            store
                .admit_topic_config("orders", &both, ConfigOrigin::Kafka, false)
                .await
        });
        server
            .expect(Method::GET, CLUSTER)
            .await
            .ok(&cluster_with(ConfigChanges::WriteToResource));
        server
            .expect(Method::GET, TOPICS)
            .await
            .respond(200, &list("TopicList", &[managed()]));
        let result = tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("admission ends")
            .expect("task");
        assert!(
            matches!(result, Err(StoreError::Refused(ref m)) if m.contains("Topic data/orders")),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn given_the_operator_pushing_a_spec_when_admitted_then_no_request_is_made() {
        let (client, _server) = mock_client();
        let store = KubeStore::new(client, "data", "events");
        let result = tokio::time::timeout(
            TIMEOUT,
            store.admit_topic_config("orders", &wanted(), ConfigOrigin::Resource, false),
        )
        .await
        .expect("no API call to wait for");
        assert!(result.is_ok());
    }
}
