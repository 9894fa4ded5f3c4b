//! The certificate decisions, as functions of what exists, the time and the
//! annotations of the running broker pods. They make keys (randomness) but
//! read nothing else, so each step of a renewal is unit tested.
//!
//! A CA is renewed in three steps, each waiting for the brokers to be
//! rolled (restarted one at a time, safely) onto the previous one:
//!
//! 1. renewal is due (`renewBeforeDays` before expiry): a next CA is made
//!    and published in the trust bundle next to the current one. The
//!    bundle's fingerprint is a pod-template annotation, so brokers roll
//!    and come back trusting both;
//! 2. once every broker pod runs with that bundle, the next CA becomes the
//!    current one (it signs from now on, the old one stays trusted) and the
//!    broker certificate is signed again by it. The signer's fingerprint is
//!    another annotation, so brokers roll and come back presenting it;
//! 3. once every broker pod runs with the new signer, the old CA leaves the
//!    bundle (one more roll). For the clients CA, whose old certificates
//!    belong to users, the old CA stays trusted until it expires.
//!
//! A CA read from a Secret of the user's (for example one cert-manager
//! renews) goes through the same steps: when its certificate changes, the
//! new CA plays the part of the next CA. The operator never makes one.
//!
//! The broker certificate is signed again when it is missing, due for
//! renewal, signed by another CA than the current one, or does not name
//! every broker (a scale-up). Brokers read their internal certificate at
//! start, so a new one rolls them (pod-template annotation
//! `rill.dev/broker-cert`).

use std::collections::BTreeMap;

use super::pki::{self, CertInfo, KeyedCert, PkiError};
use crate::crd::CertValidity;

/// A CA certificate with its key, read or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ca {
    /// PEM certificate and key.
    pub keyed: KeyedCert,
    /// The parsed certificate.
    pub cert: CertInfo,
}

impl Ca {
    /// Reads a CA from PEM, checking the key belongs to a CA certificate.
    pub fn read(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let cert = pki::read_ca(cert_pem, key_pem)?;
        Ok(Self {
            keyed: KeyedCert {
                cert_pem: cert.pem(),
                // Stored as PKCS#8, whatever form the user's Secret holds.
                key_pem: pki::pkcs8_pem(key_pem)?,
            },
            cert,
        })
    }

    fn make(common_name: &str, now: i64, validity: CertValidity) -> Result<Self, PkiError> {
        let keyed = pki::new_ca(common_name, now, validity.validity_days)?;
        Self::read(&keyed.cert_pem, &keyed.key_pem)
    }
}

/// What exists for one CA.
#[derive(Debug, Clone, Default)]
pub struct CaInput {
    /// The CA from the user's Secret (`spec.certificates.*.secretName`).
    pub user: Option<Ca>,
    /// `tls.crt`/`tls.key` of the operator's CA Secret: the CA that signs.
    pub current: Option<Ca>,
    /// `next.crt`/`next.key` of the operator's CA Secret (step 1 done).
    pub next: Option<Ca>,
    /// The certificates of the published bundle (`ca.crt`).
    pub published: Vec<CertInfo>,
    /// Certificates trusted besides this CA's (the CA of a broker
    /// certificate Secret of the user's).
    pub extra_trust: Vec<CertInfo>,
}

/// When a CA that no longer signs leaves the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retire {
    /// When it expires (clients CA: users' certificates may still chain
    /// to it).
    Expired,
    /// When every broker pod runs with a certificate of the current CA, or
    /// when it expires (cluster CA).
    WhenSignerRolledOut,
}

/// The rollout annotations of one CA.
#[derive(Debug, Clone, Copy)]
pub struct Annotations<'a> {
    /// Pod-template annotation holding the bundle fingerprint.
    pub bundle: &'a str,
    /// Pod-template annotation holding the signer fingerprint, if the
    /// brokers present certificates of this CA.
    pub signer: Option<&'a str>,
}

/// The decision for one CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaOutcome {
    /// The CA that signs (`tls.crt`/`tls.key`).
    pub current: Ca,
    /// The next CA, published but not signing yet.
    pub next: Option<Ca>,
    /// The trust bundle to publish, as [`pki::bundle`] orders it.
    pub bundle: Vec<CertInfo>,
    /// What changed, for the log and Events; empty when nothing did.
    pub changes: Vec<String>,
}

impl CaOutcome {
    /// Fingerprint of the bundle (pod-template annotation).
    pub fn bundle_fingerprint(&self) -> String {
        pki::set_fingerprint(&self.bundle)
    }

    /// The bundle as PEM text.
    pub fn bundle_pem(&self) -> String {
        pki::bundle(&self.bundle)
    }
}

