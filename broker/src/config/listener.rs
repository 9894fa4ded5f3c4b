//! Named Kafka listeners (`--kafka-listener`): each a port with its own
//! transport (TLS or not) and client authentication (none, SCRAM, mTLS).
//! Rill's operator turns `StreamCluster.spec.listeners` into these.

use std::fmt;
use std::str::FromStr;

/// How clients of a listener prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerAuth {
    /// Nobody: every client is `User:ANONYMOUS`.
    None,
    /// SASL SCRAM-SHA-512 or SCRAM-SHA-256.
    Scram,
    /// A client certificate from `--kafka-tls-client-ca-file`.
    Mtls,
}

/// One `--kafka-listener name=NAME,port=PORT,tls=BOOL,auth=none|scram|mtls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaListener {
    pub name: String,
    pub port: u16,
    pub tls: bool,
    pub auth: ListenerAuth,
}

impl KafkaListener {
    /// Kafka's security protocol name for the listener.
    pub fn protocol(&self) -> &'static str {
        match (self.tls, self.auth) {
            (true, ListenerAuth::Scram) => "SASL_SSL",
            (false, ListenerAuth::Scram) => "SASL_PLAINTEXT",
            (true, _) => "SSL",
            (false, _) => "PLAINTEXT",
        }
    }
}

impl fmt::Display for KafkaListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match self.auth {
            ListenerAuth::None => "none",
            ListenerAuth::Scram => "scram",
            ListenerAuth::Mtls => "mtls",
        };
        write!(
            f,
            "name={},port={},tls={},auth={auth}",
            self.name, self.port, self.tls
        )
    }
}

impl FromStr for KafkaListener {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (mut name, mut port, mut tls, mut auth) = (None, None, None, None);
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not key=value"))?;
            match key.trim() {
                "name" => name = Some(value.trim().to_owned()),
                "port" => {
                    port = Some(
                        value
                            .trim()
                            .parse::<u16>()
                            .ok()
                            .filter(|p| *p != 0)
                            .ok_or_else(|| format!("port `{value}` is not 1-65535"))?,
                    )
                }
                "tls" => {
                    tls = Some(match value.trim() {
                        "true" => true,
                        "false" => false,
                        other => return Err(format!("tls `{other}` is not true or false")),
                    })
                }
                "auth" => {
                    auth = Some(match value.trim() {
                        "none" => ListenerAuth::None,
                        "scram" => ListenerAuth::Scram,
                        "mtls" => ListenerAuth::Mtls,
                        other => {
                            return Err(format!("auth `{other}` is not none, scram or mtls"));
                        }
                    })
                }
                other => {
                    return Err(format!(
                        "unknown key `{other}` (expected name, port, tls, auth)"
                    ));
                }
            }
        }
        let name = name.ok_or("name= is missing")?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("name `{name}` must be letters, digits, '-' or '_'"));
        }
        let listener = Self {
            name,
            port: port.ok_or("port= is missing")?,
            tls: tls.unwrap_or(false),
            auth: auth.unwrap_or(ListenerAuth::None),
        };
        if listener.auth == ListenerAuth::Mtls && !listener.tls {
            return Err(format!(
                "listener {}: auth=mtls needs tls=true",
                listener.name
            ));
        }
        Ok(listener)
    }
}

/// Checks a set of listeners against each other: names and ports unique.
pub fn check_all(listeners: &[KafkaListener]) -> Result<(), String> {
    for (i, a) in listeners.iter().enumerate() {
        for b in &listeners[..i] {
            if a.name == b.name {
                return Err(format!("two listeners are named {}", a.name));
            }
            if a.port == b.port {
                return Err(format!(
                    "listeners {} and {} both use port {}",
                    b.name, a.name, a.port
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_listener_parses_and_prints_back() {
        let l: KafkaListener = "name=tls,port=9093,tls=true,auth=scram".parse().unwrap();
        assert_eq!(
            l,
            KafkaListener {
                name: "tls".into(),
                port: 9093,
                tls: true,
                auth: ListenerAuth::Scram
            }
        );
        assert_eq!(l.protocol(), "SASL_SSL");
        assert_eq!(l.to_string().parse::<KafkaListener>().unwrap(), l);
    }

    #[test]
    fn defaults_are_plaintext_without_authentication() {
        let l: KafkaListener = "name=plain,port=9092".parse().unwrap();
        assert!(!l.tls);
        assert_eq!(l.auth, ListenerAuth::None);
        assert_eq!(l.protocol(), "PLAINTEXT");
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expected) in [
            ("port=1", "name= is missing"),
            ("name=a", "port= is missing"),
            ("name=a,port=0", "not 1-65535"),
            ("name=a b,port=1", "letters, digits"),
            ("name=a,port=1,auth=mtls", "needs tls=true"),
            ("name=a,port=1,auth=kerberos", "not none, scram or mtls"),
            ("name=a,port=1,colour=red", "unknown key"),
            ("name=a,port=1,tls=yes", "not true or false"),
        ] {
            let err = text.parse::<KafkaListener>().unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn duplicate_names_and_ports_are_refused() {
        let a: KafkaListener = "name=a,port=1".parse().unwrap();
        let b: KafkaListener = "name=a,port=2".parse().unwrap();
        let c: KafkaListener = "name=c,port=1".parse().unwrap();
        assert!(check_all(&[a.clone(), b]).unwrap_err().contains("named a"));
        assert!(check_all(&[a, c]).unwrap_err().contains("port 1"));
    }
}
