//! Line-oriented text inputs, plain or gzip/bgzip-compressed (detected by the magic bytes).

use crate::error::FileError;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
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

impl LineReader {
    /// Opens a plain or gzip-compressed text file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FileError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(FileError::io(&path))?;
        let inner: Box<dyn BufRead + Send> = if is_gzip(&path)? {
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
