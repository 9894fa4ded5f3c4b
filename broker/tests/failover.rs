//! Fault injection on a real cluster: a `rill-controller` process and three
//! `rill-broker` processes on loopback, a topic with replication factor 3
//! and `min.insync.replicas=2`, and producers writing unique values
//! continuously with acks=all while processes are SIGKILLed, SIGSTOPped
//! and restarted.
//!
//! Contract pinned, for every scenario, once the cluster has healed (every
//! process running again, every partition led and its ISR back to 3):
//! - every acknowledged value is read back from the partition's leader
//!   exactly at the offset it was acknowledged with (zero lost);
//! - no value appears twice (zero duplicated) and offsets are dense from 0
//!   to the high watermark (one value per offset); every stored value is
//!   one a producer sent;
//! - the replicas are byte-identical up to the HW: once production stops
//!   and the followers have fetched everything, the HW reaches the log end,
//!   so the concatenated `*.log` segment files of the three replicas must
//!   be equal byte for byte, and decode (CRC-32C checked) to exactly the
//!   records the leader serves below its HW. Comparing whole files at
//!   quiescence is stronger than comparing prefixes and is insensitive to
//!   where each replica happened to roll segments.
//!
//! Scenarios: the leader SIGKILLed five times in a row (chasing the new
//! leader; the victim is restarted on its data dir after writes resume and
//! before the next kill, so each kill hits a full ISR and exercises a
//! rejoin with truncation — with a second broker down the ISR would be
//! below `min.insync.replicas` and acks=all writes would rightly stop);
//! the leader SIGSTOPped until another broker leads, then SIGCONTed (the
//! writes it takes while deposed are never acknowledged and vanish); a
//! follower killed and restarted with its data dir wiped (it rejoins empty
//! and re-enters the ISR on its own); the controller killed mid-stream and
//! restarted on the same metadata file (writes go on, brokers re-watch,
//! and a leader kill afterwards still fails over).
//!
//! Write unavailability per fault — the gap between the last ack before the
//! fault and the first ack after it on the partitions the fault hit — is
//! printed (`failover: ...`), never asserted (issue target: ≤ 2 s after a
//! leader SIGKILL with default settings).
//!
//! The controller binary belongs to another package, so cargo exposes no
//! `CARGO_BIN_EXE_rill-controller` here: the test runs the one next to
//! `rill-broker` in the target dir. `cargo test --workspace` builds it
//! first; for this file alone run `cargo build -p rill-controller --bin
//! rill-controller && cargo test -p rill-broker --test failover`. A missing
//! binary fails with that hint. The scenarios run one at a time (a lock),
//! so the timing figures are not skewed by each other's processes.

