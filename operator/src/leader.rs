//! Leader election among operator replicas through a
//! `coordination.k8s.io/v1` Lease.
//!
//! Only the leader runs reconcilers. The algorithm follows client-go's
//! leader election:
//!
//! * every [`ElectionConfig::retry_period`] each replica reads the Lease;
//! * the holder renews it (writes `renewTime`) with an optimistic-concurrency
//!   replace (the read `resourceVersion`), so two writers can never both win;
//! * another replica takes the Lease over only after the Lease object stayed
//!   *unchanged* for `leaseDurationSeconds` as measured on its own monotonic
//!   clock — wall clocks of different nodes are never compared;
//! * a leader that cannot renew within [`ElectionConfig::renew_deadline`]
//!   (or sees another holder) steps down and the process exits, so a
//!   partitioned leader stops reconciling before anyone else may start;
//! * on graceful shutdown the leader releases the Lease (clears the holder)
//!   so a standby takes over at once instead of after the lease duration.
//!
//! A Lease is not fencing: a leader paused past the lease duration may
//! still act for a moment after another replica took over. What fences it
//! is the metadata controller's own epoch: the new leader's controller
//! claims the Kubernetes store (`metadata::store`), which bumps the epoch,
//! and every write of the older epoch is then refused as superseded.
//!
//! [`decide`], [`acquired`] and [`released`] are pure and unit tested;
//! [`LeaderElector::run`] is tested against a mocked API server.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::metrics::Metrics;

/// Timing of the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionConfig {
    /// Lease object name.
    pub lease_name: String,
    /// Namespace of the Lease (the operator's namespace).
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How long a leader keeps leading while renewals fail.
    pub renew_deadline: Duration,
    /// Time between attempts.
    pub retry_period: Duration,
}

/// Errors that end leadership.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Another replica holds the Lease now, or renewing failed for longer
    /// than the renew deadline.
    #[error("lost the leader Lease {lease}: {reason}")]
    Lost {
        /// `namespace/name` of the Lease.
        lease: String,
        /// What happened.
        reason: String,
    },
}

/// What to do with the Lease after reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it with us as holder.
    Create,
    /// The Lease is free or expired: write us as holder.
    TakeOver,
    /// We hold it: renew.
    Renew,
    /// Someone else holds a live Lease: wait.
    Wait,
}

/// Decides from the Lease as read and how long it has been unchanged (by
/// this replica's monotonic clock).
pub fn decide(
    lease: Option<&Lease>,
    identity: &str,
    unchanged_for: Duration,
    default_duration: Duration,
) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(default_duration);
    if unchanged_for >= duration {
        Decision::TakeOver
    } else {
        Decision::Wait
    }
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

/// The Lease spec after we acquire or renew it. `acquireTime` and the
/// transition count change only when the holder changes.
pub fn acquired(
    previous: Option<&LeaseSpec>,
    identity: &str,
    now: MicroTime,
    duration: Duration,
) -> LeaseSpec {
    let previous = previous.cloned().unwrap_or_default();
    let same_holder = previous.holder_identity.as_deref() == Some(identity);
    let transitions = previous.lease_transitions.unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(identity.to_owned()),
        lease_duration_seconds: Some(seconds(duration)),
        acquire_time: if same_holder {
            previous.acquire_time.clone().or_else(|| Some(now.clone()))
        } else {
            Some(now.clone())
        },
        renew_time: Some(now),
        lease_transitions: Some(if same_holder || previous.holder_identity.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..previous
    }
}

/// The Lease spec after a graceful release: no holder, a 1-second duration
/// so any standby may take it at once.
pub fn released(previous: &LeaseSpec, now: MicroTime) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(now),
        ..previous.clone()
    }
}

fn micro_now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// Result of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// We hold the Lease (acquired or renewed).
    Held,
    /// Someone else holds it.
    HeldByOther,
    /// A write raced with another writer; look again next time.
    Raced,
}

/// Runs the election for one replica.
pub struct LeaderElector {
    api: Api<Lease>,
    config: ElectionConfig,
    metrics: Metrics,
    /// resourceVersion last read and when (monotonic) it was first seen.
    observed: Option<(String, Instant)>,
}

