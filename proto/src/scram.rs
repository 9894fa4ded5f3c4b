//! SCRAM credentials (RFC 5802, RFC 7677), as Kafka uses them for the
//! `SCRAM-SHA-256` and `SCRAM-SHA-512` SASL mechanisms.
//!
//! A credential holds the salt, the iteration count, the stored key and the
//! server key, never the password: anyone who reads it can neither log in
//! with it nor learn the password except by guessing and hashing 4096 or
//! more times per guess. The broker checks a SCRAM exchange (and a SASL
//! PLAIN password) against it; the operator and `kafka-configs` create it
//! from a password or from a salted password.

use std::fmt;
use std::num::NonZeroU32;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::SecureRandom;
use ring::{digest, hmac, pbkdf2};

/// Fewest iterations Rill accepts (RFC 7677's minimum, Kafka's too).
pub const MIN_ITERATIONS: u32 = 4096;
/// Most iterations Rill accepts (Kafka's limit): more would let one
/// credential make every login burn CPU.
pub const MAX_ITERATIONS: u32 = 16384;
/// Bytes of a generated salt.
pub const SALT_BYTES: usize = 24;

/// A SCRAM hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    /// Both, strongest first.
    pub const ALL: [Self; 2] = [Self::Sha512, Self::Sha256];

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name` (SASL names are case-sensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's code for the mechanism (AlterUserScramCredentials,
    /// DescribeUserScramCredentials).
    pub fn kafka_code(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    /// The mechanism with Kafka's code `code`.
    pub fn from_kafka_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.kafka_code() == code)
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2_algorithm(self) -> pbkdf2::Algorithm {
        match self {
            Self::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    /// Bytes of the hash output.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    /// `H(data)`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha512 => &digest::SHA512,
        };
        digest::digest(algorithm, data).as_ref().to_vec()
    }

    /// `HMAC(key, data)`.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(self.hmac_algorithm(), key);
        hmac::sign(&key, data).as_ref().to_vec()
    }

    /// `Hi(password, salt, iterations)`: the salted password.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: NonZeroU32) -> Vec<u8> {
        let mut out = vec![0; self.output_len()];
        pbkdf2::derive(
            self.pbkdf2_algorithm(),
            iterations,
            salt,
            password,
            &mut out,
        );
        out
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a credential cannot be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, not {0}")]
    Iterations(u32),
    #[error("the salt is empty")]
    EmptySalt,
    #[error("the salted password has {got} bytes; {mechanism} needs {want}")]
    SaltedPasswordLength {
        mechanism: Mechanism,
        got: usize,
        want: usize,
    },
    #[error("{0}")]
    Malformed(String),
}

/// What a server keeps to check one user's SCRAM logins.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub mechanism: Mechanism,
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl fmt::Debug for Credential {
    /// Shows the mechanism and iterations only: keys stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

fn check_iterations(iterations: u32) -> Result<NonZeroU32, CredentialError> {
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(CredentialError::Iterations(iterations));
    }
    NonZeroU32::new(iterations).ok_or(CredentialError::Iterations(iterations))
}

impl Credential {
    /// The credential for `password` with a random salt.
    pub fn generate(
        mechanism: Mechanism,
        password: &[u8],
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        let salt = random_bytes(SALT_BYTES);
        Self::from_password(mechanism, password, &salt, iterations)
    }

    /// The credential for `password` with `salt`.
    pub fn from_password(
        mechanism: Mechanism,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        let rounds = check_iterations(iterations)?;
        if salt.is_empty() {
            return Err(CredentialError::EmptySalt);
        }
        let salted = mechanism.salted_password(password, salt, rounds);
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential from a salted password (what Kafka's
    /// AlterUserScramCredentials carries: the client salts and hashes).
    pub fn from_salted_password(
        mechanism: Mechanism,
        salted_password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        check_iterations(iterations)?;
        if salt.is_empty() {
            return Err(CredentialError::EmptySalt);
        }
        if salted_password.len() != mechanism.output_len() {
            return Err(CredentialError::SaltedPasswordLength {
                mechanism,
                got: salted_password.len(),
                want: mechanism.output_len(),
            });
        }
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        Ok(Self {
            mechanism,
            iterations,
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        })
    }

    /// Whether `password` is this credential's password (SASL PLAIN checks
    /// passwords against SCRAM credentials, so no password is stored).
    pub fn matches_password(&self, password: &[u8]) -> bool {
        let Ok(other) = Self::from_password(self.mechanism, password, &self.salt, self.iterations)
        else {
            return false;
        };
        constant_time_eq(&other.stored_key, &self.stored_key)
    }

    /// `salt=…,stored_key=…,server_key=…,iterations=…` (base64 values):
    /// Kafka's own text form of a SCRAM credential.
    pub fn to_text(&self) -> String {
        format!(
            "salt={},stored_key={},server_key={},iterations={}",
            BASE64.encode(&self.salt),
            BASE64.encode(&self.stored_key),
            BASE64.encode(&self.server_key),
            self.iterations
        )
    }

    /// Reads [`Credential::to_text`]'s form.
    pub fn from_text(mechanism: Mechanism, text: &str) -> Result<Self, CredentialError> {
        let mut salt = None;
        let mut stored_key = None;
        let mut server_key = None;
        let mut iterations = None;
        for part in text.trim().split(',') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| CredentialError::Malformed(format!("`{part}` is not key=value")))?;
            let bytes = || {
                BASE64
                    .decode(value)
                    .map_err(|e| CredentialError::Malformed(format!("{key}: {e}")))
            };
            match key {
                "salt" => salt = Some(bytes()?),
                "stored_key" => stored_key = Some(bytes()?),
                "server_key" => server_key = Some(bytes()?),
                "iterations" => {
                    iterations = Some(value.parse::<u32>().map_err(|e| {
                        CredentialError::Malformed(format!("iterations `{value}`: {e}"))
                    })?)
                }
                other => {
                    return Err(CredentialError::Malformed(format!(
                        "unknown field `{other}`"
                    )));
                }
            }
        }
        let missing = |field: &str| CredentialError::Malformed(format!("{field} is missing"));
        let credential = Self {
            mechanism,
            iterations: iterations.ok_or_else(|| missing("iterations"))?,
            salt: salt.ok_or_else(|| missing("salt"))?,
            stored_key: stored_key.ok_or_else(|| missing("stored_key"))?,
            server_key: server_key.ok_or_else(|| missing("server_key"))?,
        };
        check_iterations(credential.iterations)?;
        let want = mechanism.output_len();
        if credential.salt.is_empty() {
            return Err(CredentialError::EmptySalt);
        }
        if credential.stored_key.len() != want || credential.server_key.len() != want {
            return Err(CredentialError::Malformed(format!(
                "{mechanism} keys have {want} bytes"
            )));
        }
        Ok(credential)
    }
}

/// `len` bytes from the system's secure random source.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the system random source is available");
    out
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example: user "user", password "pencil".
    #[test]
    fn given_the_rfc_7677_example_when_deriving_then_the_keys_match_the_proof_it_shows() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential =
            Credential::from_password(Mechanism::Sha256, b"pencil", &salt, 4096).unwrap();
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final_bare = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth_message = format!("{client_first_bare},{server_first},{client_final_bare}");
        let server_signature =
            Mechanism::Sha256.hmac(&credential.server_key, auth_message.as_bytes());
        assert_eq!(
            BASE64.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let client_signature =
            Mechanism::Sha256.hmac(&credential.stored_key, auth_message.as_bytes());
        let proof = BASE64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        assert_eq!(Mechanism::Sha256.hash(&client_key), credential.stored_key);
    }

    #[test]
    fn given_a_credential_when_checking_passwords_then_only_its_own_matches() {
        for mechanism in Mechanism::ALL {
            let credential = Credential::generate(mechanism, b"s3cret", 4096).unwrap();
            assert!(credential.matches_password(b"s3cret"));
            assert!(!credential.matches_password(b"s3cret "));
            assert!(!credential.matches_password(b""));
            assert_eq!(credential.salt.len(), SALT_BYTES);
            assert_eq!(credential.stored_key.len(), mechanism.output_len());
        }
    }

    #[test]
    fn given_a_credential_when_written_as_text_then_it_reads_back_and_shows_no_keys_in_debug() {
        let credential = Credential::generate(Mechanism::Sha512, b"pw", 8192).unwrap();
        let text = credential.to_text();
        assert_eq!(
            Credential::from_text(Mechanism::Sha512, &text).unwrap(),
            credential
        );
        assert!(
            Credential::from_text(Mechanism::Sha256, &text).is_err(),
            "key length differs"
        );
        let debug = format!("{credential:?}");
        assert!(
            !debug.contains(&BASE64.encode(&credential.stored_key)),
            "{debug}"
        );
    }

    #[test]
    fn given_bad_inputs_when_making_credentials_then_each_is_refused_with_the_reason() {
        assert_eq!(
            Credential::from_password(Mechanism::Sha256, b"pw", b"salt", 1000),
            Err(CredentialError::Iterations(1000))
        );
        assert_eq!(
            Credential::from_password(Mechanism::Sha256, b"pw", b"", 4096),
            Err(CredentialError::EmptySalt)
        );
        assert!(matches!(
            Credential::from_salted_password(Mechanism::Sha512, &[0; 32], b"salt", 4096),
            Err(CredentialError::SaltedPasswordLength {
                got: 32,
                want: 64,
                ..
            })
        ));
        assert!(Credential::from_text(Mechanism::Sha256, "salt=AA==,iterations=4096").is_err());
        assert!(Credential::from_text(Mechanism::Sha256, "nonsense").is_err());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
