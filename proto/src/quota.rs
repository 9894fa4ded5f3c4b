//! Kafka's client quotas: which clients a quota applies to (an entity), what
//! it limits (a key) and how a broker finds the quota of a request.
//!
//! An entity names a `user` (the authenticated principal's name, `alice`
//! for `User:alice`, `ANONYMOUS` without authentication), a `client-id`, or
//! both; either may be the default entity of its type (`<default>`, a
//! null name in Kafka's protocol), which applies to every user or client id
//! without a quota of its own. The keys are Kafka's:
//! `producer_byte_rate` and `consumer_byte_rate` (bytes per second, whole
//! numbers) and `request_percentage` (a share of one request thread, in
//! percent, over the quota window).
//!
//! For a request of user U with client id C, the quota of each key is the
//! value of the first of these entities that has one, as in Kafka:
//!
//! 1. user U, client-id C
//! 2. user U, client-id `<default>`
//! 3. user U
//! 4. user `<default>`, client-id C
//! 5. user `<default>`, client-id `<default>`
//! 6. user `<default>`
//! 7. client-id C
//! 8. client-id `<default>`
//!
//! No match means no limit. The entity matched also says which requests
//! share one measured rate ([`QuotaTags`]): the user part when the entity
//! names a user (U itself, for the default user too) and the client part
//! when it names a client id, so a quota on user U is shared by all of U's
//! clients, while a default client-id quota is measured per client id.
//!
//! The validation of AlterClientQuotas ([`QuotaAlteration::parse`]) and the
//! filters of DescribeClientQuotas ([`QuotaFilter`]) follow Kafka's
//! controller. Rill has no `ip` quotas and does not enforce
//! `controller_mutation_rate`; both are refused rather than stored unused.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::controller as wire;

/// The entity type of users.
pub const USER: &str = "user";
/// The entity type of client ids.
pub const CLIENT_ID: &str = "client-id";
/// Kafka's IP entity type, which Rill does not support.
pub const IP: &str = "ip";

/// The name of one part of an entity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityName {
    /// Every user or client id without an entity of its own.
    Default,
    Named(String),
}

impl EntityName {
    /// From Kafka's protocol, where a null name is the default entity.
    pub fn from_option(name: Option<&str>) -> Self {
        match name {
            None => Self::Default,
            Some(n) => Self::Named(n.to_owned()),
        }
    }

    /// Kafka's protocol form: `None` for the default entity.
    pub fn as_option(&self) -> Option<&str> {
        match self {
            Self::Default => None,
            Self::Named(n) => Some(n),
        }
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("<default>"),
            Self::Named(n) => write!(f, "'{n}'"),
        }
    }
}

/// Who a quota applies to: a user, a client id, or both (never neither).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QuotaEntity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<EntityName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<EntityName>,
}

impl QuotaEntity {
    pub fn user(name: EntityName) -> Self {
        Self {
            user: Some(name),
            client_id: None,
        }
    }

    pub fn client_id(name: EntityName) -> Self {
        Self {
            user: None,
            client_id: Some(name),
        }
    }

    pub fn user_and_client_id(user: EntityName, client_id: EntityName) -> Self {
        Self {
            user: Some(user),
            client_id: Some(client_id),
        }
    }

    /// Reads an entity from its components (entity type, name; no name is
    /// the default entity), checked as Kafka's controller checks them.
    pub fn parse<'a>(
        components: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Self, QuotaError> {
        let mut entity = Self {
            user: None,
            client_id: None,
        };
        let mut any = false;
        for (entity_type, name) in components {
            any = true;
            let slot = match entity_type {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                IP => return Err(QuotaError::IpEntity),
                other => return Err(QuotaError::UnknownEntityType(other.to_owned())),
            };
            if slot.is_some() {
                return Err(QuotaError::DuplicateEntityType(entity_type.to_owned()));
            }
            if name == Some("") {
                return Err(QuotaError::EmptyName(entity_type.to_owned()));
            }
            *slot = Some(EntityName::from_option(name));
        }
        if !any {
            return Err(QuotaError::EmptyEntity);
        }
        Ok(entity)
    }

