//! BED and narrowPeak: reading intervals, writing narrowPeak.

use super::atomic::AtomicFile;
use super::text::{is_header, parse_u64, LineReader};
use crate::error::FileError;
use std::io::Write;
use std::path::Path;

/// One BED interval (first three columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    pub chrom: String,
    pub start: u64,
    pub end: u64,
}

/// Reads the intervals of a BED or narrowPeak file (plain or gzip); header lines
/// (`track`, `browser`, `#`) are skipped. Empty intervals (start ≥ end) are errors.
pub fn read_intervals(path: impl AsRef<Path>) -> Result<Vec<Interval>, FileError> {
    Ok(read_records(path.as_ref(), |_| Ok(()))?.into_iter().map(|(iv, ())| iv).collect())
}

/// The intervals of a narrowPeak file with their signalValue (column 7).
pub fn read_narrowpeak_signal(path: impl AsRef<Path>) -> Result<Vec<(Interval, f64)>, FileError> {
    read_records(path.as_ref(), |rest| {
        let seventh = rest.get(3).ok_or("expected the 10 narrowPeak columns (signalValue is the 7th)")?;
        std::str::from_utf8(seventh)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .ok_or_else(|| format!("signalValue '{}' is not a number", String::from_utf8_lossy(seventh)).into())
    })
}

/// Each line's interval and what `more` reads from its columns after the third.
fn read_records<T>(
    path: &Path,
    more: impl Fn(&[&[u8]]) -> Result<T, std::borrow::Cow<'static, str>>,
) -> Result<Vec<(Interval, T)>, FileError> {
    let mut lines = LineReader::open(path)?;
    let mut out = Vec::new();
    while lines.advance()? {
        let line = lines.line();
        if is_header(line) {
            continue;
        }
        let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
        let [chrom, start, end, rest @ ..] = fields.as_slice() else {
            return Err(lines.error("expected at least 3 tab-separated columns: chrom start end"));
        };
        let start = parse_u64(start, "start").map_err(|e| lines.error(e))?;
        let end = parse_u64(end, "end").map_err(|e| lines.error(e))?;
        if start >= end {
            return Err(lines.error(format!("start {start} is not before end {end}")));
        }
        let extra = more(rest).map_err(|e| lines.error(e.into_owned()))?;
        out.push((Interval { chrom: String::from_utf8_lossy(chrom).into_owned(), start, end }, extra));
    }
    Ok(out)
}

/// One narrowPeak record (ENCODE's 10 columns).
#[derive(Debug, Clone, PartialEq)]
pub struct NarrowPeak {
    pub chrom: String,
    pub start: u64,
    pub end: u64,
    pub name: String,
    /// 0..=1000 by convention.
    pub score: u32,
    pub signal_value: f64,
    /// −log10 p, or −1.
    pub p_value: f64,
    /// −log10 q, or −1.
    pub q_value: f64,
    /// Summit offset from `start`.
    pub peak: u64,
}

