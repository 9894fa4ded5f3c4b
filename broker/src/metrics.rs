//! Prometheus metrics of one broker.
//!
//! [`Metrics`] owns its own [`Registry`] (not the process-global default),
//! so tests can run several brokers in one process. Counters and histograms
//! are updated where things happen (the gRPC adapter records requests, the
//! partition layer records bytes, records and fsyncs, background tasks
//! record retention and compaction); per-partition gauges (log size, log
//! end offset, high watermark) are refreshed from the partitions right
//! before each scrape of `/metrics` (see [`crate::http`]).

use prometheus::{
    CounterVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};
use rill_process::metrics::{latency_buckets, register};

/// Every metric the broker exports. Names are listed in `docs/broker.md`.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Client API requests by `api` and `outcome` (`ok` or an error label).
    pub requests: IntCounterVec,
    /// Client API latency by `api` and `outcome`.
    pub request_seconds: HistogramVec,
    /// Failed requests by `api` and error `kind` (storage errors use
    /// `LogError::metric_label`).
    pub errors: IntCounterVec,
    /// Record batch bytes accepted by produce, by topic.
    pub bytes_in: IntCounterVec,
    /// Record batch bytes returned by fetch, by topic.
    pub bytes_out: IntCounterVec,
    /// Records appended, by topic.
    pub records_appended: IntCounterVec,
    /// fsyncs by `kind`: `group_commit` (flush=fsync produce), `interval`,
    /// or `syncfs` (one batched interval flush of many partitions).
    pub fsyncs: IntCounterVec,
    /// Time producers waited for durability (flush=fsync), and interval
    /// fsync duration, by `kind`.
    pub fsync_seconds: HistogramVec,
    /// Segments deleted by retention, by topic.
    pub retention_segments_deleted: IntCounterVec,
    /// Bytes deleted by retention, by topic.
    pub retention_bytes_deleted: IntCounterVec,
    /// Records removed by compaction, by topic.
    pub compaction_records_removed: IntCounterVec,
    /// Background task failures by `task` and error `kind`.
    pub background_errors: IntCounterVec,
    /// Fetches currently long-polling for data.
    pub fetches_waiting: IntGauge,
    /// Bytes on disk per partition.
    pub log_size_bytes: IntGaugeVec,
    /// Log end offset (next offset to assign) per partition.
    pub log_end_offset: IntGaugeVec,
    /// Log start offset per partition.
    pub log_start_offset: IntGaugeVec,
    /// High watermark (last offset visible to consumers + 1) per partition.
    pub high_watermark: IntGaugeVec,
    /// Times a local partition replica became or stopped being leader.
    pub leadership_changes: IntCounter,
    /// Round trips of this broker's lease heartbeats to the controller, by
    /// `outcome` (`ok`, `error`).
    pub controller_heartbeat_seconds: HistogramVec,
    /// Time to apply one metadata update to the local replicas, by `kind`
    /// (`snapshot`, `delta`).
    pub metadata_apply_seconds: HistogramVec,
    /// ISR shrinks and expands committed for partitions led here.
    pub isr_shrinks: IntCounter,
    pub isr_expands: IntCounter,
    /// Bytes fetched by replicas a reassignment is adding (throttled by
    /// `--reassignment-throttle-bytes-per-sec`).
    pub replication_throttled_bytes: IntCounter,
    /// Partitions led here whose ISR is smaller than their replica set.
    pub under_replicated_partitions: IntGauge,
    /// Partitions led here whose ISR is smaller than their
    /// `min.insync.replicas`: acks=all produces to them fail.
    pub under_min_isr_partitions: IntGauge,
    /// Bytes an unprivileged writer may still use on the data directory's
    /// filesystem.
    pub disk_free_bytes: IntGauge,
    /// Size of the data directory's filesystem.
    pub disk_total_bytes: IntGauge,
    /// Consumer groups coordinated here, by `state`.
    pub consumer_groups: IntGaugeVec,
    /// Group rebalances completed here (new generations).
    pub group_rebalances: IntCounter,
    /// Offset commits written here.
    pub group_offset_commits: IntCounter,
    /// ConsumerGroupHeartbeats answered without error here.
    pub group_consumer_heartbeats: IntCounter,
    /// `__consumer_offsets` partitions led here, by `status` (loading, active).
    pub group_coordinator_partitions: IntGaugeVec,
    /// Committed offset lag behind the high watermark, by `group`, `topic`,
    /// `partition`, for partitions with a replica on the coordinator.
    pub consumer_group_lag: IntGaugeVec,
    /// Kafka protocol requests by `api` (Produce, Fetch, ...).
    pub kafka_requests: IntCounterVec,
    /// Kafka protocol request latency by `api` (long polls included).
    pub kafka_request_seconds: HistogramVec,
    /// Kafka error codes returned, by `api` and `error` (per partition or
    /// topic where the response has one per partition or topic).
    pub kafka_errors: IntCounterVec,
    /// Bytes of Kafka request frames received.
    pub kafka_bytes_in: IntCounter,
    /// Bytes of Kafka response frames sent.
    pub kafka_bytes_out: IntCounter,
    /// Open Kafka client connections.
    pub kafka_connections: IntGauge,
    /// Kafka request bytes read and not yet answered (of the
    /// `--kafka-queued-request-bytes` budget).
    pub kafka_request_memory_bytes: IntGauge,
    /// Kafka requests that waited for the request byte budget.
    pub kafka_request_memory_waits: IntCounter,
    /// Incremental fetch sessions (KIP-227) kept.
    pub kafka_fetch_sessions: IntGauge,
    /// Share partitions (KIP-932) loaded at this broker.
    pub share_partitions: IntGauge,
    /// Share sessions kept by this broker.
    pub share_sessions: IntGauge,
    /// Records acquired for share consumers (each delivery counts).
    pub share_acquired_records: IntCounter,
    /// Records acknowledged by share consumers, by type.
    pub share_acknowledged_records: IntCounterVec,
    /// Records whose acquisition lock expired.
    pub share_lock_expired_records: IntCounter,
    /// Kafka connections closed for a bad frame or request, by `reason`.
    pub kafka_connection_errors: IntCounterVec,
    /// SASL authentications, by `mechanism` and `result` (success, failure).
    pub kafka_authentications: IntCounterVec,
    /// Kafka requests answered with a throttle time, by the `quota` that
    /// set it (produce, fetch, request).
    pub kafka_throttled_requests: IntCounterVec,
    /// Seconds Kafka clients were throttled for, by `quota`.
    pub kafka_throttle_seconds: CounterVec,
    /// Transactional ids coordinated here, by `state`.
    pub transactions: IntGaugeVec,
    /// Transaction state writes by the `state` written.
    pub txn_state_transitions: IntCounterVec,
    /// Transaction markers written in partitions led here, by `kind`
    /// (commit, abort).
    pub txn_markers: IntCounterVec,
    /// Seconds from a transaction's prepare to all its markers written, by
    /// `kind`.
    pub txn_marker_seconds: HistogramVec,
    /// Transactions aborted by the coordinator for exceeding their timeout.
    pub txn_timeouts: IntCounter,
}

