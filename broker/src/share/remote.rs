//! Where share-partition states and group configs are stored: with the
//! group's coordinator, called directly when it runs on this broker and
//! over `rill.share.v1.ShareStates` (the replication port, mutual TLS when
//! configured) when another broker coordinates the group. The gRPC adapter
//! of that service is here too.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use rill_process::tls::{InternalTls, grpc_uri};
use rill_proto::share as pb;
use rill_proto::share::share_states_client::ShareStatesClient;
use rill_proto::share::share_states_server::{ShareStates, ShareStatesServer};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::group::error::GroupErrorCode;
use crate::group::records::ShareStateValue;
use crate::group::state::ShareConfig;
use crate::group::{GroupCoordinator, GroupError};

/// Longest one remote call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings of a share partition that come from its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSettings {
    pub lock_ms: i32,
    pub delivery_limit: i16,
    pub max_record_locks: i32,
    pub earliest: bool,
}

impl From<&ShareConfig> for GroupSettings {
    fn from(c: &ShareConfig) -> Self {
        Self {
            lock_ms: c.record_lock_duration_ms,
            delivery_limit: c.delivery_count_limit,
            max_record_locks: c.partition_max_record_locks,
            earliest: c.auto_offset_reset_earliest,
        }
    }
}

fn settings_pb(s: GroupSettings) -> pb::ShareSettings {
    pb::ShareSettings {
        record_lock_duration_ms: s.lock_ms,
        delivery_count_limit: i32::from(s.delivery_limit),
        auto_offset_reset_earliest: s.earliest,
        partition_max_record_locks: s.max_record_locks,
    }
}

fn settings_of(s: Option<pb::ShareSettings>) -> GroupSettings {
    let s = s.unwrap_or_default();
    GroupSettings {
        lock_ms: s.record_lock_duration_ms,
        delivery_limit: i16::try_from(s.delivery_count_limit).unwrap_or(i16::MAX),
        max_record_locks: s.partition_max_record_locks,
        earliest: s.auto_offset_reset_earliest,
    }
}

fn state_pb(v: &ShareStateValue) -> pb::ShareState {
    pb::ShareState {
        state_epoch: v.state_epoch,
        leader_epoch: v.leader_epoch,
        start_offset: v.start,
        end_offset: v.end,
        available: v
            .available
            .iter()
            .map(|&(first, last, count)| pb::AvailableRange {
                first_offset: first,
                last_offset: last,
                delivery_count: i32::from(count),
            })
            .collect(),
    }
}

fn state_of(s: pb::ShareState) -> ShareStateValue {
    ShareStateValue {
        state_epoch: s.state_epoch,
        leader_epoch: s.leader_epoch,
        start: s.start_offset,
        end: s.end_offset,
        available: s
            .available
            .into_iter()
            .map(|r| {
                (
                    r.first_offset,
                    r.last_offset,
                    i16::try_from(r.delivery_count).unwrap_or(i16::MAX),
                )
            })
            .collect(),
    }
}

fn key_pb(group: &str, topic_id: Uuid, partition: i32) -> pb::SharePartitionKey {
    pb::SharePartitionKey {
        group: group.to_owned(),
        topic_id: topic_id.as_bytes().to_vec().into(),
        partition,
    }
}

/// A coordinator's error as it travels: its Kafka code and text.
fn error_pb(e: &GroupError) -> (i32, String) {
    (i32::from(e.code()), e.to_string())
}

/// A remote coordinator's error code back as a [`GroupError`].
fn error_of(code: i32, message: String) -> Result<(), GroupError> {
    if code == 0 {
        return Ok(());
    }
    let code = i16::try_from(code).unwrap_or(-1);
    Err(match ResponseError::try_from_code(code) {
        Some(ResponseError::NotCoordinator) => GroupError::NotCoordinator,
        Some(ResponseError::CoordinatorLoadInProgress) => GroupError::LoadInProgress,
        Some(ResponseError::GroupIdNotFound) => GroupError::GroupIdNotFound(message),
        Some(ResponseError::InvalidConfig) => GroupError::InvalidConfig(message),
        Some(ResponseError::FencedStateEpoch) => GroupError::FencedStateEpoch {
            given: -1,
            current: -1,
        },
        Some(ResponseError::FencedLeaderEpoch) => GroupError::FencedLeaderEpoch {
            given: -1,
            current: -1,
        },
        Some(ResponseError::InvalidGroupId) => GroupError::InvalidGroupId(message),
        _ => GroupError::CoordinatorNotAvailable(message),
    })
}

fn unreachable_coordinator(e: impl std::fmt::Display) -> GroupError {
    GroupError::CoordinatorNotAvailable(format!(
        "the group's coordinator could not be reached: {e}"
    ))
}

/// How long a config request waits for the group's coordinator.
const UNREADY_WAIT: Duration = Duration::from_secs(10);
const UNREADY_POLL: Duration = Duration::from_millis(100);

