//! Rolling restarts: the operator restarts outdated broker pods itself, one
//! at a time, and only when doing so keeps every partition available.
//!
//! The StatefulSet uses `updateStrategy: OnDelete`, so Kubernetes never
//! restarts a broker on its own. Any change of the pod template (image,
//! resources, environment, the configuration hash, the
//! [`RESTART_ANNOTATION`](crate::crd::RESTART_ANNOTATION)) gives the
//! StatefulSet a new `updateRevision`; pods still labelled with an older
//! `controller-revision-hash` are outdated, and this step replaces them:
//!
//! 1. nothing happens while a pod is missing, terminating or starting (a
//!    step is under way), while the cluster scales, or while the metadata
//!    controller has no view of the partitions;
//! 2. the broker restarted last must be back: its pod Ready, registered
//!    again with the controller (a higher broker epoch than before the
//!    restart) and in the ISR of every partition it hosts;
//! 3. the next broker is chosen among the outdated ones (pods that are not
//!    Ready first, as they serve nothing; then the highest ordinal), and
//!    only if taking it down leaves every partition it is in the ISR of
//!    with at least `min.insync.replicas` in-sync replicas. When no
//!    outdated broker qualifies the roll waits, and the Progressing
//!    condition names the partitions that block it;
//! 4. the operator records the broker and its epoch in
//!    `status.roll.restarted` and only then deletes its pod. The broker's
//!    own shutdown hands its leaderships over (a controlled shutdown) before
//!    it stops; the StatefulSet creates the replacement from the new
//!    template.
//!
//! Everything is read again at every reconcile, and the one thing that is
//! not visible in Kubernetes or the controller (which broker went last) is
//! in the status, so a roll continues where it stopped when the operator
//! restarts or another replica takes over.
//!
//! Partitions whose replication factor is not above their
//! `min.insync.replicas` cannot stay writable through any restart; waiting
//! for them would block the roll forever, so they are not counted (and
//! the roll's message lists them).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::{Client, ResourceExt};

use super::Error;
use super::build::{CONFIG_CONTENT_ANNOTATION, selector_string};
use super::scale_down::{ReplicaPlacement, ScaleDecision};
use crate::crd::{RestartedBroker, StreamCluster};

/// Label the StatefulSet controller puts on each pod: the revision of the
/// template it was created from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// One partition as the metadata controller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// `topic-partition`, for messages.
    pub name: String,
    /// Assigned replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// The topic's `min.insync.replicas` override, if it has one.
    pub min_insync: Option<usize>,
}

/// What a roll needs to know from the metadata controller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Registered brokers and their registration epochs.
    pub broker_epochs: BTreeMap<i32, i64>,
    /// Every partition.
    pub partitions: Vec<PartitionView>,
}

/// A broker pod as the roll sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerPod {
    /// Broker id (the pod ordinal).
    pub broker: i32,
    /// Pod name.
    pub name: String,
    /// Pod uid.
    pub uid: String,
    /// The template revision it runs.
    pub revision: Option<String>,
    /// Its Ready condition is True.
    pub ready: bool,
    /// It is being deleted.
    pub terminating: bool,
}

impl BrokerPod {
    /// Reads a pod of StatefulSet `cluster` (`<cluster>-<ordinal>`); None for
    /// a pod of another name.
    pub fn from_pod(cluster: &str, pod: &Pod) -> Option<Self> {
        let name = pod.name_any();
        let broker = name
            .strip_prefix(cluster)?
            .strip_prefix('-')?
            .parse()
            .ok()?;
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Some(Self {
            broker,
            uid: pod.uid().unwrap_or_default(),
            revision: pod.labels().get(REVISION_LABEL).cloned(),
            ready,
            terminating: pod.metadata.deletion_timestamp.is_some(),
            name,
        })
    }
}

/// Why the roll does not restart a broker now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// Pods are missing, terminating or not Ready (a step is under way).
    Pods(Vec<String>),
    /// The metadata controller of the cluster is not serving here yet.
    NoMetadata,
    /// The broker restarted last has not registered again yet.
    NotRegistered {
        /// Broker id.
        broker: i32,
    },
    /// The broker restarted last is not yet in the ISR of these partitions.
    Rejoining {
        /// Broker id.
        broker: i32,
        /// Partitions (`topic-partition`).
        partitions: Vec<String>,
    },
    /// Restarting any outdated broker would take these partitions below
    /// `min.insync.replicas`. Names the first candidate.
    UnderMinIsr {
        /// Broker id of the first candidate.
        broker: i32,
        /// Partitions that block it.
        partitions: Vec<String>,
    },
}