/// Whether every pod carries `key: value` (true when there are no pods:
/// pods created later get the current template).
pub fn all_pods_have(pods: &[BTreeMap<String, String>], key: &str, value: &str) -> bool {
    pods.iter()
        .all(|annotations| annotations.get(key).map(String::as_str) == Some(value))
}

fn contains(certs: &[CertInfo], cert: &CertInfo) -> bool {
    certs.iter().any(|c| c.der == cert.der)
}

/// Decides the CA, its next CA and its bundle. `common_name` names a CA
/// the operator makes.
pub fn plan_ca(
    common_name: &str,
    now: i64,
    validity: CertValidity,
    input: CaInput,
    pods: &[BTreeMap<String, String>],
    annotations: Annotations<'_>,
    retire: Retire,
) -> Result<CaOutcome, PkiError> {
    let mut changes = Vec::new();
    let user_mode = input.user.is_some();
    let mut current = input.current;
    let mut next = if let Some(user) = input.user {
        // A CA of the user's: when it differs from the one that signs, it
        // is the next one.
        match &current {
            Some(c) if c.cert.der == user.cert.der => None,
            _ => Some(user),
        }
    } else {
        input.next
    };
    let mut current = match current.take() {
        Some(c) => c,
        None => match next.take() {
            Some(n) => {
                changes.push(format!("took the CA {}", n.cert.subject));
                n
            }
            None => {
                changes.push("made a new CA".to_owned());
                Ca::make(common_name, now, validity)?
            }
        },
    };
    if !user_mode && next.is_none() && current.cert.renewal_due(now, validity.renew_before_days) {
        changes.push(format!(
            "made the next CA: the current one expires at {}",
            current.cert.not_after_rfc3339()
        ));
        next = Some(Ca::make(common_name, now, validity)?);
    }

    // Older CAs still in the bundle.
    let signer_rolled_out = annotations
        .signer
        .is_some_and(|key| all_pods_have(pods, key, &current.cert.fingerprint()));
    let mut retired: Vec<CertInfo> = Vec::new();
    for cert in &input.published {
        let is_live = cert.der == current.cert.der
            || next.as_ref().is_some_and(|n| n.cert.der == cert.der)
            || contains(&input.extra_trust, cert);
        if is_live || contains(&retired, cert) {
            continue;
        }
        let drop =
            cert.expired(now) || (retire == Retire::WhenSignerRolledOut && signer_rolled_out);
        if drop {
            changes.push(format!(
                "removed the old CA {} from the bundle",
                cert.subject
            ));
        } else {
            retired.push(cert.clone());
        }
    }
    let mut bundle: Vec<CertInfo> = vec![current.cert.clone()];
    bundle.extend(next.iter().map(|n| n.cert.clone()));
    bundle.extend(retired);
    bundle.extend(input.extra_trust.iter().cloned());
    let bundle = dedup_sorted(bundle);

    // Step 2: every broker trusts the bundle with the next CA in it.
    if let Some(n) = next.take() {
        let fingerprint = pki::set_fingerprint(&bundle);
        if all_pods_have(pods, annotations.bundle, &fingerprint) {
            changes.push(format!(
                "the CA expiring {} signs from now on; the one expiring {} stays trusted",
                n.cert.not_after_rfc3339(),
                current.cert.not_after_rfc3339()
            ));
            current = n;
        } else {
            next = Some(n);
        }
    }
    if !input.published.is_empty()
        && pki::set_fingerprint(&input.published) != pki::set_fingerprint(&bundle)
        && changes.is_empty()
    {
        changes.push("published the trust bundle again".to_owned());
    }
    Ok(CaOutcome {
        current,
        next,
        bundle,
        changes,
    })
}

fn dedup_sorted(certs: Vec<CertInfo>) -> Vec<CertInfo> {
    let mut certs = certs;
    certs.sort_by(|a, b| b.not_after.cmp(&a.not_after).then(a.der.cmp(&b.der)));
    certs.dedup_by(|a, b| a.der == b.der);
    certs
}

/// Whether a SAN (`*.example` wildcards allowed in the first label)
/// matches `name`.
pub fn san_matches(san: &str, name: &str) -> bool {
    let san = san.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    match san.strip_prefix("*.") {
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
        None => san == name,
    }
}

/// The names of `required` that no SAN of `cert` matches.
pub fn missing_names(cert: &CertInfo, required: &[String]) -> Vec<String> {
    required
        .iter()
        .filter(|name| !cert.dns_names.iter().any(|san| san_matches(san, name)))
        .cloned()
        .collect()
}

