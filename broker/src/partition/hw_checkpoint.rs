//! The high watermark checkpoint of the broker's partition replicas
//! (Kafka's `replication-offset-checkpoint`): one file in the data
//! directory, `high-watermarks`, with the HW of every replica hosted here.
//!
//! A replica restarts with the HW it last checkpointed, never with its log
//! end: records above the HW may never have been committed, and a restarted
//! replica that becomes leader must not expose them before its followers
//! confirm them in its epoch. The checkpoint may lag the real HW (it is
//! written every [`INTERVAL`] when a HW moved, and at shutdown); a lower HW
//! only delays what consumers see until the leader's HW passes it again.
//! For the same reason an unreadable file (a crash can tear one written
//! without an fsync) is read as no checkpoint: every HW starts at its log
//! start.
//!
//! One file for all replicas, replaced whole (temporary file, rename), is
//! one write every 5 s however many partitions there are. A file per
//! partition, overwritten in place, cost an open, a write and a close per
//! partition every 5 s: about 5% of a broker's CPU with 10,000 replicas.
//!
//! Format, text: a header line, one `<topic> <partition> <hw>` line per
//! replica (topic names have no spaces), and a last line with the CRC-32C
//! of everything before it:
//!
//! ```text
//! rill-high-watermarks 1
//! orders 0 1200
//! orders 1 1187
//! crc 1f2e3d4c
//! ```
//!
//! Brokers of earlier versions kept one `high-watermark` file in each
//! partition directory. A replica reads that file once, when it is
//! opened, and removes it; an entry in the shared file wins over it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::warn;

/// File name in the data directory.
pub const FILE: &str = "high-watermarks";

/// The per-partition checkpoint of earlier versions (see the module docs).
pub const PARTITION_FILE: &str = "high-watermark";

/// How often a changed HW is written (Kafka's
/// `replica.high.watermark.checkpoint.interval.ms` default).
pub const INTERVAL: Duration = Duration::from_secs(5);

const HEADER: &str = "rill-high-watermarks 1";

/// The checkpoint file of one data directory.
#[derive(Debug)]
pub struct HighWatermarks {
    path: PathBuf,
    /// Entries read at start for replicas not opened yet. They are
    /// written back as they are, so a replica opened later (in a cluster,
    /// when the controller's assignment arrives) still finds its HW.
    unopened: Mutex<BTreeMap<(String, i32), i64>>,
    /// What the file holds. Lock order: this, then `unopened`.
    on_disk: Mutex<OnDisk>,
}

#[derive(Debug, Default)]
struct OnDisk {
    entries: BTreeMap<(String, i32), i64>,
    /// When the HWs were last compared with the file; `None` before.
    looked: Option<Instant>,
}

impl HighWatermarks {
    /// Reads the checkpoint in `data_dir` (none yet: empty).
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let path = data_dir.join(FILE);
        // A temporary file left by a crash during a write: the rename did
        // not happen, so the file it was to replace is still whole.
        match fs::remove_file(tmp_path(&path)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let entries = match fs::read(&path) {
            Ok(bytes) => parse(&bytes).unwrap_or_else(|why| {
                warn!(file = %path.display(), why, "unreadable high watermark checkpoint; every HW starts at its log start");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            path,
            unopened: Mutex::new(entries.clone()),
            on_disk: Mutex::new(OnDisk {
                entries,
                looked: None,
            }),
        })
    }

    /// Forgets the entries of replicas not opened yet for which `keep` is
    /// false (their directory is gone).
    pub fn retain_unopened(&self, mut keep: impl FnMut(&str, i32) -> bool) {
        self.unopened
            .lock()
            .retain(|(topic, partition), _| keep(topic, *partition));
    }

    /// The HW to restart partition `partition` of `topic` with, whose log
    /// is in `dir` and spans `[log_start, log_end]`: its checkpointed HW
    /// within that range, else the log start (nothing is exposed until the
    /// leader's HW passes it again; a standalone broker raises it to the
    /// log end). Call it once, when the replica is opened: from then on the
    /// replica's own HW is what gets written. Blocking.
    ///
    /// An empty log whose entry in the file is above its start is a new
    /// directory under the name of a replica removed from here (or emptied
    /// by a crash): that entry is taken out of the file durably before the
    /// log takes any record, or a crash before the next write would give
    /// the new log the old replica's HW.
    pub fn take(
        &self,
        topic: &str,
        partition: i32,
        dir: &Path,
        log_start: i64,
        log_end: i64,
    ) -> io::Result<i64> {
        let key = (topic.to_owned(), partition);
        if log_start == log_end {
            let mut on_disk = self.on_disk.lock();
            if on_disk.entries.get(&key).is_some_and(|hw| *hw > log_start) {
                on_disk.entries.remove(&key);
                self.replace(&render(entries_of(&on_disk.entries)), true)?;
            }
        }
        let stored = self.unopened.lock().remove(&key);
        let older = dir.join(PARTITION_FILE);
        let (from_older, present) = match crate::log::number_file::read(&older) {
            Ok(value) => (value, value.is_some()),
            // Written without an fsync, it can be torn by a crash.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                warn!(error = %e, "unreadable high watermark checkpoint of an earlier version");
                (None, true)
            }
            Err(e) => return Err(e),
        };
        if present {
            // Read once: the shared file holds this replica's HW from its
            // next write on (a crash before that starts the HW at the log
            // start, which is safe).
            fs::remove_file(&older)?;
        }
        let hw = stored.or(from_older).unwrap_or(log_start);
        Ok(hw.clamp(log_start, log_end))
    }

