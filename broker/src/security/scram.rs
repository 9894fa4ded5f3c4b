//! The server side of one SCRAM exchange (RFC 5802): client-first →
//! server-first → client-final → server-final.
//!
//! Channel binding is not offered (the `n` and `y` GS2 flags are accepted,
//! `p=` is refused), and Kafka's `tokenauth` extension (delegation tokens)
//! is refused. A user without a credential gets a well-formed
//! server-first message with a salt derived from the user name, so the
//! exchange fails only at its last step, exactly like a wrong password:
//! the answers never tell a guesser which user names exist.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rill_proto::scram::{Credential, MIN_ITERATIONS, Mechanism, constant_time_eq, random_bytes};

use super::credentials::CredentialStore;

/// What the exchange answers to a client message.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes and wait for the client's next message.
    Challenge(Vec<u8>),
    /// The client proved it knows `user`'s password; send `reply` (the
    /// server signature, which proves the server knows the credential).
    Success { user: String, reply: Vec<u8> },
    /// The exchange failed; the reason goes to the broker's log, never to
    /// the client.
    Failure(String),
}

/// One SCRAM exchange on one connection.
#[derive(Debug)]
pub struct ScramExchange {
    mechanism: Mechanism,
    state: State,
}

#[derive(Debug)]
enum State {
    AwaitClientFirst,
    AwaitClientFinal(Box<Pending>),
    Finished,
}

#[derive(Debug)]
struct Pending {
    user: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    /// `None` when the user has no credential: the exchange then fails at
    /// the proof, like a wrong password.
    credential: Option<Credential>,
}

impl ScramExchange {
    pub fn new(mechanism: Mechanism) -> Self {
        Self {
            mechanism,
            state: State::AwaitClientFirst,
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Handles the client's next message.
    pub fn step(&mut self, message: &[u8], credentials: &CredentialStore) -> Step {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::AwaitClientFirst => match self.client_first(message, credentials) {
                Ok((pending, reply)) => {
                    self.state = State::AwaitClientFinal(Box::new(pending));
                    Step::Challenge(reply)
                }
                Err(reason) => Step::Failure(reason),
            },
            State::AwaitClientFinal(pending) => match self.client_final(message, &pending) {
                Ok(reply) => Step::Success {
                    user: pending.user,
                    reply,
                },
                Err(reason) => Step::Failure(reason),
            },
            State::Finished => Step::Failure("the SCRAM exchange is already over".into()),
        }
    }

    fn client_first(
        &self,
        message: &[u8],
        credentials: &CredentialStore,
    ) -> Result<(Pending, Vec<u8>), String> {
        let text = std::str::from_utf8(message)
            .map_err(|_| "client-first message is not UTF-8".to_owned())?;
        let (gs2_header, bare) = split_gs2_header(text)?;
        if bare.is_empty() {
            return Err("client-first message names no user".into());
        }
        let mut user = None;
        let mut client_nonce = None;
        for attribute in bare.split(',') {
            match attribute.split_once('=') {
                Some(("n", value)) if user.is_none() => user = Some(unescape_name(value)?),
                Some(("r", value)) if client_nonce.is_none() => client_nonce = Some(value),
                Some(("m", _)) => return Err("mandatory SCRAM extensions are not supported".into()),
                Some(("tokenauth", value)) if value.eq_ignore_ascii_case("true") => {
                    return Err("delegation tokens are not supported".into());
                }
                Some(_) => {} // optional extensions are ignored
                None => return Err(format!("client-first attribute `{attribute}` has no value")),
            }
        }
        let user = user.ok_or("client-first message names no user")?;
        let client_nonce = client_nonce
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic() && b != b','))
            .ok_or("client-first message has no valid nonce")?;
        if let Some(authzid) = gs2_header.authzid
            && authzid != user
        {
            return Err(format!(
                "authorization id `{authzid}` differs from the user `{user}`"
            ));
        }
        let credential = credentials.scram(&user, self.mechanism);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                credentials.decoy_salt(&user, self.mechanism),
                MIN_ITERATIONS,
            ),
        };
        let nonce = format!("{client_nonce}{}", BASE64.encode(random_bytes(18)));
        let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(salt));
        let reply = server_first.clone().into_bytes();
        Ok((
            Pending {
                user,
                gs2_header: gs2_header.raw.to_owned(),
                client_first_bare: bare.to_owned(),
                server_first,
                nonce,
                credential,
            },
            reply,
        ))
    }

    fn client_final(&self, message: &[u8], pending: &Pending) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(message)
            .map_err(|_| "client-final message is not UTF-8".to_owned())?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or("client-final message has no proof")?;
        let mut channel_binding = None;
        let mut nonce = None;
        for attribute in without_proof.split(',') {
            match attribute.split_once('=') {
                Some(("c", value)) if channel_binding.is_none() => channel_binding = Some(value),
                Some(("r", value)) if nonce.is_none() => nonce = Some(value),
                Some(_) => {}
                None => return Err(format!("client-final attribute `{attribute}` has no value")),
            }
        }
        let binding = BASE64
            .decode(channel_binding.ok_or("client-final message has no channel binding")?)
            .map_err(|_| "client-final channel binding is not base64".to_owned())?;
        if binding != pending.gs2_header.as_bytes() {
            return Err("client-final channel binding differs from the GS2 header".into());
        }
        // Exactly the server's nonce (RFC 5802; Kafka 4 checks the same,
        // CVE-2024-56128). librdkafka before 2.6.1 repeats its own nonce in
        // front of it and is refused here as by Kafka 4.
        if nonce != Some(pending.nonce.as_str()) {
            return Err("client-final nonce differs from the server's".into());
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| "client proof is not base64".to_owned())?;
        let Some(credential) = &pending.credential else {
            return Err(format!(
                "user `{}` has no {} credential",
                pending.user, self.mechanism
            ));
        };
        let auth_message = format!(
            "{},{},{}",
            pending.client_first_bare, pending.server_first, without_proof
        );
        let client_signature = self
            .mechanism
            .hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err("client proof has the wrong length".into());
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !constant_time_eq(&self.mechanism.hash(&client_key), &credential.stored_key) {
            return Err(format!("wrong password for user `{}`", pending.user));
        }
        let server_signature = self
            .mechanism
            .hmac(&credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)).into_bytes())
    }
}

