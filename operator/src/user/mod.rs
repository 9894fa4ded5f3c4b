//! The User reconciler.
//!
//! Every reconcile goes through kube-runtime's [`finalizer`] helper, which
//! adds `rill.dev/user-credentials` first and then calls one of two
//! branches:
//!
//! * **Apply** — a pipeline of checks, then provisioning:
//!   1. find the StreamCluster (`ClusterNotFound`);
//!   2. admission by its `spec.users.allowedNamespaces`
//!      (`NamespaceNotAllowed`; credentials and ACLs of the username are
//!      revoked unless another User owns it);
//!   3. the spec: ACL rules ([`acls`]) and a listener that fits the
//!      authentication ([`listeners`]) (`InvalidSpec`, `ListenerNotFound`);
//!   4. the username ([`naming`]): the oldest User wins (`UsernameConflict`);
//!   5. the Secret name is free or already this User's (`SecretConflict`);
//!   6. credentials: for scram-sha-512 the password (from the user's
//!      Secret, else the one kept in the User's Secret, else a new one)
//!      goes salted and hashed into the cluster's credentials file
//!      ([`credentials`]), and broker pods are annotated so the kubelet
//!      refreshes it; for tls a client certificate is issued or kept
//!      ([`certificate`]);
//!   7. the cluster's ACLs of the principal are made equal to the spec
//!      through the metadata controller ([`acls::AclSync`]);
//!   8. the User's Secret is written ([`secret`]) and the [`status`].
//! * **Cleanup**: the username's credentials and ACLs are removed (unless
//!   another User owns the username); the Secret goes with its owner.
//!
//! Refusals that depend on other objects are checked again every
//! [`RECHECK`]; a provisioned User every [`RESYNC`] (a password read from
//! a Secret every [`PASSWORD_RESYNC`]), which renews certificates and
//! reverts ACLs changed behind the resource's back.

pub mod acls;
pub mod certificate;
pub mod credentials;
pub mod listeners;
pub mod naming;
pub mod secret;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Client, ResourceExt};
use rill_proto::scram::CredentialError;
use serde_json::Value;
use tracing::{info, warn};

use crate::conditions::{self, READY};
use crate::context::Context;
use crate::crd::{AuthenticationType, StreamCluster, User, UserStatus};
use crate::ssa::{self, Applied, ApplyError};
use crate::stream_cluster::build::{common_labels, owner_reference};
use crate::stream_cluster::roll::annotate_broker_pods;
use credentials::CredentialsFile;
use listeners::Listener;
use secret::ClientAuth;
use status::{Outcome, Report, reasons};

/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "user";

/// Finalizer that guards the removal of credentials and ACLs.
pub const FINALIZER: &str = "rill.dev/user-credentials";

/// Re-check interval of refusals caused by other objects.
pub const RECHECK: Duration = Duration::from_secs(60);

/// Retry interval while the metadata controller or a CA is not ready.
pub const RETRY: Duration = Duration::from_secs(5);

/// How often a provisioned User is reconciled again.
pub const RESYNC: Duration = Duration::from_secs(300);

/// How often a User whose password comes from a Secret is reconciled
/// again, so a changed password reaches the brokers within this time.
pub const PASSWORD_RESYNC: Duration = Duration::from_secs(30);

/// Secret holding the CA bundle clients trust (key [`CA_BUNDLE_KEY`]).
pub fn cluster_ca_secret(cluster: &str) -> String {
    format!("{cluster}-cluster-ca-cert")
}

/// Key of the CA bundle in [`cluster_ca_secret`].
pub const CA_BUNDLE_KEY: &str = "ca.crt";

/// Annotation put on broker pods with a hash of the credentials file, so
/// the kubelet refreshes the mounted Secret at once.
pub const CREDENTIALS_CONTENT_ANNOTATION: &str = "rill.dev/credentials-content";

