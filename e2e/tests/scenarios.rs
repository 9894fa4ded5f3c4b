//! Rill as a platform team meets it: the Helm chart installed with `helm`,
//! resources applied with `kubectl`, records produced and consumed by
//! librdkafka (confluent-kafka) and kcat through the bootstrap Service, on a
//! cluster whose pods really run (the local cluster of e2e/scripts/cluster.sh
//! by default; any cluster given `KUBECONFIG` and image names).
//!
//! Pins:
//! - the chart installs; the CRDs are Established; the operator becomes
//!   leader; it runs as the chart's ServiceAccount, which may do what the
//!   operator needs and nothing more (Secrets read and written for Users
//!   but never deleted, no Pods created, no RBAC, no cluster-wide
//!   wildcard), and the operator never hits a Forbidden;
//! - invalid resources (0 brokers, 0 partitions, a shrunk partition count)
//!   are rejected by the API server with a message naming the rule;
//! - examples/: the 3-broker StreamCluster becomes Ready, `kubectl get`
//!   columns show brokers, readiness and the bootstrap address, and each
//!   Topic's status shows a leader and a full ISR per partition;
//! - GitOps: re-applying the same manifests changes no resourceVersion and
//!   emits no event;
//! - every record acknowledged through the bootstrap Service is read back
//!   exactly once; deleting the leader's pod during production loses
//!   nothing, writes resume, and the pod comes back on the same volume and
//!   rejoins the ISR;
//! - a partition increase reaches status and Kafka metadata; deleting a
//!   Topic removes the Kafka topic, unless it has `rill.dev/keep-data`;
//! - killing the operator's leader pod (two replicas): the other takes the
//!   Lease, and brokers keep acknowledging writes meanwhile;
//! - scale 3 → 5 brokers; a scale-down while the brokers to remove hold
//!   replicas is held with `ScaleDownBlocked` while the controller moves
//!   their replicas away, then completes, with every record still readable;
//! - rolling restarts under acks=all load: a `spec.config` change rolls the
//!   brokers one at a time, survives the operator being killed mid-roll,
//!   and an image change rolls them again, with no write failed or lost,
//!   at most one broker unavailable and no partition below min ISR at any
//!   sample; a roll asked while replication is cut (iptables) and every
//!   partition is below min ISR waits with `RollBlocked` naming the
//!   partitions, restarts nothing, and proceeds once the cut is healed;
//! - topic config: a Topic's retention change is shown by `kafka-configs
//!   --describe` within [`CONFIG_VISIBLE_TIMEOUT`] and recorded as
//!   `status.configGeneration`; `kafka-configs --alter` on the managed
//!   topic is refused with POLICY_VIOLATION naming the Topic (default
//!   rule) and, with `topicPolicy.configChanges: WriteToResource`, lands in
//!   the Topic's `spec.config` and on the brokers;
//! - scale 3 → 5 with topics holding data, while a producer writes with
//!   acks=all: the automatic balance moves replicas onto the new brokers
//!   until per-broker replica counts differ by at most 1, with no move left
//!   in flight (`status.reassigningPartitions` 0), and every acknowledged
//!   record is read back exactly once;
//! - `kafka-reassign-partitions --execute/--verify` and
//!   `kafka-leader-election --election-type PREFERRED` through the
//!   bootstrap Service while a producer writes: Topic status shows the
//!   planned replicas, each first replica leads, nothing acknowledged is
//!   lost or duplicated;
//! - Users: on a cluster with a TLS+SCRAM listener and authorization on, a
//!   User with ACLs gets a Secret, and Kafka's Java producer and consumer
//!   configured from that Secret alone (`bootstrap.servers`,
//!   `client.properties`) write and read its topic through a group; a
//!   User without ACLs is refused with TOPIC_AUTHORIZATION_FAILED.
//!
//! Every wait names its timeout below; nothing sleeps a fixed time except
//! the quiet period of the GitOps check. Ignored without a cluster: run
//! through `e2e/scripts/run-tests.sh`.
//!
//! Environment: `KUBECTL`, `HELM` (default: from PATH), `RILL_E2E_PYTHON`
//! (a Python with confluent-kafka; default: the venv of
//! scripts/install-compat.sh), `RILL_E2E_OPERATOR_IMAGE` and
//! `RILL_E2E_BROKER_IMAGE` (`repository:tag`, for a cluster that pulls real
//! images), `RILL_K8S_RUN` (the local cluster's run dir: pod logs are read
//! from there), `RILL_E2E_KAFKA_CLASSPATH` (Kafka's tool jars; default: the
//! jars of scripts/install-compat.sh).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rill_e2e::{client, delete_namespace, namespace, wait_for};
use rill_operator::crd::{StreamCluster, Topic, User};
use serde_json::{Value, json};

/// Longest wait for `helm upgrade --install` and the operator's Lease.
const CHART_TIMEOUT: Duration = Duration::from_secs(180);
/// Longest wait for a StreamCluster to report all its brokers ready.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(240);
/// Longest wait for a Topic to be placed with full ISRs.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for a deleted broker pod to return and rejoin every ISR.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(180);
/// Longest wait for a standby operator to take the Lease.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for a scale-down to drain and complete.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest wait for the automatic balance to even out replica counts
/// after a scale-up (a few partitions at a time, every balance interval).
const BALANCE_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest wait for a `kafka-reassign-partitions` plan to complete.
const REASSIGN_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest wait for preferred replicas to lead after an election.
const ELECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Records per second of the background producers of the move scenarios.
const MOVE_PRODUCE_RATE: u32 = 200;
/// Longest a deleted Topic's resource and Kafka topic take to go.
const TOPIC_DELETE_TIMEOUT: Duration = Duration::from_secs(120);
/// The target: a config change visible on the brokers within 10 s.
const CONFIG_VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Two listings this far apart that agree mean the namespace is quiet.
const QUIET_SAMPLE: Duration = Duration::from_secs(3);
/// How long nothing may change after re-applying the same manifests.
const GITOPS_QUIET: Duration = Duration::from_secs(15);
/// Longest wait for a User to be Ready with its Secret written.
const USER_READY_TIMEOUT: Duration = Duration::from_secs(120);

