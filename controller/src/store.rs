//! Where the controller's metadata is durable.
//!
//! [`MetadataStore`] has two jobs: hand a new controller the metadata with
//! a freshly bumped controller epoch ([`MetadataStore::claim`]), and persist
//! a controller's changes only while no newer controller has claimed
//! ([`MetadataStore::persist`]) — so a deposed controller can neither tell
//! brokers nor the store anything new.
//!
//! Implementations here: [`MemoryStore`] (tests) and [`FileStore`] (local
//! clusters without Kubernetes: one JSON file replaced atomically). The
//! operator adds a Kubernetes store that writes Topic status with
//! resourceVersion compare-and-swap.
//!
//! A store may also hold the declared config of topics somewhere else (on
//! Kubernetes, the Topic resource's `spec.config`): before a topic config
//! change is persisted the controller asks it through
//! [`MetadataStore::admit_topic_config`], which may refuse the change
//! ([`StoreError::Refused`]) or write it there first. The stores here allow
//! every change.

use std::collections::BTreeMap;
use std::fs;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use thiserror::Error;

use crate::state::{Change, ClusterMetadata};

#[derive(Debug, Error)]
pub enum StoreError {
    /// A newer controller has claimed the store; this one must stop.
    #[error("controller epoch {ours} was superseded by {current}")]
    Superseded { ours: i64, current: i64 },
    #[error("metadata store I/O on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("metadata store file {path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("metadata store: {0}")]
    Backend(String),
    /// The store's policy refuses the change; the message says why and what
    /// to do instead. Nothing was changed.
    #[error("{0}")]
    Refused(String),
}

/// Who asks for a topic config change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// The topic's declared source of truth: the operator pushing a Topic
    /// resource's `spec.config`, or an administrator of a standalone
    /// controller.
    Resource,
    /// A Kafka client (AlterConfigs, IncrementalAlterConfigs) through a
    /// broker, or a caller that did not say.
    Kafka,
}

/// Durable home of the cluster metadata.
pub trait MetadataStore: Send + Sync {
    /// Becomes the controller: bumps the durable controller epoch and
    /// returns the metadata carrying it.
    fn claim(&self) -> impl Future<Output = Result<ClusterMetadata, StoreError>> + Send;

    /// Persists `changes` made by the controller of `controller_epoch`;
    /// fails with [`StoreError::Superseded`] once a newer one has claimed.
    fn persist(
        &self,
        controller_epoch: i64,
        changes: &[Change],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Asked before the config of `topic` becomes `config` by a request of
    /// `origin`: a store that keeps the topic's declared config elsewhere
    /// refuses the change ([`StoreError::Refused`]) or writes it there
    /// first (not with `validate_only`). The default allows every change.
    fn admit_topic_config(
        &self,
        topic: &str,
        config: &BTreeMap<String, String>,
        origin: ConfigOrigin,
        validate_only: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (topic, config, origin, validate_only);
        async { Ok(()) }
    }
}

fn apply_checked(
    meta: &mut ClusterMetadata,
    ours: i64,
    changes: &[Change],
) -> Result<(), StoreError> {
    if meta.controller_epoch != ours {
        return Err(StoreError::Superseded {
            ours,
            current: meta.controller_epoch,
        });
    }
    for c in changes {
        meta.apply(c);
    }
    Ok(())
}

/// In-memory store, for tests and simulations.
#[derive(Debug, Default)]
pub struct MemoryStore {
    meta: Mutex<ClusterMetadata>,
    /// When set, the next persist fails (simulates an unreachable store).
    fail_next: Mutex<bool>,
}

impl MemoryStore {
    /// A copy of what is durable now.
    pub fn snapshot(&self) -> ClusterMetadata {
        self.meta.lock().expect("not poisoned").clone()
    }
    /// Makes the next persist fail once.
    pub fn fail_next_persist(&self) {
        *self.fail_next.lock().expect("not poisoned") = true;
    }
}

impl MetadataStore for MemoryStore {
    async fn claim(&self) -> Result<ClusterMetadata, StoreError> {
        let mut meta = self.meta.lock().expect("not poisoned");
        meta.controller_epoch += 1;
        Ok(meta.clone())
    }

    async fn persist(&self, controller_epoch: i64, changes: &[Change]) -> Result<(), StoreError> {
        if std::mem::take(&mut *self.fail_next.lock().expect("not poisoned")) {
            return Err(StoreError::Backend("injected failure".into()));
        }
        let mut meta = self.meta.lock().expect("not poisoned");
        let mut next = meta.clone();
        apply_checked(&mut next, controller_epoch, changes)?;
        *meta = next;
        Ok(())
    }
}

/// One JSON file, replaced atomically (temp file, fsync, rename, fsync of
/// the directory) on every persist. Every persist re-reads the file, so a
/// second controller process claiming the same file fences the first.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn read(&self) -> Result<ClusterMetadata, StoreError> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: self.path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClusterMetadata::default()),
            Err(e) => Err(self.io(e)),
        }
    }

    fn write(&self, meta: &ClusterMetadata) -> Result<(), StoreError> {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let tmp = self.path.with_extension("json.tmp");
        let data = serde_json::to_vec_pretty(meta).expect("metadata serializes");
        let mut f = fs::File::create(&tmp).map_err(|e| self.io(e))?;
        f.write_all(&data).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))
    }
}

impl MetadataStore for FileStore {
    async fn claim(&self) -> Result<ClusterMetadata, StoreError> {
        let _g = self.lock.lock().expect("not poisoned");
        let mut meta = self.read()?;
        meta.controller_epoch += 1;
        self.write(&meta)?;
        Ok(meta)
    }

    async fn persist(&self, controller_epoch: i64, changes: &[Change]) -> Result<(), StoreError> {
        let _g = self.lock.lock().expect("not poisoned");
        let mut meta = self.read()?;
        apply_checked(&mut meta, controller_epoch, changes)?;
        self.write(&meta)
    }
}
