//! Client quotas applied to Kafka requests, as Kafka applies them.
//!
//! Each request counts against the quotas of its user (the connection's
//! principal name; `ANONYMOUS` without authentication) and client id
//! ([`crate::quota::QuotaManager`] finds them and measures the rates):
//! - Produce: the request's bytes against `producer_byte_rate`;
//! - Fetch: the response's bytes against `consumer_byte_rate`; a fetch is
//!   first cut to the bytes the quota allows at once (all windows but the
//!   current one), and a fetch that would exceed the quota is answered
//!   empty (its bytes are not counted), so the consumer reads them again
//!   after its throttle;
//! - every request but a produce with acks=0: the time its handler ran
//!   (polled, not waiting) against `request_percentage`.
//!
//! When a quota is exceeded the answer carries `throttle_time_ms` (the
//! largest throttle of the quotas it exceeded), and the connection reads
//! no further request until that time has passed (KIP-219: the broker
//! answers first, then mutes the connection; clients also hold back on
//! their own). Throttles are counted in the `rill_kafka_throttled_requests_total`
//! and `rill_kafka_throttle_seconds_total` metrics by quota.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;
use rill_proto::quota::QuotaKey;

use super::KafkaContext;
use super::authz::Caller;
use super::frame::Reply;

/// A response with Kafka's `throttle_time_ms` field.
pub trait ThrottleTime {
    fn set_throttle_time_ms(&mut self, ms: i32);
}

macro_rules! throttle_time {
    ($($resp:ty),* $(,)?) => {$(
        impl ThrottleTime for $resp {
            fn set_throttle_time_ms(&mut self, ms: i32) {
                self.throttle_time_ms = ms;
            }
        }
    )*};
}

throttle_time! {
    ProduceResponse, FetchResponse, ListOffsetsResponse, MetadataResponse,
    ApiVersionsResponse, CreateTopicsResponse, DeleteTopicsResponse,
    InitProducerIdResponse, OffsetForLeaderEpochResponse, DescribeConfigsResponse,
    CreatePartitionsResponse, DescribeClusterResponse, AlterConfigsResponse,
    IncrementalAlterConfigsResponse, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsResponse, ElectLeadersResponse, DescribeLogDirsResponse,
    CreateAclsResponse, DescribeAclsResponse, DeleteAclsResponse,
    DescribeClientQuotasResponse, AlterClientQuotasResponse,
    FindCoordinatorResponse, JoinGroupResponse, SyncGroupResponse, HeartbeatResponse,
    LeaveGroupResponse, OffsetCommitResponse, OffsetFetchResponse, ListGroupsResponse,
    DescribeGroupsResponse, DeleteGroupsResponse,
    AddPartitionsToTxnResponse, AddOffsetsToTxnResponse, EndTxnResponse, TxnOffsetCommitResponse,
    DescribeTransactionsResponse, ListTransactionsResponse, DescribeProducersResponse,
    DescribeTopicPartitionsResponse, OffsetDeleteResponse, ConsumerGroupHeartbeatResponse,
    ConsumerGroupDescribeResponse, DeleteRecordsResponse, ShareFetchResponse,
    ShareAcknowledgeResponse, ShareGroupHeartbeatResponse, ShareGroupDescribeResponse,
    DescribeShareGroupOffsetsResponse, AlterShareGroupOffsetsResponse,
    DeleteShareGroupOffsetsResponse,
}

/// How a request type is charged, beyond the request-time quota.
pub trait Charge {
    /// Whether the request's bytes count against `producer_byte_rate`.
    const PRODUCE: bool = false;

    /// Cuts the request to what the client's quotas allow at once (a
    /// fetch's `max_bytes`).
    fn limit(&mut self, _meter: &Meter<'_>) {}

    /// Whether the request-time quota applies (not to acks=0 produces).
    fn counts_request_time(&self) -> bool {
        true
    }
}

macro_rules! plain_charge {
    ($($req:ty),* $(,)?) => {$( impl Charge for $req {} )*};
}

plain_charge! {
    ListOffsetsRequest, MetadataRequest, ApiVersionsRequest, CreateTopicsRequest,
    DeleteTopicsRequest, InitProducerIdRequest, OffsetForLeaderEpochRequest,
    DescribeConfigsRequest, CreatePartitionsRequest, DescribeClusterRequest,
    AlterConfigsRequest, IncrementalAlterConfigsRequest,
    AlterPartitionReassignmentsRequest, ListPartitionReassignmentsRequest,
    ElectLeadersRequest, DescribeLogDirsRequest, CreateAclsRequest, DescribeAclsRequest,
    DeleteAclsRequest, DescribeClientQuotasRequest, AlterClientQuotasRequest,
    FindCoordinatorRequest, JoinGroupRequest, SyncGroupRequest, HeartbeatRequest,
    LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest, ListGroupsRequest,
    DescribeGroupsRequest, DeleteGroupsRequest,
    AddPartitionsToTxnRequest, AddOffsetsToTxnRequest, EndTxnRequest, TxnOffsetCommitRequest,
    DescribeTransactionsRequest, ListTransactionsRequest, DescribeProducersRequest,
    WriteTxnMarkersRequest, DescribeTopicPartitionsRequest, OffsetDeleteRequest,
    ConsumerGroupHeartbeatRequest, ConsumerGroupDescribeRequest, DeleteRecordsRequest,
    ShareAcknowledgeRequest, ShareGroupHeartbeatRequest, ShareGroupDescribeRequest,
    DescribeShareGroupOffsetsRequest, AlterShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsRequest,
}

impl Charge for ProduceRequest {
    const PRODUCE: bool = true;

