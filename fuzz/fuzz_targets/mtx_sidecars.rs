//! Matrix Market directories, the other two files: `io::mtx::read_mtx_dir` on a directory
//! holding a fixed 6 × 8 `matrix.mtx` (`chromax_fuzz::mtx::MATRIX`) and the input split by
//! `chromax_fuzz::split_two` into `barcodes.tsv` and `peaks.bed`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::mtx_sidecars(data));
