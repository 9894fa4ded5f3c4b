//! The broker StatefulSet and its pod template: the broker pod contract.
//!
//! Each pod runs `rill-broker` configured by environment variables:
//! `RILL_POD_NAME` (downward API) with `RILL_BROKER_ID_FROM_POD_NAME=true`
//! (broker id = pod ordinal), `RILL_DATA_DIR` (the volume), the listen
//! addresses on the pod's IP (`RILL_POD_IP`, downward API `status.podIP`),
//! the Kafka listeners (`RILL_KAFKA_LISTENERS`), `RILL_ADVERTISED_HOST` (the
//! stable DNS name from the headless Service), `RILL_CONTROLLER_ADDR` (the
//! operator's controller gRPC Service), `RILL_CONFIG_FILE` (the ConfigMap),
//! the certificate, CA and credentials files (Secrets mounted under
//! `/etc/rill-tls` and `/etc/rill-scram`), authorization and, with rack
//! awareness, `RILL_RACK`. The pod meets the `restricted` Pod Security
//! Standard.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecretVolumeSource, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    CONFIG_FILE_NAME, CONFIG_HASH_ANNOTATION, Names, common_labels, object_meta, selector_labels,
};
use crate::context::Settings;
use crate::crd::{
    ListenerAuthentication, ListenerSpec, Permission, RESTART_ANNOTATION, StreamCluster,
};
use crate::stream_cluster::certs::{CA_CRT, CREDENTIALS, Material, SecretNames, TLS_CRT, TLS_KEY};

/// Where the broker volume is mounted; `RILL_DATA_DIR`.
pub const DATA_DIR: &str = "/var/lib/rill";
/// Where the ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/rill";
/// UID/GID of the broker process (the distroless `nonroot` user).
pub const BROKER_UID: i64 = 65532;
/// Name of the broker container.
pub const CONTAINER_NAME: &str = "broker";
/// Name of the volume claim template (PVCs are `data-<pod>`).
pub const DATA_VOLUME: &str = "data";
/// Where the broker certificate Secret is mounted (`tls.crt`, `tls.key`).
// Secret volumes live outside CONFIG_DIR: a mount point inside the
// read-only ConfigMap volume cannot be created when the container starts.
pub const BROKER_TLS_DIR: &str = "/etc/rill-tls/broker";
/// Where the cluster CA bundle is mounted (`ca.crt`).
pub const CLUSTER_CA_DIR: &str = "/etc/rill-tls/cluster-ca";
/// Where the clients CA bundle is mounted (`ca.crt`).
pub const CLIENTS_CA_DIR: &str = "/etc/rill-tls/clients-ca";
/// Where the SCRAM credentials Secret is mounted (`credentials`).
pub const SCRAM_DIR: &str = "/etc/rill-scram";
/// Mode of mounted Secret files: read by the broker's group (`fsGroup`).
const SECRET_MODE: i32 = 0o440;

/// The TLS server name brokers expect on the operator's controller
/// certificate for cluster `cluster` in `namespace`.
pub fn controller_server_name(cluster: &str, namespace: &str) -> String {
    format!("controller.{cluster}.{namespace}.rill.internal")
}

/// One listener as the broker's `--kafka-listener` flag takes it.
pub fn listener_flag(listener: &ListenerSpec) -> String {
    format!(
        "name={},port={},tls={},auth={}",
        listener.name,
        listener.port,
        listener.tls,
        listener.authentication.as_str()
    )
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn env_field(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn http_probe(path: &str, period: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(3),
        ..Probe::default()
    }
}

/// The broker flag value of a topic policy permission.
fn permission(p: Permission) -> &'static str {
    match p {
        Permission::Allow => "allow",
        Permission::Deny => "deny",
    }
}

