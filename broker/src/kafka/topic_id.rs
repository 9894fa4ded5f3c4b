//! Kafka topic ids for Rill topics.
//!
//! Newer Kafka requests (Fetch v13+, Metadata v10+, Produce v13,
//! DeleteTopics v6) name topics by a 128-bit id. Every Rill topic has a
//! random UUID given at creation (by the controller in a cluster, by the
//! broker itself when standalone), so a topic deleted and created again
//! under the same name has a new id and clients holding the old one get
//! UNKNOWN_TOPIC_ID. [`crate::partition::manager::TopicView::id`] carries it.

use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::partition::manager::ReplicaManager;

/// Finds the topic among `(name, id)` pairs whose id is `id`; the nil id
/// never matches.
pub fn resolve<'a>(id: Uuid, topics: impl IntoIterator<Item = (&'a str, Uuid)>) -> Option<&'a str> {
    if id.is_nil() {
        return None;
    }
    topics.into_iter().find(|(_, t)| *t == id).map(|(n, _)| n)
}

/// The broker's topics as `(name, id)`.
pub fn known_topics(manager: &ReplicaManager) -> Vec<(String, Uuid)> {
    manager
        .metadata(&[])
        .map(|ts| ts.into_iter().map(|t| (t.name, t.id)).collect())
        .unwrap_or_default()
}

/// The id of topic `name`, nil when it is unknown.
pub fn id_of(manager: &ReplicaManager, name: &str) -> Uuid {
    manager
        .metadata(&[name.to_owned()])
        .ok()
        .and_then(|ts| ts.into_iter().next())
        .map_or(Uuid::nil(), |t| t.id)
}

/// Names the topics of one request: by id when the request version
/// carries ids (looked up among the broker's topics once per request), by
/// the name it carries otherwise.
pub struct TopicNames {
    /// The broker's topics, when the request names topics by id.
    known: Option<Vec<(String, Uuid)>>,
}

impl TopicNames {
    /// For a request that names topics by id when `by_id`.
    pub fn new(manager: &ReplicaManager, by_id: bool) -> Self {
        Self {
            known: by_id.then(|| known_topics(manager)),
        }
    }

    /// The topic a request entry means, `None` for an unknown id.
    pub fn name(&self, name: &str, id: Uuid) -> Option<String> {
        match &self.known {
            Some(known) => {
                resolve(id, known.iter().map(|(n, i)| (n.as_str(), *i))).map(str::to_owned)
            }
            None => Some(name.to_owned()),
        }
    }
}

/// A topic name as the codec's string type.
pub fn str_bytes(name: &str) -> StrBytes {
    StrBytes::from_string(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_topic_ids_when_resolved_should_find_only_the_topic_with_that_id() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let topics = [("a", a), ("b", b)];
        assert_eq!(resolve(b, topics), Some("b"));
        assert_eq!(resolve(Uuid::new_v4(), topics), None, "an unknown id");
        assert_eq!(
            resolve(Uuid::nil(), [("x", Uuid::nil())]),
            None,
            "nil never matches"
        );
    }
}
