//! BED and narrowPeak (plain or gzip): `io::bed::read_intervals`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = chromax_fuzz::write_input("bed", "peaks.narrowPeak", data);
    let _ = chromax::io::bed::read_intervals(&path);
});