const RELEASE: &str = "rill";
const OPERATOR_NS: &str = "rill-system";
const OPERATOR: &str = "rill-operator";
const CLUSTER: &str = "events";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn tool(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

/// Runs a command that must succeed; returns its stdout.
fn must(program: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = run(program, args, stdin);
    assert!(
        out.status.success(),
        "{program} {} failed ({}):\n{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kubectl(args: &[&str]) -> String {
    must(&tool("KUBECTL", "kubectl"), args, None)
}

fn kubectl_stdin(args: &[&str], input: &str) -> String {
    must(&tool("KUBECTL", "kubectl"), args, Some(input))
}

fn python() -> String {
    std::env::var("RILL_E2E_PYTHON").unwrap_or_else(|_| {
        let cache = std::env::var("RILL_CACHE").unwrap_or_else(|_| {
            format!("{}/.cache/rill", std::env::var("HOME").unwrap_or_default())
        });
        format!("{cache}/compat/venv/bin/python")
    })
}

/// The classpath of Kafka's own tools: `RILL_E2E_KAFKA_CLASSPATH`, else
/// `COMPAT_CLASSPATH` from scripts/install-compat.sh's `env.sh`.
fn kafka_classpath() -> String {
    if let Ok(cp) = std::env::var("RILL_E2E_KAFKA_CLASSPATH") {
        return cp;
    }
    let cache = std::env::var("RILL_CACHE")
        .unwrap_or_else(|_| format!("{}/.cache/rill", std::env::var("HOME").unwrap_or_default()));
    let env = std::fs::read_to_string(format!("{cache}/compat/env.sh"))
        .expect("scripts/install-compat.sh has written compat/env.sh");
    env.lines()
        .find_map(|l| l.strip_prefix("export COMPAT_CLASSPATH="))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("COMPAT_CLASSPATH in compat/env.sh")
}

/// `kafka-configs.sh` (Kafka's ConfigCommand) on topic `topic`; returns
/// (success, stdout and stderr).
fn kafka_configs(bootstrap: &str, topic: &str, args: &[&str]) -> (bool, String) {
    kafka_configs_of(bootstrap, "topics", topic, args)
}

/// `kafka-configs` (Kafka's ConfigCommand) on one entity (`topics`,
/// `brokers`).
fn kafka_configs_of(
    bootstrap: &str,
    entity_type: &str,
    entity: &str,
    args: &[&str],
) -> (bool, String) {
    let cp = kafka_classpath();
    let mut all = vec![
        "-Xmx256m",
        "-cp",
        cp.as_str(),
        "kafka.admin.ConfigCommand",
        "--bootstrap-server",
        bootstrap,
        "--entity-type",
        entity_type,
        "--entity-name",
        entity,
    ];
    all.extend_from_slice(args);
    let out = run("java", &all, None);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // ConfigCommand may exit 0 after printing an error.
    let ok = out.status.success() && !text.contains("Exception");
    (ok, text)
}

/// Whether `kafka-configs --describe` lists `key=value` for the topic.
fn describes(bootstrap: &str, topic: &str, key: &str, value: &str) -> bool {
    let (ok, text) = kafka_configs(bootstrap, topic, &["--describe"]);
    ok && text
        .lines()
        .any(|l| l.trim_start().starts_with(&format!("{key}={value} ")))
}

/// librdkafka settings file the history client uses (`--client-config`),
/// set by a scenario whose cluster needs credentials; the scenarios run
/// one at a time.
static CLIENT_CONFIG: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// Sets [`CLIENT_CONFIG`] until dropped (also when the scenario panics, so
/// the next one starts without it).
struct ClientConfig;

impl ClientConfig {
    fn set(path: PathBuf) -> Self {
        *CLIENT_CONFIG.lock().unwrap_or_else(|p| p.into_inner()) = Some(path);
        Self
    }
}

impl Drop for ClientConfig {
    fn drop(&mut self) {
        *CLIENT_CONFIG.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

fn client_config_args() -> Vec<String> {
    match &*CLIENT_CONFIG.lock().unwrap_or_else(|p| p.into_inner()) {
        Some(path) => vec![
            "--client-config".to_owned(),
            path.to_string_lossy().into_owned(),
        ],
        None => Vec::new(),
    }
}

fn history_script() -> String {
    root()
        .join("e2e/clients/history.py")
        .to_string_lossy()
        .into_owned()
}

/// `helm upgrade --install` of charts/rill (idempotent), then waits for the
/// operator's Deployment and Lease. Extra `--set` values in `sets`.
fn install_chart(sets: &[&str]) {
    let chart = root().join("charts/rill");
    let mut args = vec![
        "upgrade".to_owned(),
        "--install".to_owned(),
        RELEASE.to_owned(),
        chart.to_string_lossy().into_owned(),
        "-n".to_owned(),
        OPERATOR_NS.to_owned(),
        "--create-namespace".to_owned(),
        "--wait".to_owned(),
        "--timeout".to_owned(),
        format!("{}s", CHART_TIMEOUT.as_secs()),
    ];
    for (var, key) in [
        ("RILL_E2E_OPERATOR_IMAGE", "image"),
        ("RILL_E2E_BROKER_IMAGE", "broker.image"),
    ] {
        if let Ok(image) = std::env::var(var) {
            let (repo, tag) = image.rsplit_once(':').unwrap_or((&image, "latest"));
            args.push("--set".into());
            args.push(format!("{key}.repository={repo},{key}.tag={tag}"));
        }
    }
    for s in sets {
        args.push("--set".into());
        args.push((*s).to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    must(&tool("HELM", "helm"), &args, None);
}

async fn lease_holder(client: &Client) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), OPERATOR_NS)
        .get_opt(OPERATOR)
        .await
        .ok()??
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

async fn chart_installed(client: &Client) -> String {
    install_chart(&[]);
    wait_for("the operator holds its Lease", CHART_TIMEOUT, || async {
        lease_holder(client).await
    })
    .await
}

fn condition<'a>(
    conditions: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

async fn cluster_ready(client: &Client, ns: &str, name: &str, brokers: i32) -> StreamCluster {
    let api = Api::<StreamCluster>::namespaced(client.clone(), ns);
    wait_for(
        &format!("StreamCluster {ns}/{name} Ready with {brokers} ready brokers"),
        CLUSTER_READY_TIMEOUT,
        || async {
            let sc = api.get(name).await.ok()?;
            let status = sc.status.as_ref()?;
            let ready = condition(&status.conditions, "Ready")?.status == "True";
            (ready && status.ready_brokers == brokers && status.brokers == brokers).then_some(sc)
        },
    )
    .await
}

/// Waits until every partition of the Topic has a leader and a full ISR.
async fn topic_ready(client: &Client, ns: &str, name: &str, partitions: usize) -> Topic {
    let api = Api::<Topic>::namespaced(client.clone(), ns);
    wait_for(
        &format!("Topic {ns}/{name} Ready with {partitions} partitions, each with a leader and a full ISR"),
        TOPIC_READY_TIMEOUT,
        || async {
            let t = api.get(name).await.ok()?;
            let status = t.status.as_ref()?;
            let ready = condition(&status.conditions, "Ready")?.status == "True";
            let full = status.partitions.len() == partitions
                && status.partitions.iter().all(|p| {
                    p.leader.is_some_and(|l| l >= 0)
                        && p.isr.len() == t.spec.replication_factor as usize
                });
            (ready && full).then_some(t)
        },
    )
    .await
}

fn bootstrap(sc: &StreamCluster) -> String {
    sc.status
        .as_ref()
        .and_then(|s| s.kafka_bootstrap.clone())
        .expect("status.kafkaBootstrap")
}

/// Where history.py keeps the acknowledged records of one producer run.
struct History {
    acked: PathBuf,
    _dir: tempfile::TempDir,
}

impl History {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        History {
            acked: dir.path().join("acked.txt"),
            _dir: dir,
        }
    }

    /// `history.py produce` arguments for this history, then `extra`.
    fn produce_args(&self, bootstrap: &str, topic: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            history_script(),
            "produce".into(),
            "--bootstrap".into(),
            bootstrap.into(),
            "--topic".into(),
            topic.into(),
            "--acked".into(),
            self.acked.to_string_lossy().into_owned(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.extend(client_config_args());
        args
    }
}

/// A background history producer (e2e/clients/history.py).
struct Producer {
    child: std::process::Child,
    history: History,
}

#[derive(Debug)]
struct ProduceSummary {
    acked: u64,
    failed: u64,
    longest_gap_s: f64,
    summary: Value,
}

impl Producer {
    fn start(bootstrap: &str, topic: &str, rate: u32) -> Self {
        let history = History::new();
        let child = Command::new(python())
            .args(history.produce_args(bootstrap, topic, &["--rate", &rate.to_string()]))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start history.py (scripts/install-compat.sh installs its venv)");
        Producer { child, history }
    }

    /// Acknowledged records so far.
    fn acked(&self) -> usize {
        std::fs::read_to_string(&self.history.acked)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    async fn wait_acked(&self, n: usize, what: &str, timeout: Duration) {
        wait_for(what, timeout, || async {
            (self.acked() >= n).then_some(())
        })
        .await;
    }

    /// SIGTERM, then every outstanding delivery is waited for.
    fn stop(self) -> (ProduceSummary, History) {
        let Producer { child, history } = self;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("signal the producer");
        let out = child.wait_with_output().expect("producer exit");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
            .unwrap_or_else(|e| panic!("producer summary ({e}): {stdout}"));
        assert!(out.status.success(), "producer failed: {summary}");
        let s = ProduceSummary {
            acked: summary["acked"].as_u64().unwrap_or(0),
            failed: summary["failed"].as_u64().unwrap_or(0),
            longest_gap_s: summary["longest_gap_s"].as_f64().unwrap_or(0.0),
            summary,
        };
        (s, history)
    }
}

/// Reads the topic back and checks the history: every acknowledged value
/// exactly once, at its partition and offset.
fn verify(bootstrap: &str, topic: &str, acked: &Path) -> Value {
    let acked = acked.to_string_lossy();
    let extra = client_config_args();
    let mut args = vec![
        history_script(),
        "verify".to_owned(),
        "--bootstrap".to_owned(),
        bootstrap.to_owned(),
        "--topic".to_owned(),
        topic.to_owned(),
        "--acked".to_owned(),
        acked.into_owned(),
    ];
    args.extend(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&python(), &args, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "history check failed for {topic}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("verify summary")
}

/// Produces `count` records; every one must be acknowledged.
fn produce_count(bootstrap: &str, topic: &str, count: u32) -> History {
    let history = History::new();
    let args = history.produce_args(bootstrap, topic, &["--count", &count.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = must(&python(), &args, None);
    let summary: Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).expect("summary");
    assert_eq!(
        summary["acked"],
        json!(count),
        "every record acknowledged: {summary}"
    );
    history
}

/// Produces `count` records and reads them back.
fn produce_and_verify(bootstrap: &str, topic: &str, count: u32) -> Value {
    let history = produce_count(bootstrap, topic, count);
    let checked = verify(bootstrap, topic, &history.acked);
    assert_eq!(checked["acknowledged"], json!(count));
    checked
}

/// Kafka topic names and partition counts from kcat's metadata listing.
fn kafka_topics(bootstrap: &str) -> BTreeMap<String, usize> {
    let mut args = vec![
        history_script(),
        "topics".to_owned(),
        "--bootstrap".to_owned(),
        bootstrap.to_owned(),
    ];
    args.extend(client_config_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = must(&python(), &args, None);
    let mut topics = BTreeMap::new();
    for line in out.lines() {
        // `  topic "orders" with 12 partitions:`
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("topic \"")
            && let Some((name, tail)) = rest.split_once("\" with ")
            && let Some(n) = tail.split_whitespace().next().and_then(|n| n.parse().ok())
        {
            topics.insert(name.to_owned(), n);
        }
    }
    topics
}

/// `kubectl get` output as rows of column name → value (columns located
/// by where their header starts: header names may contain spaces).
fn table(output: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = output.lines();
    let header = lines.next().expect("a header line");
    let mut starts = Vec::new();
    let bytes = header.as_bytes();
    for i in 0..bytes.len() {
        let boundary = i == 0 || (bytes[i - 1] == b' ' && i >= 2 && bytes[i - 2] == b' ');
        if bytes[i] != b' ' && boundary {
            starts.push(i);
        }
    }
    let names: Vec<String> = starts
        .iter()
        .enumerate()
        .map(|(n, &at)| {
            let end = starts.get(n + 1).copied().unwrap_or(header.len());
            header[at..end].trim().to_owned()
        })
        .collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            names
                .iter()
                .enumerate()
                .map(|(n, name)| {
                    let at = starts[n].min(line.len());
                    let end = starts
                        .get(n + 1)
                        .copied()
                        .unwrap_or(line.len())
                        .min(line.len());
                    (name.clone(), line[at..end].trim().to_owned())
                })
                .collect()
        })
        .collect()
}

/// resourceVersions of everything the operator owns or reports on in `ns`.
async fn resource_versions(client: &Client, ns: &str) -> BTreeMap<String, String> {
    let lp = ListParams::default();
    let mut out = BTreeMap::new();
    macro_rules! collect {
        ($kind:ty, $label:expr) => {
            for o in Api::<$kind>::namespaced(client.clone(), ns)
                .list(&lp)
                .await
                .expect("list")
                .items
            {
                out.insert(
                    format!("{}/{}", $label, o.name_any()),
                    o.resource_version().unwrap_or_default(),
                );
            }
        };
    }
    collect!(StreamCluster, "streamcluster");
    collect!(Topic, "topic");
    collect!(StatefulSet, "statefulset");
    collect!(Service, "service");
    collect!(ConfigMap, "configmap");
    collect!(k8s_openapi::api::policy::v1::PodDisruptionBudget, "pdb");
    out
}

/// Events about the namespace's StreamClusters and Topics (what the
/// operator reports; the local cluster's endpoint controllers also keep
/// reporting that they cannot publish loopback pod addresses).
async fn events(client: &Client, ns: &str) -> Vec<String> {
    let mut out: Vec<String> = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| {
            matches!(
                e.involved_object.kind.as_deref(),
                Some("StreamCluster" | "Topic")
            )
        })
        .map(|e| {
            format!(
                "{} {}/{} {} x{}: {}",
                e.metadata.name.unwrap_or_default(),
                e.involved_object.kind.unwrap_or_default(),
                e.involved_object.name.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.count.unwrap_or(1),
                e.message.unwrap_or_default()
            )
        })
        .collect();
    out.sort();
    out
}

/// The partitions (as `topic/partition`) a broker is a replica of but not in
/// the ISR of.
fn out_of_isr(topics: &[Topic], broker: i32) -> Vec<String> {
    topics
        .iter()
        .flat_map(|t| {
            t.status
                .iter()
                .flat_map(|s| s.partitions.iter())
                .filter(|p| p.replicas.contains(&broker) && !p.isr.contains(&broker))
                .map(move |p| format!("{}/{}", t.name_any(), p.partition))
        })
        .collect()
}

/// Local cluster only: the log lines of the operator pods named in `pods`
/// where RBAC refused a request.
fn forbidden_in_operator_logs(pods: &[String]) -> Option<Vec<String>> {
    let run = std::env::var("RILL_K8S_RUN").ok()?;
    let dir = Path::new(&run).join("agent/logs");
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(&dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if pods
            .iter()
            .any(|p| name.starts_with(&format!("{OPERATOR_NS}_{p}_")))
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            hits.extend(
                text.lines()
                    // An RBAC refusal: `... is forbidden: User "system:serviceaccount:..." cannot ...`
                    .filter(|l| l.contains("forbidden: User"))
                    .map(str::to_owned),
            );
        }
    }
    Some(hits)
}

async fn create_cluster(client: &Client, ns: &str, brokers: i32) {
    let sc: StreamCluster = serde_json::from_value(json!({
        "apiVersion": "rill.dev/v1alpha1",
        "kind": "StreamCluster",
        "metadata": {"name": CLUSTER, "namespace": ns},
        // These scenarios drive plaintext Kafka clients: one listener
        // without TLS or authentication, and no ACLs.
        "spec": {"brokers": brokers, "storage": {"size": "1Gi"},
                 "config": {"min.insync.replicas": "2"},
                 "listeners": [{"name": "plain", "port": 9092, "tls": false, "authentication": "none"}],
                 "authorization": {"enabled": false}},
    }))
    .expect("StreamCluster");
    Api::<StreamCluster>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sc)
        .await
        .expect("StreamCluster created");
}

async fn create_topic(client: &Client, ns: &str, name: &str, partitions: i32) {
    create_topic_rf(client, ns, name, partitions, 3).await;
}

/// A Topic with `rf` replicas per partition and min.insync.replicas 2.
async fn create_topic_rf(client: &Client, ns: &str, name: &str, partitions: i32, rf: i32) {
    let t: Topic = serde_json::from_value(json!({
        "apiVersion": "rill.dev/v1alpha1",
        "kind": "Topic",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterRef": {"name": CLUSTER}, "partitions": partitions,
                 "replicationFactor": rf, "config": {"minInsyncReplicas": 2}},
    }))
    .expect("Topic");
    Api::<Topic>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &t)
        .await
        .expect("Topic created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster that runs pods: e2e/scripts/run-tests.sh"]
async fn given_the_chart_then_crds_are_established_and_the_operator_leads_with_only_its_rbac() {
    let client = client().await;
    let holder = chart_installed(&client).await;

    for crd in [
        "streamclusters.rill.dev",
        "topics.rill.dev",
        "users.rill.dev",
    ] {
        let c = Api::<CustomResourceDefinition>::all(client.clone())
            .get(crd)
            .await
            .expect("CRD installed by the chart");
        let established = c
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "{crd} is Established");
    }
    let deployment = Api::<Deployment>::namespaced(client.clone(), OPERATOR_NS)
        .get(OPERATOR)
        .await
        .expect("operator Deployment");
    let sa = deployment
        .spec
        .template
        .spec
        .and_then(|s| s.service_account_name)
        .expect("the operator runs as a named ServiceAccount");
    let pods = Api::<Pod>::namespaced(client.clone(), OPERATOR_NS)
        .list(&ListParams::default().labels("app.kubernetes.io/name=rill-operator"))
        .await
        .expect("operator pods");
    assert!(
        pods.items.iter().any(|p| p.name_any() == holder),
        "the Lease holder {holder} is an operator pod"
    );

    // What the chart's RBAC lets the operator do, asked of the API server's
    // authorizer as that ServiceAccount.
    let who = format!("system:serviceaccount:{OPERATOR_NS}:{sa}");
    let can = |verb: &str, resource: &str, ns: Option<&str>| -> bool {
        // `kind/status` is a subresource; `kind/name` stays as it is.
        let (resource, subresource) = match resource.strip_suffix("/status") {
            Some(r) => (r, Some("status")),
            None => (resource, None),
        };
        let mut args = vec!["auth", "can-i", verb, resource, "--as", &who];
        if let Some(sub) = subresource {
            args.extend(["--subresource", sub]);
        }
        match ns {
            Some(ns) => args.extend(["-n", ns]),
            None => args.push("--all-namespaces"),
        }
        let out = run(&tool("KUBECTL", "kubectl"), &args, None);
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    for (verb, resource, ns) in [
        ("watch", "streamclusters.rill.dev", None),
        ("patch", "streamclusters.rill.dev/status", None),
        ("patch", "topics.rill.dev/status", None),
        ("create", "statefulsets.apps", None),
        ("delete", "pods", None),
        ("patch", "services", None),
        ("create", "configmaps", None),
        ("create", "poddisruptionbudgets.policy", None),
        ("create", "networkpolicies.networking.k8s.io", None),
        ("get", "secrets", None),
        ("patch", "secrets", None),
        ("create", "events.events.k8s.io", None),
        ("watch", "users.rill.dev", None),
        ("patch", "users.rill.dev/status", None),
        // Users: password Secrets, client Secrets, CA Secrets and the
        // clusters' credentials files, in any namespace.
        ("get", "secrets", None),
        ("create", "secrets", None),
        ("update", "secrets", None),
        (
            "update",
            "leases.coordination.k8s.io/rill-operator",
            Some(OPERATOR_NS),
        ),
    ] {
        assert!(
            can(verb, resource, ns),
            "the chart's RBAC allows {verb} {resource}"
        );
    }
    for (verb, resource, ns) in [
        ("*", "*", None),
        ("delete", "secrets", None),
        ("create", "pods", None),
        ("delete", "persistentvolumeclaims", None),
        ("delete", "nodes", None),
        (
            "create",
            "clusterrolebindings.rbac.authorization.k8s.io",
            None,
        ),
        (
            "update",
            "leases.coordination.k8s.io/rill-operator",
            Some("default"),
        ),
        (
            "update",
            "leases.coordination.k8s.io/another",
            Some(OPERATOR_NS),
        ),
        (
            "delete",
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
        ),
    ] {
        assert!(
            !can(verb, resource, ns),
            "the chart's RBAC does not allow {verb} {resource}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster that runs pods: e2e/scripts/run-tests.sh"]
async fn given_invalid_resources_then_the_api_server_rejects_them_with_the_rule() {
    let client = client().await;
    chart_installed(&client).await;
    let ns = namespace(&client, "rill-invalid").await;

    let zero_brokers = format!(
        "apiVersion: rill.dev/v1alpha1\nkind: StreamCluster\nmetadata: {{name: empty, namespace: {ns}}}\n\
         spec: {{brokers: 0, storage: {{size: 1Gi}}}}\n"
    );
    let zero_partitions = format!(
        "apiVersion: rill.dev/v1alpha1\nkind: Topic\nmetadata: {{name: none, namespace: {ns}}}\n\
         spec: {{clusterRef: {{name: events}}, partitions: 0, replicationFactor: 1}}\n"
    );
    for (what, manifest, expect) in [
        ("0 brokers", &zero_brokers, "spec.brokers"),
        ("0 partitions", &zero_partitions, "spec.partitions"),
    ] {
        let out = run(
            &tool("KUBECTL", "kubectl"),
            &["apply", "-f", "-"],
            Some(manifest),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what} is rejected");
        assert!(
            stderr.contains("Invalid") && stderr.contains(expect),
            "{what}: the API server names the field: {stderr}"
        );
    }
    // A shrink of a Topic's partition count is refused by the CRD's
    // transition rule, before the operator sees it.
    let topic = format!(
        "apiVersion: rill.dev/v1alpha1\nkind: Topic\nmetadata: {{name: shrink, namespace: {ns}}}\n\
         spec: {{clusterRef: {{name: events}}, partitions: 4, replicationFactor: 1}}\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &topic);
    let out = run(
        &tool("KUBECTL", "kubectl"),
        &["apply", "-f", "-"],
        Some(&topic.replace("partitions: 4", "partitions: 2")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a partition shrink is rejected");
    assert!(
        stderr.contains("partitions can grow, never shrink"),
        "the rejection names the rule: {stderr}"
    );
    // The referenced cluster does not exist: reported, not silently waited on.
    let api = Api::<Topic>::namespaced(client.clone(), &ns);
    let message = wait_for(
        "Topic shrink reports Ready=False for its missing cluster",
        TOPIC_READY_TIMEOUT,
        || async {
            let t = api.get("shrink").await.ok()?;
            let c = condition(&t.status.as_ref()?.conditions, "Ready")?.clone();
            (c.status == "False").then_some(c.message)
        },
    )
    .await;
    assert!(
        message.contains(CLUSTER),
        "the message names the cluster: {message}"
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster that runs pods: e2e/scripts/run-tests.sh"]
async fn given_the_examples_then_they_serve_survive_a_leader_pod_deletion_and_operator_failover_and_reapply_as_no_ops()
 {
    let client = client().await;
    chart_installed(&client).await;
    let ns = namespace(&client, "rill-examples").await;
    let examples = root().join("examples");
    let manifests = [
        examples.join("streamcluster.yaml"),
        examples.join("topics.yaml"),
        examples.join("users.yaml"),
    ];
    let apply = || {
        let mut args = vec!["-n", ns.as_str(), "apply"];
        for m in &manifests {
            args.extend(["-f", m.to_str().expect("utf-8 path")]);
        }
        kubectl(&args)
    };
    apply();

    // Ready, and what `kubectl get` shows.
    let sc = cluster_ready(&client, &ns, CLUSTER, 3).await;
    let orders = topic_ready(&client, &ns, "orders", 12).await;
    let profiles = topic_ready(&client, &ns, "customer-profiles", 6).await;
    let boot = bootstrap(&sc);
    // The example cluster is secure by default (TLS+SCRAM, ACLs). The
    // example User orders-app gets its Secret; the clients below use a
    // User of the test's with rights on every topic and group, configured
    // from its Secret alone.
    user_secret(&client, &ns, "orders-app").await;
    let admin = format!(
        "apiVersion: rill.dev/v1alpha1\nkind: User\nmetadata: {{name: e2e-admin, namespace: {ns}}}\n\
         spec:\n  cluster: {{name: {CLUSTER}}}\n  authentication: {{type: scram-sha-512}}\n\
         \x20 authorization:\n    acls:\n\
         \x20     - resource: {{type: topic, name: \"*\"}}\n        operations: [All]\n\
         \x20     - resource: {{type: group, name: \"*\"}}\n        operations: [All]\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &admin);
    let secret = user_secret(&client, &ns, "e2e-admin").await;
    let creds = tempfile::tempdir().expect("tempdir");
    let ca = creds.path().join("ca.crt");
    std::fs::write(&ca, &secret["ca.crt"]).expect("write ca.crt");
    let config = creds.path().join("client.config");
    std::fs::write(
        &config,
        format!(
            "security.protocol={}\nsasl.mechanism={}\nsasl.username={}\nsasl.password={}\nssl.ca.location={}\ngroup.id=e2e-admin-history\n",
            secret["security.protocol"],
            secret["sasl.mechanism"],
            secret["username"],
            secret["password"],
            ca.display()
        ),
    )
    .expect("write the client config");
    let _client_config = ClientConfig::set(config);
    let clusters = table(&kubectl(&[
        "-n",
        &ns,
        "get",
        "streamclusters",
        "-o",
        "wide",
    ]));
    let row = &clusters[0];
    for (column, value) in [
        ("NAME", CLUSTER),
        ("BROKERS", "3"),
        ("READY BROKERS", "3"),
        ("READY", "True"),
        ("BOOTSTRAP", boot.as_str()),
    ] {
        assert_eq!(
            row.get(column).map(String::as_str),
            Some(value),
            "{column}: {clusters:?}"
        );
    }
    let topics = table(&kubectl(&["-n", &ns, "get", "topics", "-o", "wide"]));
    let row = topics
        .iter()
        .find(|r| r.get("NAME").map(String::as_str) == Some("orders"))
        .expect("orders listed");
    for (column, value) in [
        ("CLUSTER", CLUSTER),
        ("TOPIC", "orders"),
        ("PARTITIONS", "12"),
        ("RF", "3"),
        ("READY", "True"),
    ] {
        assert_eq!(
            row.get(column).map(String::as_str),
            Some(value),
            "{column}: {topics:?}"
        );
    }
    let table = kubectl(&["-n", &ns, "get", "streamclusters,topics", "-o", "wide"]);
    println!("kubectl get streamclusters,topics:\n{table}");

    // GitOps: once quiet, re-applying the same manifests is a no-op.
    let before = wait_for(
        "the namespace's objects to stop changing",
        TOPIC_READY_TIMEOUT,
        || async {
            let a = resource_versions(&client, &ns).await;
            tokio::time::sleep(QUIET_SAMPLE).await;
            let b = resource_versions(&client, &ns).await;
            (a == b).then_some(b)
        },
    )
    .await;
    let events_before = events(&client, &ns).await;
    apply();
    tokio::time::sleep(GITOPS_QUIET).await;
    assert_eq!(
        resource_versions(&client, &ns).await,
        before,
        "re-applying the same manifests changes no resourceVersion"
    );
    assert_eq!(
        events(&client, &ns).await,
        events_before,
        "re-applying the same manifests emits no event"
    );

    // Produce and consume through the bootstrap Service.
    let checked = produce_and_verify(&boot, "orders", 2000);
    println!("through {boot}: {checked}");

    // Delete the pod of partition 0's leader while producing.
    let leader = orders.status.as_ref().expect("status").partitions[0]
        .leader
        .expect("leader");
    let victim = format!("{CLUSTER}-{leader}");
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns);
    let claim = format!("data-{victim}");
    let volume_before = pvcs
        .get(&claim)
        .await
        .expect("claim")
        .spec
        .and_then(|s| s.volume_name)
        .expect("bound");
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let uid_before = pods.get(&victim).await.expect("pod").uid();
    let producer = Producer::start(&boot, "orders", 400);
    producer
        .wait_acked(
            500,
            "500 records acknowledged before the deletion",
            REJOIN_TIMEOUT,
        )
        .await;
    let deleted_at = Instant::now();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .expect("leader pod deleted");
    let acked_at_delete = producer.acked();
    producer
        .wait_acked(
            acked_at_delete + 1000,
            "writes resume after the leader's pod is deleted",
            REJOIN_TIMEOUT,
        )
        .await;
    let topics_api = Api::<Topic>::namespaced(client.clone(), &ns);
    wait_for(
        &format!("{victim} recreated, Ready and back in every ISR"),
        REJOIN_TIMEOUT,
        || async {
            let p = pods.get(&victim).await.ok()?;
            let ready = p
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if !ready || p.uid() == uid_before {
                return None;
            }
            let topics = topics_api.list(&ListParams::default()).await.ok()?.items;
            out_of_isr(&topics, leader).is_empty().then_some(())
        },
    )
    .await;
    let rejoined = deleted_at.elapsed();
    let (summary, history) = producer.stop();
    assert_eq!(summary.failed, 0, "no write failed: {}", summary.summary);
    let checked = verify(&boot, "orders", &history.acked);
    println!(
        "leader pod {victim} deleted: {} records acknowledged, longest gap between acks {:.2} s, \
         back in every ISR after {:.1} s; read back: {checked}",
        summary.acked,
        summary.longest_gap_s,
        rejoined.as_secs_f64()
    );
    let volume_after = pvcs
        .get(&claim)
        .await
        .expect("claim")
        .spec
        .and_then(|s| s.volume_name)
        .expect("bound");
    assert_eq!(
        volume_after, volume_before,
        "the pod came back on its volume"
    );

    // The operator's leader pod is killed while brokers take writes.
    install_chart(&["replicaCount=2"]);
    let operator_pods = Api::<Pod>::namespaced(client.clone(), OPERATOR_NS);
    wait_for("two operator pods Ready", CHART_TIMEOUT, || async {
        let list = operator_pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=rill-operator"))
            .await
            .ok()?;
        let ready = list
            .items
            .iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        (ready == 2).then_some(())
    })
    .await;
    let old = lease_holder(&client).await.expect("a Lease holder");
    let producer = Producer::start(&boot, "orders", 400);
    producer
        .wait_acked(
            200,
            "records acknowledged before the operator is killed",
            REJOIN_TIMEOUT,
        )
        .await;
    let killed_at = Instant::now();
    operator_pods
        .delete(
            &old,
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            },
        )
        .await
        .expect("operator leader pod deleted");
    let acked_at_kill = producer.acked();
    let new = wait_for("a standby takes the Lease", TAKEOVER_TIMEOUT, || async {
        lease_holder(&client).await.filter(|h| *h != old)
    })
    .await;
    let takeover = killed_at.elapsed();
    let acked_during = producer.acked() - acked_at_kill;
    producer
        .wait_acked(
            producer.acked() + 200,
            "writes go on after the takeover",
            REJOIN_TIMEOUT,
        )
        .await;
    let (summary, history) = producer.stop();
    assert_eq!(summary.failed, 0, "no write failed: {}", summary.summary);
    assert!(
        acked_during > 0,
        "brokers acknowledged writes while no operator led ({takeover:?})"
    );
    verify(&boot, "orders", &history.acked);
    println!(
        "operator leader {old} killed: {new} took the Lease after {:.1} s; {acked_during} records \
         acknowledged meanwhile, longest gap {:.2} s",
        takeover.as_secs_f64(),
        summary.longest_gap_s
    );
    install_chart(&["replicaCount=1"]);

    // Partition increase.
    topics_api
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"partitions": 16}})),
        )
        .await
        .expect("partitions raised");
    topic_ready(&client, &ns, "orders", 16).await;
    wait_for(
        "Kafka metadata shows 16 partitions of orders",
        TOPIC_READY_TIMEOUT,
        || async { (kafka_topics(&boot).get("orders") == Some(&16)).then_some(()) },
    )
    .await;

    // Deletion: without keep-data the Kafka topic goes; with it, it stays.
    let kafka_name = profiles
        .status
        .as_ref()
        .and_then(|s| s.topic_name.clone())
        .expect("topicName");
    for name in ["orders", "customer-profiles"] {
        topics_api
            .delete(name, &DeleteParams::default())
            .await
            .expect("Topic deleted");
    }
    wait_for(
        "both Topic resources are gone",
        TOPIC_DELETE_TIMEOUT,
        || async {
            // (The offsets topic of the consumer groups used above stays.)
            let left = topics_api.list(&ListParams::default()).await.ok()?.items;
            (!left
                .iter()
                .any(|t| ["orders", "customer-profiles"].contains(&t.name_any().as_str())))
            .then_some(())
        },
    )
    .await;
    wait_for(
        "orders is gone from Kafka metadata",
        TOPIC_DELETE_TIMEOUT,
        || async { (!kafka_topics(&boot).contains_key("orders")).then_some(()) },
    )
    .await;
    assert!(
        kafka_topics(&boot).contains_key(&kafka_name),
        "{kafka_name} (rill.dev/keep-data) is kept"
    );
    let kept = events(&client, &ns).await;
    assert!(
        kept.iter().any(|e| e.contains("DataKept")),
        "a DataKept event: {kept:#?}"
    );

    let mut operators: Vec<String> = Api::<Pod>::namespaced(client.clone(), OPERATOR_NS)
        .list(&ListParams::default().labels("app.kubernetes.io/name=rill-operator"))
        .await
        .expect("operator pods")
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    operators.extend([old.clone(), new.clone()]);
    if let Some(forbidden) = forbidden_in_operator_logs(&operators) {
        assert!(
            forbidden.is_empty(),
            "the operator was refused: {forbidden:#?}"
        );
    }
    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster that runs pods: e2e/scripts/run-tests.sh"]
async fn given_three_brokers_when_scaled_to_five_and_back_then_the_scale_down_waits_for_the_drain()
{
    let client = client().await;
    chart_installed(&client).await;
    let ns = namespace(&client, "rill-scale").await;
    create_cluster(&client, &ns, 3).await;
    cluster_ready(&client, &ns, CLUSTER, 3).await;

    let api = Api::<StreamCluster>::namespaced(client.clone(), &ns);
    api.patch(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"brokers": 5}})),
    )
    .await
    .expect("scaled to 5");
    let sc = cluster_ready(&client, &ns, CLUSTER, 5).await;
    let boot = bootstrap(&sc);

    // A topic spread over all five brokers.
    create_topic(&client, &ns, "spread", 10).await;
    let spread = topic_ready(&client, &ns, "spread", 10).await;
    let on_removed: usize = spread
        .status
        .as_ref()
        .expect("status")
        .partitions
        .iter()
        .filter(|p| p.replicas.iter().any(|r| *r >= 3))
        .count();
    assert!(on_removed > 0, "brokers 3 and 4 hold replicas of spread");
    let history = produce_count(&boot, "spread", 3000);

    // Back to 3: held while brokers 3 and 4 hold replicas.
    let started = Instant::now();
    api.patch(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"brokers": 3}})),
    )
    .await
    .expect("scaled to 3");
    let message = wait_for(
        "Progressing=True ScaleDownBlocked",
        CLUSTER_READY_TIMEOUT,
        || async {
            let sc = api.get(CLUSTER).await.ok()?;
            let c = condition(&sc.status.as_ref()?.conditions, "Progressing")?.clone();
            (c.reason == "ScaleDownBlocked").then_some(c.message)
        },
    )
    .await;
    println!("scale-down held: {message}");
    let sts = Api::<StatefulSet>::namespaced(client.clone(), &ns);
    let replicas = sts.get(CLUSTER).await.expect("StatefulSet").spec.replicas;
    let topics = Api::<Topic>::namespaced(client.clone(), &ns);
    let still_there = topics.get("spread").await.expect("spread");
    let holding = still_there
        .status
        .as_ref()
        .expect("status")
        .partitions
        .iter()
        .any(|p| p.replicas.iter().any(|r| *r >= 3));
    if holding {
        assert_eq!(
            replicas,
            Some(5),
            "the StatefulSet keeps brokers that hold replicas"
        );
    }

    // The controller moves the replicas; then the StatefulSet shrinks.
    wait_for(
        "the scale-down completes: 3 brokers, no replica on 3 or 4",
        DRAIN_TIMEOUT,
        || async {
            let sc = api.get(CLUSTER).await.ok()?;
            let s = sc.status.as_ref()?;
            let ready = condition(&s.conditions, "Ready")?.status == "True";
            let t = topics.get("spread").await.ok()?;
            let moved = t
                .status
                .as_ref()?
                .partitions
                .iter()
                .all(|p| p.replicas.iter().all(|r| *r < 3) && p.isr.len() == 3);
            let sts = sts.get(CLUSTER).await.ok()?;
            let three = sts.spec.replicas == Some(3);
            (ready && s.ready_brokers == 3 && moved && three).then_some(())
        },
    )
    .await;
    println!(
        "scale-down 5 -> 3 with {on_removed} partitions to move took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let checked = verify(&boot, "spread", &history.acked);
    println!("spread read back after the drain: {checked}");
    delete_namespace(&client, &ns).await;
}

