//! Between validate and build: make sure the certificates and the
//! credentials Secret of a cluster exist and are current.
//!
//! Secrets of a cluster `<c>` (all owned by the StreamCluster, so they go
//! with it):
//!
//! | Secret | keys | holds |
//! |--------|------|-------|
//! | `<c>-cluster-ca` | `tls.crt`, `tls.key` (`next.crt`, `next.key` while renewing) | the CA that signs the broker and controller certificates |
//! | `<c>-cluster-ca-cert` | `ca.crt` | what clients and brokers trust: the cluster CA (old and new while renewing) and the CA of a broker certificate Secret of the user's |
//! | `<c>-clients-ca` | `tls.crt`, `tls.key` (`next.*` while renewing) | the CA that signs users' mTLS certificates |
//! | `<c>-clients-ca-cert` | `ca.crt` | what brokers accept client certificates from |
//! | `<c>-broker-certs` | `tls.crt`, `tls.key`, `ca.crt` | the brokers' certificate (unless `spec.certificates.brokerCertSecret`) |
//! | `<c>-scram-credentials` | `credentials` | SCRAM users, written by the User reconciler; created empty here, never overwritten |
//!
//! With `spec.certificates.clusterCa.secretName` (or `clientsCa`) the CA
//! comes from that Secret and is copied into `<c>-cluster-ca` (or
//! `<c>-clients-ca`), so whatever signs with the cluster's CA reads one
//! place. [`plan`] decides; this module reads and writes the Secrets and
//! the broker pods' annotations it needs. Secrets are not watched: they
//! are looked at on every reconcile (at least every 5 minutes).

pub mod pki;
pub mod plan;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::Error;
use super::build::{Names, common_labels, owner_reference, selector_string};
use crate::crd::{CertificateStatus, CertificatesStatus, StreamCluster};
use plan::{Annotations, Ca, CaInput, CaOutcome, Retire};

/// Pod-template annotation: fingerprint of the cluster CA trust bundle.
pub const CLUSTER_CA_BUNDLE_ANNOTATION: &str = "rill.dev/cluster-ca-bundle";
/// Pod-template annotation: fingerprint of the CA that signed the
/// certificates brokers present.
pub const CLUSTER_CA_SIGNER_ANNOTATION: &str = "rill.dev/cluster-ca-signer";
/// Pod-template annotation: fingerprint of the broker certificate. Brokers
/// read their internal (replication and controller) certificate at start,
/// so a re-signed one rolls them, one at a time.
pub const BROKER_CERT_ANNOTATION: &str = "rill.dev/broker-cert";
/// Pod-template annotation: fingerprint of the clients CA trust bundle.
pub const CLIENTS_CA_BUNDLE_ANNOTATION: &str = "rill.dev/clients-ca-bundle";

/// Key of a certificate in a Secret.
pub const TLS_CRT: &str = "tls.crt";
/// Key of a private key in a Secret.
pub const TLS_KEY: &str = "tls.key";
/// Key of a CA bundle in a Secret.
pub const CA_CRT: &str = "ca.crt";
/// Key of the next CA's certificate while a CA is renewed.
pub const NEXT_CRT: &str = "next.crt";
/// Key of the next CA's key while a CA is renewed.
pub const NEXT_KEY: &str = "next.key";
/// Key of the SCRAM credentials file.
pub const CREDENTIALS: &str = "credentials";

/// A Secret of the user's that cannot be used. The cluster is not changed
/// until it is fixed (Ready=False naming the Secret and key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretProblem {
    /// The Secret does not exist.
    NotFound {
        /// Secret name.
        secret: String,
        /// The spec field that names it.
        field: &'static str,
    },
    /// A key is missing or holds something unusable.
    Invalid {
        /// Secret name.
        secret: String,
        /// The key.
        key: &'static str,
        /// What is wrong.
        why: String,
    },
}

impl SecretProblem {
    /// Stable reason of the Ready condition.
    pub fn reason(&self) -> &'static str {
        match self {
            SecretProblem::NotFound { .. } => "SecretNotFound",
            SecretProblem::Invalid { .. } => "SecretInvalid",
        }
    }

    /// Message naming the Secret and key.
    pub fn message(&self) -> String {
        match self {
            SecretProblem::NotFound { secret, field } => {
                format!("Secret {secret} named by {field} does not exist")
            }
            SecretProblem::Invalid { secret, key, why } => {
                format!("Secret {secret} key {key} {why}")
            }
        }
    }
}

