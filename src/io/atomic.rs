//! Outputs that appear whole or not at all.

use crate::error::FileError;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `dest` whole or not at all: `write` fills a buffered writer on a temporary file,
/// which is flushed and renamed into place only when everything succeeded.
pub fn write_atomically(
    dest: impl AsRef<Path>,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), FileError> {
    let file = AtomicFile::new(dest)?;
    let mut w = file.create()?;
    write(&mut w).and_then(|()| w.flush()).map_err(FileError::io(file.dest()))?;
    drop(w);
    file.commit()
}

/// A file written under a temporary name beside its destination and renamed into place by
/// [`AtomicFile::commit`]. Dropped without a commit, it removes the temporary file, so a
/// failed or interrupted run leaves nothing half-written under the destination's name.
#[derive(Debug)]
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Prepares `dest`; its directory must exist.
    pub fn new(dest: impl AsRef<Path>) -> Result<Self, FileError> {
        let dest = dest.as_ref().to_path_buf();
        let name = dest.file_name().ok_or_else(|| FileError::content(&dest, "is not a file name"))?;
        // Unique per process and per call: two writers of one destination (threads too)
        // never share a temporary file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dest.with_file_name(format!(".{}.tmp-{}-{n}", name.to_string_lossy(), std::process::id()));
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Some(file) = dir.ancestors().find(|a| a.is_file()) {
                return Err(FileError::content(
                    &dest,
                    format!("cannot be written: {} is a file, not a directory", file.display()),
                ));
            }
            if !dir.is_dir() {
                return Err(FileError::content(dir, "the output directory does not exist: create it first"));
            }
        }
        Ok(AtomicFile { dest, tmp, committed: false })
    }

    /// The temporary path to write to.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Creates the temporary file for buffered writing.
    pub fn create(&self) -> Result<BufWriter<File>, FileError> {
        let f = File::create(&self.tmp).map_err(FileError::io(&self.dest))?;
        Ok(BufWriter::with_capacity(1 << 20, f))
    }

    /// Renames the finished temporary file to the destination.
    pub fn commit(mut self) -> Result<(), FileError> {
        std::fs::rename(&self.tmp, &self.dest).map_err(FileError::io(&self.dest))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Removes from `dir` the temporary files of writers that no longer run: names of the form
/// `.NAME.tmp-PID-N` (as [`AtomicFile`] makes them) whose PID is not a live process. A file
/// of a live process — this one or another — is left alone, so concurrent writers are safe;
/// failures are ignored (the files only take space).
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temporary_owner) else { continue };
        // SAFETY: kill with signal 0 sends nothing; it only asks whether the process exists.
        let gone =
            unsafe { libc::kill(pid, 0) } == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The writer's PID of an [`AtomicFile`] temporary name, `.NAME.tmp-PID-N`.
fn temporary_owner(name: &str) -> Option<libc::pid_t> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(".tmp-")?;
    let (pid, n) = tail.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse::<libc::pid_t>().ok().filter(|&p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporaries_go_and_live_ones_stay() {
        let dir = crate::io::scratch_dir("atomic");
        let mine = AtomicFile::new(dir.join("a.cxtrack")).expect("new");
        std::fs::write(mine.path(), b"in progress").expect("write");
        // A PID that cannot run: above Linux's maximum (2^22).
        let dead = dir.join(".b.cxtrack.tmp-4194305-0");
        std::fs::write(&dead, b"left by a killed run").expect("write");
        let unrelated = dir.join(".c.tmp-notapid-0");
        std::fs::write(&unrelated, b"x").expect("write");
        remove_stale_temporaries(&dir);
        assert!(mine.path().exists(), "a live writer's file stays");
        assert!(!dead.exists(), "a dead writer's file goes");
        assert!(unrelated.exists(), "other names are not touched");
        assert_eq!(temporary_owner(".m.safetensors.tmp-123-7"), Some(123));
        assert_eq!(temporary_owner("m.safetensors"), None);
        drop(mine);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
