//! The SCRAM credentials a broker checks logins against.
//!
//! Credentials are salted and hashed ([`Credential`]); no password is kept
//! anywhere. SASL PLAIN passwords are checked against the same
//! credentials (the strongest mechanism the user has).
//!
//! They come from the credentials file (`--sasl-credentials-file`), read
//! at start and again whenever it changes (a mounted Secret that is
//! updated): one line per user and mechanism,
//!
//! ```text
//! # user  mechanism      credential
//! alice   SCRAM-SHA-512  salt=…,stored_key=…,server_key=…,iterations=4096
//! ```
//!
//! in Kafka's text form of a SCRAM credential (base64 values).

use std::collections::{BTreeMap, HashMap};

use parking_lot::RwLock;
use rill_proto::scram::{Credential, Mechanism, random_bytes};

/// Every user's credentials, by mechanism.
pub type Users = HashMap<String, BTreeMap<Mechanism, Credential>>;

/// The credentials in force on this broker.
#[derive(Debug)]
pub struct CredentialStore {
    users: RwLock<Users>,
    /// Keys the salts shown for users that do not exist (see
    /// [`CredentialStore::decoy_salt`]).
    decoy_key: Vec<u8>,
}

impl Default for CredentialStore {
    fn default() -> Self {
        Self {
            users: RwLock::default(),
            decoy_key: random_bytes(32),
        }
    }
}

impl CredentialStore {
    /// Adds or replaces one credential.
    pub fn insert(&self, user: &str, credential: Credential) {
        self.users
            .write()
            .entry(user.to_owned())
            .or_default()
            .insert(credential.mechanism, credential);
    }

    /// Replaces every credential.
    pub fn replace_all(&self, users: Users) {
        *self.users.write() = users;
    }

    /// Number of users with at least one credential.
    pub fn user_count(&self) -> usize {
        self.users.read().len()
    }

    /// `user`'s credential for `mechanism`.
    pub fn scram(&self, user: &str, mechanism: Mechanism) -> Option<Credential> {
        self.users.read().get(user)?.get(&mechanism).cloned()
    }

    /// Whether `password` is `user`'s password (SASL PLAIN). Users without
    /// a credential cost the same hashing as users with one.
    pub fn check_password(&self, user: &str, password: &[u8]) -> bool {
        let strongest = self
            .users
            .read()
            .get(user)
            .and_then(|by_mechanism| by_mechanism.values().next_back().cloned());
        match strongest {
            Some(credential) => credential.matches_password(password),
            None => {
                let salt = self.decoy_salt(user, Mechanism::Sha512);
                let _ = Credential::from_password(
                    Mechanism::Sha512,
                    password,
                    &salt,
                    rill_proto::scram::MIN_ITERATIONS,
                );
                false
            }
        }
    }

    /// A salt for a user that has no credential: stable for the same name
    /// (asking twice gives the same answer, as for a real user) and
    /// different between names.
    pub fn decoy_salt(&self, user: &str, mechanism: Mechanism) -> Vec<u8> {
        let data = format!("{}\0{user}", mechanism.name());
        let mut salt = Mechanism::Sha256.hmac(&self.decoy_key, data.as_bytes());
        salt.truncate(rill_proto::scram::SALT_BYTES);
        salt
    }
}

/// Reads a credentials file (format in the module documentation).
pub fn parse_credentials(text: &str) -> Result<Users, String> {
    let mut users = Users::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = index + 1;
        let mut fields = line.split_whitespace();
        let (Some(user), Some(mechanism), Some(credential), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(format!(
                "line {n}: expected `user mechanism credential`, three fields"
            ));
        };
        let mechanism = Mechanism::from_name(mechanism).ok_or_else(|| {
            format!("line {n}: unknown mechanism `{mechanism}` (SCRAM-SHA-256 or SCRAM-SHA-512)")
        })?;
        let credential = Credential::from_text(mechanism, credential)
            .map_err(|e| format!("line {n}: {mechanism} credential of `{user}`: {e}"))?;
        let previous = users
            .entry(user.to_owned())
            .or_default()
            .insert(mechanism, credential);
        if previous.is_some() {
            return Err(format!(
                "line {n}: a second {mechanism} credential for `{user}`"
            ));
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_credentials_file_when_parsed_then_each_user_has_its_mechanisms() {
        let a = Credential::generate(Mechanism::Sha512, b"a", 4096).unwrap();
        let b = Credential::generate(Mechanism::Sha256, b"b", 4096).unwrap();
        let text = format!(
            "# comment\n\nalice SCRAM-SHA-512 {}\n  bob\tSCRAM-SHA-256 {}\n",
            a.to_text(),
            b.to_text()
        );
        let users = parse_credentials(&text).unwrap();
        assert_eq!(users["alice"][&Mechanism::Sha512], a);
        assert_eq!(users["bob"][&Mechanism::Sha256], b);

        let store = CredentialStore::default();
        store.replace_all(users);
        assert_eq!(store.user_count(), 2);
        assert!(store.check_password("alice", b"a"));
        assert!(!store.check_password("alice", b"b"));
        assert!(!store.check_password("carol", b"a"));
        assert!(store.scram("alice", Mechanism::Sha256).is_none());
    }

    #[test]
    fn given_bad_lines_when_parsed_then_the_error_names_the_line() {
        let good = Credential::generate(Mechanism::Sha512, b"a", 4096)
            .unwrap()
            .to_text();
        for (text, needle) in [
            ("alice SCRAM-SHA-512".to_owned(), "line 1: expected"),
            (format!("alice SCRAM-SHA-1 {good}"), "unknown mechanism"),
            ("\nalice SCRAM-SHA-512 salt=AA==".to_owned(), "line 2"),
            (
                format!("alice SCRAM-SHA-512 {good}\nalice SCRAM-SHA-512 {good}"),
                "a second SCRAM-SHA-512",
            ),
            (format!("alice SCRAM-SHA-512 {good} extra"), "three fields"),
        ] {
            let err = parse_credentials(&text).unwrap_err();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }
}
