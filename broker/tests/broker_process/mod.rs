//! Runs the real `rill-broker` binary as a child process for tests that
//! need a process boundary (kill -9 crash tests, CLI tests): start it on
//! loopback port 0 with a given data dir, wait for its `RILL_READY` line,
//! SIGKILL or stop it. The broker's stderr goes to a log file whose tail is
//! shown when it fails to start.
//!
//! Shared by `crash.rs` and `cli.rs` (owned with them; the in-process
//! helpers of the other integration tests live in `common/`).
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
    /// Where the broker's stderr goes.
    pub log_path: PathBuf,
}

impl BrokerProcess {
    /// Starts a broker on `data_dir` with extra command-line `args`,
    /// appending its stderr to `log_path`, and waits until it serves.
    pub fn start(data_dir: &Path, log_path: &Path, args: &[&str]) -> Self {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("open broker log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rill-broker"));
        // The test's own environment must not configure the broker.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RILL_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(args)
            .env("RILL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn rill-broker");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.starts_with("RILL_READY ") {
                    let _ = tx.send(line);
                }
                // Keep draining so the broker never blocks on stdout.
            }
        });
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "rill-broker did not print RILL_READY within {READY_TIMEOUT:?} ({e}); its log:\n{}",
                    log_tail(log_path)
                );
            }
        };
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .unwrap_or_else(|| panic!("ready line {line:?} has no {name}"))
                .to_owned()
        };
        Self {
            client_addr: field("client="),
            http_addr: field("http="),
            child,
            log_path: log_path.to_owned(),
        }
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
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last lines of a log file, for failure messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
