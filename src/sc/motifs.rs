//! Motifs for TF activity: position probability matrices, and instances sampled from them.
//!
//! Formats read (told apart by their first meaningful line):
//! * JASPAR as bundled (`tests/data/motifs/JASPAR2022_vertebrates.pfm`): `>ID_ID.NAME` (or
//!   `>ID NAME`), then one line per position of four counts or frequencies, A C G T.
//! * JASPAR's own `.jaspar` layout: `>ID NAME`, then four lines `A [ c1 c2 … ]` (C, G, T).
//! * MEME minimal format: a `MEME version N` line, `MOTIF ID [NAME]`, a
//!   `letter-probability matrix: alength= 4 w= W …` line, then W lines of four probabilities.
//!
//! Each position's values are normalised to probabilities; `#` lines and blank lines are
//! skipped. A row with a negative, non-finite or all-zero value is refused with its line.

use crate::error::FileError;
use crate::rng::SplitMix64;
use std::path::Path;

/// A motif: its id, name and one probability row (A C G T) per position.
#[derive(Debug, Clone, PartialEq)]
pub struct Motif {
    pub id: String,
    pub name: String,
    pub probs: Vec<[f64; 4]>,
}

impl Motif {
    pub fn width(&self) -> usize {
        self.probs.len()
    }

    /// One instance: a base code (A C G T = 0..3) drawn per position from its row.
    pub fn sample(&self, rng: &mut SplitMix64) -> Vec<u8> {
        self.probs
            .iter()
            .map(|row| {
                let u = rng.unit();
                let mut acc = 0.0;
                for (b, p) in row.iter().enumerate() {
                    acc += p;
                    if u < acc {
                        return b as u8;
                    }
                }
                // Rounding left the cumulative sum just under 1: the last base with weight.
                row.iter().rposition(|&p| p > 0.0).unwrap_or(3) as u8
            })
            .collect()
    }
}

/// The motifs of a JASPAR or MEME minimal file (see the module's notes).
pub fn read_motifs(path: &Path) -> Result<Vec<Motif>, FileError> {
    let bytes = std::fs::read(path).map_err(FileError::io(path))?;
    let text = String::from_utf8(bytes).map_err(|_| FileError::content(path, "not a text file (UTF-8)"))?;
    let lines: Vec<(u64, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let motifs = match lines.first() {
        Some((_, l)) if l.starts_with("MEME version") => parse_meme(path, &lines)?,
        Some((_, l)) if l.starts_with('>') => parse_jaspar(path, &lines)?,
        Some((n, l)) => {
            return Err(FileError::line(
                path,
                *n,
                format!(
                    "`{}` starts neither a JASPAR file (`>ID NAME` lines, then counts) nor a MEME minimal one (`MEME version 5`)",
                    clip(l)
                ),
            ))
        }
        None => return Err(FileError::content(path, "no motifs: the file is empty")),
    };
    if motifs.is_empty() {
        return Err(FileError::content(path, "no motifs found"));
    }
    Ok(motifs)
}

fn clip(l: &str) -> String {
    l.chars().take(60).collect()
}

/// Four (or a row's worth of) non-negative finite numbers.
fn numbers(path: &Path, n: u64, fields: &[&str]) -> Result<Vec<f64>, FileError> {
    fields
        .iter()
        .map(|f| match f.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(FileError::line(path, n, format!("`{}` is not a count or probability (a number ≥ 0)", clip(f)))),
        })
        .collect()
}

/// A position's row normalised to probabilities.
fn normalised(path: &Path, n: u64, v: [f64; 4]) -> Result<[f64; 4], FileError> {
    let s: f64 = v.iter().sum();
    if s <= 0.0 {
        return Err(FileError::line(path, n, "a position whose four values are all 0"));
    }
    Ok(v.map(|x| x / s))
}

fn finish(
    path: &Path,
    n: u64,
    id: &str,
    name: &str,
    probs: Vec<[f64; 4]>,
    out: &mut Vec<Motif>,
) -> Result<(), FileError> {
    if probs.is_empty() {
        return Err(FileError::line(path, n, format!("motif {id} has no positions")));
    }
    out.push(Motif { id: id.to_string(), name: name.to_string(), probs });
    Ok(())
}

