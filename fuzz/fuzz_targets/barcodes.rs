//! Cell barcode lists (`--cells`, plain or gzip): `io::barcodes::read_barcodes`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::barcodes(data));
