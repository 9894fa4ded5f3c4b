//! One pod on the node, from its first sight to its removal: an address,
//! volumes, a supervisor per container, status reports, and on deletion
//! the graceful stop (SIGTERM, `deletionGracePeriodSeconds`, SIGKILL)
//! followed by the final delete with grace 0 that removes the pod from the
//! API, as a kubelet does.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::container::Supervisor;
use super::env::EnvContext;
use super::status::{ContainerState, ContainerStatus, PodState};
use super::volumes::PodVolumes;
use super::{Agent, pod_key};

/// How often volumes (ConfigMaps, Secrets, tokens) are refreshed.
const VOLUME_REFRESH: Duration = Duration::from_secs(20);
/// Retry interval while volumes cannot be prepared.
const VOLUME_RETRY: Duration = Duration::from_secs(2);

/// The latest pod from the API; `None` once it is gone.
pub type PodUpdates = watch::Receiver<Option<Pod>>;

fn grace_of(pod: &Pod) -> u64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0) as u64
}

async fn delete_now(agent: &Agent, pod: &Pod) {
    let api = Api::<Pod>::namespaced(
        agent.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api
        .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
        .await
    {
        Ok(_) => tracing::info!(pod = %pod_key(pod), "pod removed"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!(pod = %pod_key(pod), error = %e, "final delete failed"),
    }
}

/// Patches `pods/status` whenever `changed` fires, until `done`.
async fn write_status(
    agent: Arc<Agent>,
    pod: Pod,
    state: Arc<Mutex<PodState>>,
    changed: Arc<Notify>,
    done: CancellationToken,
) {
    let api = Api::<Pod>::namespaced(
        agent.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut last = serde_json::Value::Null;
    loop {
        let finishing = tokio::select! {
            _ = changed.notified() => false,
            _ = done.cancelled() => true,
        };
        // A stopping agent reports nothing more (see `run`).
        if agent.stop.is_cancelled() {
            return;
        }
        let patch = state.lock().to_patch(Timestamp::now());
        if patch != last {
            let result = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await;
            match result {
                Ok(_) => {
                    tracing::debug!(pod = %pod_key(&pod), phase = %patch["status"]["phase"], "status reported");
                    last = patch;
                }
                Err(kube::Error::Api(e)) if e.code == 404 => return,
                Err(e) => {
                    tracing::warn!(pod = %pod_key(&pod), error = %e, "status update failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    changed.notify_one();
                }
            }
        }
        if finishing {
            return;
        }
    }
}

/// Runs `pod` until it is deleted (then removes it) or the agent stops
/// (then stops its containers and leaves it).
pub async fn run(agent: Arc<Agent>, mut updates: PodUpdates) {
    let Some(pod) = updates.borrow_and_update().clone() else {
        return;
    };
    let key = pod_key(&pod);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let terminal = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
    if pod.metadata.deletion_timestamp.is_some() || terminal {
        // Nothing of it runs here: remove it once it is being deleted.
        loop {
            let current = updates.borrow_and_update().clone();
            match current {
                None => return,
                Some(p) if p.metadata.deletion_timestamp.is_some() => {
                    delete_now(&agent, &p).await;
                    return;
                }
                Some(_) => {}
            }
            tokio::select! {
                r = updates.changed() => if r.is_err() { return },
                _ = agent.stop.cancelled() => return,
            }
        }
    }

    let previous_ip = status
        .pod_ip
        .as_deref()
        .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok());
    let ip = match agent.ipam.lock().allocate(&uid, previous_ip) {
        Ok(ip) => IpAddr::V4(ip),
        Err(e) => {
            tracing::error!(pod = %key, error = %e, "no address for the pod");
            return;
        }
    };
    tracing::info!(pod = %key, %ip, "starting pod");
    let spec = pod.spec.clone().unwrap_or_default();
    let previous: Vec<_> = status.container_statuses.clone().unwrap_or_default();
    let containers: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| {
            let mut s = ContainerStatus::new(&c.name, c.image.as_deref().unwrap_or_default());
            // After an agent restart the count goes on from the report.
            if let Some(p) = previous.iter().find(|p| p.name == c.name) {
                s.restart_count = p.restart_count;
            }
            s
        })
        .collect();
    let mut initial = PodState::new(agent.config.host_ip, containers, Timestamp::now());
    if let Some(t) = status.start_time.as_ref() {
        initial.start_time = t.0;
    }
    initial.pod_ip = Some(ip);
    let state = Arc::new(Mutex::new(initial));
    let changed = Arc::new(Notify::new());
    let writer_done = CancellationToken::new();
    let writer = tokio::spawn(write_status(
        agent.clone(),
        pod.clone(),
        state.clone(),
        changed.clone(),
        writer_done.clone(),
    ));
    changed.notify_one();

    let pod_dir = agent.pod_dir(&pod);
    if let Err(e) = std::fs::create_dir_all(&pod_dir) {
        tracing::error!(pod = %key, error = %e, "cannot create the pod directory");
    }
    let mut volumes = PodVolumes::new(&pod_dir);
    let volume_ctx = EnvContext {
        pod_ip: Some(ip),
        host_ip: Some(agent.config.host_ip),
        ..EnvContext::default()
    };

    // Volumes first; containers wait in ContainerCreating meanwhile.
    let mut deleted: Option<Option<Pod>> = None;
    loop {
        match volumes.sync(&agent.client, &pod, &volume_ctx).await {
            Ok(()) => break,
            Err(message) => {
                tracing::info!(pod = %key, %message, "waiting for volumes");
                {
                    let mut s = state.lock();
                    for c in &mut s.containers {
                        c.state =
                            ContainerState::waiting("ContainerCreating", Some(message.clone()));
                    }
                }
                changed.notify_one();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(VOLUME_RETRY) => {}
            r = updates.changed() => {
                let current = if r.is_err() { None } else { updates.borrow_and_update().clone() };
                if current.as_ref().is_none_or(|p| p.metadata.deletion_timestamp.is_some()) {
                    deleted = Some(current);
                    break;
                }
            }
            _ = agent.stop.cancelled() => break,
        }
    }

    // Init containers are not run: starting the app containers without
    // them would misreport the pod, so it waits with the reason.
    if spec.init_containers.as_ref().is_some_and(|c| !c.is_empty()) && deleted.is_none() {
        let message = "init containers are not supported by the node agent".to_owned();
        for c in &mut state.lock().containers {
            c.state = ContainerState::waiting("CreateContainerError", Some(message.clone()));
        }
        changed.notify_one();
        loop {
            tokio::select! {
                r = updates.changed() => {
                    let current = if r.is_err() { None } else { updates.borrow_and_update().clone() };
                    if current.as_ref().is_none_or(|p| p.metadata.deletion_timestamp.is_some()) {
                        deleted = Some(current);
                        break;
                    }
                    // As the kubelet does: a pod update refreshes its
                    // ConfigMap and Secret volumes at once.
                    if let Some(updated) = current
                        && let Err(message) = volumes.sync(&agent.client, &updated, &volume_ctx).await
                    {
                        tracing::warn!(pod = %key, %message, "volume refresh failed");
                    }
                }
                _ = agent.stop.cancelled() => break,
            }
        }
    }

    let stop = CancellationToken::new();
    let grace = Arc::new(AtomicU64::new(grace_of(&pod)));
    let mut supervisors = JoinSet::new();
    if deleted.is_none() && !agent.stop.is_cancelled() {
        state.lock().sandbox_ready = true;
        changed.notify_one();
        for (index, container) in spec.containers.iter().enumerate() {
            let mounts = match volumes.mounts(container) {
                Ok(m) => m,
                Err(message) => {
                    state.lock().containers[index].state =
                        ContainerState::waiting("CreateContainerError", Some(message));
                    changed.notify_one();
                    continue;
                }
            };
            supervisors.spawn(
                Supervisor {
                    agent: agent.clone(),
                    pod: pod.clone(),
                    container: container.clone(),
                    index,
                    state: state.clone(),
                    changed: changed.clone(),
                    pod_ip: ip,
                    mounts,
                    stop: stop.clone(),
                    grace: grace.clone(),
                }
                .run(),
            );
        }
        // Supervise until the pod is deleted or the agent stops.
        let mut refresh = tokio::time::interval(VOLUME_REFRESH);
        refresh.tick().await;
        loop {
            tokio::select! {
                r = updates.changed() => {
                    let current = if r.is_err() { None } else { updates.borrow_and_update().clone() };
                    if current.as_ref().is_none_or(|p| p.metadata.deletion_timestamp.is_some()) {
                        deleted = Some(current);
                        break;
                    }
                    // As the kubelet does: a pod update refreshes its
                    // ConfigMap and Secret volumes at once.
                    if let Some(updated) = current
                        && let Err(message) = volumes.sync(&agent.client, &updated, &volume_ctx).await
                    {
                        tracing::warn!(pod = %key, %message, "volume refresh failed");
                    }
                }
                _ = refresh.tick() => {
                    if let Err(message) = volumes.sync(&agent.client, &pod, &volume_ctx).await {
                        tracing::warn!(pod = %key, %message, "volume refresh failed");
                    }
                }
                _ = agent.stop.cancelled() => break,
            }
        }
    }

    // Stop the containers.
    let grace_seconds = match &deleted {
        Some(Some(p)) => grace_of(p),
        // Gone from the API already (force deletion): stop at once.
        Some(None) => 0,
        None => grace_of(&pod).min(agent.config.shutdown_grace.as_secs()),
    };
    grace.store(grace_seconds, Ordering::Release);
    tracing::info!(pod = %key, grace_seconds, "stopping pod");
    if deleted.is_none() {
        // The agent stops, not the pod: like a kubelet going away, it
        // reports nothing more (the node turns NotReady instead), so the
        // stopped containers do not read as a failed pod.
        writer.abort();
    }
    stop.cancel();
    while supervisors.join_next().await.is_some() {}
    writer_done.cancel();
    let _ = writer.await;

    match deleted {
        Some(Some(p)) => {
            delete_now(&agent, &p).await;
        }
        Some(None) => {}
        // The agent stops: the pod stays, to run again when it is back.
        None => {
            agent.ipam.lock().release(&uid);
            return;
        }
    }
    agent.ipam.lock().release(&uid);
    if let Err(e) = std::fs::remove_dir_all(&pod_dir) {
        tracing::warn!(pod = %key, error = %e, "cannot remove the pod directory");
    }
}
