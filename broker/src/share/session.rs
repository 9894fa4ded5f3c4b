//! Share sessions (KIP-932): which partitions a share consumer fetches from
//! this broker, keyed by (group, member id), so that each ShareFetch names
//! only what changed.
//!
//! - Epoch 0 opens a session (replacing the member's old one) with the
//!   partitions the request names; the next request must carry epoch 1.
//! - Epoch n > 0 continues it: the request's partitions are added, its
//!   forgotten ones removed, and the next epoch is n + 1 (after
//!   `i32::MAX` comes 1).
//! - Epoch -1 closes it: the request's acknowledgements are applied and the
//!   member's records of the session's partitions are released.
//!
//! A session ends with the connection that used it last (its records are
//! released at once, as Kafka does).
//!
//! An unknown session is SHARE_SESSION_NOT_FOUND, a wrong epoch
//! INVALID_SHARE_SESSION_EPOCH; the consumer then opens a new one. Sessions
//! idle longer than the idle timeout are dropped (their member's records
//! are released) so that a consumer that vanished does not hold a slot.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;

use uuid::Uuid;

/// A share partition of a session: (topic id, partition).
pub type SessionPartition = (Uuid, i32);

const OPEN_EPOCH: i32 = 0;
const CLOSE_EPOCH: i32 = -1;

/// Why a session request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    NotFound,
    InvalidEpoch {
        given: i32,
        expected: i32,
    },
    /// Every slot is taken by a live session.
    LimitReached,
}

#[derive(Debug, Clone)]
struct Session {
    next_epoch: i32,
    partitions: BTreeSet<SessionPartition>,
    last_used: i64,
    /// The connection that used it last.
    connection: Option<SocketAddr>,
}

/// What a request may do in its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// Every partition of the session (before a close: what it had).
    pub partitions: BTreeSet<SessionPartition>,
    /// The request closed the session.
    pub closed: bool,
}

/// The share sessions of one broker.
#[derive(Debug, Default)]
pub struct Sessions {
    sessions: HashMap<(String, String), Session>,
    max: usize,
}

fn next(epoch: i32) -> i32 {
    if epoch == i32::MAX { 1 } else { epoch + 1 }
}

