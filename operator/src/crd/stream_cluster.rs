//! The `StreamCluster` resource: one Rill broker cluster (a StatefulSet of
//! broker pods plus its Services, ConfigMap and PodDisruptionBudget).

use std::collections::BTreeMap;

use super::user::UserAdmission;
use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration,
};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a Rill broker cluster.
// Each `printcolumn(...)` repeats keys such as `type_`; clippy reads them as
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "rill.dev",
    version = "v1alpha1",
    kind = "StreamCluster",
    plural = "streamclusters",
    singular = "streamcluster",
    shortname = "rsc",
    category = "rill",
    namespaced,
    status = "StreamClusterStatus",
    derive = "PartialEq",
    doc = "A Rill broker cluster: a StatefulSet of Kafka-compatible broker pods with stable network identities and persistent volumes, managed by the Rill operator.",
    scale(
        spec_replicas_path = ".spec.brokers",
        status_replicas_path = ".status.brokers",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Brokers", type_ = "integer", json_path = ".spec.brokers", description = "Desired number of brokers"),
    printcolumn(name = "Ready Brokers", type_ = "integer", json_path = ".status.readyBrokers", description = "Brokers whose readiness probe passes"),
    printcolumn(name = "Updated", type_ = "integer", json_path = ".status.updatedBrokers", description = "Brokers running the current pod template (a rolling restart moves this up to Brokers)"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Ready condition status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Ready condition reason", priority = 1),
    printcolumn(name = "Bootstrap", type_ = "string", json_path = ".status.kafkaBootstrap", description = "Kafka bootstrap address for clients", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 52").message("metadata.name must be at most 52 characters: it names the StatefulSet, whose pods carry a controller-revision-hash label"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must start with a letter (DNS-1035 label): it prefixes Service names"),
    validation = Rule::new("!has(self.spec.listeners) || !has(self.spec.ports) || !has(self.spec.ports.kafka)").message("spec.ports.kafka is the port of the default listener only: with spec.listeners set, remove spec.ports.kafka and give each listener its port"),
    validation = Rule::new("!has(self.spec.listeners) || !has(self.spec.ports) || self.spec.listeners.all(l, (!has(self.spec.ports.client) || l.port != self.spec.ports.client) && (!has(self.spec.ports.replication) || l.port != self.spec.ports.replication) && (!has(self.spec.ports.http) || l.port != self.spec.ports.http))").message("spec.listeners ports must differ from spec.ports.client, spec.ports.replication and spec.ports.http")
)]
#[serde(rename_all = "camelCase")]
pub struct StreamClusterSpec {
    /// Number of broker pods. Each broker gets a stable identity
    /// (`<name>-<ordinal>`, broker id = ordinal) and its own volume.
    #[schemars(range(min = 1, max = 1000))]
    pub brokers: i32,

    /// Broker container image. Defaults to the image the operator was
    /// installed with (Helm value `broker.image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Image pull policy of the broker container. Defaults to Kubernetes'
    /// own default (IfNotPresent, or Always for `:latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Persistent volume of each broker, mounted at `/var/lib/rill`. `size`
    /// may grow (the operator grows every broker's claim, where the
    /// StorageClass allows expansion) but never shrink;
    /// `storageClassName` cannot change.
    #[serde(default)]
    #[x_kube(validation = Rule::new("!isQuantity(string(self.size)) || !isQuantity(string(oldSelf.size)) || quantity(string(self.size)).compareTo(quantity(string(oldSelf.size))) >= 0").message("spec.storage.size cannot shrink: volumes only grow"))]
    #[x_kube(validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)").message("spec.storage.storageClassName cannot change: existing volumes keep their class"))]
    pub storage: StorageSpec,

    /// CPU and memory requests and limits of the broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Ports the broker listens on besides the Kafka listeners. The
    /// defaults suit almost everyone.
    #[serde(default)]
    pub ports: BrokerPorts,

    /// Kafka listeners, each on its own port with TLS on or off and its
    /// client authentication. Absent: one listener `tls` on port 9093 (or
    /// `spec.ports.kafka`) with TLS and SCRAM (secure by default). The
    /// first listener is the one `status.kafkaBootstrap` names. Every
    /// listener is exposed by the bootstrap and headless Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8))]
    #[x_kube(validation = Rule::new("self.all(l, self.exists_one(m, m.name == l.name))").message("spec.listeners names must be unique"))]
    #[x_kube(validation = Rule::new("self.all(l, self.exists_one(m, m.port == l.port))").message("spec.listeners ports must be unique"))]
    pub listeners: Option<Vec<ListenerSpec>>,

