//! Matrix Market directories: `io::mtx::read_mtx_dir` on a directory holding the input as
//! `matrix.mtx` beside a fixed `barcodes.tsv` (8 barcodes) and `peaks.bed` (6 peaks), both
//! cut from tests/data/chr22_scatac (`chromax_fuzz::mtx`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::mtx(data));
