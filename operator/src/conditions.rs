//! Status conditions shared by every Rill resource.
//!
//! Conditions follow the Kubernetes API conventions: a `type`, a
//! `"True"`/`"False"` status, a stable CamelCase `reason` that automation may
//! match on, and a human `message`. [`merge_conditions`] carries the previous
//! `lastTransitionTime` forward unless the status flips, so re-applying the
//! same manifests never churns status (GitOps tools would report drift).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition type: the resource does what its spec asks.
pub const READY: &str = "Ready";
/// Condition type: the operator is moving the resource towards its spec.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: the resource works below its spec (or cannot follow it).
pub const DEGRADED: &str = "Degraded";

/// A condition the reconciler wants, before times are filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredCondition {
    /// Condition type, e.g. [`READY`].
    pub type_: &'static str,
    /// `true` for `"True"`.
    pub status: bool,
    /// Stable CamelCase reason.
    pub reason: &'static str,
    /// Human explanation.
    pub message: String,
}

impl DesiredCondition {
    /// Builds a condition.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Builds the new conditions list from the desired conditions and the
/// previous list. A condition whose status is unchanged keeps its previous
/// `lastTransitionTime`; one whose status changed (or is new) gets `now`.
/// The result is ordered as `desired` is, so equal inputs give equal output.
pub fn merge_conditions(
    previous: &[Condition],
    desired: &[DesiredCondition],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|want| {
            let status = if want.status { "True" } else { "False" };
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == want.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: want.type_.to_owned(),
                status: status.to_owned(),
                reason: want.reason.to_owned(),
                message: want.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of this type is present with status `"True"`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

/// The current time truncated to whole seconds, as the API server stores it,
/// so a freshly built status compares equal to the one read back.
pub fn now() -> Time {
    let ts = jiff::Timestamp::now();
    Time(jiff::Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Time {
        Time(jiff::Timestamp::from_second(second).expect("valid timestamp"))
    }

    #[test]
    fn given_unchanged_status_when_merging_then_transition_time_is_kept() {
        let first = merge_conditions(
            &[],
            &[DesiredCondition::new(
                READY,
                false,
                "BrokersNotReady",
                "0/3",
            )],
            Some(1),
            &at(100),
        );
        let second = merge_conditions(
            &first,
            &[DesiredCondition::new(
                READY,
                false,
                "BrokersNotReady",
                "1/3",
            )],
            Some(1),
            &at(200),
        );
        assert_eq!(second[0].last_transition_time, at(100));
        assert_eq!(second[0].message, "1/3");
    }

    #[test]
    fn given_flipped_status_when_merging_then_transition_time_is_now() {
        let first = merge_conditions(
            &[],
            &[DesiredCondition::new(
                READY,
                false,
                "BrokersNotReady",
                "0/3",
            )],
            Some(1),
            &at(100),
        );
        let second = merge_conditions(
            &first,
            &[DesiredCondition::new(READY, true, "AllBrokersReady", "3/3")],
            Some(1),
            &at(200),
        );
        assert_eq!(second[0].last_transition_time, at(200));
        assert_eq!(second[0].status, "True");
    }

    #[test]
    fn given_same_inputs_when_merging_twice_then_output_is_identical() {
        let desired = [
            DesiredCondition::new(READY, true, "AllBrokersReady", "3/3"),
            DesiredCondition::new(DEGRADED, false, "AsExpected", ""),
        ];
        let first = merge_conditions(&[], &desired, Some(2), &at(100));
        let second = merge_conditions(&first, &desired, Some(2), &at(300));
        assert_eq!(first, second);
    }
}
