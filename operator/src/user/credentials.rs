//! SCRAM passwords and the cluster's credentials file.
//!
//! Every SCRAM User of a cluster has two lines (SCRAM-SHA-256 and
//! SCRAM-SHA-512) in the key `credentials` of the Secret
//! `<cluster>-scram-credentials`, which brokers read with
//! `--sasl-credentials-file` and reload when it changes:
//!
//! ```text
//! # user  mechanism      credential
//! app     SCRAM-SHA-512  salt=…,stored_key=…,server_key=…,iterations=4096
//! ```
//!
//! Only salted, hashed credentials are written there; the password stays
//! in the User's namespace. A credential is kept as long as it matches the
//! User's password (so an unchanged User never changes the file), and made
//! again with a new salt when the password changes.

use std::collections::BTreeMap;

use rill_proto::scram::{Credential, CredentialError, Mechanism, random_bytes};

/// Key of the credentials file in `<cluster>-scram-credentials`.
pub const CREDENTIALS_KEY: &str = "credentials";

/// PBKDF2 iterations of the credentials the operator makes (RFC 7677's
/// minimum, Kafka's default).
pub const ITERATIONS: u32 = 4096;

/// Characters of a generated password.
pub const PASSWORD_LENGTH: usize = 32;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The Secret holding a cluster's credentials file.
pub fn secret_name(cluster: &str) -> String {
    format!("{cluster}-scram-credentials")
}

/// A random password of [`PASSWORD_LENGTH`] letters and digits from the
/// system's secure random source (about 190 bits). Letters and digits
/// only, so it needs no quoting in any client configuration.
pub fn generate_password() -> String {
    let mut out = String::with_capacity(PASSWORD_LENGTH);
    // Rejection sampling: 248 = 4 * 62, so every character is equally likely.
    while out.len() < PASSWORD_LENGTH {
        for byte in random_bytes(PASSWORD_LENGTH * 2) {
            if out.len() == PASSWORD_LENGTH {
                break;
            }
            if byte < 248 {
                out.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
    }
    out
}

/// Why a password cannot be used.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.is_empty() {
        return Err("the password is empty".to_owned());
    }
    if password.chars().any(char::is_control) {
        return Err("the password contains a control character (such as a line break)".to_owned());
    }
    Ok(())
}

/// The password of a User with a generated password: the one its Secret
/// keeps (`kept`), so reconciles never change it, or a new one when there
/// is none (first reconcile, or the Secret was deleted to rotate it).
pub fn choose_password(kept: Option<String>) -> String {
    match kept {
        Some(password) if check_password(&password).is_ok() => password,
        _ => generate_password(),
    }
}

/// The credentials file: users and their credentials by mechanism.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialsFile {
    users: BTreeMap<String, BTreeMap<Mechanism, Credential>>,
}

impl CredentialsFile {
    /// Reads a file. Lines that cannot be read are skipped and returned
    /// (one message each): the operator owns the file and writes it again
    /// without them.
    pub fn parse(text: &str) -> (Self, Vec<String>) {
        let mut file = Self::default();
        let mut skipped = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = index + 1;
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [user, mechanism, credential] = fields.as_slice() else {
                skipped.push(format!("line {n}: expected `user mechanism credential`"));
                continue;
            };
            let Some(mechanism) = Mechanism::from_name(mechanism) else {
                skipped.push(format!("line {n}: unknown mechanism `{mechanism}`"));
                continue;
            };
            match Credential::from_text(mechanism, credential) {
                Ok(c) => {
                    file.users
                        .entry((*user).to_owned())
                        .or_default()
                        .insert(mechanism, c);
                }
                Err(e) => skipped.push(format!("line {n}: {e}")),
            }
        }
        (file, skipped)
    }

    /// The file's text: a header, then one line per user and mechanism in
    /// a stable order.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# SCRAM credentials of the User resources of this cluster, written by rill-operator.\n\
             # user mechanism credential (salted and hashed; no password is stored here)\n",
        );
        for (user, by_mechanism) in &self.users {
            for credential in by_mechanism.values() {
                out.push_str(&format!(
                    "{user} {} {}\n",
                    credential.mechanism.name(),
                    credential.to_text()
                ));
            }
        }
        out
    }

    /// Usernames in the file.
    pub fn usernames(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// Whether `user` has credentials for both mechanisms, made from
    /// `password`.
    pub fn matches(&self, user: &str, password: &str) -> bool {
        self.users.get(user).is_some_and(|by_mechanism| {
            Mechanism::ALL.iter().all(|m| {
                by_mechanism
                    .get(m)
                    .is_some_and(|c| c.matches_password(password.as_bytes()))
            })
        })
    }

    /// Makes `user`'s credentials those of `password`, keeping them when
    /// they already match. Returns whether the file changed.
    pub fn set_password(&mut self, user: &str, password: &str) -> Result<bool, CredentialError> {
        if self.matches(user, password) {
            return Ok(false);
        }
        let mut fresh = BTreeMap::new();
        for mechanism in Mechanism::ALL {
            fresh.insert(
                mechanism,
                Credential::generate(mechanism, password.as_bytes(), ITERATIONS)?,
            );
        }
        self.users.insert(user.to_owned(), fresh);
        Ok(true)
    }

    /// Removes `user`. Returns whether it was there.
    pub fn remove(&mut self, user: &str) -> bool {
        self.users.remove(user).is_some()
    }

    /// Keeps only the users `keep` accepts; returns the others, removed.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let gone: Vec<String> = self.users.keys().filter(|u| !keep(u)).cloned().collect();
        for user in &gone {
            self.users.remove(user);
        }
        gone
    }
}