    /// Kafka ACL authorization: on by default, so a request no ACL allows
    /// is denied.
    #[serde(default)]
    pub authorization: AuthorizationSpec,

    /// Certificate authorities and broker certificates: made and renewed
    /// by the operator unless Secrets of your own are named here.
    #[serde(default)]
    pub certificates: CertificatesSpec,

    /// The NetworkPolicy the operator keeps for the brokers: replication
    /// only from this cluster's brokers, the client gRPC API only from
    /// brokers and the operator, Kafka listeners and HTTP from anywhere
    /// unless narrowed here.
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,

    /// Broker configuration (Kafka-style keys such as `num.partitions`,
    /// `default.replication.factor` or `log.retention.ms`), written to
    /// `/etc/rill/broker.properties` in every broker pod and read by each
    /// broker at start. A key the brokers do not support makes the spec
    /// invalid (Ready=False, InvalidSpec, naming the key). Changing it
    /// changes the broker pod template, so the operator restarts the
    /// brokers one at a time (a rolling restart; see the Progressing
    /// condition).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 256))]
    pub config: BTreeMap<String, String>,

    /// Additions to the broker pod template: labels, annotations and
    /// scheduling constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplateOverrides>,

    /// Rack awareness. When set, each broker reports the value of this node
    /// label as its rack, and pods are spread across its values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<RackSpec>,

    /// What Kafka clients may do to topics through the Kafka protocol
    /// (CreateTopics/DeleteTopics, AlterConfigs/IncrementalAlterConfigs).
    /// Topic resources are always allowed.
    #[serde(default)]
    pub topic_policy: TopicPolicy,

    /// Which namespaces may declare User resources for this cluster. By
    /// default only the cluster's own namespace.
    #[serde(default, skip_serializing_if = "is_default_admission")]
    pub users: UserAdmission,
}

fn is_default_admission(admission: &UserAdmission) -> bool {
    admission == &UserAdmission::default()
}

/// Image pull policy of the broker container.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ImagePullPolicy {
    /// Always pull the image.
    Always,
    /// Pull the image only when it is not on the node.
    IfNotPresent,
    /// Never pull the image.
    Never,
}

impl ImagePullPolicy {
    /// The value Kubernetes expects in `imagePullPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// Persistent storage of each broker.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each broker's PersistentVolumeClaim, e.g. `10Gi`.
    #[serde(default = "default_storage_size")]
    pub size: Quantity,

    /// StorageClass of the volumes. Unset uses the cluster's default
    /// StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
        }
    }
}

fn default_storage_size() -> Quantity {
    Quantity("10Gi".to_owned())
}

/// Ports of the broker container besides the Kafka listeners. All must
/// differ.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(!has(self.kafka) || (self.kafka != self.client && self.kafka != self.replication && self.kafka != self.http)) && self.client != self.replication && self.client != self.http && self.replication != self.http").message("broker ports must all differ"))]
pub struct BrokerPorts {
    /// Port of the default Kafka listener, used only while
    /// `spec.listeners` is absent (default 9093). With `spec.listeners`
    /// each listener names its own port and this field must be unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub kafka: Option<i32>,
    /// Rill client gRPC API (bootstrap Service). Internal: with the
    /// operator's certificates it requires a certificate from the cluster
    /// CA, so only brokers and the operator use it.
    #[serde(default = "default_client_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub client: i32,
    /// Broker-to-broker replication gRPC (headless Service only).
    #[serde(default = "default_replication_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub replication: i32,
    /// HTTP port serving `/metrics`, `/healthz` and `/readyz`.
    #[serde(default = "default_http_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub http: i32,
}

/// Port of the default Kafka listener (`tls`), the usual Kafka TLS port.
pub const DEFAULT_KAFKA_PORT: i32 = 9093;
/// Default client gRPC port (9091: 9092 and 9093 are the usual Kafka
/// plaintext and TLS ports, which listeners take).
pub const DEFAULT_CLIENT_PORT: i32 = 9091;
/// Default replication gRPC port.
pub const DEFAULT_REPLICATION_PORT: i32 = 9094;
/// Default broker HTTP (metrics, probes) port.
pub const DEFAULT_HTTP_PORT: i32 = 9644;