    /// The components, user first (Kafka's protocol form).
    pub fn components(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut out = Vec::with_capacity(2);
        if let Some(u) = &self.user {
            out.push((USER, u.as_option()));
        }
        if let Some(c) = &self.client_id {
            out.push((CLIENT_ID, c.as_option()));
        }
        out
    }

    /// Whether the entity has a part of `entity_type`, and its name.
    fn part(&self, entity_type: &str) -> Option<&EntityName> {
        match entity_type {
            USER => self.user.as_ref(),
            CLIENT_ID => self.client_id.as_ref(),
            _ => None,
        }
    }
}

impl fmt::Display for QuotaEntity {
    /// `user 'alice', client-id <default>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(u) = &self.user {
            write!(f, "user {u}")?;
            sep = ", ";
        }
        if let Some(c) = &self.client_id {
            write!(f, "{sep}client-id {c}")?;
        }
        Ok(())
    }
}

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaKey {
    /// Bytes per second of produce requests.
    ProducerByteRate,
    /// Bytes per second of fetch responses.
    ConsumerByteRate,
    /// Percent of one request thread's time over the quota window.
    RequestPercentage,
}

impl QuotaKey {
    pub const ALL: [Self; 3] = [
        Self::ProducerByteRate,
        Self::ConsumerByteRate,
        Self::RequestPercentage,
    ];

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ProducerByteRate => "producer_byte_rate",
            Self::ConsumerByteRate => "consumer_byte_rate",
            Self::RequestPercentage => "request_percentage",
        }
    }

    /// The key named `name`.
    pub fn from_name(name: &str) -> Result<Self, QuotaError> {
        if let Some(k) = Self::ALL.into_iter().find(|k| k.name() == name) {
            return Ok(k);
        }
        if name == "controller_mutation_rate" {
            return Err(QuotaError::NotEnforced(name.to_owned()));
        }
        Err(QuotaError::UnknownKey(name.to_owned()))
    }

    /// Checks a value as Kafka does: greater than 0, and a whole number for
    /// the byte rates.
    pub fn validate(self, value: f64) -> Result<(), QuotaError> {
        if !value.is_finite() || value <= 0.0 {
            return Err(QuotaError::NotPositive { key: self, value });
        }
        let whole = matches!(self, Self::ProducerByteRate | Self::ConsumerByteRate);
        if whole && (value % 1.0).abs() > 1e-6 {
            return Err(QuotaError::Fractional { key: self, value });
        }
        if whole && value > i64::MAX as f64 {
            return Err(QuotaError::TooLarge { key: self, value });
        }
        Ok(())
    }
}

impl fmt::Display for QuotaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a quota change or filter is refused. Each maps to Kafka's
/// INVALID_REQUEST, except where [`QuotaError::unsupported`] says
/// UNSUPPORTED_VERSION (as Kafka answers DescribeClientQuotas).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuotaError {
    #[error("invalid empty client quota entity")]
    EmptyEntity,
    #[error("entity type `{0}` appears more than once")]
    DuplicateEntityType(String),
    #[error("unhandled client quota entity type `{0}`: the types are `user` and `client-id`")]
    UnknownEntityType(String),
    #[error("Rill does not support `ip` quotas (connection_creation_rate)")]
    IpEntity,
    #[error("an empty {0} name is not supported (the default entity has no name)")]
    EmptyName(String),
    #[error(
        "invalid configuration key `{0}`: the keys are producer_byte_rate, consumer_byte_rate and request_percentage"
    )]
    UnknownKey(String),
    #[error("`{0}` is not enforced by Rill")]
    NotEnforced(String),
    #[error("quota {key} must be greater than 0, not {value}")]
    NotPositive { key: QuotaKey, value: f64 },
    #[error("quota {key} cannot be a fractional value ({value})")]
    Fractional { key: QuotaKey, value: f64 },
    #[error("quota {key} is too large for a long ({value})")]
    TooLarge { key: QuotaKey, value: f64 },
    #[error("duplicate quota key {0}, not updating quota for this entity")]
    DuplicateKey(String),
    #[error("ignoring duplicate entity {0}")]
    DuplicateEntity(QuotaEntity),
    #[error("unsupported match type {0}")]
    MatchType(i8),
    #[error("match type EXACT needs a name to match")]
    ExactWithoutName,
    #[error("match type {0} does not take a name")]
    NameNotExpected(&'static str),
    #[error("an ip filter component cannot be combined with user or client-id ones")]
    IpWithOthers,
    #[error("invalid empty entity type")]
    EmptyEntityType,
}

