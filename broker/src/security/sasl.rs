//! The authentication state of one Kafka connection.
//!
//! On a listener with SASL, a connection starts unauthenticated: it may
//! send ApiVersions, then SaslHandshake (v1: the mechanism) and
//! SaslAuthenticate (the mechanism's messages) until it is authenticated.
//! Any other request before that closes the connection, as Kafka does.
//! Once authenticated, the principal is fixed on the connection.
//!
//! Re-authentication (KIP-368): when `connections.max.reauth.ms` is set,
//! SaslAuthenticate's final answer tells the client how long its session
//! lasts; the client authenticates again on the same connection before
//! then (SaslHandshake and SaslAuthenticate again, as the same user). A
//! request that arrives after the session expired closes the connection.
//!
//! Failures answer SASL_AUTHENTICATION_FAILED with the same message
//! whatever went wrong (unknown user, wrong password, malformed message),
//! then close the connection; the reason goes to the broker's log only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rill_proto::scram::Mechanism;

use super::Principal;
use super::credentials::CredentialStore;
use super::scram::{ScramExchange, Step};

/// A SASL mechanism a listener offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// User name and password in one message; only sensible over TLS.
    Plain,
    Scram(Mechanism),
}

impl SaslMechanism {
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Scram(m) => m.name(),
        }
    }

    /// The mechanism named `name`, as Kafka spells it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Self::Plain),
            other => Mechanism::from_name(other).map(Self::Scram),
        }
    }
}

impl std::str::FromStr for SaslMechanism {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s.trim()).ok_or_else(|| {
            format!("unknown SASL mechanism `{s}`: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
        })
    }
}

/// SASL on one listener.
#[derive(Debug)]
pub struct SaslSettings {
    /// Offered mechanisms, in the order SaslHandshake lists them.
    pub mechanisms: Vec<SaslMechanism>,
    pub credentials: Arc<CredentialStore>,
    /// `connections.max.reauth.ms`: how long an authentication lasts;
    /// `None` for the life of the connection.
    pub session_lifetime: Option<Duration>,
}

/// What the connection does after an authentication request.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// Go on reading requests.
    Continue,
    /// Write the answer, then close: the reason goes to the log.
    Close(String),
}

/// Whether a request other than the SASL ones may run.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// Close the connection; the reason goes to the log.
    Refuse(String),
}

#[derive(Debug)]
enum State {
    /// No SASL on this listener: the principal comes from TLS (or is
    /// anonymous).
    Open,
    AwaitHandshake,
    AwaitAuthenticate(Exchange),
    Authenticated,
}

#[derive(Debug)]
enum Exchange {
    Plain,
    Scram(ScramExchange),
}

/// The authentication state of one connection.
#[derive(Debug)]
pub struct Session {
    sasl: Option<Arc<SaslSettings>>,
    state: State,
    principal: Arc<Principal>,
    /// The user a re-authentication must keep.
    user: Option<String>,
    expires: Option<Instant>,
}

/// The one message a failed authentication answers with.
const FAILED: &str = "Authentication failed: invalid credentials";

impl Session {
    /// A connection on a listener with `sasl` (or without SASL), whose TLS
    /// layer identified `principal` (anonymous without a client
    /// certificate).
    pub fn new(sasl: Option<Arc<SaslSettings>>, principal: Principal) -> Self {
        let state = if sasl.is_some() {
            State::AwaitHandshake
        } else {
            State::Open
        };
        Self {
            sasl,
            state,
            principal: Arc::new(principal),
            user: None,
            expires: None,
        }
    }

    /// Who is making the requests.
    pub fn principal(&self) -> &Arc<Principal> {
        &self.principal
    }