mod broker_process;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use broker_process::{BrokerProcess, ControllerProcess};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use nix::sys::signal::Signal;
use parking_lot::Mutex;
use rill_client::{decode_batches, encode_batch};
use rill_proto::client::client_client::ClientClient;
use rill_proto::client::{
    Acks, CreateTopicRequest, FetchRequest, MetadataRequest, ProduceRequest, TopicInfo,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

const TOPIC: &str = "failover";
const BROKERS: i32 = 3;
/// Leader SIGKILLs in a row in the first scenario.
const LEADER_KILLS: usize = 5;
/// Acks every partition must collect before a fault, so it lands
/// mid-stream.
const ACKS_BEFORE_FAULT: usize = 20;
/// Acks after a fault that count as writes having resumed.
const RESUMED_ACKS: usize = 5;
/// Values written with acks=all to a SIGSTOPped leader.
const ZOMBIE_WRITES: usize = 5;

/// Connection timeout of the test's clients.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest one produce or metadata request of the producers may take (a
/// stopped broker never answers).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a broker may wait for acks=all replication of one produce.
const PRODUCE_WAIT_MS: u32 = 1_500;
/// Pause of a producer between a failed attempt and the next one.
const RETRY_BACKOFF: Duration = Duration::from_millis(10);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(20);
/// How long the cluster may take to lead every partition with a full ISR
/// (after start, or after a restart: catching up and re-entering the ISR).
const HEAL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long writes may take to resume after a fault.
const RESUME_TIMEOUT: Duration = Duration::from_secs(30);
/// How long producers may take to collect [`ACKS_BEFORE_FAULT`] acks.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the replicas may take to fetch everything once writes stop.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped producer may take to finish its request in flight.
const PRODUCER_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a restarted controller may take until every broker watches it.
const CONTROLLER_REJOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Client timeout of the writes sent to a stopped leader: long enough for
/// their answers after SIGCONT.
const ZOMBIE_TIMEOUT: Duration = Duration::from_secs(60);

type Client = ClientClient<Channel>;

/// One scenario at a time: timings are printed, and 16 debug processes on
/// a small machine would distort them (and the 1.5 s leases).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn connect(addr: &str, timeout: Duration) -> Result<Client, tonic::Status> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("connect {addr}: {e}")))?;
    Ok(ClientClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// The topic as the broker at `addr` sees it, with the brokers' client
/// addresses.
async fn describe(addr: &str) -> Result<(TopicInfo, BTreeMap<i32, String>), tonic::Status> {
    let work = async {
        let mut c = connect(addr, REQUEST_TIMEOUT).await?;
        let mut r = c
            .metadata(MetadataRequest {
                topics: vec![TOPIC.into()],
            })
            .await?
            .into_inner();
        let brokers = r
            .brokers
            .iter()
            .map(|b| (b.id, b.address.clone()))
            .collect();
        let topic = r
            .topics
            .pop()
            .ok_or_else(|| tonic::Status::not_found("no topic in metadata"))?;
        Ok((topic, brokers))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("metadata timed out")))
}

/// Waits until `cond` returns `Some`, polling; panics naming `what` and the
/// last `status` after `timeout`.
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let status = match cond().await {
            Ok(t) => return t,
            Err(status) => status,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last state: {status}"
        );
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------
// The cluster of processes.

/// A controller and three brokers, each broker in its own data dir under a
/// temp dir. Dropping it kills every process (also on panic), then removes
/// the temp dir.
struct Cluster {
    controller: Option<ControllerProcess>,
    /// Fixed after the first start, so a restarted controller is found at
    /// the address the brokers were given.
    controller_addr: String,
    brokers: BTreeMap<i32, BrokerProcess>,
    /// Brokers SIGSTOPped right now (running, but not answering).
    stopped: BTreeSet<i32>,
    /// Client addresses of every broker started so far, for producers to
    /// ask for metadata.
    bootstrap: Arc<Mutex<BTreeMap<i32, String>>>,
    partitions: i32,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the processes and creates the topic with `partitions`
    /// partitions, RF 3, min ISR 2; returns once every partition is led
    /// with a full ISR.
    async fn start(partitions: i32) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let metadata = dir.path().join("metadata.json");
        let log = dir.path().join("controller.log");
        let controller = tokio::task::spawn_blocking(move || {
            ControllerProcess::start(&metadata, "127.0.0.1:0", &log, &[])
        })
        .await
        .expect("controller starts");
        let mut cluster = Self {
            controller_addr: controller.addr.clone(),
            controller: Some(controller),
            brokers: BTreeMap::new(),
            stopped: BTreeSet::new(),
            bootstrap: Arc::default(),
            partitions,
            dir,
        };
        for id in 0..BROKERS {
            cluster.start_broker(id).await;
        }
        let mut any = connect(&cluster.brokers[&0].client_addr, REQUEST_TIMEOUT)
            .await
            .expect("connect to broker 0");
        any.create_topic(CreateTopicRequest {
            name: TOPIC.into(),
            partitions,
            replication_factor: BROKERS,
            config: [("min.insync.replicas".to_owned(), "2".to_owned())].into(),
        })
        .await
        .expect("topic created through a broker");
        cluster
            .wait_healed("the new topic to be led with full ISRs")
            .await;
        cluster
    }

    fn data_dir(&self, id: i32) -> PathBuf {
        self.dir.path().join(format!("broker-{id}"))
    }

    fn log_path(&self, id: i32) -> PathBuf {
        self.dir.path().join(format!("broker-{id}.log"))
    }

    /// Starts (or restarts) broker `id` on its data dir; port 0 everywhere.
    async fn start_broker(&mut self, id: i32) {
        let (data, log) = (self.data_dir(id), self.log_path(id));
        let args: Vec<String> = [
            "--broker-id",
            &id.to_string(),
            "--replication-addr",
            "127.0.0.1:0",
            "--controller-addr",
            &self.controller_addr,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let broker = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            BrokerProcess::start(&data, &log, &args)
        })
        .await
        .expect("broker starts");
        self.bootstrap.lock().insert(id, broker.client_addr.clone());
        self.brokers.insert(id, broker);
    }

    fn kill_broker(&mut self, id: i32) {
        let broker = self.brokers.remove(&id).expect("broker is running");
        self.stopped.remove(&id);
        broker.kill9();
    }

    fn signal_broker(&mut self, id: i32, signal: Signal) {
        self.brokers[&id].signal(signal);
        if signal == Signal::SIGSTOP {
            // kill() only queues the signal: a thread already on a CPU
            // may serve a request or two before it stops. Wait until every
            // thread is in the stopped state, so what is sent from now on
            // is read only after SIGCONT.
            let pid = self.brokers[&id].pid();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !all_threads_stopped(pid) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "broker {id} (pid {pid}) did not stop within 5 s of SIGSTOP"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            self.stopped.insert(id);
        } else {
            self.stopped.remove(&id);
        }
    }

    /// Brokers running and not stopped.
    fn live(&self) -> Vec<i32> {
        self.brokers
            .keys()
            .copied()
            .filter(|id| !self.stopped.contains(id))
            .collect()
    }

    /// The topic as each live broker sees it.
    async fn views(&self) -> Result<Vec<(i32, TopicInfo, BTreeMap<i32, String>)>, String> {
        let mut out = Vec::new();
        for id in self.live() {
            let (t, b) = describe(&self.brokers[&id].client_addr)
                .await
                .map_err(|e| format!("metadata from broker {id}: {e}"))?;
            out.push((id, t, b));
        }
        Ok(out)
    }

    /// The topic as the first live broker sees it.
    async fn topic(&self) -> TopicInfo {
        wait_for(
            "metadata from a live broker",
            REQUEST_TIMEOUT * 5,
            || async move {
                self.views().await.and_then(|mut v| {
                    v.pop()
                        .map(|(_, t, _)| t)
                        .ok_or_else(|| "no live broker".to_owned())
                })
            },
        )
        .await
    }

    /// Waits until every live broker sees every partition led by a live
    /// broker with all three replicas in sync.
    async fn wait_healed(&self, what: &str) {
        let live = &self.live();
        wait_for(what, HEAL_TIMEOUT, || async move {
            for (id, t, _) in self.views().await? {
                let ok = t.partitions.len() == self.partitions as usize
                    && t.partitions
                        .iter()
                        .all(|p| live.contains(&p.leader) && p.isr.len() == BROKERS as usize);
                if !ok {
                    return Err(format!("broker {id} sees {:?}", t.partitions));
                }
            }
            Ok(())
        })
        .await;
    }

    /// Waits until every live broker sees `partition` led by a live broker
    /// other than `old`; returns the new leader.
    async fn wait_new_leader(&self, partition: i32, old: i32) -> i32 {
        let live = &self.live();
        wait_for(
            &format!("partition {partition} to get a leader other than {old}"),
            RESUME_TIMEOUT,
            || async move {
                let mut leaders = BTreeSet::new();
                for (id, t, _) in self.views().await? {
                    let p = &t.partitions[partition as usize];
                    if p.leader == old || !live.contains(&p.leader) {
                        return Err(format!("broker {id} sees {p:?}"));
                    }
                    leaders.insert(p.leader);
                }
                match leaders.len() {
                    1 => Ok(leaders.pop_first().unwrap()),
                    _ => Err(format!("brokers disagree: {leaders:?}")),
                }
            },
        )
        .await
    }

    /// Concatenated `*.log` segment files of `partition` on broker `id`.
    fn replica_bytes(&self, id: i32, partition: i32) -> Vec<u8> {
        let dir = self
            .data_dir(id)
            .join(format!("topics/{TOPIC}/{partition}"));
        let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "log"))
                    .collect()
            })
            .unwrap_or_default();
        segments.sort();
        let mut out = Vec::new();
        for s in segments {
            // A segment may vanish under a truncation; the caller retries.
            out.extend(std::fs::read(&s).unwrap_or_default());
        }
        out
    }

    fn broker_log_contains(&self, id: i32, needle: &str) -> bool {
        std::fs::read_to_string(self.log_path(id)).is_ok_and(|t| t.contains(needle))
    }

    fn controller_http(&self) -> std::net::SocketAddr {
        self.controller
            .as_ref()
            .expect("controller running")
            .http_addr
            .parse()
            .expect("controller http address")
    }
}

