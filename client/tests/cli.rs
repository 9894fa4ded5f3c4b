//! The `rill` CLI against a real `rill-broker` process.
//!
//! Contract pinned:
//! - 10k lines through `rill produce` then `rill consume` come back byte
//!   for byte (tabs, `\r`, empty lines, UTF-8, long lines included), from a
//!   file argument and from stdin;
//! - keyed lines land on the partition Kafka's default partitioner picks
//!   (murmur2), in input order per key;
//! - `--follow` prints records produced after it started, and `--max` ends it;
//! - `offsets` and `topic list/describe` report what is stored;
//! - errors are one clear line with a non-zero exit code (unreachable
//!   broker names its address, unknown topic names the topic), and a closed
//!   stdout (`rill consume | head`) ends quietly with exit code 0.
//!
//! The broker runs from the `rill-broker` binary next to this test in the
//! target directory (`cargo test --workspace` builds it), started by the
//! broker tests' process helper.

#[path = "../../broker/tests/broker_process/mod.rs"]
mod broker_process;

use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use broker_process::BrokerProcess;
use rill_client::partition_for_key;

/// Longest a single `rill` invocation may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

struct Fixture {
    _dir: tempfile::TempDir,
    broker: BrokerProcess,
}

fn start() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(
        &dir.path().join("data"),
        &dir.path().join("broker.log"),
        &[],
    );
    Fixture { _dir: dir, broker }
}

fn rill_command(broker: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rill"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RILL_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RILL_BROKER", broker).args(args);
    cmd
}

/// Waits for `child` with [`COMMAND_TIMEOUT`], collecting its output.
fn finish(mut child: Child, what: &str) -> Output {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    // Drain stdout/stderr on threads so a chatty child never blocks.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = out.as_mut() {
            o.read_to_end(&mut v).expect("read stdout");
        }
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = err.as_mut() {
            e.read_to_end(&mut v).expect("read stderr");
        }
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`rill {what}` did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out_t.join().expect("stdout thread"),
        stderr: err_t.join().expect("stderr thread"),
    }
}

/// Runs `rill ARGS` with `stdin` as input.
fn rill(broker: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = rill_command(broker, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rill");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = finish(child, &args.join(" "));
    writer.join().expect("stdin writer");
    out
}

/// Runs `rill ARGS` and expects success.
fn rill_ok(broker: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let out = rill(broker, args, stdin);
    assert!(
        out.status.success(),
        "`rill {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `rill ARGS`, expects exit code 1 and returns stderr.
fn rill_err(broker: &str, args: &[&str]) -> String {
    let out = rill(broker, args, b"");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "`rill {}` should fail with exit code 1; stderr: {stderr}",
        args.join(" ")
    );
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert!(
        stderr.starts_with("error: "),
        "one clear error line: {stderr}"
    );
    stderr
}

/// 10k lines with awkward content, ending in a newline.
fn awkward_lines(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        match i % 10 {
            0 => {} // empty line
            1 => out.extend_from_slice(format!("tab\there {i}").as_bytes()),
            2 => out.extend_from_slice(format!("crlf {i}\r").as_bytes()),
            3 => out.extend_from_slice(format!("ütf-8 ✓ 日本 {i}").as_bytes()),
            4 => out.extend_from_slice(&[0xff, 0xfe, b' ', b'0' + (i % 10) as u8]), // not UTF-8
            5 if i % 1000 == 5 => out.extend_from_slice(&vec![b'L'; 40_000]),       // > one batch
            _ => out.extend_from_slice(format!("line {i} {}", "x".repeat(i % 97)).as_bytes()),
        }
        out.push(b'\n');
    }
    out
}

#[test]
fn given_10k_lines_when_produced_and_consumed_should_round_trip_byte_identical() {
    let f = start();
    let b = f.broker.client_addr.as_str();
    rill_ok(b, &["topic", "create", "lines", "--partitions", "1"], b"");
    let input = awkward_lines(10_000);

    // From a file argument ...
    let file = f._dir.path().join("input.txt");
    std::fs::write(&file, &input).expect("write input");
    let out = rill(
        b,
        &["produce", "lines", file.to_str().expect("utf-8 path")],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("produced 10000 records"),
        "summary on stderr: {summary}"
    );
    let consumed = rill_ok(b, &["consume", "lines"], b"");
    assert_eq!(consumed.len(), input.len(), "same length");
    assert!(
        consumed == input,
        "consume output differs from the produced lines"
    );

    // ... and from stdin, with small batches (many requests in a row).
    rill_ok(b, &["topic", "create", "lines2"], b"");
    rill_ok(b, &["produce", "lines2", "--batch-size", "7", "-q"], &input);
    assert!(rill_ok(b, &["consume", "lines2"], b"") == input);

    // --max and --from OFFSET select exactly.
    let out = rill_ok(
        b,
        &[
            "consume",
            "lines",
            "--from",
            "11",
            "--max",
            "2",
            "--print-offset",
        ],
        b"",
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "11\ttab\there 11\n12\tcrlf 12\r\n"
    );
    let offsets = String::from_utf8_lossy(&rill_ok(b, &["offsets", "lines"], b"")).into_owned();
    assert_eq!(
        offsets,
        "PARTITION  EARLIEST  LATEST  RECORDS\n0          0         10000   10000\n"
    );
}

#[test]
fn given_keyed_lines_when_produced_should_land_on_the_murmur2_partition_in_order() {
    let f = start();
    let b = f.broker.client_addr.as_str();
    rill_ok(b, &["topic", "create", "keyed", "-p", "3"], b"");
    let keys = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"];
    let mut input = String::new();
    for i in 0..700 {
        input.push_str(&format!("{}={i}\n", keys[i % keys.len()]));
    }
    rill_ok(
        b,
        &["produce", "keyed", "--key-separator", "="],
        input.as_bytes(),
    );
    let mut total = 0;
    for p in 0..3 {
        let out = rill_ok(
            b,
            &["consume", "keyed", "-p", &p.to_string(), "--print-key"],
            b"",
        );
        let mut last: std::collections::HashMap<String, i64> = Default::default();
        for line in String::from_utf8(out).expect("utf-8").lines() {
            let (key, value) = line.split_once('\t').expect("key<TAB>value");
            assert_eq!(
                partition_for_key(key.as_bytes(), 3),
                p,
                "key {key} on partition {p}"
            );
            let v: i64 = value.parse().expect("number");
            if let Some(prev) = last.insert(key.to_owned(), v) {
                assert!(v > prev, "records of key {key} keep input order");
            }
            total += 1;
        }
    }
    assert_eq!(total, 700);
    let list = String::from_utf8_lossy(&rill_ok(b, &["topic", "list"], b"")).into_owned();
    assert!(list.contains("keyed  3"), "{list}");
    assert!(list.trim_end().ends_with("700"), "{list}");
    let describe =
        String::from_utf8_lossy(&rill_ok(b, &["topic", "describe", "keyed"], b"")).into_owned();
    assert!(describe.contains("Partitions: 3"), "{describe}");
}

#[test]
fn given_follow_when_records_arrive_later_should_print_them_and_stop_at_max() {
    let f = start();
    let b = f.broker.client_addr.as_str();
    rill_ok(b, &["topic", "create", "live"], b"");
    rill_ok(b, &["produce", "live"], b"before\n");
    let mut follower = rill_command(
        b,
        &["consume", "live", "--from", "1", "--follow", "--max", "2"],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn follower");
    let stdout = follower.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.expect("utf-8 line")).is_err() {
                return;
            }
        }
    });
    rill_ok(b, &["produce", "live"], b"after-1\n");
    let first = rx
        .recv_timeout(COMMAND_TIMEOUT)
        .expect("follower prints after-1");
    assert_eq!(first, "after-1");
    // The follower has caught up and is long-polling: this one arrives later.
    rill_ok(b, &["produce", "live"], b"after-2\n");
    let second = rx
        .recv_timeout(COMMAND_TIMEOUT)
        .expect("follower prints after-2");
    assert_eq!(second, "after-2");
    let out = finish(follower, "consume --follow --max 2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    reader.join().expect("reader thread");
    assert!(rx.try_recv().is_err(), "nothing after --max records");
}