    /// Whether a request of `api` may run now.
    pub fn admit(&self, api: ApiKey, now: Instant) -> Admission {
        if api == ApiKey::ApiVersions {
            return Admission::Admit;
        }
        match self.state {
            State::Open => Admission::Admit,
            State::Authenticated => match self.expires {
                Some(at) if now >= at => Admission::Refuse(format!(
                    "{api:?} after the authentication of {} expired (the client did not re-authenticate)",
                    self.principal
                )),
                _ => Admission::Admit,
            },
            State::AwaitHandshake | State::AwaitAuthenticate(_) => {
                Admission::Refuse(format!("{api:?} before SASL authentication completed"))
            }
        }
    }

    /// Answers SaslHandshake at `version`: accepts the mechanism if offered.
    ///
    /// Version 0 is listed by ApiVersions (librdkafka looks for it before
    /// it uses SASL at all) but refused when used: after a v0 handshake the
    /// SASL messages would follow as raw frames instead of SaslAuthenticate
    /// requests, which only clients older than Kafka 1.0 send.
    pub fn handshake(
        &mut self,
        version: i16,
        request: &SaslHandshakeRequest,
    ) -> (SaslHandshakeResponse, After) {
        if version < 1 {
            return (
                SaslHandshakeResponse::default()
                    .with_error_code(ResponseError::UnsupportedVersion.code()),
                After::Close(
                    "SaslHandshake v0 (SASL messages as raw frames) is not supported; clients since Kafka 1.0 use v1".into(),
                ),
            );
        }
        let Some(sasl) = &self.sasl else {
            let response = SaslHandshakeResponse::default()
                .with_error_code(ResponseError::UnsupportedSaslMechanism.code());
            return (
                response,
                After::Close("SaslHandshake on a listener without SASL".into()),
            );
        };
        let offered: Vec<StrBytes> = sasl
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(offered);
        if !matches!(self.state, State::AwaitHandshake | State::Authenticated) {
            return (
                response.with_error_code(ResponseError::IllegalSaslState.code()),
                After::Close("SaslHandshake in the middle of an authentication".into()),
            );
        }
        let asked = request.mechanism.as_str();
        let Some(mechanism) = sasl.mechanisms.iter().copied().find(|m| m.name() == asked) else {
            return (
                response.with_error_code(ResponseError::UnsupportedSaslMechanism.code()),
                After::Close(format!("SASL mechanism `{asked}` is not offered")),
            );
        };
        self.state = State::AwaitAuthenticate(match mechanism {
            SaslMechanism::Plain => Exchange::Plain,
            SaslMechanism::Scram(m) => Exchange::Scram(ScramExchange::new(m)),
        });
        (response, After::Continue)
    }

    /// Answers SaslAuthenticate: runs the mechanism's next step.
    pub fn authenticate(
        &mut self,
        request: &SaslAuthenticateRequest,
        now: Instant,
    ) -> (SaslAuthenticateResponse, After) {
        let State::AwaitAuthenticate(exchange) = &mut self.state else {
            let response = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "SaslAuthenticate before SaslHandshake",
                )));
            return (
                response,
                After::Close("SaslAuthenticate before SaslHandshake".into()),
            );
        };
        let Some(sasl) = self.sasl.clone() else {
            // A listener without SASL never awaits authentication.
            return (
                failed(),
                After::Close("SaslAuthenticate without SASL".into()),
            );
        };
        let step = match exchange {
            Exchange::Plain => plain(&request.auth_bytes, &sasl.credentials),
            Exchange::Scram(scram) => scram.step(&request.auth_bytes, &sasl.credentials),
        };
        match step {
            Step::Challenge(reply) => (
                SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(reply)),
                After::Continue,
            ),
            Step::Failure(reason) => (failed(), After::Close(reason)),
            Step::Success { user, reply } => {
                if let Some(previous) = &self.user
                    && *previous != user
                {
                    return (
                        failed(),
                        After::Close(format!(
                            "re-authentication as `{user}` on a connection of `{previous}`"
                        )),
                    );
                }
                self.principal = Arc::new(Principal::user(&user));
                self.user = Some(user);
                self.state = State::Authenticated;
                self.expires = sasl.session_lifetime.map(|d| now + d);
                let lifetime_ms = sasl
                    .session_lifetime
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                (
                    SaslAuthenticateResponse::default()
                        .with_auth_bytes(Bytes::from(reply))
                        .with_session_lifetime_ms(lifetime_ms),
                    After::Continue,
                )
            }
        }
    }

    /// The mechanism in progress, for logs and metrics.
    pub fn mechanism(&self) -> Option<&'static str> {
        match &self.state {
            State::AwaitAuthenticate(Exchange::Plain) => Some("PLAIN"),
            State::AwaitAuthenticate(Exchange::Scram(s)) => Some(s.mechanism().name()),
            _ => None,
        }
    }
}

