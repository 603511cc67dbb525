//! 10x fragments files (plain or gzip): `FragmentReader` over every record.
#![no_main]

use chromax::io::fragments::FragmentReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = chromax_fuzz::write_input("fragments", "fragments.tsv", data);
    let Ok(mut reader) = FragmentReader::open(&path) else { return };
    while let Ok(Some(_)) = reader.next() {}
});