// ---------------------------------------------------------------------------
// Producers and the history of acknowledged writes.

#[derive(Debug, Clone)]
struct Ack {
    partition: i32,
    base_offset: i64,
    values: Vec<String>,
    /// When the answer arrived.
    at: Instant,
    /// The broker that acknowledged.
    leader: i32,
}

#[derive(Debug, Default)]
struct History {
    acks: Vec<Ack>,
    /// Every value ever sent (acknowledged or not).
    attempted: HashSet<String>,
    /// Failed attempts by gRPC code.
    errors: BTreeMap<String, u64>,
    /// Failures a producer should never see (bad request, unknown topic).
    unexpected: Vec<String>,
}

impl History {
    fn record_error(&mut self, status: &tonic::Status) {
        *self
            .errors
            .entry(format!("{:?}", status.code()))
            .or_default() += 1;
        use tonic::Code::*;
        if matches!(
            status.code(),
            InvalidArgument | NotFound | AlreadyExists | OutOfRange | DataLoss
        ) {
            self.unexpected.push(status.to_string());
        }
    }

    fn acks_since(&self, partition: i32, since: Instant) -> usize {
        self.acks
            .iter()
            .filter(|a| a.partition == partition && a.at >= since)
            .count()
    }

    /// Write unavailability on `partition` around `fault`: the longest gap
    /// between consecutive acks from the last ack before the fault to the
    /// [`RESUMED_ACKS`]th ack after it by a broker other than `not_by`.
    /// (The first ack after the fault alone is not enough: an answer in
    /// flight when the fault struck may arrive just after it.) `None` until
    /// writes resumed.
    fn unavailability(
        &self,
        partition: i32,
        fault: Instant,
        not_by: Option<i32>,
    ) -> Option<Duration> {
        let mut times: Vec<Instant> = self
            .acks
            .iter()
            .filter(|a| a.partition == partition)
            .map(|a| a.at)
            .collect();
        times.sort();
        let resumed = self
            .acks
            .iter()
            .filter(|a| a.partition == partition && a.at >= fault && Some(a.leader) != not_by)
            .map(|a| a.at)
            .nth(RESUMED_ACKS - 1)?;
        let start = times.iter().rposition(|t| *t < fault)?;
        times[start..]
            .iter()
            .take_while(|t| **t <= resumed)
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| *w[1] - *w[0])
            .max()
    }
}

