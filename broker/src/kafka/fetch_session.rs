//! Incremental fetch sessions (KIP-227). A consumer that fetches many
//! partitions sends them all once (epoch 0); the broker keeps them in a
//! session and answers with its id. Later requests (epoch 1, 2, ...) carry
//! only the partitions whose fetch position changed and those to forget,
//! and answers carry only the partitions with news: records, an error, or a
//! new high watermark, last stable offset or log start offset. With
//! hundreds of partitions per consumer this saves most of both.
//!
//! - Epoch -1 without a session id is a sessionless full fetch; with one,
//!   it closes that session (and is a full fetch too).
//! - An unknown session id is FETCH_SESSION_ID_NOT_FOUND, an epoch other
//!   than the session's next one INVALID_FETCH_SESSION_EPOCH; the client
//!   then starts over with a full fetch.
//! - At most `slots` sessions are kept. When they are all taken, a new
//!   session replaces the least recently used one if that was idle for
//!   [`EVICTABLE_AFTER`], else the full fetch is answered without a
//!   session (id 0) and the client keeps sending full fetches.
//! - Session ids are random. With authorization on, every request is
//!   checked against READ on every topic of the session, not only those
//!   it names: a revoked topic leaves the session with
//!   TOPIC_AUTHORIZATION_FAILED.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use uuid::Uuid;

/// An idle session may make room for a new one after this long.
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(60);

/// Default of `--max-incremental-fetch-session-cache-slots` (Kafka's).
pub const DEFAULT_SLOTS: usize = 1000;

/// A partition of a session, by topic name (the request's version may name
/// it by id; the name is resolved when it enters the session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPartition {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
    pub fetch_offset: i64,
    pub max_bytes: i32,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
    /// What the last answer told the client (`None`: nothing yet).
    pub sent: Option<Sent>,
}

/// The offsets of a partition as last answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    partitions: Vec<SessionPartition>,
    last_used: Instant,
}

/// Why a session request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    NotFound,
    InvalidEpoch,
}

/// The fetch sessions of a broker.
#[derive(Debug)]
pub struct FetchSessions {
    slots: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<i32, Session>,
}

impl Default for FetchSessions {
    fn default() -> Self {
        Self::new(DEFAULT_SLOTS)
    }
}

fn key(p: &SessionPartition) -> (String, i32) {
    (p.topic.clone(), p.partition)
}

