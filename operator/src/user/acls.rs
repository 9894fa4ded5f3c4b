//! A User's ACLs: `spec.authorization.acls` turned into Kafka ACLs of the
//! user's principal, and the difference with what the cluster holds.
//!
//! The operator owns every ACL of an admitted User's principal: the
//! cluster's set for that principal is made equal to the spec (missing
//! ones created, extra ones deleted, each by an exact filter), and emptied
//! when the User is deleted. ACLs of other principals are never touched.

use futures::future::BoxFuture;
use rill_proto::acl::{
    self, Acl, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
};
use rill_proto::quota::{ClientQuotas, EntityName, QuotaAlteration, QuotaEntity, QuotaKey};

use crate::crd::{AclOperation, AclPatternType, AclResourceType, AclRuleType, UserSpec};

fn resource_type(t: AclResourceType) -> ResourceType {
    match t {
        AclResourceType::Topic => ResourceType::Topic,
        AclResourceType::Group => ResourceType::Group,
        AclResourceType::Cluster => ResourceType::Cluster,
        AclResourceType::TransactionalId => ResourceType::TransactionalId,
    }
}

fn operation(o: AclOperation) -> Operation {
    match o {
        AclOperation::All => Operation::All,
        AclOperation::Read => Operation::Read,
        AclOperation::Write => Operation::Write,
        AclOperation::Create => Operation::Create,
        AclOperation::Delete => Operation::Delete,
        AclOperation::Alter => Operation::Alter,
        AclOperation::Describe => Operation::Describe,
        AclOperation::ClusterAction => Operation::ClusterAction,
        AclOperation::DescribeConfigs => Operation::DescribeConfigs,
        AclOperation::AlterConfigs => Operation::AlterConfigs,
        AclOperation::IdempotentWrite => Operation::IdempotentWrite,
    }
}

/// The Kafka ACLs `spec` asks for `principal`, sorted and without
/// duplicates; or every problem found, one sentence each.
pub fn desired(spec: &UserSpec, principal: &str) -> Result<Vec<Acl>, Vec<String>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let rules = spec
        .authorization
        .as_ref()
        .map(|a| a.acls.as_slice())
        .unwrap_or_default();
    for (i, rule) in rules.iter().enumerate() {
        let resource_type = resource_type(rule.resource.type_);
        let name = match (&rule.resource.name, resource_type) {
            (Some(name), _) => name.clone(),
            (None, ResourceType::Cluster) => acl::CLUSTER_NAME.to_owned(),
            (None, _) => {
                problems.push(format!(
                    "spec.authorization.acls[{i}].resource.name is required for {resource_type} resources"
                ));
                continue;
            }
        };
        let pattern = match rule.resource.pattern_type {
            AclPatternType::Literal => PatternType::Literal,
            AclPatternType::Prefixed => PatternType::Prefixed,
        };
        let permission = match rule.type_ {
            AclRuleType::Allow => Permission::Allow,
            AclRuleType::Deny => Permission::Deny,
        };
        if rule.operations.is_empty() {
            problems.push(format!("spec.authorization.acls[{i}].operations is empty"));
        }
        for op in &rule.operations {
            let candidate = Acl {
                resource_type,
                pattern,
                name: name.clone(),
                principal: principal.to_owned(),
                host: rule.host.clone(),
                operation: operation(*op),
                permission,
            };
            match candidate.validate() {
                Ok(()) => out.push(candidate),
                Err(e) => problems.push(format!("spec.authorization.acls[{i}]: {e}")),
            }
        }
    }
    if !problems.is_empty() {
        problems.dedup();
        return Err(problems);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// What to change so the cluster's ACLs of one principal equal the
/// desired ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclDiff {
    /// ACLs to create.
    pub create: Vec<Acl>,
    /// ACLs to delete (of the principal, not desired).
    pub delete: Vec<Acl>,
}

impl AclDiff {
    /// Whether nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.delete.is_empty()
    }
}

/// The changes that make `current`'s ACLs of `principal` equal `desired`
/// (whose principal must be `principal`). Other principals' ACLs are
/// ignored.
pub fn diff(current: &[Acl], principal: &str, desired: &[Acl]) -> AclDiff {
    let held: Vec<&Acl> = current
        .iter()
        .filter(|a| a.principal == principal)
        .collect();
    let mut create: Vec<Acl> = desired
        .iter()
        .filter(|d| !held.contains(d))
        .cloned()
        .collect();
    let mut delete: Vec<Acl> = held
        .into_iter()
        .filter(|h| !desired.contains(h))
        .cloned()
        .collect();
    create.sort();
    create.dedup();
    delete.sort();
    delete.dedup();
    AclDiff { create, delete }
}

