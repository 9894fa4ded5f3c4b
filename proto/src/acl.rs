//! Kafka's ACL model and the decision rule every Rill broker will apply to
//! it: who (a principal, from a host) may do what (an operation) to which
//! resource (a topic, a group, the cluster, a transactional id), named
//! literally or by prefix.
//!
//! The rule is Kafka's (`StandardAuthorizer`):
//! - a super user may do everything;
//! - otherwise an ACL applies to a request when its resource type is the
//!   request's, its name is the resource's name (literal), `*` (literal
//!   wildcard) or a prefix of it (prefixed), its principal is the
//!   request's or `User:*`, and its host is the request's or `*`;
//! - any applying DENY for the operation (or for ALL) refuses;
//! - else any applying ALLOW for the operation, for ALL, or for an
//!   operation that implies it (READ, WRITE, DELETE and ALTER imply
//!   DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS) permits;
//! - else the request is refused: no ACL means no access.
//!
//! Filters ([`AclFilter`]) select ACLs for DescribeAcls and DeleteAcls with
//! Kafka's ANY and MATCH semantics.
//!
//! The numeric codes are Kafka's wire codes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::controller as wire;

/// What kind of thing an ACL protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

impl ResourceType {
    pub const ALL: [Self; 4] = [
        Self::Topic,
        Self::Group,
        Self::Cluster,
        Self::TransactionalId,
    ];

    /// Kafka's code.
    pub fn code(self) -> i8 {
        match self {
            Self::Topic => 2,
            Self::Group => 3,
            Self::Cluster => 4,
            Self::TransactionalId => 5,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The operations that make sense on this resource type (Kafka refuses
    /// others when an ACL is created).
    pub fn operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            Self::Topic => &[
                All,
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            Self::Group => &[All, Read, Describe, Delete],
            Self::Cluster => &[
                All,
                Create,
                Alter,
                Describe,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
            ],
            Self::TransactionalId => &[All, Write, Describe],
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Topic => "TOPIC",
            Self::Group => "GROUP",
            Self::Cluster => "CLUSTER",
            Self::TransactionalId => "TRANSACTIONAL_ID",
        })
    }
}

/// How an ACL's resource name is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PatternType {
    /// The name exactly, or every resource when the name is `*`.
    Literal,
    /// Every resource whose name starts with the name.
    Prefixed,
}

