//! The checks chromax makes on an HDF5 file (`.h5ad`, 10x `.h5`) before a library reads it:
//! that it is whole, and ([`SizeLimit`], before each dataset is read) that no dataset declares
//! more data than the file can hold. A
//! truncated HDF5 file is otherwise read until some object is missing, and the message names
//! that object ("no obs group") instead of the damage; a dataset whose dataspace was damaged
//! to claim 10^15 values makes the reader allocate for them before it reads one, and the
//! process aborts.

use crate::error::FileError;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const SIGNATURE: [u8; 8] = [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];

/// Fails, naming the file and both sizes, when an HDF5 file is shorter than its superblock's
/// end-of-file address. A file that is not HDF5 passes (its reader says what it is).
pub fn check_hdf5_complete(path: &Path) -> Result<(), FileError> {
    let mut file = File::open(path).map_err(FileError::io(path))?;
    let len = file.metadata().map_err(FileError::io(path))?.len();
    // The superblock sits at 0, or after a user block at 512, 1024, 2048, …
    let mut at = 0u64;
    while at + 8 <= len {
        let mut head = [0u8; 96];
        file.seek(SeekFrom::Start(at)).map_err(FileError::io(path))?;
        let n = read_up_to(&mut file, &mut head).map_err(FileError::io(path))?;
        if n >= 8 && head[..8] == SIGNATURE {
            return match required_length(&head[..n]) {
                Some(needed) if needed > len => Err(FileError::content(
                    path,
                    format!(
                        "the HDF5 file is truncated: its superblock says it is {needed} bytes, it has {len} (copy it again, or write it again)"
                    ),
                )),
                _ => Ok(()),
            };
        }
        at = if at == 0 { 512 } else { at * 2 };
    }
    // Not HDF5 (its reader says what it is).
    Ok(())
}

/// How many bytes of values one byte of an HDF5 file can hold: deflate, the filter h5py and
/// Cell Ranger use, expands at most 1032:1 (its limit), and a file of plain data holds one.
const MAX_EXPANSION: u128 = 1100;
/// Datasets below this size are not checked (a tiny file may declare small empty arrays).
const ALWAYS_ALLOWED: u128 = 1 << 20;

/// The most a dataset of one file may declare, checked before a dataset is read whole: the
/// reader reserves room for every value a dataset's dataspace (or a chunk's) declares before
/// it reads one, and a damaged dataspace can declare 10^15 values in a 13 KiB file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SizeLimit {
    file_len: u64,
}

impl SizeLimit {
    pub(crate) fn of(path: &Path) -> Result<Self, FileError> {
        Ok(SizeLimit { file_len: std::fs::metadata(path).map_err(FileError::io(path))?.len() })
    }

    /// Fails when `ds` declares (values × value size, or its chunk's) more bytes than the file
    /// can hold at [`MAX_EXPANSION`]. What cannot be read from its header is left to the
    /// read, which says so.
    pub(crate) fn check(self, ds: &hdf5_pure::Dataset) -> Result<(), String> {
        let limit = (self.file_len as u128 * MAX_EXPANSION).max(ALWAYS_ALLOWED);
        let Ok(size) = ds.element_size() else { return Ok(()) };
        let bytes = |dims: &[u64]| dims.iter().fold(size as u128, |n, &d| n.saturating_mul(d as u128));
        let declared = [ds.shape().ok(), ds.chunk_shape().ok().flatten()];
        for dims in declared.iter().flatten() {
            if bytes(dims) > limit {
                return Err(format!(
                    "declares {dims:?} values of {size} bytes, more than a file of {} bytes can hold: the file is damaged",
                    self.file_len
                ));
            }
        }
        Ok(())
    }

    /// Reads `ds` whole with `read` once [`check`](Self::check) passes.
    pub(crate) fn read<T>(
        self,
        ds: &hdf5_pure::Dataset,
        read: impl FnOnce(&hdf5_pure::Dataset) -> Result<T, hdf5_pure::Error>,
    ) -> Result<T, String> {
        self.check(ds)?;
        read(ds).map_err(|e| e.to_string())
    }

