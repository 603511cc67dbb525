//! NumPy `.npy` files (format version 1.0): a little-endian float32 matrix, C order.

use super::atomic::AtomicFile;
use crate::error::FileError;
use std::io::Write;
use std::path::Path;

/// Writes `values` (rows × cols, row-major) as a float32 `.npy` file, atomically.
pub fn write_npy_f32(path: &Path, values: &[f32], rows: usize, cols: usize) -> Result<(), FileError> {
    if values.len() != rows * cols {
        return Err(FileError::content(path, format!("{} values for a {rows} × {cols} matrix", values.len())));
    }
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let file = AtomicFile::new(path)?;
    let mut w = file.create()?;
    let mut bytes = Vec::with_capacity(10 + header.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    w.write_all(&bytes).map_err(FileError::io(path))?;
    w.write_all(bytemuck::cast_slice(values)).map_err(FileError::io(path))?;
    w.flush().map_err(FileError::io(path))?;
    drop(w);
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_values_follow() {
        let dir = std::env::temp_dir().join(format!("chromax-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("m.npy");
        write_npy_f32(&path, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + hlen]).expect("ascii");
        assert!(header.contains("'shape': (2, 3)") && header.ends_with('\n'));
        let values: Vec<f32> =
            bytes[10 + hlen..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        assert_eq!(values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(write_npy_f32(&path, &[1.0], 2, 3).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
