//! Writing transaction markers to the leaders of a transaction's
//! partitions, and checking partitions with a remote coordinator.
//!
//! A partition led here gets its marker directly; the others are grouped by
//! leader and sent in one `WriteMarkers` call per broker over the
//! replication port (mutual TLS when configured). Partitions that fail
//! (leader moved, not enough replicas, broker unreachable) are retried
//! after 100 ms with their leader looked up again, until every marker is
//! written or the coordinator steps down. A partition whose topic was
//! deleted needs no marker.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use rill_process::tls::{InternalTls, grpc_uri};
use rill_proto::txn as pb;
use rill_proto::txn::transactions_client::TransactionsClient;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, warn};

use super::{ProducerRef, TxnCoordinator, TxnError};
use crate::partition::Error as PartitionError;

/// Pause before failed markers are retried.
const RETRY: Duration = Duration::from_millis(100);
/// Longest one remote call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Rounds of failed markers between warnings (about 5 s at [`RETRY`]): a
/// marker that keeps failing holds its partition's last stable offset,
/// so read_committed consumers there wait.
const WARN_EVERY: u32 = 50;

/// Connections to other brokers' `Transactions` service.
#[derive(Debug, Clone, Default)]
pub struct MarkerClient {
    tls: Option<Arc<InternalTls>>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl MarkerClient {
    pub fn new(tls: Option<Arc<InternalTls>>) -> Self {
        Self {
            tls,
            channels: Arc::default(),
        }
    }

    fn client(&self, addr: &str) -> Result<TransactionsClient<Channel>, String> {
        if let Some(ch) = self.channels.lock().get(addr) {
            return Ok(TransactionsClient::new(ch.clone()));
        }
        let mut endpoint = Endpoint::from_shared(grpc_uri(addr, self.tls.is_some()))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(1))
            .timeout(CALL_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.client(None))
                .map_err(|e| e.to_string())?;
        }
        let channel = endpoint.connect_lazy();
        self.channels
            .lock()
            .insert(addr.to_owned(), channel.clone());
        Ok(TransactionsClient::new(channel))
    }

    fn forget(&self, addr: &str) {
        self.channels.lock().remove(addr);
    }

    /// Writes the markers of one transaction to every partition in
    /// `partitions`. Returns false when stopped before all were written.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_all(
        &self,
        coordinator: &TxnCoordinator,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        mut partitions: Vec<(String, i32)>,
        stop: &CancellationToken,
    ) -> bool {
        let me = coordinator.manager().broker().id;
        let mut rounds = 0u32;
        loop {
            if stop.is_cancelled() {
                return false;
            }
            let mut last_error = String::new();
            let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
            let mut failed = Vec::new();
            for (topic, p) in partitions.drain(..) {
                if coordinator.manager().topic_partitions(&topic).is_none() {
                    debug!(topic, partition = p, "no marker needed: the topic is gone");
                    continue;
                }
                match coordinator.manager().leader_of(&topic, p) {
                    Some(leader) => by_leader.entry(leader).or_default().push((topic, p)),
                    None => {
                        last_error = format!("{topic}-{p} has no leader");
                        failed.push((topic, p));
                    }
                }
            }
            for (leader, tps) in by_leader {
                if leader == me {
                    for (topic, p) in tps {
                        match coordinator
                            .write_marker_here(
                                &topic,
                                p,
                                producer_id,
                                producer_epoch,
                                commit,
                                coordinator_epoch,
                            )
                            .await
                        {
                            Ok(()) => {}
                            Err(
                                PartitionError::UnknownTopic(_) | PartitionError::TopicDeleted(_),
                            ) => {}
                            Err(e) => {
                                debug!(topic, partition = p, error = %e, "marker not written; retrying");
                                last_error = e.to_string();
                                failed.push((topic, p));
                            }
                        }
                    }
                    continue;
                }
                let Some(addr) = coordinator.manager().replication_address(leader) else {
                    last_error = format!("broker {leader} has no known replication address");
                    failed.extend(tps);
                    continue;
                };
                let request = pb::WriteMarkersRequest {
                    producer_id,
                    producer_epoch: i32::from(producer_epoch),
                    commit,
                    coordinator_epoch,
                    partitions: tps
                        .iter()
                        .map(|(t, p)| pb::TopicPartition {
                            topic: t.clone(),
                            partition: *p,
                        })
                        .collect(),
                };
                let answer = match self.client(&addr) {
                    Ok(mut c) => c.write_markers(request).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                match answer {
                    Ok(resp) => {
                        for r in resp.into_inner().results {
                            let unknown = r.error_code
                                == i32::from(ResponseError::UnknownTopicOrPartition.code());
                            if r.error_code != 0 && !unknown {
                                if let Some(tp) = r.partition {
                                    debug!(
                                        topic = tp.topic,
                                        partition = tp.partition,
                                        error = r.error_message,
                                        "marker not written; retrying"
                                    );
                                    last_error.clone_from(&r.error_message);
                                    failed.push((tp.topic, tp.partition));
                                }
                            }
                        }
                    }
                    Err(e) => {
                        debug!(broker = leader, error = e, "WriteMarkers failed; retrying");
                        last_error = format!("broker {leader}: {e}");
                        self.forget(&addr);
                        failed.extend(tps);
                    }
                }
            }
            if failed.is_empty() {
                return true;
            }
            rounds += 1;
            if rounds % WARN_EVERY == 0 {
                warn!(
                    producer_id,
                    producer_epoch,
                    commit,
                    rounds,
                    partitions = ?failed,
                    error = last_error,
                    "transaction markers still not written; retrying"
                );
            }
            partitions = failed;
            tokio::select! {
                () = stop.cancelled() => return false,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    }

    /// Asks the coordinator broker `leader` (at `addr`) to check or add
    /// partitions of a transaction.
    pub async fn check_remote(
        &self,
        addr: &str,
        transactional_id: &str,
        producer: ProducerRef,
        partitions: &[(String, i32)],
        add: bool,
    ) -> Result<(), TxnError> {
        let request = pb::CheckPartitionsRequest {
            transactional_id: transactional_id.to_owned(),
            producer_id: producer.producer_id,
            producer_epoch: i32::from(producer.producer_epoch),
            partitions: partitions
                .iter()
                .map(|(t, p)| pb::TopicPartition {
                    topic: t.clone(),
                    partition: *p,
                })
                .collect(),
            add,
        };
        let mut client = self.client(addr).map_err(unavailable)?;
        let resp = client
            .check_partitions(request)
            .await
            .map_err(|e| {
                self.forget(addr);
                unavailable(e.to_string())
            })?
            .into_inner();
        if resp.error_code == 0 {
            return Ok(());
        }
        let code = i16::try_from(resp.error_code)
            .ok()
            .and_then(ResponseError::try_from_code)
            .unwrap_or(ResponseError::UnknownServerError);
        Err(TxnError {
            code,
            message: resp.error_message,
        })
    }
}

fn unavailable(message: String) -> TxnError {
    TxnError {
        code: ResponseError::NotCoordinator,
        message: format!("the transaction coordinator could not be reached: {message}"),
    }
}