impl Wait {
    /// Whether the roll is held back by partition safety (as opposed to a
    /// step that is simply under way).
    pub fn is_blocked(&self) -> bool {
        matches!(self, Wait::UnderMinIsr { .. })
    }

    /// Human-readable reason, for the Progressing condition.
    pub fn message(&self) -> String {
        match self {
            Wait::Pods(pods) => format!("waiting for pods {} to be Ready", list(pods)),
            Wait::NoMetadata => {
                "waiting for the metadata controller to report partitions before restarting a broker"
                    .to_owned()
            }
            Wait::NotRegistered { broker } => {
                format!("waiting for restarted broker {broker} to register with the metadata controller")
            }
            Wait::Rejoining { broker, partitions } => format!(
                "waiting for restarted broker {broker} to rejoin the ISR of {}",
                list(partitions)
            ),
            Wait::UnderMinIsr { broker, partitions } => format!(
                "restarting broker {broker} would take {} below min.insync.replicas; waiting for their replicas to catch up",
                list(partitions)
            ),
        }
    }
}

/// At most this many names in a message; the rest are counted.
const LISTED: usize = 10;

fn list(names: &[String]) -> String {
    if names.len() <= LISTED {
        names.join(", ")
    } else {
        format!(
            "{} and {} more",
            names[..LISTED].join(", "),
            names.len() - LISTED
        )
    }
}

/// What the roll does at this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every pod runs the current template and the last restarted broker is
    /// back: no roll.
    Done,
    /// A roll is under way but nothing is restarted now.
    Wait(Wait),
    /// Restart this broker: record it, then delete its pod.
    Restart {
        /// The pod to delete.
        pod: BrokerPod,
        /// The broker's registration epoch now.
        epoch: Option<i64>,
    },
}

/// Everything [`decide`] reads.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The StatefulSet's `status.updateRevision`.
    pub update_revision: &'a str,
    /// Desired broker count (the StatefulSet's replicas).
    pub replicas: i32,
    /// The cluster's pods.
    pub pods: &'a [BrokerPod],
    /// The metadata controller's view, if it serves.
    pub view: Option<&'a ClusterView>,
    /// The broker restarted last, from the status.
    pub restarted: Option<&'a RestartedBroker>,
    /// `min.insync.replicas` of topics without an override.
    pub default_min_insync: usize,
}

impl Input<'_> {
    fn outdated(&self) -> impl Iterator<Item = &BrokerPod> {
        self.pods
            .iter()
            .filter(|p| p.revision.as_deref() != Some(self.update_revision))
    }
}

