//! chrom.sizes files (plain or gzip): `io::ChromSizes::read`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::chrom_sizes(data));
