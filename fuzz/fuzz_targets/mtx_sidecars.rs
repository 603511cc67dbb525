//! Matrix Market directories, the other two files: `io::mtx::read_mtx_dir` on a directory
//! holding a fixed 6 × 8 `matrix.mtx` (`chromax_fuzz::mtx::MATRIX`) and the input split by
//! `chromax_fuzz::split_two` into `barcodes.tsv` and `peaks.bed`.
#![no_main]

use chromax_fuzz::{mtx, scratch_dir, split_two, write_input};
use libfuzzer_sys::fuzz_target;
use std::sync::Once;

fuzz_target!(|data: &[u8]| {
    static MATRIX: Once = Once::new();
    MATRIX.call_once(|| {
        write_input("mtx_sidecars", "matrix.mtx", mtx::MATRIX.as_bytes());
    });
    let (barcodes, peaks) = split_two(data);
    write_input("mtx_sidecars", "barcodes.tsv", barcodes);
    write_input("mtx_sidecars", "peaks.bed", peaks);
    let _ = chromax::io::mtx::read_mtx_dir(scratch_dir("mtx_sidecars"));
});