/// Decides the roll's next step (pure; see the module docs for the rules).
pub fn decide(input: &Input<'_>) -> Step {
    let outdated: Vec<&BrokerPod> = input.outdated().filter(|p| !p.terminating).collect();
    let pending = input.restarted.filter(|r| {
        // The record matters while its broker's replacement is not known to
        // be back; a record whose pod was never deleted is handled below.
        input.pods.iter().any(|p| p.broker == r.broker)
    });
    if outdated.is_empty() && pending.is_none() {
        return Step::Done;
    }

    // 1. A step under way.
    let present: BTreeSet<i32> = input.pods.iter().map(|p| p.broker).collect();
    let mut busy: Vec<String> = (0..input.replicas)
        .filter(|b| !present.contains(b))
        .map(|b| format!("broker {b} (no pod)"))
        .collect();
    busy.extend(
        input
            .pods
            .iter()
            .filter(|p| p.terminating || (!p.ready && !outdated.iter().any(|o| o.uid == p.uid)))
            .map(|p| p.name.clone()),
    );
    if !busy.is_empty() {
        return Step::Wait(Wait::Pods(busy));
    }
    let Some(view) = input.view else {
        return Step::Wait(Wait::NoMetadata);
    };

    // A record whose pod still runs (the operator stopped between recording
    // and deleting): that broker is the one to restart, the checks below
    // were passed when it was recorded... but are made again, as the
    // cluster may have changed since.
    let unfinished = input
        .restarted
        .and_then(|r| outdated.iter().find(|p| p.uid == r.pod_uid).copied());

    // 2. The broker restarted last is back.
    if let Some(r) = pending
        && unfinished.is_none()
    {
        let registered = match (r.broker_epoch, view.broker_epochs.get(&r.broker)) {
            (Some(before), Some(now)) => *now > before,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if !registered {
            return Step::Wait(Wait::NotRegistered { broker: r.broker });
        }
        let missing = out_of_isr(view, r.broker);
        if !missing.is_empty() {
            return Step::Wait(Wait::Rejoining {
                broker: r.broker,
                partitions: missing,
            });
        }
    }
    if outdated.is_empty() {
        return Step::Done;
    }

    // 3. The next broker: unfinished first, then not Ready, then the highest
    // ordinal.
    let mut candidates = outdated;
    candidates.sort_by_key(|p| {
        (
            Some(p.uid.as_str()) != unfinished.map(|u| u.uid.as_str()),
            p.ready,
            std::cmp::Reverse(p.broker),
        )
    });
    let mut first_blocked = None;
    for pod in candidates {
        let blocking = would_go_below_min_isr(view, pod.broker, input.default_min_insync);
        if blocking.is_empty() {
            return Step::Restart {
                pod: pod.clone(),
                epoch: view.broker_epochs.get(&pod.broker).copied(),
            };
        }
        first_blocked.get_or_insert(Wait::UnderMinIsr {
            broker: pod.broker,
            partitions: blocking,
        });
    }
    Step::Wait(first_blocked.expect("at least one candidate"))
}

/// Partitions hosting `broker` whose ISR lacks it.
pub fn out_of_isr(view: &ClusterView, broker: i32) -> Vec<String> {
    view.partitions
        .iter()
        .filter(|p| p.replicas.contains(&broker) && !p.isr.contains(&broker))
        .map(|p| p.name.clone())
        .collect()
}

/// Partitions that would have fewer than `min.insync.replicas` in-sync
/// replicas without `broker`. Partitions that cannot survive any restart
/// (replication factor ≤ min.insync.replicas) are left out.
pub fn would_go_below_min_isr(view: &ClusterView, broker: i32, default_min: usize) -> Vec<String> {
    view.partitions
        .iter()
        .filter(|p| p.isr.contains(&broker))
        .filter(|p| {
            let min = p.min_insync.unwrap_or(default_min);
            p.replicas.len() > min && p.isr.len() - 1 < min
        })
        .map(|p| p.name.clone())
        .collect()
}

/// Partitions that no restart can keep writable with acks=all: replication
/// factor ≤ min.insync.replicas.
pub fn never_safe(view: &ClusterView, default_min: usize) -> Vec<String> {
    view.partitions
        .iter()
        .filter(|p| p.replicas.len() <= p.min_insync.unwrap_or(default_min))
        .map(|p| p.name.clone())
        .collect()
}

/// The cluster-wide `min.insync.replicas` from `spec.config`, 1 when unset
/// or unreadable (validation refuses unreadable values before this runs).
pub fn default_min_insync(sc: &StreamCluster) -> usize {
    sc.spec
        .config
        .get("min.insync.replicas")
        .and_then(|v| v.trim().parse().ok())
        .filter(|n: &usize| *n >= 1)
        .unwrap_or(1)
}

/// Whether the StatefulSet has pods on an older template: a roll is due.
/// False until the StatefulSet controller has observed the latest spec.
pub fn update_revision(sts: &StatefulSet) -> Option<&str> {
    let status = sts.status.as_ref()?;
    if status.observed_generation.is_none() || status.observed_generation < sts.metadata.generation
    {
        return None;
    }
    status.update_revision.as_deref()
}

/// The roll's state at this reconcile, for the status and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What the roll does now.
    pub step: Step,
    /// The revision brokers are rolled to.
    pub revision: String,
    /// Pods on that revision.
    pub updated: i32,
    /// Broker pods.
    pub replicas: i32,
    /// Partitions no restart keeps writable (left out of the checks).
    pub never_safe: Vec<String>,
}

impl Outcome {
    /// The record to keep in `status.roll.restarted`.
    pub fn record(&self, previous: Option<&RestartedBroker>) -> Option<RestartedBroker> {
        match &self.step {
            Step::Done => None,
            Step::Wait(_) => previous.cloned(),
            Step::Restart { pod, epoch } => Some(RestartedBroker {
                broker: pod.broker,
                pod_uid: pod.uid.clone(),
                broker_epoch: *epoch,
            }),
        }
    }

