//! Step 5 of the StreamCluster pipeline: compute the status from what was
//! observed and write it only when it differs from the stored one.
//!
//! Conditions and their stable reasons:
//!
//! | type        | status | reason               | meaning |
//! |-------------|--------|----------------------|---------|
//! | Ready       | True   | `AllBrokersReady`    | every desired broker passes its readiness probe |
//! | Ready       | False  | `BrokersNotReady`    | fewer ready brokers than desired |
//! | Ready       | False  | `InvalidSpec`        | the spec was refused; message says why |
//! | Ready       | False  | `SecretNotFound`     | a Secret the spec names does not exist; message names it |
//! | Ready       | False  | `SecretInvalid`      | a Secret the spec names lacks a key or holds an unusable certificate; message names Secret and key |
//! | Progressing | True   | `Creating`           | the StatefulSet has not reported on the current spec yet |
//! | Progressing | True   | `Scaling`            | broker pods are being added or removed |
//! | Progressing | True   | `ScaleDownBlocked`   | removed brokers still hold partition replicas |
//! | Progressing | True   | `RollingUpdate`      | the operator restarts outdated brokers one at a time |
//! | Progressing | True   | `RollBlocked`        | restarting the next broker would take partitions below min.insync.replicas |
//! | Progressing | True   | `UpdatePending`      | pods run an outdated template and no roll can start yet (scaling) |
//! | Progressing | True   | `ResizingVolumes`    | broker claims grow to a larger `spec.storage.size` |
//! | Progressing | True   | `BrokersStarting`    | pods exist, not all ready yet, cluster never ready since |
//! | Progressing | False  | `Reconciled`         | everything runs the current spec |
//! | Progressing | False  | `InvalidSpec`        | nothing to do until the spec is fixed |
//! | Degraded    | True   | `BrokersUnavailable` | a cluster that was ready lost brokers |
//! | Degraded    | True   | `InvalidSpec`        | the spec was refused |
//! | Degraded    | True   | `SecretNotFound`, `SecretInvalid` | as Ready |
//! | Degraded    | True   | `VolumeResizeFailed` | a claim cannot grow (its StorageClass does not allow expansion) |
//! | Degraded    | False  | `AsExpected`         | none of the above |

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;

use super::build::{kafka_bootstrap, listener_statuses, selector_string};
use super::certs::SecretProblem;
use super::roll::{self, Outcome};
use super::scale_down::ScaleDecision;
use super::validate::InvalidSpec;
use super::volumes::VolumeOutcome;
use crate::conditions::{self, DEGRADED, DesiredCondition, PROGRESSING, READY, merge_conditions};
use crate::crd::{RollStatus, StreamCluster, StreamClusterStatus};
use crate::ssa::merge_status_if_changed;

/// Stable reason strings of StreamCluster conditions.
pub mod reasons {
    /// Ready=True.
    pub const ALL_BROKERS_READY: &str = "AllBrokersReady";
    /// Ready=False.
    pub const BROKERS_NOT_READY: &str = "BrokersNotReady";
    /// Ready/Progressing/Degraded for a refused spec.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Progressing=True before the StatefulSet reports.
    pub const CREATING: &str = "Creating";
    /// Progressing=True while pods are added or removed.
    pub const SCALING: &str = "Scaling";
    /// Progressing=True while a scale-down is refused.
    pub const SCALE_DOWN_BLOCKED: &str = "ScaleDownBlocked";
    /// Progressing=True while pods run an old template and no roll runs.
    pub const UPDATE_PENDING: &str = "UpdatePending";
    /// Progressing=True while the operator restarts brokers.
    pub const ROLLING_UPDATE: &str = "RollingUpdate";
    /// Progressing=True while the roll waits for partition safety.
    pub const ROLL_BLOCKED: &str = "RollBlocked";
    /// Progressing=True while a new cluster starts.
    pub const BROKERS_STARTING: &str = "BrokersStarting";
    /// Progressing=False when done.
    pub const RECONCILED: &str = "Reconciled";
    /// Degraded=True after losing brokers.
    pub const BROKERS_UNAVAILABLE: &str = "BrokersUnavailable";
    /// Degraded=False.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// Progressing=True while broker claims grow.
    pub const RESIZING_VOLUMES: &str = "ResizingVolumes";
    /// Degraded=True when a claim cannot grow.
    pub const VOLUME_RESIZE_FAILED: &str = "VolumeResizeFailed";
}

