//! Client certificates of `tls` Users, signed by the cluster's clients CA.
//!
//! The CA is the Secret `<cluster>-clients-ca` (`tls.crt`, `tls.key`) in the
//! cluster's namespace. A User's certificate has the subject `CN=<username>`
//! (brokers map it to the principal `User:<username>`), the clientAuth
//! extended key usage, a fresh P-256 key, and is valid for [`VALIDITY`].
//! It is kept while it is signed by the current CA, names the username,
//! matches its key and has more than [`RENEW_BEFORE`] left; otherwise a new
//! one is issued (so a renewed clients CA re-issues every certificate).

use std::time::Duration;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use rill_proto::scram::random_bytes;
use x509_parser::pem::parse_x509_pem;
use x509_parser::time::ASN1Time;

/// The clients CA Secret of a cluster.
pub fn clients_ca_secret(cluster: &str) -> String {
    format!("{cluster}-clients-ca")
}

/// How long a client certificate is valid.
pub const VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// A certificate with less than this left is renewed.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Clock skew allowed for: certificates start being valid this long ago.
const BACKDATE: Duration = Duration::from_secs(300);

/// Why a certificate cannot be issued.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The CA's key cannot be read.
    #[error("the clients CA key (tls.key) cannot be read: {0}")]
    CaKey(String),
    /// The CA's certificate cannot be read.
    #[error("the clients CA certificate (tls.crt) cannot be read: {0}")]
    CaCert(String),
    /// Signing failed.
    #[error("cannot sign the client certificate: {0}")]
    Sign(String),
}

/// A certificate and its key, in PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate (`user.crt`).
    pub cert_pem: String,
    /// Its PKCS#8 private key (`user.key`).
    pub key_pem: String,
    /// When it expires (seconds since the epoch).
    pub not_after: i64,
}

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Issues a certificate for `username`, signed by the CA (`ca_cert_pem`,
/// `ca_key_pem`), valid from shortly before `now` (seconds since the
/// epoch) for [`VALIDITY`].
pub fn issue(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    username: &str,
    now: i64,
) -> Result<Issued, CertificateError> {
    let ca_key =
        KeyPair::from_pem(ca_key_pem).map_err(|e| CertificateError::CaKey(e.to_string()))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key)
        .map_err(|e| CertificateError::CaCert(e.to_string()))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, username);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let mut serial = random_bytes(16);
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let at = |secs: i64| {
        ASN1Time::from_timestamp(secs)
            .map(|t| t.to_datetime())
            .map_err(|e| CertificateError::Sign(format!("timestamp {secs}: {e}")))
    };
    let not_after = now.saturating_add(seconds(VALIDITY));
    params.not_before = at(now.saturating_sub(seconds(BACKDATE)))?;
    params.not_after = at(not_after)?;
    let key = KeyPair::generate().map_err(|e| CertificateError::Sign(e.to_string()))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| CertificateError::Sign(e.to_string()))?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_after,
    })
}

/// What to do with a User's current certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it; it expires at `not_after`.
    Keep {
        /// Expiry, seconds since the epoch.
        not_after: i64,
    },
    /// Issue a new one, for this reason.
    Renew(String),
}

/// Whether the certificate `cert_pem` with key `key_pem` can stay the
/// certificate of `username` under the CA `ca_cert_pem` at `now`.
pub fn check(
    cert_pem: &str,
    key_pem: &str,
    ca_cert_pem: &str,
    username: &str,
    now: i64,
) -> Verdict {
    let renew = |why: &str| Verdict::Renew(why.to_owned());
    let Ok((_, pem)) = parse_x509_pem(cert_pem.as_bytes()) else {
        return renew("no certificate yet");
    };
    let Ok(cert) = pem.parse_x509() else {
        return renew("the certificate cannot be read");
    };
    let Ok((_, ca_pem)) = parse_x509_pem(ca_cert_pem.as_bytes()) else {
        return renew("the clients CA certificate cannot be read");
    };
    let Ok(ca) = ca_pem.parse_x509() else {
        return renew("the clients CA certificate cannot be read");
    };
    if cert.verify_signature(Some(ca.public_key())).is_err() {
        return renew("the certificate is not signed by the current clients CA");
    }
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok());
    if cn != Some(username) {
        return renew("the certificate names another user");
    }
    match KeyPair::from_pem(key_pem) {
        Ok(key) if key.subject_public_key_info() == cert.public_key().raw => {}
        _ => return renew("the private key does not match the certificate"),
    }
    let not_after = cert.validity().not_after.timestamp();
    if not_after.saturating_sub(now) < seconds(RENEW_BEFORE) {
        return renew("the certificate expires soon");
    }
    Verdict::Keep { not_after }
}