/// The broker's environment, in a fixed order. `RILL_POD_NAME` and
/// `RILL_POD_IP` come before the variables that refer to them with
/// `$(RILL_POD_NAME)` and `$(RILL_POD_IP)`.
///
/// Listeners bind the pod's own IP rather than `0.0.0.0`: in a cluster the
/// pod's network namespace holds just that address (and loopback, which no
/// other pod can reach), and on a node where pods share one network
/// namespace each broker keeps to its own address.
fn broker_env(sc: &StreamCluster, names: &Names, settings: &Settings) -> Vec<EnvVar> {
    let ports = &sc.spec.ports;
    let namespace = sc.metadata.namespace.clone().unwrap_or_default();
    let listen = |port: i32| format!("$(RILL_POD_IP):{port}");
    let listeners = sc.spec.effective_listeners();
    let first_port = listeners.first().map_or(0, |l| l.port);
    let mut vars = vec![
        env_field("RILL_POD_NAME", "metadata.name"),
        env_field("RILL_POD_IP", "status.podIP"),
        env_field("RILL_POD_NAMESPACE", "metadata.namespace"),
        env("RILL_BROKER_ID_FROM_POD_NAME", "true"),
        env("RILL_CLUSTER_NAME", names.cluster.clone()),
        env("RILL_CLUSTER", format!("{namespace}/{}", names.cluster)),
        env("RILL_DATA_DIR", DATA_DIR),
        env(
            "RILL_CONFIG_FILE",
            format!("{CONFIG_DIR}/{CONFIG_FILE_NAME}"),
        ),
        env("RILL_LISTEN_ADDR", listen(ports.client)),
        // The listeners below replace this one; it still names the
        // address they bind (the pod's IP).
        env("RILL_KAFKA_ADDR", listen(first_port)),
        env(
            "RILL_KAFKA_LISTENERS",
            listeners
                .iter()
                .map(listener_flag)
                .collect::<Vec<_>>()
                .join(";"),
        ),
        env("RILL_REPLICATION_ADDR", listen(ports.replication)),
        env("RILL_HTTP_ADDR", listen(ports.http)),
        env(
            "RILL_ADVERTISED_HOST",
            format!(
                "$(RILL_POD_NAME).{}.{namespace}.svc",
                names.headless_service
            ),
        ),
        env("RILL_CONTROLLER_ADDR", settings.controller_address.clone()),
    ];
    if sc.spec.certificates.internal_tls {
        vars.extend([
            env(
                "RILL_CONTROLLER_TLS_SERVER_NAME",
                controller_server_name(&names.cluster, &namespace),
            ),
            env(
                "RILL_INTERNAL_TLS_CERT_FILE",
                format!("{BROKER_TLS_DIR}/{TLS_CRT}"),
            ),
            env(
                "RILL_INTERNAL_TLS_KEY_FILE",
                format!("{BROKER_TLS_DIR}/{TLS_KEY}"),
            ),
            env(
                "RILL_INTERNAL_TLS_CA_FILE",
                format!("{CLUSTER_CA_DIR}/{CA_CRT}"),
            ),
        ]);
    }
    if listeners.iter().any(|l| l.tls) {
        vars.push(env(
            "RILL_KAFKA_TLS_CERT_FILE",
            format!("{BROKER_TLS_DIR}/{TLS_CRT}"),
        ));
        vars.push(env(
            "RILL_KAFKA_TLS_KEY_FILE",
            format!("{BROKER_TLS_DIR}/{TLS_KEY}"),
        ));
    }
    if uses(&listeners, ListenerAuthentication::Mtls) {
        vars.push(env(
            "RILL_KAFKA_TLS_CLIENT_CA_FILE",
            format!("{CLIENTS_CA_DIR}/{CA_CRT}"),
        ));
    }
    if uses(&listeners, ListenerAuthentication::Scram) {
        vars.push(env(
            "RILL_SASL_CREDENTIALS_FILE",
            format!("{SCRAM_DIR}/{CREDENTIALS}"),
        ));
    }
    let authorization = &sc.spec.authorization;
    vars.push(env(
        "RILL_AUTHORIZATION",
        if authorization.enabled {
            "true"
        } else {
            "false"
        },
    ));
    if authorization.enabled && !authorization.super_users.is_empty() {
        vars.push(env("RILL_SUPER_USERS", authorization.super_users.join(";")));
    }
    vars.push(env(
        "RILL_KAFKA_CREATE_TOPICS",
        permission(sc.spec.topic_policy.create_topics),
    ));
    vars.push(env(
        "RILL_KAFKA_DELETE_TOPICS",
        permission(sc.spec.topic_policy.delete_topics),
    ));
    if let Some(rack) = &sc.spec.rack {
        vars.push(env_field(
            "RILL_RACK",
            &format!("metadata.labels['{}']", rack.topology_key),
        ));
    }
    vars
}