/// One task per partition, each sending one acks=all request at a time
/// to the leader the metadata names, every attempt with new values.
struct Producers {
    history: Arc<Mutex<History>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Producers {
    fn start(cluster: &Cluster) -> Self {
        let history = Arc::new(Mutex::new(History::default()));
        let stop = CancellationToken::new();
        let seq = Arc::new(AtomicU64::new(0));
        let tasks = (0..cluster.partitions)
            .map(|p| {
                let task = ProduceTask {
                    partition: p,
                    bootstrap: Arc::clone(&cluster.bootstrap),
                    history: Arc::clone(&history),
                    seq: Arc::clone(&seq),
                };
                tokio::spawn(task.run(stop.clone()))
            })
            .collect();
        Self {
            history,
            stop,
            tasks,
        }
    }

    /// Waits until every partition has `n` acks since `since`.
    async fn wait_acks(&self, partitions: &[i32], n: usize, since: Instant, what: &str) {
        wait_for(what, WARMUP_TIMEOUT.max(RESUME_TIMEOUT), || async move {
            let h = self.history.lock();
            let counts: Vec<usize> = partitions.iter().map(|p| h.acks_since(*p, since)).collect();
            if counts.iter().all(|c| *c >= n) {
                Ok(())
            } else {
                Err(format!("acks per partition {partitions:?}: {counts:?}"))
            }
        })
        .await;
    }

    /// Waits until writes resumed after `fault` on `partitions` at a
    /// leader other than `not_by`, and prints the unavailability.
    async fn measure(&self, label: &str, partitions: &[i32], fault: Instant, not_by: Option<i32>) {
        let what = format!("writes to resume after {label}");
        wait_for(&what, RESUME_TIMEOUT, || async move {
            let h = self.history.lock();
            let pending: Vec<i32> = partitions
                .iter()
                .copied()
                .filter(|p| h.unavailability(*p, fault, not_by).is_none())
                .collect();
            if pending.is_empty() {
                Ok(())
            } else {
                Err(format!("no ack yet on partitions {pending:?}"))
            }
        })
        .await;
        let h = self.history.lock();
        let gaps: Vec<(i32, Duration)> = partitions
            .iter()
            .filter_map(|p| h.unavailability(*p, fault, not_by).map(|d| (*p, d)))
            .collect();
        let worst = gaps.iter().map(|(_, d)| *d).max().unwrap_or_default();
        let per: Vec<String> = gaps
            .iter()
            .map(|(p, d)| format!("p{p} {:.2} s", d.as_secs_f64()))
            .collect();
        println!(
            "failover: {label}: writes unavailable for {:.2} s ({})",
            worst.as_secs_f64(),
            per.join(", ")
        );
    }

    /// Stops the producers and returns the history.
    async fn finish(self) -> History {
        self.stop.cancel();
        for t in self.tasks {
            tokio::time::timeout(PRODUCER_STOP_TIMEOUT, t)
                .await
                .expect("producer stops in time")
                .expect("producer task does not panic");
        }
        Arc::try_unwrap(self.history)
            .expect("producers are gone")
            .into_inner()
    }
}

struct ProduceTask {
    partition: i32,
    bootstrap: Arc<Mutex<BTreeMap<i32, String>>>,
    history: Arc<Mutex<History>>,
    seq: Arc<AtomicU64>,
}

impl ProduceTask {
    async fn run(self, stop: CancellationToken) {
        let mut leader: Option<(i32, String)> = None;
        let mut clients: HashMap<String, Client> = HashMap::new();
        while !stop.is_cancelled() {
            let Some((id, addr)) = leader.clone() else {
                leader = self.find_leader().await;
                if leader.is_none() {
                    self.pause(&stop).await;
                }
                continue;
            };
            // 1 to 3 records per batch, every one a value never sent before.
            let n = 1 + self.seq.load(Ordering::Relaxed) % 3;
            let values: Vec<String> = (0..n)
                .map(|_| {
                    format!(
                        "p{}-v{}",
                        self.partition,
                        self.seq.fetch_add(1, Ordering::Relaxed)
                    )
                })
                .collect();
            self.history.lock().attempted.extend(values.iter().cloned());
            let records: Vec<(Option<&[u8]>, &[u8])> =
                values.iter().map(|v| (None, v.as_bytes())).collect();
            let batch = encode_batch(&records, 1_700_000_000_000).expect("encodes");
            let result = self.send(&mut clients, &addr, batch).await;
            match result {
                Ok(base_offset) => self.history.lock().acks.push(Ack {
                    partition: self.partition,
                    base_offset,
                    values,
                    at: Instant::now(),
                    leader: id,
                }),
                Err(status) => {
                    self.history.lock().record_error(&status);
                    clients.remove(&addr);
                    leader = None;
                    self.pause(&stop).await;
                }
            }
        }
    }