/// What the build step and the status need from the certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Material {
    /// Pod-template annotations: a change rolls the brokers.
    pub annotations: BTreeMap<String, String>,
    /// Secret mounted at `/etc/rill-tls/broker` (`tls.crt`, `tls.key`).
    pub broker_secret: String,
    /// `status.certificates`.
    pub status: CertificatesStatus,
    /// What changed, for the log and an Event; empty when nothing did.
    pub changes: Vec<String>,
}

/// Secret names of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretNames {
    /// `<c>-cluster-ca`.
    pub cluster_ca: String,
    /// `<c>-cluster-ca-cert`.
    pub cluster_ca_cert: String,
    /// `<c>-clients-ca`.
    pub clients_ca: String,
    /// `<c>-clients-ca-cert`.
    pub clients_ca_cert: String,
    /// `<c>-broker-certs`.
    pub broker_certs: String,
    /// `<c>-scram-credentials`.
    pub scram_credentials: String,
}

impl SecretNames {
    /// Names derived from the cluster name.
    pub fn new(cluster: &str) -> Self {
        Self {
            cluster_ca: format!("{cluster}-cluster-ca"),
            cluster_ca_cert: format!("{cluster}-cluster-ca-cert"),
            clients_ca: format!("{cluster}-clients-ca"),
            clients_ca_cert: format!("{cluster}-clients-ca-cert"),
            broker_certs: format!("{cluster}-broker-certs"),
            scram_credentials: format!("{cluster}-scram-credentials"),
        }
    }
}

/// Reads and writes the Secrets of one cluster.
struct Secrets<'a> {
    api: Api<Secret>,
    sc: &'a StreamCluster,
    changes: Vec<String>,
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

impl Secrets<'_> {
    async fn get(&self, name: &str) -> Result<Option<Secret>, Error> {
        self.api
            .get_opt(name)
            .await
            .map_err(|source| Error::Secret {
                name: name.to_owned(),
                source,
            })
    }

    /// Creates the Secret with `data`, or changes the keys that differ
    /// (`None` removes a key). Compare-and-swap on the resourceVersion.
    async fn put(
        &mut self,
        name: &str,
        live: Option<&Secret>,
        data: &[(&str, Option<String>)],
        why: &str,
    ) -> Result<(), Error> {
        let err = |source| Error::Secret {
            name: name.to_owned(),
            source,
        };
        let Some(live) = live else {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: self.sc.namespace(),
                    labels: Some(common_labels(&self.sc.name_any())),
                    owner_references: owner_reference(self.sc).map(|r| vec![r]),
                    ..ObjectMeta::default()
                },
                type_: Some("Opaque".to_owned()),
                data: Some(
                    data.iter()
                        .filter_map(|(k, v)| {
                            v.as_ref()
                                .map(|v| ((*k).to_owned(), ByteString(v.clone().into_bytes())))
                        })
                        .collect(),
                ),
                ..Secret::default()
            };
            self.api
                .create(&PostParams::default(), &secret)
                .await
                .map_err(err)?;
            self.changes.push(format!("created Secret {name}: {why}"));
            return Ok(());
        };
        let differs = data
            .iter()
            .any(|(k, v)| text(live, k).as_deref() != v.as_deref());
        if !differs {
            return Ok(());
        }
        use base64::Engine as _;
        let mut patch_data = serde_json::Map::new();
        for (k, v) in data {
            patch_data.insert(
                (*k).to_owned(),
                match v {
                    Some(v) => json!(base64::engine::general_purpose::STANDARD.encode(v)),
                    None => serde_json::Value::Null,
                },
            );
        }
        let patch = json!({
            "metadata": {"resourceVersion": live.metadata.resource_version},
            "data": patch_data,
        });
        self.api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(err)?;
        self.changes.push(format!("updated Secret {name}: {why}"));
        Ok(())
    }
}

/// Reads a CA from a user Secret.
fn user_ca(secret: &Secret, name: &str) -> Result<Ca, SecretProblem> {
    let cert = required(secret, name, TLS_CRT)?;
    let key = required(secret, name, TLS_KEY)?;
    Ca::read(&cert, &key).map_err(|e| SecretProblem::Invalid {
        secret: name.to_owned(),
        key: match e {
            pki::PkiError::BadKey(_) | pki::PkiError::KeyMismatch => TLS_KEY,
            _ => TLS_CRT,
        },
        why: e.to_string(),
    })
}

