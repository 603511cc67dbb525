//! The lock on a training run's output directory: an advisory lock (`flock`) on
//! `DIR/train.lock`, held for the whole run. A second run into the same directory is refused
//! at once with a message naming the running one (its process id, command and start time,
//! written into the lock file); the lock dies with its process, so a killed run leaves
//! nothing that blocks the next one.

use crate::error::FileError;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "train.lock";

/// A held lock on a run directory; released (and its file removed) when dropped.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    file: File,
}

impl RunLock {
    /// Locks `dir` (which must exist) for this process, or says which run holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock, FileError> {
        let path = dir.join(LOCK_FILE);
        // A run that finishes removes its lock file while holding the lock; whoever opened
        // the old file before that must not take a lock on an unlinked file, so after
        // locking, check that the path still names the locked file, and retry if not.
        for _ in 0..100 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(FileError::io(&path))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    return Err(FileError::content(
                        dir,
                        format!(
                            "another training run is writing to this directory ({}); wait for it to finish, or choose another -o",
                            if holder.is_empty() { "its details are not yet written" } else { holder }
                        ),
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(FileError::io(&path)(e)),
            }
            if !same_file(&file, &path) {
                continue;
            }
            let me = describe_process();
            file.set_len(0).and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ())).map_err(FileError::io(&path))?;
            file.write_all(me.as_bytes()).and_then(|()| file.flush()).map_err(FileError::io(&path))?;
            return Ok(RunLock { path, file });
        }
        Err(FileError::content(dir, "could not lock the directory: its lock file keeps being replaced"))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed while still locked (see acquire); the lock itself goes with the file handle.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// Whether `path` still names the open file `file` (same device and inode).
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// This process for the lock file: pid, command line and start time.
fn describe_process() -> String {
    let command: Vec<String> = std::env::args().collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("pid {} `{}`, started {}", std::process::id(), command.join(" "), utc(now))
}

/// Seconds since the Unix epoch as `YYYY-MM-DD hh:mm:ss UTC` (the proleptic Gregorian
/// calendar, by Hinnant's days-to-civil algorithm).
fn utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_are_civil_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_025_661), "2026-11-30 08:01:01 UTC");
    }

    #[test]
    fn a_second_lock_is_refused_and_a_released_one_is_taken_again() {
        let dir = std::env::temp_dir().join(format!("chromax-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let held = RunLock::acquire(&dir).expect("first lock");
        // flock locks belong to open file descriptions: a second open in this process conflicts.
        let err = RunLock::acquire(&dir).expect_err("held").to_string();
        assert!(err.contains("another training run") && err.contains(&format!("pid {}", std::process::id())), "{err}");
        drop(held);
        assert!(!dir.join(LOCK_FILE).exists(), "a finished run removes its lock file");
        let again = RunLock::acquire(&dir).expect("free again");
        drop(again);
        // A stale lock file (a killed run's) does not block: nothing holds its lock.
        std::fs::write(dir.join(LOCK_FILE), "pid 1 `killed`").expect("stale");
        drop(RunLock::acquire(&dir).expect("a stale lock file does not block"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