impl QuotaError {
    /// Whether Kafka answers this with UNSUPPORTED_VERSION in
    /// DescribeClientQuotas (an entity type or match type it does not
    /// know); everything else is INVALID_REQUEST.
    pub fn unsupported(&self) -> bool {
        matches!(self, Self::UnknownEntityType(_) | Self::MatchType(_))
    }
}

/// One change to the quotas of one entity: per key, a new value or
/// removal (`None`).
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaAlteration {
    pub entity: QuotaEntity,
    pub ops: Vec<(QuotaKey, Option<f64>)>,
}

impl QuotaAlteration {
    /// Reads one AlterClientQuotas entry: its entity components and its
    /// operations (key, value, remove), checked as Kafka's controller
    /// checks them.
    pub fn parse<'a>(
        components: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
        ops: impl IntoIterator<Item = (&'a str, f64, bool)>,
    ) -> Result<Self, QuotaError> {
        let entity = QuotaEntity::parse(components)?;
        let mut seen = BTreeSet::new();
        let mut parsed = Vec::new();
        for (key, value, remove) in ops {
            if !seen.insert(key) {
                return Err(QuotaError::DuplicateKey(key.to_owned()));
            }
            let k = QuotaKey::from_name(key)?;
            if remove {
                parsed.push((k, None));
            } else {
                k.validate(value)?;
                parsed.push((k, Some(value)));
            }
        }
        Ok(Self {
            entity,
            ops: parsed,
        })
    }

    /// The controller protocol's form.
    pub fn to_wire(&self) -> wire::QuotaAlteration {
        wire::QuotaAlteration {
            entity: entity_to_wire(&self.entity),
            ops: self
                .ops
                .iter()
                .map(|(k, v)| wire::QuotaOp {
                    key: k.name().to_owned(),
                    value: v.unwrap_or(0.0),
                    remove: v.is_none(),
                })
                .collect(),
        }
    }

    /// Reads (and checks) the controller protocol's form.
    pub fn from_wire(a: &wire::QuotaAlteration) -> Result<Self, QuotaError> {
        Self::parse(
            a.entity
                .iter()
                .map(|c| (c.entity_type.as_str(), c.name.as_deref())),
            a.ops.iter().map(|o| (o.key.as_str(), o.value, o.remove)),
        )
    }
}

fn entity_to_wire(entity: &QuotaEntity) -> Vec<wire::QuotaEntityComponent> {
    entity
        .components()
        .into_iter()
        .map(|(t, n)| wire::QuotaEntityComponent {
            entity_type: t.to_owned(),
            name: n.map(str::to_owned),
        })
        .collect()
}

/// Which requests share one measured rate: the user when the quota's
/// entity names a user, the client id when it names one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuotaTags {
    pub user: Option<String>,
    pub client_id: Option<String>,
}

/// The quota of a request for one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The limit.
    pub value: f64,
    /// The entity it comes from.
    pub entity: QuotaEntity,
    /// Who shares the rate it limits.
    pub tags: QuotaTags,
}

/// The quotas of a cluster: per entity, the value of each key it sets.
/// Values are always finite and greater than 0 (every way in checks them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<QuotaEntry>", into = "Vec<QuotaEntry>")]
pub struct ClientQuotas {
    entries: BTreeMap<QuotaEntity, BTreeMap<QuotaKey, f64>>,
}

// Values are finite (checked on every way in), so equality is total.
impl Eq for ClientQuotas {}