/// Longest wait for a rolling restart of three brokers to finish.
const ROLL_TIMEOUT: Duration = Duration::from_secs(600);

/// Broker pods of the scenario cluster.
fn broker_pods(client: &Client, ns: &str) -> (Api<Pod>, ListParams) {
    (
        Api::<Pod>::namespaced(client.clone(), ns),
        ListParams::default().labels(&format!(
            "app.kubernetes.io/name=rill-broker,app.kubernetes.io/instance={CLUSTER}"
        )),
    )
}

/// What a background sampler saw during a roll.
#[derive(Debug, Default, Clone)]
struct RollWatch {
    /// Most broker pods not Ready (or terminating) at one sample.
    most_unavailable: usize,
    /// Partitions seen with fewer in-sync replicas than min.insync.replicas (2).
    under_min_isr: BTreeSet<String>,
    samples: usize,
}

/// Samples pods and Topic ISRs every 500 ms until `stop` is set.
fn watch_roll(
    client: &Client,
    ns: &str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<RollWatch> {
    let client = client.clone();
    let ns = ns.to_owned();
    tokio::spawn(async move {
        let (pods, selector) = broker_pods(&client, &ns);
        let topics = Api::<Topic>::namespaced(client.clone(), &ns);
        let mut seen = RollWatch::default();
        while !stop.load(Ordering::Relaxed) {
            if let Ok(list) = pods.list(&selector).await {
                let unavailable = list
                    .items
                    .iter()
                    .filter(|p| {
                        p.metadata.deletion_timestamp.is_some()
                            || !p
                                .status
                                .as_ref()
                                .and_then(|s| s.conditions.as_ref())
                                .is_some_and(|c| {
                                    c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                                })
                    })
                    .count()
                    + 3usize.saturating_sub(list.items.len());
                seen.most_unavailable = seen.most_unavailable.max(unavailable);
            }
            if let Ok(list) = topics.list(&ListParams::default()).await {
                for t in &list.items {
                    for p in t.status.iter().flat_map(|s| s.partitions.iter()) {
                        if p.isr.len() < 2 {
                            seen.under_min_isr
                                .insert(format!("{}/{}", t.name_any(), p.partition));
                        }
                    }
                }
            }
            seen.samples += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        seen
    })
}

/// Waits until every broker runs the current template and the roll is over.
async fn roll_done(client: &Client, ns: &str, what: &str) -> StreamCluster {
    let api = Api::<StreamCluster>::namespaced(client.clone(), ns);
    wait_for(what, ROLL_TIMEOUT, || async {
        let sc = api.get(CLUSTER).await.ok()?;
        let s = sc.status.as_ref()?;
        let progressing = condition(&s.conditions, "Progressing")?;
        let ready = condition(&s.conditions, "Ready")?.status == "True";
        (ready
            && s.updated_brokers == 3
            && s.roll.is_none()
            && progressing.status == "False"
            && s.observed_generation == sc.metadata.generation)
            .then_some(sc.clone())
    })
    .await
}

/// Uids of the broker pods now.
async fn pod_uids(client: &Client, ns: &str) -> BTreeMap<String, String> {
    let (pods, selector) = broker_pods(client, ns);
    pods.list(&selector)
        .await
        .expect("broker pods")
        .items
        .iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster that runs pods: e2e/scripts/run-tests.sh"]
async fn given_a_config_change_an_operator_kill_and_an_image_change_then_brokers_roll_one_at_a_time_losing_nothing()
 {
    let client = client().await;
    chart_installed(&client).await;
    let ns = namespace(&client, "rill-roll").await;
    create_cluster(&client, &ns, 3).await;
    let sc = cluster_ready(&client, &ns, CLUSTER, 3).await;
    let boot = bootstrap(&sc);
    create_topic(&client, &ns, "rolled", 6).await;
    topic_ready(&client, &ns, "rolled", 6).await;
    let api = Api::<StreamCluster>::namespaced(client.clone(), &ns);

    let producer = Producer::start(&boot, "rolled", 300);
    producer
        .wait_acked(200, "records acknowledged before the roll", REJOIN_TIMEOUT)
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_roll(&client, &ns, stop.clone());

    // A key brokers apply live: no broker restarts, and every broker
    // describes the new value.
    let before = pod_uids(&client, &ns).await;
    let started = Instant::now();
    api.patch(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"config": {"log.retention.ms": "604800000"}}})),
    )
    .await
    .expect("live key changed");
    for broker in ["0", "1", "2"] {
        wait_for(
            &format!("broker {broker} describes log.retention.ms=604800000"),
            REJOIN_TIMEOUT,
            || async {
                let (ok, text) =
                    kafka_configs_of(&boot, "brokers", broker, &["--describe", "--all"]);
                (ok && text
                    .lines()
                    .any(|l| l.trim_start().starts_with("log.retention.ms=604800000 ")))
                .then_some(())
            },
        )
        .await;
    }
    let live_visible = started.elapsed();
    assert_eq!(
        pod_uids(&client, &ns).await,
        before,
        "a live key restarts no broker"
    );
    println!(
        "live key: log.retention.ms described by all 3 brokers {:.1} s after the StreamCluster change",
        live_visible.as_secs_f64()
    );

    // A configuration change that needs a restart rolls the brokers.
    let before = pod_uids(&client, &ns).await;
    let started = Instant::now();
    api.patch(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"config": {"log.retention.check.interval.ms": "60000"}}})),
    )
    .await
    .expect("config changed");

    // The operator is killed once the roll restarted its first broker.
    let first = wait_for("the roll restarts a first broker", ROLL_TIMEOUT, || async {
        let sc = api.get(CLUSTER).await.ok()?;
        sc.status?.roll?.restarted.map(|r| r.broker)
    })
    .await;
    let operator_pods = Api::<Pod>::namespaced(client.clone(), OPERATOR_NS);
    for pod in operator_pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=rill-operator"))
        .await
        .expect("operator pods")
        .items
    {
        operator_pods
            .delete(
                &pod.name_any(),
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..DeleteParams::default()
                },
            )
            .await
            .expect("operator pod deleted");
    }
    println!("roll restarted broker {first}; operator killed mid-roll");
    let sc = roll_done(
        &client,
        &ns,
        "the config roll finishes after the operator kill",
    )
    .await;
    let config_roll = started.elapsed();
    let after = pod_uids(&client, &ns).await;
    for (name, uid) in &before {
        assert_ne!(
            after.get(name),
            Some(uid),
            "{name} was restarted by the roll"
        );
    }
    let events = events(&client, &ns).await;
    let restarts = events
        .iter()
        .filter(|e| e.contains("RestartingBroker"))
        .count();
    assert!(restarts >= 3, "an Event per restarted broker: {events:?}");
    println!(
        "config roll: {} brokers restarted in {:.1} s",
        sc.status.as_ref().map_or(0, |s| s.updated_brokers),
        config_roll.as_secs_f64()
    );

    // The first producer covered the operator kill (no controller for a
    // while, so no leader could move); a fresh one measures the image roll
    // alone.
    let (first, first_history) = producer.stop();
    assert_eq!(first.failed, 0, "no write failed: {}", first.summary);
    let first_checked = verify(&boot, "rolled", &first_history.acked);
    println!(
        "config roll with the operator killed: producer {} acked, 0 failed, longest gap {:.2} s, \
         longest gap of one partition {} s; read back: {first_checked}",
        first.acked, first.longest_gap_s, first.summary["longest_partition_gap_s"]
    );
    let producer = Producer::start(&boot, "rolled", 300);
    producer
        .wait_acked(
            200,
            "records acknowledged before the image roll",
            REJOIN_TIMEOUT,
        )
        .await;

    // An image change rolls them again.
    let next_image = std::env::var("RILL_E2E_BROKER_IMAGE_NEXT")
        .unwrap_or_else(|_| "rill/broker:e2e-next".to_owned());
    let started = Instant::now();
    api.patch(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"image": next_image}})),
    )
    .await
    .expect("image changed");
    roll_done(&client, &ns, "the image roll finishes").await;
    let image_roll = started.elapsed();
    let (pods, selector) = broker_pods(&client, &ns);
    for pod in pods.list(&selector).await.expect("pods").items {
        let image = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone());
        assert_eq!(
            image.as_deref(),
            Some(next_image.as_str()),
            "{}",
            pod.name_any()
        );
    }

    producer
        .wait_acked(
            producer.acked() + 200,
            "writes go on after the rolls",
            REJOIN_TIMEOUT,
        )
        .await;
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.await.expect("watcher");
    let (summary, history) = producer.stop();
    let checked = verify(&boot, "rolled", &history.acked);
    println!(
        "image roll took {:.1} s; its producer: {} acked, {} failed, longest gap {:.2} s, \
         longest gap of one partition {} s; at most {} broker(s) unavailable at once over {} \
         samples (both rolls); read back: {checked}",
        image_roll.as_secs_f64(),
        summary.acked,
        summary.failed,
        summary.longest_gap_s,
        summary.summary["longest_partition_gap_s"],
        seen.most_unavailable,
        seen.samples
    );
    assert_eq!(summary.failed, 0, "no write failed: {}", summary.summary);
    assert!(
        seen.most_unavailable <= 1,
        "brokers restart one at a time: {seen:?}"
    );
    assert!(
        seen.under_min_isr.is_empty(),
        "no partition went below min.insync.replicas: {seen:?}"
    );
    delete_namespace(&client, &ns).await;
}

