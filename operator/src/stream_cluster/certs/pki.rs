//! Certificates as pure functions: make a CA, sign a broker certificate,
//! read PEM, check a key against its certificate, tell whether a
//! certificate is due for renewal. No client and no clock: the time is an
//! argument, so every decision is unit tested.
//!
//! Keys are ECDSA P-256 (rcgen's default), which rustls, the Java client
//! and librdkafka all accept. Certificates start one hour before `now`, so
//! a node whose clock is slightly behind still accepts a fresh one.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use time::OffsetDateTime;
use x509_parser::pem::Pem;

/// Seconds in a day.
const DAY: i64 = 86_400;
/// How far before `now` a new certificate starts (clock skew).
const BACKDATE: i64 = 3_600;

/// Certificate problems, each with a sentence a user can act on.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PkiError {
    /// No PEM certificate could be read.
    #[error("holds no PEM certificate")]
    NoCertificate,
    /// A PEM block is not an X.509 certificate.
    #[error("holds a PEM block that is not an X.509 certificate: {0}")]
    BadCertificate(String),
    /// The private key cannot be read.
    #[error(
        "holds a private key that cannot be read (PEM PKCS#8, PKCS#1 RSA or SEC1 EC expected): {0}"
    )]
    BadKey(String),
    /// The key is not the certificate's key.
    #[error("holds a private key that does not belong to its certificate")]
    KeyMismatch,
    /// A CA Secret holds a certificate that is not a CA.
    #[error("holds a certificate that is not a CA (basicConstraints CA:TRUE is missing)")]
    NotCa,
    /// rcgen refused to make or sign a certificate.
    #[error("cannot make a certificate: {0}")]
    Generate(String),
}

/// A certificate (PEM, first the certificate itself) with its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyedCert {
    /// PEM certificate chain, the certificate first.
    pub cert_pem: String,
    /// PEM private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for KeyedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("KeyedCert")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// What the operator reads from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// DER bytes.
    pub der: Vec<u8>,
    /// Subject, as text (for messages).
    pub subject: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// DNS names of its subjectAltName.
    pub dns_names: Vec<String>,
}

impl CertInfo {
    /// The certificate as one PEM block.
    pub fn pem(&self) -> String {
        pem_block(&self.der)
    }

    /// Short stable fingerprint of the DER bytes (not a security
    /// property: it names the certificate in annotations).
    pub fn fingerprint(&self) -> String {
        fnv(&self.der)
    }

    /// Whether `now` is at or past the renewal time: `renew_before_days`
    /// before expiry.
    pub fn renewal_due(&self, now: i64, renew_before_days: i32) -> bool {
        renewal_due(now, self.not_after, renew_before_days)
    }

    /// Whether it has expired at `now`.
    pub fn expired(&self, now: i64) -> bool {
        now >= self.not_after
    }

    /// Whether `ca` signed it (signature checked with `ca`'s public key).
    pub fn signed_by(&self, ca: &CertInfo) -> bool {
        let (Ok((_, leaf)), Ok((_, issuer))) = (
            x509_parser::parse_x509_certificate(&self.der),
            x509_parser::parse_x509_certificate(&ca.der),
        ) else {
            return false;
        };
        leaf.issuer().as_raw() == issuer.subject().as_raw()
            && leaf.verify_signature(Some(issuer.public_key())).is_ok()
    }

    /// Expiry as RFC 3339 text.
    pub fn not_after_rfc3339(&self) -> String {
        jiff::Timestamp::from_second(self.not_after)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| self.not_after.to_string())
    }
}

/// Whether a certificate that ends at `not_after` is due for renewal at
/// `now`: `renew_before_days` before it expires, or later.
pub fn renewal_due(now: i64, not_after: i64, renew_before_days: i32) -> bool {
    now >= not_after.saturating_sub(i64::from(renew_before_days) * DAY)
}

/// FNV-1a 64 of `bytes`, as 16 hex digits.
pub fn fnv(bytes: &[u8]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    format!("{hash:016x}")
}

