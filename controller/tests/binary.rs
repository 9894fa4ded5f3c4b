//! Contract of the `rill-controller` binary: configured from
//! `RILL_CONTROLLER_*` environment variables, it prints exactly one
//! `RILL_READY controller=<addr> http=<addr>` line on stdout once serving,
//! answers gRPC and `/readyz` there, and exits 0 on SIGTERM. A bad
//! configuration exits 2 with a message naming the variable. A second
//! controller on the same metadata file deposes the first, which exits 1
//! at its next write attempt.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rill_controller::ControllerClient;

/// How long the binary may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

fn controller_command(metadata_file: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rill-controller"));
    cmd.env_clear()
        .env("RILL_CONTROLLER_METADATA_FILE", metadata_file)
        .env("RILL_CONTROLLER_LISTEN_ADDR", "127.0.0.1:0")
        .env("RILL_CONTROLLER_HTTP_ADDR", "127.0.0.1:0")
        .env("RILL_CONTROLLER_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

/// A running binary, its addresses and any further stdout lines.
struct Running {
    child: Child,
    grpc: String,
    http: String,
    more_stdout: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_ready(metadata_file: &Path) -> Running {
    let mut child = controller_command(metadata_file)
        .spawn()
        .expect("spawn rill-controller");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(READY_TIMEOUT)
        .expect("RILL_READY line in time");
    let rest = line
        .strip_prefix("RILL_READY ")
        .unwrap_or_else(|| panic!("ready line format: {line:?}"));
    let (grpc, http) = rest.split_once(' ').expect("two addresses");
    Running {
        child,
        grpc: grpc
            .strip_prefix("controller=")
            .expect("controller=")
            .to_owned(),
        http: http.strip_prefix("http=").expect("http=").to_owned(),
        more_stdout: rx,
    }
}

fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "rill-controller did not exit within {EXIT_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A plain HTTP/1.1 GET; returns the status code and body.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect HTTP");
    s.set_read_timeout(Some(EXIT_TIMEOUT)).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read");
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

// Multi-threaded: the client connection must answer the server's GOAWAY while
// this thread blocks waiting for the process to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_binary_when_started_should_report_ready_serve_and_exit_0_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("controller").join("metadata.json");
    let mut running = spawn_ready(&file);

    let (code, body) = http_get(&running.http, "/readyz");
    assert_eq!(code, 200, "{body}");
    let client = ControllerClient::connect(vec![running.grpc.clone()])
        .await
        .expect("connects");
    let reg = client.register(&registration(0)).await.expect("registers");
    assert_eq!(reg.session_timeout, Duration::from_millis(1500));
    assert_eq!(reg.heartbeat_interval, Duration::from_millis(250));
    let (_, metrics) = http_get(&running.http, "/metrics");
    assert!(
        metrics.contains("rill_controller_requests_total{method=\"Register\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(file.exists(), "the metadata file is written");

    kill(Pid::from_raw(running.child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let status = wait_exit(&mut running.child);
    assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
    assert!(
        running.more_stdout.try_recv().is_err(),
        "exactly one line on stdout"
    );
}

#[test]
fn given_a_bad_variable_when_started_should_exit_2_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = controller_command(&dir.path().join("m.json"))
        .env("RILL_CONTROLLER_HEARTBEAT_INTERVAL_MS", "5000")
        .stderr(Stdio::piped())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RILL_CONTROLLER_HEARTBEAT_INTERVAL_MS"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no RILL_READY line");
}

// Multi-threaded: the client connection must answer the server's GOAWAY while
// this thread blocks waiting for the process to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_second_binary_on_the_same_file_should_depose_the_first_which_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("metadata.json");
    let mut first = spawn_ready(&file);
    let second = spawn_ready(&file);

    let client = ControllerClient::connect(vec![first.grpc.clone()])
        .await
        .expect("connects");
    let err = client
        .register(&registration(0))
        .await
        .expect_err("the first controller is deposed at its next write");
    assert!(
        err.to_string().contains("not the active controller"),
        "{err}"
    );
    let status = wait_exit(&mut first.child);
    assert_eq!(status.code(), Some(1), "a deposed controller exits 1");

    let (code, _) = http_get(&second.http, "/readyz");
    assert_eq!(code, 200);
    let client = ControllerClient::connect(vec![first.grpc.clone(), second.grpc.clone()])
        .await
        .expect("connects to the survivor");
    client
        .register(&registration(0))
        .await
        .expect("the second controller serves");
}