impl PatternType {
    pub fn code(self) -> i8 {
        match self {
            Self::Literal => 3,
            Self::Prefixed => 4,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        [Self::Literal, Self::Prefixed]
            .into_iter()
            .find(|p| p.code() == code)
    }
}

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl Operation {
    const EVERY: [Self; 11] = [
        Self::All,
        Self::Read,
        Self::Write,
        Self::Create,
        Self::Delete,
        Self::Alter,
        Self::Describe,
        Self::ClusterAction,
        Self::DescribeConfigs,
        Self::AlterConfigs,
        Self::IdempotentWrite,
    ];

    pub fn code(self) -> i8 {
        match self {
            Self::All => 2,
            Self::Read => 3,
            Self::Write => 4,
            Self::Create => 5,
            Self::Delete => 6,
            Self::Alter => 7,
            Self::Describe => 8,
            Self::ClusterAction => 9,
            Self::DescribeConfigs => 10,
            Self::AlterConfigs => 11,
            Self::IdempotentWrite => 12,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::EVERY.into_iter().find(|o| o.code() == code)
    }

    /// Whether an ALLOW for `self` permits `wanted`.
    fn allows(self, wanted: Self) -> bool {
        self == wanted
            || self == Self::All
            || (wanted == Self::Describe
                && matches!(self, Self::Read | Self::Write | Self::Delete | Self::Alter))
            || (wanted == Self::DescribeConfigs && self == Self::AlterConfigs)
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    Deny,
    Allow,
}

impl Permission {
    pub fn code(self) -> i8 {
        match self {
            Self::Deny => 2,
            Self::Allow => 3,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        [Self::Deny, Self::Allow]
            .into_iter()
            .find(|p| p.code() == code)
    }
}

/// The name of the one cluster resource (Kafka's `kafka-cluster`).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The literal name, principal or host that matches every one.
pub const WILDCARD: &str = "*";
/// The principal that matches every user.
pub const ANY_USER: &str = "User:*";

/// One ACL: `principal` from `host` is `permission`ed to `operation` the
/// resources `resource_type`/`pattern`/`name` designates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Acl {
    pub resource_type: ResourceType,
    pub pattern: PatternType,
    pub name: String,
    /// `User:alice`, or [`ANY_USER`].
    pub principal: String,
    /// An IP address, or [`WILDCARD`].
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Why an ACL cannot be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("the resource name is empty")]
    EmptyName,
    #[error("the cluster resource is named `{CLUSTER_NAME}`, not `{0}`")]
    ClusterName(String),
    #[error("principal `{0}` is not of the form User:<name>")]
    Principal(String),
    #[error("the host is empty (use `*` for every host)")]
    EmptyHost,
    #[error("{operation:?} does not apply to {resource_type} resources")]
    Operation {
        resource_type: ResourceType,
        operation: Operation,
    },
}

impl Acl {
    /// Checks what Kafka checks when an ACL is created.
    pub fn validate(&self) -> Result<(), AclError> {
        if self.name.is_empty() {
            return Err(AclError::EmptyName);
        }
        if self.resource_type == ResourceType::Cluster && self.name != CLUSTER_NAME {
            return Err(AclError::ClusterName(self.name.clone()));
        }
        match self.principal.split_once(':') {
            Some(("User", name)) if !name.is_empty() => {}
            _ => return Err(AclError::Principal(self.principal.clone())),
        }
        if self.host.is_empty() {
            return Err(AclError::EmptyHost);
        }
        if !self.resource_type.operations().contains(&self.operation) {
            return Err(AclError::Operation {
                resource_type: self.resource_type,
                operation: self.operation,
            });
        }
        Ok(())
    }

    /// Whether this ACL names `name` (of its resource type).
    fn covers(&self, name: &str) -> bool {
        match self.pattern {
            PatternType::Literal => self.name == name || self.name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&self.name),
        }
    }

    /// Whether this ACL applies to `principal` connecting from `host`.
    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == ANY_USER)
            && (self.host == host || self.host == WILDCARD)
    }
}

/// What a request is: who asks, from where, to do what to which resource.
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    pub principal: &'a str,
    pub host: &'a str,
    pub operation: Operation,
    pub resource_type: ResourceType,
    pub name: &'a str,
}

/// Kafka's decision for `action` under `acls`, with `super_users` (full
/// principals, `User:admin`) allowed everything.
pub fn authorize<'a>(
    acls: impl IntoIterator<Item = &'a Acl>,
    super_users: &[String],
    action: &Action<'_>,
) -> bool {
    if super_users.iter().any(|s| s == action.principal) {
        return true;
    }
    let mut allowed = false;
    for acl in acls {
        if acl.resource_type != action.resource_type
            || !acl.covers(action.name)
            || !acl.applies_to(action.principal, action.host)
        {
            continue;
        }
        match acl.permission {
            Permission::Deny
                if acl.operation == action.operation || acl.operation == Operation::All =>
            {
                return false;
            }
            Permission::Deny => {}
            Permission::Allow => allowed |= acl.operation.allows(action.operation),
        }
    }
    allowed
}

/// Whether `principal` from `host` may do `operation` to at least one
/// resource of `resource_type`: some ALLOW applies to it, and no DENY for
/// the operation covers every such resource (a literal `*` or an empty
/// prefix). Kafka asks this for idempotent producers, which may start with
/// WRITE on any topic instead of IDEMPOTENT_WRITE on the cluster.
pub fn authorize_any<'a>(
    acls: impl IntoIterator<Item = &'a Acl> + Clone,
    super_users: &[String],
    principal: &str,
    host: &str,
    operation: Operation,
    resource_type: ResourceType,
) -> bool {
    if super_users.iter().any(|s| s == principal) {
        return true;
    }
    let applying =
        |acl: &&Acl| acl.resource_type == resource_type && acl.applies_to(principal, host);
    let denied_everywhere = acls.clone().into_iter().filter(applying).any(|acl| {
        acl.permission == Permission::Deny
            && (acl.operation == operation || acl.operation == Operation::All)
            && match acl.pattern {
                PatternType::Literal => acl.name == WILDCARD,
                PatternType::Prefixed => acl.name.is_empty(),
            }
    });
    !denied_everywhere
        && acls
            .into_iter()
            .filter(applying)
            .any(|acl| acl.permission == Permission::Allow && acl.operation.allows(operation))
}

