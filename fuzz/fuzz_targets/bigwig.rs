//! bigWig: `io::bigwig::read_bigwig` (bigtools underneath), over the file's own chromosomes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::bigwig(data));