impl Sessions {
    pub fn new(max: usize) -> Self {
        Self {
            sessions: HashMap::new(),
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// A ShareFetch's session step: opens, continues or closes the
    /// member's session. Returns the old session's partitions as well
    /// when epoch 0 replaced one (their records are released).
    #[allow(clippy::too_many_arguments)]
    pub fn fetch(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
        add: &[SessionPartition],
        forget: &[SessionPartition],
        now: i64,
        connection: Option<SocketAddr>,
    ) -> Result<(SessionView, BTreeSet<SessionPartition>), SessionError> {
        let key = (group.to_owned(), member.to_owned());
        match epoch {
            OPEN_EPOCH => {
                let replaced = self.sessions.remove(&key).map(|s| s.partitions);
                if self.sessions.len() >= self.max {
                    return Err(SessionError::LimitReached);
                }
                let partitions: BTreeSet<SessionPartition> = add.iter().copied().collect();
                self.sessions.insert(
                    key,
                    Session {
                        next_epoch: 1,
                        partitions: partitions.clone(),
                        last_used: now,
                        connection,
                    },
                );
                let dropped = replaced
                    .unwrap_or_default()
                    .difference(&partitions)
                    .copied()
                    .collect();
                Ok((
                    SessionView {
                        partitions,
                        closed: false,
                    },
                    dropped,
                ))
            }
            CLOSE_EPOCH => {
                let s = self.sessions.remove(&key).ok_or(SessionError::NotFound)?;
                Ok((
                    SessionView {
                        partitions: s.partitions,
                        closed: true,
                    },
                    BTreeSet::new(),
                ))
            }
            epoch => {
                let s = self.sessions.get_mut(&key).ok_or(SessionError::NotFound)?;
                if epoch != s.next_epoch {
                    return Err(SessionError::InvalidEpoch {
                        given: epoch,
                        expected: s.next_epoch,
                    });
                }
                s.next_epoch = next(epoch);
                s.last_used = now;
                if connection.is_some() {
                    s.connection = connection;
                }
                s.partitions.extend(add.iter().copied());
                let mut dropped = BTreeSet::new();
                for f in forget {
                    if s.partitions.remove(f) {
                        dropped.insert(*f);
                    }
                }
                Ok((
                    SessionView {
                        partitions: s.partitions.clone(),
                        closed: false,
                    },
                    dropped,
                ))
            }
        }
    }

    /// A ShareAcknowledge's session step: it must name the session's epoch
    /// (which moves on) or close it with -1.
    pub fn acknowledge(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
        now: i64,
        connection: Option<SocketAddr>,
    ) -> Result<SessionView, SessionError> {
        if epoch == OPEN_EPOCH {
            return Err(SessionError::InvalidEpoch {
                given: epoch,
                expected: self
                    .sessions
                    .get(&(group.to_owned(), member.to_owned()))
                    .map_or(OPEN_EPOCH, |s| s.next_epoch),
            });
        }
        self.fetch(group, member, epoch, &[], &[], now, connection)
            .map(|(view, _)| view)
    }

    /// Drops the sessions last used on `connection`; returns their
    /// (group, member, partitions).
    pub fn close_connection(
        &mut self,
        connection: SocketAddr,
    ) -> Vec<(String, String, BTreeSet<SessionPartition>)> {
        self.remove_where(|s| s.connection == Some(connection))
    }

    /// Drops sessions unused since before `idle_before`; returns their
    /// (group, member, partitions).
    pub fn expire(
        &mut self,
        idle_before: i64,
    ) -> Vec<(String, String, BTreeSet<SessionPartition>)> {
        self.remove_where(|s| s.last_used < idle_before)
    }

    fn remove_where(
        &mut self,
        pick: impl Fn(&Session) -> bool,
    ) -> Vec<(String, String, BTreeSet<SessionPartition>)> {
        let stale: Vec<(String, String)> = self
            .sessions
            .iter()
            .filter(|(_, s)| pick(s))
            .map(|(k, _)| k.clone())
            .collect();
        stale
            .into_iter()
            .filter_map(|k| {
                let s = self.sessions.remove(&k)?;
                Some((k.0, k.1, s.partitions))
            })
            .collect()
    }

    /// Whether some session of `group` fetches `partition`.
    pub fn in_use(&self, group: &str, partition: &SessionPartition) -> bool {
        self.sessions
            .iter()
            .any(|((g, _), s)| g == group && s.partitions.contains(partition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> SessionPartition {
        (Uuid::from_u128(1), p)
    }

    #[test]
    fn given_a_session_when_epochs_follow_each_other_then_partitions_accumulate() {
        let mut s = Sessions::new(10);
        let (v, _) = s.fetch("g", "m", 0, &[tp(0)], &[], 0, None).unwrap();
        assert_eq!(v.partitions.len(), 1);
        let (v, _) = s.fetch("g", "m", 1, &[tp(1)], &[], 0, None).unwrap();
        assert_eq!(v.partitions.len(), 2);
        let (v, dropped) = s.fetch("g", "m", 2, &[], &[tp(0)], 0, None).unwrap();
        assert_eq!(v.partitions.len(), 1);
        assert_eq!(dropped.len(), 1);
        assert!(s.acknowledge("g", "m", 3, 0, None).is_ok());
        assert_eq!(
            s.fetch("g", "m", 3, &[], &[], 0, None).unwrap_err(),
            SessionError::InvalidEpoch {
                given: 3,
                expected: 4
            }
        );
        let v = s.acknowledge("g", "m", -1, 0, None).unwrap();
        assert!(v.closed);
        assert_eq!(
            s.fetch("g", "m", 4, &[], &[], 0, None).unwrap_err(),
            SessionError::NotFound
        );
    }

    #[test]
    fn given_idle_sessions_when_expired_then_they_are_dropped_with_their_partitions() {
        let mut s = Sessions::new(10);
        s.fetch("g", "a", 0, &[tp(0)], &[], 0, None).unwrap();
        s.fetch("g", "b", 0, &[tp(0)], &[], 100, None).unwrap();
        let gone = s.expire(50);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1, "a");
        assert!(s.in_use("g", &tp(0)));
        assert!(!s.in_use("h", &tp(0)));
    }

    #[test]
    fn given_a_closed_connection_then_its_sessions_end_and_others_stay() {
        let mut s = Sessions::new(10);
        let one: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let two: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        s.fetch("g", "a", 0, &[tp(0)], &[], 0, Some(one)).unwrap();
        s.fetch("g", "b", 0, &[tp(0)], &[], 0, Some(two)).unwrap();
        let gone = s.close_connection(one);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1, "a");
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn given_the_limit_when_a_new_session_opens_then_refused() {
        let mut s = Sessions::new(1);
        s.fetch("g", "a", 0, &[], &[], 0, None).unwrap();
        assert_eq!(
            s.fetch("g", "b", 0, &[], &[], 0, None).unwrap_err(),
            SessionError::LimitReached
        );
        // Reopening its own session is always possible.
        assert!(s.fetch("g", "a", 0, &[], &[], 0, None).is_ok());
    }
}