    fn counts_request_time(&self) -> bool {
        self.acks != 0
    }
}

/// A share fetch is cut like a fetch; its acquired records are never
/// withheld (they stay locked to the consumer), so its bytes are charged
/// and the next request waits instead.
impl Charge for ShareFetchRequest {
    fn limit(&mut self, meter: &Meter<'_>) {
        if let Some(most) = meter.max_in_window(QuotaKey::ConsumerByteRate) {
            let most = most.min(f64::from(i32::MAX)) as i32;
            self.max_bytes = self.max_bytes.min(most.max(1));
        }
    }
}

impl Charged for ShareFetchResponse {
    fn fetched_bytes(&self, version: i16) -> Option<usize> {
        self.compute_size(version).ok()
    }
}

impl Charge for FetchRequest {
    fn limit(&mut self, meter: &Meter<'_>) {
        if let Some(most) = meter.max_in_window(QuotaKey::ConsumerByteRate) {
            let most = most.min(f64::from(i32::MAX)) as i32;
            self.max_bytes = self.max_bytes.min(most);
            self.min_bytes = self.min_bytes.min(self.max_bytes);
        }
    }
}

/// How a response is charged.
pub trait Charged: ThrottleTime + Sized {
    /// Bytes that count against `consumer_byte_rate` (a fetch response's).
    fn fetched_bytes(&self, _version: i16) -> Option<usize> {
        None
    }

    /// The answer sent instead of this one when the fetched bytes exceed
    /// the quota.
    fn emptied(self) -> Self {
        self
    }
}

macro_rules! plain_charged {
    ($($resp:ty),* $(,)?) => {$( impl Charged for $resp {} )*};
}

plain_charged! {
    ProduceResponse, ListOffsetsResponse, MetadataResponse,
    ApiVersionsResponse, CreateTopicsResponse, DeleteTopicsResponse,
    InitProducerIdResponse, OffsetForLeaderEpochResponse, DescribeConfigsResponse,
    CreatePartitionsResponse, DescribeClusterResponse, AlterConfigsResponse,
    IncrementalAlterConfigsResponse, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsResponse, ElectLeadersResponse, DescribeLogDirsResponse,
    CreateAclsResponse, DescribeAclsResponse, DeleteAclsResponse,
    DescribeClientQuotasResponse, AlterClientQuotasResponse,
    FindCoordinatorResponse, JoinGroupResponse, SyncGroupResponse, HeartbeatResponse,
    LeaveGroupResponse, OffsetCommitResponse, OffsetFetchResponse, ListGroupsResponse,
    DescribeGroupsResponse, DeleteGroupsResponse,
    AddPartitionsToTxnResponse, AddOffsetsToTxnResponse, EndTxnResponse, TxnOffsetCommitResponse,
    DescribeTransactionsResponse, ListTransactionsResponse, DescribeProducersResponse,
    WriteTxnMarkersResponse, DescribeTopicPartitionsResponse, OffsetDeleteResponse,
    ConsumerGroupHeartbeatResponse, ConsumerGroupDescribeResponse, DeleteRecordsResponse,
    ShareAcknowledgeResponse, ShareGroupHeartbeatResponse, ShareGroupDescribeResponse,
    DescribeShareGroupOffsetsResponse, AlterShareGroupOffsetsResponse,
    DeleteShareGroupOffsetsResponse,
}

/// WriteTxnMarkers has no throttle field (an inter-broker API in Kafka).
impl ThrottleTime for WriteTxnMarkersResponse {
    fn set_throttle_time_ms(&mut self, _ms: i32) {}
}

impl Charged for FetchResponse {
    fn fetched_bytes(&self, version: i16) -> Option<usize> {
        self.compute_size(version).ok()
    }

    /// No data (KIP-219: clients take an empty answer with a throttle
    /// time as "come back later").
    fn emptied(self) -> Self {
        FetchResponse::default()
            .with_error_code(self.error_code)
            .with_session_id(self.session_id)
    }
}

/// Charges one request of one caller against the client quotas.
pub struct Meter<'a> {
    ctx: &'a KafkaContext,
    user: &'a str,
    client_id: &'a str,
    /// Bytes of the request frame.
    request_bytes: usize,
}

/// What the quotas decided for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttle {
    /// When the connection may read its next request again.
    pub until: Option<Instant>,
}

impl<'a> Meter<'a> {
    pub fn new(
        ctx: &'a KafkaContext,
        caller: &'a Caller,
        header: &'a RequestHeader,
        request_bytes: usize,
    ) -> Self {
        Self {
            ctx,
            user: &caller.principal.name,
            client_id: header.client_id.as_ref().map_or("", |c| c.as_str()),
            request_bytes,
        }
    }

