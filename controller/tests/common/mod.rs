//! Shared helpers of the controller integration tests: controllers
//! in-process on loopback port 0, brokers simulated by
//! [`ControllerClient`] calls (registration and a heartbeat task), and a
//! [`Watcher`] that folds the watch stream into a [`MetadataView`] and
//! waits on conditions with a named timeout.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rill_controller::client::{MetadataStream, Registration};
use rill_controller::config::ServerConfig;
use rill_controller::{
    BrokerId, ControllerClient, ControllerHandle, Endpoints, MemoryStore, MetadataUpdate,
    MetadataView,
};
use tokio::task::JoinHandle;

/// How long any awaited event (an update, a fencing, a reply) may take.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// A config for tests: loopback, port 0, default lease settings.
pub fn config(metadata_file: &Path) -> ServerConfig {
    ServerConfig::ephemeral(metadata_file)
}

/// A controller on a fresh in-memory store.
pub async fn start_memory() -> ControllerHandle {
    let c = ServerConfig::ephemeral("unused.json");
    rill_controller::start_with_store(c, MemoryStore::default())
        .await
        .expect("controller starts")
}

/// A controller on the file store at `path`.
pub async fn start_file(path: &Path) -> ControllerHandle {
    rill_controller::start(config(path))
        .await
        .expect("controller starts")
}

pub async fn client(addrs: &[&ControllerHandle]) -> Arc<ControllerClient> {
    let addrs = addrs.iter().map(|h| h.grpc_addr.to_string()).collect();
    Arc::new(
        ControllerClient::connect(addrs)
            .await
            .expect("client connects"),
    )
}

pub fn registration(id: BrokerId) -> Registration {
    Registration {
        broker_id: id,
        log_dir_id: format!("log-dir-{id}"),
        endpoints: Endpoints {
            client: format!("127.0.0.1:{}", 19000 + id),
            kafka: format!("127.0.0.1:{}", 19100 + id),
            kafka_listeners: Default::default(),
            replication: format!("127.0.0.1:{}", 19200 + id),
        },
        rack: None,
    }
}

/// A registered broker that heartbeats until stopped.
pub struct Broker {
    pub id: BrokerId,
    pub epoch: i64,
    heartbeats: JoinHandle<()>,
}

impl Broker {
    /// Registers `id` and starts heartbeating at the interval the
    /// controller asked for.
    pub async fn start(client: &Arc<ControllerClient>, id: BrokerId) -> Self {
        let reg = client.register(&registration(id)).await.expect("registers");
        Self::resume(client, id, reg.broker_epoch, reg.heartbeat_interval)
    }

    /// Heartbeats for an incarnation registered earlier.
    pub fn resume(
        client: &Arc<ControllerClient>,
        id: BrokerId,
        epoch: i64,
        interval: Duration,
    ) -> Self {
        let client = Arc::clone(client);
        let heartbeats = tokio::spawn(async move {
            loop {
                // Errors are fine here: tests assert on state, not on heartbeats.
                let _ = client.heartbeat(id, epoch).await;
                tokio::time::sleep(interval).await;
            }
        });
        Self {
            id,
            epoch,
            heartbeats,
        }
    }

    /// Stops heartbeating, like a broker that died.
    pub fn kill(&self) {
        self.heartbeats.abort();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.heartbeats.abort();
    }
}

/// Starts three heartbeating brokers 0, 1, 2.
pub async fn three_brokers(client: &Arc<ControllerClient>) -> Vec<Broker> {
    let mut out = Vec::new();
    for id in 0..3 {
        out.push(Broker::start(client, id).await);
    }
    out
}

/// A watch stream folded into a view.
pub struct Watcher {
    stream: MetadataStream,
    pub view: MetadataView,
    /// Every update received, in order.
    pub log: Vec<MetadataUpdate>,
}

impl Watcher {
    pub async fn start(client: &ControllerClient) -> Self {
        let stream = client.watch(100).await.expect("watch starts");
        Self {
            stream,
            view: MetadataView::default(),
            log: Vec::new(),
        }
    }

    /// The next update, applied to the view.
    pub async fn next(&mut self) -> MetadataUpdate {
        let item = tokio::time::timeout(EVENT_TIMEOUT, self.stream.next())
            .await
            .expect("an update within EVENT_TIMEOUT")
            .expect("the stream is open")
            .expect("no stream error");
        self.view.apply(&item);
        self.log.push(item.clone());
        item
    }

    /// The stream's next item, which may be an error or the end.
    pub async fn next_raw(
        &mut self,
    ) -> Option<Result<MetadataUpdate, rill_controller::ClientError>> {
        tokio::time::timeout(EVENT_TIMEOUT, self.stream.next())
            .await
            .expect("an item or the end within EVENT_TIMEOUT")
    }

    /// Applies updates until `done(view)` holds; panics naming `what`
    /// after [`EVENT_TIMEOUT`].
    pub async fn until(&mut self, what: &str, done: impl Fn(&MetadataView) -> bool) {
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        while !done(&self.view) {
            let item = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}; view: {:#?}", self.view))
                .expect("the stream is open")
                .expect("no stream error");
            self.view.apply(&item);
            self.log.push(item);
        }
    }
}

pub fn no_config() -> BTreeMap<String, String> {
    BTreeMap::new()
}