/// Counts read from the StatefulSet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Observed {
    /// The StatefulSet controller has seen the latest StatefulSet spec.
    current: bool,
    replicas: i32,
    ready: i32,
    updated: i32,
}

fn observe(sts: Option<&StatefulSet>) -> Option<Observed> {
    let sts = sts?;
    let status = sts.status.clone().unwrap_or_default();
    Some(Observed {
        current: status.observed_generation.is_some()
            && status.observed_generation >= sts.metadata.generation,
        replicas: status.replicas,
        ready: status.ready_replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
    })
}

/// Computes the status of a valid cluster.
pub fn compute(
    sc: &StreamCluster,
    sts: Option<&StatefulSet>,
    decision: &ScaleDecision,
    roll: Option<&Outcome>,
    volumes: Option<&VolumeOutcome>,
    now: &Time,
) -> StreamClusterStatus {
    let previous = sc.status.clone().unwrap_or_default();
    let desired = sc.spec.brokers;
    let observed = observe(sts);
    let counts = observed.unwrap_or_default();
    let all_ready =
        observed.is_some_and(|o| o.current && o.replicas == desired && o.ready >= desired);
    let was_healthy = conditions::is_true(&previous.conditions, READY)
        || conditions::find(&previous.conditions, DEGRADED)
            .is_some_and(|c| c.status == "True" && c.reason == reasons::BROKERS_UNAVAILABLE);

    let ready = if all_ready {
        DesiredCondition::new(
            READY,
            true,
            reasons::ALL_BROKERS_READY,
            format!("{desired}/{desired} brokers ready"),
        )
    } else {
        DesiredCondition::new(
            READY,
            false,
            reasons::BROKERS_NOT_READY,
            format!("{}/{desired} brokers ready", counts.ready),
        )
    };

    let progressing = match (decision, observed) {
        (
            ScaleDecision::Blocked {
                current,
                desired,
                holding,
            },
            _,
        ) => DesiredCondition::new(
            PROGRESSING,
            true,
            reasons::SCALE_DOWN_BLOCKED,
            format!(
                "scale-down from {current} to {desired} brokers waits: brokers {holding:?} still hold partition replicas, which the metadata controller is moving to the other brokers"
            ),
        ),
        (_, None) => DesiredCondition::new(
            PROGRESSING,
            true,
            reasons::CREATING,
            "waiting for the StatefulSet to report",
        ),
        (_, Some(o)) if !o.current => DesiredCondition::new(
            PROGRESSING,
            true,
            reasons::CREATING,
            "waiting for the StatefulSet to report",
        ),
        (_, Some(o)) if o.replicas != desired => DesiredCondition::new(
            PROGRESSING,
            true,
            reasons::SCALING,
            format!("{} of {desired} broker pods exist", o.replicas),
        ),
        (_, _) if roll.is_some_and(|r| r.step != roll::Step::Done) => {
            let r = roll.expect("checked");
            let reason = match &r.step {
                roll::Step::Wait(w) if w.is_blocked() => reasons::ROLL_BLOCKED,
                _ => reasons::ROLLING_UPDATE,
            };
            DesiredCondition::new(PROGRESSING, true, reason, r.message())
        }
        (_, Some(_)) if volumes.is_some_and(|v| !v.done() && v.failure.is_none()) => {
            DesiredCondition::new(
                PROGRESSING,
                true,
                reasons::RESIZING_VOLUMES,
                volumes.expect("checked").message(),
            )
        }
        (_, Some(o)) if o.updated < o.replicas && roll.is_none() => DesiredCondition::new(
            PROGRESSING,
            true,
            reasons::UPDATE_PENDING,
            format!(
                "{} of {} brokers run an outdated pod template; the rolling restart starts once the StatefulSet reports all pods",
                o.replicas - o.updated,
                o.replicas
            ),
        ),
        (_, Some(o)) if o.ready < desired && !was_healthy => DesiredCondition::new(
            PROGRESSING,
            true,
            reasons::BROKERS_STARTING,
            format!("{}/{desired} brokers ready", o.ready),
        ),
        _ => DesiredCondition::new(
            PROGRESSING,
            false,
            reasons::RECONCILED,
            "all brokers run the current spec",
        ),
    };

    let degraded = if let Some(failure) = volumes.and_then(|v| v.failure.clone()) {
        DesiredCondition::new(DEGRADED, true, reasons::VOLUME_RESIZE_FAILED, failure)
    } else if !all_ready && was_healthy && !progressing.status {
        DesiredCondition::new(
            DEGRADED,
            true,
            reasons::BROKERS_UNAVAILABLE,
            format!("{}/{desired} brokers ready", counts.ready),
        )
    } else {
        DesiredCondition::new(DEGRADED, false, reasons::AS_EXPECTED, "")
    };

    StreamClusterStatus {
        observed_generation: sc.metadata.generation,
        conditions: merge_conditions(
            &previous.conditions,
            &[ready, progressing, degraded],
            sc.metadata.generation,
            now,
        ),
        brokers: counts.replicas,
        ready_brokers: counts.ready,
        updated_brokers: roll.map_or(counts.updated, |r| r.updated),
        roll: roll_status(&previous, roll),
        storage: volumes
            .map(|v| v.status.clone())
            .or(previous.storage.clone()),
        selector: Some(selector_string(&sc.name_any())),
        kafka_bootstrap: Some(kafka_bootstrap(sc)),
        listeners: listener_statuses(sc),
        certificates: previous.certificates.clone(),
    }
}

