//! A pod's volumes as host directories under the agent's root, kept up to
//! date while the pod runs:
//!
//! - `emptyDir` (any medium): a fresh directory, removed with the pod;
//! - `configMap`, `secret`, `downwardAPI` and `projected` (with
//!   `serviceAccountToken`): files rewritten atomically (temporary file +
//!   rename) on every sync; the token is a real one from the TokenRequest
//!   API, bound to the pod, renewed after 80% of its lifetime;
//! - `persistentVolumeClaim`: the directory of the bound PersistentVolume
//!   (`local.path` or `hostPath.path`), e.g. one provisioned by this agent;
//! - `hostPath`: the path itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret, ServiceAccount,
    Volume,
};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::time::Instant;

use super::env::{EnvContext, field_ref};
use super::sandbox::Mount;

/// Default lifetime asked for a projected service-account token.
const DEFAULT_TOKEN_SECONDS: i64 = 3600;

/// The volumes of one pod.
#[derive(Debug)]
pub struct PodVolumes {
    /// `<root>/pods/<uid>/volumes`: where non-PVC volumes live.
    base: PathBuf,
    /// Volume name -> host directory.
    dirs: BTreeMap<String, PathBuf>,
    /// `<volume>/<path>` of each token file -> when to renew it.
    token_renewal: BTreeMap<String, Instant>,
}

fn write_atomic(dir: &Path, rel: &str, data: &[u8]) -> Result<(), String> {
    let rel = Path::new(rel);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("volume item path {} is not allowed", rel.display()));
    }
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    if std::fs::read(&path).is_ok_and(|old| old == data) {
        return Ok(());
    }
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("item")
    ));
    std::fs::write(&tmp, data).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `(path, bytes)` of the selected keys (`items`, else every key).
fn select(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    what: &str,
    optional: bool,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    match items {
        None => Ok(data.into_iter().collect()),
        Some(items) => {
            let mut out = Vec::new();
            for item in items {
                match data.get(&item.key) {
                    Some(v) => out.push((item.path.clone(), v.clone())),
                    None if optional => {}
                    None => return Err(format!("{what}: key {:?} not found", item.key)),
                }
            }
            Ok(out)
        }
    }
}

fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    out.extend(
        cm.binary_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone())),
    );
    out
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .string_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    out.extend(
        s.data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone())),
    );
    out
}

impl PodVolumes {
    pub fn new(pod_dir: &Path) -> Self {
        Self {
            base: pod_dir.join("volumes"),
            dirs: BTreeMap::new(),
            token_renewal: BTreeMap::new(),
        }
    }