/// Runs `call` until it stops failing because the coordinator is not
/// ready (moving, loading, being created), for at most [`UNREADY_WAIT`].
async fn retry_unready<T, F, Fut>(mut call: F) -> Result<T, GroupError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, GroupError>>,
{
    let deadline = tokio::time::Instant::now() + UNREADY_WAIT;
    loop {
        match call().await {
            Err(
                GroupError::NotCoordinator
                | GroupError::LoadInProgress
                | GroupError::CoordinatorNotAvailable(_),
            ) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(UNREADY_POLL).await;
            }
            other => return other,
        }
    }
}

/// Reads and writes share-group state at the group's coordinator.
#[derive(Debug, Clone)]
pub struct StateStore {
    coordinator: Arc<GroupCoordinator>,
    broker_id: i32,
    tls: Option<Arc<InternalTls>>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

/// Where a group's coordinator runs.
enum Route {
    Here,
    There(String),
}

impl StateStore {
    pub fn new(
        coordinator: Arc<GroupCoordinator>,
        broker_id: i32,
        tls: Option<Arc<InternalTls>>,
    ) -> Self {
        Self {
            coordinator,
            broker_id,
            tls,
            channels: Arc::default(),
        }
    }

    pub fn coordinator(&self) -> &Arc<GroupCoordinator> {
        &self.coordinator
    }

    fn route(&self, group: &str) -> Result<Route, GroupError> {
        // The broker leading the group's offsets partition (the topic is
        // created on first use).
        let leader = self.coordinator.locate(group)?;
        if leader == self.broker_id {
            return Ok(Route::Here);
        }
        self.coordinator
            .manager()
            .replication_address(leader)
            .map(Route::There)
            .ok_or_else(|| {
                GroupError::CoordinatorNotAvailable(format!(
                    "the address of broker {leader}, the group's coordinator, is unknown"
                ))
            })
    }

    fn client(&self, addr: &str) -> Result<ShareStatesClient<Channel>, GroupError> {
        if let Some(ch) = self.channels.lock().get(addr) {
            return Ok(ShareStatesClient::new(ch.clone()));
        }
        let mut endpoint = Endpoint::from_shared(grpc_uri(addr, self.tls.is_some()))
            .map_err(unreachable_coordinator)?
            .connect_timeout(Duration::from_secs(1))
            .timeout(CALL_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.client(None))
                .map_err(unreachable_coordinator)?;
        }
        let channel = endpoint.connect_lazy();
        self.channels
            .lock()
            .insert(addr.to_owned(), channel.clone());
        Ok(ShareStatesClient::new(channel))
    }

    fn failed(&self, addr: &str, e: Status) -> GroupError {
        self.channels.lock().remove(addr);
        unreachable_coordinator(e.message())
    }