fn uses(listeners: &[ListenerSpec], authentication: ListenerAuthentication) -> bool {
    listeners.iter().any(|l| l.authentication == authentication)
}

fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_owned()),
            default_mode: Some(SECRET_MODE),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn read_only_mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

/// The Secret volumes of the broker pod and where they are mounted.
fn secret_volumes(sc: &StreamCluster, names: &Names, tls: &Material) -> Vec<(Volume, VolumeMount)> {
    let secrets = SecretNames::new(&names.cluster);
    let mut out = vec![
        (
            secret_volume("broker-tls", &tls.broker_secret),
            read_only_mount("broker-tls", BROKER_TLS_DIR),
        ),
        (
            secret_volume("cluster-ca", &secrets.cluster_ca_cert),
            read_only_mount("cluster-ca", CLUSTER_CA_DIR),
        ),
        (
            secret_volume("clients-ca", &secrets.clients_ca_cert),
            read_only_mount("clients-ca", CLIENTS_CA_DIR),
        ),
    ];
    if uses(
        &sc.spec.effective_listeners(),
        ListenerAuthentication::Scram,
    ) {
        out.push((
            secret_volume("scram", &secrets.scram_credentials),
            read_only_mount("scram", SCRAM_DIR),
        ));
    }
    out
}

fn broker_container(
    sc: &StreamCluster,
    names: &Names,
    settings: &Settings,
    tls: &Material,
) -> Container {
    let ports = &sc.spec.ports;
    let mut container_ports: Vec<ContainerPort> = sc
        .spec
        .effective_listeners()
        .iter()
        .map(|l| container_port(&l.name, l.port))
        .collect();
    container_ports.extend([
        container_port("client", ports.client),
        container_port("replication", ports.replication),
        container_port("http", ports.http),
    ]);
    let mut mounts = vec![
        VolumeMount {
            name: DATA_VOLUME.to_owned(),
            mount_path: DATA_DIR.to_owned(),
            ..VolumeMount::default()
        },
        read_only_mount("config", CONFIG_DIR),
        VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        },
    ];
    mounts.extend(secret_volumes(sc, names, tls).into_iter().map(|(_, m)| m));
    Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(
            sc.spec
                .image
                .clone()
                .unwrap_or_else(|| settings.broker_image.clone()),
        ),
        image_pull_policy: sc.spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        command: Some(vec!["rill-broker".to_owned()]),
        env: Some(broker_env(sc, names, settings)),
        ports: Some(container_ports),
        resources: sc.spec.resources.clone(),
        // Log recovery after a crash can take a while: the startup probe
        // allows 5 minutes before liveness starts counting.
        startup_probe: Some(http_probe("/healthz", 5, 60)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(BROKER_UID),
            run_as_group: Some(BROKER_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..SeccompProfile::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

fn pod_template(
    sc: &StreamCluster,
    names: &Names,
    config_hash: &str,
    settings: &Settings,
    tls: &Material,
) -> PodTemplateSpec {
    let overrides = sc.spec.pod_template.clone().unwrap_or_default();
    // User labels first, so the operator's own labels (the selector among
    // them) always win.
    let mut labels: BTreeMap<String, String> = overrides.labels.clone();
    labels.extend(common_labels(&names.cluster));
    let mut annotations = overrides.annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), config_hash.to_owned());
    // A new CA or trust bundle rolls the brokers (see certs::plan).
    annotations.extend(tls.annotations.clone());
    // A new value of the StreamCluster's restart annotation changes the
    // template, which is what starts a rolling restart.
    if let Some(restart) = sc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RESTART_ANNOTATION))
    {
        annotations.insert(RESTART_ANNOTATION.to_owned(), restart.clone());
    }

    let topology_spread_constraints = sc.spec.rack.as_ref().map(|rack| {
        vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: rack.topology_key.clone(),
            when_unsatisfiable: "ScheduleAnyway".to_owned(),
            label_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&names.cluster)),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        }]
    });

    let mut volumes = vec![
        Volume {
            name: "config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: names.config_map.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    volumes.extend(secret_volumes(sc, names, tls).into_iter().map(|(v, _)| v));

    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![broker_container(sc, names, settings, tls)],
            // Brokers never call the Kubernetes API.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            // Time for a controlled shutdown (leadership moves away first).
            termination_grace_period_seconds: Some(60),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(BROKER_UID),
                run_as_group: Some(BROKER_UID),
                fs_group: Some(BROKER_UID),
                fs_group_change_policy: Some("OnRootMismatch".to_owned()),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            volumes: Some(volumes),
            node_selector: (!overrides.node_selector.is_empty()).then_some(overrides.node_selector),
            tolerations: (!overrides.tolerations.is_empty()).then_some(overrides.tolerations),
            affinity: overrides.affinity,
            priority_class_name: overrides.priority_class_name,
            image_pull_secrets: (!overrides.image_pull_secrets.is_empty())
                .then_some(overrides.image_pull_secrets),
            topology_spread_constraints,
            ..PodSpec::default()
        }),
    }
}