fn default_client_port() -> i32 {
    DEFAULT_CLIENT_PORT
}
fn default_replication_port() -> i32 {
    DEFAULT_REPLICATION_PORT
}
fn default_http_port() -> i32 {
    DEFAULT_HTTP_PORT
}

impl Default for BrokerPorts {
    fn default() -> Self {
        Self {
            kafka: None,
            client: DEFAULT_CLIENT_PORT,
            replication: DEFAULT_REPLICATION_PORT,
            http: DEFAULT_HTTP_PORT,
        }
    }
}

/// One Kafka listener of every broker.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.authentication != 'mtls' || self.tls").message("a listener with authentication mtls needs tls: true"))]
pub struct ListenerSpec {
    /// Name of the listener: a lower-case IANA service name (at most 15
    /// characters, letters, digits and '-'), also the name of its port on
    /// the Services. `client`, `replication` and `http` are taken.
    #[schemars(
        length(min = 1, max = 15),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("!(self in ['client', 'replication', 'http'])").message("listener names client, replication and http are taken by other broker ports"))]
    pub name: String,
    /// Port of the listener on every broker and on the Services.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Whether the listener speaks TLS with the broker certificate.
    #[serde(default)]
    pub tls: bool,
    /// How clients authenticate: `none` (anonymous, principal
    /// `User:ANONYMOUS`), `scram` (SASL SCRAM-SHA-512 and SCRAM-SHA-256
    /// against the users in `<cluster>-scram-credentials`) or `mtls` (a
    /// client certificate from the clients CA, principal `User:<CN>`;
    /// needs `tls: true`).
    #[serde(default)]
    pub authentication: ListenerAuthentication,
}

/// Client authentication of a listener.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListenerAuthentication {
    /// No authentication.
    #[default]
    None,
    /// SASL SCRAM-SHA-512 or SCRAM-SHA-256.
    Scram,
    /// TLS client certificates signed by the clients CA.
    Mtls,
}

impl ListenerAuthentication {
    /// The value of `auth=` in the broker's `--kafka-listener` flag.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerAuthentication::None => "none",
            ListenerAuthentication::Scram => "scram",
            ListenerAuthentication::Mtls => "mtls",
        }
    }
}

/// Name of the default listener.
pub const DEFAULT_LISTENER_NAME: &str = "tls";

impl StreamClusterSpec {
    /// The listeners the brokers run: `spec.listeners`, or the default
    /// TLS+SCRAM listener on `spec.ports.kafka` (9093 when unset).
    pub fn effective_listeners(&self) -> Vec<ListenerSpec> {
        match &self.listeners {
            Some(listeners) => listeners.clone(),
            None => vec![ListenerSpec {
                name: DEFAULT_LISTENER_NAME.to_owned(),
                port: self.ports.kafka.unwrap_or(DEFAULT_KAFKA_PORT),
                tls: true,
                authentication: ListenerAuthentication::Scram,
            }],
        }
    }
}

/// The brokers' NetworkPolicy.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Whether the operator keeps a NetworkPolicy for the brokers (it is
    /// deleted when this turns false).
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Who may reach the Kafka listener ports (NetworkPolicy peers: pod
    /// and namespace selectors, IP blocks). Empty: anyone. The cluster's
    /// own brokers may always.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kafka_from: Vec<NetworkPolicyPeer>,
    /// Who may reach the HTTP port (`/metrics`, probes). Empty: anyone
    /// (Prometheus usually runs in another namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_from: Vec<NetworkPolicyPeer>,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            kafka_from: Vec::new(),
            http_from: Vec::new(),
        }
    }
}

/// Kafka ACL authorization.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationSpec {
    /// Authorize every Kafka request with ACLs (`--authorization` on every
    /// broker). Off, every authenticated client may do everything.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Principals allowed everything, e.g. `User:admin` (Kafka
    /// `super.users`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub super_users: Vec<String>,
}

fn enabled() -> bool {
    true
}

impl Default for AuthorizationSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            super_users: Vec::new(),
        }
    }
}