    /// The stored state of a share partition (`None`: never stored) and
    /// its group's settings.
    pub async fn read(
        &self,
        group: &str,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<(Option<ShareStateValue>, GroupSettings), GroupError> {
        match self.route(group)? {
            Route::Here => self
                .coordinator
                .share_state(group, topic_id, partition)
                .map(|(v, c)| (v, GroupSettings::from(&c))),
            Route::There(addr) => {
                let r = self
                    .client(&addr)?
                    .read_state(pb::ReadStateRequest {
                        key: Some(key_pb(group, topic_id, partition)),
                    })
                    .await
                    .map_err(|e| self.failed(&addr, e))?
                    .into_inner();
                error_of(r.error_code, r.error_message)?;
                let state = r.found.then(|| state_of(r.state.unwrap_or_default()));
                Ok((state, settings_of(r.settings)))
            }
        }
    }

    /// Stores a share partition's state; returns its group's settings.
    pub async fn write(
        &self,
        group: &str,
        topic_id: Uuid,
        partition: i32,
        value: ShareStateValue,
    ) -> Result<GroupSettings, GroupError> {
        match self.route(group)? {
            Route::Here => self
                .coordinator
                .write_share_state(group, topic_id, partition, value)
                .await
                .map(|c| GroupSettings::from(&c)),
            Route::There(addr) => {
                let r = self
                    .client(&addr)?
                    .write_state(pb::WriteStateRequest {
                        key: Some(key_pb(group, topic_id, partition)),
                        state: Some(state_pb(&value)),
                    })
                    .await
                    .map_err(|e| self.failed(&addr, e))?
                    .into_inner();
                error_of(r.error_code, r.error_message)?;
                Ok(settings_of(r.settings))
            }
        }
    }

    /// A group's config overrides. Config requests come from admin tools
    /// through any broker, often before the group's coordinator has
    /// loaded (or the offsets topic exists): those are retried for a while.
    pub async fn group_config(&self, group: &str) -> Result<BTreeMap<String, String>, GroupError> {
        retry_unready(|| self.group_config_once(group)).await
    }

    async fn group_config_once(&self, group: &str) -> Result<BTreeMap<String, String>, GroupError> {
        match self.route(group)? {
            Route::Here => self.coordinator.group_config(group),
            Route::There(addr) => {
                let r = self
                    .client(&addr)?
                    .get_group_config(pb::GetGroupConfigRequest {
                        group: group.to_owned(),
                    })
                    .await
                    .map_err(|e| self.failed(&addr, e))?
                    .into_inner();
                error_of(r.error_code, r.error_message)?;
                Ok(r.overrides.into_iter().map(|e| (e.name, e.value)).collect())
            }
        }
    }

    /// Replaces a group's config overrides (retried like
    /// [`StateStore::group_config`]).
    pub async fn set_group_config(
        &self,
        group: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), GroupError> {
        retry_unready(|| self.set_group_config_once(group, overrides.clone(), validate_only)).await
    }

    async fn set_group_config_once(
        &self,
        group: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), GroupError> {
        match self.route(group)? {
            Route::Here => {
                self.coordinator
                    .set_group_config(group, overrides, validate_only)
                    .await
            }
            Route::There(addr) => {
                let r = self
                    .client(&addr)?
                    .set_group_config(pb::SetGroupConfigRequest {
                        group: group.to_owned(),
                        overrides: overrides
                            .into_iter()
                            .map(|(name, value)| pb::ConfigEntry { name, value })
                            .collect(),
                        validate_only,
                    })
                    .await
                    .map_err(|e| self.failed(&addr, e))?
                    .into_inner();
                error_of(r.error_code, r.error_message)
            }
        }
    }
}

/// The `ShareStates` gRPC service of a broker: its group coordinator's
/// share-group state for the other brokers.
#[derive(Debug, Clone)]
pub struct ShareStatesApi {
    coordinator: Arc<GroupCoordinator>,
}

impl ShareStatesApi {
    pub fn server(coordinator: Arc<GroupCoordinator>) -> ShareStatesServer<Self> {
        ShareStatesServer::new(Self { coordinator })
    }
}

fn key_of(key: Option<pb::SharePartitionKey>) -> Result<(String, Uuid, i32), Status> {
    let key = key.ok_or_else(|| Status::invalid_argument("the share partition key is missing"))?;
    let topic_id = Uuid::from_slice(&key.topic_id)
        .map_err(|_| Status::invalid_argument("a topic id has 16 bytes"))?;
    Ok((key.group, topic_id, key.partition))
}

#[tonic::async_trait]
impl ShareStates for ShareStatesApi {
    async fn read_state(
        &self,
        request: Request<pb::ReadStateRequest>,
    ) -> Result<Response<pb::ReadStateResponse>, Status> {
        let (group, topic_id, partition) = key_of(request.into_inner().key)?;
        let r = match self.coordinator.share_state(&group, topic_id, partition) {
            Ok((state, config)) => pb::ReadStateResponse {
                found: state.is_some(),
                state: state.as_ref().map(state_pb),
                settings: Some(settings_pb(GroupSettings::from(&config))),
                ..Default::default()
            },
            Err(e) => {
                let (error_code, error_message) = error_pb(&e);
                pb::ReadStateResponse {
                    error_code,
                    error_message,
                    ..Default::default()
                }
            }
        };
        Ok(Response::new(r))
    }

    async fn write_state(
        &self,
        request: Request<pb::WriteStateRequest>,
    ) -> Result<Response<pb::WriteStateResponse>, Status> {
        let r = request.into_inner();
        let (group, topic_id, partition) = key_of(r.key)?;
        let state = state_of(
            r.state
                .ok_or_else(|| Status::invalid_argument("the state is missing"))?,
        );
        let r = match self
            .coordinator
            .write_share_state(&group, topic_id, partition, state)
            .await
        {
            Ok(config) => pb::WriteStateResponse {
                settings: Some(settings_pb(GroupSettings::from(&config))),
                ..Default::default()
            },
            Err(e) => {
                let (error_code, error_message) = error_pb(&e);
                pb::WriteStateResponse {
                    error_code,
                    error_message,
                    settings: None,
                }
            }
        };
        Ok(Response::new(r))
    }

    async fn get_group_config(
        &self,
        request: Request<pb::GetGroupConfigRequest>,
    ) -> Result<Response<pb::GetGroupConfigResponse>, Status> {
        let group = request.into_inner().group;
        let r = match self.coordinator.group_config(&group) {
            Ok(overrides) => pb::GetGroupConfigResponse {
                overrides: overrides
                    .into_iter()
                    .map(|(name, value)| pb::ConfigEntry { name, value })
                    .collect(),
                ..Default::default()
            },
            Err(e) => {
                let (error_code, error_message) = error_pb(&e);
                pb::GetGroupConfigResponse {
                    error_code,
                    error_message,
                    overrides: Vec::new(),
                }
            }
        };
        Ok(Response::new(r))
    }

    async fn set_group_config(
        &self,
        request: Request<pb::SetGroupConfigRequest>,
    ) -> Result<Response<pb::SetGroupConfigResponse>, Status> {
        let r = request.into_inner();
        let overrides = r.overrides.into_iter().map(|e| (e.name, e.value)).collect();
        let (error_code, error_message) = match self
            .coordinator
            .set_group_config(&r.group, overrides, r.validate_only)
            .await
        {
            Ok(()) => (0, String::new()),
            Err(e) => error_pb(&e),
        };
        Ok(Response::new(pb::SetGroupConfigResponse {
            error_code,
            error_message,
        }))
    }
}