fn pem_block(der: &[u8]) -> String {
    pem_encode("CERTIFICATE", der)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// DER type-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// Splits the DER element at the start of `der` into (tag, content, rest).
fn next_tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// rsaEncryption, 1.2.840.113549.1.1.1.
const RSA_ENCRYPTION: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-ecPublicKey, 1.2.840.10045.2.1.
const EC_PUBLIC_KEY: [u8; 7] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// A private key as PKCS#8 PEM, the form rcgen (with ring) reads: PKCS#8
/// is kept, PKCS#1 RSA (`RSA PRIVATE KEY`, cert-manager's default
/// encoding) and SEC1 EC (`EC PRIVATE KEY`) keys are wrapped.
pub fn pkcs8_pem(key_pem: &str) -> Result<String, PkiError> {
    let bad = |why: &str| PkiError::BadKey(why.to_owned());
    let block = Pem::iter_from_buffer(key_pem.as_bytes())
        .filter_map(Result::ok)
        .find(|b| b.label.ends_with("PRIVATE KEY"))
        .ok_or_else(|| bad("no PEM private key"))?;
    let version = tlv(0x02, &[0x00]);
    let wrapped = match block.label.as_str() {
        "PRIVATE KEY" => return Ok(pem_encode("PRIVATE KEY", &block.contents)),
        "RSA PRIVATE KEY" => {
            let algorithm = tlv(
                0x30,
                &[tlv(0x06, &RSA_ENCRYPTION), vec![0x05, 0x00]].concat(),
            );
            tlv(
                0x30,
                &[version, algorithm, tlv(0x04, &block.contents)].concat(),
            )
        }
        "EC PRIVATE KEY" => {
            // ECPrivateKey ::= SEQUENCE { version, privateKey,
            // [0] parameters (the curve), [1] publicKey }
            let (_, mut fields, _) =
                next_tlv(&block.contents).ok_or_else(|| bad("malformed EC key"))?;
            let mut curve = None;
            while let Some((tag, content, rest)) = next_tlv(fields) {
                if tag == 0xa0 {
                    curve = next_tlv(content)
                        .filter(|(t, _, _)| *t == 0x06)
                        .map(|(_, oid, _)| oid.to_vec());
                }
                fields = rest;
            }
            let curve = curve.ok_or_else(|| bad("EC key without its curve"))?;
            let algorithm = tlv(
                0x30,
                &[tlv(0x06, &EC_PUBLIC_KEY), tlv(0x06, &curve)].concat(),
            );
            tlv(
                0x30,
                &[version, algorithm, tlv(0x04, &block.contents)].concat(),
            )
        }
        other => return Err(bad(&format!("unsupported PEM block {other:?}"))),
    };
    Ok(pem_encode("PRIVATE KEY", &wrapped))
}

fn key_pair(key_pem: &str) -> Result<KeyPair, PkiError> {
    KeyPair::from_pem(&pkcs8_pem(key_pem)?).map_err(|e| PkiError::BadKey(e.to_string()))
}

/// Reads every certificate of a PEM text, in order.
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertInfo>, PkiError> {
    let mut certs = Vec::new();
    for block in Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let (_, x509) = x509_parser::parse_x509_certificate(&block.contents)
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        let dns_names = x509
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        x509_parser::extensions::GeneralName::DNSName(dns) => {
                            Some((*dns).to_owned())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        certs.push(CertInfo {
            subject: x509.subject().to_string(),
            not_before: x509.validity().not_before.timestamp(),
            not_after: x509.validity().not_after.timestamp(),
            is_ca: x509.is_ca(),
            dns_names,
            der: block.contents.clone(),
        });
    }
    if certs.is_empty() {
        return Err(PkiError::NoCertificate);
    }
    Ok(certs)
}

/// Checks that `key_pem` is the private key of `cert`.
pub fn check_key(cert: &CertInfo, key_pem: &str) -> Result<(), PkiError> {
    let key = key_pair(key_pem)?;
    let (_, x509) = x509_parser::parse_x509_certificate(&cert.der)
        .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    if x509.public_key().raw == key.subject_public_key_info().as_slice() {
        Ok(())
    } else {
        Err(PkiError::KeyMismatch)
    }
}

/// Reads a CA (certificate and key), checking they belong together and
/// the certificate is a CA.
pub fn read_ca(cert_pem: &str, key_pem: &str) -> Result<CertInfo, PkiError> {
    let cert = parse_certs(cert_pem.as_bytes())?
        .into_iter()
        .next()
        .ok_or(PkiError::NoCertificate)?;
    if !cert.is_ca {
        return Err(PkiError::NotCa);
    }
    check_key(&cert, key_pem)?;
    Ok(cert)
}

fn at(seconds: i64) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(seconds).map_err(|e| PkiError::Generate(e.to_string()))
}

fn generate(e: rcgen::Error) -> PkiError {
    PkiError::Generate(e.to_string())
}