/// Certificate authorities and broker certificates.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesSpec {
    /// The cluster CA: signs the broker certificate and the operator's
    /// controller certificate; brokers and Kafka clients trust it
    /// (`<cluster>-cluster-ca-cert`, key `ca.crt`).
    #[serde(default)]
    pub cluster_ca: CaSpec,
    /// The clients CA: signs the certificates of mTLS users; brokers
    /// accept client certificates it signed.
    #[serde(default)]
    pub clients_ca: CaSpec,
    /// A Secret of your own holding the brokers' certificate (`tls.crt`,
    /// `tls.key`, `ca.crt`, as cert-manager writes them) instead of one
    /// signed by the cluster CA. It must name every broker's DNS names
    /// (see docs/operator.md); the operator only reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub broker_cert_secret: Option<String>,
    /// Validity and renewal of the broker certificate the operator signs
    /// (default 1 year, renewed 30 days before expiry).
    #[serde(default = "broker_cert_validity")]
    pub broker_cert: CertValidity,
    /// Mutual TLS with the broker certificate between brokers
    /// (replication), on the brokers' gRPC client API and to the
    /// controller (default true). Turn it off only where something else
    /// encrypts and authenticates pod traffic (a service mesh): the ports
    /// then take plaintext, and the NetworkPolicy is all that guards them.
    #[serde(default = "internal_tls_default")]
    pub internal_tls: bool,
}

fn internal_tls_default() -> bool {
    true
}

impl Default for CertificatesSpec {
    fn default() -> Self {
        Self {
            cluster_ca: CaSpec::default(),
            clients_ca: CaSpec::default(),
            broker_cert_secret: None,
            broker_cert: broker_cert_validity(),
            internal_tls: true,
        }
    }
}

/// One CA: made and renewed by the operator, or read from a Secret.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.renewBeforeDays) || !has(self.validityDays) || self.renewBeforeDays < self.validityDays").message("renewBeforeDays must be less than validityDays"))]
pub struct CaSpec {
    /// A Secret of your own (`tls.crt`, `tls.key`; for example a
    /// cert-manager CA Certificate) holding the CA. The operator signs
    /// with it and never renews it. Unset: the operator makes the CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
    /// Days a CA the operator makes is valid (default 5 years).
    #[serde(default = "default_ca_validity_days")]
    #[schemars(range(min = 2, max = 36500))]
    pub validity_days: i32,
    /// Days before expiry the operator makes the next CA.
    #[serde(default = "default_renew_before_days")]
    #[schemars(range(min = 1, max = 36499))]
    pub renew_before_days: i32,
}

fn default_ca_validity_days() -> i32 {
    1825
}
fn default_renew_before_days() -> i32 {
    30
}

impl CaSpec {
    /// Validity and renewal as one value.
    pub fn validity(&self) -> CertValidity {
        CertValidity {
            validity_days: self.validity_days,
            renew_before_days: self.renew_before_days,
        }
    }
}

impl Default for CaSpec {
    fn default() -> Self {
        Self {
            secret_name: None,
            validity_days: default_ca_validity_days(),
            renew_before_days: default_renew_before_days(),
        }
    }
}

/// How long a certificate is valid and when it is renewed.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.renewBeforeDays < self.validityDays").message("renewBeforeDays must be less than validityDays"))]
pub struct CertValidity {
    /// Days a new certificate is valid.
    #[schemars(range(min = 2, max = 36500))]
    pub validity_days: i32,
    /// Days before expiry the operator renews it.
    #[schemars(range(min = 1, max = 36499))]
    pub renew_before_days: i32,
}

/// Default broker certificate validity: 1 year, renewed 30 days before
/// expiry.
pub fn broker_cert_validity() -> CertValidity {
    CertValidity {
        validity_days: 365,
        renew_before_days: 30,
    }
}

/// Additions merged into the broker pod template.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Extra labels on broker pods. Labels the operator sets itself
    /// (`app.kubernetes.io/*`, `rill.dev/*`) win over these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on broker pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Node labels a node must have to run a broker.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of broker pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity and anti-affinity of broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// PriorityClass of broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Secrets used to pull the broker image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
}

/// Rack awareness settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RackSpec {
    /// Node label whose value is the broker's rack, usually
    /// `topology.kubernetes.io/zone`. The broker reads it from its own pod
    /// label of the same key (Kubernetes copies zone and region node labels
    /// onto pods with the PodTopologyLabelsAdmission feature).
    #[schemars(length(min = 1, max = 316))]
    pub topology_key: String,
}