    /// [`read`](Self::read) of a dataset being opened.
    pub(crate) fn whole<T>(
        self,
        ds: Result<hdf5_pure::Dataset, hdf5_pure::Error>,
        read: impl FnOnce(&hdf5_pure::Dataset) -> Result<T, hdf5_pure::Error>,
    ) -> Result<T, String> {
        self.read(&ds.map_err(|e| e.to_string())?, read)
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Base address + end-of-file address from a superblock (versions 0–3), or `None` when the
/// superblock is of another version, cut short or leaves the address undefined.
fn required_length(sb: &[u8]) -> Option<u64> {
    let version = *sb.get(8)?;
    let (offset_size, base_at) = match version {
        0 => (*sb.get(13)?, 24),
        1 => (*sb.get(13)?, 28),
        2 | 3 => (*sb.get(9)?, 12),
        _ => return None,
    };
    let o = offset_size as usize;
    if !matches!(o, 2 | 4 | 8) {
        return None;
    }
    let address = |at: usize| -> Option<u64> {
        let bytes = sb.get(at..at + o)?;
        if bytes.iter().all(|&b| b == 0xff) {
            return None;
        }
        Some(bytes.iter().rev().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    };
    // v0/v1: base, free-space info, end of file; v2/v3: base, superblock extension, end of file.
    let base = address(base_at)?;
    let eof = address(base_at + 2 * o)?;
    base.checked_add(eof)
}

/// An f32 array: name, values (row-major), shape.
pub type F32Array<'a> = (&'a str, &'a [f32], &'a [u64]);
/// A u8 array: name, values (row-major), shape.
pub type U8Array<'a> = (&'a str, &'a [u8], &'a [u64]);

/// Writes plain arrays and string lists into a new HDF5 file (atomically), with `attrs` as
/// the root's string attributes (`layout`: what the arrays' axes mean).
pub fn write_arrays(
    path: &Path,
    attrs: &[(&str, &str)],
    f32s: &[F32Array<'_>],
    u8s: &[U8Array<'_>],
    strings: &[(&str, &[String])],
) -> Result<(), FileError> {
    use hdf5_pure::{AttrValue, FileBuilder};
    let mut b = FileBuilder::new();
    for &(name, value) in attrs {
        b.set_attr(name, AttrValue::VarLenString(value.to_string()));
    }
    for &(name, values, shape) in f32s {
        b.create_dataset(name).with_f32_data(values).with_shape(shape);
    }
    for &(name, values, shape) in u8s {
        b.create_dataset(name).with_u8_data(values).with_shape(shape);
    }
    for &(name, values) in strings {
        let v: Vec<&str> = values.iter().map(String::as_str).collect();
        b.create_dataset(name).with_vlen_strings(&v);
    }
    let file = super::atomic::AtomicFile::new(path)?;
    b.write(file.path()).map_err(|e| FileError::content(path, format!("writing the HDF5 file failed: {e}")))?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::h5ad::{write_h5ad, AnnData};

    #[test]
    fn a_whole_file_passes_and_a_cut_one_is_named_truncated() {
        let dir = crate::io::scratch_dir("hdf5-cut");
        let path = dir.join("a.h5ad");
        let a = AnnData { obs_names: vec!["c1".into(), "c2".into()], ..Default::default() };
        write_h5ad(&path, &a).expect("write");
        check_hdf5_complete(&path).expect("whole");
        let bytes = std::fs::read(&path).expect("read");
        for cut in [bytes.len() - 1, bytes.len() / 2, 100] {
            let cut_path = dir.join(format!("cut{cut}.h5ad"));
            std::fs::write(&cut_path, &bytes[..cut]).expect("write");
            let msg = check_hdf5_complete(&cut_path).expect_err("cut").to_string();
            let want = format!("says it is {} bytes, it has {cut}", bytes.len());
            assert!(msg.contains("cut") && msg.contains("truncated") && msg.contains(&want), "{msg}");
        }
        // Not HDF5, or too short to tell: left to the reader.
        std::fs::write(dir.join("text.h5ad"), "a,b\n").expect("write");
        check_hdf5_complete(&dir.join("text.h5ad")).expect("not hdf5");
        std::fs::write(dir.join("sig.h5ad"), &bytes[..10]).expect("write");
        check_hdf5_complete(&dir.join("sig.h5ad")).expect("too short to tell");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn superblocks_of_every_version_give_their_end_of_file_address() {
        // v0 with 8-byte offsets: base at 24, end of file at 24 + 16.
        let mut v0 = vec![0u8; 64];
        v0[..8].copy_from_slice(&SIGNATURE);
        v0[13] = 8;
        v0[40..48].copy_from_slice(&5000u64.to_le_bytes());
        assert_eq!(required_length(&v0), Some(5000));
        // v1 with 4-byte offsets and a base of 512: base at 28, end of file at 28 + 8.
        let mut v1 = vec![0u8; 64];
        v1[..8].copy_from_slice(&SIGNATURE);
        v1[8] = 1;
        v1[13] = 4;
        v1[28..32].copy_from_slice(&512u32.to_le_bytes());
        v1[36..40].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(required_length(&v1), Some(1512));
        // v2, end of file undefined: nothing to check.
        let mut v2 = vec![0u8; 64];
        v2[..8].copy_from_slice(&SIGNATURE);
        v2[8] = 2;
        v2[9] = 8;
        v2[28..36].copy_from_slice(&[0xff; 8]);
        assert_eq!(required_length(&v2), None);
        v2[8] = 9;
        assert_eq!(required_length(&v2), None, "an unknown version");
    }
}