/// Makes a self-signed CA named `common_name`, valid `validity_days` from
/// `now` (Unix seconds).
pub fn new_ca(common_name: &str, now: i64, validity_days: i32) -> Result<KeyedCert, PkiError> {
    let key = KeyPair::generate().map_err(generate)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Rill");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = at(now - BACKDATE)?;
    params.not_after = at(now + i64::from(validity_days) * DAY)?;
    let cert = params.self_signed(&key).map_err(generate)?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Signs a certificate for `dns_names` with the CA `ca`, usable as a TLS
/// server and client certificate (brokers are both, for replication),
/// valid `validity_days` from `now` but never past the CA. The chain in
/// the result is the certificate alone: peers trust the CA itself.
pub fn sign_leaf(
    ca: &KeyedCert,
    common_name: &str,
    dns_names: &[String],
    now: i64,
    validity_days: i32,
) -> Result<KeyedCert, PkiError> {
    let ca_info = read_ca(&ca.cert_pem, &ca.key_pem)?;
    let ca_key = key_pair(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(generate)?;
    let key = KeyPair::generate().map_err(generate)?;
    let mut params = CertificateParams::new(dns_names.to_vec()).map_err(generate)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Rill");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = at(now - BACKDATE)?;
    params.not_after = at((now + i64::from(validity_days) * DAY).min(ca_info.not_after))?;
    let cert = params.signed_by(&key, &issuer).map_err(generate)?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A PEM bundle of `certs`: each certificate once, newest expiry first, so
/// equal sets always give equal text.
pub fn bundle<'a>(certs: impl IntoIterator<Item = &'a CertInfo>) -> String {
    let mut certs: Vec<&CertInfo> = certs.into_iter().collect();
    certs.sort_by(|a, b| b.not_after.cmp(&a.not_after).then(a.der.cmp(&b.der)));
    certs.dedup_by(|a, b| a.der == b.der);
    certs.iter().map(|c| c.pem()).collect()
}

/// Fingerprint of a set of certificates, independent of their order.
pub fn set_fingerprint<'a>(certs: impl IntoIterator<Item = &'a CertInfo>) -> String {
    fnv(bundle(certs).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z.
    const NOW: i64 = 1_767_225_600;

    fn info(cert: &KeyedCert) -> CertInfo {
        parse_certs(cert.cert_pem.as_bytes()).expect("parse")[0].clone()
    }

    #[test]
    fn given_a_new_ca_when_reading_it_then_it_is_a_ca_with_its_key_and_validity() {
        let ca = new_ca("rill events cluster CA", NOW, 1825).expect("ca");
        let cert = read_ca(&ca.cert_pem, &ca.key_pem).expect("a CA with its key");
        assert!(cert.is_ca);
        assert_eq!(cert.not_before, NOW - BACKDATE);
        assert_eq!(cert.not_after, NOW + 1825 * DAY);
        assert!(
            cert.subject.contains("rill events cluster CA"),
            "{}",
            cert.subject
        );
        assert!(cert.signed_by(&cert), "self-signed");
        assert!(
            !format!("{ca:?}").contains("PRIVATE KEY"),
            "Debug hides the key"
        );
    }

    #[test]
    fn given_a_ca_when_signing_a_leaf_then_it_names_the_sans_chains_to_the_ca_and_stops_at_its_expiry()
     {
        let ca = new_ca("ca", NOW, 100).expect("ca");
        let names = vec![
            "events-0.events-brokers.data.svc".to_owned(),
            "events-bootstrap".to_owned(),
        ];
        let leaf = sign_leaf(&ca, "events", &names, NOW, 365).expect("leaf");
        let leaf_info = info(&leaf);
        assert!(!leaf_info.is_ca);
        assert_eq!(leaf_info.dns_names, names);
        assert!(leaf_info.signed_by(&info(&ca)));
        assert_eq!(
            leaf_info.not_after,
            info(&ca).not_after,
            "never past the CA"
        );
        check_key(&leaf_info, &leaf.key_pem).expect("its own key");

        let other = new_ca("other", NOW, 100).expect("ca");
        assert!(!leaf_info.signed_by(&info(&other)));
        assert_eq!(
            check_key(&leaf_info, &other.key_pem),
            Err(PkiError::KeyMismatch)
        );
    }

    #[test]
    fn given_a_leaf_or_a_foreign_key_when_reading_a_ca_then_the_error_says_why() {
        let ca = new_ca("ca", NOW, 100).expect("ca");
        let leaf = sign_leaf(&ca, "x", &["x".to_owned()], NOW, 10).expect("leaf");
        assert_eq!(read_ca(&leaf.cert_pem, &leaf.key_pem), Err(PkiError::NotCa));
        let other = new_ca("other", NOW, 100).expect("ca");
        assert_eq!(
            read_ca(&ca.cert_pem, &other.key_pem),
            Err(PkiError::KeyMismatch)
        );
        assert_eq!(read_ca("", &ca.key_pem), Err(PkiError::NoCertificate));
        assert!(matches!(
            read_ca(&ca.cert_pem, "not a key"),
            Err(PkiError::BadKey(_))
        ));
    }

    #[test]
    fn given_pkcs1_and_sec1_keys_when_normalising_then_pkcs8_signs_like_the_original() {
        // A P-256 key in SEC1 form and an RSA key in PKCS#1 form, as
        // `openssl ecparam -genkey` and cert-manager (encoding PKCS1) write.
        let ec = new_ca("ec", NOW, 10).expect("ca");
        let der = Pem::iter_from_buffer(ec.key_pem.as_bytes())
            .next()
            .expect("block")
            .expect("pem")
            .contents;
        // PKCS#8 → SEC1: the OCTET STRING inside PrivateKeyInfo, with the
        // curve added as [0] the way openssl writes it.
        let (_, key_info, _) = next_tlv(&der).expect("info");
        let (_, _, rest) = next_tlv(key_info).expect("version");
        let (_, algorithm, rest) = next_tlv(rest).expect("algorithm");
        let (_, inner, _) = next_tlv(rest).expect("key");
        let (_, _, curve_rest) = next_tlv(algorithm).expect("ec oid");
        let (_, curve, _) = next_tlv(curve_rest).expect("curve");
        let (_, fields, _) = next_tlv(inner).expect("ECPrivateKey");
        let mut with_curve = Vec::new();
        let mut rest = fields;
        let mut index = 0;
        while let Some((tag, content, next)) = next_tlv(rest) {
            with_curve.extend(tlv(tag, content));
            if index == 1 {
                with_curve.extend(tlv(0xa0, &tlv(0x06, curve)));
            }
            index += 1;
            rest = next;
        }
        let sec1 = pem_encode("EC PRIVATE KEY", &tlv(0x30, &with_curve));
        let cert = parse_certs(ec.cert_pem.as_bytes()).expect("parse")[0].clone();
        check_key(&cert, &sec1).expect("SEC1 key read");
        let sec1_ca = KeyedCert {
            cert_pem: ec.cert_pem.clone(),
            key_pem: sec1,
        };
        let leaf = sign_leaf(&sec1_ca, "x", &["x".to_owned()], NOW, 5).expect("signs");
        assert!(info(&leaf).signed_by(&cert));

        assert!(matches!(
            pkcs8_pem(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
            ),
            Err(PkiError::BadKey(_))
        ));
        assert_eq!(
            pkcs8_pem(&ec.key_pem).expect("pkcs8"),
            ec.key_pem,
            "PKCS#8 kept"
        );
    }

    #[test]
    fn given_times_around_the_renewal_point_when_asking_then_renewal_is_due_from_it_on() {
        let not_after = NOW + 100 * DAY;
        assert!(!renewal_due(NOW, not_after, 30));
        assert!(!renewal_due(not_after - 30 * DAY - 1, not_after, 30));
        assert!(renewal_due(not_after - 30 * DAY, not_after, 30));
        assert!(renewal_due(not_after + 1, not_after, 30));
        assert!(renewal_due(NOW, not_after, 100), "renewBefore >= lifetime");
    }

    #[test]
    fn given_certificates_in_any_order_when_bundling_then_the_text_is_the_same_and_each_appears_once()
     {
        let a = info(&new_ca("a", NOW, 10).expect("ca"));
        let b = info(&new_ca("b", NOW, 20).expect("ca"));
        let ab = bundle([&a, &b]);
        assert_eq!(ab, bundle([&b, &a, &b]));
        assert_eq!(set_fingerprint([&a, &b]), set_fingerprint([&b, &a]));
        assert_ne!(set_fingerprint([&a]), set_fingerprint([&a, &b]));
        let back = parse_certs(ab.as_bytes()).expect("parse");
        assert_eq!(back, vec![b, a], "newest expiry first");
    }
}
