//! User status: the outcome of a reconcile as a `Ready` condition with a
//! stable reason, plus the username, the Secret, the ACL count and the
//! certificate's expiry. Written only when it changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;

use crate::conditions::{DesiredCondition, READY, merge_conditions};
use crate::crd::{User, UserStatus};
use crate::ssa::merge_status_if_changed;

/// Stable reasons of the `Ready` condition.
pub mod reasons {
    /// Credentials, ACLs and the Secret are in place.
    pub const PROVISIONED: &str = "Provisioned";
    /// The spec is invalid (an ACL rule, a password).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The StreamCluster does not exist.
    pub const CLUSTER_NOT_FOUND: &str = "ClusterNotFound";
    /// The StreamCluster does not admit Users of this namespace.
    pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
    /// No listener of the cluster fits the user's authentication.
    pub const LISTENER_NOT_FOUND: &str = "ListenerNotFound";
    /// An older User of the cluster has the same username.
    pub const USERNAME_CONFLICT: &str = "UsernameConflict";
    /// A Secret with the target name exists and belongs to something else.
    pub const SECRET_CONFLICT: &str = "SecretConflict";
    /// The Secret or key named by `authentication.password` is missing.
    pub const PASSWORD_NOT_FOUND: &str = "PasswordNotFound";
    /// The clients CA Secret of the cluster is missing or unreadable.
    pub const CLIENTS_CA_NOT_READY: &str = "ClientsCaNotReady";
    /// The CA bundle Secret of the cluster is missing.
    pub const CLUSTER_CA_NOT_READY: &str = "ClusterCaNotReady";
    /// The metadata controller could not apply the ACLs yet.
    pub const ACLS_PENDING: &str = "AclsPending";
}

/// What a reconcile decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Provisioned.
    Ready {
        /// Human summary.
        message: String,
    },
    /// Not ready, for one of [`reasons`].
    NotReady {
        /// One of [`reasons`].
        reason: &'static str,
        /// Human explanation.
        message: String,
    },
}

/// Status fields besides the conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Kafka username.
    pub username: Option<String>,
    /// Secret name, once written.
    pub secret: Option<String>,
    /// ACLs of the principal.
    pub acls: Option<i32>,
    /// Certificate expiry, RFC 3339.
    pub certificate_not_after: Option<String>,
}

/// The status for an outcome. Fields the reconcile did not learn this
/// time (a refusal before the Secret step) keep their previous values.
pub fn compute(user: &User, outcome: &Outcome, report: &Report, now: &Time) -> UserStatus {
    let previous = user.status.clone().unwrap_or_default();
    let generation = user.metadata.generation;
    let desired = match outcome {
        Outcome::Ready { message } => {
            DesiredCondition::new(READY, true, reasons::PROVISIONED, message.clone())
        }
        Outcome::NotReady { reason, message } => {
            DesiredCondition::new(READY, false, reason, message.clone())
        }
    };
    UserStatus {
        observed_generation: generation,
        conditions: merge_conditions(&previous.conditions, &[desired], generation, now),
        username: report.username.clone().or(previous.username),
        secret: report.secret.clone().or(previous.secret),
        acls: report.acls.or(previous.acls),
        certificate_not_after: report
            .certificate_not_after
            .clone()
            .or(previous.certificate_not_after),
    }
}

/// Writes the status unless it equals the stored one; returns whether it
/// wrote.
pub async fn patch_if_changed(
    api: &Api<User>,
    user: &User,
    status: &UserStatus,
) -> Result<bool, kube::Error> {
    let body = json!(status);
    merge_status_if_changed(api, &user.name_any(), user.status.as_ref(), status, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions;
    use crate::user::fixtures::user;

    fn at(second: i64) -> Time {
        Time(jiff::Timestamp::from_second(second).expect("timestamp"))
    }

    #[test]
    fn given_a_refusal_after_provisioning_when_computing_then_the_reason_changes_and_fields_stay() {
        let mut u = user("team", "app", "2024-01-01T00:00:00Z");
        let report = Report {
            username: Some("team.app".into()),
            secret: Some("app".into()),
            acls: Some(4),
            certificate_not_after: None,
        };
        let ready = Outcome::Ready {
            message: "ok".into(),
        };
        u.status = Some(compute(&u, &ready, &report, &at(10)));
        assert_eq!(
            compute(&u, &ready, &report, &at(99)),
            u.status.clone().expect("status"),
            "no churn"
        );
        let refused = Outcome::NotReady {
            reason: reasons::NAMESPACE_NOT_ALLOWED,
            message: "no".into(),
        };
        u.metadata.generation = Some(2);
        let status = compute(&u, &refused, &Report::default(), &at(20));
        assert_eq!(status.username.as_deref(), Some("team.app"));
        assert_eq!(status.secret.as_deref(), Some("app"));
        assert_eq!(status.observed_generation, Some(2));
        let c = conditions::find(&status.conditions, READY).expect("ready");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "NamespaceNotAllowed")
        );
        assert_eq!(c.last_transition_time, at(20));
    }
}