fn required(secret: &Secret, name: &str, key: &'static str) -> Result<String, SecretProblem> {
    match text(secret, key) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(SecretProblem::Invalid {
            secret: name.to_owned(),
            key,
            why: "is missing or empty".to_owned(),
        }),
    }
}

/// A CA stored by the operator under `cert_key`/`key_key`, if readable.
fn stored_ca(secret: Option<&Secret>, cert_key: &str, key_key: &str) -> Option<Ca> {
    let secret = secret?;
    Ca::read(&text(secret, cert_key)?, &text(secret, key_key)?).ok()
}

fn published(secret: Option<&Secret>) -> Vec<pki::CertInfo> {
    secret
        .and_then(|s| text(s, CA_CRT))
        .and_then(|pem| pki::parse_certs(pem.as_bytes()).ok())
        .unwrap_or_default()
}

/// The broker certificate from a Secret of the user's: leaf, key, CA
/// bundle, and the names brokers and clients dial.
fn user_broker_cert(
    secret: &Secret,
    name: &str,
    required_names: &[String],
) -> Result<(pki::CertInfo, Vec<pki::CertInfo>), SecretProblem> {
    let invalid = |key: &'static str, why: String| SecretProblem::Invalid {
        secret: name.to_owned(),
        key,
        why,
    };
    let cert_pem = required(secret, name, TLS_CRT)?;
    let key_pem = required(secret, name, TLS_KEY)?;
    let ca_pem = required(secret, name, CA_CRT)?;
    let leaf = pki::parse_certs(cert_pem.as_bytes())
        .map_err(|e| invalid(TLS_CRT, e.to_string()))?
        .remove(0);
    pki::check_key(&leaf, &key_pem).map_err(|e| invalid(TLS_KEY, e.to_string()))?;
    let cas = pki::parse_certs(ca_pem.as_bytes()).map_err(|e| invalid(CA_CRT, e.to_string()))?;
    let chain = pki::parse_certs(cert_pem.as_bytes()).unwrap_or_default();
    if !cas
        .iter()
        .chain(chain.iter().skip(1))
        .any(|ca| leaf.signed_by(ca))
    {
        return Err(invalid(
            CA_CRT,
            "holds no CA that signed the certificate in tls.crt".to_owned(),
        ));
    }
    let missing = plan::missing_names(&leaf, required_names);
    if let Some(first) = missing.first() {
        return Err(invalid(
            TLS_CRT,
            format!(
                "does not name {} of the brokers' DNS names, e.g. {first} (add `*.<cluster>-brokers.<namespace>.svc` and `<cluster>-bootstrap.<namespace>.svc`)",
                missing.len()
            ),
        ));
    }
    Ok((leaf, cas))
}

/// Names a broker certificate of the user's must cover: what brokers dial
/// (advertised hosts) and the bootstrap Service clients dial.
fn dialled_names(cluster: &str, namespace: &str, brokers: i32) -> Vec<String> {
    let names = Names::new(cluster);
    let mut out = vec![format!("{}.{namespace}.svc", names.bootstrap_service)];
    for ordinal in 0..brokers.max(0) {
        out.push(format!(
            "{cluster}-{ordinal}.{}.{namespace}.svc",
            names.headless_service
        ));
    }
    out
}

async fn broker_pod_annotations(
    client: &Client,
    namespace: &str,
    cluster: &str,
) -> Result<Vec<BTreeMap<String, String>>, Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&selector_string(cluster)))
        .await
        .map_err(|source| Error::Observe {
            kind: "Pod".to_owned(),
            source,
        })?;
    Ok(list
        .items
        .into_iter()
        .map(|p| p.metadata.annotations.unwrap_or_default())
        .collect())
}

fn ca_status(secret: &str, outcome: &CaOutcome, managed: bool) -> CertificateStatus {
    CertificateStatus {
        secret: secret.to_owned(),
        not_after: outcome.current.cert.not_after_rfc3339(),
        managed,
    }
}

