//! Protocol versions between Rill's components, and the version-skew rule.
//!
//! Brokers announce the version of the controller protocol they speak when
//! they register, and followers the version of the replication protocol in
//! every fetch. Each side serves a range of versions; a peer outside it is
//! refused with `FAILED_PRECONDITION` and a message that says which side to
//! upgrade, instead of being misunderstood. A field absent on the wire (a
//! build from before versions were announced) reads as version 1, the
//! protocol those builds speak.
//!
//! The rule that keeps upgrades safe (docs/upgrades.md): a release serves the
//! versions of the release before it, so the operator (which runs the
//! metadata controllers) is upgraded first, then the brokers roll one at a
//! time while old and new brokers replicate with each other.

/// One protocol: the version this build speaks and the oldest it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    /// Name, for messages.
    pub name: &'static str,
    /// The version this build speaks.
    pub current: u32,
    /// The oldest version this build still serves.
    pub oldest: u32,
    /// What to do about a peer newer than this side.
    pub newer_peer_hint: &'static str,
    /// What to do about a peer older than this side serves.
    pub older_peer_hint: &'static str,
}

/// Brokers and the metadata controller (`controller.proto`).
pub const CONTROLLER: Protocol = Protocol {
    name: "controller",
    current: 1,
    oldest: 1,
    newer_peer_hint: "upgrade the operator (it runs the metadata controllers) before the brokers",
    older_peer_hint: "upgrade the brokers one release at a time: this controller no longer serves their version",
};

/// Followers and partition leaders (`replication.proto`).
///
/// v2: the stream is an incremental session (requests and answers carry only
/// what changed; `replication.proto`). A v2 follower refused by a v1 leader
/// speaks v1 to it.
pub const REPLICATION: Protocol = Protocol {
    name: "replication",
    current: 2,
    oldest: 1,
    newer_peer_hint: "brokers roll between adjacent releases only; finish the roll (or roll back) so every broker serves the follower's version",
    older_peer_hint: "brokers roll between adjacent releases only: upgrade the follower one release at a time",
};

impl Protocol {
    /// The version a peer announced, 0 (absent) being version 1; an error
    /// message naming the versions and the fix when this side does not
    /// serve it.
    pub fn check(&self, announced: u32, peer: &str) -> Result<u32, String> {
        let version = announced.max(1);
        let hint = if version > self.current {
            self.newer_peer_hint
        } else if version < self.oldest {
            self.older_peer_hint
        } else {
            return Ok(version);
        };
        Err(format!(
            "{peer} speaks {} protocol v{version}; this side serves v{}..=v{}: {hint}",
            self.name, self.oldest, self.current
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_announced_versions_when_checking_then_absent_is_v1_and_others_are_refused_with_the_fix()
     {
        assert_eq!(CONTROLLER.check(0, "broker 1"), Ok(1));
        assert_eq!(
            CONTROLLER.check(CONTROLLER.current, "broker 1"),
            Ok(CONTROLLER.current)
        );
        let newer = CONTROLLER
            .check(CONTROLLER.current + 1, "broker 1")
            .expect_err("newer");
        assert!(
            newer.starts_with("broker 1 speaks controller protocol v2"),
            "{newer}"
        );
        assert!(newer.contains("upgrade the operator"), "{newer}");
        let older = Protocol {
            oldest: 2,
            current: 3,
            ..REPLICATION
        }
        .check(1, "follower 4")
        .expect_err("older");
        assert!(older.contains("serves v2..=v3"), "{older}");
        assert!(older.contains("one release at a time"), "{older}");
    }
}
