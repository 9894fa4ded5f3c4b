//! `rill-kube-failover`: what a broker failover costs the metadata
//! controller and its store, printed as a table. A benchmark: it prints
//! figures and asserts nothing (bench/kube-failover.sh runs it against the
//! local control plane; bench/README.md describes the method).
//!
//! For each point (`--led`: how many partitions the broker that fails
//! leads) it starts, from scratch:
//! - the metadata controller, the same `rill_controller` server the
//!   operator embeds, on the Kubernetes store (`KubeStore` in a new
//!   namespace of the `KUBECONFIG` cluster: Topic `status.partitions` and
//!   the controller ConfigMap) or on the file store (`--store file`); the
//!   automatic balance is off, so the leaders set up below stay;
//! - `--brokers` `rill-broker` processes on loopback;
//! - topics of at most `--partitions-per-topic` partitions (Rill's limit
//!   is 1,000 per topic), replication factor `--replication-factor`, and
//!   makes broker 0 the preferred and current leader of `--led` of them
//!   (AlterReassignments reordering replicas, then ElectLeaders).
//!
//! Then two phases, each measured from its start until writes have been
//! quiet for `--quiet-secs`:
//! 1. **failover**: SIGKILL broker 0. Times until the controller committed
//!    a new leader for every partition it led (its WatchMetadata stream,
//!    sent only after the store write), until every surviving broker's
//!    Metadata names one, and (Kubernetes) until every Topic's
//!    `status.partitions` shows one.
//! 2. **rejoin**: start broker 0 again on its data. Times until it is back
//!    in every ISR in the controller and in Topic status.
//!
//! Each phase counts the API server's write requests by verb and resource
//! (kube-apiserver's `apiserver_request_total`, before and after; the
//! program's own polls are reads, subtracted from the read counts), the
//! controller's store persists and the AlterPartition requests it served.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, CustomResourceExt};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use parking_lot::Mutex;
use rill_controller::config::ServerConfig;
use rill_controller::{
    ControllerClient, ControllerHandle, FileStore, MetadataView, NO_LEADER, start_with_store,
};
use rill_operator::crd::{StreamCluster, Topic};
use rill_operator::metadata::KubeStore;
use rill_proto::controller as pb;

/// The broker that fails.
const VICTIM: i32 = 0;
/// StreamCluster name the Kubernetes store writes under (no StreamCluster
/// object is needed: the store only names its ConfigMap and Topics after it).
const CLUSTER: &str = "failover";
/// How long a broker may take to print its ready line (a restart opens
/// every partition it holds).
const READY_TIMEOUT: Duration = Duration::from_secs(900);
/// Between two looks at the controller's view.
const VIEW_POLL: Duration = Duration::from_millis(20);
/// Between two Metadata requests to each surviving broker.
const BROKER_POLL: Duration = Duration::from_millis(100);
/// Between two lists of the Topics (Kubernetes store).
const STATUS_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// Topic status and a ConfigMap in Kubernetes (`KUBECONFIG`).
    Kube,
    /// One JSON file, replaced atomically (fsync) on every persist.
    File,
}

#[derive(Debug, Parser)]
#[command(
    name = "rill-kube-failover",
    about = "Measures a broker failover: time to new leaders, API-server writes, controller persists"
)]
struct Args {
    /// Where the controller's metadata is durable.
    #[arg(long, value_enum, default_value = "kube")]
    store: StoreKind,
    /// Partitions the failing broker leads, one point each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    led: Vec<usize>,
    /// rill-broker processes (broker 0 fails).
    #[arg(long, default_value_t = 2)]
    brokers: i32,
    #[arg(long, default_value_t = 2)]
    replication_factor: i32,
    /// Partitions per topic (Rill allows at most 1,000).
    #[arg(long, default_value_t = 1000)]
    partitions_per_topic: usize,
    /// The rill-broker binary (default: next to this program).
    #[arg(long)]
    broker_bin: Option<PathBuf>,
    /// Broker data, logs and the file store go here (default: a temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep each point's work dir (broker logs and data) after a successful
    /// run too; a failed point always keeps it.
    #[arg(long)]
    keep: bool,
    /// The controller's broker session timeout, ms.
    #[arg(long, default_value_t = 1500)]
    session_timeout_ms: u32,
    /// A phase ends once no write (API server; file store: no persist) and
    /// no AlterPartition happened for this long.
    #[arg(long, default_value_t = 5)]
    quiet_secs: u64,
    /// Longest wait for any step.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Also measure broker 0 coming back (rejoining every ISR).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    rejoin: bool,
    /// Log filter of the controller (this process) and the brokers.
    #[arg(long, default_value = "warn")]
    log: String,
}