    async fn pause(&self, stop: &CancellationToken) {
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(RETRY_BACKOFF) => {}
        }
    }

    async fn send(
        &self,
        clients: &mut HashMap<String, Client>,
        addr: &str,
        batch: Bytes,
    ) -> Result<i64, tonic::Status> {
        let work = async {
            let mut client = match clients.get(addr) {
                Some(c) => c.clone(),
                None => {
                    let c = connect(addr, REQUEST_TIMEOUT).await?;
                    clients.insert(addr.to_owned(), c.clone());
                    c
                }
            };
            client
                .produce(ProduceRequest {
                    topic: TOPIC.into(),
                    partition: self.partition,
                    acks: Acks::All as i32,
                    timeout_ms: PRODUCE_WAIT_MS,
                    record_batches: batch,
                })
                .await
                .map(|r| r.into_inner().base_offset)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("client timeout")))
    }

    /// Asks every known broker at once; the first answer naming a leader
    /// with a known address wins (a stopped broker never answers, a
    /// killed one refuses).
    async fn find_leader(&self) -> Option<(i32, String)> {
        let addrs: Vec<String> = self.bootstrap.lock().values().cloned().collect();
        let mut answers: FuturesUnordered<_> = addrs.iter().map(|a| describe(a)).collect();
        while let Some(answer) = answers.next().await {
            let Ok((topic, brokers)) = answer else {
                continue;
            };
            let leader = topic
                .partitions
                .get(self.partition as usize)
                .map(|p| p.leader)?;
            if let Some(addr) = brokers.get(&leader) {
                return Some((leader, addr.clone()));
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------
// Checking the history.

/// Records of one partition as (offset, value).
fn records_of(data: &Bytes, what: &str) -> Vec<(i64, String)> {
    decode_batches(data)
        .unwrap_or_else(|e| panic!("{what}: bytes fail their checks: {e}"))
        .records
        .into_iter()
        .map(|r| {
            let value = r.value.unwrap_or_default();
            (r.offset, String::from_utf8_lossy(&value).into_owned())
        })
        .collect()
}

/// Every record of `partition` below the HW, from its leader.
async fn read_from_leader(addr: &str, partition: i32) -> Result<Vec<(i64, String)>, String> {
    let mut client = connect(addr, REQUEST_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let mut out: Vec<(i64, String)> = Vec::new();
    let mut offset = 0;
    loop {
        let r = client
            .fetch(FetchRequest {
                topic: TOPIC.into(),
                partition,
                offset,
                max_bytes: 1 << 20,
                max_wait_ms: 0,
                min_bytes: 1,
            })
            .await
            .map_err(|e| format!("fetch p{partition} at {offset}: {e}"))?
            .into_inner();
        let data = r.record_batches;
        if offset >= r.high_watermark {
            return Ok(out);
        }
        if data.is_empty() {
            return Err(format!(
                "fetch at {offset} below HW {} returned nothing",
                r.high_watermark
            ));
        }
        let records = records_of(&data, &format!("leader fetch of p{partition}"));
        out.extend(
            records
                .into_iter()
                .filter(|(o, _)| *o >= offset && *o < r.high_watermark),
        );
        offset = out.last().map_or(offset, |(o, _)| o + 1);
    }
}

/// Stops the producers, waits for quiescent identical replicas and checks
/// the history (see the file header); `forbidden` values must be absent.
async fn verify(cluster: &Cluster, producers: Producers, scenario: &str, forbidden: &[String]) {
    let history = producers.finish().await;
    assert!(
        history.unexpected.is_empty(),
        "{scenario}: producers got unexpected errors: {:?}",
        history.unexpected
    );
    let topic = cluster.topic().await;
    let brokers: BTreeMap<i32, String> = cluster
        .views()
        .await
        .expect("metadata")
        .pop()
        .expect("a live broker")
        .2;
    let mut verified = 0;
    let mut unacked_present = 0;
    for p in &topic.partitions {
        let leader_addr = &brokers[&p.leader];
        let pid = p.partition;
        // Quiescence: all replica files equal, and exactly what the leader
        // serves below its HW.
        let records = wait_for(
            &format!("{scenario}: replicas of p{pid} to be identical and fully committed"),
            CONVERGE_TIMEOUT,
            || async move {
                let files: Vec<Vec<u8>> = (0..BROKERS)
                    .map(|id| cluster.replica_bytes(id, pid))
                    .collect();
                if let Some(id) = (1..BROKERS).find(|id| files[*id as usize] != files[0]) {
                    let diff = files[0]
                        .iter()
                        .zip(&files[id as usize])
                        .position(|(a, b)| a != b);
                    return Err(format!(
                        "broker 0 has {} bytes, broker {id} {} bytes, first difference at {diff:?}",
                        files[0].len(),
                        files[id as usize].len()
                    ));
                }
                let on_disk = records_of(&Bytes::from(files[0].clone()), "replica log");
                let served = read_from_leader(leader_addr, pid).await?;
                if served != on_disk {
                    return Err(format!(
                        "leader serves {} records below its HW, replicas hold {}",
                        served.len(),
                        on_disk.len()
                    ));
                }
                Ok(served)
            },
        )
        .await;

        // One value per offset, dense from 0.
        for (i, (offset, _)) in records.iter().enumerate() {
            assert_eq!(*offset, i as i64, "{scenario}: p{pid}: offsets are dense");
        }
        // No value twice, and only values a producer sent.
        let mut seen = HashSet::new();
        for (offset, value) in &records {
            assert!(
                seen.insert(value.as_str()),
                "{scenario}: p{pid}: value {value} appears twice (again at {offset})"
            );
            assert!(
                history.attempted.contains(value),
                "{scenario}: p{pid}: value {value} at {offset} was never sent"
            );
            assert!(
                !forbidden.contains(value),
                "{scenario}: p{pid}: value {value} at {offset} was written to a deposed leader and must be gone"
            );
        }
        // Every acknowledged value at its acknowledged offset.
        let mut acked = 0;
        for a in history.acks.iter().filter(|a| a.partition == pid) {
            for (i, v) in a.values.iter().enumerate() {
                let offset = a.base_offset + i as i64;
                let found = records.get(offset as usize).map(|(_, v)| v.as_str());
                assert_eq!(
                    found,
                    Some(v.as_str()),
                    "{scenario}: p{pid}: value {v} acknowledged by broker {} at offset {offset} is lost",
                    a.leader
                );
                acked += 1;
            }
        }
        verified += records.len();
        unacked_present += records.len() - acked;
    }
    println!(
        "failover: {scenario}: {} acks, {verified} records verified on {} partitions \
         ({unacked_present} unacknowledged attempts also committed); failed attempts by code: {:?}",
        history.acks.len(),
        topic.partitions.len(),
        history.errors
    );
}

// ---------------------------------------------------------------------------
// Scenarios.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_acks_all_production_when_leader_sigkilled_five_times_then_no_acknowledged_write_is_lost()
 {
    let _serial = SERIAL.lock().await;
    let scenario = "leader SIGKILL x5";
    let mut cluster = Cluster::start(3).await;
    let all: Vec<i32> = (0..cluster.partitions).collect();
    let producers = Producers::start(&cluster);
    for kill in 1..=LEADER_KILLS {
        let mark = Instant::now();
        producers
            .wait_acks(&all, ACKS_BEFORE_FAULT, mark, "acks before the kill")
            .await;
        let topic = cluster.topic().await;
        let victim = topic.partitions[0].leader;
        let led: Vec<i32> = topic
            .partitions
            .iter()
            .filter(|p| p.leader == victim)
            .map(|p| p.partition)
            .collect();
        let fault = Instant::now();
        cluster.kill_broker(victim);
        let label = format!("leader SIGKILL #{kill} (broker {victim}, partitions {led:?})");
        producers.measure(&label, &led, fault, Some(victim)).await;
        cluster.start_broker(victim).await;
        cluster
            .wait_healed(&format!(
                "broker {victim} back in every ISR after kill #{kill}"
            ))
            .await;
    }
    verify(&cluster, producers, scenario, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_leader_sigstopped_past_its_session_when_resumed_then_its_late_writes_are_never_acknowledged()
 {
    let _serial = SERIAL.lock().await;
    let scenario = "leader SIGSTOP/SIGCONT";
    let mut cluster = Cluster::start(2).await;
    let all: Vec<i32> = (0..cluster.partitions).collect();
    let producers = Producers::start(&cluster);
    producers
        .wait_acks(
            &all,
            ACKS_BEFORE_FAULT,
            Instant::now(),
            "acks before the stop",
        )
        .await;
    let topic = cluster.topic().await;
    let victim = topic.partitions[0].leader;
    let epoch_at_stop = topic.partitions[0].leader_epoch;
    let led: Vec<i32> = topic
        .partitions
        .iter()
        .filter(|p| p.leader == victim)
        .map(|p| p.partition)
        .collect();
    // A connection to the victim made while it runs, so the writes sent
    // while it is stopped wait in its socket and are read after SIGCONT.
    let mut zombie = connect(&cluster.brokers[&victim].client_addr, ZOMBIE_TIMEOUT)
        .await
        .expect("connect to the leader");
    zombie
        .metadata(MetadataRequest { topics: vec![] })
        .await
        .expect("the leader answers before the stop");

    let fault = Instant::now();
    cluster.signal_broker(victim, Signal::SIGSTOP);
    let zombie_values: Vec<String> = (0..ZOMBIE_WRITES).map(|i| format!("zombie-{i}")).collect();
    let zombies: Vec<_> = zombie_values
        .iter()
        .map(|v| {
            let mut c = zombie.clone();
            let batch =
                encode_batch(&[(None::<&[u8]>, v.as_bytes())], 1_700_000_000_000).expect("encodes");
            tokio::spawn(async move {
                c.produce(ProduceRequest {
                    topic: TOPIC.into(),
                    partition: 0,
                    acks: Acks::All as i32,
                    timeout_ms: 10_000,
                    record_batches: batch,
                })
                .await
            })
        })
        .collect();
    // Stopped past its session: another broker leads and takes writes.
    let new_leader = cluster.wait_new_leader(0, victim).await;
    let label = format!("leader SIGSTOP (broker {victim}, partitions {led:?})");
    producers.measure(&label, &led, fault, Some(victim)).await;
    println!(
        "failover: broker {victim} stopped for {:.2} s; broker {new_leader} leads p0",
        fault.elapsed().as_secs_f64()
    );
    cluster.signal_broker(victim, Signal::SIGCONT);

    // A write read after SIGCONT is refused while the broker is deposed.
    // Only if the controller has meanwhile made it leader again (a newer
    // epoch, e.g. after the new leader itself lost its session on a loaded
    // machine) is it a fresh write to the current leader, which must then
    // be kept like any acknowledged write.
    let mut reelected = Vec::new();
    for (v, z) in zombie_values.iter().zip(zombies) {
        let answer = tokio::time::timeout(ZOMBIE_TIMEOUT, z)
            .await
            .expect("the resumed broker answers")
            .expect("zombie task");
        match answer {
            Ok(r) => {
                let offset = r.into_inner().base_offset;
                let now = cluster.topic().await;
                let p0 = &now.partitions[0];
                assert!(
                    p0.leader == victim && p0.leader_epoch > epoch_at_stop + 1,
                    "write {v} sent to deposed leader {victim} was acknowledged at offset {offset} \
                     (p0 now led by {} in epoch {}; epoch {epoch_at_stop} when it stopped)",
                    p0.leader,
                    p0.leader_epoch
                );
                println!(
                    "failover: write {v} was served after broker {victim} became leader again \
                     (epoch {}): acknowledged at offset {offset}",
                    p0.leader_epoch
                );
                reelected.push((v.clone(), offset));
            }
            Err(status) => {
                println!("failover: write {v} to the deposed leader: {status}")
            }
        }
    }
    let forbidden: Vec<String> = zombie_values
        .iter()
        .filter(|v| !reelected.iter().any(|(r, _)| r == *v))
        .cloned()
        .collect();
    cluster
        .wait_healed(&format!(
            "broker {victim} to rejoin as follower with full ISRs"
        ))
        .await;
    verify(&cluster, producers, scenario, &forbidden).await;
    if !reelected.is_empty() {
        let topic = cluster.topic().await;
        let brokers = cluster
            .views()
            .await
            .expect("metadata")
            .pop()
            .expect("a live broker")
            .2;
        let records = read_from_leader(&brokers[&topic.partitions[0].leader], 0)
            .await
            .expect("read p0");
        for (v, offset) in &reelected {
            assert!(
                records.iter().any(|(o, r)| o == offset && r == v),
                "write {v} acknowledged at offset {offset} by the re-elected leader is missing"
            );
        }
    }
    println!(
        "failover: broker {victim} truncated a diverged log after SIGCONT: {}",
        cluster.broker_log_contains(victim, "follower log diverged from the leader: truncated")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_follower_killed_when_restarted_with_wiped_disk_then_it_catches_up_and_rejoins_isr() {
    let _serial = SERIAL.lock().await;
    let scenario = "follower wiped-disk restart";
    let mut cluster = Cluster::start(1).await;
    let producers = Producers::start(&cluster);
    producers
        .wait_acks(
            &[0],
            ACKS_BEFORE_FAULT * 5,
            Instant::now(),
            "acks before the kill",
        )
        .await;
    let topic = cluster.topic().await;
    let p0 = &topic.partitions[0];
    let victim = *p0
        .replicas
        .iter()
        .find(|r| **r != p0.leader)
        .expect("a follower");
    let fault = Instant::now();
    cluster.kill_broker(victim);
    let label = format!("follower SIGKILL (broker {victim}, partitions [0])");
    producers.measure(&label, &[0], fault, None).await;
    let c = &cluster;
    wait_for(
        &format!("broker {victim} to leave the ISR"),
        RESUME_TIMEOUT,
        || async move {
            let t = c.topic().await;
            let isr = &t.partitions[0].isr;
            if isr.contains(&victim) {
                Err(format!("ISR {isr:?}"))
            } else {
                Ok(())
            }
        },
    )
    .await;

    // The leader reports the partition under-replicated (ISR 2 of 3, not
    // under min.insync.replicas 2), and its data disk.
    let leader_http: std::net::SocketAddr = cluster.brokers[&p0.leader]
        .http_addr
        .parse()
        .expect("leader http address");
    wait_for(
        "the leader to report one under-replicated partition",
        RESUME_TIMEOUT,
        || async move {
            let (_, body) = http_get(leader_http, "/metrics").await?;
            let under = metric(&body, "rill_under_replicated_partitions");
            let under_min = metric(&body, "rill_under_min_isr_partitions");
            let total = metric(&body, "rill_disk_total_bytes").unwrap_or(0.0);
            let free = metric(&body, "rill_disk_free_bytes").unwrap_or(-1.0);
            if under == Some(1.0)
                && under_min == Some(0.0)
                && total > 0.0
                && (0.0..=total).contains(&free)
            {
                Ok(())
            } else {
                Err(format!(
                    "under-replicated {under:?}, under min ISR {under_min:?}, disk {free}/{total}"
                ))
            }
        },
    )
    .await;

    std::fs::remove_dir_all(cluster.data_dir(victim)).expect("wipe the data dir");
    let restart = Instant::now();
    cluster.start_broker(victim).await;
    cluster
        .wait_healed(&format!(
            "wiped broker {victim} to catch up and re-enter the ISR"
        ))
        .await;
    let (_, body) = http_get(leader_http, "/metrics")
        .await
        .expect("leader /metrics");
    assert_eq!(
        metric(&body, "rill_under_replicated_partitions"),
        Some(0.0),
        "healed"
    );
    println!(
        "failover: wiped broker {victim} back in the ISR {:.2} s after its restart",
        restart.elapsed().as_secs_f64()
    );
    verify(&cluster, producers, scenario, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_controller_killed_mid_stream_when_restarted_then_writes_continue_and_failover_still_works()
 {
    let _serial = SERIAL.lock().await;
    let scenario = "controller SIGKILL and restart";
    let mut cluster = Cluster::start(2).await;
    let all: Vec<i32> = (0..cluster.partitions).collect();
    let producers = Producers::start(&cluster);
    producers
        .wait_acks(
            &all,
            ACKS_BEFORE_FAULT,
            Instant::now(),
            "acks before the kill",
        )
        .await;

    let fault = Instant::now();
    cluster
        .controller
        .take()
        .expect("controller running")
        .kill9();
    // Leaders keep their ISRs without a controller: writes go on.
    producers
        .wait_acks(
            &all,
            ACKS_BEFORE_FAULT,
            fault,
            "acks while the controller is down",
        )
        .await;
    producers
        .measure("controller SIGKILL", &all, fault, None)
        .await;

    let metadata = cluster.dir.path().join("metadata.json");
    let log = cluster.dir.path().join("controller.log");
    let addr = cluster.controller_addr.clone();
    let controller =
        tokio::task::spawn_blocking(move || ControllerProcess::start(&metadata, &addr, &log, &[]))
            .await
            .expect("controller restarts on its address");
    cluster.controller = Some(controller);
    let http = cluster.controller_http();
    wait_for(
        "every broker to watch the restarted controller",
        CONTROLLER_REJOIN_TIMEOUT,
        || async move {
            let (_, body) = http_get(http, "/metrics").await?;
            let watchers = metric(&body, "rill_controller_watchers");
            let active = metric(&body, "rill_controller_brokers{state=\"active\"}");
            if watchers == Some(BROKERS as f64) && active == Some(BROKERS as f64) {
                Ok(())
            } else {
                Err(format!("watchers {watchers:?}, active brokers {active:?}"))
            }
        },
    )
    .await;
    cluster
        .wait_healed("full ISRs under the restarted controller")
        .await;

    // The restarted controller holds live leases: a leader kill fails over.
    let topic = cluster.topic().await;
    let victim = topic.partitions[0].leader;
    let led: Vec<i32> = topic
        .partitions
        .iter()
        .filter(|p| p.leader == victim)
        .map(|p| p.partition)
        .collect();
    producers
        .wait_acks(
            &all,
            ACKS_BEFORE_FAULT,
            Instant::now(),
            "acks before the leader kill",
        )
        .await;
    let fault = Instant::now();
    cluster.kill_broker(victim);
    let label =
        format!("leader SIGKILL after controller restart (broker {victim}, partitions {led:?})");
    producers.measure(&label, &led, fault, Some(victim)).await;
    cluster.start_broker(victim).await;
    cluster
        .wait_healed(&format!("broker {victim} back in every ISR"))
        .await;
    verify(&cluster, producers, scenario, &[]).await;
}

/// GET over plain HTTP/1.1; returns (status code, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&raw).into_owned())
    };
    let text = tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .map_err(|_| format!("GET {path} timed out"))?
        .map_err(|e| format!("GET {path}: {e}"))?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET {path}: no status line"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The value of one sample of a Prometheus text exposition.
fn metric(exposition: &str, name_and_labels: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Whether every thread of `pid` is stopped (state `T` in
/// /proc/PID/task/TID/stat).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
            // The state follows the parenthesised command name.
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
                .is_some_and(|state| state == 'T' || state == 't')
        })
    })
}
