//! chrom.sizes files (plain or gzip): `io::ChromSizes::read`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = chromax_fuzz::write_input("chrom_sizes", "genome.chrom.sizes", data);
    let _ = chromax::io::ChromSizes::read(&path);
});
