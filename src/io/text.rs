//! Line-oriented text inputs, plain or gzip/bgzip-compressed (detected by the magic bytes),
//! and the completeness check every reader of BGZF input (bgzip text, BAM) makes.

use crate::error::FileError;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Reads lines as bytes with their 1-based numbers; io errors name the file and line.
pub struct LineReader {
    path: PathBuf,
    inner: Box<dyn BufRead + Send>,
    line_no: u64,
    buf: Vec<u8>,
}

/// Whether a file starts with the gzip magic bytes (gzip and bgzip both do).
pub fn is_gzip(path: &Path) -> Result<bool, FileError> {
    let mut magic = [0u8; 2];
    let mut f = File::open(path).map_err(FileError::io(path))?;
    let n = f.read(&mut magic).map_err(FileError::io(path))?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

/// The empty block that ends every complete BGZF file (SAM/BAM specification, §4.1.2).
pub const BGZF_EOF: [u8; 28] = [
    0x1f, 0x8b, 0x08, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x06, 0x00, 0x42, 0x43, 0x02, 0x00, 0x1b, 0x00, 0x03,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// Whether a gzip member's extra field (RFC 1952 §2.3.1.1) holds BGZF's `BC` subfield, the
/// block size.
fn has_bgzf_subfield(extra: &[u8]) -> bool {
    let mut i = 0;
    while i + 4 <= extra.len() {
        let len = u16::from_le_bytes([extra[i + 2], extra[i + 3]]) as usize;
        if extra[i] == b'B' && extra[i + 1] == b'C' && len == 2 {
            return true;
        }
        i += 4 + len;
    }
    false
}

/// Checks that a BGZF file (bgzip text, BAM) is complete. Cut at a block boundary, such a
/// file decompresses cleanly to fewer records: only its missing end-of-file block tells.
/// Plain gzip, text and anything that is not a regular file (a pipe) pass unchecked.
pub fn check_bgzf_complete(path: &Path) -> Result<(), FileError> {
    let mut file = File::open(path).map_err(FileError::io(path))?;
    let meta = file.metadata().map_err(FileError::io(path))?;
    if !meta.is_file() {
        return Ok(());
    }
    let mut head = [0u8; 12];
    if file.read_exact(&mut head).is_err() || head[..3] != [0x1f, 0x8b, 0x08] || head[3] & 0x04 == 0 {
        return Ok(());
    }
    let mut extra = vec![0u8; u16::from_le_bytes([head[10], head[11]]) as usize];
    if file.read_exact(&mut extra).is_err() || !has_bgzf_subfield(&extra) {
        return Ok(());
    }
    let mut tail = [0u8; 28];
    let complete = meta.len() >= 28
        && file.seek(SeekFrom::End(-28)).is_ok()
        && file.read_exact(&mut tail).is_ok()
        && tail == BGZF_EOF;
    if complete {
        Ok(())
    } else {
        Err(FileError::content(
            path,
            "the BGZF file has no end-of-file block: it is truncated (copy it again, or re-create it: bgzip for text, samtools for a BAM)",
        ))
    }
}

impl LineReader {
    /// Opens a plain or gzip-compressed text file (a BGZF one must be complete,
    /// [`check_bgzf_complete`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FileError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(FileError::io(&path))?;
        let inner: Box<dyn BufRead + Send> = if is_gzip(&path)? {
            check_bgzf_complete(&path)?;
            Box::new(BufReader::with_capacity(1 << 20, MultiGzDecoder::new(BufReader::with_capacity(1 << 20, file))))
        } else {
            Box::new(BufReader::with_capacity(1 << 20, file))
        };
        Ok(LineReader { path, inner, line_no: 0, buf: Vec::with_capacity(256) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of the line last returned (1-based).
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// The next line without its line ending, or `None` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, FileError> {
        Ok(if self.advance()? { Some(&self.buf) } else { None })
    }

    /// Moves to the next line ([`LineReader::line`]); false at the end of the file.
    pub fn advance(&mut self) -> Result<bool, FileError> {
        self.buf.clear();
        let n = self.inner.read_until(b'\n', &mut self.buf).map_err(|e| {
            let what = match e.kind() {
                ErrorKind::UnexpectedEof => "the compressed stream ends early: the file is truncated".to_string(),
                ErrorKind::InvalidInput | ErrorKind::InvalidData => {
                    format!("not a valid gzip stream ({e})")
                }
                _ => e.to_string(),
            };
            FileError::line(&self.path, self.line_no + 1, what)
        })?;
        if n == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Ok(true)
    }

    /// The current line, without its line ending.
    pub fn line(&self) -> &[u8] {
        &self.buf
    }

    /// An error for the line last returned.
    pub fn error(&self, what: impl Into<String>) -> FileError {
        FileError::line(&self.path, self.line_no, what)
    }
}

/// A field as text for messages (lossy, shortened).
pub fn show(field: &[u8]) -> String {
    let s = String::from_utf8_lossy(field);
    if s.len() > 40 {
        format!("{}…", &s[..s.char_indices().nth(40).map_or(s.len(), |(i, _)| i)])
    } else {
        s.into_owned()
    }
}

/// Parses an unsigned integer field, or says what was found.
pub fn parse_u64(field: &[u8], name: &str) -> Result<u64, String> {
    if field.is_empty() || field.len() > 19 || !field.iter().all(u8::is_ascii_digit) {
        return Err(format!("{name} '{}' is not a non-negative integer", show(field)));
    }
    Ok(field.iter().fold(0u64, |acc, &d| acc * 10 + (d - b'0') as u64))
}

/// Whether a line is a comment or a track/browser header (BED family).
pub fn is_header(line: &[u8]) -> bool {
    line.is_empty() || line.starts_with(b"#") || line.starts_with(b"track") || line.starts_with(b"browser")
}

/// Writes text lines to `path`, each ended by a newline, whole or not at all.
pub fn write_lines<S: AsRef<str>>(path: &Path, lines: impl IntoIterator<Item = S>) -> Result<(), FileError> {
    use std::io::Write;
    super::atomic::write_atomically(path, |w| lines.into_iter().try_for_each(|l| writeln!(w, "{}", l.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A BGZF file passes whole and fails without its end-of-file block, read line by line
    /// or not; plain gzip (whatever its extra field), text and empty files are not checked.
    #[test]
    fn only_a_complete_bgzf_file_passes() {
        let dir = crate::io::scratch_dir("text-bgzf");
        let bgzf = dir.join("a.tsv.gz");
        let mut w = noodles::bgzf::io::Writer::new(File::create(&bgzf).expect("create"));
        for i in 0..1000 {
            writeln!(w, "chr1\t{i}\t{}\tAAAC", i + 50).expect("write");
        }
        w.finish().expect("finish");
        let bytes = std::fs::read(&bgzf).expect("read");
        assert_eq!(bytes[bytes.len() - 28..], BGZF_EOF);
        check_bgzf_complete(&bgzf).expect("complete");
        let mut lines = LineReader::open(&bgzf).expect("open");
        let mut n = 0;
        while lines.advance().expect("line") {
            n += 1;
        }
        assert_eq!(n, 1000);

        let cut = dir.join("cut.tsv.gz");
        std::fs::write(&cut, &bytes[..bytes.len() - 28]).expect("write");
        let want = format!(
            "{}: the BGZF file has no end-of-file block: it is truncated (copy it again, or re-create it: bgzip for text, samtools for a BAM)",
            cut.display()
        );
        assert_eq!(check_bgzf_complete(&cut).expect_err("cut").to_string(), want);
        assert_eq!(LineReader::open(&cut).err().expect("cut").to_string(), want);

        // Plain gzip with an extra field that is not BGZF's, cut short: not BGZF, not checked
        // here (its reader finds the stream ending early).
        let plain = dir.join("plain.gz");
        let mut gz = flate2::GzBuilder::new()
            .extra(vec![b'X', b'Y', 2, 0, 7, 7])
            .write(Vec::new(), flate2::Compression::default());
        gz.write_all(&b"chr1\t1\t2\tA\n".repeat(100)).expect("write");
        let gz = gz.finish().expect("finish");
        std::fs::write(&plain, &gz[..gz.len() - 10]).expect("write");
        check_bgzf_complete(&plain).expect("not BGZF");
        let text = dir.join("t.txt");
        std::fs::write(&text, "chr1\t1\t2\n").expect("write");
        check_bgzf_complete(&text).expect("text");
        std::fs::write(&text, "").expect("write");
        check_bgzf_complete(&text).expect("empty");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