    /// Creates or refreshes every volume of `pod`. `Err` is a message for
    /// the pod's waiting state (ContainerCreating).
    pub async fn sync(
        &mut self,
        client: &Client,
        pod: &Pod,
        ctx: &EnvContext,
    ) -> Result<(), String> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        for volume in &volumes {
            let dir = self
                .sync_volume(client, pod, &namespace, volume, ctx)
                .await
                .map_err(|e| format!("volume {:?}: {e}", volume.name))?;
            self.dirs.insert(volume.name.clone(), dir);
        }
        Ok(())
    }

    async fn sync_volume(
        &mut self,
        client: &Client,
        pod: &Pod,
        namespace: &str,
        volume: &Volume,
        ctx: &EnvContext,
    ) -> Result<PathBuf, String> {
        let local = self.base.join(&volume.name);
        let mkdir = |dir: &Path| {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
        };
        if volume.empty_dir.is_some() {
            mkdir(&local)?;
            return Ok(local);
        }
        if let Some(claim) = &volume.persistent_volume_claim {
            return claim_dir(client, namespace, &claim.claim_name).await;
        }
        if let Some(host) = &volume.host_path {
            let path = PathBuf::from(&host.path);
            if matches!(host.type_.as_deref(), Some("DirectoryOrCreate")) {
                mkdir(&path)?;
            }
            return Ok(path);
        }
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(src) = &volume.config_map {
            files = object_files(
                client,
                namespace,
                &src.name,
                src.items.as_ref(),
                src.optional,
                config_map_data,
            )
            .await?;
        } else if let Some(src) = &volume.secret {
            let name = src.secret_name.clone().unwrap_or_default();
            files = object_files(
                client,
                namespace,
                &name,
                src.items.as_ref(),
                src.optional,
                secret_data,
            )
            .await?;
        } else if let Some(src) = &volume.downward_api {
            files = downward_files(src.items.as_ref(), pod, ctx)?;
        } else if let Some(projected) = &volume.projected {
            for source in projected.sources.iter().flatten() {
                if let Some(src) = &source.config_map {
                    files.extend(
                        object_files(
                            client,
                            namespace,
                            &src.name,
                            src.items.as_ref(),
                            src.optional,
                            config_map_data,
                        )
                        .await?,
                    );
                } else if let Some(src) = &source.secret {
                    files.extend(
                        object_files(
                            client,
                            namespace,
                            &src.name,
                            src.items.as_ref(),
                            src.optional,
                            secret_data,
                        )
                        .await?,
                    );
                } else if let Some(src) = &source.downward_api {
                    files.extend(downward_files(src.items.as_ref(), pod, ctx)?);
                } else if let Some(src) = &source.service_account_token {
                    let key = format!("{}/{}", volume.name, src.path);
                    let due = self
                        .token_renewal
                        .get(&key)
                        .is_none_or(|at| *at <= Instant::now());
                    if due {
                        let seconds = src.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS);
                        let token =
                            request_token(client, pod, namespace, src.audience.clone(), seconds)
                                .await?;
                        mkdir(&local)?;
                        write_atomic(&local, &src.path, token.as_bytes())?;
                        let renew = Duration::from_secs((seconds.max(60) as u64) * 8 / 10);
                        self.token_renewal.insert(key, Instant::now() + renew);
                    }
                } else {
                    return Err("projected source not supported by the node agent".into());
                }
            }
        } else {
            return Err("volume type not supported by the node agent".into());
        }
        mkdir(&local)?;
        for (path, data) in &files {
            write_atomic(&local, path, data)?;
        }
        Ok(local)
    }

    /// The bind mounts of a container: each `volumeMount` (with `subPath`)
    /// onto the volume's host directory.
    pub fn mounts(
        &self,
        container: &k8s_openapi::api::core::v1::Container,
    ) -> Result<Vec<Mount>, String> {
        let mut out = Vec::new();
        for vm in container.volume_mounts.iter().flatten() {
            let dir = self
                .dirs
                .get(&vm.name)
                .ok_or_else(|| format!("volumeMount {:?} names no volume of the pod", vm.name))?;
            let source = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => {
                    let source = dir.join(sub);
                    if !source.exists() {
                        std::fs::create_dir_all(&source)
                            .map_err(|e| format!("{}: {e}", source.display()))?;
                    }
                    source
                }
                None => dir.clone(),
            };
            out.push(Mount {
                source,
                target: PathBuf::from(&vm.mount_path),
                read_only: vm.read_only == Some(true),
            });
        }
        Ok(out)
    }
}

/// The files of a configMap or secret volume source (or projection):
/// `data` gives the object's keys and contents.
async fn object_files<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    items: Option<&Vec<KeyToPath>>,
    optional: Option<bool>,
    data: fn(&K) -> BTreeMap<String, Vec<u8>>,
) -> Result<Vec<(String, Vec<u8>)>, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let optional = optional == Some(true);
    match get_opt::<K>(client, namespace, name).await? {
        Some(object) => select(data(&object), items, name, optional),
        None if optional => Ok(Vec::new()),
        None => Err(format!(
            "{} {name:?} not found",
            K::kind(&()).to_lowercase()
        )),
    }
}