/// Applies CreateAcls and DeleteAcls to `acls`: each creation is validated
/// and added unless present; each filter then deletes what it matches.
/// Returns the outcome of each creation and the ACLs each filter deleted.
/// `acls` stays sorted, without duplicates.
pub fn alter(
    acls: &mut Vec<Acl>,
    creations: Vec<Acl>,
    deletions: &[AclFilter],
) -> (Vec<Result<(), String>>, Vec<Vec<Acl>>) {
    let created = creations
        .into_iter()
        .map(|acl| {
            acl.validate().map_err(|e| e.to_string())?;
            if !acls.contains(&acl) {
                acls.push(acl);
            }
            Ok(())
        })
        .collect();
    let deleted = deletions
        .iter()
        .map(|filter| {
            let (gone, kept): (Vec<Acl>, Vec<Acl>) = std::mem::take(acls)
                .into_iter()
                .partition(|a| filter.matches(a));
            *acls = kept;
            gone
        })
        .collect();
    acls.sort();
    acls.dedup();
    (created, deleted)
}

/// How a filter matches resource names (DescribeAcls, DeleteAcls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternFilter {
    /// Every pattern type.
    Any,
    /// ACLs that would apply to a resource with the filter's name: literal
    /// equal, literal `*`, prefixed ones that are prefixes of the name.
    Match,
    /// Exactly this pattern type.
    Exactly(PatternType),
}

impl PatternFilter {
    /// From Kafka's code (1 ANY, 2 MATCH, 3 LITERAL, 4 PREFIXED).
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            1 => Some(Self::Any),
            2 => Some(Self::Match),
            other => PatternType::from_code(other).map(Self::Exactly),
        }
    }
}

/// Selects ACLs; `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// A filter matching every ACL.
    pub fn any() -> Self {
        Self {
            resource_type: None,
            name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    pub fn matches(&self, acl: &Acl) -> bool {
        let name_matches = match (&self.pattern, &self.name) {
            (PatternFilter::Match, Some(name)) => acl.covers(name),
            (PatternFilter::Match, None) | (PatternFilter::Any, None) => true,
            (PatternFilter::Any, Some(name)) => acl.name == *name,
            (PatternFilter::Exactly(p), name) => {
                acl.pattern == *p && name.as_ref().is_none_or(|n| acl.name == *n)
            }
        };
        name_matches
            && self.resource_type.is_none_or(|r| r == acl.resource_type)
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::All => "ALL",
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::Create => "CREATE",
            Self::Delete => "DELETE",
            Self::Alter => "ALTER",
            Self::Describe => "DESCRIBE",
            Self::ClusterAction => "CLUSTER_ACTION",
            Self::DescribeConfigs => "DESCRIBE_CONFIGS",
            Self::AlterConfigs => "ALTER_CONFIGS",
            Self::IdempotentWrite => "IDEMPOTENT_WRITE",
        };
        f.write_str(name)
    }
}

impl fmt::Display for Acl {
    /// `ALLOW User:alice from * READ TOPIC orders (LITERAL)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let permission = match self.permission {
            Permission::Allow => "ALLOW",
            Permission::Deny => "DENY",
        };
        let pattern = match self.pattern {
            PatternType::Literal => "LITERAL",
            PatternType::Prefixed => "PREFIXED",
        };
        write!(
            f,
            "{permission} {} from {} {} {} {} ({pattern})",
            self.principal, self.host, self.operation, self.resource_type, self.name
        )
    }
}

