//! Two Topic resources naming the same Kafka topic in the same cluster: the
//! oldest (creationTimestamp, then name) owns it; the others are refused with
//! reason `ResourceConflict` until the owner is gone.

use kube::ResourceExt;

use crate::crd::Topic;

fn same_topic(a: &Topic, b: &Topic) -> bool {
    a.spec.cluster_ref.name == b.spec.cluster_ref.name
        && a.effective_topic_name() == b.effective_topic_name()
}

fn age_key(t: &Topic) -> (Option<jiff::Timestamp>, String) {
    (t.creation_timestamp().map(|ts| ts.0), t.name_any())
}

/// The Topic that owns `topic`'s Kafka topic among `all` (same namespace),
/// if it is another resource. `topic` itself may or may not be in `all`.
/// With `include_deleting` false, resources being deleted are not owners.
pub fn owner_other_than<'a>(
    topic: &Topic,
    all: &'a [Topic],
    include_deleting: bool,
) -> Option<&'a Topic> {
    let me = age_key(topic);
    all.iter()
        .filter(|other| other.name_any() != topic.name_any())
        .filter(|other| same_topic(topic, other))
        .filter(|other| include_deleting || other.metadata.deletion_timestamp.is_none())
        .filter(|other| age_key(other) < me)
        .min_by_key(|other| age_key(other))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::fixtures::topic;

    #[test]
    fn given_two_topics_with_one_name_when_checking_then_the_older_owns_it() {
        let older = topic("orders-a", "2024-01-01T00:00:00Z");
        let mut newer = topic("orders-b", "2024-02-01T00:00:00Z");
        newer.spec.topic_name = Some("orders-a".into());
        let all = vec![older.clone(), newer.clone()];
        assert_eq!(
            owner_other_than(&newer, &all, true)
                .map(|t| t.name_any())
                .as_deref(),
            Some("orders-a")
        );
        assert!(owner_other_than(&older, &all, true).is_none());
    }

    #[test]
    fn given_equal_creation_times_when_checking_then_the_name_breaks_the_tie() {
        let mut a = topic("a", "2024-01-01T00:00:00Z");
        a.spec.topic_name = Some("shared".into());
        let mut b = topic("b", "2024-01-01T00:00:00Z");
        b.spec.topic_name = Some("shared".into());
        let all = vec![b.clone(), a.clone()];
        assert!(owner_other_than(&a, &all, true).is_none());
        assert_eq!(
            owner_other_than(&b, &all, true)
                .map(|t| t.name_any())
                .as_deref(),
            Some("a")
        );
    }

    #[test]
    fn given_another_cluster_or_a_deleting_owner_when_checking_then_there_is_no_conflict() {
        let older = topic("orders", "2024-01-01T00:00:00Z");
        let mut other_cluster = topic("orders-2", "2024-02-01T00:00:00Z");
        other_cluster.spec.topic_name = Some("orders".into());
        other_cluster.spec.cluster_ref.name = "other".into();
        assert!(owner_other_than(&other_cluster, std::slice::from_ref(&older), true).is_none());

        let mut deleting = older.clone();
        deleting.metadata.deletion_timestamp = deleting.metadata.creation_timestamp.clone();
        let mut newer = topic("orders-3", "2024-02-01T00:00:00Z");
        newer.spec.topic_name = Some("orders".into());
        let all = vec![deleting];
        assert!(
            owner_other_than(&newer, &all, true).is_some(),
            "a deleting owner still blocks apply"
        );
        assert!(
            owner_other_than(&newer, &all, false).is_none(),
            "but does not own data any more"
        );
    }
}