/// iptables rules that refuse every connection to the given brokers'
/// replication port, removed on drop. (Outgoing connections of a pod on
/// the local node carry the loopback source address, not the pod's, so a
/// cut is made on the destination side only.)
struct ReplicationCut {
    rules: Vec<Vec<String>>,
}

impl ReplicationCut {
    fn new(ips: &[String], port: i32) -> Self {
        let port = port.to_string();
        let rules: Vec<Vec<String>> = ips
            .iter()
            .map(|ip| {
                [
                    "-d",
                    ip.as_str(),
                    "-p",
                    "tcp",
                    "--dport",
                    &port,
                    "-j",
                    "REJECT",
                ]
                .into_iter()
                .map(str::to_owned)
                .collect()
            })
            .collect();
        for rule in &rules {
            let mut args = vec!["-I", "OUTPUT"];
            args.extend(rule.iter().map(String::as_str));
            must("iptables", &args, None);
        }
        ReplicationCut { rules }
    }
}

impl Drop for ReplicationCut {
    fn drop(&mut self) {
        for rule in &self.rules {
            let mut args = vec!["-D", "OUTPUT"];
            args.extend(rule.iter().map(String::as_str));
            let _ = run("iptables", &args, None);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster that runs pods on this machine, and root for iptables: e2e/scripts/run-tests.sh"]
async fn given_a_partition_under_min_isr_when_a_roll_is_asked_then_it_waits_naming_it_and_proceeds_once_healed()
 {
    let client = client().await;
    chart_installed(&client).await;
    let ns = namespace(&client, "rill-roll-blocked").await;
    create_cluster(&client, &ns, 3).await;
    let api = Api::<StreamCluster>::namespaced(client.clone(), &ns);
    // A short lag limit, so a cut replica leaves the ISR quickly.
    api.patch(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"config": {"replica.lag.time.max.ms": "3000"}}})),
    )
    .await
    .expect("lag limit set");
    let sc = cluster_ready(&client, &ns, CLUSTER, 3).await;
    roll_done(&client, &ns, "the cluster runs its spec").await;
    let boot = bootstrap(&sc);
    create_topic(&client, &ns, "fragile", 6).await;
    topic_ready(&client, &ns, "fragile", 6).await;
    let producer = Producer::start(&boot, "fragile", 200);
    producer
        .wait_acked(200, "records acknowledged before the cut", REJOIN_TIMEOUT)
        .await;

    // Replication is cut: no follower reaches any leader, so every
    // partition shrinks to its leader alone, below min.insync.replicas (2),
    // and restarting any broker would take its partitions to none.
    let (pods, selector) = broker_pods(&client, &ns);
    let ips: Vec<String> = pods
        .list(&selector)
        .await
        .expect("broker pods")
        .items
        .into_iter()
        .filter_map(|p| p.status.and_then(|s| s.pod_ip))
        .collect();
    assert_eq!(ips.len(), 3, "three broker addresses: {ips:?}");
    let cut = ReplicationCut::new(&ips, 9094);
    let topics = Api::<Topic>::namespaced(client.clone(), &ns);
    wait_for(
        "every partition of fragile below min ISR",
        REJOIN_TIMEOUT,
        || async {
            let t = topics.get("fragile").await.ok()?;
            let partitions = t.status?.partitions;
            (partitions.len() == 6 && partitions.iter().all(|p| p.isr.len() == 1)).then_some(())
        },
    )
    .await;

    let before = pod_uids(&client, &ns).await;
    api.patch(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"rill.dev/restart": "blocked-1"}}})),
    )
    .await
    .expect("restart asked");
    let message = wait_for("Progressing=True RollBlocked", ROLL_TIMEOUT, || async {
        let sc = api.get(CLUSTER).await.ok()?;
        let c = condition(&sc.status.as_ref()?.conditions, "Progressing")?.clone();
        (c.reason == "RollBlocked").then_some(c.message)
    })
    .await;
    println!("roll held: {message}");
    assert!(
        message.contains("fragile-"),
        "the condition names the partitions: {message}"
    );
    assert!(message.contains("min.insync.replicas"), "{message}");
    // Held: a few seconds later still no broker was restarted.
    tokio::time::sleep(QUIET_SAMPLE * 2).await;
    assert_eq!(
        pod_uids(&client, &ns).await,
        before,
        "no broker is restarted while the roll is blocked"
    );
    let events = events(&client, &ns).await;
    assert!(
        events.iter().any(|e| e.contains("RollBlocked")),
        "a Warning Event says the roll is blocked: {events:?}"
    );

    // Healed: the replicas catch up and the roll proceeds.
    drop(cut);
    roll_done(&client, &ns, "the roll proceeds once the ISRs are full").await;
    let after = pod_uids(&client, &ns).await;
    for (name, uid) in &before {
        assert_ne!(after.get(name), Some(uid), "{name} was restarted");
    }
    let (summary, history) = producer.stop();
    let checked = verify(&boot, "fragile", &history.acked);
    println!(
        "producer: {} acked, {} refused while below min ISR; read back: {checked}",
        summary.acked, summary.failed
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster that runs pods: e2e/scripts/run-tests.sh"]
async fn given_a_larger_storage_size_then_every_broker_claim_grows_without_a_restart_and_shrinking_is_refused()
 {
    let client = client().await;
    chart_installed(&client).await;
    let ns = namespace(&client, "rill-volumes").await;
    create_cluster(&client, &ns, 3).await;
    let sc = cluster_ready(&client, &ns, CLUSTER, 3).await;
    let boot = bootstrap(&sc);
    create_topic(&client, &ns, "stored", 3).await;
    topic_ready(&client, &ns, "stored", 3).await;
    let producer = Producer::start(&boot, "stored", 200);
    producer
        .wait_acked(
            200,
            "records acknowledged before the resize",
            REJOIN_TIMEOUT,
        )
        .await;
    let api = Api::<StreamCluster>::namespaced(client.clone(), &ns);
    let before = pod_uids(&client, &ns).await;

    let started = Instant::now();
    api.patch(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"storage": {"size": "2Gi"}}})),
    )
    .await
    .expect("storage grown");
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns);
    wait_for("every broker claim reports 2Gi", ROLL_TIMEOUT, || async {
        let sc = api.get(CLUSTER).await.ok()?;
        let s = sc.status.as_ref()?;
        let storage = s.storage.as_ref()?;
        let progressing = condition(&s.conditions, "Progressing")?;
        (storage.size == "2Gi"
            && storage.resized == 3
            && storage.claims == 3
            && progressing.status == "False")
            .then_some(())
    })
    .await;
    for i in 0..3 {
        let claim = claims
            .get(&format!("data-{CLUSTER}-{i}"))
            .await
            .expect("claim");
        let capacity = claim
            .status
            .and_then(|s| s.capacity)
            .and_then(|c| c.get("storage").cloned())
            .map(|q| q.0);
        assert_eq!(capacity.as_deref(), Some("2Gi"), "data-{CLUSTER}-{i}");
    }
    let sts = wait_for(
        "the StatefulSet is re-created with the new claim size",
        ROLL_TIMEOUT,
        || async {
            let sts = Api::<StatefulSet>::namespaced(client.clone(), &ns)
                .get(CLUSTER)
                .await
                .ok()?;
            let size = sts
                .spec
                .volume_claim_templates
                .as_ref()?
                .first()?
                .spec
                .as_ref()?
                .resources
                .as_ref()?
                .requests
                .as_ref()?
                .get("storage")?
                .0
                .clone();
            (size == "2Gi").then_some(sts)
        },
    )
    .await;
    assert!(sts.metadata.deletion_timestamp.is_none());
    let grown = started.elapsed();
    assert_eq!(
        pod_uids(&client, &ns).await,
        before,
        "growing volumes restarts no broker"
    );

    // Shrinking, or another class, is refused by the API server.
    for (patch, rule) in [
        (
            json!({"spec": {"storage": {"size": "1Gi"}}}),
            "cannot shrink",
        ),
        (
            json!({"spec": {"storage": {"size": "2Gi", "storageClassName": "other"}}}),
            "storageClassName cannot change",
        ),
    ] {
        let err = api
            .patch(CLUSTER, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .expect_err("refused");
        assert!(err.to_string().contains(rule), "{err}");
    }

    let (summary, history) = producer.stop();
    assert_eq!(summary.failed, 0, "no write failed: {}", summary.summary);
    let checked = verify(&boot, "stored", &history.acked);
    println!(
        "3 claims grown 1Gi -> 2Gi in {:.1} s without a restart; producer longest gap {:.2} s; read back: {checked}",
        grown.as_secs_f64(),
        summary.longest_gap_s
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster that runs pods: e2e/scripts/run-tests.sh"]
async fn given_a_managed_topic_when_its_config_changes_then_brokers_follow_the_resource_and_kafka_alters_follow_the_rule()
 {
    let client = client().await;
    chart_installed(&client).await;
    let ns = namespace(&client, "rill-topic-config").await;
    create_cluster(&client, &ns, 3).await;
    let sc = cluster_ready(&client, &ns, CLUSTER, 3).await;
    let boot = bootstrap(&sc);
    create_topic(&client, &ns, "configured", 3).await;
    topic_ready(&client, &ns, "configured", 3).await;
    let topics = Api::<Topic>::namespaced(client.clone(), &ns);

    // Scenario: a Topic retention change visible in `kafka-configs
    // --describe` within 10 s.
    let changed = topics
        .patch(
            "configured",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"config": {"retentionMs": 3_600_000}}})),
        )
        .await
        .expect("retention changed");
    let started = Instant::now();
    let generation = changed.metadata.generation.expect("generation");
    wait_for(
        "kafka-configs --describe to show retention.ms=3600000",
        CONFIG_VISIBLE_TIMEOUT,
        || async { describes(&boot, "configured", "retention.ms", "3600000").then_some(()) },
    )
    .await;
    eprintln!(
        "retention change visible through kafka-configs after {:?}",
        started.elapsed()
    );
    wait_for(
        "status.configGeneration to reach the new generation",
        TOPIC_READY_TIMEOUT,
        || async {
            let t = topics.get("configured").await.ok()?;
            (t.status?.config_generation == Some(generation)).then_some(())
        },
    )
    .await;

    // Scenario: `kafka-configs --alter` on a managed topic. Default rule:
    // refused, naming the resource; nothing changes.
    let (ok, text) = kafka_configs(
        &boot,
        "configured",
        &["--alter", "--add-config", "retention.ms=60000"],
    );
    assert!(!ok, "the alter was accepted:\n{text}");
    assert!(text.contains("PolicyViolationException"), "{text}");
    assert!(
        text.contains(&format!("Topic {ns}/configured")),
        "the refusal names the resource:\n{text}"
    );
    let t = topics.get("configured").await.expect("topic");
    assert_eq!(
        t.spec.config.as_ref().and_then(|c| c.retention_ms),
        Some(3_600_000)
    );
    assert!(describes(&boot, "configured", "retention.ms", "3600000"));

    // With WriteToResource the change is written into the Topic first.
    Api::<StreamCluster>::namespaced(client.clone(), &ns)
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"topicPolicy": {"configChanges": "WriteToResource"}}})),
        )
        .await
        .expect("rule changed");
    let (ok, text) = kafka_configs(
        &boot,
        "configured",
        &["--alter", "--add-config", "retention.ms=60000"],
    );
    assert!(ok, "the alter was refused:\n{text}");
    let t = topics.get("configured").await.expect("topic");
    assert_eq!(
        t.spec.config.as_ref().and_then(|c| c.retention_ms),
        Some(60_000),
        "the change is in the Topic's spec"
    );
    assert_eq!(
        t.spec.config.as_ref().and_then(|c| c.min_insync_replicas),
        Some(2),
        "an incremental alter keeps the keys it does not name"
    );
    wait_for(
        "kafka-configs --describe to show retention.ms=60000",
        CONFIG_VISIBLE_TIMEOUT,
        || async { describes(&boot, "configured", "retention.ms", "60000").then_some(()) },
    )
    .await;
    delete_namespace(&client, &ns).await;
}