/// The files of downwardAPI items (fieldRef only).
fn downward_files(
    items: Option<&Vec<k8s_openapi::api::core::v1::DownwardAPIVolumeFile>>,
    pod: &Pod,
    ctx: &EnvContext,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = Vec::new();
    for item in items.into_iter().flatten() {
        let Some(f) = &item.field_ref else {
            return Err("downwardAPI resourceFieldRef is not supported".into());
        };
        files.push((
            item.path.clone(),
            field_ref(pod, &f.field_path, ctx)?.into_bytes(),
        ));
    }
    Ok(files)
}

async fn get_opt<K>(client: &Client, namespace: &str, name: &str) -> Result<Option<K>, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| format!("get {name}: {e}"))
}

/// The host directory of the PersistentVolume bound to claim `name`.
async fn claim_dir(client: &Client, namespace: &str, name: &str) -> Result<PathBuf, String> {
    let pvc = get_opt::<PersistentVolumeClaim>(client, namespace, name)
        .await?
        .ok_or_else(|| format!("persistentvolumeclaim {name:?} not found"))?;
    let volume_name = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|_| pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
        .ok_or_else(|| format!("persistentvolumeclaim {name:?} is not bound yet"))?;
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get(&volume_name)
        .await
        .map_err(|e| format!("get persistentvolume {volume_name}: {e}"))?;
    let spec = pv.spec.unwrap_or_default();
    let path = spec
        .local
        .map(|l| l.path)
        .or(spec.host_path.map(|h| h.path))
        .ok_or_else(|| {
            format!("persistentvolume {volume_name} is neither local nor hostPath: the node agent cannot mount it")
        })?;
    let path = PathBuf::from(path);
    if !path.is_dir() {
        return Err(format!(
            "persistentvolume {volume_name}: {} is not a directory on this node",
            path.display()
        ));
    }
    Ok(path)
}

async fn request_token(
    client: &Client,
    pod: &Pod,
    namespace: &str,
    audience: Option<String>,
    seconds: i64,
) -> Result<String, String> {
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".to_owned());
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: audience.filter(|a| !a.is_empty()).map(|a| vec![a]),
            expiration_seconds: Some(seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let response = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("token for serviceaccount {account}: {e}"))?;
    response
        .status
        .and_then(|s| s.token)
        .ok_or_else(|| "TokenRequest answered without a token".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_items_when_selecting_then_keys_map_to_paths_and_missing_keys_fail() {
        let data = BTreeMap::from([
            ("a".to_owned(), b"1".to_vec()),
            ("b".to_owned(), b"2".to_vec()),
        ]);
        assert_eq!(
            select(data.clone(), None, "cm", false).expect("all").len(),
            2
        );
        let items = vec![KeyToPath {
            key: "b".into(),
            path: "sub/b.txt".into(),
            ..KeyToPath::default()
        }];
        assert_eq!(
            select(data.clone(), Some(&items), "cm", false).expect("items"),
            vec![("sub/b.txt".to_owned(), b"2".to_vec())]
        );
        let missing = vec![KeyToPath {
            key: "z".into(),
            path: "z".into(),
            ..KeyToPath::default()
        }];
        assert!(select(data.clone(), Some(&missing), "cm", false).is_err());
        assert!(
            select(data, Some(&missing), "cm", true)
                .expect("optional")
                .is_empty()
        );
    }

    #[test]
    fn given_item_paths_when_writing_then_escapes_are_refused_and_rewrites_are_atomic() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_atomic(dir.path(), "a/b", b"x").expect("write");
        write_atomic(dir.path(), "a/b", b"y").expect("rewrite");
        assert_eq!(std::fs::read(dir.path().join("a/b")).expect("read"), b"y");
        assert!(write_atomic(dir.path(), "../x", b"x").is_err());
        assert!(write_atomic(dir.path(), "/etc/x", b"x").is_err());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("a"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("b")]);
    }
}
