//! Share groups (KIP-932) at the leaders of topic partitions: the records
//! each share group has in flight, handed out by ShareFetch and settled by
//! acknowledgements.
//!
//! - [`partition`]: one share partition as a pure state machine
//!   (acquisition locks, delivery counts, accept, release, reject).
//! - [`session`]: the share sessions of the consumers fetching here.
//! - [`remote`]: the group's coordinator stores each share partition's
//!   state ([`crate::group`]); reached directly or over gRPC.
//! - [`ShareManager`]: loads a share partition from its stored state the
//!   first time a consumer of the group fetches it while this broker leads
//!   the partition, acquires records for fetches (long-polling on the high
//!   watermark and on records coming back), applies acknowledgements and
//!   stores the state before an acknowledgement is confirmed. A sweep
//!   releases expired locks, stores what changed, closes idle sessions
//!   (releasing their records) and drops share partitions that no session
//!   uses or whose leadership moved.
//!
//! What survives a leader change: the stored state (start and end offsets,
//! records in flight with their delivery counts). Acknowledgements are
//! stored before they are confirmed, so a confirmed ACCEPT is never
//! delivered again. Acquisitions are stored with the next write, not
//! before the records go out: after a leader change a record may come back
//! with a delivery count one lower than it had. A write that fails drops
//! the share partition here; it is loaded again from the stored state.

pub mod partition;
pub mod remote;
pub mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;

use crate::group::GroupError;
use crate::group::records::ShareStateValue;
use crate::metrics::Metrics;
use crate::partition::manager::ReplicaManager;
use crate::partition::{Error as PartitionError, Isolation, Partition, batch_headers};
use partition::{AckBatch, AckError, AckType, Acquired, Durable, Limits, SharePartition};
pub use remote::{GroupSettings, ShareStatesApi, StateStore};
use session::{SessionError, SessionPartition, Sessions};

/// How often locks are expired and changed states stored.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);
/// Longest a ShareFetch waits for records.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Most bytes read from one partition for one ShareFetch.
const PARTITION_READ_BYTES: usize = 1 << 20;

/// Why a share request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ShareError {
    #[error(transparent)]
    Partition(Arc<PartitionError>),
    #[error(transparent)]
    Group(#[from] GroupError),
    /// An acknowledgement of records the member does not hold.
    #[error("{0}")]
    InvalidRecordState(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("share session: {0:?}")]
    Session(SessionError),
}

impl From<PartitionError> for ShareError {
    fn from(e: PartitionError) -> Self {
        Self::Partition(Arc::new(e))
    }
}

/// Broker settings of share groups.
#[derive(Debug, Clone)]
pub struct ShareSettings {
    /// `group.share.max.share.sessions`.
    pub max_sessions: usize,
    /// A session unused this long is closed and its records released.
    pub session_idle_ms: i64,
}

impl Default for ShareSettings {
    fn default() -> Self {
        Self {
            max_sessions: 2_000,
            session_idle_ms: 60_000,
        }
    }
}

/// One partition a share consumer fetches or acknowledges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePart {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

/// Records acquired from one partition: whole batches, of which the
/// consumer takes the acquired offsets.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub data: Bytes,
    pub acquired: Vec<Acquired>,
}

/// (group, topic id, partition).
type Key = (String, Uuid, i32);

#[derive(Debug)]
struct Inner {
    sp: SharePartition,
    settings: GroupSettings,
}

impl Inner {
    fn limits(&self) -> Limits {
        Limits {
            lock_ms: i64::from(self.settings.lock_ms),
            delivery_limit: self.settings.delivery_limit,
            max_in_flight: i64::from(self.settings.max_record_locks),
        }
    }
}

/// A share partition loaded here.
#[derive(Debug)]
struct Slot {
    topic: String,
    leader_epoch: i32,
    state_epoch: i32,
    inner: Mutex<Inner>,
    /// The version last stored; `None` before the first write.
    stored: tokio::sync::Mutex<Option<u64>>,
}

/// The share partitions and share sessions of one broker.
#[derive(Debug)]
pub struct ShareManager {
    manager: Arc<ReplicaManager>,
    metrics: Arc<Metrics>,
    store: StateStore,
    settings: ShareSettings,
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
    /// Loads run one at a time (two fetches must not load one partition
    /// twice).
    loading: tokio::sync::Mutex<()>,
    sessions: Mutex<Sessions>,
    /// Woken when records become available again (released, expired).
    released: tokio::sync::Notify,
}

fn now_ms() -> i64 {
    crate::group::coordinator::now_ms()
}