/// The stored form of one entity's quotas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct QuotaEntry {
    entity: QuotaEntity,
    values: BTreeMap<QuotaKey, f64>,
}

impl TryFrom<Vec<QuotaEntry>> for ClientQuotas {
    type Error = QuotaError;

    fn try_from(entries: Vec<QuotaEntry>) -> Result<Self, QuotaError> {
        let mut quotas = Self::default();
        for e in entries {
            for (k, v) in &e.values {
                k.validate(*v)?;
            }
            if e.entity.user.is_none() && e.entity.client_id.is_none() {
                return Err(QuotaError::EmptyEntity);
            }
            if !e.values.is_empty() {
                quotas.entries.insert(e.entity, e.values);
            }
        }
        Ok(quotas)
    }
}

impl From<ClientQuotas> for Vec<QuotaEntry> {
    fn from(q: ClientQuotas) -> Self {
        q.entries
            .into_iter()
            .map(|(entity, values)| QuotaEntry { entity, values })
            .collect()
    }
}

impl ClientQuotas {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entity with its quotas, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (&QuotaEntity, &BTreeMap<QuotaKey, f64>)> {
        self.entries.iter()
    }

    /// The value `entity` sets for `key`.
    pub fn get(&self, entity: &QuotaEntity, key: QuotaKey) -> Option<f64> {
        self.entries.get(entity)?.get(&key).copied()
    }

    /// Whether some entity sets `key` (when none does, no request is
    /// limited by it).
    pub fn has(&self, key: QuotaKey) -> bool {
        self.entries.values().any(|v| v.contains_key(&key))
    }

    /// Applies one checked alteration: sets or removes each key; an entity
    /// left without keys is gone.
    pub fn apply(&mut self, alteration: &QuotaAlteration) {
        let values = self.entries.entry(alteration.entity.clone()).or_default();
        for (key, value) in &alteration.ops {
            match value {
                Some(v) => {
                    values.insert(*key, *v);
                }
                None => {
                    values.remove(key);
                }
            }
        }
        if values.is_empty() {
            self.entries.remove(&alteration.entity);
        }
    }

    /// Applies a batch of AlterClientQuotas entries, each on its own: an
    /// entity named by more than one entry is refused in all of them
    /// (Kafka's "duplicate entity"); the others are applied in order.
    pub fn alter(&mut self, alterations: &[QuotaAlteration]) -> Vec<Result<(), QuotaError>> {
        let mut count: BTreeMap<&QuotaEntity, usize> = BTreeMap::new();
        for a in alterations {
            *count.entry(&a.entity).or_default() += 1;
        }
        alterations
            .iter()
            .map(|a| {
                if count[&a.entity] > 1 {
                    return Err(QuotaError::DuplicateEntity(a.entity.clone()));
                }
                self.apply(a);
                Ok(())
            })
            .collect()
    }

    /// The quota of `key` for a request of `user` with `client_id`, in
    /// Kafka's order (see the module documentation); `None`: no limit.
    pub fn resolve(&self, key: QuotaKey, user: &str, client_id: &str) -> Option<Resolved> {
        use EntityName::{Default, Named};
        let u = || Named(user.to_owned());
        let c = || Named(client_id.to_owned());
        let order = [
            QuotaEntity::user_and_client_id(u(), c()),
            QuotaEntity::user_and_client_id(u(), Default),
            QuotaEntity::user(u()),
            QuotaEntity::user_and_client_id(Default, c()),
            QuotaEntity::user_and_client_id(Default, Default),
            QuotaEntity::user(Default),
            QuotaEntity::client_id(c()),
            QuotaEntity::client_id(Default),
        ];
        order.into_iter().find_map(|entity| {
            let value = self.get(&entity, key)?;
            let tags = QuotaTags {
                user: entity.user.as_ref().map(|_| user.to_owned()),
                client_id: entity.client_id.as_ref().map(|_| client_id.to_owned()),
            };
            Some(Resolved {
                value,
                entity,
                tags,
            })
        })
    }

