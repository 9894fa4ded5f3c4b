//! Small files that hold one offset: a partition's recovery point and its
//! high watermark checkpoint.
//!
//! They are rewritten every `flush.ms` for every partition that took
//! writes, so they are overwritten in place rather than replaced through a
//! temporary file and a rename: a broker with thousands of partitions
//! otherwise creates and deletes thousands of inodes a second, and the
//! filesystem's inode allocation became the largest cost of a broker at
//! 6,000 partition replicas. The record has a fixed width and a CRC-32C,
//! so a write torn by a crash reads as no value (the callers then start
//! lower: recovery validates more, the HW starts at the log start), never
//! as a wrong one. Files in the older plain-decimal format, written
//! through a rename, are still read.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// `<value, 20 characters> <CRC-32C of them, 8 hex digits>\n`.
const RECORD_BYTES: usize = 30;

fn record(value: i64) -> String {
    let number = format!("{value:020}");
    format!("{number} {:08x}\n", crc32c::crc32c(number.as_bytes()))
}

/// Writes `value` over the file's record (creating the file if needed).
/// `durable`: fdatasynced before returning (and the directory too when the
/// file is new); otherwise left to the next sync.
pub fn write(path: &Path, value: i64, durable: bool) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    // Only a durable write needs to know whether it created the file (to
    // sync the directory too); the others skip the `statx`, one of four
    // system calls per write, thousands a second with many partitions.
    let new = durable && file.metadata()?.len() == 0;
    let record = record(value);
    debug_assert_eq!(record.len(), RECORD_BYTES);
    file.write_all_at(record.as_bytes(), 0)?;
    if durable {
        file.sync_data()?;
        if new {
            super::sync_dir(path.parent().unwrap_or(Path::new(".")))?;
        }
    }
    Ok(())
}

/// The value in `path`: `Ok(None)` when there is no file,
/// `Err(InvalidData)` when its record is torn or garbled.
pub fn read(path: &Path) -> io::Result<Option<i64>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => return Err(garbled(path, "not text")),
        Err(e) => return Err(e),
    };
    let line = text.lines().next().unwrap_or("").trim();
    let value = match line.split_once(' ') {
        Some((number, crc)) => {
            let expected =
                u32::from_str_radix(crc, 16).map_err(|_| garbled(path, "bad checksum"))?;
            if number.len() != 20 || crc32c::crc32c(number.as_bytes()) != expected {
                return Err(garbled(path, "checksum mismatch"));
            }
            number.parse::<i64>()
        }
        // The older format: the decimal value alone, written atomically.
        None => line.parse::<i64>(),
    };
    value.map(Some).map_err(|e| garbled(path, &e.to_string()))
}

fn garbled(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {why}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_rewrites_then_the_last_value_is_read_and_no_other_file_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("point");
        assert_eq!(read(&path).unwrap(), None);
        for (value, durable) in [(123_456_789, true), (7, false), (-1, false), (42, true)] {
            write(&path, value, durable).unwrap();
            assert_eq!(read(&path).unwrap(), Some(value));
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["point"]);
    }

    #[test]
    fn given_the_older_plain_format_then_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("point");
        fs::write(&path, "9876\n").unwrap();
        assert_eq!(read(&path).unwrap(), Some(9876));
        // And overwritten whole by the new format.
        write(&path, 5, false).unwrap();
        assert_eq!(read(&path).unwrap(), Some(5));
    }

    #[test]
    fn given_a_torn_or_garbled_record_then_no_value_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("point");
        write(&path, 1_000, false).unwrap();
        let good = fs::read(&path).unwrap();
        // Half of a newer record over the older one.
        let mut torn = record(1_999).into_bytes();
        torn[18..].copy_from_slice(&good[18..]);
        assert_ne!(torn, good);
        for bad in [
            torn,
            Vec::new(),
            b"x 00000000\n".to_vec(),
            vec![0xff; 30],
            vec![0; 30],
        ] {
            fs::write(&path, &bad).unwrap();
            let err = read(&path).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{bad:?}");
        }
        // A record cut short is refused, or (cut within the zero-padded
        // number) reads lower, never higher.
        for len in 0..good.len() {
            fs::write(&path, &good[..len]).unwrap();
            match read(&path) {
                Ok(Some(value)) => assert!(value <= 1_000, "{len}: {value}"),
                Ok(None) => panic!("{len}: a file is there"),
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidData),
            }
        }
    }
}
