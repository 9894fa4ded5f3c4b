//! Container probes (startup, liveness, readiness) as the kubelet runs them:
//! `httpGet` (HTTP, status 200..399 passes), `tcpSocket` (a connection
//! passes), `exec` (exit status 0 passes, run inside the container's mount
//! namespace). Named ports resolve through the container's `ports`; the
//! host is the pod IP unless the probe sets one. `grpc` probes and HTTPS
//! are refused with a message (the container then never passes that probe).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    Http {
        host: Option<String>,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        host: Option<String>,
        port: u16,
    },
    Exec {
        command: Vec<String>,
    },
}

/// A probe with the kubelet's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub action: ProbeAction,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

fn seconds(v: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(v.map_or(default, |s| s.max(0) as u64))
}

fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .ok_or_else(|| format!("port {name:?} is not a named port of the container"))?,
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("port {number} is out of range"))
}

impl ProbeSpec {
    /// Reads a Kubernetes probe of `container`.
    pub fn from_k8s(probe: &Probe, container: &Container) -> Result<Self, String> {
        let action = if let Some(http) = &probe.http_get {
            if http
                .scheme
                .as_deref()
                .is_some_and(|s| !s.eq_ignore_ascii_case("HTTP"))
            {
                return Err("httpGet probes over HTTPS are not supported by the node agent".into());
            }
            ProbeAction::Http {
                host: http.host.clone().filter(|h| !h.is_empty()),
                port: resolve_port(&http.port, container)?,
                path: http.path.clone().unwrap_or_else(|| "/".to_owned()),
                headers: http
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            }
        } else if let Some(tcp) = &probe.tcp_socket {
            ProbeAction::Tcp {
                host: tcp.host.clone().filter(|h| !h.is_empty()),
                port: resolve_port(&tcp.port, container)?,
            }
        } else if let Some(exec) = &probe.exec {
            let command = exec.command.clone().unwrap_or_default();
            if command.is_empty() {
                return Err("exec probe without a command".into());
            }
            ProbeAction::Exec { command }
        } else if probe.grpc.is_some() {
            return Err("grpc probes are not supported by the node agent".into());
        } else {
            return Err("probe has no action (httpGet, tcpSocket or exec)".into());
        };
        Ok(Self {
            action,
            initial_delay: seconds(probe.initial_delay_seconds, 0),
            period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        })
    }
}

/// How to run an exec probe inside a container.
#[derive(Debug, Clone)]
pub struct ExecTarget {
    /// This agent's executable (its `container-exec` subcommand enters the
    /// container's namespaces).
    pub agent_exe: PathBuf,
    /// The container's spec file (environment of the exec'd command).
    pub spec: PathBuf,
    /// The container's process.
    pub pid: u32,
}

/// Runs `probe` once; `Err` carries the reason it failed.
pub async fn check(probe: &ProbeSpec, pod_ip: IpAddr, exec: &ExecTarget) -> Result<(), String> {
    match tokio::time::timeout(probe.timeout, check_once(&probe.action, pod_ip, exec)).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {:?}", probe.timeout)),
    }
}

async fn check_once(action: &ProbeAction, pod_ip: IpAddr, exec: &ExecTarget) -> Result<(), String> {
    match action {
        ProbeAction::Tcp { host, port } => {
            let host = host.clone().unwrap_or_else(|| pod_ip.to_string());
            TcpStream::connect((host.as_str(), *port))
                .await
                .map(|_| ())
                .map_err(|e| format!("dial tcp {host}:{port}: {e}"))
        }
        ProbeAction::Http {
            host,
            port,
            path,
            headers,
        } => {
            let host = host.clone().unwrap_or_else(|| pod_ip.to_string());
            let status = http_get(&host, *port, path, headers).await?;
            if (200..400).contains(&status) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {status}"))
            }
        }
        ProbeAction::Exec { command } => {
            let status = tokio::process::Command::new(&exec.agent_exe)
                .arg("container-exec")
                .arg(&exec.spec)
                .arg(exec.pid.to_string())
                .arg("--")
                .args(command)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .map_err(|e| format!("exec probe: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("command {command:?} exited with {status}"))
            }
        }
    }
}

