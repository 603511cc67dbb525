//! Chromosome sizes (`chrom.sizes`: name TAB length per line) and name matching.

use super::text::{is_header, parse_u64, show, LineReader};
use crate::error::FileError;
use std::collections::HashMap;
use std::path::Path;

/// Chromosome names and lengths, in file order, with lookup by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChromSizes {
    names: Vec<String>,
    lengths: Vec<u64>,
    index: HashMap<String, usize>,
}

impl ChromSizes {
    /// From (name, length) pairs; a repeated name is an error.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, u64)>) -> Result<Self, String> {
        let mut sizes = ChromSizes::default();
        for (name, len) in pairs {
            if sizes.index.insert(name.clone(), sizes.names.len()).is_some() {
                return Err(format!("chromosome '{name}' is listed twice"));
            }
            sizes.names.push(name);
            sizes.lengths.push(len);
        }
        Ok(sizes)
    }

    /// Reads a chrom.sizes file (plain or gzip).
    pub fn read(path: impl AsRef<Path>) -> Result<Self, FileError> {
        let path = path.as_ref();
        let mut lines = LineReader::open(path)?;
        let mut sizes = ChromSizes::default();
        while lines.advance()? {
            let line = lines.line();
            if is_header(line) {
                continue;
            }
            let mut fields = line.split(|&b| b == b'\t' || b == b' ').filter(|f| !f.is_empty());
            let (Some(name), Some(len)) = (fields.next(), fields.next()) else {
                return Err(lines.error("expected 'name<TAB>length'"));
            };
            let len = parse_u64(len, "length").map_err(|e| lines.error(e))?;
            if len == 0 || len > u32::MAX as u64 {
                return Err(lines.error(format!("length {len} of '{}' is outside 1..=4294967295", show(name))));
            }
            let name = String::from_utf8_lossy(name).into_owned();
            if let Some(&first) = sizes.index.get(&name) {
                let what = format!("chromosome '{name}' is listed twice (first as entry {})", first + 1);
                return Err(lines.error(what));
            }
            sizes.index.insert(name.clone(), sizes.names.len());
            sizes.names.push(name);
            sizes.lengths.push(len);
        }
        if sizes.names.is_empty() {
            return Err(FileError::content(path, "no chromosomes: expected lines of 'name<TAB>length'"));
        }
        Ok(sizes)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
    pub fn names(&self) -> &[String] {
        &self.names
    }
    pub fn name(&self, id: usize) -> &str {
        &self.names[id]
    }
    pub fn length(&self, id: usize) -> u64 {
        self.lengths[id]
    }
    pub fn lengths(&self) -> &[u64] {
        &self.lengths
    }
    pub fn id(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
    /// Total length of all chromosomes.
    pub fn total(&self) -> u64 {
        self.lengths.iter().sum()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.names.iter().map(String::as_str).zip(self.lengths.iter().copied())
    }
}

/// A message for inputs whose chromosome names do not meet: a few names from each side and,
/// when the difference is a `chr` prefix, how to fix it.
pub fn name_mismatch(what: &str, ours: &[String], theirs: &[String], our_side: &str, their_side: &str) -> String {
    let few = |names: &[String]| names.iter().take(4).map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    let mut msg = format!("{what}: {their_side} names {} but {our_side} has {}", few(theirs), few(ours));
    let strip = |n: &str| n.strip_prefix("chr").unwrap_or(n).to_string();
    let ours_bare: std::collections::HashSet<String> = ours.iter().map(|n| strip(n)).collect();
    if theirs.iter().any(|n| ours_bare.contains(&strip(n))) {
        let ours_chr = ours.iter().any(|n| n.starts_with("chr"));
        let theirs_chr = theirs.iter().any(|n| n.starts_with("chr"));
        if ours_chr != theirs_chr {
            let (with, without) = if ours_chr { (our_side, their_side) } else { (their_side, our_side) };
            msg.push_str(&format!(
                "; they differ only by a 'chr' prefix: make them agree, e.g. remove it from {with} with `sed 's/^chr//'` \
                 or add it to {without} with `sed 's/^/chr/'`"
            ));
        }
    }
    msg
}