/// Makes, renews and publishes the certificates of `sc`, and creates its
/// empty SCRAM credentials Secret. `Ok(Err(_))` is a Secret of the user's
/// that cannot be used.
pub async fn ensure(
    client: &Client,
    sc: &StreamCluster,
    now: i64,
) -> Result<Result<Material, SecretProblem>, Error> {
    let namespace = sc.namespace().ok_or(Error::MissingNamespace)?;
    let cluster = sc.name_any();
    let names = SecretNames::new(&cluster);
    let spec = &sc.spec.certificates;
    let mut secrets = Secrets {
        api: Api::namespaced(client.clone(), &namespace),
        sc,
        changes: Vec::new(),
    };

    // The SCRAM credentials: created empty, never overwritten.
    if secrets.get(&names.scram_credentials).await?.is_none() {
        secrets
            .put(
                &names.scram_credentials,
                None,
                &[(CREDENTIALS, Some(String::new()))],
                "no SCRAM users yet",
            )
            .await?;
    }

    // Secrets of the user's, checked before anything is written.
    let mut user_cas = [None, None];
    for (slot, (ca_spec, field)) in user_cas.iter_mut().zip([
        (&spec.cluster_ca, "spec.certificates.clusterCa.secretName"),
        (&spec.clients_ca, "spec.certificates.clientsCa.secretName"),
    ]) {
        if let Some(name) = &ca_spec.secret_name {
            let Some(secret) = secrets.get(name).await? else {
                return Ok(Err(SecretProblem::NotFound {
                    secret: name.clone(),
                    field,
                }));
            };
            match user_ca(&secret, name) {
                Ok(ca) => *slot = Some(ca),
                Err(problem) => return Ok(Err(problem)),
            }
        }
    }
    let [user_cluster_ca, user_clients_ca] = user_cas;
    let mut user_broker = None;
    if let Some(name) = &spec.broker_cert_secret {
        let Some(secret) = secrets.get(name).await? else {
            return Ok(Err(SecretProblem::NotFound {
                secret: name.clone(),
                field: "spec.certificates.brokerCertSecret",
            }));
        };
        match user_broker_cert(
            &secret,
            name,
            &dialled_names(&cluster, &namespace, sc.spec.brokers),
        ) {
            Ok(found) => user_broker = Some(found),
            Err(problem) => return Ok(Err(problem)),
        }
    }

    let pods = broker_pod_annotations(client, &namespace, &cluster).await?;
    let cluster_ca_secret = secrets.get(&names.cluster_ca).await?;
    let cluster_ca_cert_secret = secrets.get(&names.cluster_ca_cert).await?;
    let clients_ca_secret = secrets.get(&names.clients_ca).await?;
    let clients_ca_cert_secret = secrets.get(&names.clients_ca_cert).await?;

    let plan_error = |e: pki::PkiError| Error::Certificate(e.to_string());
    let cluster_outcome = plan::plan_ca(
        &format!("rill {namespace}/{cluster} cluster CA"),
        now,
        spec.cluster_ca.validity(),
        CaInput {
            user: user_cluster_ca.clone(),
            current: stored_ca(cluster_ca_secret.as_ref(), TLS_CRT, TLS_KEY),
            next: stored_ca(cluster_ca_secret.as_ref(), NEXT_CRT, NEXT_KEY),
            published: published(cluster_ca_cert_secret.as_ref()),
            extra_trust: user_broker
                .as_ref()
                .map(|(_, cas)| cas.clone())
                .unwrap_or_default(),
        },
        &pods,
        Annotations {
            bundle: CLUSTER_CA_BUNDLE_ANNOTATION,
            signer: Some(CLUSTER_CA_SIGNER_ANNOTATION),
        },
        Retire::WhenSignerRolledOut,
    )
    .map_err(plan_error)?;
    let clients_outcome = plan::plan_ca(
        &format!("rill {namespace}/{cluster} clients CA"),
        now,
        spec.clients_ca.validity(),
        CaInput {
            user: user_clients_ca.clone(),
            current: stored_ca(clients_ca_secret.as_ref(), TLS_CRT, TLS_KEY),
            next: stored_ca(clients_ca_secret.as_ref(), NEXT_CRT, NEXT_KEY),
            published: published(clients_ca_cert_secret.as_ref()),
            extra_trust: Vec::new(),
        },
        &pods,
        Annotations {
            bundle: CLIENTS_CA_BUNDLE_ANNOTATION,
            signer: None,
        },
        Retire::Expired,
    )
    .map_err(plan_error)?;

    // Write the CAs, then the bundles: a bundle never names a CA that is
    // not stored yet.
    for (outcome, secret_name, live, bundle_name, bundle_live) in [
        (
            &cluster_outcome,
            &names.cluster_ca,
            &cluster_ca_secret,
            &names.cluster_ca_cert,
            &cluster_ca_cert_secret,
        ),
        (
            &clients_outcome,
            &names.clients_ca,
            &clients_ca_secret,
            &names.clients_ca_cert,
            &clients_ca_cert_secret,
        ),
    ] {
        let why = if outcome.changes.is_empty() {
            "CA restored".to_owned()
        } else {
            outcome.changes.join("; ")
        };
        secrets
            .put(
                secret_name,
                live.as_ref(),
                &[
                    (TLS_CRT, Some(outcome.current.keyed.cert_pem.clone())),
                    (TLS_KEY, Some(outcome.current.keyed.key_pem.clone())),
                    (
                        NEXT_CRT,
                        outcome.next.as_ref().map(|n| n.keyed.cert_pem.clone()),
                    ),
                    (
                        NEXT_KEY,
                        outcome.next.as_ref().map(|n| n.keyed.key_pem.clone()),
                    ),
                ],
                &why,
            )
            .await?;
        secrets
            .put(
                bundle_name,
                bundle_live.as_ref(),
                &[(CA_CRT, Some(outcome.bundle_pem()))],
                &why,
            )
            .await?;
    }

    // The broker certificate.
    let broker_validity = spec.broker_cert;
    let (broker_secret, broker_status, broker_fingerprint) = if let Some((leaf, _)) = &user_broker {
        let name = spec.broker_cert_secret.clone().unwrap_or_default();
        let status = CertificateStatus {
            secret: name.clone(),
            not_after: leaf.not_after_rfc3339(),
            managed: false,
        };
        (name, status, leaf.fingerprint())
    } else {
        let live = secrets.get(&names.broker_certs).await?;
        let existing = live.as_ref().and_then(|s| {
            let cert = text(s, TLS_CRT)?;
            let key = text(s, TLS_KEY)?;
            let info = pki::parse_certs(cert.as_bytes()).ok()?.into_iter().next()?;
            pki::check_key(&info, &key).ok()?;
            Some((cert, key, info))
        });
        let required = plan::broker_names(&cluster, &namespace, sc.spec.brokers);
        let reason = plan::leaf_renewal_reason(
            existing.as_ref().map(|(_, _, info)| info),
            &cluster_outcome.current,
            &required,
            now,
            broker_validity,
        );
        let (cert, key, info) = match (reason, existing) {
            (None, Some(found)) => found,
            (reason, _) => {
                let keyed = pki::sign_leaf(
                    &cluster_outcome.current.keyed,
                    &cluster,
                    &required,
                    now,
                    broker_validity.validity_days,
                )
                .map_err(plan_error)?;
                let info = pki::parse_certs(keyed.cert_pem.as_bytes())
                    .map_err(plan_error)?
                    .remove(0);
                if let Some(reason) = reason {
                    secrets.changes.push(reason);
                }
                (keyed.cert_pem, keyed.key_pem, info)
            }
        };
        secrets
            .put(
                &names.broker_certs,
                live.as_ref(),
                &[
                    (TLS_CRT, Some(cert)),
                    (TLS_KEY, Some(key)),
                    (CA_CRT, Some(cluster_outcome.bundle_pem())),
                ],
                "broker certificate",
            )
            .await?;
        let status = CertificateStatus {
            secret: names.broker_certs.clone(),
            not_after: info.not_after_rfc3339(),
            managed: true,
        };
        (names.broker_certs.clone(), status, info.fingerprint())
    };

    let mut changes = cluster_outcome.changes.clone();
    changes.extend(clients_outcome.changes.iter().cloned());
    changes.extend(secrets.changes);
    Ok(Ok(Material {
        annotations: BTreeMap::from([
            (
                CLUSTER_CA_BUNDLE_ANNOTATION.to_owned(),
                cluster_outcome.bundle_fingerprint(),
            ),
            (
                CLUSTER_CA_SIGNER_ANNOTATION.to_owned(),
                cluster_outcome.current.cert.fingerprint(),
            ),
            (
                CLIENTS_CA_BUNDLE_ANNOTATION.to_owned(),
                clients_outcome.bundle_fingerprint(),
            ),
            (BROKER_CERT_ANNOTATION.to_owned(), broker_fingerprint),
        ]),
        broker_secret,
        status: CertificatesStatus {
            cluster_ca: Some(ca_status(
                spec.cluster_ca
                    .secret_name
                    .as_deref()
                    .unwrap_or(&names.cluster_ca),
                &cluster_outcome,
                user_cluster_ca.is_none(),
            )),
            clients_ca: Some(ca_status(
                spec.clients_ca
                    .secret_name
                    .as_deref()
                    .unwrap_or(&names.clients_ca),
                &clients_outcome,
                user_clients_ca.is_none(),
            )),
            broker: Some(broker_status),
        },
        changes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600;

    fn secret(data: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn given_user_secrets_with_missing_or_wrong_keys_when_reading_then_the_problem_names_secret_and_key()
     {
        let ca = pki::new_ca("ca", NOW, 100).expect("ca");
        let other = pki::new_ca("other", NOW, 100).expect("ca");
        let missing = user_ca(&secret(&[(TLS_CRT, &ca.cert_pem)]), "my-ca").expect_err("no key");
        assert_eq!(missing.reason(), "SecretInvalid");
        assert_eq!(
            missing.message(),
            "Secret my-ca key tls.key is missing or empty"
        );
        let mismatch = user_ca(
            &secret(&[(TLS_CRT, &ca.cert_pem), (TLS_KEY, &other.key_pem)]),
            "my-ca",
        )
        .expect_err("foreign key");
        assert_eq!(
            mismatch.message(),
            "Secret my-ca key tls.key holds a private key that does not belong to its certificate"
        );
        let garbage = user_ca(
            &secret(&[(TLS_CRT, "hello"), (TLS_KEY, &ca.key_pem)]),
            "my-ca",
        )
        .expect_err("no PEM");
        assert_eq!(
            garbage.message(),
            "Secret my-ca key tls.crt holds no PEM certificate"
        );
        assert!(
            user_ca(
                &secret(&[(TLS_CRT, &ca.cert_pem), (TLS_KEY, &ca.key_pem)]),
                "my-ca"
            )
            .is_ok()
        );
        let not_found = SecretProblem::NotFound {
            secret: "gone".into(),
            field: "spec.certificates.brokerCertSecret",
        };
        assert_eq!(not_found.reason(), "SecretNotFound");
        assert_eq!(
            not_found.message(),
            "Secret gone named by spec.certificates.brokerCertSecret does not exist"
        );
    }

    #[test]
    fn given_a_user_broker_certificate_when_checking_then_names_key_and_issuer_are_verified() {
        let ca = pki::new_ca("issuer", NOW, 1000).expect("ca");
        let required = dialled_names("events", "data", 3);
        let good = pki::sign_leaf(
            &ca,
            "events",
            &[
                "*.events-brokers.data.svc".to_owned(),
                "events-bootstrap.data.svc".to_owned(),
            ],
            NOW,
            90,
        )
        .expect("leaf");
        let with = |cert: &str, key: &str, cas: &str| {
            user_broker_cert(
                &secret(&[(TLS_CRT, cert), (TLS_KEY, key), (CA_CRT, cas)]),
                "broker-tls",
                &required,
            )
        };
        let (leaf, cas) = with(&good.cert_pem, &good.key_pem, &ca.cert_pem).expect("valid");
        assert_eq!(cas.len(), 1);
        assert!(
            leaf.dns_names
                .contains(&"*.events-brokers.data.svc".to_owned())
        );

        let other = pki::new_ca("other", NOW, 1000).expect("ca");
        let err = with(&good.cert_pem, &good.key_pem, &other.cert_pem).expect_err("foreign CA");
        assert_eq!(
            err.message(),
            "Secret broker-tls key ca.crt holds no CA that signed the certificate in tls.crt"
        );
        let narrow = pki::sign_leaf(
            &ca,
            "events",
            &["events-bootstrap.data.svc".to_owned()],
            NOW,
            90,
        )
        .expect("leaf");
        let err = with(&narrow.cert_pem, &narrow.key_pem, &ca.cert_pem).expect_err("names");
        assert!(
            err.message().starts_with(
                "Secret broker-tls key tls.crt does not name 3 of the brokers' DNS names, e.g. events-0.events-brokers.data.svc"
            ),
            "{}",
            err.message()
        );
        let err = with(&good.cert_pem, &narrow.key_pem, &ca.cert_pem).expect_err("key");
        assert!(
            err.message().starts_with("Secret broker-tls key tls.key"),
            "{}",
            err.message()
        );
    }
}