/// Why a wire ACL cannot be read.
fn unknown(what: &str, code: i32) -> String {
    format!("unknown {what} code {code}")
}

fn code8(code: i32) -> i8 {
    i8::try_from(code).unwrap_or(i8::MIN)
}

impl Acl {
    /// The controller protocol's form.
    pub fn to_wire(&self) -> wire::Acl {
        wire::Acl {
            resource_type: self.resource_type.code().into(),
            name: self.name.clone(),
            pattern: self.pattern.code().into(),
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: self.operation.code().into(),
            permission: self.permission.code().into(),
        }
    }

    /// Reads the controller protocol's form (not validated).
    pub fn from_wire(acl: &wire::Acl) -> Result<Self, String> {
        Ok(Self {
            resource_type: ResourceType::from_code(code8(acl.resource_type))
                .ok_or_else(|| unknown("resource type", acl.resource_type))?,
            name: acl.name.clone(),
            pattern: PatternType::from_code(code8(acl.pattern))
                .ok_or_else(|| unknown("pattern type", acl.pattern))?,
            principal: acl.principal.clone(),
            host: acl.host.clone(),
            operation: Operation::from_code(code8(acl.operation))
                .ok_or_else(|| unknown("operation", acl.operation))?,
            permission: Permission::from_code(code8(acl.permission))
                .ok_or_else(|| unknown("permission", acl.permission))?,
        })
    }
}

impl AclFilter {
    /// The controller protocol's form.
    pub fn to_wire(&self) -> wire::AclFilter {
        wire::AclFilter {
            resource_type: self.resource_type.map_or(0, |r| r.code().into()),
            name: self.name.clone(),
            pattern: match self.pattern {
                PatternFilter::Any => 1,
                PatternFilter::Match => 2,
                PatternFilter::Exactly(p) => p.code().into(),
            },
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: self.operation.map_or(0, |o| o.code().into()),
            permission: self.permission.map_or(0, |p| p.code().into()),
        }
    }