    fn max_in_window(&self, key: QuotaKey) -> Option<f64> {
        self.ctx
            .quotas
            .manager
            .max_value_in_window(key, self.user, self.client_id)
    }

    fn record(&self, key: QuotaKey, value: f64) -> Duration {
        self.ctx
            .quotas
            .manager
            .record(key, self.user, self.client_id, value)
    }

    /// Records what the answered request cost and sets the throttle time
    /// on its answer: `busy` is the time its handler ran.
    pub fn charge<Req: Charge, Resp: Charged>(
        &self,
        reply: Reply<Resp>,
        version: i16,
        busy: Duration,
        counts_request_time: bool,
    ) -> (Reply<Resp>, Throttle) {
        let manager = &self.ctx.quotas.manager;
        // (throttle, the quota that set it)
        let mut worst = (Duration::ZERO, "");
        let consider = |worst: &mut (Duration, &'static str), t: Duration, quota: &'static str| {
            if t > worst.0 {
                *worst = (t, quota);
            }
        };
        if Req::PRODUCE && manager.enforces(QuotaKey::ProducerByteRate) {
            consider(
                &mut worst,
                self.record(QuotaKey::ProducerByteRate, self.request_bytes as f64),
                "produce",
            );
        }
        if counts_request_time && manager.enforces(QuotaKey::RequestPercentage) {
            // Percent of one thread, times seconds.
            let percent_seconds = busy.as_secs_f64() * 100.0;
            consider(
                &mut worst,
                self.record(QuotaKey::RequestPercentage, percent_seconds),
                "request",
            );
        }
        let mut reply = reply;
        if manager.enforces(QuotaKey::ConsumerByteRate)
            && let Some(bytes) = reply_body(&reply).and_then(|r| r.fetched_bytes(version))
        {
            let t = self.record(QuotaKey::ConsumerByteRate, bytes as f64);
            if t > Duration::ZERO || worst.0 > Duration::ZERO {
                // Answered empty: the bytes are not sent, so not counted.
                manager.unrecord(
                    QuotaKey::ConsumerByteRate,
                    self.user,
                    self.client_id,
                    bytes as f64,
                );
                reply = map_body(reply, Charged::emptied);
            }
            consider(&mut worst, t, "fetch");
        }
        let (time, quota) = worst;
        if time.is_zero() {
            return (reply, Throttle::default());
        }
        let ms = i32::try_from(time.as_millis()).unwrap_or(i32::MAX);
        let reply = map_body(reply, |mut r| {
            r.set_throttle_time_ms(ms);
            r
        });
        let metrics = &self.ctx.metrics;
        metrics
            .kafka_throttled_requests
            .with_label_values(&[quota])
            .inc();
        metrics
            .kafka_throttle_seconds
            .with_label_values(&[quota])
            .inc_by(time.as_secs_f64());
        tracing::debug!(
            user = self.user,
            client_id = self.client_id,
            quota,
            throttle_ms = ms,
            "client quota exceeded"
        );
        (
            reply,
            Throttle {
                until: Some(Instant::now() + time),
            },
        )
    }
}

fn reply_body<R>(reply: &Reply<R>) -> Option<&R> {
    match reply {
        Reply::Body(r) | Reply::Sharing(r, _) => Some(r),
        Reply::Silent => None,
    }
}

fn map_body<R>(reply: Reply<R>, f: impl FnOnce(R) -> R) -> Reply<R> {
    match reply {
        Reply::Body(r) => Reply::Body(f(r)),
        Reply::Sharing(r, shared) => Reply::Sharing(f(r), shared),
        Reply::Silent => Reply::Silent,
    }
}

/// A future with the time it spent being polled (running, not waiting).
pub struct Timed<F> {
    inner: Pin<Box<F>>,
    busy: Duration,
}

/// Runs `future`, measuring the time it runs.
pub fn timed<F: Future>(future: F) -> Timed<F> {
    Timed {
        inner: Box::pin(future),
        busy: Duration::ZERO,
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let started = Instant::now();
        let polled = self.inner.as_mut().poll(cx);
        self.busy += started.elapsed();
        match polled {
            Poll::Ready(out) => Poll::Ready((out, self.busy)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn given_a_future_that_waits_when_timed_then_only_its_running_time_counts() {
        let (out, busy) = timed(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::thread::sleep(Duration::from_millis(20));
            7
        })
        .await;
        assert_eq!(out, 7);
        assert!(busy >= Duration::from_millis(20), "{busy:?}");
        assert!(busy < Duration::from_millis(50), "{busy:?}");
    }

    #[test]
    fn given_a_throttled_fetch_when_emptied_then_it_carries_no_data() {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        let full = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default().with_partitions(vec![
                PartitionData::default().with_records(Some(bytes::Bytes::from_static(&[0; 100]))),
            ]),
        ]);
        assert!(full.fetched_bytes(12).unwrap() > 100);
        let empty = full.emptied();
        assert!(empty.responses.is_empty());
        assert!(empty.fetched_bytes(12).unwrap() < 100);
    }
}