    /// One line for the Progressing condition and Events.
    pub fn message(&self) -> String {
        let progress = format!(
            "rolling restart to revision {}: {}/{} brokers updated",
            self.revision, self.updated, self.replicas
        );
        let now = match &self.step {
            Step::Done => return progress,
            Step::Wait(wait) => wait.message(),
            Step::Restart { pod, .. } => format!(
                "restarting broker {} (pod {}); its leaderships move away first",
                pod.broker, pod.name
            ),
        };
        let mut message = format!("{progress}; {now}");
        if !self.never_safe.is_empty() {
            message.push_str(&format!(
                "; not writable with acks=all while their broker restarts (replication factor not above min.insync.replicas): {}",
                list(&self.never_safe)
            ));
        }
        message
    }
}

/// Reads what a roll needs and decides its step. None when no roll is due
/// (every pod current, nothing pending) or none may run now (the cluster is
/// scaling, or the StatefulSet has not observed its latest spec).
pub async fn observe(
    client: &Client,
    placement: &dyn ReplicaPlacement,
    sc: &StreamCluster,
    sts: Option<&StatefulSet>,
    decision: &ScaleDecision,
) -> Result<Option<Outcome>, Error> {
    let (Some(sts), ScaleDecision::Proceed { replicas }) = (sts, decision) else {
        return Ok(None);
    };
    let Some(revision) = update_revision(sts) else {
        return Ok(None);
    };
    let status = sts.status.clone().unwrap_or_default();
    let record = sc.status.as_ref().and_then(|s| s.roll.as_ref());
    let updated = status.updated_replicas.unwrap_or(0);
    if status.replicas != *replicas {
        return Ok(None);
    }
    if updated >= status.replicas && record.and_then(|r| r.restarted.as_ref()).is_none() {
        return Ok(None);
    }
    let namespace = sc.namespace().unwrap_or_default();
    let name = sc.name_any();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pods: Vec<BrokerPod> = pods
        .list(&ListParams::default().labels(&selector_string(&name)))
        .await
        .map_err(|source| Error::Observe {
            kind: "Pod".to_owned(),
            source,
        })?
        .items
        .iter()
        .filter_map(|p| BrokerPod::from_pod(&name, p))
        .collect();
    let view = placement.cluster_view(&namespace, &name);
    let default_min_insync = default_min_insync(sc);
    let step = decide(&Input {
        update_revision: revision,
        replicas: *replicas,
        pods: &pods,
        view: view.as_ref(),
        restarted: record.and_then(|r| r.restarted.as_ref()),
        default_min_insync,
    });
    Ok(Some(Outcome {
        updated: pods
            .iter()
            .filter(|p| p.revision.as_deref() == Some(revision) && !p.terminating)
            .count() as i32,
        replicas: *replicas,
        revision: revision.to_owned(),
        never_safe: view
            .map(|v| never_safe(&v, default_min_insync))
            .unwrap_or_default(),
        step,
    }))
}

/// Annotates every broker pod with the hash of the configuration file
/// just written ([`CONFIG_CONTENT_ANNOTATION`]): the pod update makes the
/// kubelet refresh the mounted file at once, so brokers apply the keys they
/// take live within seconds. Best effort: a pod that cannot be annotated
/// gets the file at the kubelet's next periodic sync.
pub async fn nudge_pods(client: &Client, namespace: &str, cluster: &str, hash: &str) {
    annotate_broker_pods(client, namespace, cluster, CONFIG_CONTENT_ANNOTATION, hash).await;
}

/// Sets `annotation` to `value` on every running broker pod of `cluster`,
/// so the kubelet refreshes the ConfigMaps and Secrets they mount at once
/// (a pod update triggers a sync). Best effort, as [`nudge_pods`].
pub async fn annotate_broker_pods(
    client: &Client,
    namespace: &str,
    cluster: &str,
    annotation: &str,
    value: &str,
) {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = match api
        .list(&ListParams::default().labels(&selector_string(cluster)))
        .await
    {
        Ok(list) => list.items,
        Err(e) => {
            tracing::warn!(%cluster, error = %e, "cannot list broker pods to refresh their mounted files");
            return;
        }
    };
    let patch = kube::api::Patch::Merge(serde_json::json!({
        "metadata": {"annotations": {annotation: value}}
    }));
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        if let Err(e) = api
            .patch(&pod.name_any(), &kube::api::PatchParams::default(), &patch)
            .await
        {
            tracing::warn!(pod = %pod.name_any(), error = %e, "cannot annotate a broker pod to refresh its mounted files");
        }
    }
}

