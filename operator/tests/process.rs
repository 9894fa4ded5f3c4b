//! The `rill-operator` binary as a process: without any Kubernetes
//! configuration it exits 1 with a message saying so (no panic, no
//! backtrace); with a kubeconfig it serves `/metrics`, `/healthz` and
//! `/readyz` while it waits for its CRDs, and exits 0 on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for the process to start, answer or stop.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Interval between polls while waiting on a condition.
const POLL: Duration = Duration::from_millis(50);

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rill-operator"));
    command
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("RUST_BACKTRACE");
    command
}

#[test]
fn given_no_kubernetes_configuration_when_starting_then_it_exits_with_a_clear_message() {
    let home = tempfile::tempdir().expect("tempdir");
    let output = binary()
        .env("HOME", home.path())
        .args(["--http-addr", "127.0.0.1:0"])
        .output()
        .expect("run rill-operator");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("no Kubernetes configuration found"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("KUBECONFIG"), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}

fn get(addr: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[test]
fn given_a_kubeconfig_when_running_then_it_serves_metrics_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("config");
    // An API server address where nothing listens: the operator keeps
    // waiting for its CRDs, which is all this test needs.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: none\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: none\n  context:\n    cluster: none\ncurrent-context: none\nusers: []\n",
    )
    .expect("write kubeconfig");
    let mut child = binary()
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--crd-wait-seconds",
            "600",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rill-operator");

    // The bound address is in the first log line (on stderr) that has it.
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = json["fields"]["addr"].as_str()
            {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(TIMEOUT)
        .expect("the operator logs its HTTP address");

    let metrics = get(&addr, "/metrics").expect("GET /metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("rill_operator_leader 0"), "{metrics}");
    assert!(
        get(&addr, "/healthz")
            .expect("GET /healthz")
            .starts_with("HTTP/1.1 200")
    );
    assert!(
        get(&addr, "/readyz")
            .expect("GET /readyz")
            .starts_with("HTTP/1.1 503"),
        "not ready while the CRDs are missing"
    );

    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "rill-operator did not stop after SIGTERM"
        );
        std::thread::sleep(POLL);
    };
    assert!(status.success(), "exit status {status}");
}
