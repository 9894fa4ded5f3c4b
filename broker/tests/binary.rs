//! Contract of the `rill-broker` binary: configured from `RILL_*`
//! environment variables, it prints exactly one `RILL_READY client=<addr>
//! http=<addr> kafka=<addr>` line (space-separated `key=value` fields) on
//! stdout once serving, serves the client API there,
//! and on SIGTERM shuts down gracefully with exit code 0 (data flushed and
//! readable after a restart). A bad configuration exits with code 2 and a
//! message naming the variable.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long the broker may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long graceful shutdown may take.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

fn broker_command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rill-broker"));
    cmd.env_clear()
        .env("RILL_DATA_DIR", data_dir)
        .env("RILL_LISTEN_ADDR", "127.0.0.1:0")
        .env("RILL_HTTP_ADDR", "127.0.0.1:0")
        .env("RILL_KAFKA_ADDR", "127.0.0.1:0")
        .env("RILL_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

/// Starts the binary; returns it, its addresses and a receiver of any
/// further stdout lines.
fn spawn_ready(data_dir: &Path) -> (Child, String, String, mpsc::Receiver<String>) {
    let mut child = broker_command(data_dir).spawn().expect("spawn rill-broker");
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
    let rest = line.strip_prefix("RILL_READY ").expect("ready line format");
    let field = |name: &str| {
        rest.split(' ')
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("ready line {line:?} has no {name}="))
            .to_owned()
    };
    let client = field("client");
    let http = field("http");
    let kafka = field("kafka");
    assert_eq!(
        rest.split(' ').count(),
        3,
        "standalone ready line has client, http and kafka: {line:?}"
    );
    assert!(
        kafka
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.port() != 0),
        "kafka= is the bound address: {line:?}"
    );
    (child, client, http, rx)
}

fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rill-broker did not exit within {EXIT_TIMEOUT:?} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

async fn client_for(addr: &str) -> Client {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    rill_proto::client::client_client::ClientClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_env_config_when_started_and_sent_sigterm_should_serve_then_exit_zero_with_data_kept()
{
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut child, client_addr, http_addr, lines) = spawn_ready(tmp.path());
    let http: std::net::SocketAddr = http_addr.parse().expect("http addr");
    assert_eq!(http_get(http, "/readyz").await.0, 200);

    let mut client = client_for(&client_addr).await;
    create_topic(&mut client, "bin", 1, &[]).await;
    let ack = produce(&mut client, "bin", 0, simple_batch("kept", 3))
        .await
        .expect("produce");
    drop(client);

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("send SIGTERM");
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    let extra: Vec<String> = lines.try_iter().collect();
    assert!(
        extra.is_empty(),
        "stdout holds only the ready line, got {extra:?}"
    );

    let (mut child, client_addr, _, _) = spawn_ready(tmp.path());
    let mut client = client_for(&client_addr).await;
    let records = fetch_all(&mut client, "bin", 0, ack.base_offset).await;
    let values: Vec<_> = records.iter().map(|(_, r)| r.value.clone()).collect();
    assert_eq!(values, vec!["kept-0", "kept-1", "kept-2"]);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("send SIGINT");
    assert_eq!(wait_exit(&mut child).code(), Some(0));
}

#[test]
fn given_an_invalid_config_when_started_should_exit_2_naming_the_variable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = broker_command(tmp.path())
        .env("RILL_BROKER_ID_FROM_POD_NAME", "true")
        .env("RILL_POD_NAME", "broker")
        .stderr(Stdio::piped())
        .output()
        .expect("run rill-broker");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RILL_POD_NAME") && stderr.contains("ordinal"),
        "{stderr}"
    );

    let out = broker_command(tmp.path())
        .env("RILL_LOG_FLUSH", "sometimes")
        .stderr(Stdio::piped())
        .output()
        .expect("run rill-broker");
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap refuses unknown enum values with code 2"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sometimes"), "{stderr}");
}

#[test]
fn given_a_config_file_with_a_refused_key_when_started_should_exit_2_naming_file_line_and_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("broker.properties");
    std::fs::write(&file, "num.partitions=6\nlisteners=PLAINTEXT://:9092\n").expect("write");
    let out = broker_command(&tmp.path().join("data"))
        .env("RILL_CONFIG_FILE", &file)
        .stderr(Stdio::piped())
        .output()
        .expect("run rill-broker");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: line 2: listeners: not supported",
            file.display()
        )),
        "{stderr}"
    );
}