/// Deletes the pod of the broker to restart. The uid precondition makes a
/// second delete (after an operator restart) harmless: a replacement pod
/// has another uid, and a pod already gone is what was wanted.
pub async fn restart(client: &Client, namespace: &str, pod: &BrokerPod) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(pod.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&pod.name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(source) => Err(Error::Restart {
            pod: pod.name.clone(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = "events-new";
    const OLD: &str = "events-old";

    fn pod(broker: i32, revision: &str) -> BrokerPod {
        BrokerPod {
            broker,
            name: format!("events-{broker}"),
            uid: format!("uid-{broker}-{revision}"),
            revision: Some(revision.to_owned()),
            ready: true,
            terminating: false,
        }
    }

    fn partition(name: &str, replicas: &[i32], isr: &[i32]) -> PartitionView {
        PartitionView {
            name: name.to_owned(),
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            min_insync: Some(2),
        }
    }

    fn healthy() -> ClusterView {
        ClusterView {
            broker_epochs: BTreeMap::from([(0, 10), (1, 11), (2, 12)]),
            partitions: vec![
                partition("orders-0", &[0, 1, 2], &[0, 1, 2]),
                partition("orders-1", &[1, 2, 0], &[1, 2, 0]),
            ],
        }
    }

    fn input<'a>(
        pods: &'a [BrokerPod],
        view: Option<&'a ClusterView>,
        restarted: Option<&'a RestartedBroker>,
    ) -> Input<'a> {
        Input {
            update_revision: NEW,
            replicas: 3,
            pods,
            view,
            restarted,
            default_min_insync: 1,
        }
    }

    #[test]
    fn given_all_pods_current_when_deciding_then_the_roll_is_done() {
        let pods = [pod(0, NEW), pod(1, NEW), pod(2, NEW)];
        assert_eq!(decide(&input(&pods, Some(&healthy()), None)), Step::Done);
    }

    #[test]
    fn given_outdated_pods_when_all_is_healthy_then_the_highest_ordinal_restarts_first() {
        let pods = [pod(0, OLD), pod(1, OLD), pod(2, OLD)];
        let view = healthy();
        match decide(&input(&pods, Some(&view), None)) {
            Step::Restart { pod, epoch } => {
                assert_eq!(pod.broker, 2);
                assert_eq!(epoch, Some(12));
            }
            other => panic!("expected a restart, got {other:?}"),
        }
    }

    #[test]
    fn given_a_restarting_pod_when_deciding_then_the_roll_waits_for_it() {
        let mut restarting = pod(2, NEW);
        restarting.ready = false;
        let pods = [pod(0, OLD), pod(1, OLD), restarting];
        assert_eq!(
            decide(&input(&pods, Some(&healthy()), None)),
            Step::Wait(Wait::Pods(vec!["events-2".to_owned()]))
        );
        let pods = [pod(0, OLD), pod(1, OLD)];
        assert_eq!(
            decide(&input(&pods, Some(&healthy()), None)),
            Step::Wait(Wait::Pods(vec!["broker 2 (no pod)".to_owned()]))
        );
    }

    #[test]
    fn given_the_restarted_broker_out_of_an_isr_when_deciding_then_the_next_waits() {
        let pods = [pod(0, OLD), pod(1, OLD), pod(2, NEW)];
        let mut view = healthy();
        view.broker_epochs.insert(2, 20);
        view.partitions[1].isr = vec![1, 0];
        let record = RestartedBroker {
            broker: 2,
            pod_uid: "uid-2-old".to_owned(),
            broker_epoch: Some(12),
        };
        assert_eq!(
            decide(&input(&pods, Some(&view), Some(&record))),
            Step::Wait(Wait::Rejoining {
                broker: 2,
                partitions: vec!["orders-1".to_owned()]
            })
        );
        // Back in every ISR: broker 1 is next.
        view.partitions[1].isr = vec![1, 0, 2];
        assert!(matches!(
            decide(&input(&pods, Some(&view), Some(&record))),
            Step::Restart { pod, .. } if pod.broker == 1
        ));
    }

    #[test]
    fn given_the_restarted_broker_not_registered_again_when_deciding_then_the_next_waits() {
        // Ready and listed in every ISR, but the controller has not seen it
        // come back: the ISR it shows predates the restart.
        let pods = [pod(0, OLD), pod(1, OLD), pod(2, NEW)];
        let view = healthy();
        let record = RestartedBroker {
            broker: 2,
            pod_uid: "uid-2-old".to_owned(),
            broker_epoch: Some(12),
        };
        assert_eq!(
            decide(&input(&pods, Some(&view), Some(&record))),
            Step::Wait(Wait::NotRegistered { broker: 2 })
        );
    }

    #[test]
    fn given_a_partition_at_min_isr_when_deciding_then_its_brokers_wait_and_others_go() {
        let pods = [pod(0, OLD), pod(1, OLD), pod(2, OLD)];
        let mut view = healthy();
        // Broker 0 is out of orders-1's ISR: 1 and 2 are exactly min ISR.
        view.partitions[1].isr = vec![1, 2];
        view.partitions
            .push(partition("audit-0", &[2, 1, 0], &[2, 1]));
        // 2 and 1 block; 0 is not in the short ISRs, so it may go.
        match decide(&input(&pods, Some(&view), None)) {
            Step::Restart { pod, .. } => assert_eq!(pod.broker, 0),
            other => panic!("expected broker 0, got {other:?}"),
        }
        // Only 1 and 2 outdated: both blocked, the message names the first.
        let pods = [pod(0, NEW), pod(1, OLD), pod(2, OLD)];
        assert_eq!(
            decide(&input(&pods, Some(&view), None)),
            Step::Wait(Wait::UnderMinIsr {
                broker: 2,
                partitions: vec!["orders-1".to_owned(), "audit-0".to_owned()]
            })
        );
    }

    #[test]
    fn given_partitions_that_cannot_survive_any_restart_when_deciding_then_they_do_not_block() {
        let pods = [pod(0, OLD)];
        let view = ClusterView {
            broker_epochs: BTreeMap::from([(0, 1)]),
            partitions: vec![PartitionView {
                name: "single-0".to_owned(),
                replicas: vec![0],
                isr: vec![0],
                min_insync: None,
            }],
        };
        let mut one = input(&pods, Some(&view), None);
        one.replicas = 1;
        assert!(matches!(decide(&one), Step::Restart { .. }));
        assert_eq!(never_safe(&view, 1), vec!["single-0".to_owned()]);
    }

    #[test]
    fn given_an_outdated_pod_that_is_not_ready_when_deciding_then_it_restarts_first() {
        let mut broken = pod(0, OLD);
        broken.ready = false;
        let pods = [broken, pod(1, OLD), pod(2, OLD)];
        let mut view = healthy();
        for p in &mut view.partitions {
            p.isr.retain(|b| *b != 0);
        }
        match decide(&input(&pods, Some(&view), None)) {
            Step::Restart { pod, .. } => assert_eq!(pod.broker, 0),
            other => panic!("expected broker 0, got {other:?}"),
        }
    }

    #[test]
    fn given_a_record_whose_pod_was_never_deleted_when_deciding_then_that_broker_restarts() {
        // The operator recorded broker 1 and stopped before deleting it.
        let pods = [pod(0, OLD), pod(1, OLD), pod(2, NEW)];
        let record = RestartedBroker {
            broker: 1,
            pod_uid: "uid-1-events-old".to_owned(),
            broker_epoch: Some(11),
        };
        let view = healthy();
        match decide(&input(&pods, Some(&view), Some(&record))) {
            Step::Restart { pod, .. } => assert_eq!(pod.broker, 1),
            other => panic!("expected broker 1, got {other:?}"),
        }
    }

    #[test]
    fn given_no_controller_view_when_a_roll_is_due_then_it_waits() {
        let pods = [pod(0, OLD), pod(1, NEW), pod(2, NEW)];
        assert_eq!(
            decide(&input(&pods, None, None)),
            Step::Wait(Wait::NoMetadata)
        );
    }

    #[test]
    fn given_the_last_broker_back_when_nothing_is_outdated_then_the_roll_is_done() {
        let pods = [pod(0, NEW), pod(1, NEW), pod(2, NEW)];
        let mut view = healthy();
        view.broker_epochs.insert(0, 30);
        let record = RestartedBroker {
            broker: 0,
            pod_uid: "uid-0-old".to_owned(),
            broker_epoch: Some(10),
        };
        assert_eq!(
            decide(&input(&pods, Some(&view), Some(&record))),
            Step::Done
        );
        view.partitions[0].isr = vec![1, 2];
        assert!(matches!(
            decide(&input(&pods, Some(&view), Some(&record))),
            Step::Wait(Wait::Rejoining { broker: 0, .. })
        ));
    }
}