/// `>MA0004.1_MA0004.1.Arnt` → (MA0004.1, Arnt); `>MA0004.1 Arnt` → the same.
fn jaspar_header(h: &str) -> (String, String) {
    let h = h.trim_start_matches('>').trim();
    if let Some((id, name)) = h.split_once(char::is_whitespace) {
        return (id.to_string(), name.trim().to_string());
    }
    if let Some((id, rest)) = h.split_once('_') {
        let name = rest.strip_prefix(id).and_then(|r| r.strip_prefix('.')).unwrap_or(rest);
        return (id.to_string(), name.to_string());
    }
    (h.to_string(), h.to_string())
}

fn parse_jaspar(path: &Path, lines: &[(u64, &str)]) -> Result<Vec<Motif>, FileError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (n, header) = lines[i];
        if !header.starts_with('>') {
            return Err(FileError::line(path, n, format!("expected a `>ID NAME` line, found `{}`", clip(header))));
        }
        let (id, name) = jaspar_header(header);
        let body: Vec<(u64, &str)> = lines[i + 1..].iter().take_while(|(_, l)| !l.starts_with('>')).copied().collect();
        i += 1 + body.len();
        let bracketed = body.first().is_some_and(|(_, l)| l.contains('['));
        let mut probs = Vec::new();
        if bracketed {
            // Four rows `A [ … ]`, one per base, positions along the row.
            if body.len() != 4 {
                return Err(FileError::line(
                    path,
                    n,
                    format!("motif {id}: {} rows of counts, expected 4 (A C G T)", body.len()),
                ));
            }
            let mut rows = Vec::with_capacity(4);
            for (k, &(m, l)) in body.iter().enumerate() {
                let inner = l.split_once('[').and_then(|(_, r)| r.split_once(']')).map(|(v, _)| v);
                let Some(inner) = inner else {
                    return Err(FileError::line(
                        path,
                        m,
                        format!("expected `{} [ counts ]`", "ACGT".as_bytes()[k] as char),
                    ));
                };
                rows.push(numbers(path, m, &inner.split_whitespace().collect::<Vec<_>>())?);
            }
            if rows.iter().any(|r| r.len() != rows[0].len()) {
                return Err(FileError::line(path, n, format!("motif {id}: the four rows have different lengths")));
            }
            for (j, &a) in rows[0].iter().enumerate() {
                probs.push(normalised(path, body[0].0, [a, rows[1][j], rows[2][j], rows[3][j]])?);
            }
        } else {
            for &(m, l) in &body {
                let fields: Vec<&str> = l.split_whitespace().collect();
                if fields.len() != 4 {
                    return Err(FileError::line(
                        path,
                        m,
                        format!("{} values, expected 4 (A C G T) per position of motif {id}", fields.len()),
                    ));
                }
                let v = numbers(path, m, &fields)?;
                probs.push(normalised(path, m, [v[0], v[1], v[2], v[3]])?);
            }
        }
        finish(path, n, &id, &name, probs, &mut out)?;
    }
    Ok(out)
}

