//! # The node agent
//!
//! `rill-node-agent` stands in for a kubelet and a container runtime on a
//! machine that has neither, so the local control plane of
//! `e2e/scripts/cluster.sh` runs Rill's chart and StreamClusters for real:
//! Deployments, StatefulSets, Services, PVCs and probes all go through
//! kube-apiserver, kube-controller-manager and kube-scheduler, and the pods
//! they produce run here as local processes.
//!
//! Data flow: [`node`] registers the Node and heartbeats it; a watch on
//! Pods with `spec.nodeName` = this node hands each pod to a [`pod`] worker
//! (address from [`ipam`], volumes from [`volumes`], one [`container`]
//! supervisor per container, which starts the process through [`sandbox`]
//! with the binary [`images`] maps the image to, the environment of [`env`](mod@env),
//! and runs its [`probe`]s); the worker reports [`status`] and removes the
//! pod after a graceful stop. [`provisioner`] creates PersistentVolumes for
//! the default StorageClass `rill-local`; [`hosts`] maps Service names to
//! ready pods in `/etc/hosts`.
//!
//! e2e/README.md ("Node agent") lists what is real and what is stood in for.

pub mod container;
pub mod env;
pub mod expand;
pub mod hosts;
pub mod images;
pub mod ipam;
pub mod node;
pub mod pod;
pub mod probe;
pub mod provisioner;
pub mod sandbox;
pub mod status;
pub mod volumes;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Pod, Service};
use kube::api::Api;
use kube::runtime::watcher::{self, Event, watcher};
use kube::runtime::{WatchStreamExt, reflector};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use images::ImageMap;
use ipam::{Ipam, PodRange};

/// Errors of the node agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no free pod address left in {0}")]
    PodRangeFull(String),
    #[error("container sandbox: {0}")]
    Sandbox(String),
}

impl AgentError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// The agent's settings, resolved from its flags.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Name of the Node this agent registers.
    pub node_name: String,
    /// Extra Node labels.
    pub node_labels: BTreeMap<String, String>,
    /// Where pods, volumes, logs and pid files live.
    pub root_dir: PathBuf,
    /// Range the pod addresses come from (inside 127.0.0.0/8).
    pub pod_range: PodRange,
    /// The node's address (status.hostIP).
    pub host_ip: IpAddr,
    pub images: ImageMap,
    /// The hosts file that gets the Service-name block; `None`: none.
    pub hosts_file: Option<PathBuf>,
    /// Reported capacity.
    pub cpu: String,
    pub memory: String,
    pub max_pods: u32,
    /// Longest grace period given to a pod when the agent stops.
    pub shutdown_grace: Duration,
    /// Where pods reach the API server (KUBERNETES_SERVICE_HOST/PORT).
    pub api_host: String,
    pub api_port: u16,
}

/// What every pod worker shares.
pub struct Agent {
    pub client: Client,
    pub config: Arc<AgentConfig>,
    pub ipam: Mutex<Ipam>,
    /// This binary, re-executed as `container-init` / `container-exec`.
    pub agent_exe: PathBuf,
    /// Cancelled when the agent stops.
    pub stop: CancellationToken,
}

/// The standard `PATH` of a container, after the image's directory.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `<namespace>_<name>`: how logs and pid files name a pod.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

impl Agent {
    /// `<root>/pods/<uid>`: spec files and non-PVC volumes of a pod.
    pub fn pod_dir(&self, pod: &Pod) -> PathBuf {
        self.config
            .root_dir
            .join("pods")
            .join(pod.metadata.uid.as_deref().unwrap_or("unknown"))
    }