/// A filter matching exactly `acl` and nothing else.
pub fn exact_filter(acl: &Acl) -> AclFilter {
    AclFilter {
        resource_type: Some(acl.resource_type),
        name: Some(acl.name.clone()),
        pattern: PatternFilter::Exactly(acl.pattern),
        principal: Some(acl.principal.clone()),
        host: Some(acl.host.clone()),
        operation: Some(acl.operation),
        permission: Some(acl.permission),
    }
}

/// What [`AclSync::sync_principal`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclSyncOutcome {
    /// ACLs created.
    pub created: usize,
    /// ACLs deleted.
    pub deleted: usize,
}

/// Why the ACLs could not be synchronised (retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclSyncError {
    /// No metadata controller serves the cluster (yet).
    #[error("the metadata controller of the cluster is not available: {0}")]
    Unavailable(String),
    /// The controller refused an ACL.
    #[error("the metadata controller refused an ACL: {0}")]
    Refused(String),
}

/// Makes the cluster's ACL set of one principal equal a desired set.
/// Implemented by the operator's metadata controllers.
pub trait AclSync: Send + Sync {
    /// Creates and deletes ACLs of `principal` on cluster
    /// `namespace/cluster` until they equal `desired`. When the cluster
    /// does not exist there is nothing to change.
    fn sync_principal<'a>(
        &'a self,
        namespace: &'a str,
        cluster: &'a str,
        principal: &'a str,
        desired: &'a [Acl],
    ) -> BoxFuture<'a, Result<AclSyncOutcome, AclSyncError>>;

    /// Sets the client quotas of `user` (Kafka's user entity) on cluster
    /// `namespace/cluster` to `desired`, removing keys it leaves out.
    /// Returns whether anything changed.
    fn sync_quotas<'a>(
        &'a self,
        namespace: &'a str,
        cluster: &'a str,
        user: &'a str,
        desired: &'a [(QuotaKey, f64)],
    ) -> BoxFuture<'a, Result<bool, AclSyncError>>;
}

/// The change that makes `user`'s quotas in `current` equal `desired`;
/// `None` when they already are.
pub fn quota_alteration(
    current: &ClientQuotas,
    user: &str,
    desired: &[(QuotaKey, f64)],
) -> Option<QuotaAlteration> {
    let entity = QuotaEntity::user(EntityName::Named(user.to_owned()));
    let ops: Vec<(QuotaKey, Option<f64>)> = QuotaKey::ALL
        .into_iter()
        .filter_map(|key| {
            let want = desired.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
            (current.get(&entity, key) != want).then_some((key, want))
        })
        .collect();
    (!ops.is_empty()).then_some(QuotaAlteration { entity, ops })
}

/// The hook of a context without metadata controllers (reconcile tests):
/// every sync fails as unavailable.
#[derive(Debug, Default)]
pub struct NoAclController;