/// `status.roll`: kept while a roll runs, with the broker restarted last.
fn roll_status(previous: &StreamClusterStatus, roll: Option<&Outcome>) -> Option<RollStatus> {
    let previous = previous.roll.as_ref();
    let Some(roll) = roll else {
        return previous.cloned();
    };
    let restarted = roll.record(previous.and_then(|r| r.restarted.as_ref()));
    if roll.step == roll::Step::Done {
        return None;
    }
    Some(RollStatus {
        revision: roll.revision.clone(),
        restarted,
    })
}

/// Status of a cluster whose spec was refused. Broker counts keep their
/// previous values: nothing was applied.
pub fn invalid(sc: &StreamCluster, invalid: &InvalidSpec, now: &Time) -> StreamClusterStatus {
    let previous = sc.status.clone().unwrap_or_default();
    let message = invalid.message();
    let desired = [
        DesiredCondition::new(READY, false, reasons::INVALID_SPEC, message.clone()),
        DesiredCondition::new(
            PROGRESSING,
            false,
            reasons::INVALID_SPEC,
            "waiting for a valid spec",
        ),
        DesiredCondition::new(DEGRADED, true, reasons::INVALID_SPEC, message),
    ];
    StreamClusterStatus {
        observed_generation: sc.metadata.generation,
        conditions: merge_conditions(&previous.conditions, &desired, sc.metadata.generation, now),
        selector: Some(selector_string(&sc.name_any())),
        ..previous
    }
}

/// Status of a cluster whose Secret of the user's cannot be used: nothing
/// was applied, so counts keep their previous values.
pub fn secret_problem(
    sc: &StreamCluster,
    problem: &SecretProblem,
    now: &Time,
) -> StreamClusterStatus {
    let previous = sc.status.clone().unwrap_or_default();
    let message = problem.message();
    let desired = [
        DesiredCondition::new(READY, false, problem.reason(), message.clone()),
        DesiredCondition::new(
            PROGRESSING,
            false,
            problem.reason(),
            "waiting for the Secret to be fixed",
        ),
        DesiredCondition::new(DEGRADED, true, problem.reason(), message),
    ];
    StreamClusterStatus {
        observed_generation: sc.metadata.generation,
        conditions: merge_conditions(&previous.conditions, &desired, sc.metadata.generation, now),
        selector: Some(selector_string(&sc.name_any())),
        ..previous
    }
}

/// Writes `status` to the status subresource unless it equals the stored
/// one. Returns whether a write happened.
pub async fn patch_if_changed(
    api: &Api<StreamCluster>,
    sc: &StreamCluster,
    status: &StreamClusterStatus,
) -> Result<bool, kube::Error> {
    merge_status_if_changed(
        api,
        &sc.name_any(),
        sc.status.as_ref(),
        status,
        merge_patch(status),
    )
    .await
}

