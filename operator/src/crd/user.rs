//! The `User` resource: one Kafka identity (a SCRAM user or a TLS client
//! certificate) with its ACLs, declared in the application's namespace and
//! admitted by the StreamCluster it names.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a Kafka user.
// Each `printcolumn(...)` repeats keys such as `type_`; clippy reads them as
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "rill.dev",
    version = "v1alpha1",
    kind = "User",
    plural = "users",
    singular = "user",
    shortname = "ruser",
    category = "rill",
    namespaced,
    status = "UserStatus",
    derive = "PartialEq",
    doc = "A Kafka user of a Rill StreamCluster: SCRAM-SHA-512 credentials or a TLS client certificate, its ACLs, and a Secret in the User's namespace holding everything a client needs to connect.",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.cluster.name",
        description = "StreamCluster the user belongs to"
    ),
    printcolumn(
        name = "Authentication",
        type_ = "string",
        json_path = ".spec.authentication.type",
        description = "scram-sha-512 or tls"
    ),
    printcolumn(
        name = "Username",
        type_ = "string",
        json_path = ".status.username",
        description = "Kafka username (the principal is User:<username>)"
    ),
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".status.secret",
        description = "Secret holding the client configuration",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Ready condition status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        description = "Ready condition reason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    /// The StreamCluster this user connects to. Its
    /// `spec.users.allowedNamespaces` must admit the User's namespace.
    /// Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("cluster is immutable"))]
    pub cluster: UserClusterRef,

    /// How the user proves who it is: `scram-sha-512` (a password) or
    /// `tls` (a client certificate signed by the cluster's clients CA).
    pub authentication: UserAuthentication,

    /// What the user may do. Without it the user has no ACL (and, with
    /// authorization on, may do nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<UserAuthorization>,

    /// Client quotas of this user (Kafka's user quotas, shared by all its
    /// client ids), enforced by every broker. A key left out has no quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<UserQuotas>,

    /// Name of the Secret the operator writes in the User's namespace.
    /// Defaults to the User's name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: Option<String>,

    /// Name of the StreamCluster listener whose address goes into the
    /// Secret. Defaults to the first listener whose authentication matches
    /// this user's (`scram` for scram-sha-512, `mtls` for tls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub listener: Option<String>,
}

/// Reference to a StreamCluster, possibly in another namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserClusterRef {
    /// Name of the StreamCluster.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the StreamCluster. Defaults to the User's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

/// The authentication of a user.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == 'scram-sha-512' || !has(self.password)").message("authentication.password only applies to type scram-sha-512")
)]
pub struct UserAuthentication {
    /// `scram-sha-512`: SASL SCRAM-SHA-512 with a password (generated,
    /// or taken from `password`); `tls`: a client certificate whose
    /// subject CN is the username.
    #[serde(rename = "type")]
    pub type_: AuthenticationType,
    /// Where the password comes from (scram-sha-512 only). Without it the
    /// operator generates a random 32-character password and keeps it in
    /// the User's Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSource>,
}

/// Authentication types of a User.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AuthenticationType {
    /// SASL SCRAM-SHA-512 with a password.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// A TLS client certificate signed by the cluster's clients CA.
    #[serde(rename = "tls")]
    Tls,
}

impl AuthenticationType {
    /// The spelling of the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthenticationType::ScramSha512 => "scram-sha-512",
            AuthenticationType::Tls => "tls",
        }
    }
}

/// A password chosen by the user, read from a Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSource {
    /// Where the value is read from.
    pub value_from: PasswordValueFrom,
}

/// The source of a password value.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordValueFrom {
    /// A key of a Secret in the User's namespace. Changing the value
    /// rotates the user's credentials.
    pub secret_key_ref: SecretKeyRef,
}

/// A key of a Secret in the User's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Kafka client quotas of a user.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserQuotas {
    /// Bytes per second the user may produce, per broker (Kafka
    /// `producer_byte_rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub producer_byte_rate: Option<i64>,
    /// Bytes per second the user may fetch, per broker (Kafka
    /// `consumer_byte_rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub consumer_byte_rate: Option<i64>,
    /// Percentage of one request-handling thread the user's requests may
    /// take, per broker (Kafka `request_percentage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub request_percentage: Option<i64>,
}