impl ShareManager {
    pub fn new(
        manager: Arc<ReplicaManager>,
        metrics: Arc<Metrics>,
        store: StateStore,
        settings: ShareSettings,
    ) -> Arc<Self> {
        let sessions = Sessions::new(settings.max_sessions);
        Arc::new(Self {
            manager,
            metrics,
            store,
            settings,
            slots: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
            sessions: Mutex::new(sessions),
            released: tokio::sync::Notify::new(),
        })
    }

    /// Where share-group state and group configs are kept.
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// Share partitions loaded here and open share sessions (metrics).
    pub fn counts(&self) -> (usize, usize) {
        (self.slots.lock().len(), self.sessions.lock().len())
    }

    /// Runs the sweep until `stop`.
    pub fn start(self: &Arc<Self>, stop: CancellationToken) -> JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => this.sweep().await,
                }
            }
        })
    }

    // ---- sessions ----

    /// A ShareFetch's session step; releases the member's records of
    /// partitions the session no longer has.
    pub async fn fetch_session(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
        add: &[SessionPartition],
        forget: &[SessionPartition],
        connection: SocketAddr,
    ) -> Result<session::SessionView, ShareError> {
        let step = self.sessions.lock().fetch(
            group,
            member,
            epoch,
            add,
            forget,
            now_ms(),
            Some(connection),
        );
        let (view, dropped) = step.map_err(ShareError::Session)?;
        self.release(group, member, dropped.iter()).await;
        Ok(view)
    }

    /// A ShareAcknowledge's session step.
    pub fn acknowledge_session(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
        connection: SocketAddr,
    ) -> Result<session::SessionView, ShareError> {
        self.sessions
            .lock()
            .acknowledge(group, member, epoch, now_ms(), Some(connection))
            .map_err(ShareError::Session)
    }

    /// A client connection closed: its share sessions end and what their
    /// members held is released.
    pub async fn connection_closed(&self, connection: SocketAddr) {
        let closed = self.sessions.lock().close_connection(connection);
        for (group, member, partitions) in closed {
            debug!(group, member, %connection, "share session closed with its connection");
            self.release(&group, &member, partitions.iter()).await;
        }
    }

    /// Releases what `member` holds in `partitions` (its session closed
    /// or dropped them) and stores the change.
    pub async fn release<'a>(
        &self,
        group: &str,
        member: &str,
        partitions: impl Iterator<Item = &'a SessionPartition>,
    ) {
        let mut released = false;
        let mut changed = Vec::new();
        for &(topic_id, p) in partitions {
            let key = (group.to_owned(), topic_id, p);
            let Some(slot) = self.slots.lock().get(&key).cloned() else {
                continue;
            };
            let n = {
                let mut i = slot.inner.lock();
                let limits = i.limits();
                i.sp.release_member(member, &limits)
            };
            if n > 0 {
                released = true;
                changed.push((key, slot));
            }
        }
        if released {
            self.released.notify_waiters();
        }
        for (key, slot) in changed {
            if let Err(e) = self.persist(&key, &slot).await {
                debug!(group, topic_id = %key.1, partition = key.2, error = %e, "storing released records failed");
            }
        }
    }

    // ---- share partitions ----

    /// The share partition of `group` on `part`, loaded from its stored
    /// state if this broker has not loaded it at the current leader epoch.
    async fn slot(
        &self,
        group: &str,
        part: &SharePart,
    ) -> Result<(Arc<Partition>, Arc<Slot>), ShareError> {
        let p = self.manager.partition(&part.topic, part.partition)?;
        let epoch = p.check_leader_epoch(-1)?;
        let key = (group.to_owned(), part.topic_id, part.partition);
        let current = |slots: &HashMap<Key, Arc<Slot>>| {
            slots.get(&key).filter(|s| s.leader_epoch == epoch).cloned()
        };
        if let Some(s) = current(&self.slots.lock()) {
            return Ok((p, s));
        }
        let _loading = self.loading.lock().await;
        if let Some(s) = current(&self.slots.lock()) {
            return Ok((p, s));
        }
        let (stored, settings) = self
            .store
            .read(group, part.topic_id, part.partition)
            .await?;
        let (sp, state_epoch, fresh) = match stored {
            Some(v) => (
                SharePartition::from_durable(&Durable {
                    start: v.start,
                    end: v.end,
                    available: v.available,
                }),
                v.state_epoch,
                false,
            ),
            None => {
                let start = if settings.earliest {
                    p.earliest_offset()?
                } else {
                    p.high_watermark()
                };
                (SharePartition::new(start), 0, true)
            }
        };
        let version = sp.version();
        let slot = Arc::new(Slot {
            topic: part.topic.clone(),
            leader_epoch: epoch,
            state_epoch,
            inner: Mutex::new(Inner { sp, settings }),
            stored: tokio::sync::Mutex::new((!fresh).then_some(version)),
        });
        self.slots.lock().insert(key.clone(), Arc::clone(&slot));
        if fresh {
            // Where a new share partition starts is stored before anything
            // is delivered from it.
            self.persist(&key, &slot).await?;
        }
        Ok((p, slot))
    }

    /// Stores the slot's state unless the stored version is current. A
    /// failed write drops the slot: it is loaded again from what is stored.
    async fn persist(&self, key: &Key, slot: &Arc<Slot>) -> Result<(), ShareError> {
        let mut stored = slot.stored.lock().await;
        let (durable, version) = {
            let i = slot.inner.lock();
            (i.sp.durable(), i.sp.version())
        };
        if stored.is_some_and(|s| s >= version) {
            return Ok(());
        }
        let value = ShareStateValue {
            state_epoch: slot.state_epoch,
            leader_epoch: slot.leader_epoch,
            start: durable.start,
            end: durable.end,
            available: durable.available,
        };
        match self.store.write(&key.0, key.1, key.2, value).await {
            Ok(settings) => {
                *stored = Some(version);
                slot.inner.lock().settings = settings;
                Ok(())
            }
            Err(e) => {
                warn!(group = key.0, topic = slot.topic, partition = key.2, error = %e, "storing a share partition's state failed; it will be loaded again");
                let mut slots = self.slots.lock();
                if slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
                    slots.remove(key);
                }
                Err(e.into())
            }
        }
    }

    /// Applies `member`'s acknowledgements of one partition and stores
    /// them; `Ok` means they are durable.
    pub async fn acknowledge(
        &self,
        group: &str,
        member: &str,
        part: &SharePart,
        batches: &[AckBatch],
    ) -> Result<(), ShareError> {
        let (_, slot) = self.slot(group, part).await?;
        {
            let mut i = slot.inner.lock();
            let limits = i.limits();
            i.sp.acknowledge(member, batches, &limits)
                .map_err(|e| match e {
                    AckError::Invalid(m) => ShareError::InvalidRequest(m),
                    AckError::NotHeld(m) => ShareError::InvalidRecordState(m),
                })?;
        }
        self.released.notify_waiters();
        let key = (group.to_owned(), part.topic_id, part.partition);
        self.persist(&key, &slot).await?;
        for b in batches {
            for offset in b.first..=b.last {
                let label = match AckType::from_code(b.type_at(offset)) {
                    Some(AckType::Accept) => "accept",
                    Some(AckType::Release) => "release",
                    Some(AckType::Reject) => "reject",
                    _ => "gap",
                };
                self.metrics
                    .share_acknowledged_records
                    .with_label_values(&[label])
                    .inc();
            }
        }
        Ok(())
    }

    /// The acquisition lock duration of `group`'s share partitions here
    /// (the first loaded one of `parts`), for the ShareFetch answer.
    pub fn lock_ms(&self, group: &str, parts: &[SharePart]) -> Option<i32> {
        let slots = self.slots.lock();
        parts.iter().find_map(|p| {
            slots
                .get(&(group.to_owned(), p.topic_id, p.partition))
                .map(|s| s.inner.lock().settings.lock_ms)
        })
    }

    /// Acquires records of `parts` for `member`: returns as soon as some
    /// were acquired or a partition failed, or after `max_wait`. At most
    /// `max_records` records (whole batches) and about `max_bytes` bytes.
    pub async fn fetch(
        &self,
        group: &str,
        member: &str,
        parts: &[SharePart],
        max_records: usize,
        max_bytes: usize,
        max_wait: Duration,
    ) -> Vec<Result<Option<Fetched>, ShareError>> {
        let deadline = tokio::time::Instant::now() + max_wait.min(MAX_WAIT);
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let now = now_ms();
            let mut results = Vec::with_capacity(parts.len());
            let mut watchers = Vec::new();
            let mut next_expiry: Option<i64> = None;
            let (mut records_left, mut bytes_left) = (max_records.max(1), max_bytes.max(1));
            let mut done = false;
            for part in parts {
                let result = match self.slot(group, part).await {
                    Err(e) => Err(e),
                    Ok((p, slot)) => {
                        let mut hw = p.subscribe_high_watermark();
                        hw.borrow_and_update();
                        watchers.push(hw);
                        done |= p.is_closing();
                        let got = if records_left == 0 || bytes_left == 0 {
                            Ok(None)
                        } else {
                            self.acquire(&p, &slot, member, now, records_left, bytes_left)
                        };
                        if let Some(d) = slot.inner.lock().sp.next_deadline() {
                            next_expiry = Some(next_expiry.map_or(d, |n: i64| n.min(d)));
                        }
                        got
                    }
                };
                match &result {
                    Ok(Some(f)) => {
                        let n: i64 = f.acquired.iter().map(|a| a.last - a.first + 1).sum();
                        self.metrics.share_acquired_records.inc_by(n as u64);
                        records_left = records_left.saturating_sub(n as usize);
                        bytes_left = bytes_left.saturating_sub(f.data.len());
                        done = true;
                    }
                    Ok(None) => {}
                    Err(_) => done = true,
                }
                results.push(result);
            }
            if done || tokio::time::Instant::now() >= deadline {
                return results;
            }
            let mut wake = deadline;
            if let Some(at) = next_expiry {
                let ms = u64::try_from((at - now_ms()).max(1)).unwrap_or(1);
                wake = wake.min(tokio::time::Instant::now() + Duration::from_millis(ms));
            }
            let any_change = async {
                if watchers.is_empty() {
                    std::future::pending::<()>().await;
                }
                let _ =
                    futures::future::select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())))
                        .await;
            };
            tokio::select! {
                () = any_change => {}
                () = &mut released => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// One partition's acquisition: expired locks first come back, then a
    /// read from the first available record (or the end) below the HW.
    fn acquire(
        &self,
        p: &Partition,
        slot: &Slot,
        member: &str,
        now: i64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Option<Fetched>, ShareError> {
        let mut i = slot.inner.lock();
        let limits = i.limits();
        let expired = i.sp.expire(now, &limits);
        self.metrics
            .share_lock_expired_records
            .inc_by(expired as u64);
        i.sp.skip_to(p.earliest_offset()?);
        let from = i.sp.next_to_read();
        if from >= p.high_watermark() || (from >= i.sp.end() && i.sp.room(&limits) == 0) {
            return Ok(None);
        }
        let read = p.read_for_client(
            from,
            max_bytes.min(PARTITION_READ_BYTES),
            true,
            -1,
            -1,
            Isolation::ReadUncommitted,
        )?;
        let batches: Vec<(i64, i64, bool)> = batch_headers(&read.data)
            .iter()
            .map(|h| {
                (
                    h.base_offset,
                    h.base_offset + i64::from(h.last_offset_delta),
                    !h.is_control(),
                )
            })
            .collect();
        let acquired = i.sp.acquire(member, now, &batches, max_records, &limits);
        if acquired.is_empty() {
            return Ok(None);
        }
        Ok(Some(Fetched {
            data: read.data,
            acquired,
        }))
    }

    /// Expires locks, stores changed states, closes idle sessions and
    /// drops share partitions that are not needed here any more.
    async fn sweep(&self) {
        let now = now_ms();
        let idle = self
            .sessions
            .lock()
            .expire(now - self.settings.session_idle_ms);
        for (group, member, partitions) in idle {
            debug!(group, member, "closing an idle share session");
            self.release(&group, &member, partitions.iter()).await;
        }
        let slots: Vec<(Key, Arc<Slot>)> = self
            .slots
            .lock()
            .iter()
            .map(|(k, s)| (k.clone(), Arc::clone(s)))
            .collect();
        let mut released = false;
        for (key, slot) in slots {
            let led = self
                .manager
                .partition(&slot.topic, key.2)
                .and_then(|p| p.check_leader_epoch(-1))
                .is_ok_and(|e| e == slot.leader_epoch);
            if !led {
                let mut all = self.slots.lock();
                if all.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    all.remove(&key);
                }
                continue;
            }
            let (expired, idle) = {
                let mut i = slot.inner.lock();
                let limits = i.limits();
                let n = i.sp.expire(now, &limits);
                (n, i.sp.in_flight() == 0 || i.sp.next_deadline().is_none())
            };
            released |= expired > 0;
            self.metrics
                .share_lock_expired_records
                .inc_by(expired as u64);
            if self.persist(&key, &slot).await.is_err() {
                continue;
            }
            let unused = !self.sessions.lock().in_use(&key.0, &(key.1, key.2));
            if unused && idle {
                let mut all = self.slots.lock();
                if all.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    all.remove(&key);
                }
            }
        }
        if released {
            self.released.notify_waiters();
        }
        let (slots, sessions) = self.counts();
        self.metrics.share_partitions.set(slots as i64);
        self.metrics.share_sessions.set(sessions as i64);
    }
}