impl LeaderElector {
    /// An elector for `config`.
    pub fn new(client: Client, config: ElectionConfig, metrics: Metrics) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            metrics,
            observed: None,
        }
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.lease_name)
    }

    async fn attempt(&mut self) -> Result<Attempt, kube::Error> {
        let lease = self.api.get_opt(&self.config.lease_name).await?;
        let version = lease
            .as_ref()
            .and_then(|l| l.metadata.resource_version.clone())
            .unwrap_or_default();
        let now = Instant::now();
        let since = match &self.observed {
            Some((seen, since)) if *seen == version => *since,
            _ => {
                self.observed = Some((version, now));
                now
            }
        };
        let decision = decide(
            lease.as_ref(),
            &self.config.identity,
            now.saturating_duration_since(since),
            self.config.lease_duration,
        );
        let spec = acquired(
            lease.as_ref().and_then(|l| l.spec.as_ref()),
            &self.config.identity,
            micro_now(),
            self.config.lease_duration,
        );
        let result = match (decision, lease) {
            (Decision::Wait, _) => return Ok(Attempt::HeldByOther),
            (Decision::Create, _) => {
                let new = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.lease_name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &new).await
            }
            (Decision::TakeOver | Decision::Renew, Some(mut existing)) => {
                existing.spec = Some(spec);
                // `existing` carries the resourceVersion we read: the API
                // server refuses the write if anyone wrote in between.
                self.api
                    .replace(&self.config.lease_name, &PostParams::default(), &existing)
                    .await
            }
            (Decision::TakeOver | Decision::Renew, None) => return Ok(Attempt::Raced),
        };
        match result {
            Ok(written) => {
                self.observed = Some((
                    written.resource_version().unwrap_or_default(),
                    Instant::now(),
                ));
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Raced),
            Err(error) => Err(error),
        }
    }

    /// Releases the Lease if we hold it.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.lease_name).await? else {
            return Ok(());
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        lease.spec = Some(released(&spec, micro_now()));
        self.api
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }

    /// Runs until `shutdown` completes (then releases the Lease and returns
    /// `Ok`) or leadership is lost (returns `Err`). `leader` is set to true
    /// while this replica leads.
    pub async fn run(
        mut self,
        leader: watch::Sender<bool>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), LeaderError> {
        tokio::pin!(shutdown);
        let mut last_renewal: Option<Instant> = None;
        info!(lease = %self.lease_ref(), identity = %self.config.identity, "joining leader election");
        loop {
            let leading = *leader.borrow();
            match self.attempt().await {
                Ok(Attempt::Held) => {
                    last_renewal = Some(Instant::now());
                    if !leading {
                        info!(lease = %self.lease_ref(), identity = %self.config.identity, "became leader");
                        self.metrics.set_leader(true);
                        leader.send_replace(true);
                    }
                }
                Ok(Attempt::HeldByOther) if leading => {
                    return Err(
                        self.step_down(&leader, "another replica holds the Lease".to_owned())
                    );
                }
                Ok(Attempt::HeldByOther | Attempt::Raced) => {}
                Err(error) => {
                    warn!(%error, lease = %self.lease_ref(), "leader election attempt failed");
                    if leading
                        && last_renewal.is_none_or(|t| t.elapsed() > self.config.renew_deadline)
                    {
                        let reason = format!(
                            "could not renew within {:?}: {error}",
                            self.config.renew_deadline
                        );
                        return Err(self.step_down(&leader, reason));
                    }
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
        if *leader.borrow() {
            match self.release().await {
                Ok(()) => info!(lease = %self.lease_ref(), "released leader Lease"),
                Err(error) => {
                    warn!(%error, lease = %self.lease_ref(), "cannot release leader Lease; it expires on its own")
                }
            }
            self.metrics.set_leader(false);
            leader.send_replace(false);
        }
        Ok(())
    }

    fn step_down(&self, leader: &watch::Sender<bool>, reason: String) -> LeaderError {
        warn!(lease = %self.lease_ref(), %reason, "stepping down as leader");
        self.metrics.set_leader(false);
        leader.send_replace(false);
        LeaderError::Lost {
            lease: self.lease_ref(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DURATION: Duration = Duration::from_secs(15);

    fn lease(holder: Option<&str>, duration_secs: i32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("rill-operator".into()),
                resource_version: Some("7".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(duration_secs),
                lease_transitions: Some(2),
                ..LeaseSpec::default()
            }),
        }
    }

    fn t(second: i64) -> MicroTime {
        MicroTime(jiff::Timestamp::from_second(second).expect("timestamp"))
    }

    #[test]
    fn given_no_lease_when_deciding_then_create() {
        assert_eq!(
            decide(None, "a", Duration::ZERO, DURATION),
            Decision::Create
        );
    }

    #[test]
    fn given_our_lease_when_deciding_then_renew() {
        assert_eq!(
            decide(
                Some(&lease(Some("a"), 15)),
                "a",
                Duration::from_secs(100),
                DURATION
            ),
            Decision::Renew
        );
    }

    #[test]
    fn given_a_live_lease_of_another_when_deciding_then_wait_until_it_expires() {
        let other = lease(Some("b"), 15);
        assert_eq!(
            decide(Some(&other), "a", Duration::from_secs(14), DURATION),
            Decision::Wait
        );
        assert_eq!(
            decide(Some(&other), "a", Duration::from_secs(15), DURATION),
            Decision::TakeOver
        );
    }

    #[test]
    fn given_a_released_lease_when_deciding_then_take_over_at_once() {
        assert_eq!(
            decide(Some(&lease(None, 1)), "a", Duration::ZERO, DURATION),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&lease(Some(""), 1)), "a", Duration::ZERO, DURATION),
            Decision::TakeOver
        );
    }

    #[test]
    fn given_a_takeover_when_building_the_spec_then_transitions_and_acquire_time_change() {
        let previous = lease(Some("b"), 15).spec.expect("spec");
        let spec = acquired(Some(&previous), "a", t(100), DURATION);
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(spec.acquire_time, Some(t(100)));
        assert_eq!(spec.renew_time, Some(t(100)));
        assert_eq!(spec.lease_duration_seconds, Some(15));
    }

    #[test]
    fn given_a_renewal_when_building_the_spec_then_only_renew_time_moves() {
        let first = acquired(None, "a", t(100), DURATION);
        let renewed = acquired(Some(&first), "a", t(110), DURATION);
        assert_eq!(renewed.acquire_time, Some(t(100)));
        assert_eq!(renewed.renew_time, Some(t(110)));
        assert_eq!(renewed.lease_transitions, first.lease_transitions);
    }

    #[test]
    fn given_a_release_when_building_the_spec_then_holder_is_cleared() {
        let held = acquired(None, "a", t(100), DURATION);
        let spec = released(&held, t(120));
        assert_eq!(spec.holder_identity, None);
        assert_eq!(spec.lease_duration_seconds, Some(1));
        assert_eq!(spec.lease_transitions, held.lease_transitions);
        assert_eq!(
            decide(
                Some(&Lease {
                    metadata: ObjectMeta::default(),
                    spec: Some(spec)
                }),
                "b",
                Duration::ZERO,
                DURATION
            ),
            Decision::TakeOver
        );
    }

    const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/rill-system/leases";

    fn config(retry_period: Duration) -> ElectionConfig {
        ElectionConfig {
            lease_name: "rill-operator".into(),
            namespace: "rill-system".into(),
            identity: "op-0".into(),
            lease_duration: DURATION,
            renew_deadline: Duration::from_secs(10),
            retry_period,
        }
    }

    fn with_version(mut body: serde_json::Value, version: &str) -> serde_json::Value {
        body["metadata"]["resourceVersion"] = serde_json::json!(version);
        body
    }

    #[tokio::test]
    async fn given_no_lease_when_running_then_it_creates_it_leads_and_releases_on_shutdown() {
        use crate::test_support::{TIMEOUT, finished, mock_client};
        use http::Method;
        let (client, mut server) = mock_client();
        let metrics = Metrics::new().expect("metrics");
        let (leader_tx, mut leader_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // A retry period far beyond the test: the only attempt is the first.
        let elector =
            LeaderElector::new(client, config(Duration::from_secs(3600)), metrics.clone());
        let task = tokio::spawn(elector.run(leader_tx, async {
            let _ = stop_rx.await;
        }));

        server
            .expect(Method::GET, &format!("{LEASES}/rill-operator"))
            .await
            .not_found();
        let create = server.expect(Method::POST, LEASES).await;
        assert_eq!(create.body["spec"]["holderIdentity"], "op-0");
        assert_eq!(create.body["spec"]["leaseDurationSeconds"], 15);
        let created = with_version(create.body.clone(), "1");
        create.respond(201, &created);
        tokio::time::timeout(TIMEOUT, leader_rx.wait_for(|leading| *leading))
            .await
            .expect("becomes leader in time")
            .expect("sender alive");
        assert!(
            metrics
                .render()
                .expect("render")
                .contains("rill_operator_leader 1")
        );

        stop_tx.send(()).expect("stop");
        server
            .expect(Method::GET, &format!("{LEASES}/rill-operator"))
            .await
            .respond(200, &created);
        let release = server
            .expect(Method::PUT, &format!("{LEASES}/rill-operator"))
            .await;
        assert_eq!(
            release.body["metadata"]["resourceVersion"], "1",
            "release is a compare-and-swap"
        );
        assert!(
            release.body["spec"]
                .get("holderIdentity")
                .is_none_or(serde_json::Value::is_null)
        );
        assert_eq!(release.body["spec"]["leaseDurationSeconds"], 1);
        let released = with_version(release.body.clone(), "2");
        release.respond(200, &released);

        finished(task).await.expect("clean shutdown");
        assert!(!*leader_rx.borrow());
        assert!(
            metrics
                .render()
                .expect("render")
                .contains("rill_operator_leader 0")
        );
    }

    #[tokio::test]
    async fn given_a_leader_when_another_replica_holds_the_lease_then_it_steps_down_with_an_error()
    {
        use crate::test_support::{TIMEOUT, finished, mock_client};
        use http::Method;
        let (client, mut server) = mock_client();
        let (leader_tx, mut leader_rx) = watch::channel(false);
        let elector = LeaderElector::new(
            client,
            config(Duration::from_millis(10)),
            Metrics::new().expect("metrics"),
        );
        let task = tokio::spawn(elector.run(leader_tx, std::future::pending::<()>()));

        server
            .expect(Method::GET, &format!("{LEASES}/rill-operator"))
            .await
            .not_found();
        let create = server.expect(Method::POST, LEASES).await;
        let created = with_version(create.body.clone(), "1");
        create.respond(201, &created);
        tokio::time::timeout(TIMEOUT, leader_rx.wait_for(|leading| *leading))
            .await
            .expect("becomes leader in time")
            .expect("sender alive");

        // Someone else wrote the Lease (e.g. after a long pause of this replica).
        let mut stolen = created.clone();
        stolen["spec"]["holderIdentity"] = serde_json::json!("op-1");
        server
            .expect(Method::GET, &format!("{LEASES}/rill-operator"))
            .await
            .respond(200, &with_version(stolen, "5"));
        let error = finished(task).await.expect_err("leadership lost");
        assert!(matches!(error, LeaderError::Lost { .. }));
        assert!(!*leader_rx.borrow());
    }

    #[tokio::test]
    async fn given_a_live_lease_of_another_replica_when_running_then_it_follows_and_does_not_release()
     {
        use crate::test_support::{finished, mock_client};
        use http::Method;
        let (client, mut server) = mock_client();
        let (leader_tx, leader_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let elector = LeaderElector::new(
            client,
            config(Duration::from_secs(3600)),
            Metrics::new().expect("metrics"),
        );
        let task = tokio::spawn(elector.run(leader_tx, async {
            let _ = stop_rx.await;
        }));
        let other = serde_json::to_value(lease(Some("op-1"), 15)).expect("lease");
        server
            .expect(Method::GET, &format!("{LEASES}/rill-operator"))
            .await
            .respond(200, &other);
        stop_tx.send(()).expect("stop");
        finished(task).await.expect("clean shutdown");
        assert!(!*leader_rx.borrow());
    }
}
