//! Authorization of Kafka requests: the ACLs in force on this broker and
//! where ACL changes go.
//!
//! The [`Authorizer`] holds the ACLs and decides with Kafka's rule
//! ([`rill_proto::acl::authorize`]). With authorization off (the default,
//! as a Kafka broker without an authorizer) every request is allowed; with
//! it on (`--authorization`), a request no ACL allows is denied, except for
//! the `--super-users`.
//!
//! ACLs are cluster state. In a cluster the controller owns them: Kafka's
//! CreateAcls and DeleteAcls go to it ([`AclAdmin`], implemented by the
//! cluster link), and every broker receives the whole set in its metadata
//! stream, so a change takes effect on every broker as soon as the
//! controller has persisted it. A standalone broker keeps them itself, in
//! `acls.json` in its data directory ([`LocalAcls`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rill_proto::acl::{self, Acl, AclFilter, Action, Operation, ResourceType};

use super::Principal;

/// The ACLs in force and the decision rule.
#[derive(Debug, Default)]
pub struct Authorizer {
    enabled: bool,
    /// Principals allowed everything (`User:admin`).
    super_users: Vec<String>,
    acls: RwLock<Arc<Vec<Acl>>>,
}

impl Authorizer {
    /// An authorizer; `enabled` false allows every request.
    pub fn new(enabled: bool, super_users: Vec<String>) -> Self {
        Self {
            enabled,
            super_users,
            acls: RwLock::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Replaces every ACL.
    pub fn replace(&self, acls: Vec<Acl>) {
        *self.acls.write() = Arc::new(acls);
    }

    /// The ACLs in force.
    pub fn acls(&self) -> Arc<Vec<Acl>> {
        Arc::clone(&self.acls.read())
    }

    /// Whether `principal` from `host` may do `operation` to the resource
    /// `resource_type` `name`.
    pub fn allows(
        &self,
        principal: &Principal,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if !self.enabled {
            return true;
        }
        let principal = principal.to_string();
        acl::authorize(
            self.acls.read().iter(),
            &self.super_users,
            &Action {
                principal: &principal,
                host,
                operation,
                resource_type,
                name,
            },
        )
    }

    /// Whether `principal` may do `operation` to at least one resource of
    /// `resource_type` ([`rill_proto::acl::authorize_any`]).
    pub fn allows_any(
        &self,
        principal: &Principal,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if !self.enabled {
            return true;
        }
        let acls = self.acls();
        acl::authorize_any(
            acls.iter(),
            &self.super_users,
            &principal.to_string(),
            host,
            operation,
            resource_type,
        )
    }
}

/// The ACLs of a broker: the authorizer deciding with them and where
/// changes to them go.
#[derive(Debug, Clone)]
pub struct AclService {
    pub authorizer: Arc<Authorizer>,
    pub admin: Arc<dyn AclAdmin>,
}

impl AclService {
    /// Authorization off, ACLs kept in `data_dir` (tests and tools).
    pub fn open_local(data_dir: &Path, authorizer: Arc<Authorizer>) -> std::io::Result<Self> {
        let admin = Arc::new(LocalAcls::open(data_dir, Arc::clone(&authorizer))?);
        Ok(Self { authorizer, admin })
    }
}

/// What an ACL change did: per creation its outcome, per deletion filter
/// the ACLs it removed (or why it failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclChanges {
    pub created: Vec<Result<(), String>>,
    pub deleted: Vec<Result<Vec<Acl>, String>>,
}

/// Where CreateAcls and DeleteAcls go.
#[tonic::async_trait]
pub trait AclAdmin: Send + Sync + std::fmt::Debug {
    async fn alter(
        &self,
        creations: Vec<Acl>,
        deletions: Vec<AclFilter>,
    ) -> Result<AclChanges, String>;
}

/// The ACLs of a standalone broker, in `acls.json` in its data directory.
#[derive(Debug)]
pub struct LocalAcls {
    path: PathBuf,
    authorizer: Arc<Authorizer>,
    /// One change at a time.
    lock: tokio::sync::Mutex<()>,
}

impl LocalAcls {
    /// Loads the ACLs saved in `data_dir` into `authorizer`.
    pub fn open(data_dir: &Path, authorizer: Arc<Authorizer>) -> std::io::Result<Self> {
        let path = data_dir.join("acls.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let acls: Vec<Acl> = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                authorizer.replace(acls);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Self {
            path,
            authorizer,
            lock: tokio::sync::Mutex::new(()),
        })
    }
}

#[tonic::async_trait]
impl AclAdmin for LocalAcls {
    async fn alter(
        &self,
        creations: Vec<Acl>,
        deletions: Vec<AclFilter>,
    ) -> Result<AclChanges, String> {
        let _one = self.lock.lock().await;
        let mut acls = self.authorizer.acls().as_ref().clone();
        let before = acls.clone();
        let (created, deleted) = acl::alter(&mut acls, creations, &deletions);
        if acls != before {
            let body = serde_json::to_vec_pretty(&acls).expect("ACLs serialize");
            let path = self.path.clone();
            tokio::task::spawn_blocking(move || crate::log::write_atomically(&path, &body))
                .await
                .map_err(|e| format!("saving ACLs: {e}"))?
                .map_err(|e| format!("saving ACLs to {}: {e}", self.path.display()))?;
            tracing::info!(acls = acls.len(), "ACLs changed");
            self.authorizer.replace(acls);
        }
        Ok(AclChanges {
            created,
            deleted: deleted.into_iter().map(Ok).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_proto::acl::{PatternType, Permission};

    fn read(topic: &str, who: &str) -> Acl {
        Acl {
            resource_type: ResourceType::Topic,
            pattern: PatternType::Literal,
            name: topic.to_owned(),
            principal: who.to_owned(),
            host: "*".to_owned(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[tokio::test]
    async fn given_a_standalone_broker_when_acls_change_then_they_apply_at_once_and_survive_a_restart()
     {
        let dir = tempfile::tempdir().unwrap();
        let alice = Principal::user("alice");
        let authorizer = Arc::new(Authorizer::new(true, vec!["User:admin".into()]));
        let local = LocalAcls::open(dir.path(), Arc::clone(&authorizer)).unwrap();
        assert!(!authorizer.allows(&alice, "h", Operation::Read, ResourceType::Topic, "t"));
        assert!(authorizer.allows(
            &Principal::user("admin"),
            "h",
            Operation::Read,
            ResourceType::Topic,
            "t"
        ));
        let changes = local
            .alter(vec![read("t", "User:alice")], vec![])
            .await
            .unwrap();
        assert_eq!(changes.created, vec![Ok(())]);
        assert!(authorizer.allows(&alice, "h", Operation::Read, ResourceType::Topic, "t"));
        assert!(authorizer.allows(&alice, "h", Operation::Describe, ResourceType::Topic, "t"));

        let reopened = Arc::new(Authorizer::new(true, vec![]));
        LocalAcls::open(dir.path(), Arc::clone(&reopened)).unwrap();
        assert_eq!(reopened.acls().as_ref(), &vec![read("t", "User:alice")]);

        let changes = local.alter(vec![], vec![AclFilter::any()]).await.unwrap();
        assert_eq!(changes.deleted, vec![Ok(vec![read("t", "User:alice")])]);
        assert!(!authorizer.allows(&alice, "h", Operation::Read, ResourceType::Topic, "t"));
        let off = Authorizer::default();
        assert!(off.allows(
            &alice,
            "h",
            Operation::Delete,
            ResourceType::Cluster,
            "kafka-cluster"
        ));
    }
}