impl AclSync for NoAclController {
    fn sync_principal<'a>(
        &'a self,
        namespace: &'a str,
        cluster: &'a str,
        _principal: &'a str,
        _desired: &'a [Acl],
    ) -> BoxFuture<'a, Result<AclSyncOutcome, AclSyncError>> {
        Box::pin(async move {
            Err(AclSyncError::Unavailable(format!(
                "no metadata controller hosts {namespace}/{cluster}"
            )))
        })
    }

    fn sync_quotas<'a>(
        &'a self,
        namespace: &'a str,
        cluster: &'a str,
        _user: &'a str,
        _desired: &'a [(QuotaKey, f64)],
    ) -> BoxFuture<'a, Result<bool, AclSyncError>> {
        Box::pin(async move {
            Err(AclSyncError::Unavailable(format!(
                "no metadata controller hosts {namespace}/{cluster}"
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::UserSpec;
    use serde_json::json;

    fn spec(acls: serde_json::Value) -> UserSpec {
        serde_json::from_value(json!({
            "cluster": {"name": "events"},
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"acls": acls},
        }))
        .expect("spec")
    }

    fn acl(principal: &str, rt: ResourceType, name: &str, op: Operation) -> Acl {
        Acl {
            resource_type: rt,
            pattern: PatternType::Literal,
            name: name.into(),
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn given_rules_when_converting_then_each_operation_is_one_acl_of_the_principal() {
        let s = spec(json!([
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Write", "Read", "Describe"]},
            {"resource": {"type": "group", "name": "g"}, "operations": ["Read"]},
            {"resource": {"type": "topic", "name": "audit-", "patternType": "prefixed"}, "operations": ["Write"], "type": "deny", "host": "10.0.0.1"},
            {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"]},
        ]));
        let acls = desired(&s, "User:app").expect("valid");
        assert_eq!(acls.len(), 6);
        assert!(acls.iter().all(|a| a.principal == "User:app"));
        assert!(acls.contains(&acl(
            "User:app",
            ResourceType::Topic,
            "orders",
            Operation::Write
        )));
        assert!(acls.contains(&acl("User:app", ResourceType::Group, "g", Operation::Read)));
        assert!(acls.contains(&acl(
            "User:app",
            ResourceType::Cluster,
            "kafka-cluster",
            Operation::IdempotentWrite
        )));
        let deny = acls
            .iter()
            .find(|a| a.permission == Permission::Deny)
            .expect("deny rule");
        assert_eq!(
            (deny.pattern, deny.name.as_str(), deny.host.as_str()),
            (PatternType::Prefixed, "audit-", "10.0.0.1")
        );
        let mut sorted = acls.clone();
        sorted.sort();
        assert_eq!(acls, sorted, "a stable order");
    }

    #[test]
    fn given_an_operation_that_does_not_apply_when_converting_then_it_is_refused_by_index() {
        let s = spec(json!([
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read"]},
            {"resource": {"type": "group", "name": "g"}, "operations": ["Write"]},
            {"resource": {"type": "topic"}, "operations": ["Read"]},
        ]));
        let problems = desired(&s, "User:app").expect_err("invalid");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("spec.authorization.acls[1]"),
            "{problems:?}"
        );
        assert!(
            problems[0].contains("does not apply to GROUP"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("acls[2].resource.name is required"),
            "{problems:?}"
        );
    }

    #[test]
    fn given_no_authorization_when_converting_then_there_are_no_acls() {
        let s: UserSpec = serde_json::from_value(json!({
            "cluster": {"name": "events"}, "authentication": {"type": "tls"}
        }))
        .expect("spec");
        assert_eq!(desired(&s, "User:app"), Ok(vec![]));
    }

    #[test]
    fn given_held_and_desired_acls_when_diffing_then_only_this_principal_changes() {
        let keep = acl("User:app", ResourceType::Topic, "orders", Operation::Read);
        let extra = acl("User:app", ResourceType::Topic, "orders", Operation::Delete);
        let missing = acl("User:app", ResourceType::Group, "g", Operation::Read);
        let other = acl(
            "User:other",
            ResourceType::Topic,
            "orders",
            Operation::Delete,
        );
        let current = vec![keep.clone(), extra.clone(), other.clone()];
        let d = diff(&current, "User:app", &[keep.clone(), missing.clone()]);
        assert_eq!(d.create, vec![missing.clone()]);
        assert_eq!(d.delete, vec![extra]);
        assert!(
            diff(
                &[keep.clone(), missing.clone(), other.clone()],
                "User:app",
                &[keep.clone(), missing]
            )
            .is_empty()
        );
        let revoke = diff(&current, "User:app", &[]);
        assert_eq!(revoke.delete.len(), 2);
        assert!(
            !revoke.delete.contains(&other),
            "another principal's ACL stays"
        );
    }

    #[test]
    fn given_an_acl_when_building_its_filter_then_it_matches_that_acl_only() {
        let a = acl("User:app", ResourceType::Topic, "orders", Operation::Read);
        let f = exact_filter(&a);
        assert!(f.matches(&a));
        let mut b = a.clone();
        b.pattern = PatternType::Prefixed;
        assert!(!f.matches(&b));
        let mut c = a.clone();
        c.host = "10.0.0.1".into();
        assert!(!f.matches(&c));
        let mut d = a;
        d.principal = "User:other".into();
        assert!(!f.matches(&d));
    }

    #[test]
    fn quota_alteration_sets_changed_keys_and_removes_dropped_ones() {
        let mut current = ClientQuotas::default();
        let entity = QuotaEntity::user(EntityName::Named("app".into()));
        current.apply(&QuotaAlteration {
            entity: entity.clone(),
            ops: vec![
                (QuotaKey::ProducerByteRate, Some(1000.0)),
                (QuotaKey::RequestPercentage, Some(50.0)),
            ],
        });
        // The same quotas: nothing to do.
        let same = [
            (QuotaKey::ProducerByteRate, 1000.0),
            (QuotaKey::RequestPercentage, 50.0),
        ];
        assert_eq!(quota_alteration(&current, "app", &same), None);
        // A new rate, a new key, and a key dropped from the spec.
        let want = [
            (QuotaKey::ProducerByteRate, 2000.0),
            (QuotaKey::ConsumerByteRate, 500.0),
        ];
        let change = quota_alteration(&current, "app", &want).unwrap();
        assert_eq!(change.entity, entity);
        assert_eq!(
            change.ops,
            vec![
                (QuotaKey::ProducerByteRate, Some(2000.0)),
                (QuotaKey::ConsumerByteRate, Some(500.0)),
                (QuotaKey::RequestPercentage, None),
            ]
        );
        // Another user's quotas are not this user's.
        assert_eq!(quota_alteration(&current, "other", &[]), None);
    }
}