    /// The pod's hostname: `spec.hostname`, else its name (at most 63 bytes).
    pub fn hostname(&self, pod: &Pod) -> String {
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.hostname.clone())
            .or_else(|| pod.metadata.name.clone())
            .unwrap_or_default();
        name.chars().take(63).collect()
    }

    pub fn base_path(&self) -> String {
        SYSTEM_PATH.to_owned()
    }

    /// What every container's environment starts with: what a container
    /// image and the kubelet provide (PATH with the image's directory first,
    /// HOME, HOSTNAME) and the API server's address for in-cluster clients.
    pub fn base_env(&self, pod: &Pod, container: &Container) -> Vec<(String, String)> {
        let image_dir = container
            .image
            .as_deref()
            .and_then(|i| self.config.images.resolve(i))
            .and_then(|b| b.parent())
            .map(|d| format!("{}:", d.display()))
            .unwrap_or_default();
        vec![
            ("PATH".into(), format!("{image_dir}{SYSTEM_PATH}")),
            ("HOSTNAME".into(), self.hostname(pod)),
            ("HOME".into(), "/".into()),
            (
                "KUBERNETES_SERVICE_HOST".into(),
                self.config.api_host.clone(),
            ),
            (
                "KUBERNETES_SERVICE_PORT".into(),
                self.config.api_port.to_string(),
            ),
            (
                "KUBERNETES_SERVICE_PORT_HTTPS".into(),
                self.config.api_port.to_string(),
            ),
        ]
    }
}

/// Keeps the hosts block in line with Services and Pods until cancelled,
/// then removes it.
async fn maintain_hosts(client: Client, node: String, file: PathBuf, stop: CancellationToken) {
    let (services, services_writer) = reflector::store::<Service>();
    let (pods, pods_writer) = reflector::store::<Pod>();
    let service_events = reflector::reflector(
        services_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .map(|e| e.map(|_| ()));
    let pod_events = reflector::reflector(
        pods_writer,
        watcher(Api::<Pod>::all(client), watcher::Config::default()),
    )
    .default_backoff()
    .map(|e| e.map(|_| ()));
    let mut events = futures::stream::select(service_events.boxed(), pod_events.boxed());
    let mut written: Option<hosts::HostEntries> = None;
    loop {
        let event = tokio::select! {
            e = events.next() => e,
            _ = stop.cancelled() => break,
        };
        match event {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::warn!(error = %e, "service/pod watch error");
                continue;
            }
            None => break,
        }
        let all_services = services.state();
        let all_pods = pods.state();
        let pod_refs: Vec<&Pod> = all_pods.iter().map(|p| p.as_ref()).collect();
        let entries = hosts::entries(all_services.iter().map(|s| s.as_ref()), &pod_refs);
        if written.as_ref() != Some(&entries) {
            match write_hosts(&file, &node, Some(&entries)) {
                Ok(()) => written = Some(entries),
                Err(e) => tracing::warn!(error = %e, "cannot update the hosts file"),
            }
        }
    }
    if let Err(e) = write_hosts(&file, &node, None) {
        tracing::warn!(error = %e, "cannot remove the hosts block");
    }
}

/// Rewrites `file` with the block of `node` (atomically by rename where the
/// file allows it, in place where it is a mount point).
fn write_hosts(
    file: &Path,
    node: &str,
    entries: Option<&hosts::HostEntries>,
) -> Result<(), AgentError> {
    let current = std::fs::read_to_string(file).map_err(|e| AgentError::io(file, e))?;
    let next = hosts::splice(&current, node, entries);
    if next == current {
        return Ok(());
    }
    let tmp = file.with_file_name(format!(".rill-node-agent-{node}.hosts"));
    let renamed = std::fs::write(&tmp, &next)
        .and_then(|()| {
            let mode = std::fs::metadata(file)?.permissions();
            std::fs::set_permissions(&tmp, mode)
        })
        .and_then(|()| std::fs::rename(&tmp, file));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
        std::fs::write(file, &next).map_err(|e| AgentError::io(file, e))?;
    }
    Ok(())
}