    /// Whether [`HighWatermarks::write`] would look at the HWs now: the
    /// last look is at least [`INTERVAL`] old.
    pub fn due(&self, now: Instant) -> bool {
        due(self.on_disk.lock().looked, now)
    }

    /// Writes `replicas` (topic, partition, HW) and the entries of the
    /// replicas not opened yet, if the last look is at least [`INTERVAL`]
    /// old and that changes the file; without an fsync, so the next sync
    /// of the filesystem makes it durable, and a crash before then leaves
    /// the older file (the rename is atomic) or, at worst, a torn one that
    /// reads as none. `force` (shutdown): at once, and fsynced with the
    /// directory before returning. Returns whether it wrote. Blocking.
    pub fn write<'a>(
        &self,
        replicas: impl IntoIterator<Item = (&'a str, i32, i64)>,
        now: Instant,
        force: bool,
    ) -> io::Result<bool> {
        let mut on_disk = self.on_disk.lock();
        if !force && !due(on_disk.looked, now) {
            return Ok(false);
        }
        on_disk.looked = Some(now);
        let unopened = self.unopened.lock();
        let mut entries: BTreeMap<(&str, i32), i64> = entries_of(&unopened)
            .map(|(topic, partition, hw)| ((topic, partition), hw))
            .collect();
        for (topic, partition, hw) in replicas {
            entries.insert((topic, partition), hw);
        }
        let same = entries.len() == on_disk.entries.len()
            && entries.iter().zip(entries_of(&on_disk.entries)).all(
                |((key, hw), (topic, partition, old))| *key == (topic, partition) && *hw == old,
            );
        if same && !force {
            // Nothing moved: the next look is an interval away.
            return Ok(false);
        }
        self.replace(
            &render(entries.iter().map(|((t, p), hw)| (*t, *p, *hw))),
            force,
        )?;
        on_disk.entries = entries
            .into_iter()
            .map(|((topic, partition), hw)| ((topic.to_owned(), partition), hw))
            .collect();
        Ok(true)
    }

    /// Replaces the file with `text`. Call it holding `on_disk`.
    fn replace(&self, text: &str, durable: bool) -> io::Result<()> {
        let tmp = tmp_path(&self.path);
        {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            if durable {
                file.sync_data()?;
            }
        }
        fs::rename(&tmp, &self.path)?;
        if durable {
            crate::log::sync_dir(self.path.parent().unwrap_or(Path::new(".")))?;
        }
        Ok(())
    }
}

fn entries_of(map: &BTreeMap<(String, i32), i64>) -> impl Iterator<Item = (&str, i32, i64)> {
    map.iter()
        .map(|((topic, partition), hw)| (topic.as_str(), *partition, *hw))
}

fn due(looked: Option<Instant>, now: Instant) -> bool {
    looked.is_none_or(|at| now >= at + INTERVAL)
}

fn tmp_path(path: &Path) -> PathBuf {
    path.with_extension("tmp")
}

fn render<'a>(entries: impl Iterator<Item = (&'a str, i32, i64)>) -> String {
    let mut text = String::with_capacity(32 + entries.size_hint().0 * 32);
    text.push_str(HEADER);
    text.push('\n');
    for (topic, partition, hw) in entries {
        let _ = writeln!(text, "{topic} {partition} {hw}");
    }
    let crc = crc32c::crc32c(text.as_bytes());
    let _ = writeln!(text, "crc {crc:08x}");
    text
}