/// Attempts of a compare-and-swap update of the credentials file.
const CAS_ATTEMPTS: usize = 5;

/// Errors of one User reconcile; retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no namespace (never expected: the CRD is namespaced).
    #[error("User has no namespace")]
    MissingNamespace,
    /// A read or write of the Kubernetes API failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was attempted.
        what: String,
        /// Client error.
        #[source]
        source: kube::Error,
    },
    /// The StreamCluster as stored cannot be read.
    #[error("cannot read StreamCluster {name}: {source}")]
    DecodeCluster {
        /// Cluster name.
        name: String,
        /// Decoder error.
        #[source]
        source: serde_json::Error,
    },
    /// Writing the User's Secret failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A SCRAM credential could not be made.
    #[error("cannot make a SCRAM credential: {0}")]
    Credential(#[from] CredentialError),
    /// Other writers kept changing the credentials file.
    #[error("the credentials Secret {0} changed under every one of {CAS_ATTEMPTS} attempts")]
    Contended(String),
    /// Removing ACLs failed during cleanup.
    #[error(transparent)]
    Acls(#[from] acls::AclSyncError),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// Short label for the `reason` of `rill_operator_reconcile_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::MissingNamespace => "missing_namespace",
            Error::Kube { .. } => "kube",
            Error::DecodeCluster { .. } => "decode_cluster",
            Error::Apply(e) => e.metric_label(),
            Error::Credential(_) => "credential",
            Error::Contended(_) => "contended",
            Error::Acls(_) => "acls",
            Error::Finalizer(inner) => match inner.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.metric_label(),
                F::AddFinalizer(_) => "add_finalizer",
                F::RemoveFinalizer(_) => "remove_finalizer",
                F::UnnamedObject | F::InvalidFinalizer => "finalizer",
            },
        }
    }
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