impl UserQuotas {
    /// The quotas as Kafka keys and values.
    pub fn entries(&self) -> Vec<(rill_proto::quota::QuotaKey, f64)> {
        use rill_proto::quota::QuotaKey;
        [
            (QuotaKey::ProducerByteRate, self.producer_byte_rate),
            (QuotaKey::ConsumerByteRate, self.consumer_byte_rate),
            (QuotaKey::RequestPercentage, self.request_percentage),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v? as f64)))
        .collect()
    }
}

/// The ACLs of a user.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthorization {
    /// Kafka ACLs whose principal is this user (`User:<username>`). The
    /// operator makes the cluster's ACLs for that principal exactly these:
    /// ACLs added another way (kafka-acls) for the same principal are
    /// removed.
    #[serde(default)]
    #[schemars(extend("maxItems" = 256))]
    pub acls: Vec<UserAcl>,
}

/// One ACL rule of a user: operations on a resource, allowed or denied.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAcl {
    /// The resource (or resources, for a prefix) the rule covers.
    pub resource: AclResource,
    /// Operations the rule allows or denies.
    #[schemars(length(min = 1, max = 11))]
    pub operations: Vec<AclOperation>,
    /// `allow` (default) or `deny`. A deny wins over any allow.
    #[serde(default, rename = "type")]
    pub type_: AclRuleType,
    /// Client address the rule applies to: an IP address, or `*` (default)
    /// for every host.
    #[serde(default = "any_host")]
    #[schemars(length(min = 1, max = 64))]
    pub host: String,
}

fn any_host() -> String {
    "*".to_owned()
}

/// A Kafka resource, or a family of them by name prefix.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type != 'cluster' || !has(self.name) || self.name == 'kafka-cluster'").message("the cluster resource is named kafka-cluster (or leave name out)"),
    validation = Rule::new("self.type == 'cluster' || has(self.name)").message("name is required for topic, group and transactionalId resources")
)]
pub struct AclResource {
    /// `topic`, `group`, `cluster` or `transactionalId`.
    #[serde(rename = "type")]
    pub type_: AclResourceType,
    /// Resource name, or `*` for every resource of the type (literal
    /// only). Not needed for `cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// `literal` (default): the name exactly; `prefixed`: every resource
    /// whose name starts with `name`.
    #[serde(default)]
    pub pattern_type: AclPatternType,
}

/// Kafka resource types an ACL can name.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AclResourceType {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster itself (`kafka-cluster`).
    Cluster,
    /// A transactional id.
    TransactionalId,
}

/// How an ACL's resource name is matched.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AclPatternType {
    /// The name exactly (`*` matches every name).
    #[default]
    Literal,
    /// Every name starting with the given name.
    Prefixed,
}

/// Kafka ACL operations.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AclOperation {
    /// Every operation.
    All,
    /// Fetch, read a group's offsets, join a group.
    Read,
    /// Produce.
    Write,
    /// Create topics.
    Create,
    /// Delete topics, records or groups.
    Delete,
    /// Alter (partitions, ACLs on the cluster).
    Alter,
    /// Describe (metadata, offsets, groups). Implied by Read, Write, Delete and Alter.
    Describe,
    /// Inter-broker actions.
    ClusterAction,
    /// Describe configurations. Implied by AlterConfigs.
    DescribeConfigs,
    /// Alter configurations.
    AlterConfigs,
    /// Idempotent produce.
    IdempotentWrite,
}

/// Whether an ACL rule allows or denies.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AclRuleType {
    /// The operations are allowed.
    #[default]
    Allow,
    /// The operations are denied, whatever other rules allow.
    Deny,
}

/// Observed state of a User, written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions: `Ready`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The Kafka username: the User's name in the cluster's namespace,
    /// `<namespace>.<name>` elsewhere. Its principal is `User:<username>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The Secret (in the User's namespace) holding the client
    /// configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Number of ACLs the cluster holds for this user's principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acls: Option<i32>,
    /// For tls users: when the client certificate expires (RFC 3339). It
    /// is renewed before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<String>,
}

/// Which Users a StreamCluster admits.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAdmission {
    /// Namespaces whose User resources may name this cluster, besides the
    /// cluster's own namespace (always admitted). `["*"]` admits every
    /// namespace. Users elsewhere get Ready=False, NamespaceNotAllowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 256))]
    pub allowed_namespaces: Vec<String>,
}