fn parse(bytes: &[u8]) -> Result<BTreeMap<(String, i32), i64>, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not text")?;
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or("too short")?;
    let (body, last) = text.split_at(body_end);
    let crc = last
        .trim_end()
        .strip_prefix("crc ")
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or("no checksum line")?;
    if crc32c::crc32c(body.as_bytes()) != crc || !text.ends_with('\n') {
        return Err("checksum mismatch");
    }
    let mut lines = body.lines();
    if lines.next() != Some(HEADER) {
        return Err("unknown header");
    }
    let mut entries = BTreeMap::new();
    for line in lines {
        let mut fields = line.split(' ');
        let (Some(topic), Some(partition), Some(hw), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err("malformed line");
        };
        let partition = partition.parse().map_err(|_| "malformed partition")?;
        let hw = hw.parse().map_err(|_| "malformed high watermark")?;
        entries.insert((topic.to_owned(), partition), hw);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_all(hws: &HighWatermarks, replicas: &[(&str, i32, i64)], now: Instant) -> bool {
        hws.write(replicas.iter().copied(), now, false).unwrap()
    }

    #[test]
    fn given_written_hws_then_a_restart_takes_each_within_its_log() {
        let data = tempfile::tempdir().unwrap();
        let hws = HighWatermarks::open(data.path()).unwrap();
        let now = Instant::now();
        assert!(write_all(
            &hws,
            &[("a", 0, 40), ("a", 1, 7), ("b.c-d_e", 0, 0)],
            now
        ));
        let names: Vec<_> = fs::read_dir(data.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE], "no temporary file is left");

        let hws = HighWatermarks::open(data.path()).unwrap();
        let dir = data.path().join("p");
        fs::create_dir(&dir).unwrap();
        assert_eq!(hws.take("a", 0, &dir, 0, 100).unwrap(), 40);
        assert_eq!(
            hws.take("a", 1, &dir, 10, 100).unwrap(),
            10,
            "clamped up to the log start"
        );
        assert_eq!(hws.take("b.c-d_e", 0, &dir, 0, 100).unwrap(), 0);
        assert_eq!(
            hws.take("a", 2, &dir, 3, 100).unwrap(),
            3,
            "no entry: the log start"
        );
        // Taken once: the replica's own HW is what counts from then on.
        assert_eq!(hws.take("a", 0, &dir, 0, 100).unwrap(), 0);
    }

    #[test]
    fn given_a_hw_above_the_log_end_then_it_is_clamped_to_it() {
        let data = tempfile::tempdir().unwrap();
        let hws = HighWatermarks::open(data.path()).unwrap();
        write_all(&hws, &[("a", 0, 500)], Instant::now());
        let hws = HighWatermarks::open(data.path()).unwrap();
        assert_eq!(hws.take("a", 0, data.path(), 0, 120).unwrap(), 120);
    }

    #[test]
    fn given_replicas_not_opened_yet_then_their_entries_are_written_back() {
        let data = tempfile::tempdir().unwrap();
        let hws = HighWatermarks::open(data.path()).unwrap();
        write_all(&hws, &[("a", 0, 40), ("a", 1, 7)], Instant::now());
        let hws = HighWatermarks::open(data.path()).unwrap();
        assert_eq!(hws.take("a", 0, data.path(), 0, 100).unwrap(), 40);
        // Only a/0 is open again; a/1 waits for its assignment.
        assert!(write_all(&hws, &[("a", 0, 41)], Instant::now()));
        let hws = HighWatermarks::open(data.path()).unwrap();
        assert_eq!(hws.take("a", 0, data.path(), 0, 100).unwrap(), 41);
        assert_eq!(hws.take("a", 1, data.path(), 0, 100).unwrap(), 7);
    }

    #[test]
    fn given_the_interval_then_writes_wait_for_it_unless_forced_and_skip_no_change() {
        let data = tempfile::tempdir().unwrap();
        let hws = HighWatermarks::open(data.path()).unwrap();
        let t0 = Instant::now();
        assert!(write_all(&hws, &[("a", 0, 1)], t0));
        assert!(
            !write_all(&hws, &[("a", 0, 2)], t0 + INTERVAL / 2),
            "too soon"
        );
        assert!(hws.due(t0 + INTERVAL));
        assert!(
            !write_all(&hws, &[("a", 0, 1)], t0 + INTERVAL),
            "nothing moved"
        );
        assert!(!hws.due(t0 + INTERVAL * 3 / 2), "looked at t0 + INTERVAL");
        assert!(write_all(&hws, &[("a", 0, 2)], t0 + INTERVAL * 2));
        assert!(
            hws.write([("a", 0, 3)], t0 + INTERVAL * 2, true).unwrap(),
            "forced"
        );
        let hws = HighWatermarks::open(data.path()).unwrap();
        assert_eq!(hws.take("a", 0, data.path(), 0, 100).unwrap(), 3);
    }

    #[test]
    fn given_a_new_empty_log_under_the_name_of_a_removed_replica_then_the_old_hw_leaves_the_file_at_once()
     {
        let data = tempfile::tempdir().unwrap();
        let hws = HighWatermarks::open(data.path()).unwrap();
        write_all(
            &hws,
            &[("a", 0, 40), ("a", 1, 7), ("a", 2, 0)],
            Instant::now(),
        );
        let hws = HighWatermarks::open(data.path()).unwrap();
        // a/0 was removed from this broker and comes back as a new, empty
        // log; a/2 is an empty log whose HW is its start.
        assert_eq!(hws.take("a", 0, data.path(), 0, 0).unwrap(), 0);
        let text = fs::read_to_string(data.path().join(FILE)).unwrap();
        assert!(!text.contains("a 0 "), "{text}");
        assert!(
            text.contains("\na 1 7\n") && text.contains("\na 2 0\n"),
            "{text}"
        );
        assert_eq!(hws.take("a", 2, data.path(), 0, 0).unwrap(), 0);
        assert_eq!(fs::read_to_string(data.path().join(FILE)).unwrap(), text);
        // A crash now, after the new log took records and before the next
        // periodic write: the old HW does not come back.
        let hws = HighWatermarks::open(data.path()).unwrap();
        assert_eq!(hws.take("a", 0, data.path(), 0, 300).unwrap(), 0);
        assert_eq!(hws.take("a", 1, data.path(), 0, 300).unwrap(), 7);
    }

    #[test]
    fn given_a_torn_or_garbled_file_then_no_hw_is_read() {
        let data = tempfile::tempdir().unwrap();
        let hws = HighWatermarks::open(data.path()).unwrap();
        write_all(&hws, &[("a", 0, 40), ("b", 3, 9_000)], Instant::now());
        let good = fs::read(data.path().join(FILE)).unwrap();
        let mut flipped = good.clone();
        flipped[HEADER.len() + 5] ^= 0x01;
        let mut bad = vec![
            Vec::new(),
            flipped,
            vec![0; good.len()],
            b"crc 0\n".to_vec(),
        ];
        bad.extend((1..good.len()).map(|len| good[..len].to_vec()));
        for bytes in bad {
            fs::write(data.path().join(FILE), &bytes).unwrap();
            let hws = HighWatermarks::open(data.path()).unwrap();
            assert_eq!(
                hws.take("b", 3, data.path(), 5, 10_000).unwrap(),
                5,
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn given_a_leftover_temporary_file_then_it_is_removed_and_the_file_read() {
        let data = tempfile::tempdir().unwrap();
        let hws = HighWatermarks::open(data.path()).unwrap();
        write_all(&hws, &[("a", 0, 40)], Instant::now());
        fs::write(tmp_path(&data.path().join(FILE)), "rill-high").unwrap();
        let hws = HighWatermarks::open(data.path()).unwrap();
        assert!(!tmp_path(&data.path().join(FILE)).exists());
        assert_eq!(hws.take("a", 0, data.path(), 0, 100).unwrap(), 40);
    }

    #[test]
    fn given_the_per_partition_file_of_an_earlier_version_then_it_is_read_once_and_removed() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("p");
        fs::create_dir(&dir).unwrap();
        crate::log::number_file::write(&dir.join(PARTITION_FILE), 33, true).unwrap();
        let hws = HighWatermarks::open(data.path()).unwrap();
        assert_eq!(hws.take("a", 0, &dir, 0, 100).unwrap(), 33);
        assert!(!dir.join(PARTITION_FILE).exists());
        // A garbled one reads as none, and goes too.
        fs::write(dir.join(PARTITION_FILE), "12x\n").unwrap();
        assert_eq!(hws.take("a", 1, &dir, 4, 100).unwrap(), 4);
        assert!(!dir.join(PARTITION_FILE).exists());
        // The shared file's entry wins over an older per-partition file.
        write_all(&hws, &[("a", 0, 50)], Instant::now());
        crate::log::number_file::write(&dir.join(PARTITION_FILE), 33, true).unwrap();
        let hws = HighWatermarks::open(data.path()).unwrap();
        assert_eq!(hws.take("a", 0, &dir, 0, 100).unwrap(), 50);
        assert!(!dir.join(PARTITION_FILE).exists());
    }
}