struct Gs2Header<'a> {
    raw: &'a str,
    authzid: Option<String>,
}

/// Splits `gs2-header client-first-bare`.
fn split_gs2_header(text: &str) -> Result<(Gs2Header<'_>, &str), String> {
    let mut parts = text.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    let authzid_field = parts
        .next()
        .ok_or("client-first message has no GS2 header")?;
    let bare = parts
        .next()
        .ok_or("client-first message has no GS2 header")?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err("channel binding is not supported".into()),
        other => return Err(format!("unknown GS2 channel binding flag `{other}`")),
    }
    let authzid = match authzid_field {
        "" => None,
        a => Some(unescape_name(
            a.strip_prefix("a=").ok_or("malformed authorization id")?,
        )?),
    };
    let raw = &text[..text.len() - bare.len()];
    Ok((Gs2Header { raw, authzid }, bare))
}

/// Undoes SCRAM's name escaping (`=2C` is `,`, `=3D` is `=`).
fn unescape_name(name: &str) -> Result<String, String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3);
        match code {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => return Err(format!("user name `{name}` has a malformed escape")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err("the user name is empty".into());
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The client side of an exchange, as a Kafka client computes it.
    pub(crate) fn client_messages(
        mechanism: Mechanism,
        user: &str,
        password: &str,
        server_first: &[u8],
    ) -> (String, Vec<u8>) {
        let server_first = std::str::from_utf8(server_first).unwrap();
        let mut nonce = "";
        let mut salt = Vec::new();
        let mut iterations = 0;
        for attribute in server_first.split(',') {
            let (k, v) = attribute.split_once('=').unwrap();
            match k {
                "r" => nonce = v,
                "s" => salt = BASE64.decode(v).unwrap(),
                "i" => iterations = v.parse().unwrap(),
                _ => {}
            }
        }
        let salted = mechanism.salted_password(
            password.as_bytes(),
            &salt,
            std::num::NonZeroU32::new(iterations).unwrap(),
        );
        let client_key = mechanism.hmac(&salted, b"Client Key");
        let stored_key = mechanism.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("n={user},r=client-nonce,{server_first},{without_proof}");
        let signature = mechanism.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = mechanism.hmac(&salted, b"Server Key");
        let expected = format!(
            "v={}",
            BASE64.encode(mechanism.hmac(&server_key, auth_message.as_bytes()))
        );
        (
            expected,
            format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes(),
        )
    }

    fn store() -> CredentialStore {
        let store = CredentialStore::default();
        for mechanism in Mechanism::ALL {
            store.insert(
                "alice",
                Credential::generate(mechanism, b"alice-secret", 4096).unwrap(),
            );
        }
        store
    }

    fn run(mechanism: Mechanism, user: &str, password: &str, store: &CredentialStore) -> Step {
        let mut exchange = ScramExchange::new(mechanism);
        let first = format!("n,,n={user},r=client-nonce");
        let Step::Challenge(server_first) = exchange.step(first.as_bytes(), store) else {
            panic!("a challenge for any user name");
        };
        let (expected, client_final) = client_messages(mechanism, user, password, &server_first);
        let step = exchange.step(&client_final, store);
        if let Step::Success { reply, .. } = &step {
            assert_eq!(reply, expected.as_bytes(), "server signature");
        }
        step
    }

    #[test]
    fn given_the_right_password_when_exchanging_then_the_user_is_authenticated() {
        let store = store();
        for mechanism in Mechanism::ALL {
            assert!(matches!(
                run(mechanism, "alice", "alice-secret", &store),
                Step::Success { ref user, .. } if user == "alice"
            ));
        }
    }

    #[test]
    fn given_a_wrong_password_or_unknown_user_when_exchanging_then_both_fail_at_the_proof() {
        let store = store();
        assert!(matches!(
            run(Mechanism::Sha512, "alice", "guess", &store),
            Step::Failure(ref why) if why.contains("wrong password")
        ));
        assert!(matches!(
            run(Mechanism::Sha512, "mallory", "guess", &store),
            Step::Failure(ref why) if why.contains("no SCRAM-SHA-512 credential")
        ));
        // The unknown user's salt is stable, so it looks like a real one.
        let challenge = |user: &str| {
            let mut exchange = ScramExchange::new(Mechanism::Sha256);
            let Step::Challenge(first) =
                exchange.step(format!("n,,n={user},r=abc").as_bytes(), &store)
            else {
                panic!("challenge");
            };
            String::from_utf8(first)
                .unwrap()
                .split(',')
                .nth(1)
                .unwrap()
                .to_owned()
        };
        assert_eq!(challenge("mallory"), challenge("mallory"));
        assert_ne!(challenge("mallory"), challenge("trudy"));
    }

    #[test]
    fn given_malformed_or_unsupported_messages_when_exchanging_then_each_fails_with_a_reason() {
        let store = store();
        for (message, reason) in [
            (&b"p=tls-unique,,n=alice,r=abc"[..], "channel binding"),
            (b"x,,n=alice,r=abc", "GS2"),
            (b"n,,r=abc", "no user"),
            (b"n,,n=alice", "nonce"),
            (b"n,,n=al=ZZice,r=abc", "escape"),
            (b"n,a=bob,n=alice,r=abc", "authorization id"),
            (b"n,,n=alice,r=abc,tokenauth=true", "delegation tokens"),
            (b"\xff\xfe", "UTF-8"),
            (b"n,,", "no user"),
        ] {
            let mut exchange = ScramExchange::new(Mechanism::Sha256);
            match exchange.step(message, &store) {
                Step::Failure(why) => assert!(why.contains(reason), "{why} for {message:?}"),
                other => panic!("{other:?} for {message:?}"),
            }
        }
        let mut exchange = ScramExchange::new(Mechanism::Sha256);
        assert!(matches!(
            exchange.step(b"n,,n=alice,r=abc", &store),
            Step::Challenge(_)
        ));
        assert!(matches!(
            exchange.step(b"c=biws,r=wrong,p=AAAA", &store),
            Step::Failure(ref why) if why.contains("nonce")
        ));
        assert!(matches!(
            exchange.step(b"anything", &store),
            Step::Failure(ref why) if why.contains("already over")
        ));
    }

    #[test]
    fn given_a_nonce_with_extra_bytes_in_front_when_exchanging_then_it_is_refused_even_with_a_valid_proof()
     {
        let store = store();
        let mechanism = Mechanism::Sha512;
        let mut exchange = ScramExchange::new(mechanism);
        let Step::Challenge(server_first) = exchange.step(b"n,,n=alice,r=client-nonce", &store)
        else {
            panic!("challenge");
        };
        let server_first = String::from_utf8(server_first).unwrap();
        let nonce = server_first
            .split(',')
            .next()
            .unwrap()
            .strip_prefix("r=")
            .unwrap();
        // What librdkafka before 2.6.1 sends: its nonce, then the server's
        // whole nonce, with a proof over exactly that message.
        let without_proof = format!("c=biws,r=client-nonce{nonce}");
        let salt = BASE64
            .decode(
                server_first
                    .split(',')
                    .nth(1)
                    .unwrap()
                    .strip_prefix("s=")
                    .unwrap(),
            )
            .unwrap();
        let salted = mechanism.salted_password(
            b"alice-secret",
            &salt,
            std::num::NonZeroU32::new(4096).unwrap(),
        );
        let client_key = mechanism.hmac(&salted, b"Client Key");
        let auth_message = format!("n=alice,r=client-nonce,{server_first},{without_proof}");
        let signature = mechanism.hmac(&mechanism.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let step = exchange.step(
            format!("{without_proof},p={}", BASE64.encode(proof)).as_bytes(),
            &store,
        );
        assert!(
            matches!(step, Step::Failure(ref why) if why.contains("nonce")),
            "{step:?}"
        );
    }

    #[test]
    fn given_escaped_names_when_unescaping_then_commas_and_equals_come_back() {
        assert_eq!(unescape_name("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert!(unescape_name("").is_err());
        assert!(unescape_name("a=").is_err());
    }
}
