//! Startup gate: wait until the operator's CRDs exist and are Established
//! before starting watches (a watch on a missing CRD fails in a loop and
//! says little). Logs clearly what it waits for and how to fix it.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::Api;
use tokio::time::Instant;
use tracing::{info, warn};

/// Errors of [`wait_for_crds`].
#[derive(Debug, thiserror::Error)]
pub enum CrdWaitError {
    /// Not all CRDs became Established in time.
    #[error(
        "CustomResourceDefinitions {missing:?} are not Established after {waited:?}; install them with \
         `kubectl apply --server-side -f crds/` (the Helm chart installs them on first install){last_error}"
    )]
    Timeout {
        /// CRDs still missing or not Established.
        missing: Vec<String>,
        /// How long we waited.
        waited: Duration,
        /// The last API error, if any, as a suffix.
        last_error: String,
    },
}

/// Whether a CRD reports `Established=True`.
pub fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// Polls every `poll` until every CRD in `names` is Established, or fails
/// after `timeout`.
pub async fn wait_for_crds(
    client: Client,
    names: &[String],
    timeout: Duration,
    poll: Duration,
) -> Result<(), CrdWaitError> {
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let start = Instant::now();
    let mut logged = false;
    loop {
        let mut missing = Vec::new();
        let mut last_error = String::new();
        for name in names {
            match api.get_opt(name).await {
                Ok(Some(crd)) if is_established(&crd) => {}
                Ok(_) => missing.push(name.clone()),
                Err(error) => {
                    last_error = format!("; last error: {error}");
                    missing.push(name.clone());
                }
            }
        }
        if missing.is_empty() {
            info!(crds = ?names, "CustomResourceDefinitions are Established");
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(CrdWaitError::Timeout {
                missing,
                waited: timeout,
                last_error,
            });
        }
        if !logged {
            warn!(
                missing = ?missing,
                "waiting for CustomResourceDefinitions to be Established; install them with `kubectl apply --server-side -f crds/`{last_error}"
            );
            logged = true;
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinitionCondition, CustomResourceDefinitionStatus,
    };

    fn crd(established: &str) -> CustomResourceDefinition {
        CustomResourceDefinition {
            status: Some(CustomResourceDefinitionStatus {
                conditions: Some(vec![CustomResourceDefinitionCondition {
                    type_: "Established".into(),
                    status: established.into(),
                    ..CustomResourceDefinitionCondition::default()
                }]),
                ..CustomResourceDefinitionStatus::default()
            }),
            ..CustomResourceDefinition::default()
        }
    }

    #[test]
    fn given_crd_conditions_when_checking_then_only_established_true_counts() {
        assert!(is_established(&crd("True")));
        assert!(!is_established(&crd("False")));
        assert!(!is_established(&CustomResourceDefinition::default()));
    }
}