/// A minimal HTTP/1.1 GET; returns the status code.
async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<u16, String> {
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("Get http://{host}:{port}{path}: {e}"))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n");
    request.push_str("User-Agent: rill-node-agent\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 || head.len() > 4096 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status_line(&head).ok_or_else(|| "malformed HTTP response".to_owned())
}

fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container() -> Container {
        serde_json::from_value(json!({
            "name": "broker",
            "ports": [{"name": "http", "containerPort": 9644}, {"name": "kafka", "containerPort": 9092}],
        }))
        .expect("container")
    }

    fn probe(v: serde_json::Value) -> Result<ProbeSpec, String> {
        ProbeSpec::from_k8s(
            &serde_json::from_value::<Probe>(v).expect("probe"),
            &container(),
        )
    }

    #[test]
    fn given_an_http_probe_with_a_named_port_when_parsing_then_port_and_defaults_are_resolved() {
        let p = probe(json!({"httpGet": {"path": "/readyz", "port": "http"}})).expect("parses");
        assert_eq!(
            p.action,
            ProbeAction::Http {
                host: None,
                port: 9644,
                path: "/readyz".into(),
                headers: vec![]
            }
        );
        assert_eq!(p.period, Duration::from_secs(10));
        assert_eq!(p.timeout, Duration::from_secs(1));
        assert_eq!((p.success_threshold, p.failure_threshold), (1, 3));
        assert_eq!(p.initial_delay, Duration::ZERO);
    }

    #[test]
    fn given_tcp_and_exec_probes_with_timings_when_parsing_then_they_are_kept() {
        let p = probe(json!({"tcpSocket": {"port": 9092}, "periodSeconds": 2,
                             "timeoutSeconds": 3, "failureThreshold": 60, "initialDelaySeconds": 4}))
        .expect("parses");
        assert_eq!(
            p.action,
            ProbeAction::Tcp {
                host: None,
                port: 9092
            }
        );
        assert_eq!(p.period, Duration::from_secs(2));
        assert_eq!(p.timeout, Duration::from_secs(3));
        assert_eq!(p.failure_threshold, 60);
        assert_eq!(p.initial_delay, Duration::from_secs(4));
        let e = probe(json!({"exec": {"command": ["cat", "/tmp/ready"]}})).expect("parses");
        assert_eq!(
            e.action,
            ProbeAction::Exec {
                command: vec!["cat".into(), "/tmp/ready".into()]
            }
        );
    }

    #[test]
    fn given_unsupported_probes_when_parsing_then_the_reason_is_given() {
        assert!(
            probe(json!({"httpGet": {"port": "nope"}}))
                .unwrap_err()
                .contains("not a named port")
        );
        assert!(
            probe(json!({"httpGet": {"port": 1, "scheme": "HTTPS"}}))
                .unwrap_err()
                .contains("HTTPS")
        );
        assert!(
            probe(json!({"grpc": {"port": 1}}))
                .unwrap_err()
                .contains("grpc")
        );
        assert!(probe(json!({})).unwrap_err().contains("no action"));
        assert!(probe(json!({"tcpSocket": {"port": 70000}})).is_err());
    }

    #[test]
    fn given_status_lines_when_parsing_then_the_code_is_read() {
        assert_eq!(
            parse_status_line(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"HTTP/1.0 200 OK\r\nx: y"), Some(200));
        assert_eq!(parse_status_line(b"SSH-2.0\r\n"), None);
    }

    #[tokio::test]
    async fn given_a_listener_when_probing_then_http_and_tcp_results_are_truthful() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let status = if n == 0 {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                n += 1;
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let exec = ExecTarget {
            agent_exe: PathBuf::new(),
            spec: PathBuf::new(),
            pid: 0,
        };
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let http = |port| ProbeSpec {
            action: ProbeAction::Http {
                host: None,
                port,
                path: "/readyz".into(),
                headers: vec![],
            },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            success_threshold: 1,
            failure_threshold: 1,
        };
        assert_eq!(check(&http(port), ip, &exec).await, Ok(()));
        let failed = check(&http(port), ip, &exec).await.unwrap_err();
        assert!(failed.contains("503"), "{failed}");
        let tcp = ProbeSpec {
            action: ProbeAction::Tcp { host: None, port },
            ..http(port)
        };
        assert_eq!(check(&tcp, ip, &exec).await, Ok(()));
        let closed = crate::free_port().port();
        assert!(check(&http(closed), ip, &exec).await.is_err());
    }
}
