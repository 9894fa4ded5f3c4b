//! Who a User is on its cluster, and whether the cluster takes it.
//!
//! * Username: the User's name when it lives in the cluster's namespace,
//!   `<namespace>.<name>` elsewhere, so a tenant cannot name itself after
//!   a user of another namespace. Its principal is `User:<username>`.
//! * Admission: the cluster's own namespace always; others when listed in
//!   `spec.users.allowedNamespaces` (`*` lists every namespace).
//! * Conflicts: two admitted Users of one cluster with the same username
//!   (User `team.app` in the cluster's namespace and User `app` in
//!   namespace `team`): the oldest (creationTimestamp, then namespace and
//!   name) owns the username; the others are refused with
//!   `UsernameConflict` until it is gone.

use kube::ResourceExt;

use crate::crd::{StreamCluster, User};

/// The value of `allowedNamespaces` that admits every namespace.
pub const ANY_NAMESPACE: &str = "*";

/// The namespace of the StreamCluster a User names.
pub fn cluster_namespace(user: &User) -> String {
    user.spec
        .cluster
        .namespace
        .clone()
        .unwrap_or_else(|| user.namespace().unwrap_or_default())
}

/// The Kafka username of User `name` in `namespace` on a cluster in
/// `cluster_namespace`.
pub fn username(namespace: &str, name: &str, cluster_namespace: &str) -> String {
    if namespace == cluster_namespace {
        name.to_owned()
    } else {
        format!("{namespace}.{name}")
    }
}

/// The Kafka username of a User.
pub fn username_of(user: &User) -> String {
    username(
        &user.namespace().unwrap_or_default(),
        &user.name_any(),
        &cluster_namespace(user),
    )
}

/// The principal ACLs and the authorizer use for `username`.
pub fn principal(username: &str) -> String {
    format!("User:{username}")
}

/// Whether `cluster` takes Users from `namespace`.
pub fn admits(cluster: &StreamCluster, namespace: &str) -> bool {
    cluster.namespace().as_deref() == Some(namespace)
        || cluster
            .spec
            .users
            .allowed_namespaces
            .iter()
            .any(|allowed| allowed == ANY_NAMESPACE || allowed == namespace)
}

/// Whether `user` names `cluster`.
pub fn names_cluster(user: &User, cluster: &StreamCluster) -> bool {
    user.spec.cluster.name == cluster.name_any()
        && Some(cluster_namespace(user)) == cluster.namespace()
}

fn age_key(user: &User) -> (Option<jiff::Timestamp>, String, String) {
    (
        user.creation_timestamp().map(|ts| ts.0),
        user.namespace().unwrap_or_default(),
        user.name_any(),
    )
}

fn same(a: &User, b: &User) -> bool {
    a.namespace() == b.namespace() && a.name_any() == b.name_any()
}

/// The User that owns `user`'s username on `cluster`, when it is another
/// one: the oldest admitted User of the cluster with the same username.
/// `all` may or may not contain `user`. With `include_deleting` false,
/// Users being deleted own nothing.
pub fn owner_other_than<'a>(
    user: &User,
    cluster: &StreamCluster,
    all: &'a [User],
    include_deleting: bool,
) -> Option<&'a User> {
    let name = username_of(user);
    let me = age_key(user);
    all.iter()
        .filter(|other| !same(user, other))
        .filter(|other| names_cluster(other, cluster))
        .filter(|other| admits(cluster, &other.namespace().unwrap_or_default()))
        .filter(|other| username_of(other) == name)
        .filter(|other| include_deleting || other.metadata.deletion_timestamp.is_none())
        .filter(|other| age_key(other) < me)
        .min_by_key(|other| age_key(other))
}

/// The Users of `all` that own their username on `cluster` (admitted, and
/// the oldest of their username).
pub fn owners<'a>(cluster: &StreamCluster, all: &'a [User]) -> Vec<&'a User> {
    all.iter()
        .filter(|u| names_cluster(u, cluster))
        .filter(|u| admits(cluster, &u.namespace().unwrap_or_default()))
        .filter(|u| owner_other_than(u, cluster, all, true).is_none())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::fixtures::{cluster, user};

    #[test]
    fn given_users_in_and_out_of_the_cluster_namespace_when_naming_then_outsiders_are_prefixed() {
        assert_eq!(
            username_of(&user("data", "app", "2024-01-01T00:00:00Z")),
            "app"
        );
        assert_eq!(
            username_of(&user("team", "app", "2024-01-01T00:00:00Z")),
            "team.app"
        );
        assert_eq!(principal("team.app"), "User:team.app");
        let mut explicit = user("data", "app", "2024-01-01T00:00:00Z");
        explicit.spec.cluster.namespace = Some("data".into());
        assert_eq!(
            username_of(&explicit),
            "app",
            "naming the own namespace changes nothing"
        );
    }

    #[test]
    fn given_allowed_namespaces_when_admitting_then_only_listed_ones_and_the_own_namespace_pass() {
        let mut sc = cluster();
        assert!(
            admits(&sc, "data"),
            "the cluster's namespace is always admitted"
        );
        assert!(!admits(&sc, "team"), "by default no other namespace");
        sc.spec.users.allowed_namespaces = vec!["team".into()];
        assert!(admits(&sc, "team"));
        assert!(!admits(&sc, "other"));
        sc.spec.users.allowed_namespaces = vec![ANY_NAMESPACE.into()];
        assert!(admits(&sc, "other"));
    }

    #[test]
    fn given_two_users_with_one_username_when_checking_then_the_older_owns_it() {
        let mut sc = cluster();
        sc.spec.users.allowed_namespaces = vec!["team".into()];
        let tenant = user("team", "app", "2024-01-01T00:00:00Z");
        let local = user("data", "team.app", "2024-02-01T00:00:00Z");
        let all = vec![tenant.clone(), local.clone()];
        assert_eq!(username_of(&local), username_of(&tenant));
        assert_eq!(
            owner_other_than(&local, &sc, &all, true).map(ResourceExt::name_any),
            Some("app".to_owned())
        );
        assert!(owner_other_than(&tenant, &sc, &all, true).is_none());
        assert_eq!(owners(&sc, &all).len(), 1);
    }

    #[test]
    fn given_a_conflicting_user_not_admitted_or_on_another_cluster_when_checking_then_it_owns_nothing()
     {
        let sc = cluster();
        let outsider = user("team", "app", "2024-01-01T00:00:00Z");
        let local = user("data", "team.app", "2024-02-01T00:00:00Z");
        let all = vec![outsider.clone(), local.clone()];
        assert!(
            owner_other_than(&local, &sc, &all, true).is_none(),
            "a User of a namespace the cluster does not admit takes no username"
        );
        let mut elsewhere = user("data", "team.app", "2023-01-01T00:00:00Z");
        elsewhere.metadata.name = Some("team.app".into());
        elsewhere.spec.cluster.name = "other".into();
        assert!(owner_other_than(&local, &sc, &[elsewhere], true).is_none());
    }

    #[test]
    fn given_a_deleting_owner_when_checking_then_it_blocks_apply_but_not_cleanup() {
        let mut sc = cluster();
        sc.spec.users.allowed_namespaces = vec!["*".into()];
        let mut old = user("team", "app", "2024-01-01T00:00:00Z");
        old.metadata.deletion_timestamp = old.metadata.creation_timestamp.clone();
        let new = user("data", "team.app", "2024-02-01T00:00:00Z");
        let all = vec![old];
        assert!(owner_other_than(&new, &sc, &all, true).is_some());
        assert!(owner_other_than(&new, &sc, &all, false).is_none());
    }
}