/// The status as a JSON merge patch: a finished roll is removed with an
/// explicit null (an absent field would leave the stored one in place).
fn merge_patch(status: &StreamClusterStatus) -> serde_json::Value {
    let mut patch = json!(status);
    if status.roll.is_none() {
        patch["roll"] = serde_json::Value::Null;
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream_cluster::build::fixtures::cluster;
    use k8s_openapi::api::apps::v1::StatefulSetStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn at(second: i64) -> Time {
        Time(jiff::Timestamp::from_second(second).expect("timestamp"))
    }

    fn sts(generation: i64, observed: i64, replicas: i32, ready: i32, updated: i32) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            status: Some(StatefulSetStatus {
                observed_generation: Some(observed),
                replicas,
                ready_replicas: Some(ready),
                updated_replicas: Some(updated),
                ..StatefulSetStatus::default()
            }),
            ..StatefulSet::default()
        }
    }

    fn reason(status: &StreamClusterStatus, type_: &str) -> (String, String) {
        let c = conditions::find(&status.conditions, type_).expect("condition");
        (c.status.clone(), c.reason.clone())
    }

    const PROCEED: ScaleDecision = ScaleDecision::Proceed { replicas: 3 };

    #[test]
    fn given_no_statefulset_yet_when_computing_then_progressing_creating() {
        let status = compute(&cluster(), None, &PROCEED, None, None, &at(1));
        assert_eq!(
            reason(&status, READY),
            ("False".into(), "BrokersNotReady".into())
        );
        assert_eq!(
            reason(&status, PROGRESSING),
            ("True".into(), "Creating".into())
        );
        assert_eq!(
            reason(&status, DEGRADED),
            ("False".into(), "AsExpected".into())
        );
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(
            status.kafka_bootstrap.as_deref(),
            Some("events-bootstrap.data.svc:9093")
        );
    }

    #[test]
    fn given_all_brokers_ready_when_computing_then_ready_and_reconciled() {
        let status = compute(
            &cluster(),
            Some(&sts(2, 2, 3, 3, 3)),
            &PROCEED,
            None,
            None,
            &at(1),
        );
        assert_eq!(
            reason(&status, READY),
            ("True".into(), "AllBrokersReady".into())
        );
        assert_eq!(
            reason(&status, PROGRESSING),
            ("False".into(), "Reconciled".into())
        );
        assert_eq!(
            (status.brokers, status.ready_brokers, status.updated_brokers),
            (3, 3, 3)
        );
    }

    #[test]
    fn given_a_new_cluster_starting_when_computing_then_progressing_not_degraded() {
        let status = compute(
            &cluster(),
            Some(&sts(1, 1, 3, 1, 3)),
            &PROCEED,
            None,
            None,
            &at(1),
        );
        assert_eq!(
            reason(&status, PROGRESSING),
            ("True".into(), "BrokersStarting".into())
        );
        assert_eq!(
            reason(&status, DEGRADED),
            ("False".into(), "AsExpected".into())
        );
    }

    #[test]
    fn given_a_ready_cluster_losing_a_broker_when_computing_then_degraded() {
        let mut sc = cluster();
        sc.status = Some(compute(
            &sc,
            Some(&sts(1, 1, 3, 3, 3)),
            &PROCEED,
            None,
            None,
            &at(1),
        ));
        let status = compute(
            &sc,
            Some(&sts(1, 1, 3, 2, 3)),
            &PROCEED,
            None,
            None,
            &at(50),
        );
        assert_eq!(
            reason(&status, READY),
            ("False".into(), "BrokersNotReady".into())
        );
        assert_eq!(
            reason(&status, DEGRADED),
            ("True".into(), "BrokersUnavailable".into())
        );
        let ready = conditions::find(&status.conditions, READY).expect("ready");
        assert_eq!(ready.last_transition_time, at(50));
        // Still degraded on the next pass, transition time unchanged.
        sc.status = Some(status);
        let again = compute(
            &sc,
            Some(&sts(1, 1, 3, 2, 3)),
            &PROCEED,
            None,
            None,
            &at(90),
        );
        assert_eq!(
            reason(&again, DEGRADED),
            ("True".into(), "BrokersUnavailable".into())
        );
        assert_eq!(Some(&again), sc.status.as_ref());
    }

    #[test]
    fn given_outdated_pods_and_no_roll_when_computing_then_update_pending_says_why() {
        let status = compute(
            &cluster(),
            Some(&sts(2, 2, 3, 3, 1)),
            &PROCEED,
            None,
            None,
            &at(1),
        );
        assert_eq!(
            reason(&status, PROGRESSING),
            ("True".into(), "UpdatePending".into())
        );
        let message = &conditions::find(&status.conditions, PROGRESSING)
            .expect("p")
            .message;
        assert!(
            message.starts_with("2 of 3 brokers run an outdated pod template"),
            "{message}"
        );
    }

    #[test]
    fn given_a_finished_roll_when_patching_then_the_patch_removes_the_record() {
        let status = StreamClusterStatus::default();
        assert_eq!(merge_patch(&status)["roll"], serde_json::Value::Null);
        assert!(
            merge_patch(&status)
                .as_object()
                .expect("object")
                .contains_key("roll")
        );
    }

    fn outcome(step: roll::Step) -> Outcome {
        Outcome {
            step,
            revision: "events-7f".into(),
            updated: 1,
            replicas: 3,
            never_safe: vec![],
        }
    }

    #[test]
    fn given_a_roll_when_computing_then_progressing_shows_it_and_the_record_is_kept() {
        use crate::crd::RestartedBroker;
        let pod = roll::BrokerPod {
            broker: 1,
            name: "events-1".into(),
            uid: "u1".into(),
            revision: Some("events-6e".into()),
            ready: true,
            terminating: false,
        };
        let restart = outcome(roll::Step::Restart {
            pod,
            epoch: Some(4),
        });
        let mut sc = cluster();
        let status = compute(
            &sc,
            Some(&sts(2, 2, 3, 3, 1)),
            &PROCEED,
            Some(&restart),
            None,
            &at(1),
        );
        assert_eq!(
            reason(&status, PROGRESSING),
            ("True".into(), "RollingUpdate".into())
        );
        let record = RestartedBroker {
            broker: 1,
            pod_uid: "u1".into(),
            broker_epoch: Some(4),
        };
        assert_eq!(
            status.roll.as_ref().and_then(|r| r.restarted.as_ref()),
            Some(&record)
        );
        assert_eq!(status.updated_brokers, 1);

        // Waiting on partition safety: RollBlocked, the record is kept.
        sc.status = Some(status);
        let blocked = outcome(roll::Step::Wait(roll::Wait::UnderMinIsr {
            broker: 0,
            partitions: vec!["orders-3".into()],
        }));
        let status = compute(
            &sc,
            Some(&sts(2, 2, 3, 3, 1)),
            &PROCEED,
            Some(&blocked),
            None,
            &at(2),
        );
        assert_eq!(
            reason(&status, PROGRESSING),
            ("True".into(), "RollBlocked".into())
        );
        let message = &conditions::find(&status.conditions, PROGRESSING)
            .expect("p")
            .message;
        assert!(message.contains("orders-3"), "{message}");
        assert_eq!(
            status.roll.as_ref().and_then(|r| r.restarted.as_ref()),
            Some(&record)
        );

        // Done: the record goes.
        sc.status = Some(status);
        let done = outcome(roll::Step::Done);
        let status = compute(
            &sc,
            Some(&sts(2, 2, 3, 3, 3)),
            &PROCEED,
            Some(&done),
            None,
            &at(3),
        );
        assert_eq!(status.roll, None);
        assert_eq!(
            reason(&status, PROGRESSING),
            ("False".into(), "Reconciled".into())
        );
    }

    #[test]
    fn given_scaling_or_a_blocked_scale_down_when_computing_then_progressing_says_which() {
        let status = compute(
            &cluster(),
            Some(&sts(2, 2, 2, 2, 2)),
            &PROCEED,
            None,
            None,
            &at(1),
        );
        assert_eq!(
            reason(&status, PROGRESSING),
            ("True".into(), "Scaling".into())
        );
        let blocked = ScaleDecision::Blocked {
            current: 5,
            desired: 3,
            holding: vec![4],
        };
        let status = compute(
            &cluster(),
            Some(&sts(2, 2, 5, 5, 5)),
            &blocked,
            None,
            None,
            &at(1),
        );
        assert_eq!(
            reason(&status, PROGRESSING),
            ("True".into(), "ScaleDownBlocked".into())
        );
    }

    #[test]
    fn given_an_invalid_spec_when_computing_then_all_conditions_say_invalid_spec() {
        let invalid_spec = InvalidSpec {
            problems: vec!["spec.brokers is 0; at least 1 broker is required".into()],
        };
        let status = invalid(&cluster(), &invalid_spec, &at(1));
        assert_eq!(
            reason(&status, READY),
            ("False".into(), "InvalidSpec".into())
        );
        assert_eq!(
            reason(&status, DEGRADED),
            ("True".into(), "InvalidSpec".into())
        );
        assert_eq!(
            conditions::find(&status.conditions, READY)
                .expect("ready")
                .message,
            "spec.brokers is 0; at least 1 broker is required"
        );
    }
}