/// Why the broker certificate is signed again, or None to keep it.
pub fn leaf_renewal_reason(
    existing: Option<&CertInfo>,
    signer: &Ca,
    names: &[String],
    now: i64,
    validity: CertValidity,
) -> Option<String> {
    let Some(leaf) = existing else {
        return Some("made the broker certificate".to_owned());
    };
    if !leaf.signed_by(&signer.cert) {
        return Some(format!(
            "signed the broker certificate again with the CA {}",
            signer.cert.subject
        ));
    }
    if leaf.renewal_due(now, validity.renew_before_days) {
        return Some(format!(
            "renewed the broker certificate, which expires at {}",
            leaf.not_after_rfc3339()
        ));
    }
    let missing = missing_names(leaf, names);
    if !missing.is_empty() {
        return Some(format!(
            "signed the broker certificate again for {} more names (e.g. {})",
            missing.len(),
            missing[0]
        ));
    }
    None
}

/// The DNS names the broker certificate covers: every broker pod through
/// the headless Service (`<pod>.<headless>.<ns>.svc` and
/// `.svc.cluster.local`), and both Services by their short,
/// namespace-qualified, `.svc` and `.svc.cluster.local` names.
pub fn broker_names(cluster: &str, namespace: &str, brokers: i32) -> Vec<String> {
    let headless = format!("{cluster}-brokers");
    let bootstrap = format!("{cluster}-bootstrap");
    let mut names = Vec::new();
    for service in [&bootstrap, &headless] {
        names.push(service.clone());
        names.push(format!("{service}.{namespace}"));
        names.push(format!("{service}.{namespace}.svc"));
        names.push(format!("{service}.{namespace}.svc.cluster.local"));
    }
    for ordinal in 0..brokers.max(0) {
        names.push(format!("{cluster}-{ordinal}.{headless}.{namespace}.svc"));
        names.push(format!(
            "{cluster}-{ordinal}.{headless}.{namespace}.svc.cluster.local"
        ));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z.
    const NOW: i64 = 1_767_225_600;
    const DAY: i64 = 86_400;
    const BUNDLE: &str = "rill.dev/cluster-ca-bundle";
    const SIGNER: &str = "rill.dev/cluster-ca-signer";
    const ANNOTATIONS: Annotations<'static> = Annotations {
        bundle: BUNDLE,
        signer: Some(SIGNER),
    };

    fn validity() -> CertValidity {
        CertValidity {
            validity_days: 100,
            renew_before_days: 30,
        }
    }

    fn pods(n: usize, bundle: &str, signer: &str) -> Vec<BTreeMap<String, String>> {
        (0..n)
            .map(|_| {
                BTreeMap::from([
                    (BUNDLE.to_owned(), bundle.to_owned()),
                    (SIGNER.to_owned(), signer.to_owned()),
                ])
            })
            .collect()
    }

    fn step(now: i64, previous: &CaOutcome, running: &[BTreeMap<String, String>]) -> CaOutcome {
        let input = CaInput {
            current: Some(previous.current.clone()),
            next: previous.next.clone(),
            published: previous.bundle.clone(),
            ..CaInput::default()
        };
        plan_ca(
            "ca",
            now,
            validity(),
            input,
            running,
            ANNOTATIONS,
            Retire::WhenSignerRolledOut,
        )
        .expect("plan")
    }

    /// The annotations a rolled pod carries for `outcome`.
    fn rolled(outcome: &CaOutcome) -> Vec<BTreeMap<String, String>> {
        pods(
            3,
            &outcome.bundle_fingerprint(),
            &outcome.current.cert.fingerprint(),
        )
    }

    #[test]
    fn given_nothing_when_planning_then_a_ca_is_made_and_alone_in_the_bundle() {
        let outcome = plan_ca(
            "rill events cluster CA",
            NOW,
            validity(),
            CaInput::default(),
            &[],
            ANNOTATIONS,
            Retire::WhenSignerRolledOut,
        )
        .expect("plan");
        assert_eq!(outcome.next, None);
        assert_eq!(outcome.bundle, vec![outcome.current.cert.clone()]);
        assert_eq!(outcome.changes, vec!["made a new CA".to_owned()]);
        assert!(
            outcome
                .current
                .cert
                .subject
                .contains("rill events cluster CA")
        );
        // Planning again with what was published changes nothing.
        let again = step(NOW + DAY, &outcome, &rolled(&outcome));
        assert_eq!(again.current, outcome.current);
        assert_eq!(again.bundle, outcome.bundle);
        assert!(again.changes.is_empty(), "{:?}", again.changes);
    }

    #[test]
    fn given_a_ca_due_for_renewal_when_brokers_roll_then_the_bundle_holds_both_until_every_broker_uses_the_new_one()
     {
        let first = step(
            NOW,
            &CaOutcome {
                current: Ca::make("ca", NOW, validity()).expect("ca"),
                next: None,
                bundle: Vec::new(),
                changes: Vec::new(),
            },
            &[],
        );
        let old = first.current.clone();
        let running = rolled(&first);

        // 1. Due: a next CA joins the bundle; the old one still signs.
        let due = NOW + 71 * DAY;
        let renewing = step(due, &first, &running);
        let next = renewing.next.clone().expect("next CA made");
        assert_eq!(renewing.current, old, "the old CA still signs");
        assert_eq!(renewing.bundle.len(), 2);
        assert!(renewing.bundle.contains(&next.cert) && renewing.bundle.contains(&old.cert));
        assert_ne!(
            renewing.bundle_fingerprint(),
            first.bundle_fingerprint(),
            "brokers roll"
        );

        // Brokers not rolled yet: nothing moves.
        let waiting = step(due + 60, &renewing, &running);
        assert_eq!(waiting.current, old);
        assert_eq!(waiting.next.as_ref(), Some(&next));
        assert_eq!(waiting.bundle, renewing.bundle);

        // Half the brokers rolled: still waiting.
        let mut half = running.clone();
        half[0] = rolled(&renewing)[0].clone();
        assert_eq!(step(due + 120, &renewing, &half).current, old);

        // 2. Every broker trusts both: the next CA signs, the old one stays.
        let promoted = step(due + 180, &renewing, &rolled(&renewing));
        assert_eq!(promoted.current, next);
        assert_eq!(promoted.next, None);
        assert_eq!(
            promoted.bundle, renewing.bundle,
            "same bundle, no roll for it"
        );
        assert_ne!(
            promoted.current.cert.fingerprint(),
            old.cert.fingerprint(),
            "the signer annotation changes: brokers roll onto the new certificate"
        );

        // Brokers still present certificates of the old CA: it stays.
        let still = step(due + 240, &promoted, &rolled(&renewing));
        assert_eq!(still.bundle.len(), 2);

        // 3. Every broker runs with the new signer: the old CA leaves.
        let done = step(due + 300, &promoted, &rolled(&promoted));
        assert_eq!(done.bundle, vec![next.cert.clone()]);
        assert_eq!(done.current, next);
        assert!(
            done.changes
                .iter()
                .any(|c| c.contains("removed the old CA")),
            "{:?}",
            done.changes
        );
    }

    #[test]
    fn given_the_clients_ca_when_the_old_one_no_longer_signs_then_it_stays_trusted_until_it_expires()
     {
        let old = Ca::make("clients", NOW, validity()).expect("ca");
        let new = Ca::make("clients", NOW + 70 * DAY, validity()).expect("ca");
        let input = |now_published: Vec<CertInfo>| CaInput {
            current: Some(new.clone()),
            published: now_published,
            ..CaInput::default()
        };
        let annotations = Annotations {
            bundle: "rill.dev/clients-ca-bundle",
            signer: None,
        };
        let published = vec![new.cert.clone(), old.cert.clone()];
        let before = plan_ca(
            "clients",
            NOW + 80 * DAY,
            validity(),
            input(published.clone()),
            &[],
            annotations,
            Retire::Expired,
        )
        .expect("plan");
        assert_eq!(
            before.bundle.len(),
            2,
            "users' old certificates still chain to it"
        );
        let after = plan_ca(
            "clients",
            NOW + 101 * DAY,
            validity(),
            input(published),
            &[],
            annotations,
            Retire::Expired,
        )
        .expect("plan");
        assert_eq!(after.bundle, vec![new.cert.clone()]);
    }

    #[test]
    fn given_a_user_ca_replaced_in_its_secret_when_planning_then_it_is_trusted_first_and_signs_after_the_roll()
     {
        let old = Ca::make("cert-manager CA", NOW, validity()).expect("ca");
        let new = Ca::make("cert-manager CA", NOW + DAY, validity()).expect("ca");
        let input = |current: &Ca, published: Vec<CertInfo>| CaInput {
            user: Some(new.clone()),
            current: Some(current.clone()),
            published,
            ..CaInput::default()
        };
        let first = plan_ca(
            "unused",
            NOW + DAY,
            validity(),
            input(&old, vec![old.cert.clone()]),
            &pods(
                3,
                &pki::set_fingerprint([&old.cert]),
                &old.cert.fingerprint(),
            ),
            ANNOTATIONS,
            Retire::WhenSignerRolledOut,
        )
        .expect("plan");
        assert_eq!(
            first.current, old,
            "the old CA signs until brokers trust the new one"
        );
        assert_eq!(first.next.as_ref(), Some(&new));
        assert_eq!(first.bundle.len(), 2);

        let promoted = plan_ca(
            "unused",
            NOW + DAY,
            validity(),
            input(&old, first.bundle.clone()),
            &rolled(&first),
            ANNOTATIONS,
            Retire::WhenSignerRolledOut,
        )
        .expect("plan");
        assert_eq!(promoted.current, new);

        // A user CA is never renewed by the operator, even when due.
        let late = plan_ca(
            "unused",
            NOW + 90 * DAY,
            validity(),
            CaInput {
                user: Some(new.clone()),
                current: Some(new.clone()),
                published: vec![new.cert.clone()],
                ..CaInput::default()
            },
            &[],
            ANNOTATIONS,
            Retire::WhenSignerRolledOut,
        )
        .expect("plan");
        assert_eq!(late.next, None);
        assert_eq!(late.current, new);
    }

    #[test]
    fn given_a_broker_ca_of_the_users_when_planning_then_it_is_in_the_bundle() {
        let other = Ca::make("issuer", NOW, validity()).expect("ca");
        let outcome = plan_ca(
            "ca",
            NOW,
            validity(),
            CaInput {
                extra_trust: vec![other.cert.clone()],
                ..CaInput::default()
            },
            &[],
            ANNOTATIONS,
            Retire::WhenSignerRolledOut,
        )
        .expect("plan");
        assert_eq!(outcome.bundle.len(), 2);
        assert!(outcome.bundle.contains(&other.cert));
    }

    #[test]
    fn given_a_leaf_when_deciding_renewal_then_each_reason_is_found() {
        let ca = Ca::make(
            "ca",
            NOW,
            CertValidity {
                validity_days: 1000,
                renew_before_days: 30,
            },
        )
        .expect("ca");
        let names = broker_names("events", "data", 3);
        let leaf_validity = CertValidity {
            validity_days: 365,
            renew_before_days: 30,
        };
        let leaf = pki::sign_leaf(&ca.keyed, "events", &names, NOW, 365).expect("leaf");
        let info = pki::parse_certs(leaf.cert_pem.as_bytes()).expect("parse")[0].clone();
        assert_eq!(
            leaf_renewal_reason(Some(&info), &ca, &names, NOW, leaf_validity),
            None
        );
        assert!(leaf_renewal_reason(None, &ca, &names, NOW, leaf_validity).is_some());
        let due = leaf_renewal_reason(Some(&info), &ca, &names, NOW + 336 * DAY, leaf_validity)
            .expect("due");
        assert!(due.contains("renewed"), "{due}");
        let more = broker_names("events", "data", 5);
        let grown =
            leaf_renewal_reason(Some(&info), &ca, &more, NOW, leaf_validity).expect("scale-up");
        assert!(grown.contains("4 more names"), "{grown}");
        assert_eq!(
            leaf_renewal_reason(
                Some(&info),
                &ca,
                &broker_names("events", "data", 1),
                NOW,
                leaf_validity
            ),
            None,
            "a scale-down keeps the certificate"
        );
        let other = Ca::make("other", NOW, validity()).expect("ca");
        let resign =
            leaf_renewal_reason(Some(&info), &other, &names, NOW, leaf_validity).expect("new CA");
        assert!(resign.contains("again with the CA"), "{resign}");
    }

    #[test]
    fn given_a_cluster_when_listing_broker_names_then_pods_and_services_are_covered() {
        let names = broker_names("events", "data", 2);
        for name in [
            "events-bootstrap",
            "events-bootstrap.data",
            "events-bootstrap.data.svc",
            "events-bootstrap.data.svc.cluster.local",
            "events-brokers.data.svc",
            "events-0.events-brokers.data.svc",
            "events-1.events-brokers.data.svc.cluster.local",
        ] {
            assert!(names.contains(&name.to_owned()), "{name}");
        }
        assert_eq!(names.len(), 8 + 2 * 2);
        assert!(!names.iter().any(|n| n == "localhost" || n == "127.0.0.1"));
        assert!(san_matches(
            "*.events-brokers.data.svc",
            "events-0.events-brokers.data.svc"
        ));
        assert!(!san_matches(
            "*.events-brokers.data.svc",
            "a.b.events-brokers.data.svc"
        ));
        assert!(!san_matches(
            "*.events-brokers.data.svc",
            "events-brokers.data.svc"
        ));
    }
}