    /// The entities `filter` selects, with their quotas (DescribeClientQuotas).
    pub fn describe(&self, filter: &QuotaFilter) -> Vec<(&QuotaEntity, &BTreeMap<QuotaKey, f64>)> {
        self.entries
            .iter()
            .filter(|(e, _)| filter.matches(e))
            .collect()
    }

    /// The controller protocol's form.
    pub fn to_wire(&self) -> Vec<wire::ClientQuota> {
        self.entries
            .iter()
            .map(|(entity, values)| wire::ClientQuota {
                entity: entity_to_wire(entity),
                values: values
                    .iter()
                    .map(|(k, v)| (k.name().to_owned(), *v))
                    .collect(),
            })
            .collect()
    }

    /// Reads (and checks) the controller protocol's form.
    pub fn from_wire(quotas: &[wire::ClientQuota]) -> Result<Self, QuotaError> {
        let mut out = Self::default();
        for q in quotas {
            let entity = QuotaEntity::parse(
                q.entity
                    .iter()
                    .map(|c| (c.entity_type.as_str(), c.name.as_deref())),
            )?;
            let mut values = BTreeMap::new();
            for (k, v) in &q.values {
                let key = QuotaKey::from_name(k)?;
                key.validate(*v)?;
                values.insert(key, *v);
            }
            if !values.is_empty() {
                out.entries.insert(entity, values);
            }
        }
        Ok(out)
    }
}

/// How a DescribeClientQuotas filter component matches names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch {
    /// Exactly this name (Kafka's MATCH_TYPE_EXACT, 0).
    Exact(String),
    /// The default entity (MATCH_TYPE_DEFAULT, 1).
    Default,
    /// Any name, the default included (MATCH_TYPE_SPECIFIED, 2).
    Any,
}

/// A DescribeClientQuotas filter: per entity type how its name must match;
/// `strict` also requires the entity to have no other types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaFilter {
    pub components: Vec<(String, NameMatch)>,
    pub strict: bool,
}

