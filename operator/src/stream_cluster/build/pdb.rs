//! The PodDisruptionBudget: at most one broker voluntarily down at a time
//! (node drains, cluster autoscaler), so a partition with three replicas
//! keeps two.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Names, object_meta, selector_labels};
use crate::crd::StreamCluster;

pub(super) fn build(sc: &StreamCluster, names: &Names) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: object_meta(sc, &names.cluster),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&names.cluster)),
                ..LabelSelector::default()
            }),
            // A broker that is already unready serves nothing; letting it be
            // evicted cannot lower availability and keeps node drains moving.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::cluster;
    use super::*;

    #[test]
    fn given_a_cluster_when_building_pdb_then_max_unavailable_is_one() {
        let pdb = build(&cluster(), &Names::new("events"));
        let spec = pdb.spec.expect("spec");
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(spec.min_available, None);
        assert_eq!(
            spec.selector.and_then(|s| s.match_labels).expect("labels")["app.kubernetes.io/name"],
            "rill-broker"
        );
    }
}