/// `not_after` as RFC 3339, for status.
pub fn rfc3339(at: i64) -> String {
    jiff::Timestamp::from_second(at)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
pub(crate) mod test_ca {
    //! A clients CA made in tests.
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

    /// A CA certificate and key, PEM.
    pub fn make(name: &str) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-signed");
        (cert.pem(), key.serialize_pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000;

    #[test]
    fn given_a_clients_ca_when_issuing_then_the_certificate_names_the_user_and_verifies() {
        let (ca_cert, ca_key) = test_ca::make("events clients CA");
        let issued = issue(&ca_cert, &ca_key, "team.app", NOW).expect("issued");
        assert!(
            issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "PKCS#8"
        );
        assert_eq!(issued.not_after, NOW + seconds(VALIDITY));
        let (_, pem) = parse_x509_pem(issued.cert_pem.as_bytes()).expect("pem");
        let cert = pem.parse_x509().expect("x509");
        assert_eq!(cert.subject().to_string(), "CN=team.app");
        assert_eq!(cert.issuer().to_string(), "CN=events clients CA");
        let eku = cert
            .extended_key_usage()
            .expect("eku")
            .expect("present")
            .value;
        assert!(eku.client_auth && !eku.server_auth);
        assert_eq!(
            check(&issued.cert_pem, &issued.key_pem, &ca_cert, "team.app", NOW),
            Verdict::Keep {
                not_after: issued.not_after
            }
        );
    }

    #[test]
    fn given_an_old_certificate_when_checking_then_it_is_renewed_before_expiry() {
        let (ca_cert, ca_key) = test_ca::make("ca");
        let issued = issue(&ca_cert, &ca_key, "app", NOW).expect("issued");
        let almost = issued.not_after - seconds(RENEW_BEFORE) + 1;
        assert_eq!(
            check(&issued.cert_pem, &issued.key_pem, &ca_cert, "app", almost),
            Verdict::Renew("the certificate expires soon".into())
        );
        let fine = issued.not_after - seconds(RENEW_BEFORE) - 1;
        assert!(matches!(
            check(&issued.cert_pem, &issued.key_pem, &ca_cert, "app", fine),
            Verdict::Keep { .. }
        ));
    }

    #[test]
    fn given_a_new_ca_another_user_or_another_key_when_checking_then_it_is_renewed() {
        let (ca_cert, ca_key) = test_ca::make("ca");
        let issued = issue(&ca_cert, &ca_key, "app", NOW).expect("issued");
        let (new_ca, _) = test_ca::make("ca");
        assert_eq!(
            check(&issued.cert_pem, &issued.key_pem, &new_ca, "app", NOW),
            Verdict::Renew("the certificate is not signed by the current clients CA".into())
        );
        assert_eq!(
            check(&issued.cert_pem, &issued.key_pem, &ca_cert, "other", NOW),
            Verdict::Renew("the certificate names another user".into())
        );
        let other = issue(&ca_cert, &ca_key, "app", NOW).expect("issued");
        assert_eq!(
            check(&issued.cert_pem, &other.key_pem, &ca_cert, "app", NOW),
            Verdict::Renew("the private key does not match the certificate".into())
        );
        assert_eq!(
            check("", "", &ca_cert, "app", NOW),
            Verdict::Renew("no certificate yet".into())
        );
    }

    #[test]
    fn given_a_bad_ca_key_when_issuing_then_the_error_names_it() {
        let (ca_cert, _) = test_ca::make("ca");
        let err = issue(&ca_cert, "not a key", "app", NOW).expect_err("bad key");
        assert!(err.to_string().contains("tls.key"), "{err}");
    }
}