#[test]
fn given_bad_input_should_fail_with_one_clear_error_line() {
    let f = start();
    let b = f.broker.client_addr.as_str();
    let err = rill_err("127.0.0.1:1", &["topic", "list"]);
    assert!(
        err.contains("cannot connect to broker at 127.0.0.1:1"),
        "{err}"
    );
    let err = rill_err(b, &["consume", "missing"]);
    assert!(err.contains("topic \"missing\" does not exist"), "{err}");
    let err = rill_err(b, &["produce", "missing"]);
    assert!(err.contains("topic \"missing\" does not exist"), "{err}");
    rill_ok(b, &["topic", "create", "t", "-p", "2"], b"");
    let err = rill_err(b, &["topic", "create", "t"]);
    assert!(err.contains("already exists"), "{err}");
    rill_ok(b, &["topic", "create", "t", "--if-not-exists"], b"");
    let err = rill_err(b, &["consume", "t", "--partition", "5"]);
    assert!(err.contains("there is no partition 5"), "{err}");
    let err = rill_err(b, &["consume", "t", "-p", "0", "--from", "99"]);
    assert!(err.contains("out of range"), "{err}");
    let err = rill_err(b, &["topic", "create", "u", "--config", "no.such.key=1"]);
    assert!(err.contains("no.such.key"), "{err}");
    let err = rill_err(b, &["produce", "t", "/definitely/not/here.txt"]);
    assert!(
        err.contains("cannot open /definitely/not/here.txt"),
        "{err}"
    );
    let out = rill(b, &["produce", "t", "-k", ":"], b"k:v\nno separator\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("stdin:2: no key separator"), "{err}");
    rill_ok(b, &["topic", "delete", "t"], b"");
    let err = rill_err(b, &["topic", "delete", "t"]);
    assert!(err.contains("does not exist"), "{err}");
    rill_ok(b, &["topic", "delete", "t", "--if-exists"], b"");
    // Usage errors come from clap with exit code 2.
    let out = rill(b, &["consume", "t", "--from", "yesterday"], b"");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn given_a_closed_stdout_when_consuming_should_exit_quietly() {
    let f = start();
    let b = f.broker.client_addr.as_str();
    rill_ok(b, &["topic", "create", "many"], b"");
    let input: Vec<u8> = (0..50_000)
        .flat_map(|i| format!("record number {i}\n").into_bytes())
        .collect();
    rill_ok(b, &["produce", "many", "-q"], &input);
    // Like `rill consume many | head -1`: read one line, close the pipe.
    let mut child = rill_command(b, &["consume", "many"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn consume");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).expect("some output");
    assert_eq!(&first, b"record number 0\n");
    drop(stdout);
    let out = finish(child, "consume many | head");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit 0 on a closed pipe: {err}");
    assert!(err.is_empty(), "nothing on stderr: {err}");
}
