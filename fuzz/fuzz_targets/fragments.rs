//! 10x fragments files (plain or gzip): `FragmentReader` over every record.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::fragments(data));