/// Writes narrowPeak records atomically.
pub fn write_narrowpeak(path: impl AsRef<Path>, peaks: &[NarrowPeak]) -> Result<(), FileError> {
    let file = AtomicFile::new(path.as_ref())?;
    let mut w = file.create()?;
    let io = FileError::io(path.as_ref());
    for p in peaks {
        writeln!(
            w,
            "{}\t{}\t{}\t{}\t{}\t.\t{:.5}\t{:.5}\t{:.5}\t{}",
            p.chrom, p.start, p.end, p.name, p.score, p.signal_value, p.p_value, p.q_value, p.peak
        )
        .map_err(FileError::io(path.as_ref()))?;
    }
    w.flush().map_err(io)?;
    drop(w);
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh directory per test: tests run in parallel in one process.
    fn scratch(name: &str) -> PathBuf {
        crate::io::scratch_dir(&format!("bed-{name}"))
    }

    fn interval(chrom: &str, start: u64, end: u64) -> Interval {
        Interval { chrom: chrom.into(), start, end }
    }

    /// The message of reading `text` as a BED file, which must fail.
    fn error_of(dir: &Path, text: &str) -> (PathBuf, String) {
        let path = dir.join("bad.bed");
        std::fs::write(&path, text).expect("write");
        let err = read_intervals(&path).expect_err(&format!("{text:?} must be refused"));
        (path, err.to_string())
    }

    #[test]
    fn bed3_bed6_and_narrowpeak_lines_keep_their_coordinates() {
        let dir = scratch("columns");
        let path = dir.join("mixed.bed");
        let text = "chr1\t0\t100\n\
                    chr2\t150\t250\tpeak_a\t960\t+\n\
                    chrUn_KI270302v1\t1000\t1500\tpeak_b\t37\t.\t12.5\t-1\t3.25\t240\n";
        std::fs::write(&path, text).expect("write");
        // As written: BED is already 0-based half-open, so nothing is shifted.
        let want = vec![interval("chr1", 0, 100), interval("chr2", 150, 250), interval("chrUn_KI270302v1", 1000, 1500)];
        assert_eq!(read_intervals(&path).expect("read"), want);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn headers_comments_and_empty_lines_are_skipped_and_still_counted() {
        let dir = scratch("headers");
        let path = dir.join("headers.bed");
        let text = "browser position chr1:1-1000\n\
                    track name=peaks description=\"test\"\n\
                    # a comment\n\
                    \n\
                    chr1\t10\t20\n\
                    \n\
                    #chrom\tstart\tend\n\
                    chr1\t30\t40\n";
        std::fs::write(&path, text).expect("write");
        assert_eq!(read_intervals(&path).expect("read"), vec![interval("chr1", 10, 20), interval("chr1", 30, 40)]);

        // Skipped lines still count: the fault is reported on the line of the file.
        let (bad, msg) = error_of(&dir, "track name=x\n# c\n\nchr1\t50\t40\n");
        assert_eq!(msg, format!("{}: line 4: start 50 is not before end 40", bad.display()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_empty_file_has_no_intervals() {
        let dir = scratch("empty");
        let path = dir.join("empty.bed");
        std::fs::write(&path, "").expect("write");
        assert_eq!(read_intervals(&path).expect("read"), vec![]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn malformed_lines_name_the_file_and_line() {
        let dir = scratch("malformed");
        let ok = "chr1\t0\t10\n";
        let cases = [
            ("chr1\t100\n", 2, "expected at least 3 tab-separated columns: chrom start end"),
            ("chr1\n", 2, "expected at least 3 tab-separated columns: chrom start end"),
            ("chr1\tabc\t200\n", 2, "start 'abc' is not a non-negative integer"),
            ("chr1\t100\t2e3\n", 2, "end '2e3' is not a non-negative integer"),
            ("chr1\t\t200\n", 2, "start '' is not a non-negative integer"),
            ("chr1\t-5\t100\n", 2, "start '-5' is not a non-negative integer"),
            ("chr1\t5\t-100\n", 2, "end '-100' is not a non-negative integer"),
            ("chr1\t200\t200\n", 2, "start 200 is not before end 200"),
            ("chr1\t300\t200\n", 2, "start 300 is not before end 200"),
            // 20 digits: beyond u64, refused rather than wrapped.
            ("chr1\t0\t99999999999999999999\n", 2, "end '99999999999999999999' is not a non-negative integer"),
        ];
        for (line, line_no, what) in cases {
            let (path, msg) = error_of(&dir, &format!("{ok}{line}"));
            assert_eq!(msg, format!("{}: line {line_no}: {what}", path.display()), "for {line:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let dir = scratch("missing");
        let path = dir.join("absent.bed");
        let msg = read_intervals(&path).expect_err("no such file").to_string();
        assert!(msg.starts_with(&format!("{}: ", path.display())), "{msg}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn crlf_line_endings_are_stripped() {
        let dir = scratch("crlf");
        let path = dir.join("windows.bed");
        std::fs::write(&path, "track name=x\r\n\r\nchr1\t10\t20\r\nchr2\t5\t7\tname\t0\t-\r\n").expect("write");
        assert_eq!(read_intervals(&path).expect("read"), vec![interval("chr1", 10, 20), interval("chr2", 5, 7)]);
        // A file whose last line has no line ending at all.
        std::fs::write(&path, "chr1\t10\t20\r\nchr1\t30\t40").expect("write");
        assert_eq!(read_intervals(&path).expect("read"), vec![interval("chr1", 10, 20), interval("chr1", 30, 40)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn gzip_bed_is_read_like_plain() {
        let dir = scratch("gzip");
        let path = dir.join("peaks.bed.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"# header\nchr1\t10\t20\nchrX\t0\t5\n").expect("compress");
        std::fs::write(&path, gz.finish().expect("compress")).expect("write");
        assert_eq!(read_intervals(&path).expect("read"), vec![interval("chr1", 10, 20), interval("chrX", 0, 5)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The ten narrowPeak columns of one line, as the test reads them back.
    fn parse_narrowpeak(line: &str) -> NarrowPeak {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 10, "ten columns in {line:?}");
        assert_eq!(f[5], ".", "no strand");
        NarrowPeak {
            chrom: f[0].into(),
            start: f[1].parse().expect("start"),
            end: f[2].parse().expect("end"),
            name: f[3].into(),
            score: f[4].parse().expect("score"),
            signal_value: f[6].parse().expect("signal"),
            p_value: f[7].parse().expect("p"),
            q_value: f[8].parse().expect("q"),
            peak: f[9].parse().expect("peak"),
        }
    }

    #[test]
    fn narrowpeak_round_trip() {
        let dir = scratch("narrowpeak");
        let path = dir.join("calls.narrowPeak");
        // Values with at most five decimals: the writer keeps five.
        let peaks = vec![
            NarrowPeak {
                chrom: "chr1".into(),
                start: 0,
                end: 250,
                name: "peak_1".into(),
                score: 1000,
                signal_value: 12.5,
                p_value: 7.03125,
                q_value: -1.0,
                peak: 125,
            },
            NarrowPeak {
                chrom: "chrUn_KI270302v1".into(),
                start: 4_000_000_000,
                end: 4_000_000_150,
                name: "peak_2".into(),
                score: 0,
                signal_value: 0.25,
                p_value: -1.0,
                q_value: 2.00001,
                peak: 0,
            },
        ];
        write_narrowpeak(&path, &peaks).expect("write");

        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().next(), Some("chr1\t0\t250\tpeak_1\t1000\t.\t12.50000\t7.03125\t-1.00000\t125"));
        let back: Vec<NarrowPeak> = text.lines().map(parse_narrowpeak).collect();
        assert_eq!(back, peaks);
        // The interval reader takes the same file.
        let intervals: Vec<Interval> = peaks.iter().map(|p| interval(&p.chrom, p.start, p.end)).collect();
        assert_eq!(read_intervals(&path).expect("read intervals"), intervals);
        // Nothing left behind but the file itself.
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 1);

        // No peaks: an empty file, which reads back as no intervals.
        write_narrowpeak(&path, &[]).expect("write empty");
        assert_eq!(std::fs::read(&path).expect("read"), b"");
        assert_eq!(read_intervals(&path).expect("read"), vec![]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn narrowpeak_into_a_missing_directory_is_an_error_naming_it() {
        let dir = scratch("nodir");
        let missing = dir.join("no-such-dir");
        let msg = write_narrowpeak(missing.join("x.narrowPeak"), &[]).expect_err("no directory").to_string();
        assert_eq!(msg, format!("{}: the output directory does not exist: create it first", missing.display()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