/// A `rill-broker` child process.
struct Broker {
    child: Child,
    client_addr: String,
}

impl Broker {
    fn start(
        bin: &Path,
        id: i32,
        dir: &Path,
        controller: &str,
        log_filter: &str,
    ) -> anyhow::Result<Self> {
        let data = dir.join(format!("broker-{id}"));
        let log_path = dir.join(format!("broker-{id}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        let mut cmd = Command::new(bin);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RILL_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .arg("--broker-id")
            .arg(id.to_string())
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(["--kafka-addr", "127.0.0.1:0"])
            .args(["--replication-addr", "127.0.0.1:0"])
            .args(["--controller-addr", controller])
            .env("RILL_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.starts_with("RILL_READY ") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "broker {id} did not get ready within {READY_TIMEOUT:?}; see {}",
                    log_path.display()
                );
            }
        };
        let client_addr = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("client="))
            .context("ready line without client=")?
            .to_owned();
        Ok(Self { child, client_addr })
    }

    fn kill9(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// Request counts of the API server by (verb, resource[/subresource]).
type ApiCounts = BTreeMap<(String, String), u64>;

/// Reads kube-apiserver's `apiserver_request_total`.
async fn api_counts(client: &Client) -> anyhow::Result<ApiCounts> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("a valid request");
    let text = client
        .request_text(request)
        .await
        .context("reading the API server's /metrics")?;
    let mut out = ApiCounts::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split("\",")
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let (verb, resource, sub) = (label("verb"), label("resource"), label("subresource"));
        let resource = if sub.is_empty() {
            resource
        } else {
            format!("{resource}/{sub}")
        };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        *out.entry((verb, resource)).or_default() += value as u64;
    }
    Ok(out)
}