/// A short hash of the file's text, put on broker pods so the kubelet
/// refreshes the mounted Secret at once.
pub fn content_hash(text: &str) -> String {
    Mechanism::Sha256
        .hash(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_generated_passwords_then_they_are_long_alphanumeric_and_different() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.len(), PASSWORD_LENGTH);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
        assert_eq!(check_password(&a), Ok(()));
    }

    #[test]
    fn given_a_kept_password_when_choosing_then_it_stays_and_a_missing_one_is_generated() {
        let first = choose_password(None);
        assert_eq!(first.len(), PASSWORD_LENGTH);
        assert_eq!(
            choose_password(Some(first.clone())),
            first,
            "kept across reconciles"
        );
        let rotated = choose_password(None);
        assert_ne!(rotated, first, "a deleted Secret yields a new password");
        assert_ne!(
            choose_password(Some(String::new())),
            "",
            "an emptied key is replaced"
        );
    }

    #[test]
    fn given_bad_passwords_when_checking_then_they_are_refused() {
        assert!(check_password("").is_err());
        assert!(check_password("two\nlines").is_err());
        assert_eq!(check_password("pä ss\"word"), Ok(()));
    }

    #[test]
    fn given_a_user_when_setting_a_password_then_both_mechanisms_are_written_salted() {
        let mut file = CredentialsFile::default();
        assert_eq!(file.set_password("app", "secret-one"), Ok(true));
        let text = file.render();
        assert!(
            !text.contains("secret-one"),
            "no clear password in the file"
        );
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("app SCRAM-SHA-256 salt="), "{text}");
        assert!(lines[1].starts_with("app SCRAM-SHA-512 salt="), "{text}");
        assert!(lines[1].ends_with(",iterations=4096"), "{text}");

        let (read, skipped) = CredentialsFile::parse(&text);
        assert!(skipped.is_empty());
        assert_eq!(read, file, "render and parse round-trip");
        assert!(read.matches("app", "secret-one"));
        assert!(!read.matches("app", "secret-two"));
    }

    #[test]
    fn given_an_unchanged_password_when_setting_again_then_the_file_is_unchanged() {
        let mut file = CredentialsFile::default();
        file.set_password("app", "secret-one").expect("set");
        let before = file.render();
        assert_eq!(file.set_password("app", "secret-one"), Ok(false));
        assert_eq!(
            file.render(),
            before,
            "same salt, same text: no Secret write"
        );
        assert_eq!(file.set_password("app", "secret-two"), Ok(true));
        assert_ne!(file.render(), before);
        assert!(file.matches("app", "secret-two"));
    }

    #[test]
    fn given_users_when_removing_and_retaining_then_only_the_kept_remain() {
        let mut file = CredentialsFile::default();
        for user in ["a", "b", "team.c"] {
            file.set_password(user, "pw").expect("set");
        }
        assert!(file.remove("a"));
        assert!(!file.remove("a"));
        assert_eq!(file.retain(|u| u == "team.c"), vec!["b".to_owned()]);
        assert_eq!(file.usernames().collect::<Vec<_>>(), vec!["team.c"]);
    }

    #[test]
    fn given_lines_it_cannot_read_when_parsing_then_they_are_skipped_and_named() {
        let mut good = CredentialsFile::default();
        good.set_password("app", "pw").expect("set");
        let text = format!("{}broken line\nx SCRAM-SHA-1 salt=AA==\n", good.render());
        let (file, skipped) = CredentialsFile::parse(&text);
        assert_eq!(file, good);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[1].contains("unknown mechanism"));
    }

    #[test]
    fn given_a_text_when_hashing_then_it_is_short_and_stable() {
        assert_eq!(content_hash("a"), content_hash("a"));
        assert_ne!(content_hash("a"), content_hash("b"));
        assert_eq!(content_hash("a").len(), 16);
    }
}
