//! Server-side apply with one field manager, skipped when nothing would
//! change.
//!
//! A server-side apply of an unchanged object is harmless for the API server
//! but it is still a write request; GitOps users and audit logs see every
//! one. So before applying, [`is_subset`] checks whether every field the
//! operator sets already has that value in the live object. Fields the API
//! server defaults (and the operator does not set) are ignored. A field the
//! server normalises (a quantity written as `0.5` read back as `500m`) makes
//! the check fail and costs one no-op apply per reconcile, never a wrong
//! object.

use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::context::FIELD_MANAGER;

/// Whether `desired` is contained in `live`: objects key by key (extra live
/// keys allowed), arrays element by element with equal length, scalars equal.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => want.iter().all(|(key, value)| {
            value.is_null() || have.get(key).is_some_and(|h| is_subset(value, h))
        }),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| is_subset(w, h))
        }
        (want, have) => want == have,
    }
}

/// Errors of [`apply_if_changed`].
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The object could not be serialised for comparison.
    #[error("cannot serialise {kind} {name}: {source}")]
    Serialize {
        /// Object kind.
        kind: String,
        /// Object name.
        name: String,
        /// Serializer error.
        #[source]
        source: serde_json::Error,
    },
    /// The API server refused the apply.
    #[error("server-side apply of {kind} {name} failed: {source}")]
    Kube {
        /// Object kind.
        kind: String,
        /// Object name.
        name: String,
        /// Client error.
        #[source]
        source: kube::Error,
    },
}

impl ApplyError {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ApplyError::Serialize { .. } => "serialize",
            ApplyError::Kube { .. } => "apply",
        }
    }
}

/// What [`apply_if_changed`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied<K> {
    /// The live object already matched; nothing was sent.
    Unchanged,
    /// The object did not exist and was created.
    Created(K),
    /// The object existed and was updated.
    Updated(K),
}

/// Server-side applies `desired` (field manager `rill-operator`, forced)
/// unless `live` already holds every field it sets.
pub async fn apply_if_changed<K>(
    api: &Api<K>,
    desired: &K,
    live: Option<&K>,
) -> Result<Applied<K>, ApplyError>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let kind = K::kind(&()).into_owned();
    let name = desired.name_any();
    if let Some(live) = live {
        let serialize = |obj: &K| {
            serde_json::to_value(obj).map_err(|source| ApplyError::Serialize {
                kind: kind.clone(),
                name: name.clone(),
                source,
            })
        };
        if is_subset(&serialize(desired)?, &serialize(live)?) {
            return Ok(Applied::Unchanged);
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let result = api
        .patch(&name, &params, &Patch::Apply(desired))
        .await
        .map_err(|source| ApplyError::Kube {
            kind: kind.clone(),
            name: name.clone(),
            source,
        })?;
    Ok(if live.is_some() {
        Applied::Updated(result)
    } else {
        Applied::Created(result)
    })
}

/// Merge-patches `status` into the status subresource of the object named
/// `name`, when `current` (the status read with the object) differs from
/// `desired`. `status` is what is written: the whole desired status, or only
/// the fields this writer owns. Returns whether a write happened.
pub async fn merge_status_if_changed<K, S>(
    api: &Api<K>,
    name: &str,
    current: Option<&S>,
    desired: &S,
    status: Value,
) -> Result<bool, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
    S: PartialEq,
{
    if current == Some(desired) {
        return Ok(false);
    }
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": status })),
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn given_server_defaults_in_live_when_comparing_then_desired_is_a_subset() {
        let desired =
            json!({"spec": {"ports": [{"name": "kafka", "port": 9092}], "selector": {"a": "b"}}});
        let live = json!({"spec": {"ports": [{"name": "kafka", "port": 9092, "protocol": "TCP"}], "selector": {"a": "b"}, "clusterIP": "10.0.0.1"}, "status": {}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn given_a_changed_or_missing_field_when_comparing_then_it_is_not_a_subset() {
        let live = json!({"spec": {"replicas": 3, "ports": [{"port": 1}, {"port": 2}]}});
        assert!(!is_subset(&json!({"spec": {"replicas": 5}}), &live));
        assert!(!is_subset(&json!({"spec": {"paused": true}}), &live));
        assert!(
            !is_subset(&json!({"spec": {"ports": [{"port": 1}]}}), &live),
            "list length differs"
        );
        assert!(
            !is_subset(
                &json!({"spec": {"ports": [{"port": 2}, {"port": 1}]}}),
                &live
            ),
            "order differs"
        );
    }
}
