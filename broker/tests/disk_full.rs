//! Contract: when the data disk fills up, produce fails with
//! RESOURCE_EXHAUSTED ("disk full") instead of crashing or corrupting the
//! log; every record acknowledged before is still readable, the broker
//! keeps serving reads, and produce works again once space is freed
//! (here: the tmpfs is grown with `mount -o remount`).
//!
//! Needs root (or CAP_SYS_ADMIN) to mount a 2 MiB tmpfs: without it the
//! test FAILS saying so, rather than passing without testing anything.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use common::*;
use tonic::Code;

/// Size of the data disk; small so it fills quickly.
const DISK_SIZE: &str = "2m";
/// Size after "freeing space".
const GROWN_SIZE: &str = "8m";
/// Value size of each record: 16 KiB batches fill 2 MiB in ~128 produces.
const VALUE_BYTES: usize = 16 * 1024;
/// Upper bound on produces before the disk must be full.
const MAX_PRODUCES: usize = 1_000;

/// Unmounts the tmpfs when dropped, also when the test fails.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path) -> Self {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={DISK_SIZE}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("the `mount` command must exist to run the disk-full test");
        assert!(
            out.status.success(),
            "the disk-full test needs root (CAP_SYS_ADMIN) to mount a {DISK_SIZE} tmpfs at {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Self {
            path: path.to_owned(),
        }
    }

    fn grow(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a failed test left files open): detach lazily.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

fn record(i: usize) -> TestRecord {
    TestRecord {
        key: Some(Bytes::from(format!("k{i}"))),
        value: Bytes::from(vec![(i % 251) as u8; VALUE_BYTES]),
        timestamp: 1_700_000_000_000 + i as i64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_full_disk_when_producing_should_refuse_with_resource_exhausted_keep_acked_data_and_recover_after_space_returns()
 {
    let mount_point = tempfile::tempdir().expect("tempdir");
    let disk = Tmpfs::mount(mount_point.path());
    let broker = start(&disk.path, |c| {
        c.log_flush = rill_broker::config::FlushDefault::Fsync
    })
    .await;
    let mut client = connect(&broker).await;
    create_topic(&mut client, "fill", 1, &[("segment.bytes", "262144")]).await;

    // Fill the disk; remember every acknowledged record.
    let mut acked: Vec<(i64, TestRecord)> = Vec::new();
    let mut refusal = None;
    for i in 0..MAX_PRODUCES {
        let r = record(i);
        match produce(
            &mut client,
            "fill",
            0,
            encode_batch(std::slice::from_ref(&r)),
        )
        .await
        {
            Ok(ack) => acked.push((ack.base_offset, r)),
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    let status = refusal.expect("a 2 MiB disk must fill up");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("disk full"), "{status:?}");
    assert!(acked.len() > 10, "only {} records fitted", acked.len());

    // Refused again while full, and reads keep working meanwhile.
    let again = produce(&mut client, "fill", 0, encode_batch(&[record(9_999)])).await;
    assert_eq!(
        again.expect_err("still full").code(),
        Code::ResourceExhausted
    );
    let stored = fetch_all(&mut client, "fill", 0, 0).await;
    assert_eq!(
        stored, acked,
        "every acknowledged record is readable, nothing else"
    );
    let (status, body) = http_get(broker.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metric_value(
            &body,
            "rill_errors_total{api=\"Produce\",kind=\"disk_full\"}"
        )
        .unwrap_or(0.0)
            >= 2.0,
        "{body}"
    );

    // Free space: produce works again and continues the log densely.
    disk.grow(GROWN_SIZE);
    let next = record(10_000);
    let ack = produce(
        &mut client,
        "fill",
        0,
        encode_batch(std::slice::from_ref(&next)),
    )
    .await
    .expect("produce works once space returns");
    assert_eq!(ack.base_offset, acked.len() as i64);
    acked.push((ack.base_offset, next));
    assert_eq!(fetch_all(&mut client, "fill", 0, 0).await, acked);

    // And it all survives a restart.
    drop(client);
    broker.shutdown().await.expect("clean shutdown");
    let broker = start(&disk.path, |_| {}).await;
    let mut client = connect(&broker).await;
    assert_eq!(fetch_all(&mut client, "fill", 0, 0).await, acked);
    drop(client);
    broker.shutdown().await.expect("clean shutdown");
    drop(disk);
}
