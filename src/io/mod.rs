//! File formats, at the edges: everything inside chromax is a store or a buffer.
//!
//! Coordinates are 0-based and half-open (`start..end`) everywhere, as in BED, bedGraph,
//! narrowPeak, 10x fragments and bigWig; BAM positions are converted on reading. Readers
//! name the file and line of any fault; writers write to a temporary name in the target's
//! directory and rename it into place only when complete ([`atomic::AtomicFile`]).

pub mod atomic;
pub mod barcodes;
pub mod bed;
pub mod bedgraph;
pub mod bigwig;
pub(crate) mod bigwig_writer;
pub mod fragments;
pub mod guard;
pub mod h5ad;
pub mod hdf5;
pub mod index;
pub mod json;
pub mod mtx;
pub mod npy;
pub mod safetensors;
pub mod sizes;
pub mod tenx;
pub mod text;
pub mod vcf;

pub use sizes::ChromSizes;

/// `PREFIX` + `suffix` (`out/sample` + `.track.bw`, `reads.bam` + `.bai`).
pub fn prefixed(prefix: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut p = prefix.as_os_str().to_owned();
    p.push(suffix);
    std::path::PathBuf::from(p)
}

/// A new, empty directory for one unit test's files: `chromax-<tag>-<pid>` in the temporary
/// directory.
#[cfg(test)]
pub(crate) fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chromax-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