fn parse_meme(path: &Path, lines: &[(u64, &str)]) -> Result<Vec<Motif>, FileError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (n, l) = lines[i];
        i += 1;
        let Some(rest) = l.strip_prefix("MOTIF") else { continue };
        let mut words = rest.split_whitespace();
        let id = words.next().ok_or_else(|| FileError::line(path, n, "MOTIF without an id"))?.to_string();
        let name = words.next().unwrap_or(&id).to_string();
        // The matrix header, then W rows.
        let Some(at) =
            lines[i..].iter().position(|(_, l)| l.starts_with("letter-probability matrix") || l.starts_with("MOTIF"))
        else {
            return Err(FileError::line(path, n, format!("motif {id} has no `letter-probability matrix:` line")));
        };
        let (m, header) = lines[i + at];
        if header.starts_with("MOTIF") {
            return Err(FileError::line(path, n, format!("motif {id} has no `letter-probability matrix:` line")));
        }
        i += at + 1;
        let field = |key: &str| -> Option<usize> {
            let words: Vec<&str> = header.split_whitespace().collect();
            words.iter().position(|w| *w == key).and_then(|k| words.get(k + 1)).and_then(|v| v.parse().ok())
        };
        if field("alength=").is_some_and(|a| a != 4) {
            return Err(FileError::line(path, m, format!("motif {id}: alength must be 4 (DNA)")));
        }
        let width =
            field("w=").ok_or_else(|| FileError::line(path, m, format!("motif {id}: no `w= WIDTH` on this line")))?;
        let mut probs = Vec::with_capacity(width);
        for _ in 0..width {
            let Some(&(r, row)) = lines.get(i) else {
                return Err(FileError::line(path, m, format!("motif {id}: the file ends before its {width} rows")));
            };
            let fields: Vec<&str> = row.split_whitespace().collect();
            if fields.len() != 4 {
                return Err(FileError::line(
                    path,
                    r,
                    format!("{} values, expected 4 probabilities (A C G T)", fields.len()),
                ));
            }
            let v = numbers(path, r, &fields)?;
            probs.push(normalised(path, r, [v[0], v[1], v[2], v[3]])?);
            i += 1;
        }
        finish(path, n, &id, &name, probs, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("chromax-motifs-{}-{name}", std::process::id()));
        std::fs::write(&p, text).expect("temp file");
        p
    }

    #[test]
    fn reads_the_three_layouts_alike() {
        let bundled = write("a.pfm", "# header\n>MA0004.1_MA0004.1.Arnt\n4 16 0 0\n19 0 1 0\n");
        let jaspar = write("b.jaspar", ">MA0004.1 Arnt\nA [ 4 19 ]\nC [ 16 0 ]\nG [ 0 1 ]\nT [ 0 0 ]\n");
        let meme = write(
            "c.meme",
            "MEME version 5\n\nALPHABET= ACGT\n\nMOTIF MA0004.1 Arnt\nletter-probability matrix: alength= 4 w= 2 nsites= 20\n0.2 0.8 0 0\n0.95 0 0.05 0\n",
        );
        let want = vec![Motif {
            id: "MA0004.1".into(),
            name: "Arnt".into(),
            probs: vec![[0.2, 0.8, 0.0, 0.0], [0.95, 0.0, 0.05, 0.0]],
        }];
        for p in [&bundled, &jaspar, &meme] {
            assert_eq!(read_motifs(p).expect("parses"), want, "{}", p.display());
        }
    }

    #[test]
    fn bad_files_name_the_line() {
        let neither = write("d.txt", "chr1\t10\t20\n");
        let e = read_motifs(&neither).expect_err("neither format").to_string();
        assert!(e.contains("line 1") && e.contains("JASPAR") && e.contains("MEME"), "{e}");
        let short = write("e.pfm", ">M1 x\n1 2 3\n");
        assert!(read_motifs(&short).expect_err("3 values").to_string().contains("line 2"));
        let negative = write("f.pfm", ">M1 x\n1 2 3 -4\n");
        assert!(read_motifs(&negative).expect_err("negative").to_string().contains("line 2"));
        let meme = write(
            "g.meme",
            "MEME version 5\nMOTIF M1\nletter-probability matrix: alength= 4 w= 3\n0.25 0.25 0.25 0.25\n",
        );
        assert!(read_motifs(&meme).expect_err("short").to_string().contains("ends before its 3 rows"));
    }

    #[test]
    fn instances_follow_the_matrix() {
        let m = Motif { id: "x".into(), name: "x".into(), probs: vec![[0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.5]] };
        let mut rng = SplitMix64::new(3);
        let draws: Vec<Vec<u8>> = (0..2000).map(|_| m.sample(&mut rng)).collect();
        assert!(draws.iter().all(|d| d[0] == 1 && (d[1] == 0 || d[1] == 3)));
        let a = draws.iter().filter(|d| d[1] == 0).count();
        assert!((900..1100).contains(&a), "{a} of 2000 draws were A at a 50% position");
    }
}
