//! BAM: `coverage::coverage_from_bam` (noodles underneath; the lowest BAM reader chromax
//! exposes) in both pile-up modes over a small fixed genome, and `coverage::bam_header_sizes`.
//!
//! A BAM is BGZF-compressed, and mutating deflate streams mostly breaks their checksums, so
//! an input that does not start with the gzip magic is taken as the uncompressed BAM stream
//! (`BAM\1`, header, records) and compressed here; one that does is written as it is.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::bam(data));