/// Replicas per broker over `topics` (brokers holding none are absent).
fn replica_counts(topics: &[Topic]) -> BTreeMap<i32, usize> {
    let mut counts = BTreeMap::new();
    for t in topics {
        for p in t.status.iter().flat_map(|s| &s.partitions) {
            for r in &p.replicas {
                *counts.entry(*r).or_default() += 1;
            }
        }
    }
    counts
}

/// Whether every partition of `topics` is settled: no move in flight and
/// a full ISR.
fn settled(topics: &[Topic]) -> bool {
    topics.iter().all(|t| {
        t.status.as_ref().is_some_and(|s| {
            s.reassigning_partitions.unwrap_or(0) == 0
                && s.partitions.iter().all(|p| {
                    p.adding_replicas.is_empty()
                        && p.removing_replicas.is_empty()
                        && p.isr.len() == p.replicas.len()
                })
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster that runs pods: e2e/scripts/run-tests.sh"]
async fn given_three_brokers_with_data_when_scaled_to_five_then_the_balance_evens_replica_counts_and_loses_nothing()
 {
    let client = client().await;
    chart_installed(&client).await;
    let ns = namespace(&client, "rill-balance").await;
    create_cluster(&client, &ns, 3).await;
    let sc = cluster_ready(&client, &ns, CLUSTER, 3).await;
    let boot = bootstrap(&sc);
    create_topic(&client, &ns, "orders", 12).await;
    create_topic(&client, &ns, "audit", 5).await;
    topic_ready(&client, &ns, "orders", 12).await;
    topic_ready(&client, &ns, "audit", 5).await;
    let earlier = produce_count(&boot, "audit", 2000);
    let producer = Producer::start(&boot, "orders", MOVE_PRODUCE_RATE);
    producer
        .wait_acked(
            500,
            "the producer to get acknowledgements",
            TOPIC_READY_TIMEOUT,
        )
        .await;

    let api = Api::<StreamCluster>::namespaced(client.clone(), &ns);
    api.patch(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"brokers": 5}})),
    )
    .await
    .expect("scaled to 5");
    cluster_ready(&client, &ns, CLUSTER, 5).await;
    let started = Instant::now();
    let topics = Api::<Topic>::namespaced(client.clone(), &ns);
    let counts = wait_for(
        "the balance: 5 brokers whose replica counts differ by at most 1, nothing moving",
        BALANCE_TIMEOUT,
        || async {
            let list = vec![
                topics.get("orders").await.ok()?,
                topics.get("audit").await.ok()?,
            ];
            let counts = replica_counts(&list);
            let (min, max) = (counts.values().min()?, counts.values().max()?);
            (counts.len() == 5 && max - min <= 1 && settled(&list)).then_some(counts)
        },
    )
    .await;
    println!(
        "balanced after {:.1} s: replicas per broker {counts:?}",
        started.elapsed().as_secs_f64()
    );

    let (summary, history) = producer.stop();
    assert_eq!(summary.failed, 0, "no write failed: {}", summary.summary);
    let checked = verify(&boot, "orders", &history.acked);
    println!(
        "{} records acknowledged during the balance, longest gap between acks {:.2} s; read back: {checked}",
        summary.acked, summary.longest_gap_s
    );
    verify(&boot, "audit", &earlier.acked);
    delete_namespace(&client, &ns).await;
}

/// Runs one of Kafka's command-line tools (its main class) and returns
/// its output; it must succeed.
fn kafka_tool(main: &str, args: &[&str]) -> String {
    let classpath = kafka_classpath();
    let mut all = vec!["-Xmx256m", "-cp", classpath.as_str(), main];
    all.extend_from_slice(args);
    must("java", &all, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster that runs pods: e2e/scripts/run-tests.sh"]
async fn given_kafka_reassign_partitions_when_it_moves_every_replica_then_status_follows_and_nothing_is_lost()
 {
    let client = client().await;
    chart_installed(&client).await;
    let ns = namespace(&client, "rill-reassign").await;
    create_cluster(&client, &ns, 3).await;
    let sc = cluster_ready(&client, &ns, CLUSTER, 3).await;
    let boot = bootstrap(&sc);
    create_topic_rf(&client, &ns, "moved", 3, 2).await;
    let before = topic_ready(&client, &ns, "moved", 3).await;
    let producer = Producer::start(&boot, "moved", MOVE_PRODUCE_RATE);
    producer
        .wait_acked(
            500,
            "the producer to get acknowledgements",
            TOPIC_READY_TIMEOUT,
        )
        .await;

    // Every replica one broker along: each leader's replica moves.
    let plan: Vec<Value> = before
        .status
        .as_ref()
        .expect("status")
        .partitions
        .iter()
        .map(|p| {
            let replicas: Vec<i32> = p.replicas.iter().map(|r| (r + 1) % 3).collect();
            json!({"topic": "moved", "partition": p.partition, "replicas": replicas,
                   "log_dirs": vec!["any"; replicas.len()]})
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan_file = dir.path().join("plan.json");
    std::fs::write(
        &plan_file,
        json!({"version": 1, "partitions": plan}).to_string(),
    )
    .expect("plan written");
    let plan_path = plan_file.to_string_lossy().into_owned();
    let reassign = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand";
    let out = kafka_tool(
        reassign,
        &[
            "--bootstrap-server",
            &boot,
            "--execute",
            "--reassignment-json-file",
            &plan_path,
        ],
    );
    assert!(
        out.contains("Successfully started partition reassignment"),
        "--execute: {out}"
    );
    wait_for(
        "--verify to report every move completed",
        REASSIGN_TIMEOUT,
        || async {
            let out = kafka_tool(
                reassign,
                &[
                    "--bootstrap-server",
                    &boot,
                    "--verify",
                    "--preserve-throttles",
                    "--reassignment-json-file",
                    &plan_path,
                ],
            );
            (out.matches("is completed").count() == 3).then_some(())
        },
    )
    .await;

    let topics = Api::<Topic>::namespaced(client.clone(), &ns);
    wait_for(
        "Topic status to show the planned replicas, settled",
        REASSIGN_TIMEOUT,
        || async {
            let t = topics.get("moved").await.ok()?;
            let s = t.status.as_ref()?;
            let matches = plan.iter().all(|want| {
                s.partitions.iter().any(|p| {
                    json!(p.partition) == want["partition"] && json!(p.replicas) == want["replicas"]
                })
            });
            (matches && settled(std::slice::from_ref(&t))).then_some(())
        },
    )
    .await;

    kafka_tool(
        "org.apache.kafka.tools.LeaderElectionCommand",
        &[
            "--bootstrap-server",
            &boot,
            "--election-type",
            "PREFERRED",
            "--all-topic-partitions",
        ],
    );
    wait_for(
        "each partition's first replica to lead",
        ELECTION_TIMEOUT,
        || async {
            let t = topics.get("moved").await.ok()?;
            t.status
                .as_ref()?
                .partitions
                .iter()
                .all(|p| p.leader.is_some() && p.leader == p.replicas.first().copied())
                .then_some(())
        },
    )
    .await;

    let (summary, history) = producer.stop();
    assert_eq!(summary.failed, 0, "no write failed: {}", summary.summary);
    let checked = verify(&boot, "moved", &history.acked);
    println!(
        "{} records acknowledged during the moves, longest gap between acks {:.2} s; read back: {checked}",
        summary.acked, summary.longest_gap_s
    );
    delete_namespace(&client, &ns).await;
}

/// The text of every key of a Secret.
fn secret_text(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// Waits until `who`'s SCRAM login with `config` is accepted. The brokers
/// take new credentials when they read the updated credentials file (the
/// operator nudges their pods so the kubelet refreshes it); until then a
/// login fails like a wrong password.
fn wait_for_login(who: &str, bootstrap: &str, config: &str) {
    let started = Instant::now();
    loop {
        let (ok, _, err) = kafka_client(
            "org.apache.kafka.tools.TopicCommand",
            &[
                "--bootstrap-server",
                bootstrap,
                "--command-config",
                config,
                "--list",
            ],
            None,
        );
        if ok && !err.contains("Authentication failed") {
            break;
        }
        assert!(
            started.elapsed() < CREDENTIALS_LIVE_TIMEOUT,
            "{who}'s credentials not accepted within {CREDENTIALS_LIVE_TIMEOUT:?}:\n{err}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    println!(
        "{who}'s SCRAM login accepted {:.1} s after its Secret was Ready",
        started.elapsed().as_secs_f64()
    );
}

/// Longest a User's new credentials may take to reach the brokers (the
/// kubelet's refresh of the mounted credentials file).
const CREDENTIALS_LIVE_TIMEOUT: Duration = Duration::from_secs(90);

/// Waits until User `name` is Ready and its Secret exists; returns the
/// Secret's keys.
async fn user_secret(client: &Client, ns: &str, name: &str) -> BTreeMap<String, String> {
    let users = Api::<User>::namespaced(client.clone(), ns);
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    wait_for(
        &format!("User {ns}/{name} Ready with its Secret"),
        USER_READY_TIMEOUT,
        || async {
            let u = users.get(name).await.ok()?;
            let status = u.status.as_ref()?;
            if condition(&status.conditions, "Ready")?.status != "True" {
                return None;
            }
            let secret = secrets.get_opt(status.secret.as_deref()?).await.ok()??;
            Some(secret_text(&secret))
        },
    )
    .await
}

/// Runs one of Kafka's Java tools with a client configuration file and
/// `stdin`; returns (success, stdout, stderr).
fn kafka_client(main: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let classpath = kafka_classpath();
    let mut all = vec!["-Xmx256m", "-cp", classpath.as_str(), main];
    all.extend_from_slice(args);
    let out = run("java", &all, stdin);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster that runs pods: e2e/scripts/run-tests.sh"]
async fn given_a_user_resource_then_a_client_configured_from_its_secret_alone_produces_and_consumes_and_a_user_without_acls_is_refused()
 {
    const RECORDS: usize = 200;
    let client = client().await;
    chart_installed(&client).await;
    let ns = namespace(&client, "rill-users").await;
    // TLS and SCRAM on the one listener, ACLs enforced: what a new
    // StreamCluster gets by default, spelled out.
    let cluster = format!(
        "apiVersion: rill.dev/v1alpha1\nkind: StreamCluster\nmetadata: {{name: {CLUSTER}, namespace: {ns}}}\n\
         spec:\n  brokers: 3\n  storage: {{size: 1Gi}}\n  config: {{min.insync.replicas: \"2\"}}\n\
         \x20 listeners: [{{name: tls, port: 9093, tls: true, authentication: scram}}]\n\
         \x20 authorization: {{enabled: true}}\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &cluster);
    cluster_ready(&client, &ns, CLUSTER, 3).await;
    create_topic(&client, &ns, "orders", 3).await;
    topic_ready(&client, &ns, "orders", 3).await;

    let users = format!(
        "apiVersion: rill.dev/v1alpha1\nkind: User\nmetadata: {{name: app, namespace: {ns}}}\n\
         spec:\n  cluster: {{name: {CLUSTER}}}\n  authentication: {{type: scram-sha-512}}\n\
         \x20 authorization:\n    acls:\n\
         \x20   - resource: {{type: topic, name: orders}}\n      operations: [Write, Read, Describe]\n\
         \x20   - resource: {{type: group, name: g}}\n      operations: [Read]\n\
         ---\n\
         apiVersion: rill.dev/v1alpha1\nkind: User\nmetadata: {{name: nobody, namespace: {ns}}}\n\
         spec:\n  cluster: {{name: {CLUSTER}}}\n  authentication: {{type: scram-sha-512}}\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &users);
    let app = user_secret(&client, &ns, "app").await;
    for key in [
        "bootstrap.servers",
        "security.protocol",
        "sasl.mechanism",
        "username",
        "password",
        "sasl.jaas.config",
        "ca.crt",
        "client.properties",
        "librdkafka.config",
    ] {
        assert!(app.contains_key(key), "the User's Secret has {key}");
    }
    assert_eq!(app["security.protocol"], "SASL_SSL");
    assert_eq!(app["username"], "app");
    assert!(
        app["password"].len() >= 32,
        "a generated password of 32+ characters"
    );
    let credentials = Api::<Secret>::namespaced(client.clone(), &ns)
        .get(&format!("{CLUSTER}-scram-credentials"))
        .await
        .expect("the cluster's credentials Secret");
    let file = secret_text(&credentials)
        .remove("credentials")
        .expect("credentials key");
    assert!(
        file.lines()
            .any(|l| l.starts_with("app SCRAM-SHA-512 salt=")),
        "{file}"
    );
    assert!(
        !file.contains(&app["password"]),
        "no clear password in the cluster's namespace"
    );

    // A client configured only from the Secret: its address and its
    // client.properties, written where an application would mount it.
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, secret: &BTreeMap<String, String>| -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, &secret["client.properties"]).expect("write client.properties");
        path.to_string_lossy().into_owned()
    };
    let app_config = write("app.properties", &app);
    let boot = app["bootstrap.servers"].clone();
    wait_for_login("app", &boot, &app_config);
    let input: String = (0..RECORDS).map(|i| format!("user record {i}\n")).collect();
    let (ok, _, err) = kafka_client(
        "org.apache.kafka.tools.ConsoleProducer",
        &[
            "--bootstrap-server",
            &boot,
            "--command-config",
            &app_config,
            "--topic",
            "orders",
            "--request-required-acks",
            "all",
        ],
        Some(&input),
    );
    assert!(
        ok && !err.contains("Exception"),
        "ConsoleProducer as app failed:\n{err}"
    );
    let max = RECORDS.to_string();
    let (ok, out, err) = kafka_client(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            &boot,
            "--command-config",
            &app_config,
            "--topic",
            "orders",
            "--group",
            "g",
            "--from-beginning",
            "--max-messages",
            &max,
            "--timeout-ms",
            "60000",
        ],
        None,
    );
    assert!(ok, "ConsoleConsumer as app (group g) failed:\n{err}");
    let read: BTreeSet<&str> = out.lines().collect();
    let want: BTreeSet<&str> = input.lines().collect();
    assert_eq!(
        read, want,
        "every record produced as app is read back in group g"
    );

    // A User without ACLs authenticates but may not write.
    let nobody = user_secret(&client, &ns, "nobody").await;
    let nobody_config = write("nobody.properties", &nobody);
    wait_for_login("nobody", &nobody["bootstrap.servers"], &nobody_config);
    let (_, out, err) = kafka_client(
        "org.apache.kafka.tools.ConsoleProducer",
        &[
            "--bootstrap-server",
            &nobody["bootstrap.servers"],
            "--command-config",
            &nobody_config,
            "--topic",
            "orders",
            "--producer-property",
            "max.block.ms=20000",
        ],
        Some("refused record\n"),
    );
    let text = format!("{out}{err}");
    assert!(
        text.contains("TopicAuthorizationException") || text.contains("TOPIC_AUTHORIZATION_FAILED"),
        "a User without ACLs is refused with TOPIC_AUTHORIZATION_FAILED:\n{text}"
    );
    assert!(
        !text.contains("SaslAuthenticationException"),
        "nobody authenticated with its Secret's password:\n{text}"
    );

    delete_namespace(&client, &ns).await;
}
