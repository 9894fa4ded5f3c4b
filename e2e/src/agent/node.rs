//! The Node object and its heartbeat: the agent registers its Node (Ready,
//! capacity, addresses, labels), renews its Lease in `kube-node-lease`
//! every 10 s (the node lifecycle controller's liveness signal) and
//! re-reports the Node's conditions every minute; on a clean stop it
//! reports Ready=False.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::{AgentConfig, AgentError};

/// Field manager of everything the agent writes.
pub const FIELD_MANAGER: &str = "rill-node-agent";
/// Lease renewal interval (the kubelet's default).
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// Lease duration reported on the Lease (the kubelet's default).
const LEASE_SECONDS: i32 = 40;
/// Node status report interval.
const STATUS_EVERY: Duration = Duration::from_secs(60);

fn ssa() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// The Node's labels and spec.
pub fn node_object(config: &AgentConfig) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("kubernetes.io/hostname".into(), json!(config.node_name));
    labels.insert("kubernetes.io/os".into(), json!("linux"));
    labels.insert(
        "kubernetes.io/arch".into(),
        json!(
            std::env::consts::ARCH
                .replace("x86_64", "amd64")
                .replace("aarch64", "arm64")
        ),
    );
    labels.insert("rill.dev/node-agent".into(), json!("true"));
    for (k, v) in &config.node_labels {
        labels.insert(k.clone(), json!(v));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": config.node_name, "labels": labels},
        "spec": {"podCIDR": config.pod_range.to_string(), "podCIDRs": [config.pod_range.to_string()]},
    })
}

/// The Node's status (`ready` decides the Ready condition; `since` is when
/// the conditions last changed: the agent's start, or its stop).
pub fn node_status(config: &AgentConfig, ready: bool, now: Timestamp, since: Timestamp) -> Value {
    let resources = json!({
        "cpu": config.cpu.clone(),
        "memory": config.memory.clone(),
        "pods": config.max_pods.to_string(),
        "ephemeral-storage": "100Gi",
    });
    let condition = |kind: &str, status: bool, reason: &str, message: &str| {
        json!({
            "type": kind,
            "status": if status { "True" } else { "False" },
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now.to_string(),
            "lastTransitionTime": since.to_string(),
        })
    };
    let (reason, message) = if ready {
        ("KubeletReady", "rill-node-agent is running pods")
    } else {
        ("KubeletNotReady", "rill-node-agent stopped")
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": config.node_name},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "addresses": [
                {"type": "InternalIP", "address": config.host_ip.to_string()},
                {"type": "Hostname", "address": config.node_name},
            ],
            "conditions": [
                condition("Ready", ready, reason, message),
                condition("MemoryPressure", false, "KubeletHasSufficientMemory", "no memory pressure"),
                condition("DiskPressure", false, "KubeletHasNoDiskPressure", "no disk pressure"),
                condition("PIDPressure", false, "KubeletHasSufficientPID", "no PID pressure"),
            ],
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "",
                "kernelVersion": "", "osImage": "rill-node-agent", "containerRuntimeVersion": "rill-node-agent://processes",
                "kubeletVersion": format!("rill-node-agent/{}", env!("CARGO_PKG_VERSION")),
                "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": std::env::consts::ARCH,
            },
        },
    })
}

/// Registers the Node (Ready since `since`) and renews its Lease.
pub async fn register(
    client: &Client,
    config: &AgentConfig,
    since: Timestamp,
) -> Result<(), AgentError> {
    let nodes = Api::<Node>::all(client.clone());
    nodes
        .patch(
            &config.node_name,
            &ssa(),
            &Patch::Apply(node_object(config)),
        )
        .await?;
    report(client, config, true, since).await?;
    renew_lease(client, config).await
}

/// Writes the Node's status.
pub async fn report(
    client: &Client,
    config: &AgentConfig,
    ready: bool,
    since: Timestamp,
) -> Result<(), AgentError> {
    Api::<Node>::all(client.clone())
        .patch_status(
            &config.node_name,
            &ssa(),
            &Patch::Apply(node_status(config, ready, Timestamp::now(), since)),
        )
        .await?;
    Ok(())
}

async fn renew_lease(client: &Client, config: &AgentConfig) -> Result<(), AgentError> {
    let node = Api::<Node>::all(client.clone())
        .get(&config.node_name)
        .await?;
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": config.node_name,
            "namespace": "kube-node-lease",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Node",
                "name": config.node_name, "uid": node.metadata.uid,
            }],
        },
        "spec": {
            "holderIdentity": config.node_name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": MicroTime(Timestamp::now()),
        },
    });
    Api::<Lease>::namespaced(client.clone(), "kube-node-lease")
        .patch(&config.node_name, &ssa(), &Patch::Apply(lease))
        .await?;
    Ok(())
}

/// Renews the Lease and re-reports the Node until cancelled.
pub async fn heartbeat(client: Client, config: std::sync::Arc<AgentConfig>, since: Timestamp) {
    let mut lease = tokio::time::interval(LEASE_RENEW);
    let mut status = tokio::time::interval(STATUS_EVERY);
    loop {
        tokio::select! {
            _ = lease.tick() => {
                if let Err(e) = renew_lease(&client, &config).await {
                    tracing::warn!(error = %e, "lease renewal failed");
                }
            }
            _ = status.tick() => {
                if let Err(e) = report(&client, &config, true, since).await {
                    tracing::warn!(error = %e, "node status report failed");
                }
            }
        }
    }
}