    /// Reads the controller protocol's form.
    pub fn from_wire(filter: &wire::AclFilter) -> Result<Self, String> {
        let any_or = |code: i32| (code != 0 && code != 1).then_some(code8(code));
        Ok(Self {
            resource_type: match any_or(filter.resource_type) {
                None => None,
                Some(c) => Some(
                    ResourceType::from_code(c)
                        .ok_or_else(|| unknown("resource type", filter.resource_type))?,
                ),
            },
            name: filter.name.clone(),
            pattern: match filter.pattern {
                0 => PatternFilter::Any,
                c => PatternFilter::from_code(code8(c))
                    .ok_or_else(|| unknown("pattern type", filter.pattern))?,
            },
            principal: filter.principal.clone(),
            host: filter.host.clone(),
            operation: match any_or(filter.operation) {
                None => None,
                Some(c) => Some(
                    Operation::from_code(c)
                        .ok_or_else(|| unknown("operation", filter.operation))?,
                ),
            },
            permission: match any_or(filter.permission) {
                None => None,
                Some(c) => Some(
                    Permission::from_code(c)
                        .ok_or_else(|| unknown("permission", filter.permission))?,
                ),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        resource_type: ResourceType,
        pattern: PatternType,
        name: &str,
        principal: &str,
        operation: Operation,
        permission: Permission,
    ) -> Acl {
        Acl {
            resource_type,
            pattern,
            name: name.to_owned(),
            principal: principal.to_owned(),
            host: WILDCARD.to_owned(),
            operation,
            permission,
        }
    }

    fn can(
        acls: &[Acl],
        principal: &str,
        operation: Operation,
        r: ResourceType,
        name: &str,
    ) -> bool {
        authorize(
            acls,
            &["User:admin".to_owned()],
            &Action {
                principal,
                host: "10.0.0.1",
                operation,
                resource_type: r,
                name,
            },
        )
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    #[test]
    fn given_no_acls_when_authorizing_then_only_super_users_may_act() {
        assert!(!can(&[], "User:alice", Read, Topic, "orders"));
        assert!(can(&[], "User:admin", Delete, Cluster, CLUSTER_NAME));
    }

    #[test]
    fn given_literal_prefixed_and_wildcard_acls_when_authorizing_then_names_match_as_in_kafka() {
        let acls = [
            acl(Topic, Literal, "orders", "User:alice", Write, Allow),
            acl(Topic, Prefixed, "payments-", "User:alice", Read, Allow),
            acl(Topic, Literal, "*", "User:bob", Read, Allow),
        ];
        assert!(can(&acls, "User:alice", Write, Topic, "orders"));
        assert!(
            !can(&acls, "User:alice", Write, Topic, "orders2"),
            "literal is exact"
        );
        assert!(can(&acls, "User:alice", Read, Topic, "payments-eu"));
        assert!(!can(&acls, "User:alice", Read, Topic, "payment"));
        assert!(can(&acls, "User:bob", Read, Topic, "anything"));
        assert!(
            !can(&acls, "User:bob", Read, Group, "anything"),
            "types differ"
        );
        assert!(!can(&acls, "User:carol", Read, Topic, "orders"));
    }

    #[test]
    fn given_allows_when_asking_for_implied_operations_then_describe_follows_as_in_kafka() {
        let acls = [
            acl(Topic, Literal, "t", "User:alice", Write, Allow),
            acl(Topic, Literal, "c", "User:alice", AlterConfigs, Allow),
            acl(Group, Literal, "g", "User:alice", All, Allow),
        ];
        assert!(can(&acls, "User:alice", Describe, Topic, "t"));
        assert!(!can(&acls, "User:alice", Read, Topic, "t"));
        assert!(can(&acls, "User:alice", DescribeConfigs, Topic, "c"));
        assert!(!can(&acls, "User:alice", Describe, Topic, "c"));
        assert!(can(&acls, "User:alice", Read, Group, "g"));
        assert!(can(&acls, "User:alice", Delete, Group, "g"));
    }

    #[test]
    fn given_a_deny_when_an_allow_also_applies_then_the_deny_wins() {
        let acls = [
            acl(Topic, Prefixed, "", "User:*", All, Allow),
            acl(Topic, Literal, "secret", "User:alice", Read, Deny),
            acl(Topic, Literal, "vault", "User:*", All, Deny),
        ];
        assert!(can(&acls, "User:alice", Read, Topic, "public"));
        assert!(!can(&acls, "User:alice", Read, Topic, "secret"));
        assert!(
            can(&acls, "User:alice", Describe, Topic, "secret"),
            "only READ is denied"
        );
        assert!(!can(&acls, "User:bob", Describe, Topic, "vault"));
        assert!(
            can(&acls, "User:admin", Read, Topic, "vault"),
            "super users pass denies"
        );
    }

    #[test]
    fn given_topic_acls_when_asking_for_any_topic_then_an_allow_counts_unless_denied_everywhere() {
        let allow = acl(Topic, Literal, "orders", "User:alice", Write, Allow);
        let deny_all = acl(Topic, Prefixed, "", "User:alice", Write, Deny);
        let any = |acls: &[Acl], p: &str| authorize_any(acls, &[], p, "h", Write, Topic);
        assert!(any(std::slice::from_ref(&allow), "User:alice"));
        assert!(!any(std::slice::from_ref(&allow), "User:bob"));
        assert!(!any(&[allow, deny_all], "User:alice"));
        assert!(!any(&[], "User:alice"));
    }

    #[test]
    fn given_host_restricted_acls_when_authorizing_then_the_host_must_match() {
        let mut from_one_host = acl(Topic, Literal, "t", "User:alice", Read, Allow);
        from_one_host.host = "10.0.0.1".to_owned();
        let mut elsewhere = from_one_host.clone();
        elsewhere.host = "10.0.0.2".to_owned();
        assert!(can(&[from_one_host], "User:alice", Read, Topic, "t"));
        assert!(!can(&[elsewhere], "User:alice", Read, Topic, "t"));
    }

    #[test]
    fn given_invalid_acls_when_validated_then_each_says_why() {
        let ok = acl(Topic, Literal, "t", "User:alice", Read, Allow);
        assert_eq!(ok.validate(), Ok(()));
        let mut a = ok.clone();
        a.name.clear();
        assert_eq!(a.validate(), Err(AclError::EmptyName));
        let mut a = ok.clone();
        a.principal = "alice".into();
        assert!(matches!(a.validate(), Err(AclError::Principal(_))));
        let mut a = ok.clone();
        a.operation = IdempotentWrite;
        assert!(matches!(a.validate(), Err(AclError::Operation { .. })));
        let a = acl(Cluster, Literal, "mine", "User:alice", Alter, Allow);
        assert!(matches!(a.validate(), Err(AclError::ClusterName(_))));
        let mut a = ok;
        a.host.clear();
        assert_eq!(a.validate(), Err(AclError::EmptyHost));
    }

    #[test]
    fn given_filters_when_selecting_then_any_match_and_exact_patterns_follow_kafka() {
        let acls = [
            acl(Topic, Literal, "orders", "User:alice", Read, Allow),
            acl(Topic, Literal, "*", "User:bob", Read, Allow),
            acl(Topic, Prefixed, "ord", "User:carol", Write, Deny),
            acl(Group, Literal, "orders", "User:alice", Read, Allow),
        ];
        let select = |f: &AclFilter| -> Vec<usize> {
            acls.iter()
                .enumerate()
                .filter(|(_, a)| f.matches(a))
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(select(&AclFilter::any()), [0, 1, 2, 3]);
        let mut f = AclFilter::any();
        f.resource_type = Some(Topic);
        f.name = Some("orders".into());
        assert_eq!(
            select(&f),
            [0],
            "ANY with a name: that name, any pattern type"
        );
        f.pattern = PatternFilter::Match;
        assert_eq!(
            select(&f),
            [0, 1, 2],
            "MATCH: everything that applies to `orders`"
        );
        f.pattern = PatternFilter::Exactly(Prefixed);
        f.name = None;
        assert_eq!(select(&f), [2]);
        let mut f = AclFilter::any();
        f.principal = Some("User:alice".into());
        f.permission = Some(Allow);
        assert_eq!(select(&f), [0, 3]);
        assert_eq!(PatternFilter::from_code(2), Some(PatternFilter::Match));
        assert_eq!(PatternFilter::from_code(9), None);
    }

    #[test]
    fn given_acls_and_filters_when_sent_over_the_controller_protocol_then_they_come_back_unchanged()
    {
        let a = acl(Topic, Prefixed, "pay-", "User:alice", Write, Deny);
        assert_eq!(Acl::from_wire(&a.to_wire()), Ok(a.clone()));
        let mut f = AclFilter::any();
        assert_eq!(AclFilter::from_wire(&f.to_wire()), Ok(f.clone()));
        f.resource_type = Some(Group);
        f.pattern = PatternFilter::Match;
        f.name = Some("g".into());
        f.operation = Some(Read);
        f.permission = Some(Allow);
        assert_eq!(AclFilter::from_wire(&f.to_wire()), Ok(f));
        let mut bad = a.to_wire();
        bad.operation = 99;
        assert!(Acl::from_wire(&bad).unwrap_err().contains("operation"));
        assert_eq!(
            a.to_string(),
            "DENY User:alice from * WRITE TOPIC pay- (PREFIXED)"
        );
    }

    #[test]
    fn given_kafka_codes_when_converted_then_they_round_trip() {
        for r in ResourceType::ALL {
            assert_eq!(ResourceType::from_code(r.code()), Some(r));
        }
        for o in Operation::EVERY {
            assert_eq!(Operation::from_code(o.code()), Some(o));
        }
        for p in [Allow, Deny] {
            assert_eq!(Permission::from_code(p.code()), Some(p));
        }
        assert_eq!(
            ResourceType::from_code(1),
            None,
            "ANY is a filter, not a resource"
        );
        assert_eq!(Operation::from_code(1), None);
    }
}
