//! Runs the real `rill-broker` binary as a child process for tests that
//! need a process boundary (kill -9 crash tests, CLI tests): start it on
//! loopback port 0 with a given data dir, wait for its `RILL_READY` line,
//! SIGKILL or stop it. The broker's stderr goes to a log file whose tail is
//! shown when it fails to start.
//!
//! The same for the `rill-controller` binary ([`ControllerProcess`]), and
//! [`BrokerProcess::signal`] for SIGSTOP/SIGCONT.
//!
//! Shared by `crash.rs`, `failover.rs` and `kafka_groups.rs` (owned with
//! them; the in-process helpers of the other integration tests live in
//! `common/`), and by the `rill` CLI's tests (`client/tests/cli.rs`), which
//! include this file by path.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a broker may take to print `RILL_READY` (debug builds, a
/// recovery scan of the data dir).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a killed or stopped broker may take to be reaped.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `rill-broker` process.
pub struct BrokerProcess {
    child: Child,
    /// host:port of the gRPC client API, from the ready line.
    pub client_addr: String,
    /// host:port of the HTTP endpoints (metrics, probes).
    pub http_addr: String,
    /// host:port of the Kafka protocol listener.
    pub kafka_addr: String,
    /// Where the broker's stderr goes.
    pub log_path: PathBuf,
}

impl BrokerProcess {
    /// Starts a broker on `data_dir` with extra command-line `args`,
    /// appending its stderr to `log_path`, and waits until it serves.
    pub fn start(data_dir: &Path, log_path: &Path, args: &[&str]) -> Self {
        let mut cmd = Command::new(broker_binary());
        cmd.arg("--data-dir")
            .arg(data_dir)
            .args(["--listen-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(["--kafka-addr", "127.0.0.1:0"])
            .args(args);
        let (child, line) = spawn_until_ready(cmd, "rill-broker", log_path);
        Self {
            client_addr: ready_field(&line, "client="),
            http_addr: ready_field(&line, "http="),
            kafka_addr: ready_field(&line, "kafka="),
            child,
            log_path: log_path.to_owned(),
        }
    }

    /// Sends `signal` without waiting (SIGSTOP, SIGCONT).
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("signal rill-broker");
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(mut self) {
        self.signal_and_wait(Signal::SIGKILL);
    }

    /// Sends SIGTERM (graceful shutdown) and waits for the exit; returns
    /// whether the broker exited successfully.
    pub fn terminate(mut self) -> bool {
        self.signal_and_wait(Signal::SIGTERM)
    }

    fn signal_and_wait(&mut self, signal: Signal) -> bool {
        let pid = Pid::from_raw(self.child.id() as i32);
        kill(pid, signal).expect("signal rill-broker");
        let deadline = std::time::Instant::now() + EXIT_TIMEOUT;
        loop {
            match self.child.try_wait().expect("wait for rill-broker") {
                Some(status) => return status.success(),
                None if std::time::Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("rill-broker did not exit within {EXIT_TIMEOUT:?} after {signal}");
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        show_log_on_panic("rill-broker", &self.log_path, &mut self.child);
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Spawns `cmd` (named `what` in messages) with stderr appended to
/// `log_path` and a clean `RILL_*` environment, and waits for its
/// `RILL_READY` line; returns the child and that line.
fn spawn_until_ready(mut cmd: Command, what: &str, log_path: &Path) -> (Child, String) {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("open process log file");
    // The test's own environment must not configure the process.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RILL_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .env("RILL_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if line.starts_with("RILL_READY ") {
                let _ = tx.send(line);
            }
            // Keep draining so the process never blocks on stdout.
        }
    });
    match rx.recv_timeout(READY_TIMEOUT) {
        Ok(line) => (child, line),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not print RILL_READY within {READY_TIMEOUT:?} ({e}); its log:\n{}",
                log_tail(log_path)
            );
        }
    }
}

/// The value of `name` (e.g. `client=`) in a ready line.
fn ready_field(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(name))
        .unwrap_or_else(|| panic!("ready line {line:?} has no {name}"))
        .to_owned()
}

/// The `rill-broker` binary. Cargo names it to the broker's own tests
/// (`CARGO_BIN_EXE_rill-broker`); tests of another package (the `rill`
/// CLI's) find it in the target directory their test executable runs from
/// (`target/<profile>/deps/<test>-<hash>`), once built (`cargo test
/// --workspace` builds every binary before running any test).
pub fn broker_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_rill-broker") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("path of the test executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable runs from target/<profile>/deps");
    built(dir.join("rill-broker"))
}

/// The `rill-controller` binary: built by the `rill-controller` package,
/// so cargo gives this package no `CARGO_BIN_EXE_` for it; it sits next to
/// `rill-broker` in the same target directory once built (`cargo test
/// --workspace` builds every binary before running any test).
pub fn controller_binary() -> PathBuf {
    built(broker_binary().with_file_name("rill-controller"))
}

/// `path`, a binary named like its package, or a panic saying how to build it.
fn built(path: PathBuf) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build -p {name} --bin {name}` \
         (or run `cargo test --workspace`, which builds it)",
        path.display()
    );
    path
}

/// A running `rill-controller` process (file store).
pub struct ControllerProcess {
    child: Child,
    /// host:port of the gRPC Controller service, from the ready line.
    pub addr: String,
    /// host:port of the HTTP endpoints (metrics, probes).
    pub http_addr: String,
    pub log_path: PathBuf,
}

impl ControllerProcess {
    /// Starts a controller on `metadata_file`, gRPC on `listen_addr` (port
    /// 0 or a fixed port to restart at the same address), HTTP on port 0,
    /// and waits until it serves.
    pub fn start(metadata_file: &Path, listen_addr: &str, log_path: &Path, args: &[&str]) -> Self {
        let mut cmd = Command::new(controller_binary());
        cmd.arg("--metadata-file")
            .arg(metadata_file)
            .args(["--listen-addr", listen_addr, "--http-addr", "127.0.0.1:0"])
            .args(args);
        let (child, line) = spawn_until_ready(cmd, "rill-controller", log_path);
        Self {
            addr: ready_field(&line, "controller="),
            http_addr: ready_field(&line, "http="),
            child,
            log_path: log_path.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(mut self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL).expect("signal controller");
        self.child.wait().expect("reap rill-controller");
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        show_log_on_panic("rill-controller", &self.log_path, &mut self.child);
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// When a test fails, shows the tail of each process's log on stderr (the
/// temp dir holding the full log is removed with the test), so a failure
/// seen only in CI can be read from its output.
fn show_log_on_panic(what: &str, log_path: &Path, child: &mut Child) {
    if std::thread::panicking() {
        let state = match child.try_wait() {
            Ok(Some(status)) => format!("exited: {status}"),
            Ok(None) => "running".to_owned(),
            Err(e) => format!("unknown: {e}"),
        };
        eprintln!(
            "----- last lines of {what} (pid {}, {state}) log {}:\n{}",
            child.id(),
            log_path.display(),
            log_tail(log_path)
        );
    }
}

/// The last lines of a log file, for failure messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