fn diff(after: &ApiCounts, before: &ApiCounts) -> ApiCounts {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

const WRITE_VERBS: [&str; 5] = ["POST", "PUT", "PATCH", "DELETE", "APPLY"];

/// Installs the Topic and StreamCluster CRDs (server-side apply) and
/// waits until they are served.
async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in [Topic::crd(), StreamCluster::crd()] {
        let name = crd.metadata.name.clone().expect("named");
        api.patch(
            &name,
            &PatchParams::apply("rill-kube-failover").force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("applying CRD {name}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let c = api.get(&name).await?;
            let established = c.status.and_then(|s| s.conditions).is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if established {
                break;
            }
            if Instant::now() > deadline {
                bail!("CRD {name} not Established after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// The controller's view, as its WatchMetadata stream tells it.
#[derive(Default)]
struct View {
    view: Mutex<MetadataView>,
}

impl View {
    async fn follow(controller: String) -> anyhow::Result<Arc<Self>> {
        let client = ControllerClient::connect(vec![controller]).await?;
        let mut stream = client.watch(-1).await?;
        let view = Arc::new(Self::default());
        let writer = Arc::clone(&view);
        tokio::spawn(async move {
            let _client = client;
            while let Some(Ok(update)) = stream.next().await {
                writer.view.lock().apply(&update);
            }
        });
        Ok(view)
    }

    fn check<T>(&self, f: impl FnOnce(&MetadataView) -> T) -> T {
        f(&self.view.lock())
    }
}

/// Waits for `f` to return `Some`, polling every `every`.
async fn wait_until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

/// What one phase cost.
#[derive(Debug, Default, Clone)]
struct PhaseResult {
    name: &'static str,
    /// Seconds until the controller committed it (its watch stream).
    committed_s: Option<f64>,
    /// Seconds until every surviving broker's Metadata showed it.
    brokers_s: Option<f64>,
    /// Seconds until every Topic's status showed it (Kubernetes store).
    status_s: Option<f64>,
    /// Seconds from the start of the phase until writes stopped (at the
    /// latest when the phase was seen done, as far as polling shows).
    last_write_s: Option<f64>,
    persists: u64,
    /// Seconds the controller spent in store persists.
    persist_s: f64,
    alter_partitions: u64,
    /// API-server requests during the phase, the program's own polls
    /// subtracted.
    api: ApiCounts,
}

impl PhaseResult {
    fn api_sum(&self, resource: &str, verbs: &[&str]) -> u64 {
        self.api
            .iter()
            .filter(|((verb, res), _)| {
                verbs.contains(&verb.as_str())
                    && (res == resource || res.starts_with(&format!("{resource}/")))
            })
            .map(|(_, v)| v)
            .sum()
    }

    fn other_writes(&self) -> u64 {
        self.api
            .iter()
            .filter(|((verb, res), _)| {
                WRITE_VERBS.contains(&verb.as_str())
                    && !res.starts_with("topics")
                    && !res.starts_with("configmaps")
            })
            .map(|(_, v)| v)
            .sum()
    }
}

/// One measured point.
struct PointResult {
    store: StoreKind,
    led: usize,
    topics: usize,
    partitions: usize,
    phases: Vec<PhaseResult>,
}

/// Everything the phases share.
struct Bench<'a> {
    args: &'a Args,
    kube: Option<Client>,
    namespace: Option<String>,
    handle: ControllerHandle,
    view: Arc<View>,
    /// Topic lists this program made during a phase (subtracted from reads).
    own_lists: AtomicU64,
}

impl Bench<'_> {
    fn persists(&self) -> u64 {
        self.handle
            .metrics()
            .persist_seconds
            .with_label_values(&["ok"])
            .get_sample_count()
    }

    fn persist_seconds(&self) -> f64 {
        self.handle
            .metrics()
            .persist_seconds
            .with_label_values(&["ok"])
            .get_sample_sum()
    }

    fn alter_partition_total(&self) -> u64 {
        self.handle
            .metrics()
            .encode()
            .lines()
            .filter(|l| {
                l.starts_with("rill_controller_requests_total{")
                    && l.contains("method=\"AlterPartition\"")
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }

    async fn counts(&self) -> anyhow::Result<ApiCounts> {
        match &self.kube {
            Some(client) => api_counts(client).await,
            None => Ok(ApiCounts::new()),
        }
    }

    /// Topic statuses of the namespace: (topic, partition) -> (leader, isr).
    async fn statuses(&self) -> anyhow::Result<BTreeMap<(String, i32), (i32, Vec<i32>)>> {
        let (Some(client), Some(ns)) = (&self.kube, &self.namespace) else {
            return Ok(BTreeMap::new());
        };
        self.own_lists.fetch_add(1, Ordering::Relaxed);
        let topics = Api::<Topic>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await?;
        let mut out = BTreeMap::new();
        for t in topics.items {
            let name = t.effective_topic_name();
            for p in t.status.map(|s| s.partitions).unwrap_or_default() {
                out.insert(
                    (name.clone(), p.partition),
                    (p.leader.unwrap_or(NO_LEADER), p.isr),
                );
            }
        }
        Ok(out)
    }

    /// Waits until no write and no AlterPartition happened for
    /// `--quiet-secs`; returns the counts then and when the last change was
    /// seen (from `start`).
    async fn quiet(&self, start: Instant) -> anyhow::Result<(ApiCounts, Option<f64>)> {
        let quiet = Duration::from_secs(self.args.quiet_secs);
        let deadline = Instant::now() + Duration::from_secs(self.args.timeout_secs);
        let writes = |c: &ApiCounts| -> u64 {
            c.iter()
                .filter(|((verb, _), _)| WRITE_VERBS.contains(&verb.as_str()))
                .map(|(_, v)| v)
                .sum()
        };
        let mut last = (
            writes(&self.counts().await?),
            self.persists(),
            self.alter_partition_total(),
        );
        let mut last_change = Instant::now();
        let mut last_write: Option<f64> = None;
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let counts = self.counts().await?;
            let now = (
                writes(&counts),
                self.persists(),
                self.alter_partition_total(),
            );
            if now != last {
                last = now;
                last_change = Instant::now();
                last_write = Some(start.elapsed().as_secs_f64());
            } else if last_change.elapsed() >= quiet {
                return Ok((counts, last_write));
            }
            if Instant::now() > deadline {
                bail!("writes did not stop within {:?}", self.args.timeout_secs);
            }
        }
    }

    /// Runs one phase: `start` begins it (after the counts are taken);
    /// `committed`, `on_brokers` and `in_status` say when it is done in the
    /// controller's view, on the brokers and in Topic status.
    #[allow(clippy::too_many_arguments)]
    async fn phase(
        &self,
        name: &'static str,
        start: impl FnOnce() -> anyhow::Result<()>,
        committed: impl Fn(&MetadataView) -> bool,
        brokers: &[rill_client::Client],
        on_brokers: impl Fn(&pb_client::MetadataResponse) -> bool,
        in_status: impl Fn(&BTreeMap<(String, i32), (i32, Vec<i32>)>) -> bool,
    ) -> anyhow::Result<PhaseResult> {
        let before = self.counts().await?;
        let (persists, alters) = (self.persists(), self.alter_partition_total());
        let persist_s = self.persist_seconds();
        self.own_lists.store(0, Ordering::Relaxed);
        let t0 = Instant::now();
        start()?;
        let timeout = Duration::from_secs(self.args.timeout_secs);
        let mut result = PhaseResult {
            name,
            ..PhaseResult::default()
        };
        let kube = self.kube.is_some();
        let mut next_brokers = Instant::now();
        let mut next_status = Instant::now();
        while result.committed_s.is_none()
            || (!brokers.is_empty() && result.brokers_s.is_none())
            || (kube && result.status_s.is_none())
        {
            if t0.elapsed() > timeout {
                bail!("{name}: not done after {timeout:?}: {result:?}");
            }
            if result.committed_s.is_none() && self.view.check(&committed) {
                result.committed_s = Some(t0.elapsed().as_secs_f64());
            }
            if !brokers.is_empty() && result.brokers_s.is_none() && Instant::now() >= next_brokers {
                next_brokers = Instant::now() + BROKER_POLL;
                let mut all = true;
                for b in brokers {
                    match b.metadata(&[]).await {
                        Ok(m) if on_brokers(&m) => {}
                        _ => all = false,
                    }
                }
                if all {
                    result.brokers_s = Some(t0.elapsed().as_secs_f64());
                }
            }
            if kube && result.status_s.is_none() && Instant::now() >= next_status {
                next_status = Instant::now() + STATUS_POLL;
                if in_status(&self.statuses().await?) {
                    result.status_s = Some(t0.elapsed().as_secs_f64());
                }
            }
            tokio::time::sleep(VIEW_POLL).await;
        }
        let (after, last_write) = self.quiet(t0).await?;
        // Writes that stopped before the phase was seen done end with it.
        let done = [result.committed_s, result.brokers_s, result.status_s]
            .into_iter()
            .flatten()
            .fold(0.0, f64::max);
        let last_write = Some(last_write.unwrap_or(done).max(done));
        let mut api = diff(&after, &before);
        let own = self.own_lists.load(Ordering::Relaxed);
        if let Some(v) = api.get_mut(&("LIST".to_owned(), "topics".to_owned())) {
            *v = v.saturating_sub(own);
        }
        result.api = api;
        result.last_write_s = last_write;
        result.persists = self.persists() - persists;
        result.persist_s = self.persist_seconds() - persist_s;
        result.alter_partitions = self.alter_partition_total() - alters;
        Ok(result)
    }
}

mod pb_client {
    pub use rill_proto::client::MetadataResponse;
}

/// Partitions led by `broker` in a broker's Metadata answer, and whether
/// any of `led` is led by `broker` or by nobody.
fn still_led(m: &pb_client::MetadataResponse, led: &BTreeSet<(String, i32)>, broker: i32) -> bool {
    m.topics.iter().any(|t| {
        t.partitions.iter().any(|p| {
            led.contains(&(t.name.clone(), p.partition))
                && (p.leader == broker || p.leader == NO_LEADER)
        })
    })
}

/// Runs one point; on failure keeps its work dir (broker logs) and still
/// deletes its namespace.
async fn run_point(args: &Args, led: usize, kube: Option<&Client>) -> anyhow::Result<PointResult> {
    let work_root = match &args.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            tempfile::tempdir_in(d)?
        }
        None => tempfile::tempdir()?,
    };
    let namespace = match kube {
        Some(client) => Some(rill_e2e::namespace(client, "rill-failover").await),
        None => None,
    };
    let result = measure_point(args, led, kube, work_root.path(), namespace.as_deref()).await;
    if let (Some(client), Some(ns)) = (kube, &namespace) {
        rill_e2e::delete_namespace(client, ns).await;
    }
    if result.is_err() || args.keep {
        eprintln!(
            "[{}] kept {} for its logs",
            stamp(),
            work_root.keep().display()
        );
    }
    result
}

async fn measure_point(
    args: &Args,
    led: usize,
    kube: Option<&Client>,
    dir: &Path,
    namespace: Option<&str>,
) -> anyhow::Result<PointResult> {
    let namespace = namespace.map(str::to_owned);
    let broker_bin = match &args.broker_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("rill-broker"),
    };
    let ppt = args.partitions_per_topic.clamp(1, 1000);
    let rf = args.replication_factor;
    // Partitions holding a replica on broker 0: rf/brokers of them, so
    // create enough (a few spare) that `led` of them can be led by it.
    let wanted_total = (led * args.brokers as usize).div_ceil(rf as usize)
        + if args.brokers as usize == rf as usize {
            0
        } else {
            ppt / 10 + 8
        };
    let topics = wanted_total.div_ceil(ppt);

    let mut config = ServerConfig::ephemeral(dir.join("metadata.json"));
    config.auto_balance = false;
    config.session_timeout_ms = args.session_timeout_ms;
    config.heartbeat_interval_ms = (args.session_timeout_ms / 6).max(50);
    config.log_filter = args.log.clone();
    let handle = match (kube, &namespace) {
        (Some(client), Some(ns)) => {
            start_with_store(config, KubeStore::new(client.clone(), ns, CLUSTER)).await?
        }
        _ => {
            let store = FileStore::new(dir.join("metadata.json"));
            start_with_store(config, store).await?
        }
    };
    let controller = handle.grpc_addr.to_string();
    eprintln!(
        "[{}] led={led}: controller on {controller}{}, {topics} topics, {} brokers",
        stamp(),
        namespace
            .as_deref()
            .map(|ns| format!(" (namespace {ns})"))
            .unwrap_or_default(),
        args.brokers
    );

    let mut brokers: BTreeMap<i32, Broker> = BTreeMap::new();
    for id in 0..args.brokers {
        brokers.insert(
            id,
            tokio::task::block_in_place(|| {
                Broker::start(&broker_bin, id, dir, &controller, &args.log)
            })?,
        );
    }
    let view = View::follow(controller.clone()).await?;
    let timeout = Duration::from_secs(args.timeout_secs);
    let n = args.brokers as usize;
    wait_until("every broker registered", timeout, VIEW_POLL, || async {
        view.check(|v| {
            v.brokers
                .values()
                .filter(|b| b.state == rill_controller::Liveness::Active)
                .count()
                == n
        })
        .then_some(())
    })
    .await?;

    let admin = ControllerClient::connect_with(
        vec![controller.clone()],
        rill_controller::ClientOptions {
            request_timeout: Duration::from_secs(120),
            ..Default::default()
        },
    )
    .await?;
    let t = Instant::now();
    let mut left = wanted_total;
    let mut names = Vec::new();
    for i in 0..topics {
        let name = format!("failover-{i:03}");
        let partitions = left.min(ppt);
        left -= partitions;
        admin
            .create_topic(&name, partitions as i32, rf, BTreeMap::new())
            .await
            .with_context(|| format!("creating {name}"))?;
        names.push(name);
    }
    wait_until(
        "the topics in the controller's view",
        timeout,
        VIEW_POLL,
        || async {
            view.check(|v| {
                v.topics.values().map(|t| t.partitions.len()).sum::<usize>() == wanted_total
            })
            .then_some(())
        },
    )
    .await?;
    eprintln!(
        "[{}] created {topics} topics ({wanted_total} partitions) in {:.1} s",
        stamp(),
        t.elapsed().as_secs_f64()
    );

    // Broker 0 becomes the preferred leader of `led` partitions and of
    // no other.
    let (reassign, elect, led_set) = view.check(|v| {
        let mut reassign = Vec::new();
        let mut elect = Vec::new();
        let mut led_set = BTreeSet::new();
        for (name, t) in &v.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                if !p.replicas.contains(&VICTIM) {
                    continue;
                }
                let mut target: Vec<i32> = p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|r| *r != VICTIM)
                    .collect();
                if led_set.len() < led {
                    target.insert(0, VICTIM);
                    led_set.insert((name.clone(), i as i32));
                } else {
                    target.push(VICTIM);
                }
                if target != p.replicas {
                    reassign.push(pb::Reassignment {
                        topic: name.clone(),
                        partition: i as i32,
                        replicas: target.clone(),
                        cancel: false,
                        keep_replication_factor: true,
                    });
                }
                if p.leader != target[0] {
                    elect.push(pb::TopicPartition {
                        topic: name.clone(),
                        partition: i as i32,
                    });
                }
            }
        }
        (reassign, elect, led_set)
    });
    if led_set.len() < led {
        bail!(
            "only {} partitions have a replica on broker {VICTIM}; wanted {led}",
            led_set.len()
        );
    }
    for chunk in reassign.chunks(5000) {
        for r in admin.alter_reassignments(chunk.to_vec()).await? {
            if !r.error.is_empty() {
                bail!("reordering {}-{}: {}", r.topic, r.partition, r.error);
            }
        }
    }
    for chunk in elect.chunks(5000) {
        for r in admin.elect_preferred_leaders(chunk.to_vec()).await? {
            if !r.error.is_empty() && !r.error.starts_with("ELECTION_NOT_NEEDED") {
                bail!("electing {}-{}: {}", r.topic, r.partition, r.error);
            }
        }
    }
    let clients: BTreeMap<i32, rill_client::Client> = {
        let mut out = BTreeMap::new();
        for (id, b) in &brokers {
            out.insert(*id, rill_client::Client::connect(&b.client_addr).await?);
        }
        out
    };
    let t = Instant::now();
    wait_until(
        "broker 0 leading its partitions with full ISRs everywhere",
        timeout,
        Duration::from_millis(200),
        || async {
            let settled = view.check(|v| {
                v.topics.iter().all(|(name, t)| {
                    t.partitions.iter().enumerate().all(|(i, p)| {
                        p.isr.len() == p.replicas.len()
                            && p.leader == p.replicas[0]
                            && (p.leader == VICTIM) == led_set.contains(&(name.clone(), i as i32))
                    })
                })
            });
            if !settled {
                return None;
            }
            for c in clients.values() {
                let m = c.metadata(&[]).await.ok()?;
                let seen: usize = m
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
                    .filter(|(t, p)| {
                        p.leader == VICTIM && led_set.contains(&(t.name.clone(), p.partition))
                    })
                    .count();
                if seen != led_set.len() {
                    return None;
                }
            }
            Some(())
        },
    )
    .await?;
    eprintln!(
        "[{}] broker {VICTIM} leads {} partitions (settled in {:.1} s); waiting for quiet",
        stamp(),
        led_set.len(),
        t.elapsed().as_secs_f64()
    );

    let bench = Bench {
        args,
        kube: kube.cloned(),
        namespace: namespace.clone(),
        handle,
        view: Arc::clone(&view),
        own_lists: AtomicU64::new(0),
    };
    bench.quiet(Instant::now()).await?;

    let mut phases = Vec::new();
    let survivors: Vec<rill_client::Client> = clients
        .iter()
        .filter(|(id, _)| **id != VICTIM)
        .map(|(_, c)| c.clone())
        .collect();
    let mut victim = brokers.remove(&VICTIM).expect("broker 0");
    let failover = bench
        .phase(
            "failover",
            || {
                victim.kill9();
                Ok(())
            },
            |v| {
                led_set.iter().all(|(t, i)| {
                    v.partition(t, *i)
                        .is_some_and(|p| p.leader != VICTIM && p.leader != NO_LEADER)
                })
            },
            &survivors,
            |m| !still_led(m, &led_set, VICTIM),
            |s| {
                led_set.iter().all(|k| {
                    s.get(k)
                        .is_some_and(|(leader, _)| *leader != VICTIM && *leader != NO_LEADER)
                })
            },
        )
        .await?;
    eprintln!("[{}] failover: {failover:?}", stamp());
    phases.push(failover);
    drop(victim);

    if args.rejoin {
        let all: BTreeSet<(String, i32)> = view.check(|v| {
            v.topics
                .iter()
                .flat_map(|(n, t)| (0..t.partitions.len()).map(move |i| (n.clone(), i as i32)))
                .collect()
        });
        let replicas_of: BTreeMap<(String, i32), Vec<i32>> = view.check(|v| {
            v.topics
                .iter()
                .flat_map(|(n, t)| {
                    t.partitions
                        .iter()
                        .enumerate()
                        .map(move |(i, p)| ((n.clone(), i as i32), p.replicas.clone()))
                })
                .collect()
        });
        let mut restarted = None;
        let rejoin = bench
            .phase(
                "rejoin",
                || {
                    restarted = Some(tokio::task::block_in_place(|| {
                        Broker::start(&broker_bin, VICTIM, dir, &controller, &args.log)
                    })?);
                    Ok(())
                },
                |v| {
                    all.iter().all(|(t, i)| {
                        v.partition(t, *i)
                            .is_some_and(|p| p.isr.len() == p.replicas.len())
                    })
                },
                &[],
                |_| true,
                |s| {
                    all.iter().all(|k| {
                        s.get(k).is_some_and(|(_, isr)| {
                            replicas_of.get(k).is_some_and(|r| isr.len() == r.len())
                        })
                    })
                },
            )
            .await?;
        eprintln!("[{}] rejoin: {rejoin:?}", stamp());
        phases.push(rejoin);
        drop(restarted);
    }

    drop(brokers);
    let _ = bench.handle.shutdown().await;
    Ok(PointResult {
        store: args.store,
        led,
        topics: names.len(),
        partitions: wanted_total,
        phases,
    })
}