/// Reconciles one User.
pub async fn reconcile(user: Arc<User>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let namespace = user.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<User> = Api::namespaced(ctx.client.clone(), &namespace);
    let (ctx, api_ref) = (ctx.as_ref(), &api);
    finalizer(&api, FINALIZER, user, |event| async move {
        match event {
            FinalizerEvent::Apply(user) => apply(&user, ctx, api_ref).await,
            FinalizerEvent::Cleanup(user) => cleanup(&user, ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// A StreamCluster, typed and as stored (for fields this operator version
/// may not know, such as `spec.listeners`).
struct ClusterObject {
    typed: StreamCluster,
    raw: Value,
}

async fn get_cluster(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<ClusterObject>, Error> {
    let resource = ApiResource::erase::<StreamCluster>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let Some(object) = api.get_opt(name).await.map_err(kube_error(format!(
        "cannot read StreamCluster {namespace}/{name}"
    )))?
    else {
        return Ok(None);
    };
    let decode = |source| Error::DecodeCluster {
        name: format!("{namespace}/{name}"),
        source,
    };
    let raw = serde_json::to_value(&object).map_err(decode)?;
    let typed = serde_json::from_value(raw.clone()).map_err(decode)?;
    Ok(Some(ClusterObject { typed, raw }))
}

async fn list_users(client: &Client) -> Result<Vec<User>, Error> {
    Api::<User>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(kube_error("cannot list Users"))
}

async fn get_secret(client: &Client, namespace: &str, name: &str) -> Result<Option<Secret>, Error> {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(kube_error(format!("cannot read Secret {namespace}/{name}")))
}

/// Changes the credentials file of `cluster` with `change`, drops the
/// users no admitted scram User owns any more, and writes it back with a
/// resourceVersion compare-and-swap (creating the Secret if missing).
/// Broker pods are annotated after a change. Returns whether it changed.
async fn update_credentials(
    ctx: &Context,
    cluster: &StreamCluster,
    change: impl Fn(&mut CredentialsFile, &[User]) -> Result<bool, CredentialError>,
) -> Result<bool, Error> {
    let namespace = cluster.namespace().unwrap_or_default();
    let cluster_name = cluster.name_any();
    let name = credentials::secret_name(&cluster_name);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    for _ in 0..CAS_ATTEMPTS {
        let current = get_secret(&ctx.client, &namespace, &name).await?;
        // Listed after the read: a line in the file was written for a
        // User that existed before it, so this list has that User.
        let users = list_users(&ctx.client).await?;
        let text = current
            .as_ref()
            .and_then(|s| secret::text(s, credentials::CREDENTIALS_KEY))
            .unwrap_or_default();
        let (mut file, skipped) = CredentialsFile::parse(&text);
        for problem in &skipped {
            warn!(secret = %name, %problem, "dropping an unreadable line of the credentials file");
        }
        let mut changed = change(&mut file, &users)? || !skipped.is_empty();
        let owners: Vec<String> = naming::owners(cluster, &users)
            .into_iter()
            .filter(|u| u.spec.authentication.type_ == AuthenticationType::ScramSha512)
            .map(naming::username_of)
            .collect();
        let pruned = file.retain(|u| owners.iter().any(|o| o == u));
        if !pruned.is_empty() {
            info!(cluster = %cluster_name, users = ?pruned, "removing credentials no User owns");
            changed = true;
        }
        if !changed && current.is_some() {
            return Ok(false);
        }
        let rendered = file.render();
        let data = BTreeMap::from([(
            credentials::CREDENTIALS_KEY.to_owned(),
            ByteString(rendered.clone().into_bytes()),
        )]);
        let result = match current {
            None => {
                let fresh = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(namespace.clone()),
                        labels: Some(common_labels(&cluster_name)),
                        owner_references: owner_reference(cluster).map(|r| vec![r]),
                        ..ObjectMeta::default()
                    },
                    type_: Some("Opaque".to_owned()),
                    data: Some(data),
                    ..Secret::default()
                };
                api.create(&PostParams::default(), &fresh)
                    .await
                    .map(|_| "create")
            }
            Some(mut existing) => {
                existing.data.get_or_insert_with(BTreeMap::new).extend(data);
                // replace carries the resourceVersion read above.
                api.replace(&name, &PostParams::default(), &existing)
                    .await
                    .map(|_| "update")
            }
        };
        match result {
            Ok(verb) => {
                ctx.metrics.record_write(CONTROLLER, "Secret", verb);
                annotate_broker_pods(
                    &ctx.client,
                    &namespace,
                    &cluster_name,
                    CREDENTIALS_CONTENT_ANNOTATION,
                    &credentials::content_hash(&rendered),
                )
                .await;
                return Ok(true);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(source) => {
                return Err(Error::Kube {
                    what: format!("cannot write Secret {namespace}/{name}"),
                    source,
                });
            }
        }
    }
    Err(Error::Contended(format!("{namespace}/{name}")))
}

/// Removes `user`'s credentials and ACLs from `cluster`, unless another
/// admitted User owns the username.
async fn revoke(ctx: &Context, cluster: &StreamCluster, user: &User) -> Result<(), Error> {
    let users = list_users(&ctx.client).await?;
    if let Some(owner) = naming::owner_other_than(user, cluster, &users, true) {
        info!(user = %user.name_any(), owner = %owner.name_any(), "username owned by another User: nothing to revoke");
        return Ok(());
    }
    let username = naming::username_of(user);
    update_credentials(ctx, cluster, |file, _| Ok(file.remove(&username))).await?;
    let outcome = ctx
        .acls
        .sync_principal(
            &cluster.namespace().unwrap_or_default(),
            &cluster.name_any(),
            &naming::principal(&username),
            &[],
        )
        .await?;
    if outcome.deleted > 0 {
        info!(user = %user.name_any(), deleted = outcome.deleted, "removed the ACLs of the user");
    }
    if ctx
        .acls
        .sync_quotas(
            &cluster.namespace().unwrap_or_default(),
            &cluster.name_any(),
            &username,
            &[],
        )
        .await?
    {
        info!(user = %user.name_any(), "removed the client quotas of the user");
    }
    Ok(())
}

/// The secret material of a User, by authentication type.
enum Material {
    /// A scram user's password.
    Password(String),
    /// A tls user's certificate and key.
    Certificate(certificate::Issued),
}

fn not_ready(reason: &'static str, message: impl Into<String>) -> Outcome {
    Outcome::NotReady {
        reason,
        message: message.into(),
    }
}

/// The password of a scram User: from its password Secret, else the one
/// its own Secret keeps, else a new one. `Err` is a refusal.
async fn password(
    user: &User,
    ctx: &Context,
    namespace: &str,
    existing: Option<&Secret>,
) -> Result<Result<String, Outcome>, Error> {
    if let Some(source) = &user.spec.authentication.password {
        let r = &source.value_from.secret_key_ref;
        let Some(s) = get_secret(&ctx.client, namespace, &r.name).await? else {
            return Ok(Err(not_ready(
                reasons::PASSWORD_NOT_FOUND,
                format!(
                    "Secret {:?} (authentication.password) does not exist in namespace {namespace:?}",
                    r.name
                ),
            )));
        };
        let Some(value) = secret::text(&s, &r.key) else {
            return Ok(Err(not_ready(
                reasons::PASSWORD_NOT_FOUND,
                format!(
                    "Secret {:?} has no key {:?} (authentication.password)",
                    r.name, r.key
                ),
            )));
        };
        if let Err(problem) = credentials::check_password(&value) {
            return Ok(Err(not_ready(
                reasons::INVALID_SPEC,
                format!(
                    "the password in Secret {:?} key {:?} cannot be used: {problem}",
                    r.name, r.key
                ),
            )));
        }
        return Ok(Ok(value));
    }
    Ok(Ok(credentials::choose_password(
        existing.and_then(|s| secret::text(s, "password")),
    )))
}

/// Decides and provisions; returns the outcome, the status fields and when
/// to look again.
async fn provision(user: &User, ctx: &Context) -> Result<(Outcome, Report, Action), Error> {
    let namespace = user.namespace().ok_or(Error::MissingNamespace)?;
    let cluster_ns = naming::cluster_namespace(user);
    let cluster_name = &user.spec.cluster.name;
    let username = naming::username_of(user);
    let principal = naming::principal(&username);
    let mut report = Report {
        username: Some(username.clone()),
        ..Report::default()
    };
    let recheck = |outcome, report| Ok((outcome, report, Action::requeue(RECHECK)));

    // 1. The cluster.
    let Some(cluster) = get_cluster(&ctx.client, &cluster_ns, cluster_name).await? else {
        let message =
            format!("StreamCluster {cluster_name:?} does not exist in namespace {cluster_ns:?}");
        return recheck(not_ready(reasons::CLUSTER_NOT_FOUND, message), report);
    };
    let sc = &cluster.typed;

    // 2. Admission.
    if !naming::admits(sc, &namespace) {
        revoke(ctx, sc, user).await?;
        let message = format!(
            "StreamCluster {cluster_ns}/{cluster_name} does not admit Users from namespace {namespace:?}; \
             its spec.users.allowedNamespaces must list it (or \"*\")"
        );
        return recheck(not_ready(reasons::NAMESPACE_NOT_ALLOWED, message), report);
    }

    // 3. The spec.
    let desired_acls = match acls::desired(&user.spec, &principal) {
        Ok(a) => a,
        Err(problems) => {
            let outcome = not_ready(reasons::INVALID_SPEC, problems.join("; "));
            return Ok((outcome, report, Action::await_change()));
        }
    };
    let all_listeners = match listeners::listeners(&cluster.raw) {
        Ok(l) => l,
        Err(message) => return recheck(not_ready(reasons::LISTENER_NOT_FOUND, message), report),
    };
    let auth_type = user.spec.authentication.type_;
    let listener: Listener =
        match listeners::select(&all_listeners, auth_type, user.spec.listener.as_deref()) {
            Ok(l) => l.clone(),
            Err(message) => {
                return recheck(not_ready(reasons::LISTENER_NOT_FOUND, message), report);
            }
        };

    // 4. The username.
    let users = list_users(&ctx.client).await?;
    if let Some(owner) = naming::owner_other_than(user, sc, &users, true) {
        let message = format!(
            "User {}/{} already has username {username:?} on StreamCluster {cluster_ns}/{cluster_name}; the oldest User wins",
            owner.namespace().unwrap_or_default(),
            owner.name_any()
        );
        return recheck(not_ready(reasons::USERNAME_CONFLICT, message), report);
    }

    // 5. The Secret name.
    let secret_name = secret::secret_name(user);
    let existing = get_secret(&ctx.client, &namespace, &secret_name).await?;
    if let Some(s) = &existing
        && !secret::owned_by(s, user)
    {
        let message = format!(
            "Secret {secret_name:?} already exists in namespace {namespace:?} and does not belong to this User; \
             set spec.secretName to another name"
        );
        return recheck(not_ready(reasons::SECRET_CONFLICT, message), report);
    }

    // 6. Credentials.
    let mut resync = RESYNC;
    let material = match auth_type {
        AuthenticationType::ScramSha512 => {
            let password = match password(user, ctx, &namespace, existing.as_ref()).await? {
                Ok(p) => p,
                Err(outcome) => return recheck(outcome, report),
            };
            if user.spec.authentication.password.is_some() {
                resync = PASSWORD_RESYNC;
            }
            let changed =
                update_credentials(ctx, sc, |file, _| file.set_password(&username, &password))
                    .await?;
            if changed {
                info!(user = %user.name_any(), %username, "SCRAM credentials written to the cluster's credentials file");
            }
            Material::Password(password)
        }
        AuthenticationType::Tls => {
            let ca_name = certificate::clients_ca_secret(cluster_name);
            let ca = get_secret(&ctx.client, &cluster_ns, &ca_name).await?;
            let (Some(ca_cert), Some(ca_key)) = (
                ca.as_ref().and_then(|s| secret::text(s, "tls.crt")),
                ca.as_ref().and_then(|s| secret::text(s, "tls.key")),
            ) else {
                let message = format!(
                    "the clients CA Secret {cluster_ns}/{ca_name} (tls.crt, tls.key) does not exist yet"
                );
                return Ok((
                    not_ready(reasons::CLIENTS_CA_NOT_READY, message),
                    report,
                    Action::requeue(RETRY),
                ));
            };
            // A user switched from scram keeps no password on the brokers.
            update_credentials(ctx, sc, |file, _| Ok(file.remove(&username))).await?;
            let now = jiff::Timestamp::now().as_second();
            let held = existing.as_ref().map(|s| {
                (
                    secret::text(s, "user.crt").unwrap_or_default(),
                    secret::text(s, "user.key").unwrap_or_default(),
                )
            });
            let (cert, key) = held.unwrap_or_default();
            let issued = match certificate::check(&cert, &key, &ca_cert, &username, now) {
                certificate::Verdict::Keep { not_after } => certificate::Issued {
                    cert_pem: cert,
                    key_pem: key,
                    not_after,
                },
                certificate::Verdict::Renew(why) => {
                    match certificate::issue(&ca_cert, &ca_key, &username, now) {
                        Ok(issued) => {
                            info!(user = %user.name_any(), %username, reason = %why, "issued a client certificate");
                            let note =
                                format!("issued a client certificate for {username:?} ({why})");
                            ctx.publish(
                                user,
                                EventType::Normal,
                                "CertificateIssued",
                                "Reconcile",
                                note,
                            )
                            .await;
                            issued
                        }
                        Err(e) => {
                            return recheck(
                                not_ready(reasons::CLIENTS_CA_NOT_READY, e.to_string()),
                                report,
                            );
                        }
                    }
                }
            };
            let renew_in = issued
                .not_after
                .saturating_sub(now)
                .saturating_sub(i64::try_from(certificate::RENEW_BEFORE.as_secs()).unwrap_or(0));
            resync = resync.min(Duration::from_secs(
                u64::try_from(renew_in.max(1)).unwrap_or(1),
            ));
            report.certificate_not_after = Some(certificate::rfc3339(issued.not_after));
            Material::Certificate(issued)
        }
    };

    // 7. ACLs.
    match ctx
        .acls
        .sync_principal(&cluster_ns, cluster_name, &principal, &desired_acls)
        .await
    {
        Ok(outcome) => {
            if outcome.created + outcome.deleted > 0 {
                info!(user = %user.name_any(), created = outcome.created, deleted = outcome.deleted, "ACLs of the user synchronised");
                let note = format!(
                    "ACLs of {principal}: {} created, {} deleted",
                    outcome.created, outcome.deleted
                );
                ctx.publish(user, EventType::Normal, "AclsChanged", "Reconcile", note)
                    .await;
            }
            report.acls = Some(i32::try_from(desired_acls.len()).unwrap_or(i32::MAX));
        }
        Err(e) => {
            return Ok((
                not_ready(reasons::ACLS_PENDING, e.to_string()),
                report,
                Action::requeue(RETRY),
            ));
        }
    }

    // 7b. Client quotas (Kafka's user entity: the username).
    let desired_quotas = user
        .spec
        .quotas
        .as_ref()
        .map(|q| q.entries())
        .unwrap_or_default();
    match ctx
        .acls
        .sync_quotas(&cluster_ns, cluster_name, &username, &desired_quotas)
        .await
    {
        Ok(true) => {
            let note = format!("client quotas of {username}: {desired_quotas:?}");
            ctx.publish(user, EventType::Normal, "QuotasChanged", "Reconcile", note)
                .await;
        }
        Ok(false) => {}
        Err(e) => {
            return Ok((
                not_ready(reasons::ACLS_PENDING, e.to_string()),
                report,
                Action::requeue(RETRY),
            ));
        }
    }

    // 8. The CA bundle and the Secret.
    let ca_bundle = if listener.tls {
        let name = cluster_ca_secret(cluster_name);
        let bundle = get_secret(&ctx.client, &cluster_ns, &name)
            .await?
            .and_then(|s| secret::text(&s, CA_BUNDLE_KEY));
        if bundle.is_none() {
            let message = format!(
                "the CA bundle Secret {cluster_ns}/{name} (key {CA_BUNDLE_KEY}) does not exist yet"
            );
            return Ok((
                not_ready(reasons::CLUSTER_CA_NOT_READY, message),
                report,
                Action::requeue(RETRY),
            ));
        }
        bundle
    } else {
        None
    };
    let auth = match &material {
        Material::Password(password) => ClientAuth::Scram { password },
        Material::Certificate(c) => ClientAuth::Tls {
            cert_pem: &c.cert_pem,
            key_pem: &c.key_pem,
        },
    };
    let settings = secret::ClientSettings {
        bootstrap: format!(
            "{}.{cluster_ns}.svc:{}",
            crate::stream_cluster::build::Names::new(cluster_name).bootstrap_service,
            listener.port
        ),
        listener: &listener,
        username: &username,
        auth,
        ca_bundle: ca_bundle.as_deref(),
    };
    let desired = secret::build(user, &secret_name, secret::data(&settings));
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    match ssa::apply_if_changed(&api, &desired, existing.as_ref()).await? {
        Applied::Unchanged => {}
        Applied::Created(_) => {
            ctx.metrics.record_write(CONTROLLER, "Secret", "create");
            let note = format!(
                "wrote Secret {secret_name:?} with the client configuration of {username:?}"
            );
            ctx.publish(user, EventType::Normal, "SecretCreated", "Reconcile", note)
                .await;
        }
        Applied::Updated(_) => {
            ctx.metrics.record_write(CONTROLLER, "Secret", "update");
            let note = format!(
                "updated Secret {secret_name:?} (credentials, certificates or address changed)"
            );
            ctx.publish(user, EventType::Normal, "SecretUpdated", "Reconcile", note)
                .await;
        }
    }
    report.secret = Some(secret_name.clone());
    let message = format!(
        "{principal} can connect to {} ({}) with Secret {secret_name:?}; {} ACL(s)",
        settings.bootstrap,
        listener.security_protocol(),
        desired_acls.len()
    );
    Ok((Outcome::Ready { message }, report, Action::requeue(resync)))
}

async fn apply(user: &User, ctx: &Context, api: &Api<User>) -> Result<Action, Error> {
    let (outcome, report, action) = provision(user, ctx).await?;
    let new_status = status::compute(user, &outcome, &report, &conditions::now());
    write_status(ctx, api, user, &new_status).await?;
    Ok(action)
}

async fn write_status(
    ctx: &Context,
    api: &Api<User>,
    user: &User,
    new_status: &UserStatus,
) -> Result<(), Error> {
    if !status::patch_if_changed(api, user, new_status)
        .await
        .map_err(kube_error("cannot update User status"))?
    {
        return Ok(());
    }
    ctx.metrics.record_write(CONTROLLER, "User", "status");
    let old = user
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, READY))
        .map(|c| (c.status.clone(), c.reason.clone()));
    if let Some(ready) = conditions::find(&new_status.conditions, READY)
        && old != Some((ready.status.clone(), ready.reason.clone()))
    {
        let type_ = if ready.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.publish(
            user,
            type_,
            &ready.reason.clone(),
            "Reconcile",
            ready.message.clone(),
        )
        .await;
    }
    Ok(())
}

async fn cleanup(user: &User, ctx: &Context) -> Result<Action, Error> {
    let cluster_ns = naming::cluster_namespace(user);
    let Some(cluster) = get_cluster(&ctx.client, &cluster_ns, &user.spec.cluster.name).await?
    else {
        info!(user = %user.name_any(), "StreamCluster gone: no credentials or ACLs to remove");
        return Ok(Action::await_change());
    };
    revoke(ctx, &cluster.typed, user).await?;
    let username = naming::username_of(user);
    info!(user = %user.name_any(), %username, "removed the user's credentials and ACLs");
    let note = format!("removed the credentials and ACLs of {username:?} from the cluster");
    ctx.publish(user, EventType::Normal, "Revoked", "Delete", note)
        .await;
    Ok(Action::await_change())
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Users and clusters used by tests.
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use crate::crd::{StreamCluster, User, UserSpec};

    /// User `name` in `namespace`, scram-sha-512, naming cluster
    /// `data/events`.
    pub fn user(namespace: &str, name: &str, created: &str) -> User {
        let spec: UserSpec = serde_json::from_value(serde_json::json!({
            "cluster": {"name": "events", "namespace": "data"},
            "authentication": {"type": "scram-sha-512"},
        }))
        .expect("spec");
        let mut u = User::new(name, spec);
        u.metadata.namespace = Some(namespace.into());
        u.metadata.uid = Some(format!("uid-{namespace}-{name}"));
        u.metadata.generation = Some(1);
        u.metadata.creation_timestamp = Some(Time(created.parse().expect("timestamp")));
        u
    }

    /// The 3-broker cluster `events` in namespace `data`.
    pub fn cluster() -> StreamCluster {
        crate::stream_cluster::build::fixtures::cluster()
    }
}