fn volume_claim_template(sc: &StreamCluster, names: &Names) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_owned()),
            labels: Some(common_labels(&names.cluster)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: sc.spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    sc.spec.storage.size.clone(),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

pub(super) fn build(
    sc: &StreamCluster,
    names: &Names,
    replicas: i32,
    config_hash: &str,
    settings: &Settings,
    tls: &Material,
) -> StatefulSet {
    StatefulSet {
        metadata: object_meta(sc, &names.cluster),
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(names.headless_service.clone()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&names.cluster)),
                ..LabelSelector::default()
            },
            // Brokers are independent processes: start them together.
            pod_management_policy: Some("Parallel".to_owned()),
            // The operator restarts brokers itself, one at a time, only when
            // that keeps every partition in sync (see docs/operator.md).
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_owned()),
                ..StatefulSetUpdateStrategy::default()
            }),
            // Never delete broker data implicitly.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".to_owned()),
                    when_scaled: Some("Retain".to_owned()),
                },
            ),
            template: pod_template(sc, names, config_hash, settings, tls),
            volume_claim_templates: Some(vec![volume_claim_template(sc, names)]),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{cluster, material};
    use super::*;
    use crate::crd::{ImagePullPolicy, PodTemplateOverrides, RackSpec};
    use k8s_openapi::api::core::v1::Toleration;

    fn build_default(sc: &StreamCluster) -> StatefulSet {
        build(
            sc,
            &Names::new("events"),
            sc.spec.brokers,
            "abc",
            &Settings::default(),
            &material(),
        )
    }

    fn pod_spec(sts: &StatefulSet) -> &PodSpec {
        sts.spec.template.spec.as_ref().expect("pod spec")
    }

    fn env_map(sts: &StatefulSet) -> BTreeMap<String, EnvVar> {
        pod_spec(sts).containers[0]
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect()
    }

    fn value(vars: &BTreeMap<String, EnvVar>, name: &str) -> Option<String> {
        vars.get(name).and_then(|e| e.value.clone())
    }

    #[test]
    fn given_a_restart_annotation_when_building_then_only_its_new_value_changes_the_pod_template() {
        let mut sc = cluster();
        let plain = build_default(&sc).spec.template;
        assert_eq!(
            plain,
            build_default(&sc).spec.template,
            "same spec, same template"
        );
        sc.metadata.annotations = Some(BTreeMap::from([(
            RESTART_ANNOTATION.to_owned(),
            "1".to_owned(),
        )]));
        let first = build_default(&sc).spec.template;
        assert_ne!(plain, first);
        assert_eq!(
            first
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref())
                .expect("annotations")[RESTART_ANNOTATION],
            "1"
        );
        assert_eq!(first, build_default(&sc).spec.template);
        sc.metadata.annotations = Some(BTreeMap::from([(
            RESTART_ANNOTATION.to_owned(),
            "2".to_owned(),
        )]));
        assert_ne!(first, build_default(&sc).spec.template);
    }

    #[test]
    fn given_a_cluster_when_building_then_statefulset_is_ondelete_parallel_with_retained_claims() {
        let sts = build_default(&cluster());
        let spec = &sts.spec;
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("events-brokers"));
        assert_eq!(
            spec.update_strategy
                .as_ref()
                .and_then(|u| u.type_.as_deref()),
            Some("OnDelete")
        );
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        let retention = spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .expect("retention");
        assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
        assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
        let claims = spec.volume_claim_templates.as_ref().expect("claims");
        assert_eq!(claims.len(), 1);
        let claim_spec = claims[0].spec.as_ref().expect("claim spec");
        assert_eq!(
            claim_spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .expect("requests")["storage"]
                .0,
            "10Gi"
        );
        assert_eq!(claim_spec.storage_class_name, None);
        assert_eq!(
            spec.template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref())
                .expect("annotations")[CONFIG_HASH_ANNOTATION],
            "abc"
        );
    }

    #[test]
    fn given_a_cluster_when_building_then_broker_env_follows_the_pod_contract() {
        let vars = env_map(&build_default(&cluster()));
        assert_eq!(
            vars["RILL_POD_NAME"]
                .value_from
                .as_ref()
                .and_then(|v| v.field_ref.as_ref())
                .map(|f| f.field_path.as_str()),
            Some("metadata.name")
        );
        assert_eq!(
            value(&vars, "RILL_BROKER_ID_FROM_POD_NAME").as_deref(),
            Some("true")
        );
        assert_eq!(
            value(&vars, "RILL_DATA_DIR").as_deref(),
            Some("/var/lib/rill")
        );
        assert_eq!(
            value(&vars, "RILL_LISTEN_ADDR").as_deref(),
            Some("$(RILL_POD_IP):9091")
        );
        assert_eq!(
            value(&vars, "RILL_KAFKA_ADDR").as_deref(),
            Some("$(RILL_POD_IP):9093")
        );
        assert_eq!(
            value(&vars, "RILL_REPLICATION_ADDR").as_deref(),
            Some("$(RILL_POD_IP):9094")
        );
        assert_eq!(
            value(&vars, "RILL_HTTP_ADDR").as_deref(),
            Some("$(RILL_POD_IP):9644")
        );
        assert_eq!(
            value(&vars, "RILL_ADVERTISED_HOST").as_deref(),
            Some("$(RILL_POD_NAME).events-brokers.data.svc")
        );
        assert_eq!(
            value(&vars, "RILL_CONTROLLER_ADDR").as_deref(),
            Some("http://rill-operator.rill-system.svc:9095")
        );
        assert_eq!(
            value(&vars, "RILL_CONFIG_FILE").as_deref(),
            Some("/etc/rill/broker.properties")
        );
        assert_eq!(
            (
                value(&vars, "RILL_KAFKA_CREATE_TOPICS").as_deref(),
                value(&vars, "RILL_KAFKA_DELETE_TOPICS").as_deref()
            ),
            (Some("deny"), Some("deny")),
            "the default topic policy keeps topics declared as resources"
        );
        assert!(
            !vars.contains_key("RILL_RACK"),
            "no rack without a topology key"
        );
        assert_eq!(
            vars["RILL_POD_IP"]
                .value_from
                .as_ref()
                .and_then(|v| v.field_ref.as_ref())
                .map(|f| f.field_path.as_str()),
            Some("status.podIP")
        );
        // $(VAR) only expands when VAR is defined earlier in the list.
        let order: Vec<String> = pod_spec(&build_default(&cluster())).containers[0]
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.name)
            .collect();
        let position = |name: &str| order.iter().position(|n| n == name).expect(name);
        assert!(position("RILL_POD_NAME") < position("RILL_ADVERTISED_HOST"));
        for listener in [
            "RILL_LISTEN_ADDR",
            "RILL_KAFKA_ADDR",
            "RILL_REPLICATION_ADDR",
            "RILL_HTTP_ADDR",
        ] {
            assert!(position("RILL_POD_IP") < position(listener), "{listener}");
        }
    }

    #[test]
    fn given_a_cluster_when_building_then_pod_meets_the_restricted_pod_security_standard() {
        let sts = build_default(&cluster());
        let pod = pod_spec(&sts);
        let psc = pod.security_context.as_ref().expect("pod security context");
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.run_as_user, Some(65532));
        assert_eq!(psc.fs_group, Some(65532));
        assert_eq!(
            psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault")
        );
        let csc = pod.containers[0]
            .security_context
            .as_ref()
            .expect("container security context");
        assert_eq!(csc.allow_privilege_escalation, Some(false));
        assert_eq!(csc.read_only_root_filesystem, Some(true));
        assert_eq!(
            csc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()])
        );
        assert_eq!(pod.automount_service_account_token, Some(false));
        let container = &pod.containers[0];
        let probe_path = |p: &Option<Probe>| {
            p.as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.clone())
        };
        assert_eq!(
            probe_path(&container.readiness_probe).as_deref(),
            Some("/readyz")
        );
        assert_eq!(
            probe_path(&container.liveness_probe).as_deref(),
            Some("/healthz")
        );
        let mounts: Vec<(String, String)> = container
            .volume_mounts
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|m| (m.name, m.mount_path))
            .collect();
        assert!(mounts.contains(&("data".into(), "/var/lib/rill".into())));
    }

    #[test]
    fn given_overrides_when_building_then_they_reach_the_pod_but_selector_labels_win() {
        let mut sc = cluster();
        sc.spec.image = Some("example.org/rill/broker:dev".into());
        sc.spec.image_pull_policy = Some(ImagePullPolicy::Always);
        sc.spec.storage.storage_class_name = Some("fast".into());
        sc.spec.rack = Some(RackSpec {
            topology_key: "topology.kubernetes.io/zone".into(),
        });
        sc.spec.pod_template = Some(PodTemplateOverrides {
            labels: BTreeMap::from([
                ("team".into(), "data".into()),
                ("app.kubernetes.io/instance".into(), "hijack".into()),
            ]),
            annotations: BTreeMap::from([("example.org/a".into(), "b".into())]),
            node_selector: BTreeMap::from([("disk".into(), "ssd".into())]),
            tolerations: vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Exists".into()),
                ..Toleration::default()
            }],
            priority_class_name: Some("high".into()),
            ..PodTemplateOverrides::default()
        });
        let sts = build_default(&sc);
        let template = &sts.spec.template;
        let labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .expect("labels");
        assert_eq!(labels["team"], "data");
        assert_eq!(labels["app.kubernetes.io/instance"], "events");
        let annotations = template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.clone())
            .expect("annotations");
        assert_eq!(annotations["example.org/a"], "b");
        let pod = pod_spec(&sts);
        assert_eq!(
            pod.node_selector.as_ref().expect("node selector")["disk"],
            "ssd"
        );
        assert_eq!(pod.tolerations.as_ref().map(Vec::len), Some(1));
        assert_eq!(pod.priority_class_name.as_deref(), Some("high"));
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("example.org/rill/broker:dev")
        );
        assert_eq!(
            pod.containers[0].image_pull_policy.as_deref(),
            Some("Always")
        );
        let spread = pod.topology_spread_constraints.as_ref().expect("spread");
        assert_eq!(spread[0].topology_key, "topology.kubernetes.io/zone");
        let vars = env_map(&sts);
        assert_eq!(
            vars["RILL_RACK"]
                .value_from
                .as_ref()
                .and_then(|v| v.field_ref.as_ref())
                .map(|f| f.field_path.as_str()),
            Some("metadata.labels['topology.kubernetes.io/zone']")
        );
        let claim = &sts.spec.volume_claim_templates.clone().expect("claims")[0];
        assert_eq!(
            claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref()),
            Some("fast")
        );
    }

    fn mounts(sts: &StatefulSet) -> BTreeMap<String, String> {
        pod_spec(sts).containers[0]
            .volume_mounts
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|m| (m.mount_path, m.name))
            .collect()
    }

    fn secret_of(sts: &StatefulSet, volume: &str) -> Option<String> {
        pod_spec(sts)
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == volume)
            .and_then(|v| v.secret.as_ref())
            .and_then(|s| s.secret_name.clone())
    }

    fn listener(name: &str, port: i32, tls: bool, auth: ListenerAuthentication) -> ListenerSpec {
        ListenerSpec {
            name: name.into(),
            port,
            tls,
            authentication: auth,
        }
    }

    #[test]
    fn given_internal_tls_off_when_building_then_brokers_get_no_internal_tls_flags() {
        let mut sc = cluster();
        sc.spec.certificates.internal_tls = false;
        let vars = env_map(&build_default(&sc));
        for name in [
            "RILL_INTERNAL_TLS_CERT_FILE",
            "RILL_INTERNAL_TLS_KEY_FILE",
            "RILL_INTERNAL_TLS_CA_FILE",
            "RILL_CONTROLLER_TLS_SERVER_NAME",
        ] {
            assert_eq!(value(&vars, name), None, "{name}");
        }
        // The Kafka listener keeps its TLS.
        assert!(value(&vars, "RILL_KAFKA_TLS_CERT_FILE").is_some());
    }

    #[test]
    fn given_the_default_listener_when_building_then_tls_scram_internal_mtls_and_authorization_are_on()
     {
        let sts = build_default(&cluster());
        let vars = env_map(&sts);
        let get = |name: &str| value(&vars, name);
        assert_eq!(
            get("RILL_KAFKA_LISTENERS").as_deref(),
            Some("name=tls,port=9093,tls=true,auth=scram")
        );
        assert_eq!(
            get("RILL_KAFKA_TLS_CERT_FILE").as_deref(),
            Some("/etc/rill-tls/broker/tls.crt")
        );
        assert_eq!(
            get("RILL_KAFKA_TLS_KEY_FILE").as_deref(),
            Some("/etc/rill-tls/broker/tls.key")
        );
        assert_eq!(
            get("RILL_KAFKA_TLS_CLIENT_CA_FILE"),
            None,
            "no mtls listener"
        );
        assert_eq!(
            get("RILL_SASL_CREDENTIALS_FILE").as_deref(),
            Some("/etc/rill-scram/credentials")
        );
        assert_eq!(
            get("RILL_INTERNAL_TLS_CERT_FILE").as_deref(),
            Some("/etc/rill-tls/broker/tls.crt")
        );
        assert_eq!(
            get("RILL_INTERNAL_TLS_KEY_FILE").as_deref(),
            Some("/etc/rill-tls/broker/tls.key")
        );
        assert_eq!(
            get("RILL_INTERNAL_TLS_CA_FILE").as_deref(),
            Some("/etc/rill-tls/cluster-ca/ca.crt")
        );
        assert_eq!(
            get("RILL_CONTROLLER_TLS_SERVER_NAME").as_deref(),
            Some("controller.events.data.rill.internal")
        );
        assert_eq!(get("RILL_AUTHORIZATION").as_deref(), Some("true"));
        assert_eq!(get("RILL_SUPER_USERS"), None);

        let mounts = mounts(&sts);
        assert_eq!(mounts["/etc/rill-tls/broker"], "broker-tls");
        assert_eq!(mounts["/etc/rill-tls/cluster-ca"], "cluster-ca");
        assert_eq!(mounts["/etc/rill-tls/clients-ca"], "clients-ca");
        assert_eq!(mounts["/etc/rill-scram"], "scram");
        assert_eq!(
            secret_of(&sts, "broker-tls").as_deref(),
            Some("events-broker-certs")
        );
        assert_eq!(
            secret_of(&sts, "cluster-ca").as_deref(),
            Some("events-cluster-ca-cert")
        );
        assert_eq!(
            secret_of(&sts, "clients-ca").as_deref(),
            Some("events-clients-ca-cert")
        );
        assert_eq!(
            secret_of(&sts, "scram").as_deref(),
            Some("events-scram-credentials")
        );
        let ports: Vec<(String, i32)> = pod_spec(&sts).containers[0]
            .ports
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.name.unwrap_or_default(), p.container_port))
            .collect();
        assert_eq!(
            ports,
            vec![
                ("tls".into(), 9093),
                ("client".into(), 9091),
                ("replication".into(), 9094),
                ("http".into(), 9644)
            ]
        );
        let annotations = sts
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.clone())
            .expect("annotations");
        assert_eq!(
            annotations["rill.dev/cluster-ca-bundle"],
            "0123456789abcdef"
        );
    }

    #[test]
    fn given_plain_and_mtls_listeners_and_super_users_when_building_then_only_what_they_need_is_set()
     {
        let mut sc = cluster();
        sc.spec.listeners = Some(vec![
            listener("plain", 9092, false, ListenerAuthentication::None),
            listener("mtls", 9095, true, ListenerAuthentication::Mtls),
        ]);
        sc.spec.authorization.super_users = vec!["User:admin".into(), "User:ops".into()];
        let sts = build_default(&sc);
        let vars = env_map(&sts);
        let get = |name: &str| value(&vars, name);
        assert_eq!(
            get("RILL_KAFKA_LISTENERS").as_deref(),
            Some("name=plain,port=9092,tls=false,auth=none;name=mtls,port=9095,tls=true,auth=mtls")
        );
        assert_eq!(
            get("RILL_KAFKA_TLS_CLIENT_CA_FILE").as_deref(),
            Some("/etc/rill-tls/clients-ca/ca.crt")
        );
        assert_eq!(get("RILL_SASL_CREDENTIALS_FILE"), None, "no scram listener");
        assert!(!mounts(&sts).contains_key("/etc/rill-scram"));
        assert_eq!(
            get("RILL_SUPER_USERS").as_deref(),
            Some("User:admin;User:ops")
        );
        assert_eq!(
            get("RILL_KAFKA_ADDR").as_deref(),
            Some("$(RILL_POD_IP):9092")
        );

        // Plaintext only, authorization off: no Kafka TLS files, internal
        // mTLS stays on.
        sc.spec.listeners = Some(vec![listener(
            "plain",
            9092,
            false,
            ListenerAuthentication::None,
        )]);
        sc.spec.authorization.enabled = false;
        let sts = build_default(&sc);
        let vars = env_map(&sts);
        assert_eq!(value(&vars, "RILL_KAFKA_TLS_CERT_FILE"), None);
        assert_eq!(value(&vars, "RILL_AUTHORIZATION").as_deref(), Some("false"));
        assert_eq!(value(&vars, "RILL_SUPER_USERS"), None);
        assert!(value(&vars, "RILL_INTERNAL_TLS_CERT_FILE").is_some());
    }

    #[test]
    fn given_a_broker_certificate_secret_of_the_users_when_building_then_it_is_mounted() {
        let tls = Material {
            broker_secret: "broker-tls".into(),
            ..material()
        };
        let sts = build(
            &cluster(),
            &Names::new("events"),
            3,
            "abc",
            &Settings::default(),
            &tls,
        );
        assert_eq!(secret_of(&sts, "broker-tls").as_deref(), Some("broker-tls"));
        let mode = pod_spec(&sts)
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "broker-tls")
            .and_then(|v| v.secret.as_ref())
            .and_then(|s| s.default_mode);
        assert_eq!(mode, Some(0o440), "read by the broker's group only");
    }

    #[test]
    fn given_no_image_in_spec_when_building_then_the_operator_default_is_used() {
        let settings = Settings {
            broker_image: "registry.local/rill/broker:9.9.9".into(),
            ..Settings::default()
        };
        let sts = build(
            &cluster(),
            &Names::new("events"),
            3,
            "abc",
            &settings,
            &material(),
        );
        assert_eq!(
            pod_spec(&sts).containers[0].image.as_deref(),
            Some("registry.local/rill/broker:9.9.9")
        );
        assert_eq!(pod_spec(&sts).containers[0].image_pull_policy, None);
    }
}