const PARTITION_LABELS: &[&str] = &["topic", "partition"];

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    register(registry, c)
}

fn plain_counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric definition");
    register(registry, c)
}

fn plain_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric definition");
    register(registry, g)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGaugeVec {
    let g =
        IntGaugeVec::new(Opts::new(name, help), PARTITION_LABELS).expect("valid metric definition");
    register(registry, g)
}

fn labelled_gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    register(registry, g)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric definition");
    register(registry, h)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        Self {
            requests: counter(
                &r,
                "rill_requests_total",
                "Client API requests by API and outcome.",
                &["api", "outcome"],
            ),
            request_seconds: histogram(
                &r,
                "rill_request_duration_seconds",
                "Client API request latency by API and outcome.",
                &["api", "outcome"],
                latency_buckets(),
            ),
            errors: counter(
                &r,
                "rill_errors_total",
                "Failed client API requests by API and error kind.",
                &["api", "kind"],
            ),
            bytes_in: counter(
                &r,
                "rill_bytes_in_total",
                "Record batch bytes appended by produce requests.",
                &["topic"],
            ),
            bytes_out: counter(
                &r,
                "rill_bytes_out_total",
                "Record batch bytes returned by fetch requests.",
                &["topic"],
            ),
            records_appended: counter(
                &r,
                "rill_records_appended_total",
                "Records appended by produce requests.",
                &["topic"],
            ),
            fsyncs: counter(
                &r,
                "rill_fsyncs_total",
                "fsyncs of partition logs by kind (group_commit, interval; syncfs: one sync of the data directory's filesystem covering many partitions' interval flushes).",
                &["kind"],
            ),
            fsync_seconds: histogram(
                &r,
                "rill_fsync_duration_seconds",
                "Durability wait of flush=fsync produce requests (kind=group_commit) and interval fsync time (kind=interval).",
                &["kind"],
                latency_buckets(),
            ),
            retention_segments_deleted: counter(
                &r,
                "rill_retention_segments_deleted_total",
                "Segments deleted by retention.",
                &["topic"],
            ),
            retention_bytes_deleted: counter(
                &r,
                "rill_retention_bytes_deleted_total",
                "Bytes deleted by retention.",
                &["topic"],
            ),
            compaction_records_removed: counter(
                &r,
                "rill_compaction_records_removed_total",
                "Records removed by log compaction.",
                &["topic"],
            ),
            background_errors: counter(
                &r,
                "rill_background_errors_total",
                "Failures of background tasks (flush, retention, compaction) by task and error kind.",
                &["task", "kind"],
            ),
            fetches_waiting: plain_gauge(
                &r,
                "rill_fetches_waiting",
                "Fetch requests currently long-polling for data.",
            ),
            log_size_bytes: gauge(
                &r,
                "rill_log_size_bytes",
                "Bytes of all segments of a partition.",
            ),
            log_end_offset: gauge(
                &r,
                "rill_log_end_offset",
                "Offset the next appended record gets.",
            ),
            log_start_offset: gauge(&r, "rill_log_start_offset", "First offset still stored."),
            high_watermark: gauge(
                &r,
                "rill_high_watermark",
                "Offset below which records are visible to consumers.",
            ),
            leadership_changes: plain_counter(
                &r,
                "rill_leadership_changes_total",
                "Times a local partition replica became or stopped being leader.",
            ),
            controller_heartbeat_seconds: histogram(
                &r,
                "rill_controller_heartbeat_duration_seconds",
                "Round trip of this broker's lease heartbeats to the metadata controller, by outcome.",
                &["outcome"],
                latency_buckets(),
            ),
            metadata_apply_seconds: histogram(
                &r,
                "rill_metadata_apply_duration_seconds",
                "Time to apply one metadata update from the controller to the local replicas, by kind (snapshot, delta).",
                &["kind"],
                latency_buckets(),
            ),
            isr_shrinks: plain_counter(
                &r,
                "rill_isr_shrinks_total",
                "ISR shrinks committed for partitions led by this broker.",
            ),
            isr_expands: plain_counter(
                &r,
                "rill_isr_expands_total",
                "ISR expands committed for partitions led by this broker.",
            ),
            replication_throttled_bytes: plain_counter(
                &r,
                "rill_replication_throttled_bytes_total",
                "Bytes fetched by replicas being added by a reassignment, which --reassignment-throttle-bytes-per-sec limits.",
            ),
            under_replicated_partitions: plain_gauge(
                &r,
                "rill_under_replicated_partitions",
                "Partitions led by this broker whose ISR is smaller than their replica set.",
            ),
            under_min_isr_partitions: plain_gauge(
                &r,
                "rill_under_min_isr_partitions",
                "Partitions led by this broker whose ISR is smaller than min.insync.replicas.",
            ),
            disk_free_bytes: plain_gauge(
                &r,
                "rill_disk_free_bytes",
                "Bytes still available to the broker on its data directory's filesystem.",
            ),
            disk_total_bytes: plain_gauge(
                &r,
                "rill_disk_total_bytes",
                "Size in bytes of the data directory's filesystem.",
            ),
            consumer_groups: labelled_gauge(
                &r,
                "rill_consumer_groups",
                "Consumer groups coordinated by this broker, by state.",
                &["state"],
            ),
            group_rebalances: plain_counter(
                &r,
                "rill_group_rebalances_total",
                "Consumer group rebalances completed by this broker (new generations).",
            ),
            group_offset_commits: plain_counter(
                &r,
                "rill_group_offset_commits_total",
                "Offset commit requests written by this broker.",
            ),
            group_consumer_heartbeats: plain_counter(
                &r,
                "rill_group_consumer_heartbeats_total",
                "Consumer-protocol (KIP-848) heartbeats answered without error by this broker.",
            ),
            group_coordinator_partitions: labelled_gauge(
                &r,
                "rill_group_coordinator_partitions",
                "__consumer_offsets partitions led by this broker, by status (loading, active).",
                &["status"],
            ),
            consumer_group_lag: labelled_gauge(
                &r,
                "rill_consumer_group_lag",
                "High watermark minus committed offset, for partitions with a replica on the group's coordinator.",
                &["group", "topic", "partition"],
            ),
            kafka_requests: counter(
                &r,
                "rill_kafka_requests_total",
                "Kafka protocol requests by API.",
                &["api"],
            ),
            kafka_request_seconds: histogram(
                &r,
                "rill_kafka_request_duration_seconds",
                "Kafka protocol request latency by API (long polls included).",
                &["api"],
                latency_buckets(),
            ),
            kafka_errors: counter(
                &r,
                "rill_kafka_errors_total",
                "Kafka error codes returned, by API and error name.",
                &["api", "error"],
            ),
            kafka_fetch_sessions: plain_gauge(
                &r,
                "rill_kafka_fetch_sessions",
                "Incremental fetch sessions (KIP-227) kept by this broker.",
            ),
            share_partitions: plain_gauge(
                &r,
                "rill_share_partitions",
                "Share partitions (KIP-932) loaded at this broker, one per share group and partition led here.",
            ),
            share_sessions: plain_gauge(
                &r,
                "rill_share_sessions",
                "Share sessions of share consumers fetching from this broker.",
            ),
            share_acquired_records: plain_counter(
                &r,
                "rill_share_acquired_records_total",
                "Records acquired for share consumers; a redelivery counts again.",
            ),
            share_acknowledged_records: counter(
                &r,
                "rill_share_acknowledged_records_total",
                "Records acknowledged by share consumers and stored, by type (accept, release, reject, gap).",
                &["type"],
            ),
            share_lock_expired_records: plain_counter(
                &r,
                "rill_share_lock_expired_records_total",
                "Records whose acquisition lock expired before they were acknowledged.",
            ),
            kafka_bytes_in: plain_counter(
                &r,
                "rill_kafka_bytes_in_total",
                "Bytes of Kafka request frames received.",
            ),
            kafka_bytes_out: plain_counter(
                &r,
                "rill_kafka_bytes_out_total",
                "Bytes of Kafka response frames sent.",
            ),
            kafka_connections: plain_gauge(
                &r,
                "rill_kafka_connections",
                "Open Kafka client connections.",
            ),
            kafka_request_memory_bytes: plain_gauge(
                &r,
                "rill_kafka_request_memory_bytes",
                "Kafka request bytes read and not yet answered (budget: --kafka-queued-request-bytes).",
            ),
            kafka_request_memory_waits: plain_counter(
                &r,
                "rill_kafka_request_memory_waits_total",
                "Kafka requests whose connection waited for the request byte budget before reading them.",
            ),
            kafka_connection_errors: counter(
                &r,
                "rill_kafka_connection_errors_total",
                "Kafka connections closed for an oversized, malformed or unsupported request, by reason.",
                &["reason"],
            ),
            kafka_authentications: counter(
                &r,
                "rill_kafka_authentications_total",
                "SASL authentications of Kafka clients, by mechanism and result (success, failure).",
                &["mechanism", "result"],
            ),
            kafka_throttled_requests: counter(
                &r,
                "rill_kafka_throttled_requests_total",
                "Kafka requests answered with a throttle time because a client quota was exceeded, by quota (produce, fetch, request).",
                &["quota"],
            ),
            kafka_throttle_seconds: register(
                &r,
                CounterVec::new(
                    Opts::new(
                        "rill_kafka_throttle_seconds_total",
                        "Seconds Kafka clients were throttled for exceeding a client quota, by quota (produce, fetch, request).",
                    ),
                    &["quota"],
                )
                .expect("valid metric definition"),
            ),
            transactions: labelled_gauge(
                &r,
                "rill_transactions",
                "Transactional ids coordinated by this broker, by state.",
                &["state"],
            ),
            txn_state_transitions: counter(
                &r,
                "rill_transaction_state_writes_total",
                "Transaction state records written by this broker's coordinator, by the state written.",
                &["state"],
            ),
            txn_markers: counter(
                &r,
                "rill_transaction_markers_total",
                "Transaction markers written in partitions led by this broker, by kind (commit, abort).",
                &["kind"],
            ),
            txn_marker_seconds: histogram(
                &r,
                "rill_transaction_marker_seconds",
                "Seconds from a transaction's prepare record to its last marker, by kind (commit, abort).",
                &["kind"],
                vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            ),
            txn_timeouts: plain_counter(
                &r,
                "rill_transaction_timeouts_total",
                "Transactions aborted by this broker's coordinator for exceeding their timeout.",
            ),
            registry: r,
        }
    }

    /// Forgets the per-topic and per-partition series of a deleted topic.
    pub fn remove_topic(&self, topic: &str, partitions: i32) {
        for vec in [
            &self.bytes_in,
            &self.bytes_out,
            &self.records_appended,
            &self.retention_segments_deleted,
            &self.retention_bytes_deleted,
            &self.compaction_records_removed,
        ] {
            let _ = vec.remove_label_values(&[topic]);
        }
        for p in 0..partitions {
            let p = p.to_string();
            for g in [
                &self.log_size_bytes,
                &self.log_end_offset,
                &self.log_start_offset,
                &self.high_watermark,
            ] {
                let _ = g.remove_label_values(&[topic, &p]);
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        rill_process::metrics::encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_two_brokers_in_one_process_when_metrics_created_should_not_collide() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.requests.with_label_values(&["Produce", "ok"]).inc();
        assert!(
            a.encode()
                .contains("rill_requests_total{api=\"Produce\",outcome=\"ok\"} 1")
        );
        assert!(!b.encode().contains("api=\"Produce\""));
    }
}