/// Runs the agent until `shutdown` completes: registers the node, runs the
/// pods bound to it, provisions volumes and keeps the hosts block; then
/// stops every pod's processes, removes the hosts block and reports the
/// node NotReady.
pub async fn run(
    client: Client,
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let config = Arc::new(config);
    for dir in ["pods", "volumes", "logs", "pids"] {
        let path = config.root_dir.join(dir);
        std::fs::create_dir_all(&path).map_err(|e| AgentError::io(&path, e))?;
    }
    let agent_exe =
        std::env::current_exe().map_err(|e| AgentError::io(Path::new("/proc/self/exe"), e))?;
    let since = jiff::Timestamp::now();
    node::register(&client, &config, since).await?;
    provisioner::ensure_storage_class(&client).await?;
    tracing::info!(node = %config.node_name, pods = %config.pod_range, root = %config.root_dir.display(), "node registered");

    let agent = Arc::new(Agent {
        client: client.clone(),
        config: config.clone(),
        ipam: Mutex::new(Ipam::new(config.pod_range)),
        agent_exe,
        stop: CancellationToken::new(),
    });
    let mut background = JoinSet::new();
    background.spawn(node::heartbeat(client.clone(), config.clone(), since));
    background.spawn(provisioner::run(client.clone(), config.clone()));
    let hosts_stop = CancellationToken::new();
    let hosts_task = config.hosts_file.clone().map(|file| {
        tokio::spawn(maintain_hosts(
            client.clone(),
            config.node_name.clone(),
            file,
            hosts_stop.clone(),
        ))
    });

    let pods_api = Api::<Pod>::all(client.clone());
    let selector = format!("spec.nodeName={}", config.node_name);
    let mut stream = watcher(pods_api, watcher::Config::default().fields(&selector))
        .default_backoff()
        .boxed();
    let mut workers: BTreeMap<String, watch::Sender<Option<Pod>>> = BTreeMap::new();
    let mut tasks = JoinSet::new();
    let mut listing: Option<BTreeSet<String>> = None;
    let seen = |pod: Pod,
                workers: &mut BTreeMap<String, watch::Sender<Option<Pod>>>,
                tasks: &mut JoinSet<()>| {
        let uid = pod.uid().unwrap_or_default();
        match workers.get(&uid) {
            Some(tx) => {
                let _ = tx.send(Some(pod));
            }
            None => {
                let (tx, rx) = watch::channel(Some(pod));
                workers.insert(uid, tx);
                tasks.spawn(pod::run(agent.clone(), rx));
            }
        }
    };
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            e = stream.next() => e,
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next() => continue,
        };
        match event {
            Some(Ok(Event::Apply(pod))) => seen(pod, &mut workers, &mut tasks),
            Some(Ok(Event::Delete(pod))) => {
                if let Some(tx) = workers.remove(&pod.uid().unwrap_or_default()) {
                    let _ = tx.send(None);
                }
            }
            Some(Ok(Event::Init)) => listing = Some(BTreeSet::new()),
            Some(Ok(Event::InitApply(pod))) => {
                if let Some(l) = listing.as_mut() {
                    l.insert(pod.uid().unwrap_or_default());
                }
                seen(pod, &mut workers, &mut tasks);
            }
            Some(Ok(Event::InitDone)) => {
                if let Some(listed) = listing.take() {
                    let gone: Vec<String> = workers
                        .keys()
                        .filter(|u| !listed.contains(*u))
                        .cloned()
                        .collect();
                    for uid in gone {
                        if let Some(tx) = workers.remove(&uid) {
                            let _ = tx.send(None);
                        }
                    }
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "pod watch error");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            None => break,
        }
        // Workers whose pods are gone release their channels.
        workers.retain(|_, tx| !tx.is_closed());
    }

    tracing::info!(pods = workers.len(), "stopping: terminating pod processes");
    agent.stop.cancel();
    while tasks.join_next().await.is_some() {}
    hosts_stop.cancel();
    if let Some(task) = hosts_task {
        let _ = task.await;
    }
    background.abort_all();
    if let Err(e) = node::report(&client, &config, false, jiff::Timestamp::now()).await {
        tracing::warn!(error = %e, "cannot report the node NotReady");
    }
    tracing::info!("stopped");
    Ok(())
}
