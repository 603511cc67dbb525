//! BED and narrowPeak (plain or gzip): `io::bed::read_intervals`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::bed(data));