/// Topic operations allowed through the Kafka protocol.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicPolicy {
    /// Whether Kafka CreateTopics requests may create topics (as Topic
    /// resources). Deny keeps topics declared in Git only.
    #[serde(default = "deny")]
    pub create_topics: Permission,
    /// Whether Kafka DeleteTopics requests may delete topics.
    #[serde(default = "deny")]
    pub delete_topics: Permission,
    /// What Kafka AlterConfigs and IncrementalAlterConfigs requests do to
    /// a topic a Topic resource manages (every topic on Kubernetes): Refuse
    /// (POLICY_VIOLATION naming the resource; edit its spec.config
    /// instead), or WriteToResource (the change is written into the
    /// resource's spec.config first, then applied).
    #[serde(default)]
    pub config_changes: ConfigChanges,
}

/// The rule for topic config changes made through the Kafka protocol.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConfigChanges {
    /// Refused with POLICY_VIOLATION; the Topic resource stays the only
    /// place to change a topic's config (GitOps).
    #[default]
    Refuse,
    /// Written into the Topic resource's spec.config (compare-and-swap on
    /// its resourceVersion), then applied.
    WriteToResource,
}

fn deny() -> Permission {
    Permission::Deny
}

impl Default for TopicPolicy {
    fn default() -> Self {
        Self {
            create_topics: Permission::Deny,
            delete_topics: Permission::Deny,
            config_changes: ConfigChanges::Refuse,
        }
    }
}

/// Allow or deny an operation.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Permission {
    /// The operation is allowed.
    Allow,
    /// The operation is refused.
    Deny,
}

/// Observed state of a StreamCluster, written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions: `Ready`, `Progressing` and `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Broker pods that currently exist (the scale subresource reads this).
    #[serde(default)]
    pub brokers: i32,
    /// Broker pods whose readiness probe passes.
    #[serde(default)]
    pub ready_brokers: i32,
    /// Broker pods running the current pod template. The operator restarts
    /// outdated pods one at a time (a rolling restart); see the Progressing
    /// condition and `roll`.
    #[serde(default)]
    pub updated_brokers: i32,
    /// The rolling restart in progress: the broker restarted last, which
    /// must be back before the next one is touched. Kept here so a roll
    /// continues where it stopped after an operator restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll: Option<RollStatus>,
    /// Broker volumes: the size they are grown to and how many have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageStatus>,
    /// Label selector of the broker pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Kafka bootstrap address of the first listener, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_bootstrap: Option<String>,
    /// Every Kafka listener with its bootstrap address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
    /// Expiry of the CAs and of the broker certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatesStatus>,
}

/// A Kafka listener as clients reach it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// Listener name.
    pub name: String,
    /// Bootstrap address, `host:port` (the bootstrap Service).
    pub bootstrap: String,
    /// Whether it speaks TLS (clients trust `<cluster>-cluster-ca-cert`).
    pub tls: bool,
    /// Client authentication: none, scram or mtls.
    pub authentication: String,
}

/// Certificates in use and when they expire.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesStatus {
    /// The cluster CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ca: Option<CertificateStatus>,
    /// The clients CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients_ca: Option<CertificateStatus>,
    /// The broker certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<CertificateStatus>,
}

/// One certificate.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// The Secret it is read from.
    pub secret: String,
    /// Expiry, RFC 3339.
    pub not_after: String,
    /// Whether the operator renews it (false for a Secret of your own).
    pub managed: bool,
}

/// Annotation on a StreamCluster asking for a rolling restart: the operator
/// copies its value into the broker pod template, so any new value restarts
/// every broker, one at a time
/// (`kubectl annotate streamcluster events rill.dev/restart="$(date +%s)" --overwrite`).
pub const RESTART_ANNOTATION: &str = "rill.dev/restart";

/// Progress of a rolling restart.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollStatus {
    /// The StatefulSet revision the brokers are rolled to.
    pub revision: String,
    /// The broker restarted last (its pod was deleted by the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted: Option<RestartedBroker>,
}

/// One broker restarted by a roll.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartedBroker {
    /// Broker id (pod ordinal).
    pub broker: i32,
    /// Uid of the pod that was deleted; a pod with another uid is its
    /// replacement.
    pub pod_uid: String,
    /// The broker's registration epoch at the metadata controller before
    /// the restart. The replacement counts as back only once it registered
    /// again (a higher epoch) and rejoined every ISR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_epoch: Option<i64>,
}

/// Progress of broker volume growth.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    /// The size the claims are grown to (`spec.storage.size`).
    pub size: String,
    /// Broker claims that report this capacity.
    pub resized: i32,
    /// Broker claims.
    pub claims: i32,
}