fn stamp() -> String {
    jiff::Zoned::now().strftime("%H:%M:%S").to_string()
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |s| format!("{s:.2}"))
}

fn print_table(points: &[PointResult]) {
    println!(
        "| store | led | topics | partitions | phase | committed s | brokers s | Topic status s | writes end s | persists | persist s | AlterPartition | Topic PATCH | Topic POST/PUT | ConfigMap writes | other writes | Topic GET | Topic LIST |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for p in points {
        for ph in &p.phases {
            let store = match p.store {
                StoreKind::Kube => "kube",
                StoreKind::File => "file",
            };
            let kube = p.store == StoreKind::Kube;
            let n = |v: u64| {
                if kube {
                    v.to_string()
                } else {
                    "–".to_owned()
                }
            };
            println!(
                "| {store} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
                p.led,
                p.topics,
                p.partitions,
                ph.name,
                secs(ph.committed_s),
                secs(ph.brokers_s),
                secs(ph.status_s),
                secs(ph.last_write_s),
                ph.persists,
                ph.persist_s,
                ph.alter_partitions,
                n(ph.api_sum("topics", &["PATCH"])),
                n(ph.api_sum("topics", &["POST", "PUT"])),
                n(ph.api_sum("configmaps", &WRITE_VERBS)),
                n(ph.other_writes()),
                n(ph.api_sum("topics", &["GET"])),
                n(ph.api_sum("topics", &["LIST"])),
            );
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    let kube = match args.store {
        StoreKind::Kube => {
            let client = rill_e2e::client().await;
            install_crds(&client).await?;
            Some(client)
        }
        StoreKind::File => None,
    };
    let mut points = Vec::new();
    for &led in &args.led {
        let point = run_point(&args, led, kube.as_ref()).await?;
        print_table(std::slice::from_ref(&point));
        points.push(point);
    }
    println!();
    print_table(&points);
    Ok(())
}
