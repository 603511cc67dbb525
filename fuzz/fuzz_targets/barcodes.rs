//! Cell barcode lists (`--cells`, plain or gzip): `io::barcodes::read_barcodes`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = chromax_fuzz::write_input("barcodes", "barcodes.txt", data);
    let _ = chromax::io::barcodes::read_barcodes(&path);
});