impl FetchSessions {
    pub fn new(slots: usize) -> Self {
        Self {
            slots,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Sessions kept now.
    pub fn len(&self) -> usize {
        self.inner.lock().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts a session with `partitions` (a full fetch with epoch 0);
    /// returns its id, or 0 when there is no room.
    pub fn create(&self, partitions: Vec<SessionPartition>, now: Instant) -> i32 {
        if self.slots == 0 {
            return 0;
        }
        let mut inner = self.inner.lock();
        if inner.sessions.len() >= self.slots {
            let oldest = inner
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, s)| (*id, s.last_used));
            match oldest {
                Some((id, used)) if now.duration_since(used) >= EVICTABLE_AFTER => {
                    inner.sessions.remove(&id);
                }
                _ => return 0,
            }
        }
        let id = loop {
            let id = (Uuid::new_v4().as_u128() as i32) & i32::MAX;
            if id != 0 && !inner.sessions.contains_key(&id) {
                break id;
            }
        };
        inner.sessions.insert(
            id,
            Session {
                next_epoch: 1,
                partitions,
                last_used: now,
            },
        );
        id
    }

    /// Closes a session (epoch -1); unknown ids are ignored.
    pub fn close(&self, id: i32) {
        self.inner.lock().sessions.remove(&id);
    }

    /// The topics of a session, for authorization.
    pub fn topics(&self, id: i32) -> HashSet<String> {
        self.inner
            .lock()
            .sessions
            .get(&id)
            .map(|s| s.partitions.iter().map(|p| p.topic.clone()).collect())
            .unwrap_or_default()
    }

    /// An incremental request: checks the session and its epoch, applies
    /// `upserts` (new partitions go last, known ones are updated in place)
    /// and `forget`, and returns every partition of the session, in order.
    pub fn update(
        &self,
        id: i32,
        epoch: i32,
        upserts: Vec<SessionPartition>,
        forget: &HashSet<(String, i32)>,
        now: Instant,
    ) -> Result<Vec<SessionPartition>, SessionError> {
        let mut inner = self.inner.lock();
        let s = inner.sessions.get_mut(&id).ok_or(SessionError::NotFound)?;
        if epoch != s.next_epoch {
            return Err(SessionError::InvalidEpoch);
        }
        s.partitions.retain(|p| !forget.contains(&key(p)));
        for u in upserts {
            match s.partitions.iter_mut().find(|p| key(p) == key(&u)) {
                Some(p) => {
                    let sent = p.sent;
                    *p = SessionPartition { sent, ..u };
                }
                None => s.partitions.push(u),
            }
        }
        s.last_used = now;
        Ok(s.partitions.clone())
    }

    /// After an answer of session `id`: what it told of each partition,
    /// and the epoch moves on.
    pub fn answered(&self, id: i32, sent: &[((String, i32), Sent)]) {
        let mut inner = self.inner.lock();
        let Some(s) = inner.sessions.get_mut(&id) else {
            return;
        };
        let by_key: HashMap<&(String, i32), &Sent> = sent.iter().map(|(k, v)| (k, v)).collect();
        for p in &mut s.partitions {
            if let Some(v) = by_key.get(&key(p)) {
                p.sent = Some(**v);
            }
        }
        s.next_epoch = if s.next_epoch == i32::MAX {
            1
        } else {
            s.next_epoch + 1
        };
    }

    /// Drops the partitions of `topics` from a session (authorization
    /// revoked); returns them (topic, topic id, partition).
    pub fn forget_topics(&self, id: i32, topics: &HashSet<String>) -> Vec<(String, Uuid, i32)> {
        let mut gone = Vec::new();
        if let Some(s) = self.inner.lock().sessions.get_mut(&id) {
            s.partitions.retain(|p| {
                let keep = !topics.contains(&p.topic);
                if !keep {
                    gone.push((p.topic.clone(), p.topic_id, p.partition));
                }
                keep
            });
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(topic: &str, partition: i32, offset: i64) -> SessionPartition {
        SessionPartition {
            topic: topic.to_owned(),
            topic_id: Uuid::nil(),
            partition,
            fetch_offset: offset,
            max_bytes: 1024,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
            sent: None,
        }
    }

    #[test]
    fn given_a_session_when_updated_should_keep_order_apply_changes_and_check_epochs() {
        let s = FetchSessions::new(10);
        let now = Instant::now();
        let id = s.create(vec![part("t", 0, 0), part("t", 1, 0)], now);
        assert_ne!(id, 0);
        let none = HashSet::new();
        assert_eq!(
            s.update(id, 2, vec![], &none, now),
            Err(SessionError::InvalidEpoch)
        );
        assert_eq!(
            s.update(id ^ 1, 1, vec![], &none, now),
            Err(SessionError::NotFound)
        );
        let got = s
            .update(id, 1, vec![part("t", 1, 7), part("u", 0, 3)], &none, now)
            .unwrap();
        let offsets: Vec<(String, i32, i64)> = got
            .iter()
            .map(|p| (p.topic.clone(), p.partition, p.fetch_offset))
            .collect();
        assert_eq!(
            offsets,
            [("t".into(), 0, 0), ("t".into(), 1, 7), ("u".into(), 0, 3)]
        );
        s.answered(id, &[]);
        let forget = HashSet::from([("t".to_owned(), 0)]);
        let got = s.update(id, 2, vec![], &forget, now).unwrap();
        assert_eq!(got.len(), 2);
        s.answered(id, &[]);
        let gone = s.forget_topics(id, &HashSet::from(["u".to_owned()]));
        assert_eq!(gone, [("u".to_owned(), Uuid::nil(), 0)]);
        assert_eq!(s.update(id, 3, vec![], &none, now).unwrap().len(), 1);
        s.close(id);
        assert_eq!(
            s.update(id, 4, vec![], &none, now),
            Err(SessionError::NotFound)
        );
    }

    #[test]
    fn given_full_slots_when_creating_should_evict_only_an_idle_session() {
        let s = FetchSessions::new(1);
        let t0 = Instant::now();
        let first = s.create(vec![part("t", 0, 0)], t0);
        assert_ne!(first, 0);
        assert_eq!(s.create(vec![], t0 + Duration::from_secs(1)), 0);
        let second = s.create(vec![], t0 + EVICTABLE_AFTER);
        assert_ne!(second, 0);
        assert_ne!(second, first);
        assert_eq!(s.len(), 1);
        assert_eq!(FetchSessions::new(0).create(vec![], t0), 0);
    }
}