impl QuotaFilter {
    /// Reads a filter from its components (entity type, match type, name),
    /// checked as Kafka checks them. `ip` components are accepted (Kafka
    /// has them) and match nothing, as Rill has no ip quotas.
    pub fn parse<'a>(
        components: impl IntoIterator<Item = (&'a str, i8, Option<&'a str>)>,
        strict: bool,
    ) -> Result<Self, QuotaError> {
        let mut out: Vec<(String, NameMatch)> = Vec::new();
        for (entity_type, match_type, name) in components {
            if entity_type.is_empty() {
                return Err(QuotaError::EmptyEntityType);
            }
            if out.iter().any(|(t, _)| t == entity_type) {
                return Err(QuotaError::DuplicateEntityType(entity_type.to_owned()));
            }
            if ![USER, CLIENT_ID, IP].contains(&entity_type) {
                return Err(QuotaError::UnknownEntityType(entity_type.to_owned()));
            }
            let m = match (match_type, name) {
                (0, Some(n)) => NameMatch::Exact(n.to_owned()),
                (0, None) => return Err(QuotaError::ExactWithoutName),
                (1, None) => NameMatch::Default,
                (1, Some(_)) => return Err(QuotaError::NameNotExpected("DEFAULT")),
                (2, None) => NameMatch::Any,
                (2, Some(_)) => return Err(QuotaError::NameNotExpected("SPECIFIED")),
                (other, _) => return Err(QuotaError::MatchType(other)),
            };
            out.push((entity_type.to_owned(), m));
        }
        let has = |t: &str| out.iter().any(|(x, _)| x == t);
        if has(IP) && (has(USER) || has(CLIENT_ID)) {
            return Err(QuotaError::IpWithOthers);
        }
        Ok(Self {
            components: out,
            strict,
        })
    }

    /// Whether `entity` passes the filter.
    pub fn matches(&self, entity: &QuotaEntity) -> bool {
        let parts = entity.components().len();
        if self.strict && parts != self.components.len() {
            return false;
        }
        self.components.iter().all(|(t, m)| match entity.part(t) {
            None => false,
            Some(name) => match m {
                NameMatch::Exact(n) => name.as_option() == Some(n.as_str()),
                NameMatch::Default => *name == EntityName::Default,
                NameMatch::Any => true,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EntityName::{Default, Named};
    use QuotaKey::*;

    fn named(n: &str) -> EntityName {
        Named(n.to_owned())
    }

    fn set(quotas: &mut ClientQuotas, entity: QuotaEntity, key: QuotaKey, value: f64) {
        quotas.apply(&QuotaAlteration {
            entity,
            ops: vec![(key, Some(value))],
        });
    }

    /// Every entity of the resolution order, each with its own value:
    /// removing them one by one from the most specific must walk the
    /// order.
    #[test]
    fn given_every_entity_kind_when_resolving_then_the_most_specific_wins_in_kafkas_order() {
        let order = [
            QuotaEntity::user_and_client_id(named("alice"), named("app")),
            QuotaEntity::user_and_client_id(named("alice"), Default),
            QuotaEntity::user(named("alice")),
            QuotaEntity::user_and_client_id(Default, named("app")),
            QuotaEntity::user_and_client_id(Default, Default),
            QuotaEntity::user(Default),
            QuotaEntity::client_id(named("app")),
            QuotaEntity::client_id(Default),
        ];
        let mut quotas = ClientQuotas::default();
        for (i, e) in order.iter().enumerate() {
            set(
                &mut quotas,
                e.clone(),
                ProducerByteRate,
                (i + 1) as f64 * 1000.0,
            );
        }
        let tags = |u: bool, c: bool| QuotaTags {
            user: u.then(|| "alice".to_owned()),
            client_id: c.then(|| "app".to_owned()),
        };
        let expected_tags = [
            tags(true, true),
            tags(true, true),
            tags(true, false),
            tags(true, true),
            tags(true, true),
            tags(true, false),
            tags(false, true),
            tags(false, true),
        ];
        for (i, e) in order.iter().enumerate() {
            let r = quotas
                .resolve(ProducerByteRate, "alice", "app")
                .expect("a quota applies");
            assert_eq!(r.entity, *e, "step {}", i + 1);
            assert_eq!(r.value, (i + 1) as f64 * 1000.0);
            assert_eq!(r.tags, expected_tags[i], "step {}", i + 1);
            quotas.apply(&QuotaAlteration {
                entity: e.clone(),
                ops: vec![(ProducerByteRate, None)],
            });
        }
        assert_eq!(quotas.resolve(ProducerByteRate, "alice", "app"), None);
        assert!(quotas.is_empty());
    }

    #[test]
    fn given_quotas_of_other_users_clients_and_keys_when_resolving_then_they_do_not_apply() {
        let mut quotas = ClientQuotas::default();
        set(
            &mut quotas,
            QuotaEntity::user(named("bob")),
            ProducerByteRate,
            10.0,
        );
        set(
            &mut quotas,
            QuotaEntity::client_id(named("other")),
            ProducerByteRate,
            20.0,
        );
        set(
            &mut quotas,
            QuotaEntity::user(named("alice")),
            ConsumerByteRate,
            30.0,
        );
        assert_eq!(quotas.resolve(ProducerByteRate, "alice", "app"), None);
        let r = quotas.resolve(ConsumerByteRate, "alice", "app").unwrap();
        assert_eq!((r.value, r.tags.client_id), (30.0, None));
        assert!(quotas.has(ConsumerByteRate) && !quotas.has(RequestPercentage));
        set(
            &mut quotas,
            QuotaEntity::client_id(Default),
            ProducerByteRate,
            40.0,
        );
        let r = quotas.resolve(ProducerByteRate, "ANONYMOUS", "x").unwrap();
        assert_eq!(r.value, 40.0);
        assert_eq!(
            r.tags,
            QuotaTags {
                user: None,
                client_id: Some("x".into())
            },
            "a default client-id quota is measured per client id"
        );
    }

    #[test]
    fn given_bad_entries_when_parsed_then_each_is_refused_as_kafka_refuses_it() {
        let parse = |c: &[(&str, Option<&str>)], ops: &[(&str, f64, bool)]| {
            QuotaAlteration::parse(c.iter().copied(), ops.iter().copied())
        };
        let ok = parse(
            &[("user", Some("alice")), ("client-id", None)],
            &[
                ("producer_byte_rate", 1024.0, false),
                ("request_percentage", 12.5, false),
                ("consumer_byte_rate", 0.0, true),
            ],
        )
        .unwrap();
        assert_eq!(
            ok.entity,
            QuotaEntity::user_and_client_id(named("alice"), Default)
        );
        assert_eq!(
            ok.ops,
            vec![
                (ProducerByteRate, Some(1024.0)),
                (RequestPercentage, Some(12.5)),
                (ConsumerByteRate, None)
            ]
        );
        let rate = [("producer_byte_rate", 1.0, false)];
        assert_eq!(parse(&[], &rate), Err(QuotaError::EmptyEntity));
        assert_eq!(
            parse(&[("user", Some("a")), ("user", Some("b"))], &rate),
            Err(QuotaError::DuplicateEntityType("user".into()))
        );
        assert_eq!(
            parse(&[("group", Some("a"))], &rate),
            Err(QuotaError::UnknownEntityType("group".into()))
        );
        assert_eq!(
            parse(&[("ip", Some("10.0.0.1"))], &rate),
            Err(QuotaError::IpEntity)
        );
        assert_eq!(
            parse(&[("client-id", Some(""))], &rate),
            Err(QuotaError::EmptyName("client-id".into()))
        );
        let user = [("user", Some("a"))];
        assert_eq!(
            parse(&user, &[("bytes", 1.0, false)]),
            Err(QuotaError::UnknownKey("bytes".into()))
        );
        assert!(matches!(
            parse(&user, &[("controller_mutation_rate", 1.0, false)]),
            Err(QuotaError::NotEnforced(_))
        ));
        assert!(matches!(
            parse(&user, &[("producer_byte_rate", 0.0, false)]),
            Err(QuotaError::NotPositive { .. })
        ));
        assert!(matches!(
            parse(&user, &[("request_percentage", -1.0, false)]),
            Err(QuotaError::NotPositive { .. })
        ));
        assert!(matches!(
            parse(&user, &[("consumer_byte_rate", 10.5, false)]),
            Err(QuotaError::Fractional { .. })
        ));
        assert!(matches!(
            parse(&user, &[("producer_byte_rate", f64::NAN, false)]),
            Err(QuotaError::NotPositive { .. })
        ));
        assert_eq!(
            parse(
                &user,
                &[
                    ("producer_byte_rate", 1.0, false),
                    ("producer_byte_rate", 2.0, false)
                ]
            ),
            Err(QuotaError::DuplicateKey("producer_byte_rate".into()))
        );
        assert!(!QuotaError::EmptyEntity.unsupported());
        assert!(QuotaError::UnknownEntityType("x".into()).unsupported());
    }

    #[test]
    fn given_a_batch_naming_an_entity_twice_when_altered_then_those_entries_are_refused() {
        let a = |name: &str, v: f64| QuotaAlteration {
            entity: QuotaEntity::client_id(named(name)),
            ops: vec![(ProducerByteRate, Some(v))],
        };
        let mut quotas = ClientQuotas::default();
        let out = quotas.alter(&[a("x", 1.0), a("y", 2.0), a("x", 3.0)]);
        assert!(matches!(out[0], Err(QuotaError::DuplicateEntity(_))));
        assert_eq!(out[1], Ok(()));
        assert!(matches!(out[2], Err(QuotaError::DuplicateEntity(_))));
        assert_eq!(
            quotas.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>(),
            vec![QuotaEntity::client_id(named("y"))]
        );
    }

    #[test]
    fn given_filters_when_describing_then_exact_default_any_and_strict_follow_kafka() {
        let mut quotas = ClientQuotas::default();
        let entities = [
            QuotaEntity::user(named("alice")),
            QuotaEntity::user(Default),
            QuotaEntity::user_and_client_id(named("alice"), named("app")),
            QuotaEntity::client_id(named("app")),
            QuotaEntity::client_id(Default),
        ];
        for e in &entities {
            set(&mut quotas, e.clone(), ConsumerByteRate, 1.0);
        }
        let select = |c: &[(&str, i8, Option<&str>)], strict: bool| -> Vec<QuotaEntity> {
            let f = QuotaFilter::parse(c.iter().copied(), strict).unwrap();
            quotas
                .describe(&f)
                .into_iter()
                .map(|(e, _)| e.clone())
                .collect()
        };
        assert_eq!(
            select(&[("user", 0, Some("alice"))], true),
            vec![QuotaEntity::user(named("alice"))]
        );
        assert_eq!(
            select(&[("user", 0, Some("alice"))], false),
            vec![
                QuotaEntity::user(named("alice")),
                QuotaEntity::user_and_client_id(named("alice"), named("app")),
            ]
        );
        assert_eq!(
            select(&[("user", 1, None)], true),
            vec![QuotaEntity::user(Default)]
        );
        assert_eq!(
            select(&[("client-id", 2, None)], true),
            vec![
                QuotaEntity::client_id(Default),
                QuotaEntity::client_id(named("app"))
            ],
            "SPECIFIED matches the default entity too"
        );
        assert_eq!(select(&[], false).len(), entities.len());
        assert_eq!(select(&[("ip", 2, None)], false), vec![]);
        let bad = |c: &[(&str, i8, Option<&str>)]| QuotaFilter::parse(c.iter().copied(), false);
        assert_eq!(bad(&[("user", 0, None)]), Err(QuotaError::ExactWithoutName));
        assert_eq!(
            bad(&[("user", 1, Some("a"))]),
            Err(QuotaError::NameNotExpected("DEFAULT"))
        );
        assert_eq!(bad(&[("user", 7, None)]), Err(QuotaError::MatchType(7)));
        assert_eq!(
            bad(&[("group", 2, None)]),
            Err(QuotaError::UnknownEntityType("group".into()))
        );
        assert_eq!(
            bad(&[("user", 2, None), ("user", 1, None)]),
            Err(QuotaError::DuplicateEntityType("user".into()))
        );
        assert_eq!(
            bad(&[("ip", 2, None), ("user", 2, None)]),
            Err(QuotaError::IpWithOthers)
        );
        assert_eq!(bad(&[("", 2, None)]), Err(QuotaError::EmptyEntityType));
    }

    #[test]
    fn given_quotas_when_sent_over_the_controller_protocol_or_stored_then_they_come_back_unchanged()
    {
        let mut quotas = ClientQuotas::default();
        set(
            &mut quotas,
            QuotaEntity::user_and_client_id(named("alice"), Default),
            ProducerByteRate,
            1024.0,
        );
        set(
            &mut quotas,
            QuotaEntity::client_id(Default),
            RequestPercentage,
            50.5,
        );
        assert_eq!(
            ClientQuotas::from_wire(&quotas.to_wire()),
            Ok(quotas.clone())
        );
        let json = serde_json::to_string(&quotas).unwrap();
        assert_eq!(
            serde_json::from_str::<ClientQuotas>(&json).unwrap(),
            quotas,
            "{json}"
        );
        assert!(json.contains("producer_byte_rate"), "{json}");
        let negative = json.replace("1024.0", "-1024.0");
        assert!(serde_json::from_str::<ClientQuotas>(&negative).is_err());
        let a = QuotaAlteration {
            entity: QuotaEntity::user(Default),
            ops: vec![(ConsumerByteRate, Some(5.0)), (RequestPercentage, None)],
        };
        assert_eq!(QuotaAlteration::from_wire(&a.to_wire()), Ok(a));
        let mut bad = quotas.to_wire();
        bad[0].values.insert("producer_byte_rate".into(), -1.0);
        assert!(ClientQuotas::from_wire(&bad).is_err());
        assert_eq!(
            QuotaEntity::user_and_client_id(named("alice"), Default).to_string(),
            "user 'alice', client-id <default>"
        );
    }
}
