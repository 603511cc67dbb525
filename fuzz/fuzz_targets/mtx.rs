//! Matrix Market directories: `io::mtx::read_mtx_dir` on a directory holding the input as
//! `matrix.mtx` beside a fixed `barcodes.tsv` (8 barcodes) and `peaks.bed` (6 peaks), both
//! cut from tests/data/chr22_scatac (`chromax_fuzz::mtx`).
#![no_main]

use chromax_fuzz::{mtx, scratch_dir, write_input};
use libfuzzer_sys::fuzz_target;
use std::sync::Once;

fuzz_target!(|data: &[u8]| {
    static SIDECARS: Once = Once::new();
    SIDECARS.call_once(|| {
        write_input("mtx", "barcodes.tsv", mtx::BARCODES.as_bytes());
        write_input("mtx", "peaks.bed", mtx::PEAKS.as_bytes());
    });
    write_input("mtx", "matrix.mtx", data);
    let _ = chromax::io::mtx::read_mtx_dir(scratch_dir("mtx"));
});