fn failed() -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::SaslAuthenticationFailed.code())
        .with_error_message(Some(StrBytes::from_static_str(FAILED)))
}

/// SASL PLAIN (RFC 4616): `authzid NUL authcid NUL password`.
fn plain(message: &[u8], credentials: &CredentialStore) -> Step {
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Step::Failure("malformed PLAIN message".into());
    };
    let Ok(user) = std::str::from_utf8(user) else {
        return Step::Failure("PLAIN user name is not UTF-8".into());
    };
    if user.is_empty() {
        return Step::Failure("PLAIN message names no user".into());
    }
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Step::Failure(format!(
            "PLAIN authorization id differs from the user `{user}`"
        ));
    }
    if credentials.check_password(user, password) {
        Step::Success {
            user: user.to_owned(),
            reply: Vec::new(),
        }
    } else {
        Step::Failure(format!("wrong password or no credential for user `{user}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_proto::scram::Credential;

    fn settings(lifetime: Option<Duration>) -> Arc<SaslSettings> {
        let credentials = CredentialStore::default();
        credentials.insert(
            "alice",
            Credential::generate(Mechanism::Sha512, b"pw-a", 4096).unwrap(),
        );
        credentials.insert(
            "bob",
            Credential::generate(Mechanism::Sha512, b"pw-b", 4096).unwrap(),
        );
        Arc::new(SaslSettings {
            mechanisms: vec![
                SaslMechanism::Scram(Mechanism::Sha512),
                SaslMechanism::Plain,
            ],
            credentials: Arc::new(credentials),
            session_lifetime: lifetime,
        })
    }

    fn handshake(session: &mut Session, mechanism: &'static str) -> (i16, After) {
        let (response, after) = session.handshake(
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
        );
        (response.error_code, after)
    }

    fn plain_login(
        session: &mut Session,
        user: &str,
        password: &str,
        now: Instant,
    ) -> (SaslAuthenticateResponse, After) {
        assert_eq!(handshake(session, "PLAIN"), (0, After::Continue));
        let message = format!("\0{user}\0{password}");
        session.authenticate(
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message)),
            now,
        )
    }

    #[test]
    fn given_a_sasl_listener_when_requests_come_before_authentication_then_only_api_versions_is_admitted()
     {
        let now = Instant::now();
        let session = Session::new(Some(settings(None)), Principal::anonymous());
        assert_eq!(session.admit(ApiKey::ApiVersions, now), Admission::Admit);
        assert!(matches!(
            session.admit(ApiKey::Produce, now),
            Admission::Refuse(_)
        ));
        let open = Session::new(None, Principal::anonymous());
        assert_eq!(open.admit(ApiKey::Produce, now), Admission::Admit);
        assert_eq!(open.principal().to_string(), "User:ANONYMOUS");
    }

    #[test]
    fn given_scram_when_the_client_proves_its_password_then_the_principal_is_fixed() {
        let now = Instant::now();
        let mut session = Session::new(Some(settings(None)), Principal::anonymous());
        assert_eq!(
            handshake(&mut session, "SCRAM-SHA-512"),
            (0, After::Continue)
        );
        let (first, after) = session.authenticate(
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"n,,n=alice,r=client-nonce")),
            now,
        );
        assert_eq!((first.error_code, after), (0, After::Continue));
        let (expected, client_final) = crate::security::scram::tests::client_messages(
            Mechanism::Sha512,
            "alice",
            "pw-a",
            &first.auth_bytes,
        );
        let (last, after) = session.authenticate(
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(client_final)),
            now,
        );
        assert_eq!((last.error_code, after), (0, After::Continue));
        assert_eq!(&last.auth_bytes[..], expected.as_bytes());
        assert_eq!(last.session_lifetime_ms, 0);
        assert_eq!(session.principal().to_string(), "User:alice");
        assert_eq!(session.admit(ApiKey::Produce, now), Admission::Admit);
    }

    #[test]
    fn given_a_wrong_password_when_authenticating_then_the_answer_says_nothing_more() {
        let now = Instant::now();
        let mut wrong = Session::new(Some(settings(None)), Principal::anonymous());
        let (response, after) = plain_login(&mut wrong, "alice", "nope", now);
        let mut unknown = Session::new(Some(settings(None)), Principal::anonymous());
        let (unknown_response, _) = plain_login(&mut unknown, "nobody", "nope", now);
        assert_eq!(
            response.error_code,
            ResponseError::SaslAuthenticationFailed.code()
        );
        assert_eq!(
            response.error_message, unknown_response.error_message,
            "same words for both"
        );
        assert!(matches!(after, After::Close(ref why) if why.contains("alice")));
        assert!(matches!(
            wrong.admit(ApiKey::Metadata, now),
            Admission::Refuse(_)
        ));
    }

    #[test]
    fn given_unsupported_or_out_of_order_requests_when_authenticating_then_the_connection_closes() {
        let now = Instant::now();
        let mut session = Session::new(Some(settings(None)), Principal::anonymous());
        let (code, after) = handshake(&mut session, "GSSAPI");
        assert_eq!(code, ResponseError::UnsupportedSaslMechanism.code());
        assert!(matches!(after, After::Close(_)));
        let mut early = Session::new(Some(settings(None)), Principal::anonymous());
        let (response, after) = early.authenticate(&SaslAuthenticateRequest::default(), now);
        assert_eq!(response.error_code, ResponseError::IllegalSaslState.code());
        assert!(matches!(after, After::Close(_)));
        let mut plaintext = Session::new(None, Principal::anonymous());
        assert!(matches!(
            handshake(&mut plaintext, "PLAIN").1,
            After::Close(_)
        ));
        let mut old = Session::new(Some(settings(None)), Principal::anonymous());
        let (response, after) = old.handshake(
            0,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        );
        assert_eq!(
            response.error_code,
            ResponseError::UnsupportedVersion.code()
        );
        assert!(matches!(after, After::Close(ref why) if why.contains("v0")));
    }

    #[test]
    fn given_a_session_lifetime_when_it_passes_then_requests_are_refused_until_the_same_user_reauthenticates()
     {
        let now = Instant::now();
        let mut session = Session::new(
            Some(settings(Some(Duration::from_secs(60)))),
            Principal::anonymous(),
        );
        let (response, _) = plain_login(&mut session, "alice", "pw-a", now);
        assert_eq!(
            (response.error_code, response.session_lifetime_ms),
            (0, 60_000)
        );
        let later = now + Duration::from_secs(61);
        assert!(
            matches!(session.admit(ApiKey::Fetch, later), Admission::Refuse(ref why) if why.contains("expired"))
        );
        let (response, after) = plain_login(&mut session, "alice", "pw-a", later);
        assert_eq!((response.error_code, after), (0, After::Continue));
        assert_eq!(session.admit(ApiKey::Fetch, later), Admission::Admit);
        let (response, after) = plain_login(&mut session, "bob", "pw-b", later);
        assert_eq!(
            response.error_code,
            ResponseError::SaslAuthenticationFailed.code()
        );
        assert!(matches!(after, After::Close(ref why) if why.contains("re-authentication")));
        assert_eq!(session.principal().to_string(), "User:alice");
    }
}
